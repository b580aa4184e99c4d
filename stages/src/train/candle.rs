//! The `candle` backend of `train`: the same network, from the same initial weights (drawn
//! from the instance seed on the CPU by `fit`, then moved to the device), trained with
//! candle-nn layers and candle's autograd on `device`.
//!
//! What is shared with the native trainer, so both follow one definition:
//! - the training loop itself (`fit`: batches, learning-rate policies, history, evaluation,
//!   saved epochs) — this backend is a [`Stepper`];
//! - the losses: the network output of a batch comes back to the host, where [`Loss::eval`]
//!   gives the loss and dL/dŷ (every loss, sBQC and the quantile heads included); autograd then
//!   starts from Σ ŷ ⊙ dL/dŷ, whose gradient is exactly the loss's;
//! - the learning-rate policies (LALR and the others read the network through an `Mlp` the
//!   backend writes back after every epoch).
//!
//! On the device: the forward pass (candle-nn `Linear`, activations from candle ops, A-ReLU
//! and the other piecewise ones composed from masks so that their derivative at 0 is the
//! native one), the backward pass (autograd) and the optimizer updates (the elementwise rules
//! of `nn::optim`, written in tensor ops). What it cannot do yet is refused at plan time by
//! [`check`], naming the param.

use super::params::{Backend, TrainParams};
use super::stepper::Stepper;
use crate::nn::act::Activation;
use crate::nn::lbfgs::Lbfgs;
use crate::nn::loss::Loss;
use crate::nn::mlp::{Mlp, Workspace};
use crate::nn::optim::{Convention, Method, Rule};
use crate::rng::{Rng, StageRng};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module};
use repro_core::ParamError;

/// The candle version this backend was built with (recorded with every candle run).
pub const CANDLE_VERSION: &str = "0.11";

/// The device `name` names: "cpu", "cuda" (= "cuda:0"), "cuda:N".
pub fn device(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        n if n == "cuda" || n.starts_with("cuda:") => {
            let ordinal = match n.strip_prefix("cuda:") {
                Some(i) => i.parse::<usize>().map_err(|_| format!("`{n}`: the device number must be an integer"))?,
                None => 0,
            };
            if cfg!(feature = "cuda") {
                Device::new_cuda(ordinal).map_err(|e| format!("CUDA device {ordinal}: {e}"))
            } else {
                Err(no_cuda(n))
            }
        }
        other => Err(format!("unknown device `{other}`: \"cpu\", \"cuda\" or \"cuda:N\"")),
    }
}

fn no_cuda(n: &str) -> String {
    format!(
        "device `{n}` needs a build with CUDA: `cargo install --path . --features cuda` (this build has no `cuda` feature)"
    )
}

/// Plan-time check of what the candle backend supports, naming the param.
pub fn check(p: &TrainParams) -> Result<(), ParamError> {
    debug_assert_eq!(p.backend, Backend::Candle);
    let d = p.device.as_str();
    if d != "cpu" && d != "cuda" && !d.starts_with("cuda:") {
        return Err(ParamError::new("device", format!("unknown device `{d}`: \"cpu\", \"cuda\" or \"cuda:N\"")));
    }
    if d != "cpu" && !cfg!(feature = "cuda") {
        return Err(ParamError::new("device", no_cuda(d)));
    }
    if let Some(i) = d.strip_prefix("cuda:") {
        if i.parse::<usize>().is_err() {
            return Err(ParamError::new("device", format!("`{d}`: the device number must be an integer")));
        }
    }
    let unsupported = |param: &str, what: &str| {
        Err(ParamError::new(
            param,
            format!("{what} is not supported by backend = \"candle\" yet; use backend = \"native\""),
        ))
    };
    if p.clip.is_some() {
        return unsupported("clip", "gradient clipping");
    }
    let acts = p.activations.iter().chain([&p.activation, &p.output_activation]);
    if acts.into_iter().any(|a| matches!(a, Activation::Prelu { learnable: true, .. })) {
        return unsupported("activation", "a learnable PReLU slope");
    }
    Ok(())
}

fn err(e: candle_core::Error) -> String {
    format!("candle: {e}")
}

