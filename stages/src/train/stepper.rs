//! How one batch updates the network, behind one trait: [`Stepper`]. First-order optimizers
//! (SGD and momentum variants, Adagrad, RMSprop, Adam) update each buffer elementwise;
//! L-BFGS (`torch.optim.LBFGS`) runs its iterations over the flattened parameters.

use super::params::{Clip, TrainParams};
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
    /// After the last step of an epoch, before evaluation and the policy look at `model`: a
    /// stepper that keeps the weights elsewhere (the candle backend) writes them back.
    fn end_epoch(&mut self, _model: &mut Mlp) {}
}

/// The stepper `p.optimizer` names, for `model`.
pub fn for_params(p: &TrainParams, model: &Mlp, threads: usize) -> repro_core::StageResult<Box<dyn Stepper>> {
    if p.backend == super::params::Backend::Candle {
        let s = super::candle::CandleStepper::new(p, model).map_err(|e| repro_core::StageError::param("device", e))?;
        return Ok(Box::new(s));
    }
    Ok(match p.optimizer.method() {
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
            clip: p.clip,
            threads,
        }),
    })
}

/// Elementwise optimizers: one state per weight and bias buffer (and PReLU slope).
struct FirstOrder {
    rule: Rule,
    states: Vec<(State, State)>,
    slope_states: Vec<State>,
    loss: Loss,
    weight_decay: f64,
    lr_scale_after_first: f64,
    clip: Option<Clip>,
    threads: usize,
}

/// Clips the gradients of a backward pass in place: weights, biases and learnable PReLU
/// slopes together (one global norm, as PyTorch's `clip_grad_norm_` over all parameters).
pub fn clip_gradients(model: &Mlp, ws: &mut Workspace, clip: Clip) {
    let learnable = |l: usize| matches!(model.layers[l].act, Activation::Prelu { learnable: true, .. });
    match clip {
        Clip::Value(v) => {
            let v = v as f32;
            for l in 0..model.layers.len() {
                ws.gw[l].iter_mut().chain(ws.gb[l].iter_mut()).for_each(|g| *g = g.clamp(-v, v));
                ws.ga[l] = ws.ga[l].clamp(-v, v);
            }
        }
        Clip::Norm(max) => {
            let mut sq = 0f64;
            for l in 0..model.layers.len() {
                sq += ws.gw[l].iter().chain(&ws.gb[l]).map(|g| f64::from(*g).powi(2)).sum::<f64>();
                if learnable(l) {
                    sq += f64::from(ws.ga[l]).powi(2);
                }
            }
            let coef = max / (sq.sqrt() + 1e-6);
            if coef < 1.0 {
                let c = coef as f32;
                for l in 0..model.layers.len() {
                    ws.gw[l].iter_mut().chain(ws.gb[l].iter_mut()).for_each(|g| *g *= c);
                    ws.ga[l] *= c;
                }
            }
        }
    }
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
        if let Some(c) = self.clip {
            clip_gradients(model, ws, c);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{fit, FitData};

    /// By hand: gradients (3, 0) and bias 4 have norm 5; clipping to norm 1 scales them by
    /// 1/(5 + 1e-6) (PyTorch's clip_coef); clipping by value 0.5 clamps (3, −0.2), −4 to
    /// (0.5, −0.2), −0.5. A norm below the limit leaves them as they are.
    #[test]
    fn clipping_by_norm_and_by_value() {
        let model = Mlp::new(&[2, 1], &[Activation::Identity], &[]);
        let mut ws = model.workspace(1);
        let set = |ws: &mut Workspace, w: [f32; 2], b: f32| {
            ws.gw[0].copy_from_slice(&w);
            ws.gb[0][0] = b;
        };
        set(&mut ws, [3.0, 0.0], 4.0);
        clip_gradients(&model, &mut ws, Clip::Norm(1.0));
        let c = 1.0 / (5.0 + 1e-6);
        assert!((ws.gw[0][0] - (3.0 * c) as f32).abs() < 1e-7 && (ws.gb[0][0] - (4.0 * c) as f32).abs() < 1e-7);
        set(&mut ws, [3.0, 0.0], 4.0);
        clip_gradients(&model, &mut ws, Clip::Norm(10.0));
        assert_eq!((ws.gw[0].clone(), ws.gb[0][0]), (vec![3.0, 0.0], 4.0));
        set(&mut ws, [3.0, -0.2], -4.0);
        clip_gradients(&model, &mut ws, Clip::Value(0.5));
        assert_eq!((ws.gw[0].clone(), ws.gb[0][0]), (vec![0.5, -0.2], -0.5));
    }

    /// Unset, `clip` stays out of the canonical params (no cache key changes); a limit no
    /// gradient reaches trains the same bytes as none; L-BFGS with clipping is refused.
    #[test]
    fn clip_is_keyed_only_when_set() {
        let v = serde_json::to_value(TrainParams::default()).unwrap();
        assert!(v.get("clip").is_none(), "{v}");
        let x: Vec<f32> = (0..20).map(|i| i as f32 / 10.0).collect();
        let y: Vec<f32> = x.iter().map(|v| v.sin()).collect();
        let p = TrainParams { hidden: vec![4], epochs: 3, batch: 5, ..Default::default() };
        let a = fit(&p, &FitData::new(&x, &y, 1), 1, 1, None).unwrap();
        let wide = TrainParams { clip: Some(Clip::Norm(1e9)), ..p.clone() };
        assert_eq!(serde_json::to_value(&wide).unwrap()["clip"], serde_json::json!({"norm": 1e9}));
        assert_eq!(fit(&wide, &FitData::new(&x, &y, 1), 1, 1, None).unwrap().model, a.model);
        let tight = TrainParams { clip: Some(Clip::Value(1e-4)), ..p.clone() };
        assert_ne!(fit(&tight, &FitData::new(&x, &y, 1), 1, 1, None).unwrap().model, a.model);
        let lbfgs = TrainParams {
            optimizer: crate::nn::optim::Optimizer::Lbfgs {
                max_iter: 20,
                history: 100,
                tolerance_grad: 1e-7,
                tolerance_change: 1e-9,
            },
            ..wide
        };
        assert_eq!(super::super::params::validate(&lbfgs).unwrap_err().param, "clip");
    }
}
