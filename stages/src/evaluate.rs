//! `evaluate`: a trained model (or a saved epoch of it) on a dataset → metrics (JSON).
//!
//! Regression: MAE per target, then averaged over targets (as D-GEX and the LALR paper report
//! it; with every target measured on the same rows this equals the mean absolute error over
//! all cells), RMSE, and the per-target MAE vector; on the standardized scale, or mapped back
//! through a `standardize` stage's statistics (`scale = "original"`, `stats` input).
//! Classification: accuracy, Cohen's kappa, Jaccard index, F1 (binary: of class 1;
//! multiclass: macro averages), log-loss.

use crate::dataset::Dataset;
use crate::metrics::{median_head, targets_for};
use crate::nn::loss::{sbqc_probability, Loss};
use crate::nn::mlp::Mlp;
use crate::standardize::Stats;
use repro_core::{read_json, stage_params, write_json, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    Standardized,
    Original,
}

stage_params! {
    /// Params of `evaluate`.
    pub struct EvaluateParams {
        /// "standardized" (as the model sees targets) or "original" (needs the `stats` input).
        scale: Scale = Scale::Standardized,
        /// Keep the per-target MAE vector in the output (large for thousands of targets).
        per_target: bool = true,
    }
}

pub struct Evaluate;

/// Regression metrics of row-major predictions and targets with `q` columns.
pub fn regression(pred: &[f32], y: &[f32], q: usize) -> (f64, f64, Vec<f64>) {
    let n = pred.len() / q.max(1);
    let mut per = vec![0f64; q];
    let mut sq = 0f64;
    for r in 0..n {
        for j in 0..q {
            let e = pred[r * q + j] as f64 - y[r * q + j] as f64;
            per[j] += e.abs();
            sq += e * e;
        }
    }
    for v in &mut per {
        *v /= n.max(1) as f64;
    }
    let mae = per.iter().sum::<f64>() / q.max(1) as f64;
    (mae, (sq / (n * q).max(1) as f64).sqrt(), per)
}

/// Classification metrics from true labels, predicted labels and predicted probabilities
/// (`probs`: rows × k, each row summing to 1).
pub fn classification(
    truth: &[usize],
    pred: &[usize],
    probs: &[f64],
    k: usize,
) -> serde_json::Map<String, serde_json::Value> {
    let n = truth.len();
    let mut cm = vec![vec![0usize; k]; k];
    for (t, p) in truth.iter().zip(pred) {
        cm[*t][*p] += 1;
    }
    let acc = (0..k).map(|c| cm[c][c]).sum::<usize>() as f64 / n as f64;
    let row: Vec<f64> = (0..k).map(|c| cm[c].iter().sum::<usize>() as f64).collect();
    let col: Vec<f64> = (0..k).map(|c| (0..k).map(|r| cm[r][c]).sum::<usize>() as f64).collect();
    let pe = (0..k).map(|c| row[c] * col[c]).sum::<f64>() / (n as f64 * n as f64);
    let kappa = if pe < 1.0 { (acc - pe) / (1.0 - pe) } else { 0.0 };
    let per_class = |c: usize| {
        let tp = cm[c][c] as f64;
        let fp = col[c] - tp;
        let fn_ = row[c] - tp;
        let f1 = if tp + fp + fn_ > 0.0 { 2.0 * tp / (2.0 * tp + fp + fn_) } else { 0.0 };
        let jac = if tp + fp + fn_ > 0.0 { tp / (tp + fp + fn_) } else { 0.0 };
        (f1, jac)
    };
    let (f1, jac) = if k == 2 {
        per_class(1)
    } else {
        let s = (0..k).map(per_class).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        (s.0 / k as f64, s.1 / k as f64)
    };
    let ll = -truth.iter().enumerate().map(|(i, t)| probs[i * k + t].clamp(1e-15, 1.0).ln()).sum::<f64>() / n as f64;
    let mut m = serde_json::Map::new();
    m.insert("accuracy".into(), acc.into());
    m.insert("kappa".into(), kappa.into());
    m.insert("f1".into(), f1.into());
    m.insert("jaccard".into(), jac.into());
    m.insert("log_loss".into(), ll.into());
    m
}

