//! The renderings of one table model: GitHub markdown, LaTeX (booktabs), the table as data
//! (a polars frame written as CSV and Parquet: one column per axis, one per statistic, units in
//! the headers) and JSON (which lists, per cell, its axis values and the positions of the
//! inputs behind it, for provenance).

use super::claims::t_quantile;
use super::{
    best_mask, build, check_claims, fmt_cell, heading, Aggregate, Comparison, Judged, Table, TabulateParams, Test,
};
use polars::prelude::*;
use repro_core::{StageError, StageResult};
use serde_json::Value;
use std::collections::BTreeMap;

/// The four renderings.
pub struct Rendered {
    /// GitHub markdown.
    pub md: String,
    /// LaTeX (booktabs).
    pub tex: String,
    /// The table as data, one line per cell.
    pub csv: String,
    /// The same frame as Parquet.
    pub parquet: Vec<u8>,
    /// Headings, cells (with input positions) and claims.
    pub json: Value,
}

/// What every rendering shares: the table, which cells are best, the headings, the claims.
struct Layout<'a> {
    p: &'a TabulateParams,
    t: Table,
    best: Vec<Vec<bool>>,
    col_heads: Vec<String>,
    row_heads: Vec<String>,
    any_paper: bool,
    claims: Vec<Judged>,
    /// The heading of the row-label column.
    rh: String,
    /// The input position of each item.
    input_of: &'a [usize],
}

/// Builds the table from `(axes, value)` items, one per input, and renders it.
pub fn render(p: &TabulateParams, items: &[(BTreeMap<String, Value>, Option<f64>)]) -> StageResult<Rendered> {
    let input_of: Vec<usize> = (0..items.len()).collect();
    render_sourced(p, items, &input_of)
}

/// Builds the table from `(axes, value)` items, item `i` read from input `input_of[i]`
/// (`metrics = [...]` reads several items from each input), and renders it.
pub fn render_sourced(
    p: &TabulateParams,
    items: &[(BTreeMap<String, Value>, Option<f64>)],
    input_of: &[usize],
) -> StageResult<Rendered> {
    let t = build(p, items)?;
    let best = best_mask(p, &t);
    let col_heads: Vec<String> = t.col_keys.iter().map(|k| heading(p, &p.column_format, &p.columns, k)).collect();
    let row_heads: Vec<String> = t.row_keys.iter().map(|k| heading(p, &p.row_format, &p.rows, k)).collect();
    let any_paper = t.cells.iter().flatten().any(|c| c.paper.is_some());
    let claims = check_claims(p, items);
    let rh = if p.row_header.is_empty() { p.rows.join(" ") } else { p.row_header.clone() };
    let l = Layout { p, t, best, col_heads, row_heads, any_paper, claims, rh, input_of };
    let mut df = frame(&l).map_err(table_error)?;
    let mut csv = Vec::new();
    CsvWriter::new(&mut csv).finish(&mut df).map_err(table_error)?;
    let mut parquet = Vec::new();
    ParquetWriter::new(&mut parquet).finish(&mut df).map_err(table_error)?;
    let csv = String::from_utf8(csv).expect("polars writes UTF-8");
    Ok(Rendered { md: markdown(&l), tex: latex(&l), csv, parquet, json: json(&l) })
}

fn table_error(e: PolarsError) -> StageError {
    StageError::msg(format!("cannot write the table as data: {e}"))
}

