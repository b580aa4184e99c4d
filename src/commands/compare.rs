//! `repro compare PIPELINE --set … | --profile …`: the default reports of a pipeline beside
//! those of a variant (see `repro_engine::provenance::variant`), cell by cell with the change
//! of the mean, then every claim's verdict in both: DVC's `exp diff` for result tables.

use super::load_plan;
use repro_engine::diag::{exit, Error, Result};
use repro_engine::project_root;
use repro_engine::provenance;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn compare(pipeline: &Path, sets: &[String], profile: &Option<String>, changed_only: bool) -> Result<i32> {
    let plan = load_plan(pipeline, sets, profile)?;
    let Some(variant) = provenance::variant(&plan.spec)? else {
        return Err(Error::Usage(
            "nothing to compare: give the --set or --profile of a variant whose vars differ from the defaults".into(),
        ));
    };
    let dir = project_root(pipeline).join("reports");
    let mut reports: Vec<&str> = plan.instances.iter().filter_map(|i| i.report.as_deref()).collect();
    reports.dedup();
    let again = |ov: &str| format!("run it first: repro run {}{ov}", pipeline.display());
    // Quoted for a shell where the value needs it: --set 'trials=[1,2]'.
    let flags: String = variant
        .overrides
        .iter()
        .map(|o| match o.split_once(' ') {
            Some((flag, v)) if v.contains(|c: char| !c.is_ascii_alphanumeric() && !"=._-,/".contains(c)) => {
                format!(" {flag} '{v}'")
            }
            _ => format!(" {o}"),
        })
        .collect();
    for r in reports {
        let (a, b) = (dir.join(format!("{r}.json")), dir.join(format!("{r}@{}.json", variant.name)));
        if !a.is_file() && !dir.join(format!("{r}.svg")).is_file() {
            return Err(Error::Usage(format!("no default report {}: {}", a.display(), again(""))));
        }
        if !a.is_file() {
            outln!("{r}: figure reports/{r}.svg vs reports/{r}@{}.svg", variant.name);
            continue;
        }
        if !b.is_file() {
            return Err(Error::Usage(format!("no variant report {}: {}", b.display(), again(&flags))));
        }
        outln!("{r}: default vs @{} ({})", variant.name, variant.overrides.join(" "));
        table(&read(&a)?, &read(&b)?, changed_only);
    }
    Ok(exit::OK)
}

fn read(p: &PathBuf) -> Result<Value> {
    let bytes = std::fs::read(p).map_err(|e| Error::io(format!("cannot read {}", p.display()), e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Usage(format!("{} is not a table report: {e}", p.display())))
}

/// Cells matched by their axis values (a variant may add or drop rows), then claims by quote
/// and setting.
fn table(a: &Value, b: &Value, changed_only: bool) {
    let cells = |t: &Value| t["cells"].as_array().cloned().unwrap_or_default();
    let (ca, cb) = (cells(a), cells(b));
    let mut rows: Vec<(String, String, String, Option<f64>)> = Vec::new();
    let mut seen = Vec::new();
    for c in &ca {
        let other = cb.iter().find(|d| d["axes"] == c["axes"]);
        seen.push(c["axes"].clone());
        let delta = match (c["mean"].as_f64(), other.and_then(|d| d["mean"].as_f64())) {
            (Some(x), Some(y)) => Some(y - x),
            _ => None,
        };
        let vb = other.map(|d| text(&d["value"])).unwrap_or_else(|| "(absent)".into());
        rows.push((where_(c), text(&c["value"]), vb, delta));
    }
    for d in cb.iter().filter(|d| !seen.contains(&d["axes"])) {
        rows.push((where_(d), "(absent)".into(), text(&d["value"]), None));
    }
    let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(4).max(4);
    let v = rows.iter().map(|r| r.1.chars().count().max(r.2.chars().count())).max().unwrap_or(7).max(7);
    outln!("  {:w$}  {:>v$}  {:>v$}  Δ mean", "cell", "default", "variant");
    let mut same = 0;
    for (cell, x, y, d) in &rows {
        if changed_only && x == y {
            same += 1;
            continue;
        }
        let mark = if x != y { "*" } else { " " };
        let d = d.map(|d| format!("{d:+.6}")).unwrap_or_else(|| "–".into());
        outln!("{mark} {cell:w$}  {x:>v$}  {y:>v$}  {d}");
    }
    if same > 0 {
        outln!("  ({same} cells unchanged)");
    }
    let claims = |t: &Value| t["claims"].as_array().cloned().unwrap_or_default();
    let (ja, jb) = (claims(a), claims(b));
    for j in &ja {
        let other = jb.iter().find(|k| k["claim"]["text"] == j["claim"]["text"] && k["setting"] == j["setting"]);
        let (x, y) = (text(&j["verdict"]), other.map(|k| text(&k["verdict"])).unwrap_or_else(|| "(absent)".into()));
        let mark = if x != y { "*" } else { " " };
        let setting = if j["setting"].is_null() { String::new() } else { format!(" [{}]", text(&j["setting"])) };
        outln!("{mark} claim “{}”{setting}: {x} → {y}", text(&j["claim"]["text"]));
    }
}

fn where_(c: &Value) -> String {
    format!("{} {} · {}", text(&c["cell"]), text(&c["row"]), text(&c["column"]))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        o => o.to_string(),
    }
}
