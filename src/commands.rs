//! The subcommands, on top of spec → plan → store → exec.

use crate::cli::{Cli, Command, DagFormat, Select};
use crate::diag::{exit, Error, Result};
use crate::exec::{self, external_hashes, key_input, LocalExecutor, RunOptions, Status};
use crate::key::{self, KeyInput};
use crate::plan::{plan, Plan};
use crate::spec::{self, Overrides};
use crate::store::{ObjectRef, Record, Store};
use serde_json::{json, Value as J};
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The project root a pipeline belongs to: the parent of the `pipelines/` directory holding
/// it (searched upwards, so `pipelines/common/x.toml` works too), else the file's directory.
/// Relative data paths, `cache/` and `reports/` are resolved against it.
pub fn project_root(pipeline: &Path) -> PathBuf {
    let abs = std::path::absolute(pipeline).unwrap_or_else(|_| pipeline.to_path_buf());
    let mut dir = abs.parent();
    while let Some(d) = dir {
        if d.file_name().is_some_and(|n| n == "pipelines") {
            return d.parent().unwrap_or(d).to_path_buf();
        }
        dir = d.parent();
    }
    abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn cache_dir(cli: &Cli, root: &Path) -> PathBuf {
    cli.cache_dir.clone().unwrap_or_else(|| root.join("cache"))
}

fn load_plan(pipeline: &Path, sets: &[String], profile: &Option<String>) -> Result<Plan> {
    let ov = Overrides { sets: sets.to_vec(), profile: profile.clone() };
    plan(spec::load(pipeline, &ov)?)
}

fn load_sel(sel: &Select) -> Result<Plan> {
    load_plan(&sel.pipeline, &sel.sets, &sel.profile)
}

pub fn dispatch(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Run { sel, force, jobs, dry_run, keep_going, json } => {
            let plan = load_sel(sel)?;
            let root = project_root(&sel.pipeline);
            let store = Store::open(&cache_dir(cli, &root))?;
            store.clean_tmp();
            let opts = RunOptions {
                jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
                keep_going: *keep_going,
                dry_run: *dry_run,
                force: force.clone(),
                targets: sel.targets.clone(),
                bars: std::io::stderr().is_terminal() && !cli.quiet && !json,
                quiet: cli.quiet || *json,
            };
            let t0 = std::time::Instant::now();
            let (summary, records) = exec::run(&plan, &store, &root, &opts, &LocalExecutor)?;
            if !dry_run {
                publish(&plan, &store, &root, &records)?;
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&summary).unwrap());
            } else if *dry_run {
                for s in &summary.stages {
                    let what = match s.status {
                        Status::Cached => "cached",
                        Status::WouldRun => "would run",
                        _ => "would run (after upstream)",
                    };
                    println!("{what:>26}  {}", s.name);
                }
                let later = plan.instances.len() - summary.stages.len();
                if later > 0 {
                    println!("({later} more downstream instances would run once their inputs exist)");
                }
            } else if !cli.quiet {
                eprintln!(
                    "{}: {} ran, {} cached, {} failed in {:.2}s",
                    plan.spec.name,
                    summary.ran,
                    summary.cached,
                    summary.failed,
                    t0.elapsed().as_secs_f64()
                );
            }
            Ok(if summary.interrupted {
                exit::INTERRUPTED
            } else if summary.failed > 0 {
                exit::STAGE_FAILED
            } else {
                exit::OK
            })
        }
        Command::Status { sel, json } => {
            let plan = load_sel(sel)?;
            let root = project_root(&sel.pipeline);
            let store = Store::open(&cache_dir(cli, &root))?;
            let st = status(&plan, &store, &root, &sel.targets)?;
            if *json {
                let stages: Vec<J> = st
                    .iter()
                    .map(|s| json!({"name": s.name, "kind": s.kind, "key": s.key, "status": if s.fresh {"fresh"} else {"stale"}, "reasons": s.reasons}))
                    .collect();
                let fresh = st.iter().filter(|s| s.fresh).count();
                let doc =
                    json!({"pipeline": plan.spec.name, "stages": stages, "fresh": fresh, "stale": st.len() - fresh});
                println!("{}", serde_json::to_string_pretty(&doc).unwrap());
            } else {
                for s in &st {
                    let tag = if s.fresh { "fresh" } else { "stale" };
                    if s.reasons.is_empty() {
                        println!("{tag}  {}", s.name);
                    } else {
                        // A table over hundreds of instances would print each stale input:
                        // the text shows the first few (`--json` has them all).
                        const SHOWN: usize = 4;
                        let mut text = s.reasons.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
                        if s.reasons.len() > SHOWN {
                            text.push_str(&format!("; and {} more (all of them with --json)", s.reasons.len() - SHOWN));
                        }
                        println!("{tag}  {}: {text}", s.name);
                    }
                }
            }
            Ok(exit::OK)
        }
        Command::Dag { sel, format } => {
            let plan = load_sel(sel)?;
            let selected = exec::select(&plan, &sel.targets)?;
            print!("{}", dag(&plan, &selected, *format));
            Ok(exit::OK)
        }
        Command::Explain { target, what, sets, profile } => explain(cli, target, what, sets, profile),
        Command::Stages { kind, json } => stages(kind.as_deref(), *json),
        Command::Gc { keep, dry_run } => gc(cli, keep, *dry_run),
        Command::Verify => verify(cli),
    }
}

