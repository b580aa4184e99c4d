//! `repro-engine`: from pipeline files to cached results, knowing stages only through
//! [`repro_core::Stage`].
//!
//! [`spec`] reads pipeline files, [`plan`] expands them into a DAG of stage instances in named
//! passes, [`key`] fingerprints each instance, [`store`] keeps outputs by content, [`exec`]
//! schedules and runs them, [`provenance`] records what produced each published number. The
//! stage kinds come from the caller (a [`repro_core::Registry`]), so this crate builds without
//! the stage library's heavy dependencies and its tests use fake stages.

#![warn(missing_docs)]

pub mod diag;
pub mod exec;
pub mod key;
pub mod lookup;
pub mod names;
pub mod plan;
pub mod provenance;
pub mod spec;
pub mod store;

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
