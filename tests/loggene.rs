//! The quick LogGENE pipelines run end to end: sBQC vs BCE under 5-fold cross-validation and
//! the multi-quantile heads with the crossing penalty.

mod common;
use common::{project_with, report, Proj};

fn project() -> Proj {
    project_with(&["loggene_table3.toml", "loggene_quantiles.toml"])
}

/// Every cell of Table 3 is measured over the five folds, and every model classifies the
/// held-out fold well above the 63 % majority class.
#[test]
fn table3_cross_validates() {
    let p = project();
    let doc = p.run_json(&["pipelines/loggene_table3.toml"]);
    assert_eq!(doc["failed"], 0, "{doc}");
    let r = report(&p, "loggene_table3");
    let cells = r["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 16);
    for c in cells {
        assert_eq!(c["n"], 5, "{c}");
    }
    for c in cells.iter().filter(|c| c["row"] == "accuracy") {
        assert!(c["mean"].as_f64().unwrap() > 0.9, "{c}");
    }
}

/// The crossing penalty cuts the share of held-out rows whose nine quantiles cross, for both
/// base losses, and the heads are ordered (Q(0.1) covers less than Q(0.9)).
#[test]
fn crossing_penalty_reduces_crossings() {
    let p = project();
    let doc = p.run_json(&["pipelines/loggene_quantiles.toml"]);
    assert_eq!(doc["failed"], 0, "{doc}");
    let r = report(&p, "loggene_quantiles");
    for c in r["claims"].as_array().unwrap() {
        assert_eq!(c["held"], true, "{c}");
    }
}
