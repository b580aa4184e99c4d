//! Regression tests for the defects found by adversarial use (the hardening issue), each named
//! after what it prevents. Each failed (hung, escaped the project, or published corrupt
//! bytes) before its fix.

mod common;
use common::Proj;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command, killing it (and failing the test) if it outlives `limit`: a hang is a
/// failure, never a stuck test suite.
fn run_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            child.kill().unwrap();
            panic!("still running after {limit:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const WRITE: &str = "[stage.a]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"echo 3 > {out:out}\"]\n";

#[test]
fn a_var_that_refers_to_itself_is_an_error_not_a_hang() {
    let p = Proj::new();
    p.write("pipelines/p.toml", &format!("[vars]\nx_a = \"1\"\ny = \"${{x_${{y}}}}\"\n\n{WRITE}"));
    let o = run_within(p.cmd(&["run", "pipelines/p.toml"]), Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("var `y` refers to itself: y → y"), "{}", stderr(&o));
}

#[test]
fn a_closed_stdout_ends_quietly_instead_of_panicking() {
    let p = Proj::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // every write now fails with a broken pipe
    let o = p.cmd(&["stages", "--json"]).stdout(writer).stderr(Stdio::piped()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn report_names_cannot_write_outside_reports() {
    for report in ["../../escaped", "/tmp/repro-escaped-report", "a/b"] {
        let p = Proj::new();
        p.write("pipelines/p.toml", &format!("{WRITE}report = \"{report}\"\n"));
        let o = p.repro(&["run", "pipelines/p.toml"]);
        assert_eq!(o.status.code(), Some(2), "{report}: {}", stderr(&o));
        assert!(stderr(&o).contains("bad report name"), "{report}: {}", stderr(&o));
    }
    // Through a var and --set too.
    let p = Proj::new();
    p.write("pipelines/p.toml", &format!("[vars]\nname = \"ok\"\n\n{WRITE}report = \"${{name}}\"\n"));
    let o = p.repro(&["run", "pipelines/p.toml", "--set", "name=../../escaped"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!p.dir.path().parent().unwrap().join("escaped.out").exists());
}

#[test]
fn output_names_cannot_become_paths() {
    let p = Proj::new();
    p.write(
        "pipelines/p.toml",
        "[stage.d]\nkind = \"synthetic_linear\"\n\n[stage.s]\nkind = \"split\"\ninput = \"d\"\nnames = [\"/tmp/repro-escaped-part\", \"b\"]\nfractions = [0.5, 0.5]\n",
    );
    let o = p.repro(&["run", "pipelines/p.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad output name"), "{}", stderr(&o));
    assert!(!Path::new("/tmp/repro-escaped-part").exists());
}

#[test]
fn stage_names_that_are_not_plain_are_rejected() {
    for name in ["\"\"", "\"a[b=1]\"", "\"a.b\""] {
        let p = Proj::new();
        p.write("pipelines/p.toml", &format!("[stage.{name}]\nkind = \"command\"\nrun = [\"true\"]\n"));
        let o = p.repro(&["run", "pipelines/p.toml"]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("bad stage name"), "{name}: {}", stderr(&o));
    }
}

#[test]
fn includes_cannot_read_files_outside_the_project() {
    let p = Proj::new();
    p.write("pipelines/p.toml", &format!("include = [\"/etc/passwd\"]\n\n{WRITE}"));
    let o = p.repro(&["run", "pipelines/p.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot include `/etc/passwd`: not a .toml file"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("root:"), "the file's content must not be echoed: {}", stderr(&o));
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.toml"), "[vars]\nz = 1\n").unwrap();
    p.write("pipelines/q.toml", &format!("include = [\"{}\"]\n\n{WRITE}", outside.path().join("x.toml").display()));
    let o = p.repro(&["run", "pipelines/q.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("outside the project"), "{}", stderr(&o));
}

#[test]
fn deeply_nested_includes_are_an_error_not_a_stack_overflow() {
    let p = Proj::new();
    for i in 0..200 {
        p.write(&format!("pipelines/inc/{i}.toml"), &format!("include = [\"{}.toml\"]\n", i + 1));
    }
    p.write("pipelines/inc/200.toml", "");
    p.write("pipelines/p.toml", &format!("include = [\"inc/0.toml\"]\n\n{WRITE}"));
    let o = run_within(p.cmd(&["run", "pipelines/p.toml"]), Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("includes nest deeper than 64 files"), "{}", stderr(&o));
}

#[test]
fn a_huge_matrix_is_refused_at_plan_time() {
    let p = Proj::new();
    let axis: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    p.write(
        "pipelines/p.toml",
        &format!(
            "[stage.a]\nkind = \"command\"\nmatrix = {{ x = [{0}], y = [{0}] }}\nrun = [\"sh\", \"-c\", \"echo > {{out:out}}\"]\n",
            axis.join(",")
        ),
    );
    let o = run_within(p.cmd(&["run", "--dry-run", "pipelines/p.toml"]), Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("past 200000 instances (1000000 of its own)"), "{}", stderr(&o));
    assert!(stderr(&o).contains("REPRO_MAX_INSTANCES"), "{}", stderr(&o));
    // The limit is the user's to raise.
    let o = p.cmd(&["dag", "pipelines/p.toml"]).env("REPRO_MAX_INSTANCES", "10").output().unwrap();
    assert!(stderr(&o).contains("past 10 instances"), "{}", stderr(&o));
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_crafted_record_hash_is_never_used_as_a_path() {
    let p = Proj::new();
    p.write("pipelines/p.toml", WRITE);
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    let victim = p.path("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let rec = walk(&p.path("cache/runs")).pop().unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rec).unwrap()).unwrap();
    doc["outputs"]["out"]["hash"] = serde_json::json!("../../victim.txt");
    std::fs::write(&rec, serde_json::to_string(&doc).unwrap()).unwrap();
    let o = p.repro(&["run", "pipelines/p.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(walk(&p.path("cache/quarantine")).is_empty(), "nothing outside the store is quarantined");
    // A one-character hash neither panics.
    doc["outputs"]["out"]["hash"] = serde_json::json!("x");
    std::fs::write(&rec, serde_json::to_string(&doc).unwrap()).unwrap();
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
}

/// A record that lacks an output its stage now declares (a stage changed its outputs without a
/// VERSION bump) is a cache miss: the producer reruns and its consumer is fed, no panic.
#[test]
fn a_record_missing_a_declared_output_is_recomputed() {
    let p = Proj::new();
    let consumer = "[stage.b]\nkind = \"command\"\ninputs = \"a.out\"\nrun = [\"sh\", \"-c\", \"cat {in0} > {out:out}\"]\nreport = \"b\"\n";
    p.write("pipelines/p.toml", &format!("{WRITE}{consumer}"));
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    for rec in walk(&p.path("cache/runs")) {
        let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rec).unwrap()).unwrap();
        if doc["key_input"]["inputs"].as_object().is_some_and(|m| m.is_empty()) {
            doc["outputs"].as_object_mut().unwrap().remove("out");
            std::fs::write(&rec, serde_json::to_string(&doc).unwrap()).unwrap();
        }
    }
    std::fs::remove_file(p.path("reports/b.out")).unwrap();
    let o = p.repro(&["run", "pipelines/p.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("ran     a"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(p.path("reports/b.out")).unwrap(), "3\n");
}

#[cfg(unix)]
#[test]
fn gc_never_deletes_through_a_symlink() {
    let p = Proj::new();
    p.write("pipelines/p.toml", WRITE);
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("ab".repeat(32));
    std::fs::write(&precious, "precious").unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path("cache/objects/ab")).unwrap();
    let o = p.repro(&["gc", "--keep", "pipelines/p.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "precious");
    // Nor does the start-up cleanup of tmp/ follow a linked tmp/.
    let tmp_target = tempfile::tempdir().unwrap();
    let old = tmp_target.path().join("old-work");
    std::fs::create_dir(&old).unwrap();
    std::fs::remove_dir_all(p.path("cache/tmp")).unwrap();
    std::os::unix::fs::symlink(tmp_target.path(), p.path("cache/tmp")).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::open(&old).unwrap().set_modified(two_hours_ago).unwrap();
    p.repro(&["run", "pipelines/p.toml"]);
    assert!(old.exists(), "a linked tmp/ is left alone");
}

#[test]
fn a_corrupt_object_with_its_mtime_restored_is_never_published() {
    let p = Proj::new();
    p.write("pipelines/p.toml", &format!("{WRITE}report = \"r\"\n"));
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    std::fs::remove_file(p.path("reports/r.out")).unwrap();
    let obj = walk(&p.path("cache/objects")).pop().unwrap();
    let mtime = std::fs::metadata(&obj).unwrap().modified().unwrap();
    let mut perm = std::fs::metadata(&obj).unwrap().permissions();
    #[expect(clippy::permissions_set_readonly_false, reason = "the test corrupts a read-only object")]
    perm.set_readonly(false);
    std::fs::set_permissions(&obj, perm).unwrap();
    std::fs::write(&obj, "7\n").unwrap(); // same size, other bytes
    std::fs::File::options().write(true).open(&obj).unwrap().set_modified(mtime).unwrap();
    let o = p.repro(&["run", "pipelines/p.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("was corrupt; it has been quarantined"), "{}", stderr(&o));
    assert!(!p.path("reports/r.out").exists(), "corrupt bytes were published");
    // The next run recomputes it.
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(p.path("reports/r.out")).unwrap(), "3\n");
}

#[test]
fn verify_reports_missing_objects_and_garbage_records_by_class() {
    let p = Proj::new();
    p.write("pipelines/p.toml", WRITE);
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    let o = p.repro(&["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    std::fs::remove_file(walk(&p.path("cache/objects")).pop().unwrap()).unwrap();
    std::fs::create_dir_all(p.path("cache/runs/00")).unwrap();
    std::fs::write(p.path(&format!("cache/runs/00/{}.json", "0".repeat(64))), "not json").unwrap();
    let o = p.repro(&["verify"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "0 corrupt objects (quarantined), 1 unreadable or misfiled records, 1 records with missing objects"
        ),
        "{out}"
    );
    // And a run recomputes the stage whose object went missing.
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
}

#[test]
fn a_relative_cache_dir_works_for_command_stages() {
    let p = Proj::new();
    p.write(
        "pipelines/p.toml",
        &format!("{WRITE}\n[stage.b]\nkind = \"command\"\ninputs = [\"a\"]\nrun = [\"sh\", \"-c\", \"cat {{in0}} > {{out:out}}\"]\n"),
    );
    let o = p.repro(&["run", "--cache-dir", "relcache", "pipelines/p.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(p.path("relcache/runs").is_dir());
}

#[test]
fn invalid_utf8_in_a_pipeline_names_line_and_column() {
    let p = Proj::new();
    let mut bytes = b"[stage.a]\nkind = \"command\"\nrun = [\"ec".to_vec();
    bytes.extend([0xff, 0xfe]);
    bytes.extend(b"ho\"]\n");
    std::fs::write(p.path("pipelines/p.toml"), bytes).unwrap();
    let o = p.repro(&["run", "pipelines/p.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("pipelines/p.toml:3:11: the file is not valid UTF-8"), "{}", stderr(&o));
}

/// SIGTERM (what batch systems send) stops a run like Ctrl-C: a running `command` stage's
/// whole process group is signalled, the run ends with 130 within seconds, nothing is cached.
#[cfg(unix)]
#[test]
fn sigterm_stops_a_running_command_and_its_children() {
    let p = Proj::new();
    p.write(
        "pipelines/p.toml",
        "[stage.slow]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"echo $$ > \\\"$REPRO_ROOT/pid\\\"; sleep 60; echo done > {out:out}\"]\n",
    );
    let mut child = p.cmd(&["run", "pipelines/p.toml"]).stderr(Stdio::piped()).spawn().unwrap();
    let pid_file = p.path("pid");
    let t0 = Instant::now();
    while std::fs::read_to_string(&pid_file).map(|s| s.trim().is_empty()).unwrap_or(true) {
        assert!(t0.elapsed() < Duration::from_secs(30), "the stage never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let shell: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t1.elapsed() > Duration::from_secs(15) {
            child.kill().unwrap();
            panic!("repro did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(200));
    let alive = Command::new("kill").args(["-0", &shell.to_string()]).stderr(Stdio::null()).status().unwrap();
    assert!(!alive.success(), "the command's shell {shell} outlived the run");
    let st = p.repro(&["status", "pipelines/p.toml"]);
    assert!(String::from_utf8_lossy(&st.stdout).contains("stale  slow"), "{}", String::from_utf8_lossy(&st.stdout));
}

/// A chain of stages that each take a moment, with a report at the end.
fn torture_pipeline(p: &Proj) {
    p.write(
        "pipelines/t.toml",
        r#"
[stage.a]
kind = "command"
matrix = { i = [1, 2, 3, 4] }
run = ["sh", "-c", "sleep 0.05; echo ${i} > {out:out}"]

[stage.b]
kind = "command"
matrix = { i = [1, 2, 3, 4] }
inputs = ["a"]
run = ["sh", "-c", "sleep 0.05; cat {in0} {in0} > {out:out}"]

[stage.all]
kind = "command"
inputs = ["b[*]"]
run = ["sh", "-c", "cat {in} > {out:out}"]
report = "t"
"#,
    );
}

/// kill -9 at many moments of a run, each time followed by `verify` (nothing corrupt, no
/// record naming a missing object) and another killed run; then a run completes and its
/// report is byte-identical to an undisturbed run's.
#[test]
fn kill_9_at_any_moment_leaves_a_cache_that_verifies_and_completes_identically() {
    let clean = Proj::new();
    torture_pipeline(&clean);
    assert_eq!(clean.repro(&["run", "pipelines/t.toml", "-q"]).status.code(), Some(0));
    let want = std::fs::read(clean.path("reports/t.out")).unwrap();

    let p = Proj::new();
    torture_pipeline(&p);
    // Fixed delays spread over a run's life (a run takes ~0.3-0.5 s here), so the test is
    // repeatable; each kill lands in a different phase: planning, stages, records, publish.
    for ms in [5u64, 30, 60, 90, 120, 160, 200, 250, 320, 400] {
        let mut child = p.cmd(&["run", "pipelines/t.toml", "-q", "--jobs", "2"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        child.wait().unwrap();
        let v = p.repro(&["verify"]);
        assert_eq!(v.status.code(), Some(0), "after a kill at {ms} ms: {}", String::from_utf8_lossy(&v.stdout));
    }
    assert_eq!(p.repro(&["run", "pipelines/t.toml", "-q"]).status.code(), Some(0));
    assert_eq!(std::fs::read(p.path("reports/t.out")).unwrap(), want);
    let doc = p.run_json(&["pipelines/t.toml"]);
    assert_eq!(doc["ran"], 0, "{doc}");
}

/// Four processes on one cache at once: all succeed, and every stage runs exactly once in
/// total (the per-key locks make the others wait and then find it cached).
#[test]
fn four_concurrent_runs_compute_each_stage_once() {
    let p = Proj::new();
    torture_pipeline(&p);
    let runs: Vec<_> =
        (0..4).map(|_| p.cmd(&["run", "--json", "pipelines/t.toml"]).stdout(Stdio::piped()).spawn().unwrap()).collect();
    let mut ran = 0;
    for r in runs {
        let o = r.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(doc["failed"], 0, "{doc}");
        ran += doc["ran"].as_u64().unwrap();
    }
    assert_eq!(ran, 9, "4 + 4 + 1 stages, each computed once across the four processes");
    assert_eq!(p.repro(&["verify"]).status.code(), Some(0));
}

/// Sizes that cannot fit in memory are exit-2 errors at plan time naming the param and the
/// limit (they used to panic with a capacity overflow, or grow until the process died).
#[test]
fn absurd_sizes_are_refused_at_plan_time() {
    for (stage, param) in [
        ("kind = \"synthetic_linear\"\nn = 9223372036854775807\n", "param `n`"),
        ("kind = \"synthetic_geo\"\nrows = 100000000000\n", "param `rows`"),
        ("kind = \"train\"\ndata = \"d\"\nhidden = [100000000, 100000000]\n", "param `hidden`"),
        ("kind = \"train\"\ndata = \"d\"\nepochs = 9223372036854775807\n", "param `epochs`"),
    ] {
        let p = Proj::new();
        p.write("pipelines/p.toml", &format!("[stage.d]\nkind = \"synthetic_linear\"\n\n[stage.s]\n{stage}"));
        let o = run_within(p.cmd(&["run", "pipelines/p.toml"]), Duration::from_secs(30));
        assert_eq!(o.status.code(), Some(2), "{stage}: {}", stderr(&o));
        assert!(stderr(&o).contains(param) && stderr(&o).contains("REPRO_MAX_MEMORY_GB"), "{stage}: {}", stderr(&o));
    }
}

/// Runs `repro` as a user that file permissions apply to: directly when the tests do not run
/// as root, else as `nobody` through util-linux's `setpriv` (root ignores permission bits).
fn unprivileged(p: &Proj, args: &[&str]) -> Output {
    let uid = Command::new("id").arg("-u").output().unwrap();
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    let mut c = if root {
        // A copy inside the (world-readable) project: the build directory may sit under a
        // home directory `nobody` cannot enter.
        use std::os::unix::fs::PermissionsExt;
        let bin = p.path("repro-bin");
        std::fs::copy(env!("CARGO_BIN_EXE_repro"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&bin);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_repro"))
    };
    c.args(args).current_dir(p.path("")).env_remove("REPRO_CACHE_DIR").env("NO_COLOR", "1");
    run_within(c, Duration::from_secs(60))
}

/// Makes everything under `dir` read-only (directories keep r-x so they can be read).
fn read_only(dir: &Path, ro: bool) {
    use std::os::unix::fs::PermissionsExt;
    for f in walk(dir).into_iter().chain([dir.to_path_buf()]) {
        let m = std::fs::symlink_metadata(&f).unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        let mode = match (m.is_dir(), ro) {
            (true, true) => 0o555,
            (false, true) => 0o444,
            (true, false) => 0o755,
            (false, false) => 0o644,
        };
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// A project the unprivileged user can read and whose reports/ it can write.
fn open_to_all(p: &Proj) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(p.path("reports")).unwrap();
    std::fs::set_permissions(p.path("reports"), std::fs::Permissions::from_mode(0o777)).unwrap();
    for f in walk(&p.path("pipelines")) {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

const REPORTED: &str =
    "[stage.a]\nkind = \"command\"\nreport = \"three\"\nrun = [\"sh\", \"-c\", \"echo 3 > {out:out}\"]\n";

/// A fully cached run needs nothing written to the cache: on a read-only cache it still
/// publishes its report (it failed: the status index was written first, and its error ended
/// the run).
#[test]
fn a_fully_cached_run_works_on_a_read_only_cache() {
    let p = Proj::new();
    p.write("pipelines/p.toml", REPORTED);
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    std::fs::remove_file(p.path("reports/three.out")).unwrap();
    open_to_all(&p);
    read_only(&p.path("cache"), true);
    let o = unprivileged(&p, &["run", "pipelines/p.toml"]);
    read_only(&p.path("cache"), false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(p.path("reports/three.out")).unwrap(), "3\n");
}

/// `gc` on a read-only cache frees nothing and says so (it reported the bytes it would have
/// freed as freed).
#[test]
fn gc_on_a_read_only_cache_counts_only_what_it_removed() {
    let p = Proj::new();
    p.write("pipelines/p.toml", REPORTED);
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    // Change the stage: its old record and object become garbage.
    p.write("pipelines/p.toml", &REPORTED.replace("echo 3", "echo 4"));
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    let before = walk(&p.path("cache")).len();
    open_to_all(&p);
    read_only(&p.path("cache"), true);
    let o = unprivileged(&p, &["gc", "--keep", "pipelines/p.toml"]);
    read_only(&p.path("cache"), false);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("freed 0 bytes: 0 objects, 0 run records"), "{out}{}", stderr(&o));
    assert_eq!(walk(&p.path("cache")).len(), before);
    // With write access the same gc frees the old entry.
    let o = p.repro(&["gc", "--keep", "pipelines/p.toml"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains(" bytes: 1 objects, 1 run records"), "{out}");
    assert!(!out.contains("freed 0 bytes"), "{out}");
}

/// The lookup index (#19) is a cache of the run records, never a source of truth: damaged, it
/// is rebuilt without rerunning anything; a record removed or edited after it was written is
/// read again (and a removed one recomputed); a no-op rerun leaves it untouched.
#[test]
fn the_lookup_index_never_answers_for_a_changed_record() {
    let p = Proj::new();
    let consumer =
        "[stage.b]\nkind = \"command\"\ninputs = \"a.out\"\nrun = [\"sh\", \"-c\", \"cat {in0} > {out:out}\"]\n";
    p.write("pipelines/p.toml", &format!("{WRITE}{consumer}"));
    assert_eq!(p.repro(&["run", "pipelines/p.toml"]).status.code(), Some(0));
    let lookup =
        || walk(&p.path("cache/index")).into_iter().find(|f| f.extension().is_some_and(|e| e == "lookup")).unwrap();
    let noop = |why: &str| {
        let o = p.repro(&["run", "pipelines/p.toml"]);
        assert_eq!(o.status.code(), Some(0), "{why}: {}", stderr(&o));
        assert!(!stderr(&o).contains("ran "), "{why}: {}", stderr(&o));
    };
    // A no-op rerun writes nothing.
    let before = std::fs::metadata(lookup()).unwrap().modified().unwrap();
    noop("no-op");
    assert_eq!(std::fs::metadata(lookup()).unwrap().modified().unwrap(), before);
    // Damaged: ignored, nothing reruns, and it is written anew.
    std::fs::write(lookup(), b"REPROLK1 not an index").unwrap();
    noop("damaged index");
    assert!(std::fs::read(lookup()).unwrap().len() > 40, "rebuilt");
    noop("rebuilt index");
    // A record removed behind the index's back (what gc does) is a miss: `a` reruns.
    let rec_a = walk(&p.path("cache/runs"))
        .into_iter()
        .find(|r| std::fs::read_to_string(r).unwrap().contains("\"instance\": \"a\""))
        .unwrap();
    std::fs::remove_file(&rec_a).unwrap();
    let o = p.repro(&["run", "pipelines/p.toml"]);
    assert!(stderr(&o).contains("ran     a"), "{}", stderr(&o));
    // A record edited in place to name an object that does not exist is read again, and so
    // is a miss (the index still names the old, intact object).
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rec_a).unwrap()).unwrap();
    doc["outputs"]["out"]["hash"] = serde_json::json!("cd".repeat(32));
    std::fs::write(&rec_a, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let o = p.repro(&["run", "pipelines/p.toml"]);
    assert!(stderr(&o).contains("ran     a"), "{}", stderr(&o));
    noop("after the reruns");
}
