//! `train`: fit an MLP (or linear / logistic / softmax regression, the zero-hidden case) to a
//! dataset artifact and write its weights (safetensors), the weights at the epochs listed in
//! `save_at` (`epoch100`, `epoch200`, … so one 200-epoch run yields a table's 100- and
//! 200-epoch columns) and its history (per epoch: train loss, learning rate, and metrics of
//! the optional `eval` dataset).
//!
//! Learning-rate policies: `fixed`; `dgex_decay` (the D-GEX authors' code: ×0.9 whenever the
//! MAE on a fixed training monitor subset rose, floor 1e-5); `exp_decay` (LogGENE's
//! baseline); `lipschitz` (LALR: lr = scale / L recomputed once per epoch in evaluation mode
//! from Kz = max over batches of ‖penultimate activations‖_F and the loss's closed form, see
//! [`crate::nn::loss::Loss::lipschitz`]), with presets `paper` and `published_code` for the
//! choices where the LALR paper and its authors' code differ.

use crate::dataset::Dataset;
use crate::nn::act::Activation;
use crate::nn::init::Init;
use crate::nn::lbfgs::{Lbfgs, LbfgsConfig};
use crate::nn::loss::{sbqc_probability, Loss};
use crate::nn::mlp::{Mlp, Workspace};
use crate::nn::optim::{Optimizer, State};
use crate::params::ParamError;
use crate::rng::{permutation, rng, Rng};
use crate::{stage_params, write_json, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LalrVariant {
    /// LALR paper: m = batch size, ‖y‖ of the targets, scale 0.3, lr clamped to [1e-5, 5e-4].
    Paper,
    /// The authors' code: m = training rows, ‖X‖ (inputs) in place of ‖y‖, scale 0.5, floor 1e-5, no cap.
    PublishedCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MChoice {
    Batch,
    TrainRows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum YNorm {
    Targets,
    Inputs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Policy {
    Fixed,
    /// D-GEX code: after each epoch, if the monitor MAE rose, lr ×= factor; lr ≥ floor.
    DgexDecay {
        #[serde(default = "f09")]
        factor: f64,
        #[serde(default = "floor")]
        floor: f64,
        #[serde(default = "monitor")]
        monitor_rows: usize,
    },
    /// lr_e = lr · gamma^(e−1).
    ExpDecay {
        gamma: f64,
    },
    /// LALR. `variant` sets every knob; any knob given explicitly overrides it.
    Lipschitz {
        variant: LalrVariant,
        #[serde(default)]
        m: Option<MChoice>,
        #[serde(default)]
        y_norm: Option<YNorm>,
        #[serde(default)]
        scale: Option<f64>,
        #[serde(default)]
        floor: Option<f64>,
        /// Upper clamp; a negative value means no cap.
        #[serde(default)]
        cap: Option<f64>,
    },
    /// LipschitzLR's adaptive optimizers as its authors' Keras callbacks compute them, once per
    /// epoch in evaluation mode: Kz = max over batches of ‖penultimate‖_F, S = max over batches
    /// of ‖Z∘Z‖_F, K = c·Kz + λ·max‖W‖_F with c the loss's bound per unit Kz (m = batch), and
    /// S = c²·S + 2λ·max‖W‖·c·Kz (the estimate of (max‖∇L‖)² "with the middle term removed").
    LipschitzAdaptive {
        rule: AdaptiveRule,
        /// AdaMo's fixed first-epoch learning rate (the paper tried 0.1, 0.5, 1).
        #[serde(default = "first_lr")]
        first_lr: f64,
        /// Divide the moving averages by 1 − βᵗ (the paper's §6.4; the authors' code did not).
        #[serde(default)]
        bias_correction: bool,
    },
}

/// Which of LipschitzLR's adaptive algorithms `lipschitz_adaptive` schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdaptiveRule {
    /// lr = 1/K, K = (k−1)Kz/(k·bs) + λ·max‖W‖ (softmax CE; other losses use their own bound).
    Sgd,
    /// AdaMo (Alg. 1): first epoch at `first_lr` with K1 = `first_lr`, then K1 ← 0.9·K1 + 0.1·K, lr = 1/K1.
    Momentum,
    /// Adaptive RMSprop (Alg. 2, the authors' code): K2 ← 0.9·K2 + 0.1·S, lr = (√K2 + 1e-7)/Kz.
    Rmsprop,
    /// Auto-Adam (Alg. 3, the authors' code): K1 ← 0.9·K1 + 0.1·K, K2 ← 0.999·K2 + 0.001·S, lr = (√K2 + 1e-7)/K1.
    Adam,
}

fn first_lr() -> f64 {
    0.1
}

fn f09() -> f64 {
    0.9
}
fn floor() -> f64 {
    1e-5
}
fn monitor() -> usize {
    5000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Batching {
    /// Each step draws `batch` rows without replacement, independently of other steps (the
    /// LALR code: `np.random.choice(N, 200, replace=False)`, 100 steps per epoch).
    Random,
    /// A seeded permutation per epoch, cut into consecutive batches.
    Shuffle,
}

stage_params! {
    /// Params of `train`.
    pub struct TrainParams {
        /// Hidden layer widths; [] is linear / logistic / softmax regression.
        hidden: Vec<usize> = vec![500],
        /// Activation of every hidden layer, e.g. { name = "tanh" }, { name = "arelu", k = 0.6, n = 1.2 } or { name = "prelu", learnable = true } (L-BFGS keeps PReLU slopes fixed).
        activation: Activation = Activation::Tanh,
        /// Per-hidden-layer activations (overrides `activation` when non-empty).
        activations: Vec<Activation> = vec![],
        /// Activation of the output layer (identity for regression and for bce / softmax_ce / sbqc logits).
        output_activation: Activation = Activation::Identity,
        /// Dropout probability on the input of each layer (hidden layers then output); [] = none.
        dropout: Vec<f64> = vec![],
        /// Initializer of the hidden layers, e.g. { name = "glorot_uniform" }.
        init: Init = Init::TorchDefault,
        /// Initializer of the output layer (default: `init`). D-GEX: { name = "uniform", a = 1e-4 }.
        output_init: Option<Init> = None,
        /// Loss, e.g. { name = "mse_sum" } (D-GEX), { name = "log_cosh" }, { name = "sbqc", tau = 0.5 }.
        loss: Loss = Loss::Mse,
        /// Optimizer, e.g. { name = "sgd", momentum = 0.5, convention = "pylearn2" } or { name = "adam" }.
        optimizer: Optimizer = Optimizer::Sgd { momentum: 0.0, nesterov: false, convention: crate::nn::optim::Convention::Pytorch },
        /// Initial (or fixed) learning rate. D-GEX: 5e-4 with one hidden layer.
        lr: f64 = 0.01,
        /// Learning-rate policy: { name = "fixed" }, { name = "dgex_decay" }, { name = "exp_decay", gamma = 0.95 }, { name = "lipschitz", variant = "paper" }.
        policy: Policy = Policy::Fixed,
        /// Learning-rate multiplier of the weights of every layer after the first (D-GEX: 3.0).
        lr_scale_after_first: f64 = 1.0,
        /// L2 penalty λ (adds λw to gradients and λ·max‖W‖ to the Lipschitz constant).
        weight_decay: f64 = 0.0,
        /// Number of epochs.
        epochs: usize = 10,
        /// Rows per batch.
        batch: usize = 200,
        /// "random" (independent draws per step) or "shuffle" (a permutation per epoch).
        batching: Batching = Batching::Shuffle,
        /// Steps per epoch; 0 = rows / batch.
        steps_per_epoch: usize = 0,
        /// Also save the weights after these epochs (outputs `epoch<E>`).
        save_at: Vec<usize> = vec![],
        /// "cpu" (a "cuda" build is not available yet).
        device: String = "cpu".into(),
    }
}

pub struct Train;

/// Targets as the network sees them: regression targets, 0/1 for binary losses, one-hot.
pub fn targets_for(d: &Dataset, loss: &Loss) -> StageResult<(Vec<f32>, usize)> {
    match loss {
        Loss::Bce | Loss::Sbqc { .. } => {
            let l = d
                .labels
                .as_ref()
                .ok_or_else(|| StageError::param("loss", "binary losses need a dataset with labels"))?;
            if l.iter().any(|v| *v != 0 && *v != 1) {
                return Err(StageError::param("loss", "binary losses need labels 0 and 1"));
            }
            Ok((l.iter().map(|v| *v as f32).collect(), 1))
        }
        Loss::SoftmaxCe => {
            let l =
                d.labels.as_ref().ok_or_else(|| StageError::param("loss", "softmax_ce needs a dataset with labels"))?;
            let k = d.classes.len().max(l.iter().copied().max().unwrap_or(0) as usize + 1);
            let mut y = vec![0f32; l.len() * k];
            for (i, c) in l.iter().enumerate() {
                y[i * k + *c as usize] = 1.0;
            }
            Ok((y, k))
        }
        _ => {
            if d.q() == 0 {
                return Err(StageError::param("loss", "regression losses need a dataset with target columns"));
            }
            let heads = loss.outputs_per_target();
            if heads == 1 {
                return Ok((d.y.clone(), d.q()));
            }
            // Quantile heads: the targets repeated once per head, head-major.
            let q = d.q();
            let y = d.y.chunks(q).flat_map(|row| (0..heads).flat_map(move |_| row.iter().copied())).collect();
            Ok((y, q * heads))
        }
    }
}

/// Evaluation metrics of predictions (regression: mae, rmse; classification: accuracy, log_loss).
pub fn quick_metrics(pred: &[f32], y: &[f32], cols: usize, loss: &Loss) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let n = (pred.len() / cols.max(1)).max(1);
    match loss {
        Loss::SoftmaxCe => {
            let correct = (0..n)
                .filter(|&r| {
                    let p = &pred[r * cols..(r + 1) * cols];
                    let t = &y[r * cols..(r + 1) * cols];
                    argmax(p) == argmax(t)
                })
                .count();
            m.insert("accuracy".into(), (correct as f64 / n as f64).into());
        }
        Loss::Bce | Loss::Sbqc { .. } => {
            let prob = |z: f32| match loss {
                Loss::Sbqc { tau } => sbqc_probability(z as f64, *tau),
                _ => 1.0 / (1.0 + (-(z as f64)).exp()),
            };
            let correct = pred.iter().zip(y).filter(|(p, t)| (prob(**p) > 0.5) == (**t > 0.5)).count();
            m.insert("accuracy".into(), (correct as f64 / n as f64).into());
        }
        _ => {
            let (mut a, mut s) = (0f64, 0f64);
            for (p, t) in pred.iter().zip(y) {
                let e = (*p as f64) - (*t as f64);
                a += e.abs();
                s += e * e;
            }
            let k = pred.len().max(1) as f64;
            m.insert("mae".into(), (a / k).into());
            m.insert("rmse".into(), (s / k).sqrt().into());
        }
    }
    m
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn frob(v: &[f32]) -> f64 {
    v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt()
}

/// Resolved LALR knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lalr {
    pub m: MChoice,
    pub y_norm: YNorm,
    pub scale: f64,
    pub floor: f64,
    pub cap: f64,
}

pub fn lalr_knobs(p: &Policy) -> Option<Lalr> {
    let Policy::Lipschitz { variant, m, y_norm, scale, floor, cap } = p else { return None };
    let base = match variant {
        LalrVariant::Paper => Lalr { m: MChoice::Batch, y_norm: YNorm::Targets, scale: 0.3, floor: 1e-5, cap: 5e-4 },
        LalrVariant::PublishedCode => {
            Lalr { m: MChoice::TrainRows, y_norm: YNorm::Inputs, scale: 0.5, floor: 1e-5, cap: f64::INFINITY }
        }
    };
    Some(Lalr {
        m: m.unwrap_or(base.m),
        y_norm: y_norm.unwrap_or(base.y_norm),
        scale: scale.unwrap_or(base.scale),
        floor: floor.unwrap_or(base.floor),
        cap: match cap {
            Some(c) if *c < 0.0 => f64::INFINITY,
            Some(c) => *c,
            None => base.cap,
        },
    })
}

/// Trains; returns the model, the history and the models saved at `save_at`.
pub struct Trained {
    pub model: Mlp,
    pub history: Vec<serde_json::Value>,
    pub saved: Vec<(usize, Mlp)>,
}

#[allow(clippy::too_many_arguments)]
pub fn fit(
    p: &TrainParams,
    x: &[f32],
    y: &[f32],
    q: usize,
    eval: Option<(&[f32], &[f32])>,
    seed: u64,
    threads: usize,
    ctx: Option<&Ctx>,
) -> StageResult<Trained> {
    let rows = y.len() / q;
    let pin = x.len().checked_div(rows).unwrap_or(0);
    let mut sizes = vec![pin];
    sizes.extend(&p.hidden);
    sizes.push(q);
    let mut acts: Vec<Activation> =
        if p.activations.is_empty() { vec![p.activation; p.hidden.len()] } else { p.activations.clone() };
    acts.push(p.output_activation);
    let dropout: Vec<f32> = p.dropout.iter().map(|v| *v as f32).collect();
    let mut model = Mlp::new(&sizes, &acts, &dropout);
    let mut init_rng = rng(seed, "init");
    let nl = model.layers.len();
    for (l, layer) in model.layers.iter_mut().enumerate() {
        let init = if l + 1 == nl { p.output_init.unwrap_or(p.init) } else { p.init };
        init.fill(&mut layer.w, &mut layer.b, layer.fan_in, layer.fan_out, &mut init_rng);
    }
    let batch = p.batch.min(rows).max(1);
    let steps = if p.steps_per_epoch > 0 { p.steps_per_epoch } else { (rows / batch).max(1) };
    let mut ws = model.workspace(batch);
    let mut states: Vec<(State, State)> =
        model.layers.iter().map(|l| (p.optimizer.state(l.w.len()), p.optimizer.state(l.b.len()))).collect();
    let mut slope_states: Vec<State> = model.layers.iter().map(|_| p.optimizer.state(1)).collect();
    let mut batch_rng = rng(seed, "batches");
    let mut drop_rng = rng(seed, "dropout");
    let mut lr = p.lr;
    let lalr = lalr_knobs(&p.policy);
    // D-GEX's training monitor: a fixed random subset of the training rows.
    let monitor: Vec<usize> = match &p.policy {
        Policy::DgexDecay { monitor_rows, .. } => {
            let mut perm = permutation(&mut rng(seed, "monitor"), rows);
            perm.truncate((*monitor_rows).min(rows));
            perm.sort_unstable();
            perm
        }
        _ => vec![],
    };
    let mut last_monitor = f64::INFINITY;
    // Moving averages of `lipschitz_adaptive`.
    let (mut ema1, mut ema2) = (0f64, 0f64);
    let mut lbfgs = match p.optimizer {
        Optimizer::Lbfgs { max_iter, history, tolerance_grad, tolerance_change } => {
            Some(Lbfgs::new(LbfgsConfig { max_iter, history, tolerance_grad, tolerance_change }))
        }
        _ => None,
    };
    let mut history = Vec::new();
    let mut saved = Vec::new();
    let mut idx: Vec<usize> = (0..rows).collect();
    let mut grad_scratch = vec![0f32; batch * q];
    for epoch in 1..=p.epochs {
        if let Some(c) = ctx {
            c.check_cancel()?;
        }
        let mut lalr_info = serde_json::Value::Null;
        if let Some(k) = lalr {
            let BatchNorms { kz, ka, ky, .. } = batch_norms(&model, &mut ws, x, y, batch, threads);
            let (m, ynorm) = match k.m {
                MChoice::Batch => (
                    batch as f64,
                    match k.y_norm {
                        YNorm::Targets => ky,
                        YNorm::Inputs => max_batch_norm(x, pin, rows, batch),
                    },
                ),
                MChoice::TrainRows => (
                    rows as f64,
                    match k.y_norm {
                        YNorm::Targets => frob(y),
                        YNorm::Inputs => frob(x),
                    },
                ),
            };
            let classes = q;
            let mut l = p.loss.lipschitz(kz, ka, ynorm, m, classes);
            if p.weight_decay > 0.0 {
                l += p.weight_decay * max_weight_norm(&model);
            }
            let raw = k.scale / l;
            lr = raw.clamp(k.floor, k.cap);
            lalr_info =
                serde_json::json!({"kz": kz, "ka": ka, "y_norm": ynorm, "m": m, "lipschitz": l, "unclamped_lr": raw});
        }
        if let Policy::LipschitzAdaptive { rule, first_lr, bias_correction } = p.policy {
            let BatchNorms { kz, ka, ky, sq } = batch_norms(&model, &mut ws, x, y, batch, threads);
            let c = p.loss.lipschitz(1.0, ka, ky, batch as f64, q);
            let maxw = max_weight_norm(&model);
            let lam = p.weight_decay;
            let k_ = c * kz + lam * maxw;
            let s_ = c * c * sq + 2.0 * lam * maxw * c * kz;
            let t = epoch as i32;
            let bc = |v: f64, beta: f64| if bias_correction { v / (1.0 - beta.powi(t)) } else { v };
            match rule {
                AdaptiveRule::Sgd => lr = 1.0 / k_,
                AdaptiveRule::Momentum if epoch == 1 => {
                    lr = first_lr;
                    ema1 = first_lr;
                }
                AdaptiveRule::Momentum => {
                    ema1 = 0.9 * ema1 + 0.1 * k_;
                    lr = 1.0 / bc(ema1, 0.9);
                }
                AdaptiveRule::Rmsprop => {
                    ema2 = 0.9 * ema2 + 0.1 * s_;
                    lr = (bc(ema2, 0.9).sqrt() + 1e-7) / kz;
                }
                AdaptiveRule::Adam => {
                    ema1 = 0.9 * ema1 + 0.1 * k_;
                    ema2 = 0.999 * ema2 + 0.001 * s_;
                    lr = (bc(ema2, 0.999).sqrt() + 1e-7) / bc(ema1, 0.9);
                }
            }
            lalr_info =
                serde_json::json!({"kz": kz, "s": sq, "max_w": maxw, "k": k_, "s_est": s_, "ema1": ema1, "ema2": ema2});
        }
        if let Policy::ExpDecay { gamma } = p.policy {
            lr = p.lr * gamma.powi(epoch as i32 - 1);
        }
        if matches!(p.batching, Batching::Shuffle) {
            idx = permutation(&mut batch_rng, rows);
        }
        let mut loss_sum = 0f64;
        for step in 0..steps {
            let chosen: &[usize] = match p.batching {
                Batching::Random => {
                    // Partial Fisher-Yates: `batch` distinct rows.
                    for i in 0..batch {
                        let j = batch_rng.random_range(i..rows);
                        idx.swap(i, j);
                    }
                    &idx[..batch]
                }
                Batching::Shuffle => {
                    let s = (step * batch) % rows;
                    let e = (s + batch).min(rows);
                    &idx[s..e]
                }
            };
            let n = chosen.len();
            let mut yb = std::mem::take(&mut grad_scratch);
            yb.resize(batch * q, 0.0);
            for (r, &i) in chosen.iter().enumerate() {
                ws.inp[0][r * pin..(r + 1) * pin].copy_from_slice(&x[i * pin..(i + 1) * pin]);
                yb[r * q..(r + 1) * q].copy_from_slice(&y[i * q..(i + 1) * q]);
            }
            if let Some(lb) = lbfgs.as_mut() {
                let drop_on = dropout.iter().any(|d| *d > 0.0);
                let wd = p.weight_decay;
                let mut flat = flatten(&model);
                let yv = &yb[..n * q];
                let loss = lb.step(&mut flat, lr, |params| {
                    unflatten(&mut model, params);
                    let drng = if drop_on { Some(&mut drop_rng) } else { None };
                    model.forward(&mut ws, n, drng, threads);
                    let out = model.output(&ws, n).to_vec();
                    let mut l = p.loss.eval(&out, yv, n, q, &mut ws.dz[nl - 1][..n * q]);
                    model.backward(&mut ws, n, threads);
                    let mut g = Vec::with_capacity(params.len());
                    for (li, layer) in model.layers.iter().enumerate() {
                        g.extend(ws.gw[li].iter().zip(&layer.w).map(|(gw, w)| *gw as f64 + wd * *w as f64));
                        g.extend(ws.gb[li].iter().map(|v| *v as f64));
                        l += 0.5 * wd * layer.w.iter().map(|w| (*w as f64).powi(2)).sum::<f64>();
                    }
                    (l, g)
                });
                unflatten(&mut model, &flat);
                grad_scratch = yb;
                check_finite(loss, epoch, step, &format!("L-BFGS, step size {lr:e}"))?;
                loss_sum += loss;
                continue;
            }
            let drng = if dropout.iter().any(|d| *d > 0.0) { Some(&mut drop_rng) } else { None };
            model.forward(&mut ws, n, drng, threads);
            let out = model.output(&ws, n).as_ptr();
            // SAFETY: `out` is read while `dz[last]` is written; they are distinct buffers.
            let out = unsafe { std::slice::from_raw_parts(out, n * q) };
            let loss = p.loss.eval(out, &yb[..n * q], n, q, &mut ws.dz[nl - 1][..n * q]);
            grad_scratch = yb;
            check_finite(loss, epoch, step, &format!("learning rate {lr:e}"))?;
            loss_sum += loss;
            model.backward(&mut ws, n, threads);
            for (l, layer) in model.layers.iter_mut().enumerate() {
                if p.weight_decay > 0.0 {
                    let wd = p.weight_decay as f32;
                    for (g, w) in ws.gw[l].iter_mut().zip(&layer.w) {
                        *g += wd * w;
                    }
                }
                let scale = if l > 0 { p.lr_scale_after_first } else { 1.0 };
                p.optimizer.step(&mut layer.w, &ws.gw[l], &mut states[l].0, lr * scale);
                p.optimizer.step(&mut layer.b, &ws.gb[l], &mut states[l].1, lr);
                if let Activation::Prelu { alpha, learnable: true } = layer.act {
                    let mut a = [alpha];
                    p.optimizer.step(&mut a, &[ws.ga[l]], &mut slope_states[l], lr * scale);
                    layer.act = Activation::Prelu { alpha: a[0], learnable: true };
                }
            }
        }
        let mut h = serde_json::Map::new();
        h.insert("epoch".into(), epoch.into());
        h.insert("lr".into(), lr.into());
        h.insert("train_loss".into(), (loss_sum / steps as f64).into());
        if !lalr_info.is_null() {
            let key = if matches!(p.policy, Policy::LipschitzAdaptive { .. }) { "adaptive" } else { "lalr" };
            h.insert(key.into(), lalr_info);
        }
        if let Some((ex, ey)) = eval {
            let pred = model.predict(ex, threads);
            for (k, v) in quick_metrics(&pred, ey, q, &p.loss) {
                h.insert(format!("eval_{k}"), v);
            }
        }
        if let Policy::DgexDecay { factor, floor, .. } = p.policy {
            let mx: Vec<f32> = monitor.iter().flat_map(|&i| x[i * pin..(i + 1) * pin].to_vec()).collect();
            let my: Vec<f32> = monitor.iter().flat_map(|&i| y[i * q..(i + 1) * q].to_vec()).collect();
            let pred = model.predict(&mx, threads);
            let mae = quick_metrics(&pred, &my, q, &Loss::Mae)["mae"].as_f64().unwrap_or(0.0);
            h.insert("monitor_mae".into(), mae.into());
            if mae > last_monitor {
                lr *= factor;
            }
            lr = lr.max(floor);
            last_monitor = mae;
        }
        if let Some(c) = ctx {
            c.report(
                epoch as u64,
                p.epochs as u64,
                format!("epoch {epoch} loss {:.5} lr {lr:.3e}", loss_sum / steps as f64),
            );
        }
        history.push(serde_json::Value::Object(h));
        if p.save_at.contains(&epoch) {
            saved.push((epoch, model.clone()));
        }
    }
    Ok(Trained { model, history, saved })
}

/// A loss that became NaN or infinite fails the stage, naming where and at what rate.
fn check_finite(loss: f64, epoch: usize, step: usize, rate: &str) -> StageResult<()> {
    if loss.is_finite() {
        return Ok(());
    }
    Err(StageError::msg(format!(
        "loss became {loss} at epoch {epoch}, step {} ({rate}); nothing is cached for this stage",
        step + 1
    )))
}

/// Every weight and bias of the model in one vector (per layer: weights, then biases).
fn flatten(m: &Mlp) -> Vec<f64> {
    m.layers.iter().flat_map(|l| l.w.iter().chain(&l.b).map(|v| *v as f64)).collect()
}

fn unflatten(m: &mut Mlp, v: &[f64]) {
    let mut i = 0;
    for l in &mut m.layers {
        for w in l.w.iter_mut().chain(l.b.iter_mut()) {
            *w = v[i] as f32;
            i += 1;
        }
    }
}

/// Maxima over sequential batches of the training rows, in evaluation mode (dropout off):
/// ‖penultimate activations‖_F (Kz), ‖Z∘Z‖_F, ‖outputs‖_F (Ka) and ‖targets‖_F.
struct BatchNorms {
    kz: f64,
    ka: f64,
    ky: f64,
    sq: f64,
}

fn batch_norms(model: &Mlp, ws: &mut Workspace, x: &[f32], y: &[f32], batch: usize, threads: usize) -> BatchNorms {
    let (pin, q) = (model.inputs(), model.outputs());
    let rows = y.len() / q;
    let mut b = BatchNorms { kz: 0.0, ka: 0.0, ky: 0.0, sq: 0.0 };
    for start in (0..rows).step_by(batch) {
        let n = batch.min(rows - start);
        ws_input(&mut ws.inp[0], x, pin, start, n);
        model.forward(ws, n, None, threads);
        let z = model.penultimate(ws, n);
        b.kz = b.kz.max(frob(z));
        b.sq = b.sq.max(z.iter().map(|v| (*v as f64).powi(4)).sum::<f64>().sqrt());
        b.ka = b.ka.max(frob(model.output(ws, n)));
        b.ky = b.ky.max(frob(&y[start * q..(start + n) * q]));
    }
    b
}

fn max_weight_norm(model: &Mlp) -> f64 {
    model.layers.iter().map(|l| frob(&l.w)).fold(0.0, f64::max)
}

fn ws_input(dst: &mut [f32], x: &[f32], p: usize, start: usize, n: usize) {
    dst[..n * p].copy_from_slice(&x[start * p..(start + n) * p]);
}

fn max_batch_norm(x: &[f32], p: usize, rows: usize, batch: usize) -> f64 {
    (0..rows).step_by(batch).map(|s| frob(&x[s * p..(s + batch).min(rows) * p])).fold(0.0, f64::max)
}

impl TypedStage for Train {
    type Params = TrainParams;
    const KIND: &'static str = "train";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Train an MLP (hidden = [] for linear / logistic / softmax regression) with the papers' activations, losses, optimizers, initializers and learning-rate policies (fixed, dgex_decay, exp_decay, lipschitz with `paper` / `published_code` variants). Outputs: model, epoch<E> for each save_at epoch, history (JSON).";
    const INPUTS: &'static [InputSlot] = &[
        InputSlot::one("data", "training dataset"),
        InputSlot::optional("eval", "dataset evaluated after every epoch (history only)"),
    ];

    fn validate(p: &TrainParams) -> Result<(), ParamError> {
        if p.epochs == 0 {
            return Err(ParamError::new("epochs", "must be at least 1"));
        }
        if p.batch == 0 {
            return Err(ParamError::new("batch", "must be at least 1"));
        }
        if !(p.lr > 0.0 && p.lr.is_finite()) {
            return Err(ParamError::new("lr", format!("must be a positive number, got {}", p.lr)));
        }
        if p.hidden.contains(&0) {
            return Err(ParamError::new("hidden", "layer widths must be positive"));
        }
        if !p.activations.is_empty() && p.activations.len() != p.hidden.len() {
            return Err(ParamError::new(
                "activations",
                format!("{} activations for {} hidden layers", p.activations.len(), p.hidden.len()),
            ));
        }
        if !p.dropout.is_empty() && p.dropout.len() != p.hidden.len() + 1 {
            return Err(ParamError::new(
                "dropout",
                format!("give one rate per layer input: {} values", p.hidden.len() + 1),
            ));
        }
        if p.dropout.iter().any(|d| !(0.0..1.0).contains(d)) {
            return Err(ParamError::new("dropout", "rates must lie in [0, 1)"));
        }
        if let Some(e) = p.save_at.iter().find(|e| **e == 0 || **e > p.epochs) {
            return Err(ParamError::new("save_at", format!("epoch {e} is outside 1..={}", p.epochs)));
        }
        if p.device != "cpu" {
            return Err(ParamError::new(
                "device",
                format!("device `{}` is not available in this build; use \"cpu\"", p.device),
            ));
        }
        match p.loss {
            Loss::TiltedLogCosh { tau } | Loss::Pinball { tau } | Loss::Sbqc { tau } if !(tau > 0.0 && tau < 1.0) => {
                return Err(ParamError::new("loss.tau", format!("τ must lie in (0, 1), got {tau}")));
            }
            Loss::Quantiles { heads: 0, .. } => {
                return Err(ParamError::new("loss.heads", "needs at least one quantile head"));
            }
            Loss::Quantiles { crossing, .. } if crossing < 0.0 => {
                return Err(ParamError::new("loss.crossing", format!("must be ≥ 0, got {crossing}")));
            }
            _ => {}
        }
        Ok(())
    }

    fn outputs(p: &TrainParams) -> Vec<String> {
        let mut v = vec!["model".to_string(), "history".to_string()];
        v.extend(p.save_at.iter().map(|e| format!("epoch{e}")));
        v
    }

    fn threads(_p: &TrainParams) -> usize {
        usize::MAX
    }

    fn run(&self, p: &TrainParams, ctx: &Ctx) -> StageResult<Metrics> {
        let d = Dataset::read(&ctx.input("data")?.path)?;
        if d.is_absent() {
            // Data the user did not supply: empty model files, an empty history; `evaluate`
            // on the (equally absent) test data reports null metrics without reading them.
            for name in Self::outputs(p) {
                std::fs::write(ctx.output(&name), if name == "history" { "[]\n" } else { "" })?;
            }
            return Ok(Metrics::new());
        }
        d.validate("data")?;
        let (y, q) = targets_for(&d, &p.loss)?;
        let ev = match ctx.optional_input("eval") {
            Some(a) => {
                let e = Dataset::read(&a.path)?;
                if e.p() != d.p() {
                    return Err(StageError::param("eval", format!("eval has {} features, data has {}", e.p(), d.p())));
                }
                let (ey, _) = targets_for(&e, &p.loss)?;
                Some((e.x, ey))
            }
            None => None,
        };
        let t = fit(
            p,
            &d.x,
            &y,
            q,
            ev.as_ref().map(|(a, b)| (a.as_slice(), b.as_slice())),
            ctx.seed,
            ctx.threads,
            Some(ctx),
        )?;
        let info =
            serde_json::json!({"features": d.features, "targets": d.targets, "classes": d.classes, "loss": p.loss});
        t.model.save(&ctx.output("model"), info.clone())?;
        for (e, m) in &t.saved {
            m.save(&ctx.output(&format!("epoch{e}")), info.clone())?;
        }
        write_json(&ctx.output("history"), &t.history)?;
        let mut m = Metrics::new();
        if let Some(last) = t.history.last() {
            m.insert("final".into(), last.clone());
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::optim::Convention;

    fn sgd(momentum: f64, nesterov: bool) -> Optimizer {
        Optimizer::Sgd { momentum, nesterov, convention: Convention::Pytorch }
    }

    /// The lecture's worked example (dnn_lecture.md): y = 3x + 2 + U(−0.1, 0.1) on 30 points,
    /// θ0 = (10, 5), α = 0.005, 1000 full-batch iterations; SGD, momentum 0.6 and Nesterov 0.8
    /// all land near (intercept, slope) = (2, 3).
    #[test]
    fn lecture_regression_lands_near_2_3() {
        let mut r = rng(0, "lecture");
        let xs: Vec<f32> = (0..30).map(|i| i as f32 / 29.0 * 4.0 - 2.0).collect();
        let ys: Vec<f32> = xs.iter().map(|x| 3.0 * x + 2.0 + (r.random::<f32>() * 0.2 - 0.1)).collect();
        for opt in [sgd(0.0, false), sgd(0.6, false), sgd(0.8, true)] {
            let p = TrainParams {
                hidden: vec![],
                init: Init::Uniform { a: 0.0 },
                loss: Loss::Mse,
                optimizer: opt,
                lr: 0.005,
                epochs: 1000,
                batch: 30,
                ..Default::default()
            };
            // θ0 = (10, 5): start from it by training a model whose weights we set first.
            let mut t = fit(&TrainParams { epochs: 1, lr: 1e-30, ..p.clone() }, &xs, &ys, 1, None, 1, 1, None).unwrap();
            t.model.layers[0].w[0] = 5.0;
            t.model.layers[0].b[0] = 10.0;
            let (w, b) = run_from(&p, t.model, &xs, &ys);
            assert!((b - 2.0).abs() < 0.1 && (w - 3.0).abs() < 0.1, "{opt:?}: intercept {b}, slope {w}");
        }
    }

    /// Full-batch gradient descent from a given model (the loop of `fit`, without init).
    fn run_from(p: &TrainParams, mut model: Mlp, x: &[f32], y: &[f32]) -> (f32, f32) {
        let mut ws = model.workspace(x.len());
        let mut st: Vec<(State, State)> =
            model.layers.iter().map(|l| (p.optimizer.state(l.w.len()), p.optimizer.state(l.b.len()))).collect();
        ws.inp[0].copy_from_slice(x);
        for _ in 0..p.epochs {
            model.forward(&mut ws, x.len(), None, 1);
            let out = model.output(&ws, x.len()).to_vec();
            p.loss.eval(&out, y, x.len(), 1, &mut ws.dz[0]);
            model.backward(&mut ws, x.len(), 1);
            p.optimizer.step(&mut model.layers[0].w, &ws.gw[0], &mut st[0].0, p.lr);
            p.optimizer.step(&mut model.layers[0].b, &ws.gb[0], &mut st[0].1, p.lr);
        }
        (model.layers[0].w[0], model.layers[0].b[0])
    }

    /// A 2-4-1 sigmoid net learns XOR from N(0, 1/√fan_in) initialization.
    #[test]
    fn xor_trains() {
        let x = [0f32, 0., 0., 1., 1., 0., 1., 1.];
        let y = [0f32, 1., 1., 0.];
        let p = TrainParams {
            hidden: vec![4],
            activation: Activation::Sigmoid,
            output_activation: Activation::Sigmoid,
            init: Init::Normal { std: 0.0 },
            loss: Loss::Mse,
            optimizer: sgd(0.9, false),
            lr: 2.0,
            epochs: 3000,
            batch: 4,
            ..Default::default()
        };
        let t = fit(&p, &x, &y, 1, None, 3, 1, None).unwrap();
        let pred = t.model.predict(&x, 1);
        for (p, t) in pred.iter().zip(y) {
            assert!((p - t).abs() < 0.2, "{pred:?}");
        }
    }

    #[test]
    fn same_seed_same_bytes_any_thread_count() {
        let mut r = rng(9, "data");
        let x: Vec<f32> = (0..300 * 20).map(|_| r.random::<f32>()).collect();
        let y: Vec<f32> = (0..300 * 7).map(|_| r.random::<f32>()).collect();
        let p = TrainParams {
            hidden: vec![64],
            epochs: 3,
            batch: 50,
            batching: Batching::Random,
            steps_per_epoch: 4,
            ..Default::default()
        };
        let a = fit(&p, &x, &y, 7, None, 5, 2, None).unwrap();
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| fit(&p, &x, &y, 7, None, 5, 1, None).unwrap());
        assert_eq!(a.model, b.model);
        assert_eq!(a.history, b.history);
    }

    #[test]
    fn divergence_names_epoch_step_and_lr() {
        let x: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let y: Vec<f32> = (0..40).map(|i| (i * i) as f32).collect();
        let p = TrainParams { hidden: vec![], lr: 10.0, epochs: 50, batch: 40, ..Default::default() };
        let Err(e) = fit(&p, &x, &y, 1, None, 1, 1, None) else { panic!("expected divergence") };
        assert!(
            e.message.contains("epoch") && e.message.contains("step 1") && e.message.contains("learning rate"),
            "{e}"
        );
    }

    /// `lipschitz_adaptive` schedules by hand. Softmax regression (no hidden layer, so the
    /// penultimate activations are the inputs) on X = [[1, 2], [3, 4]], classes 0/1, one batch
    /// of 2: Kz = √30, c = (k − 1)/(k·bs) = 1/4, K = c·Kz = 1.369306, S = ‖X∘X‖_F = √354,
    /// S_est = c²·S. Python:
    ///   sgd 1/K = 0.730297; AdaMo epoch 2: K1 = 0.9·0.1 + 0.1·K → 1/K1 = 4.406633;
    ///   RMSprop K2 = 0.1·S_est → (√K2 + 1e-7)/Kz = 0.062608, then K2 = 0.9·K2 + 0.1·S_est → 0.086299;
    ///   Adam K1 = 0.1·K, K2 = 0.001·S_est → (√K2 + 1e-7)/K1 = 0.250433, then 0.186356.
    /// The weights move between epochs but the inputs, hence Kz and S, do not.
    #[test]
    fn adaptive_schedules_by_hand() {
        let x = [1f32, 2., 3., 4.];
        let y = [1f32, 0., 0., 1.];
        let lrs = |rule: AdaptiveRule| -> Vec<f64> {
            let p = TrainParams {
                hidden: vec![],
                loss: Loss::SoftmaxCe,
                policy: Policy::LipschitzAdaptive { rule, first_lr: 0.1, bias_correction: false },
                epochs: 2,
                batch: 2,
                ..Default::default()
            };
            let t = fit(&p, &x, &y, 2, None, 1, 1, None).unwrap();
            t.history.iter().map(|h| h["lr"].as_f64().unwrap()).collect()
        };
        let close = |got: Vec<f64>, want: [f64; 2]| {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-5 * w, "{got:?} vs {want:?}");
            }
        };
        close(lrs(AdaptiveRule::Sgd), [0.730297, 0.730297]);
        close(lrs(AdaptiveRule::Momentum), [0.1, 4.406633]);
        close(lrs(AdaptiveRule::Rmsprop), [0.062608, 0.086299]);
        close(lrs(AdaptiveRule::Adam), [0.250433, 0.186356]);
    }

    /// Full-batch L-BFGS through the trainer fits y = 2x + 1 exactly (no noise: the least-squares
    /// solution is w = 2, b = 1), from PyTorch-default initial weights, in one epoch of 20 iterations.
    #[test]
    fn lbfgs_fits_a_line() {
        let x = [0f32, 1., 2., 3., 4.];
        let y: Vec<f32> = x.iter().map(|v| 2.0 * v + 1.0).collect();
        let p = TrainParams {
            hidden: vec![],
            loss: Loss::Mse,
            optimizer: Optimizer::Lbfgs { max_iter: 20, history: 100, tolerance_grad: 1e-7, tolerance_change: 1e-9 },
            lr: 1.0,
            epochs: 1,
            batch: 5,
            ..Default::default()
        };
        let t = fit(&p, &x, &y, 1, None, 4, 1, None).unwrap();
        let (w, b) = (t.model.layers[0].w[0], t.model.layers[0].b[0]);
        assert!((w - 2.0).abs() < 1e-3 && (b - 1.0).abs() < 1e-3, "w {w}, b {b}");
    }

    /// A learnable PReLU recovers the slope of data made by one: y = x for x ≥ 0 and 0.1·x
    /// below. A 1 → 1 → 1 network with positive weights represents it exactly with α = 0.1 (any
    /// w, v > 0 with v·w = 1, zero biases; negative w would mirror it to α = 10), so from
    /// w = v = 0.5 training moves α from 0.25 to near 0.1; a fixed slope stays at 0.25.
    #[test]
    fn learnable_prelu_learns_the_slope() {
        let x: Vec<f32> = (0..40).map(|i| i as f32 / 10.0 - 2.0).collect();
        let y: Vec<f32> = x.iter().map(|v| if *v >= 0.0 { *v } else { 0.1 * v }).collect();
        let p = |learnable: bool| TrainParams {
            hidden: vec![1],
            activation: Activation::Prelu { alpha: 0.25, learnable },
            init: Init::Constant { weight: 0.5, bias: 0.0 },
            loss: Loss::Mse,
            optimizer: sgd(0.9, false),
            lr: 0.02,
            epochs: 3000,
            batch: 40,
            ..Default::default()
        };
        let t = fit(&p(true), &x, &y, 1, None, 2, 1, None).unwrap();
        let Activation::Prelu { alpha, .. } = t.model.layers[0].act else { panic!() };
        let final_loss = t.history.last().unwrap()["train_loss"].as_f64().unwrap();
        assert!((alpha - 0.1).abs() < 0.03, "α {alpha}, loss {final_loss}");
        let fixed = fit(&p(false), &x, &y, 1, None, 2, 1, None).unwrap();
        assert_eq!(fixed.model.layers[0].act, Activation::Prelu { alpha: 0.25, learnable: false });
    }

    #[test]
    fn lalr_presets() {
        let paper = lalr_knobs(&Policy::Lipschitz {
            variant: LalrVariant::Paper,
            m: None,
            y_norm: None,
            scale: None,
            floor: None,
            cap: None,
        })
        .unwrap();
        assert_eq!((paper.m, paper.y_norm, paper.scale, paper.cap), (MChoice::Batch, YNorm::Targets, 0.3, 5e-4));
        let code = lalr_knobs(&Policy::Lipschitz {
            variant: LalrVariant::PublishedCode,
            m: None,
            y_norm: None,
            scale: None,
            floor: None,
            cap: None,
        })
        .unwrap();
        assert_eq!((code.m, code.y_norm, code.scale), (MChoice::TrainRows, YNorm::Inputs, 0.5));
        assert!(code.cap.is_infinite());
    }
}
