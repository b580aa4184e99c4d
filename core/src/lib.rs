//! `repro-core`: what the engine and the stage library share, and nothing heavy.
//!
//! The engine (`repro-engine`) sees stages only through the object-safe [`Stage`] trait; the
//! stage library (`repro-stages`) implements it, usually through [`TypedStage`] with params
//! declared by [`stage_params!`]. Neither side depends on the other: the binary hands the
//! engine the library's registry (a `&[&dyn Stage]`), so the engine builds and is tested with
//! fake stages, without polars, gemm or plotters.

#![warn(missing_docs)]

pub mod params;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub use params::{check_memory, closest, ParamDoc, ParamError, ParamSpec};

/// One input slot of a stage kind: a key in the stage's table whose value is a reference to
/// other stages' outputs rather than a param.
#[derive(Debug, Clone, Copy)]
pub struct InputSlot {
    /// The key of the stage table that names it.
    pub name: &'static str,
    /// What it is for, as `repro stages` prints it.
    pub doc: &'static str,
    /// A pipeline that leaves a required slot unbound is rejected at plan time.
    pub required: bool,
    /// Takes any number of artifacts (`inputs = "eval[*]"`); otherwise exactly one.
    pub many: bool,
}

impl InputSlot {
    /// A required slot taking exactly one artifact.
    pub const fn one(name: &'static str, doc: &'static str) -> Self {
        Self { name, doc, required: true, many: false }
    }
    /// A slot that may be left unbound.
    pub const fn optional(name: &'static str, doc: &'static str) -> Self {
        Self { name, doc, required: false, many: false }
    }
    /// A required slot taking any number of artifacts.
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
    /// The param (or input slot) at fault, if any.
    pub param: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl StageError {
    /// A failure not tied to one param.
    pub fn msg(message: impl Into<String>) -> Self {
        Self { param: None, message: message.into() }
    }
    /// A failure of one param or input slot.
    pub fn param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { param: Some(param.into()), message: message.into() }
    }
    /// The run was interrupted (Ctrl-C).
    pub fn cancelled() -> Self {
        Self::msg("cancelled")
    }
}

impl From<std::io::Error> for StageError {
    fn from(e: std::io::Error) -> Self {
        Self::msg(format!("i/o error: {e}"))
    }
}

/// The result of a stage's work.
pub type StageResult<T> = Result<T, StageError>;

/// Adds the path to an I/O error, which `From<io::Error>` alone cannot know.
pub trait WithPath<T> {
    /// `Err(e)` becomes "cannot <what> <path>: e".
    fn with_path(self, what: &str, path: &Path) -> StageResult<T>;
}

impl<T> WithPath<T> for std::io::Result<T> {
    fn with_path(self, what: &str, path: &Path) -> StageResult<T> {
        self.map_err(|e| StageError::msg(format!("cannot {what} {}: {e}", path.display())))
    }
}

/// Progress reported by a running stage (e.g. one epoch done).
#[derive(Debug, Clone)]
pub struct Progress {
    /// Units done so far.
    pub done: u64,
    /// Units in all; 0 when unknown.
    pub total: u64,
    /// A short line shown beside the bar.
    pub message: String,
}

/// Everything a running stage may use. Stages write their outputs, one file per declared
/// output name, into `out_dir`; the engine hashes and stores them.
pub struct Ctx<'a> {
    /// Instance name, for messages.
    pub instance: &'a str,
    /// Input slot → the artifacts bound to it.
    pub inputs: BTreeMap<String, Vec<InputArtifact>>,
    /// The directory the stage writes its outputs into (one file per declared output).
    pub out_dir: &'a Path,
    /// Seed of this instance: derived from the pipeline seed and the instance's axis values;
    /// 0 for a stage that declares no randomness ([`Stage::uses_seed`]), so it cannot read a
    /// seed its cache key does not hold.
    pub seed: u64,
    /// Seed derived from the pipeline seed alone (shared by all instances of a matrix stage);
    /// 0 for a stage that declares no randomness.
    pub base_seed: u64,
    /// Thread budget granted by the scheduler.
    pub threads: usize,
    /// Directory relative paths in params are resolved against (the project root).
    pub root: &'a Path,
    /// Set when the run is interrupted; long stages poll it through [`Ctx::check_cancel`].
    pub cancel: &'a AtomicBool,
    /// Receives progress reports ([`Ctx::report`]).
    pub progress: &'a (dyn Fn(Progress) + Sync),
}

