//! The quick LogGENE pipelines run end to end: sBQC vs BCE under 5-fold cross-validation and
//! the multi-quantile heads with the crossing penalty.

mod common;
use common::{claims_are_well_formed, project_with, published_report, report, row_cells, run_ok, Proj};

fn project() -> Proj {
    project_with(&["loggene_table3.toml", "loggene_quantiles.toml"])
}

/// Table 3 cross-validates on the bundled data (every cell over 5 folds, every model well
/// above the 63 % majority class) and shows the paper's datasets as "n/b" until given; a
/// user-supplied file (a separable 60-row "heart" file) fills its row.
#[test]
fn table3_cross_validates_and_takes_user_files() {
    let p = project();
    run_ok(&p, &["pipelines/loggene_table3.toml"]);
    let r = report(&p, "loggene_table3");
    let bc = row_cells(&r, "Breast cancer (diagnostic, bundled)");
    assert_eq!(bc.len(), 16);
    for c in &bc {
        assert_eq!(c["n"], 5, "{c}");
        if c["column"].as_str().unwrap().ends_with("acc.") {
            assert!(c["mean"].as_f64().unwrap() > 0.9, "{c}");
        }
    }
    assert!(row_cells(&r, "Heart disease").iter().all(|c| c["value"] == "n/b"));

    let mut csv = String::from("a,b,c,label\n");
    for i in 0..60 {
        let y = i % 2;
        let s = if y == 1 { 1.0 } else { -1.0 };
        csv.push_str(&format!("{},{},{},{y}\n", s * (1.0 + (i % 7) as f64 / 7.0), (i % 5) as f64, s * 0.5));
    }
    p.write("data/heart.csv", &csv);
    let doc = run_ok(&p, &["pipelines/loggene_table3.toml", "--set", "csv_heart=data/heart.csv"]);
    let r = published_report(&p, &doc, "loggene_table3");
    let heart = row_cells(&r, "Heart disease");
    assert_eq!(heart.len(), 16);
    for c in heart {
        assert_eq!(c["n"], 5, "{c}");
        assert!(c["mean"].as_f64().is_some(), "{c}");
    }
}

/// The quantile pipeline judges its two crossing claims over three replicates each (the
/// outcome is a finding, not asserted): margins, intervals and verdicts are consistent.
#[test]
fn quantile_claims_are_judged_over_replicates() {
    let p = project();
    run_ok(&p, &["pipelines/loggene_quantiles.toml"]);
    let r = report(&p, "loggene_quantiles");
    assert_eq!(claims_are_well_formed(&r, 3), 2);
}
