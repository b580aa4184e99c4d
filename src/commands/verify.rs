//! `repro verify`: re-hash every object of the cache; report and quarantine corrupt ones.

use super::cache_dir;
use crate::cli::Cli;
use repro_engine::diag::{exit, Error, Result};
use repro_engine::store::{hash_file, Store};

pub fn verify(cli: &Cli) -> Result<i32> {
    let root = std::env::current_dir().map_err(|e| Error::io("cwd", e))?;
    let store = Store::open(&cache_dir(cli, &root))?;
    let objects = store.objects();
    let mut bad = 0;
    for (h, path) in &objects {
        match hash_file(path) {
            Ok(actual) if &actual == h => {}
            _ => {
                bad += 1;
                outln!("corrupt  {h}");
                store.quarantine(h, "verify: content does not match its hash");
            }
        }
    }
    outln!("verified {} objects: {} corrupt (quarantined; the next run recomputes them)", objects.len(), bad);
    Ok(if bad > 0 { exit::STAGE_FAILED } else { exit::OK })
}
