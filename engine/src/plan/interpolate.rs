//! Pass 1, interpolation: `${name}` in strings takes a var's (or, inside an instance, an
//! axis value's) value. A string that is exactly `"${x}"` takes x's value *and type*; names can
//! nest (`"${hidden_${arch}}"`).

use crate::diag::{Loc, Problem};
use crate::spec::{Val, V};
use repro_core::closest;
use std::collections::BTreeMap;

/// Vars may refer to vars (`note = "read from ${data_dir}"`): resolve them against each other
/// first; a few passes cover any chain. A var that refers back to itself, directly or through
/// others (`y = "${x_${y}}"`), is a cycle: reported, and the vars are left as written.
pub(super) fn resolve_vars(vars: &mut BTreeMap<String, Val>, problems: &mut Vec<Problem>) {
    if report_cycles(vars, problems) {
        return;
    }
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

/// Reports every var on a reference cycle; true when there is one.
fn report_cycles(vars: &BTreeMap<String, Val>, problems: &mut Vec<Problem>) -> bool {
    let edges: BTreeMap<&str, Vec<String>> = vars.iter().map(|(k, v)| (k.as_str(), referenced(v))).collect();
    let mut found = false;
    for (name, v) in vars {
        // Depth-first from `name` over the vars it names; a path back to `name` is a cycle.
        let mut stack: Vec<(String, Vec<String>)> =
            edges[name.as_str()].iter().map(|n| (n.clone(), vec![n.clone()])).collect();
        let mut seen = std::collections::BTreeSet::new();
        while let Some((cur, path)) = stack.pop() {
            if cur == *name {
                let chain: Vec<&str> = std::iter::once(name.as_str()).chain(path.iter().map(String::as_str)).collect();
                problems.push(
                    Problem::at(&v.loc, format!("var `{name}` refers to itself: {}", chain.join(" → ")), "cycle")
                        .help("a var may use other vars, but not itself, directly or through others"),
                );
                found = true;
                break;
            }
            if !seen.insert(cur.clone()) {
                continue;
            }
            for next in edges.get(cur.as_str()).into_iter().flatten() {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    found
}

/// The names a value refers to with `${name}` (for nested names, the innermost ones).
fn referenced(v: &Val) -> Vec<String> {
    match &v.v {
        V::Str(s) => {
            let mut out = Vec::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                let after = &rest[i + 2..];
                let (Some(close), next_open) = (after.find('}'), after.find("${")) else { break };
                if next_open.is_none_or(|o| o > close) {
                    out.push(after[..close].to_string());
                }
                rest = &rest[i + 2..];
            }
            out
        }
        V::Arr(a) => a.iter().flat_map(referenced).collect(),
        V::Table(t) => t.iter().flat_map(|(_, _, v)| referenced(v)).collect(),
        _ => Vec::new(),
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
            // A value that still holds a reference would grow the string without end.
            Some(val) if val.display().contains("${") => {
                problems.push(Problem::at(loc, format!("var `{name}` is not resolved here"), "unresolved var"));
                return None;
            }
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

    fn val(v: V) -> Val {
        Val { v, loc: Loc::default() }
    }

    #[test]
    fn a_var_that_refers_to_itself_is_a_cycle_not_a_hang() {
        let mut vars = BTreeMap::from([
            ("x_a".to_string(), val(V::Str("1".into()))),
            ("y".to_string(), val(V::Str("${x_${y}}".into()))),
        ]);
        let mut problems = Vec::new();
        resolve_vars(&mut vars, &mut problems);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].message, "var `y` refers to itself: y → y");
        // Through another var: a → b → a (both reported).
        let mut vars = BTreeMap::from([
            ("a".to_string(), val(V::Str("${b}".into()))),
            ("b".to_string(), val(V::Str("x${a}".into()))),
        ]);
        let mut problems = Vec::new();
        resolve_vars(&mut vars, &mut problems);
        let msgs: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(msgs, ["var `a` refers to itself: a → b → a", "var `b` refers to itself: b → a → b"]);
    }

    #[test]
    fn chains_of_vars_resolve() {
        let mut vars = BTreeMap::from([
            ("a".to_string(), val(V::Str("${b}/x".into()))),
            ("b".to_string(), val(V::Str("${c}".into()))),
            ("c".to_string(), val(V::Int(3))),
        ]);
        let mut problems = Vec::new();
        resolve_vars(&mut vars, &mut problems);
        assert!(problems.is_empty());
        assert_eq!(vars["a"].display(), "3/x");
        assert!(matches!(vars["b"].v, V::Int(3)));
    }

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
