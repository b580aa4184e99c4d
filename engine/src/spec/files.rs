//! Reading the files of a pipeline: TOML parsed with spans (every value remembers its file,
//! line and column), includes followed depth-first, and the top-level sections collected.

use super::{Val, V};
use crate::diag::{Loc, Problem, SourceFile, Sources};
use repro_core::closest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// How deep includes may nest (a deeper chain is almost surely a mistake, and each level
/// costs stack).
const MAX_INCLUDE_DEPTH: usize = 64;

/// Why an included file may not be read, if it may not: it must be a `.toml` file inside the
/// project of the including file (so a pipeline cannot echo `/etc/passwd` into an error).
fn outside_project(include: &Path, including: &Path) -> Option<String> {
    if include.extension().is_none_or(|e| e != "toml") {
        return Some("not a .toml file".into());
    }
    let root = crate::project_root(including);
    let (Ok(inc), Ok(root)) = (include.canonicalize(), root.canonicalize()) else {
        return None; // a missing file is reported when it is read
    };
    (!inc.starts_with(&root)).then(|| format!("it lies outside the project {}", root.display()))
}

pub(super) struct Loader {
    pub(super) sources: Sources,
    pub(super) problems: Vec<Problem>,
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
pub(super) struct Raw {
    pub(super) pipeline: Vec<(String, Loc, Val)>,
    pub(super) vars: Vec<(String, Loc, Val)>,
    pub(super) profiles: Vec<(String, Loc, Val)>,
    pub(super) stages: Vec<(String, Loc, Val)>,
}

impl Loader {
    pub(super) fn new() -> Self {
        Loader { sources: Sources::default(), problems: Vec::new(), loaded: Vec::new() }
    }

    /// Reads the pipeline file and everything it includes.
    pub(super) fn load_root(&mut self, path: &Path) -> Raw {
        let mut raw = Raw::default();
        self.load(path, path.display().to_string(), None, &mut Vec::new(), &mut raw);
        raw
    }

    pub(super) fn add_source(&mut self, name: String, text: String) -> usize {
        self.sources.0.push(SourceFile { name, text: Arc::new(text) });
        self.sources.0.len() - 1
    }

    fn load(&mut self, path: &Path, display: String, from: Option<&Loc>, stack: &mut Vec<PathBuf>, raw: &mut Raw) {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if stack.len() >= MAX_INCLUDE_DEPTH {
            if let Some(l) = from {
                self.problems.push(Problem::at(
                    l,
                    format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files"),
                    "included here",
                ));
            }
            return;
        }
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
        let text = match std::fs::read(path).map(String::from_utf8) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                // Point at the first bad byte: line and column of the valid text before it.
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
                let col = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
                self.problems.push(Problem::global(format!(
                    "{display}:{line}:{col}: the file is not valid UTF-8 (TOML files must be)"
                )));
                return;
            }
            Err(e) => {
                match from {
                    Some(l) => self.problems.push(Problem::at(
                        l,
                        format!("cannot read included file `{display}`: {e}"),
                        "included here",
                    )),
                    None => {
                        // A mistyped name: the closest pipeline file beside it.
                        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                        let names: Vec<String> = std::fs::read_dir(dir)
                            .into_iter()
                            .flatten()
                            .flatten()
                            .filter_map(|e| e.file_name().to_str().filter(|n| n.ends_with(".toml")).map(str::to_string))
                            .collect();
                        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                        let want = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        let hint = repro_core::closest(want, &refs)
                            .map(|c| format!(" (did you mean `{}`?)", dir.join(c).display()))
                            .unwrap_or_default();
                        self.problems.push(Problem::global(format!("cannot read pipeline `{display}`: {e}{hint}")))
                    }
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
        self.load_includes(path, &mut entries, stack, raw);
        for (k, kl, v) in entries {
            let section = match k.as_str() {
                "pipeline" => &mut raw.pipeline,
                "vars" => &mut raw.vars,
                "profiles" => &mut raw.profiles,
                "stage" => &mut raw.stages,
                other => {
                    let hint = closest(other, &["pipeline", "vars", "profiles", "stage", "include"]);
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

    /// Loads the files an `include` entry names (paths relative to the including file),
    /// removing the entry from `entries`.
    fn load_includes(
        &mut self,
        path: &Path,
        entries: &mut Vec<(String, Loc, Val)>,
        stack: &mut Vec<PathBuf>,
        raw: &mut Raw,
    ) {
        let Some(pos) = entries.iter().position(|(k, _, _)| k == "include") else { return };
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
                    match outside_project(&p, path) {
                        Some(why) => self.problems.push(
                            Problem::at(
                                &item.loc,
                                format!("cannot include `{rel}`: {why}"),
                                "not a pipeline file here",
                            )
                            .help("includes are .toml files inside the project (the folder that holds pipelines/)"),
                        ),
                        None => self.load(&p, name, Some(&item.loc), stack, raw),
                    }
                }
                None => self.problems.push(Problem::at(&item.loc, "include entries must be strings", "not a string")),
            }
        }
    }
}
