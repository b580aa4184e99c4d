//! The scheduler and the executors.
//!
//! The scheduler ([`run`], in `schedule.rs`) walks the planned DAG: an instance whose inputs
//! are all known gets its key; a key with an intact run record is *cached* and its outputs flow
//! on; otherwise the instance is handed to an [`Executor`] when enough of the `--jobs` thread
//! budget is free (a stage declares how many threads it can use). The scheduler never runs a
//! stage itself: the [`LocalExecutor`] runs it on a thread of this process; a cluster executor
//! would submit the same job to another host sharing the cache directory (the store's per-key
//! locks and atomic renames already make that safe).
//!
//! Keys use the *content* hashes of inputs, so a rerun stage whose outputs come out
//! byte-identical leaves everything downstream cached (early cutoff).

mod local;
mod recompute;
mod schedule;
pub mod slurm;

pub use local::{environment, LocalExecutor};
pub use recompute::{agree, recompute, Agreement, OutputCheck, Scratch};
pub use schedule::run;

use crate::key::{InputKey, KeyInput, CACHE_FORMAT};
use crate::plan::{Instance, Plan};
use crate::store::{ObjectRef, Record, Store};
use indicatif::ProgressBar;
use repro_core::InputArtifact;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Set by Ctrl-C; stages see it through their context.
pub static CANCEL: AtomicBool = AtomicBool::new(false);

/// How `run` behaves.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Threads in total.
    pub jobs: usize,
    /// Let independent branches finish after a failure.
    pub keep_going: bool,
    /// Decide what would run; run nothing.
    pub dry_run: bool,
    /// Stages or instances to recompute even if cached.
    pub force: Vec<String>,
    /// Only these stages or instances and what they need.
    pub targets: Vec<String>,
    /// Draw progress bars (a terminal).
    pub bars: bool,
    /// No log lines.
    pub quiet: bool,
    /// Return the run record of every settled instance (`--json` prints their metrics).
    /// Otherwise a record the lookup index answered for is read only when a report's
    /// provenance needs it.
    pub all_records: bool,
}

/// What happened to one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Computed in this run.
    Ran,
    /// Its record was in the cache.
    Cached,
    /// Its stage failed (or an external file could not be read).
    Failed,
    /// Not attempted: something upstream failed, or the run stopped.
    Skipped,
    /// `--dry-run`: would run.
    WouldRun,
}

/// One instance's line in the run summary.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Instance name.
    pub name: String,
    /// Stage kind.
    pub kind: String,
    /// Its key, when known.
    pub key: Option<String>,
    /// What happened.
    pub status: Status,
    /// Wall time of the computation (0 when cached).
    pub seconds: f64,
    /// The failure, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Outcome {
    fn new(inst: &Instance, key: Option<String>, status: Status, seconds: f64, error: Option<String>) -> Self {
        Outcome { name: inst.name.clone(), kind: inst.stage.kind().into(), key, status, seconds, error }
    }
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The pipeline's name.
    pub pipeline: String,
    /// Every settled instance, in plan order.
    pub stages: Vec<Outcome>,
    /// How many ran.
    pub ran: usize,
    /// How many were cached.
    pub cached: usize,
    /// How many failed.
    pub failed: usize,
    /// Whether Ctrl-C stopped it.
    #[serde(skip)]
    pub interrupted: bool,
}

/// The key input of an instance given the outputs of its producers, if all are known.
pub fn key_input(
    plan: &Plan,
    i: usize,
    outputs: &[Option<BTreeMap<String, ObjectRef>>],
    external: &[String],
) -> Option<KeyInput> {
    let inst = &plan.instances[i];
    let mut inputs = BTreeMap::new();
    for (slot, binds) in &inst.inputs {
        let mut v = Vec::new();
        for b in binds {
            let o = outputs[b.instance].as_ref()?.get(&b.output)?;
            let axes =
                if inst.stage.uses_input_axes() { plan.instances[b.instance].axes.clone() } else { BTreeMap::new() };
            v.push(InputKey { hash: o.hash.clone(), axes });
        }
        inputs.insert(slot.clone(), v);
    }
    Some(KeyInput {
        format: CACHE_FORMAT,
        kind: inst.stage.kind().to_string(),
        version: inst.stage.version(),
        params: inst.params.clone(),
        inputs,
        external: external.to_vec(),
        seed: if inst.stage.uses_seed() { inst.seed } else { 0 },
    })
}

