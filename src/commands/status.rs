//! `repro status`: fresh or stale for every selected instance, and why (field by field, against
//! the last key this pipeline ran for that instance).

use super::{cache_dir, load_sel};
use crate::cli::{Cli, Select};
use repro_engine::diag::{exit, Result};
use repro_engine::exec::{resolve_keys, Trust};
use repro_engine::key;
use repro_engine::plan::Plan;
use repro_engine::project_root;
use repro_engine::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// One instance's status.
pub struct StageStatus {
    pub name: String,
    pub kind: String,
    pub key: Option<String>,
    pub fresh: bool,
    pub reasons: Vec<String>,
}

pub fn status(cli: &Cli, sel: &Select, as_json: bool) -> Result<i32> {
    let plan = load_sel(sel)?;
    let root = project_root(&sel.pipeline);
    let store = Store::open(&cache_dir(cli, &root))?;
    let st = statuses(&plan, &store, &root, &sel.targets)?;
    if as_json {
        let stages: Vec<Value> = st
            .iter()
            .map(|s| json!({"name": s.name, "kind": s.kind, "key": s.key, "status": if s.fresh {"fresh"} else {"stale"}, "reasons": s.reasons}))
            .collect();
        let fresh = st.iter().filter(|s| s.fresh).count();
        let doc = json!({"pipeline": plan.spec.name, "stages": stages, "fresh": fresh, "stale": st.len() - fresh});
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap());
        return Ok(exit::OK);
    }
    for s in &st {
        let tag = if s.fresh { "fresh" } else { "stale" };
        if s.reasons.is_empty() {
            outln!("{tag}  {}", s.name);
        } else {
            // A table over hundreds of instances would print each stale input: the text shows
            // the first few (`--json` has them all).
            const SHOWN: usize = 4;
            let mut text = s.reasons.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
            if s.reasons.len() > SHOWN {
                text.push_str(&format!("; and {} more (all of them with --json)", s.reasons.len() - SHOWN));
            }
            outln!("{tag}  {}: {text}", s.name);
        }
    }
    Ok(exit::OK)
}

/// Fresh or stale for every selected instance, in plan order.
pub fn statuses(plan: &Plan, store: &Store, root: &Path, targets: &[String]) -> Result<Vec<StageStatus>> {
    let selected = plan.select(targets)?;
    let index = store.read_index(&plan.spec.path);
    let states = resolve_keys(plan, store, root, &selected, Trust::Verified);
    let mut out = Vec::new();
    for &i in plan.order.iter().filter(|&&i| selected[i]) {
        let (inst, state) = (&plan.instances[i], &states[i]);
        let mut reasons = Vec::new();
        if let Some(Err(e)) = &state.external {
            reasons.push(e.clone());
        }
        let key = state.key();
        let fresh = state.record.is_some();
        match &state.key_input {
            Some(ki) if !fresh => match index.get(&inst.name) {
                None => reasons.push("new".into()),
                Some(old) if old == ki => reasons.push("output missing from cache".into()),
                Some(old) => reasons.extend(key::diff(old, ki)),
            },
            Some(_) => {}
            None => {
                let stale: BTreeSet<String> = inst
                    .inputs
                    .values()
                    .flatten()
                    .filter(|b| states[b.instance].record.is_none())
                    .map(|b| format!("input {} is stale", plan.instances[b.instance].name))
                    .collect();
                reasons.extend(stale);
            }
        }
        out.push(StageStatus { name: inst.name.clone(), kind: inst.stage.kind().into(), key, fresh, reasons });
    }
    Ok(out)
}
