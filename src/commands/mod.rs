//! The subcommands, one file each, on top of `repro-engine`: spec → plan → keys → store → exec.

mod dag;
mod explain;
mod gc;
mod run;
mod stages;
mod status;
mod verify;

use crate::cli::{Cli, Command, Select};
use repro_engine::diag::Result;
use repro_engine::plan::{plan, Plan};
use repro_engine::spec::{self, Overrides};
use std::path::{Path, PathBuf};

/// Runs the parsed command; the exit code, or the error `main` maps to one.
pub fn dispatch(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Run { sel, force, jobs, dry_run, keep_going, json } => run::run(
            cli,
            sel,
            &run::Flags { force, jobs: *jobs, dry_run: *dry_run, keep_going: *keep_going, json: *json },
        ),
        Command::Status { sel, json } => status::status(cli, sel, *json),
        Command::Dag { sel, format } => dag::dag(sel, *format),
        Command::Explain { target, what, sets, profile } => explain::explain(cli, target, what, sets, profile),
        Command::Stages { kind, json } => stages::stages(kind.as_deref(), *json),
        Command::Gc { keep, dry_run } => gc::gc(cli, keep, *dry_run),
        Command::Verify => verify::verify(cli),
    }
}

/// The cache directory: `--cache-dir` / `REPRO_CACHE_DIR`, else `cache/` in the project root.
fn cache_dir(cli: &Cli, root: &Path) -> PathBuf {
    cli.cache_dir.clone().unwrap_or_else(|| root.join("cache"))
}

/// Loads and plans a pipeline with the stage kinds of `repro-stages`.
fn load_plan(pipeline: &Path, sets: &[String], profile: &Option<String>) -> Result<Plan> {
    let ov = Overrides { sets: sets.to_vec(), profile: profile.clone() };
    plan(spec::load(pipeline, &ov)?, repro_stages::registry())
}

fn load_sel(sel: &Select) -> Result<Plan> {
    load_plan(&sel.pipeline, &sel.sets, &sel.profile)
}
