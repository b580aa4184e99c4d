//! The pipeline file format: TOML parsed with spans, includes resolved, vars, profiles and
//! `--set` overrides applied and type-checked. Everything downstream (planning, keys) works on
//! [`Spec`], whose every value remembers where it was written.

use crate::diag::{Error, Loc, Problem, Result, SourceFile, Sources};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A value from a pipeline file, with its location.
#[derive(Debug, Clone)]
pub struct Val {
    pub v: V,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub enum V {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Arr(Vec<Val>),
    Table(Vec<(String, Loc, Val)>),
}

impl V {
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
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.v {
            V::Str(s) => J::String(s.clone()),
            V::Int(i) => J::from(*i),
            V::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            V::Bool(b) => J::Bool(*b),
            V::Arr(a) => J::Array(a.iter().map(Val::to_json).collect()),
            V::Table(t) => J::Object(t.iter().map(|(k, _, v)| (k.clone(), v.to_json())).collect()),
        }
    }
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
pub struct StageSpec {
    pub name: String,
    pub loc: Loc,
    pub kind: String,
    pub kind_loc: Loc,
    /// Axis name, values, location of the axis key.
    pub matrix: Vec<(String, Val, Loc)>,
    pub report: Option<(String, Loc)>,
    pub seed: Option<(u64, Loc)>,
    /// Axes that vary the instance seed (default: all of the matrix).
    pub seed_axes: Option<(Vec<String>, Loc)>,
    /// Every other key: input references and params, with the key's location.
    pub entries: Vec<(String, Loc, Val)>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub path: PathBuf,
    pub sources: Sources,
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub vars: BTreeMap<String, Val>,
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

struct Loader {
    sources: Sources,
    problems: Vec<Problem>,
    /// Files already loaded: a file reached again through another include (a diamond, e.g.
    /// two model files that both include the shared frame) is loaded once, where first reached.
    loaded: Vec<PathBuf>,
}

fn loc(file: usize, span: std::ops::Range<usize>) -> Loc {
    Loc { file, span }
}

fn convert(file: usize, v: &Spanned<DeValue<'_>>, problems: &mut Vec<Problem>) -> Val {
    let l = loc(file, v.span());
    let inner = match v.get_ref() {
        DeValue::String(s) => V::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => V::Int(n),
            Err(_) => {
                problems.push(Problem::at(&l, "integer out of range", "does not fit in 64 bits"));
                V::Int(0)
            }
        },
        DeValue::Float(f) => {
            let s = f.as_str().replace('_', "");
            let n = match s.as_str() {
                "inf" | "+inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" | "+nan" | "-nan" => f64::NAN,
                _ => s.parse().unwrap_or(f64::NAN),
            };
            V::Float(n)
        }
        DeValue::Boolean(b) => V::Bool(*b),
        DeValue::Datetime(d) => V::Str(d.to_string()),
        DeValue::Array(a) => V::Arr(a.iter().map(|e| convert(file, e, problems)).collect()),
        DeValue::Table(t) => V::Table(table(file, t, problems)),
    };
    Val { v: inner, loc: l }
}

fn table(file: usize, t: &DeTable<'_>, problems: &mut Vec<Problem>) -> Vec<(String, Loc, Val)> {
    t.iter().map(|(k, v)| (k.get_ref().to_string(), loc(file, k.span()), convert(file, v, problems))).collect()
}

/// Parses a `--set` value: TOML syntax when it parses (`0.1`, `true`, `[1, 2]`, `"s"`),
/// otherwise the raw text as a string (`--set data=data/x.npy`).
pub fn parse_cli_value(text: &str, file: usize) -> Val {
    let mut ignored = Vec::new();
    match DeValue::parse(text) {
        Ok(v) => convert(file, &v, &mut ignored),
        Err(_) => Val { v: V::Str(text.to_string()), loc: loc(file, 0..text.len()) },
    }
}

/// Top-level sections collected across includes.
#[derive(Default)]
struct Raw {
    pipeline: Vec<(String, Loc, Val)>,
    vars: Vec<(String, Loc, Val)>,
    profiles: Vec<(String, Loc, Val)>,
    stages: Vec<(String, Loc, Val)>,
}

impl Loader {
    fn add_source(&mut self, name: String, text: String) -> usize {
        self.sources.0.push(SourceFile { name, text: Arc::new(text) });
        self.sources.0.len() - 1
    }