pub struct StageStatus {
    pub name: String,
    pub kind: String,
    pub key: Option<String>,
    pub fresh: bool,
    pub reasons: Vec<String>,
}

/// Fresh or stale for every selected instance, with field-by-field reasons against the
/// last key this pipeline ran for that instance.
pub fn status(plan: &Plan, store: &Store, root: &Path, targets: &[String]) -> Result<Vec<StageStatus>> {
    let selected = exec::select(plan, targets)?;
    let index = store.read_index(&plan.spec.path);
    let mut outputs: Vec<Option<BTreeMap<String, ObjectRef>>> = vec![None; plan.instances.len()];
    let mut out = Vec::new();
    for &i in &plan.order {
        if !selected[i] {
            continue;
        }
        let inst = &plan.instances[i];
        let mut reasons = Vec::new();
        let ext = external_hashes(store, root, inst).unwrap_or_else(|e| {
            reasons.push(e);
            vec![]
        });
        let ki = key_input(plan, i, &outputs, &ext);
        let (key, fresh) = match &ki {
            Some(ki) if reasons.is_empty() => {
                let k = ki.key();
                let rec = store.lookup(&k);
                let fresh = rec.is_some();
                if let Some(r) = rec {
                    outputs[i] = Some(r.outputs);
                } else {
                    match index.get(&inst.name) {
                        None => reasons.push("new".into()),
                        Some(old) if old == ki => reasons.push("output missing from cache".into()),
                        Some(old) => reasons.extend(key::diff(old, ki)),
                    }
                }
                (Some(k), fresh)
            }
            _ => {
                let stale: Vec<String> = inst
                    .inputs
                    .values()
                    .flatten()
                    .filter(|b| outputs[b.instance].is_none())
                    .map(|b| format!("input {} is stale", plan.instances[b.instance].name))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                reasons.extend(stale);
                (None, false)
            }
        };
        out.push(StageStatus { name: inst.name.clone(), kind: inst.kind.kind().into(), key, fresh, reasons });
    }
    Ok(out)
}

fn dag(plan: &Plan, selected: &[bool], format: DagFormat) -> String {
    let mut s = String::new();
    let id = |i: usize| format!("n{i}");
    match format {
        DagFormat::Text => {
            for &i in &plan.order {
                if !selected[i] {
                    continue;
                }
                let inst = &plan.instances[i];
                let ins: Vec<String> = inst
                    .inputs
                    .iter()
                    .flat_map(|(slot, bs)| bs.iter().map(move |b| (slot, b)))
                    .map(|(slot, b)| format!("{slot}={}.{}", plan.instances[b.instance].name, b.output))
                    .collect();
                s.push_str(&format!("{} ({})", inst.name, inst.kind.kind()));
                if !ins.is_empty() {
                    s.push_str(&format!(" <- {}", ins.join(", ")));
                }
                s.push('\n');
            }
        }
        DagFormat::Dot => {
            s.push_str("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n");
            for &i in &plan.order {
                if selected[i] {
                    s.push_str(&format!(
                        "  {} [label=\"{}\\n{}\"];\n",
                        id(i),
                        plan.instances[i].name,
                        plan.instances[i].kind.kind()
                    ));
                }
            }
            for &i in &plan.order {
                for b in plan.instances[i].inputs.values().flatten() {
                    if selected[i] {
                        s.push_str(&format!("  {} -> {} [label=\"{}\"];\n", id(b.instance), id(i), b.output));
                    }
                }
            }
            s.push_str("}\n");
        }
        DagFormat::Mermaid => {
            s.push_str("flowchart LR\n");
            for &i in &plan.order {
                if selected[i] {
                    s.push_str(&format!(
                        "  {}[\"{}<br/>{}\"]\n",
                        id(i),
                        plan.instances[i].name,
                        plan.instances[i].kind.kind()
                    ));
                }
            }
            for &i in &plan.order {
                for b in plan.instances[i].inputs.values().flatten() {
                    if selected[i] {
                        s.push_str(&format!("  {} -->|{}| {}\n", id(b.instance), b.output, id(i)));
                    }
                }
            }
        }
    }
    s
}

