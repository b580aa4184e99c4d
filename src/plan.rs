//! Planning: a [`Spec`] becomes a DAG of stage *instances*. Matrices are expanded (one instance
//! per combination of axis values, named `train[hidden=500,rep=3]`), `${var}` is interpolated
//! (axis values act as vars inside their instance), params are validated and made canonical
//! by the stage kind, and input references are bound: by shared axis names, by explicit
//! selectors (`sub[rep=1]`) or to every matching instance (`eval[*]`). Every problem is
//! collected with its location and reported together.

use crate::diag::{Error, Loc, Problem, Result};
use crate::spec::{Spec, StageSpec, Val, V};
use petgraph::graph::{DiGraph, NodeIndex};
use repro_stages::Stage;
use serde_json::Value as J;
use std::collections::BTreeMap;

/// A reference to one output of one instance.
#[derive(Debug, Clone)]
pub struct Binding {
    pub instance: usize,
    pub output: String,
}

#[derive(Clone)]
pub struct Instance {
    pub name: String,
    pub stage: String,
    pub kind: &'static dyn Stage,
    pub axes: BTreeMap<String, J>,
    pub params: J,
    /// Slot name → bound outputs, in a stable order.
    pub inputs: BTreeMap<String, Vec<Binding>>,
    pub outputs: Vec<String>,
    pub external: Vec<String>,
    pub seed: u64,
    pub base_seed: u64,
    pub report: Option<String>,
    pub loc: Loc,
}

pub struct Plan {
    pub spec: Spec,
    pub instances: Vec<Instance>,
    /// Edges point from producer to consumer; node weight = instance index.
    pub graph: DiGraph<usize, ()>,
    /// Instances in a dependency order.
    pub order: Vec<usize>,
}

pub fn derive_seed(root: u64, axes: &BTreeMap<String, J>) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"repro-seed-v1\0");
    h.update(&root.to_le_bytes());
    h.update(crate::key::canonical_json(&J::Object(axes.clone().into_iter().collect())).as_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap())
}

