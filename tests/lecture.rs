//! The lecture pipelines end to end: they are small enough to run whole.

mod common;
use common::{claims_are_well_formed, report, row_cells, Proj};

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