/// Upstream instances of `i`, nearest first.
fn upstream(plan: &Plan, i: usize) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let mut queue = std::collections::VecDeque::from([i]);
    while let Some(c) = queue.pop_front() {
        for b in plan.instances[c].inputs.values().flatten() {
            if seen.insert(b.instance) {
                order.push(b.instance);
                queue.push_back(b.instance);
            }
        }
    }
    order
}

/// Copies report outputs to `reports/<report>.<output>` and writes their provenance sidecar.
fn publish(plan: &Plan, store: &Store, root: &Path, records: &[Option<Record>]) -> Result<()> {
    for (i, inst) in plan.instances.iter().enumerate() {
        let (Some(report), Some(rec)) = (&inst.report, &records[i]) else { continue };
        let dir = root.join("reports");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let mut files = BTreeMap::new();
        for (out, obj) in &rec.outputs {
            let dest = dir.join(format!("{report}.{out}"));
            let same = std::fs::read(&dest).ok().is_some_and(|b| blake3::hash(&b).to_hex().as_str() == obj.hash);
            if !same {
                let bytes = std::fs::read(store.object_path(&obj.hash))
                    .map_err(|e| Error::io("cannot read report object", e))?;
                store.write_atomic(&dest, &bytes)?;
            }
            files.insert(format!("{report}.{out}"), obj.hash.clone());
        }
        let chain: Vec<J> = upstream(plan, i)
            .into_iter()
            .filter_map(|u| {
                let r = records[u].as_ref()?;
                // No wall time here: the sidecar says what produced each number, and stays
                // byte-identical when a rerun on the same kind of machine reproduces it
                // (timings are in the run records: `repro explain`).
                Some(json!({"instance": plan.instances[u].name, "kind": r.key_input.kind, "key": r.key, "params": r.key_input.params, "environment": r.environment}))
            })
            .collect();
        // Cells: tabulate's JSON output lists, per cell, the indices of the inputs behind it.
        let mut cells = Vec::new();
        if let Some(obj) = rec.outputs.get("json") {
            let table: J = std::fs::read(store.object_path(&obj.hash))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(J::Null);
            let binds = inst.inputs.get("inputs").cloned().unwrap_or_default();
            for c in table.get("cells").and_then(J::as_array).into_iter().flatten() {
                let srcs: Vec<J> = c
                    .get("inputs")
                    .and_then(J::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|ix| ix.as_u64())
                    .filter_map(|ix| binds.get(ix as usize))
                    .map(|b| {
                        let u = b.instance;
                        let key = records[u].as_ref().map(|r| r.key.clone());
                        let upstream_keys: Vec<J> = upstream(plan, u)
                            .into_iter()
                            .map(|x| json!({"instance": plan.instances[x].name, "key": records[x].as_ref().map(|r| r.key.clone())}))
                            .collect();
                        json!({"instance": plan.instances[u].name, "output": b.output, "key": key, "upstream": upstream_keys})
                    })
                    .collect();
                cells.push(json!({"cell": c.get("cell"), "row": c.get("row"), "column": c.get("column"), "value": c.get("value"), "sources": srcs}));
            }
        }
        let prov = json!({
            "pipeline": plan.spec.name,
            "pipeline_file": plan.spec.path.display().to_string(),
            "pipeline_hash": plan.spec.hash(),
            "overrides": plan.spec.overrides,
            "tool": {"name": "repro", "version": env!("CARGO_PKG_VERSION")},
            "stage": {"instance": inst.name, "kind": rec.key_input.kind, "key": rec.key},
            "files": files,
            "cells": cells,
            "upstream": chain,
        });
        let mut text = serde_json::to_string_pretty(&prov).unwrap();
        text.push('\n');
        let dest = dir.join(format!("{report}.provenance.json"));
        if std::fs::read_to_string(&dest).ok().as_deref() != Some(text.as_str()) {
            store.write_atomic(&dest, text.as_bytes())?;
        }
    }
    Ok(())
}

