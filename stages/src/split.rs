//! `split`: rows into named parts. `method = "fractions"`: a seeded shuffle (or the input
//! order, `shuffle = false`, as D-GEX's positional GEO-tr/va/te split) cut at the cumulative
//! fractions, or at exact `sizes`. `method = "stratified_kfold"`: fold `fold` of `folds` as
//! `test` and the rest as `train`, each class dealt round-robin over the folds after a seeded
//! shuffle (LogGENE uses stratified 5-fold).

use crate::dataset::Dataset;
use crate::rng::{permutation, rng};
use repro_core::ParamError;
use repro_core::{stage_params, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMethod {
    Fractions,
    StratifiedKfold,
}

stage_params! {
    /// Params of `split`.
    pub struct SplitParams {
        /// "fractions" or "stratified_kfold".
        method: SplitMethod = SplitMethod::Fractions,
        /// Names of the parts, one output each (fractions method).
        names: Vec<String> = vec!["train".into(), "valid".into(), "test".into()],
        /// Fraction of rows per part; must sum to at most 1 (rows left over are dropped).
        fractions: Vec<f64> = vec![0.8, 0.1, 0.1],
        /// Exact row counts per part instead of fractions (e.g. [88807, 11101, 11101]); empty = use fractions.
        sizes: Vec<usize> = vec![],
        /// Shuffle rows with the stage's seed before cutting; false cuts in input order.
        shuffle: bool = true,
        /// Number of folds (stratified_kfold).
        folds: usize = 5,
        /// Which fold is the test part, 0-based (stratified_kfold).
        fold: usize = 0,
    }
}

pub struct Split;

/// Row indices of each part.
pub fn assign(n: usize, p: &SplitParams, labels: Option<&[i64]>, seed: u64) -> StageResult<Vec<Vec<usize>>> {
    let order: Vec<usize> = if p.shuffle { permutation(&mut rng(seed, "split"), n) } else { (0..n).collect() };
    match p.method {
        SplitMethod::Fractions => {
            let counts: Vec<usize> = if p.sizes.is_empty() {
                let mut cum = 0.0;
                let mut prev = 0usize;
                p.fractions
                    .iter()
                    .map(|f| {
                        cum += f;
                        let end = ((cum * n as f64).round() as usize).min(n);
                        let c = end - prev;
                        prev = end;
                        c
                    })
                    .collect()
            } else {
                let total: usize = p.sizes.iter().sum();
                if total > n {
                    return Err(StageError::param("sizes", format!("sizes sum to {total} but the input has {n} rows")));
                }
                p.sizes.clone()
            };
            let mut out = Vec::new();
            let mut at = 0;
            for c in counts {
                out.push(order[at..at + c].to_vec());
                at += c;
            }
            Ok(out)
        }
        SplitMethod::StratifiedKfold => {
            let labels =
                labels.ok_or_else(|| StageError::param("method", "stratified_kfold needs a dataset with labels"))?;
            let mut test = Vec::new();
            let mut train = Vec::new();
            let mut classes: Vec<i64> = labels.to_vec();
            classes.sort_unstable();
            classes.dedup();
            for c in classes {
                for (k, &i) in order.iter().filter(|&&i| labels[i] == c).enumerate() {
                    if k % p.folds == p.fold {
                        test.push(i);
                    } else {
                        train.push(i);
                    }
                }
            }
            train.sort_unstable();
            test.sort_unstable();
            Ok(vec![train, test])
        }
    }
}

impl TypedStage for Split {
    type Params = SplitParams;
    const KIND: &'static str = "split";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Split rows into named parts by fractions or sizes (seeded shuffle, or positional as D-GEX's GEO-tr/va/te), or take one fold of a stratified k-fold (outputs `train`, `test`).";
    const INPUTS: &'static [InputSlot] = &[InputSlot::one("input", "dataset to split")];

    fn validate(p: &SplitParams) -> Result<(), ParamError> {
        match p.method {
            SplitMethod::Fractions => {
                if p.names.is_empty() {
                    return Err(ParamError::new("names", "needs at least one part"));
                }
                let mut uniq = p.names.clone();
                uniq.sort();
                uniq.dedup();
                if uniq.len() != p.names.len() {
                    return Err(ParamError::new("names", "part names must be distinct"));
                }
                if p.sizes.is_empty() {
                    if p.fractions.len() != p.names.len() {
                        return Err(ParamError::new(
                            "fractions",
                            format!("{} fractions for {} names", p.fractions.len(), p.names.len()),
                        ));
                    }
                    if p.fractions.iter().any(|f| !(0.0..=1.0).contains(f)) {
                        return Err(ParamError::new("fractions", "each fraction must lie in [0, 1]"));
                    }
                    let s: f64 = p.fractions.iter().sum();
                    if s > 1.0 + 1e-9 {
                        return Err(ParamError::new("fractions", format!("fractions sum to {s}, over 1")));
                    }
                } else if p.sizes.len() != p.names.len() {
                    return Err(ParamError::new(
                        "sizes",
                        format!("{} sizes for {} names", p.sizes.len(), p.names.len()),
                    ));
                }
            }
            SplitMethod::StratifiedKfold => {
                if p.folds < 2 {
                    return Err(ParamError::new("folds", "needs at least 2 folds"));
                }
                if p.fold >= p.folds {
                    return Err(ParamError::new("fold", format!("fold {} is out of 0..{}", p.fold, p.folds)));
                }
            }
        }
        Ok(())
    }

    fn outputs(p: &SplitParams) -> Vec<String> {
        match p.method {
            SplitMethod::Fractions => p.names.clone(),
            SplitMethod::StratifiedKfold => vec!["train".into(), "test".into()],
        }
    }

    fn run(&self, p: &SplitParams, ctx: &Ctx) -> StageResult<Metrics> {
        let d = Dataset::read(&ctx.input("input")?.path)?;
        if d.is_absent() {
            // A dataset the user did not supply (an `optional` load): every part is empty too.
            for name in Self::outputs(p) {
                d.write(&ctx.output(&name))?;
            }
            return Ok(Metrics::new());
        }
        let parts = assign(d.rows(), p, d.labels.as_deref(), ctx.base_seed)?;
        let mut m = Metrics::new();
        for (name, idx) in Self::outputs(p).iter().zip(&parts) {
            d.write_rows(idx, &ctx.output(name))?;
            m.insert(format!("rows_{name}"), idx.len().into());
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dgex_sizes_cut_by_position() {
        let p = SplitParams { sizes: vec![6, 2, 2], shuffle: false, ..Default::default() };
        let parts = assign(10, &p, None, 0).unwrap();
        assert_eq!(parts, vec![vec![0, 1, 2, 3, 4, 5], vec![6, 7], vec![8, 9]]);
    }

    #[test]
    fn fractions_are_disjoint_and_cover() {
        for n in [1usize, 7, 100, 1001] {
            let parts = assign(n, &SplitParams::default(), None, 3).unwrap();
            let mut all: Vec<usize> = parts.concat();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
        let parts = assign(1000, &SplitParams::default(), None, 3).unwrap();
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![800, 100, 100]);
    }

    #[test]
    fn fractions_over_one_are_rejected() {
        let p = SplitParams { fractions: vec![0.8, 0.2, 0.1], ..Default::default() };
        assert_eq!(Split::validate(&p).unwrap_err().param, "fractions");
    }

    #[test]
    fn stratified_folds_keep_class_balance_and_partition() {
        let labels: Vec<i64> = (0..50).map(|i| i64::from(i % 5 == 0)).collect(); // 10 positives
        let mut tests = Vec::new();
        for fold in 0..5 {
            let p = SplitParams { method: SplitMethod::StratifiedKfold, fold, ..Default::default() };
            let parts = assign(50, &p, Some(&labels), 7).unwrap();
            assert_eq!(parts[1].iter().filter(|&&i| labels[i] == 1).count(), 2);
            assert_eq!(parts[0].len() + parts[1].len(), 50);
            tests.extend(parts[1].clone());
        }
        tests.sort_unstable();
        assert_eq!(tests, (0..50).collect::<Vec<_>>());
    }
}