/// Content hashes of an instance's external files; a missing file is an error naming it.
pub fn external_hashes(store: &Store, root: &Path, inst: &Instance) -> std::result::Result<Vec<String>, String> {
    inst.external
        .iter()
        .map(|p| {
            let path = if Path::new(p).is_absolute() { PathBuf::from(p) } else { root.join(p) };
            store
                .hash_external(&path)
                .map_err(|e| format!("stage `{}`: cannot read {}: {e}", inst.name, path.display()))
        })
        .collect()
}

/// How much [`resolve_keys`] trusts a run record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Only a record whose objects are intact (what `run` would reuse).
    Verified,
    /// Any readable record (what `gc` must keep).
    Recorded,
}

/// An instance's key as far as the cache can tell without running anything.
#[derive(Debug, Clone, Default)]
pub struct KeyState {
    /// Content hashes of its external files, or why they cannot be read.
    pub external: Option<std::result::Result<Vec<String>, String>>,
    /// Its key input, when every input is known (upstream cached).
    pub key_input: Option<KeyInput>,
    /// Its run record, when cached.
    pub record: Option<Record>,
}

impl KeyState {
    /// The key, when known.
    pub fn key(&self) -> Option<String> {
        self.key_input.as_ref().map(KeyInput::key)
    }
}

/// Resolves the keys of the selected instances along the plan order, from the cache alone:
/// the one walk `status`, `explain` and `gc` share. An instance whose external files cannot
/// be read has no key (its error is kept).
pub fn resolve_keys(plan: &Plan, store: &Store, root: &Path, selected: &[bool], trust: Trust) -> Vec<KeyState> {
    let n = plan.instances.len();
    let mut outputs: Vec<Option<BTreeMap<String, ObjectRef>>> = vec![None; n];
    let mut states = vec![KeyState::default(); n];
    for &i in &plan.order {
        if !selected[i] {
            continue;
        }
        let ext = external_hashes(store, root, &plan.instances[i]);
        let ki = match &ext {
            Ok(e) => key_input(plan, i, &outputs, e),
            Err(_) => None,
        };
        if let Some(ki) = &ki {
            let k = ki.key();
            let rec = match trust {
                Trust::Verified => store.lookup(&k, &plan.instances[i].outputs),
                Trust::Recorded => store.read_record(&k),
            };
            if let Some(r) = rec {
                outputs[i] = Some(r.outputs.clone());
                states[i].record = Some(r);
            }
        }
        states[i].external = Some(ext);
        states[i].key_input = ki;
    }
    states
}

/// One stage instance to compute.
pub struct Job<'a> {
    /// The instance.
    pub inst: &'a Instance,
    /// Its key.
    pub key: String,
    /// What the key is made of (kept in the record).
    pub key_input: KeyInput,
    /// Slot → artifacts in the store.
    pub inputs: BTreeMap<String, Vec<InputArtifact>>,
    /// Threads granted.
    pub threads: usize,
    /// Recompute even if another process cached it meanwhile.
    pub force: bool,
    /// The project root.
    pub root: &'a Path,
    /// Its progress bar.
    pub bar: ProgressBar,
}

/// What an executor did with a job.
#[derive(Debug)]
pub enum Computed {
    /// It ran the stage and stored the outputs.
    Ran(Record),
    /// Another process had just computed the key.
    Cached(Record),
}

impl Computed {
    /// The run record either way.
    pub fn into_record(self) -> Record {
        match self {
            Computed::Ran(r) | Computed::Cached(r) => r,
        }
    }
}

/// Why a job produced no record.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The stage returned an error.
    #[error("{0}")]
    Stage(String),
    /// The stage panicked: a bug in the stage, reported as its failure.
    #[error("stage panicked: {0}")]
    Panicked(String),
    /// It did not write an output it declared.
    #[error("stage did not write its output `{0}`")]
    MissingOutput(String),
    /// An input object no longer matched its hash.
    #[error("input from `{0}` was corrupt in the cache and has been quarantined; run again to recompute it")]
    CorruptInput(String),
    /// The store failed (disk full, permissions, …).
    #[error("{0}")]
    Store(String),
}

