//! Engine benchmarks (`cargo bench --bench engine`). Goals from the engine issue:
//! - no-op rerun of a 50-stage pipeline < 40 ms (DVC and Snakemake: ~0.9 s on the same machine)
//! - no-op rerun of a 1,000-stage pipeline < 100 ms
//! - planning a 10,000-instance matrix < 1 s; 100,000 instances < 1 s and < 500 MB (#19)
//! - no-op rerun of a 10,000-instance matrix < 100 ms (#19)
//! - hashing a 2 GB file in the page cache ≥ 4 GB/s on 2 cores (b3sum: 7.8 GB/s, sha256sum: 0.5)
//!
//! No-op reruns are timed as whole `repro run` processes (what a user waits for), the median of
//! 20. Set `REPRO_BENCH_HASH_GB` to change the hashed file's size (default 2).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pipeline(stages: usize) -> String {
    // A chain of 10 feeding a fan of `stages - 10` matrix instances: realistic depth and width.
    let mut s = String::from("[pipeline]\nname = \"bench\"\nseed = 1\n\n");
    s.push_str("[stage.s0]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"echo 0 > {out:out}\"]\n\n");
    for i in 1..10 {
        s.push_str(&format!(
            "[stage.s{i}]\nkind = \"command\"\ninputs = [\"s{}\"]\nrun = [\"sh\", \"-c\", \"cat {{in0}} > {{out:out}}; echo {i} >> {{out:out}}\"]\n\n",
            i - 1
        ));
    }
    let fan: Vec<String> = (0..stages - 10).map(|i| i.to_string()).collect();
    s.push_str(&format!(
        "[stage.fan]\nkind = \"command\"\ninputs = [\"s9\"]\nmatrix = {{ i = [{}] }}\nrun = [\"sh\", \"-c\", \"cat {{in0}} > {{out:out}}; echo ${{i}} >> {{out:out}}\"]\n",
        fan.join(", ")
    ));
    s
}

/// A 100 × (n/100) matrix of `synthetic_linear` (4 points each): the sweep shape.
fn matrix_pipeline(n: usize) -> String {
    let a: Vec<String> = (0..n / 100).map(|i| i.to_string()).collect();
    let b: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    format!(
        "[pipeline]\nname = \"sweep\"\n[stage.gen]\nkind = \"synthetic_linear\"\nn = 4\nmatrix = {{ a = [{}], b = [{}] }}\n",
        a.join(", "),
        b.join(", ")
    )
}

fn bench_noop(stages: usize, goal_ms: f64) {
    bench_noop_of(&format!("{stages} stages"), pipeline(stages), goal_ms)
}

fn bench_noop_of(what: &str, text: String, goal_ms: f64) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
    std::fs::write(dir.path().join("pipelines/p.toml"), text).unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_repro"))
            .args(["run", "-q", "pipelines/p.toml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let t0 = Instant::now();
    run();
    let cold = t0.elapsed();
    let times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed()
        })
        .collect();
    let m = median(times).as_secs_f64() * 1e3;
    println!(
        "no-op rerun, {what}: {m:8.1} ms median of 20 (goal < {goal_ms} ms; cold run {:.2} s)",
        cold.as_secs_f64()
    );
}

fn bench_plan(instances: usize) {
    let dir = tempfile::tempdir().unwrap();
    let vals: Vec<String> = (0..instances / 100).map(|i| i.to_string()).collect();
    let text = format!(
        "[stage.gen]\nkind = \"command\"\nrun = [\"true\"]\n\n[stage.big]\nkind = \"command\"\ninputs = [\"gen\"]\nmatrix = {{ a = [{}], b = [{}] }}\nrun = [\"sh\", \"-c\", \"echo ${{a}} ${{b}} > {{out:out}}\"]\n",
        vals.join(", "),
        (0..100).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    );
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    let times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let spec = repro_engine::spec::load(&path, &Default::default()).unwrap();
            let plan = repro_engine::plan::plan(spec, repro_stages::registry()).unwrap();
            assert_eq!(plan.instances.len(), instances + 1);
            t.elapsed()
        })
        .collect();
    println!(
        "planning a {instances}-instance matrix: {:8.1} ms median of 5 (goal < 1000 ms); peak memory of this process so far {}",
        median(times).as_secs_f64() * 1e3,
        peak_memory()
    );
}

/// The process's peak resident memory (Linux: `VmHWM` of /proc/self/status).
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l[6..].trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn bench_hash() {
    let gb: f64 = std::env::var("REPRO_BENCH_HASH_GB").ok().and_then(|v| v.parse().ok()).unwrap_or(2.0);
    let bytes = (gb * 1e9) as usize;
    let dir = tempfile::tempdir_in(Path::new(env!("CARGO_TARGET_TMPDIR"))).unwrap();
    let path = dir.path().join("big");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let block: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(block.len());
            f.write_all(&block[..n]).unwrap();
            left -= n;
        }
    }
    repro_engine::store::hash_file(&path).unwrap(); // warm the page cache
    let times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            repro_engine::store::hash_file(&path).unwrap();
            t.elapsed()
        })
        .collect();
    let s = median(times).as_secs_f64();
    println!("hashing a {gb} GB file (page cache): {:6.2} GB/s median of 5 (goal ≥ 4 GB/s)", gb / s);
}

fn main() {
    // `cargo bench` passes --bench; a filter argument selects one benchmark.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let want = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if want("noop") {
        bench_noop(50, 40.0);
        bench_noop(1000, 100.0);
    }
    if want("matrix") {
        bench_noop_of("10,000-instance matrix", matrix_pipeline(10_000), 100.0);
    }
    if want("plan") {
        // 100,000 first, so the peak memory it prints is planning's (goal < 500 MB).
        bench_plan(100_000);
        bench_plan(10_000);
    }
    if want("hash") {
        bench_hash();
    }
}
