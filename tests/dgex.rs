//! `pipelines/dgex_table3.toml` end to end at a tiny size: reports, provenance, and what a
//! change reruns.

mod common;
use common::{compiles_with_pdflatex, published, same_bytes_on_1_and_3_threads, with_status, Proj};

const TINY: &[&str] = &[
    "--set",
    "rows=400",
    "--set",
    "targets=40",
    "--set",
    "dedupe_clusters=4",
    "--set",
    "subsample_rows=120",
    "--set",
    "reps=[1, 2]",
    "--set",
    "hidden_sizes=[8, 16]",
    "--set",
    "steps=2",
    "--set",
    "epochs=4",
    "--set",
    "save_at=[2, 4]",
];

fn project() -> Proj {
    let p = Proj::new();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for entry in std::fs::read_dir(&src).unwrap().chain(std::fs::read_dir(src.join("common")).unwrap()) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let rel = path.strip_prefix(&src).unwrap().to_str().unwrap().to_string();
            p.write(&format!("pipelines/{rel}"), &std::fs::read_to_string(&path).unwrap());
        }
    }
    p
}

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["pipelines/dgex_table3.toml"];
    v.extend_from_slice(TINY);
    v.extend_from_slice(extra);
    v
}

#[test]
fn dgex_table3_end_to_end() {
    let p = project();
    let first = p.run_json(&args(&["-j", "2"]));
    assert_eq!(first["failed"], 0, "{first}");
    // The tiny settings make a variant: reports/dgex_table3@….*, never the default files.
    for (name, ext) in [
        ("dgex_table3", "md"),
        ("dgex_table3", "tex"),
        ("dgex_table3", "csv"),
        ("dgex_table3", "parquet"),
        ("dgex_table3", "json"),
        ("dgex_table3", "provenance.json"),
        ("dgex_table3_lr", "svg"),
        ("dgex_table3_loss", "png"),
    ] {
        let f = published(&first, name, ext);
        assert!(f.contains('@') && p.path(&f).is_file(), "missing {f}");
    }
    assert!(!p.path("reports/dgex_table3.md").exists());
    let file = |ext: &str| published(&first, "dgex_table3", ext);
    let md = std::fs::read_to_string(p.path(&file("md"))).unwrap();
    assert!(md.contains("| Epochs | D-GEX(D) (8) | D-GEX(D) (16) | D-GEX(L) (8) | D-GEX(L) (16) |"), "{md}");
    assert!(md.contains("Synthetic GEO-like data") && md.contains("LALR variant `paper`"), "{md}");

    // The generated LaTeX compiles inside a minimal document (CI installs pdflatex).
    compiles_with_pdflatex(
        &p.path("latex"),
        &std::fs::read_to_string(p.path(&file("tex"))).unwrap(),
        "dgex_table3.tex",
    );

    // Same seed, same bytes: a second project gives an identical table.
    let q = project();
    q.run_json(&args(&["-j", "1"]));
    assert_eq!(std::fs::read(q.path(&file("json"))).unwrap(), std::fs::read(p.path(&file("json"))).unwrap());

    // Provenance: a cell maps to the evaluate instances behind it and their upstream keys.
    let prov: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path(&file("provenance.json"))).unwrap()).unwrap();
    let cell = prov["cells"].as_array().unwrap().iter().find(|c| c["cell"] == "R1C1").unwrap();
    let sources = cell["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "two replicates behind each cell");
    assert!(sources[0]["instance"].as_str().unwrap().starts_with("eval_d["));
    let explain = p.repro(&["explain", &file("md"), "R1C1"]);
    let text = String::from_utf8(explain.stdout).unwrap();
    assert!(
        text.contains("from     eval_d[epochs=2,hidden=8,model=dgex_d,rep=1]") && text.contains("<- train_d["),
        "{text}"
    );

    // Changing `epochs` reruns training and what depends on it, nothing upstream.
    let doc = p.run_json(&args(&["--set", "epochs=5"]));
    let ran = with_status(&doc, "ran");
    assert!(ran.iter().any(|n| n.starts_with("train_")), "{ran:?}");
    let allowed = ["train_", "eval_", "table", "lr_plot", "loss_plot"];
    assert!(ran.iter().all(|n| allowed.iter().any(|a| n.starts_with(a))), "{ran:?}");

    // Changing only the caption reruns only the table.
    let text = std::fs::read_to_string(p.path("pipelines/common/table3_report.toml")).unwrap();
    assert!(text.contains("caption = \"Table III:"));
    p.write("pipelines/common/table3_report.toml", &text.replace("caption = \"Table III:", "caption = \"TABLE III:"));
    let doc = p.run_json(&args(&[]));
    assert_eq!(with_status(&doc, "ran"), vec!["table"], "{doc}");
}