/// The markdown table, then its notes and claims.
fn markdown(l: &Layout) -> String {
    let (p, t, best, rh) = (l.p, &l.t, &l.best, &l.rh);
    let (col_heads, row_heads, any_paper) = (&l.col_heads, &l.row_heads, l.any_paper);
    let mut md = String::new();
    if !p.caption.is_empty() {
        md.push_str(&format!("**{}**\n\n", caption(p)));
    }
    md.push_str(&format!("| {} | {} |\n", rh, col_heads.join(" | ")));
    md.push_str(&format!("|{}|\n", vec!["---"; col_heads.len() + 1].join("|")));
    for (r, rhd) in row_heads.iter().enumerate() {
        let cells: Vec<String> = t.cells[r]
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let s = fmt_cell(p, cell, " ± ");
                if best[r][c] {
                    format!("**{s}**")
                } else {
                    s
                }
            })
            .collect();
        md.push_str(&format!("| {rhd} | {} |\n", cells.join(" | ")));
        if any_paper {
            let paper: Vec<String> = t.cells[r]
                .iter()
                .map(|c| c.paper.map(|v| format!("{v:.pd$}", pd = c.paper_digits)).unwrap_or_else(|| "–".into()))
                .collect();
            let delta: Vec<String> = t.cells[r]
                .iter()
                .map(|c| match (c.value(), c.paper) {
                    (Some(m), Some(pv)) => {
                        format!("{:+.dd$}", m - pv, dd = if c.below.is_some() { 0 } else { c.digits })
                    }
                    _ => "–".into(),
                })
                .collect();
            md.push_str(&format!("| {rhd} · paper | {} |\n", paper.join(" | ")));
            md.push_str(&format!("| {rhd} · Δ (ours − paper) | {} |\n", delta.join(" | ")));
        }
    }
    md.push_str(&markdown_notes(l));
    md
}

/// The lines under a table: what the cells are (with the paper's note), then the notes.
fn note_lines(l: &Layout) -> Vec<String> {
    let (p, t) = (l.p, &l.t);
    let n_per: Vec<usize> = t.cells.iter().flatten().map(|c| c.n).collect();
    let (nmin, nmax) = (n_per.iter().min().copied().unwrap_or(0), n_per.iter().max().copied().unwrap_or(0));
    let n_text = if nmin == nmax { format!("{nmin}") } else { format!("{nmin}–{nmax}") };
    let agg = match p.aggregate {
        Aggregate::Mean => "mean",
        Aggregate::Std => "standard deviation",
        Aggregate::MeanStd => "mean ± sample standard deviation",
        Aggregate::CountBelow => "",
    };
    let mut first = if p.aggregate == Aggregate::CountBelow {
        format!("Cells: runs with `{}` below {}, out of {n_text} runs per cell.", p.metric, p.threshold)
    } else {
        let what =
            if p.metrics.is_empty() { format!("`{}`", p.metric) } else { format!("`{}`", p.metrics.join("`, `")) };
        let runs = if nmax == 1 { "run" } else { "runs" };
        format!("Cells: {what}, {agg} over {n_text} {runs} per cell.")
    };
    if !p.paper_note.is_empty() {
        first.push_str(&format!(" Paper: {}.", p.paper_note));
    }
    std::iter::once(first).chain(p.notes.iter().cloned()).collect()
}

