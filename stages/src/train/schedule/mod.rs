//! Learning-rate policies, one file each, behind one trait: [`LrSchedule`] is asked for the
//! rate before every epoch and may look at the finished epoch after it. A new policy is one
//! file plus one arm in [`for_params`].
//!
//! Policies that look at the network (the Lipschitz ones) do so in evaluation mode (dropout
//! off) over sequential batches of the training rows, through [`batch_norms`].

mod adaptive;
mod dgex_decay;
mod exp_decay;
mod lecture;
mod lipschitz;

pub use lipschitz::{lalr_knobs, lalr_rate, Lalr, Measured};

use super::params::{Policy, TrainParams};
use crate::nn::mlp::{Mlp, Workspace};
use serde_json::Value;

/// What a policy may read: the model after the previous epoch and the training data.
pub struct EpochView<'a> {
    /// The network.
    pub model: &'a Mlp,
    /// Scratch buffers of one batch.
    pub ws: &'a mut Workspace,
    /// Training inputs, row-major.
    pub x: &'a [f32],
    /// Training targets, row-major.
    pub y: &'a [f32],
    /// Rows per batch.
    pub batch: usize,
    /// Threads granted.
    pub threads: usize,
    /// Inputs of the `eval` dataset, when one is bound.
    pub eval_x: Option<&'a [f32]>,
}

/// A learning-rate policy.
pub trait LrSchedule {
    /// The rate for `epoch` (1-based) given the current one, and what it was computed from
    /// (kept in the history under [`LrSchedule::history_key`]).
    fn before_epoch(&mut self, epoch: usize, lr: f64, view: &mut EpochView) -> (f64, Option<Value>);
    /// After the epoch: may add to its history entry and change the rate for the next epoch.
    fn after_epoch(&mut self, lr: f64, _view: &mut EpochView, _history: &mut serde_json::Map<String, Value>) -> f64 {
        lr
    }
    /// The history key of what `before_epoch` computed the rate from.
    fn history_key(&self) -> &'static str {
        "lalr"
    }
}

/// `fixed`: the rate stays `lr`.
struct Fixed;

impl LrSchedule for Fixed {
    fn before_epoch(&mut self, _epoch: usize, lr: f64, _view: &mut EpochView) -> (f64, Option<Value>) {
        (lr, None)
    }
}

/// The policy `p.policy` names, for a training set of `rows` rows.
pub fn for_params(p: &TrainParams, rows: usize, seed: u64) -> Box<dyn LrSchedule> {
    match &p.policy {
        Policy::Fixed => Box::new(Fixed),
        Policy::DgexDecay { factor, floor, monitor_rows } => {
            Box::new(dgex_decay::DgexDecay::new(*factor, *floor, *monitor_rows, rows, seed))
        }
        Policy::ExpDecay { gamma } => Box::new(exp_decay::ExpDecay { base: p.lr, gamma: *gamma }),
        Policy::Step { .. } | Policy::Linear { .. } | Policy::OneCycle { .. } | Policy::CosineRestarts { .. } => {
            Box::new(lecture::Lecture { policy: p.policy.clone(), base: p.lr, epochs: p.epochs })
        }
        Policy::Lipschitz { .. } => Box::new(lipschitz::Lipschitz::new(p)),
        Policy::LipschitzAdaptive { rule, first_lr, bias_correction } => {
            Box::new(adaptive::Adaptive::new(p, *rule, *first_lr, *bias_correction))
        }
    }
}

/// Maxima over sequential batches of the training rows, in evaluation mode (dropout off):
/// ‖penultimate activations‖_F (Kz), ‖Z∘Z‖_F, ‖outputs‖_F (Ka) and ‖targets‖_F, and the
/// largest row 2-norms of outputs and targets.
pub(super) struct BatchNorms {
    pub kz: f64,
    pub ka: f64,
    pub ky: f64,
    pub sq: f64,
    /// The largest 2-norm of one output row and of one target row.
    pub ka_row: f64,
    pub ky_row: f64,
}

pub(super) fn batch_norms(v: &mut EpochView) -> BatchNorms {
    let (model, x, y, batch, threads) = (v.model, v.x, v.y, v.batch, v.threads);
    let (pin, q) = (model.inputs(), model.outputs());
    let rows = y.len() / q;
    let mut b = BatchNorms { kz: 0.0, ka: 0.0, ky: 0.0, sq: 0.0, ka_row: 0.0, ky_row: 0.0 };
    for start in (0..rows).step_by(batch) {
        let n = batch.min(rows - start);
        v.ws.inp[0][..n * pin].copy_from_slice(&x[start * pin..(start + n) * pin]);
        model.forward(v.ws, n, None, threads);
        let z = model.penultimate(v.ws, n);
        b.kz = b.kz.max(frob(z));
        b.sq = b.sq.max(z.iter().map(|v| (*v as f64).powi(4)).sum::<f64>().sqrt());
        let (out, ys) = (model.output(v.ws, n), &y[start * q..(start + n) * q]);
        b.ka = b.ka.max(frob(out));
        b.ky = b.ky.max(frob(ys));
        b.ka_row = out.chunks(q).map(frob).fold(b.ka_row, f64::max);
        b.ky_row = ys.chunks(q).map(frob).fold(b.ky_row, f64::max);
    }
    b
}

/// ‖penultimate activations‖_F over all rows of `x` (one matrix, not a maximum over
/// batches), in evaluation mode, computed in batches of the workspace's size.
pub(super) fn penultimate_norm(v: &mut EpochView, x: &[f32]) -> f64 {
    let (model, batch, threads) = (v.model, v.batch, v.threads);
    let pin = model.inputs();
    let rows = x.len().checked_div(pin).unwrap_or(0);
    let mut sq = 0f64;
    for start in (0..rows).step_by(batch) {
        let n = batch.min(rows - start);
        v.ws.inp[0][..n * pin].copy_from_slice(&x[start * pin..(start + n) * pin]);
        model.forward(v.ws, n, None, threads);
        sq += model.penultimate(v.ws, n).iter().map(|z| (*z as f64) * (*z as f64)).sum::<f64>();
    }
    sq.sqrt()
}

/// The largest Frobenius norm of a layer's weights.
pub(super) fn max_weight_norm(model: &Mlp) -> f64 {
    model.layers.iter().map(|l| frob(&l.w)).fold(0.0, f64::max)
}

/// The Frobenius norm, accumulated in f64.
pub(super) fn frob(v: &[f32]) -> f64 {
    v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt()
}