impl Ctx<'_> {
    /// The one artifact bound to a single-valued slot.
    pub fn input(&self, slot: &str) -> StageResult<&InputArtifact> {
        self.inputs.get(slot).and_then(|v| v.first()).ok_or_else(|| StageError::param(slot, "input is not bound"))
    }
    /// The artifact bound to an optional slot, if any.
    pub fn optional_input(&self, slot: &str) -> Option<&InputArtifact> {
        self.inputs.get(slot).and_then(|v| v.first())
    }
    /// Where to write the output `name`.
    pub fn output(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }
    /// `Err(cancelled)` once the run is interrupted.
    pub fn check_cancel(&self) -> StageResult<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(StageError::cancelled())
        } else {
            Ok(())
        }
    }
    /// Reports progress to the engine's display.
    pub fn report(&self, done: u64, total: u64, message: impl Into<String>) {
        (self.progress)(Progress { done, total, message: message.into() })
    }
    /// A path from a param: relative paths are taken from the project root.
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

/// What planning needs of an instance's params.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The canonical params.
    pub params: Value,
    /// [`Stage::outputs`].
    pub outputs: Vec<String>,
    /// [`Stage::external_files`].
    pub external: Vec<String>,
}

/// The object-safe face of a stage kind, all the engine knows of it.
pub trait Stage: Send + Sync {
    /// The name pipelines use in `kind = "…"`.
    fn kind(&self) -> &'static str;
    /// Implementation version: part of the cache key; bumped when output bytes could change.
    fn version(&self) -> u32;
    /// One paragraph for `repro stages`.
    fn doc(&self) -> &'static str;
    /// Every param with its type, default and doc.
    fn params_doc(&self) -> Vec<ParamDoc>;
    /// The input slots.
    fn inputs(&self) -> &'static [InputSlot];
    /// Validates raw params (unknown keys, types, ranges) and returns them canonical: every
    /// field present, defaults filled in, so spelling out a default changes no key.
    fn canonicalize(&self, raw: &serde_json::Map<String, Value>) -> Result<Value, ParamError>;
    /// [`Stage::canonicalize`], [`Stage::outputs`] and [`Stage::external_files`] at once, from
    /// one parse of the params (what planning asks of every instance).
    fn plan(&self, raw: &serde_json::Map<String, Value>) -> Result<Planned, ParamError> {
        let params = self.canonicalize(raw)?;
        Ok(Planned { outputs: self.outputs(&params), external: self.external_files(&params), params })
    }
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
    /// Computes the outputs into `ctx.out_dir`.
    fn run(&self, params: &Value, ctx: &Ctx) -> StageResult<Metrics>;
    /// For a stage that builds a table: which input artifacts each cell of its finished outputs
    /// was computed from, so the engine can write provenance without parsing the stage's files.
    /// `params` are its canonical params, `outputs` maps output names to the stored files.
    /// `None` for every other stage.
    fn cell_sources(&self, _params: &Value, _outputs: &BTreeMap<String, PathBuf>) -> Option<CellSources> {
        None
    }
}

/// A directory a stage may create in its `out_dir` for logs (a child process's stdout and
/// stderr): the executor keeps its files with the run, beside the store's other logs of the
/// key (`repro log`), whether the stage succeeded or failed. It is never an output.
pub const LOG_DIR: &str = ".logs";

