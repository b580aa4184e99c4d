//! `repro verify`: re-hash every object of the cache (quarantining corrupt ones) and check every
//! run record: readable, stored under its own key, naming objects that exist. Exits 1 with a
//! count per class when anything is wrong. `--recompute` re-runs cached instances outside the
//! cache and compares their outputs with the stored ones (the audit's determinism check).

use super::{cache_dir, load_plan, project_pipelines};
use crate::cli::Cli;
use repro_engine::diag::{exit, Error, Result};
use repro_engine::exec::{self, resolve_keys, Agreement, Trust};
use repro_engine::project_root;
use repro_engine::store::{hash_file, is_hash, Record, Store};
use std::path::PathBuf;

pub fn verify(cli: &Cli) -> Result<i32> {
    let root = std::env::current_dir().map_err(|e| Error::io("cwd", e))?;
    let store = Store::open(&cache_dir(cli, &root))?;
    let objects = store.objects();
    let mut corrupt = 0;
    for (h, path) in &objects {
        match hash_file(path) {
            Ok(actual) if &actual == h => {}
            _ => {
                corrupt += 1;
                outln!("corrupt object   {h}");
                store.quarantine(h, "verify: content does not match its hash");
            }
        }
    }
    let records = store.record_files();
    let (mut unreadable, mut dangling) = (0, 0);
    for path in &records {
        let key = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")).unwrap_or("");
        let rec: Option<Record> = std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        match rec {
            Some(r) if r.key == key && is_hash(key) && r.outputs.values().all(|o| is_hash(&o.hash)) => {
                let missing: Vec<&str> = r
                    .outputs
                    .iter()
                    .filter(|(_, o)| !store.object_path(&o.hash).is_file())
                    .map(|(n, _)| n.as_str())
                    .collect();
                if !missing.is_empty() {
                    dangling += 1;
                    outln!("missing objects  {key} ({}: {})", r.instance, missing.join(", "));
                }
            }
            _ => {
                unreadable += 1;
                outln!("bad record       {}", path.display());
            }
        }
    }
    outln!(
        "verified {} objects and {} run records: {corrupt} corrupt objects (quarantined), {unreadable} unreadable or misfiled records, {dangling} records with missing objects",
        objects.len(),
        records.len()
    );
    if unreadable + dangling > 0 {
        outln!("no run trusts these records (the next run recomputes their stages); `repro gc` removes them");
    }
    Ok(if corrupt + unreadable + dangling > 0 { exit::STAGE_FAILED } else { exit::OK })
}

/// `repro verify --recompute`: re-runs cached instances (of one pipeline, or of every pipeline
/// of the project) into scratch directories outside the cache and compares their outputs with
/// the stored ones. Exits 1 when any output differs or a recomputation fails.
pub fn recompute(
    cli: &Cli,
    pipeline: &Option<PathBuf>,
    names: &[String],
    sample: Option<usize>,
    seed: u64,
    tolerance: f64,
) -> Result<i32> {
    let pipelines = match pipeline {
        Some(p) => vec![p.clone()],
        None => project_pipelines()?,
    };
    let root = pipelines.first().map(|p| project_root(p)).unwrap_or_else(|| PathBuf::from("."));
    let store = Store::open(&cache_dir(cli, &root))?;
    let mut plans = Vec::new();
    for p in &pipelines {
        let plan = load_plan(p, &[], &None)?;
        let all = vec![true; plan.instances.len()];
        let states = resolve_keys(&plan, &store, &root, &all, Trust::Verified);
        plans.push((plan, states));
    }
    for n in names {
        if !plans.iter().any(|(plan, _)| !plan.find(n).is_empty()) {
            return Err(match (pipeline, plans.first()) {
                (Some(_), Some((plan, _))) => plan.unknown(n, ""),
                _ => Error::Usage(format!("no pipeline of the project has a stage or instance `{n}`")),
            });
        }
    }
    // (plan, instance, key): every cached instance selected, each key once.
    let mut todo: Vec<(usize, usize, String)> = Vec::new();
    for (pi, (plan, states)) in plans.iter().enumerate() {
        for &i in &plan.order {
            let (Some(k), Some(_)) = (states[i].key(), &states[i].record) else { continue };
            if (names.is_empty() || plan.named(i, names)) && !todo.iter().any(|t| t.2 == k) {
                todo.push((pi, i, k));
            }
        }
    }
    if let Some(n) = sample {
        let rank = |k: &str| {
            let mut h = blake3::Hasher::new();
            h.update(&seed.to_le_bytes());
            h.update(k.as_bytes());
            h.finalize().to_hex().to_string()
        };
        todo.sort_by_cached_key(|t| rank(&t.2));
        todo.truncate(n);
    }
    if todo.is_empty() {
        outln!("nothing cached to recompute (run the pipeline first)");
        return Ok(exit::OK);
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (mut identical, mut within, mut different, mut failed) = (0, 0, 0, 0);
    for (pi, i, key) in &todo {
        let (plan, states) = &plans[*pi];
        let name = &plan.instances[*i].name;
        let scratch = std::env::temp_dir().join(format!("repro-verify-{}-{}", std::process::id(), &key[..16]));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| Error::io("cannot create a scratch directory", e))?;
        let t0 = std::time::Instant::now();
        let result =
            exec::recompute(plan, &store, &root, states, *i, exec::Scratch { dir: &scratch, threads, tolerance });
        let _ = std::fs::remove_dir_all(&scratch);
        let secs = t0.elapsed().as_secs_f64();
        match result {
            Err(e) => {
                failed += 1;
                outln!("FAILED      {name} ({}): {e}", plan.spec.name);
            }
            Ok(checks) => {
                let bad: Vec<String> = checks
                    .iter()
                    .filter_map(|c| match &c.agreement {
                        Agreement::Different(why) => Some(format!("{}: {why}", c.output)),
                        _ => None,
                    })
                    .collect();
                let largest = checks.iter().filter_map(|c| match c.agreement {
                    Agreement::Within(d) => Some(d),
                    _ => None,
                });
                let largest = largest.fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
                if !bad.is_empty() {
                    different += 1;
                    outln!("DIFFERENT   {name} ({}, key {}): {}", plan.spec.name, &key[..12], bad.join("; "));
                } else if let Some(d) = largest {
                    within += 1;
                    outln!("within tol  {name} ({secs:.2}s): largest |difference| {d:.3e} (tolerance {tolerance:e})");
                } else {
                    identical += 1;
                    outln!("identical   {name} ({secs:.2}s, {} outputs)", checks.len());
                }
            }
        }
    }
    outln!(
        "recomputed {} cached instances: {identical} byte-identical, {within} within tolerance, {different} different, {failed} failed; the cache was not changed",
        todo.len()
    );
    Ok(if different + failed > 0 { exit::STAGE_FAILED } else { exit::OK })
}
