//! Planning: a [`Spec`] becomes a DAG of stage *instances*, in named passes, each a module
//! with its own tests:
//!
//! 1. [`interpolate`]: vars are resolved against each other (`${name}`, nested names);
//! 2. [`refs`]: input references are parsed and the stage graph checked for cycles;
//! 3. [`expand`]: matrices are expanded into instances (axis values act as vars inside their
//!    instance), params validated and made canonical by the stage kind, seeds derived;
//! 4. [`bind`]: references are bound to instances and outputs;
//! 5. [`order`]: the instance graph and a dependency order.
//!
//! Every problem is collected with its location and reported together. The result, [`Plan`],
//! answers graph questions ([`Plan::producers`], [`Plan::consumers`], [`Plan::upstream`],
//! [`Plan::select`]) so no command walks `inputs` by hand.

mod bind;
mod expand;
mod interpolate;
mod order;
mod refs;

use crate::diag::{Error, Loc, Problem, Result};
use crate::spec::Spec;
use repro_core::{closest, Registry, Stage};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A reference to one output of one instance.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The producing instance (an index into [`Plan::instances`]).
    pub instance: usize,
    /// The output of it.
    pub output: String,
}

/// One stage instance: a stage of the pipeline file at one combination of its matrix axes.
#[derive(Clone)]
pub struct Instance {
    /// `stage[axis=value,…]`, or the stage's name when it has no matrix.
    pub name: String,
    /// The name of its stage in the pipeline file.
    pub stage_name: String,
    /// Its stage kind.
    pub stage: &'static dyn Stage,
    /// Matrix axis → value.
    pub axes: BTreeMap<String, Value>,
    /// Canonical params (every default filled in).
    pub params: Value,
    /// Slot name → bound outputs, in a stable order.
    pub inputs: BTreeMap<String, Vec<Binding>>,
    /// The files it writes.
    pub outputs: Vec<String>,
    /// Files outside the store it reads (hashed into its key).
    pub external: Vec<String>,
    /// Its seed: from the pipeline (or stage) seed and the values of its seed axes.
    pub seed: u64,
    /// The seed from the pipeline (or stage) seed alone.
    pub base_seed: u64,
    /// The report name its outputs are published under, if any.
    pub report: Option<String>,
    /// What it asks of the machine or cluster (never part of its key).
    pub resources: Resources,
    /// Where its stage is defined.
    pub loc: Loc,
}

/// Where `path` was written inside a param value: the string itself, or a `"${var}"` whose
/// var holds it (the var's name and place), searching lists and tables.
fn written_at(
    v: &crate::spec::Val,
    path: &str,
    vars: &BTreeMap<String, crate::spec::Val>,
) -> Option<(Option<String>, crate::diag::Loc)> {
    use crate::spec::V;
    match &v.v {
        V::Str(s) if s == path => Some((None, v.loc.clone())),
        V::Str(s) => {
            let var = s.strip_prefix("${")?.strip_suffix('}')?;
            let x = vars.get(var)?;
            matches!(&x.v, V::Str(t) if t == path).then(|| (Some(var.to_string()), x.loc.clone()))
        }
        V::Arr(a) => a.iter().find_map(|x| written_at(x, path, vars)),
        V::Table(t) => t.iter().find_map(|(_, _, x)| written_at(x, path, vars)),
        _ => None,
    }
}

/// `resources = { … }` of a stage, after vars: the local executor gives `cpus` threads, the
/// Slurm executor asks for all of them. Unset fields take the executor's defaults.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Resources {
    /// CPUs (threads) per instance; default: what the stage kind can use.
    pub cpus: Option<usize>,
    /// Memory, in Slurm's syntax (`4G`, `500M`).
    pub mem: Option<String>,
    /// Wall-time limit, in Slurm's syntax (`2:00:00`, `30`, `1-0`) or `2h`, `90m`.
    pub time: Option<String>,
    /// GPUs per instance.
    pub gpus: Option<usize>,
    /// Slurm partition.
    pub partition: Option<String>,
}

/// A planned pipeline: instances, their graph and a dependency order.
pub struct Plan {
    /// The spec it was planned from.
    pub spec: Spec,
    /// Every instance.
    pub instances: Vec<Instance>,
    /// Instances in a dependency order.
    pub order: Vec<usize>,
    producers: Vec<Vec<usize>>,
    consumers: Vec<Vec<usize>>,
}

/// Plans a spec with the stage kinds of `registry`.
pub fn plan(mut spec: Spec, registry: Registry) -> Result<Plan> {
    let mut problems = Vec::new();
    interpolate::resolve_vars(&mut spec.vars, &mut problems);
    refs::check_cycles(&spec.stages, registry, &mut problems);
    let expand::Expanded { mut instances, pending, by_stage } = expand::expand(&spec, registry, &mut problems);
    bind::bind(&mut instances, pending, &by_stage, &mut problems);
    if !problems.is_empty() {
        // A matrix stage repeats a problem per instance: the same message at the same place
        // is reported once.
        let mut seen = BTreeSet::new();
        problems
            .retain(|p| seen.insert((p.message.clone(), p.loc.as_ref().map(|l| (l.file, l.span.start, l.span.end)))));
        return Err(Error::Invalid(problems, spec.sources));
    }
    let (producers, consumers) = order::edges(&instances);
    match order::topological(&producers, &consumers) {
        Ok(order) => Ok(Plan { spec, instances, order, producers, consumers }),
        Err(stuck) => Err(Error::Invalid(
            vec![Problem::at(&instances[stuck].loc, "dependency cycle", "in a cycle")],
            spec.sources,
        )),
    }
}

