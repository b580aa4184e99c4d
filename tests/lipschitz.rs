//! The LipschitzLR pipelines run end to end (they take seconds), and their numbers are the
//! ones the authors' notebooks printed where the data is the same.

mod common;
use common::{claims_are_well_formed, project_with, published_report, report, run_ok, Proj};
use serde_json::Value;

fn project() -> Proj {
    project_with(&["lipschitz_table1.toml", "lipschitz_table2.toml", "lipschitz_optimizers.toml"])
}

/// The cell of a tabulate report at (row label, column label).
fn cell<'a>(r: &'a Value, row: &str, col: &str) -> &'a Value {
    r["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["row"] == row && c["column"] == col)
        .unwrap_or_else(|| panic!("no cell ({row}, {col})"))
}

/// Table 1: Boston's 1/L is the notebook's 8.314 (its formula and hand-entered K, no random
/// element); Breast cancer's 1/L is the paper's 4280.23; the datasets that cannot ship read
/// "data not bundled"; the three claims are judged over three replicates each (their
/// outcome is a finding, not asserted).
#[test]
fn table1_reproduces_the_printed_constants() {
    let p = project();
    run_ok(&p, &["pipelines/lipschitz_table1.toml"]);
    let r = report(&p, "lipschitz_table1");
    let inv = cell(&r, "Boston housing", "α = 1/L 1/L")["mean"].as_f64().unwrap();
    assert!((inv - 8.314).abs() < 5e-4, "{inv}");
    assert_eq!(cell(&r, "Boston housing", "α = 1/L iterations to T_L")["n"], 3);
    let bc = cell(&r, "Breast cancer (logistic)", "α = 1/L 1/L")["mean"].as_f64().unwrap();
    assert!((bc - 4280.23).abs() < 0.01, "{bc}");
    assert_eq!(cell(&r, "Energy efficiency (Y1)", "α = 1/L 1/L")["value"], "data not bundled");
    assert_eq!(claims_are_well_formed(&r, 3), 3);
}

/// A dataset the user supplies fills its row: a small Energy-shaped CSV (X1..X8, Y1, Y2) with
/// y = 10 + Σx, through `--set energy_csv=…`.
#[test]
fn user_supplied_file_fills_its_row() {
    let p = project();
    let mut csv = String::from("X1,X2,X3,X4,X5,X6,X7,X8,Y1,Y2\n");
    for i in 0..40 {
        let x: Vec<f64> = (0..8).map(|j| ((i * 7 + j * 3) % 11) as f64 + 1.0).collect();
        let y1 = 10.0 + x.iter().sum::<f64>();
        csv.push_str(&format!("{},{y1},{}\n", x.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","), y1 * 2.0));
    }
    p.write("data/energy.csv", &csv);
    // The user's file makes a variant: reports/lipschitz_table1@energy_csv=….*
    let doc = run_ok(&p, &["pipelines/lipschitz_table1.toml", "--set", "energy_csv=data/energy.csv"]);
    let r = published_report(&p, &doc, "lipschitz_table1");
    let c = cell(&r, "Energy efficiency (Y1)", "α = 1/L 1/L");
    assert!(c["mean"].as_f64().is_some_and(|v| v > 0.0), "{c}");
    assert_eq!(cell(&r, "California housing", "α = 1/L 1/L")["value"], "data not bundled");
}

/// Table 2 and the optimizer comparison run green; Digits' 1/L on the 70 % split is the
/// paper's 0.635 (a formula on fixed data); the optimizer claims are judged over three
/// replicates each (their outcome is a finding, not asserted).
#[test]
fn table2_and_optimizers_run() {
    let p = project();
    for name in ["lipschitz_table2", "lipschitz_optimizers"] {
        run_ok(&p, &[&format!("pipelines/{name}.toml")]);
    }
    let r = report(&p, "lipschitz_table2");
    let inv = cell(&r, "Digits (softmax, 200)", "α = 1/L 1/L")["mean"].as_f64().unwrap();
    assert!((inv - 0.635).abs() < 5e-3, "{inv}");
    let o = report(&p, "lipschitz_optimizers");
    assert_eq!(claims_are_well_formed(&o, 3), 4);
    assert_eq!(claims_are_well_formed(&r, 3), 3);
}

/// Recomputing everything from an empty cache reproduces the report and its provenance sidecar
/// byte for byte (the sidecar names data, params, keys and environment, not wall times).
#[test]
fn cold_rerun_reproduces_report_and_provenance() {
    let p = project();
    let read = |f: &str| std::fs::read(p.path(&format!("reports/{f}"))).unwrap();
    assert_eq!(p.run_json(&["pipelines/lipschitz_table2.toml"])["failed"], 0);
    let (md, prov) = (read("lipschitz_table2.md"), read("lipschitz_table2.provenance.json"));
    std::fs::remove_dir_all(p.path("cache")).unwrap();
    let doc = p.run_json(&["pipelines/lipschitz_table2.toml"]);
    // Nothing came from the old cache: an instance reported cached has the key of one that ran
    // in this run (Figure 2's 200-iteration runs are Table 2's Digits runs, the same key).
    let stages = doc["stages"].as_array().unwrap();
    let ran: std::collections::BTreeSet<&str> =
        stages.iter().filter(|s| s["status"] == "ran").map(|s| s["key"].as_str().unwrap()).collect();
    for s in stages.iter().filter(|s| s["status"] == "cached") {
        assert!(ran.contains(s["key"].as_str().unwrap()), "{} came from the old cache", s["name"]);
    }
    assert_eq!(read("lipschitz_table2.md"), md);
    assert_eq!(read("lipschitz_table2.provenance.json"), prov);
}

