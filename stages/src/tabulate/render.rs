//! The renderings of one table model: GitHub markdown, LaTeX (booktabs), CSV and JSON (the
//! JSON lists, per cell, the positions of the inputs behind it, for provenance).

use super::{best_mask, build, check_claims, fmt_cell, heading, Aggregate, ClaimOutcome, Table, TabulateParams};
use repro_core::StageResult;
use serde_json::Value;
use std::collections::BTreeMap;

/// The four renderings.
pub struct Rendered {
    /// GitHub markdown.
    pub md: String,
    /// LaTeX (booktabs).
    pub tex: String,
    /// One line per cell.
    pub csv: String,
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
    claims: Vec<ClaimOutcome>,
    /// The heading of the row-label column.
    rh: String,
}

/// Builds the table from `(axes, value)` items and renders it four ways.
pub fn render(p: &TabulateParams, items: &[(BTreeMap<String, Value>, Option<f64>)]) -> StageResult<Rendered> {
    let t = build(p, items)?;
    let best = best_mask(p, &t);
    let col_heads: Vec<String> = t.col_keys.iter().map(|k| heading(p, &p.column_format, &p.columns, k)).collect();
    let row_heads: Vec<String> = t.row_keys.iter().map(|k| heading(p, &p.row_format, &p.rows, k)).collect();
    let any_paper = t.cells.iter().flatten().any(|c| c.paper.is_some());
    let claims = check_claims(p, items);
    let rh = if p.row_header.is_empty() { p.rows.join(" ") } else { p.row_header.clone() };
    let l = Layout { p, t, best, col_heads, row_heads, any_paper, claims, rh };
    Ok(Rendered { md: markdown(&l), tex: latex(&l), csv: csv(&l), json: json(&l) })
}

/// The markdown table, then its notes and claims.
fn markdown(l: &Layout) -> String {
    let (p, t, best, rh) = (l.p, &l.t, &l.best, &l.rh);
    let (col_heads, row_heads, any_paper) = (&l.col_heads, &l.row_heads, l.any_paper);
    let mut md = String::new();
    if !p.caption.is_empty() {
        md.push_str(&format!("**{}**\n\n", p.caption));
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

/// What the cells are, the paper note, the notes and the claims' verdicts.
fn markdown_notes(l: &Layout) -> String {
    let (p, t, claims, d) = (l.p, &l.t, &l.claims, l.p.digits);
    let mut md = String::new();
    md.push('\n');
    let n_per: Vec<usize> = t.cells.iter().flatten().map(|c| c.n).collect();
    let (nmin, nmax) = (n_per.iter().min().copied().unwrap_or(0), n_per.iter().max().copied().unwrap_or(0));
    let n_text = if nmin == nmax { format!("{nmin}") } else { format!("{nmin}–{nmax}") };
    let agg = match p.aggregate {
        Aggregate::Mean => "mean",
        Aggregate::Std => "standard deviation",
        Aggregate::MeanStd => "mean ± sample standard deviation",
        Aggregate::CountBelow => "",
    };
    if p.aggregate == Aggregate::CountBelow {
        md.push_str(&format!("Cells: runs with `{}` below {}, out of {n_text} runs per cell.", p.metric, p.threshold));
    } else {
        let what =
            if p.metrics.is_empty() { format!("`{}`", p.metric) } else { format!("`{}`", p.metrics.join("`, `")) };
        let runs = if nmax == 1 { "run" } else { "runs" };
        md.push_str(&format!("Cells: {what}, {agg} over {n_text} {runs} per cell."));
    }
    if !p.paper_note.is_empty() {
        md.push_str(&format!(" Paper: {}.", p.paper_note));
    }
    md.push('\n');
    for n in &p.notes {
        md.push_str(&format!("\n{n}\n"));
    }
    if !claims.is_empty() {
        md.push_str("\nClaims of the paper, checked on these numbers:\n\n");
        for (text, held, lo, hi) in claims {
            let verdict = match held {
                Some(true) => "held",
                Some(false) => "did not hold",
                None => "not measured",
            };
            let nums = match (lo, hi) {
                (Some(a), Some(b)) => format!(" ({a:.d$} vs {b:.d$})"),
                _ => String::new(),
            };
            md.push_str(&format!("- {text}: **{verdict}**{nums}\n"));
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
        tex.push_str(&format!("\\caption{{{}}}\n", latex_escape(&p.caption)));
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
    tex.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");

    tex
}

fn csv(l: &Layout) -> String {
    let (t, col_heads, row_heads) = (&l.t, &l.col_heads, &l.row_heads);
    let mut csv = String::from("row,column,n,mean,std,paper,delta\n");
    let q = |s: &str| if s.contains([',', '"']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
    let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for (r, rhd) in row_heads.iter().enumerate() {
        for (c, ch) in col_heads.iter().enumerate() {
            let cell = &t.cells[r][c];
            let delta = match (cell.value(), cell.paper) {
                (Some(m), Some(pv)) => Some(m - pv),
                _ => None,
            };
            csv.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                q(rhd),
                q(ch),
                cell.n,
                opt(cell.mean),
                opt(cell.std),
                opt(cell.paper),
                opt(delta)
            ));
        }
    }

    csv
}

/// JSON, with the cell → input positions map for provenance.
fn json(l: &Layout) -> Value {
    let (p, t, claims) = (l.p, &l.t, &l.claims);
    let (col_heads, row_heads) = (&l.col_heads, &l.row_heads);
    let mut cells_json = Vec::new();
    for (r, rhd) in row_heads.iter().enumerate() {
        for (c, ch) in col_heads.iter().enumerate() {
            let cell = &t.cells[r][c];
            cells_json.push(serde_json::json!({
                "cell": format!("R{}C{}", r + 1, c + 1),
                "row": rhd, "column": ch,
                "value": fmt_cell(p, cell, " ± "),
                "mean": cell.mean, "std": cell.std, "n": cell.n, "paper": cell.paper,
                "inputs": cell.inputs,
            }));
        }
    }
    let claims_json: Vec<Value> = claims
        .iter()
        .map(|(t, h, lo, hi)| serde_json::json!({"text": t, "held": h, "lower_mean": lo, "higher_mean": hi}))
        .collect();
    serde_json::json!({
        "caption": p.caption, "metric": p.metric, "aggregate": p.aggregate,
        "columns": col_heads, "rows": row_heads, "cells": cells_json, "claims": claims_json,
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
            '–' => o.push_str("--"),
            '—' => o.push_str("---"),
            _ => o.push(ch),
        }
    }
    o
}
