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
    let id = |i: usize| format!("n{i}");
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
            for &i in &plan.order {
                if selected[i] {
                    s.push_str(&format!(
                        "  {} [label=\"{}\\n{}\"];\n",
                        id(i),
                        plan.instances[i].name,
                        plan.instances[i].stage.kind()
                    ));
                }
            }
            for &i in &plan.order {
                for b in plan.instances[i].inputs.values().flatten() {
                    if selected[i] {
                        s.push_str(&format!("  {} -> {} [label=\"{}\"];\n", id(b.instance), id(i), b.output));
                    }
                }
            }
            s.push_str("}\n");
        }
        DagFormat::Mermaid => {
            s.push_str("flowchart LR\n");
            for &i in &plan.order {
                if selected[i] {
                    s.push_str(&format!(
                        "  {}[\"{}<br/>{}\"]\n",
                        id(i),
                        plan.instances[i].name,
                        plan.instances[i].stage.kind()
                    ));
                }
            }
            for &i in &plan.order {
                for b in plan.instances[i].inputs.values().flatten() {
                    if selected[i] {
                        s.push_str(&format!("  {} -->|{}| {}\n", id(b.instance), b.output, id(i)));
                    }
                }
            }
        }
    }
    s
}
