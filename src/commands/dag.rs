//! `repro dag`: the DAG of stage instances (or, with `--stages`, of stages with their instance
//! counts) as text, Graphviz dot, Mermaid or JSON.

use super::load_sel;
use crate::cli::{DagFormat, Select};
use repro_engine::diag::{exit, Result};
use repro_engine::plan::Plan;

pub fn dag(sel: &Select, format: DagFormat, stages: bool) -> Result<i32> {
    let plan = load_sel(sel)?;
    let selected = plan.select(&sel.targets)?;
    if stages {
        out!("{}", render_stages(&plan, &selected, format));
    } else if let DagFormat::Json = format {
        let nodes: Vec<serde_json::Value> = plan
            .order
            .iter()
            .filter(|&&i| selected[i])
            .map(|&i| {
                let inst = &plan.instances[i];
                let inputs: Vec<serde_json::Value> = inst
                    .inputs
                    .iter()
                    .flat_map(|(slot, bs)| bs.iter().map(move |b| (slot, b)))
                    .map(|(slot, b)| serde_json::json!({"slot": slot, "instance": plan.instances[b.instance].name, "output": b.output}))
                    .collect();
                serde_json::json!({"name": inst.name, "stage": inst.stage_name, "kind": inst.stage.kind(),
                    "axes": inst.axes, "inputs": inputs, "outputs": inst.outputs, "report": inst.report})
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"pipeline": plan.spec.name, "instances": nodes})).unwrap()
        );
    } else {
        out!("{}", render(&plan, &selected, format));
    }
    Ok(exit::OK)
}

/// One node per stage: its kind, how many instances (selected), and the stages it reads.
fn render_stages(plan: &Plan, selected: &[bool], format: DagFormat) -> String {
    let mut stages: Vec<(String, String, usize, Vec<String>)> = Vec::new();
    for &i in plan.order.iter().filter(|&&i| selected[i]) {
        let inst = &plan.instances[i];
        let ups: Vec<String> =
            inst.inputs.values().flatten().map(|b| plan.instances[b.instance].stage_name.clone()).collect();
        match stages.iter_mut().find(|s| s.0 == inst.stage_name) {
            Some(s) => {
                s.2 += 1;
                for u in ups {
                    if !s.3.contains(&u) {
                        s.3.push(u);
                    }
                }
            }
            None => {
                let mut deduped: Vec<String> = Vec::new();
                for u in ups {
                    if !deduped.contains(&u) {
                        deduped.push(u);
                    }
                }
                stages.push((inst.stage_name.clone(), inst.stage.kind().to_string(), 1, deduped));
            }
        }
    }
    let idx = |name: &str| stages.iter().position(|s| s.0 == name).unwrap_or(0);
    let mut s = String::new();
    match format {
        DagFormat::Text => {
            for (name, kind, n, ups) in &stages {
                s.push_str(&format!("{name} ({kind}, {n} instance{})", if *n == 1 { "" } else { "s" }));
                if !ups.is_empty() {
                    s.push_str(&format!(" <- {}", ups.join(", ")));
                }
                s.push('\n');
            }
        }
        DagFormat::Dot => {
            s.push_str("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n");
            for (k, (name, kind, n, _)) in stages.iter().enumerate() {
                s.push_str(&format!("  s{k} [label=\"{name}\\n{kind} ×{n}\"];\n"));
            }
            for (k, (_, _, _, ups)) in stages.iter().enumerate() {
                for u in ups {
                    s.push_str(&format!("  s{} -> s{k};\n", idx(u)));
                }
            }
            s.push_str("}\n");
        }
        DagFormat::Mermaid => {
            s.push_str("flowchart LR\n");
            for (k, (name, kind, n, _)) in stages.iter().enumerate() {
                s.push_str(&format!("  s{k}[\"{name}<br/>{kind} ×{n}\"]\n"));
            }
            for (k, (_, _, _, ups)) in stages.iter().enumerate() {
                for u in ups {
                    s.push_str(&format!("  s{} --> s{k}\n", idx(u)));
                }
            }
        }
        DagFormat::Json => {
            let v: Vec<serde_json::Value> = stages
                .iter()
                .map(|(name, kind, n, ups)| serde_json::json!({"stage": name, "kind": kind, "instances": n, "inputs": ups}))
                .collect();
            s = serde_json::to_string_pretty(&serde_json::json!({"pipeline": plan.spec.name, "stages": v})).unwrap();
            s.push('\n');
        }
    }
    s
}

fn render(plan: &Plan, selected: &[bool], format: DagFormat) -> String {
    let mut s = String::new();
    match format {
        DagFormat::Json => unreachable!("handled by the caller"),
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
