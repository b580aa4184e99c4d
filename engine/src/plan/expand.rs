//! Pass 3, expansion: each stage becomes one instance per combination of its matrix axis
//! values (named `train[hidden=500,rep=3]`). Inside an instance the axis values act as vars;
//! params are interpolated, then validated and made canonical by the stage kind; input
//! references are parsed and left for the binding pass.

use super::interpolate::interpolate;
use super::refs::{parse_ref, Ref};
use super::{derive_seed, Instance, Resources};
use crate::diag::{Loc, Problem};
use crate::spec::{Spec, StageSpec, Val, V};
use repro_core::{closest, lookup, InputSlot, ParamError, Registry, Stage};
use serde_json::Value;
use std::collections::BTreeMap;

/// The references of one input slot of one instance, bound in the next pass.
pub(super) struct Pending {
    pub(super) inst: usize,
    pub(super) slot: String,
    pub(super) many: bool,
    pub(super) refs: Vec<(Ref, Loc)>,
}

/// What expansion hands to binding.
pub(super) struct Expanded {
    pub(super) instances: Vec<Instance>,
    pub(super) pending: Vec<Pending>,
    /// Stage name → its instances, in expansion order.
    pub(super) by_stage: BTreeMap<String, Vec<usize>>,
}

/// Expands every stage of the spec.
pub(super) fn expand(spec: &Spec, registry: Registry, problems: &mut Vec<Problem>) -> Expanded {
    let stage_names: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
    let mut pass = Pass {
        ctx: Ctx { spec, stage_names: &stage_names },
        out: Expanded { instances: Vec::new(), pending: Vec::new(), by_stage: BTreeMap::new() },
        problems,
    };
    let (limit, mut total) = (max_instances(), 0usize);
    for st in &spec.stages {
        let Some(kind) = lookup(registry, &st.kind) else {
            if !st.kind.is_empty() {
                pass.problems.push(unknown_kind(st, registry));
            }
            continue;
        };
        let axes = stage_axes(st, &spec.vars, pass.problems);
        let count = axes.iter().try_fold(1usize, |n, (_, v)| n.checked_mul(v.len())).unwrap_or(usize::MAX);
        total = total.saturating_add(count);
        if total > limit {
            pass.problems.push(too_many_instances(st, count, limit));
            continue;
        }
        // The instances of a matrix are independent: they are expanded in parallel, then
        // numbered, and their problems reported, in combination order (#19).
        let base = pass.out.instances.len();
        let ctx = &pass.ctx;
        let combos = cartesian(&axes);
        let made: Vec<Made> = {
            use rayon::prelude::*;
            combos.par_iter().enumerate().map(|(j, combo)| ctx.instance(st, kind, combo, base + j)).collect()
        };
        for (j, m) in made.into_iter().enumerate() {
            pass.out.instances.push(m.instance);
            pass.out.pending.extend(m.pending);
            pass.problems.extend(m.problems);
            pass.out.by_stage.entry(st.name.clone()).or_default().push(base + j);
        }
    }
    pass.out
}

/// The state of the expansion pass.
struct Pass<'a> {
    ctx: Ctx<'a>,
    out: Expanded,
    problems: &'a mut Vec<Problem>,
}

/// What expanding one instance needs to read.
struct Ctx<'a> {
    spec: &'a Spec,
    stage_names: &'a [&'a str],
}

/// One expanded instance, its unbound references and its problems.
struct Made {
    instance: Instance,
    pending: Vec<Pending>,
    problems: Vec<Problem>,
}