/// Where stages run.
pub trait Executor: Sync {
    /// Computes the job (or finds that another process just did).
    fn execute(&self, job: &Job, store: &Store) -> std::result::Result<Computed, JobError>;
    /// The threads an instance gets when it is handed over, given the run's budget now.
    fn threads(&self, inst: &Instance, budget: &Budget) -> usize;
    /// How much of the run's budget a job with `threads` threads holds while it runs: its
    /// threads here; one job slot for a cluster, whose budget is the jobs in flight.
    fn slots(&self, threads: usize) -> usize {
        threads
    }
}

/// The run's budget when an instance is handed to an executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// All of it: threads for the local executor (`--jobs`), jobs in flight for a cluster.
    pub jobs: usize,
    /// What running jobs do not hold.
    pub free: usize,
    /// Instances waiting to run whose kind can use several threads and whose threads no
    /// `resources.cpus` fixes, this one included.
    pub sharing: usize,
}

/// The threads the local executor gives an instance: its `resources.cpus`; else one for a
/// single-threaded kind; else what its kind can use, capped by `cap` (`[local] cpus`) when
/// set and otherwise by its share of the free threads among the multi-threaded instances
/// waiting (at least one). So eight trainings ready at once on 2 cores run two at a time on
/// one thread each, and a training alone gets both. Always within the budget. The stages'
/// results do not depend on it (`tests/dgex.rs` and `tests/rbm.rs` pin every multi-threaded
/// kind).
pub fn local_threads(inst: &Instance, budget: &Budget, cap: Option<usize>) -> usize {
    let threads = match inst.resources.cpus {
        Some(cpus) => cpus,
        None if shares_threads(inst) => {
            inst.stage.threads(&inst.params).min(cap.unwrap_or(budget.free / budget.sharing.max(1)))
        }
        None => 1,
    };
    threads.clamp(1, budget.jobs)
}

/// Whether an instance takes a share of the free threads ([`local_threads`]) and so counts in
/// [`Budget::sharing`]: its kind can use several threads and no `resources.cpus` fixes them.
pub(crate) fn shares_threads(inst: &Instance) -> bool {
    inst.resources.cpus.is_none() && inst.stage.threads(&inst.params) > 1
}

/// The input artifact a binding reads: the stored object of an upstream output.
pub(crate) fn artifact(plan: &Plan, store: &Store, b: &crate::plan::Binding, hash: &str) -> InputArtifact {
    let up = &plan.instances[b.instance];
    InputArtifact {
        path: store.object_path(hash),
        hash: hash.to_string(),
        axes: up.axes.clone(),
        producer: up.name.clone(),
    }
}

/// The job that computes instance `i` on the stored outputs of its inputs, from keys resolved
/// against the cache (`resolve_keys`): every input must be cached, and is verified against its
/// hash. What `repro exec-instance` runs on a node and `verify --recompute` runs again.
pub fn cached_job<'a>(
    plan: &'a Plan,
    store: &Store,
    root: &'a Path,
    states: &[KeyState],
    i: usize,
    threads: usize,
    force: bool,
) -> std::result::Result<Job<'a>, JobError> {
    let inst = &plan.instances[i];
    let ki = states[i]
        .key_input
        .clone()
        .ok_or_else(|| JobError::Store(format!("`{}`: its inputs are not in the cache", inst.name)))?;
    let mut inputs = BTreeMap::new();
    for (slot, binds) in &inst.inputs {
        let mut arts = Vec::new();
        for b in binds {
            let up = &plan.instances[b.instance];
            let rec = states[b.instance]
                .record
                .as_ref()
                .ok_or_else(|| JobError::Store(format!("input `{}` is not cached", up.name)))?;
            let o = &rec.outputs[&b.output];
            if !store.verify_object(&o.hash) {
                return Err(JobError::CorruptInput(up.name.clone()));
            }
            arts.push(artifact(plan, store, b, &o.hash));
        }
        inputs.insert(slot.clone(), arts);
    }
    Ok(Job {
        inst,
        key: ki.key(),
        key_input: ki,
        inputs,
        threads: threads.max(1),
        force,
        root,
        bar: ProgressBar::hidden(),
    })
}
