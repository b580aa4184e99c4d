//! `repro-stages`: the stage library of repro.
//!
//! The engine (the `repro` binary) sees stages only through the object-safe [`Stage`] trait and
//! the [`registry`]. A stage kind lives in one module: its `Params` type (declared with
//! [`stage_params!`], so the docs `repro stages` prints come from the same source as the code),
//! its `VERSION` (bumped whenever the bytes it writes could change), its docs and its tests.
//! Adding a kind is one module plus one line in [`registry`].
//!
//! Stages exchange files. Tabular data travels as the dataset artifact of [`dataset`]; models as
//! safetensors; metrics, histories and tables as JSON, markdown, LaTeX, CSV and SVG.

pub mod dataset;
pub mod nn;
pub mod params;
pub mod rng;

mod command;
mod dedupe;
mod evaluate;
pub mod gd;
mod load;
mod plot;
pub mod quantile_normalize;
mod split;
pub mod standardize;
mod subsample;
mod synthetic_geo;
mod synthetic_linear;
mod tabulate;
mod target_split;
pub mod train;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub use params::{ParamDoc, ParamError, ParamSpec};

/// One input slot of a stage kind: a key in the stage's table whose value is a reference to
/// other stages' outputs rather than a param.
#[derive(Debug, Clone, Copy)]
pub struct InputSlot {
    pub name: &'static str,
    pub doc: &'static str,
    pub required: bool,
    /// Takes any number of artifacts (`inputs = "eval[*]"`); otherwise exactly one.
    pub many: bool,
}

impl InputSlot {
    pub const fn one(name: &'static str, doc: &'static str) -> Self {
        Self { name, doc, required: true, many: false }
    }
    pub const fn optional(name: &'static str, doc: &'static str) -> Self {
        Self { name, doc, required: false, many: false }
    }
    pub const fn many(name: &'static str, doc: &'static str) -> Self {
        Self { name, doc, required: true, many: true }
    }
}

/// An artifact handed to a running stage.
#[derive(Debug, Clone)]
pub struct InputArtifact {
    /// Read-only file in the store.
    pub path: PathBuf,
    /// blake3 of the file's bytes.
    pub hash: String,
    /// Matrix axis values of the producing instance (tabulate lays tables out by these).
    pub axes: BTreeMap<String, Value>,
    /// Producing instance, e.g. `eval[hidden=500,rep=1]`; for messages only, never for bytes.
    pub producer: String,
}

/// A stage's failure: a message, and the param it concerns when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", param.as_ref().map(|p| format!("param `{p}`: ")).unwrap_or_default())]
pub struct StageError {
    pub param: Option<String>,
    pub message: String,
}

impl StageError {
    pub fn msg(message: impl Into<String>) -> Self {
        Self { param: None, message: message.into() }
    }
    pub fn param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { param: Some(param.into()), message: message.into() }
    }
    pub fn cancelled() -> Self {
        Self::msg("cancelled")
    }
}

impl From<std::io::Error> for StageError {
    fn from(e: std::io::Error) -> Self {
        Self::msg(format!("i/o error: {e}"))
    }
}

pub type StageResult<T> = Result<T, StageError>;

/// Progress reported by a running stage (e.g. one epoch done).
#[derive(Debug, Clone)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub message: String,
}

/// Everything a running stage may use. Stages write their outputs, one file per declared
/// output name, into `out_dir`; the engine hashes and stores them.
pub struct Ctx<'a> {
    /// Instance name, for messages.
    pub instance: &'a str,
    pub inputs: BTreeMap<String, Vec<InputArtifact>>,
    pub out_dir: &'a Path,
    /// Seed of this instance: derived from the pipeline seed and the instance's axis values.
    pub seed: u64,
    /// Seed derived from the pipeline seed alone (shared by all instances of a matrix stage).
    pub base_seed: u64,
    /// Thread budget granted by the scheduler.
    pub threads: usize,
    /// Directory relative paths in params are resolved against (the project root).
    pub root: &'a Path,
    pub cancel: &'a AtomicBool,
    pub progress: &'a (dyn Fn(Progress) + Sync),
}

impl Ctx<'_> {
    /// The one artifact bound to a single-valued slot.
    pub fn input(&self, slot: &str) -> StageResult<&InputArtifact> {
        self.inputs.get(slot).and_then(|v| v.first()).ok_or_else(|| StageError::param(slot, "input is not bound"))
    }
    pub fn optional_input(&self, slot: &str) -> Option<&InputArtifact> {
        self.inputs.get(slot).and_then(|v| v.first())
    }
    pub fn output(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }
    pub fn check_cancel(&self) -> StageResult<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(StageError::cancelled())
        } else {
            Ok(())
        }
    }
    pub fn report(&self, done: u64, total: u64, message: impl Into<String>) {
        (self.progress)(Progress { done, total, message: message.into() })
    }
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }
}

/// What a finished stage returns besides its files: metrics kept in the run record.
pub type Metrics = serde_json::Map<String, Value>;

