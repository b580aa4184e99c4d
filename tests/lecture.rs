//! The lecture pipelines end to end: they are small enough to run whole.

mod common;
use common::{claims_are_well_formed, project_with, report, row_cells, run_ok, Proj};

fn project() -> Proj {
    let p = Proj::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for rel in ["pipelines/lecture_init.toml", "pipelines/lecture_optimizers.toml", "data/xor.csv"] {
        p.write(rel, &std::fs::read_to_string(root.join(rel)).unwrap());
    }
    p
}

#[test]
fn lecture_optimizers_land_near_2_3() {
    let p = project();
    let doc = p.run_json(&["pipelines/lecture_optimizers.toml"]);
    assert_eq!(doc["failed"], 0, "{doc}");
    let table: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path("reports/lecture_optimizers.json")).unwrap()).unwrap();
    let cells = table["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 6);
    for c in cells {
        let want = if c["column"].as_str().unwrap().contains("intercept") { 2.0 } else { 3.0 };
        let got = c["mean"].as_f64().unwrap();
        assert!((got - want).abs() < 0.05, "{}: {got}", c["row"]);
    }
}

/// The lecture's failure counts are shown as k/20 beside its own 6/20 and 0/20, and its claim
/// is judged over the 20 paired seeds (the outcome is a finding, not asserted).
#[test]
fn lecture_init_counts_failures_and_judges_the_claim() {
    let p = project();
    let doc = p.run_json(&["pipelines/lecture_init.toml"]);
    assert_eq!(doc["failed"], 0, "{doc}");
    let r = report(&p, "lecture_init");
    let normal = row_cells(&r, "N(0, 1/√fan_in)");
    assert!(normal[0]["value"].as_str().unwrap().ends_with("/20"), "{r}");
    assert_eq!(normal[0]["paper"], 0.0);
    assert_eq!(claims_are_well_formed(&r, 20), 1);
    assert_eq!(r["claims"][0]["shown"]["test"]["over"], serde_json::json!(["trial"]));
}

/// The RBF pipeline at a small size: a centres × procedure table over paired replicates, and
/// step 3 starts exactly where step 2 ends (its first recorded loss is the two-step network's
/// training loss, ½·RMSE², because both share the seed of their k-means++ draw).
#[test]
fn rbf_three_steps_continue_from_two_steps() {
    let p = project_with(&["lecture_rbf.toml"]);
    let small = ["--set", "centers=[3, 6]", "--set", "reps=[1, 2]", "--set", "epochs=5"];
    let mut args = vec!["pipelines/lecture_rbf.toml"];
    args.extend(small);
    let doc = run_ok(&p, &args);
    let r = common::published_report(&p, &doc, "lecture_rbf");
    assert_eq!(r["cells"].as_array().unwrap().len(), 4);
    assert!(r["cells"].as_array().unwrap().iter().all(|c| c["n"] == 2), "{r}");
    let metrics =
        |name: &str| doc["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["metrics"].clone();
    let two = metrics("net[centers=6,rep=2,steps=two]");
    let rmse = two["train_rmse"].as_f64().unwrap();
    let mut args = vec!["explain", "pipelines/lecture_rbf.toml", "net[centers=6,rep=2,steps=three]"];
    args.extend(small);
    let out = p.repro(&args);
    let text = String::from_utf8(out.stdout).unwrap();
    // The line under the output says how to open it: json.load(open("<path>")).
    let hint = text.lines().skip_while(|l| !l.contains("output   history")).nth(1).unwrap();
    let path = hint.split('"').nth(1).unwrap().to_string();
    let hist: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let first = hist[0]["train_loss"].as_f64().unwrap();
    assert!((first - 0.5 * rmse * rmse).abs() < 1e-9 * first.max(1.0), "{first} vs {}", 0.5 * rmse * rmse);
    assert_eq!(hist.as_array().unwrap().len(), 5);
}