/// In a table with several metrics per input (`metrics = [...]`), every cell's provenance
/// names the runs it was computed from: the column "α = 0.1 accuracy" comes from the α = 0.1
/// instance. (The sidecar used to read the table's item positions, one per input and metric,
/// as input positions: R1C2 named the α = 1/L run.)
#[test]
fn multi_metric_cells_name_the_runs_they_came_from() {
    let p = project();
    assert_eq!(p.run_json(&["pipelines/lipschitz_table2.toml"])["failed"], 0);
    let prov: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path("reports/lipschitz_table2.provenance.json")).unwrap()).unwrap();
    let cells = prov["cells"].as_array().unwrap();
    assert!(!cells.is_empty());
    for c in cells {
        let column = c["column"].as_str().unwrap();
        let alpha = column.strip_prefix("α = ").and_then(|r| r.split(' ').next()).unwrap();
        let sources = c["sources"].as_array().unwrap();
        assert!(!sources.is_empty(), "{} has no source", c["cell"]);
        for s in sources {
            let inst = s["instance"].as_str().unwrap();
            assert!(inst.contains(&format!("alpha={alpha},")), "{} ({column}) names {inst}", c["cell"]);
        }
    }
}

/// Figure 1 as the paper draws it, on the user's California file (`--set california_csv=…
/// --set fig1_data=california`): the plot is drawn from the California runs, and its title
/// names the file instead of calling itself a stand-in. A small California-shaped CSV (eight
/// feature columns, then the target) with y = 10 + 3·MedInc − HouseAge/10.
#[test]
fn figure1_runs_on_the_users_california_file() {
    let p = project();
    let mut csv =
        String::from("MedInc,HouseAge,AveRooms,AveBedrms,Population,AveOccup,Latitude,Longitude,MedHouseVal\n");
    for i in 0..60 {
        let x: Vec<f64> = (0..8).map(|j| ((i * 5 + j * 7) % 13) as f64 / 2.0 + 1.0).collect();
        let y = 10.0 + 3.0 * x[0] - x[1] / 10.0;
        csv.push_str(&format!("{},{y}\n", x.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")));
    }
    p.write("data/california.csv", &csv);
    let doc = run_ok(
        &p,
        &[
            "pipelines/lipschitz_table1.toml",
            "--set",
            "california_csv=data/california.csv",
            "--set",
            "fig1_data=california",
            "--target",
            "figure1",
        ],
    );
    let svg = std::fs::read_to_string(p.path(&common::published(&doc, "lipschitz_fig1_loss", "svg"))).unwrap();
    // The title is wrapped over two lines of the SVG.
    assert!(svg.contains("Figure 1 on California housing (the user&apos;s file"), "{svg}");
    assert!(svg.contains("data/california.csv"), "{svg}");
    assert!(!svg.contains("stand-in"), "{svg}");
    let prov: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path(&common::published(&doc, "lipschitz_fig1_loss", "provenance.json"))).unwrap(),
    )
    .unwrap();
    let upstream: Vec<&str> =
        prov["upstream"].as_array().unwrap().iter().filter_map(|u| u["instance"].as_str()).collect();
    assert!(upstream.iter().filter(|u| u.starts_with("gd_california[")).count() == 6, "{upstream:?}");
    assert!(!upstream.iter().any(|u| u.starts_with("gd_boston")), "{upstream:?}");
}

/// Figure 2 on the user's MNIST file (`--set fig2_data=mnist`): the curves, their table and its
/// claims come from the MNIST runs, and every caption says which data they ran on (a small
/// MNIST-shaped CSV: a `label` column and pixel columns 0–255).
#[test]
fn figure2_runs_on_the_users_mnist_file() {
    let p = project();
    let csv = common::mnist_like_csv(90, 3, 70);
    p.write("data/mnist_small.csv", &csv);
    let args = [
        "pipelines/lipschitz_table2.toml",
        "--set",
        "mnist_csv=data/mnist_small.csv",
        "--set",
        "fig2_data=mnist",
        "--target",
        "fig2_table",
        "--target",
        "fig2_validation",
    ];
    let doc = run_ok(&p, &args);
    let r = common::published_report(&p, &doc, "lipschitz_fig2");
    let caption = r["caption"].as_str().unwrap();
    assert!(caption.contains("on MNIST (the user's file data/mnist_small.csv"), "{caption}");
    assert_eq!(claims_are_well_formed(&r, 3), 2);
    for c in r["claims"].as_array().unwrap() {
        assert!(c["claim"]["proxy"].as_str().unwrap().contains("MNIST"), "{c}");
    }
    let svg = std::fs::read_to_string(p.path(&common::published(&doc, "lipschitz_fig2_validation", "svg"))).unwrap();
    assert!(svg.contains("Figure 2 on MNIST") && !svg.contains("Digits"), "{svg}");
    let ran: Vec<&str> = doc["stages"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(ran.iter().any(|n| n.starts_with("fig2_runs[") && n.contains("dataset=mnist")), "{ran:?}");
    assert!(!ran.iter().any(|n| n.contains("dataset=digits")), "{ran:?}");
}
