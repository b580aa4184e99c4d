//! A multi-layer perceptron with hand-written forward and backward passes over reused
//! buffers: every matmul is one `gemm` call into a preallocated output, weights are stored
//! fan_in × fan_out so the forward pass uses the plain (not transposed) layout, the first
//! layer never computes a gradient for its input, and optimizer updates are in place. This is
//! what makes an epoch several times faster than a plain candle loop (see `benches/train.rs`);
//! the gradients are checked against finite differences and against candle's autograd.
//!
//! Saved as safetensors in PyTorch's layout (`layers.{i}.weight` [out, in], `layers.{i}.bias`),
//! with the architecture in the `repro` metadata entry.

use super::act::Activation;
use super::linalg::{gemm, Op};
use crate::rng::{Rng, StageRng};
use rayon::prelude::*;
use repro_core::{StageError, StageResult, WithPath};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const PAR: usize = 1 << 15;

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub fan_in: usize,
    pub fan_out: usize,
    /// fan_in × fan_out, row-major.
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub act: Activation,
    /// Dropout probability on this layer's input (training only; inverted scaling).
    pub dropout: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    pub layers: Vec<Layer>,
}

/// Buffers for one batch size, reused across steps.
#[derive(Debug, Default)]
pub struct Workspace {
    rows: usize,
    /// Input of each layer (after dropout).
    pub inp: Vec<Vec<f32>>,
    pub mask: Vec<Vec<f32>>,
    pub z: Vec<Vec<f32>>,
    pub out: Vec<Vec<f32>>,
    pub dz: Vec<Vec<f32>>,
    pub gw: Vec<Vec<f32>>,
    pub gb: Vec<Vec<f32>>,
    /// dL/dα of each layer whose activation is a learnable PReLU (0 for the others).
    pub ga: Vec<f32>,
}

/// The buffers [`Mlp::predict_into`] keeps between calls (empty until the first).
#[derive(Debug, Default)]
pub struct Predictions(Option<Workspace>);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    format: String,
    sizes: Vec<usize>,
    activations: Vec<Activation>,
    dropout: Vec<f32>,
    #[serde(default)]
    info: serde_json::Value,
}

/// An A-ReLU's k and n, when n is finite (the vectorized power's domain; n − 1 then is too).
fn arelu(act: Activation) -> Option<(f32, f32)> {
    match act {
        Activation::Arelu { k, n } if n.is_finite() => Some((k, n)),
        _ => None,
    }
}

fn map_act(act: Activation, z: &[f32], a: &mut [f32]) {
    if act == Activation::Identity {
        a.copy_from_slice(z);
    } else if act == Activation::Tanh {
        // Vectorized, the same bits as `act.f` (see `nn::tanh`).
        a.par_chunks_mut(PAR).zip(z.par_chunks(PAR)).for_each(|(a, z)| super::tanh::tanh_slice(a, z));
    } else if let Some((k, n)) = arelu(act) {
        // Vectorized, the same bits as `act.f` (see `nn::powf`).
        a.par_chunks_mut(PAR).zip(z.par_chunks(PAR)).for_each(|(a, z)| super::powf::powf_slice(a, z, n, k));
    } else if z.len() > PAR {
        a.par_chunks_mut(PAR).zip(z.par_chunks(PAR)).for_each(|(a, z)| {
            for (a, z) in a.iter_mut().zip(z) {
                *a = act.f(*z);
            }
        });
    } else {
        for (a, z) in a.iter_mut().zip(z) {
            *a = act.f(*z);
        }
    }
}

impl Mlp {
    pub fn new(sizes: &[usize], acts: &[Activation], dropout: &[f32]) -> Mlp {
        let layers = (0..sizes.len() - 1)
            .map(|l| Layer {
                fan_in: sizes[l],
                fan_out: sizes[l + 1],
                w: vec![0.0; sizes[l] * sizes[l + 1]],
                b: vec![0.0; sizes[l + 1]],
                act: acts[l],
                dropout: dropout.get(l).copied().unwrap_or(0.0),
            })
            .collect();
        Mlp { layers }
    }

    pub fn inputs(&self) -> usize {
        self.layers[0].fan_in
    }
    pub fn outputs(&self) -> usize {
        self.layers.last().unwrap().fan_out
    }

    /// Buffers for training steps: an [`Self::inference_workspace`] plus dropout masks,
    /// gradients and the PReLU slopes' gradients.
    pub fn workspace(&self, rows: usize) -> Workspace {
        let mut ws = self.inference_workspace(rows);
        for l in &self.layers {
            ws.mask.push(if l.dropout > 0.0 { vec![0.0; rows * l.fan_in] } else { vec![] });
            ws.dz.push(vec![0.0; rows * l.fan_out]);
            ws.gw.push(vec![0.0; l.fan_in * l.fan_out]);
            ws.gb.push(vec![0.0; l.fan_out]);
            ws.ga.push(0.0);
        }
        ws
    }