impl TypedStage for Evaluate {
    type Params = EvaluateParams;
    const KIND: &'static str = "evaluate";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Evaluate a model (or a saved epoch of it) on a dataset: MAE averaged over targets, RMSE and per-target MAE for regression (standardized or original scale); accuracy, Cohen's kappa, Jaccard, F1 and log-loss for classification. Output: metrics (JSON).";
    const USES_SEED: bool = false;
    const INPUTS: &'static [InputSlot] = &[
        InputSlot::one("model", "a model artifact (train.model or train.epoch<E>)"),
        InputSlot::one("data", "the dataset to evaluate on"),
        InputSlot::optional("stats", "a standardize stage's stats, for scale = \"original\""),
    ];

    fn outputs(_p: &EvaluateParams) -> Vec<String> {
        vec!["metrics".into()]
    }

    fn threads(_p: &EvaluateParams) -> usize {
        usize::MAX
    }

    fn run(&self, p: &EvaluateParams, ctx: &Ctx) -> StageResult<Metrics> {
        let d = Dataset::read(&ctx.input("data")?.path)?;
        if d.is_absent() {
            // Data the user did not supply: every metric is null, and tables show it as missing.
            let mut m = Metrics::new();
            for k in ["mae", "rmse", "accuracy", "kappa", "jaccard", "f1", "log_loss"] {
                m.insert(k.into(), serde_json::Value::Null);
            }
            m.insert("status".into(), "data not bundled".into());
            write_json(&ctx.output("metrics"), &m)?;
            return Ok(m);
        }
        let (model, info) = Mlp::load(&ctx.input("model")?.path)?;
        if d.p() != model.inputs() {
            return Err(StageError::param(
                "data",
                format!("dataset has {} features, the model expects {}", d.p(), model.inputs()),
            ));
        }
        let loss: Loss = serde_json::from_value(info["loss"].clone()).unwrap_or(Loss::Mse);
        let (y, q) = targets_for(&d, &loss)?;
        let pred = model.predict(&d.x, ctx.threads);
        let mut m = Metrics::new();
        m.insert("rows".into(), d.rows().into());
        m.extend(linear_weights(&model, &d.features));
        if loss.is_classification() {
            m.extend(classify(&loss, &pred, q, &d));
            if let Loss::Quantiles { heads, .. } = loss {
                m.insert("crossing_rate".into(), crossing_rate(&pred, heads, 1).into());
                m.insert("decreasing_rate".into(), decreasing_rate(&pred, heads).into());
            }
        } else {
            m.extend(regress(p, ctx, &loss, pred, y, q)?);
        }
        write_json(&ctx.output("metrics"), &m)?;
        let mut short = m.clone();
        short.remove("mae_per_target");
        Ok(short)
    }
}

/// The fitted parameters of a linear model with few weights (e.g. the lecture's θ).
fn linear_weights(model: &Mlp, features: &[String]) -> Metrics {
    let mut m = Metrics::new();
    if model.layers.len() == 1 && model.layers[0].w.len() <= 16 {
        let l = &model.layers[0];
        for (j, b) in l.b.iter().enumerate() {
            let sfx = if l.fan_out == 1 { String::new() } else { format!("_{j}") };
            m.insert(format!("bias{sfx}"), f64::from(*b).into());
            for (i, f) in features.iter().enumerate() {
                m.insert(format!("weight_{f}{sfx}"), f64::from(l.w[i * l.fan_out + j]).into());
            }
        }
    }
    m
}

/// Accuracy, kappa, Jaccard, F1 and log-loss of class probabilities from the logits.
fn classify(loss: &Loss, pred: &[f32], q: usize, d: &Dataset) -> Metrics {
    let (probs, k): (Vec<f64>, usize) = match *loss {
        Loss::SoftmaxCe => {
            let mut pr = Vec::with_capacity(pred.len());
            for row in pred.chunks(q) {
                let mx = row.iter().fold(f32::NEG_INFINITY, |a, v| a.max(*v)) as f64;
                let e: Vec<f64> = row.iter().map(|v| (*v as f64 - mx).exp()).collect();
                let s: f64 = e.iter().sum();
                pr.extend(e.iter().map(|v| v / s));
            }
            (pr, q)
        }
        Loss::Quantiles { heads, .. } => {
            // sBQC heads: the median head's probabilities.
            let (mid, tau) = median_head(heads);
            (
                pred.chunks(q)
                    .flat_map(|r| {
                        let p1 = sbqc_probability(r[mid] as f64, tau);
                        [1.0 - p1, p1]
                    })
                    .collect(),
                2,
            )
        }
        Loss::Sbqc { tau } => (
            pred.iter()
                .flat_map(|z| {
                    let p1 = sbqc_probability(*z as f64, tau);
                    [1.0 - p1, p1]
                })
                .collect(),
            2,
        ),
        _ => (
            pred.iter()
                .flat_map(|z| {
                    let p1 = 1.0 / (1.0 + (-(*z as f64)).exp());
                    [1.0 - p1, p1]
                })
                .collect(),
            2,
        ),
    };
    let truth: Vec<usize> = d.labels.as_ref().unwrap().iter().map(|v| *v as usize).collect();
    let predicted: Vec<usize> =
        probs.chunks(k).map(|r| (0..k).fold(0, |b, i| if r[i] > r[b] { i } else { b })).collect();
    classification(&truth, &predicted, &probs, k)
}