/// What the cells are, the paper note, the notes and the claims' verdicts.
fn markdown_notes(l: &Layout) -> String {
    let (p, claims) = (l.p, &l.claims);
    let mut md = String::new();
    let notes = note_lines(l);
    md.push('\n');
    md.push_str(&notes[0]);
    md.push('\n');
    for n in &notes[1..] {
        md.push_str(&format!("\n{n}\n"));
    }
    if !claims.is_empty() {
        md.push_str(&format!("\n{}\n\n", claims_heading(p)));
        md.push_str("| Claim | Where | n | Means (claimed lower vs higher) | Margin [CI] | Test | Verdict |\n");
        md.push_str("|---|---|---|---|---|---|---|\n");
        for j in claims {
            let r = claim_row(p, j);
            let cells = [r.claim, r.source, r.n, r.means, r.margin, r.test, format!("**{}**", r.verdict)];
            let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            md.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        for line in sensitivity_lines(p, claims) {
            md.push_str(&line);
            md.push('\n');
        }
    }

    md
}

fn latex(l: &Layout) -> String {
    let (p, t, best, rh) = (l.p, &l.t, &l.best, &l.rh);
    let (col_heads, row_heads, any_paper) = (&l.col_heads, &l.row_heads, l.any_paper);
    let mut tex = String::new();
    tex.push_str("\\begin{table}[t]\n\\centering\n");
    if !p.caption.is_empty() {
        tex.push_str(&format!("\\caption{{{}}}\n", latex_escape(&caption(p))));
    }
    tex.push_str(&format!("\\begin{{tabular}}{{l{}}}\n\\toprule\n", "r".repeat(col_heads.len())));
    let heads: Vec<String> = col_heads.iter().map(|h| latex_escape(h)).collect();
    tex.push_str(&format!("{} & {} \\\\\n\\midrule\n", latex_escape(rh), heads.join(" & ")));
    for (r, rhd) in row_heads.iter().enumerate() {
        let cells: Vec<String> = t.cells[r]
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let s = fmt_cell(p, cell, " $\\pm$ ");
                if best[r][c] {
                    format!("\\textbf{{{s}}}")
                } else {
                    s
                }
            })
            .collect();
        tex.push_str(&format!("{} & {} \\\\\n", latex_escape(rhd), cells.join(" & ")));
        if any_paper {
            let paper: Vec<String> = t.cells[r]
                .iter()
                .map(|c| c.paper.map(|v| format!("{v:.pd$}", pd = c.paper_digits)).unwrap_or_else(|| "--".into()))
                .collect();
            tex.push_str(&format!("\\quad paper & {} \\\\\n", paper.join(" & ")));
        }
    }
    tex.push_str("\\bottomrule\n\\end{tabular}\n");
    if !l.claims.is_empty() {
        tex.push_str(&format!("\n\\par\\medskip\n{{\\footnotesize {}\\par}}\n", latex_escape(&claims_heading(p))));
        tex.push_str(
            "{\\footnotesize\n\\begin{tabular}{p{0.34\\linewidth}p{0.12\\linewidth}lp{0.22\\linewidth}l}\n\\toprule\n",
        );
        tex.push_str("Claim & Where & n & Margin [CI] & Verdict \\\\\n\\midrule\n");
        for j in &l.claims {
            let r = claim_row(p, j);
            let cells = [r.claim, r.source, r.n, format!("{} ({})", r.margin, r.test), r.verdict];
            let cells: Vec<String> = cells.iter().map(|c| latex_escape(c)).collect();
            tex.push_str(&format!("{} \\\\\n", cells.join(" & ")));
        }
        tex.push_str("\\bottomrule\n\\end{tabular}}\n");
        for line in sensitivity_lines(p, &l.claims) {
            tex.push_str(&format!("{{\\footnotesize {}\\par}}\n", latex_escape(line.trim_start_matches("- "))));
        }
    }
    tex.push_str("\\end{table}\n");
    tex
}

/// The caption, marked when the data is synthetic.
fn caption(p: &TabulateParams) -> String {
    if p.synthetic {
        format!("{} [synthetic data]", p.caption)
    } else {
        p.caption.clone()
    }
}

fn claims_heading(p: &TabulateParams) -> String {
    let data = if p.synthetic {
        " on synthetic data (so the verdicts are about this generator, not about the paper's data)"
    } else {
        ""
    };
    format!(
        "Claims of the paper, judged{data}. Verdict rule (README, Verdicts): margin = difference of the \
         means in the claimed direction (positive supports the claim) with its 95 % interval \
         (paired t over matching replicates, else Welch t; Bonferroni for \"best among\"); held if the \
         interval is above 0, not held if below, inconclusive if it contains 0 or n < 2."
    )
}

