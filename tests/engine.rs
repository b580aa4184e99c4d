//! The engine's behaviour end to end, with the `command` stage (shell one-liners) so that
//! every test runs in milliseconds: what reruns, what stays cached, crash safety, corruption,
//! concurrency, exit codes.

mod common;
use common::{with_status, Proj};

const CHAIN: &str = r#"
[pipeline]
name = "chain"
seed = 1

[vars]
n = 3
suffix = "x"

[stage.a]
kind = "command"
run = ["sh", "-c", "echo ${n} > {out:out}"]

[stage.b]
kind = "command"
inputs = ["a"]
run = ["sh", "-c", "cat {in0} > {out:out}; echo ${suffix} >> {out:out}"]

[stage.c]
kind = "command"
inputs = ["b"]
run = ["sh", "-c", "cat {in0} {in0} > {out:out}"]

[stage.d]
kind = "command"
inputs = ["a"]
matrix = { rep = [1, 2] }
run = ["sh", "-c", "cat {in0} > {out:out}; echo ${rep} >> {out:out}"]

[stage.all]
kind = "command"
inputs = ["d[*]", "c"]
run = ["sh", "-c", "cat {in} > {out:out}"]
"#;

#[test]
fn first_run_executes_every_stage_and_a_second_run_none() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    let first = p.run_json(&["pipelines/chain.toml"]);
    assert_eq!(first["ran"], 6);
    assert_eq!(first["failed"], 0);
    let second = p.run_json(&["pipelines/chain.toml"]);
    assert_eq!(second["ran"], 0);
    assert_eq!(second["cached"], 6);
}

#[test]
fn changing_one_param_reruns_exactly_its_downstream() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    p.run_json(&["pipelines/chain.toml"]);
    let doc = p.run_json(&["pipelines/chain.toml", "--set", "suffix=y"]);
    assert_eq!(with_status(&doc, "ran"), vec!["all", "b", "c"]);
    assert_eq!(with_status(&doc, "cached"), vec!["a", "d[rep=1]", "d[rep=2]"]);
}

#[test]
fn renaming_reordering_and_comments_rerun_nothing() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    p.run_json(&["pipelines/chain.toml"]);
    // Stage `b` renamed to `middle`, keys reordered, comments and blank lines added.
    let edited = r#"
# a comment
[pipeline]
seed = 1
name = "chain"

[vars]
suffix = "x"   # trailing comment
n = 3

[stage.all]
inputs = ["d[*]", "c"]
kind = "command"
run = ["sh", "-c", "cat {in} > {out:out}"]

[stage.c]
run = ["sh", "-c", "cat {in0} {in0} > {out:out}"]
inputs = ["middle"]
kind = "command"

[stage.middle]
kind = "command"
run = ["sh", "-c", "cat {in0} > {out:out}; echo ${suffix} >> {out:out}"]
inputs = ["a"]

[stage.d]
matrix = { rep = [1, 2] }
kind = "command"
inputs = ["a"]
run = ["sh", "-c", "cat {in0} > {out:out}; echo ${rep} >> {out:out}"]

[stage.a]
kind = "command"
run = ["sh", "-c", "echo ${n} > {out:out}"]
"#;
    p.write("pipelines/chain.toml", edited);
    let doc = p.run_json(&["pipelines/chain.toml"]);
    assert_eq!(doc["ran"], 0, "{doc}");
    assert_eq!(doc["cached"], 6);
}

#[test]
fn an_upstream_change_with_identical_bytes_leaves_downstream_cached() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    p.run_json(&["pipelines/chain.toml"]);
    // printf writes the same bytes as echo: `a` reruns, its output hash is unchanged.
    let same_bytes = CHAIN.replace("echo ${n} > {out:out}", "printf '%s\\n' ${n} > {out:out}");
    p.write("pipelines/chain.toml", &same_bytes);
    let doc = p.run_json(&["pipelines/chain.toml"]);
    assert_eq!(with_status(&doc, "ran"), vec!["a"]);
    assert_eq!(doc["cached"], 5);
}