/// The seed of an instance: blake3 over the root seed and the canonical JSON of its axes.
pub fn derive_seed(root: u64, axes: &BTreeMap<String, Value>) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"repro-seed-v1\0");
    h.update(&root.to_le_bytes());
    h.update(crate::key::canonical_json(&Value::Object(axes.clone().into_iter().collect())).as_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap())
}

impl Plan {
    /// The distinct instances `i` reads from, ascending.
    pub fn producers(&self, i: usize) -> &[usize] {
        &self.producers[i]
    }

    /// The distinct instances that read from `i`, ascending.
    pub fn consumers(&self, i: usize) -> &[usize] {
        &self.consumers[i]
    }

    /// Every instance `i` depends on, directly or not, nearest first (breadth-first over its
    /// slots in order).
    pub fn upstream(&self, i: usize) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        let mut queue = VecDeque::from([i]);
        while let Some(c) = queue.pop_front() {
            for b in self.instances[c].inputs.values().flatten() {
                if seen.insert(b.instance) {
                    order.push(b.instance);
                    queue.push_back(b.instance);
                }
            }
        }
        order
    }

    /// Instances named `what`, by instance name or stage name.
    pub fn find(&self, what: &str) -> Vec<usize> {
        (0..self.instances.len())
            .filter(|&i| self.instances[i].name == what || self.instances[i].stage_name == what)
            .collect()
    }

    /// Whether instance `i` is named by any of `names` (instance or stage names).
    pub fn named(&self, i: usize, names: &[String]) -> bool {
        names.iter().any(|f| *f == self.instances[i].name || *f == self.instances[i].stage_name)
    }

    /// Instances selected by `--target` (names or stage names) plus everything upstream; all
    /// of them when `targets` is empty.
    pub fn select(&self, targets: &[String]) -> Result<Vec<bool>> {
        let n = self.instances.len();
        if targets.is_empty() {
            return Ok(vec![true; n]);
        }
        let mut sel = vec![false; n];
        let mut stack = Vec::new();
        for t in targets {
            let hits = self.find(t);
            if hits.is_empty() {
                return Err(self.unknown(t, ""));
            }
            stack.extend(hits);
        }
        while let Some(i) = stack.pop() {
            if !sel[i] {
                sel[i] = true;
                stack.extend(self.instances[i].inputs.values().flatten().map(|b| b.instance));
            }
        }
        Ok(sel)
    }

    /// Files outside the store that selected instances read and that do not exist, each once,
    /// at the place in the pipeline (or the `--set`) that named it, with how many instances
    /// downstream would not run: found before anything runs.
    pub fn missing_files(&self, root: &std::path::Path, selected: &[bool]) -> Vec<crate::diag::Problem> {
        use crate::diag::Problem;
        let mut seen: Vec<String> = Vec::new();
        let mut problems = Vec::new();
        for (i, inst) in self.instances.iter().enumerate().filter(|(i, _)| selected[*i]) {
            for p in &inst.external {
                let path = if std::path::Path::new(p).is_absolute() { p.into() } else { root.join(p) };
                if path.exists() || seen.contains(p) {
                    continue;
                }
                seen.push(p.clone());
                let st = self.spec.stages.iter().find(|s| s.name == inst.stage_name);
                // Where the path was written: the param itself, else the var it came from.
                let place = st.and_then(|st| {
                    st.entries.iter().find_map(|(k, _, v)| {
                        let (var, loc) = written_at(v, p, &self.spec.vars)?;
                        Some((var.map(|var| format!("{k}` via var `{var}")).unwrap_or_else(|| k.clone()), loc))
                    })
                });
                let downstream = (0..self.instances.len()).filter(|&j| j != i && self.upstream(j).contains(&i)).count();
                let msg = format!("file `{p}` does not exist (read by stage `{}`)", inst.stage_name);
                let help = format!(
                    "paths are relative to the project root {}; {downstream} instance(s) downstream need it",
                    root.display()
                );
                problems.push(match place {
                    Some((param, loc)) => Problem::at(&loc, msg, format!("param `{param}`: no such file")).help(help),
                    None => Problem::at(&inst.loc, msg, "this stage reads it").help(help),
                });
            }
        }
        problems
    }

    /// The usage error for a name that matches no stage or instance, with a suggestion.
    pub fn unknown(&self, what: &str, context: &str) -> Error {
        let names: Vec<&str> = self.spec.stages.iter().map(|s| s.name.as_str()).collect();
        let hint = closest(what, &names).map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default();
        Error::Usage(format!("{context}no stage or instance `{what}` in {}{hint}", self.spec.path.display()))
    }
}
