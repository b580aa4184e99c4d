//! `repro`: regenerate the result tables of machine-learning papers from declarative,
//! content-addressed pipelines.
//!
//! The engine: [`spec`] reads pipeline files, [`plan`] expands them into a DAG of stage
//! instances, [`key`] fingerprints each instance, [`store`] keeps outputs by content,
//! [`exec`] schedules and runs, [`commands`] implements the subcommands, and [`cli`] maps the
//! command line onto them. The engine knows stages only through `repro_stages::Stage`.

pub mod cli;
pub mod commands;
pub mod diag;
pub mod exec;
pub mod key;
pub mod plan;
pub mod spec;
pub mod store;
