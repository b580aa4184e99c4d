//! `target_split`: the D-GEX "50:50 split" of target genes: the targets are permuted with the
//! stage's seed (D-GEX permuted them unseeded) and cut into `groups` equal parts, outputs
//! `g1` … `gK`, each a dataset with all rows and features and that part of the targets. In
//! D-GEX each half (4,760 of 9,520 targets) is trained as a separate network.

use crate::dataset::Dataset;
use crate::rng::{permutation, rng};
use repro_core::ParamError;
use repro_core::{stage_params, Ctx, InputSlot, Metrics, StageResult, TypedStage};

stage_params! {
    /// Params of `target_split`.
    pub struct TargetSplitParams {
        /// Number of equal groups (D-GEX: 2). Targets beyond a multiple of `groups` go to the last group.
        groups: usize = 2,
        /// Permute the targets with the seed first; false keeps the column order.
        shuffle: bool = true,
    }
}

pub struct TargetSplit;

pub fn groups(q: usize, p: &TargetSplitParams, seed: u64) -> Vec<Vec<usize>> {
    let order = if p.shuffle { permutation(&mut rng(seed, "targets"), q) } else { (0..q).collect() };
    let size = q / p.groups;
    (0..p.groups)
        .map(|g| {
            let end = if g + 1 == p.groups { q } else { (g + 1) * size };
            order[g * size..end].to_vec()
        })
        .collect()
}

impl TypedStage for TargetSplit {
    type Params = TargetSplitParams;
    const KIND: &'static str = "target_split";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Partition the target columns into equal groups after a seeded permutation (the D-GEX 50:50 split); outputs g1 … gK.";
    const INPUTS: &'static [InputSlot] = &[InputSlot::one("input", "dataset whose targets to split")];

    fn validate(p: &TargetSplitParams) -> Result<(), ParamError> {
        if p.groups == 0 {
            return Err(ParamError::new("groups", "must be at least 1"));
        }
        Ok(())
    }

    fn outputs(p: &TargetSplitParams) -> Vec<String> {
        (1..=p.groups).map(|g| format!("g{g}")).collect()
    }

    fn run(&self, p: &TargetSplitParams, ctx: &Ctx) -> StageResult<Metrics> {
        let d = Dataset::read(&ctx.input("input")?.path)?;
        if d.q() < p.groups {
            return Err(repro_core::StageError::param("groups", format!("{} groups for {} targets", p.groups, d.q())));
        }
        for (g, cols) in groups(d.q(), p, ctx.base_seed).iter().enumerate() {
            d.select_targets(cols).write(&ctx.output(&format!("g{}", g + 1)))?;
        }
        Ok(Metrics::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_partition_the_targets() {
        let g = groups(9520, &TargetSplitParams::default(), 4);
        assert_eq!(g[0].len(), 4760);
        assert_eq!(g[1].len(), 4760);
        let mut all = g.concat();
        all.sort_unstable();
        assert_eq!(all, (0..9520).collect::<Vec<_>>());
        assert_eq!(g, groups(9520, &TargetSplitParams::default(), 4));
    }
}
