//! Pass 4, binding: each reference of each instance is bound to instances of the stage it
//! names — by shared axis names (`train[rep=2]` takes `sub[rep=2]`), by explicit selectors
//! (`sub[rep=1]`), or to every matching instance (`eval[*]`) — and to one of their outputs.

use super::expand::Pending;
use super::refs::Ref;
use super::{Binding, Instance};
use crate::diag::{Loc, Problem};
use serde_json::Value;
use std::collections::BTreeMap;

/// Binds every pending reference, reporting what cannot be bound.
pub(super) fn bind(
    instances: &mut [Instance],
    pending: Vec<Pending>,
    by_stage: &BTreeMap<String, Vec<usize>>,
    problems: &mut Vec<Problem>,
) {
    for p in pending {
        let mut bound = Vec::new();
        for (r, rl) in &p.refs {
            let Some(cands) = by_stage.get(&r.stage) else { continue };
            let Some(matching) = matching(instances, &instances[p.inst], cands, r, rl, problems) else { continue };
            for c in matching {
                // An upstream instance whose params were invalid (already reported) has no
                // outputs to check: naming them here would only repeat that problem.
                if instances[c].params.is_null() {
                    break;
                }
                match output_of(&instances[c].outputs, r, rl, problems) {
                    Some(output) => bound.push(Binding { instance: c, output }),
                    None => break,
                }
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
}

/// The instances of the referenced stage that `me` binds to; `None` after reporting a bad
/// selector, no match, or an ambiguous match.
fn matching(
    instances: &[Instance],
    me: &Instance,
    cands: &[usize],
    r: &Ref,
    rl: &Loc,
    problems: &mut Vec<Problem>,
) -> Option<Vec<usize>> {
    let target_axes: Vec<String> = instances[cands[0]].axes.keys().cloned().collect();
    let mut bad_selector = false;
    for (a, _) in &r.selectors {
        if !target_axes.contains(a) {
            bad_selector = true;
            problems.push(
                Problem::at(rl, format!("stage `{}` has no matrix axis `{a}`", r.stage), "bad selector").help(format!(
                    "axes of `{}`: {}",
                    r.stage,
                    if target_axes.is_empty() { "none".into() } else { target_axes.join(", ") }
                )),
            );
        }
    }
    let matching: Vec<usize> = cands
        .iter()
        .copied()
        .filter(|&c| {
            let ax = &instances[c].axes;
            let sel_ok = r.selectors.iter().all(|(a, v)| ax.get(a).is_some_and(|x| json_display(x) == *v));
            let shared_ok = ax
                .iter()
                .all(|(a, x)| me.axes.get(a).is_none_or(|mine| mine == x) || r.selectors.iter().any(|(s, _)| s == a));
            sel_ok && shared_ok
        })
        .collect();
    let unbound: Vec<&String> =
        target_axes.iter().filter(|a| !me.axes.contains_key(*a) && !r.selectors.iter().any(|(s, _)| s == *a)).collect();
    if bad_selector {
        return None;
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
        return None;
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
            .help(format!(
                "axis {} of `{}` is not bound by `{}`: add a selector like `{}[{}=…]`, or take all with `{}[*]`",
                names.join(", "),
                r.stage,
                me.stage_name,
                r.stage,
                names.first().copied().unwrap_or("axis"),
                r.stage
            )),
        );
        return None;
    }
    Some(matching)
}

/// The output a reference names (or the only / `out` output when it names none); `None`
/// after reporting an unknown or missing output name.
fn output_of(outs: &[String], r: &Ref, rl: &Loc, problems: &mut Vec<Problem>) -> Option<String> {
    match &r.output {
        Some(o) if outs.contains(o) => Some(o.clone()),
        Some(o) => {
            problems.push(
                Problem::at(rl, format!("stage `{}` has no output `{o}`", r.stage), "unknown output").help(format!(
                    "outputs of `{}`: {}",
                    r.stage,
                    outs.join(", ")
                )),
            );
            None
        }
        None if outs.len() == 1 => Some(outs[0].clone()),
        None if outs.iter().any(|o| o == "out") => Some("out".into()),
        None => {
            if !outs.is_empty() {
                problems.push(
                    Problem::at(rl, format!("stage `{}` has several outputs: name one", r.stage), "which output?")
                        .help(format!("e.g. `{}.{}`; outputs: {}", r.stage, outs[0], outs.join(", "))),
                );
            }
            None
        }
    }
}

fn json_display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
