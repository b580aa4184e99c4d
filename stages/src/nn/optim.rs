//! Optimizers as in-place updates on flat parameter buffers (no allocation per step).

use crate::nn::lbfgs::LbfgsConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    /// PyTorch: v = μv + g; w −= lr·v (nesterov: w −= lr·(g + μv)).
    Pytorch,
    /// pylearn2 / D-GEX: v = μv − lr·g; w += v (nesterov: w += μv − lr·g).
    Pylearn2,
    /// An exponential moving average of gradients (LipschitzLR's AdaMo, its authors' Keras
    /// optimizer): v = μv + (1 − μ)g; w −= lr·v (nesterov: w −= lr·(μv + (1 − μ)g)).
    Ema,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    Sgd {
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default = "pytorch")]
        convention: Convention,
    },
    Adagrad {
        #[serde(default = "eps10")]
        eps: f64,
    },
    Rmsprop {
        #[serde(default = "alpha99")]
        alpha: f64,
        #[serde(default = "eps8")]
        eps: f64,
    },
    Adam {
        #[serde(default = "b1")]
        beta1: f64,
        #[serde(default = "b2")]
        beta2: f64,
        #[serde(default = "eps8")]
        eps: f64,
    },
    /// L-BFGS as `torch.optim.LBFGS` with its defaults (see [`crate::nn::lbfgs`]); `lr` is its
    /// step size (PyTorch's default 1). Each batch is one `step` of up to `max_iter` iterations.
    Lbfgs {
        #[serde(default = "max_iter20")]
        max_iter: usize,
        #[serde(default = "history100")]
        history: usize,
        #[serde(default = "tol_grad")]
        tolerance_grad: f64,
        #[serde(default = "tol_change")]
        tolerance_change: f64,
    },
}

fn max_iter20() -> usize {
    20
}
fn history100() -> usize {
    100
}
fn tol_grad() -> f64 {
    1e-7
}
fn tol_change() -> f64 {
    1e-9
}

fn pytorch() -> Convention {
    Convention::Pytorch
}
fn eps10() -> f64 {
    1e-10
}
pub(crate) fn eps8() -> f64 {
    1e-8
}
fn alpha99() -> f64 {
    0.99
}
pub(crate) fn b1() -> f64 {
    0.9
}
pub(crate) fn b2() -> f64 {
    0.999
}

/// Per-parameter optimizer state.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub t: u64,
}

/// The elementwise optimizers: every optimizer but L-BFGS, as an update of one buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// SGD with optional (Nesterov) momentum in one of three conventions.
    Sgd { momentum: f64, nesterov: bool, convention: Convention },
    /// Adagrad.
    Adagrad { eps: f64 },
    /// RMSprop.
    Rmsprop { alpha: f64, eps: f64 },
    /// Adam (bias-corrected).
    Adam { beta1: f64, beta2: f64, eps: f64 },
}

/// How an optimizer updates a network: elementwise, or by L-BFGS iterations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// An elementwise [`Rule`].
    Elementwise(Rule),
    /// L-BFGS (see [`crate::nn::lbfgs`]).
    Lbfgs(LbfgsConfig),
}

impl Optimizer {
    /// How this optimizer updates a network.
    pub fn method(&self) -> Method {
        match *self {
            Optimizer::Sgd { momentum, nesterov, convention } => {
                Method::Elementwise(Rule::Sgd { momentum, nesterov, convention })
            }
            Optimizer::Adagrad { eps } => Method::Elementwise(Rule::Adagrad { eps }),
            Optimizer::Rmsprop { alpha, eps } => Method::Elementwise(Rule::Rmsprop { alpha, eps }),
            Optimizer::Adam { beta1, beta2, eps } => Method::Elementwise(Rule::Adam { beta1, beta2, eps }),
            Optimizer::Lbfgs { max_iter, history, tolerance_grad, tolerance_change } => {
                Method::Lbfgs(LbfgsConfig { max_iter, history, tolerance_grad, tolerance_change })
            }
        }
    }
}

impl Rule {
    /// Fresh state for a buffer of `len` values.
    pub fn state(&self, len: usize) -> State {
        let two = matches!(self, Rule::Adam { .. });
        State { a: vec![0.0; len], b: if two { vec![0.0; len] } else { vec![] }, t: 0 }
    }

    /// One update of `w` with gradient `g` at learning rate `lr`. Large buffers are updated
    /// in parallel fixed-size chunks (elementwise, so the result does not depend on threads).
    pub fn step(&self, w: &mut [f32], g: &[f32], st: &mut State, lr: f64) {
        use rayon::prelude::*;
        st.t += 1;
        let t = st.t;
        const CHUNK: usize = 1 << 15;
        if st.a.is_empty() {
            st.a = vec![0.0; w.len()];
        }
        let has_b = !st.b.is_empty();
        let mut dummy = vec![];
        let b: &mut [f32] = if has_b { &mut st.b } else { &mut dummy };
        if w.len() <= CHUNK {
            self.update(w, g, &mut st.a, b, t, lr);
            return;
        }
        let bchunks: Vec<&mut [f32]> = if has_b {
            b.chunks_mut(CHUNK).collect()
        } else {
            (0..w.len().div_ceil(CHUNK)).map(|_| &mut [][..]).collect()
        };
        w.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(st.a.par_chunks_mut(CHUNK))
            .zip(bchunks.into_par_iter())
            .for_each(|(((w, g), a), b)| self.update(w, g, a, b, t, lr));
    }

