//! The Slurm executor: every instance that must run becomes one `sbatch` job running
//! `repro exec-instance` on a node, against the same cache directory (a shared filesystem):
//! the job takes the key's lock, computes, and writes the objects and the run record exactly
//! as a local run does (atomic renames, the record last). This process submits what is ready,
//! polls the queue, and reads the record back when the job has ended.
//!
//! Dependencies stay with `repro`, not `--dependency=afterok`: a downstream instance's key is
//! made of its inputs' *content* hashes, unknown until they exist, and an upstream result that
//! comes out identical must leave the downstream cached (early cutoff). Submitting only what
//! is ready keeps both; the price is one scheduling round-trip per DAG level.
//!
//! Polling: one `squeue` for all our jobs at most every `poll` (workers share it), each job's
//! name `repro:<pipeline>:<instance>`, at most `max_jobs` in flight (the run's budget), Ctrl-C
//! cancels every job still queued or running (`scancel`), a job that ended without a record is
//! resubmitted up to `retries` times, then fails with the tail of its stderr.

use super::{Computed, Executor, Job, JobError, CANCEL};
use crate::plan::Instance;
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How to submit.
#[derive(Debug, Clone)]
pub struct SlurmConfig {
    /// The `repro` binary the nodes run (this one, on the shared filesystem).
    pub repro: PathBuf,
    /// The pipeline file, absolute.
    pub pipeline: PathBuf,
    /// `--set` and `--profile` of this run, passed on so that the node plans the same keys.
    pub sets: Vec<String>,
    /// The profile.
    pub profile: Option<String>,
    /// The project root (the jobs' working directory).
    pub root: PathBuf,
    /// The cache directory, absolute.
    pub cache_dir: PathBuf,
    /// Default partition (a stage's `resources.partition` wins).
    pub partition: Option<String>,
    /// CPUs of an instance without `resources.cpus` whose kind uses several threads.
    pub default_cpus: usize,
    /// Seconds between queue polls.
    pub poll: Duration,
    /// Resubmissions of a job that ended without a result.
    pub retries: u32,
    /// Extra `sbatch` arguments (`--account=…`, `--qos=…`).
    pub sbatch_args: Vec<String>,
}

/// Our jobs' states, refreshed by whichever worker polls first.
struct Queue {
    last: Option<Instant>,
    /// Job id → state (`PENDING`, `RUNNING`, `COMPLETED`, …; `GONE` when no longer listed).
    states: BTreeMap<String, String>,
}

/// Submits through `sbatch`; see the module.
pub struct SlurmExecutor {
    cfg: SlurmConfig,
    queue: Mutex<Queue>,
    changed: Condvar,
}

const DONE: [&str; 12] = [
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "SPECIAL_EXIT",
    "REVOKED",
    "GONE",
];