/// The most instances a plan may have: `REPRO_MAX_INSTANCES`, default 200,000 (planning
/// 100,000 takes well under a second; a typo like a 1,000 × 1,000 matrix would take gigabytes).
pub fn max_instances() -> usize {
    std::env::var("REPRO_MAX_INSTANCES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000)
}

fn too_many_instances(st: &StageSpec, count: usize, limit: usize) -> Problem {
    let loc = st.matrix.first().map(|(_, _, l)| l.clone()).unwrap_or_else(|| st.loc.clone());
    Problem::at(
        &loc,
        format!("stage `{}` would bring the plan past {limit} instances ({count} of its own)", st.name),
        "too many instances",
    )
    .help("check the matrix axes; to plan more, raise REPRO_MAX_INSTANCES")
}

fn unknown_kind(st: &StageSpec, registry: Registry) -> Problem {
    let kinds: Vec<&str> = registry.iter().map(|s| s.kind()).collect();
    let hint = closest(&st.kind, &kinds).map(|h| format!("did you mean `{h}`? ")).unwrap_or_default();
    Problem::at(&st.kind_loc, format!("unknown stage kind `{}`", st.kind), "no such kind")
        .help(format!("{hint}kinds: {}", kinds.join(", ")))
}

/// Matrix axes (values may come from vars); `seed_axes` must name axes of the matrix.
fn stage_axes(st: &StageSpec, vars: &BTreeMap<String, Val>, problems: &mut Vec<Problem>) -> Vec<(String, Vec<Val>)> {
    let mut axes: Vec<(String, Vec<Val>)> = Vec::new();
    for (a, vals, al) in &st.matrix {
        let v = interpolate(vals, vars, problems);
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
    axes
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

fn instance_name(stage: &str, axes: &[(String, Val)]) -> String {
    if axes.is_empty() {
        stage.to_string()
    } else {
        let parts: Vec<String> = axes.iter().map(|(a, v)| format!("{a}={}", v.display())).collect();
        format!("{stage}[{}]", parts.join(","))
    }
}

/// The params of one instance, with the locations of their keys and values.
struct RawParams {
    raw: serde_json::Map<String, Value>,
    key_locs: BTreeMap<String, (Loc, Loc)>,
}

impl Ctx<'_> {
    /// Instance number `idx`, of `st`: the combination `combo` of its axis values.
    fn instance(&self, st: &StageSpec, kind: &'static dyn Stage, combo: &[(String, Val)], idx: usize) -> Made {
        let spec = self.spec;
        let mut problems = Vec::new();
        let mut pending = Vec::new();
        let problems = &mut problems;
        let name = instance_name(&st.name, combo);
        let mut env = spec.vars.clone();
        for (a, v) in combo {
            env.insert(a.clone(), v.clone());
        }
        let problems_before = problems.len();
        let mut raw = RawParams { raw: serde_json::Map::new(), key_locs: BTreeMap::new() };
        let mut slots_seen = Vec::new();
        for (k, kl, v) in &st.entries {
            let v = interpolate(v, &env, problems);
            if let Some(slot) = kind.inputs().iter().find(|s| s.name == k) {
                // An optional input given as "" is left unbound, so a var can switch it off
                // (`eval = "${lalr_eval}"` with `lalr_eval = ""`).
                if !slot.required && matches!(&v.v, V::Str(s) if s.is_empty()) {
                    continue;
                }
                slots_seen.push(slot.name);
                if let Some(refs) = slot_refs(k, &v, slot, self.stage_names, problems) {
                    pending.push(Pending { inst: idx, slot: slot.name.to_string(), many: slot.many, refs });
                }
            } else {
                raw.key_locs.insert(k.clone(), (kl.clone(), v.loc.clone()));
                raw.raw.insert(k.clone(), v.to_json());
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
        let (params, outputs, external) = match kind.plan(&raw.raw) {
            Ok(p) => (p.params, p.outputs, p.external),
            // A value left uninterpolated would only repeat the problem already reported.
            Err(_) if interpolation_failed => (Value::Null, vec![], vec![]),
            Err(e) => {
                report_param_error(&e, &name, st, &raw, problems);
                (Value::Null, vec![], vec![])
            }
        };
        let root = st.seed.as_ref().map(|(s, _)| *s).unwrap_or(spec.seed);
        let axes_json: BTreeMap<String, Value> = combo.iter().map(|(a, v)| (a.clone(), v.to_json())).collect();
        let seed_axes: BTreeMap<String, Value> = match &st.seed_axes {
            Some((names, _)) => {
                axes_json.iter().filter(|(a, _)| names.contains(a)).map(|(a, v)| (a.clone(), v.clone())).collect()
            }
            None => axes_json.clone(),
        };
        let report = st
            .report
            .as_ref()
            .map(|(r, l)| interpolate(&Val { v: V::Str(r.clone()), loc: l.clone() }, &env, problems).display());
        check_names(st, &name, report.as_deref(), &outputs, problems);
        let resources = match &st.resources {
            Some(r) => resources(&interpolate(r, &env, problems), problems),
            None => Resources::default(),
        };
        let instance = Instance {
            name,
            stage_name: st.name.clone(),
            stage: kind,
            seed: derive_seed(root, &seed_axes),
            base_seed: derive_seed(root, &BTreeMap::new()),
            axes: axes_json,
            params,
            inputs: BTreeMap::new(),
            outputs,
            external,
            report,
            resources,
            loc: st.loc.clone(),
        };
        Made { instance, pending, problems: std::mem::take(problems) }
    }
}

/// `resources = { cpus, mem, time, gpus, partition }`, checked field by field.
fn resources(v: &Val, problems: &mut Vec<Problem>) -> Resources {
    let mut r = Resources::default();
    let V::Table(entries) = &v.v else { return r };
    let count = |k: &str, x: &Val, problems: &mut Vec<Problem>| -> Option<usize> {
        let n = match &x.v {
            V::Int(i) if *i >= 0 => Some(*i as usize),
            V::Str(s) => s.trim().parse::<usize>().ok(),
            _ => None,
        };
        if n.is_none() || (k == "cpus" && n == Some(0)) {
            problems.push(Problem::at(
                &x.loc,
                format!("`resources.{k}` must be a whole number{}", if k == "cpus" { " ≥ 1" } else { "" }),
                "not a count",
            ));
        }
        n
    };
    for (k, kl, x) in entries {
        match k.as_str() {
            "cpus" => r.cpus = count(k, x, problems),
            "gpus" => r.gpus = count(k, x, problems),
            "mem" | "time" | "partition" => {
                let text = match &x.v {
                    V::Str(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    V::Int(i) if k != "partition" => Some(i.to_string()),
                    _ => None,
                };
                let ok = match (k.as_str(), &text) {
                    ("mem", Some(t)) => valid_mem(t),
                    ("time", Some(t)) => slurm_time(t).is_some(),
                    (_, t) => t.is_some(),
                };
                if !ok {
                    let want = match k.as_str() {
                        "mem" => "a size such as \"4G\" or \"500M\"",
                        "time" => "a duration such as \"2h\", \"90m\", \"1:30:00\" or \"1-0\"",
                        _ => "a partition name",
                    };
                    problems.push(Problem::at(&x.loc, format!("`resources.{k}` must be {want}"), "bad value"));
                }
                match k.as_str() {
                    "mem" => r.mem = text,
                    "time" => r.time = text.and_then(|t| slurm_time(&t)),
                    _ => r.partition = text,
                }
            }
            other => problems.push(
                Problem::at(kl, format!("unknown resource `{other}`"), "unknown key")
                    .help("resources are cpus, mem, time, gpus and partition"),
            ),
        }
    }
    r
}

/// `4G`, `500M`, `1T`, `1024` (Slurm's default unit is MB).
fn valid_mem(t: &str) -> bool {
    let digits = t.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && t.len() - digits.len() <= 1
}

/// A wall-time limit in Slurm's syntax: `2h` → `2:00:00`, `90m` → `90`, `45s` → `0:45`; Slurm's
/// own forms (`30`, `1:30:00`, `1-0`, `1-12:00`) pass through.
pub fn slurm_time(t: &str) -> Option<String> {
    let t = t.trim();
    let num = |s: &str| s.parse::<u64>().ok();
    if let Some(h) = t.strip_suffix('h') {
        return num(h).map(|h| format!("{h}:00:00"));
    }
    if let Some(m) = t.strip_suffix('m') {
        return num(m).map(|m| m.to_string());
    }
    if let Some(s) = t.strip_suffix('s') {
        return num(s).map(|s| format!("{}:{:02}", s / 60, s % 60));
    }
    let ok =
        t.split(['-', ':']).all(|p| num(p).is_some()) && t.matches('-').count() <= 1 && t.matches(':').count() <= 2;
    ok.then(|| t.to_string())
}

/// Report and output names become file names: each must be a plain name (reported once per
/// stage, not once per instance).
fn check_names(st: &StageSpec, name: &str, report: Option<&str>, outputs: &[String], problems: &mut Vec<Problem>) {
    let mut push = |p: Problem| {
        if !problems.iter().any(|q| q.loc == p.loc && q.label == p.label) {
            problems.push(p);
        }
    };
    if let (Some(r), Some((_, l))) = (report, &st.report) {
        if let Err(why) = crate::names::check_file_name(r) {
            push(
                Problem::at(l, format!("report name `{}` {why}", r.escape_default()), "bad report name")
                    .help("a report is written to reports/<report>.<output>: name a file, not a path"),
            );
        }
    }
    for o in outputs {
        if let Err(why) = crate::names::check_file_name(o) {
            push(
                Problem::at(
                    &st.loc,
                    format!("stage `{name}` declares output `{}`, which {why}", o.escape_default()),
                    "bad output name",
                )
                .help("outputs become file names in the cache's work directory and in reports/"),
            );
        }
    }
}

/// The references written for one input slot; `None` when the value is not a reference.
fn slot_refs(
    k: &str,
    v: &Val,
    slot: &InputSlot,
    stage_names: &[&str],
    problems: &mut Vec<Problem>,
) -> Option<Vec<(Ref, Loc)>> {
    let items: Vec<Val> = match &v.v {
        V::Str(_) => vec![v.clone()],
        V::Arr(a) if slot.many => a.clone(),
        _ => {
            problems.push(Problem::at(
                &v.loc,
                format!("input `{k}` must be a reference string like \"qn\" or \"split.train\""),
                format!("found {}", v.v.type_name()),
            ));
            return None;
        }
    };
    let mut refs = Vec::new();
    for it in items {
        match it.as_str().map(parse_ref) {
            Some(Ok(r)) if !stage_names.contains(&r.stage.as_str()) => {
                let hint = closest(&r.stage, stage_names).map(|h| format!("did you mean `{h}`? ")).unwrap_or_default();
                problems.push(
                    Problem::at(&it.loc, format!("dangling reference: no stage `{}`", r.stage), "unknown stage")
                        .help(format!("{hint}stages: {}", stage_names.join(", "))),
                );
            }
            Some(Ok(r)) if r.all && !slot.many => problems.push(
                Problem::at(
                    &it.loc,
                    format!("input `{k}` takes one artifact, but `[*]` selects every instance"),
                    "many instances",
                )
                .help("use a selector like `stage[axis=value]`, or a shared axis"),
            ),
            Some(Ok(r)) => refs.push((r, it.loc.clone())),
            Some(Err(e)) => problems.push(Problem::at(&it.loc, format!("bad reference: {e}"), "cannot parse")),
            None => problems.push(Problem::at(&it.loc, "references must be strings", "not a string")),
        }
    }
    Some(refs)
}

/// A param the stage kind rejected, pointed at its key (unknown param) or its value.
fn report_param_error(e: &ParamError, name: &str, st: &StageSpec, raw: &RawParams, problems: &mut Vec<Problem>) {
    let top = e.param.split(['.', '[']).next().unwrap_or("").to_string();
    let (loc, label) = match raw.key_locs.get(&top) {
        Some((kl, _)) if e.message.starts_with("unknown param") => (kl.clone(), "unknown param".to_string()),
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
}