fn explain(cli: &Cli, target: &Path, what: &str, sets: &[String], profile: &Option<String>) -> Result<i32> {
    let is_report =
        target.components().any(|c| c.as_os_str() == "reports") && target.extension().is_some_and(|e| e != "toml");
    if is_report {
        let stem = target.file_name().and_then(|n| n.to_str()).and_then(|n| n.split('.').next()).unwrap_or("");
        let prov_path = target.with_file_name(format!("{stem}.provenance.json"));
        let prov: J =
            std::fs::read(&prov_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| {
                Error::Usage(format!("no provenance sidecar {} (run the pipeline first)", prov_path.display()))
            })?;
        let cell = prov["cells"].as_array().into_iter().flatten().find(|c| c["cell"].as_str() == Some(what));
        let Some(cell) = cell else {
            let names: Vec<&str> =
                prov["cells"].as_array().into_iter().flatten().filter_map(|c| c["cell"].as_str()).collect();
            return Err(Error::Usage(format!("no cell `{what}` in {}; cells: {}", target.display(), names.join(" "))));
        };
        println!("cell {what} of {}: {} = {}", target.display(), cell["row"].as_str().unwrap_or(""), cell["value"]);
        println!("  column: {}", cell["column"].as_str().unwrap_or(""));
        println!(
            "pipeline {} ({}), hash {}",
            prov["pipeline"].as_str().unwrap_or(""),
            prov["pipeline_file"].as_str().unwrap_or(""),
            prov["pipeline_hash"].as_str().unwrap_or("")
        );
        println!(
            "table    {} key {}",
            prov["stage"]["instance"].as_str().unwrap_or(""),
            prov["stage"]["key"].as_str().unwrap_or("")
        );
        for s in cell["sources"].as_array().into_iter().flatten() {
            println!(
                "from     {} ({}) key {}",
                s["instance"].as_str().unwrap_or(""),
                s["output"].as_str().unwrap_or(""),
                s["key"].as_str().unwrap_or("?")
            );
            for u in s["upstream"].as_array().into_iter().flatten() {
                println!("  <- {} key {}", u["instance"].as_str().unwrap_or(""), u["key"].as_str().unwrap_or("?"));
            }
        }
        return Ok(exit::OK);
    }
    let plan = load_plan(target, sets, profile)?;
    let root = project_root(target);
    let store = Store::open(&cache_dir(cli, &root))?;
    let hits: Vec<usize> = (0..plan.instances.len())
        .filter(|&i| plan.instances[i].name == what || plan.instances[i].stage == what)
        .collect();
    if hits.is_empty() {
        return Err(Error::Usage(format!("no stage or instance `{what}` in {}", target.display())));
    }
    // Resolve keys along the order, from records.
    let mut outputs: Vec<Option<BTreeMap<String, ObjectRef>>> = vec![None; plan.instances.len()];
    let mut kis: Vec<Option<KeyInput>> = vec![None; plan.instances.len()];
    for &i in &plan.order {
        let ext = external_hashes(&store, &root, &plan.instances[i]).unwrap_or_default();
        if let Some(ki) = key_input(&plan, i, &outputs, &ext) {
            if let Some(r) = store.lookup(&ki.key()) {
                outputs[i] = Some(r.outputs);
            }
            kis[i] = Some(ki);
        }
    }
    for i in hits {
        let inst = &plan.instances[i];
        println!("{} ({} v{})", inst.name, inst.kind.kind(), inst.kind.version());
        match &kis[i] {
            Some(ki) => {
                println!("  key      {}", ki.key());
                println!("  seed     {}", ki.seed);
                println!("  params   {}", key::canonical_json(&ki.params));
                for (slot, ins) in &ki.inputs {
                    for (b, k) in inst.inputs[slot].iter().zip(ins) {
                        println!("  input    {slot} = {}.{} ({})", plan.instances[b.instance].name, b.output, k.hash);
                    }
                }
                for (p, h) in inst.external.iter().zip(&ki.external) {
                    println!("  file     {p} ({h})");
                }
                match store.read_record(&ki.key()) {
                    Some(r) => {
                        println!(
                            "  record   ran in {:.3}s by repro {} ({})",
                            r.seconds,
                            r.tool_version,
                            r.environment.get("cpu_features").cloned().unwrap_or_default()
                        );
                        for (o, obj) in &r.outputs {
                            println!("  output   {o} = {} ({} bytes)", obj.hash, obj.size);
                        }
                        if !r.metrics.is_empty() {
                            println!("  metrics  {}", serde_json::to_string(&r.metrics).unwrap());
                        }
                    }
                    None => println!("  record   none (stale: run the pipeline)"),
                }
            }
            None => println!("  key      unknown until upstream runs"),
        }
        let up = upstream(&plan, i);
        if !up.is_empty() {
            println!("  upstream:");
            for u in up {
                let k = kis[u].as_ref().map(KeyInput::key).unwrap_or_else(|| "?".into());
                println!("    {} ({}) {}", plan.instances[u].name, plan.instances[u].kind.kind(), k);
            }
        }
    }
    Ok(exit::OK)
}

