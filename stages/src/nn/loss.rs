//! Losses: value and gradient with respect to the network output, over a batch.
//!
//! Regression losses take predictions and targets of the same shape. `bce` and `softmax_ce`
//! take logits (the sigmoid / softmax is inside the loss, numerically stable); `sbqc` takes
//! the raw output ŷ and maps it through LogGENE's asymmetric CDF. Every gradient is checked
//! against finite differences in the tests.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Loss {
    /// mean over rows and outputs of (ŷ − y)² (PyTorch `MSELoss`).
    Mse,
    /// D-GEX / pylearn2: sum over outputs of the batch-mean squared error.
    MseSum,
    Mae,
    Huber {
        #[serde(default = "one")]
        delta: f64,
    },
    LogCosh,
    /// LogGENE: weight τ where y − ŷ > 0, 1 − τ where < 0 (½ at 0), times log cosh(y − ŷ).
    TiltedLogCosh {
        tau: f64,
    },
    /// Check / pinball loss: max(τe, (τ − 1)e), e = y − ŷ.
    Pinball {
        tau: f64,
    },
    /// Binary cross-entropy on logits.
    Bce,
    /// Softmax cross-entropy on logits, one-hot targets.
    SoftmaxCe,
    /// LogGENE's sBQC: p̂ = 1 − F_τ(ŷ), loss = −mean[y log p̂ + (1 − y) log(1 − p̂)].
    Sbqc {
        tau: f64,
    },
    /// Several quantiles at once (LogGENE §4.8, Figures 3–4): `heads` outputs per target for
    /// τ_h = h/(heads + 1), h = 1…heads (9 heads: 0.1…0.9), laid out head-major (column
    /// h·q + j is τ_h of target j). Loss = mean over rows, heads and targets of the `base` loss
    /// at τ_h, plus `crossing` × the mean over rows and targets of Σ_h max(0, Q(τ_h) − Q(τ_{h+1})).
    /// With `base = "sbqc"` the heads are binary classifiers (labels 0/1, repeated per head):
    /// LogGENE's heart-rate notebook, whose penalty acts on the raw outputs as printed.
    Quantiles {
        #[serde(default = "nine")]
        heads: usize,
        #[serde(default = "tilted")]
        base: QuantileBase,
        #[serde(default)]
        crossing: f64,
    },
}

/// The per-quantile loss of [`Loss::Quantiles`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantileBase {
    TiltedLogCosh,
    Pinball,
    /// LogGENE's sBQC per head (§4.6, Theorem 3): latent outputs whose zero crossing in τ
    /// reads as P(class 0 | x) (§5.5).
    Sbqc,
}

fn nine() -> usize {
    9
}
fn tilted() -> QuantileBase {
    QuantileBase::TiltedLogCosh
}

fn one() -> f64 {
    1.0
}

