//! The quick LogGENE pipelines run end to end: sBQC vs BCE under 5-fold cross-validation, the
//! multi-quantile heads with the crossing penalty, and Figures 3–4's τ* curves.

mod common;
use common::{claims_are_well_formed, project_with, published, published_report, report, row_cells, run_ok, Proj};

fn project() -> Proj {
    project_with(&["loggene_table3.toml", "loggene_quantiles.toml", "loggene_figures34.toml"])
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

/// An output of a `loggene_figures34` instance, as JSON (`repro show`).
fn show(p: &Proj, set: &[&str], instance: &str) -> serde_json::Value {
    let mut args = vec!["show", "pipelines/loggene_figures34.toml", instance];
    args.extend_from_slice(set);
    let out = p.repro(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Figures 3–4: without the user's files the default run draws the bundled stand-in, its
/// heart and Pima rows read "data not bundled" and their figures say which file is missing; with
/// a heart-shaped and a Pima-shaped CSV (the paper's column names) both claims are judged over five
/// seeds, the grid runs over each file's own range in its own units, and every τ* read at a
/// grid value is the curve's point there (machinery only: which way the claims go is a finding).
#[test]
fn figures34_read_tau_star_off_the_users_heart_and_pima_files() {
    let p = project();
    let doc = run_ok(&p, &["pipelines/loggene_figures34.toml"]);
    let r = report(&p, "loggene_figures34");
    assert!(r["claims"].as_array().unwrap().iter().all(|c| c["verdict"] == "not_measured"), "{r}");
    assert!(row_cells(&r, "Heart disease (heart rate x₁ = 120, x₂ = 140 BPM): τ*(x₁)")
        .iter()
        .all(|c| c["value"] == "data not bundled"));
    for c in row_cells(&r, "Stand-in, breast cancer (mean perimeter x₁ = 75.2, x₂ = 104.1): τ*(x₁)") {
        assert_eq!(c["n"], 5, "{c}");
        let t = c["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&t), "{c}");
    }
    let svg = std::fs::read_to_string(p.path(&published(&doc, "loggene_fig34_heart", "svg"))).unwrap();
    assert!(svg.contains("heart.csv not given"), "{svg}");

    // Heart: heart rates 96..=195 (the grid's ends), the class drawn from a fixed pattern that
    // makes fast hearts more often class 1; Pima: glucose 70..=189.
    let mut heart = String::from("age,thalach,target\n");
    for i in 0..100 {
        let rate = 96 + i;
        heart.push_str(&format!("{},{rate},{}\n", 40 + i % 30, u8::from((i * 7) % 100 < i)));
    }
    let mut pima = String::from("Glucose,BMI,Outcome\n");
    for i in 0..120 {
        pima.push_str(&format!("{},{},{}\n", 70 + i, 20 + i % 15, u8::from((i * 11) % 120 < i)));
    }
    p.write("data/heart.csv", &heart);
    p.write("data/pima.csv", &pima);
    let set = ["--set", "heart_csv=data/heart.csv", "--set", "pima_csv=data/pima.csv"];
    let mut args = vec!["pipelines/loggene_figures34.toml"];
    args.extend_from_slice(&set);
    let doc = run_ok(&p, &args);
    let r = published_report(&p, &doc, "loggene_figures34");
    assert_eq!(claims_are_well_formed(&r, 5), 2);
    assert!(r["claims"].as_array().unwrap().iter().all(|c| c["verdict"] != "not_measured"), "{r}");
    let svg = std::fs::read_to_string(p.path(&published(&doc, "loggene_fig34_heart", "svg"))).unwrap();
    assert!(!svg.contains("not given") && svg.contains("maximum heart rate thalach (BPM)"), "{svg}");

    let c = show(&p, &set, "curve[crossing=0.1,ds=heart,rep=2].curve");
    let c = c.as_array().unwrap();
    assert_eq!((c[0]["x"].as_i64(), c.last().unwrap()["x"].as_i64(), c.len()), (Some(96), Some(195), 100));
    let at120 = c.iter().find(|r| r["x"] == 120).unwrap();
    assert_eq!(at120["heads"].as_array().unwrap().len(), 9);
    let m = show(&p, &set, "curve[crossing=0.1,ds=heart,rep=2].metrics");
    assert_eq!(m["tau_x1"], at120["tau"], "{m}");
    let c = show(&p, &set, "curve[crossing=0.0,ds=pima,rep=1].curve");
    let c = c.as_array().unwrap();
    assert_eq!((c[0]["x"].as_i64(), c.last().unwrap()["x"].as_i64()), (Some(70), Some(189)));
}

/// `quantile_curve` refuses a model without sBQC quantile heads and a dataset of more than one
/// variable, naming the instance and the param.
#[test]
fn quantile_curve_refuses_models_it_cannot_read() {
    let p = Proj::new();
    p.write(
        "pipelines/curve.toml",
        r#"
[pipeline]
name = "curve"
seed = 1

[stage.one]
kind = "load"
dataset = "breast_cancer"
features = ["mean radius"]

[stage.two]
kind = "load"
dataset = "breast_cancer"
features = ["mean radius", "mean texture"]

[stage.bce]
kind = "train"
data = "one"
hidden = [4]
loss = { name = "bce" }
epochs = 1

[stage.heads]
kind = "train"
data = "one"
hidden = [4]
loss = { name = "quantiles", heads = 3, base = "sbqc" }
epochs = 1

[stage.bad_model]
kind = "quantile_curve"
model = "bce.model"
data = "one"

[stage.bad_data]
kind = "quantile_curve"
model = "heads.model"
data = "two"
"#,
    );
    let doc = p.run_json(&["pipelines/curve.toml", "--keep-going"]);
    assert_eq!(doc["failed"], 2, "{doc}");
    let err = |name: &str| -> String {
        let s = doc["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap();
        s["error"].as_str().unwrap().to_string()
    };
    let e = err("bad_model");
    assert!(e.contains("`model`") && e.contains("base = \"sbqc\"") && e.contains("bce"), "{e}");
    let e = err("bad_data");
    assert!(e.contains("`data`") && e.contains("2 features"), "{e}");
}
