//! Publishing and provenance: a stage with a `report` has its outputs copied to
//! `reports/<report>.<output>`, beside a `<report>.provenance.json` sidecar that says which
//! pipeline, params, keys and machine produced every file and every table cell.
//!
//! The sidecar is the typed [`Provenance`], written by [`publish`] and read back by [`read`]
//! (`repro explain reports/x.md R2C3`): one definition for both. It holds no wall times and no
//! thread counts, so a rerun that reproduces the numbers reproduces the sidecar byte for byte,
//! whatever `--jobs` is. Which inputs lie
//! behind a cell comes from the stage itself ([`repro_core::Stage::cell_sources`]): the engine
//! never parses a stage's output.

use crate::diag::{Error, Result};
use crate::plan::Plan;
use crate::spec::{Overrides, Spec};
use crate::store::{Record, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The provenance sidecar of one report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    /// The pipeline's name.
    pub pipeline: String,
    /// The pipeline file as given on the command line.
    pub pipeline_file: String,
    /// blake3 over the pipeline's source texts and overrides.
    pub pipeline_hash: String,
    /// `--profile` and `--set` applied.
    pub overrides: Vec<String>,
    /// The tool that wrote it.
    pub tool: Tool,
    /// The instance whose outputs the report is.
    pub stage: StageRef,
    /// Published file name → content hash.
    pub files: BTreeMap<String, String>,
    /// Every table cell with the instances behind it (empty for a stage that is no table).
    pub cells: Vec<Cell>,
    /// Every upstream instance with its key, params and compute environment, nearest first.
    pub upstream: Vec<Upstream>,
}

/// Name and version of the tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    /// `repro`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// The reporting instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRef {
    /// Instance name.
    pub instance: String,
    /// Stage kind.
    pub kind: String,
    /// Cache key.
    pub key: String,
}

/// One table cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// `R<row>C<col>`.
    pub cell: Value,
    /// Row label.
    pub row: Value,
    /// Column label.
    pub column: Value,
    /// The value shown.
    pub value: Value,
    /// How many values it aggregates (0: nothing measured).
    #[serde(default)]
    pub n: usize,
    /// The axis values that select it (its row and column).
    #[serde(default)]
    pub axes: BTreeMap<String, Value>,
    /// The instances it was computed from.
    pub sources: Vec<Source>,
}

/// One instance behind a cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    /// Instance name.
    pub instance: String,
    /// The output read.
    pub output: String,
    /// Its matrix axis values.
    #[serde(default)]
    pub axes: BTreeMap<String, Value>,
    /// Its key, when it has a record.
    pub key: Option<String>,
    /// Its upstream chain, nearest first.
    pub upstream: Vec<KeyedInstance>,
}

/// An instance and its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyedInstance {
    /// Instance name.
    pub instance: String,
    /// Its key, when it has a record.
    pub key: Option<String>,
}

/// One upstream instance of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upstream {
    /// Instance name.
    pub instance: String,
    /// Stage kind.
    pub kind: String,
    /// Cache key.
    pub key: String,
    /// Canonical params.
    pub params: Value,
    /// Where it ran (see [`crate::exec::environment`]), without the thread count.
    pub environment: BTreeMap<String, String>,
}

/// The sidecar's path beside a published report file (`reports/x.md` → `reports/x.provenance.json`,
/// `reports/x@lr=0.1.md` → `reports/x@lr=0.1.provenance.json`).
pub fn sidecar_path(report_file: &Path) -> PathBuf {
    report_file.with_extension("provenance.json")
}

/// A run whose vars differ from the pipeline's defaults: its reports are published as
/// `reports/<report>@<name>.<output>`, never over the default ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// File-name-safe: `profile=paper`, `trials=1,2,3,4,5`, `epochs=600,profile=paper`.
    pub name: String,
    /// The overrides as given (`--profile paper`, `--set epochs=600`).
    pub overrides: Vec<String>,
}

