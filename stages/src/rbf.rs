//! `rbf`: the lecture's radial basis function network (dnn_lecture.md:27–53),
//! y = w₀ + Σᵢ wᵢ exp(−‖x − μᵢ‖² / (2σᵢ²)) with an identity transfer (regression), trained by
//! its two procedures:
//!
//! - **two steps**: (1) centres μᵢ by k-means++ then Lloyd iterations, widths σᵢ from the
//!   centres (`width`); (2) output weights by least squares (ridge `ridge` for stability).
//! - **three steps**: the same, then (3) full-batch gradient descent on everything
//!   (∇μ, ∇σ, ∇w of the mean squared error) for `epochs` epochs at `lr`.
//!
//! Every random choice (the k-means++ draws) comes from the instance seed. Outputs: `metrics`
//! (MAE and RMSE on the training data and on `eval`; `mae` is the eval one when there is one),
//! `history` (the loss per epoch of step 3), `model` (centres, widths, weights as JSON).

use crate::dataset::Dataset;
use crate::rng::{rng, Rng};
use repro_core::{stage_params, write_json, Ctx, InputSlot, Metrics, ParamError, StageError, StageResult, TypedStage};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Steps {
    Two,
    Three,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Width {
    /// σᵢ = the mean distance from μᵢ to its `neighbours` nearest other centres.
    Nearest,
    /// One σ for all: d_max / √(2N), d_max the largest distance between centres (Haykin).
    Global,
}

stage_params! {
    /// Params of `rbf`.
    pub struct RbfParams {
        /// Number of centres N.
        centers: usize = 10,
        /// "two" (centres and widths, then least-squares weights) or "three" (then gradient descent on everything).
        steps: Steps = Steps::Two,
        /// Width rule: "nearest" (mean distance to the `neighbours` nearest centres) or "global" (d_max/√(2N)).
        width: Width = Width::Nearest,
        /// Neighbours of the "nearest" width rule.
        neighbours: usize = 2,
        /// Lloyd iterations after the k-means++ seeding.
        kmeans_iterations: usize = 20,
        /// Ridge added to the normal equations of step 2 (relative to their mean diagonal).
        ridge: f64 = 1e-8,
        /// Epochs of full-batch gradient descent in step 3.
        epochs: usize = 200,
        /// Learning rate of step 3.
        lr: f64 = 0.05,
    }
}

pub struct Rbf;

/// A trained network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// N × d, row-major.
    pub centres: Vec<f64>,
    pub sigmas: Vec<f64>,
    /// (N + 1) × q, row-major; row 0 is the bias w₀.
    pub weights: Vec<f64>,
    pub d: usize,
    pub q: usize,
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// k-means++ seeding (Arthur & Vassilvitskii: each next centre drawn with probability
/// proportional to the squared distance to the nearest chosen one), then Lloyd iterations.
pub fn kmeans_pp(x: &[f64], d: usize, k: usize, iterations: usize, seed: u64) -> Vec<f64> {
    let n = x.len() / d;
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let mut r = rng(seed, "kmeans++");
    let mut centres: Vec<f64> = row(r.random_range(0..n)).to_vec();
    let mut near: Vec<f64> = (0..n).map(|i| dist2(row(i), &centres[..d])).collect();
    while centres.len() / d < k {
        let total: f64 = near.iter().sum();
        let pick = if total <= 0.0 {
            r.random_range(0..n)
        } else {
            let mut u = r.random::<f64>() * total;
            near.iter()
                .position(|w| {
                    u -= w;
                    u <= 0.0
                })
                .unwrap_or(n - 1)
        };
        let c = row(pick).to_vec();
        for (i, m) in near.iter_mut().enumerate() {
            *m = m.min(dist2(row(i), &c));
        }
        centres.extend(c);
    }
    for _ in 0..iterations {
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for i in 0..n {
            let a = (0..k)
                .min_by(|&p, &q| {
                    dist2(row(i), &centres[p * d..(p + 1) * d]).total_cmp(&dist2(row(i), &centres[q * d..(q + 1) * d]))
                })
                .unwrap();
            counts[a] += 1;
            for (s, v) in sums[a * d..(a + 1) * d].iter_mut().zip(row(i)) {
                *s += v;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..d {
                    centres[c * d + j] = sums[c * d + j] / counts[c] as f64;
                }
            }
        }
    }
    centres
}

/// The widths of the centres by `rule`.
pub fn widths(centres: &[f64], d: usize, rule: Width, neighbours: usize) -> Vec<f64> {
    let k = centres.len() / d;
    let c = |i: usize| &centres[i * d..(i + 1) * d];
    let floor = 1e-6;
    match rule {
        Width::Global => {
            let dmax = (0..k)
                .flat_map(|i| (0..k).map(move |j| (i, j)))
                .map(|(i, j)| dist2(c(i), c(j)).sqrt())
                .fold(0.0, f64::max);
            vec![(dmax / (2.0 * k as f64).sqrt()).max(floor); k]
        }
        Width::Nearest => (0..k)
            .map(|i| {
                let mut ds: Vec<f64> = (0..k).filter(|&j| j != i).map(|j| dist2(c(i), c(j)).sqrt()).collect();
                ds.sort_by(f64::total_cmp);
                let m = neighbours.clamp(1, ds.len().max(1));
                let mean = if ds.is_empty() { 1.0 } else { ds[..m].iter().sum::<f64>() / m as f64 };
                mean.max(floor)
            })
            .collect(),
    }
}

/// φ(x) for every row: n × (N + 1) with a leading 1.
pub fn design(x: &[f64], d: usize, centres: &[f64], sigmas: &[f64]) -> Vec<f64> {
    let k = sigmas.len();
    let n = x.len() / d;
    let mut phi = Vec::with_capacity(n * (k + 1));
    for i in 0..n {
        phi.push(1.0);
        for (c, s) in sigmas.iter().enumerate() {
            phi.push((-dist2(&x[i * d..(i + 1) * d], &centres[c * d..(c + 1) * d]) / (2.0 * s * s)).exp());
        }
    }
    phi
}

/// Least squares Φ w = Y (ridge-regularized normal equations, solved by Cholesky).
pub fn least_squares(phi: &[f64], y: &[f64], m: usize, q: usize, ridge: f64) -> StageResult<Vec<f64>> {
    let n = phi.len() / m;
    let mut a = vec![0f64; m * m];
    let mut b = vec![0f64; m * q];
    for r in 0..n {
        let p = &phi[r * m..(r + 1) * m];
        for i in 0..m {
            for j in 0..m {
                a[i * m + j] += p[i] * p[j];
            }
            for t in 0..q {
                b[i * q + t] += p[i] * y[r * q + t];
            }
        }
    }
    let diag = (0..m).map(|i| a[i * m + i]).sum::<f64>() / m as f64;
    for i in 0..m {
        a[i * m + i] += ridge * diag.max(1e-300);
    }
    // Cholesky A = L Lᵀ.
    let mut l = vec![0f64; m * m];
    for i in 0..m {
        for j in 0..=i {
            let s: f64 = a[i * m + j] - (0..j).map(|k| l[i * m + k] * l[j * m + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return Err(StageError::param(
                        "ridge",
                        "the normal equations are singular: raise ridge or use fewer centres",
                    ));
                }
                l[i * m + i] = s.sqrt();
            } else {
                l[i * m + j] = s / l[j * m + j];
            }
        }
    }
    let mut w = vec![0f64; m * q];
    for t in 0..q {
        let mut z = vec![0f64; m];
        for i in 0..m {
            z[i] = (b[i * q + t] - (0..i).map(|k| l[i * m + k] * z[k]).sum::<f64>()) / l[i * m + i];
        }
        for i in (0..m).rev() {
            w[i * q + t] = (z[i] - (i + 1..m).map(|k| l[k * m + i] * w[k * q + t]).sum::<f64>()) / l[i * m + i];
        }
    }
    Ok(w)
}

impl Model {
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        let m = self.sigmas.len() + 1;
        let phi = design(x, self.d, &self.centres, &self.sigmas);
        let n = phi.len() / m;
        let mut out = vec![0f64; n * self.q];
        for r in 0..n {
            for t in 0..self.q {
                out[r * self.q + t] = (0..m).map(|i| phi[r * m + i] * self.weights[i * self.q + t]).sum();
            }
        }
        out
    }

    /// L = (1/2n) Σ‖ŷ − y‖² and its gradients with respect to the weights, centres and widths.
    pub fn loss_and_grads(&self, x: &[f64], y: &[f64]) -> (f64, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (d, q, k) = (self.d, self.q, self.sigmas.len());
        let m = k + 1;
        let n = x.len() / d;
        let phi = design(x, d, &self.centres, &self.sigmas);
        let pred = self.predict(x);
        let (mut gw, mut gc, mut gs) = (vec![0f64; m * q], vec![0f64; k * d], vec![0f64; k]);
        let mut loss = 0.0;
        for r in 0..n {
            let e: Vec<f64> = (0..q).map(|t| pred[r * q + t] - y[r * q + t]).collect();
            loss += e.iter().map(|v| v * v).sum::<f64>();
            for i in 0..m {
                for t in 0..q {
                    gw[i * q + t] += e[t] * phi[r * m + i];
                }
            }
            let xr = &x[r * d..(r + 1) * d];
            for c in 0..k {
                let ew: f64 = (0..q).map(|t| e[t] * self.weights[(c + 1) * q + t]).sum();
                let g = ew * phi[r * m + c + 1];
                let s2 = self.sigmas[c] * self.sigmas[c];
                let mu = &self.centres[c * d..(c + 1) * d];
                for j in 0..d {
                    gc[c * d + j] += g * (xr[j] - mu[j]) / s2;
                }
                gs[c] += g * dist2(xr, mu) / (s2 * self.sigmas[c]);
            }
        }
        let inv = 1.0 / n as f64;
        for v in gw.iter_mut().chain(gc.iter_mut()).chain(gs.iter_mut()) {
            *v *= inv;
        }
        (loss * 0.5 * inv, gw, gc, gs)
    }
}