#[test]
fn status_explains_field_by_field() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    let out = p.repro(&["status", "pipelines/chain.toml"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("stale  a: new"), "{text}");
    p.run_json(&["pipelines/chain.toml"]);
    let out = p.repro(&["status", "pipelines/chain.toml", "--set", "n=4"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(r#"stale  a: params.run: ["sh","-c","echo 3 > {out:out}"] → ["sh","-c","echo 4 > {out:out}"]"#),
        "{text}"
    );
    assert!(text.contains("stale  b: input a is stale"), "{text}");
    let out = p.repro(&["status", "pipelines/chain.toml", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["stages"].as_array().unwrap().iter().all(|s| s["status"] == "fresh"));
}

#[test]
fn kill_9_mid_stage_leaves_nothing_trusted_and_a_rerun_completes() {
    let p = Proj::new();
    let mark = p.path("started");
    let text = format!(
        r#"
[stage.slow]
kind = "command"
run = ["sh", "-c", "if [ ! -f {mark} ]; then touch {mark}; echo partial > {{out:out}}; sleep 60; fi; echo done > {{out:out}}"]

[stage.after]
kind = "command"
inputs = ["slow"]
run = ["sh", "-c", "cat {{in0}} > {{out:out}}"]
"#,
        mark = mark.display()
    );
    p.write("pipelines/k.toml", &text);
    let mut child = p.cmd(&["run", "pipelines/k.toml", "-q"]).spawn().unwrap();
    let t0 = std::time::Instant::now();
    while !mark.exists() {
        assert!(t0.elapsed().as_secs() < 30, "stage never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // No record exists for the killed stage, so nothing is trusted; the rerun completes.
    let runs: Vec<_> = walk(&p.path("cache/runs"));
    assert!(runs.is_empty(), "{runs:?}");
    let doc = p.run_json(&["pipelines/k.toml"]);
    assert_eq!(doc["ran"], 2, "{doc}");
    let out = p.repro(&["run", "pipelines/k.toml", "--json"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["cached"], 2);
    let objs = walk(&p.path("cache/objects"));
    let contents: Vec<String> = objs.iter().map(|o| std::fs::read_to_string(o).unwrap()).collect();
    assert!(contents.iter().all(|c| c == "done\n"), "{contents:?}");
    let verify = p.repro(&["verify"]);
    assert!(verify.status.success());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn corrupt_object_of(p: &Proj, content: &str) -> std::path::PathBuf {
    let obj = walk(&p.path("cache/objects"))
        .into_iter()
        .find(|o| std::fs::read_to_string(o).ok().as_deref() == Some(content))
        .expect("object");
    let mut perm = std::fs::metadata(&obj).unwrap().permissions();
    #[expect(
        clippy::permissions_set_readonly_false,
        reason = "the test makes a read-only object writable to corrupt it"
    )]
    perm.set_readonly(false);
    std::fs::set_permissions(&obj, perm).unwrap();
    // Same length, different bytes, and an older mtime would not save it either: the
    // mtime check triggers a rehash.
    std::fs::write(&obj, content.replace('3', "7")).unwrap();
    obj
}

#[test]
fn a_corrupted_object_is_detected_by_verify_and_recomputed_by_run() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    p.run_json(&["pipelines/chain.toml"]);
    corrupt_object_of(&p, "3\n");
    let v = p.repro(&["verify"]);
    assert_eq!(v.status.code(), Some(1));
    let text = String::from_utf8(v.stdout).unwrap();
    assert!(text.contains("1 corrupt"), "{text}");
    assert_eq!(walk(&p.path("cache/quarantine")).len(), 1);
    let doc = p.run_json(&["pipelines/chain.toml"]);
    assert_eq!(with_status(&doc, "ran"), vec!["a"], "only the lost object's stage recomputes: {doc}");
    assert!(p.repro(&["verify"]).status.success());
}

#[test]
fn run_itself_detects_a_corrupted_object_and_recomputes_it() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    p.run_json(&["pipelines/chain.toml"]);
    corrupt_object_of(&p, "3\n");
    let doc = p.run_json(&["pipelines/chain.toml"]);
    assert_eq!(with_status(&doc, "ran"), vec!["a"], "{doc}");
    assert!(p.repro(&["verify"]).status.success());
}

#[test]
fn two_concurrent_runs_both_succeed_and_each_stage_runs_once() {
    let p = Proj::new();
    let counter = p.path("counter");
    let text = format!(
        r#"
[stage.slow]
kind = "command"
matrix = {{ i = [1, 2, 3] }}
run = ["sh", "-c", "echo ${{i}} >> {c}; sleep 0.5; echo ${{i}} > {{out:out}}"]

[stage.join]
kind = "command"
inputs = ["slow[*]"]
run = ["sh", "-c", "echo join >> {c}; cat {{in}} > {{out:out}}"]
"#,
        c = counter.display()
    );
    p.write("pipelines/c.toml", &text);
    let a = p.cmd(&["run", "--json", "pipelines/c.toml"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let b = p.cmd(&["run", "--json", "pipelines/c.toml"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let da: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let db: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!(da["ran"].as_u64().unwrap() + db["ran"].as_u64().unwrap(), 4, "{da} {db}");
    let mut lines: Vec<String> = std::fs::read_to_string(&counter).unwrap().lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, vec!["1", "2", "3", "join"]);
}

#[test]
fn exit_codes_and_failure_messages() {
    let p = Proj::new();
    p.write(
        "pipelines/f.toml",
        r#"
[stage.ok]
kind = "command"
run = ["sh", "-c", "echo fine > {out:out}"]

[stage.bad]
kind = "command"
run = ["sh", "-c", "echo oh no >&2; exit 3"]

[stage.after_bad]
kind = "command"
inputs = ["bad"]
run = ["sh", "-c", "cat {in0} > {out:out}"]

[stage.no_output]
kind = "command"
run = ["true"]
"#,
    );
    let out = p.repro(&["run", "pipelines/f.toml", "--keep-going", "-j", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("FAILED  bad") && err.contains("oh no") && err.contains("exit status: 3"), "{err}");
    assert!(err.contains("did not write output `out`"), "{err}");
    let doc = p.run_json(&["pipelines/f.toml", "--keep-going"]);
    assert_eq!(with_status(&doc, "skipped"), vec!["after_bad"]);
    assert_eq!(with_status(&doc, "cached"), vec!["ok"]);
    // Invalid pipeline or usage: exit 2.
    assert_eq!(p.repro(&["run", "pipelines/missing.toml"]).status.code(), Some(2));
    assert_eq!(p.repro(&["run", "pipelines/f.toml", "--target", "nope"]).status.code(), Some(2));
    assert_eq!(p.repro(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn target_runs_only_what_it_needs_and_dry_run_runs_nothing() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    let dry = p.repro(&["run", "--dry-run", "pipelines/chain.toml"]);
    let text = String::from_utf8(dry.stdout).unwrap();
    assert!(text.contains("would run  a"), "{text}");
    assert!(!p.path("cache/runs").exists() || walk(&p.path("cache/runs")).is_empty());
    let doc = p.run_json(&["pipelines/chain.toml", "--target", "c"]);
    assert_eq!(with_status(&doc, "ran"), vec!["a", "b", "c"]);
    let forced = p.run_json(&["pipelines/chain.toml", "--target", "c", "--force", "b"]);
    assert_eq!(with_status(&forced, "ran"), vec!["b"]);
}

#[test]
fn gc_keeps_what_current_keys_reach() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    p.run_json(&["pipelines/chain.toml"]);
    p.run_json(&["pipelines/chain.toml", "--set", "n=5"]);
    let before = walk(&p.path("cache/objects")).len();
    let out = p.repro(&["gc", "--keep", "pipelines/chain.toml"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("freed "), "{text}");
    let after = walk(&p.path("cache/objects")).len();
    assert!(after < before, "{before} → {after}");
    let doc = p.run_json(&["pipelines/chain.toml"]);
    assert_eq!(doc["ran"], 0, "current pipeline still fully cached after gc");
}

#[test]
fn dag_formats() {
    let p = Proj::new();
    p.write("pipelines/chain.toml", CHAIN);
    let dot = String::from_utf8(p.repro(&["dag", "pipelines/chain.toml", "--format", "dot"]).stdout).unwrap();
    assert!(dot.starts_with("digraph pipeline {") && dot.contains("->"), "{dot}");
    let mm = String::from_utf8(p.repro(&["dag", "pipelines/chain.toml", "--format", "mermaid"]).stdout).unwrap();
    assert!(mm.starts_with("flowchart LR") && mm.contains("-->|out|"), "{mm}");
    let text = String::from_utf8(p.repro(&["dag", "pipelines/chain.toml"]).stdout).unwrap();
    assert!(text.contains("all (command) <- inputs=d[rep=1].out, inputs=d[rep=2].out, inputs=c.out"), "{text}");
}

#[test]
fn external_files_join_the_key_by_content() {
    let p = Proj::new();
    p.write("scripts/x.sh", "echo v1\n");
    p.write(
        "pipelines/s.toml",
        r#"
[stage.s]
kind = "command"
code = ["scripts/x.sh"]
run = ["sh", "-c", "sh $REPRO_ROOT/scripts/x.sh > {out:out}"]
"#,
    );
    assert_eq!(p.run_json(&["pipelines/s.toml"])["ran"], 1);
    assert_eq!(p.run_json(&["pipelines/s.toml"])["ran"], 0);
    p.write("scripts/x.sh", "echo v2\n");
    assert_eq!(p.run_json(&["pipelines/s.toml"])["ran"], 1);
}

/// A file reached through two includes (a diamond) is loaded once, so its stages are not
/// "defined twice"; an include cycle is still an error.
#[test]
fn diamond_includes_load_the_shared_file_once() {
    let p = Proj::new();
    p.write(
        "pipelines/common/base.toml",
        "[stage.x]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"echo 1 > {out:out}\"]\n",
    );
    p.write(
        "pipelines/common/a.toml",
        "include = [\"base.toml\"]\n[stage.ya]\nkind = \"command\"\ninputs = [\"x\"]\nrun = [\"sh\", \"-c\", \"cat {in0} > {out:out}\"]\n",
    );
    p.write(
        "pipelines/common/b.toml",
        "include = [\"base.toml\"]\n[stage.yb]\nkind = \"command\"\ninputs = [\"x\"]\nrun = [\"sh\", \"-c\", \"cat {in0} {in0} > {out:out}\"]\n",
    );
    p.write("pipelines/d.toml", "include = [\"common/a.toml\", \"common/b.toml\"]\n[pipeline]\nname = \"d\"\n");
    let doc = p.run_json(&["pipelines/d.toml"]);
    assert_eq!(doc["failed"], 0, "{doc}");
    assert_eq!(with_status(&doc, "ran"), vec!["x", "ya", "yb"]);

    p.write("pipelines/common/c1.toml", "include = [\"c2.toml\"]\n");
    p.write("pipelines/common/c2.toml", "include = [\"c1.toml\"]\n");
    p.write("pipelines/cyc.toml", "include = [\"common/c1.toml\"]\n[pipeline]\nname = \"cyc\"\n");
    let out = p.repro(&["dag", "pipelines/cyc.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("include cycle"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A stage that panics (here `train` on an empty dataset, a remainder by zero) used to leave
/// the scheduler waiting forever on a dead worker; now it is that stage's failure: its
/// message, exit code 1, and the process ends.
#[test]
fn a_stage_that_panics_fails_with_its_message_and_exit_1() {
    let p = Proj::new();
    p.write(
        "pipelines/p.toml",
        "[stage.iris]\nkind = \"load\"\ndataset = \"iris\"\nhead = 0\n\n[stage.fit]\nkind = \"train\"\ndata = \"iris\"\nhidden = []\nloss = { name = \"softmax_ce\" }\nepochs = 1\n",
    );
    let mut child = p.cmd(&["run", "pipelines/p.toml"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("repro run hung after a stage panicked");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FAILED  fit (train): stage panicked:"), "{stderr}");
    assert!(stderr.contains("remainder with a divisor of zero"), "{stderr}");
}

/// `resources.cpus` is the thread budget an instance gets from the local executor (recorded in
/// its run record) and is not part of its key: changing it reruns nothing.
#[test]
fn resources_cpus_is_the_local_thread_budget_and_not_part_of_the_key() {
    let p = Proj::new();
    p.write(
        "pipelines/r.toml",
        "[pipeline]\nname = \"r\"\n[vars]\ncpus = 3\n[stage.a]\nkind = \"command\"\nresources = { cpus = \"${cpus}\", mem = \"1G\", time = \"2h\" }\nrun = [\"sh\", \"-c\", \"echo 1 > {out:out}\"]\n",
    );
    assert_eq!(p.run_json(&["pipelines/r.toml", "--jobs", "4"])["ran"], 1);
    assert_eq!(common::recorded(&p)["a"].0, "3");
    let doc = p.run_json(&["pipelines/r.toml", "--set", "cpus=1"]);
    assert_eq!((doc["ran"].as_u64(), doc["cached"].as_u64()), (Some(0), Some(1)));
}

/// The local executor's thread rule. By default a multi-threaded kind without `resources.cpus`
/// gets its share of the free threads among such instances waiting: two ready at once with
/// `--jobs 2` get one each (and run side by side), one alone gets both. `[local] cpus` in
/// repro.toml fixes it instead, and `resources.cpus` wins over both. The run record says how
/// many threads ran; the outputs are the same bytes whatever the count, and the sidecar does
/// not name it.
#[test]
fn local_threads_are_shared_or_capped_and_change_no_output() {
    let threads = |p: &Proj| -> Vec<(String, String, String)> {
        common::recorded(p).into_iter().map(|(name, (t, out))| (name, t, out["out"].clone())).collect()
    };
    let pipeline = "[pipeline]\nname = \"c\"\n[stage.g]\nkind = \"synthetic_geo\"\nmatrix = { rep = [1, 2] }\nrows = 40\nlandmarks = 5\ntargets = 4\nfactors = 3\n[stage.one]\nkind = \"synthetic_geo\"\nresources = { cpus = 2 }\nrows = 40\nlandmarks = 5\ntargets = 4\nfactors = 3\n[stage.q]\nkind = \"quantile_normalize\"\ninput = \"one\"\nreport = \"q\"\n";
    let (shared, alone, capped) = (Proj::new(), Proj::new(), Proj::new());
    for p in [&shared, &alone, &capped] {
        p.write("pipelines/c.toml", pipeline);
    }
    capped.write("repro.toml", "[local]\ncpus = 1\n");
    assert_eq!(shared.run_json(&["pipelines/c.toml", "--jobs", "2"])["failed"], 0);
    assert_eq!(alone.run_json(&["pipelines/c.toml", "--jobs", "2", "--target", "g[rep=2]"])["ran"], 1);
    assert_eq!(capped.run_json(&["pipelines/c.toml", "--jobs", "2", "--target", "g[rep=2]"])["ran"], 1);
    let (s, a, c) = (threads(&shared), threads(&alone), threads(&capped));
    let names: Vec<&str> = s.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["g[rep=1]", "g[rep=2]", "one", "q"]);
    // g[rep=1] and g[rep=2] share; `one` holds its 2; q runs alone afterwards.
    assert_eq!(s.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["1", "1", "2", "2"]);
    assert_eq!((a[0].0.as_str(), a[0].1.as_str()), ("g[rep=2]", "2"));
    assert_eq!((c[0].0.as_str(), c[0].1.as_str()), ("g[rep=2]", "1"));
    assert_eq!(a[0].2, s[1].2, "g[rep=2] depends on its thread count");
    assert_eq!(c[0].2, s[1].2, "g[rep=2] depends on its thread count");
    let sidecar = std::fs::read_to_string(shared.path("reports/q.provenance.json")).unwrap();
    assert!(sidecar.contains("\"cpu_features\"") && !sidecar.contains("\"threads\""), "{sidecar}");
}

/// A misspelled resource or a bad value is an error at its place in the file.
#[test]
fn bad_resources_are_errors_with_their_place() {
    let p = Proj::new();
    p.write(
        "pipelines/r.toml",
        "[pipeline]\nname = \"r\"\n[stage.a]\nkind = \"command\"\nresources = { cpu = 2, time = \"2 hours\" }\nrun = [\"true\"]\n",
    );
    let out = p.repro(&["run", "pipelines/r.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown resource `cpu`") && err.contains("cpus, mem, time, gpus and partition"), "{err}");
    assert!(err.contains("`resources.time` must be a duration") && err.contains("r.toml:5:"), "{err}");
}

/// A `command` stage's stdout and stderr are kept with its run, after success and after
/// failure, and `repro log` prints them.
#[test]
fn command_output_is_kept_and_shown_by_repro_log() {
    let p = Proj::new();
    p.write(
        "pipelines/l.toml",
        "[pipeline]\nname = \"l\"\n[vars]\ncode = 0\n[stage.a]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"echo to-stdout; echo to-stderr >&2; echo 1 > {out:out}; exit ${code}\"]\n",
    );
    assert_eq!(p.run_json(&["pipelines/l.toml"])["ran"], 1);
    let text = String::from_utf8(p.repro(&["log", "pipelines/l.toml", "a"]).stdout).unwrap();
    assert!(text.contains("/stdout\nto-stdout\n") && text.contains("/stderr\nto-stderr\n"), "{text}");
    // A failing run keeps its output too (under the key of that run).
    assert_eq!(p.run_json(&["pipelines/l.toml", "--set", "code=4"])["failed"], 1);
    let text = String::from_utf8(p.repro(&["log", "pipelines/l.toml", "a", "--set", "code=4"]).stdout).unwrap();
    assert!(text.contains("to-stderr"), "{text}");
}

/// A data file that is not there stops the run before anything runs, at the place that named
/// it (here the var a param takes it from), with how many instances downstream need it; a
/// run targeting a branch that does not read it is not stopped.
#[test]
fn a_missing_data_file_is_found_before_anything_runs() {
    let p = Proj::new();
    p.write(
        "pipelines/m.toml",
        "[pipeline]\nname = \"m\"\n[vars]\ndata = \"data/missing.csv\"\n[stage.x]\nkind = \"command\"\ncode = [\"${data}\"]\nrun = [\"sh\", \"-c\", \"echo 1 > {out:out}\"]\n[stage.y]\nkind = \"command\"\ninputs = [\"x\"]\nrun = [\"sh\", \"-c\", \"cat {in0} > {out:out}\"]\n[stage.z]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"echo z > {out:out}\"]\n",
    );
    let out = p.repro(&["run", "pipelines/m.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("file `data/missing.csv` does not exist (read by stage `x`)"), "{err}");
    assert!(err.contains("m.toml:4:8") && err.contains("param `code` via var `data`"), "{err}");
    assert!(err.contains("1 instance(s) downstream need it"), "{err}");
    let records = std::fs::read_dir(p.path("cache/runs")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(records, 0, "something ran");
    assert_eq!(p.run_json(&["pipelines/m.toml", "--target", "z"])["ran"], 1);
}

/// A no-op rerun answered by the lookup index (#19: records not parsed) still reports, with
/// `--json`, the metrics each cached instance's run recorded: for `--json` the records are read.
#[test]
fn json_of_a_noop_rerun_keeps_the_metrics_of_cached_instances() {
    let p = Proj::new();
    p.write(
        "pipelines/p.toml",
        "[stage.iris]\nkind = \"load\"\ndataset = \"iris\"\n[stage.boston]\nkind = \"load\"\ndataset = \"boston\"\n",
    );
    let metrics = |doc: &serde_json::Value| -> Vec<serde_json::Value> {
        doc["stages"].as_array().unwrap().iter().map(|s| s["metrics"].clone()).collect()
    };
    let first = p.run_json(&["pipelines/p.toml"]);
    assert_eq!(first["ran"], 2);
    assert!(metrics(&first).iter().all(|m| m["rows"].is_u64()), "{first}");
    // The second run writes the lookup index's entries; the third is answered from them.
    for _ in 0..2 {
        let again = p.run_json(&["pipelines/p.toml"]);
        assert_eq!(again["cached"], 2, "{again}");
        assert_eq!(metrics(&again), metrics(&first));
    }
}