/// With `sensitivity`: one line per claim, its verdict at each value of the axis, and whether
/// it is stable or data-dependent.
fn sensitivity_lines(p: &TabulateParams, claims: &[Judged]) -> Vec<String> {
    if p.sensitivity.is_empty() {
        return vec![];
    }
    let mut out = vec![
        String::new(),
        format!("Sensitivity: each claim re-judged at every value of `{}`:", p.sensitivity),
        String::new(),
    ];
    for (text, group) in sensitivity_groups(claims) {
        let parts: Vec<String> = group
            .iter()
            .map(|j| {
                format!(
                    "{} ({} = {})",
                    j.verdict.word(),
                    p.sensitivity,
                    j.setting.as_ref().map(crate::values::show).unwrap_or_default()
                )
            })
            .collect();
        let stable = group.windows(2).all(|w| w[0].verdict == w[1].verdict);
        out.push(format!(
            "- “{text}”: {} → **{}**",
            parts.join(", "),
            if stable { "stable" } else { "data-dependent" }
        ));
    }
    out
}

/// The judged claims grouped by claim, in order.
fn sensitivity_groups(claims: &[Judged]) -> Vec<(String, Vec<&Judged>)> {
    let mut groups: Vec<(String, Vec<&Judged>)> = Vec::new();
    for j in claims {
        match groups.iter_mut().find(|(t, _)| *t == j.claim.text) {
            Some((_, g)) => g.push(j),
            None => groups.push((j.claim.text.clone(), vec![j])),
        }
    }
    groups
}

/// One claim's row, as text.
struct ClaimRow {
    claim: String,
    source: String,
    n: String,
    means: String,
    margin: String,
    test: String,
    verdict: String,
}

fn claim_row(p: &TabulateParams, j: &Judged) -> ClaimRow {
    let c = &j.claim;
    let s: &Comparison = &j.shown;
    let metric = [&c.lower, &c.lowest, &c.highest].into_iter().flatten().find_map(|sel| sel.get("metric"));
    let d = metric.and_then(|m| p.metric_digits.get(&crate::values::show(m))).copied().unwrap_or(p.digits);
    let num = |v: Option<f64>| v.map(|x| format!("{x:.d$}")).unwrap_or_else(|| "–".into());
    let signed = |x: f64| format!("{x:+.d$}").replace('-', "−");
    let mut claim =
        if c.proxy.is_empty() { format!("“{}”", c.text) } else { format!("Proxy: {} ({})", c.text, c.proxy) };
    if let Some(v) = &j.setting {
        claim = format!("{claim} [{} = {}]", p.sensitivity, crate::values::show(v));
    }
    let rivals =
        if j.competitors.is_empty() { String::new() } else { format!(", weakest of {} rivals", j.competitors.len()) };
    let margin = match (s.margin, s.ci) {
        (Some(m), Some((lo, hi))) => format!("{} [{}, {}]", signed(m), signed(lo), signed(hi)),
        (Some(m), None) => signed(m),
        _ => "–".into(),
    };
    let mut test = s.test.describe();
    if s.test == Test::Exact {
        test = format!("exact: {}", c.exact);
    } else if s.ci.is_some() {
        test = format!("{test}, {}", level_text(s.level));
    }
    ClaimRow {
        claim,
        source: c.source.clone(),
        n: format!("{} vs {}{rivals}", s.n_lower, s.n_higher),
        means: format!("{} vs {}", num(s.mean_lower), num(s.mean_higher)),
        margin,
        test,
        verdict: j.verdict.word().to_string(),
    }
}

fn level_text(level: f64) -> String {
    let pct = format!("{:.2}", level * 100.0);
    let pct = pct.trim_end_matches('0').trim_end_matches('.');
    format!("{pct} %")
}

/// What a cell's numbers are, for the headers: the metric (or "metric" when a column says
/// which), and for `count_below` the runs under the threshold.
fn units(p: &TabulateParams) -> (String, String) {
    let metric = if p.metrics.is_empty() { p.metric.clone() } else { "per metric column".into() };
    let count = format!("runs with {} < {}", if p.metrics.is_empty() { &p.metric } else { "metric" }, p.threshold);
    (metric, count)
}