/// MAE, RMSE (and per-target MAE) on the standardized or original scale; for quantile heads,
/// their coverage and crossing rate, and the point metrics of the median head.
fn regress(
    p: &EvaluateParams,
    ctx: &Ctx,
    loss: &Loss,
    mut pred: Vec<f32>,
    y: Vec<f32>,
    q: usize,
) -> StageResult<Metrics> {
    let mut m = Metrics::new();
    let mut yy = y;
    // Quantile heads: `q` columns are `heads` blocks of the `qb` targets.
    let heads = loss.outputs_per_target();
    let qb = q / heads;
    if p.scale == Scale::Original {
        let st: Stats = read_json(
            &ctx.input("stats").map_err(|_| StageError::param("scale", "\"original\" needs the `stats` input"))?.path,
        )?;
        let ts = &st.targets;
        if ts.shift.len() != qb {
            return Err(StageError::param(
                "stats",
                format!("stats cover {} targets, the data has {qb}", ts.shift.len()),
            ));
        }
        for row in pred.chunks_mut(q).chain(yy.chunks_mut(q)) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v as f64 * ts.scale[j % qb] + ts.shift[j % qb]) as f32;
            }
        }
    }
    if heads > 1 {
        m.extend(quantile_metrics(&pred, &yy, heads, qb));
        // mae / rmse of the median head (heads odd) as the point prediction.
        let mid = (heads - 1) / 2;
        let pick = |v: &[f32]| -> Vec<f32> { v.chunks(q).flat_map(|r| r[mid * qb..(mid + 1) * qb].to_vec()).collect() };
        (pred, yy) = (pick(&pred), pick(&yy));
    }
    let (mae, rmse, per) = regression(&pred, &yy, qb);
    m.insert("mae".into(), mae.into());
    m.insert("rmse".into(), rmse.into());
    if p.per_target {
        m.insert("mae_per_target".into(), per.into());
    }
    Ok(m)
}

/// Quantile heads laid out head-major: per head h (τ_h = h/(heads + 1)) `coverage_<τ>`, the
/// share of (row, target) pairs with y ≤ Q(τ_h), which a calibrated model puts near τ_h; and
/// `crossing_rate`, the share of pairs whose quantiles are not non-decreasing in τ.
fn quantile_metrics(pred: &[f32], y: &[f32], heads: usize, qb: usize) -> Metrics {
    let cols = heads * qb;
    let pairs = (pred.len() / cols * qb).max(1) as f64;
    let mut m = Metrics::new();
    for h in 0..heads {
        let tau = (h + 1) as f64 / (heads + 1) as f64;
        let below = pred
            .chunks(cols)
            .zip(y.chunks(cols))
            .map(|(p, t)| (0..qb).filter(|&j| t[h * qb + j] <= p[h * qb + j]).count())
            .sum::<usize>();
        m.insert(format!("coverage_{tau:.2}"), (below as f64 / pairs).into());
    }
    m.insert("crossing_rate".into(), crossing_rate(pred, heads, qb).into());
    m
}

/// The share of (row, target) pairs whose heads are not non-decreasing in τ (LogGENE §4.8's
/// quantile crossing).
fn crossing_rate(pred: &[f32], heads: usize, qb: usize) -> f64 {
    let cols = heads * qb;
    let pairs = (pred.len() / cols * qb).max(1) as f64;
    let crossed = pred
        .chunks(cols)
        .map(|p| (0..qb).filter(|&j| (0..heads - 1).any(|h| p[h * qb + j] > p[(h + 1) * qb + j])).count())
        .sum::<usize>();
    crossed as f64 / pairs
}