/// Which variant of its pipeline `spec` is: `None` when its vars are the defaults (no
/// override, or overrides that change nothing), else the vars that differ: `profile=NAME` for
/// a profile that changes something, then `name=value` for each `--set` var that differs from
/// the defaults with the profile applied.
pub fn variant(spec: &Spec) -> Result<Option<Variant>> {
    if spec.overrides.is_empty() {
        return Ok(None);
    }
    let json = |s: &Spec| -> BTreeMap<String, Value> { s.vars.iter().map(|(k, v)| (k.clone(), v.to_json())).collect() };
    let defaults = json(&crate::spec::load(&spec.path, &Overrides::default())?);
    let profile = spec.overrides.iter().find_map(|o| o.strip_prefix("--profile ")).map(str::to_string);
    let mut parts = Vec::new();
    let base = match &profile {
        Some(name) => {
            let with = json(&crate::spec::load(&spec.path, &Overrides { sets: vec![], profile: Some(name.clone()) })?);
            if with != defaults {
                parts.push(format!("profile={name}"));
            }
            with
        }
        None => defaults,
    };
    for (k, v) in json(spec) {
        if base.get(&k) != Some(&v) {
            parts.push(format!("{k}={}", bare(&v)));
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let mut name: String = parts
        .join(",")
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | '{' | '}' | '"' | '\'' | ' '))
        .map(|c| if c.is_ascii_alphanumeric() || "=._+-,".contains(c) { c } else { '_' })
        .collect();
    if name.len() > 64 {
        let h = blake3::hash(name.as_bytes()).to_hex();
        name = format!("{}~{}", &name[..48], &h[..8]);
    }
    Ok(Some(Variant { name, overrides: spec.overrides.clone() }))
}

/// A var's value as written in a file name: strings bare, arrays comma-separated.
fn bare(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(bare).collect::<Vec<_>>().join(","),
        o => o.to_string(),
    }
}

/// The published bytes of a report output: a variant's markdown and LaTeX say at the top
/// which variant they are and where the default report is.
fn published_bytes(report: &str, out: &str, bytes: Vec<u8>, variant: Option<&Variant>) -> Vec<u8> {
    let Some(v) = variant else { return bytes };
    let what = format!(
        "Variant `{}` of this report: run with {}; the default report is `{report}.{out}`.",
        v.name,
        v.overrides.join(" ")
    );
    let head = match out {
        "md" => format!("> {what}\n\n"),
        "tex" => format!("% {what}\n"),
        _ => return bytes,
    };
    let mut b = head.into_bytes();
    b.extend_from_slice(&bytes);
    b
}

/// Reads a sidecar.
pub fn read(path: &Path) -> Option<Provenance> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// The sidecar's bytes: pretty JSON with sorted keys and a trailing newline.
pub fn to_bytes(p: &Provenance) -> String {
    // Through a `Value`, whose maps are sorted, so the field order above does not matter.
    let v = serde_json::to_value(p).expect("provenance serializes");
    let mut text = serde_json::to_string_pretty(&v).expect("provenance serializes");
    text.push('\n');
    text
}

