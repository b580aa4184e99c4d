//! `train` with backend = "candle" from a pipeline: it runs on the CPU, records what ran, and
//! is another cache key than the native run; a CUDA device in a build without the `cuda`
//! feature is refused before anything runs, naming the param with its place in the file.

mod common;
use common::{run_ok, snapshot, Proj};

const PIPELINE: &str = r#"[stage.iris]
kind = "load"
dataset = "iris"

[stage.net]
kind = "train"
data = "iris"
matrix = { backend = ["native", "candle"] }
seed_axes = []
backend = "${backend}"
hidden = [8]
loss = { name = "softmax_ce" }
optimizer = { name = "adam" }
lr = 0.01
epochs = 20
batch = 32
"#;

#[test]
fn a_candle_run_is_recorded_and_keyed_apart_from_the_native_one() {
    let p = Proj::new();
    p.write("pipelines/p.toml", PIPELINE);
    let doc = run_ok(&p, &["pipelines/p.toml"]);
    let nets: Vec<&serde_json::Value> =
        doc["stages"].as_array().unwrap().iter().filter(|s| s["kind"] == "train").collect();
    assert_eq!(nets.len(), 2);
    assert_ne!(nets[0]["key"], nets[1]["key"]);
    let candle = nets.iter().find(|s| s["name"] == "net[backend=candle]").unwrap();
    assert_eq!(candle["metrics"]["backend"], "candle 0.11");
    assert_eq!(candle["metrics"]["device"], "cpu");
    let native = nets.iter().find(|s| s["name"] == "net[backend=native]").unwrap();
    assert!(native["metrics"].get("backend").is_none());
    // Both train the same network from the same weights: the same loss curve to 1e-4.
    let last = |s: &serde_json::Value| s["metrics"]["final"]["train_loss"].as_f64().unwrap();
    assert!((last(candle) - last(native)).abs() <= 1e-4 * last(native), "{} vs {}", last(candle), last(native));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_plan_time_error() {
    let p = Proj::new();
    p.write(
        "pipelines/p.toml",
        &PIPELINE.replace(
            "matrix = { backend = [\"native\", \"candle\"] }\nseed_axes = []\nbackend = \"${backend}\"",
            "backend = \"candle\"\ndevice = \"cuda\"",
        ),
    );
    let out = p.repro(&["run", "pipelines/p.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8(out.stderr).unwrap().replace(&p.dir.path().display().to_string(), "<tmp>");
    snapshot("candle_cuda_without_feature", &err);
}