/// Trains by the two- or three-step procedure; returns the model and the loss per epoch of
/// step 3.
pub fn fit(
    x: &[f64],
    y: &[f64],
    d: usize,
    q: usize,
    p: &RbfParams,
    seed: u64,
    ctx: Option<&Ctx>,
) -> StageResult<(Model, Vec<f64>)> {
    let n = x.len() / d.max(1);
    if n < p.centers {
        return Err(StageError::param("centers", format!("{} centres for {n} training rows", p.centers)));
    }
    let centres = kmeans_pp(x, d, p.centers, p.kmeans_iterations, seed);
    let sigmas = widths(&centres, d, p.width, p.neighbours);
    let phi = design(x, d, &centres, &sigmas);
    let weights = least_squares(&phi, y, p.centers + 1, q, p.ridge)?;
    let mut model = Model { centres, sigmas, weights, d, q };
    let mut history = Vec::new();
    if p.steps == Steps::Three {
        for epoch in 0..p.epochs {
            if let Some(c) = ctx {
                c.check_cancel()?;
                c.report(epoch as u64 + 1, p.epochs as u64, "step 3: gradient descent on centres, widths, weights");
            }
            let (loss, gw, gc, gs) = model.loss_and_grads(x, y);
            history.push(loss);
            for (w, g) in model.weights.iter_mut().zip(&gw) {
                *w -= p.lr * g;
            }
            for (c, g) in model.centres.iter_mut().zip(&gc) {
                *c -= p.lr * g;
            }
            for (s, g) in model.sigmas.iter_mut().zip(&gs) {
                *s = (*s - p.lr * g).max(1e-6);
            }
        }
    }
    Ok((model, history))
}