    /// Buffers for forward passes in evaluation mode only (`predict`): no gradients, no
    /// dropout masks, so nothing the size of the weights is allocated per call.
    pub fn inference_workspace(&self, rows: usize) -> Workspace {
        let mut ws = Workspace { rows, ..Default::default() };
        for l in &self.layers {
            ws.inp.push(vec![0.0; rows * l.fan_in]);
            ws.z.push(vec![0.0; rows * l.fan_out]);
            ws.out.push(vec![0.0; rows * l.fan_out]);
        }
        ws
    }

    /// Forward pass of `rows` rows whose input is already in `ws.inp[0]`. With `dropout_rng`
    /// the pass is in training mode (dropout on); without it, evaluation mode.
    pub fn forward(&self, ws: &mut Workspace, rows: usize, mut dropout_rng: Option<&mut StageRng>, threads: usize) {
        assert!(rows <= ws.rows, "workspace holds {} rows, asked for {rows}", ws.rows);
        for (l, layer) in self.layers.iter().enumerate() {
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            if l > 0 {
                ws.inp[l][..rows * fi].copy_from_slice(&ws.out[l - 1][..rows * fi]);
            }
            if layer.dropout > 0.0 {
                if let Some(rng) = dropout_rng.as_deref_mut() {
                    let keep = 1.0 - layer.dropout;
                    for (m, x) in ws.mask[l][..rows * fi].iter_mut().zip(ws.inp[l][..rows * fi].iter_mut()) {
                        *m = if rng.random::<f32>() < keep { 1.0 / keep } else { 0.0 };
                        *x *= *m;
                    }
                }
            }
            let z = &mut ws.z[l][..rows * fo];
            for r in 0..rows {
                z[r * fo..(r + 1) * fo].copy_from_slice(&layer.b);
            }
            gemm(z, &ws.inp[l][..rows * fi], Op::N, &layer.w, Op::N, rows, fo, fi, true, threads);
            map_act(layer.act, &ws.z[l][..rows * fo], &mut ws.out[l][..rows * fo]);
        }
    }

