//! `tabulate`: a declarative table over many stage instances.
//!
//! Each input is a metrics JSON (from `evaluate`) carrying the matrix axis values of the
//! instance that produced it. Rows and columns come from axes (`rows = ["epochs"]`,
//! `columns = ["model", "hidden"]`); a cell aggregates `metric` over every other axis (the
//! replicates): `mean`, `std` or `mean ± std` (sample std, n − 1). The best measured value
//! per row (or column) is bold. `paper` lists the numbers the paper printed, matched to cells
//! by axis values and shown beside the measured ones with the difference; `claims` are the
//! paper's own claims, quoted, judged from the replicate values by the verdict rule in
//! `claims` (held / not held / inconclusive, with n, the margin and its 95 % interval).
//!
//! Outputs: `md` (GitHub markdown), `tex` (LaTeX, booktabs), `csv` and `parquet` (the table
//! as data: one column per axis value and per statistic, units in the headers), `json`
//! (including, per cell `R<i>C<j>`, its axis values and the positions of the inputs behind it,
//! which the stage hands to the engine through `Stage::cell_sources` for the provenance
//! sidecar). All are renderings of one table model (`render`).

mod claims;
mod render;

pub use claims::{judge, Claim, Comparison, Judged, Test, Verdict};
pub use render::{render, render_sourced, Rendered};

