//! The params of `train`: the network, the loss, the optimizer, the learning-rate policy and
//! the batching, with the checks that run at plan time.

use crate::nn::act::Activation;
use crate::nn::init::Init;
use crate::nn::loss::Loss;
use crate::nn::optim::{Convention, Optimizer};
use repro_core::{check_memory, stage_params, ParamError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LalrVariant {
    /// The LALR paper's eq. (7): lr = 0.3 · m / ((Ka + ‖y‖)·Kz) with m the number of training
    /// examples and ‖y‖ the training targets' norm; no clamp (the paper states none).
    Paper,
    /// The authors' code (`lipschitz_lr.py`): m = training rows, ‖X‖ (inputs) in place of ‖y‖,
    /// scale 0.5, floor 1e-5, no cap, and Kz from the `eval` dataset's activations (see
    /// [`KzFrom::EvalSet`]); it needs `eval` bound.
    PublishedCode,
    /// What the published script ran: it never calls LALR, so the rate is SGD's constant 1e-4.
    PublishedScript,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MChoice {
    Batch,
    TrainRows,
}

/// Where Kz (the penultimate activations' norm) is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KzFrom {
    /// The largest ‖Z‖_F over sequential batches of the training rows (the LALR paper).
    #[default]
    TrainBatches,
    /// ‖Z‖_F of the whole `eval` dataset under the current weights, as the authors' code read
    /// it from a stale global holding the last forward pass (the test-set MAE of the previous
    /// epoch); before any epoch the global held its sentinel, so Kz = 1e18 and the rate falls
    /// to the floor.
    EvalSet,
}

impl KzFrom {
    fn is_default(&self) -> bool {
        *self == KzFrom::TrainBatches
    }
}

/// How Ka and ‖y‖ are measured per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Norms {
    /// Frobenius norms of whole batches (LipschitzLR's and the LALR paper's reading).
    #[default]
    Frobenius,
    /// The largest 2-norm of one row (one example's outputs or targets): LogGENE's code
    /// (`utils/loops.py`: Ka = max_row ‖ŷ_row‖₂, Y = max_row ‖y_row‖₂).
    MaxRow,
}

impl Norms {
    fn is_default(&self) -> bool {
        *self == Norms::Frobenius
    }
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
        #[serde(default = "default_decay_factor")]
        factor: f64,
        #[serde(default = "default_floor")]
        floor: f64,
        #[serde(default = "default_monitor_rows")]
        monitor_rows: usize,
    },
    /// lr_e = lr · gamma^(e−1).
    ExpDecay {
        gamma: f64,
    },
    /// The lecture's "halve the learning rate on a fixed schedule": lr_e = lr · factor^⌊(e − 1)/every⌋.
    Step {
        every: usize,
        #[serde(default = "default_half")]
        factor: f64,
    },
    /// The lecture's "linear decrease from α₀ to α_f" (Goodfellow et al. §8.3.1): lr_e =
    /// lr + (final_lr − lr)·min(1, (e − 1)/τ), τ = `until` (0: the last epoch), then constant.
    Linear {
        final_lr: f64,
        #[serde(default)]
        until: usize,
    },
    /// The lecture's 1-cycle policy (Smith 2018) as PyTorch's `OneCycleLR` (cosine annealing),
    /// stepped once per epoch: from lr/div_factor up to lr (the peak) over the first pct_start
    /// of the epochs, then down to lr/(div_factor·final_div_factor). Momentum is not cycled.
    OneCycle {
        #[serde(default = "default_div")]
        div_factor: f64,
        #[serde(default = "default_final_div")]
        final_div_factor: f64,
        #[serde(default = "default_pct_start")]
        pct_start: f64,
    },
    /// The lecture's "SGD with warm restarts" (SGDR, Loshchilov & Hutter 2017) as PyTorch's
    /// `CosineAnnealingWarmRestarts`, per epoch: lr_e = min_lr + (lr − min_lr)(1 + cos(π·T_cur/T_i))/2,
    /// restarting after T_i epochs, T_i = t0·t_mult^k.
    CosineRestarts {
        t0: usize,
        #[serde(default = "default_one")]
        t_mult: usize,
        #[serde(default)]
        min_lr: f64,
    },
    /// LALR. `variant` sets every knob; any knob given explicitly overrides it. The canonical
    /// params carry every knob resolved, so a preset's meaning is part of the cache key.
    Lipschitz(LalrSpec),
    /// LipschitzLR's adaptive optimizers as its authors' Keras callbacks compute them, once per
    /// epoch in evaluation mode: Kz = max over batches of ‖penultimate‖_F, S = max over batches
    /// of ‖Z∘Z‖_F, K = c·Kz + λ·max‖W‖_F with c the loss's bound per unit Kz (m = batch), and
    /// S = c²·S + 2λ·max‖W‖·c·Kz (the estimate of (max‖∇L‖)² "with the middle term removed").
    LipschitzAdaptive {
        rule: AdaptiveRule,
        /// AdaMo's fixed first-epoch learning rate (the paper tried 0.1, 0.5, 1).
        #[serde(default = "default_first_lr")]
        first_lr: f64,
        /// Divide the moving averages by 1 − βᵗ (the paper's §6.4; the authors' code did not).
        #[serde(default)]
        bias_correction: bool,
    },
}

