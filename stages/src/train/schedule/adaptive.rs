//! `lipschitz_adaptive`: LipschitzLR's adaptive SGD, AdaMo, adaptive RMSprop and auto-Adam,
//! as its authors' Keras callbacks compute them, once per epoch in evaluation mode:
//! K = c·Kz + λ·max‖W‖ with c the loss's bound per unit Kz (m = batch), and
//! S = c²·‖Z∘Z‖ + 2λ·max‖W‖·c·Kz (the estimate of (max‖∇L‖)² "with the middle term removed").

use super::{batch_norms, max_weight_norm, BatchNorms, EpochView, LrSchedule};
use crate::nn::loss::Loss;
use crate::train::params::{AdaptiveRule, TrainParams};
use serde_json::Value;

pub(super) struct Adaptive {
    rule: AdaptiveRule,
    first_lr: f64,
    bias_correction: bool,
    loss: Loss,
    weight_decay: f64,
    /// The moving averages (K1, K2 of the paper's algorithms).
    ema1: f64,
    ema2: f64,
}

impl Adaptive {
    pub(super) fn new(p: &TrainParams, rule: AdaptiveRule, first_lr: f64, bias_correction: bool) -> Self {
        Adaptive { rule, first_lr, bias_correction, loss: p.loss, weight_decay: p.weight_decay, ema1: 0.0, ema2: 0.0 }
    }
}

impl LrSchedule for Adaptive {
    fn before_epoch(&mut self, epoch: usize, _lr: f64, v: &mut EpochView) -> (f64, Option<Value>) {
        let BatchNorms { kz, ka, ky, sq, .. } = batch_norms(v);
        let c = self.loss.lipschitz(1.0, ka, ky, v.batch as f64, v.model.outputs());
        let maxw = max_weight_norm(v.model);
        let lam = self.weight_decay;
        let k_ = c * kz + lam * maxw;
        let s_ = c * c * sq + 2.0 * lam * maxw * c * kz;
        let t = epoch as i32;
        let bias_correction = self.bias_correction;
        let bc = |v: f64, beta: f64| if bias_correction { v / (1.0 - beta.powi(t)) } else { v };
        let lr = match self.rule {
            AdaptiveRule::Sgd => 1.0 / k_,
            AdaptiveRule::Momentum if epoch == 1 => {
                self.ema1 = self.first_lr;
                self.first_lr
            }
            AdaptiveRule::Momentum => {
                self.ema1 = 0.9 * self.ema1 + 0.1 * k_;
                1.0 / bc(self.ema1, 0.9)
            }
            AdaptiveRule::Rmsprop => {
                self.ema2 = 0.9 * self.ema2 + 0.1 * s_;
                (bc(self.ema2, 0.9).sqrt() + 1e-7) / kz
            }
            AdaptiveRule::Adam => {
                self.ema1 = 0.9 * self.ema1 + 0.1 * k_;
                self.ema2 = 0.999 * self.ema2 + 0.001 * s_;
                (bc(self.ema2, 0.999).sqrt() + 1e-7) / bc(self.ema1, 0.9)
            }
        };
        let info = serde_json::json!({"kz": kz, "s": sq, "max_w": maxw, "k": k_, "s_est": s_, "ema1": self.ema1, "ema2": self.ema2});
        (lr, Some(info))
    }

    fn history_key(&self) -> &'static str {
        "adaptive"
    }
}