    fn update(&self, w: &mut [f32], g: &[f32], a: &mut [f32], b: &mut [f32], t: u64, lr: f64) {
        let lr32 = lr as f32;
        match *self {
            Rule::Sgd { momentum, nesterov, convention } => {
                let mu = momentum as f32;
                if mu == 0.0 {
                    w.iter_mut().zip(g).for_each(|(w, g)| *w -= lr32 * g);
                    return;
                }
                let v = a;
                match (convention, nesterov) {
                    (Convention::Pytorch, false) => {
                        for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                            *v = mu * *v + g;
                            *w -= lr32 * *v;
                        }
                    }
                    (Convention::Pytorch, true) => {
                        for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                            *v = mu * *v + g;
                            *w -= lr32 * (g + mu * *v);
                        }
                    }
                    (Convention::Ema, false) => {
                        for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                            *v = mu * *v + (1.0 - mu) * g;
                            *w -= lr32 * *v;
                        }
                    }
                    (Convention::Ema, true) => {
                        for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                            *v = mu * *v + (1.0 - mu) * g;
                            *w -= lr32 * (mu * *v + (1.0 - mu) * g);
                        }
                    }
                    (Convention::Pylearn2, false) => {
                        for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                            *v = mu * *v - lr32 * g;
                            *w += *v;
                        }
                    }
                    (Convention::Pylearn2, true) => {
                        for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                            *v = mu * *v - lr32 * g;
                            *w += mu * *v - lr32 * g;
                        }
                    }
                }
            }
            Rule::Adagrad { eps } => {
                for ((w, g), s) in w.iter_mut().zip(g).zip(a.iter_mut()) {
                    *s += g * g;
                    *w -= lr32 * g / (s.sqrt() + eps as f32);
                }
            }
            Rule::Rmsprop { alpha, eps } => {
                let al = alpha as f32;
                for ((w, g), s) in w.iter_mut().zip(g).zip(a.iter_mut()) {
                    *s = al * *s + (1.0 - al) * g * g;
                    *w -= lr32 * g / (s.sqrt() + eps as f32);
                }
            }
            Rule::Adam { beta1, beta2, eps } => {
                let (b1, b2) = (beta1 as f32, beta2 as f32);
                let c1 = 1.0 - beta1.powi(t as i32);
                let c2 = 1.0 - beta2.powi(t as i32);
                let step = (lr / c1) as f32;
                let c2s = c2.sqrt() as f32;
                for (((w, g), m), v) in w.iter_mut().zip(g).zip(a.iter_mut()).zip(b.iter_mut()) {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *w -= step * *m / (v.sqrt() / c2s + eps as f32);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(opt: Optimizer, grads: &[f32], lr: f64) -> Vec<f32> {
        let Method::Elementwise(opt) = opt.method() else { panic!("not elementwise") };
        let mut w = vec![1.0f32];
        let mut st = opt.state(1);
        let mut out = Vec::new();
        for g in grads {
            opt.step(&mut w, &[*g], &mut st, lr);
            out.push(w[0]);
        }
        out
    }

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    // By hand, w0 = 1, gradients 0.5 then 0.25, lr 0.1, μ = 0.9:
    // PyTorch:  v1 = 0.5, w1 = 0.95; v2 = 0.45 + 0.25 = 0.7, w2 = 0.88.
    // pylearn2: v1 = −0.05, w1 = 0.95; v2 = −0.045 − 0.025 = −0.07, w2 = 0.88 (same for constant lr).
    // Nesterov (PyTorch): w1 = 1 − 0.1·(0.5 + 0.45) = 0.905; v2 = 0.7, w2 = 0.905 − 0.1·(0.25 + 0.63) = 0.817.
    #[test]
    fn momentum_conventions_by_hand() {
        let g = [0.5, 0.25];
        close(
            &run(Optimizer::Sgd { momentum: 0.9, nesterov: false, convention: Convention::Pytorch }, &g, 0.1),
            &[0.95, 0.88],
        );
        close(
            &run(Optimizer::Sgd { momentum: 0.9, nesterov: false, convention: Convention::Pylearn2 }, &g, 0.1),
            &[0.95, 0.88],
        );
        close(
            &run(Optimizer::Sgd { momentum: 0.9, nesterov: true, convention: Convention::Pytorch }, &g, 0.1),
            &[0.905, 0.817],
        );
        // EMA (AdaMo), μ = 0.9: v1 = 0.05, w1 = 0.995; v2 = 0.045 + 0.025 = 0.07, w2 = 0.988.
        close(
            &run(Optimizer::Sgd { momentum: 0.9, nesterov: false, convention: Convention::Ema }, &g, 0.1),
            &[0.995, 0.988],
        );
    }

    // Adam, first step: m̂ = g, v̂ = g², so w1 = w0 − lr·g/(|g| + eps) = 1 − 0.1 = 0.9.
    // Adagrad: s = 0.25, w1 = 1 − 0.1·0.5/0.5 = 0.9; s = 0.3125, w2 = 0.9 − 0.1·0.25/0.559017 = 0.855279.
    // RMSprop α = 0.99: s = 0.0025, w1 = 1 − 0.1·0.5/0.05 = 0.
    #[test]
    fn adaptive_steps_by_hand() {
        close(&run(Optimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, &[0.5], 0.1), &[0.9]);
        close(&run(Optimizer::Adagrad { eps: 1e-10 }, &[0.5, 0.25], 0.1), &[0.9, 0.855_279]);
        close(&run(Optimizer::Rmsprop { alpha: 0.99, eps: 1e-8 }, &[0.5], 0.1), &[0.0]);
    }
}
