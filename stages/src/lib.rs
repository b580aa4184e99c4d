//! `repro-stages`: the stage library of repro.
//!
//! Each stage kind lives in one module: its params (declared with [`repro_core::stage_params!`],
//! so the docs `repro stages` prints come from the same source as the code), its `VERSION`
//! (bumped whenever the bytes it writes could change), its docs and its tests. The stage
//! modules import the [`repro_core`] face they implement, never this crate's root; adding a
//! kind is one module plus one line in [`registry`]. The engine receives [`registry`] from
//! the binary.
//!
//! Stages exchange files. Tabular data travels as the dataset artifact of [`dataset`]; models as
//! safetensors; metrics, histories and tables as JSON, markdown, LaTeX, CSV and SVG. Code more
//! than one stage uses lives in its own module: [`metrics`] (targets and quick metrics),
//! [`values`] (how axis values show and sort), [`nn`] (networks), [`rng`].

pub mod dataset;
pub mod metrics;
pub mod nn;
pub mod rng;
pub mod values;

mod command;
mod dedupe;
mod evaluate;
pub mod gd;
pub mod load;
mod plot;
pub mod pretrain;
pub mod quantile_curve;
pub mod quantile_normalize;
pub mod rbf;
mod split;
pub mod standardize;
mod subsample;
mod summarize;
mod synthetic_geo;
mod synthetic_linear;
pub mod tabulate;
mod target_split;
pub mod train;

pub use repro_core;
use repro_core::{Registry, Stage};

/// Every stage kind, in the order `repro stages` lists them.
pub fn registry() -> Registry {
    static REGISTRY: &[&dyn Stage] = &[
        &load::Load,
        &synthetic_geo::SyntheticGeo,
        &synthetic_linear::SyntheticLinear,
        &quantile_normalize::QuantileNormalize,
        &dedupe::Dedupe,
        &standardize::Standardize,
        &split::Split,
        &target_split::TargetSplit,
        &subsample::Subsample,
        &train::Train,
        &gd::Gd,
        &rbf::Rbf,
        &pretrain::Pretrain,
        &evaluate::Evaluate,
        &summarize::Summarize,
        &quantile_curve::QuantileCurve,
        &tabulate::Tabulate,
        &plot::Plot,
        &command::Command,
    ];
    REGISTRY
}

/// The stage kind named `kind`.
pub fn lookup(kind: &str) -> Option<&'static dyn Stage> {
    repro_core::lookup(registry(), kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_kinds_are_unique_and_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for s in registry() {
            assert!(seen.insert(s.kind()), "duplicate kind {}", s.kind());
            assert!(!s.doc().is_empty(), "{} has no doc", s.kind());
            for p in s.params_doc() {
                assert!(!p.doc.is_empty(), "{}.{} has no doc", s.kind(), p.name);
            }
        }
    }
}