/// The knobs of a `lipschitz` policy as written: a variant and optional overrides.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct LalrSpecIn {
    variant: LalrVariant,
    #[serde(default)]
    m: Option<MChoice>,
    #[serde(default)]
    y_norm: Option<YNorm>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    floor: Option<f64>,
    #[serde(default)]
    cap: Option<f64>,
    #[serde(default)]
    constant: Option<f64>,
    #[serde(default)]
    norms: Norms,
    #[serde(default)]
    kz_from: Option<KzFrom>,
}

/// The knobs of a `lipschitz` policy, resolved from the variant's preset (each knob given
/// explicitly overrides it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "LalrSpecIn")]
pub struct LalrSpec {
    pub variant: LalrVariant,
    /// What m (the examples the bound averages over) is.
    pub m: MChoice,
    /// Which norm stands for ‖y‖.
    pub y_norm: YNorm,
    /// lr = scale / L.
    pub scale: f64,
    /// Lower clamp (0: none).
    pub floor: f64,
    /// Upper clamp; negative: none.
    pub cap: f64,
    /// A constant rate in place of LALR (`published_script`: 1e-4); negative: none.
    pub constant: f64,
    /// How Ka and ‖y‖ are measured (left out of the canonical params when Frobenius).
    #[serde(default, skip_serializing_if = "Norms::is_default")]
    pub norms: Norms,
    /// Where Kz is measured (left out of the canonical params when from training batches).
    #[serde(default, skip_serializing_if = "KzFrom::is_default")]
    pub kz_from: KzFrom,
}

impl From<LalrSpecIn> for LalrSpec {
    fn from(i: LalrSpecIn) -> Self {
        let base = LalrSpec::preset(i.variant);
        LalrSpec {
            variant: i.variant,
            m: i.m.unwrap_or(base.m),
            y_norm: i.y_norm.unwrap_or(base.y_norm),
            scale: i.scale.unwrap_or(base.scale),
            floor: i.floor.unwrap_or(base.floor),
            cap: i.cap.unwrap_or(base.cap),
            constant: i.constant.unwrap_or(base.constant),
            norms: i.norms,
            kz_from: i.kz_from.unwrap_or(base.kz_from),
        }
    }
}

impl LalrSpec {
    /// A variant's knobs.
    pub fn preset(variant: LalrVariant) -> LalrSpec {
        let (m, y_norm, scale, floor, cap, constant) = match variant {
            LalrVariant::Paper => (MChoice::TrainRows, YNorm::Targets, 0.3, 0.0, -1.0, -1.0),
            LalrVariant::PublishedCode => (MChoice::TrainRows, YNorm::Inputs, 0.5, 1e-5, -1.0, -1.0),
            LalrVariant::PublishedScript => (MChoice::TrainRows, YNorm::Inputs, 0.5, 0.0, -1.0, 1e-4),
        };
        let kz_from = if variant == LalrVariant::PublishedCode { KzFrom::EvalSet } else { KzFrom::TrainBatches };
        LalrSpec { variant, m, y_norm, scale, floor, cap, constant, norms: Norms::Frobenius, kz_from }
    }
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

fn default_half() -> f64 {
    0.5
}
fn default_div() -> f64 {
    25.0
}
fn default_final_div() -> f64 {
    1e4
}
fn default_pct_start() -> f64 {
    0.3
}
fn default_one() -> usize {
    1
}
fn default_first_lr() -> f64 {
    0.1
}
fn default_decay_factor() -> f64 {
    0.9
}
fn default_floor() -> f64 {
    1e-5
}
fn default_monitor_rows() -> usize {
    5000
}

/// Which trainer runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The hand-written CPU trainer (`nn::mlp`).
    Native,
    /// candle-core / candle-nn tensors and autograd (`train::candle`), on `device`.
    Candle,
}

impl Backend {
    fn is_native(&self) -> bool {
        *self == Backend::Native
    }
}