/// Every multi-threaded kind of the D-GEX chain computes the same bytes on one thread and on
/// three, so the threads an instance gets (its share of `--jobs`, `[local] cpus`,
/// `resources.cpus`) change no result. Sizes big enough that the work is split: 1,500 rows
/// (standardize's blocks are 512 rows), 943 landmarks (the gemm crate threads a product from
/// about 48 × 48 × 256 on; a 200-row batch into 16 units is 3 M).
#[test]
fn the_dgex_chain_is_the_same_bytes_on_one_thread_and_on_three() {
    let sizes = [
        "pipelines/dgex_table3.toml",
        "--set",
        "rows=1500",
        "--set",
        "targets=40",
        "--set",
        "dedupe_clusters=4",
        "--set",
        "subsample_rows=600",
        "--set",
        "reps=[1]",
        "--set",
        "hidden_sizes=[16]",
        "--set",
        "steps=2",
        "--set",
        "epochs=2",
        "--set",
        "save_at=[2]",
    ];
    let kinds = ["synthetic_geo", "quantile_normalize", "dedupe", "standardize", "train", "evaluate"];
    let n = same_bytes_on_1_and_3_threads(&project(), &project(), &sizes, &kinds);
    assert!(n > 10, "{n} instances");
}

#[test]
fn lalr_variant_switch_is_reported() {
    let p = project();
    let doc = p.run_json(&args(&["--set", "lalr=published_code", "--set", "hidden_sizes=[8]", "--set", "reps=[1]"]));
    assert_eq!(doc["failed"], 0, "{doc}");
    let md = std::fs::read_to_string(p.path(&published(&doc, "dgex_table3", "md"))).unwrap();
    assert!(md.contains("LALR variant `published_code`") && md.contains("--set lalr=published_code"), "{md}");
}

