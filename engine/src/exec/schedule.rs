//! The scheduler: settles instances in dependency order (skipped, cached, or run by an
//! executor on worker threads within the `--jobs` thread budget) and collects the summary.
//!
//! Every worker sends exactly one message, even when the executor panics, so the scheduler
//! never waits on a dead worker.

use super::local::panic_message;
use super::{
    external_hashes, key_input, Budget, Computed, Executor, Job, JobError, Outcome, RunOptions, Status, Summary, CANCEL,
};
use crate::diag::{Error, Result};
use crate::key::KeyInput;
use crate::lookup::{digest, Entry, Hit, LookupIndex};
use crate::plan::Plan;
use crate::store::{ObjectRef, Record, Store};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use repro_core::InputArtifact;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Instant;

/// A finished job: instance, threads it held, result, wall seconds.
type Done = (usize, usize, std::result::Result<Computed, JobError>, f64);

/// Runs the plan. Returns the summary and the run records of the settled instances: every one with
/// [`RunOptions::all_records`], else those reports need (see `read_records`).
pub fn run(
    plan: &Plan,
    store: &Store,
    root: &Path,
    opts: &RunOptions,
    executor: &dyn Executor,
) -> Result<(Summary, Vec<Option<Record>>)> {
    let selected = plan.select(&opts.targets)?;
    for f in &opts.force {
        if plan.find(f).is_empty() {
            return Err(Error::Usage(format!("--force: no stage or instance `{f}`")));
        }
    }
    let mut s = Scheduler::new(plan, store, root, opts, selected, executor);
    let (tx, rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| loop {
        s.settle_ready();
        s.dispatch(|i, job, granted| {
            let tx = tx.clone();
            scope.spawn(move || {
                let t0 = Instant::now();
                let r = catch_unwind(AssertUnwindSafe(|| executor.execute(&job, store)))
                    .unwrap_or_else(|p| Err(JobError::Panicked(panic_message(p.as_ref()))));
                job.bar.finish_and_clear();
                let _ = tx.send((i, granted, r, t0.elapsed().as_secs_f64()));
            });
        });
        if s.running == 0 {
            if s.ready.is_empty() {
                break;
            }
            continue;
        }
        // Every spawned worker sends once (panics included), and `tx` lives here: no hang.
        let done = rx.recv().expect("a running job reports");
        s.finish(done);
    });
    s.overall.finish_and_clear();
    if !opts.dry_run {
        s.write_indexes();
    }
    s.read_records();
    let stages: Vec<Outcome> = plan.order.iter().filter_map(|&i| s.outcomes[i].take()).collect();
    let summary = Summary {
        pipeline: plan.spec.name.clone(),
        stages,
        ran: s.n_ran,
        cached: s.n_cached,
        failed: s.n_failed,
        interrupted: CANCEL.load(Ordering::Relaxed),
    };
    Ok((summary, s.records))
}

/// A running stage's line once it reports a count: a bar with done/total and the time.
pub(super) fn counted_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {prefix} [{bar:20}] {pos}/{len} {wide_msg} {elapsed}")
        .unwrap()
        .progress_chars("=> ")
}

/// The scheduler's state for one run.
struct Scheduler<'a> {
    plan: &'a Plan,
    executor: &'a dyn Executor,
    store: &'a Store,
    root: &'a Path,
    opts: &'a RunOptions,
    selected: Vec<bool>,
    jobs: usize,
    deps_left: Vec<usize>,
    position: Vec<usize>,
    outputs: Vec<Option<BTreeMap<String, ObjectRef>>>,
    records: Vec<Option<Record>>,
    outcomes: Vec<Option<Outcome>>,
    /// Failed or skipped.
    broken: Vec<bool>,
    ready: VecDeque<usize>,
    /// Keyed instances waiting for the budget, in plan order: (position, instance) → key
    /// input, key, and whether it shares the free threads ([`super::shares_threads`], asked
    /// once on insert so that the remove takes back exactly what the insert counted).
    to_run: BTreeMap<(usize, usize), (KeyInput, String, bool)>,
    /// How many of `to_run` share the free threads, kept on insert and remove so that a
    /// dispatch costs O(started · log n), not a pass over the queue.
    sharing: usize,
    /// Each keyed instance's key input and key (for the indexes).
    key_inputs: Vec<Option<KeyInput>>,
    keys: Vec<Option<String>>,
    /// The pipeline's lookup index as the last run left it, and the entries this run read or
    /// wrote anew.
    lookup: LookupIndex,
    fresh: HashMap<String, Entry>,
    /// The pipeline's index from earlier runs (instance → last key), for durations.
    previous: BTreeMap<String, KeyInput>,
    /// Seconds that instances queued or running took when they last ran at the same params.
    expected: BTreeMap<usize, f64>,

    multi: MultiProgress,
    overall: ProgressBar,
    n_ran: usize,
    n_cached: usize,
    n_failed: usize,
    stop: bool,
    free: usize,
    running: usize,
}