/// The table as data: one row per cell, one column per axis (raw values, typed), the display
/// labels, then n, mean, sample std, the 95 % t interval of the mean, the paper's number and
/// ours minus it, each header with its unit in brackets.
fn frame(l: &Layout) -> PolarsResult<DataFrame> {
    let (p, t) = (l.p, &l.t);
    let cells: Vec<(usize, usize)> =
        (0..t.row_keys.len()).flat_map(|r| (0..t.col_keys.len()).map(move |c| (r, c))).collect();
    let mut cols: Vec<Column> = Vec::new();
    for axis in p.rows.iter().chain(&p.columns) {
        let vals: Vec<&Value> = cells.iter().map(|&(r, c)| &t.cells[r][c].axes[axis]).collect();
        let name = PlSmallStr::from(axis.as_str());
        cols.push(if vals.iter().all(|v| v.is_i64()) {
            Column::new(name, vals.iter().map(|v| v.as_i64()).collect::<Vec<_>>())
        } else if vals.iter().all(|v| v.is_number()) {
            Column::new(name, vals.iter().map(|v| v.as_f64()).collect::<Vec<_>>())
        } else {
            Column::new(name, vals.iter().map(|v| crate::values::show(v)).collect::<Vec<_>>())
        });
    }
    let at = |f: &dyn Fn(&super::Cell) -> Option<f64>| -> Vec<Option<f64>> {
        cells.iter().map(|&(r, c)| f(&t.cells[r][c])).collect()
    };
    let half = |c: &super::Cell| match (c.mean, c.std) {
        (Some(_), Some(s)) if c.n > 1 => Some(t_quantile(0.95, (c.n - 1) as f64) * s / (c.n as f64).sqrt()),
        _ => None,
    };
    let (metric, count) = units(p);
    let counted = p.aggregate == Aggregate::CountBelow;
    let paper_unit = if counted { count.clone() } else { metric.clone() };
    cols.push(Column::new("row".into(), cells.iter().map(|&(r, _)| l.row_heads[r].clone()).collect::<Vec<_>>()));
    cols.push(Column::new("column".into(), cells.iter().map(|&(_, c)| l.col_heads[c].clone()).collect::<Vec<_>>()));
    cols.push(Column::new("n".into(), cells.iter().map(|&(r, c)| t.cells[r][c].n as u64).collect::<Vec<_>>()));
    cols.push(Column::new(format!("mean [{metric}]").into(), at(&|c| c.mean)));
    cols.push(Column::new(format!("std [{metric}]").into(), at(&|c| c.std)));
    cols.push(Column::new(format!("ci95_low [{metric}]").into(), at(&|c| Some(c.mean? - half(c)?))));
    cols.push(Column::new(format!("ci95_high [{metric}]").into(), at(&|c| Some(c.mean? + half(c)?))));
    if counted {
        cols.push(Column::new(format!("below [{count}]").into(), at(&|c| c.below.map(|k| k as f64))));
    }
    cols.push(Column::new(format!("paper [{paper_unit}]").into(), at(&|c| c.paper)));
    cols.push(Column::new(format!("delta [{paper_unit}]").into(), at(&|c| Some(c.value()? - c.paper?))));
    DataFrame::new_infer_height(cols)
}