/// Writes a float64 C-order .npy file (numpy format version 1.0).
fn write_npy(path: &std::path::Path, rows: usize, cols: usize, f: impl Fn(usize, usize) -> f64) {
    let mut h = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h.as_bytes());
    for r in 0..rows {
        for c in 0..cols {
            bytes.extend(f(r, c).to_le_bytes());
        }
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn real_data_pipeline_reads_the_dgex_arrays() {
    let p = project();
    let missing = p.repro(&["run", "pipelines/dgex_table3_real.toml", "--set", "data_dir=nowhere"]);
    // Found before anything runs, at the place that named the directory (exit 2).
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8(missing.stderr).unwrap();
    assert!(err.contains("file `nowhere/bgedv2_X_t") && err.contains("(read by stage `real_t"), "{err}");
    // Tiny stand-ins with the authors' file names: y depends on x so training has signal.
    let x = |r: usize, c: usize| ((r * 7 + c * 3) % 11) as f64 / 5.0 - 1.0;
    let y = move |r: usize, c: usize| x(r, c) * 0.5 + x(r, (c + 1) % 12) * 0.25;
    for (split, n) in [("tr", 200), ("te", 60)] {
        write_npy(&p.path(&format!("data/dgex/bgedv2_X_{split}_float64.npy")), n, 12, x);
        write_npy(&p.path(&format!("data/dgex/bgedv2_Y_{split}_0-4760_float64.npy")), n, 6, y);
    }
    let doc = p.run_json(&[
        "pipelines/dgex_table3_real.toml",
        "--set",
        "subsample_rows=80",
        "--set",
        "reps=[1, 2]",
        "--set",
        "hidden_sizes=[4]",
        "--set",
        "steps=2",
        "--set",
        "epochs=4",
        "--set",
        "save_at=[2, 4]",
    ]);
    assert_eq!(doc["failed"], 0, "{doc}");
    let md = std::fs::read_to_string(p.path(&published(&doc, "dgex_table3_real", "md"))).unwrap();
    assert!(md.contains("D-GEX authors' processed GEO arrays") && md.contains("`data/dgex`"), "{md}");
}

/// Every pipeline validates and plans, in its default profile and (where it has one) `paper`.
#[test]
fn every_pipeline_plans() {
    let p = project();
    let mut n = 0;
    for entry in std::fs::read_dir(p.path("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let rel = format!("pipelines/{}", path.file_name().unwrap().to_str().unwrap());
        let out = p.repro(&["dag", &rel]);
        assert!(out.status.success(), "{rel}: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&path).unwrap();
        let has_paper = text.contains("dgex_synthetic.toml")
            || text.contains("loggene_geo.toml")
            || text.contains("[profiles.paper]");
        if has_paper {
            let out = p.repro(&["dag", &rel, "--profile", "paper"]);
            assert!(out.status.success(), "{rel} --profile paper: {}", String::from_utf8_lossy(&out.stderr));
        }
        n += 1;
    }
    assert!(n >= 5, "{n} pipelines");
}

/// Running Table V after Table III reruns only what Table III did not already compute: its
/// A-ReLU cells are Table III's D-GEX(L) runs.
#[test]
fn table5_reuses_table3_runs() {
    let p = project();
    let mut a3 = vec!["pipelines/dgex_table3.toml"];
    a3.extend_from_slice(TINY);
    assert_eq!(p.run_json(&a3)["failed"], 0);
    let mut a5 = vec!["pipelines/dgex_table5.toml"];
    a5.extend_from_slice(TINY);
    let doc = p.run_json(&a5);
    assert_eq!(doc["failed"], 0, "{doc}");
    let cached = with_status(&doc, "cached");
    let ran = with_status(&doc, "ran");
    // Data preparation and subsamples, and the A-ReLU training runs and their evaluations at
    // the final epoch, come from Table III's cache.
    for s in ["geo", "qn", "dedup", "std", "split", "tsplit_train", "tsplit_test", "sub[rep=1]", "sub[rep=2]"] {
        assert!(cached.contains(&s.to_string()), "{s} not cached: {cached:?}");
    }
    let arelu_train: Vec<&String> = cached.iter().filter(|n| n.starts_with("train_act_l[act=arelu")).collect();
    let arelu_eval: Vec<&String> = cached.iter().filter(|n| n.starts_with("eval_act_l[act=arelu")).collect();
    assert_eq!((arelu_train.len(), arelu_eval.len()), (4, 4), "{cached:?}");
    assert!(ran.iter().all(|n| !n.contains("act=arelu")), "{ran:?}");
    assert_eq!(ran.iter().filter(|n| n.starts_with("train_act_l")).count(), 12, "{ran:?}");
}

/// The sensitivity pipeline's slice at the default nonlinear share has the same keys as Table
/// III: after it, only the other two settings run, and the report judges every claim once per
/// setting, with a stable / data-dependent line per claim.
#[test]
fn sensitivity_reuses_the_default_setting_and_judges_each_claim_per_setting() {
    let p = project();
    let mut a = vec!["pipelines/dgex_table3.toml"];
    a.extend_from_slice(TINY);
    assert_eq!(p.run_json(&a)["failed"], 0);
    let mut a = vec!["pipelines/dgex_sensitivity.toml"];
    a.extend_from_slice(TINY);
    let doc = p.run_json(&a);
    assert_eq!(doc["failed"], 0, "{doc}");
    let ran = with_status(&doc, "ran");
    let cached = with_status(&doc, "cached");
    assert!(ran.iter().all(|n| !n.contains("nl=0.1")), "{ran:?}");
    assert!(cached.iter().any(|n| n.starts_with("train_l[act=arelu") && n.contains("nl=0.1")), "{cached:?}");
    assert!(ran.iter().any(|n| n.starts_with("train_l[") && n.contains("nl=0.3")), "{ran:?}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path(&published(&doc, "dgex_sensitivity", "json"))).unwrap()).unwrap();
    assert_eq!(r["claims"].as_array().unwrap().len(), 4 * 3);
    let sens = r["sensitivity"].as_array().unwrap();
    assert_eq!(sens.len(), 4);
    for s in sens {
        let verdicts: Vec<&serde_json::Value> =
            s["verdicts"].as_array().unwrap().iter().map(|v| &v["verdict"]).collect();
        assert_eq!(verdicts.len(), 3);
        assert_eq!(s["stable"], verdicts.windows(2).all(|w| w[0] == w[1]), "{s}");
    }
}