impl<'a> Scheduler<'a> {
    fn new(
        plan: &'a Plan,
        store: &'a Store,
        root: &'a Path,
        opts: &'a RunOptions,
        selected: Vec<bool>,
        executor: &'a dyn Executor,
    ) -> Self {
        let n = plan.instances.len();
        let deps_left: Vec<usize> = (0..n).map(|i| plan.producers(i).len()).collect();
        let mut position = vec![0; n];
        for (pos, &i) in plan.order.iter().enumerate() {
            position[i] = pos;
        }
        let ready = plan.order.iter().copied().filter(|&i| selected[i] && deps_left[i] == 0).collect();
        let multi = MultiProgress::with_draw_target(if opts.bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = multi.add(ProgressBar::new(selected.iter().filter(|s| **s).count() as u64));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
                .unwrap()
                .progress_chars("=> "),
        );
        overall.set_prefix("stages");
        let jobs = opts.jobs.max(1);
        Scheduler {
            plan,
            executor,
            store,
            root,
            opts,
            selected,
            jobs,
            deps_left,
            position,
            outputs: vec![None; n],
            records: vec![None; n],
            outcomes: vec![None; n],
            broken: vec![false; n],
            ready,
            to_run: BTreeMap::new(),
            sharing: 0,
            key_inputs: vec![None; n],
            keys: vec![None; n],
            lookup: store.read_lookup(&plan.spec.path),
            fresh: HashMap::new(),
            previous: if opts.bars { store.read_index(&plan.spec.path) } else { BTreeMap::new() },
            expected: BTreeMap::new(),

            multi,
            overall,
            n_ran: 0,
            n_cached: 0,
            n_failed: 0,
            stop: false,
            free: jobs,
            running: 0,
        }
    }

    fn log(&self, line: String) {
        if !self.opts.quiet {
            if self.opts.bars {
                self.multi.println(line).ok();
            } else {
                eprintln!("{line}");
            }
        }
    }

    /// An instance is settled (cached, ran, failed or skipped): its consumers lose one wait.
    fn release(&mut self, i: usize) {
        for &d in self.plan.consumers(i) {
            self.deps_left[d] -= 1;
            if self.deps_left[d] == 0 && self.selected[d] {
                self.ready.push_back(d);
            }
        }
    }

    fn fail(&mut self, i: usize, key: Option<String>, seconds: f64, error: String) {
        self.broken[i] = true;
        self.n_failed += 1;
        self.outcomes[i] = Some(Outcome::new(&self.plan.instances[i], key, Status::Failed, seconds, Some(error)));
        if !self.opts.keep_going {
            self.stop = true;
        }
    }

    /// Resolves every ready instance: skip it, hit the cache, or queue it to run. Ready
    /// instances are taken a wave at a time: their keys are computed in order, then looked up
    /// in the cache in parallel (a large matrix is thousands of independent lookups: reading
    /// and checking run records), then settled in order; what they release is the next wave.
    fn settle_ready(&mut self) {
        while !self.ready.is_empty() {
            let wave: Vec<usize> = self.ready.drain(..).collect();
            let mut keyed: Vec<(usize, KeyInput)> = Vec::new();
            for i in wave {
                let inst = &self.plan.instances[i];
                let upstream_broken = inst.inputs.values().flatten().any(|b| self.broken[b.instance]);
                if upstream_broken || self.stop || CANCEL.load(Ordering::Relaxed) {
                    self.broken[i] = true;
                    self.outcomes[i] = Some(Outcome::new(inst, None, Status::Skipped, 0.0, None));
                    self.release(i);
                    continue;
                }
                let ext = match external_hashes(self.store, self.root, inst) {
                    Ok(e) => e,
                    Err(e) => {
                        self.log(format!("FAILED  {}: {e}", inst.name));
                        self.fail(i, None, 0.0, e);
                        self.release(i);
                        continue;
                    }
                };
                let ki = key_input(self.plan, i, &self.outputs, &ext).expect("inputs of a ready instance are known");
                keyed.push((i, ki));
            }
            // Hashing the keys and looking them up are independent per instance: the lookup index
            // answers for records it has read before (one stat each), the rest are read.
            let (store, plan, force, lookup) = (self.store, self.plan, &self.opts.force, &self.lookup);
            let found: Vec<(String, Option<Hit>)> = {
                use rayon::prelude::*;
                keyed
                    .par_iter()
                    .map(|(i, ki)| {
                        let key = ki.key();
                        let outputs = &plan.instances[*i].outputs;
                        let hit =
                            if plan.named(*i, force) { None } else { store.lookup_indexed(&key, outputs, lookup) };
                        (key, hit)
                    })
                    .collect()
            };
            for ((i, ki), (key, hit)) in keyed.into_iter().zip(found) {
                let inst = &self.plan.instances[i];
                self.keys[i] = Some(key.clone());
                if let Some(hit) = hit {
                    self.key_inputs[i] = Some(ki);
                    self.n_cached += 1;
                    self.overall.inc(1);
                    if let Some(e) = hit.fresh {
                        self.fresh.insert(key.clone(), e);
                    }
                    self.outputs[i] = Some(hit.outputs);
                    self.outcomes[i] = Some(Outcome::new(inst, Some(key), Status::Cached, 0.0, None));
                    self.records[i] = hit.record;
                    self.release(i);
                    continue;
                }
                self.key_inputs[i] = Some(ki.clone());
                if self.opts.dry_run {
                    self.outcomes[i] = Some(Outcome::new(inst, Some(key), Status::WouldRun, 0.0, None));
                    // Downstream keys are unknown until this runs: they would run too.
                    self.broken[i] = true;
                    self.release(i);
                    continue;
                }
                self.expect(i);
                let shares = super::shares_threads(&self.plan.instances[i]);
                self.sharing += usize::from(shares);
                self.to_run.insert((self.position[i], i), (ki, key, shares));
            }
        }
    }

