//! `repro verify`: re-hash every object of the cache (quarantining corrupt ones) and check every
//! run record: readable, stored under its own key, naming objects that exist. Exits 1 with a
//! count per class when anything is wrong.

use super::cache_dir;
use crate::cli::Cli;
use repro_engine::diag::{exit, Error, Result};
use repro_engine::store::{hash_file, is_hash, Record, Store};

pub fn verify(cli: &Cli) -> Result<i32> {
    let root = std::env::current_dir().map_err(|e| Error::io("cwd", e))?;
    let store = Store::open(&cache_dir(cli, &root))?;
    let objects = store.objects();
    let mut corrupt = 0;
    for (h, path) in &objects {
        match hash_file(path) {
            Ok(actual) if &actual == h => {}
            _ => {
                corrupt += 1;
                outln!("corrupt object   {h}");
                store.quarantine(h, "verify: content does not match its hash");
            }
        }
    }
    let records = store.record_files();
    let (mut unreadable, mut dangling) = (0, 0);
    for path in &records {
        let key = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")).unwrap_or("");
        let rec: Option<Record> = std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        match rec {
            Some(r) if r.key == key && is_hash(key) && r.outputs.values().all(|o| is_hash(&o.hash)) => {
                let missing: Vec<&str> = r
                    .outputs
                    .iter()
                    .filter(|(_, o)| !store.object_path(&o.hash).is_file())
                    .map(|(n, _)| n.as_str())
                    .collect();
                if !missing.is_empty() {
                    dangling += 1;
                    outln!("missing objects  {key} ({}: {})", r.instance, missing.join(", "));
                }
            }
            _ => {
                unreadable += 1;
                outln!("bad record       {}", path.display());
            }
        }
    }
    outln!(
        "verified {} objects and {} run records: {corrupt} corrupt objects (quarantined), {unreadable} unreadable or misfiled records, {dangling} records with missing objects",
        objects.len(),
        records.len()
    );
    if unreadable + dangling > 0 {
        outln!("no run trusts these records (the next run recomputes their stages); `repro gc` removes them");
    }
    Ok(if corrupt + unreadable + dangling > 0 { exit::STAGE_FAILED } else { exit::OK })
}