/// The activation `a` of `z`, from candle ops (differentiable by autograd). Piecewise
/// functions multiply by comparison masks, which carry no gradient, so the derivative at the
/// breakpoints is the native one.
pub fn activate(a: Activation, z: &Tensor) -> candle_core::Result<Tensor> {
    let mask = |t: Tensor| t.to_dtype(DType::F32);
    let pos = || mask(z.gt(0f32)?);
    let nonneg = || mask(z.ge(0f32)?);
    // e^u − 1 with u = z where z ≤ 0 and 0 above: finite everywhere, derivative e^z at z ≤ 0.
    let expm1_neg = || z.mul(&mask(z.le(0f32)?)?)?.exp()?.affine(1.0, -1.0);
    match a {
        Activation::Identity => Ok(z.clone()),
        Activation::Sigmoid => candle_nn::ops::sigmoid(z),
        Activation::Tanh => z.tanh(),
        Activation::Relu => z.mul(&pos()?),
        Activation::LeakyRelu { alpha } | Activation::Prelu { alpha, .. } => {
            let m = nonneg()?;
            let slope = m.affine(1.0 - f64::from(alpha), f64::from(alpha))?; // 1 where z ≥ 0, α below
            z.mul(&slope)
        }
        Activation::Elu { alpha } => {
            let p = pos()?;
            let neg = p.affine(-1.0, 1.0)?;
            z.mul(&p)?.add(&expm1_neg()?.affine(f64::from(alpha), 0.0)?.mul(&neg)?)
        }
        Activation::Selu => {
            const L: f64 = 1.050_700_9;
            const A: f64 = 1.673_263_2;
            let p = pos()?;
            let neg = p.affine(-1.0, 1.0)?;
            z.mul(&p)?.affine(L, 0.0)?.add(&expm1_neg()?.affine(L * A, 0.0)?.mul(&neg)?)
        }
        Activation::Gelu => z.gelu(),
        Activation::Silu => z.silu(),
        Activation::Softplus => {
            let big = mask(z.gt(20f32)?)?;
            let small = big.affine(-1.0, 1.0)?;
            let sp = z.mul(&small)?.exp()?.affine(1.0, 1.0)?.log()?;
            z.mul(&big)?.add(&sp.mul(&small)?)
        }
        Activation::Softsign => z.div(&z.abs()?.affine(1.0, 1.0)?),
        Activation::Gaussian => z.sqr()?.neg()?.exp(),
        Activation::Soboleva { a, b, c, d } => {
            let e = |k: f32| z.affine(f64::from(k), 0.0)?.exp();
            e(a)?.sub(&e(-b)?)?.div(&e(c)?.add(&e(-d)?)?)
        }
        Activation::BinaryStep => nonneg(),
        Activation::Arelu { k, n } => {
            // k·u^n with u = z where z > 0 and 1 elsewhere (so u^(n−1) stays finite), masked.
            let p = pos()?;
            let u = z.mul(&p)?.add(&p.affine(-1.0, 1.0)?)?;
            u.powf(f64::from(n))?.affine(f64::from(k), 0.0)?.mul(&p)
        }
    }
}

/// One buffer's optimizer state on the device.
struct Slot {
    var: Var,
    a: Option<Tensor>,
    b: Option<Tensor>,
    t: i32,
}

