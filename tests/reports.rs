//! The committed reports as a reader gets them: every LaTeX table compiles with pdflatex
//! (CI installs it and sets REPRO_REQUIRE_LATEX=1; elsewhere a missing pdflatex skips the
//! check with a note), and every claim in every report is well formed.

mod common;
use common::{claims_are_well_formed, compiles_with_pdflatex};
use std::path::Path;

fn reports() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
    let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn every_committed_latex_table_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let tex: Vec<_> = reports().into_iter().filter(|p| p.extension().is_some_and(|e| e == "tex")).collect();
    assert!(tex.len() >= 15, "{tex:?}");
    for t in tex {
        let table = std::fs::read_to_string(&t).unwrap();
        if !compiles_with_pdflatex(dir.path(), &table, &t.display().to_string()) {
            return;
        }
    }
}

/// Every claim of every committed table report has a quote, a source, a verdict and a margin
/// consistent with its interval (the outcome itself is a finding, never asserted).
#[test]
fn every_committed_claim_is_well_formed() {
    let mut n = 0;
    for j in reports()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().ends_with(".provenance.json"))
    {
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
        let Some(claims) = r["claims"].as_array() else { continue };
        for c in claims {
            // n differs per report; check each claim with its own n.
            let one = serde_json::json!({ "claims": [c] });
            let k = c["shown"]["n_lower"].as_u64().unwrap() as usize;
            if c["shown"]["n_higher"].as_u64() == Some(k as u64) {
                n += claims_are_well_formed(&one, k);
            }
        }
    }
    assert!(n >= 30, "{n} claims checked");
}