/// JSON, with each cell's axis values and the positions of its inputs (for provenance).
fn json(l: &Layout) -> Value {
    let (p, t, claims) = (l.p, &l.t, &l.claims);
    let (col_heads, row_heads) = (&l.col_heads, &l.row_heads);
    let mut cells_json = Vec::new();
    for (r, rhd) in row_heads.iter().enumerate() {
        for (c, ch) in col_heads.iter().enumerate() {
            let cell = &t.cells[r][c];
            let mut sources: Vec<usize> = cell.inputs.iter().map(|&i| l.input_of[i]).collect();
            sources.dedup();
            let paper = cell.paper.map(|v| format!("{v:.pd$}", pd = cell.paper_digits));
            let delta = match (cell.value(), cell.paper) {
                (Some(m), Some(pv)) => {
                    Some(format!("{:+.dd$}", m - pv, dd = if cell.below.is_some() { 0 } else { cell.digits }))
                }
                _ => None,
            };
            cells_json.push(serde_json::json!({
                "cell": format!("R{}C{}", r + 1, c + 1),
                "row": rhd, "column": ch,
                "value": fmt_cell(p, cell, " ± "),
                "best": l.best[r][c], "paper_shown": paper, "delta_shown": delta,
                "mean": cell.mean, "std": cell.std, "n": cell.n, "paper": cell.paper,
                "axes": cell.axes,
                "sources": sources,
            }));
        }
    }
    let claims_json: Vec<Value> = claims.iter().map(|j| serde_json::to_value(j).expect("serializable")).collect();
    let sensitivity: Vec<Value> = if p.sensitivity.is_empty() {
        vec![]
    } else {
        sensitivity_groups(claims)
            .into_iter()
            .map(|(text, g)| {
                let stable = g.windows(2).all(|w| w[0].verdict == w[1].verdict);
                let verdicts: Vec<Value> =
                    g.iter().map(|j| serde_json::json!({"setting": j.setting, "verdict": j.verdict})).collect();
                serde_json::json!({"text": text, "axis": p.sensitivity, "verdicts": verdicts, "stable": stable})
            })
            .collect()
    };
    let claim_rows: Vec<Value> = claims
        .iter()
        .map(|j| {
            let r = claim_row(p, j);
            serde_json::json!({"claim": r.claim, "source": r.source, "n": r.n, "means": r.means,
                "margin": r.margin, "test": r.test, "verdict": r.verdict})
        })
        .collect();
    serde_json::json!({
        "caption": caption(p), "synthetic": p.synthetic, "metric": p.metric, "aggregate": p.aggregate,
        "row_header": l.rh, "notes": note_lines(l), "claims_heading": claims_heading(p),
        "claim_rows": claim_rows, "sensitivity_lines": sensitivity_lines(p, claims),
        "columns": col_heads, "rows": row_heads, "cells": cells_json, "claims": claims_json,
        "sensitivity": sensitivity,
    })
}

pub(super) fn latex_escape(s: &str) -> String {
    let mut o = String::new();
    for ch in s.chars() {
        match ch {
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                o.push('\\');
                o.push(ch);
            }
            '~' => o.push_str("\\textasciitilde{}"),
            '^' => o.push_str("\\textasciicircum{}"),
            '\\' => o.push_str("\\textbackslash{}"),
            '±' => o.push_str("$\\pm$"),
            '≤' => o.push_str("$\\le$"),
            '≥' => o.push_str("$\\ge$"),
            'σ' => o.push_str("$\\sigma$"),
            'Δ' => o.push_str("$\\Delta$"),
            'τ' => o.push_str("$\\tau$"),
            'α' => o.push_str("$\\alpha$"),
            'β' => o.push_str("$\\beta$"),
            'γ' => o.push_str("$\\gamma$"),
            'θ' => o.push_str("$\\theta$"),
            'κ' => o.push_str("$\\kappa$"),
            'λ' => o.push_str("$\\lambda$"),
            'μ' => o.push_str("$\\mu$"),
            'η' => o.push_str("$\\eta$"),
            '√' => o.push_str("$\\surd$"),
            '−' => o.push_str("$-$"),
            '×' => o.push_str("$\\times$"),
            '≈' => o.push_str("$\\approx$"),
            '·' => o.push_str("$\\cdot$"),
            '→' => o.push_str("$\\to$"),
            '‖' => o.push_str("$\\|$"),
            '∞' => o.push_str("$\\infty$"),
            '…' => o.push_str("\\dots{}"),
            '<' => o.push_str("$<$"),
            '>' => o.push_str("$>$"),
            'π' => o.push_str("$\\pi$"),
            'Σ' => o.push_str("$\\Sigma$"),
            'ŷ' => o.push_str("$\\hat{y}$"),
            '₀'..='₉' => o.push_str(&format!("$_{}$", ch as u32 - '₀' as u32)),
            '–' => o.push_str("--"),
            '—' => o.push_str("---"),
            _ => o.push(ch),
        }
    }
    o
}