use crate::values::{cmp_vals, show};
use repro_core::{
    read_json, stage_params, write_json, CellSource, CellSources, Ctx, InputSlot, Metrics, ParamError, StageError,
    StageResult, TypedStage,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Mean,
    Std,
    MeanStd,
    /// How many runs have the metric below `threshold`, shown as "k/n" (e.g. failed runs).
    CountBelow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Best {
    Min,
    Max,
    None,
}

stage_params! {
    /// Params of `tabulate`.
    pub struct TabulateParams {
        /// Metric key in each input's JSON, e.g. "mae", "accuracy".
        metric: String = "mae".into(),
        /// Several metrics at once: each input contributes one value per metric under a
        /// pseudo-axis `metric` (use it in `rows` or `columns`); overrides `metric`.
        metrics: Vec<String> = vec![],
        /// Axes whose values form the rows.
        rows: Vec<String> = vec![],
        /// Axes whose values form the columns.
        columns: Vec<String> = vec![],
        /// Over the remaining axes: "mean", "std", "mean_std" or "count_below" (runs under `threshold`, as k/n).
        aggregate: Aggregate = Aggregate::MeanStd,
        /// Threshold of the "count_below" aggregate.
        threshold: f64 = 1.0,
        /// Decimal digits shown.
        digits: usize = 4,
        /// Decimal digits per metric of `metrics`, e.g. { iterations = 0 } (default: `digits`).
        metric_digits: BTreeMap<String, usize> = BTreeMap::new(),
        /// Bold the "min" or "max" measured value of each row (or column, see best_per), or "none".
        best: Best = Best::Min,
        /// "row" or "column".
        best_per: String = "row".into(),
        /// Table caption.
        caption: String = String::new(),
        /// Heading of the row-label column.
        row_header: String = String::new(),
        /// Display names of axis values: { model = { dgex_d = "D-GEX(D)" } }.
        labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new(),
        /// Display order of axis values, e.g. { act = ["sigmoid", "tanh", "relu", "arelu"] }; unlisted values follow, sorted.
        order: BTreeMap<String, Vec<Value>> = BTreeMap::new(),
        /// Column heading template over axis names, e.g. "{model} ({hidden})"; default: labels joined by spaces.
        column_format: String = String::new(),
        /// Row heading template, e.g. "{epochs}".
        row_format: String = String::new(),
        /// Numbers the paper printed: [{ epochs = 100, model = "dgex_d", hidden = 500, value = 0.421837 }, …].
        paper: Vec<BTreeMap<String, Value>> = vec![],
        /// Decimal digits of the paper's numbers as printed (the LALR paper prints 6).
        paper_digits: usize = 6,
        /// A note on the paper's numbers (e.g. its reported σ range).
        paper_note: String = String::new(),
        /// The paper's own claims, quoted, judged by the verdict rule (README § Verdicts):
        /// [{ text = "…", source = "Table III", lower = { … }, higher = { … } }], or
        /// `lowest`/`highest` = { … } with `among` = [{ … }, …]; `proxy` and `exact` explain
        /// a weaker stand-in or deterministic values.
        claims: Vec<Claim> = vec![],
        /// The data is synthetic: the caption, the verdicts and the notes say so.
        synthetic: bool = false,
        /// Re-judge every claim at each value of this axis (e.g. a generator setting) and say
        /// which verdicts are stable and which are data-dependent.
        sensitivity: String = String::new(),
        /// Also show rows that only `paper` has (e.g. datasets that cannot ship); their measured
        /// cells read `missing`.
        paper_rows: bool = false,
        /// Text of a cell without a measured value (e.g. "data not bundled").
        missing: String = "–".into(),
        /// Lines printed under the table (data used, caveats).
        notes: Vec<String> = vec![],
    }
}

/// The `tabulate` stage kind.
pub struct Tabulate;

fn label(p: &TabulateParams, axis: &str, v: &Value) -> String {
    let raw = show(v);
    p.labels.get(axis).and_then(|m| m.get(&raw)).cloned().unwrap_or(raw)
}

pub(crate) fn heading(p: &TabulateParams, template: &str, axes: &[String], vals: &[Value]) -> String {
    if template.is_empty() {
        return axes.iter().zip(vals).map(|(a, v)| label(p, a, v)).collect::<Vec<_>>().join(" ");
    }
    let mut s = template.to_string();
    for (a, v) in axes.iter().zip(vals) {
        s = s.replace(&format!("{{{a}}}"), &label(p, a, v));
    }
    s
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub n: usize,
    /// Runs with the metric below the threshold (count_below only).
    pub below: Option<usize>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub paper: Option<f64>,
    /// Positions of the items (one per input and metric) behind it.
    pub inputs: Vec<usize>,
    /// The row and column axis values that select it (with `metric` for `metrics = [...]`).
    pub axes: BTreeMap<String, Value>,
    /// Decimal digits of this cell's numbers and of the paper's.
    pub digits: usize,
    pub paper_digits: usize,
}

impl Cell {
    /// The number compared with the paper's: the count for count_below, else the mean.
    pub fn value(&self) -> Option<f64> {
        match self.below {
            Some(k) => Some(k as f64),
            None => self.mean,
        }
    }
}

pub struct Table {
    pub row_keys: Vec<Vec<Value>>,
    pub col_keys: Vec<Vec<Value>>,
    pub cells: Vec<Vec<Cell>>,
}

fn matches(axes: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>) -> bool {
    want.iter().filter(|(k, _)| *k != "value").all(|(k, v)| axes.get(k).is_some_and(|a| show(a) == show(v)))
}

/// Groups the inputs' metric values into cells: row and column keys from the axes (ordered
/// by `order`, else numerically), each cell aggregated over the remaining axes, with the
/// paper's value matched by axis values. Kept whole (about 85 lines): each step feeds the next
/// and none is used elsewhere.
pub fn build(p: &TabulateParams, items: &[(BTreeMap<String, Value>, Option<f64>)]) -> StageResult<Table> {
    let key = |axes: &BTreeMap<String, Value>, names: &[String]| -> StageResult<Vec<Value>> {
        names
            .iter()
            .map(|n| {
                axes.get(n).cloned().ok_or_else(|| {
                    StageError::param(
                        "rows",
                        format!(
                            "an input has no axis `{n}` (its axes: {})",
                            axes.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )
                })
            })
            .collect()
    };
    let mut row_keys: Vec<Vec<Value>> = Vec::new();
    let mut col_keys: Vec<Vec<Value>> = Vec::new();
    for (axes, _) in items {
        let r = key(axes, &p.rows)?;
        let c = key(axes, &p.columns)?;
        if !row_keys.contains(&r) {
            row_keys.push(r);
        }
        if !col_keys.contains(&c) {
            col_keys.push(c);
        }
    }
    if p.paper_rows {
        for pv in &p.paper {
            let r: Option<Vec<Value>> = p.rows.iter().map(|n| pv.get(n).cloned()).collect();
            if let Some(r) = r {
                if !row_keys.iter().any(|k| k.iter().zip(&r).all(|(a, b)| show(a) == show(b))) {
                    row_keys.push(r);
                }
            }
        }
    }
    let ranked = |names: &[String], k: &[Value]| -> Vec<usize> {
        names
            .iter()
            .zip(k)
            .map(|(n, v)| p.order.get(n).and_then(|l| l.iter().position(|x| show(x) == show(v))).unwrap_or(usize::MAX))
            .collect()
    };
    row_keys.sort_by(|a, b| ranked(&p.rows, a).cmp(&ranked(&p.rows, b)).then_with(|| cmp_vals(a, b)));
    col_keys.sort_by(|a, b| ranked(&p.columns, a).cmp(&ranked(&p.columns, b)).then_with(|| cmp_vals(a, b)));
    let mut cells = Vec::new();
    for r in &row_keys {
        let mut row = Vec::new();
        for c in &col_keys {
            let idx: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, (axes, _))| {
                    key(axes, &p.rows).ok().as_ref() == Some(r) && key(axes, &p.columns).ok().as_ref() == Some(c)
                })
                .map(|(i, _)| i)
                .collect();
            let vals: Vec<f64> = idx.iter().filter_map(|&i| items[i].1).collect();
            let n = vals.len();
            let mean = (n > 0).then(|| vals.iter().sum::<f64>() / n as f64);
            let std = (n > 1).then(|| {
                let m = mean.unwrap();
                (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
            });
            let mut cell_axes: BTreeMap<String, Value> = BTreeMap::new();
            for (a, v) in p.rows.iter().zip(r).chain(p.columns.iter().zip(c)) {
                cell_axes.insert(a.clone(), v.clone());
            }
            let paper = p.paper.iter().find(|pv| {
                let ks: Vec<&String> = pv.keys().filter(|k| *k != "value").collect();
                ks.len() == cell_axes.len() && matches(&cell_axes, pv)
            });
            let paper = paper.and_then(|pv| pv.get("value")).and_then(Value::as_f64);
            let below =
                (p.aggregate == Aggregate::CountBelow).then(|| vals.iter().filter(|v| **v < p.threshold).count());
            let per_metric = cell_axes.get("metric").and_then(|m| p.metric_digits.get(&show(m))).copied();
            let (digits, paper_digits) = (per_metric.unwrap_or(p.digits), per_metric.unwrap_or(p.paper_digits));
            row.push(Cell { n, below, mean, std, paper, inputs: idx, axes: cell_axes, digits, paper_digits });
        }
        cells.push(row);
    }
    Ok(Table { row_keys, col_keys, cells })
}

pub(crate) fn fmt_cell(p: &TabulateParams, c: &Cell, pm: &str) -> String {
    let d = c.digits;
    if p.aggregate == Aggregate::CountBelow {
        return match c.below {
            Some(k) => format!("{k}/{}", c.n),
            None => p.missing.clone(),
        };
    }
    match (p.aggregate, c.mean, c.std) {
        (_, None, _) => p.missing.clone(),
        (Aggregate::Mean, Some(m), _) => format!("{m:.d$}"),
        (Aggregate::Std, _, s) => s.map(|s| format!("{s:.d$}")).unwrap_or_else(|| "–".into()),
        (Aggregate::MeanStd, Some(m), Some(s)) => format!("{m:.d$}{pm}{s:.d$}"),
        (Aggregate::MeanStd, Some(m), None) => format!("{m:.d$}"),
        (Aggregate::CountBelow, ..) => unreachable!(),
    }
}

pub(crate) fn best_mask(p: &TabulateParams, t: &Table) -> Vec<Vec<bool>> {
    let (nr, nc) = (t.row_keys.len(), t.col_keys.len());
    let mut mask = vec![vec![false; nc]; nr];
    if p.best == Best::None || matches!(p.aggregate, Aggregate::Std | Aggregate::CountBelow) {
        return mask;
    }
    let better = |a: f64, b: f64| if p.best == Best::Min { a < b } else { a > b };
    let groups: Vec<Vec<(usize, usize)>> = if p.best_per == "column" {
        (0..nc).map(|c| (0..nr).map(|r| (r, c)).collect()).collect()
    } else {
        (0..nr).map(|r| (0..nc).map(|c| (r, c)).collect()).collect()
    };
    for g in groups {
        let best = g.iter().filter_map(|&(r, c)| t.cells[r][c].mean).fold(None, |acc: Option<f64>, v| match acc {
            Some(a) if !better(v, a) => Some(a),
            _ => Some(v),
        });
        if let Some(b) = best {
            for (r, c) in g {
                if t.cells[r][c].mean == Some(b) {
                    mask[r][c] = true;
                }
            }
        }
    }
    mask
}

/// Every claim with its verdict; with `sensitivity`, once per value of that axis.
pub(crate) fn check_claims(p: &TabulateParams, items: &[(BTreeMap<String, Value>, Option<f64>)]) -> Vec<Judged> {
    if p.sensitivity.is_empty() {
        return p.claims.iter().map(|c| judge(c, items)).collect();
    }
    let mut values: Vec<Value> = Vec::new();
    for (axes, _) in items {
        if let Some(v) = axes.get(&p.sensitivity) {
            if !values.contains(v) {
                values.push(v.clone());
            }
        }
    }
    values.sort_by(cmp_vals_one);
    let mut out = Vec::new();
    for c in &p.claims {
        for v in &values {
            let mut at = c.clone();
            for sel in [&mut at.lower, &mut at.higher, &mut at.lowest, &mut at.highest].into_iter().flatten() {
                sel.insert(p.sensitivity.clone(), v.clone());
            }
            for sel in &mut at.among {
                sel.insert(p.sensitivity.clone(), v.clone());
            }
            let mut j = judge(&at, items);
            j.claim = c.clone();
            j.setting = Some(v.clone());
            out.push(j);
        }
    }
    out
}

fn cmp_vals_one(a: &Value, b: &Value) -> std::cmp::Ordering {
    cmp_vals(std::slice::from_ref(a), std::slice::from_ref(b))
}

impl TypedStage for Tabulate {
    type Params = TabulateParams;
    const KIND: &'static str = "tabulate";
    const VERSION: u32 = 11;
    const DOC: &'static str = "Build a table from many metrics artifacts: rows and columns from matrix axes, cells aggregated over the other axes (mean, std, mean ± std), best value bold, the paper's printed numbers beside the measured ones with the difference, and the paper's quoted claims judged with replicate uncertainty (held / not held / inconclusive). Outputs md, tex, csv and parquet (the table as data: one column per axis and per statistic, units in the headers), json.";
    const USES_SEED: bool = false;
    const USES_INPUT_AXES: bool = true;
    const INPUTS: &'static [InputSlot] = &[InputSlot::many("inputs", "metrics artifacts, e.g. \"eval[*]\"")];

    fn validate(p: &TabulateParams) -> Result<(), ParamError> {
        if p.best_per != "row" && p.best_per != "column" {
            return Err(ParamError::new("best_per", format!("expected \"row\" or \"column\", got \"{}\"", p.best_per)));
        }
        for (i, c) in p.claims.iter().enumerate() {
            claims::validate(i, c)?;
        }
        for (i, pv) in p.paper.iter().enumerate() {
            if !pv.get("value").is_some_and(Value::is_number) {
                return Err(ParamError::new(
                    format!("paper[{i}]"),
                    "each paper entry needs a numeric `value` beside its axis values",
                ));
            }
        }
        Ok(())
    }

    fn outputs(_p: &TabulateParams) -> Vec<String> {
        vec!["md".into(), "tex".into(), "csv".into(), "parquet".into(), "json".into()]
    }

    /// Reads the cells back from the `json` output: each cell with the positions of the
    /// inputs behind it. The JSON lists *items*, one per input and metric (`metrics = [...]`
    /// gives each input several), so item i is input i / (metrics per input).
    fn cell_sources(_p: &TabulateParams, outputs: &BTreeMap<String, PathBuf>) -> Option<CellSources> {
        let table: Value =
            outputs.get("json").and_then(|p| std::fs::read(p).ok()).and_then(|b| serde_json::from_slice(&b).ok())?;
        let field = |c: &Value, k: &str| c.get(k).cloned().unwrap_or(Value::Null);
        let cells = table
            .get("cells")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| CellSource {
                cell: field(c, "cell"),
                row: field(c, "row"),
                column: field(c, "column"),
                value: field(c, "value"),
                n: c.get("n").and_then(Value::as_u64).unwrap_or(0) as usize,
                axes: c
                    .get("axes")
                    .and_then(Value::as_object)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                inputs: c
                    .get("sources")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .map(|ix| ix as usize)
                    .collect(),
            })
            .collect();
        Some(CellSources { slot: "inputs", cells })
    }

    fn run(&self, p: &TabulateParams, ctx: &Ctx) -> StageResult<Metrics> {
        let mut items = Vec::new();
        let mut input_of = Vec::new();
        let names: Vec<&String> = if p.metrics.is_empty() { vec![&p.metric] } else { p.metrics.iter().collect() };
        for (pos, a) in ctx.inputs.get("inputs").into_iter().flatten().enumerate() {
            let m: Value = read_json(&a.path)?;
            for name in &names {
                let v = m.get(name.as_str()).and_then(Value::as_f64);
                if v.is_none() && m.get(name.as_str()).is_none() {
                    let param = if p.metrics.is_empty() { "metric" } else { "metrics" };
                    return Err(StageError::param(
                        param,
                        format!("input from `{}` has no metric `{name}`", a.producer),
                    ));
                }
                let mut axes = a.axes.clone();
                if !p.metrics.is_empty() {
                    axes.insert("metric".into(), Value::String((*name).clone()));
                }
                items.push((axes, v));
                input_of.push(pos);
            }
        }
        let r = render_sourced(p, &items, &input_of)?;
        std::fs::write(ctx.output("md"), &r.md)?;
        std::fs::write(ctx.output("tex"), &r.tex)?;
        std::fs::write(ctx.output("csv"), &r.csv)?;
        std::fs::write(ctx.output("parquet"), &r.parquet)?;
        write_json(&ctx.output("json"), &r.json)?;
        let mut m = Metrics::new();
        m.insert("claims".into(), r.json["claims"].clone());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<(BTreeMap<String, Value>, Option<f64>)> {
        let mut v = Vec::new();
        for (model, base) in [("d", 0.40), ("l", 0.38)] {
            for epochs in [100, 200] {
                for (rep, noise) in [(1, 0.001), (2, -0.001)] {
                    let axes = BTreeMap::from([
                        ("model".to_string(), json!(model)),
                        ("epochs".to_string(), json!(epochs)),
                        ("rep".to_string(), json!(rep)),
                    ]);
                    v.push((axes, Some(base - (epochs as f64) * 1e-4 + noise)));
                }
            }
        }
        v
    }

    fn params() -> TabulateParams {
        TabulateParams {
            rows: vec!["epochs".into()],
            columns: vec!["model".into()],
            caption: "Test & table".into(),
            row_header: "Epochs".into(),
            paper_digits: 4,
            labels: BTreeMap::from([(
                "model".to_string(),
                BTreeMap::from([("d".to_string(), "D-GEX(D)".to_string()), ("l".to_string(), "D-GEX(L)".to_string())]),
            )]),
            paper: vec![BTreeMap::from([
                ("epochs".to_string(), json!(100)),
                ("model".to_string(), json!("d")),
                ("value".to_string(), json!(0.3921)),
            ])],
            claims: vec![Claim {
                text: "L below D".into(),
                source: "Table 1".into(),
                lower: Some(BTreeMap::from([("model".to_string(), json!("l"))])),
                higher: Some(BTreeMap::from([("model".to_string(), json!("d"))])),
                ..Claim::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn cells_aggregate_over_replicates() {
        let t = build(&params(), &items()).unwrap();
        let c = &t.cells[0][0]; // epochs 100, model d: 0.39 ± 0.001
        assert_eq!(c.n, 2);
        assert!((c.mean.unwrap() - 0.39).abs() < 1e-12);
        // sample std of (0.391, 0.389) = 0.001·√2
        assert!((c.std.unwrap() - 0.001 * 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(c.paper, Some(0.3921));
        assert_eq!(c.inputs, vec![0, 1]);
    }

    #[test]
    fn count_below_counts_runs_under_the_threshold() {
        let p = TabulateParams { aggregate: Aggregate::CountBelow, threshold: 0.385, ..params() };
        let r = render(&p, &items()).unwrap();
        // epochs 100, model d: 0.391 and 0.389, none below 0.385; model l: 0.371, 0.369, both.
        assert!(r.md.contains("| 100 | 0/2 | 2/2 |"), "{}", r.md);
    }

    #[test]
    fn explicit_order_comes_first() {
        let p =
            TabulateParams { order: BTreeMap::from([("model".to_string(), vec![json!("l"), json!("d")])]), ..params() };
        let r = render(&p, &items()).unwrap();
        assert!(r.md.contains("| Epochs | D-GEX(L) | D-GEX(D) |"), "{}", r.md);
    }

    /// A dataset only the paper has becomes a row whose measured cells read `missing`, with
    /// the paper's number beside them; `metric_digits` sets the digits per metric.
    #[test]
    fn paper_rows_missing_and_metric_digits() {
        let axes = |ds: &str, metric: &str| {
            BTreeMap::from([("ds".to_string(), json!(ds)), ("metric".to_string(), json!(metric))])
        };
        let items = vec![(axes("boston", "iterations"), Some(555.0)), (axes("boston", "inv_l"), Some(8.3141))];
        let p = TabulateParams {
            metrics: vec!["iterations".into(), "inv_l".into()],
            rows: vec!["ds".into()],
            columns: vec!["metric".into()],
            aggregate: Aggregate::Mean,
            digits: 3,
            metric_digits: BTreeMap::from([("iterations".to_string(), 0)]),
            best: Best::None,
            paper_rows: true,
            missing: "data not bundled".into(),
            paper: vec![BTreeMap::from([
                ("ds".to_string(), json!("energy")),
                ("metric".to_string(), json!("iterations")),
                ("value".to_string(), json!(3833)),
            ])],
            ..Default::default()
        };
        let md = render(&p, &items).unwrap().md;
        assert!(md.contains("| boston | 8.314 | 555 |"), "{md}");
        assert!(md.contains("| energy | data not bundled | data not bundled |"), "{md}");
        assert!(md.contains("| energy · paper | – | 3833 |"), "{md}");
    }

    /// `sensitivity` judges every claim at each value of the axis: "L below D" holds at nl = 0
    /// and fails at nl = 1 (data-dependent); "L below 0.9" style claims that agree are stable.
    #[test]
    fn sensitivity_marks_verdicts_that_flip_as_data_dependent() {
        let mut items = Vec::new();
        for (nl, l, d) in [(0, 0.30, 0.40), (1, 0.50, 0.40)] {
            for (rep, e) in [(1, 0.001), (2, -0.002), (3, 0.0005)] {
                for (model, v) in [("l", l), ("d", d)] {
                    let axes = BTreeMap::from([
                        ("nl".to_string(), json!(nl)),
                        ("model".to_string(), json!(model)),
                        ("rep".to_string(), json!(rep)),
                    ]);
                    items.push((axes, Some(v + e)));
                }
            }
        }
        let p = TabulateParams {
            rows: vec!["nl".into()],
            columns: vec!["model".into()],
            sensitivity: "nl".into(),
            ..params()
        };
        let r = render(&p, &items).unwrap();
        let sens = r.json["sensitivity"].as_array().unwrap();
        assert_eq!(sens.len(), 1);
        assert_eq!(sens[0]["stable"], false);
        assert_eq!(sens[0]["verdicts"][0]["verdict"], "held");
        assert_eq!(sens[0]["verdicts"][1]["verdict"], "not_held");
        assert!(r.md.contains("→ **data-dependent**"), "{}", r.md);
        assert!(r.md.contains("“L below D” [nl = 0]"), "{}", r.md);
    }

    #[test]
    fn markdown_snapshot() {
        let r = render(&params(), &items()).unwrap();
        let want = "**Test & table**\n\n| Epochs | D-GEX(D) | D-GEX(L) |\n|---|---|---|\n| 100 | 0.3900 ± 0.0014 | **0.3700 ± 0.0014** |\n| 100 · paper | 0.3921 | – |\n| 100 · Δ (ours − paper) | -0.0021 | – |\n| 200 | 0.3800 ± 0.0014 | **0.3600 ± 0.0014** |\n| 200 · paper | – | – |\n| 200 · Δ (ours − paper) | – | – |\n\nCells: `mae`, mean ± sample standard deviation over 2 runs per cell.\n\nClaims of the paper, judged. Verdict rule (README, Verdicts): margin = difference of the means in the claimed direction (positive supports the claim) with its 95 % interval (paired t over matching replicates, else Welch t; Bonferroni for \"best among\"); held if the interval is above 0, not held if below, inconclusive if it contains 0 or n < 2.\n\n| Claim | Where | n | Means (claimed lower vs higher) | Margin [CI] | Test | Verdict |\n|---|---|---|---|---|---|---|\n| “L below D” | Table 1 | 4 vs 4 | 0.3650 vs 0.3850 | +0.0200 [+0.0200, +0.0200] | paired t over epochs, rep, 95 % | **held** |\n";
        assert_eq!(r.md, want);
    }

    #[test]
    fn latex_snapshot() {
        let r = render(&params(), &items()).unwrap();
        let want = "\\begin{table}[t]\n\\centering\n\\caption{Test \\& table}\n\\begin{tabular}{lrr}\n\\toprule\nEpochs & D-GEX(D) & D-GEX(L) \\\\\n\\midrule\n100 & 0.3900 $\\pm$ 0.0014 & \\textbf{0.3700 $\\pm$ 0.0014} \\\\\n\\quad paper & 0.3921 & -- \\\\\n200 & 0.3800 $\\pm$ 0.0014 & \\textbf{0.3600 $\\pm$ 0.0014} \\\\\n\\quad paper & -- & -- \\\\\n\\bottomrule\n\\end{tabular}\n\n\\par\\medskip\n{\\footnotesize Claims of the paper, judged. Verdict rule (README, Verdicts): margin = difference of the means in the claimed direction (positive supports the claim) with its 95 \\% interval (paired t over matching replicates, else Welch t; Bonferroni for \"best among\"); held if the interval is above 0, not held if below, inconclusive if it contains 0 or n $<$ 2.\\par}\n{\\footnotesize\n\\begin{tabular}{p{0.34\\linewidth}p{0.12\\linewidth}lp{0.22\\linewidth}l}\n\\toprule\nClaim & Where & n & Margin [CI] & Verdict \\\\\n\\midrule\n“L below D” & Table 1 & 4 vs 4 & +0.0200 [+0.0200, +0.0200] (paired t over epochs, rep, 95 \\%) & held \\\\\n\\bottomrule\n\\end{tabular}}\n\\end{table}\n";
        assert_eq!(r.tex, want);
    }
}
