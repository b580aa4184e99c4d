//! The Slurm executor against a real cluster: the one-node cluster `.ci/run` starts
//! (`.ci/slurm/start-local-cluster.sh`, Debian's slurm-wlm). Without one the tests say so and
//! pass, except under REPRO_REQUIRE_SLURM=1 (CI), where a missing cluster fails them.

mod common;
use common::{with_status, Proj};
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether a Slurm controller answers here. A busy controller can miss one `sinfo`: it is
/// asked up to ten times over five seconds before the cluster counts as absent.
fn slurm() -> bool {
    // Any state of a node that runs jobs (idle, mix, alloc, comp, …), not down or drained.
    let bad = ["down", "drain", "fail", "unk", "maint", "inval", "boot", "powered"];
    let answers = || {
        Command::new("sinfo").args(["-h", "-o", "%t"]).output().is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| !l.is_empty() && !bad.iter().any(|b| l.starts_with(b)))
        })
    };
    let up = (0..10).any(|k| {
        if k > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        answers()
    });
    if !up {
        assert!(
            std::env::var_os("REPRO_REQUIRE_SLURM").is_none(),
            "REPRO_REQUIRE_SLURM is set but no Slurm cluster answers"
        );
        eprintln!("note: no Slurm cluster answers `sinfo`; the Slurm tests are skipped (.ci/slurm/start-local-cluster.sh starts one)");
    }
    up
}

const CHAIN: &str = r#"
[pipeline]
name = "chain"
seed = 1

[stage.a]
kind = "command"
matrix = { n = [1, 2] }
run = ["sh", "-c", "echo ${n} > {out:out}"]

[stage.b]
kind = "command"
inputs = ["a[*]"]
resources = { cpus = 1, mem = "100M", time = "5m" }
run = ["sh", "-c", "cat {in} > {out:out}; echo done >> {out:out}"]
"#;

/// A project whose polls are fast (the default is 2 s).
fn project(pipeline: &str) -> Proj {
    let p = Proj::new();
    p.write("pipelines/p.toml", pipeline);
    p.write("repro.toml", "[slurm]\npoll_seconds = 0.2\n");
    p
}

/// Every run record of the project's cache (`cache/runs/ab/<key>.json`).
fn records(p: &Proj) -> Vec<serde_json::Value> {
    let Ok(shards) = std::fs::read_dir(p.path("cache/runs")) else { return vec![] };
    shards
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect()
}

/// The content hashes of every object of the project's cache, sorted.
fn objects(p: &Proj) -> Vec<String> {
    let mut v: Vec<String> = records(p)
        .iter()
        .flat_map(|r| {
            r["outputs"]
                .as_object()
                .unwrap()
                .values()
                .map(|o| o["hash"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_instance_runs_as_a_job_a_rerun_submits_nothing_and_results_match_a_local_run() {
    if !slurm() {
        return;
    }
    let p = project(CHAIN);
    let doc = p.run_json(&["pipelines/p.toml", "--executor", "slurm"]);
    assert_eq!((doc["ran"].as_u64(), doc["failed"].as_u64()), (Some(3), Some(0)), "{doc}");
    // Each record names the Slurm job that computed it, each a different one.
    let mut ids: Vec<String> = records(&p)
        .iter()
        .map(|r| r["environment"]["slurm_job_id"].as_str().expect("no slurm_job_id").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    // The job's logs are kept and `repro log` shows them.
    let out = p.repro(&["log", "pipelines/p.toml", "b"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("slurm-") && text.contains("ran b in"), "{text}");
    // A rerun submits nothing.
    let again = p.run_json(&["pipelines/p.toml", "--executor", "slurm"]);
    assert_eq!((again["ran"].as_u64(), again["cached"].as_u64()), (Some(0), Some(3)), "{again}");
    // The same objects as a local run.
    let local = project(CHAIN);
    assert_eq!(local.run_json(&["pipelines/p.toml"])["ran"], 3);
    assert_eq!(objects(&local), objects(&p));
}

#[test]
fn a_failing_job_shows_its_stderr() {
    if !slurm() {
        return;
    }
    let p = project(
        "[pipeline]\nname = \"bad\"\n[stage.boom]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"echo the-disk-is-on-fire >&2; exit 3\"]\n",
    );
    let out = p.repro(&["run", "pipelines/p.toml", "--executor", "slurm"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the-disk-is-on-fire"), "{err}");
    assert!(err.contains("Slurm job") && err.contains("ended FAILED without a result"), "{err}");
}

/// Waits until our job named `repro:p:<instance>` is RUNNING; its id.
fn running_job(instance: &str) -> String {
    let t0 = Instant::now();
    loop {
        let out = Command::new("squeue").args(["-h", "-t", "RUNNING", "-o", "%i %j"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if let Some(l) = text.lines().find(|l| l.ends_with(&format!("repro:p:{instance}"))) {
            return l.split_whitespace().next().unwrap().to_string();
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the job never ran: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn job_state(id: &str) -> String {
    let out = Command::new("squeue").args(["-h", "-t", "all", "-o", "%T", "-j", id]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const SLOW: &str = "[pipeline]\nname = \"slow\"\n[stage.nap]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"sleep 20; echo ok > {out:out}\"]\n";

#[test]
fn ctrl_c_cancels_the_jobs_in_flight() {
    if !slurm() {
        return;
    }
    let p = project(SLOW);
    let mut child = p.cmd(&["run", "pipelines/p.toml", "--executor", "slurm"]).spawn().unwrap();
    let id = running_job("nap");
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let t0 = Instant::now();
    while !matches!(job_state(&id).as_str(), "CANCELLED" | "") {
        assert!(t0.elapsed() < Duration::from_secs(20), "job {id} still {}", job_state(&id));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(records(&p).is_empty(), "a cancelled job left a record");
}

#[test]
fn a_job_killed_by_scancel_leaves_nothing_corrupt_and_is_recomputed() {
    if !slurm() {
        return;
    }
    let p = project(SLOW);
    let child = p
        .cmd(&["run", "--json", "pipelines/p.toml", "--executor", "slurm"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = running_job("nap");
    assert!(Command::new("scancel").arg(&id).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(with_status(&doc, "failed"), ["nap"]);
    assert!(doc["stages"][0]["error"].as_str().unwrap().contains("CANCELLED"), "{doc}");
    let v = p.repro(&["verify"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    // Rerun locally (quicker): it computes the stage, nothing stale is trusted.
    let p2 = p.run_json(&["pipelines/p.toml"]);
    assert_eq!(p2["ran"], 1, "{p2}");
}
