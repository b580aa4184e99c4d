//! `repro explain`: the key, canonical params, inputs, upstream chain and run record of a stage;
//! or, given a report and a cell (`repro explain reports/dgex_table3.md R2C3`), the chain of
//! instances behind that number, read from the report's provenance sidecar.

use super::{cache_dir, load_plan};
use crate::cli::Cli;
use repro_engine::diag::{exit, Error, Result};
use repro_engine::exec::{resolve_keys, KeyState, Trust};
use repro_engine::plan::Plan;
use repro_engine::project_root;
use repro_engine::provenance::{self, Provenance};
use repro_engine::store::Store;
use std::path::Path;

pub fn explain(cli: &Cli, target: &Path, what: &str, sets: &[String], profile: &Option<String>) -> Result<i32> {
    let is_report =
        target.components().any(|c| c.as_os_str() == "reports") && target.extension().is_some_and(|e| e != "toml");
    if is_report {
        return explain_cell(target, what);
    }
    let plan = load_plan(target, sets, profile)?;
    let root = project_root(target);
    let store = Store::open(&cache_dir(cli, &root))?;
    let hits = plan.find(what);
    if hits.is_empty() {
        return Err(plan.unknown(what, ""));
    }
    let all = vec![true; plan.instances.len()];
    let states = resolve_keys(&plan, &store, &root, &all, Trust::Verified);
    for i in hits {
        print_instance(&plan, &store, &states, i);
    }
    Ok(exit::OK)
}

fn print_instance(plan: &Plan, store: &Store, states: &[KeyState], i: usize) {
    let inst = &plan.instances[i];
    outln!("{} ({} v{})", inst.name, inst.stage.kind(), inst.stage.version());
    match &states[i].key_input {
        Some(ki) => {
            outln!("  key      {}", ki.key());
            outln!("  seed     {}", ki.seed);
            outln!("  params   (canonical, every default filled in; blake3 of the key input is the key)");
            for (k, v) in ki.params.as_object().into_iter().flatten() {
                outln!("    {k} = {}", super::stages::toml_value(v));
            }
            for (slot, ins) in &ki.inputs {
                for (b, k) in inst.inputs[slot].iter().zip(ins) {
                    outln!("  input    {slot} = {}.{} ({})", plan.instances[b.instance].name, b.output, k.hash);
                }
            }
            for (p, h) in inst.external.iter().zip(&ki.external) {
                outln!("  file     {p} ({h})");
            }
            match store.read_record(&ki.key()) {
                Some(r) => {
                    outln!(
                        "  record   ran in {:.3}s on {} thread(s) by repro {} ({})",
                        r.seconds,
                        r.environment.get("threads").map_or("?", String::as_str),
                        r.tool_version,
                        r.environment.get("cpu_features").cloned().unwrap_or_default()
                    );
                    for (o, obj) in &r.outputs {
                        outln!("  output   {o} = {} ({} bytes)", obj.hash, obj.size);
                        outln!("           {}", super::show::open_hint(&store.object_path(&obj.hash)));
                    }
                    for (k, v) in &r.metrics {
                        outln!("  metric   {k} = {}", super::stages::toml_value(v));
                    }
                }
                None => outln!("  record   none (stale: run the pipeline)"),
            }
        }
        None => outln!("  key      unknown until upstream runs"),
    }
    let up = plan.upstream(i);
    if !up.is_empty() {
        outln!("  upstream:");
        for u in up {
            let k = states[u].key().unwrap_or_else(|| "?".into());
            outln!("    {} ({}) {}", plan.instances[u].name, plan.instances[u].stage.kind(), k);
        }
    }
}

/// The chain behind one cell of a published table.
fn explain_cell(target: &Path, what: &str) -> Result<i32> {
    let prov_path = provenance::sidecar_path(target);
    let prov: Provenance = provenance::read(&prov_path).ok_or_else(|| {
        // A mistyped report name: suggest the reports that exist.
        let dir = target.parent().unwrap_or(Path::new("."));
        let names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".provenance.json").map(str::to_string))
            .collect();
        let stem = target.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let hint = repro_core::closest(stem, &refs)
            .map(|c| format!("; did you mean {}/{c}.md?", dir.display()))
            .unwrap_or_default();
        Error::Usage(format!("no provenance sidecar {} (run the pipeline first){hint}", prov_path.display()))
    })?;
    let Some(cell) = prov.cells.iter().find(|c| c.cell.as_str() == Some(what)) else {
        let names: Vec<&str> = prov.cells.iter().filter_map(|c| c.cell.as_str()).collect();
        let rows = names
            .iter()
            .filter_map(|n| n.strip_prefix('R')?.split('C').next()?.parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        let cols = names.iter().filter_map(|n| n.split('C').nth(1)?.parse::<usize>().ok()).max().unwrap_or(0);
        let hint = repro_core::closest(what, &names).map(|c| format!("did you mean `{c}`? ")).unwrap_or_default();
        return Err(Error::Usage(format!(
            "no cell `{what}` in {}: {hint}its cells are R1C1 … R{rows}C{cols} (row R, column C of the measured values, 1-based)",
            target.display()
        )));
    };
    outln!("cell {what} of {}: {} = {}", target.display(), cell.row.as_str().unwrap_or(""), cell.value);
    outln!("  column: {}", cell.column.as_str().unwrap_or(""));
    outln!("  axes:   {} (n = {})", axes_text(&cell.axes), cell.n);
    outln!("pipeline {} ({}), hash {}", prov.pipeline, prov.pipeline_file, prov.pipeline_hash);
    outln!("table    {} key {}", prov.stage.instance, prov.stage.key);
    for s in &cell.sources {
        outln!("from     {} ({}) key {}", s.instance, s.output, s.key.as_deref().unwrap_or("?"));
        outln!("  axes   {}", axes_text(&s.axes));
        for u in &s.upstream {
            outln!("  <- {} key {}", u.instance, u.key.as_deref().unwrap_or("?"));
        }
    }
    Ok(exit::OK)
}

/// `a = 1, b = "x"`.
fn axes_text(axes: &std::collections::BTreeMap<String, serde_json::Value>) -> String {
    axes.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
}
