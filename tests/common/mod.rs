//! Helpers shared by the integration tests: a fresh project directory per test and the
//! `repro` binary run inside it.

// Each test binary uses a different subset of these helpers, so `dead_code` cannot be an
// `expect` (it holds in some binaries and not in others).
#![allow(dead_code, clippy::new_without_default)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Proj {
    pub dir: tempfile::TempDir,
}

impl Proj {
    pub fn new() -> Proj {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
        Proj { dir }
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_repro"));
        c.args(args).current_dir(self.dir.path()).env_remove("REPRO_CACHE_DIR").env("NO_COLOR", "1");
        c
    }
    pub fn repro(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    /// `repro run --json …`: the parsed document; panics on a non-JSON answer.
    pub fn run_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["run", "--json"];
        a.extend_from_slice(args);
        let out = self.repro(&a);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): stdout {} stderr {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

/// A project holding copies of the named files of this repository's `pipelines/`.
pub fn project_with(pipelines: &[&str]) -> Proj {
    let p = Proj::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for name in pipelines {
        p.write(&format!("pipelines/{name}"), &std::fs::read_to_string(src.join(name)).unwrap());
    }
    p
}

/// `repro run --json …` that must not fail a stage: the parsed document.
pub fn run_ok(p: &Proj, args: &[&str]) -> serde_json::Value {
    let doc = p.run_json(args);
    assert_eq!(doc["failed"], 0, "{doc}");
    doc
}

/// The cells of one row of a tabulate report's JSON.
pub fn row_cells<'a>(report: &'a serde_json::Value, row: &str) -> Vec<&'a serde_json::Value> {
    report["cells"].as_array().unwrap().iter().filter(|c| c["row"] == row).collect()
}

/// The JSON output of a tabulate report, `reports/<name>.json`.
pub fn report(p: &Proj, name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p.path(&format!("reports/{name}.json"))).unwrap()).unwrap()
}

/// Names of the instances with a given status in a `--json` run document.
pub fn with_status(doc: &serde_json::Value, status: &str) -> Vec<String> {
    let mut v: Vec<String> = doc["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == status)
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Compares text with `tests/snapshots/<name>.txt`; `UPDATE_SNAPSHOTS=1` rewrites the file.
pub fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {}; run with UPDATE_SNAPSHOTS=1", path.display()));
    assert_eq!(actual, want, "snapshot {name} differs; review and run with UPDATE_SNAPSHOTS=1 to accept");
}

/// Checks a report's claims as machinery, never their outcome: every claim has a quote, a
/// source and one of the verdicts; its margin is mean(higher) − mean(lower) of the values it
/// lists; its interval, when there is one, contains the margin; n matches the replicates.
/// Returns the number of claims checked.
#[allow(dead_code)]
pub fn claims_are_well_formed(report: &serde_json::Value, n_expected: usize) -> usize {
    let claims = report["claims"].as_array().expect("claims");
    for c in claims {
        let claim = &c["claim"];
        assert!(!claim["text"].as_str().unwrap().is_empty() && !claim["source"].as_str().unwrap().is_empty(), "{c}");
        let verdict = c["verdict"].as_str().unwrap();
        assert!(["held", "not_held", "inconclusive", "not_measured"].contains(&verdict), "{c}");
        let s = &c["shown"];
        if verdict == "not_measured" {
            // A side without values (data the user did not supply): no margin, no interval.
            assert!(s["margin"].is_null() && s["ci"].is_null(), "{c}");
            assert!(s["n_lower"] == 0 || s["n_higher"] == 0, "{c}");
            continue;
        }
        let (lo, hi) = (s["mean_lower"].as_f64().unwrap(), s["mean_higher"].as_f64().unwrap());
        let margin = s["margin"].as_f64().unwrap();
        assert!((margin - (hi - lo)).abs() <= 1e-9 * (1.0 + hi.abs()), "{c}");
        if let Some(ci) = s["ci"].as_array() {
            let (a, b) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
            assert!(a <= margin && margin <= b, "{c}");
            let want = if a > 0.0 {
                "held"
            } else if b < 0.0 {
                "not_held"
            } else {
                "inconclusive"
            };
            if c["competitors"].is_null() {
                assert_eq!(verdict, want, "{c}");
            }
        }
        assert_eq!(s["n_lower"], n_expected, "{c}");
        assert_eq!(s["n_higher"], n_expected, "{c}");
    }
    claims.len()
}

/// Compiles a LaTeX table inside a minimal document in `dir`; false when pdflatex is missing
/// (then REPRO_REQUIRE_LATEX, which CI sets, must be unset, and a note is printed). Panics with
/// pdflatex's log when the table does not compile.
pub fn compiles_with_pdflatex(dir: &Path, table: &str, what: &str) -> bool {
    let has = Command::new("pdflatex").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has {
        assert!(
            std::env::var_os("REPRO_REQUIRE_LATEX").is_none(),
            "REPRO_REQUIRE_LATEX is set but pdflatex is missing"
        );
        eprintln!("note: pdflatex not found; LaTeX compile check skipped");
        return false;
    }
    let doc = format!(
        "\\documentclass{{article}}\n\\usepackage{{booktabs}}\n\\begin{{document}}\n{table}\\end{{document}}\n"
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("t.tex"), doc).unwrap();
    let out = Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "t.tex"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{what} does not compile:\n{}", String::from_utf8_lossy(&out.stdout));
    assert!(dir.join("t.pdf").is_file());
    true
}

/// The file a run published for report `name` and output `ext`, from its `--json` document:
/// `reports/<name>.<ext>`, or `reports/<name>@<variant>.<ext>` for a run whose `--set` or
/// `--profile` changed a var (variant reports never overwrite the default ones).
pub fn published(doc: &serde_json::Value, name: &str, ext: &str) -> String {
    let files: Vec<&str> =
        doc["reports"].as_array().expect("no reports in the run document").iter().filter_map(|f| f.as_str()).collect();
    let hit = files.iter().find(|f| {
        let Some(rest) = f.strip_prefix("reports/").and_then(|r| r.strip_prefix(name)) else { return false };
        match rest.strip_prefix('@') {
            Some(v) => {
                v.ends_with(&format!(".{ext}")) && (ext == "provenance.json" || !v.ends_with(".provenance.json"))
            }
            None => rest == format!(".{ext}"),
        }
    });
    hit.unwrap_or_else(|| panic!("no {name}.{ext} among {files:?}")).to_string()
}

/// The JSON table a run published for report `name` (default or variant, see [`published`]).
pub fn published_report(p: &Proj, doc: &serde_json::Value, name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p.path(&published(doc, name, "json"))).unwrap()).unwrap()
}