/// The object-safe face of a stage kind, all the engine knows of it.
pub trait Stage: Send + Sync {
    fn kind(&self) -> &'static str;
    /// Implementation version: part of the cache key; bumped when output bytes could change.
    fn version(&self) -> u32;
    fn doc(&self) -> &'static str;
    fn params_doc(&self) -> Vec<ParamDoc>;
    fn inputs(&self) -> &'static [InputSlot];
    /// Validates raw params (unknown keys, types, ranges) and returns them canonical: every
    /// field present, defaults filled in, so spelling out a default changes no key.
    fn canonicalize(&self, raw: &serde_json::Map<String, Value>) -> Result<Value, ParamError>;
    /// Names of the files this stage writes, given canonical params.
    fn outputs(&self, params: &Value) -> Vec<String>;
    /// Files outside the store the stage reads (hashed by content into the key).
    fn external_files(&self, params: &Value) -> Vec<String>;
    /// Threads the stage can use (the scheduler grants at most `--jobs`).
    fn threads(&self, params: &Value) -> usize;
    /// Whether the stage draws random numbers. A stage that does not gets seed 0 in its key,
    /// so instances that differ only in their matrix axes share one cached result.
    fn uses_seed(&self) -> bool;
    /// Whether the stage reads the axis values of its inputs (tabulate, plot). Only then do
    /// they join its key, so a stage that ignores them is shared across differently shaped
    /// matrices.
    fn uses_input_axes(&self) -> bool;
    fn run(&self, params: &Value, ctx: &Ctx) -> StageResult<Metrics>;
}

/// The convenient way to write a stage: typed params, constants for the rest.
pub trait TypedStage: Send + Sync + 'static {
    type Params: ParamSpec;
    const KIND: &'static str;
    const VERSION: u32;
    const DOC: &'static str;
    const INPUTS: &'static [InputSlot];
    /// See [`Stage::uses_seed`].
    const USES_SEED: bool = true;
    /// See [`Stage::uses_input_axes`].
    const USES_INPUT_AXES: bool = false;
    fn validate(_p: &Self::Params) -> Result<(), ParamError> {
        Ok(())
    }
    fn outputs(_p: &Self::Params) -> Vec<String> {
        vec!["out".to_string()]
    }
    fn external_files(_p: &Self::Params) -> Vec<String> {
        Vec::new()
    }
    fn threads(_p: &Self::Params) -> usize {
        1
    }
    fn run(&self, p: &Self::Params, ctx: &Ctx) -> StageResult<Metrics>;
}

fn typed<P: ParamSpec>(v: &Value) -> P {
    // Canonical params were produced by serializing a `P`, so this cannot fail.
    serde_json::from_value(v.clone()).expect("canonical params deserialize")
}

impl<T: TypedStage> Stage for T {
    fn kind(&self) -> &'static str {
        T::KIND
    }
    fn version(&self) -> u32 {
        T::VERSION
    }
    fn doc(&self) -> &'static str {
        T::DOC
    }
    fn params_doc(&self) -> Vec<ParamDoc> {
        T::Params::docs()
    }
    fn inputs(&self) -> &'static [InputSlot] {
        T::INPUTS
    }
    fn canonicalize(&self, raw: &serde_json::Map<String, Value>) -> Result<Value, ParamError> {
        let p: T::Params = params::parse(raw)?;
        T::validate(&p)?;
        Ok(serde_json::to_value(&p).expect("params serialize"))
    }
    fn outputs(&self, params: &Value) -> Vec<String> {
        T::outputs(&typed(params))
    }
    fn external_files(&self, params: &Value) -> Vec<String> {
        T::external_files(&typed(params))
    }
    fn threads(&self, params: &Value) -> usize {
        T::threads(&typed(params))
    }
    fn uses_seed(&self) -> bool {
        T::USES_SEED
    }
    fn uses_input_axes(&self) -> bool {
        T::USES_INPUT_AXES
    }
    fn run(&self, params: &Value, ctx: &Ctx) -> StageResult<Metrics> {
        TypedStage::run(self, &typed(params), ctx)
    }
}

/// Every stage kind, in the order `repro stages` lists them.
pub fn registry() -> &'static [&'static dyn Stage] {
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
        &evaluate::Evaluate,
        &tabulate::Tabulate,
        &plot::Plot,
        &command::Command,
    ];
    REGISTRY
}

pub fn lookup(kind: &str) -> Option<&'static dyn Stage> {
    registry().iter().copied().find(|s| s.kind() == kind)
}

/// Writes a JSON value to a file with sorted keys and a trailing newline (stable bytes).
pub fn write_json(path: &Path, v: &impl serde::Serialize) -> StageResult<()> {
    let mut s = serde_json::to_string_pretty(v).map_err(|e| StageError::msg(e.to_string()))?;
    s.push('\n');
    std::fs::write(path, s)?;
    Ok(())
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> StageResult<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| StageError::msg(format!("{}: invalid JSON: {e}", path.display())))
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
