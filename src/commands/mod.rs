//! The subcommands, one file each, on top of `repro-engine`: spec → plan → keys → store → exec.

/// `println!` to standard output that ends the process quietly (exit 0) when the reader has
/// gone away (`repro stages --json | head -1`) instead of panicking on the broken pipe.
macro_rules! outln {
    () => { $crate::commands::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::commands::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` with the same broken-pipe handling as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::commands::write_out(format_args!($($arg)*)) };
}

mod compare;
mod dag;
mod exec_instance;
mod explain;
mod gc;
mod init;
mod log;
mod report;
mod run;
mod show;
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
        Command::Run { sel, force, jobs, dry_run, keep_going, json, executor } => run::run(
            cli,
            sel,
            &run::Flags {
                force,
                jobs: *jobs,
                dry_run: *dry_run,
                keep_going: *keep_going,
                json: *json,
                executor: executor.as_deref(),
            },
        ),
        Command::Log { sel, stage } => log::log(cli, sel, stage),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(*shell, &mut Cli::command(), "repro", &mut std::io::stdout());
            Ok(repro_engine::diag::exit::OK)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| repro_engine::diag::Error::io("cannot write the man page", e))?;
            Ok(repro_engine::diag::exit::OK)
        }
        Command::Init { dir } => init::init(dir),
        Command::Show { pipeline, what, ov, out, format } => {
            show::show(cli, pipeline, what, &ov.sets, &ov.profile, out, format)
        }
        Command::ExecInstance { pipeline, ov, instance, key, threads, force } => {
            exec_instance::exec_instance(cli, pipeline, &ov.sets, &ov.profile, instance, key, *threads, *force)
        }
        Command::Status { sel, json } => status::status(cli, sel, *json),
        Command::Dag { sel, format, stages } => dag::dag(sel, *format, *stages),
        Command::Explain { target, what, ov } => explain::explain(cli, target, what, &ov.sets, &ov.profile),
        Command::Stages { kind, json } => stages::stages(kind.as_deref(), *json),
        Command::Gc { keep, dry_run } => gc::gc(cli, keep, *dry_run),
        Command::Verify { recompute, instances, sample, seed, pipeline, tolerance } => match recompute {
            false => verify::verify(cli),
            true => verify::recompute(cli, pipeline, instances, *sample, *seed, *tolerance),
        },
        Command::Report { pipeline, ov } => report::report(cli, pipeline, &ov.sets, &ov.profile),
        Command::Compare { pipeline, ov, changed } => compare::compare(pipeline, &ov.sets, &ov.profile, *changed),
    }
}

/// The cache directory: `--cache-dir` / `REPRO_CACHE_DIR`, else `cache/` in the project root.
/// Absolute, so that stages running in their own work directory (`command`) see the same
/// paths as the caller.
fn cache_dir(cli: &Cli, root: &Path) -> PathBuf {
    let dir = cli.cache_dir.clone().unwrap_or_else(|| root.join("cache"));
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Loads and plans a pipeline with the stage kinds of `repro-stages`.
fn load_plan(pipeline: &Path, sets: &[String], profile: &Option<String>) -> Result<Plan> {
    let ov = Overrides { sets: sets.to_vec(), profile: profile.clone() };
    plan(spec::load(pipeline, &ov)?, repro_stages::registry())
}

fn load_sel(sel: &Select) -> Result<Plan> {
    load_plan(&sel.pipeline, &sel.sets, &sel.profile)
}

/// Writes to standard output; a closed pipe ends the process with exit 0, any other write
/// error with exit 1.
pub fn write_out(args: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Every `pipelines/*.toml` of the project in the current directory, sorted.
fn project_pipelines() -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("pipelines")
        .map_err(|e| repro_engine::diag::Error::Usage(format!("no pipeline given and cannot list pipelines/: {e}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    Ok(v)
}