    fn load(&mut self, path: &Path, display: String, from: Option<&Loc>, stack: &mut Vec<PathBuf>, raw: &mut Raw) {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if stack.contains(&canon) {
            if let Some(l) = from {
                self.problems.push(Problem::at(l, format!("include cycle through `{display}`"), "included again here"));
            }
            return;
        }
        if self.loaded.contains(&canon) {
            return;
        }
        self.loaded.push(canon.clone());
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                match from {
                    Some(l) => self.problems.push(Problem::at(
                        l,
                        format!("cannot read included file `{display}`: {e}"),
                        "included here",
                    )),
                    None => self.problems.push(Problem::global(format!("cannot read pipeline `{display}`: {e}"))),
                }
                return;
            }
        };
        let file = self.add_source(display, text.clone());
        let (doc, errors) = DeTable::parse_recoverable(&text);
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            self.problems.push(Problem::at(&loc(file, span), format!("TOML syntax: {}", e.message().trim()), "here"));
        }
        stack.push(canon);
        let mut entries = table(file, doc.get_ref(), &mut self.problems);
        // Includes first, so that this file's definitions come after (and vars override).
        if let Some(pos) = entries.iter().position(|(k, _, _)| k == "include") {
            let (_, _, inc) = entries.remove(pos);
            let list = match &inc.v {
                V::Arr(a) => a.clone(),
                V::Str(_) => vec![inc.clone()],
                _ => {
                    self.problems.push(Problem::at(&inc.loc, "`include` must be a list of file paths", "not a list"));
                    vec![]
                }
            };
            for item in list {
                match item.as_str() {
                    Some(rel) => {
                        let p = path.parent().unwrap_or(Path::new(".")).join(rel);
                        let name = format!("{}", p.display());
                        self.load(&p, name, Some(&item.loc), stack, raw);
                    }
                    None => {
                        self.problems.push(Problem::at(&item.loc, "include entries must be strings", "not a string"))
                    }
                }
            }
        }
        for (k, kl, v) in entries {
            let section = match k.as_str() {
                "pipeline" => &mut raw.pipeline,
                "vars" => &mut raw.vars,
                "profiles" => &mut raw.profiles,
                "stage" => &mut raw.stages,
                other => {
                    let hint =
                        repro_stages::params::closest(other, &["pipeline", "vars", "profiles", "stage", "include"]);
                    let mut p = Problem::at(&kl, format!("unknown top-level key `{other}`"), "not a pipeline section");
                    p = p.help(match hint {
                        Some(h) => format!("did you mean `{h}`? sections are [pipeline], [vars], [profiles.NAME], [stage.NAME] and include"),
                        None => "sections are [pipeline], [vars], [profiles.NAME], [stage.NAME] and include".to_string(),
                    });
                    self.problems.push(p);
                    continue;
                }
            };
            match v.v {
                V::Table(t) => section.extend(t),
                _ => self.problems.push(Problem::at(&v.loc, format!("`{k}` must be a table"), "not a table")),
            }
        }
        stack.pop();
    }
}

/// "an integer", "a string".
fn a(noun: &str) -> String {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {noun}")
    } else {
        format!("a {noun}")
    }
}

fn same_type(declared: &V, given: &V) -> bool {
    matches!(
        (declared, given),
        (V::Str(_), V::Str(_))
            | (V::Int(_), V::Int(_))
            | (V::Float(_), V::Float(_) | V::Int(_))
            | (V::Bool(_), V::Bool(_))
            | (V::Arr(_), V::Arr(_))
            | (V::Table(_), V::Table(_))
    )
}

fn coerce(declared: &V, given: Val) -> Val {
    match (declared, &given.v) {
        (V::Float(_), V::Int(i)) => Val { v: V::Float(*i as f64), loc: given.loc },
        _ => given,
    }
}

/// Options that select and override, shared by run, status, dag and explain.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub sets: Vec<String>,
    pub profile: Option<String>,
}

