//! `repro exec-instance`: what a Slurm job runs. It plans the pipeline as the submitter did
//! (same file, same overrides), resolves the instance's inputs from the shared cache, refuses
//! to run if its key is not the one submitted (the pipeline or an input changed meanwhile),
//! and computes it exactly as a local run would: under the key's lock, objects and the run
//! record written atomically (the record names the Slurm job).

use super::{cache_dir, load_plan};
use crate::cli::Cli;
use repro_engine::diag::{exit, Error, Result};
use repro_engine::exec::{cached_job, resolve_keys, Computed, Executor, LocalExecutor, Trust};
use repro_engine::project_root;
use repro_engine::store::Store;
use std::path::Path;

#[allow(clippy::too_many_arguments)]
pub fn exec_instance(
    cli: &Cli,
    pipeline: &Path,
    sets: &[String],
    profile: &Option<String>,
    instance: &str,
    key: &str,
    threads: usize,
    force: bool,
) -> Result<i32> {
    let plan = load_plan(pipeline, sets, profile)?;
    let root = project_root(pipeline);
    let store = Store::open(&cache_dir(cli, &root))?;
    let Some(i) = plan.instances.iter().position(|x| x.name == instance) else {
        return Err(plan.unknown(instance, ""));
    };
    let mut selected = vec![false; plan.instances.len()];
    for u in plan.upstream(i).into_iter().chain([i]) {
        selected[u] = true;
    }
    let states = resolve_keys(&plan, &store, &root, &selected, Trust::Verified);
    let Some(ki) = states[i].key_input.clone() else {
        return Err(Error::Usage(format!("`{instance}`: its inputs are not in the cache at {}", store.root.display())));
    };
    if ki.key() != key {
        return Err(Error::Usage(format!(
            "`{instance}` plans to key {} here, not the submitted {key}: the pipeline or an input changed since submission",
            ki.key()
        )));
    }
    let job = cached_job(&plan, &store, &root, &states, i, threads, force).map_err(|e| Error::Usage(e.to_string()))?;
    match LocalExecutor::default().execute(&job, &store) {
        Ok(Computed::Ran(rec)) => {
            eprintln!("ran {instance} in {:.2}s", rec.seconds);
            Ok(exit::OK)
        }
        Ok(Computed::Cached(_)) => {
            eprintln!("{instance} was already cached");
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("FAILED {instance}: {e}");
            Ok(exit::STAGE_FAILED)
        }
    }
}
