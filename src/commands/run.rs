//! `repro run`: compute what is stale, reuse what is cached, publish reports.

use super::{cache_dir, load_sel};
use crate::cli::{Cli, Select};
use repro_engine::diag::{exit, Result};
use repro_engine::exec::{self, LocalExecutor, RunOptions, Status, Summary};
use repro_engine::plan::Plan;
use repro_engine::project_root;
use repro_engine::provenance::{self, publish};
use repro_engine::store::Store;
use std::io::IsTerminal;

/// The flags of `run` beyond the selection.
pub struct Flags<'a> {
    pub force: &'a [String],
    pub jobs: Option<usize>,
    pub dry_run: bool,
    pub keep_going: bool,
    pub json: bool,
}

pub fn run(cli: &Cli, sel: &Select, f: &Flags) -> Result<i32> {
    let plan = load_sel(sel)?;
    let root = project_root(&sel.pipeline);
    let store = Store::open(&cache_dir(cli, &root))?;
    store.clean_tmp();
    let opts = RunOptions {
        jobs: f.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
        keep_going: f.keep_going,
        dry_run: f.dry_run,
        force: f.force.to_vec(),
        targets: sel.targets.clone(),
        bars: std::io::stderr().is_terminal() && !cli.quiet && !f.json,
        quiet: cli.quiet || f.json,
    };
    let t0 = std::time::Instant::now();
    let (summary, records) = exec::run(&plan, &store, &root, &opts, &LocalExecutor)?;
    if !f.dry_run {
        let variant = provenance::variant(&plan.spec)?;
        publish(&plan, &store, &root, &records, variant.as_ref())?;
        if let (Some(v), false) = (&variant, cli.quiet || f.json) {
            eprintln!("reports of this variant are published as reports/<report>@{}.*", v.name);
        }
    }
    if f.json {
        outln!("{}", serde_json::to_string_pretty(&summary).unwrap());
    } else if f.dry_run {
        print_dry_run(&plan, &summary);
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

fn print_dry_run(plan: &Plan, summary: &Summary) {
    for s in &summary.stages {
        let what = match s.status {
            Status::Cached => "cached",
            Status::WouldRun => "would run",
            _ => "would run (after upstream)",
        };
        outln!("{what:>26}  {}", s.name);
    }
    let later = plan.instances.len() - summary.stages.len();
    if later > 0 {
        outln!("({later} more downstream instances would run once their inputs exist)");
    }
}
