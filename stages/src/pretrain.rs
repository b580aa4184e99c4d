//! `pretrain`: greedy layer-wise unsupervised pretraining of a ReLU stack, as a stack of RBMs
//! trained by reconstruction error along a CD-k chain (Golovko's school) or as tied-weight
//! autoencoders, with the step policies of the ReLU RBM abstract
//! (`../shared/papers/rbm_relu_adaptive_step_abstract.txt`): a constant step, Adam, and the
//! analytical adaptive step in three named variants. The paper's body could not be read, so no
//! variant is its printed equation; each carries its source from
//! `../shared/papers/rbm_adaptive_step_notes.md` (§ numbers below are that file's).
//!
//! ## The model (§1.2)
//! One layer: visible x ∈ ℝⁿ, hidden y ∈ ℝᵐ, one weight matrix W (n × m) used both ways,
//! biases b_v, b_h. The chain: y(0) = F(x(0)W + b_h); x(t) = F(y(t−1)Wᵀ + b_v),
//! y(t) = F(x(t)W + b_h) for t = 1…k. Loss per sample
//! E = ½‖x(k) − x(0)‖² + ½‖y(k) − y(0)‖². The RBM rule (the "nonlinear representation" of
//! §1.2) holds y(k−1) fixed for the visible part and x(k) fixed for the hidden part:
//!
//!   ∇W = e_vᵀ y(k−1) + x(k)ᵀ e_h,  ∇b_v = e_v,  ∇b_h = e_h,
//!   e_v = (x(k) − x(0)) ⊙ F′(S_v(k)),  e_h = (y(k) − y(0)) ⊙ F′(S_h(k)).
//!
//! The autoencoder (`model = "autoencoder"`) has the visible error only,
//! E = ½‖x(1) − x(0)‖², and its exact gradient through encoder and decoder.
//!
//! ## Step policies
//! - `constant`: W −= lr · mean gradient, with optional momentum (pylearn2 form
//!   v = μv − lr·g, W += v; `final_momentum` after `switch_epoch` epochs, as the co-author's
//!   code switched 0.5 → 0.9 after 5).
//! - `adam`: Adam (Kingma & Ba, bias-corrected) on the mean gradient.
//! - `adaptive`, variant `per_layer` [R §2.2]: the exact steepest-descent step of a ReLU layer
//!   trained alone, α = 1 / (1 + Σ inputs²): α_h = 1/(1 + ‖x(k)‖²) for the hidden part,
//!   α_v = 1/(1 + ‖y(k−1)‖²) for the visible part, per sample; a batch averages the per-sample
//!   updates: W −= (1/L) Σ_s (α_v,s ∇_vis,s + α_h,s ∇_hid,s). With one sample it drives the
//!   error of every active unit of the trained layer to zero (exactly, when no unit crosses 0).
//! - `adaptive`, variant `batch` [R §2.2, cross-sample terms dropped]: for the summed gradient,
//!   α_h = Σ_s A_s Σ_j F′_sj γ_sj² / Σ_s A_s² Σ_j F′_sj γ_sj², A_s = 1 + ‖x_s(k)‖²,
//!   γ = y(k) − y(0); α_v likewise with A_s = 1 + ‖y_s(k−1)‖² and γ = x(k) − x(0);
//!   W −= α_v ∇_vis,sum + α_h ∇_hid,sum. One sample: the `per_layer` step.
//! - `adaptive`, variant `batch_exact` [R §2.2, the exact first-order optimum]: with the
//!   cross-sample terms, α_h = Σ_s Σ_j γ_sj F′_sj b_sj / Σ_s Σ_j (F′_sj b_sj)²,
//!   b_sj = Σ_p γ_pj F′_pj (1 + x_s(k)·x_p(k)); α_v likewise; the same summed update.
//! - `adaptive`, variant `published_code` [C §2.3, co-author A. Kroshchanka's
//!   pretrain-neural-networks, commit acf4824]: one joint step from scalar totals over the
//!   batch (v0 = x(0), v1 = x(k), h0 = y(0), h1 = y(k)):
//!   b_h = h0(1 + Σv1⊙v0) − h1(1 + Σv1⊙v1), b_v = v0(1 + Σh0⊙h0) − v1(1 + Σh0⊙h1),
//!   rate = [Σ(v0 − v1)⊙b_v + Σ(h0 − h1)⊙b_h] / [Σb_h² + Σb_v²];
//!   then ΔW = μ·ΔW_prev + rate/B · ∇ (the summed gradient over B), W −= ΔW, μ = 0.5 for the
//!   first 5 epochs, then 0.9. (The code takes F′ by a central difference; for ReLU that is
//!   the 0/1 mask used here except within 1e-5 of 0.)
//!
//! A step whose denominator is 0 (no active unit has an error) is 0. Every random choice (the
//! initial weights ~ `init_std`·N(0, 1) for W, b_v and b_h as the code's "SimpleNormal", the
//! batch order, the noise of `sampling = "noisy_relu"`) comes from the instance seed.

