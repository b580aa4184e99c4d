//! The engine with fake stages: no stage library, no polars. Each fake is a few lines; the
//! tests run real pipelines files through spec → plan → exec → store.

use repro_core::{stage_params, Ctx, InputSlot, Metrics, Registry, Stage, StageResult, TypedStage};
use repro_engine::exec::{self, LocalExecutor, RunOptions, Status};
use repro_engine::plan::plan;
use repro_engine::spec::{self, Overrides};
use repro_engine::store::Store;
use std::path::Path;

stage_params! {
    /// Params of the fakes.
    pub struct FakeParams {
        /// What `write` writes.
        text: String = String::new(),
    }
}

/// Writes `text` and the seed it sees; declares randomness.
struct Write;
impl TypedStage for Write {
    type Params = FakeParams;
    const KIND: &'static str = "write";
    const VERSION: u32 = 1;
    const DOC: &'static str = "writes its text and seed";
    const INPUTS: &'static [InputSlot] = &[];
    fn run(&self, p: &FakeParams, ctx: &Ctx) -> StageResult<Metrics> {
        std::fs::write(ctx.output("out"), format!("{} {}", p.text, ctx.seed))?;
        Ok(Metrics::new())
    }
}

/// Copies its input and appends the seed it sees; declares no randomness.
struct Copy;
impl TypedStage for Copy {
    type Params = FakeParams;
    const KIND: &'static str = "copy";
    const VERSION: u32 = 1;
    const DOC: &'static str = "copies its input and the seed it sees";
    const INPUTS: &'static [InputSlot] = &[InputSlot::one("input", "anything")];
    const USES_SEED: bool = false;
    fn run(&self, _p: &FakeParams, ctx: &Ctx) -> StageResult<Metrics> {
        let text = std::fs::read_to_string(&ctx.input("input")?.path)?;
        std::fs::write(ctx.output("out"), format!("{text} | seed {} base {}", ctx.seed, ctx.base_seed))?;
        Ok(Metrics::new())
    }
}

/// Panics, on a rayon worker when `text` says so (as a panicking parallel kernel would).
struct Panic;
impl TypedStage for Panic {
    type Params = FakeParams;
    const KIND: &'static str = "panic";
    const VERSION: u32 = 1;
    const DOC: &'static str = "panics";
    const INPUTS: &'static [InputSlot] = &[InputSlot::optional("input", "anything")];
    fn run(&self, p: &FakeParams, _ctx: &Ctx) -> StageResult<Metrics> {
        if p.text == "worker" {
            use rayon::prelude::*;
            (0..64).into_par_iter().for_each(|i| assert!(i != 63, "boom on a worker"));
        }
        panic!("boom: {}", p.text);
    }
}

fn registry() -> Registry {
    static R: &[&dyn Stage] = &[&Write, &Copy, &Panic];
    R
}

/// Plans and runs `toml` in a fresh project; the summary and the store's directory.
fn run(toml: &str, keep_going: bool) -> (exec::Summary, Vec<Option<repro_engine::store::Record>>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipelines/p.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, toml).unwrap();
    let out = run_in(dir.path(), &file, keep_going);
    (out.0, out.1, dir)
}

fn run_in(root: &Path, file: &Path, keep_going: bool) -> (exec::Summary, Vec<Option<repro_engine::store::Record>>) {
    let spec = spec::load(file, &Overrides::default()).unwrap();
    let plan = plan(spec, registry()).unwrap();
    let store = Store::open(&root.join("cache")).unwrap();
    let opts = RunOptions { jobs: 2, keep_going, quiet: true, ..Default::default() };
    exec::run(&plan, &store, root, &opts, &LocalExecutor::default()).unwrap()
}

fn status_of(summary: &exec::Summary, name: &str) -> Status {
    summary.stages.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name}")).status
}

#[test]
fn a_panicking_stage_fails_with_its_message_and_never_hangs() {
    let toml = r#"
        [stage.a]
        kind = "panic"
        text = "in the body"
        [stage.after]
        kind = "copy"
        input = "a"
        [stage.other]
        kind = "write"
        text = "independent"
    "#;
    let (s, _, _dir) = run(toml, true);
    assert_eq!(s.failed, 1);
    let a = s.stages.iter().find(|o| o.name == "a").unwrap();
    assert_eq!(a.status, Status::Failed);
    assert_eq!(a.error.as_deref(), Some("stage panicked: boom: in the body"));
    assert_eq!(status_of(&s, "after"), Status::Skipped);
    assert_eq!(status_of(&s, "other"), Status::Ran, "keep-going lets independent branches finish");
}

#[test]
fn a_panic_on_a_rayon_worker_is_the_stage_failure_too() {
    let (s, _, _dir) = run("[stage.a]\nkind = \"panic\"\ntext = \"worker\"\n", false);
    let a = &s.stages[0];
    assert_eq!(a.status, Status::Failed);
    assert!(a.error.as_deref().unwrap().contains("boom on a worker"), "{:?}", a.error);
}

#[test]
fn a_stage_without_randomness_sees_seed_zero() {
    let toml =
        "[pipeline]\nseed = 7\n[stage.w]\nkind = \"write\"\ntext = \"x\"\n[stage.c]\nkind = \"copy\"\ninput = \"w\"\n";
    let (s, records, dir) = run(toml, false);
    assert_eq!(s.ran, 2);
    let record = |name: &str| records.iter().flatten().find(|r| r.instance == name).unwrap();
    let c = record("c");
    assert_eq!(c.key_input.seed, 0, "the key of a stage without randomness holds seed 0");
    let store = Store::open(&dir.path().join("cache")).unwrap();
    let text = std::fs::read_to_string(store.object_path(&c.outputs["out"].hash)).unwrap();
    assert!(text.ends_with("| seed 0 base 0"), "{text}");
    // The stage that declares randomness saw its real seed, which its key holds.
    let w = record("w");
    assert_ne!(w.key_input.seed, 0);
    assert!(text.starts_with(&format!("x {}", w.key_input.seed)), "{text}");
}

#[test]
fn a_second_run_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipelines/p.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "[stage.w]\nkind = \"write\"\ntext = \"x\"\n[stage.c]\nkind = \"copy\"\ninput = \"w\"\n")
        .unwrap();
    let (first, _) = run_in(dir.path(), &file, false);
    assert_eq!((first.ran, first.cached), (2, 0));
    let (second, _) = run_in(dir.path(), &file, false);
    assert_eq!((second.ran, second.cached), (0, 2));
}

/// The start-up cleanup removes old work directories of crashed runs, but never one whose
/// key is locked: a stage that runs for more than an hour keeps its work.
#[test]
fn cleanup_keeps_the_work_of_a_stage_still_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = "ab".repeat(32);
    let work = store.tmp_path(&format!("work-{key}"));
    std::fs::create_dir_all(&work).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::open(&work).unwrap().set_modified(two_hours_ago).unwrap();
    let lock = store.lock(&key, || {}).unwrap();
    store.clean_tmp();
    assert!(work.exists(), "removed while its key was locked");
    drop(lock);
    store.clean_tmp();
    assert!(!work.exists(), "an old, unlocked work directory is a crash's leftover");
}
