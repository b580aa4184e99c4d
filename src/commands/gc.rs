//! `repro gc`: remove cache entries that no kept pipeline's current keys reach.

use super::{cache_dir, load_plan, project_pipelines};
use crate::cli::Cli;
use repro_engine::diag::{exit, Result};
use repro_engine::exec::{resolve_keys, Trust};
use repro_engine::project_root;
use repro_engine::store::Store;
use std::collections::BTreeSet;
use std::path::PathBuf;

pub fn gc(cli: &Cli, keep: &[PathBuf], dry_run: bool) -> Result<i32> {
    let keep = if keep.is_empty() { project_pipelines()? } else { keep.to_vec() };
    let root = keep.first().map(|p| project_root(p)).unwrap_or_else(|| PathBuf::from("."));
    let store = Store::open(&cache_dir(cli, &root))?;
    let mut live_keys = BTreeSet::new();
    let mut live_objects = BTreeSet::new();
    for p in &keep {
        let plan = load_plan(p, &[], &None)?;
        let all = vec![true; plan.instances.len()];
        for state in resolve_keys(&plan, &store, &root, &all, Trust::Recorded) {
            if let (Some(k), Some(r)) = (state.key(), &state.record) {
                live_objects.extend(r.outputs.values().map(|o| o.hash.clone()));
                live_keys.insert(k);
            }
        }
    }
    let (mut n_rec, mut n_obj, mut bytes) = (0usize, 0usize, 0u64);
    // Only what was actually removed is counted (a read-only cache frees nothing).
    for k in store.record_keys() {
        if !live_keys.contains(&k) && (dry_run || store.remove_record(&k)) {
            n_rec += 1;
        }
    }
    for (h, path) in store.objects() {
        if !live_objects.contains(&h) {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if dry_run || std::fs::remove_file(&path).is_ok() {
                n_obj += 1;
                bytes += len;
            }
        }
    }
    // Logs of keys no kept pipeline reaches (never following a symbolic link).
    let mut n_logs = 0;
    for e in std::fs::read_dir(store.root.join("logs")).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let real_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if real_dir && !live_keys.contains(&name) && (dry_run || std::fs::remove_dir_all(e.path()).is_ok()) {
            n_logs += 1;
        }
    }
    let verb = if dry_run { "would free" } else { "freed" };
    outln!(
        "{verb} {bytes} bytes: {n_obj} objects, {n_rec} run records, {n_logs} log directories (kept {} records of {} pipelines)",
        live_keys.len(),
        keep.len()
    );
    Ok(exit::OK)
}
