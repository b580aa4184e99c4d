//! `repro report`: one self-contained HTML file per pipeline, checked as text and, where
//! Debian's Chromium is installed (CI installs it and sets REPRO_REQUIRE_CHROMIUM=1), in a
//! headless browser: the tables and the figure render, a click on a cell shows its lineage,
//! and with scripts off the page still carries every table and every cell's lineage.

mod common;
use common::{project_with, run_ok, Proj};
use std::path::{Path, PathBuf};
use std::process::Command;

fn project() -> Proj {
    let p = project_with(&["lipschitz_table1.toml"]);
    run_ok(&p, &["pipelines/lipschitz_table1.toml"]);
    p
}

fn report(p: &Proj) -> String {
    let out = p.repro(&["report", "pipelines/lipschitz_table1.toml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "reports/lipschitz_table1.html");
    std::fs::read_to_string(p.path("reports/lipschitz_table1.html")).unwrap()
}

#[test]
fn the_report_is_one_self_contained_reproducible_file() {
    let p = project();
    let html = report(&p);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<table class=\"results\"").count(), 1);
    assert!(html.contains("<svg width=\"640\" height=\"420\""), "the figure is inline");
    // Nothing is fetched: no external stylesheet, script, image or font.
    for needle in ["src=\"", "<link", "@import", "url("] {
        assert!(!html.contains(needle), "found {needle}");
    }
    assert!(!html.replace("http://www.w3.org/2000/svg", "").contains("http"), "a network reference");
    // The paper's number beside ours, the judged claims, the stages and the environment.
    assert!(html.contains("Boston housing · paper</th>"));
    assert_eq!(html.matches("class=\"verdict ").count(), 3);
    assert!(html.contains("<code>gd_boston</code></td><td>gd</td><td>6</td>"), "stage table");
    assert!(html.contains("cpu_features = "));
    // Every measured cell links to its written-out lineage (readable with scripts off).
    assert!(html.contains("<a href=\"#lin-lipschitz-table1-R1C2\">46"), "cell link");
    assert!(html.contains("<dt id=\"lin-lipschitz-table1-R1C2\">"));
    // Written again, byte for byte (no time in it).
    assert_eq!(report(&p), html);
    // Stale reports are refused: they are not the results of the pipeline as it now reads.
    let pipe = p.path("pipelines/lipschitz_table1.toml");
    let text = std::fs::read_to_string(&pipe).unwrap().replace("reps = [1, 2, 3]", "reps = [1, 2]");
    std::fs::write(&pipe, text).unwrap();
    let out = p.repro(&["report", "pipelines/lipschitz_table1.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("are not the current results"), "{out:?}");
}

/// Debian's Chromium, or `None` (a failure when CI requires it).
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().map(|c| Path::new("/usr/bin").join(c)).find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("REPRO_REQUIRE_CHROMIUM").is_none(),
            "REPRO_REQUIRE_CHROMIUM is set but there is no chromium"
        );
        eprintln!("note: no chromium; the browser checks of the HTML report are skipped");
    }
    found
}

/// Runs headless Chromium on `url` with extra flags; its stdout.
fn browse(bin: &Path, profile: &Path, flags: &[&str], url: &str) -> String {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display())).args(flags).arg(url);
    let out = c.output().unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn in_a_browser_tables_and_figure_render_and_a_cell_click_shows_its_lineage() {
    let Some(bin) = chromium() else { return };
    let p = project();
    report(&p);
    let url = format!("file://{}#cell=lipschitz_table1/R1C2", p.path("reports/lipschitz_table1.html").display());
    let tmp = tempfile::tempdir().unwrap();
    // The page's script clicks the cell named in the fragment (the same handler as a mouse
    // click) and records what it laid out; --dump-dom prints the DOM after the scripts ran.
    let dom = browse(&bin, &tmp.path().join("a"), &["--dump-dom"], &url);
    let layout = dom.split("data-layout=\"").nth(1).unwrap().split('"').next().unwrap().replace("&quot;", "\"");
    let layout: serde_json::Value = serde_json::from_str(&layout).unwrap();
    assert_eq!(layout["tables"], 1, "{layout}");
    assert!(layout["figures"][0].as_f64().unwrap() > 300.0, "the figure has no width: {layout}");
    let panel = dom.split("<aside id=\"lineage-panel\"").nth(1).unwrap().split("</aside>").next().unwrap();
    assert!(!panel.split('>').next().unwrap().contains("hidden"), "the lineage panel stayed hidden");
    assert!(panel.contains("Lineage of lipschitz_table1/R1C2"), "{panel}");
    // R1C2 is Boston at α = 0.1, iterations: the three α = 0.1 Boston runs, nothing else.
    for rep in 1..=3 {
        assert!(panel.contains(&format!("gd_boston[alpha=0.1,dataset=boston,rep={rep}]")), "{panel}");
    }
    assert!(!panel.contains("alpha=1/L"), "{panel}");
    // The screenshot, kept as a test artifact.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-lipschitz_table1.png");
    let _ = std::fs::remove_file(&shot);
    let flag = format!("--screenshot={}", shot.display());
    browse(&bin, &tmp.path().join("b"), &[&flag, "--window-size=1280,1800"], &url);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 50_000, "a near-empty screenshot ({} bytes)", png.len());
    eprintln!("screenshot: {}", shot.display());
    // Scripts off (headless Chromium cannot dump a page with scripts disabled, so the page is
    // loaded with its script elements removed, which is what such a reader gets): the tables
    // and the figure are there, and following a cell's link opens its written-out lineage.
    let html = std::fs::read_to_string(p.path("reports/lipschitz_table1.html")).unwrap();
    let mut bare = String::new();
    let mut rest = html.as_str();
    while let Some(i) = rest.find("<script") {
        bare.push_str(&rest[..i]);
        rest = &rest[i + rest[i..].find("</script>").unwrap() + "</script>".len()..];
    }
    bare.push_str(rest);
    let page = tmp.path().join("noscript.html");
    std::fs::write(&page, bare).unwrap();
    let url = format!("file://{}#lin-lipschitz-table1-R1C2", page.display());
    let dom = browse(&bin, &tmp.path().join("c"), &["--dump-dom"], &url);
    assert!(!dom.contains("data-layout"), "a script ran");
    assert!(dom.contains("<table class=\"results\"") && dom.contains("<svg"));
    assert!(dom.contains("<details class=\"lineage\" open=\"\">"), "the cell's lineage did not open");
}
