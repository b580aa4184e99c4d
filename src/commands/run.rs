//! `repro run`: compute what is stale, reuse what is cached, publish reports.

use super::{cache_dir, load_sel};
use crate::cli::{Cli, Select};
use crate::config::{ExecutorKind, Settings};
use repro_engine::diag::Error;
use repro_engine::diag::{exit, Result};
use repro_engine::exec::slurm::{self, SlurmConfig, SlurmExecutor};
use repro_engine::exec::{self, Executor, LocalExecutor, RunOptions, Status, Summary};
use repro_engine::plan::Plan;
use repro_engine::project_root;
use repro_engine::provenance::{self, publish};
use repro_engine::store::Store;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

/// The flags of `run` beyond the selection.
pub struct Flags<'a> {
    pub force: &'a [String],
    pub jobs: Option<usize>,
    pub dry_run: bool,
    pub keep_going: bool,
    pub json: bool,
    pub executor: Option<&'a str>,
}

pub fn run(cli: &Cli, sel: &Select, f: &Flags) -> Result<i32> {
    let plan = load_sel(sel)?;
    let root = project_root(&sel.pipeline);
    let settings = crate::config::settings(&root, sel.profile.as_deref(), f.executor)?;
    let cache = cache_dir(cli, &root);
    let store = Store::open(&cache)?;
    store.clean_tmp();
    let slurm = match settings.executor {
        ExecutorKind::Local => None,
        ExecutorKind::Slurm => {
            // The nodes and this process meet in the cache: its locks must work across hosts.
            store.check_locks()?;
            Some(SlurmExecutor::new(slurm_config(&sel.pipeline, sel, &root, &cache, &settings)?))
        }
    };
    let local_jobs = || std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let opts = RunOptions {
        jobs: match &slurm {
            Some(_) => f.jobs.or(settings.slurm.max_jobs).unwrap_or(100),
            None => f.jobs.unwrap_or_else(local_jobs),
        },
        keep_going: f.keep_going,
        dry_run: f.dry_run,
        force: f.force.to_vec(),
        targets: sel.targets.clone(),
        bars: std::io::stderr().is_terminal() && !cli.quiet && !f.json,
        quiet: cli.quiet || f.json,
        all_records: f.json,
    };
    // A data file that is not there fails before anything runs, at the place that named it.
    let missing = plan.missing_files(&root, &plan.select(&sel.targets)?);
    if !missing.is_empty() {
        return Err(Error::Invalid(missing, plan.spec.sources.clone()));
    }
    let t0 = std::time::Instant::now();
    let local = LocalExecutor { stage_cpus: settings.local.cpus };
    let executor: &dyn Executor = match &slurm {
        Some(s) => s,
        None => &local,
    };
    let (summary, records) = exec::run(&plan, &store, &root, &opts, executor)?;
    if let (Some(s), true) = (&slurm, summary.interrupted) {
        slurm::cancel_all(s);
    }
    let mut reports = Vec::new();
    if !f.dry_run {
        let variant = provenance::variant(&plan.spec)?;
        reports = publish(&plan, &store, &root, &records, variant.as_ref())?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if f.json {
        let mut doc = serde_json::to_value(&summary).unwrap();
        // Per instance, what its stage returned besides files (metrics, verdicts).
        let metrics: std::collections::BTreeMap<&str, &serde_json::Map<String, serde_json::Value>> = plan
            .instances
            .iter()
            .zip(&records)
            .filter_map(|(i, r)| Some((i.name.as_str(), &r.as_ref()?.metrics)))
            .collect();
        for s in doc["stages"].as_array_mut().unwrap() {
            let m = s["name"].as_str().and_then(|n| metrics.get(n)).filter(|m| !m.is_empty());
            if let Some(m) = m {
                s["metrics"] = serde_json::Value::Object((*m).clone());
            }
        }
        doc["skipped"] = summary.stages.iter().filter(|s| s.status == Status::Skipped).count().into();
        doc["seconds"] = elapsed.into();
        doc["reports"] = reports.into();
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap());
    } else if f.dry_run {
        print_dry_run(&plan, &summary);
        print_estimate(&plan, &store, &summary);
    } else if !cli.quiet {
        closing(&plan, &summary, &reports, elapsed);
    }
    // The process ends here: handing the plan's and the records' memory back to the allocator
    // one node at a time is a measurable share of a large no-op run (#19); the OS takes it
    // back at exit in one go.
    std::mem::forget(records);
    std::mem::forget(plan);
    Ok(if summary.interrupted {
        exit::INTERRUPTED
    } else if summary.failed > 0 {
        exit::STAGE_FAILED
    } else {
        exit::OK
    })
}

fn print_dry_run(plan: &Plan, summary: &Summary) {
    for s in &summary.stages {
        let what = match s.status {
            Status::Cached => "cached",
            Status::WouldRun => "would run",
            Status::Failed => "cannot run",
            _ => "would run (after upstream)",
        };
        outln!("{what:>26}  {}", s.name);
    }
    let later = plan.instances.len() - summary.stages.len();
    if later > 0 {
        outln!("({later} more downstream instances would run once their inputs exist)");
    }
}

