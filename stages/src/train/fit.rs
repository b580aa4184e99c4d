//! The training loop: initialize the network from the seed, then per epoch ask the
//! learning-rate policy for the rate, draw batches, let the stepper update the network, and
//! record the history. Policies and optimizers live behind [`LrSchedule`] and [`Stepper`].

use super::params::{Batching, KzFrom, Policy, TrainParams};
use super::schedule::{self, EpochView, LrSchedule};
use super::stepper;
use crate::metrics::quick_metrics;
use crate::nn::act::Activation;
use crate::nn::mlp::{Mlp, Predictions};
use crate::rng::{permutation, rng, Rng, StageRng};
use repro_core::{Ctx, StageError, StageResult};
use serde_json::Value;

/// The data `fit` trains on: inputs and targets row-major, `q` target columns, and an optional
/// dataset evaluated after every epoch (history only).
pub struct FitData<'a> {
    /// Inputs, `rows × p`.
    pub x: &'a [f32],
    /// Targets, `rows × q`.
    pub y: &'a [f32],
    /// Target columns.
    pub q: usize,
    /// Inputs and targets evaluated after every epoch.
    pub eval: Option<(&'a [f32], &'a [f32])>,
    /// Pretrained first layers (the `pretrained` input, e.g. `pretrain`'s encoder): their
    /// weights and biases replace the drawn ones; the layers above keep `init`.
    pub pretrained: Option<&'a Mlp>,
}

impl<'a> FitData<'a> {
    /// Training data without an evaluation set.
    pub fn new(x: &'a [f32], y: &'a [f32], q: usize) -> Self {
        FitData { x, y, q, eval: None, pretrained: None }
    }
}

/// A trained model, its history and the models saved at `save_at`.
pub struct Trained {
    /// The model after the last epoch.
    pub model: Mlp,
    /// Per epoch: epoch, lr, train_loss, what the policy computed, eval metrics.
    pub history: Vec<Value>,
    /// (epoch, model) for each `save_at` epoch.
    pub saved: Vec<(usize, Mlp)>,
}

/// Trains a network as `p` describes; every random choice comes from `seed`.
pub fn fit(p: &TrainParams, data: &FitData, seed: u64, threads: usize, ctx: Option<&Ctx>) -> StageResult<Trained> {
    if let Policy::Lipschitz(s) = &p.policy {
        if s.kz_from == KzFrom::EvalSet && data.eval.is_none() {
            return Err(StageError::param(
                "policy",
                "LALR with kz_from = \"eval_set\" (the `published_code` variant) measures Kz on the `eval` dataset, as the authors' code did: bind `eval` (e.g. eval = \"tsplit_test.g1\")",
            ));
        }
    }
    let (x, y, q) = (data.x, data.y, data.q);
    let rows = y.len() / q;
    let pin = x.len().checked_div(rows).unwrap_or(0);
    let mut model = init_model(p, pin, q, seed);
    if let Some(pre) = data.pretrained {
        load_pretrained(&mut model, pre)?;
    }
    let batch = p.batch.min(rows).max(1);
    let steps = if p.steps_per_epoch > 0 { p.steps_per_epoch } else { (rows / batch).max(1) };
    let mut ws = model.workspace(batch);
    let mut schedule = schedule::for_params(p, rows, seed);
    let mut stepper = stepper::for_params(p, &model, threads)?;
    let mut batches =
        Batches { batching: p.batching, rng: rng(seed, "batches"), idx: (0..rows).collect(), rows, batch };
    let mut drop_rng = rng(seed, "dropout");
    let dropout_on = p.dropout.iter().any(|d| *d > 0.0);
    let (mut lr, mut history, mut saved) = (p.lr, Vec::new(), Vec::new());
    let mut yb = vec![0f32; batch * q];
    let (mut eval_keep, mut eval_pred) = (Predictions::default(), Vec::new());
    for epoch in 1..=p.epochs {
        if let Some(c) = ctx {
            c.check_cancel()?;
        }
        let mut view = EpochView { model: &model, ws: &mut ws, x, y, batch, threads, eval_x: data.eval.map(|e| e.0) };
        let (rate, info) = schedule.before_epoch(epoch, lr, &mut view);
        lr = rate;
        batches.start_epoch();
        let mut loss_sum = 0f64;
        for step in 0..steps {
            if let Some(c) = ctx {
                c.check_cancel()?;
            }
            let chosen = batches.next(step);
            let n = chosen.len();
            for (r, &i) in chosen.iter().enumerate() {
                ws.inp[0][r * pin..(r + 1) * pin].copy_from_slice(&x[i * pin..(i + 1) * pin]);
                yb[r * q..(r + 1) * q].copy_from_slice(&y[i * q..(i + 1) * q]);
            }
            let drop = if dropout_on { Some(&mut drop_rng) } else { None };
            let loss = stepper.step(&mut model, &mut ws, &yb[..n * q], n, lr, drop);
            check_finite(loss, epoch, step, &stepper.rate_label(lr))?;
            loss_sum += loss;
        }
        stepper.end_epoch(&mut model);
        let mut h = epoch_record(epoch, lr, loss_sum / steps as f64, schedule.as_ref(), info);
        if let Some((ex, ey)) = data.eval {
            model.predict_into(ex, &mut eval_keep, &mut eval_pred, threads);
            for (k, v) in quick_metrics(&eval_pred, ey, q, &p.loss) {
                h.insert(format!("eval_{k}"), v);
            }
        }
        let mut view = EpochView { model: &model, ws: &mut ws, x, y, batch, threads, eval_x: data.eval.map(|e| e.0) };
        lr = schedule.after_epoch(lr, &mut view, &mut h);
        if let Some(c) = ctx {
            c.report(
                epoch as u64,
                p.epochs as u64,
                format!("epoch {epoch} loss {:.5} lr {lr:.3e}", loss_sum / steps as f64),
            );
        }
        history.push(Value::Object(h));
        if p.save_at.contains(&epoch) {
            saved.push((epoch, model.clone()));
        }
    }
    Ok(Trained { model, history, saved })
}