/// Copies report outputs to `reports/<report>.<output>` (`reports/<report>@<variant>.<output>`
/// for a variant, see [`variant`]) and writes their provenance sidecar. The sidecar's `files`
/// are the hashes of the bytes published. Returns the files published (`reports/…`, sidecars
/// included), in plan order.
pub fn publish(
    plan: &Plan,
    store: &Store,
    root: &Path,
    records: &[Option<Record>],
    variant: Option<&Variant>,
) -> Result<Vec<String>> {
    let mut published = Vec::new();
    for (i, inst) in plan.instances.iter().enumerate() {
        let (Some(report), Some(rec)) = (&inst.report, &records[i]) else { continue };
        let base = report;
        let report = &match variant {
            Some(v) => format!("{report}@{}", v.name),
            None => report.clone(),
        };
        let dir = root.join("reports");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let mut files = BTreeMap::new();
        for (out, obj) in &rec.outputs {
            let dest = dir.join(format!("{report}.{out}"));
            let unchanged =
                |hash: &str| std::fs::read(&dest).ok().is_some_and(|b| blake3::hash(&b).to_hex().as_str() == hash);
            // A default report that is already in place is not read again (a no-op rerun).
            if variant.is_none() && unchanged(&obj.hash) {
                files.insert(format!("{report}.{out}"), obj.hash.clone());
                continue;
            }
            let bytes =
                std::fs::read(store.object_path(&obj.hash)).map_err(|e| Error::io("cannot read report object", e))?;
            // Integrity at the last step: the bytes published are the bytes the record
            // names, whatever a restored mtime made the lookup believe.
            if blake3::hash(&bytes).to_hex().as_str() != obj.hash {
                store.quarantine(&obj.hash, "content does not match its hash");
                return Err(Error::Io(format!(
                    "the cached output `{out}` of `{}` was corrupt; it has been quarantined: run again to recompute it",
                    inst.name
                )));
            }
            let bytes = published_bytes(base, out, bytes, variant);
            let hash = blake3::hash(&bytes).to_hex().to_string();
            if !unchanged(&hash) {
                crate::store::write_atomic_beside(&dest, &bytes)?;
            }
            files.insert(format!("{report}.{out}"), hash);
        }
        let prov = Provenance {
            pipeline: plan.spec.name.clone(),
            pipeline_file: plan.spec.path.display().to_string(),
            pipeline_hash: plan.spec.hash(),
            overrides: plan.spec.overrides.clone(),
            tool: Tool { name: "repro".into(), version: env!("CARGO_PKG_VERSION").into() },
            stage: StageRef { instance: inst.name.clone(), kind: rec.key_input.kind.clone(), key: rec.key.clone() },
            files,
            cells: cells(plan, store, i, rec, records),
            upstream: upstream(plan, i, records),
        };
        published.extend(prov.files.keys().map(|f| format!("reports/{f}")));
        published.push(format!("reports/{report}.provenance.json"));
        let text = to_bytes(&prov);
        let dest = dir.join(format!("{report}.provenance.json"));
        if std::fs::read_to_string(&dest).ok().as_deref() != Some(text.as_str()) {
            crate::store::write_atomic_beside(&dest, text.as_bytes())?;
        }
    }
    Ok(published)
}

/// What the run record's environment says about scheduling rather than the machine, left out
/// of the sidecar: the threads an instance got depend on `--jobs` and, by default, on what else
/// was waiting when it started, and change no result (`tests/dgex.rs` and `tests/rbm.rs` pin
/// every multi-threaded kind). `repro explain` shows them from the run record.
const SCHEDULING: &[&str] = &["threads"];

/// The upstream chain of instance `i` with what produced each (no wall times: see the module).
fn upstream(plan: &Plan, i: usize, records: &[Option<Record>]) -> Vec<Upstream> {
    plan.upstream(i)
        .into_iter()
        .filter_map(|u| {
            let r = records[u].as_ref()?;
            Some(Upstream {
                instance: plan.instances[u].name.clone(),
                kind: r.key_input.kind.clone(),
                key: r.key.clone(),
                params: r.key_input.params.clone(),
                environment: r
                    .environment
                    .iter()
                    .filter(|(k, _)| !SCHEDULING.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
        })
        .collect()
}

/// The cells of a table stage, each with the instances its stage says it was computed from.
fn cells(plan: &Plan, store: &Store, i: usize, rec: &Record, records: &[Option<Record>]) -> Vec<Cell> {
    let inst = &plan.instances[i];
    let paths: BTreeMap<String, PathBuf> =
        rec.outputs.iter().map(|(o, obj)| (o.clone(), store.object_path(&obj.hash))).collect();
    let Some(sources) = inst.stage.cell_sources(&inst.params, &paths) else { return Vec::new() };
    let binds = inst.inputs.get(sources.slot).cloned().unwrap_or_default();
    let key_of = |u: usize| records[u].as_ref().map(|r| r.key.clone());
    sources
        .cells
        .into_iter()
        .map(|c| Cell {
            sources: c
                .inputs
                .iter()
                .filter_map(|&ix| binds.get(ix))
                .map(|b| Source {
                    instance: plan.instances[b.instance].name.clone(),
                    output: b.output.clone(),
                    axes: plan.instances[b.instance].axes.clone(),
                    key: key_of(b.instance),
                    upstream: plan
                        .upstream(b.instance)
                        .into_iter()
                        .map(|x| KeyedInstance { instance: plan.instances[x].name.clone(), key: key_of(x) })
                        .collect(),
                })
                .collect(),
            cell: c.cell,
            row: c.row,
            column: c.column,
            value: c.value,
            n: c.n,
            axes: c.axes,
        })
        .collect()
}