fn instance_name(stage: &str, axes: &[(String, Val)]) -> String {
    if axes.is_empty() {
        stage.to_string()
    } else {
        let parts: Vec<String> = axes.iter().map(|(a, v)| format!("{a}={}", v.display())).collect();
        format!("{stage}[{}]", parts.join(","))
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
fn interpolate(v: &Val, env: &BTreeMap<String, Val>, problems: &mut Vec<Problem>) -> Val {
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
    let hint = repro_stages::params::closest(name, &known).map(|h| format!("did you mean `{h}`? ")).unwrap_or_default();
    Problem::at(loc, format!("unknown var `{name}`"), "used here")
        .help(format!("{hint}vars here: {}", if known.is_empty() { "none".into() } else { known.join(", ") }))
}

/// A parsed reference: `stage`, `stage.output`, `stage[*]`, `stage[axis=value,...].output`.
#[derive(Debug, Clone)]
struct Ref {
    stage: String,
    all: bool,
    selectors: Vec<(String, String)>,
    output: Option<String>,
}

fn parse_ref(s: &str) -> std::result::Result<Ref, String> {
    let s = s.trim();
    let (head, output) = match s.find('[') {
        Some(b) => {
            let close = s[b..].find(']').ok_or("missing `]`")? + b;
            let tail = &s[close + 1..];
            let output = match tail.strip_prefix('.') {
                Some(o) if !o.is_empty() => Some(o.to_string()),
                None if tail.is_empty() => None,
                _ => return Err(format!("unexpected `{tail}` after `]`")),
            };
            (&s[..=close], output)
        }
        None => match s.split_once('.') {
            Some((st, o)) => (st, Some(o.to_string())),
            None => (s, None),
        },
    };
    let (stage, sel) = match head.find('[') {
        Some(b) => (&head[..b], Some(&head[b + 1..head.len() - 1])),
        None => (head, None),
    };
    if stage.is_empty() {
        return Err("empty stage name".into());
    }
    let mut r = Ref { stage: stage.to_string(), all: false, selectors: vec![], output };
    if let Some(sel) = sel {
        if sel.trim() == "*" {
            r.all = true;
        } else {
            for part in sel.split(',') {
                let (a, v) = part.split_once('=').ok_or_else(|| format!("selector `{part}` is not axis=value"))?;
                r.selectors.push((a.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    Ok(r)
}

fn cartesian(axes: &[(String, Vec<Val>)]) -> Vec<Vec<(String, Val)>> {
    let mut out: Vec<Vec<(String, Val)>> = vec![vec![]];
    for (a, vals) in axes {
        let mut next = Vec::new();
        for prefix in &out {
            for v in vals {
                let mut p = prefix.clone();
                p.push((a.clone(), v.clone()));
                next.push(p);
            }
        }
        out = next;
    }
    out
}

struct Pending {
    inst: usize,
    slot: String,
    many: bool,
    refs: Vec<(Ref, Loc)>,
}

pub fn plan(mut spec: Spec) -> Result<Plan> {
    let mut problems = Vec::new();
    // Vars may refer to vars (`note = "read from ${data_dir}"`): resolve them against each
    // other first; a few passes cover any chain, and a cycle stops changing nothing useful.
    for _ in 0..8 {
        let before = spec.vars.clone();
        let mut scratch = Vec::new();
        for v in spec.vars.values_mut() {
            *v = interpolate(v, &before, &mut scratch);
        }
        if scratch.is_empty() && spec.vars.iter().all(|(k, v)| before[k].display() == v.display()) {
            break;
        }
    }
    let mut instances: Vec<Instance> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut by_stage: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let stage_names: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
    check_cycles(&spec.stages, &mut problems);
    for st in &spec.stages {
        let Some(kind) = repro_stages::lookup(&st.kind) else {
            if !st.kind.is_empty() {
                let kinds: Vec<&str> = repro_stages::registry().iter().map(|s| s.kind()).collect();
                let hint = repro_stages::params::closest(&st.kind, &kinds)
                    .map(|h| format!("did you mean `{h}`? "))
                    .unwrap_or_default();
                problems.push(
                    Problem::at(&st.kind_loc, format!("unknown stage kind `{}`", st.kind), "no such kind")
                        .help(format!("{hint}kinds: {}", kinds.join(", "))),
                );
            }
            continue;
        };
        // Matrix axes (values may come from vars).
        let mut axes: Vec<(String, Vec<Val>)> = Vec::new();
        for (a, vals, al) in &st.matrix {
            let v = interpolate(vals, &spec.vars, &mut problems);
            match v.v {
                V::Arr(items) if !items.is_empty() => axes.push((a.clone(), items)),
                V::Arr(_) => problems.push(Problem::at(al, format!("matrix axis `{a}` has no values"), "empty axis")),
                _ => problems.push(Problem::at(
                    &v.loc,
                    format!("matrix axis `{a}` must be a list of values"),
                    format!("found {}", v.v.type_name()),
                )),
            }
        }
        if let Some((names, l)) = &st.seed_axes {
            for n in names {
                if !axes.iter().any(|(a, _)| a == n) && !st.matrix.iter().any(|(a, _, _)| a == n) {
                    problems.push(Problem::at(
                        l,
                        format!("`seed_axes` names `{n}`, which is not a matrix axis of `{}`", st.name),
                        "unknown axis",
                    ));
                }
            }
        }
        for combo in cartesian(&axes) {
            let name = instance_name(&st.name, &combo);
            let mut env = spec.vars.clone();
            for (a, v) in &combo {
                env.insert(a.clone(), v.clone());
            }
            let mut raw = serde_json::Map::new();
            let mut key_locs: BTreeMap<String, (Loc, Loc)> = BTreeMap::new();
            let idx = instances.len();
            let mut slots_seen = Vec::new();
            let problems_before = problems.len();
            for (k, kl, v) in &st.entries {
                let v = interpolate(v, &env, &mut problems);
                if let Some(slot) = kind.inputs().iter().find(|s| s.name == k) {
                    slots_seen.push(slot.name);
                    let items: Vec<Val> = match &v.v {
                        V::Str(_) => vec![v.clone()],
                        V::Arr(a) if slot.many => a.clone(),
                        _ => {
                            problems.push(Problem::at(
                                &v.loc,
                                format!("input `{k}` must be a reference string like \"qn\" or \"split.train\""),
                                format!("found {}", v.v.type_name()),
                            ));
                            continue;
                        }
                    };
                    let mut refs = Vec::new();
                    for it in items {
                        match it.as_str().map(parse_ref) {
                            Some(Ok(r)) => {
                                if !stage_names.contains(&r.stage.as_str()) {
                                    let hint = repro_stages::params::closest(&r.stage, &stage_names)
                                        .map(|h| format!("did you mean `{h}`? "))
                                        .unwrap_or_default();
                                    problems.push(
                                        Problem::at(
                                            &it.loc,
                                            format!("dangling reference: no stage `{}`", r.stage),
                                            "unknown stage",
                                        )
                                        .help(format!("{hint}stages: {}", stage_names.join(", "))),
                                    );
                                } else if r.all && !slot.many {
                                    problems.push(
                                        Problem::at(
                                            &it.loc,
                                            format!("input `{k}` takes one artifact, but `[*]` selects every instance"),
                                            "many instances",
                                        )
                                        .help("use a selector like `stage[axis=value]`, or a shared axis"),
                                    );
                                } else {
                                    refs.push((r, it.loc.clone()));
                                }
                            }
                            Some(Err(e)) => {
                                problems.push(Problem::at(&it.loc, format!("bad reference: {e}"), "cannot parse"))
                            }
                            None => problems.push(Problem::at(&it.loc, "references must be strings", "not a string")),
                        }
                    }
                    pending.push(Pending { inst: idx, slot: slot.name.to_string(), many: slot.many, refs });
                } else {
                    key_locs.insert(k.clone(), (kl.clone(), v.loc.clone()));
                    raw.insert(k.clone(), v.to_json());
                }
            }
            for slot in kind.inputs() {
                if slot.required && !slots_seen.contains(&slot.name) {
                    problems.push(
                        Problem::at(
                            &st.loc,
                            format!("stage `{}` ({}) needs input `{}`", st.name, st.kind, slot.name),
                            "missing input",
                        )
                        .help(format!("{}: {}", slot.name, slot.doc)),
                    );
                }
            }
            let interpolation_failed = problems.len() > problems_before;
            let params = match kind.canonicalize(&raw) {
                Ok(p) => p,
                // A value left uninterpolated would only repeat the problem already reported.
                Err(_) if interpolation_failed => J::Null,
                Err(e) => {
                    let top = e.param.split(['.', '[']).next().unwrap_or("").to_string();
                    let (loc, label) = match key_locs.get(&top) {
                        Some((kl, vl)) if e.message.starts_with("unknown param") => {
                            (kl.clone(), "unknown param".to_string())
                        }
                        Some((_, vl)) => (vl.clone(), format!("bad value for `{}`", e.param)),
                        None => (st.loc.clone(), "in this stage".to_string()),
                    };
                    let msg = if e.param.is_empty() {
                        format!("stage `{name}`: {}", e.message)
                    } else {
                        format!("stage `{name}`, param `{}`: {}", e.param, e.message)
                    };
                    // Each matrix instance would repeat the same problem: report it once.
                    if !problems.iter().any(|p: &Problem| p.loc.as_ref() == Some(&loc) && p.label == label) {
                        problems.push(Problem::at(&loc, msg, label));
                    }
                    J::Null
                }
            };
            let root = st.seed.as_ref().map(|(s, _)| *s).unwrap_or(spec.seed);
            let axes_json: BTreeMap<String, J> = combo.iter().map(|(a, v)| (a.clone(), v.to_json())).collect();
            let (outputs, external) =
                if params.is_null() { (vec![], vec![]) } else { (kind.outputs(&params), kind.external_files(&params)) };
            instances.push(Instance {
                name,
                stage: st.name.clone(),
                kind,
                seed: derive_seed(
                    root,
                    &match &st.seed_axes {
                        Some((names, _)) => axes_json
                            .iter()
                            .filter(|(a, _)| names.contains(a))
                            .map(|(a, v)| (a.clone(), v.clone()))
                            .collect(),
                        None => axes_json.clone(),
                    },
                ),
                base_seed: derive_seed(root, &BTreeMap::new()),
                axes: axes_json,
                params,
                inputs: BTreeMap::new(),
                outputs,
                external,
                report: st.report.as_ref().map(|(r, l)| {
                    interpolate(&Val { v: V::Str(r.clone()), loc: l.clone() }, &env, &mut problems).display()
                }),
                loc: st.loc.clone(),
            });
            by_stage.entry(st.name.clone()).or_default().push(idx);
        }
    }
    // Bind references.
    for p in pending {
        let mut bound = Vec::new();
        for (r, rl) in &p.refs {
            let Some(cands) = by_stage.get(&r.stage) else { continue };
            let me = &instances[p.inst];
            let target_axes: Vec<String> = instances[cands[0]].axes.keys().cloned().collect();
            let mut bad_selector = false;
            for (a, _) in &r.selectors {
                if !target_axes.contains(a) {
                    bad_selector = true;
                    problems.push(
                        Problem::at(rl, format!("stage `{}` has no matrix axis `{a}`", r.stage), "bad selector").help(
                            format!(
                                "axes of `{}`: {}",
                                r.stage,
                                if target_axes.is_empty() { "none".into() } else { target_axes.join(", ") }
                            ),
                        ),
                    );
                }
            }
            let matching: Vec<usize> = cands
                .iter()
                .copied()
                .filter(|&c| {
                    let ax = &instances[c].axes;
                    let sel_ok = r.selectors.iter().all(|(a, v)| ax.get(a).is_some_and(|x| json_display(x) == *v));
                    let shared_ok = ax.iter().all(|(a, x)| {
                        me.axes.get(a).is_none_or(|mine| mine == x) || r.selectors.iter().any(|(s, _)| s == a)
                    });
                    sel_ok && shared_ok
                })
                .collect();
            let unbound: Vec<&String> = target_axes
                .iter()
                .filter(|a| !me.axes.contains_key(*a) && !r.selectors.iter().any(|(s, _)| s == *a))
                .collect();
            if bad_selector {
                continue;
            }
            if matching.is_empty() {
                problems.push(
                    Problem::at(
                        rl,
                        format!("bad matrix binding: no instance of `{}` matches `{}`", r.stage, me.name),
                        "matches nothing",
                    )
                    .help("shared axis names bind instances; check the axis values on both sides"),
                );
                continue;
            }
            if !r.all && (matching.len() > 1 || !unbound.is_empty()) {
                let names: Vec<&str> = unbound.iter().map(|s| s.as_str()).collect();
                problems.push(
                    Problem::at(
                        rl,
                        if matching.len() == 1 {
                            format!("ambiguous reference: `{}` is a matrix stage whose axes are not bound here", r.stage)
                        } else {
                            format!("ambiguous reference: `{}` has {} instances here", r.stage, matching.len())
                        },
                        "which instance?",
                    )
                        .help(format!("axis {} of `{}` is not bound by `{}`: add a selector like `{}[{}=…]`, or take all with `{}[*]`", names.join(", "), r.stage, me.stage, r.stage, names.first().copied().unwrap_or("axis"), r.stage)),
                );
                continue;
            }
            for c in matching {
                let outs = &instances[c].outputs;
                let output = match &r.output {
                    Some(o) if outs.contains(o) => o.clone(),
                    Some(o) => {
                        problems.push(
                            Problem::at(rl, format!("stage `{}` has no output `{o}`", r.stage), "unknown output")
                                .help(format!("outputs of `{}`: {}", r.stage, outs.join(", "))),
                        );
                        break;
                    }
                    None if outs.len() == 1 => outs[0].clone(),
                    None if outs.iter().any(|o| o == "out") => "out".into(),
                    None => {
                        if !outs.is_empty() {
                            problems.push(
                                Problem::at(
                                    rl,
                                    format!("stage `{}` has several outputs: name one", r.stage),
                                    "which output?",
                                )
                                .help(format!(
                                    "e.g. `{}.{}`; outputs: {}",
                                    r.stage,
                                    outs[0],
                                    outs.join(", ")
                                )),
                            );
                        }
                        break;
                    }
                };
                bound.push(Binding { instance: c, output });
            }
        }
        if !p.many && bound.len() > 1 {
            problems.push(Problem::at(
                &instances[p.inst].loc,
                format!("input `{}` of `{}` takes one artifact, got {}", p.slot, instances[p.inst].name, bound.len()),
                "too many",
            ));
        }
        instances[p.inst].inputs.insert(p.slot, bound);
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(problems, spec.sources));
    }
    let mut graph = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..instances.len()).map(|i| graph.add_node(i)).collect();
    for (i, inst) in instances.iter().enumerate() {
        for b in inst.inputs.values().flatten() {
            graph.update_edge(nodes[b.instance], nodes[i], ());
        }
    }
    // Kahn's algorithm, lowest instance index first: a stable order that follows the file.
    let mut indeg: Vec<usize> =
        nodes.iter().map(|&n| graph.neighbors_directed(n, petgraph::Direction::Incoming).count()).collect();
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
        (0..instances.len()).filter(|&i| indeg[i] == 0).map(std::cmp::Reverse).collect();
    let mut order = Vec::with_capacity(instances.len());
    while let Some(std::cmp::Reverse(i)) = heap.pop() {
        order.push(i);
        for m in graph.neighbors(nodes[i]) {
            indeg[graph[m]] -= 1;
            if indeg[graph[m]] == 0 {
                heap.push(std::cmp::Reverse(graph[m]));
            }
        }
    }
    if order.len() != instances.len() {
        let stuck = (0..instances.len()).find(|i| !order.contains(i)).unwrap_or(0);
        return Err(Error::Invalid(
            vec![Problem::at(&instances[stuck].loc, "dependency cycle", "in a cycle")],
            spec.sources,
        ));
    }
    Ok(Plan { spec, instances, graph, order })
}

fn json_display(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Stage-level cycle check, so the message can print the cycle's path.
fn check_cycles(stages: &[StageSpec], problems: &mut Vec<Problem>) {
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    let mut g: DiGraph<usize, Loc> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..stages.len()).map(|i| g.add_node(i)).collect();
    for (i, st) in stages.iter().enumerate() {
        let slots: Vec<&str> =
            repro_stages::lookup(&st.kind).map(|k| k.inputs().iter().map(|s| s.name).collect()).unwrap_or_default();
        for (k, _, v) in &st.entries {
            if !slots.contains(&k.as_str()) {
                continue;
            }
            let items: Vec<&Val> = match &v.v {
                V::Arr(a) => a.iter().collect(),
                _ => vec![v],
            };
            for it in items {
                if let Some(Ok(r)) = it.as_str().map(parse_ref) {
                    if let Some(j) = names.iter().position(|n| *n == r.stage) {
                        g.add_edge(nodes[j], nodes[i], it.loc.clone());
                    }
                }
            }
        }
    }
    for scc in petgraph::algo::tarjan_scc(&g) {
        let cyclic = scc.len() > 1 || g.contains_edge(scc[0], scc[0]);
        if !cyclic {
            continue;
        }
        // Walk the cycle inside the component from its first member.
        let start = *scc.iter().min_by_key(|n| g[**n]).unwrap();
        let mut path = vec![start];
        let mut cur = start;
        loop {
            let next =
                g.neighbors(cur).find(|n| scc.contains(n) && (*n == start || !path.contains(n))).unwrap_or(start);
            if next == start {
                break;
            }
            path.push(next);
            cur = next;
        }
        let mut names_path: Vec<&str> = path.iter().map(|n| names[g[*n]]).collect();
        names_path.push(names[g[start]]);
        let edge = g
            .find_edge(*path.last().unwrap(), start)
            .map(|e| g[e].clone())
            .unwrap_or_else(|| stages[g[start]].loc.clone());
        problems.push(
            Problem::at(
                &edge,
                format!("dependency cycle: {}", names_path.join(" → ")),
                "this reference closes the cycle",
            )
            .help("a stage cannot depend, directly or indirectly, on its own output"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_syntax() {
        let r = parse_ref("split.train").unwrap();
        assert_eq!((r.stage.as_str(), r.output.as_deref(), r.all), ("split", Some("train"), false));
        let r = parse_ref("eval[*]").unwrap();
        assert!(r.all && r.output.is_none());
        let r = parse_ref("train[hidden=500,rep=1].epoch100").unwrap();
        assert_eq!(r.selectors, vec![("hidden".into(), "500".into()), ("rep".into(), "1".into())]);
        assert_eq!(r.output.as_deref(), Some("epoch100"));
        assert!(parse_ref("x[rep=1").is_err());
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