/// One cell of a table a stage wrote, and where its value came from.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSource {
    /// The cell's name, e.g. `R2C3`.
    pub cell: Value,
    /// The row label.
    pub row: Value,
    /// The column label.
    pub column: Value,
    /// The value shown.
    pub value: Value,
    /// How many values it aggregates (0: nothing measured).
    pub n: usize,
    /// The axis values that select it (row and column).
    pub axes: BTreeMap<String, Value>,
    /// Positions, within the artifacts bound to [`CellSources::slot`], of the inputs behind it.
    pub inputs: Vec<usize>,
}

/// The cells of a table and the input slot their positions refer to.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSources {
    /// The input slot the positions index.
    pub slot: &'static str,
    /// One entry per cell.
    pub cells: Vec<CellSource>,
}

/// The convenient way to write a stage: typed params, constants for the rest.
pub trait TypedStage: Send + Sync + 'static {
    /// The params struct ([`stage_params!`]).
    type Params: ParamSpec;
    /// See [`Stage::kind`].
    const KIND: &'static str;
    /// See [`Stage::version`].
    const VERSION: u32;
    /// See [`Stage::doc`].
    const DOC: &'static str;
    /// See [`Stage::inputs`].
    const INPUTS: &'static [InputSlot];
    /// See [`Stage::uses_seed`].
    const USES_SEED: bool = true;
    /// See [`Stage::uses_input_axes`].
    const USES_INPUT_AXES: bool = false;
    /// Checks beyond the types (ranges, consistency), at plan time.
    fn validate(_p: &Self::Params) -> Result<(), ParamError> {
        Ok(())
    }
    /// See [`Stage::outputs`]; default: one output, `out`.
    fn outputs(_p: &Self::Params) -> Vec<String> {
        vec!["out".to_string()]
    }
    /// See [`Stage::external_files`].
    fn external_files(_p: &Self::Params) -> Vec<String> {
        Vec::new()
    }
    /// See [`Stage::threads`].
    fn threads(_p: &Self::Params) -> usize {
        1
    }
    /// See [`Stage::run`].
    fn run(&self, p: &Self::Params, ctx: &Ctx) -> StageResult<Metrics>;
    /// See [`Stage::cell_sources`].
    fn cell_sources(_p: &Self::Params, _outputs: &BTreeMap<String, PathBuf>) -> Option<CellSources> {
        None
    }
}

fn typed<P: ParamSpec>(v: &Value) -> P {
    // Canonical params were produced by serializing a `P`, so this cannot fail.
    P::deserialize(v).expect("canonical params deserialize")
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
    fn plan(&self, raw: &serde_json::Map<String, Value>) -> Result<Planned, ParamError> {
        let p: T::Params = params::parse(raw)?;
        T::validate(&p)?;
        let params = serde_json::to_value(&p).expect("params serialize");
        Ok(Planned { params, outputs: T::outputs(&p), external: T::external_files(&p) })
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
    fn cell_sources(&self, params: &Value, outputs: &BTreeMap<String, PathBuf>) -> Option<CellSources> {
        T::cell_sources(&typed(params), outputs)
    }
}

/// The stage kinds a binary offers, in the order `repro stages` lists them.
pub type Registry = &'static [&'static dyn Stage];

/// The kind named `kind` in a registry.
pub fn lookup(registry: Registry, kind: &str) -> Option<&'static dyn Stage> {
    registry.iter().copied().find(|s| s.kind() == kind)
}

/// Writes a JSON value to a file with sorted keys and a trailing newline (stable bytes).
pub fn write_json(path: &Path, v: &impl serde::Serialize) -> StageResult<()> {
    let mut s = serde_json::to_string_pretty(v).map_err(|e| StageError::msg(e.to_string()))?;
    s.push('\n');
    std::fs::write(path, s).with_path("write", path)?;
    Ok(())
}

/// Reads a JSON file, naming it when it is not valid JSON.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> StageResult<T> {
    let bytes = std::fs::read(path).with_path("read", path)?;
    serde_json::from_slice(&bytes).map_err(|e| StageError::msg(format!("{}: invalid JSON: {e}", path.display())))
}