use crate::dataset::Dataset;
use crate::nn::act::Activation;
use crate::nn::linalg::{gemm, Op};
use crate::nn::mlp::Mlp;
use crate::nn::optim::{Convention, Rule, State};
use crate::rng::{normal, permutation, rng, StageRng};
use repro_core::{stage_params, write_json, Ctx, InputSlot, Metrics, ParamError, StageError, StageResult, TypedStage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// Reconstruction error on both layers along a CD-k chain (Golovko's RBM view, §1.2).
    Rbm,
    /// Tied-weight autoencoder: the visible reconstruction error and its exact gradient.
    Autoencoder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transfer {
    Relu,
    Linear,
}

impl Transfer {
    fn f(self, s: f32) -> f32 {
        match self {
            Transfer::Relu => s.max(0.0),
            Transfer::Linear => s,
        }
    }
    fn d(self, s: f32) -> f32 {
        match self {
            Transfer::Relu => f32::from(u8::from(s > 0.0)),
            Transfer::Linear => 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// The chain's states are the units' outputs (the co-author's default, `without_sampling`).
    Deterministic,
    /// Hidden states that feed a reconstruction are max(0, S + N(0, 1)) (noisy ReLU, unit
    /// variance as the co-author's code at HEAD); the errors compare the noise-free states.
    NoisyRelu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    PerLayer,
    Batch,
    BatchExact,
    PublishedCode,
}

fn zero() -> f64 {
    0.0
}
fn five() -> usize {
    5
}
fn adam_lr() -> f64 {
    1e-3
}

/// How big each update is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// W −= lr · mean gradient (with momentum μ, then `final_momentum` after `switch_epoch`).
    Constant {
        lr: f64,
        #[serde(default = "zero")]
        momentum: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        final_momentum: Option<f64>,
        #[serde(default = "five")]
        switch_epoch: usize,
    },
    /// Adam on the mean gradient.
    Adam {
        #[serde(default = "adam_lr")]
        lr: f64,
        #[serde(default = "crate::nn::optim::b1")]
        beta1: f64,
        #[serde(default = "crate::nn::optim::b2")]
        beta2: f64,
        #[serde(default = "crate::nn::optim::eps8")]
        eps: f64,
    },
    /// The analytical adaptive step, in a named variant.
    Adaptive { variant: Variant },
}

stage_params! {
    /// Params of `pretrain`.
    pub struct PretrainParams {
        /// Hidden layer sizes, pretrained greedily one after another (each on the previous one's outputs).
        hidden: Vec<usize> = vec![64],
        /// "rbm" (reconstruction error on both layers along a CD-k chain) or "autoencoder" (tied weights, visible error, exact gradient).
        model: Model = Model::Rbm,
        /// k of the CD-k chain (rbm).
        cd_k: usize = 1,
        /// "deterministic" or "noisy_relu" (hidden states feeding a reconstruction get N(0, 1) noise, rectified).
        sampling: Sampling = Sampling::Deterministic,
        /// Transfer of the first layer's visible units: "relu" or "linear" (deeper layers' visible units are ReLU).
        visible: Transfer = Transfer::Relu,
        /// Step policy: { name = "constant", lr, momentum, final_momentum, switch_epoch }, { name = "adam", lr, … } or { name = "adaptive", variant = "per_layer" | "batch" | "batch_exact" | "published_code" }.
        step: Step = Step::Adaptive { variant: Variant::PerLayer },
        /// Epochs per layer.
        epochs: usize = 30,
        /// Mini-batch size (rows are shuffled each epoch; the last batch may be smaller).
        batch: usize = 64,
        /// Initial W, b_v, b_h ~ init_std · N(0, 1) (the co-author's "SimpleNormal": 0.01).
        init_std: f64 = 0.01,
    }
}

/// One pretrained layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Rbm {
    pub n: usize,
    pub m: usize,
    /// n × m, row-major (the `Mlp` layout: fan_in × fan_out).
    pub w: Vec<f32>,
    pub bv: Vec<f32>,
    pub bh: Vec<f32>,
    pub fv: Transfer,
    pub fh: Transfer,
}

/// The states of one chain over a batch of `rows`.
#[derive(Debug, Default)]
pub struct Chain {
    pub rows: usize,
    pub x0: Vec<f32>,
    pub y0: Vec<f32>,
    /// y(k−1) as fed down (noisy under `noisy_relu`): the input of the visible part.
    pub y_prev: Vec<f32>,
    pub xk: Vec<f32>,
    pub yk: Vec<f32>,
    /// e_v = (x(k) − x(0)) ⊙ F′(S_v(k)), rows × n.
    pub ev: Vec<f32>,
    /// e_h, rows × m: the hidden error (rbm) or the error back-propagated to the hidden
    /// pre-activations (autoencoder).
    pub eh: Vec<f32>,
    /// F′ of the visible units at S_v(k) and of the hidden units at S_h(k) (rbm).
    pub dv: Vec<f32>,
    pub dh: Vec<f32>,
    /// The input of the hidden part of the gradient: x(k) (rbm) or x(0) (autoencoder).
    pub hid_in: Vec<f32>,
    /// The per-sample loss.
    pub loss: Vec<f64>,
}

impl Rbm {
    fn new(n: usize, m: usize, fv: Transfer, std: f64, r: &mut StageRng) -> Rbm {
        let mut draw = |len: usize| (0..len).map(|_| (normal(r) * std) as f32).collect::<Vec<f32>>();
        let w = draw(n * m);
        let bv = draw(n);
        let bh = draw(m);
        Rbm { n, m, w, bv, bh, fv, fh: Transfer::Relu }
    }

    /// (S, F(S)) of the hidden units for `rows` visible rows.
    pub fn up(&self, x: &[f32], rows: usize, threads: usize) -> (Vec<f32>, Vec<f32>) {
        let mut s = vec![0f32; rows * self.m];
        gemm(&mut s, x, Op::N, &self.w, Op::N, rows, self.m, self.n, false, threads);
        for r in s.chunks_mut(self.m) {
            r.iter_mut().zip(&self.bh).for_each(|(v, b)| *v += b);
        }
        let y = s.iter().map(|v| self.fh.f(*v)).collect();
        (s, y)
    }

    /// (S, F(S)) of the visible units for `rows` hidden rows.
    pub fn down(&self, y: &[f32], rows: usize, threads: usize) -> (Vec<f32>, Vec<f32>) {
        let mut s = vec![0f32; rows * self.n];
        gemm(&mut s, y, Op::N, &self.w, Op::T, rows, self.n, self.m, false, threads);
        for r in s.chunks_mut(self.n) {
            r.iter_mut().zip(&self.bv).for_each(|(v, b)| *v += b);
        }
        let x = s.iter().map(|v| self.fv.f(*v)).collect();
        (s, x)
    }

    /// Runs the chain of `model` on a batch and computes its errors and per-sample loss.
    pub fn chain(
        &self,
        x0: &[f32],
        rows: usize,
        model: Model,
        k: usize,
        noise: Option<&mut StageRng>,
        threads: usize,
    ) -> Chain {
        let (n, m) = (self.n, self.m);
        let (sh0, y0) = self.up(x0, rows, threads);
        let mut c = Chain { rows, x0: x0.to_vec(), ..Default::default() };
        match model {
            Model::Rbm => {
                let mut noise = noise;
                let (mut y_prev, mut xk, mut sv, mut yk, mut sh) = (y0.clone(), vec![], vec![], y0.clone(), sh0);
                for _ in 0..k.max(1) {
                    y_prev = match noise.as_deref_mut() {
                        Some(r) => sh_noisy(&sh, r),
                        None => yk.clone(),
                    };
                    (sv, xk) = self.down(&y_prev, rows, threads);
                    (sh, yk) = self.up(&xk, rows, threads);
                }
                c.dv = sv.iter().map(|s| self.fv.d(*s)).collect();
                c.dh = sh.iter().map(|s| self.fh.d(*s)).collect();
                c.ev = (0..rows * n).map(|i| (xk[i] - x0[i]) * c.dv[i]).collect();
                c.eh = (0..rows * m).map(|i| (yk[i] - y0[i]) * c.dh[i]).collect();
                c.loss = (0..rows)
                    .map(|r| {
                        let v: f64 = (0..n).map(|i| f64::from(xk[r * n + i] - x0[r * n + i]).powi(2)).sum();
                        let h: f64 = (0..m).map(|j| f64::from(yk[r * m + j] - y0[r * m + j]).powi(2)).sum();
                        0.5 * (v + h)
                    })
                    .collect();
                c.hid_in = xk.clone();
                (c.y_prev, c.xk, c.yk) = (y_prev, xk, yk);
            }
            Model::Autoencoder => {
                let (sv, x1) = self.down(&y0, rows, threads);
                c.ev = (0..rows * n).map(|i| (x1[i] - x0[i]) * self.fv.d(sv[i])).collect();
                // Back through the decoder's use of W to the hidden pre-activations.
                let mut back = vec![0f32; rows * m];
                gemm(&mut back, &c.ev, Op::N, &self.w, Op::N, rows, m, n, false, threads);
                c.eh = back.iter().zip(&sh0).map(|(g, s)| g * self.fh.d(*s)).collect();
                c.loss = (0..rows)
                    .map(|r| 0.5 * (0..n).map(|i| f64::from(x1[r * n + i] - x0[r * n + i]).powi(2)).sum::<f64>())
                    .collect();
                c.hid_in = x0.to_vec();
                (c.y_prev, c.xk, c.yk) = (y0.clone(), x1, y0.clone());
            }
        }
        c.y0 = y0;
        c
    }

    /// The gradient of the weights and biases, summed over the batch, with sample s's visible
    /// part scaled by `sv[s]` and its hidden part by `sh[s]` (1 for the plain gradient).
    pub fn gradient(&self, c: &Chain, sv: &[f64], sh: &[f64], threads: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (n, m, rows) = (self.n, self.m, c.rows);
        let scale = |e: &[f32], width: usize, s: &[f64]| -> Vec<f32> {
            e.chunks(width).zip(s).flat_map(|(row, a)| row.iter().map(move |v| (f64::from(*v) * a) as f32)).collect()
        };
        let (ev, eh) = (scale(&c.ev, n, sv), scale(&c.eh, m, sh));
        let mut gw = vec![0f32; n * m];
        gemm(&mut gw, &ev, Op::T, &c.y_prev, Op::N, n, m, rows, false, threads);
        gemm(&mut gw, &c.hid_in, Op::T, &eh, Op::N, n, m, rows, true, threads);
        let colsum = |e: &[f32], width: usize| -> Vec<f32> {
            let mut s = vec![0f64; width];
            for row in e.chunks(width) {
                s.iter_mut().zip(row).for_each(|(a, v)| *a += f64::from(*v));
            }
            s.into_iter().map(|v| v as f32).collect()
        };
        (gw, colsum(&ev, n), colsum(&eh, m))
    }
}

fn sh_noisy(s: &[f32], r: &mut StageRng) -> Vec<f32> {
    s.iter().map(|v| (v + normal(r) as f32).max(0.0)).collect()
}

fn sq(v: &[f32]) -> f64 {
    v.iter().map(|a| f64::from(*a).powi(2)).sum()
}

/// α = 1 / (1 + ‖input‖²) for every row of `input` (width `w`): the exact step of a ReLU layer
/// (§2.2).
pub fn per_sample_steps(input: &[f32], w: usize) -> Vec<f64> {
    input.chunks(w).map(|r| 1.0 / (1.0 + sq(r))).collect()
}

/// The batch step without cross-sample terms (§2.2): Σ_s A_s Σ_j F′γ² / Σ_s A_s² Σ_j F′γ²,
/// A_s = 1 + ‖input_s‖², for the masked errors `err` (F′γ with F′ ∈ {0, 1}, so F′γ² = (F′γ)²).
pub fn batch_step(input: &[f32], iw: usize, err: &[f32], ew: usize) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (x, e) in input.chunks(iw).zip(err.chunks(ew)) {
        let a = 1.0 + sq(x);
        let g = sq(e);
        num += a * g;
        den += a * a * g;
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// The exact first-order optimum for the summed update of a batch (§2.2): b = (1 + X Xᵀ) E
/// for the inputs X (L × iw) and masked errors E (L × ew), then Σ E⊙b / Σ (F′⊙b)².
pub fn batch_exact_step(input: &[f32], iw: usize, err: &[f32], mask: &[f32], ew: usize, threads: usize) -> f64 {
    let rows = input.len() / iw.max(1);
    let mut gram = vec![0f32; rows * rows];
    gemm(&mut gram, input, Op::N, input, Op::T, rows, rows, iw, false, threads);
    gram.iter_mut().for_each(|g| *g += 1.0);
    let mut b = vec![0f32; rows * ew];
    gemm(&mut b, &gram, Op::N, err, Op::N, rows, ew, rows, false, threads);
    let num: f64 = err.iter().zip(&b).map(|(e, b)| f64::from(*e) * f64::from(*b)).sum();
    let den: f64 = b.iter().zip(mask).map(|(b, f)| (f64::from(*b) * f64::from(*f)).powi(2)).sum();
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// The co-author's joint step (§2.3), from the chain's v0, v1 = x(k), h0, h1 = y(k).
pub fn published_code_rate(c: &Chain) -> f64 {
    let dot = |a: &[f32], b: &[f32]| -> f64 { a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum() };
    let (v0, v1, h0, h1) = (&c.x0, &c.xk, &c.y0, &c.yk);
    let (s_v10, s_v11, s_h00, s_h01) = (dot(v1, v0), dot(v1, v1), dot(h0, h0), dot(h0, h1));
    let (mut num, mut den) = (0.0, 0.0);
    for (a, b) in h0.iter().zip(h1.iter()) {
        let (a, b) = (f64::from(*a), f64::from(*b));
        let bh = a * (1.0 + s_v10) - b * (1.0 + s_v11);
        num += (a - b) * bh;
        den += bh * bh;
    }
    for (a, b) in v0.iter().zip(v1.iter()) {
        let (a, b) = (f64::from(*a), f64::from(*b));
        let bv = a * (1.0 + s_h00) - b * (1.0 + s_h01);
        num += (a - b) * bv;
        den += bv * bv;
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// The update rule and its state for W, b_v, b_h.
struct Updater {
    step: Step,
    rule: Rule,
    st: [State; 3],
}

impl Updater {
    fn new(step: Step, layer: &Rbm) -> Updater {
        let rule = match step {
            Step::Adam { beta1, beta2, eps, .. } => Rule::Adam { beta1, beta2, eps },
            _ => Rule::Sgd { momentum: 0.0, nesterov: false, convention: Convention::Pylearn2 },
        };
        let st = [rule.state(layer.w.len()), rule.state(layer.bv.len()), rule.state(layer.bh.len())];
        Updater { step, rule, st }
    }

    /// One update from a batch's chain in `epoch` (1-based); returns the step it took (the
    /// rate for constant/adam/published_code, the mean of α_v and α_h for the others).
    fn update(&mut self, l: &mut Rbm, c: &Chain, epoch: usize, threads: usize) -> f64 {
        let rows = c.rows;
        let inv = 1.0 / rows as f64;
        let ones = vec![1.0; rows];
        let mean = vec![inv; rows];
        let (grads, lr, momentum, shown) = match self.step {
            Step::Constant { lr, momentum, final_momentum, switch_epoch } => {
                let mu = if epoch > switch_epoch { final_momentum.unwrap_or(momentum) } else { momentum };
                (l.gradient(c, &mean, &mean, threads), lr, mu, lr)
            }
            Step::Adam { lr, .. } => (l.gradient(c, &mean, &mean, threads), lr, 0.0, lr),
            Step::Adaptive { variant: Variant::PerLayer } => {
                let av: Vec<f64> = per_sample_steps(&c.y_prev, l.m).iter().map(|a| a * inv).collect();
                let ah: Vec<f64> = per_sample_steps(&c.hid_in, l.n).iter().map(|a| a * inv).collect();
                let shown = (av.iter().sum::<f64>() + ah.iter().sum::<f64>()) / 2.0;
                (l.gradient(c, &av, &ah, threads), 1.0, 0.0, shown)
            }
            Step::Adaptive { variant: Variant::Batch } => {
                let av = batch_step(&c.y_prev, l.m, &c.ev, l.n);
                let ah = batch_step(&c.hid_in, l.n, &c.eh, l.m);
                (l.gradient(c, &vec![av; rows], &vec![ah; rows], threads), 1.0, 0.0, (av + ah) / 2.0)
            }
            Step::Adaptive { variant: Variant::BatchExact } => {
                let av = batch_exact_step(&c.y_prev, l.m, &c.ev, &c.dv, l.n, threads);
                let ah = batch_exact_step(&c.hid_in, l.n, &c.eh, &c.dh, l.m, threads);
                (l.gradient(c, &vec![av; rows], &vec![ah; rows], threads), 1.0, 0.0, (av + ah) / 2.0)
            }
            Step::Adaptive { variant: Variant::PublishedCode } => {
                let rate = published_code_rate(c);
                let mu = if epoch > 5 { 0.9 } else { 0.5 };
                let g = l.gradient(c, &ones, &ones, threads);
                (g, rate * inv, mu, rate)
            }
        };
        let rule = match self.rule {
            Rule::Sgd { nesterov, convention, .. } => Rule::Sgd { momentum, nesterov, convention },
            r => r,
        };
        let (gw, gv, gh) = grads;
        rule.step(&mut l.w, &gw, &mut self.st[0], lr);
        rule.step(&mut l.bv, &gv, &mut self.st[1], lr);
        rule.step(&mut l.bh, &gh, &mut self.st[2], lr);
        shown
    }
}

/// A pretrained stack, its per-epoch history and the final losses per layer.
pub struct Pretrained {
    pub layers: Vec<Rbm>,
    pub history: Vec<Value>,
    /// Per layer: (train loss, eval loss) after its last epoch (mean per sample).
    pub losses: Vec<(f64, Option<f64>)>,
}

/// The mean per-sample loss of the deterministic chain over all rows.
pub fn mean_loss(l: &Rbm, x: &[f32], model: Model, k: usize, threads: usize) -> f64 {
    let rows = x.len() / l.n;
    if rows == 0 {
        return f64::NAN;
    }
    l.chain(x, rows, model, k, None, threads).loss.iter().sum::<f64>() / rows as f64
}

/// Pretrains the stack `p` describes on `x` (rows × n); `eval` is monitored only.
pub fn pretrain(
    p: &PretrainParams,
    x: &[f32],
    n: usize,
    eval: Option<&[f32]>,
    seed: u64,
    threads: usize,
    ctx: Option<&Ctx>,
) -> StageResult<Pretrained> {
    let mut init = rng(seed, "init");
    let mut order = rng(seed, "batches");
    let mut noise = rng(seed, "noise");
    let (mut input, mut eval_in) = (x.to_vec(), eval.map(<[f32]>::to_vec));
    let mut width = n;
    let (mut layers, mut history, mut losses) = (Vec::new(), Vec::new(), Vec::new());
    let total = (p.hidden.len() * p.epochs) as u64;
    for (li, &m) in p.hidden.iter().enumerate() {
        let fv = if li == 0 { p.visible } else { Transfer::Relu };
        let mut layer = Rbm::new(width, m, fv, p.init_std, &mut init);
        let mut upd = Updater::new(p.step, &layer);
        let rows = input.len() / width;
        let batch = p.batch.clamp(1, rows.max(1));
        let mut xb = vec![0f32; batch * width];
        let mut last = (f64::NAN, None);
        for epoch in 1..=p.epochs {
            if let Some(c) = ctx {
                c.check_cancel()?;
            }
            let idx = permutation(&mut order, rows);
            let (mut steps, mut nb) = (0.0, 0usize);
            for chunk in idx.chunks(batch) {
                let b = chunk.len();
                for (r, &i) in chunk.iter().enumerate() {
                    xb[r * width..(r + 1) * width].copy_from_slice(&input[i * width..(i + 1) * width]);
                }
                let noisy = if p.sampling == Sampling::NoisyRelu { Some(&mut noise) } else { None };
                let chain = layer.chain(&xb[..b * width], b, p.model, p.cd_k, noisy, threads);
                steps += upd.update(&mut layer, &chain, epoch, threads);
                nb += 1;
            }
            let train_loss = mean_loss(&layer, &input, p.model, p.cd_k, threads);
            if !train_loss.is_finite() {
                return Err(StageError::param(
                    "step",
                    format!("the reconstruction loss of layer {} became {train_loss} at epoch {epoch}", li + 1),
                ));
            }
            let eval_loss = eval_in.as_deref().map(|e| mean_loss(&layer, e, p.model, p.cd_k, threads));
            let mut h = serde_json::Map::new();
            h.insert("epoch".into(), json!(li * p.epochs + epoch));
            h.insert("layer".into(), json!(li + 1));
            h.insert("layer_epoch".into(), json!(epoch));
            h.insert("train_loss".into(), json!(train_loss));
            if let Some(e) = eval_loss {
                h.insert("eval_loss".into(), json!(e));
            }
            h.insert("step".into(), json!(steps / nb.max(1) as f64));
            history.push(Value::Object(h));
            last = (train_loss, eval_loss);
            if let Some(c) = ctx {
                c.report(
                    (li * p.epochs + epoch) as u64,
                    total,
                    format!("layer {} epoch {epoch} loss {train_loss:.5}", li + 1),
                );
            }
        }
        losses.push(last);
        // The next layer trains on this one's (noise-free) hidden outputs.
        input = layer.up(&input, rows, threads).1;
        eval_in = eval_in.map(|e| layer.up(&e, e.len() / width, threads).1);
        width = m;
        layers.push(layer);
    }
    Ok(Pretrained { layers, history, losses })
}

/// The encoder stack as an `Mlp` (ReLU layers) that `train` takes through its `pretrained`
/// input.
pub fn encoder(layers: &[Rbm]) -> Mlp {
    let mut sizes = vec![layers.first().map_or(0, |l| l.n)];
    sizes.extend(layers.iter().map(|l| l.m));
    let mut mlp = Mlp::new(&sizes, &vec![Activation::Relu; layers.len()], &[]);
    for (dst, l) in mlp.layers.iter_mut().zip(layers) {
        dst.w.clone_from(&l.w);
        dst.b.clone_from(&l.bh);
    }
    mlp
}

pub struct Pretrain;

impl TypedStage for Pretrain {
    type Params = PretrainParams;
    const KIND: &'static str = "pretrain";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Greedy layer-wise unsupervised pretraining of a ReLU stack (the ReLU RBM abstract): RBMs trained by reconstruction error along a CD-k chain, or tied-weight autoencoders, with step policies constant, adam and adaptive (variants per_layer [the exact ReLU steepest-descent step, derived in rbm_adaptive_step_notes.md §2.2], batch [§2.2 without cross terms], batch_exact [§2.2, the exact first-order batch optimum], published_code [the co-author's joint step, §2.3]); none is the paper's printed equation, which could not be read. Outputs: model (the encoder, for train's `pretrained` input), history (loss and step per epoch, all layers, epochs counted across the stack), layer<L>_history (layer L's epochs alone), metrics.";
    const INPUTS: &'static [InputSlot] = &[
        InputSlot::one("data", "training dataset (its features; targets are ignored)"),
        InputSlot::optional("eval", "dataset whose reconstruction loss is monitored per epoch"),
    ];

    fn validate(p: &PretrainParams) -> Result<(), ParamError> {
        if p.hidden.is_empty() || p.hidden.contains(&0) {
            return Err(ParamError::new("hidden", "needs at least one layer, each with at least one unit"));
        }
        if p.epochs == 0 || p.batch == 0 || p.cd_k == 0 {
            let name = if p.epochs == 0 {
                "epochs"
            } else if p.batch == 0 {
                "batch"
            } else {
                "cd_k"
            };
            return Err(ParamError::new(name, "must be at least 1"));
        }
        if !(p.init_std.is_finite() && p.init_std >= 0.0) {
            return Err(ParamError::new("init_std", "must be a number ≥ 0"));
        }
        match p.step {
            Step::Constant { lr, .. } | Step::Adam { lr, .. } if !(lr.is_finite() && lr > 0.0) => {
                Err(ParamError::new("step", "lr must be a positive number"))
            }
            Step::Adaptive { .. } if p.model == Model::Autoencoder => Err(ParamError::new(
                "step",
                "the adaptive steps are derived for the RBM's reconstruction error on both layers (rbm_adaptive_step_notes.md §2); model = \"autoencoder\" takes step = { name = \"constant\", lr = … } or { name = \"adam\" }",
            )),
            _ => Ok(()),
        }
    }

    fn outputs(p: &PretrainParams) -> Vec<String> {
        let mut v = vec!["model".to_string(), "history".to_string(), "metrics".to_string()];
        v.extend((1..=p.hidden.len()).map(|l| format!("layer{l}_history")));
        v
    }

    fn threads(_p: &PretrainParams) -> usize {
        usize::MAX
    }

    fn run(&self, p: &PretrainParams, ctx: &Ctx) -> StageResult<Metrics> {
        let d = Dataset::read(&ctx.input("data")?.path)?;
        d.validate("data")?;
        let ev = match ctx.optional_input("eval") {
            Some(a) => {
                let e = Dataset::read(&a.path)?;
                if e.p() != d.p() {
                    return Err(StageError::param("eval", format!("eval has {} features, data has {}", e.p(), d.p())));
                }
                Some(e.x)
            }
            None => None,
        };
        let t = pretrain(p, &d.x, d.p(), ev.as_deref(), ctx.seed, ctx.threads, Some(ctx))?;
        let visible: Vec<&Vec<f32>> = t.layers.iter().map(|l| &l.bv).collect();
        let info = json!({"features": d.features, "pretrain": p, "visible_bias": visible});
        encoder(&t.layers).save(&ctx.output("model"), info)?;
        write_json(&ctx.output("history"), &t.history)?;
        for l in 1..=p.hidden.len() {
            let mine: Vec<Value> = t
                .history
                .iter()
                .filter(|h| h["layer"] == json!(l))
                .map(|h| {
                    let mut h = h.clone();
                    h["epoch"] = h["layer_epoch"].clone();
                    h
                })
                .collect();
            write_json(&ctx.output(&format!("layer{l}_history")), &mine)?;
        }
        let mut m = Metrics::new();
        for (i, (train, eval)) in t.losses.iter().enumerate() {
            m.insert(format!("recon_loss_layer{}", i + 1), json!(train));
            if let Some(e) = eval {
                m.insert(format!("eval_recon_loss_layer{}", i + 1), json!(e));
            }
        }
        if let Some((train, eval)) = t.losses.first() {
            m.insert("recon_loss".into(), json!(train));
            if let Some(e) = eval {
                m.insert("eval_recon_loss".into(), json!(e));
            }
        }
        write_json(&ctx.output("metrics"), &Value::Object(m.clone()))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn layer(n: usize, m: usize, w: &[f32], bv: &[f32], bh: &[f32], fv: Transfer) -> Rbm {
        Rbm { n, m, w: w.to_vec(), bv: bv.to_vec(), bh: bh.to_vec(), fv, fh: Transfer::Relu }
    }

    /// One `per_layer` step on a ReLU layer trained alone (inputs x, targets t) puts every
    /// active unit exactly on its target: S_j moves by −α γ_j (1 + ‖x‖²) = −γ_j [R §2.2]. An
    /// inactive unit has no gradient and stays off.
    #[test]
    fn per_layer_step_zeroes_the_error_of_every_active_unit() {
        let x = [0.5f32, -1.0, 2.0];
        let w = [0.4f32, -0.3, 0.2, 0.1, 0.5, -0.6, 0.3, 0.2, -0.4];
        let mut l = layer(3, 3, &w, &[0.0; 3], &[0.1, 0.0, 0.0], Transfer::Relu);
        let (s, y) = l.up(&x, 1, 1);
        // S = (0.2 − 0.1 + 0.6 + 0.1, −0.15 − 0.5 + 0.4, 0.1 + 0.6 − 0.8) = (0.8, −0.25, −0.1).
        assert!((s[0] - 0.8).abs() < 1e-6 && s[1] < 0.0 && s[2] < 0.0, "{s:?}");
        let t = [0.6f32, 0.3, 0.2];
        let c = Chain {
            rows: 1,
            y_prev: vec![0.0; 3],
            ev: vec![0.0; 3],
            eh: (0..3).map(|j| (y[j] - t[j]) * Transfer::Relu.d(s[j])).collect(),
            hid_in: x.to_vec(),
            ..Default::default()
        };
        let alpha = per_sample_steps(&x, 3);
        assert!((alpha[0] - 1.0 / 6.25).abs() < 1e-12);
        let (gw, _, gh) = l.gradient(&c, &[1.0], &alpha, 1);
        l.w.iter_mut().zip(&gw).for_each(|(w, g)| *w -= g);
        l.bh.iter_mut().zip(&gh).for_each(|(b, g)| *b -= g);
        let (_, y2) = l.up(&x, 1, 1);
        assert!((y2[0] - t[0]).abs() < 1e-6, "active unit: {} vs {}", y2[0], t[0]);
        assert_eq!(&y2[1..], &[0.0, 0.0], "inactive units stay off");
    }

    /// The RBM rule's two parts against central differences (f64, independent loops): the
    /// visible part is ∂/∂W of ½‖F(y(0)Wᵀ + b_v) − x(0)‖² with y(0) held, the hidden part ∂/∂W
    /// of ½‖F(x(1)W + b_h) − y(0)‖² with x(1), y(0) held (CD-1, deterministic). The
    /// autoencoder's gradient is the full derivative of ½‖x(1) − x(0)‖².
    #[test]
    fn gradients_match_finite_differences() {
        let (n, m, rows) = (4, 3, 5);
        let mut r = rng(3, "test");
        let mut l = Rbm::new(n, m, Transfer::Linear, 0.5, &mut r);
        l.bh.iter_mut().for_each(|b| *b += 0.3);
        let x0: Vec<f32> = (0..rows * n).map(|_| (normal(&mut r) * 0.5 + 0.5) as f32).collect();
        let f = |s: f64, relu: bool| if relu { s.max(0.0) } else { s };
        let w64 = |l: &Rbm| l.w.iter().map(|v| f64::from(*v)).collect::<Vec<f64>>();
        // Forward maps in f64: up(x, W) and down(y, W).
        let up = |x: &[f64], w: &[f64], bh: &[f32]| -> Vec<f64> {
            (0..rows * m)
                .map(|i| {
                    let (rr, j) = (i / m, i % m);
                    f(f64::from(bh[j]) + (0..n).map(|a| x[rr * n + a] * w[a * m + j]).sum::<f64>(), true)
                })
                .collect()
        };
        let down = |y: &[f64], w: &[f64], bv: &[f32]| -> Vec<f64> {
            (0..rows * n)
                .map(|i| {
                    let (rr, a) = (i / n, i % n);
                    f(f64::from(bv[a]) + (0..m).map(|j| y[rr * m + j] * w[a * m + j]).sum::<f64>(), false)
                })
                .collect()
        };
        let half_sq = |a: &[f64], b: &[f64]| 0.5 * a.iter().zip(b).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
        let x064: Vec<f64> = x0.iter().map(|v| f64::from(*v)).collect();
        let w0 = w64(&l);
        let y0 = up(&x064, &w0, &l.bh);
        let x1 = down(&y0, &w0, &l.bv);
        let c = l.chain(&x0, rows, Model::Rbm, 1, None, 1);
        let ones = vec![1.0; rows];
        let zeros = vec![0.0; rows];
        let (gv, _, _) = l.gradient(&c, &ones, &zeros, 1);
        let (gh, _, _) = l.gradient(&c, &zeros, &ones, 1);
        let h = 1e-6;
        for i in 0..n * m {
            let (mut a, mut b) = (w0.clone(), w0.clone());
            a[i] += h;
            b[i] -= h;
            let fd_v = (half_sq(&down(&y0, &a, &l.bv), &x064) - half_sq(&down(&y0, &b, &l.bv), &x064)) / (2.0 * h);
            let fd_h = (half_sq(&up(&x1, &a, &l.bh), &y0) - half_sq(&up(&x1, &b, &l.bh), &y0)) / (2.0 * h);
            assert!((fd_v - f64::from(gv[i])).abs() < 1e-4, "visible W[{i}]: {fd_v} vs {}", gv[i]);
            assert!((fd_h - f64::from(gh[i])).abs() < 1e-4, "hidden W[{i}]: {fd_h} vs {}", gh[i]);
        }
        let c = l.chain(&x0, rows, Model::Autoencoder, 1, None, 1);
        let (g, _, gbh) = l.gradient(&c, &ones, &ones, 1);
        let ae = |w: &[f64], bh: &[f32]| half_sq(&down(&up(&x064, w, bh), w, &l.bv), &x064);
        for i in 0..n * m {
            let (mut a, mut b) = (w0.clone(), w0.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (ae(&a, &l.bh) - ae(&b, &l.bh)) / (2.0 * h);
            assert!((fd - f64::from(g[i])).abs() < 1e-4, "autoencoder W[{i}]: {fd} vs {}", g[i]);
        }
        for j in 0..m {
            let (mut a, mut b) = (l.bh.clone(), l.bh.clone());
            a[j] += 1e-3;
            b[j] -= 1e-3;
            let fd = (ae(&w0, &a) - ae(&w0, &b)) / 2e-3;
            assert!((fd - f64::from(gbh[j])).abs() < 1e-3, "autoencoder b_h[{j}]: {fd} vs {}", gbh[j]);
        }
        assert_eq!(c.loss.len(), rows);
    }

    /// The co-author's joint step by hand (numpy, §2.3 with B = 2, linear visible units):
    ///   W = [[.5, -.2], [.3, .8]]; bv = [.1, -.1]; bh = [.05, 0]; v0 = [[1, .5], [.2, .9]]
    ///   h0 = relu(v0 W + bh); v1 = h0 Wᵀ + bv; h1 = relu(v1 W + bh)
    ///   b_h = h0 (1 + Σ v1 v0) − h1 (1 + Σ v1 v1); b_v = v0 (1 + Σ h0 h0) − v1 (1 + Σ h0 h1)
    ///   rate = (Σ (v0 − v1) b_v + Σ (h0 − h1) b_h) / (Σ b_h² + Σ b_v²)   → 0.37165002253006824
    ///   W −= rate/B ((v1 − v0)ᵀ h0 + v1ᵀ ((h1 − h0)·(S_h1 > 0)))
    ///        → [[0.61012882, -0.16139091], [0.38579912, 0.88097065]]
    ///   bv → [0.21446821, 0.00406201], bh → [0.13845271, 0.06035596]
    /// (first update: the momentum term is zero).
    #[test]
    fn published_code_step_by_hand() {
        let mut l = layer(2, 2, &[0.5, -0.2, 0.3, 0.8], &[0.1, -0.1], &[0.05, 0.0], Transfer::Linear);
        let c = l.chain(&[1.0, 0.5, 0.2, 0.9], 2, Model::Rbm, 1, None, 1);
        assert!((published_code_rate(&c) - 0.37165002253006824).abs() < 1e-6);
        let step = Step::Adaptive { variant: Variant::PublishedCode };
        let mut u = Updater::new(step, &l);
        u.update(&mut l, &c, 1, 1);
        let close = |got: &[f32], want: &[f64]| {
            for (g, w) in got.iter().zip(want) {
                assert!((f64::from(*g) - w).abs() < 1e-6, "{got:?} vs {want:?}");
            }
        };
        close(&l.w, &[0.61012882, -0.16139091, 0.38579912, 0.88097065]);
        close(&l.bv, &[0.21446821, 0.00406201]);
        close(&l.bh, &[0.13845271, 0.06035596]);
    }

    /// The batch step by hand: inputs [[1, 2], [0, 1]], masked errors [[0.5, 0], [1, −1]]:
    /// A = (6, 2), Σγ² = (0.25, 2): (6·0.25 + 2·2)/(36·0.25 + 4·2) = 5.5/17. One sample: the
    /// per-layer step 1/(1 + ‖x‖²).
    #[test]
    fn batch_step_by_hand() {
        let s = batch_step(&[1.0, 2.0, 0.0, 1.0], 2, &[0.5, 0.0, 1.0, -1.0], 2);
        assert!((s - 5.5 / 17.0).abs() < 1e-12, "{s}");
        let one = batch_step(&[1.0, 2.0], 2, &[0.5, 0.0], 2);
        assert!((one - per_sample_steps(&[1.0, 2.0], 2)[0]).abs() < 1e-12);
        assert_eq!(batch_step(&[1.0, 2.0], 2, &[0.0, 0.0], 2), 0.0, "no error, no step");
    }

    /// The exact batch step by hand: inputs [[1, 2], [0, 1]], masked errors [[0.5, 0], [1, −1]],
    /// every unit active: 1 + X Xᵀ = [[6, 3], [3, 2]], b = [[6, −3], [3.5, −2]],
    /// Σ e·b = 3 + 3.5 + 2 = 8.5, Σ b² = 36 + 9 + 12.25 + 4 = 61.25: α = 8.5/61.25. One
    /// sample: 1/(1 + ‖x‖²). An inactive unit's b leaves the denominator.
    #[test]
    fn batch_exact_step_by_hand() {
        let ones = [1.0; 4];
        let s = batch_exact_step(&[1.0, 2.0, 0.0, 1.0], 2, &[0.5, 0.0, 1.0, -1.0], &ones, 2, 1);
        assert!((s - 8.5 / 61.25).abs() < 1e-9, "{s}");
        let one = batch_exact_step(&[1.0, 2.0], 2, &[0.5, -0.2], &ones, 2, 1);
        assert!((one - 1.0 / 6.0).abs() < 1e-9, "{one}");
        // Unit 2 of sample 1 off (F′ = 0, so its error is 0 too): b = [[6, −3], [3.5, −2]] as
        // before, its b² = 9 drops: 8.5 / 52.25.
        let s = batch_exact_step(&[1.0, 2.0, 0.0, 1.0], 2, &[0.5, 0.0, 1.0, -1.0], &[1.0, 0.0, 1.0, 1.0], 2, 1);
        assert!((s - 8.5 / 52.25).abs() < 1e-9, "{s}");
    }

    fn toy(rows: usize, n: usize) -> Vec<f32> {
        let mut r = rng(5, "toy");
        (0..rows * n).map(|_| r.random::<f32>()).collect()
    }

    /// Every policy and model trains deterministically from the seed; the encoder has the
    /// stack's shape; the history has one entry per layer epoch.
    #[test]
    fn the_seed_fixes_every_policy() {
        let x = toy(50, 6);
        let steps = [
            Step::Constant { lr: 0.01, momentum: 0.5, final_momentum: Some(0.9), switch_epoch: 1 },
            Step::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            Step::Adaptive { variant: Variant::PerLayer },
            Step::Adaptive { variant: Variant::Batch },
            Step::Adaptive { variant: Variant::BatchExact },
            Step::Adaptive { variant: Variant::PublishedCode },
        ];
        for step in steps {
            let p = PretrainParams { hidden: vec![5, 3], step, epochs: 3, batch: 16, ..Default::default() };
            let a = pretrain(&p, &x, 6, Some(&x[..60]), 1, 1, None).unwrap();
            let b = pretrain(&p, &x, 6, Some(&x[..60]), 1, 2, None).unwrap();
            let c = pretrain(&p, &x, 6, None, 2, 1, None).unwrap();
            assert_eq!(a.layers, b.layers, "{step:?}");
            assert_ne!(a.layers, c.layers, "{step:?}");
            assert_eq!(a.history.len(), 6);
            assert_eq!(a.history[5]["layer"], 2);
            let e = encoder(&a.layers);
            assert_eq!((e.inputs(), e.outputs()), (6, 3));
        }
    }

    /// The adaptive steps are derived for the RBM's error: an autoencoder with one is refused
    /// at plan time, naming `step`.
    #[test]
    fn adaptive_autoencoder_is_refused() {
        let p = PretrainParams { model: Model::Autoencoder, ..Default::default() };
        assert_eq!(Pretrain::validate(&p).unwrap_err().param, "step");
        let p = PretrainParams {
            step: Step::Constant { lr: 0.0, momentum: 0.0, final_momentum: None, switch_epoch: 5 },
            ..Default::default()
        };
        assert_eq!(Pretrain::validate(&p).unwrap_err().param, "step");
    }
}