impl Slot {
    /// The update of `nn::optim::Rule::update`, in tensor ops.
    fn step(&mut self, rule: Rule, g: &Tensor, lr: f64) -> candle_core::Result<()> {
        self.t += 1;
        let w = self.var.as_tensor();
        let zeros = || g.zeros_like();
        let new = match rule {
            Rule::Sgd { momentum, nesterov, convention } => {
                let mu = momentum;
                if mu == 0.0 {
                    w.sub(&g.affine(lr, 0.0)?)?
                } else {
                    let v = self.a.take().map_or_else(zeros, Ok)?;
                    let (v, w) = match (convention, nesterov) {
                        (Convention::Pytorch, false) => {
                            let v = v.affine(mu, 0.0)?.add(g)?;
                            let w = w.sub(&v.affine(lr, 0.0)?)?;
                            (v, w)
                        }
                        (Convention::Pytorch, true) => {
                            let v = v.affine(mu, 0.0)?.add(g)?;
                            let w = w.sub(&g.add(&v.affine(mu, 0.0)?)?.affine(lr, 0.0)?)?;
                            (v, w)
                        }
                        (Convention::Ema, false) => {
                            let v = v.affine(mu, 0.0)?.add(&g.affine(1.0 - mu, 0.0)?)?;
                            let w = w.sub(&v.affine(lr, 0.0)?)?;
                            (v, w)
                        }
                        (Convention::Ema, true) => {
                            let v = v.affine(mu, 0.0)?.add(&g.affine(1.0 - mu, 0.0)?)?;
                            let step = v.affine(mu, 0.0)?.add(&g.affine(1.0 - mu, 0.0)?)?;
                            let w = w.sub(&step.affine(lr, 0.0)?)?;
                            (v, w)
                        }
                        (Convention::Pylearn2, false) => {
                            let v = v.affine(mu, 0.0)?.sub(&g.affine(lr, 0.0)?)?;
                            let w = w.add(&v)?;
                            (v, w)
                        }
                        (Convention::Pylearn2, true) => {
                            let v = v.affine(mu, 0.0)?.sub(&g.affine(lr, 0.0)?)?;
                            let w = w.add(&v.affine(mu, 0.0)?.sub(&g.affine(lr, 0.0)?)?)?;
                            (v, w)
                        }
                    };
                    self.a = Some(v);
                    w
                }
            }
            Rule::Adagrad { eps } => {
                let s = self.a.take().map_or_else(zeros, Ok)?.add(&g.sqr()?)?;
                let w = w.sub(&g.affine(lr, 0.0)?.div(&s.sqrt()?.affine(1.0, eps)?)?)?;
                self.a = Some(s);
                w
            }
            Rule::Rmsprop { alpha, eps } => {
                let s = self
                    .a
                    .take()
                    .map_or_else(zeros, Ok)?
                    .affine(alpha, 0.0)?
                    .add(&g.sqr()?.affine(1.0 - alpha, 0.0)?)?;
                let w = w.sub(&g.affine(lr, 0.0)?.div(&s.sqrt()?.affine(1.0, eps)?)?)?;
                self.a = Some(s);
                w
            }
            Rule::Adam { beta1, beta2, eps } => {
                let m = self.a.take().map_or_else(zeros, Ok)?.affine(beta1, 0.0)?.add(&g.affine(1.0 - beta1, 0.0)?)?;
                let v = self
                    .b
                    .take()
                    .map_or_else(zeros, Ok)?
                    .affine(beta2, 0.0)?
                    .add(&g.sqr()?.affine(1.0 - beta2, 0.0)?)?;
                let c1 = 1.0 - beta1.powi(self.t);
                let c2s = (1.0 - beta2.powi(self.t)).sqrt();
                let denom = v.sqrt()?.affine(1.0 / c2s, eps)?;
                let w = w.sub(&m.affine(lr / c1, 0.0)?.div(&denom)?)?;
                self.a = Some(m);
                self.b = Some(v);
                w
            }
        };
        self.var.set(&new)
    }
}

/// How the candle stepper updates: an elementwise rule on the device, or L-BFGS — the native
/// `nn::lbfgs` over the flattened parameters, its loss and gradient evaluated by candle.
enum Update {
    Elementwise(Rule),
    Lbfgs(Box<Lbfgs>),
}

/// The candle stepper: weights as candle `Var`s on the device.
pub struct CandleStepper {
    device: Device,
    update: Update,
    /// Dropout probability on each layer's input; the masks are drawn from the same generator
    /// in the same order as the native trainer's, so both drop the same units.
    dropout: Vec<f32>,
    loss: Loss,
    weight_decay: f64,
    lr_scale_after_first: f64,
    /// Per layer: (weight [out, in], bias [out]) and the activation.
    layers: Vec<(Slot, Slot, Activation)>,
    pin: usize,
    q: usize,
    grad: Vec<f32>,
}

