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

/// Provenance that is right by construction: in every committed table report, every measured
/// cell names at least as many source instances as values it aggregates, and every source's
/// matrix axis values agree with the cell's row and column (the `metric` pseudo-axis is what
/// was read from the source, not one of its axes). The sidecar's cells are the table's cells.
#[test]
fn every_committed_cell_names_the_runs_it_was_computed_from() {
    let (mut cells, mut sources) = (0, 0);
    for side in reports().into_iter().filter(|p| p.to_string_lossy().ends_with(".provenance.json")) {
        let prov: serde_json::Value = serde_json::from_slice(&std::fs::read(&side).unwrap()).unwrap();
        let Some(list) = prov["cells"].as_array().filter(|l| !l.is_empty()) else { continue };
        let table = side.to_string_lossy().replace(".provenance.json", ".json");
        let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&table).unwrap()).unwrap();
        assert_eq!(t["cells"].as_array().unwrap().len(), list.len(), "{table}: sidecar and table disagree");
        for c in list {
            let n = c["n"].as_u64().unwrap() as usize;
            let axes = c["axes"].as_object().unwrap();
            assert!(!axes.is_empty(), "{}: {} has no axis values", side.display(), c["cell"]);
            let srcs = c["sources"].as_array().unwrap();
            if n == 0 {
                continue;
            }
            cells += 1;
            assert!(
                srcs.len() >= n,
                "{}: {} aggregates {n} values from {} sources",
                side.display(),
                c["cell"],
                srcs.len()
            );
            for s in srcs {
                sources += 1;
                for (axis, v) in axes.iter().filter(|(a, _)| *a != "metric") {
                    assert_eq!(
                        s["axes"].get(axis),
                        Some(v),
                        "{}: {} ({axis} = {v}) names {}",
                        side.display(),
                        c["cell"],
                        s["instance"]
                    );
                }
            }
        }
    }
    assert!(cells >= 200, "only {cells} measured cells checked");
    assert!(sources >= cells, "{sources} sources");
}

/// The table as data: the Parquet file holds the same frame as the CSV beside it, with a
/// column per axis of the table.
#[test]
fn every_committed_table_is_data_in_csv_and_parquet() {
    use polars::prelude::*;
    let mut n = 0;
    for csv in reports().into_iter().filter(|p| p.extension().is_some_and(|e| e == "csv")) {
        let parquet = csv.with_extension("parquet");
        assert!(parquet.is_file(), "{} has no Parquet twin", csv.display());
        let pq = ParquetReader::new(std::fs::File::open(&parquet).unwrap()).finish().unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let names: Vec<&str> = pq.get_column_names().into_iter().map(|c| c.as_str()).collect();
        assert_eq!(names, header, "{}", csv.display());
        assert_eq!(pq.height(), text.lines().count() - 1, "{}", csv.display());
        let axes = names.iter().position(|c| *c == "row").unwrap();
        assert!(axes >= 1, "{}: no axis columns", csv.display());
        assert!(names.iter().any(|c| c.starts_with("mean [")), "{}: no unit on mean", csv.display());
        n += 1;
    }
    assert!(n >= 15, "{n} tables");
}

/// Every committed figure exists as SVG and as PNG (for places that do not render SVG), and a
/// figure of synthetic data says so in its title.
#[test]
fn every_committed_figure_is_svg_and_png() {
    let mut n = 0;
    for svg in reports().into_iter().filter(|p| p.extension().is_some_and(|e| e == "svg")) {
        let png = std::fs::read(svg.with_extension("png")).unwrap_or_else(|_| panic!("{} has no PNG", svg.display()));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", svg.display());
        let side: serde_json::Value =
            serde_json::from_slice(&std::fs::read(svg.with_extension("provenance.json")).unwrap()).unwrap();
        let synthetic = side["upstream"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["kind"] == "synthetic_geo" || u["kind"] == "synthetic_linear");
        // The words of the drawing (a wrapped title spans several text elements).
        let svg_text = std::fs::read_to_string(&svg).unwrap();
        let words: Vec<&str> = svg_text
            .split("<text")
            .skip(1)
            .map(|t| t.split('>').nth(1).unwrap_or("").split('<').next().unwrap().trim())
            .collect();
        assert_eq!(words.join(" ").contains("[synthetic data]"), synthetic, "{}: synthetic label", svg.display());
        n += 1;
    }
    assert!(n >= 6, "{n} figures");
}
