//! The scheduler and the executor.
//!
//! The scheduler walks the planned DAG: an instance whose inputs are all known gets its key;
//! a key with an intact run record is *cached* and its outputs flow on; otherwise the instance
//! is handed to an [`Executor`] when enough of the `--jobs` thread budget is free (a stage
//! declares how many threads it can use). The scheduler never runs a stage itself: the local
//! executor runs it on a thread of this process; a cluster executor would submit the same job
//! to another host sharing the cache directory (the store's per-key locks and atomic renames
//! already make that safe).
//!
//! Keys use the *content* hashes of inputs, so a rerun stage whose outputs come out
//! byte-identical leaves everything downstream cached (early cutoff).

use crate::diag::{Error, Result};
use crate::key::{InputKey, KeyInput, CACHE_FORMAT};
use crate::plan::{Instance, Plan};
use crate::store::{now_unix, ObjectRef, Record, Store};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use repro_stages::{Ctx, InputArtifact, Progress};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

pub static CANCEL: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub jobs: usize,
    pub keep_going: bool,
    pub dry_run: bool,
    pub force: Vec<String>,
    pub targets: Vec<String>,
    pub bars: bool,
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ran,
    Cached,
    Failed,
    Skipped,
    /// `--dry-run`: would run.
    WouldRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub kind: String,
    pub key: Option<String>,
    pub status: Status,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Outcome {
    fn new(inst: &Instance, key: Option<String>, status: Status, seconds: f64, error: Option<String>) -> Self {
        Outcome { name: inst.name.clone(), kind: inst.kind.kind().into(), key, status, seconds, error }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub pipeline: String,
    pub stages: Vec<Outcome>,
    pub ran: usize,
    pub cached: usize,
    pub failed: usize,
    #[serde(skip)]
    pub interrupted: bool,
}

/// Instances selected by `--target` (names or stage names) plus everything upstream.
pub fn select(plan: &Plan, targets: &[String]) -> Result<Vec<bool>> {
    let n = plan.instances.len();
    if targets.is_empty() {
        return Ok(vec![true; n]);
    }
    let mut sel = vec![false; n];
    let mut stack = Vec::new();
    for t in targets {
        let hits: Vec<usize> =
            (0..n).filter(|&i| plan.instances[i].name == *t || plan.instances[i].stage == *t).collect();
        if hits.is_empty() {
            let names: Vec<&str> = plan.spec.stages.iter().map(|s| s.name.as_str()).collect();
            let hint =
                repro_stages::params::closest(t, &names).map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default();
            return Err(Error::Usage(format!("no stage or instance `{t}` in {}{hint}", plan.spec.path.display())));
        }
        stack.extend(hits);
    }
    while let Some(i) = stack.pop() {
        if !sel[i] {
            sel[i] = true;
            stack.extend(plan.instances[i].inputs.values().flatten().map(|b| b.instance));
        }
    }
    Ok(sel)
}

fn matches(inst: &Instance, names: &[String]) -> bool {
    names.iter().any(|f| f == &inst.name || f == &inst.stage)
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
                if inst.kind.uses_input_axes() { plan.instances[b.instance].axes.clone() } else { BTreeMap::new() };
            v.push(InputKey { hash: o.hash.clone(), axes });
        }
        inputs.insert(slot.clone(), v);
    }
    Some(KeyInput {
        format: CACHE_FORMAT,
        kind: inst.kind.kind().to_string(),
        version: inst.kind.version(),
        params: inst.params.clone(),
        inputs,
        external: external.to_vec(),
        seed: if inst.kind.uses_seed() { inst.seed } else { 0 },
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

/// One stage instance to compute.
pub struct Job<'a> {
    pub inst: &'a Instance,
    pub key: String,
    pub key_input: KeyInput,
    pub inputs: BTreeMap<String, Vec<InputArtifact>>,
    pub threads: usize,
    pub force: bool,
    pub root: &'a Path,
    pub bar: ProgressBar,
}

/// Where stages run.
pub trait Executor: Sync {
    /// Computes the job (or finds that another process just did): its record and whether it
    /// was found cached.
    fn execute(&self, job: &Job, store: &Store) -> std::result::Result<(Record, bool), String>;
}

/// Runs stages on threads of this process.
pub struct LocalExecutor;

pub fn environment(threads: usize) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("os".into(), std::env::consts::OS.into());
    env.insert("arch".into(), std::env::consts::ARCH.into());
    env.insert("threads".into(), threads.to_string());
    let host = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    env.insert("host".into(), host);
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

impl Executor for LocalExecutor {
    fn execute(&self, job: &Job, store: &Store) -> std::result::Result<(Record, bool), String> {
        let inst = job.inst;
        let _lock = store
            .lock(&job.key, || tracing::info!(stage = %inst.name, "waiting: another process is computing this key"))
            .map_err(|e| e.to_string())?;
        if !job.force {
            if let Some(rec) = store.lookup(&job.key) {
                return Ok((rec, true));
            }
        }
        for arts in job.inputs.values() {
            for a in arts {
                if !store.verify_object(&a.hash) {
                    return Err(format!(
                        "input from `{}` was corrupt in the cache and has been quarantined; run again to recompute it",
                        a.producer
                    ));
                }
            }
        }
        let work = store.tmp_path(&format!("work-{}", &job.key[..16]));
        std::fs::create_dir_all(&work).map_err(|e| format!("cannot create work dir: {e}"))?;
        let started = now_unix();
        let t0 = Instant::now();
        let bar = job.bar.clone();
        let progress = move |p: Progress| {
            if p.total > 0 {
                bar.set_length(p.total);
                bar.set_position(p.done);
            }
            bar.set_message(p.message.clone());
            tracing::debug!(done = p.done, total = p.total, "{}", p.message);
        };
        let ctx = Ctx {
            instance: &inst.name,
            inputs: job.inputs.clone(),
            out_dir: &work,
            seed: inst.seed,
            base_seed: inst.base_seed,
            threads: job.threads,
            root: job.root,
            cancel: &CANCEL,
            progress: &progress,
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(job.threads).build().map_err(|e| e.to_string())?;
        let result = pool.install(|| inst.kind.run(&inst.params, &ctx));
        let cleanup = || {
            let _ = std::fs::remove_dir_all(&work);
        };
        let metrics = match result {
            Ok(m) => m,
            Err(e) => {
                cleanup();
                return Err(e.to_string());
            }
        };
        let mut outputs = BTreeMap::new();
        for o in &inst.outputs {
            let p = work.join(o);
            if !p.is_file() {
                cleanup();
                return Err(format!("stage did not write its output `{o}`"));
            }
            match store.ingest(&p) {
                Ok(r) => {
                    outputs.insert(o.clone(), r);
                }
                Err(e) => {
                    cleanup();
                    return Err(e.to_string());
                }
            }
        }
        cleanup();
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
        store.write_record(&rec).map_err(|e| e.to_string())?;
        Ok((rec, false))
    }
}

enum Msg {
    Done(usize, usize, std::result::Result<(Record, bool), String>, f64),
}

/// Runs the plan. Returns the summary and the records of every instance that has one.
pub fn run(
    plan: &Plan,
    store: &Store,
    root: &Path,
    opts: &RunOptions,
    executor: &dyn Executor,
) -> Result<(Summary, Vec<Option<Record>>)> {
    let n = plan.instances.len();
    let selected = select(plan, &opts.targets)?;
    for f in &opts.force {
        if !plan.instances.iter().any(|i| &i.name == f || &i.stage == f) {
            return Err(Error::Usage(format!("--force: no stage or instance `{f}`")));
        }
    }
    let jobs = opts.jobs.max(1);
    let mut deps_left: Vec<usize> = plan
        .instances
        .iter()
        .map(|inst| inst.inputs.values().flatten().map(|b| b.instance).collect::<BTreeSet<_>>().len())
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![vec![]; n];
    for (i, inst) in plan.instances.iter().enumerate() {
        for p in inst.inputs.values().flatten().map(|b| b.instance).collect::<BTreeSet<_>>() {
            dependents[p].push(i);
        }
    }
    let position: BTreeMap<usize, usize> = plan.order.iter().enumerate().map(|(pos, &i)| (i, pos)).collect();
    let mut outputs: Vec<Option<BTreeMap<String, ObjectRef>>> = vec![None; n];
    let mut records: Vec<Option<Record>> = vec![None; n];
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut broken = vec![false; n]; // failed or skipped
    let mut ready: VecDeque<usize> = plan.order.iter().copied().filter(|&i| selected[i] && deps_left[i] == 0).collect();
    let mut to_run: VecDeque<(usize, KeyInput, String)> = VecDeque::new();
    // An instance is settled (cached, ran, failed or skipped): its dependents lose one wait.
    let release = |i: usize, deps_left: &mut Vec<usize>, ready: &mut VecDeque<usize>| {
        for &d in &dependents[i] {
            deps_left[d] -= 1;
            if deps_left[d] == 0 && selected[d] {
                ready.push_back(d);
            }
        }
    };
    let multi = MultiProgress::with_draw_target(if opts.bars {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let total_sel = selected.iter().filter(|s| **s).count() as u64;
    let overall = multi.add(ProgressBar::new(total_sel));
    overall.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {msg}").unwrap().progress_chars("=> "),
    );
    overall.set_prefix("stages");
    let (mut n_ran, mut n_cached, mut n_failed) = (0, 0, 0);
    let mut stop = false;
    let mut index_updates = BTreeMap::new();
    let log = |line: String| {
        if !opts.quiet {
            if opts.bars {
                multi.println(line).ok();
            } else {
                eprintln!("{line}");
            }
        }
    };
    let mut free = jobs;
    let mut running = 0usize;
    let (tx, rx) = mpsc::channel::<Msg>();
    std::thread::scope(|scope| -> Result<()> {
        loop {
            // Resolve ready instances: skip, hit the cache, or queue to run.
            while let Some(i) = ready.pop_front() {
                let inst = &plan.instances[i];
                let upstream_broken = inst.inputs.values().flatten().any(|b| broken[b.instance]);
                if upstream_broken || stop || CANCEL.load(Ordering::Relaxed) {
                    broken[i] = true;
                    outcomes[i] = Some(Outcome::new(inst, None, Status::Skipped, 0.0, None));
                    release(i, &mut deps_left, &mut ready);
                    continue;
                }
                let ext = match external_hashes(store, root, inst) {
                    Ok(e) => e,
                    Err(e) => {
                        log(format!("FAILED  {}: {e}", inst.name));
                        broken[i] = true;
                        n_failed += 1;
                        outcomes[i] = Some(Outcome::new(inst, None, Status::Failed, 0.0, Some(e)));
                        if !opts.keep_going {
                            stop = true;
                        }
                        release(i, &mut deps_left, &mut ready);
                        continue;
                    }
                };
                let ki = key_input(plan, i, &outputs, &ext).expect("inputs of a ready instance are known");
                let key = ki.key();
                index_updates.insert(inst.name.clone(), ki.clone());
                let forced = matches(inst, &opts.force);
                if !forced {
                    if let Some(rec) = store.lookup(&key) {
                        n_cached += 1;
                        overall.inc(1);
                        outputs[i] = Some(rec.outputs.clone());
                        outcomes[i] = Some(Outcome::new(inst, Some(key), Status::Cached, 0.0, None));
                        records[i] = Some(rec);
                        release(i, &mut deps_left, &mut ready);
                        continue;
                    }
                }
                if opts.dry_run {
                    outcomes[i] = Some(Outcome::new(inst, Some(key), Status::WouldRun, 0.0, None));
                    // Downstream keys are unknown until this runs: they would run too.
                    broken[i] = true;
                    release(i, &mut deps_left, &mut ready);
                    continue;
                }
                to_run.push_back((i, ki, key));
            }
            // Dispatch while the thread budget allows (one job always may run).
            to_run.make_contiguous().sort_by_key(|(i, _, _)| position[i]);
            while let Some((i, _, _)) = to_run.front() {
                let inst = &plan.instances[*i];
                let want = inst.kind.threads(&inst.params).clamp(1, jobs);
                if stop || CANCEL.load(Ordering::Relaxed) {
                    break;
                }
                if want > free && running > 0 {
                    break;
                }
                let (i, ki, key) = to_run.pop_front().unwrap();
                let granted = want.min(free.max(1));
                free = free.saturating_sub(granted);
                running += 1;
                let mut inputs = BTreeMap::new();
                for (slot, binds) in &inst.inputs {
                    let arts = binds
                        .iter()
                        .map(|b| {
                            let o = &outputs[b.instance].as_ref().unwrap()[&b.output];
                            InputArtifact {
                                path: store.object_path(&o.hash),
                                hash: o.hash.clone(),
                                axes: plan.instances[b.instance].axes.clone(),
                                producer: plan.instances[b.instance].name.clone(),
                            }
                        })
                        .collect();
                    inputs.insert(slot.clone(), arts);
                }
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(ProgressStyle::with_template("  {prefix} {wide_msg} {pos}/{len} {elapsed}").unwrap());
                bar.set_prefix(inst.name.clone());
                let tx = tx.clone();
                let force = matches(inst, &opts.force);
                scope.spawn(move || {
                    let job = Job { inst, key, key_input: ki, inputs, threads: granted, force, root, bar: bar.clone() };
                    let t0 = Instant::now();
                    let r = executor.execute(&job, store);
                    bar.finish_and_clear();
                    let _ = tx.send(Msg::Done(i, granted, r, t0.elapsed().as_secs_f64()));
                });
            }
            if running == 0 {
                if ready.is_empty() {
                    break;
                }
                continue;
            }
            let Msg::Done(i, granted, r, secs) = rx.recv().expect("a running job reports");
            running -= 1;
            free += granted;
            overall.inc(1);
            let inst = &plan.instances[i];
            match r {
                Ok((rec, cached)) => {
                    if cached {
                        n_cached += 1;
                    } else {
                        n_ran += 1;
                        log(format!("ran     {} ({:.2}s)", inst.name, rec.seconds));
                    }
                    outputs[i] = Some(rec.outputs.clone());
                    outcomes[i] = Some(Outcome::new(
                        inst,
                        Some(rec.key.clone()),
                        if cached { Status::Cached } else { Status::Ran },
                        if cached { 0.0 } else { secs },
                        None,
                    ));
                    records[i] = Some(rec);
                }
                Err(e) => {
                    n_failed += 1;
                    broken[i] = true;
                    log(format!("FAILED  {} ({}): {e}", inst.name, inst.kind.kind()));
                    outcomes[i] = Some(Outcome::new(inst, None, Status::Failed, secs, Some(e)));
                    if !opts.keep_going {
                        stop = true;
                    }
                }
            }
            release(i, &mut deps_left, &mut ready);
        }
        Ok(())
    })?;
    overall.finish_and_clear();
    if !opts.dry_run {
        store.write_index(&plan.spec.path, &index_updates)?;
    }
    let stages: Vec<Outcome> = plan.order.iter().filter_map(|&i| outcomes[i].clone()).collect();
    Ok((
        Summary {
            pipeline: plan.spec.name.clone(),
            stages,
            ran: n_ran,
            cached: n_cached,
            failed: n_failed,
            interrupted: CANCEL.load(Ordering::Relaxed),
        },
        records,
    ))
}