impl CandleStepper {
    /// Moves `model`'s weights to `device`.
    pub fn new(p: &TrainParams, model: &Mlp) -> Result<CandleStepper, String> {
        let device = device(&p.device)?;
        let update = match p.optimizer.method() {
            Method::Elementwise(rule) => Update::Elementwise(rule),
            Method::Lbfgs(cfg) => Update::Lbfgs(Box::new(Lbfgs::new(cfg))),
        };
        let mut layers = Vec::new();
        for l in &model.layers {
            // PyTorch layout [out, in] for candle-nn's Linear (x·Wᵀ + b).
            let mut t = vec![0f32; l.w.len()];
            for r in 0..l.fan_in {
                for c in 0..l.fan_out {
                    t[c * l.fan_in + r] = l.w[r * l.fan_out + c];
                }
            }
            let w =
                Var::from_tensor(&Tensor::from_vec(t, (l.fan_out, l.fan_in), &device).map_err(err)?).map_err(err)?;
            let b = Var::from_tensor(&Tensor::from_slice(&l.b, l.fan_out, &device).map_err(err)?).map_err(err)?;
            let slot = |var| Slot { var, a: None, b: None, t: 0 };
            layers.push((slot(w), slot(b), l.act));
        }
        Ok(CandleStepper {
            device,
            update,
            dropout: model.layers.iter().map(|l| l.dropout).collect(),
            loss: p.loss,
            weight_decay: p.weight_decay,
            lr_scale_after_first: p.lr_scale_after_first,
            layers,
            pin: model.inputs(),
            q: model.outputs(),
            grad: Vec::new(),
        })
    }

    /// Inverted-dropout masks for a batch of `n` rows, layer by layer and element by element:
    /// the draws the native forward pass makes, in its order.
    fn masks(&self, n: usize, drop: Option<&mut StageRng>) -> candle_core::Result<Vec<Option<Tensor>>> {
        let Some(rng) = drop else { return Ok(vec![None; self.layers.len()]) };
        let mut out = Vec::with_capacity(self.layers.len());
        for (l, (w, _, _)) in self.layers.iter().enumerate() {
            let p = self.dropout[l];
            if p <= 0.0 {
                out.push(None);
                continue;
            }
            let fi = w.var.as_tensor().dim(1)?;
            let keep = 1.0 - p;
            let m: Vec<f32> = (0..n * fi).map(|_| if rng.random::<f32>() < keep { 1.0 / keep } else { 0.0 }).collect();
            out.push(Some(Tensor::from_vec(m, (n, fi), &self.device)?));
        }
        Ok(out)
    }

