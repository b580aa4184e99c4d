//! `standardize`: per-column z-score, D-GEX's `(x − mean) / (std + eps)` with eps = 1e-3 and
//! the population std, or min-max to [0, 1] (the lecture's two scalings), or ZCA whitening of the
//! features (the lecture's third: decorrelated, unit variance). Statistics are fitted on every row of the input
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
    /// One scale for every column: x / (max |x| over the whole fit matrix + eps), no shift;
    /// keeps zeros at zero and the columns' relative sizes (pixels: what torchvision's
    /// `ToTensor` does with /255, here /16 for Digits).
    MaxAbs,
    /// ZCA whitening of the features: x' = (x − μ) W with W = U diag(1/√(λ + eps)) Uᵀ, where
    /// U diag(λ) Uᵀ is the sample covariance Σ = X_cᵀ X_c / (n − 1) of the centred fit data.
    /// The lecture prints W = (1/√(n−1)) (X′Xᵀ)^(−1/2) (dnn_lecture.md:780–782, samples as
    /// columns); read as Σ^(−1/2), the standard ZCA, which makes the covariance the identity.
    Zca,
}

stage_params! {
    /// Params of `standardize`.
    pub struct StandardizeParams {
        /// "zscore" ((x − mean)/(std + eps)), "min_max" ((x − min)/(max − min + eps)), "max_abs" (x / (max |x| over all columns + eps)) or "zca"
        /// (whiten the features: (x − mean) Σ^(−1/2), eps added to Σ's eigenvalues; features
        /// only, so it needs targets = false).
        method: Method = Method::Zscore,
        /// Added to the denominator (to the covariance's eigenvalues for zca). D-GEX: 1e-3.
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
    /// zca: the whitening matrix W (features × features, row-major); features are
    /// `(x − shift) W`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub whitening: Vec<f64>,
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
        Method::Zca => unreachable!("zca is fitted by `fit_zca`"),
        Method::MaxAbs => {
            let top = m.iter().fold(0f64, |a, v| a.max(f64::from(v.abs())));
            ColumnStats { scale: vec![top + eps; cols], shift: vec![0.0; cols] }
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

/// ZCA: the column means and W = U diag(1/√(λ + eps)) Uᵀ of the sample covariance (n − 1),
/// by cyclic Jacobi rotations (symmetric, small: one row per feature).
pub fn fit_zca(m: &[f32], cols: usize, eps: f64) -> StageResult<(Vec<f64>, Vec<f64>)> {
    let n = m.len() / cols.max(1);
    if n < 2 {
        return Err(repro_core::StageError::param("method", "zca needs at least 2 rows to estimate a covariance"));
    }
    let mean = fit(m, cols, Method::Zscore, 0.0).shift;
    let mut c = vec![0f64; cols * cols];
    for row in m.chunks(cols) {
        let d: Vec<f64> = row.iter().zip(&mean).map(|(v, mu)| f64::from(*v) - mu).collect();
        for a in 0..cols {
            for b in a..cols {
                c[a * cols + b] += d[a] * d[b];
            }
        }
    }
    for a in 0..cols {
        for b in a..cols {
            c[a * cols + b] /= (n - 1) as f64;
            c[b * cols + a] = c[a * cols + b];
        }
    }
    let (lambda, u) = jacobi_eigen(c, cols);
    // An eigenvalue at round-off level of the largest is a zero: a constant or collinear column.
    let top = lambda.iter().fold(0f64, |m, l| m.max(l.abs()));
    if let Some(l) = lambda.iter().find(|l| **l + eps <= 1e-12 * top) {
        return Err(repro_core::StageError::param(
            "eps",
            format!("the covariance has an eigenvalue {l:.3e}: with eps = {eps} it cannot be inverted (raise eps)"),
        ));
    }
    let mut w = vec![0f64; cols * cols];
    for a in 0..cols {
        for b in 0..cols {
            w[a * cols + b] = (0..cols).map(|k| u[a * cols + k] * u[b * cols + k] / (lambda[k] + eps).sqrt()).sum();
        }
    }
    Ok((mean, w))
}

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of a symmetric
/// matrix, by cyclic Jacobi rotations until the off-diagonal mass is negligible.
fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |j| *j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off <= 1e-30 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// Whitens a row-major `rows × cols` matrix in place: each row becomes (x − mean) W.
pub fn apply_zca(m: &mut [f32], mean: &[f64], w: &[f64]) {
    let cols = mean.len();
    m.par_chunks_mut(cols).for_each(|row| {
        let d: Vec<f64> = row.iter().zip(mean).map(|(v, mu)| f64::from(*v) - mu).collect();
        for (j, out) in row.iter_mut().enumerate() {
            *out = (0..cols).map(|k| d[k] * w[k * cols + j]).sum::<f64>() as f32;
        }
    });
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
        if p.method == Method::Zca && p.targets {
            return Err(ParamError::new(
                "targets",
                "zca whitens the features only (predictions could not be mapped back): set targets = false",
            ));
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
        if p.method == Method::Zca {
            let (mean, w) = if p.features { fit_zca(&src.x, src.p(), p.eps)? } else { (vec![], vec![]) };
            ctx.check_cancel()?;
            if p.features {
                apply_zca(&mut d.x, &mean, &w);
            }
            d.write(&ctx.output("out"))?;
            let fs = ColumnStats { shift: mean, scale: vec![] };
            let stats = Stats { method: "zca".into(), features: fs, targets: ColumnStats::default(), whitening: w };
            write_json(&ctx.output("stats"), &stats)?;
            return Ok(Metrics::new());
        }
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
            Method::MaxAbs => "max_abs",
            Method::Zca => unreachable!(),
        };
        write_json(
            &ctx.output("stats"),
            &Stats { method: method.into(), features: fs, targets: ts, whitening: vec![] },
        )?;
        Ok(Metrics::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy 2.x:
    /// X = np.array([[1., 2.], [2., 1.], [3., 5.], [4., 3.]]); Xc = X - X.mean(0)
    /// C = Xc.T @ Xc / 3; l, U = np.linalg.eigh(C); W = U @ np.diag(1 / np.sqrt(l + eps)) @ U.T
    /// eps = 0: W = [[0.88691595, -0.2161329], [-0.2161329, 0.65534498]], Xc @ W has covariance I;
    /// eps = 0.1: W = [[0.84915469, -0.19779058], [-0.19779058, 0.63723621]].
    #[test]
    fn zca_matches_numpy_and_whitens() {
        let m: Vec<f32> = vec![1., 2., 2., 1., 3., 5., 4., 3.];
        let (mean, w) = fit_zca(&m, 2, 0.0).unwrap();
        assert_eq!(mean, vec![2.5, 2.75]);
        for (a, b) in w.iter().zip([0.88691595, -0.2161329, -0.2161329, 0.65534498]) {
            assert!((a - b).abs() < 1e-7, "{w:?}");
        }
        let mut z = m.clone();
        apply_zca(&mut z, &mean, &w);
        // numpy: Xc @ W, first row [-1.16827425, -0.16730938]
        assert!((z[0] - -1.168_274_3).abs() < 1e-5 && (z[1] - -0.167_309_38).abs() < 1e-5, "{z:?}");
        for (a, b) in [(0, 0), (0, 1), (1, 1)] {
            let cov: f64 = z.chunks(2).map(|r| f64::from(r[a]) * f64::from(r[b])).sum::<f64>() / 3.0;
            assert!((cov - if a == b { 1.0 } else { 0.0 }).abs() < 1e-5, "cov[{a}][{b}] = {cov}");
        }
        let (_, w) = fit_zca(&m, 2, 0.1).unwrap();
        for (a, b) in w.iter().zip([0.84915469, -0.19779058, -0.19779058, 0.63723621]) {
            assert!((a - b).abs() < 1e-7, "{w:?}");
        }
        // A constant column has a zero eigenvalue: eps = 0 cannot invert it.
        let flat: Vec<f32> = vec![1., 7., 2., 7., 3., 7.];
        assert!(fit_zca(&flat, 2, 0.0).unwrap_err().to_string().contains("raise eps"));
        assert!(StandardizeParams { method: Method::Zca, ..Default::default() }.targets);
        assert!(Standardize::validate(&StandardizeParams { method: Method::Zca, ..Default::default() }).is_err());
    }

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

    /// max_abs by hand: [[1, −8], [4, 2]] has max |x| = 8: every column is divided by 8.
    #[test]
    fn max_abs_divides_every_column_by_the_largest_magnitude() {
        let mut m = vec![1., -8., 4., 2.];
        let s = fit(&m, 2, Method::MaxAbs, 0.0);
        apply(&mut m, &s);
        assert_eq!(m, vec![0.125, -1.0, 0.5, 0.25]);
    }
}