/// A small MNIST-shaped CSV: a `label` column (row r is class r mod `classes`) and 16 pixel
/// columns 0–255, (37·r + 11·j + shift·label) mod 256.
pub fn mnist_like_csv(rows: u32, classes: u32, shift: u32) -> String {
    let mut csv = String::from("label");
    for j in 0..16 {
        csv.push_str(&format!(",p{j}"));
    }
    csv.push('\n');
    for r in 0..rows {
        csv.push_str(&(r % classes).to_string());
        for j in 0..16u32 {
            csv.push_str(&format!(",{}", (r * 37 + j * 11 + (r % classes) * shift) % 256));
        }
        csv.push('\n');
    }
    csv
}

/// What the run records in a project's cache say: instance → (the threads it ran on, output
/// name → content hash). Each test project runs a pipeline once per params, so an instance
/// has one record.
pub fn recorded(p: &Proj) -> std::collections::BTreeMap<String, (String, std::collections::BTreeMap<String, String>)> {
    let mut all = std::collections::BTreeMap::new();
    for shard in std::fs::read_dir(p.path("cache/runs")).unwrap() {
        for rec in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(rec.unwrap().path()).unwrap()).unwrap();
            let threads = rec["environment"]["threads"].as_str().unwrap().to_string();
            let outputs = rec["outputs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(o, obj)| (o.clone(), obj["hash"].as_str().unwrap().to_string()))
                .collect();
            all.insert(rec["instance"].as_str().unwrap().to_string(), (threads, outputs));
        }
    }
    all
}

/// The same pipeline run in two projects, one on a single thread (`--jobs 1`) and one giving
/// every multi-threaded instance three (`--jobs 3`, `[local] cpus = 3`): every instance of each
/// kind in `kinds` must have run, on 1 and on 3 threads, and every instance's outputs must be
/// the same bytes in both. Returns how many instances were compared.
pub fn same_bytes_on_1_and_3_threads(one: &Proj, three: &Proj, args: &[&str], kinds: &[&str]) -> usize {
    three.write("repro.toml", "[local]\ncpus = 3\n");
    let mut records = Vec::new();
    for (p, jobs) in [(one, "1"), (three, "3")] {
        let mut a = args.to_vec();
        a.extend(["--jobs", jobs]);
        let doc = run_ok(p, &a);
        let rec = recorded(p);
        for kind in kinds {
            let of_kind: Vec<&str> = doc["stages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["kind"] == *kind)
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            assert!(!of_kind.is_empty(), "no `{kind}` instance in the run");
            for name in of_kind {
                assert_eq!(rec[name].0, jobs, "{name} did not run on {jobs} thread(s)");
            }
        }
        records.push(rec);
    }
    let (a, b) = (&records[0], &records[1]);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, (_, outputs)) in a {
        assert_eq!(outputs, &b[name].1, "{name}: its outputs depend on the thread count");
    }
    a.len()
}
