//! The command line: parse, dispatch, map errors to exit codes (0 ok, 1 a stage failed,
//! 2 invalid pipeline or usage, 130 interrupted).

use crate::commands;
use crate::diag::{exit, render, Error};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "repro",
    version,
    about = "Regenerate the result tables of ML papers from declarative, content-addressed pipelines"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Cache directory (default: `cache/` in the project root beside `pipelines/`).
    #[arg(long, global = true, env = "REPRO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Select {
    /// Pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Override a var: NAME=VALUE (TOML syntax, or a bare string).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Apply a named set of overrides from [profiles.NAME].
    #[arg(long)]
    pub profile: Option<String>,
    /// Only this stage or instance and what it needs (repeatable).
    #[arg(long = "target", value_name = "STAGE")]
    pub targets: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline: compute what is stale, reuse what is cached, publish reports.
    Run {
        #[command(flatten)]
        sel: Select,
        /// Recompute this stage or instance even if cached (repeatable).
        #[arg(long, value_name = "STAGE")]
        force: Vec<String>,
        /// Threads in total (default: the number of cores).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Show what would run, run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Let independent branches finish after a failure.
        #[arg(long)]
        keep_going: bool,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Fresh or stale for every stage instance, and why.
    Status {
        #[command(flatten)]
        sel: Select,
        #[arg(long)]
        json: bool,
    },
    /// Print the DAG of stage instances.
    Dag {
        #[command(flatten)]
        sel: Select,
        #[arg(long, value_enum, default_value = "text")]
        format: DagFormat,
    },
    /// Key, canonical params, inputs, upstream chain and run record of a stage; or, given a
    /// report and a cell (`repro explain reports/dgex_table3.md R2C3`), the chain behind it.
    Explain {
        /// Pipeline file, or a report under reports/.
        target: PathBuf,
        /// Stage or instance name; or a cell `R<row>C<col>` of a report (1-based, header excluded).
        what: String,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        sets: Vec<String>,
        #[arg(long)]
        profile: Option<String>,
    },
    /// Every stage kind with its inputs, outputs and params.
    Stages {
        /// Only this kind.
        kind: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove cache entries no kept pipeline's current keys reach.
    Gc {
        /// Pipelines to keep (default: every pipelines/*.toml of the project).
        #[arg(long)]
        keep: Vec<PathBuf>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-hash every object; report and quarantine corrupt ones.
    Verify,
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::INVALID } else { exit::OK };
            let _ = e.print();
            return code;
        }
    };
    let filter = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let env_filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let _ = ctrlc::set_handler(|| {
        if crate::exec::CANCEL.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(exit::INTERRUPTED);
        }
        eprintln!("interrupted: letting running stages stop (Ctrl-C again to abort)");
    });
    match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(Error::Invalid(problems, sources)) => {
            eprint!("{}", render(&problems, &sources, std::io::stderr().is_terminal()));
            exit::INVALID
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