fn log_cosh(e: f64) -> f64 {
    let a = e.abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

/// LogGENE's asymmetric CDF F_τ and its derivative.
pub fn sbqc_cdf(x: f64, tau: f64) -> (f64, f64) {
    let c = if x > 0.0 { 1.0 - tau } else { tau };
    let t = (x / 2.0).tanh();
    let f = tau + 4.0 * c / PI * t.atan();
    let df = 4.0 * c / PI * (1.0 / (1.0 + t * t)) * (1.0 - t * t) / 2.0;
    (f, df)
}

/// Probability of class 1 from an sBQC output.
pub fn sbqc_probability(x: f64, tau: f64) -> f64 {
    1.0 - sbqc_cdf(x, tau).0
}

impl Loss {
    /// Network outputs per target column (the quantile heads; 1 otherwise).
    pub fn outputs_per_target(&self) -> usize {
        match self {
            Loss::Quantiles { heads, .. } => *heads,
            _ => 1,
        }
    }

    /// Loss value over `rows` rows of `cols` outputs; writes dL/dŷ into `grad`. For
    /// `quantiles`, `y` holds the targets repeated once per head (the layout of `pred`).
    pub fn eval(&self, pred: &[f32], y: &[f32], rows: usize, cols: usize, grad: &mut [f32]) -> f64 {
        let n = (rows * cols) as f64;
        let b = rows as f64;
        let mut total = 0f64;
        if let Loss::Quantiles { heads, base, crossing } = *self {
            let q = cols / heads;
            for r in 0..rows {
                for h in 0..heads {
                    let tau = (h + 1) as f64 / (heads + 1) as f64;
                    let single = match base {
                        QuantileBase::TiltedLogCosh => Loss::TiltedLogCosh { tau },
                        QuantileBase::Pinball => Loss::Pinball { tau },
                        QuantileBase::Sbqc => Loss::Sbqc { tau },
                    };
                    let o = r * cols + h * q;
                    total += single.elementwise(&pred[o..o + q], &y[o..o + q], &mut grad[o..o + q], n);
                }
                if crossing > 0.0 {
                    let w = crossing / (rows * q) as f64;
                    for h in 0..heads - 1 {
                        for j in 0..q {
                            let (lo, hi) = (r * cols + h * q + j, r * cols + (h + 1) * q + j);
                            let gap = (pred[lo] - pred[hi]) as f64;
                            if gap > 0.0 {
                                total += w * gap * n;
                                grad[lo] += w as f32;
                                grad[hi] -= w as f32;
                            }
                        }
                    }
                }
            }
            return total / n;
        }
        if *self == Loss::SoftmaxCe {
            {
                for r in 0..rows {
                    let z = &pred[r * cols..(r + 1) * cols];
                    let t = &y[r * cols..(r + 1) * cols];
                    let m = z.iter().fold(f32::NEG_INFINITY, |a, v| a.max(*v)) as f64;
                    let se: f64 = z.iter().map(|v| (*v as f64 - m).exp()).sum();
                    let lse = m + se.ln();
                    for j in 0..cols {
                        let p = ((z[j] as f64) - lse).exp();
                        total -= t[j] as f64 * (z[j] as f64 - lse);
                        grad[r * cols + j] = ((p - t[j] as f64) / b) as f32;
                    }
                }
                return total / b;
            }
        }
        let scale = match self {
            Loss::MseSum => b,
            _ => n,
        };
        // Fixed 16K-element blocks summed in order: parallel, and the same bits for any
        // thread count.
        use rayon::prelude::*;
        const BLOCK: usize = 1 << 14;
        let m = rows * cols;
        let partial: Vec<f64> = grad[..m]
            .par_chunks_mut(BLOCK)
            .zip(pred[..m].par_chunks(BLOCK).zip(y[..m].par_chunks(BLOCK)))
            .map(|(g, (p, t))| self.elementwise(p, t, g, scale))
            .collect();
        total += partial.iter().sum::<f64>();
        total / scale
    }

    fn elementwise(&self, pred: &[f32], y: &[f32], grad: &mut [f32], scale: f64) -> f64 {
        let mut total = 0f64;
        for i in 0..pred.len() {
            let (p, t) = (pred[i] as f64, y[i] as f64);
            let (l, g) = match *self {
                Loss::Mse | Loss::MseSum => ((p - t).powi(2), 2.0 * (p - t)),
                Loss::Mae => ((p - t).abs(), (p - t).signum() * f64::from(p != t)),
                Loss::Huber { delta } => {
                    let e = p - t;
                    if e.abs() <= delta {
                        (0.5 * e * e, e)
                    } else {
                        (delta * (e.abs() - 0.5 * delta), delta * e.signum())
                    }
                }
                Loss::LogCosh => (log_cosh(p - t), (p - t).tanh()),
                Loss::TiltedLogCosh { tau } => {
                    let e = t - p;
                    let w = if e > 0.0 {
                        tau
                    } else if e < 0.0 {
                        1.0 - tau
                    } else {
                        0.5
                    };
                    (w * log_cosh(e), -w * e.tanh())
                }
                Loss::Pinball { tau } => {
                    let e = t - p;
                    if e > 0.0 {
                        (tau * e, -tau)
                    } else if e < 0.0 {
                        ((tau - 1.0) * e, 1.0 - tau)
                    } else {
                        (0.0, 0.0)
                    }
                }
                Loss::Bce => {
                    let l = p.max(0.0) - p * t + (-p.abs()).exp().ln_1p();
                    (l, 1.0 / (1.0 + (-p).exp()) - t)
                }
                Loss::Sbqc { tau } => {
                    let (f, df) = sbqc_cdf(p, tau);
                    let ph = (1.0 - f).clamp(1e-7, 1.0 - 1e-7);
                    let l = -(t * ph.ln() + (1.0 - t) * (1.0 - ph).ln());
                    let dl_dph = -t / ph + (1.0 - t) / (1.0 - ph);
                    (l, dl_dph * -df)
                }
                Loss::SoftmaxCe | Loss::Quantiles { .. } => unreachable!(),
            };
            total += l;
            grad[i] = (g / scale) as f32;
        }
        total
    }

    /// The loss's Lipschitz constant with respect to the last layer's weights, as a function
    /// of Kz (penultimate activations), Ka (outputs), ‖y‖ and m — LALR paper eq. (7),
    /// LipschitzLR §4 (BCE, softmax), LogGENE Theorem 2 (log-cosh) and Theorem 4 (sBQC).
    pub fn lipschitz(&self, kz: f64, ka: f64, ynorm: f64, m: f64, classes: usize) -> f64 {
        match *self {
            Loss::Mse | Loss::MseSum => (ka + ynorm) * kz / m,
            Loss::Mae => kz / m,
            Loss::Huber { delta } => delta * kz / m,
            // LogGENE Thm 2: (1/m) tanh(|g(0) − ‖y‖|) max_j a_j, g the output activation (the
            // identity here, so g(0) = 0) and max_j a_j read as Kz; tanh ≤ 1 keeps it below
            // MAE's. LogGENE's code computes the same tanh(Y)·Kz/m with Y its max row norm.
            Loss::LogCosh => ynorm.tanh() * kz / m,
            Loss::TiltedLogCosh { tau } | Loss::Pinball { tau } => tau.max(1.0 - tau) * kz / m,
            Loss::Bce => kz / (2.0 * m),
            Loss::SoftmaxCe => {
                let k = classes.max(2) as f64;
                (k - 1.0) * kz / (k * m)
            }
            // LogGENE Theorem 4 (§4.7) prints (2/π)·max(1, (1 − τ)/τ, τ/(τ − 1)); its last term is
            // negative for every τ in (0, 1), a sign slip. This uses τ/(1 − τ): a correction of
            // the printed constant, not the printed constant itself.
            Loss::Sbqc { tau } => 2.0 / PI * 1f64.max((1.0 - tau) / tau).max(tau / (1.0 - tau)) * kz / m,
            // The largest per-head bound, max_h max(τ_h, 1 − τ_h) = heads/(heads + 1) (for sBQC
            // heads, the largest of their Theorem 4 bounds); the crossing penalty is left out.
            Loss::Quantiles { heads, base: QuantileBase::Sbqc, .. } => (1..=heads)
                .map(|h| Loss::Sbqc { tau: h as f64 / (heads + 1) as f64 }.lipschitz(kz, ka, ynorm, m, classes))
                .fold(0.0, f64::max),
            Loss::Quantiles { heads, .. } => heads as f64 / (heads + 1) as f64 * kz / m,
        }
    }

    pub fn is_classification(&self) -> bool {
        matches!(
            self,
            Loss::Bce | Loss::SoftmaxCe | Loss::Sbqc { .. } | Loss::Quantiles { base: QuantileBase::Sbqc, .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Loss> {
        vec![
            Loss::Mse,
            Loss::MseSum,
            Loss::Mae,
            Loss::Huber { delta: 0.5 },
            Loss::LogCosh,
            Loss::TiltedLogCosh { tau: 0.3 },
            Loss::Pinball { tau: 0.7 },
            Loss::Bce,
            Loss::SoftmaxCe,
            Loss::Sbqc { tau: 0.2 },
            Loss::Quantiles { heads: 3, base: QuantileBase::TiltedLogCosh, crossing: 0.5 },
            Loss::Quantiles { heads: 3, base: QuantileBase::Pinball, crossing: 0.0 },
            Loss::Quantiles { heads: 3, base: QuantileBase::Sbqc, crossing: 0.3 },
        ]
    }

    #[test]
    fn gradients_match_finite_differences() {
        let pred = [0.3f32, -1.2, 2.0, 0.7, -0.4, 1.1];
        for loss in all() {
            let y: Vec<f32> = match loss {
                Loss::Bce | Loss::Sbqc { .. } => vec![1., 0., 1., 0., 0., 1.],
                // One label per row, repeated for the three heads.
                Loss::Quantiles { base: QuantileBase::Sbqc, .. } => vec![1., 1., 1., 0., 0., 0.],
                Loss::SoftmaxCe => vec![0., 1., 0., 0., 0., 1.],
                // One target, repeated for the three heads; both rows have crossing quantiles.
                Loss::Quantiles { .. } => vec![0.1, 0.1, 0.1, 0.2, 0.2, 0.2],
                _ => vec![0.1, -0.9, 2.6, 0.2, 0.1, 1.0],
            };
            let mut g = vec![0f32; 6];
            loss.eval(&pred, &y, 2, 3, &mut g);
            for i in 0..6 {
                let h = 1e-3f32;
                let mut up = pred;
                up[i] += h;
                let mut dn = pred;
                dn[i] -= h;
                let mut scratch = vec![0f32; 6];
                let fd = (loss.eval(&up, &y, 2, 3, &mut scratch) - loss.eval(&dn, &y, 2, 3, &mut scratch))
                    / (2.0 * h as f64);
                assert!((fd - g[i] as f64).abs() < 1e-3, "{loss:?} output {i}: fd {fd} vs {}", g[i]);
            }
        }
    }

    // Hand values. MSE of e = (1, −2): (1 + 4)/2 = 2.5; MSE-sum over 2 outputs, 1 row: 5.
    // BCE(z = 0, y = 1) = ln 2 = 0.693147. log cosh(1) = 0.433781.
    // Pinball τ = 0.7, y − ŷ = 2: 1.4; y − ŷ = −2: 0.6.
    #[test]
    fn hand_values() {
        let mut g = [0f32; 2];
        assert!((Loss::Mse.eval(&[1., 0.], &[0., 2.], 1, 2, &mut g) - 2.5).abs() < 1e-9);
        assert!((Loss::MseSum.eval(&[1., 0.], &[0., 2.], 1, 2, &mut g) - 5.0).abs() < 1e-9);
        let mut g1 = [0f32; 1];
        assert!((Loss::Bce.eval(&[0.], &[1.], 1, 1, &mut g1) - std::f64::consts::LN_2).abs() < 1e-9);
        assert!((Loss::LogCosh.eval(&[1.], &[0.], 1, 1, &mut g1) - 0.433_781).abs() < 1e-6);
        assert!((Loss::Pinball { tau: 0.7 }.eval(&[0.], &[2.], 1, 1, &mut g1) - 1.4).abs() < 1e-9);
        assert!((Loss::Pinball { tau: 0.7 }.eval(&[2.], &[0.], 1, 1, &mut g1) - 0.6).abs() < 1e-9);
        // Three pinball heads (τ = 0.25, 0.5, 0.75) predicting (1, 0, 0) for y = 0: the τ = 0.25
        // head costs (0.25 − 1)·(−1) = 0.75, the others 0, mean 0.25; the crossing
        // Q(0.25) − Q(0.5) = 1 adds 1 × 1: 1.25. Its gradient: 0.75/3 + 1 on head 1, −1 on head 2.
        let mut g3 = [0f32; 3];
        let quant = Loss::Quantiles { heads: 3, base: QuantileBase::Pinball, crossing: 1.0 };
        assert!((quant.eval(&[1., 0., 0.], &[0., 0., 0.], 1, 3, &mut g3) - 1.25).abs() < 1e-9);
        assert!((g3[0] - 1.25).abs() < 1e-6 && (g3[1] + 1.0).abs() < 1e-6 && g3[2] == 0.0, "{g3:?}");
        // Three sBQC heads at ŷ = 0 give p̂ = 1 − F_τ(0) = 1 − τ: for y = 1 the loss is
        // −(ln 0.75 + ln 0.5 + ln 0.25)/3 = (0.287682 + 0.693147 + 1.386294)/3 = 0.789041.
        let sbqc = Loss::Quantiles { heads: 3, base: QuantileBase::Sbqc, crossing: 0.0 };
        assert!((sbqc.eval(&[0., 0., 0.], &[1., 1., 1.], 1, 3, &mut g3) - 0.789_041).abs() < 1e-6);
    }

    #[test]
    fn sbqc_cdf_limits_and_median() {
        let tau = 0.2;
        assert!((sbqc_cdf(0.0, tau).0 - tau).abs() < 1e-12);
        assert!(sbqc_cdf(-60.0, tau).0.abs() < 1e-9);
        assert!((sbqc_cdf(60.0, tau).0 - 1.0).abs() < 1e-9);
    }

    // LipschitzLR ResNet20 example (published_code_notes §3.3): Kz = 206.695, batch 128,
    // k = 10, plus λ·max‖w‖ = 1e-3·43.257: 9·206.695/1280 + 0.0433 = 1.497, lr = 1/L = 0.668.
    #[test]
    fn lipschitz_resnet20_example() {
        let l = Loss::SoftmaxCe.lipschitz(206.695, 0.0, 0.0, 128.0, 10) + 1e-3 * 43.257;
        assert!((1.0 / l - 0.668).abs() < 1e-3, "lr {}", 1.0 / l);
    }

    // LALR paper §III example: Kz = 983.88, Ka = 142.86, ‖y‖ = 4329.24, scale 0.3 gives
    // "approximately 1.36e-4", which the MSE bound (Ka + ‖y‖)Kz/m reaches for m = 2,000
    // (0.3·2000/((142.86 + 4329.24)·983.88) = 1.3636e-4); m = 200 (the batch) gives 1.36e-5.
    #[test]
    fn lipschitz_lalr_paper_example() {
        let lr = |m: f64| 0.3 / Loss::Mse.lipschitz(983.88, 142.86, 4329.24, m, 0);
        assert!((lr(2000.0) - 1.3636e-4).abs() < 1e-7, "{}", lr(2000.0));
        assert!((lr(200.0) - 1.3636e-5).abs() < 1e-8);
    }

    // Nine sBQC heads: the largest Theorem 4 bound (with τ/(1 − τ), see `lipschitz`) is at
    // τ = 0.1 and 0.9, (2/π)·9 = 5.729578; times Kz/m = 10/2: 28.647890.
    #[test]
    fn lipschitz_of_sbqc_heads_is_the_largest_heads() {
        let q = Loss::Quantiles { heads: 9, base: QuantileBase::Sbqc, crossing: 0.1 };
        assert!((q.lipschitz(10.0, 0.0, 0.0, 2.0, 2) - 28.647_890).abs() < 1e-6);
    }
}
