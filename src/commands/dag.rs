//! `repro dag`: the DAG of stage instances as text, Graphviz dot or Mermaid.

use super::load_sel;
use crate::cli::{DagFormat, Select};
use repro_engine::diag::{exit, Result};
use repro_engine::plan::Plan;

pub fn dag(sel: &Select, format: DagFormat) -> Result<i32> {
    let plan = load_sel(sel)?;
    let selected = plan.select(&sel.targets)?;
    out!("{}", render(&plan, &selected, format));
    Ok(exit::OK)
}

fn render(plan: &Plan, selected: &[bool], format: DagFormat) -> String {
    let mut s = String::new();
    match format {
        DagFormat::Text => {
            for &i in &plan.order {
                if !selected[i] {
                    continue;
                }
                let inst = &plan.instances[i];
                let ins: Vec<String> = inst
                    .inputs
                    .iter()
                    .flat_map(|(slot, bs)| bs.iter().map(move |b| (slot, b)))
                    .map(|(slot, b)| format!("{slot}={}.{}", plan.instances[b.instance].name, b.output))
                    .collect();
                s.push_str(&format!("{} ({})", inst.name, inst.stage.kind()));
                if !ins.is_empty() {
                    s.push_str(&format!(" <- {}", ins.join(", ")));
                }
                s.push('\n');
            }
        }
        DagFormat::Dot => {
            s.push_str("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n");
            graph(
                plan,
                selected,
                &mut s,
                |i, name, kind| format!("  n{i} [label=\"{name}\\n{kind}\"];\n"),
                |from, out, to| format!("  n{from} -> n{to} [label=\"{out}\"];\n"),
            );
            s.push_str("}\n");
        }
        DagFormat::Mermaid => {
            s.push_str("flowchart LR\n");
            graph(
                plan,
                selected,
                &mut s,
                |i, name, kind| format!("  n{i}[\"{name}<br/>{kind}\"]\n"),
                |from, out, to| format!("  n{from} -->|{out}| n{to}\n"),
            );
        }
    }
    s
}

/// The selected nodes, then every edge into a selected node, in plan order: what dot and
/// mermaid share (they differ only in how a node and an edge are written).
fn graph(
    plan: &Plan,
    selected: &[bool],
    s: &mut String,
    node: impl Fn(usize, &str, &str) -> String,
    edge: impl Fn(usize, &str, usize) -> String,
) {
    let chosen = || plan.order.iter().copied().filter(|&i| selected[i]);
    for i in chosen() {
        s.push_str(&node(i, &plan.instances[i].name, plan.instances[i].stage.kind()));
    }
    for i in chosen() {
        for b in plan.instances[i].inputs.values().flatten() {
            s.push_str(&edge(b.instance, &b.output, i));
        }
    }
}