fn stages(kind: Option<&str>, as_json: bool) -> Result<i32> {
    let list: Vec<_> = repro_stages::registry().iter().filter(|s| kind.is_none_or(|k| s.kind() == k)).collect();
    if list.is_empty() {
        return Err(Error::Usage(format!("no stage kind `{}`", kind.unwrap_or(""))));
    }
    if as_json {
        let v: Vec<J> = list
            .iter()
            .map(|s| {
                let inputs: Vec<J> = s.inputs().iter().map(|i| json!({"name": i.name, "doc": i.doc, "required": i.required, "many": i.many})).collect();
                json!({"kind": s.kind(), "version": s.version(), "doc": s.doc(), "inputs": inputs, "params": s.params_doc()})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return Ok(exit::OK);
    }
    for s in list {
        println!("{} (v{})\n  {}", s.kind(), s.version(), s.doc());
        for i in s.inputs() {
            let card = match (i.required, i.many) {
                (_, true) => "many",
                (true, false) => "one",
                (false, false) => "optional",
            };
            println!("  input  {:<20} {card}: {}", i.name, i.doc);
        }
        let defaults: serde_json::Map<String, J> =
            s.params_doc().into_iter().map(|p| (p.name.to_string(), p.default)).collect();
        println!("  output {} (with default params)", s.outputs(&J::Object(defaults)).join(", "));
        for p in s.params_doc() {
            println!(
                "  param  {:<20} {:<16} = {:<12} {}",
                p.name,
                p.ty.replace(' ', ""),
                p.default,
                p.doc.replace('\n', " ")
            );
        }
        println!();
    }
    Ok(exit::OK)
}

fn gc(cli: &Cli, keep: &[PathBuf], dry_run: bool) -> Result<i32> {
    let keep: Vec<PathBuf> = if keep.is_empty() {
        let dir = PathBuf::from("pipelines");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::Usage(format!("no --keep given and cannot list pipelines/: {e}")))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        v.sort();
        v
    } else {
        keep.to_vec()
    };
    let root = keep.first().map(|p| project_root(p)).unwrap_or_else(|| PathBuf::from("."));
    let store = Store::open(&cache_dir(cli, &root))?;
    let mut live_keys = BTreeSet::new();
    let mut live_objects = BTreeSet::new();
    for p in &keep {
        let plan = load_plan(p, &[], &None)?;
        let mut outputs: Vec<Option<BTreeMap<String, ObjectRef>>> = vec![None; plan.instances.len()];
        for &i in &plan.order {
            let ext = external_hashes(&store, &root, &plan.instances[i]).unwrap_or_default();
            if let Some(ki) = key_input(&plan, i, &outputs, &ext) {
                let k = ki.key();
                if let Some(r) = store.read_record(&k) {
                    live_objects.extend(r.outputs.values().map(|o| o.hash.clone()));
                    outputs[i] = Some(r.outputs);
                    live_keys.insert(k);
                }
            }
        }
    }
    let (mut n_rec, mut n_obj, mut bytes) = (0usize, 0usize, 0u64);
    for k in store.record_keys() {
        if !live_keys.contains(&k) {
            n_rec += 1;
            if !dry_run {
                store.remove_record(&k);
            }
        }
    }
    for (h, path) in store.objects() {
        if !live_objects.contains(&h) {
            n_obj += 1;
            bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if !dry_run {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let verb = if dry_run { "would free" } else { "freed" };
    println!(
        "{verb} {bytes} bytes: {n_obj} objects, {n_rec} run records (kept {} records of {} pipelines)",
        live_keys.len(),
        keep.len()
    );
    Ok(exit::OK)
}

fn verify(cli: &Cli) -> Result<i32> {
    let root = std::env::current_dir().map_err(|e| Error::io("cwd", e))?;
    let store = Store::open(&cache_dir(cli, &root))?;
    let objects = store.objects();
    let mut bad = 0;
    for (h, path) in &objects {
        match crate::store::hash_file(path) {
            Ok(actual) if &actual == h => {}
            _ => {
                bad += 1;
                println!("corrupt  {h}");
                store.quarantine(h, "verify: content does not match its hash");
            }
        }
    }
    println!("verified {} objects: {} corrupt (quarantined; the next run recomputes them)", objects.len(), bad);
    Ok(if bad > 0 { exit::STAGE_FAILED } else { exit::OK })
}