fn errors(model: &Model, x: &[f64], y: &[f64]) -> (f64, f64) {
    let pred = model.predict(x);
    let n = pred.len().max(1) as f64;
    let mae = pred.iter().zip(y).map(|(a, b)| (a - b).abs()).sum::<f64>() / n;
    let rmse = (pred.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n).sqrt();
    (mae, rmse)
}

fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| f64::from(*x)).collect()
}

impl TypedStage for Rbf {
    type Params = RbfParams;
    const KIND: &'static str = "rbf";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Radial basis function network (the lecture's): centres by k-means++ and Lloyd, widths from the centres, output weights by least squares (two steps), optionally then gradient descent on centres, widths and weights (three steps). Regression (identity transfer). Outputs: metrics (MAE, RMSE on train and eval), history (step-3 loss per epoch), model (JSON).";
    const INPUTS: &'static [InputSlot] = &[
        InputSlot::one("data", "training dataset (regression targets)"),
        InputSlot::optional("eval", "dataset the metrics are reported on"),
    ];

    fn validate(p: &RbfParams) -> Result<(), ParamError> {
        if p.centers == 0 {
            return Err(ParamError::new("centers", "needs at least one centre"));
        }
        if !(p.lr.is_finite() && p.lr > 0.0) {
            return Err(ParamError::new("lr", "must be a positive number"));
        }
        if !(p.ridge.is_finite() && p.ridge >= 0.0) {
            return Err(ParamError::new("ridge", "must be ≥ 0"));
        }
        Ok(())
    }

    fn outputs(_p: &RbfParams) -> Vec<String> {
        vec!["metrics".into(), "history".into(), "model".into()]
    }

    fn run(&self, p: &RbfParams, ctx: &Ctx) -> StageResult<Metrics> {
        let train = Dataset::read(&ctx.input("data")?.path)?;
        train.validate("data")?;
        let (d, q) = (train.p(), train.q());
        let (x, y) = (as_f64(&train.x), as_f64(&train.y));
        let (model, history) = fit(&x, &y, d, q, p, ctx.seed, Some(ctx))?;
        let (train_mae, train_rmse) = errors(&model, &x, &y);
        let mut m = Metrics::new();
        m.insert("train_mae".into(), json!(train_mae));
        m.insert("train_rmse".into(), json!(train_rmse));
        let (mut mae, mut rmse) = (train_mae, train_rmse);
        if let Some(e) = ctx.optional_input("eval") {
            let e = Dataset::read(&e.path)?;
            if e.p() != d || e.q() != q {
                return Err(StageError::param("eval", "the eval dataset has other columns than the training data"));
            }
            (mae, rmse) = errors(&model, &as_f64(&e.x), &as_f64(&e.y));
            m.insert("eval_mae".into(), json!(mae));
            m.insert("eval_rmse".into(), json!(rmse));
        }
        m.insert("mae".into(), json!(mae));
        m.insert("rmse".into(), json!(rmse));
        m.insert("centers".into(), json!(p.centers));
        write_json(&ctx.output("metrics"), &serde_json::Value::Object(m.clone()))?;
        let hist: Vec<serde_json::Value> =
            history.iter().enumerate().map(|(e, l)| json!({"epoch": e + 1, "train_loss": l})).collect();
        write_json(&ctx.output("history"), &hist)?;
        write_json(&ctx.output("model"), &model)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> (Vec<f64>, Vec<f64>) {
        // y = sin(x₀) + 0.5·x₁ on a 6 × 5 grid.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..6 {
            for j in 0..5 {
                let (a, b) = (i as f64 * 0.6 - 1.5, j as f64 * 0.5 - 1.0);
                x.extend([a, b]);
                y.push(a.sin() + 0.5 * b);
            }
        }
        (x, y)
    }

    /// numpy: A = [[1,0],[1,1],[1,2]], y = [1,2,2]: np.linalg.lstsq(A, y) → [7/6, 1/2].
    #[test]
    fn least_squares_matches_numpy() {
        let a = [1.0, 0.0, 1.0, 1.0, 1.0, 2.0];
        let w = least_squares(&a, &[1.0, 2.0, 2.0], 2, 1, 0.0).unwrap();
        assert!((w[0] - 7.0 / 6.0).abs() < 1e-12 && (w[1] - 0.5).abs() < 1e-12, "{w:?}");
    }

    /// Widths by hand: centres at 0, 3 and 4 on a line; nearest-2 means (3+4)/2, (1+3)/2,
    /// (1+4)/2; global d_max/√(2N) = 4/√6.
    #[test]
    fn widths_by_hand() {
        let c = [0.0, 3.0, 4.0];
        assert_eq!(widths(&c, 1, Width::Nearest, 2), vec![3.5, 2.0, 2.5]);
        let g = widths(&c, 1, Width::Global, 2);
        assert!((g[0] - 4.0 / 6f64.sqrt()).abs() < 1e-12);
    }

    /// The analytic gradients of step 3 agree with central finite differences of the loss.
    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = toy();
        let p = RbfParams { centers: 4, ..Default::default() };
        let (mut m, _) = fit(&x, &y, 2, 1, &p, 7, None).unwrap();
        m.weights.iter_mut().enumerate().for_each(|(i, w)| *w += 0.1 * i as f64); // off the optimum
        let (_, gw, gc, gs) = m.loss_and_grads(&x, &y);
        let h = 1e-6;
        let check = |field: fn(&mut Model) -> &mut Vec<f64>, analytic: &[f64], what: &str| {
            for (i, want) in analytic.iter().enumerate() {
                let (mut a, mut b) = (m.clone(), m.clone());
                field(&mut a)[i] += h;
                field(&mut b)[i] -= h;
                let g = (a.loss_and_grads(&x, &y).0 - b.loss_and_grads(&x, &y).0) / (2.0 * h);
                assert!((g - want).abs() < 1e-6, "{what}[{i}]: {g} vs {want}");
            }
        };
        check(|m| &mut m.weights, &gw, "w");
        check(|m| &mut m.centres, &gc, "mu");
        check(|m| &mut m.sigmas, &gs, "sigma");
    }

    /// Step 2 is the least-squares optimum for its centres: step 3 starts from it, and its
    /// first epochs lower the loss further by moving centres and widths; the seed fixes all.
    #[test]
    fn three_steps_descend_and_the_seed_fixes_everything() {
        let (x, y) = toy();
        let p = RbfParams { centers: 5, steps: Steps::Three, epochs: 30, lr: 0.05, ..Default::default() };
        let (m, h) = fit(&x, &y, 2, 1, &p, 3, None).unwrap();
        assert!(h.last().unwrap() < &h[0], "{h:?}");
        assert_eq!(fit(&x, &y, 2, 1, &p, 3, None).unwrap().0, m);
        assert_ne!(fit(&x, &y, 2, 1, &p, 4, None).unwrap().0.centres, m.centres);
        // k-means++ picks distinct training points as seeds: 5 distinct centres.
        let c = kmeans_pp(&x, 2, 5, 0, 3);
        for i in 0..5 {
            for j in 0..i {
                assert!(dist2(&c[i * 2..i * 2 + 2], &c[j * 2..j * 2 + 2]) > 0.0);
            }
        }
    }
}
