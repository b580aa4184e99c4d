//! `lipschitz`: LALR. Once per epoch, in evaluation mode, lr = scale / L with L the loss's
//! closed-form Lipschitz bound ([`crate::nn::loss::Loss::lipschitz`]) from Kz = max over
//! batches of ‖penultimate activations‖_F, plus λ·max‖W‖ with weight decay; clamped to
//! [floor, cap]. The presets `paper` and `published_code` set the choices where the LALR paper
//! and its authors' code differ; every knob can be overridden.

use super::{batch_norms, frob, max_weight_norm, BatchNorms, EpochView, LrSchedule};
use crate::nn::loss::Loss;
use crate::train::params::{LalrVariant, MChoice, Policy, TrainParams, YNorm};
use serde_json::Value;

/// Resolved LALR knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lalr {
    /// What m (the examples the bound averages over) is.
    pub m: MChoice,
    /// Which norm stands for ‖y‖.
    pub y_norm: YNorm,
    /// lr = scale / L.
    pub scale: f64,
    /// Lower clamp.
    pub floor: f64,
    /// Upper clamp (infinite: none).
    pub cap: f64,
}

/// The knobs of a `lipschitz` policy: its variant's preset, with every knob given overriding it.
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

pub(super) struct Lipschitz {
    knobs: Lalr,
    loss: Loss,
    weight_decay: f64,
}

impl Lipschitz {
    pub(super) fn new(p: &TrainParams) -> Self {
        Lipschitz {
            knobs: lalr_knobs(&p.policy).expect("a lipschitz policy"),
            loss: p.loss,
            weight_decay: p.weight_decay,
        }
    }
}

impl LrSchedule for Lipschitz {
    fn before_epoch(&mut self, _epoch: usize, _lr: f64, v: &mut EpochView) -> (f64, Option<Value>) {
        let k = self.knobs;
        let BatchNorms { kz, ka, ky, .. } = batch_norms(v);
        let (q, batch) = (v.model.outputs(), v.batch);
        let rows = v.y.len() / q;
        let pin = v.model.inputs();
        let (m, ynorm) = match k.m {
            MChoice::Batch => (
                batch as f64,
                match k.y_norm {
                    YNorm::Targets => ky,
                    YNorm::Inputs => max_batch_norm(v.x, pin, rows, batch),
                },
            ),
            MChoice::TrainRows => (
                rows as f64,
                match k.y_norm {
                    YNorm::Targets => frob(v.y),
                    YNorm::Inputs => frob(v.x),
                },
            ),
        };
        let mut l = self.loss.lipschitz(kz, ka, ynorm, m, q);
        if self.weight_decay > 0.0 {
            l += self.weight_decay * max_weight_norm(v.model);
        }
        let raw = k.scale / l;
        let info =
            serde_json::json!({"kz": kz, "ka": ka, "y_norm": ynorm, "m": m, "lipschitz": l, "unclamped_lr": raw});
        (raw.clamp(k.floor, k.cap), Some(info))
    }
}

/// The largest Frobenius norm of a sequential batch of rows of `x` (`p` columns).
fn max_batch_norm(x: &[f32], p: usize, rows: usize, batch: usize) -> f64 {
    (0..rows).step_by(batch).map(|s| frob(&x[s * p..(s + batch).min(rows) * p])).fold(0.0, f64::max)
}
