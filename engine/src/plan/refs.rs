//! Pass 2, references: the syntax of an input reference (`stage`, `stage.output`, `stage[*]`,
//! `stage[axis=value,...].output`) and the stage-level cycle check, which can print the
//! cycle's path before any instance exists.

use crate::diag::{Loc, Problem};
use crate::spec::{StageSpec, Val, V};
use petgraph::graph::{DiGraph, NodeIndex};
use repro_core::{lookup, Registry};

/// A parsed reference: `stage`, `stage.output`, `stage[*]`, `stage[axis=value,...].output`.
#[derive(Debug, Clone)]
pub(super) struct Ref {
    pub(super) stage: String,
    pub(super) all: bool,
    pub(super) selectors: Vec<(String, String)>,
    pub(super) output: Option<String>,
}

pub(super) fn parse_ref(s: &str) -> std::result::Result<Ref, String> {
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

/// Stage-level cycle check, so the message can print the cycle's path.
pub(super) fn check_cycles(stages: &[StageSpec], registry: Registry, problems: &mut Vec<Problem>) {
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    let mut g: DiGraph<usize, Loc> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..stages.len()).map(|i| g.add_node(i)).collect();
    for (i, st) in stages.iter().enumerate() {
        let slots: Vec<&str> =
            lookup(registry, &st.kind).map(|k| k.inputs().iter().map(|s| s.name).collect()).unwrap_or_default();
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
}
