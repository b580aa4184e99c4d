//! What training and evaluation share: the targets a network sees for a loss, and the quick
//! metrics of predictions (the history's `eval_*` and the D-GEX monitor).

use crate::dataset::Dataset;
use crate::nn::loss::{sbqc_probability, Loss, QuantileBase};
use repro_core::{StageError, StageResult};

/// Targets as the network sees them: regression targets, 0/1 for binary losses, one-hot.
pub fn targets_for(d: &Dataset, loss: &Loss) -> StageResult<(Vec<f32>, usize)> {
    match loss {
        Loss::Bce | Loss::Sbqc { .. } => {
            Ok((binary_labels(d, "binary losses")?.iter().map(|v| *v as f32).collect(), 1))
        }
        Loss::Quantiles { heads, base: QuantileBase::Sbqc, .. } => {
            let l = binary_labels(d, "sbqc quantile heads")?;
            // One column per head, each the row's label.
            Ok((l.iter().flat_map(|v| std::iter::repeat_n(*v as f32, *heads)).collect(), *heads))
        }
        Loss::SoftmaxCe => {
            let l =
                d.labels.as_ref().ok_or_else(|| StageError::param("loss", "softmax_ce needs a dataset with labels"))?;
            let k = d.classes.len().max(l.iter().copied().max().unwrap_or(0) as usize + 1);
            let mut y = vec![0f32; l.len() * k];
            for (i, c) in l.iter().enumerate() {
                y[i * k + *c as usize] = 1.0;
            }
            Ok((y, k))
        }
        _ => {
            if d.q() == 0 {
                return Err(StageError::param("loss", "regression losses need a dataset with target columns"));
            }
            let heads = loss.outputs_per_target();
            if heads == 1 {
                return Ok((d.y.clone(), d.q()));
            }
            // Quantile heads: the targets repeated once per head, head-major.
            let q = d.q();
            let y = d.y.chunks(q).flat_map(|row| (0..heads).flat_map(move |_| row.iter().copied())).collect();
            Ok((y, q * heads))
        }
    }
}

/// The dataset's labels, which `who` needs to be 0 and 1.
fn binary_labels<'a>(d: &'a Dataset, who: &str) -> StageResult<&'a [i64]> {
    let l = d.labels.as_ref().ok_or_else(|| StageError::param("loss", format!("{who} need a dataset with labels")))?;
    if l.iter().any(|v| *v != 0 && *v != 1) {
        return Err(StageError::param("loss", format!("{who} need labels 0 and 1")));
    }
    Ok(l)
}

/// Evaluation metrics of predictions (regression: mae, rmse; classification: accuracy, log_loss).
pub fn quick_metrics(pred: &[f32], y: &[f32], cols: usize, loss: &Loss) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let n = (pred.len() / cols.max(1)).max(1);
    match loss {
        Loss::SoftmaxCe => {
            let correct = (0..n)
                .filter(|&r| {
                    let p = &pred[r * cols..(r + 1) * cols];
                    let t = &y[r * cols..(r + 1) * cols];
                    argmax(p) == argmax(t)
                })
                .count();
            m.insert("accuracy".into(), (correct as f64 / n as f64).into());
        }
        Loss::Quantiles { heads, base: QuantileBase::Sbqc, .. } => {
            // The median head (τ = 0.5 for an odd number of heads) as the classifier.
            let (mid, tau) = median_head(*heads);
            let correct = (0..n)
                .filter(|&r| (sbqc_probability(pred[r * cols + mid] as f64, tau) > 0.5) == (y[r * cols + mid] > 0.5))
                .count();
            m.insert("accuracy".into(), (correct as f64 / n as f64).into());
        }
        Loss::Bce | Loss::Sbqc { .. } => {
            let prob = |z: f32| match loss {
                Loss::Sbqc { tau } => sbqc_probability(z as f64, *tau),
                _ => 1.0 / (1.0 + (-(z as f64)).exp()),
            };
            let correct = pred.iter().zip(y).filter(|(p, t)| (prob(**p) > 0.5) == (**t > 0.5)).count();
            m.insert("accuracy".into(), (correct as f64 / n as f64).into());
        }
        _ => {
            let (mut a, mut s) = (0f64, 0f64);
            for (p, t) in pred.iter().zip(y) {
                let e = (*p as f64) - (*t as f64);
                a += e.abs();
                s += e * e;
            }
            let k = pred.len().max(1) as f64;
            m.insert("mae".into(), (a / k).into());
            m.insert("rmse".into(), (s / k).sqrt().into());
        }
    }
    m
}

/// The middle head of `heads` quantile heads and its τ (0.5 when `heads` is odd).
pub fn median_head(heads: usize) -> (usize, f64) {
    let mid = (heads - 1) / 2;
    (mid, (mid + 1) as f64 / (heads + 1) as f64)
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