/// Quotes a word for `sh` (what `sbatch --wrap` runs).
fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,@+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl SlurmExecutor {
    /// An executor for one run.
    pub fn new(cfg: SlurmConfig) -> Self {
        SlurmExecutor { cfg, queue: Mutex::new(Queue { last: None, states: BTreeMap::new() }), changed: Condvar::new() }
    }

    /// Where a key's Slurm logs go: `<cache>/logs/<key>/slurm-<job>.{out,err}`.
    pub fn log_dir(cache_dir: &Path, key: &str) -> PathBuf {
        cache_dir.join("logs").join(key)
    }

    /// The `sbatch` command for one job.
    pub fn sbatch(&self, job: &Job) -> Command {
        let inst = job.inst;
        let r = &inst.resources;
        let logs = Self::log_dir(&self.cfg.cache_dir, &job.key);
        let mut wrap = vec![
            self.cfg.repro.display().to_string(),
            "--cache-dir".into(),
            self.cfg.cache_dir.display().to_string(),
            "exec-instance".into(),
            self.cfg.pipeline.display().to_string(),
            "--instance".into(),
            inst.name.clone(),
            "--key".into(),
            job.key.clone(),
            "--threads".into(),
            job.threads.to_string(),
        ];
        for s in &self.cfg.sets {
            wrap.extend(["--set".to_string(), s.clone()]);
        }
        if let Some(p) = &self.cfg.profile {
            wrap.extend(["--profile".to_string(), p.clone()]);
        }
        if job.force {
            wrap.push("--force".into());
        }
        let mut c = Command::new("sbatch");
        c.arg("--parsable")
            .arg(format!(
                "--job-name=repro:{}:{}",
                self.cfg.pipeline.file_stem().and_then(|s| s.to_str()).unwrap_or(""),
                inst.name
            ))
            .arg(format!("--chdir={}", self.cfg.root.display()))
            .arg(format!("--output={}", logs.join("slurm-%j.out").display()))
            .arg(format!("--error={}", logs.join("slurm-%j.err").display()))
            .arg(format!("--cpus-per-task={}", job.threads));
        if let Some(m) = &r.mem {
            c.arg(format!("--mem={m}"));
        }
        if let Some(t) = &r.time {
            c.arg(format!("--time={t}"));
        }
        if let Some(g) = r.gpus.filter(|g| *g > 0) {
            c.arg(format!("--gres=gpu:{g}"));
        }
        if let Some(p) = r.partition.as_ref().or(self.cfg.partition.as_ref()) {
            c.arg(format!("--partition={p}"));
        }
        c.args(&self.cfg.sbatch_args);
        c.arg("--wrap").arg(wrap.iter().map(|w| sh_quote(w)).collect::<Vec<_>>().join(" "));
        c
    }

    fn submit(&self, job: &Job) -> Result<String, JobError> {
        std::fs::create_dir_all(Self::log_dir(&self.cfg.cache_dir, &job.key))
            .map_err(|e| JobError::Store(format!("cannot create the log directory: {e}")))?;
        let out = self.sbatch(job).output().map_err(|e| JobError::Store(format!("cannot run sbatch: {e}")))?;
        if !out.status.success() {
            return Err(JobError::Stage(format!(
                "sbatch refused the job: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return Err(JobError::Stage(format!("sbatch printed no job id: {text}")));
        }
        let mut q = self.queue.lock().unwrap();
        q.states.insert(id.clone(), "PENDING".into());
        Ok(id)
    }

    /// Refreshes every tracked job's state with one `squeue` (per job when one of ours is no
    /// longer known to the controller, which makes a joint query fail).
    fn poll(q: &mut Queue) {
        let live: Vec<String> =
            q.states.iter().filter(|(_, s)| !DONE.contains(&s.as_str())).map(|(id, _)| id.clone()).collect();
        if live.is_empty() {
            return;
        }
        let query = |ids: &[String]| -> Option<BTreeMap<String, String>> {
            let out =
                Command::new("squeue").args(["-h", "-t", "all", "-o", "%i %T", "-j", &ids.join(",")]).output().ok()?;
            if !out.status.success() {
                return None;
            }
            Some(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter_map(|l| l.split_once(' '))
                    .map(|(i, s)| (i.trim().to_string(), s.trim().to_string()))
                    .collect(),
            )
        };
        let found = match query(&live) {
            Some(f) => f,
            None => live
                .iter()
                .filter_map(|id| query(std::slice::from_ref(id)).and_then(|m| m.into_iter().next()))
                .collect(),
        };
        for id in live {
            let s = found.get(&id).cloned().unwrap_or_else(|| "GONE".into());
            q.states.insert(id, s);
        }
    }

    /// Waits until job `id` has ended (its final state), or Ctrl-C (then cancels it).
    fn wait(&self, id: &str) -> Result<String, JobError> {
        let mut q = self.queue.lock().unwrap();
        loop {
            if CANCEL.load(Ordering::Relaxed) {
                drop(q);
                let _ = Command::new("scancel").arg(id).status();
                return Err(JobError::Stage(format!("interrupted: Slurm job {id} cancelled")));
            }
            let state = q.states.get(id).cloned().unwrap_or_default();
            if DONE.contains(&state.as_str()) {
                return Ok(state);
            }
            if q.last.is_none_or(|t| t.elapsed() >= self.cfg.poll) {
                q.last = Some(Instant::now());
                Self::poll(&mut q);
                self.changed.notify_all();
                continue;
            }
            let left = self.cfg.poll.saturating_sub(q.last.map(|t| t.elapsed()).unwrap_or_default());
            q = self.changed.wait_timeout(q, left.max(Duration::from_millis(20))).unwrap().0;
        }
    }

    /// The last lines of a job's stderr.
    fn stderr_tail(&self, key: &str, id: &str) -> String {
        let p = Self::log_dir(&self.cfg.cache_dir, key).join(format!("slurm-{id}.err"));
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
        if tail.is_empty() {
            format!("(nothing on stderr; {})", p.display())
        } else {
            format!("{tail}\n(stderr of the job: {})", p.display())
        }
    }
}

impl Executor for SlurmExecutor {
    fn execute(&self, job: &Job, store: &Store) -> Result<Computed, JobError> {
        if !job.force {
            if let Some(rec) = store.lookup(&job.key, &job.inst.outputs) {
                return Ok(Computed::Cached(rec));
            }
        }
        let mut attempt = 0;
        loop {
            let t0 = Instant::now();
            let id = self.submit(job)?;
            job.bar.set_message(format!("Slurm job {id}"));
            tracing::info!(stage = %job.inst.name, job = %id, "submitted");
            let state = self.wait(&id)?;
            if let Some(rec) =
                store.lookup(&job.key, &job.inst.outputs).filter(|r| r.environment.get("slurm_job_id") == Some(&id))
            {
                tracing::info!(stage = %job.inst.name, job = %id, "done in {:.2}s ({:.2}s computing)", t0.elapsed().as_secs_f64(), rec.seconds);
                return Ok(Computed::Ran(rec));
            }
            // Another process may have computed the key meanwhile (the job then found it cached).
            if let Some(rec) = store.lookup(&job.key, &job.inst.outputs) {
                return Ok(Computed::Cached(rec));
            }
            if attempt >= self.cfg.retries || CANCEL.load(Ordering::Relaxed) {
                return Err(JobError::Stage(format!(
                    "Slurm job {id} ended {state} without a result:\n{}",
                    self.stderr_tail(&job.key, &id)
                )));
            }
            attempt += 1;
            tracing::warn!(stage = %job.inst.name, job = %id, "ended {state} without a result; resubmitting ({attempt}/{})", self.cfg.retries);
        }
    }

    /// `resources.cpus`, else `default_cpus` for a kind that uses several threads, else 1;
    /// the budget does not cap it (the budget counts jobs).
    fn threads(&self, inst: &Instance, _budget: &super::Budget) -> usize {
        inst.resources
            .cpus
            .unwrap_or(if inst.stage.threads(&inst.params) > 1 { self.cfg.default_cpus } else { 1 })
            .max(1)
    }

    fn slots(&self, _threads: usize) -> usize {
        1
    }
}

/// Cancels every job of ours still queued or running (after Ctrl-C, from the main thread).
pub fn cancel_all(ex: &SlurmExecutor) {
    let q = ex.queue.lock().unwrap();
    let ids: Vec<&String> = q.states.iter().filter(|(_, s)| !DONE.contains(&s.as_str())).map(|(i, _)| i).collect();
    if !ids.is_empty() {
        let _ = Command::new("scancel").args(ids).status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(sh_quote("/a/b.toml"), "/a/b.toml");
        assert_eq!(sh_quote("train[act=arelu,rep=1]"), "'train[act=arelu,rep=1]'");
        assert_eq!(sh_quote("trials=[1, 2]"), "'trials=[1, 2]'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