    /// Remembers how long instance `i` took when it last ran at the same params (its run
    /// record), and shows the ETA those durations give.
    fn expect(&mut self, i: usize) {
        if !self.opts.bars {
            return;
        }
        let inst = &self.plan.instances[i];
        let rec = self.previous.get(&inst.name).and_then(|ki| self.store.read_record(&ki.key()));
        if let Some(r) = rec.filter(|r| r.key_input.params == inst.params) {
            self.expected.insert(i, r.seconds);
        }
        self.show_eta();
    }

    /// "~1m20s of recorded work left (12 of 15 instances known)": the durations the instances
    /// still to finish took when they last ran at the same params, one after another (an upper
    /// bound when several run at once; instances never run before are not counted).
    fn show_eta(&self) {
        let left = self.to_run.len() + self.running;
        if self.expected.is_empty() || left == 0 {
            self.overall.set_message("");
            return;
        }
        let secs: f64 = self.expected.values().sum();
        let t =
            if secs >= 60.0 { format!("{}m{:02}s", secs as u64 / 60, secs as u64 % 60) } else { format!("{secs:.0}s") };
        self.overall
            .set_message(format!("~{t} of recorded work left ({} of {left} instances known)", self.expected.len()));
    }

    /// Hands queued instances to `spawn` while the budget allows (one job always may run), in
    /// plan order. The budget is threads for the local executor, jobs in flight for a cluster.
    fn dispatch(&mut self, mut spawn: impl FnMut(usize, Job<'a>, usize)) {
        while let Some(&(_, i)) = self.to_run.keys().next() {
            let inst = &self.plan.instances[i];
            let budget = Budget { jobs: self.jobs, free: self.free, sharing: self.sharing };
            let threads = self.executor.threads(inst, &budget);
            let want = self.executor.slots(threads).clamp(1, self.jobs);
            if self.stop || CANCEL.load(Ordering::Relaxed) || (want > self.free && self.running > 0) {
                break;
            }
            let (key_input, key, shares) = self.to_run.pop_first().unwrap().1;
            self.sharing -= usize::from(shares);
            let granted = want.min(self.free.max(1));
            self.free = self.free.saturating_sub(granted);
            self.running += 1;
            let bar = self.multi.add(ProgressBar::new(0));
            // A spinner with the time until the stage reports a count (epochs, steps, rows).
            bar.set_style(ProgressStyle::with_template("  {spinner} {prefix} {wide_msg} {elapsed}").unwrap());
            if self.opts.bars {
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
            }
            bar.set_prefix(inst.name.clone());
            let job = Job {
                inst,
                key,
                key_input,
                inputs: self.artifacts(i),
                threads,
                force: self.plan.named(i, &self.opts.force),
                root: self.root,
                bar,
            };
            spawn(i, job, granted);
        }
    }

    /// The stored artifacts bound to each input slot of `i`.
    fn artifacts(&self, i: usize) -> BTreeMap<String, Vec<InputArtifact>> {
        let mut inputs = BTreeMap::new();
        for (slot, binds) in &self.plan.instances[i].inputs {
            let arts = binds
                .iter()
                .map(|b| {
                    let o = &self.outputs[b.instance].as_ref().unwrap()[&b.output];
                    super::artifact(self.plan, self.store, b, &o.hash)
                })
                .collect();
            inputs.insert(slot.clone(), arts);
        }
        inputs
    }

    /// Records a finished job.
    fn finish(&mut self, (i, granted, r, secs): Done) {
        self.running -= 1;
        self.expected.remove(&i);
        self.show_eta();
        self.free += granted;
        self.overall.inc(1);
        let inst = &self.plan.instances[i];
        match r {
            Ok(computed) => {
                let (status, seconds) = match &computed {
                    Computed::Cached(_) => {
                        self.n_cached += 1;
                        (Status::Cached, 0.0)
                    }
                    Computed::Ran(rec) => {
                        self.n_ran += 1;
                        self.log(format!("ran     {} ({:.2}s)", inst.name, rec.seconds));
                        (Status::Ran, secs)
                    }
                };
                let rec = computed.into_record();
                if let Some(e) = self.store.record_id(&rec.key).and_then(|id| Entry::new(id, &rec.outputs)) {
                    self.fresh.insert(rec.key.clone(), e);
                }
                self.keys[i] = Some(rec.key.clone());
                self.outputs[i] = Some(rec.outputs.clone());
                self.outcomes[i] = Some(Outcome::new(inst, Some(rec.key.clone()), status, seconds, None));
                self.records[i] = Some(rec);
            }
            Err(e) => {
                self.log(format!("FAILED  {} ({}): {e}", inst.name, inst.stage.kind()));
                self.fail(i, None, secs, e.to_string());
            }
        }
        self.release(i);
    }

    /// Brings the pipeline's status index and lookup index up to date, writing nothing when
    /// this run settled every instance at the key the lookup index already has and read no
    /// record it lacked (a no-op rerun). The status index is written first: the lookup index
    /// never names a key the status index does not. Neither is needed for a correct result: a
    /// read-only or full cache only warns.
    fn write_indexes(&mut self) {
        let plan = self.plan;
        let moved = (0..plan.instances.len()).any(|i| {
            self.keys[i].as_ref().is_some_and(|k| self.lookup.key_of(&plan.instances[i].name) != digest(k).as_ref())
        });
        let path = &plan.spec.path;
        if !moved && self.fresh.is_empty() && self.store.index_path(path).exists() {
            return;
        }
        let updates: BTreeMap<String, KeyInput> = (0..plan.instances.len())
            .filter_map(|i| Some((plan.instances[i].name.clone(), self.key_inputs[i].take()?)))
            .collect();
        if let Err(e) = self.store.write_index(path, &updates) {
            tracing::warn!("{e}; `repro status` will explain less until it can be written");
            return;
        }
        let (mut instances, mut entries) = std::mem::take(&mut self.lookup).into_maps();
        for (i, inst) in plan.instances.iter().enumerate() {
            if let Some(d) = self.keys[i].as_deref().and_then(digest) {
                instances.insert(inst.name.clone(), d);
            }
        }
        entries.extend(self.fresh.drain().filter_map(|(k, e)| Some((digest(&k)?, e))));
        if let Err(e) = self.store.write_lookup(path, &LookupIndex::new(instances, entries)) {
            tracing::warn!("{e}; the next run will read every run record again");
        }
    }

    /// Reads the run records the lookup index answered for without reading them, where the
    /// caller needs them: every one with `all_records`, else those of report instances and
    /// everything upstream of them (their provenance).
    fn read_records(&mut self) {
        let plan = self.plan;
        let mut want = vec![self.opts.all_records; plan.instances.len()];
        for (i, inst) in plan.instances.iter().enumerate() {
            if inst.report.is_some() {
                want[i] = true;
                for u in plan.upstream(i) {
                    want[u] = true;
                }
            }
        }
        let missing: Vec<(usize, &String)> = (0..plan.instances.len())
            .filter(|&i| want[i] && self.records[i].is_none() && self.outputs[i].is_some())
            .filter_map(|i| Some((i, self.keys[i].as_ref()?)))
            .collect();
        let store = self.store;
        let read: Vec<(usize, Option<Record>)> = {
            use rayon::prelude::*;
            missing.par_iter().map(|(i, k)| (*i, store.read_record(k))).collect()
        };
        for (i, rec) in read {
            if rec.is_none() {
                tracing::warn!("the run record of {} vanished during the run", plan.instances[i].name);
            }
            self.records[i] = rec;
        }
    }
}
