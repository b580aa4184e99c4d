//! `subsample`: replicate `replicate` of `replicates`, each `n` rows without replacement.
//! Independent replicates (the LALR paper's six 20,000-row subsamples, which may overlap) draw
//! from their own stream; `disjoint = true` cuts consecutive blocks of one shared permutation.
//! Draws depend only on the pipeline seed and the replicate number, so a matrix over `rep`
//! with `replicate = "${rep}"` gives each instance its own, reproducible rows.

use crate::dataset::Dataset;
use crate::rng::{permutation, rng};
use repro_core::ParamError;
use repro_core::{stage_params, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};

stage_params! {
    /// Params of `subsample`.
    pub struct SubsampleParams {
        /// Rows per replicate (LALR paper: 20,000).
        n: usize = 1000,
        /// Which replicate this instance draws, 1-based (usually "${rep}" in a matrix).
        replicate: usize = 1,
        /// How many replicates exist (needed for disjoint draws).
        replicates: usize = 1,
        /// Replicates share no row (consecutive blocks of one permutation).
        disjoint: bool = false,
    }
}

pub struct Subsample;

pub fn draw(rows: usize, p: &SubsampleParams, seed: u64) -> StageResult<Vec<usize>> {
    if p.n > rows {
        return Err(StageError::param("n", format!("n = {} is larger than the input's {rows} rows", p.n)));
    }
    let mut idx = if p.disjoint {
        if p.n * p.replicates > rows {
            return Err(StageError::param(
                "n",
                format!(
                    "{} disjoint replicates of {} rows need {} rows; the input has {rows}",
                    p.replicates,
                    p.n,
                    p.n * p.replicates
                ),
            ));
        }
        let perm = permutation(&mut rng(seed, "subsample/disjoint"), rows);
        perm[(p.replicate - 1) * p.n..p.replicate * p.n].to_vec()
    } else {
        let mut perm = permutation(&mut rng(seed, &format!("subsample/{}", p.replicate)), rows);
        perm.truncate(p.n);
        perm
    };
    idx.sort_unstable();
    Ok(idx)
}

impl TypedStage for Subsample {
    type Params = SubsampleParams;
    const KIND: &'static str = "subsample";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Draw replicate r of k subsamples of n rows without replacement, independent (may overlap, as the LALR paper's six) or disjoint.";
    const INPUTS: &'static [InputSlot] = &[InputSlot::one("input", "dataset to subsample")];

    fn validate(p: &SubsampleParams) -> Result<(), ParamError> {
        if p.n == 0 {
            return Err(ParamError::new("n", "must be at least 1"));
        }
        if p.replicate == 0 || p.replicate > p.replicates.max(1) && p.disjoint {
            return Err(ParamError::new(
                "replicate",
                format!("replicate {} is out of 1..={}", p.replicate, p.replicates),
            ));
        }
        Ok(())
    }

    fn run(&self, p: &SubsampleParams, ctx: &Ctx) -> StageResult<Metrics> {
        let d = Dataset::read(&ctx.input("input")?.path)?;
        let idx = draw(d.rows(), p, ctx.base_seed)?;
        d.select_rows(&idx).write(&ctx.output("out"))?;
        Ok(Metrics::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_determinism_and_independence() {
        let p = |r| SubsampleParams { n: 200, replicate: r, replicates: 6, ..Default::default() };
        let a = draw(1000, &p(1), 5).unwrap();
        assert_eq!(a.len(), 200);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "without replacement");
        assert_eq!(a, draw(1000, &p(1), 5).unwrap());
        assert_ne!(a, draw(1000, &p(2), 5).unwrap());
    }

    #[test]
    fn disjoint_replicates_share_no_row() {
        let p = |r| SubsampleParams { n: 100, replicate: r, replicates: 5, disjoint: true };
        let mut all: Vec<usize> = (1..=5).flat_map(|r| draw(500, &p(r), 5).unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn n_larger_than_rows_names_the_param() {
        let e = draw(10, &SubsampleParams { n: 11, ..Default::default() }, 0).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("n"));
    }
}
