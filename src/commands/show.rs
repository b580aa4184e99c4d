//! `repro show PIPELINE INSTANCE[.output] [-o FILE] [--format csv|parquet]`: one cached
//! artifact, printed or exported. A dataset becomes a table (CSV on standard output, or CSV /
//! Parquet in a file); JSON is pretty-printed; text is printed; anything else is named with
//! its path and how to open it.

use super::{cache_dir, load_plan};
use crate::cli::Cli;
use repro_engine::diag::{exit, Error, Result};
use repro_engine::exec::{resolve_keys, Trust};
use repro_engine::project_root;
use repro_engine::store::Store;
use repro_stages::dataset::Dataset;
use std::path::{Path, PathBuf};

pub fn show(
    cli: &Cli,
    pipeline: &Path,
    what: &str,
    sets: &[String],
    profile: &Option<String>,
    out: &Option<PathBuf>,
    format: &Option<String>,
) -> Result<i32> {
    let plan = load_plan(pipeline, sets, profile)?;
    let root = project_root(pipeline);
    let store = Store::open(&cache_dir(cli, &root))?;
    // `stage[axes].output`: the output is what follows the last `.` after any `]`.
    let tail_start = what.rfind(']').map(|i| i + 1).unwrap_or(0);
    let (name, output) = match what[tail_start..].rfind('.') {
        Some(d) => (&what[..tail_start + d], Some(&what[tail_start + d + 1..])),
        None => (what, None),
    };
    let hits = plan.find(name);
    let i = match hits.as_slice() {
        [] => return Err(plan.unknown(name, "")),
        [i] => *i,
        many => {
            let names: Vec<&str> = many.iter().take(5).map(|&i| plan.instances[i].name.as_str()).collect();
            return Err(Error::Usage(format!(
                "`{name}` has {} instances: name one, e.g. {}",
                many.len(),
                names.join(", ")
            )));
        }
    };
    let inst = &plan.instances[i];
    let all = vec![true; plan.instances.len()];
    let states = resolve_keys(&plan, &store, &root, &all, Trust::Verified);
    let Some(rec) = &states[i].record else {
        return Err(Error::Usage(format!("`{}` is not cached: run the pipeline first", inst.name)));
    };
    let output = match output {
        Some(o) => o.to_string(),
        None if rec.outputs.len() == 1 => rec.outputs.keys().next().unwrap().clone(),
        None => {
            let names: Vec<&str> = rec.outputs.keys().map(String::as_str).collect();
            return Err(Error::Usage(format!("`{}` has several outputs: name one ({})", inst.name, names.join(", "))));
        }
    };
    let Some(obj) = rec.outputs.get(&output) else {
        let names: Vec<&str> = rec.outputs.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!("`{}` has no output `{output}` (outputs: {})", inst.name, names.join(", "))));
    };
    let path = store.object_path(&obj.hash);
    if let Ok(d) = Dataset::read(&path) {
        let fmt = format.clone().unwrap_or_else(|| {
            out.as_ref().and_then(|o| o.extension()).and_then(|e| e.to_str()).unwrap_or("csv").to_string()
        });
        let write = |w: &mut dyn std::io::Write| d.export(w, &fmt).map_err(|e| Error::Usage(e.to_string()));
        match out {
            Some(o) => {
                let mut f =
                    std::fs::File::create(o).map_err(|e| Error::io(format!("cannot write {}", o.display()), e))?;
                write(&mut f)?;
                eprintln!("wrote {} ({} rows × {} columns, {fmt})", o.display(), d.rows(), d.p() + d.q() + 1);
            }
            None => write(&mut std::io::stdout().lock())?,
        }
        return Ok(exit::OK);
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        outln!("{}", serde_json::to_string_pretty(&v).unwrap());
    } else if let Ok(text) = std::str::from_utf8(&bytes) {
        out!("{text}");
    } else {
        outln!("{} ({} bytes, binary): {}", output, bytes.len(), path.display());
        outln!("{}", open_hint(&path));
    }
    Ok(exit::OK)
}

/// How to open an object from Python, by what its bytes are.
pub fn open_hint(path: &Path) -> String {
    let head = std::fs::read(path).map(|b| b.into_iter().take(16).collect::<Vec<u8>>()).unwrap_or_default();
    let p = path.display();
    if head.starts_with(b"PAR1") {
        format!("polars.read_parquet(\"{p}\")")
    } else if head.starts_with(b"\x89PNG") {
        format!("an image: {p}")
    } else if head.first() == Some(&b'{') || head.first() == Some(&b'[') {
        format!("json.load(open(\"{p}\"))")
    } else if head.len() >= 9 && head[8] == b'{' {
        // safetensors: an 8-byte header length, then a JSON header.
        format!("safetensors.numpy.load_file(\"{p}\")  (a dataset: repro show PIPELINE INSTANCE -o x.parquet)")
    } else {
        format!("open(\"{p}\", \"rb\")")
    }
}