/// How gradients are clipped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Clip {
    /// Scale every gradient by max_norm/(‖g‖ + 1e-6) when the global norm ‖g‖ exceeds max_norm.
    Norm(f64),
    /// Clamp every gradient component to [−value, value].
    Value(f64),
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
        optimizer: Optimizer = Optimizer::Sgd { momentum: 0.0, nesterov: false, convention: Convention::Pytorch },
        /// Initial (or fixed) learning rate. D-GEX: 5e-4 with one hidden layer.
        lr: f64 = 0.01,
        /// Learning-rate policy: { name = "fixed" }, { name = "dgex_decay" }, { name = "exp_decay", gamma = 0.95 }, { name = "lipschitz", variant = "paper" }; the lecture's { name = "step", every = 10 } (halving), { name = "linear", final_lr = 1e-4 }, { name = "one_cycle" }, { name = "cosine_restarts", t0 = 10 }.
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
        /// Gradient clipping (the lecture's remedy for exploding gradients), first-order
        /// optimizers: { norm = 1.0 } scales all gradients together when their global L2 norm
        /// exceeds it (PyTorch's clip_grad_norm_), { value = 0.5 } clamps each to ±value
        /// (clip_grad_value_); before weight decay is added. Unset: no clipping.
        #[serde(skip_serializing_if = "Option::is_none")]
        clip: Option<Clip> = None,
        /// "native" (the hand-written CPU trainer, the default and fastest on a CPU) or
        /// "candle" (candle tensors and autograd: the path to a GPU through `device`).
        #[serde(skip_serializing_if = "Backend::is_native")]
        backend: Backend = Backend::Native,
        /// "cpu", or with backend = "candle" in a build with `--features cuda`: "cuda" / "cuda:N".
        device: String = "cpu".into(),
    }
}

/// Checks beyond the types (ranges, consistency), at plan time.
/// What a run's size needs in memory, at plan time: the weights between hidden layers with
/// their gradients and optimizer state, and one history entry per epoch (the input width and
/// the data are only known at run time).
fn check_sizes(p: &TrainParams) -> Result<(), ParamError> {
    let between: u128 = p.hidden.windows(2).map(|w| w[0] as u128 * w[1] as u128).sum();
    let widest = p.hidden.iter().copied().max().unwrap_or(0) as u128;
    check_memory("hidden", "these layer widths", (between + widest) * 4 * 4 + widest * p.batch as u128 * 4 * 4)?;
    check_memory("epochs", "the history of this many epochs", p.epochs as u128 * 512)
}

pub(super) fn validate(p: &TrainParams) -> Result<(), ParamError> {
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
    check_sizes(p)?;
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
    if p.backend == Backend::Native && p.device != "cpu" {
        return Err(ParamError::new(
            "device",
            format!("device `{}` needs backend = \"candle\"; the native trainer runs on \"cpu\"", p.device),
        ));
    }
    if p.backend == Backend::Candle {
        super::candle::check(p)?;
    }
    match p.clip {
        Some(Clip::Norm(v) | Clip::Value(v)) if !(v > 0.0 && v.is_finite()) => {
            return Err(ParamError::new("clip", format!("must be a positive number, got {v}")));
        }
        Some(_) if matches!(p.optimizer, Optimizer::Lbfgs { .. }) => {
            return Err(ParamError::new("clip", "clipping applies to the first-order optimizers, not L-BFGS"));
        }
        _ => {}
    }
    match p.policy {
        Policy::Step { every: 0, .. } => return Err(ParamError::new("policy.every", "must be at least 1")),
        Policy::Step { factor, .. } if !(factor > 0.0 && factor.is_finite()) => {
            return Err(ParamError::new("policy.factor", "must be a positive number"));
        }
        Policy::Linear { final_lr, .. } if !(final_lr >= 0.0 && final_lr.is_finite()) => {
            return Err(ParamError::new("policy.final_lr", "must be a number ≥ 0"));
        }
        Policy::OneCycle { pct_start, .. } if !(pct_start > 0.0 && pct_start < 1.0) => {
            return Err(ParamError::new("policy.pct_start", "must lie in (0, 1)"));
        }
        Policy::OneCycle { div_factor, final_div_factor, .. } if !(div_factor >= 1.0 && final_div_factor >= 1.0) => {
            return Err(ParamError::new("policy.div_factor", "div_factor and final_div_factor must be ≥ 1"));
        }
        Policy::CosineRestarts { t0: 0, .. } | Policy::CosineRestarts { t_mult: 0, .. } => {
            return Err(ParamError::new("policy.t0", "t0 and t_mult must be at least 1"));
        }
        Policy::CosineRestarts { min_lr, .. } if !(min_lr >= 0.0 && min_lr < p.lr) => {
            return Err(ParamError::new("policy.min_lr", "must lie in [0, lr)"));
        }
        _ => {}
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
