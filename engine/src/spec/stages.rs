//! `[stage.NAME]` tables become [`StageSpec`]s: the keys the engine reads itself (`kind`,
//! `matrix`, `report`, `resources`, `seed`, `seed_axes`) are taken out, every other key (inputs and params)
//! is kept with its location for planning.

use super::files::Loader;
use super::{StageSpec, Val, V};
use crate::diag::{Loc, Problem};
use std::collections::BTreeMap;

/// The stages of all files, in the order they were read; duplicates are reported.
pub(super) fn stage_specs(ld: &mut Loader, raw_stages: Vec<(String, Loc, Val)>) -> Vec<StageSpec> {
    let mut stages = Vec::new();
    let mut seen: BTreeMap<String, Loc> = BTreeMap::new();
    for (sname, sl, sv) in raw_stages {
        if let Some(prev) = seen.get(&sname) {
            let p = Problem::at(&sl, format!("duplicate stage `{sname}`"), "defined again here");
            let f = &ld.sources.0[prev.file].name;
            ld.problems.push(p.help(format!("first defined in {f}; stage names must be unique across included files")));
            continue;
        }
        seen.insert(sname.clone(), sl.clone());
        if let Err(why) = crate::names::check_stage_name(&sname) {
            ld.problems.push(
                Problem::at(&sl, format!("stage name `{}` {why}", sname.escape_default()), "bad stage name").help(
                    "stage names become instance names and work-directory names: use letters, digits, `_` and `-`",
                ),
            );
            continue;
        }
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
            resources: None,
            entries: vec![],
        };
        for (k, kl, v) in entries {
            stage_key(&mut st, k, kl, v, &mut ld.problems);
        }
        if st.kind.is_empty() {
            ld.problems.push(
                Problem::at(&sl, format!("stage `{sname}` has no `kind`"), "missing kind")
                    .help("add e.g. kind = \"train\"; `repro stages` lists the kinds"),
            );
        }
        stages.push(st);
    }
    stages
}

/// One key of a stage table: the engine's own keys are taken out, the rest kept as entries.
fn stage_key(st: &mut StageSpec, k: String, kl: Loc, v: Val, problems: &mut Vec<Problem>) {
    match k.as_str() {
        "kind" => match &v.v {
            V::Str(s) => {
                st.kind = s.clone();
                st.kind_loc = v.loc.clone();
            }
            _ => problems.push(Problem::at(&v.loc, "`kind` must be a string", "not a string")),
        },
        "matrix" => match v.v {
            V::Table(t) => st.matrix = t.into_iter().map(|(a, al, vals)| (a, vals, al)).collect(),
            _ => problems.push(Problem::at(&v.loc, "`matrix` must be a table of axis = [values]", "not a table")),
        },
        "report" => match &v.v {
            V::Str(s) => st.report = Some((s.clone(), v.loc.clone())),
            _ => problems.push(Problem::at(&v.loc, "`report` must be a file name stem", "not a string")),
        },
        "seed_axes" => match &v.v {
            V::Arr(a) if a.iter().all(|x| x.as_str().is_some()) => {
                st.seed_axes = Some((a.iter().map(|x| x.as_str().unwrap().to_string()).collect(), v.loc.clone()))
            }
            _ => {
                problems.push(Problem::at(&v.loc, "`seed_axes` must be a list of axis names", "not a list of strings"))
            }
        },
        "resources" => match &v.v {
            V::Table(_) => st.resources = Some(v),
            _ => problems.push(
                Problem::at(&v.loc, "`resources` must be a table", "not a table")
                    .help("e.g. resources = { cpus = 2, mem = \"4G\", time = \"2h\", gpus = 0, partition = \"gpu\" }"),
            ),
        },
        "seed" => match &v.v {
            V::Int(i) if *i >= 0 => st.seed = Some((*i as u64, v.loc.clone())),
            _ => problems.push(Problem::at(&v.loc, "`seed` must be a non-negative integer", "not a seed")),
        },
        _ => st.entries.push((k, kl, v)),
    }
}
