//! L-BFGS as PyTorch's `torch.optim.LBFGS` runs it with its defaults (no line search), which is
//! what LogGENE's `trainLBFGS` used: each `step` on a batch makes up to `max_iter` iterations of
//! the two-loop recursion over the last `history` curvature pairs, a fixed step `lr` (the first
//! iteration of a run `min(1, 1/‖g‖₁)·lr`), and stops early on PyTorch's tolerances. The
//! curvature history and the last direction persist across steps, as PyTorch keeps them in the
//! optimizer state, so mini-batch L-BFGS is the same object fed one batch per step.
//!
//! Why not the `argmin` crate: its L-BFGS requires a line search (More–Thuente or
//! Hager–Zhang), which PyTorch's default does not do; the runs being reproduced took fixed steps.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LbfgsConfig {
    pub max_iter: usize,
    pub history: usize,
    pub tolerance_grad: f64,
    pub tolerance_change: f64,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig { max_iter: 20, history: 100, tolerance_grad: 1e-7, tolerance_change: 1e-9 }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Lbfgs {
    pub cfg: LbfgsConfig,
    d: Vec<f64>,
    t: f64,
    /// Curvature pairs, stored in f32 as PyTorch stores them in the parameters' dtype (the
    /// two-loop recursion reads all of them every iteration: memory traffic is its cost).
    old_dirs: Vec<Vec<f32>>,
    old_stps: Vec<Vec<f32>>,
    ro: Vec<f64>,
    h_diag: f64,
    prev_grad: Vec<f64>,
    /// Iterations over all steps (PyTorch's `state['n_iter']`).
    pub n_iter: usize,
    /// Objective evaluations over all steps.
    pub evals: usize,
}

/// Dot product over eight independent accumulators (so it vectorizes; the order is fixed, so
/// the result is the same on every run).
/// Elements per parallel block: blocks are reduced in order, so results do not depend on the
/// number of threads.
const BLOCK: usize = 1 << 14;

fn dot<A: Copy + Into<f64> + Sync>(a: &[A], b: &[f64]) -> f64 {
    use rayon::prelude::*;
    if a.len() <= BLOCK {
        return dot_block(a, b);
    }
    let parts: Vec<f64> = a.par_chunks(BLOCK).zip(b.par_chunks(BLOCK)).map(|(x, y)| dot_block(x, y)).collect();
    parts.iter().sum()
}

/// out += c·v, in parallel blocks.
fn axpy<A: Copy + Into<f64> + Sync>(out: &mut [f64], c: f64, v: &[A]) {
    use rayon::prelude::*;
    out.par_chunks_mut(BLOCK).zip(v.par_chunks(BLOCK)).for_each(|(o, v)| {
        for (o, v) in o.iter_mut().zip(v) {
            *o += c * (*v).into();
        }
    });
}

fn dot_block<A: Copy + Into<f64>>(a: &[A], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| (*x).into() * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i].into() * y[i];
        }
    }
    acc.iter().sum::<f64>() + tail
}

impl Lbfgs {
    pub fn new(cfg: LbfgsConfig) -> Self {
        Lbfgs { cfg, h_diag: 1.0, ..Default::default() }
    }

