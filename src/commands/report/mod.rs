//! `repro report PIPELINE`: one self-contained HTML file, `reports/<pipeline>.html`, from the
//! published reports and their provenance sidecars: every table with the paper's numbers
//! beside ours and its judged claims, every figure inline, the notes on data and variants,
//! the stages with their params, and the compute environment. Clicking a cell shows its
//! lineage (instances, keys, axis values, upstream chain); with scripts off every cell links
//! to the same lineage, written out in the page. No network: styles, script and figures are
//! inline; nothing in it depends on the time it was written, so it is reproducible too.

mod html;

use super::{cache_dir, load_plan};
use crate::cli::Cli;
use html::Page;
use repro_engine::diag::{exit, Error, Result};
use repro_engine::exec::{resolve_keys, Trust};
use repro_engine::project_root;
use repro_engine::provenance::{self, Provenance};
use repro_engine::store::Store;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub fn report(cli: &Cli, pipeline: &Path, sets: &[String], profile: &Option<String>) -> Result<i32> {
    let plan = load_plan(pipeline, sets, profile)?;
    let variant = provenance::variant(&plan.spec)?;
    let root = project_root(pipeline);
    let dir = root.join("reports");
    let store = Store::open(&cache_dir(cli, &root))?;
    let all = vec![true; plan.instances.len()];
    let states = resolve_keys(&plan, &store, &root, &all, Trust::Verified);
    let suffix = variant.as_ref().map(|v| format!("@{}", v.name)).unwrap_or_default();
    let rerun = || {
        let flags: String = plan.spec.overrides.iter().map(|o| format!(" {o}")).collect();
        format!("run `repro run {}{flags}` first", pipeline.display())
    };
    let mut page = Page::new(&plan.spec, variant.as_ref());
    let mut done = Vec::new();
    for (i, inst) in plan.instances.iter().enumerate() {
        let Some(name) = &inst.report else { continue };
        let name = format!("{name}{suffix}");
        if done.contains(&name) {
            continue;
        }
        done.push(name.clone());
        let side = dir.join(format!("{name}.provenance.json"));
        let prov: Provenance = provenance::read(&side)
            .ok_or_else(|| Error::Usage(format!("no published report {}: {}", side.display(), rerun())))?;
        if states[i].key().as_deref() != Some(prov.stage.key.as_str()) {
            return Err(Error::Usage(format!(
                "reports/{name}.* are not the current results of `{}` (the pipeline or its inputs changed since they were published): {}",
                inst.name,
                rerun()
            )));
        }
        let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).ok();
        if let Some(table) = read("json").and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
            page.table(&name, &table, &prov);
        } else if let Some(svg) = read("svg") {
            page.figure(&name, &svg, &prov);
        } else {
            return Err(Error::Usage(format!("reports/{name}.* has neither a table nor a figure: {}", rerun())));
        }
        page.provenance(&prov);
    }
    if done.is_empty() {
        return Err(Error::Usage(format!("{} publishes no report (no stage has `report = …`)", pipeline.display())));
    }
    let out = dir.join(format!("{}{suffix}.html", plan.spec.name));
    let text = page.finish();
    if std::fs::read_to_string(&out).ok().as_deref() != Some(text.as_str()) {
        repro_engine::store::write_atomic_beside(&out, text.as_bytes())?;
    }
    outln!("{}", out.strip_prefix(&root).unwrap_or(&out).display());
    Ok(exit::OK)
}

/// The environments of every upstream instance, each distinct one with how many ran there.
pub(crate) fn environments(provs: &[Provenance]) -> Vec<(BTreeMap<String, String>, usize)> {
    let mut seen: BTreeMap<String, (BTreeMap<String, String>, usize)> = BTreeMap::new();
    let mut keys = std::collections::BTreeSet::new();
    for u in provs.iter().flat_map(|p| &p.upstream) {
        if keys.insert(u.key.clone()) {
            let e = seen.entry(format!("{:?}", u.environment)).or_insert((u.environment.clone(), 0));
            e.1 += 1;
        }
    }
    seen.into_values().collect()
}