pub fn load(path: &Path, ov: &Overrides) -> Result<Spec> {
    let mut ld = Loader { sources: Sources::default(), problems: Vec::new(), loaded: Vec::new() };
    let mut raw = Raw::default();
    ld.load(path, path.display().to_string(), None, &mut Vec::new(), &mut raw);
    if ld.sources.0.is_empty() {
        return Err(Error::Invalid(ld.problems, ld.sources));
    }
    let mut name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pipeline").to_string();
    let mut description = String::new();
    let mut seed = 0u64;
    for (k, kl, v) in &raw.pipeline {
        match (k.as_str(), &v.v) {
            ("name", V::Str(s)) => name = s.clone(),
            ("description", V::Str(s)) => description = s.clone(),
            ("seed", V::Int(i)) if *i >= 0 => seed = *i as u64,
            ("name" | "description", _) => ld.problems.push(Problem::at(
                &v.loc,
                format!("`pipeline.{k}` must be a string"),
                format!("found {}", v.v.type_name()),
            )),
            ("seed", _) => ld.problems.push(Problem::at(
                &v.loc,
                "`pipeline.seed` must be a non-negative integer",
                format!("found {}", v.v.type_name()),
            )),
            _ => ld.problems.push(Problem::at(
                kl,
                format!("unknown key `pipeline.{k}`"),
                "expected name, description or seed",
            )),
        }
    }
    let mut vars: BTreeMap<String, Val> = BTreeMap::new();
    for (k, _, v) in &raw.vars {
        vars.insert(k.clone(), v.clone());
    }
    let mut overrides = Vec::new();
    // Profile, then --set (the command line wins).
    let apply = |ld: &mut Loader,
                 vars: &mut BTreeMap<String, Val>,
                 key: &str,
                 key_loc: Option<&Loc>,
                 val: Val,
                 origin: &str| {
        match vars.get(key) {
            None => {
                let known: Vec<&str> = vars.keys().map(String::as_str).collect();
                let hint = repro_stages::params::closest(key, &known)
                    .map(|h| format!("did you mean `{h}`? "))
                    .unwrap_or_default();
                let msg = format!("{origin} sets unknown var `{key}`");
                let help =
                    format!("{hint}declared vars: {}", if known.is_empty() { "none".into() } else { known.join(", ") });
                ld.problems.push(match key_loc {
                    Some(l) => Problem::at(l, msg, "not declared in [vars]").help(help),
                    None => Problem::global(msg).help(help),
                });
            }
            Some(decl) if !same_type(&decl.v, &val.v) => {
                let msg = format!(
                    "{origin} gives var `{key}` {}, but it is declared as {}",
                    a(val.v.type_name()),
                    a(decl.v.type_name())
                );
                ld.problems.push(Problem::at(&val.loc, msg, format!("expected {}", decl.v.type_name())));
            }
            Some(decl) => {
                let v = coerce(&decl.v, val);
                vars.insert(key.to_string(), v);
            }
        }
    };
    if let Some(prof) = &ov.profile {
        match raw.profiles.iter().find(|(k, _, _)| k == prof) {
            Some((_, _, Val { v: V::Table(t), .. })) => {
                for (k, kl, v) in t.clone() {
                    apply(&mut ld, &mut vars, &k, Some(&kl), v, &format!("profile `{prof}`"));
                }
                overrides.push(format!("--profile {prof}"));
            }
            Some((_, kl, _)) => ld.problems.push(Problem::at(
                kl,
                format!("profile `{prof}` must be a table of var overrides"),
                "not a table",
            )),
            None => {
                let known: Vec<&str> = raw.profiles.iter().map(|(k, _, _)| k.as_str()).collect();
                ld.problems.push(Problem::global(format!("unknown profile `{prof}`")).help(format!(
                    "profiles in this pipeline: {}",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                )));
            }
        }
    }
    // Profiles that are never selected are still checked.
    for (pname, _, pv) in &raw.profiles {
        if let V::Table(t) = &pv.v {
            for (k, kl, v) in t {
                match vars.get(k) {
                    None => ld.problems.push(Problem::at(
                        kl,
                        format!("profile `{pname}` sets unknown var `{k}`"),
                        "not declared in [vars]",
                    )),
                    Some(d) if !same_type(&d.v, &v.v) => ld.problems.push(Problem::at(
                        &v.loc,
                        format!(
                            "profile `{pname}` gives var `{k}` {}, but it is declared as {}",
                            a(v.v.type_name()),
                            a(d.v.type_name())
                        ),
                        format!("expected {}", d.v.type_name()),
                    )),
                    _ => {}
                }
            }
        }
    }
    for s in &ov.sets {
        let Some((k, text)) = s.split_once('=') else {
            ld.problems.push(Problem::global(format!("bad --set `{s}`: expected NAME=VALUE")));
            continue;
        };
        let file = ld.add_source(format!("--set {k}"), text.to_string());
        let val = parse_cli_value(text, file);
        apply(&mut ld, &mut vars, k.trim(), None, val, &format!("--set {k}"));
        overrides.push(format!("--set {s}"));
    }
    let mut stages = Vec::new();
    let mut seen: BTreeMap<String, Loc> = BTreeMap::new();
    for (sname, sl, sv) in raw.stages {
        if let Some(prev) = seen.get(&sname) {
            let p = Problem::at(&sl, format!("duplicate stage `{sname}`"), "defined again here");
            let f = &ld.sources.0[prev.file].name;
            ld.problems.push(p.help(format!("first defined in {f}; stage names must be unique across included files")));
            continue;
        }
        seen.insert(sname.clone(), sl.clone());
        let V::Table(entries) = sv.v else {
            ld.problems.push(Problem::at(&sv.loc, format!("stage `{sname}` must be a table"), "not a table"));
            continue;
        };
        let mut st = StageSpec {
            name: sname.clone(),
            loc: sl.clone(),
            kind: String::new(),
            kind_loc: sl.clone(),
            matrix: vec![],
            report: None,
            seed: None,
            seed_axes: None,
            entries: vec![],
        };
        for (k, kl, v) in entries {
            match k.as_str() {
                "kind" => match &v.v {
                    V::Str(s) => {
                        st.kind = s.clone();
                        st.kind_loc = v.loc.clone();
                    }
                    _ => ld.problems.push(Problem::at(&v.loc, "`kind` must be a string", "not a string")),
                },
                "matrix" => match v.v {
                    V::Table(t) => st.matrix = t.into_iter().map(|(a, al, vals)| (a, vals, al)).collect(),
                    _ => ld.problems.push(Problem::at(
                        &v.loc,
                        "`matrix` must be a table of axis = [values]",
                        "not a table",
                    )),
                },
                "report" => match &v.v {
                    V::Str(s) => st.report = Some((s.clone(), v.loc.clone())),
                    _ => ld.problems.push(Problem::at(&v.loc, "`report` must be a file name stem", "not a string")),
                },
                "seed_axes" => match &v.v {
                    V::Arr(a) if a.iter().all(|x| x.as_str().is_some()) => {
                        st.seed_axes =
                            Some((a.iter().map(|x| x.as_str().unwrap().to_string()).collect(), v.loc.clone()))
                    }
                    _ => ld.problems.push(Problem::at(
                        &v.loc,
                        "`seed_axes` must be a list of axis names",
                        "not a list of strings",
                    )),
                },
                "seed" => match &v.v {
                    V::Int(i) if *i >= 0 => st.seed = Some((*i as u64, v.loc.clone())),
                    _ => ld.problems.push(Problem::at(&v.loc, "`seed` must be a non-negative integer", "not a seed")),
                },
                _ => st.entries.push((k, kl, v)),
            }
        }
        if st.kind.is_empty() {
            ld.problems.push(
                Problem::at(&sl, format!("stage `{sname}` has no `kind`"), "missing kind")
                    .help("add e.g. kind = \"train\"; `repro stages` lists the kinds"),
            );
        }
        stages.push(st);
    }
    if !ld.problems.is_empty() {
        return Err(Error::Invalid(ld.problems, ld.sources));
    }
    Ok(Spec { path: path.to_path_buf(), sources: ld.sources, name, description, seed, vars, stages, overrides })
}
