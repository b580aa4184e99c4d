//! `repro log PIPELINE STAGE`: the logs kept for each instance of a stage, by its current key
//! (`<cache>/logs/<key>/`: a Slurm job's stdout and stderr).

use super::{cache_dir, load_sel};
use crate::cli::{Cli, Select};
use repro_engine::diag::{exit, Result};
use repro_engine::exec::{resolve_keys, Trust};
use repro_engine::project_root;
use repro_engine::store::Store;

pub fn log(cli: &Cli, sel: &Select, stage: &str) -> Result<i32> {
    let plan = load_sel(sel)?;
    let root = project_root(&sel.pipeline);
    let store = Store::open(&cache_dir(cli, &root))?;
    let hits = plan.find(stage);
    if hits.is_empty() {
        return Err(plan.unknown(stage, ""));
    }
    let all = vec![true; plan.instances.len()];
    let states = resolve_keys(&plan, &store, &root, &all, Trust::Recorded);
    for i in hits {
        let name = &plan.instances[i].name;
        let Some(key) = states[i].key() else {
            outln!("== {name}: key unknown until its inputs are computed");
            continue;
        };
        let dir = store.root.join("logs").join(&key);
        let mut files: Vec<_> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        files.sort();
        if files.is_empty() {
            outln!("== {name} (key {}): no logs kept (a stage that writes none, or one that has not run)", &key[..12]);
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            outln!("== {name}: {}", f.display());
            out!("{text}");
            if !text.is_empty() && !text.ends_with('\n') {
                outln!();
            }
        }
    }
    Ok(exit::OK)
}
