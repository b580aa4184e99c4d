//! Recomputing a cached instance outside the cache (`repro verify --recompute`): the stage
//! runs again on its stored inputs into a scratch directory, and each output is compared with
//! the object the run record names. Nothing in the cache is written.

use super::local::run_stage;
use super::{JobError, KeyState};
use crate::plan::Plan;
use crate::store::Store;
use serde_json::Value;
use std::path::Path;

/// How a recomputed output compares with the stored one.
#[derive(Debug, Clone, PartialEq)]
pub enum Agreement {
    /// The same bytes.
    Identical,
    /// Different bytes, the same structure, every number within the tolerance: the largest
    /// absolute difference.
    Within(f64),
    /// Different: why (the first number out of tolerance, or a structural difference).
    Different(String),
}

/// One output of a recomputed instance.
#[derive(Debug, Clone)]
pub struct OutputCheck {
    /// The output's name.
    pub output: String,
    /// The verdict.
    pub agreement: Agreement,
}

/// Where and how to recompute.
#[derive(Debug, Clone, Copy)]
pub struct Scratch<'a> {
    /// An existing empty directory outside the cache for the outputs.
    pub dir: &'a Path,
    /// Threads for the stage.
    pub threads: usize,
    /// Relative tolerance for numbers in text outputs (see [`agree`]).
    pub tolerance: f64,
}

/// Runs instance `i` again on the stored inputs its record was computed from, into the
/// scratch directory, and compares every output with the stored object. `states` are the keys
/// resolved from the cache (`Trust::Verified`).
pub fn recompute(
    plan: &Plan,
    store: &Store,
    root: &Path,
    states: &[KeyState],
    i: usize,
    scratch: Scratch,
) -> Result<Vec<OutputCheck>, JobError> {
    let (threads, tolerance) = (scratch.threads, scratch.tolerance);
    let scratch = scratch.dir;
    let inst = &plan.instances[i];
    let Some(rec) = &states[i].record else {
        return Err(JobError::Store(format!("`{}` has no cached result to check", inst.name)));
    };
    let job = super::cached_job(plan, store, root, states, i, threads, true)?;
    run_stage(&job, scratch)?;
    let mut checks = Vec::new();
    for (out, obj) in &rec.outputs {
        let fresh = std::fs::read(scratch.join(out)).map_err(|_| JobError::MissingOutput(out.clone()))?;
        let stored = std::fs::read(store.object_path(&obj.hash))
            .map_err(|e| JobError::Store(format!("cannot read the stored `{out}`: {e}")))?;
        checks.push(OutputCheck { output: out.clone(), agreement: agree(&stored, &fresh, tolerance) });
    }
    Ok(checks)
}

/// Byte equality first; else, for text (JSON, CSV, markdown), the same tokens with numbers
/// equal within `tolerance` relative to max(1, |a|, |b|). Binary outputs must be identical.
pub fn agree(stored: &[u8], fresh: &[u8], tolerance: f64) -> Agreement {
    if stored == fresh {
        return Agreement::Identical;
    }
    let (Ok(a), Ok(b)) = (std::str::from_utf8(stored), std::str::from_utf8(fresh)) else {
        return Agreement::Different(format!("binary output differs ({} vs {} bytes)", stored.len(), fresh.len()));
    };
    let tokens = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}' | ':' | '|' | '&' | '"'))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (ta, tb) = (tokens(a), tokens(b));
    if ta.len() != tb.len() {
        return Agreement::Different(format!("{} vs {} tokens", ta.len(), tb.len()));
    }
    let mut largest: f64 = 0.0;
    for (x, y) in ta.iter().zip(&tb) {
        if x == y {
            continue;
        }
        match (number(x), number(y)) {
            (Some(u), Some(v)) => {
                let d = (u - v).abs();
                if d.is_nan() || d > tolerance * 1f64.max(u.abs()).max(v.abs()) {
                    return Agreement::Different(format!("{x} became {y}"));
                }
                largest = largest.max(d);
            }
            _ => return Agreement::Different(format!("`{x}` became `{y}`")),
        }
    }
    Agreement::Within(largest)
}

fn number(t: &str) -> Option<f64> {
    let t = t.trim_end_matches(['%']);
    t.parse::<f64>().ok().or_else(|| serde_json::from_str::<Value>(t).ok()?.as_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_within_and_different() {
        assert_eq!(agree(b"{\"a\": 1.5}", b"{\"a\": 1.5}", 1e-9), Agreement::Identical);
        // |0.30000000000000004 − 0.3| = 5.55e-17 ≤ 1e-9 · 1.
        match agree(b"x,0.30000000000000004\n", b"x,0.3\n", 1e-9) {
            Agreement::Within(d) => assert!((d - 5.551115123125783e-17).abs() < 1e-30, "{d}"),
            o => panic!("{o:?}"),
        }
        // Relative to the magnitude: 1e6 vs 1e6 + 1e-4 is 1e-10 relative.
        assert!(matches!(agree(b"1000000", b"1000000.0001", 1e-9), Agreement::Within(_)));
        assert!(matches!(agree(b"0.41", b"0.42", 1e-9), Agreement::Different(m) if m == "0.41 became 0.42"));
        assert!(matches!(agree(b"held", b"not held", 1e-9), Agreement::Different(_)));
        assert!(matches!(agree(&[0, 159, 146], &[0, 159, 147], 1e-9), Agreement::Different(_)));
    }
}