/// sBQC heads (one target): the share of rows whose outputs are non-increasing in τ, the order
/// of the sBQC optimum (head τ fits F_τ(ŷ_τ) = P(class 0 | x) and F_τ(0) = τ grows with τ, so ŷ_τ
/// falls as τ grows), which LogGENE's penalty, acting on the raw outputs, counts as crossing.
fn decreasing_rate(pred: &[f32], heads: usize) -> f64 {
    let rows = (pred.len() / heads).max(1) as f64;
    pred.chunks(heads).filter(|p| p.windows(2).all(|w| w[0] >= w[1])).count() as f64 / rows
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two rows, one target, three heads (τ = 0.25, 0.5, 0.75):
    //   row 1: Q = (1, 2, 3), y = 2.5 → below Q(0.75) only; row 2: Q = (0, −1, 4), y = 0 →
    //   below Q(0.25) and Q(0.75), and its quantiles cross (0 > −1).
    //   coverage: 0.25 → 1/2, 0.50 → 0/2, 0.75 → 2/2; crossing_rate 1/2.
    // Three sBQC heads, two rows: (2, 1, −1) falls with τ, which §4.8 counts as crossing
    // (2 > 1); (0, 1, 1) is non-decreasing: neither falling nor crossing. (1, 1, 1) falls weakly.
    #[test]
    fn sbqc_head_order_by_hand() {
        let pred = [2f32, 1., -1., 0., 1., 1.];
        assert_eq!(decreasing_rate(&pred, 3), 0.5);
        assert_eq!(crossing_rate(&pred, 3, 1), 0.5);
        assert_eq!(decreasing_rate(&[1., 1., 1.], 3), 1.0);
    }

    #[test]
    fn quantile_coverage_and_crossings_by_hand() {
        let pred = [1f32, 2., 3., 0., -1., 4.];
        let y = [2.5f32, 2.5, 2.5, 0., 0., 0.];
        let m = quantile_metrics(&pred, &y, 3, 1);
        assert_eq!(m["coverage_0.25"], 0.5);
        assert_eq!(m["coverage_0.50"], 0.0);
        assert_eq!(m["coverage_0.75"], 1.0);
        assert_eq!(m["crossing_rate"], 0.5);
    }

    // numpy: p = np.array([[1., 2.], [3., 5.]]); y = np.array([[1.5, 2.], [2., 3.]])
    //   np.abs(p - y).mean(0) -> [0.75, 1.0]; mean 0.875; np.sqrt(((p - y)**2).mean()) -> 1.1456439
    #[test]
    fn regression_metrics() {
        let (mae, rmse, per) = regression(&[1., 2., 3., 5.], &[1.5, 2., 2., 3.], 2);
        assert_eq!(per, vec![0.75, 1.0]);
        assert!((mae - 0.875).abs() < 1e-12);
        assert!((rmse - 1.145_643_9).abs() < 1e-6);
    }

    // sklearn: y = [0,1,1,0,1,1,0,0]; p = [0,1,0,0,1,1,1,0]
    //   accuracy_score 0.75, cohen_kappa_score 0.5, f1_score 0.75, jaccard_score 0.6
    //   log_loss(y, [.2,.8,.4,.3,.9,.7,.6,.1]) = 0.4003674356962309
    #[test]
    fn binary_classification_metrics_match_sklearn() {
        let truth = [0usize, 1, 1, 0, 1, 1, 0, 0];
        let pred = [0usize, 1, 0, 0, 1, 1, 1, 0];
        let p1 = [0.2, 0.8, 0.4, 0.3, 0.9, 0.7, 0.6, 0.1];
        let probs: Vec<f64> = p1.iter().flat_map(|p| [1.0 - p, *p]).collect();
        let m = classification(&truth, &pred, &probs, 2);
        assert!((m["accuracy"].as_f64().unwrap() - 0.75).abs() < 1e-12);
        assert!((m["kappa"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        assert!((m["f1"].as_f64().unwrap() - 0.75).abs() < 1e-12);
        assert!((m["jaccard"].as_f64().unwrap() - 0.6).abs() < 1e-12);
        let want_ll = LOG_LOSS_REF;
        assert!((m["log_loss"].as_f64().unwrap() - want_ll).abs() < 1e-6);
    }

    const LOG_LOSS_REF: f64 = 0.400_367_435_696_230_9;
}