    /// Output of the last forward pass.
    pub fn output<'a>(&self, ws: &'a Workspace, rows: usize) -> &'a [f32] {
        &ws.out[self.layers.len() - 1][..rows * self.outputs()]
    }

    /// Penultimate activations of the last forward pass (the input of the output layer).
    pub fn penultimate<'a>(&self, ws: &'a Workspace, rows: usize) -> &'a [f32] {
        let l = self.layers.len() - 1;
        &ws.inp[l][..rows * self.layers[l].fan_in]
    }

    /// Backward pass from dL/d(output) (in `ws.dz[last]` on entry, as the gradient w.r.t. the
    /// activation output); fills `ws.gw`, `ws.gb`.
    pub fn backward(&self, ws: &mut Workspace, rows: usize, threads: usize) {
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            // A learnable PReLU slope: dL/dα = Σ over z < 0 of dL/da · z (fixed blocks, in order).
            if let Activation::Prelu { learnable: true, .. } = layer.act {
                let parts: Vec<f64> = ws.dz[l][..rows * fo]
                    .par_chunks(PAR)
                    .zip(ws.z[l][..rows * fo].par_chunks(PAR))
                    .map(|(d, z)| {
                        d.iter().zip(z).filter(|(_, z)| **z < 0.0).map(|(d, z)| f64::from(*d) * f64::from(*z)).sum()
                    })
                    .collect();
                ws.ga[l] = parts.iter().sum::<f64>() as f32;
            }
            // dz currently holds dL/da; turn it into dL/dz.
            if layer.act != Activation::Identity {
                let act = layer.act;
                let dz = &mut ws.dz[l][..rows * fo];
                let z = &ws.z[l][..rows * fo];
                let a = &ws.out[l][..rows * fo];
                match arelu(act) {
                    // Vectorized, the same bits as `act.derivative` (see `nn::powf`).
                    Some((k, n)) => {
                        dz.par_chunks_mut(PAR).zip(z.par_chunks(PAR)).for_each(|(d, z)| {
                            let mut g = [0f32; 256];
                            for (d, z) in d.chunks_mut(g.len()).zip(z.chunks(g.len())) {
                                let g = &mut g[..d.len()];
                                super::powf::powf_slice(g, z, n - 1.0, k * n);
                                for (d, g) in d.iter_mut().zip(g.iter()) {
                                    *d *= *g;
                                }
                            }
                        });
                    }
                    None => {
                        dz.par_chunks_mut(PAR).zip(z.par_chunks(PAR)).zip(a.par_chunks(PAR)).for_each(|((d, z), a)| {
                            for ((d, z), a) in d.iter_mut().zip(z).zip(a) {
                                *d *= act.derivative(*z, *a);
                            }
                        });
                    }
                }
            }
            gemm(
                &mut ws.gw[l],
                &ws.inp[l][..rows * fi],
                Op::T,
                &ws.dz[l][..rows * fo],
                Op::N,
                fi,
                fo,
                rows,
                false,
                threads,
            );
            let gb = &mut ws.gb[l];
            gb.fill(0.0);
            for r in 0..rows {
                for (g, d) in gb.iter_mut().zip(&ws.dz[l][r * fo..(r + 1) * fo]) {
                    *g += d;
                }
            }
            if l > 0 {
                let (lo, hi) = ws.dz.split_at_mut(l);
                // dL/d(input of l) = dz·Wᵀ, written straight into the previous layer's dL/da.
                let prev = &mut lo[l - 1][..rows * fi];
                gemm(prev, &hi[0][..rows * fo], Op::N, &layer.w, Op::T, rows, fi, fo, false, threads);
                if !ws.mask[l].is_empty() {
                    for (p, m) in prev.iter_mut().zip(&ws.mask[l][..rows * fi]) {
                        *p *= m;
                    }
                }
            }
        }
    }

    /// Predictions for every row of `x` (rows × inputs), in evaluation mode.
    pub fn predict(&self, x: &[f32], threads: usize) -> Vec<f32> {
        let mut out = Vec::new();
        self.predict_into(x, &mut Predictions::default(), &mut out, threads);
        out
    }

    /// [`Self::predict`] into `out`, with buffers kept in `keep` from one call to the next (a
    /// policy predicting every epoch allocates and zeroes nothing after the first).
    pub fn predict_into(&self, x: &[f32], keep: &mut Predictions, out: &mut Vec<f32>, threads: usize) {
        let p = self.inputs();
        let rows = x.len() / p;
        let chunk = 1024.min(rows.max(1));
        let fits = |ws: &Workspace| {
            ws.rows == chunk
                && ws.inp.len() == self.layers.len()
                && self.layers.iter().zip(&ws.z).all(|(l, z)| z.len() == chunk * l.fan_out)
                && self.layers.iter().zip(&ws.inp).all(|(l, x)| x.len() == chunk * l.fan_in)
        };
        if !keep.0.as_ref().is_some_and(fits) {
            keep.0 = Some(self.inference_workspace(chunk));
        }
        let ws = keep.0.as_mut().expect("set above");
        out.clear();
        out.reserve(rows * self.outputs());
        for start in (0..rows).step_by(chunk) {
            let n = chunk.min(rows - start);
            ws.inp[0][..n * p].copy_from_slice(&x[start * p..(start + n) * p]);
            self.forward(ws, n, None, threads);
            out.extend_from_slice(self.output(ws, n));
        }
    }

    pub fn save(&self, path: &Path, info: serde_json::Value) -> StageResult<()> {
        let err = |e: safetensors::SafeTensorError| StageError::msg(format!("model write: {e}"));
        let mut names = Vec::new();
        let mut bufs: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            // PyTorch layout: weight is [out, in].
            let mut t = vec![0f32; l.w.len()];
            for r in 0..l.fan_in {
                for c in 0..l.fan_out {
                    t[c * l.fan_in + r] = l.w[r * l.fan_out + c];
                }
            }
            names.push(format!("layers.{i}.weight"));
            bufs.push((bytemuck::cast_slice(&t).to_vec(), vec![l.fan_out, l.fan_in]));
            names.push(format!("layers.{i}.bias"));
            bufs.push((bytemuck::cast_slice(&l.b).to_vec(), vec![l.fan_out]));
        }
        let views: Vec<(&str, TensorView<'_>)> = names
            .iter()
            .zip(&bufs)
            .map(|(n, (b, s))| Ok((n.as_str(), TensorView::new(Dtype::F32, s.clone(), b).map_err(err)?)))
            .collect::<StageResult<_>>()?;
        let mut sizes = vec![self.inputs()];
        sizes.extend(self.layers.iter().map(|l| l.fan_out));
        let h = Header {
            format: "repro.mlp.v1".into(),
            sizes,
            activations: self.layers.iter().map(|l| l.act).collect(),
            dropout: self.layers.iter().map(|l| l.dropout).collect(),
            info,
        };
        let meta: HashMap<String, String> = [("repro".to_string(), serde_json::to_string(&h).unwrap())].into();
        safetensors::serialize_to_file(views, Some(meta), path).map_err(err)
    }

    /// Loads a model and the `info` it was saved with.
    pub fn load(path: &Path) -> StageResult<(Mlp, serde_json::Value)> {
        let bad = |m: String| StageError::msg(format!("{}: not a model artifact: {m}", path.display()));
        let bytes = std::fs::read(path).with_path("read", path)?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let md = meta.metadata().clone().unwrap_or_default();
        let h: Header = serde_json::from_str(md.get("repro").map(String::as_str).unwrap_or("null"))
            .map_err(|e| bad(e.to_string()))?;
        let mut m = Mlp::new(&h.sizes, &h.activations, &h.dropout);
        for (i, l) in m.layers.iter_mut().enumerate() {
            let w: Vec<f32> = bytemuck::pod_collect_to_vec(
                st.tensor(&format!("layers.{i}.weight")).map_err(|e| bad(e.to_string()))?.data(),
            );
            for r in 0..l.fan_in {
                for c in 0..l.fan_out {
                    l.w[r * l.fan_out + c] = w[c * l.fan_in + r];
                }
            }
            l.b = bytemuck::pod_collect_to_vec(
                st.tensor(&format!("layers.{i}.bias")).map_err(|e| bad(e.to_string()))?.data(),
            );
        }
        Ok((m, h.info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::loss::Loss;

    fn net() -> Mlp {
        let mut m = Mlp::new(&[3, 4, 2], &[Activation::Tanh, Activation::Sigmoid], &[]);
        let mut r = crate::rng::rng(1, "t");
        for l in &mut m.layers {
            for v in l.w.iter_mut().chain(l.b.iter_mut()) {
                *v = crate::rng::normal(&mut r) as f32 * 0.7;
            }
        }
        m
    }

    fn loss_of(m: &Mlp, x: &[f32], y: &[f32]) -> f64 {
        let mut ws = m.workspace(2);
        ws.inp[0].copy_from_slice(x);
        m.forward(&mut ws, 2, None, 1);
        let mut g = vec![0f32; 4];
        Loss::Mse.eval(m.output(&ws, 2), y, 2, 2, &mut g)
    }

    /// One forward and backward pass of the MSE loss on two rows: the workspace with gradients.
    fn gradients(m: &Mlp, x: &[f32], y: &[f32]) -> Workspace {
        let mut ws = m.workspace(2);
        ws.inp[0].copy_from_slice(x);
        m.forward(&mut ws, 2, None, 1);
        let out = m.output(&ws, 2).to_vec();
        let last = m.layers.len() - 1;
        Loss::Mse.eval(&out, y, 2, 2, &mut ws.dz[last]);
        m.backward(&mut ws, 2, 1);
        ws
    }

    /// `predict` (an inference workspace: no gradient buffers) gives the bits of a forward pass
    /// in a training workspace, and an identity output layer is z itself: checked against the
    /// layers written out by hand, b₂ + tanh(b₁ + x·W₁)·W₂.
    #[test]
    fn predict_is_the_forward_pass_written_out() {
        let mut m = net();
        m.layers[1].act = Activation::Identity;
        let x = [0.5f32, -1.0, 2.0, 0.1, 0.3, -0.7, 1.5, 0.0, -2.0];
        let pred = m.predict(&x, 1);
        let mut ws = m.workspace(3);
        ws.inp[0].copy_from_slice(&x);
        m.forward(&mut ws, 3, None, 1);
        assert_eq!(pred, m.output(&ws, 3));
        let (l1, l2) = (&m.layers[0], &m.layers[1]);
        for r in 0..3 {
            let h: Vec<f64> = (0..4)
                .map(|j| {
                    let z = f64::from(l1.b[j]) + (0..3).map(|i| f64::from(x[r * 3 + i] * l1.w[i * 4 + j])).sum::<f64>();
                    z.tanh()
                })
                .collect();
            for k in 0..2 {
                let want = f64::from(l2.b[k]) + (0..4).map(|j| h[j] * f64::from(l2.w[j * 2 + k])).sum::<f64>();
                assert!(
                    (f64::from(pred[r * 2 + k]) - want).abs() < 1e-5,
                    "row {r} output {k}: {} vs {want}",
                    pred[r * 2 + k]
                );
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let m = net();
        let x = [0.5f32, -1.0, 2.0, 0.1, 0.3, -0.7];
        let y = [0.2f32, 0.9, 0.6, 0.1];
        let ws = gradients(&m, &x, &y);
        for l in 0..m.layers.len() {
            for i in 0..m.layers[l].w.len() {
                let h = 1e-2f32;
                let mut up = m.clone();
                up.layers[l].w[i] += h;
                let mut dn = m.clone();
                dn.layers[l].w[i] -= h;
                let fd = (loss_of(&up, &x, &y) - loss_of(&dn, &x, &y)) / (2.0 * h as f64);
                assert!((fd - ws.gw[l][i] as f64).abs() < 1e-3, "layer {l} w{i}: {fd} vs {}", ws.gw[l][i]);
            }
            for i in 0..m.layers[l].b.len() {
                let h = 1e-2f32;
                let mut up = m.clone();
                up.layers[l].b[i] += h;
                let mut dn = m.clone();
                dn.layers[l].b[i] -= h;
                let fd = (loss_of(&up, &x, &y) - loss_of(&dn, &x, &y)) / (2.0 * h as f64);
                assert!((fd - ws.gb[l][i] as f64).abs() < 1e-3, "layer {l} b{i}");
            }
        }
    }

    /// dL/dα of a learnable PReLU hidden layer against a central finite difference in α.
    #[test]
    fn learnable_prelu_slope_gradient() {
        let mut m = net();
        m.layers[0].act = Activation::Prelu { alpha: 0.25, learnable: true };
        let x = [0.5f32, -1.0, 2.0, 0.1, 0.3, -0.7];
        let y = [0.2f32, 0.9, 0.6, 0.1];
        let ws = gradients(&m, &x, &y);
        assert!(ws.z[0].iter().any(|z| *z < 0.0), "the test needs negative pre-activations");
        let with = |a: f32| {
            let mut k = m.clone();
            k.layers[0].act = Activation::Prelu { alpha: a, learnable: true };
            loss_of(&k, &x, &y)
        };
        let h = 1e-2f32;
        let fd = (with(0.25 + h) - with(0.25 - h)) / (2.0 * h as f64);
        assert!((fd - ws.ga[0] as f64).abs() < 1e-3, "fd {fd} vs {}", ws.ga[0]);
        assert_eq!(ws.ga[1], 0.0);
    }

    /// The same gradients from candle's autograd (an independent implementation).
    #[test]
    fn backward_matches_candle_autograd() {
        use candle_core::{Device, Tensor, Var};
        let m = net();
        let x = [0.5f32, -1.0, 2.0, 0.1, 0.3, -0.7];
        let y = [0.2f32, 0.9, 0.6, 0.1];
        let dev = Device::Cpu;
        let xt = Tensor::from_slice(&x, (2, 3), &dev).unwrap();
        let yt = Tensor::from_slice(&y, (2, 2), &dev).unwrap();
        let w0 = Var::from_slice(&m.layers[0].w, (3, 4), &dev).unwrap();
        let b0 = Var::from_slice(&m.layers[0].b, 4, &dev).unwrap();
        let w1 = Var::from_slice(&m.layers[1].w, (4, 2), &dev).unwrap();
        let b1 = Var::from_slice(&m.layers[1].b, 2, &dev).unwrap();
        let h = xt.matmul(w0.as_tensor()).unwrap().broadcast_add(b0.as_tensor()).unwrap().tanh().unwrap();
        let o =
            candle_nn::ops::sigmoid(&h.matmul(w1.as_tensor()).unwrap().broadcast_add(b1.as_tensor()).unwrap()).unwrap();
        let loss = (o - yt).unwrap().sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let gw0: Vec<f32> = grads.get(w0.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let gw1: Vec<f32> = grads.get(w1.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut ws = m.workspace(2);
        ws.inp[0].copy_from_slice(&x);
        m.forward(&mut ws, 2, None, 1);
        let out = m.output(&ws, 2).to_vec();
        Loss::Mse.eval(&out, &y, 2, 2, &mut ws.dz[1]);
        m.backward(&mut ws, 2, 1);
        for (a, b) in ws.gw[0].iter().zip(&gw0).chain(ws.gw[1].iter().zip(&gw1)) {
            assert!((a - b).abs() < 1e-5, "{a} vs candle {b}");
        }
    }

    #[test]
    fn save_load_round_trip() {
        let m = net();
        let d = tempfile::tempdir().unwrap();
        m.save(&d.path().join("m"), serde_json::json!({"k": 1})).unwrap();
        let (back, info) = Mlp::load(&d.path().join("m")).unwrap();
        assert_eq!(back, m);
        assert_eq!(info["k"], 1);
    }
}