    fn forward(&self, x: &Tensor, masks: &[Option<Tensor>]) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for ((w, b, act), mask) in self.layers.iter().zip(masks) {
            if let Some(m) = mask {
                h = h.mul(m)?;
            }
            let lin = Linear::new(w.var.as_tensor().clone(), Some(b.var.as_tensor().clone()));
            h = activate(*act, &lin.forward(&h)?)?;
        }
        Ok(h)
    }

    /// The loss of a batch (host loss code) and candle's gradients of it.
    fn loss_and_grads(
        &mut self,
        xt: &Tensor,
        y: &[f32],
        n: usize,
        drop: Option<&mut StageRng>,
    ) -> candle_core::Result<(f64, Option<candle_core::backprop::GradStore>)> {
        let masks = self.masks(n, drop)?;
        let out = self.forward(xt, &masks)?;
        let pred: Vec<f32> = out.flatten_all()?.to_vec1()?;
        self.grad.resize(n * self.q, 0.0);
        let loss = self.loss.eval(&pred, y, n, self.q, &mut self.grad);
        if !loss.is_finite() {
            return Ok((loss, None));
        }
        let g = Tensor::from_slice(&self.grad, (n, self.q), &self.device)?;
        Ok((loss, Some(out.mul(&g)?.sum_all()?.backward()?)))
    }

    fn try_step(
        &mut self,
        x: &[f32],
        y: &[f32],
        n: usize,
        lr: f64,
        drop: Option<&mut StageRng>,
    ) -> candle_core::Result<f64> {
        let xt = Tensor::from_slice(&x[..n * self.pin], (n, self.pin), &self.device)?;
        if matches!(self.update, Update::Lbfgs(_)) {
            return self.lbfgs_step(&xt, y, n, lr, drop);
        }
        let (loss, grads) = self.loss_and_grads(&xt, y, n, drop)?;
        let Some(grads) = grads else { return Ok(loss) };
        let Update::Elementwise(rule) = self.update else { unreachable!("L-BFGS returned above") };
        let (wd, scale_after) = (self.weight_decay, self.lr_scale_after_first);
        for (l, (w, b, _)) in self.layers.iter_mut().enumerate() {
            let mut gw = grads.get(w.var.as_tensor()).cloned().unwrap_or(w.var.as_tensor().zeros_like()?);
            if wd > 0.0 {
                gw = gw.add(&w.var.as_tensor().affine(wd, 0.0)?)?;
            }
            let gb = grads.get(b.var.as_tensor()).cloned().unwrap_or(b.var.as_tensor().zeros_like()?);
            let scale = if l > 0 { scale_after } else { 1.0 };
            w.step(rule, &gw, lr * scale)?;
            b.step(rule, &gb, lr)?;
        }
        Ok(loss)
    }

    /// One L-BFGS step: the native optimizer over the parameters flattened as the native
    /// trainer flattens them (per layer: the weights fan_in × fan_out, then the biases), each
    /// evaluation setting the `Var`s and asking candle for the loss and gradient (with weight
    /// decay λ: + λw on weight gradients, + ½λ‖W‖² on the loss, as the native stepper).
    fn lbfgs_step(
        &mut self,
        xt: &Tensor,
        y: &[f32],
        n: usize,
        lr: f64,
        mut drop: Option<&mut StageRng>,
    ) -> candle_core::Result<f64> {
        let Update::Lbfgs(mut lbfgs) =
            std::mem::replace(&mut self.update, Update::Elementwise(Rule::Adagrad { eps: 0.0 }))
        else {
            unreachable!("called for L-BFGS only")
        };
        let mut flat = self.flatten()?;
        let mut failure = None;
        let wd = self.weight_decay;
        let loss = lbfgs.step(&mut flat, lr, |params| {
            let r = (|| -> candle_core::Result<(f64, Vec<f64>)> {
                self.unflatten(params)?;
                let (mut loss, grads) = self.loss_and_grads(xt, y, n, drop.as_deref_mut())?;
                let Some(grads) = grads else { return Ok((loss, vec![0.0; params.len()])) };
                let mut g = Vec::with_capacity(params.len());
                for (w, b, _) in &self.layers {
                    let wt = w.var.as_tensor();
                    let (fo, fi) = wt.dims2()?;
                    let gw: Vec<f32> = match grads.get(wt) {
                        Some(t) => t.t()?.flatten_all()?.to_vec1()?,
                        None => vec![0.0; fo * fi],
                    };
                    let wv: Vec<f32> = wt.t()?.flatten_all()?.to_vec1()?;
                    g.extend(gw.iter().zip(&wv).map(|(gw, w)| f64::from(*gw) + wd * f64::from(*w)));
                    loss += 0.5 * wd * wv.iter().map(|w| f64::from(*w).powi(2)).sum::<f64>();
                    match grads.get(b.var.as_tensor()) {
                        Some(t) => g.extend(t.to_vec1::<f32>()?.iter().map(|v| f64::from(*v))),
                        None => g.extend(std::iter::repeat_n(0.0, fo)),
                    }
                }
                Ok((loss, g))
            })();
            r.unwrap_or_else(|e| {
                failure = Some(e);
                (f64::NAN, vec![0.0; params.len()])
            })
        });
        let set = self.unflatten(&flat);
        self.update = Update::Lbfgs(lbfgs);
        if let Some(e) = failure {
            return Err(e);
        }
        set?;
        Ok(loss)
    }

    /// Every weight and bias as the native trainer flattens them.
    fn flatten(&self) -> candle_core::Result<Vec<f64>> {
        let mut v = Vec::new();
        for (w, b, _) in &self.layers {
            v.extend(w.var.as_tensor().t()?.flatten_all()?.to_vec1::<f32>()?.iter().map(|x| f64::from(*x)));
            v.extend(b.var.as_tensor().to_vec1::<f32>()?.iter().map(|x| f64::from(*x)));
        }
        Ok(v)
    }

    fn unflatten(&self, v: &[f64]) -> candle_core::Result<()> {
        let mut i = 0;
        for (w, b, _) in &self.layers {
            let (fo, fi) = w.var.as_tensor().dims2()?;
            let wv: Vec<f32> = v[i..i + fo * fi].iter().map(|x| *x as f32).collect();
            i += fo * fi;
            // Native layout fan_in × fan_out back to candle's [out, in].
            w.var.set(&Tensor::from_vec(wv, (fi, fo), &self.device)?.t()?.contiguous()?)?;
            let bv: Vec<f32> = v[i..i + fo].iter().map(|x| *x as f32).collect();
            i += fo;
            b.var.set(&Tensor::from_vec(bv, fo, &self.device)?)?;
        }
        Ok(())
    }

    /// Copies the device weights into `model`.
    pub fn write_back(&self, model: &mut Mlp) -> candle_core::Result<()> {
        for ((w, b, _), l) in self.layers.iter().zip(model.layers.iter_mut()) {
            let t: Vec<f32> = w.var.as_tensor().flatten_all()?.to_vec1()?;
            for r in 0..l.fan_in {
                for c in 0..l.fan_out {
                    l.w[r * l.fan_out + c] = t[c * l.fan_in + r];
                }
            }
            l.b = b.var.as_tensor().to_vec1()?;
        }
        Ok(())
    }

    /// What ran: the backend, candle's version and the device.
    pub fn describe(&self) -> String {
        let dev = match &self.device {
            Device::Cpu => "cpu".to_string(),
            d => format!("{:?}", d.location()),
        };
        format!("candle {CANDLE_VERSION} on {dev}")
    }
}

