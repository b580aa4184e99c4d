//! The pipeline file format: TOML parsed with spans, includes resolved, vars, profiles and
//! `--set` overrides applied and type-checked. Everything downstream (planning, keys) works on
//! [`Spec`], whose every value remembers where it was written.

mod files;
mod stages;
mod vars;

use crate::diag::{Error, Loc, Problem, Result, Sources};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use files::parse_cli_value;

/// A value from a pipeline file, with its location.
#[derive(Debug, Clone)]
pub struct Val {
    /// The value.
    pub v: V,
    /// Where it was written.
    pub loc: Loc,
}

#[derive(Debug, Clone)]
/// A TOML value.
pub enum V {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An array.
    Arr(Vec<Val>),
    /// A table: key, key location, value, in file order.
    Table(Vec<(String, Loc, Val)>),
}

impl V {
    /// "string", "integer", … for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            V::Str(_) => "string",
            V::Int(_) => "integer",
            V::Float(_) => "float",
            V::Bool(_) => "boolean",
            V::Arr(_) => "array",
            V::Table(_) => "table",
        }
    }
}

impl Val {
    /// As JSON (tables keep their keys, NaN becomes null).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.v {
            V::Str(s) => Value::String(s.clone()),
            V::Int(i) => Value::from(*i),
            V::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            V::Bool(b) => Value::Bool(*b),
            V::Arr(a) => Value::Array(a.iter().map(Val::to_json).collect()),
            V::Table(t) => Value::Object(t.iter().map(|(k, _, v)| (k.clone(), v.to_json())).collect()),
        }
    }
    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            V::Str(s) => Some(s),
            _ => None,
        }
    }
    /// Display form for instance names and messages (`500`, `tanh`, `0.1`).
    pub fn display(&self) -> String {
        match &self.v {
            V::Str(s) => s.clone(),
            _ => self.to_json().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
/// One `[stage.NAME]` table.
pub struct StageSpec {
    /// Its name.
    pub name: String,
    /// Where its table starts.
    pub loc: Loc,
    /// Its `kind`.
    pub kind: String,
    /// Where `kind` was written.
    pub kind_loc: Loc,
    /// Axis name, values, location of the axis key.
    pub matrix: Vec<(String, Val, Loc)>,
    /// `report = "…"`: the name its outputs are published under.
    pub report: Option<(String, Loc)>,
    /// `seed = …`: replaces the pipeline seed for this stage.
    pub seed: Option<(u64, Loc)>,
    /// Axes that vary the instance seed (default: all of the matrix).
    pub seed_axes: Option<(Vec<String>, Loc)>,
    /// `resources = { cpus, mem, time, gpus, partition }`: what an instance asks of the
    /// machine or the cluster (not part of the cache key).
    pub resources: Option<Val>,
    /// Every other key: input references and params, with the key's location.
    pub entries: Vec<(String, Loc, Val)>,
}

#[derive(Debug, Clone)]
/// A pipeline file with its includes and overrides applied.
pub struct Spec {
    /// The pipeline file.
    pub path: PathBuf,
    /// Every file read (and every `--set` value).
    pub sources: Sources,
    /// `[pipeline] name` (default: the file stem).
    pub name: String,
    /// `[pipeline] description`.
    pub description: String,
    /// `[pipeline] seed`.
    pub seed: u64,
    /// Vars after profile and `--set`.
    pub vars: BTreeMap<String, Val>,
    /// Stages in file order (includes first).
    pub stages: Vec<StageSpec>,
    /// `--profile` and `--set` applied, for provenance.
    pub overrides: Vec<String>,
}

impl Spec {
    /// blake3 over every source text and the overrides: identifies "this pipeline as run".
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        for s in &self.sources.0 {
            h.update(s.name.as_bytes());
            h.update(&[0]);
            h.update(s.text.as_bytes());
            h.update(&[0]);
        }
        for o in &self.overrides {
            h.update(o.as_bytes());
            h.update(&[0]);
        }
        h.finalize().to_hex().to_string()
    }
}

/// Options that select and override, shared by run, status, dag and explain.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--set NAME=VALUE`, in order.
    pub sets: Vec<String>,
    /// `--profile NAME`.
    pub profile: Option<String>,
}

/// Reads a pipeline file, its includes and the overrides into a [`Spec`]; every problem found
/// is reported at once, each with its place.
pub fn load(path: &Path, ov: &Overrides) -> Result<Spec> {
    let mut ld = files::Loader::new();
    let raw = ld.load_root(path);
    if ld.sources.0.is_empty() {
        return Err(Error::Invalid(ld.problems, ld.sources));
    }
    let (name, description, seed) = header(&raw.pipeline, path, &mut ld.problems);
    let (vars, overrides) = vars::resolve(&mut ld, &raw, ov);
    let stages = stages::stage_specs(&mut ld, raw.stages);
    if !ld.problems.is_empty() {
        return Err(Error::Invalid(ld.problems, ld.sources));
    }
    Ok(Spec { path: path.to_path_buf(), sources: ld.sources, name, description, seed, vars, stages, overrides })
}

/// `[pipeline]`: name (default: the file stem), description and seed.
fn header(entries: &[(String, Loc, Val)], path: &Path, problems: &mut Vec<Problem>) -> (String, String, u64) {
    let mut name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pipeline").to_string();
    let mut description = String::new();
    let mut seed = 0u64;
    for (k, kl, v) in entries {
        match (k.as_str(), &v.v) {
            ("name", V::Str(s)) => name = s.clone(),
            ("description", V::Str(s)) => description = s.clone(),
            ("seed", V::Int(i)) if *i >= 0 => seed = *i as u64,
            ("name" | "description", _) => problems.push(Problem::at(
                &v.loc,
                format!("`pipeline.{k}` must be a string"),
                format!("found {}", v.v.type_name()),
            )),
            ("seed", _) => problems.push(Problem::at(
                &v.loc,
                "`pipeline.seed` must be a non-negative integer",
                format!("found {}", v.v.type_name()),
            )),
            _ => problems.push(Problem::at(
                kl,
                format!("unknown key `pipeline.{k}`"),
                "expected name, description or seed",
            )),
        }
    }
    (name, description, seed)
}
