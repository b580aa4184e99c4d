//! `lipschitz`: LALR. Once per epoch, in evaluation mode, lr = scale / L with L the loss's
//! closed-form Lipschitz bound ([`crate::nn::loss::Loss::lipschitz`]) from Kz = max over
//! batches of ‖penultimate activations‖_F, plus λ·max‖W‖ with weight decay; clamped to
//! [floor, cap]. The presets `paper`, `published_code` and `published_script` set the choices
//! where the LALR paper, its authors' code and their published script differ (see
//! [`crate::train::params::LalrSpec::preset`]); every knob can be overridden.

use super::{batch_norms, frob, max_weight_norm, penultimate_norm, BatchNorms, EpochView, LrSchedule};
use crate::nn::loss::Loss;
use crate::train::params::{KzFrom, MChoice, Norms, Policy, TrainParams, YNorm};
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
    /// Lower clamp (0: none).
    pub floor: f64,
    /// Upper clamp (infinite: none).
    pub cap: f64,
    /// A constant rate in place of LALR (`published_script`).
    pub constant: Option<f64>,
    /// How Ka and ‖y‖ are measured.
    pub norms: Norms,
    /// Where Kz is measured.
    pub kz_from: KzFrom,
}

/// The knobs of a `lipschitz` policy (already resolved from its variant when parsed).
pub fn lalr_knobs(p: &Policy) -> Option<Lalr> {
    let Policy::Lipschitz(s) = p else { return None };
    Some(Lalr {
        m: s.m,
        y_norm: s.y_norm,
        scale: s.scale,
        floor: s.floor.max(0.0),
        cap: if s.cap < 0.0 { f64::INFINITY } else { s.cap },
        constant: (s.constant >= 0.0).then_some(s.constant),
        norms: s.norms,
        kz_from: s.kz_from,
    })
}

/// What the LALR bound is computed from, measured on the network and the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// ‖penultimate activations‖ (Kz).
    pub kz: f64,
    /// ‖outputs‖ (Ka).
    pub ka: f64,
    /// The norm standing for ‖y‖.
    pub ynorm: f64,
    /// The examples the bound averages over.
    pub m: f64,
    /// Output columns (classes).
    pub outputs: usize,
    /// λ·max‖W‖ with weight decay, else 0.
    pub decay: f64,
}

/// The LALR rate and L from the measured constants: scale / L, clamped to [floor, cap].
pub fn lalr_rate(k: &Lalr, loss: Loss, c: Measured) -> (f64, f64) {
    let l = loss.lipschitz(c.kz, c.ka, c.ynorm, c.m, c.outputs) + c.decay;
    let raw = k.scale / l;
    (raw.clamp(k.floor, k.cap), l)
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
    fn before_epoch(&mut self, epoch: usize, _lr: f64, v: &mut EpochView) -> (f64, Option<Value>) {
        let k = self.knobs;
        if let Some(c) = k.constant {
            return (c, Some(serde_json::json!({"constant": c})));
        }
        let BatchNorms { kz, ka, ky, ka_row, ky_row, .. } = batch_norms(v);
        let (ka, ky) = if k.norms == Norms::MaxRow { (ka_row, ky_row) } else { (ka, ky) };
        let kz = match (k.kz_from, v.eval_x) {
            (KzFrom::TrainBatches, _) => kz,
            // The authors' global still held its sentinel before the first epoch.
            (KzFrom::EvalSet, _) if epoch == 1 => 1e18,
            (KzFrom::EvalSet, Some(ex)) => penultimate_norm(v, ex),
            (KzFrom::EvalSet, None) => unreachable!("checked when the stage starts"),
        };
        let (q, batch) = (v.model.outputs(), v.batch);
        let rows = v.y.len() / q;
        let pin = v.model.inputs();
        let (m, ynorm) = match k.m {
            MChoice::Batch => (
                batch as f64,
                match (k.y_norm, k.norms) {
                    (YNorm::Targets, _) => ky,
                    (YNorm::Inputs, Norms::Frobenius) => max_batch_norm(v.x, pin, rows, batch),
                    (YNorm::Inputs, Norms::MaxRow) => max_row_norm(v.x, pin),
                },
            ),
            MChoice::TrainRows => (
                rows as f64,
                match (k.y_norm, k.norms) {
                    (YNorm::Targets, Norms::Frobenius) => frob(v.y),
                    (YNorm::Inputs, Norms::Frobenius) => frob(v.x),
                    (YNorm::Targets, Norms::MaxRow) => max_row_norm(v.y, q),
                    (YNorm::Inputs, Norms::MaxRow) => max_row_norm(v.x, pin),
                },
            ),
        };
        let decay = if self.weight_decay > 0.0 { self.weight_decay * max_weight_norm(v.model) } else { 0.0 };
        let (lr, l) = lalr_rate(&k, self.loss, Measured { kz, ka, ynorm, m, outputs: q, decay });
        let info = serde_json::json!({"kz": kz, "ka": ka, "y_norm": ynorm, "m": m, "lipschitz": l, "unclamped_lr": k.scale / l});
        (lr, Some(info))
    }
}

/// The largest Frobenius norm of a sequential batch of rows of `x` (`p` columns).
fn max_batch_norm(x: &[f32], p: usize, rows: usize, batch: usize) -> f64 {
    (0..rows).step_by(batch).map(|s| frob(&x[s * p..(s + batch).min(rows) * p])).fold(0.0, f64::max)
}

/// The largest 2-norm of one row of `x` (`p` columns).
fn max_row_norm(x: &[f32], p: usize) -> f64 {
    x.chunks(p).map(frob).fold(0.0, f64::max)
}