impl Stepper for CandleStepper {
    fn step(
        &mut self,
        _model: &mut Mlp,
        ws: &mut Workspace,
        y: &[f32],
        n: usize,
        lr: f64,
        drop: Option<&mut StageRng>,
    ) -> f64 {
        // The weights live on the device; `end_epoch` writes them into the model.
        match self.try_step(&ws.inp[0], y, n, lr, drop) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("candle step failed: {e}");
                f64::NAN
            }
        }
    }

    fn rate_label(&self, lr: f64) -> String {
        format!("learning rate {lr:e}, {}", self.describe())
    }

    fn end_epoch(&mut self, model: &mut Mlp) {
        if let Err(e) = self.write_back(model) {
            tracing::error!("candle: copying the weights back failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::init::Init;
    use crate::nn::loss::QuantileBase;
    use crate::nn::optim::Optimizer;
    use crate::rng::{rng, Rng};
    use crate::train::params::Policy;
    use crate::train::{fit, FitData};

    /// Every activation: candle's value and autograd derivative against the native f and
    /// derivative on a grid that includes the breakpoint 0 itself.
    #[test]
    fn activations_and_their_derivatives_match_native() {
        let mut acts = crate::nn::act::tests::all();
        acts.push(Activation::BinaryStep);
        let xs: Vec<f32> = vec![-30.0, -3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0, 25.0];
        for a in acts {
            let v = Var::from_slice(&xs, xs.len(), &Device::Cpu).unwrap();
            let out = activate(a, v.as_tensor()).unwrap();
            let grads = out.sum_all().unwrap().backward().unwrap();
            let f: Vec<f32> = out.to_vec1().unwrap();
            let d: Vec<f32> = match grads.get(v.as_tensor()) {
                Some(g) => g.to_vec1().unwrap(),
                None => vec![0.0; xs.len()],
            };
            for (i, x) in xs.iter().enumerate() {
                let (nf, nd) = (a.f(*x), a.derivative(*x, a.f(*x)));
                let tol = |v: f32| 2e-6 * (1.0 + v.abs());
                assert!((f[i] - nf).abs() <= tol(nf), "{a:?} f({x}): candle {} native {nf}", f[i]);
                assert!((d[i] - nd).abs() <= tol(nd), "{a:?} f'({x}): candle {} native {nd}", d[i]);
            }
        }
    }

    fn data(rows: usize, p: usize, q: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut r = rng(seed, "candle-test");
        let x: Vec<f32> = (0..rows * p).map(|_| r.random::<f32>() * 2.0 - 1.0).collect();
        let y: Vec<f32> =
            (0..rows * q).map(|i| (x[(i / q) * p] * (1.0 + i as f32 % 3.0)).sin() + 0.1 * x[(i / q) * p + 1]).collect();
        (x, y)
    }

    /// Trains `p` with both backends from the same seed (the same initial weights and batches)
    /// and returns both loss curves and the largest weight difference at the end.
    fn both(p: &TrainParams, x: &[f32], y: &[f32], q: usize) -> (Vec<f64>, Vec<f64>, f32) {
        let curve = |t: &crate::train::Trained| -> Vec<f64> {
            t.history.iter().map(|h| h["train_loss"].as_f64().unwrap()).collect()
        };
        let native = fit(p, &FitData::new(x, y, q), 7, 1, None).unwrap();
        let cp = TrainParams { backend: Backend::Candle, ..p.clone() };
        super::super::params::validate(&cp).unwrap();
        let candle = fit(&cp, &FitData::new(x, y, q), 7, 1, None).unwrap();
        let dw = native
            .model
            .layers
            .iter()
            .zip(&candle.model.layers)
            .flat_map(|(a, b)| a.w.iter().zip(&b.w).chain(a.b.iter().zip(&b.b)).map(|(u, v)| (u - v).abs()))
            .fold(0f32, f32::max);
        (curve(&native), curve(&candle), dw)
    }

    /// The stated tolerance: over 20 epochs every epoch's training loss agrees to 1e-4
    /// relative (f32 sums in another order: candle's matmul is the same gemm crate, blocked
    /// differently), and the final weights to 1e-3.
    fn agree(what: &str, p: &TrainParams, x: &[f32], y: &[f32], q: usize) {
        agree_within(what, p, x, y, q, 1e-4);
    }

    fn agree_within(what: &str, p: &TrainParams, x: &[f32], y: &[f32], q: usize, tol: f64) {
        let (a, b, dw) = both(p, x, y, q);
        assert_eq!(a.len(), 20);
        for (e, (u, v)) in a.iter().zip(&b).enumerate() {
            assert!((u - v).abs() <= tol * u.abs().max(1e-3), "{what}, epoch {}: native {u} candle {v}", e + 1);
        }
        assert!(dw < 1e-3, "{what}: weights differ by {dw}");
        assert!(a[19] < a[0], "{what}: the run trains ({} → {})", a[0], a[19]);
    }

    fn base() -> TrainParams {
        TrainParams { hidden: vec![8, 6], epochs: 20, batch: 16, ..Default::default() }
    }

    #[test]
    fn tanh_mse_sgd_matches_native() {
        let (x, y) = data(64, 5, 3, 1);
        let p = TrainParams {
            activation: Activation::Tanh,
            loss: Loss::Mse,
            optimizer: Optimizer::Sgd { momentum: 0.9, nesterov: false, convention: Convention::Pytorch },
            lr: 0.05,
            ..base()
        };
        agree("tanh / MSE / SGD", &p, &x, &y, 3);
    }

    #[test]
    fn arelu_lalr_matches_native() {
        let (x, y) = data(64, 5, 3, 2);
        let policy: Policy =
            serde_json::from_str(r#"{"name": "lipschitz", "variant": "paper", "m": "batch"}"#).unwrap();
        let p = TrainParams {
            hidden: vec![8],
            activation: Activation::Arelu { k: 0.6, n: 1.2 },
            init: Init::GlorotUniform,
            loss: Loss::MseSum,
            optimizer: Optimizer::Sgd { momentum: 0.5, nesterov: false, convention: Convention::Pylearn2 },
            policy,
            ..base()
        };
        agree("A-ReLU / LALR", &p, &x, &y, 3);
    }

    #[test]
    fn log_cosh_adam_matches_native() {
        let (x, y) = data(64, 5, 2, 3);
        let p = TrainParams {
            activation: Activation::Relu,
            loss: Loss::LogCosh,
            optimizer: Optimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            lr: 0.01,
            weight_decay: 1e-3,
            ..base()
        };
        agree("log-cosh / Adam", &p, &x, &y, 2);
    }

    #[test]
    fn sbqc_matches_native() {
        let (x, y) = data(64, 5, 1, 4);
        let y: Vec<f32> = y.iter().map(|v| f32::from(u8::from(*v > 0.0))).collect();
        let p = TrainParams {
            activation: Activation::Relu,
            loss: Loss::Sbqc { tau: 0.5 },
            optimizer: Optimizer::Rmsprop { alpha: 0.99, eps: 1e-8 },
            lr: 0.005,
            ..base()
        };
        agree("sBQC / RMSprop", &p, &x, &y, 1);
    }

    #[test]
    fn quantile_heads_match_native() {
        let (x, y) = data(64, 5, 1, 5);
        // The quantile loss takes the targets repeated once per head.
        let y3: Vec<f32> = y.iter().flat_map(|v| [*v, *v, *v]).collect();
        let p = TrainParams {
            activation: Activation::Elu { alpha: 1.0 },
            loss: Loss::Quantiles { heads: 3, base: QuantileBase::TiltedLogCosh, crossing: 0.1 },
            optimizer: Optimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            lr: 0.01,
            lr_scale_after_first: 2.0,
            ..base()
        };
        agree("quantile heads / Adam", &p, &x, &y3, 3);
    }

    /// Dropout draws the same masks as the native trainer (same generator, same order), and
    /// L-BFGS is the native optimizer fed by candle's loss and gradient (LogGENE's setting:
    /// tanh, dropout on the hidden inputs, full batch, history 10).
    #[test]
    fn dropout_and_lbfgs_match_native() {
        let (x, y) = data(64, 5, 2, 7);
        let p = TrainParams {
            activation: Activation::Tanh,
            dropout: vec![0.0, 0.2, 0.1],
            loss: Loss::Mse,
            optimizer: Optimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            lr: 0.01,
            ..base()
        };
        agree("dropout / Adam", &p, &x, &y, 2);
        let p = TrainParams {
            activation: Activation::Tanh,
            dropout: vec![0.0, 0.1, 0.1],
            loss: Loss::LogCosh,
            optimizer: Optimizer::Lbfgs { max_iter: 5, history: 10, tolerance_grad: 1e-7, tolerance_change: 1e-9 },
            lr: 1.0,
            weight_decay: 1e-3,
            batch: 64,
            ..base()
        };
        // L-BFGS builds its steps from differences of gradients, which amplify the f32
        // rounding of the two backends' sums: 1e-3 here (about 5e-4 is reached by epoch 19).
        agree_within("log-cosh / L-BFGS with dropout", &p, &x, &y, 2, 1e-3);
    }

    #[test]
    fn softmax_ce_and_bce_match_native() {
        let (x, y) = data(64, 5, 1, 6);
        let onehot: Vec<f32> = y
            .iter()
            .flat_map(|v| {
                let c = usize::from(*v > -0.3) + usize::from(*v > 0.3);
                (0..3).map(move |k| f32::from(u8::from(k == c)))
            })
            .collect();
        let cycle: Policy = serde_json::from_str(r#"{"name": "one_cycle"}"#).unwrap();
        let p = TrainParams {
            activation: Activation::Gelu,
            loss: Loss::SoftmaxCe,
            optimizer: Optimizer::Adagrad { eps: 1e-10 },
            lr: 0.05,
            policy: cycle,
            ..base()
        };
        agree("softmax CE / Adagrad / 1-cycle", &p, &x, &onehot, 3);
        let binary: Vec<f32> = y.iter().map(|v| f32::from(u8::from(*v > 0.0))).collect();
        let p = TrainParams {
            activation: Activation::Sigmoid,
            loss: Loss::Bce,
            optimizer: Optimizer::Sgd { momentum: 0.9, nesterov: true, convention: Convention::Pylearn2 },
            lr: 0.1,
            ..base()
        };
        agree("BCE / Nesterov (pylearn2)", &p, &x, &binary, 1);
    }

    /// What the backend cannot do is a plan-time error naming the param.
    #[test]
    fn unsupported_settings_are_refused_at_plan_time() {
        let v = super::super::params::validate;
        let candle = TrainParams { backend: Backend::Candle, ..base() };
        assert!(v(&candle).is_ok());
        let cuda = TrainParams { device: "cuda".into(), ..candle.clone() };
        if !cfg!(feature = "cuda") {
            let e = v(&cuda).unwrap_err();
            assert_eq!(e.param, "device");
            assert!(e.message.contains("--features cuda"), "{e}");
        }
        let native_cuda = TrainParams { device: "cuda".into(), ..base() };
        assert!(v(&native_cuda).unwrap_err().message.contains("backend = \"candle\""));
        assert_eq!(v(&TrainParams { device: "tpu".into(), ..candle.clone() }).unwrap_err().param, "device");
        assert_eq!(
            v(&TrainParams { clip: Some(crate::train::Clip::Norm(1.0)), ..candle.clone() }).unwrap_err().param,
            "clip"
        );
        // The backend joins the key only when it is not the default.
        assert!(serde_json::to_value(base()).unwrap().get("backend").is_none());
        assert_eq!(serde_json::to_value(&candle).unwrap()["backend"], "candle");
    }
}