    /// One optimizer step on `x`. `f(x)` returns the loss and its gradient. Returns the loss at
    /// the start of the step (as PyTorch's `step` returns `orig_loss`).
    pub fn step(&mut self, x: &mut [f64], lr: f64, mut f: impl FnMut(&[f64]) -> (f64, Vec<f64>)) -> f64 {
        let c = self.cfg;
        let (mut loss, mut g) = f(x);
        self.evals += 1;
        let orig = loss;
        if g.iter().fold(0.0f64, |m, v| m.max(v.abs())) <= c.tolerance_grad {
            return orig;
        }
        let mut n = 0;
        while n < c.max_iter {
            n += 1;
            self.n_iter += 1;
            if self.n_iter == 1 {
                self.d = g.iter().map(|v| -v).collect();
                self.old_dirs.clear();
                self.old_stps.clear();
                self.ro.clear();
                self.h_diag = 1.0;
            } else {
                let y: Vec<f64> = g.iter().zip(&self.prev_grad).map(|(a, b)| a - b).collect();
                let s: Vec<f64> = self.d.iter().map(|v| v * self.t).collect();
                let ys = dot(&y, &s);
                if ys > 1e-10 {
                    if self.old_dirs.len() == c.history {
                        self.old_dirs.remove(0);
                        self.old_stps.remove(0);
                        self.ro.remove(0);
                    }
                    self.h_diag = ys / dot(&y, &y);
                    self.old_dirs.push(y.iter().map(|v| *v as f32).collect());
                    self.old_stps.push(s.iter().map(|v| *v as f32).collect());
                    self.ro.push(1.0 / ys);
                }
                // Two-loop recursion: d = −H·g.
                let k = self.old_dirs.len();
                let mut al = vec![0.0; k];
                let mut q: Vec<f64> = g.iter().map(|v| -v).collect();
                for i in (0..k).rev() {
                    al[i] = dot(&self.old_stps[i], &q) * self.ro[i];
                    axpy(&mut q, -al[i], &self.old_dirs[i]);
                }
                let mut r: Vec<f64> = q.iter().map(|v| v * self.h_diag).collect();
                for (i, a) in al.iter().enumerate() {
                    let be = dot(&self.old_dirs[i], &r) * self.ro[i];
                    axpy(&mut r, a - be, &self.old_stps[i]);
                }
                self.d = r;
            }
            self.prev_grad.clone_from(&g);
            let prev_loss = loss;
            self.t =
                if self.n_iter == 1 { (1.0f64).min(1.0 / g.iter().map(|v| v.abs()).sum::<f64>()) * lr } else { lr };
            let gtd = dot(&g, &self.d);
            if gtd > -c.tolerance_change {
                break;
            }
            for (xi, di) in x.iter_mut().zip(&self.d) {
                *xi += self.t * di;
            }
            if n != c.max_iter {
                (loss, g) = f(x);
                self.evals += 1;
            }
            if n == c.max_iter {
                break;
            }
            if g.iter().fold(0.0f64, |m, v| m.max(v.abs())) <= c.tolerance_grad {
                break;
            }
            if self.d.iter().fold(0.0f64, |m, v| m.max((v * self.t).abs())) <= c.tolerance_change {
                break;
            }
            if (loss - prev_loss).abs() < c.tolerance_change {
                break;
            }
        }
        orig
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a convex quadratic ½xᵀAx − bᵀx in 2-D, L-BFGS with unit steps reaches the minimizer
    /// A⁻¹b within one step of 20 iterations (exact curvature pairs after two iterations).
    /// A = [[3, 1], [1, 2]], b = [1, 1]: A⁻¹b = (1/5)·[1, 2] = [0.2, 0.4].
    #[test]
    fn solves_a_quadratic() {
        let f = |x: &[f64]| {
            let ax = [3.0 * x[0] + x[1], x[0] + 2.0 * x[1]];
            let loss = 0.5 * (x[0] * ax[0] + x[1] * ax[1]) - x[0] - x[1];
            (loss, vec![ax[0] - 1.0, ax[1] - 1.0])
        };
        let mut x = vec![0.0, 0.0];
        let mut o = Lbfgs::new(LbfgsConfig::default());
        o.step(&mut x, 1.0, f);
        assert!((x[0] - 0.2).abs() < 1e-6 && (x[1] - 0.4).abs() < 1e-6, "{x:?}");
    }

    /// PyTorch 2.x, `torch.optim.LBFGS([x], max_iter=2)` on the same quadratic from x = 0,
    /// double precision, one `step`:
    ///   g0 = [−1, −1], t = min(1, 1/2)·1 = 0.5, x1 = [0.5, 0.5];
    ///   g1 = [1, 0.5], y = [2, 1.5], s = [0.5, 0.5], ys = 1.75, H = 1.75/6.25 = 0.28;
    ///   two-loop: q = −g1 = [−1, −0.5], α = (s·q)/ys = −0.428571, q −= α·y → [−0.142857, 0.142857],
    ///   r = 0.28·q = [−0.04, 0.04], β = (y·r)/ys = −0.011429, r += s·(α − β) → [−0.248571, −0.168571];
    ///   x2 = x1 + r = [0.251429, 0.331429].
    #[test]
    fn matches_the_hand_computed_torch_iterates() {
        let f = |x: &[f64]| {
            let ax = [3.0 * x[0] + x[1], x[0] + 2.0 * x[1]];
            (0.5 * (x[0] * ax[0] + x[1] * ax[1]) - x[0] - x[1], vec![ax[0] - 1.0, ax[1] - 1.0])
        };
        let mut x = vec![0.0, 0.0];
        let mut o = Lbfgs::new(LbfgsConfig { max_iter: 2, ..Default::default() });
        let l0 = o.step(&mut x, 1.0, f);
        assert_eq!(l0, 0.0);
        assert!((x[0] - 0.251429).abs() < 1e-6 && (x[1] - 0.331429).abs() < 1e-6, "{x:?}");
        assert_eq!(o.evals, 2);
    }
}