/// The network `p` describes, initialized from the seed.
fn init_model(p: &TrainParams, pin: usize, q: usize, seed: u64) -> Mlp {
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
    model
}

/// Copies the weights and biases of `pre`'s layers into the first layers of `model`. The
/// pretrained stack must match the network's first layers in size and leave at least the
/// output layer to train from `init`.
fn load_pretrained(model: &mut Mlp, pre: &Mlp) -> StageResult<()> {
    let shape = |m: &Mlp| m.layers.iter().map(|l| format!("{}→{}", l.fan_in, l.fan_out)).collect::<Vec<_>>().join(", ");
    let fits = pre.layers.len() < model.layers.len()
        && pre.layers.iter().zip(&model.layers).all(|(a, b)| (a.fan_in, a.fan_out) == (b.fan_in, b.fan_out));
    if !fits {
        return Err(StageError::param(
            "pretrained",
            format!(
                "the pretrained layers ({}) do not match the first hidden layers of this network ({}): `hidden` must start with the pretrained sizes, and the data must have the features the stack was pretrained on",
                shape(pre),
                shape(model)
            ),
        ));
    }
    for (dst, src) in model.layers.iter_mut().zip(&pre.layers) {
        dst.w.clone_from(&src.w);
        dst.b.clone_from(&src.b);
    }
    Ok(())
}

/// The history entry of an epoch, before evaluation metrics.
fn epoch_record(
    epoch: usize,
    lr: f64,
    train_loss: f64,
    schedule: &dyn LrSchedule,
    info: Option<Value>,
) -> serde_json::Map<String, Value> {
    let mut h = serde_json::Map::new();
    h.insert("epoch".into(), epoch.into());
    h.insert("lr".into(), lr.into());
    h.insert("train_loss".into(), train_loss.into());
    if let Some(info) = info {
        h.insert(schedule.history_key().into(), info);
    }
    h
}

/// Which rows each step trains on.
struct Batches {
    batching: Batching,
    rng: StageRng,
    idx: Vec<usize>,
    rows: usize,
    batch: usize,
}

impl Batches {
    fn start_epoch(&mut self) {
        if matches!(self.batching, Batching::Shuffle) {
            self.idx = permutation(&mut self.rng, self.rows);
        }
    }

    fn next(&mut self, step: usize) -> &[usize] {
        match self.batching {
            Batching::Random => {
                // Partial Fisher-Yates: `batch` distinct rows.
                for i in 0..self.batch {
                    let j = self.rng.random_range(i..self.rows);
                    self.idx.swap(i, j);
                }
                &self.idx[..self.batch]
            }
            Batching::Shuffle => {
                let s = (step * self.batch) % self.rows;
                let e = (s + self.batch).min(self.rows);
                &self.idx[s..e]
            }
        }
    }
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
