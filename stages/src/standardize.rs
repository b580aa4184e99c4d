//! `standardize`: per-column z-score, D-GEX's `(x − mean) / (std + eps)` with eps = 1e-3 and
//! the population std, or min-max to [0, 1]. Statistics are fitted on every row of the input
//! (what D-GEX did, over train, validation and test together) or on the dataset bound to the
//! optional `fit` input (a training split: no leakage). The fitted statistics are the `stats`
//! output, so `evaluate` can map predictions back to the original scale.
//!
//! Column sums run over fixed row blocks combined in order: same bytes for any thread count.

use crate::dataset::Dataset;
use rayon::prelude::*;
use repro_core::ParamError;
use repro_core::{stage_params, write_json, Ctx, InputSlot, Metrics, StageResult, TypedStage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Zscore,
    MinMax,
}

stage_params! {
    /// Params of `standardize`.
    pub struct StandardizeParams {
        /// "zscore" ((x − mean)/(std + eps)) or "min_max" ((x − min)/(max − min + eps)).
        method: Method = Method::Zscore,
        /// Added to the denominator. D-GEX: 1e-3.
        eps: f64 = 1e-3,
        /// Standardize the features.
        features: bool = true,
        /// Standardize the targets.
        targets: bool = true,
    }
}

/// Per-column statistics: `(x − shift) / scale`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub shift: Vec<f64>,
    pub scale: Vec<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub method: String,
    pub features: ColumnStats,
    pub targets: ColumnStats,
}

pub struct Standardize;

const BLOCK: usize = 512;

/// Fits statistics of a row-major `rows × cols` matrix.
pub fn fit(m: &[f32], cols: usize, method: Method, eps: f64) -> ColumnStats {
    if cols == 0 {
        return ColumnStats::default();
    }
    let n = (m.len() / cols) as f64;
    match method {
        Method::Zscore => {
            let sums = |f: &(dyn Fn(usize, f32) -> f64 + Sync)| -> Vec<f64> {
                let parts: Vec<Vec<f64>> = m
                    .par_chunks(BLOCK * cols)
                    .map(|blk| {
                        let mut acc = vec![0f64; cols];
                        for row in blk.chunks(cols) {
                            for (j, v) in row.iter().enumerate() {
                                acc[j] += f(j, *v);
                            }
                        }
                        acc
                    })
                    .collect();
                let mut tot = vec![0f64; cols];
                for p in parts {
                    for (t, v) in tot.iter_mut().zip(p) {
                        *t += v;
                    }
                }
                tot
            };
            let mean: Vec<f64> = sums(&|_, v| f64::from(v)).into_iter().map(|s| s / n).collect();
            let var: Vec<f64> = sums(&|j, v| (f64::from(v) - mean[j]).powi(2)).into_iter().map(|s| s / n).collect();
            ColumnStats { scale: var.iter().map(|v| v.sqrt() + eps).collect(), shift: mean }
        }
        Method::MinMax => {
            let mut lo = vec![f64::INFINITY; cols];
            let mut hi = vec![f64::NEG_INFINITY; cols];
            for row in m.chunks(cols) {
                for (j, v) in row.iter().enumerate() {
                    lo[j] = lo[j].min(f64::from(*v));
                    hi[j] = hi[j].max(f64::from(*v));
                }
            }
            ColumnStats { scale: lo.iter().zip(&hi).map(|(l, h)| h - l + eps).collect(), shift: lo }
        }
    }
}

pub fn apply(m: &mut [f32], s: &ColumnStats) {
    let cols = s.shift.len();
    if cols == 0 {
        return;
    }
    m.par_chunks_mut(cols).for_each(|row| {
        for (j, v) in row.iter_mut().enumerate() {
            *v = ((f64::from(*v) - s.shift[j]) / s.scale[j]) as f32;
        }
    });
}

impl TypedStage for Standardize {
    type Params = StandardizeParams;
    const KIND: &'static str = "standardize";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Standardize columns (z-score as D-GEX: (x − mean)/(std + 1e-3), or min-max), with statistics fitted on the input itself or on the `fit` dataset (e.g. a training split); writes the dataset (`out`) and the statistics (`stats`, JSON).";
    const USES_SEED: bool = false;
    const INPUTS: &'static [InputSlot] = &[
        InputSlot::one("input", "dataset to transform"),
        InputSlot::optional("fit", "dataset to fit the statistics on (default: the input)"),
    ];

    fn validate(p: &StandardizeParams) -> Result<(), ParamError> {
        if p.eps.is_nan() || p.eps < 0.0 {
            return Err(ParamError::new("eps", "must be ≥ 0"));
        }
        Ok(())
    }

    fn outputs(_p: &StandardizeParams) -> Vec<String> {
        vec!["out".into(), "stats".into()]
    }

    fn threads(_p: &StandardizeParams) -> usize {
        usize::MAX
    }

    fn run(&self, p: &StandardizeParams, ctx: &Ctx) -> StageResult<Metrics> {
        ctx.report(0, 0, "reading");
        let mut d = Dataset::read(&ctx.input("input")?.path)?;
        ctx.report(0, 0, format!("standardizing {} rows", d.rows()));
        if d.is_absent() {
            d.write(&ctx.output("out"))?;
            write_json(&ctx.output("stats"), &serde_json::json!({}))?;
            return Ok(Metrics::new());
        }
        d.validate("input")?;
        let fit_on = match ctx.optional_input("fit") {
            Some(f) => {
                let f = Dataset::read(&f.path)?;
                if f.features != d.features || f.targets != d.targets {
                    return Err(repro_core::StageError::param(
                        "fit",
                        "the `fit` dataset has different columns from the input",
                    ));
                }
                Some(f)
            }
            None => None,
        };
        // Each of the passes below is linear in the data: cancellation is seen between them.
        ctx.check_cancel()?;
        let src = fit_on.as_ref().unwrap_or(&d);
        let fs = if p.features { fit(&src.x, src.p(), p.method, p.eps) } else { ColumnStats::default() };
        let ts = if p.targets { fit(&src.y, src.q(), p.method, p.eps) } else { ColumnStats::default() };
        ctx.check_cancel()?;
        apply(&mut d.x, &fs);
        apply(&mut d.y, &ts);
        ctx.check_cancel()?;
        d.write(&ctx.output("out"))?;
        let method = match p.method {
            Method::Zscore => "zscore",
            Method::MinMax => "min_max",
        };
        write_json(&ctx.output("stats"), &Stats { method: method.into(), features: fs, targets: ts })?;
        Ok(Metrics::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // numpy: x = np.array([[1., 10.], [2., 20.], [4., 40.]])
    //        ((x - x.mean(0)) / (x.std(0) + 1e-3)).round(5)
    //   -> [[-1.06819, -1.06896], [-0.26705, -0.26724], [1.33524, 1.3362]]
    #[test]
    fn zscore_matches_numpy() {
        let mut m = vec![1., 10., 2., 20., 4., 40.];
        let s = fit(&m, 2, Method::Zscore, 1e-3);
        apply(&mut m, &s);
        let want = [-1.06819, -1.06896, -0.26705, -0.26724, 1.33524, 1.3362];
        for (g, w) in m.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{m:?}");
        }
    }

    #[test]
    fn min_max_maps_to_unit_interval() {
        let mut m = vec![1., 10., 3., 30.];
        let s = fit(&m, 2, Method::MinMax, 0.0);
        apply(&mut m, &s);
        assert_eq!(m, vec![0., 0., 1., 1.]);
    }
}
