//! Vars and their overrides: `[vars]` declares typed values, a `--profile` and then every
//! `--set` replace them (the command line wins), each checked against the declared type.
//! Profiles that are not selected are type-checked too.

use super::files::{parse_cli_value, Loader, Raw};
use super::{Overrides, Val, V};
use crate::diag::{Loc, Problem};
use repro_core::closest;
use std::collections::BTreeMap;

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

/// The vars after the profile and `--set`, and the overrides applied (for provenance).
pub(super) fn resolve(ld: &mut Loader, raw: &Raw, ov: &Overrides) -> (BTreeMap<String, Val>, Vec<String>) {
    let mut vars: BTreeMap<String, Val> = raw.vars.iter().map(|(k, _, v)| (k.clone(), v.clone())).collect();
    let mut overrides = Vec::new();
    // Profile, then --set (the command line wins).
    if let Some(prof) = &ov.profile {
        if apply_profile(&mut ld.problems, &mut vars, raw, prof) {
            overrides.push(format!("--profile {prof}"));
        }
    }
    check_profiles(&mut ld.problems, &vars, raw);
    for s in &ov.sets {
        let Some((k, text)) = s.split_once('=') else {
            ld.problems.push(Problem::global(format!("bad --set `{s}`: expected NAME=VALUE")));
            continue;
        };
        let file = ld.add_source(format!("--set {k}"), text.to_string());
        let val = parse_cli_value(text, file);
        set_var(&mut ld.problems, &mut vars, k.trim(), None, val, &format!("--set {k}"));
        overrides.push(format!("--set {s}"));
    }
    (vars, overrides)
}

/// Replaces a declared var, checking the type (an integer may stand for a float).
fn set_var(
    problems: &mut Vec<Problem>,
    vars: &mut BTreeMap<String, Val>,
    key: &str,
    key_loc: Option<&Loc>,
    val: Val,
    origin: &str,
) {
    match vars.get(key) {
        None => {
            let known: Vec<&str> = vars.keys().map(String::as_str).collect();
            let hint = closest(key, &known).map(|h| format!("did you mean `{h}`? ")).unwrap_or_default();
            let msg = format!("{origin} sets unknown var `{key}`");
            let help =
                format!("{hint}declared vars: {}", if known.is_empty() { "none".into() } else { known.join(", ") });
            problems.push(match key_loc {
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
            problems.push(Problem::at(&val.loc, msg, format!("expected {}", decl.v.type_name())));
        }
        Some(decl) => {
            let v = coerce(&decl.v, val);
            vars.insert(key.to_string(), v);
        }
    }
}

/// Applies `[profiles.NAME]`; false when there is no such profile (reported).
fn apply_profile(problems: &mut Vec<Problem>, vars: &mut BTreeMap<String, Val>, raw: &Raw, prof: &str) -> bool {
    match raw.profiles.iter().find(|(k, _, _)| k == prof) {
        Some((_, _, Val { v: V::Table(t), .. })) => {
            for (k, kl, v) in t.clone() {
                set_var(problems, vars, &k, Some(&kl), v, &format!("profile `{prof}`"));
            }
            true
        }
        Some((_, kl, _)) => {
            problems.push(Problem::at(kl, format!("profile `{prof}` must be a table of var overrides"), "not a table"));
            false
        }
        None => {
            let known: Vec<&str> = raw.profiles.iter().map(|(k, _, _)| k.as_str()).collect();
            problems.push(Problem::global(format!("unknown profile `{prof}`")).help(format!(
                "profiles in this pipeline: {}",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            )));
            false
        }
    }
}

/// Profiles that are never selected are still checked: every var they set exists and has the
/// declared type.
fn check_profiles(problems: &mut Vec<Problem>, vars: &BTreeMap<String, Val>, raw: &Raw) {
    for (pname, _, pv) in &raw.profiles {
        let V::Table(t) = &pv.v else { continue };
        for (k, kl, v) in t {
            match vars.get(k) {
                None => problems.push(Problem::at(
                    kl,
                    format!("profile `{pname}` sets unknown var `{k}`"),
                    "not declared in [vars]",
                )),
                Some(d) if !same_type(&d.v, &v.v) => problems.push(Problem::at(
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
