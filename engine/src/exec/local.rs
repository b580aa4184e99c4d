//! The local executor: runs a stage on a thread of this process, in a rayon pool of the
//! granted size, inside a work directory under the store's `tmp/`.

use super::{Computed, Executor, Job, JobError, CANCEL};
use crate::store::{now_unix, Record, Store};
use repro_core::{Ctx, Metrics, Progress};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

/// Runs stages on threads of this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExecutor {
    /// The threads of an instance whose kind can use several and that has no
    /// `resources.cpus` (`[local] cpus` in repro.toml); unset, it gets its share of the free
    /// threads ([`super::local_threads`]). The stages' results do not depend on the thread
    /// count (`tests/dgex.rs` and `tests/rbm.rs` pin every multi-threaded kind), so neither
    /// setting changes one.
    pub stage_cpus: Option<usize>,
}

/// Where and how a stage ran: OS, architecture, threads, host and the CPU features the
/// kernels use. Kept in the run record and the provenance sidecar.
pub fn environment(threads: usize) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("os".into(), std::env::consts::OS.into());
    env.insert("arch".into(), std::env::consts::ARCH.into());
    env.insert("threads".into(), threads.to_string());
    let host = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    env.insert("host".into(), host);
    // Under Slurm (`repro exec-instance` in a job): which job computed it.
    if let Ok(id) = std::env::var("SLURM_JOB_ID") {
        env.insert("slurm_job_id".into(), id);
    }
    #[cfg(target_arch = "x86_64")]
    {
        let mut f = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") {
            f.push("avx512f");
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            f.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            f.push("fma");
        }
        env.insert("cpu_features".into(), f.join(","));
    }
    env
}

/// The text of a panic payload (`panic!("…")` gives a `&str` or a `String`).
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

impl Executor for LocalExecutor {
    fn threads(&self, inst: &crate::plan::Instance, budget: &super::Budget) -> usize {
        super::local_threads(inst, budget, self.stage_cpus)
    }

    fn execute(&self, job: &Job, store: &Store) -> Result<Computed, JobError> {
        let inst = job.inst;
        let _lock = store
            .lock(&job.key, || tracing::info!(stage = %inst.name, "waiting: another process is computing this key"))
            .map_err(|e| JobError::Store(e.to_string()))?;
        if !job.force {
            if let Some(rec) = store.lookup(&job.key, &inst.outputs) {
                return Ok(Computed::Cached(rec));
            }
        }
        for a in job.inputs.values().flatten() {
            if !store.verify_object(&a.hash) {
                return Err(JobError::CorruptInput(a.producer.clone()));
            }
        }
        let work = store.tmp_path(&format!("work-{}", job.key));
        std::fs::create_dir_all(&work).map_err(|e| JobError::Store(format!("cannot create work dir: {e}")))?;
        let started = now_unix();
        let t0 = Instant::now();
        let result = run_stage(job, &work).and_then(|metrics| {
            let mut outputs = BTreeMap::new();
            for o in &inst.outputs {
                let p = work.join(o);
                if !p.is_file() {
                    return Err(JobError::MissingOutput(o.clone()));
                }
                outputs.insert(o.clone(), store.ingest(&p).map_err(|e| JobError::Store(e.to_string()))?);
            }
            Ok((metrics, outputs))
        });
        keep_logs(store, &job.key, &work);
        let _ = std::fs::remove_dir_all(&work);
        let (metrics, outputs) = result?;
        let rec = Record {
            key: job.key.clone(),
            instance: inst.name.clone(),
            key_input: job.key_input.clone(),
            outputs,
            metrics,
            seconds: t0.elapsed().as_secs_f64(),
            started_unix: started,
            finished_unix: now_unix(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            environment: environment(job.threads),
        };
        store.write_record(&rec).map_err(|e| JobError::Store(e.to_string()))?;
        Ok(Computed::Ran(rec))
    }
}

/// Moves what the stage wrote to its log directory into `<cache>/logs/<key>/` (replacing the
/// previous run's), so that `repro log` shows it after success and after failure alike.
fn keep_logs(store: &Store, key: &str, work: &Path) {
    let from = work.join(repro_core::LOG_DIR);
    let Ok(entries) = std::fs::read_dir(&from) else { return };
    let to = store.root.join("logs").join(key);
    if std::fs::create_dir_all(&to).is_err() {
        return;
    }
    for e in entries.flatten() {
        let _ = std::fs::rename(e.path(), to.join(e.file_name()));
    }
}

/// Runs the stage body in a pool of the granted size. A panic anywhere in it (rayon carries
/// panics of its workers back to this thread) becomes the stage's failure.
pub(super) fn run_stage(job: &Job, work: &Path) -> Result<Metrics, JobError> {
    let inst = job.inst;
    let bar = job.bar.clone();
    let progress = move |p: Progress| {
        if p.total > 0 {
            if bar.length().unwrap_or(0) == 0 {
                bar.set_style(super::schedule::counted_style());
            }
            bar.set_length(p.total);
            bar.set_position(p.done);
        }
        bar.set_message(p.message.clone());
        tracing::debug!(done = p.done, total = p.total, "{}", p.message);
    };
    // A stage that declares no randomness sees seed 0, the seed its key holds: it cannot read
    // a seed that would make one cached result depend on something its key does not.
    let (seed, base_seed) = if inst.stage.uses_seed() { (inst.seed, inst.base_seed) } else { (0, 0) };
    let ctx = Ctx {
        instance: &inst.name,
        inputs: job.inputs.clone(),
        out_dir: work,
        seed,
        base_seed,
        threads: job.threads,
        root: job.root,
        cancel: &CANCEL,
        progress: &progress,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.threads)
        .build()
        .map_err(|e| JobError::Store(format!("cannot start {} threads: {e}", job.threads)))?;
    match pool.install(|| catch_unwind(AssertUnwindSafe(|| inst.stage.run(&inst.params, &ctx)))) {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(JobError::Stage(e.to_string())),
        Err(payload) => Err(JobError::Panicked(panic_message(payload.as_ref()))),
    }
}
