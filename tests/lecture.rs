//! The lecture pipelines end to end: they are small enough to run whole.

mod common;
use common::Proj;

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

#[test]
fn lecture_init_normal_never_fails() {
    let p = project();
    let doc = p.run_json(&["pipelines/lecture_init.toml"]);
    assert_eq!(doc["failed"], 0, "{doc}");
    let md = std::fs::read_to_string(p.path("reports/lecture_init.md")).unwrap();
    assert!(md.contains("| N(0, 1/√fan_in) | 0/20 |"), "{md}");
    assert!(md.contains("initialization fails more often than N(0, 1/√fan_in): **held**"), "{md}");
}
