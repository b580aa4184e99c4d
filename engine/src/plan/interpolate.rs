//! Pass 1, interpolation: `${name}` in strings takes a var's (or, inside an instance, an
//! axis value's) value. A string that is exactly `"${x}"` takes x's value *and type*; names can
//! nest (`"${hidden_${arch}}"`).

use crate::diag::{Loc, Problem};
use crate::spec::{Val, V};
use repro_core::closest;
use std::collections::BTreeMap;

/// Vars may refer to vars (`note = "read from ${data_dir}"`): resolve them against each other
/// first; a few passes cover any chain, and a cycle stops changing nothing useful.
pub(super) fn resolve_vars(vars: &mut BTreeMap<String, Val>) {
    for _ in 0..8 {
        let before = vars.clone();
        let mut scratch = Vec::new();
        for v in vars.values_mut() {
            *v = interpolate(v, &before, &mut scratch);
        }
        if scratch.is_empty() && vars.iter().all(|(k, v)| before[k].display() == v.display()) {
            break;
        }
    }
}

/// Substitutes references nested inside another reference's name first, so the var a string
/// names can depend on an axis: with `arch = "small"`, `"${hidden_${arch}}"` is `"${hidden_small}"`.
/// `None` after reporting an unknown inner var.
fn resolve_nested(s: &str, env: &BTreeMap<String, Val>, loc: &Loc, problems: &mut Vec<Problem>) -> Option<String> {
    let mut s = s.to_string();
    loop {
        let b = s.as_bytes();
        let mut open: Vec<usize> = Vec::new();
        let mut inner = None;
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'$' && b.get(i + 1) == Some(&b'{') {
                open.push(i);
                i += 2;
                continue;
            }
            if b[i] == b'}' {
                if let Some(start) = open.pop() {
                    if !open.is_empty() {
                        inner = Some((start, i));
                        break;
                    }
                }
            }
            i += 1;
        }
        let Some((start, end)) = inner else { return Some(s) };
        let name = s[start + 2..end].to_string();
        match env.get(&name) {
            Some(val) => s.replace_range(start..=end, &val.display()),
            None => {
                problems.push(unknown_var(&name, loc, env));
                return None;
            }
        }
    }
}

/// Interpolates `${name}` in strings. A string that is exactly `"${x}"` takes x's value and type.
pub(super) fn interpolate(v: &Val, env: &BTreeMap<String, Val>, problems: &mut Vec<Problem>) -> Val {
    match &v.v {
        V::Str(s) => {
            let Some(s) = &resolve_nested(s, env, &v.loc, problems) else { return v.clone() };
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                if !name.contains("${") && !name.contains('}') {
                    return match env.get(name) {
                        Some(val) => Val { v: val.v.clone(), loc: v.loc.clone() },
                        None => {
                            problems.push(unknown_var(name, &v.loc, env));
                            v.clone()
                        }
                    };
                }
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let after = &rest[i + 2..];
                match after.find('}') {
                    Some(j) => {
                        let name = &after[..j];
                        match env.get(name) {
                            Some(val) => out.push_str(&val.display()),
                            None => problems.push(unknown_var(name, &v.loc, env)),
                        }
                        rest = &after[j + 1..];
                    }
                    None => {
                        problems.push(Problem::at(&v.loc, "unterminated `${` in string", "missing `}`"));
                        out.push_str(&rest[i..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            Val { v: V::Str(out), loc: v.loc.clone() }
        }
        V::Arr(a) => Val { v: V::Arr(a.iter().map(|e| interpolate(e, env, problems)).collect()), loc: v.loc.clone() },
        V::Table(t) => Val {
            v: V::Table(t.iter().map(|(k, kl, e)| (k.clone(), kl.clone(), interpolate(e, env, problems))).collect()),
            loc: v.loc.clone(),
        },
        _ => v.clone(),
    }
}

fn unknown_var(name: &str, loc: &Loc, env: &BTreeMap<String, Val>) -> Problem {
    let known: Vec<&str> = env.keys().map(String::as_str).collect();
    let hint = closest(name, &known).map(|h| format!("did you mean `{h}`? ")).unwrap_or_default();
    Problem::at(loc, format!("unknown var `{name}`"), "used here")
        .help(format!("{hint}vars here: {}", if known.is_empty() { "none".into() } else { known.join(", ") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_references_pick_a_var_by_axis() {
        let val = |v: V| Val { v, loc: Loc::default() };
        let env = BTreeMap::from([
            ("arch".to_string(), val(V::Str("small".into()))),
            ("hidden_small".to_string(), val(V::Arr(vec![val(V::Int(300)), val(V::Int(300))]))),
        ]);
        let mut problems = Vec::new();
        let got = interpolate(&val(V::Str("${hidden_${arch}}".into())), &env, &mut problems);
        assert!(problems.is_empty());
        assert!(matches!(&got.v, V::Arr(a) if a.len() == 2 && matches!(a[0].v, V::Int(300))), "{:?}", got.v);
        let got = interpolate(&val(V::Str("net-${arch}-${hidden_${arch}}".into())), &env, &mut problems);
        assert!(matches!(&got.v, V::Str(s) if s == "net-small-[300,300]"), "{:?}", got.v);
        interpolate(&val(V::Str("${hidden_${nope}}".into())), &env, &mut problems);
        assert_eq!(problems.len(), 1);
    }
}
