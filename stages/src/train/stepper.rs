//! How one batch updates the network, behind one trait: [`Stepper`]. First-order optimizers
//! (SGD and momentum variants, Adagrad, RMSprop, Adam) update each buffer elementwise;
//! L-BFGS (`torch.optim.LBFGS`) runs its iterations over the flattened parameters.

use super::params::TrainParams;
use crate::nn::act::Activation;
use crate::nn::lbfgs::Lbfgs;
use crate::nn::loss::Loss;
use crate::nn::mlp::{Mlp, Workspace};
use crate::nn::optim::{Method, Rule, State};
use crate::rng::StageRng;

/// One optimization step on a batch whose `n` input rows are already in `ws.inp[0]`.
pub trait Stepper {
    /// Updates the model at rate `lr` from targets `y` (`n` rows); returns the batch loss. A
    /// non-finite loss is returned before any update.
    fn step(
        &mut self,
        model: &mut Mlp,
        ws: &mut Workspace,
        y: &[f32],
        n: usize,
        lr: f64,
        drop: Option<&mut StageRng>,
    ) -> f64;
    /// How the rate is named in a divergence message.
    fn rate_label(&self, lr: f64) -> String;
}

/// The stepper `p.optimizer` names, for `model`.
pub fn for_params(p: &TrainParams, model: &Mlp, threads: usize) -> Box<dyn Stepper> {
    match p.optimizer.method() {
        Method::Lbfgs(cfg) => {
            Box::new(LbfgsStepper { lbfgs: Lbfgs::new(cfg), loss: p.loss, weight_decay: p.weight_decay, threads })
        }
        Method::Elementwise(rule) => Box::new(FirstOrder {
            rule,
            states: model.layers.iter().map(|l| (rule.state(l.w.len()), rule.state(l.b.len()))).collect(),
            slope_states: model.layers.iter().map(|_| rule.state(1)).collect(),
            loss: p.loss,
            weight_decay: p.weight_decay,
            lr_scale_after_first: p.lr_scale_after_first,
            threads,
        }),
    }
}

/// Elementwise optimizers: one state per weight and bias buffer (and PReLU slope).
struct FirstOrder {
    rule: Rule,
    states: Vec<(State, State)>,
    slope_states: Vec<State>,
    loss: Loss,
    weight_decay: f64,
    lr_scale_after_first: f64,
    threads: usize,
}

impl Stepper for FirstOrder {
    fn step(
        &mut self,
        model: &mut Mlp,
        ws: &mut Workspace,
        y: &[f32],
        n: usize,
        lr: f64,
        drop: Option<&mut StageRng>,
    ) -> f64 {
        let (nl, q) = (model.layers.len(), model.outputs());
        model.forward(ws, n, drop, self.threads);
        let loss = self.loss.eval(&ws.out[nl - 1][..n * q], y, n, q, &mut ws.dz[nl - 1][..n * q]);
        if !loss.is_finite() {
            return loss;
        }
        model.backward(ws, n, self.threads);
        for (l, layer) in model.layers.iter_mut().enumerate() {
            if self.weight_decay > 0.0 {
                let wd = self.weight_decay as f32;
                for (g, w) in ws.gw[l].iter_mut().zip(&layer.w) {
                    *g += wd * w;
                }
            }
            let scale = if l > 0 { self.lr_scale_after_first } else { 1.0 };
            self.rule.step(&mut layer.w, &ws.gw[l], &mut self.states[l].0, lr * scale);
            self.rule.step(&mut layer.b, &ws.gb[l], &mut self.states[l].1, lr);
            if let Activation::Prelu { alpha, learnable: true } = layer.act {
                let mut a = [alpha];
                self.rule.step(&mut a, &[ws.ga[l]], &mut self.slope_states[l], lr * scale);
                layer.act = Activation::Prelu { alpha: a[0], learnable: true };
            }
        }
        loss
    }

    fn rate_label(&self, lr: f64) -> String {
        format!("learning rate {lr:e}")
    }
}

/// L-BFGS with its state kept across batches; PReLU slopes stay fixed.
struct LbfgsStepper {
    lbfgs: Lbfgs,
    loss: Loss,
    weight_decay: f64,
    threads: usize,
}

impl Stepper for LbfgsStepper {
    fn step(
        &mut self,
        model: &mut Mlp,
        ws: &mut Workspace,
        y: &[f32],
        n: usize,
        lr: f64,
        mut drop: Option<&mut StageRng>,
    ) -> f64 {
        let (nl, q) = (model.layers.len(), model.outputs());
        let (loss_fn, wd, threads) = (self.loss, self.weight_decay, self.threads);
        let mut flat = flatten(model);
        let loss = self.lbfgs.step(&mut flat, lr, |params| {
            unflatten(model, params);
            model.forward(ws, n, drop.as_deref_mut(), threads);
            let mut l = loss_fn.eval(&ws.out[nl - 1][..n * q], y, n, q, &mut ws.dz[nl - 1][..n * q]);
            model.backward(ws, n, threads);
            let mut g = Vec::with_capacity(params.len());
            for (li, layer) in model.layers.iter().enumerate() {
                g.extend(ws.gw[li].iter().zip(&layer.w).map(|(gw, w)| *gw as f64 + wd * *w as f64));
                g.extend(ws.gb[li].iter().map(|v| *v as f64));
                l += 0.5 * wd * layer.w.iter().map(|w| (*w as f64).powi(2)).sum::<f64>();
            }
            (l, g)
        });
        unflatten(model, &flat);
        loss
    }

    fn rate_label(&self, lr: f64) -> String {
        format!("L-BFGS, step size {lr:e}")
    }
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