/// The Slurm executor's settings for this run: this binary, the pipeline and the cache as
/// absolute paths (the nodes see the same shared filesystem), the overrides passed on.
fn slurm_config(pipeline: &Path, sel: &Select, root: &Path, cache: &Path, s: &Settings) -> Result<SlurmConfig> {
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(format!("cannot resolve {}", p.display()), e));
    let poll = s.slurm.poll_seconds.unwrap_or(2.0);
    if !(poll.is_finite() && poll > 0.0) {
        return Err(Error::Usage(format!("repro.toml: slurm.poll_seconds must be positive, got {poll}")));
    }
    Ok(SlurmConfig {
        repro: std::env::current_exe().map_err(|e| Error::io("cannot find the repro binary", e))?,
        pipeline: abs(pipeline)?,
        sets: sel.sets.clone(),
        profile: sel.profile.clone(),
        root: abs(root)?,
        cache_dir: abs(cache)?,
        partition: s.slurm.partition.clone(),
        default_cpus: s.slurm.cpus.unwrap_or(2).max(1),
        poll: Duration::from_secs_f64(poll),
        retries: s.slurm.retries.unwrap_or(0),
        sbatch_args: s.slurm.sbatch_args.clone().unwrap_or_default(),
    })
}

/// What the instances that would run cost when they ran before with the same params (an
/// earlier run of the same instance whose inputs have changed since): CPU-hours from their
/// run records. Instances never run at these params have no estimate, and say so.
fn print_estimate(plan: &Plan, store: &Store, summary: &Summary) {
    let cached: std::collections::BTreeSet<&str> =
        summary.stages.iter().filter(|s| s.status == Status::Cached).map(|s| s.name.as_str()).collect();
    let index = store.read_index(&plan.spec.path);
    let (mut n, mut known, mut cpu, mut wall) = (0usize, 0usize, 0.0f64, 0.0f64);
    for inst in plan.instances.iter().filter(|i| !cached.contains(i.name.as_str())) {
        n += 1;
        let rec = index
            .get(&inst.name)
            .and_then(|ki| store.read_record(&ki.key()))
            .filter(|r| r.key_input.params == inst.params);
        if let Some(r) = rec {
            let threads: f64 = r.environment.get("threads").and_then(|t| t.parse().ok()).unwrap_or(1.0);
            known += 1;
            cpu += r.seconds * threads;
            wall += r.seconds;
        }
    }
    if n == 0 {
        return;
    }
    if known == 0 {
        outln!("{n} instances would run; none ran before at these params, so there is no duration estimate");
    } else {
        outln!(
            "{n} instances would run; {known} ran before at the same params: {:.2} CPU-hours ({:.2} h of wall time one after another); {} have no recorded duration",
            cpu / 3600.0,
            wall / 3600.0,
            n - known
        );
    }
}

/// The end of a run: the counts, the slowest stages that ran, the reports written, and what a
/// failure left undone.
fn closing(plan: &Plan, summary: &Summary, reports: &[String], elapsed: f64) {
    let skipped = summary.stages.iter().filter(|s| s.status == Status::Skipped).count();
    let never = plan.instances.len() - summary.stages.len();
    eprintln!(
        "{}: {} ran, {} cached, {} failed, {} skipped in {:.2}s",
        plan.spec.name,
        summary.ran,
        summary.cached,
        summary.failed,
        skipped + never,
        elapsed
    );
    let mut ran: Vec<&exec::Outcome> = summary.stages.iter().filter(|s| s.status == Status::Ran).collect();
    ran.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    if ran.len() > 1 && ran[0].seconds >= 1.0 {
        let top: Vec<String> = ran.iter().take(3).map(|s| format!("{} {:.1}s", s.name, s.seconds)).collect();
        eprintln!("  slowest: {}", top.join(", "));
    }
    if summary.failed > 0 && skipped + never > 0 {
        let names: Vec<&str> =
            summary.stages.iter().filter(|s| s.status == Status::Skipped).map(|s| s.name.as_str()).take(8).collect();
        let more = (skipped + never).saturating_sub(names.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        eprintln!(
            "  not run because something failed first: {}{more} (--keep-going runs the independent ones)",
            names.join(", ")
        );
    }
    // Reports grouped by name: reports/x.{md,tex,…}.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in reports.iter().filter(|r| !r.ends_with(".provenance.json")) {
        let (stem, ext) = r.rsplit_once('.').unwrap_or((r, ""));
        match groups.iter_mut().find(|(s, _)| s == stem) {
            Some((_, exts)) => exts.push(ext.to_string()),
            None => groups.push((stem.to_string(), vec![ext.to_string()])),
        }
    }
    for (stem, exts) in groups {
        eprintln!("  report  {stem}.{{{}}}", exts.join(","));
    }
}
