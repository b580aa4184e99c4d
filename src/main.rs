//! `repro`: regenerate the result tables of machine-learning papers from declarative,
//! content-addressed pipelines.
//!
//! The binary is thin: [`cli`] is the grammar, [`commands`] one file per subcommand on top of
//! `repro-engine`, and the stage kinds come from `repro-stages`. `main` parses, dispatches and
//! maps the error to the exit code (0 ok, 1 a stage failed, 2 invalid pipeline or usage,
//! 130 interrupted).

mod cli;
mod commands;
mod config;

use clap::Parser;
use cli::Cli;
use repro_engine::diag::{exit, render, Error};
use std::io::IsTerminal;

/// mimalloc instead of glibc's malloc: planning and settling a large matrix is hundreds of
/// thousands of small allocations from two threads (#19).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
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
        .with_ansi(color())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let _ = ctrlc::set_handler(|| {
        if repro_engine::exec::CANCEL.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(exit::INTERRUPTED);
        }
        eprintln!("interrupted: letting running stages stop (Ctrl-C again to abort)");
    });
    match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(Error::Invalid(problems, sources)) => {
            eprint!("{}", render(&problems, &sources, color()));
            exit::INVALID
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Colour on standard error: `CLICOLOR_FORCE` (not "0") forces it, `NO_COLOR` (any value)
/// turns it off, else only on a terminal (https://no-color.org, https://bixense.com/clicolors).
fn color() -> bool {
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
