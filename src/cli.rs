//! The command line's grammar (clap): every subcommand with its arguments and help. What each
//! one does is in `commands/`, one file per subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "repro",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("REPRO_GIT"), ")"),
    long_version = concat!(
        env!("CARGO_PKG_VERSION"),
        "\ncommit:   ", env!("REPRO_GIT"),
        "\ntarget:   ", env!("REPRO_TARGET"),
        "\nprofile:  ", env!("REPRO_PROFILE"),
        "\nfeatures: none (the CPU kernels pick AVX-512 / AVX2 / FMA at run time)",
        "\nexecutors: local, slurm"
    ),
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

/// `--set` and `--profile`: which variant of the pipeline a command is about.
#[derive(Args, Debug, Clone)]
pub struct Variant {
    /// Override a var: NAME=VALUE (TOML syntax, or a bare string).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Apply a named set of overrides from [profiles.NAME].
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
    Json,
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
        /// Where stages run: `local` (threads of this process) or `slurm` (one sbatch job per
        /// instance; the cache must be on a filesystem the nodes share). Default: repro.toml,
        /// else REPRO_EXECUTOR, else local.
        #[arg(long, value_name = "local|slurm")]
        executor: Option<String>,
    },
    /// The logs kept for a stage's instances (a Slurm job's stdout and stderr).
    Log {
        #[command(flatten)]
        sel: Select,
        /// Stage or instance name.
        stage: String,
    },
    /// One cached artifact: a dataset as CSV (or Parquet with -o x.parquet), JSON
    /// pretty-printed, text as is; anything else named with its path.
    Show {
        /// Pipeline file.
        pipeline: PathBuf,
        /// An instance, optionally with its output: `split.train`, `fit[model=mlp,rep=1].history`.
        what: String,
        #[command(flatten)]
        ov: Variant,
        /// Write to this file instead of standard output (the extension picks the format).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// csv or parquet (datasets).
        #[arg(long)]
        format: Option<String>,
    },
    /// Shell completions on stdout: `repro completions bash > /etc/bash_completion.d/repro`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff) on stdout: `repro man > repro.1 && man ./repro.1`.
    Man,
    /// Start a project here: pipelines/ with a commented example, reports/, a .gitignore for
    /// the cache, and a repro.toml with the executor settings commented out.
    Init {
        /// The directory (default: the current one).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run one planned instance into the cache (what a Slurm job runs; not for direct use).
    #[command(hide = true)]
    ExecInstance {
        /// Pipeline file.
        pipeline: PathBuf,
        #[command(flatten)]
        ov: Variant,
        /// The instance's name.
        #[arg(long)]
        instance: String,
        /// The key the submitter computed (refused if the node plans another).
        #[arg(long)]
        key: String,
        /// Threads for the stage.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Recompute even if cached.
        #[arg(long)]
        force: bool,
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
        /// One node per stage (with its instance count) instead of one per instance.
        #[arg(long)]
        stages: bool,
    },
    /// Key, canonical params, inputs, upstream chain and run record of a stage; or, given a
    /// report and a cell (`repro explain reports/dgex_table3.md R2C3`), the chain behind it.
    Explain {
        /// Pipeline file, or a report under reports/.
        target: PathBuf,
        /// Stage or instance name; or a cell `R<row>C<col>` of a report (1-based, header excluded).
        what: String,
        #[command(flatten)]
        ov: Variant,
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
    /// Re-hash every object; report and quarantine corrupt ones. With --recompute, re-run
    /// cached instances into a scratch area and compare with what the cache holds.
    Verify {
        /// Re-run cached instances (bypassing the cache) and compare their outputs with the
        /// stored ones: byte-identical, equal within float tolerance, or different (exit 1).
        #[arg(long)]
        recompute: bool,
        /// With --recompute: the pipeline whose cached instances to check (default: every
        /// record in the cache).
        #[arg(long, value_name = "PIPELINE")]
        pipeline: Option<PathBuf>,
        /// With --recompute: only these instances or stages (names as in the pipeline).
        #[arg(value_name = "STAGE", requires = "recompute")]
        instances: Vec<String>,
        /// With --recompute: N instances drawn at random (from --seed) instead of all.
        #[arg(long, value_name = "N", requires = "recompute")]
        sample: Option<usize>,
        /// Seed of the --sample draw (the same seed draws the same instances).
        #[arg(long, default_value_t = 0, requires = "sample")]
        seed: u64,
        /// Relative tolerance for numbers in text outputs (JSON, CSV, tables) whose bytes
        /// differ: |a − b| ≤ tol · max(1, |a|, |b|). Binary outputs must be identical.
        #[arg(long, default_value_t = 1e-9, requires = "recompute")]
        tolerance: f64,
    },
    /// One self-contained HTML file, reports/<pipeline>.html: every table with the paper's
    /// numbers and the verdicts, the figures, the stages and the environment; click a cell
    /// for its lineage. Reads the published reports (run the pipeline first).
    Report {
        /// Pipeline file.
        pipeline: PathBuf,
        #[command(flatten)]
        ov: Variant,
    },
    /// A variant's tables beside the default ones: every cell with the change of its mean,
    /// every claim's verdict in both (the variant is the --set / --profile given).
    Compare {
        /// Pipeline file.
        pipeline: PathBuf,
        #[command(flatten)]
        ov: Variant,
        /// Only cells and claims that differ.
        #[arg(long)]
        changed: bool,
    },
}
