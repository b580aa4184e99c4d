//! `summarize`: numbers read off a curve, so a table can judge a claim about a figure. From one
//! field of a history (`train`'s per-epoch records, `gd`'s per-iteration ones) it writes the
//! first, last, smallest and largest value, where the extremes were reached, and how far the
//! curve ended from them: `rise` = last − min (how much a held-out error went back up after
//! its best epoch: the overfitting LogGENE's Figure 2 shows) and `drop` = max − last.

use repro_core::{read_json, stage_params, write_json, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};
use serde_json::{json, Value};

stage_params! {
    /// Params of `summarize`.
    pub struct SummarizeParams {
        /// The history field, e.g. "eval_rmse", "train_loss", "lr", "eval_accuracy".
        field: String = "train_loss".into(),
        /// The field that orders the records: "epoch" (train) or "iteration" (gd).
        x: String = "epoch".into(),
    }
}

pub struct Summarize;

/// The summary of the points (x, y) in x order.
pub fn summarize(points: &[(i64, f64)]) -> Option<serde_json::Map<String, Value>> {
    let (first, last) = (points.first()?, points.last()?);
    let min = points.iter().copied().fold(*first, |a, b| if b.1 < a.1 { b } else { a });
    let max = points.iter().copied().fold(*first, |a, b| if b.1 > a.1 { b } else { a });
    let mut m = serde_json::Map::new();
    m.insert("first".into(), json!(first.1));
    m.insert("last".into(), json!(last.1));
    m.insert("min".into(), json!(min.1));
    m.insert("argmin".into(), json!(min.0));
    m.insert("max".into(), json!(max.1));
    m.insert("argmax".into(), json!(max.0));
    m.insert("rise".into(), json!(last.1 - min.1));
    m.insert("drop".into(), json!(max.1 - last.1));
    m.insert("points".into(), json!(points.len()));
    Some(m)
}

impl TypedStage for Summarize {
    type Params = SummarizeParams;
    const KIND: &'static str = "summarize";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Numbers read off one field of a history (a curve), so tables can judge claims about figures: first, last, min and argmin, max and argmax, rise = last − min (a held-out error going back up after its best epoch), drop = max − last. Output: metrics.";
    const INPUTS: &'static [InputSlot] =
        &[InputSlot::one("history", "a history (train.history, gd.history, pretrain.history)")];
    const USES_SEED: bool = false;

    fn outputs(_p: &SummarizeParams) -> Vec<String> {
        vec!["metrics".into()]
    }

    fn run(&self, p: &SummarizeParams, ctx: &Ctx) -> StageResult<Metrics> {
        let hist: Vec<Value> = read_json(&ctx.input("history")?.path)?;
        let mut points = Vec::new();
        for h in &hist {
            let (Some(x), Some(y)) = (h.get(&p.x), h.get(&p.field)) else {
                let missing = if h.get(&p.x).is_none() { ("x", &p.x) } else { ("field", &p.field) };
                return Err(StageError::param(missing.0, format!("history has no field `{}`", missing.1)));
            };
            let Some(x) = x.as_i64() else {
                return Err(StageError::param("x", format!("`{}` is not an integer in the history", p.x)));
            };
            // A null (e.g. an unmeasured metric) is no point.
            if let Some(y) = y.as_f64() {
                points.push((x, y));
            }
        }
        points.sort_by_key(|p| p.0);
        let m = summarize(&points)
            .ok_or_else(|| StageError::param("field", format!("the history has no value of `{}`", p.field)))?;
        write_json(&ctx.output("metrics"), &Value::Object(m.clone()))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: 0.9, 0.5, 0.4, 0.6 at epochs 1–4: min 0.4 at 3, max 0.9 at 1, rise 0.2,
    /// drop 0.3.
    #[test]
    fn summary_by_hand() {
        let m = summarize(&[(1, 0.9), (2, 0.5), (3, 0.4), (4, 0.6)]).unwrap();
        assert_eq!((m["first"].as_f64(), m["last"].as_f64()), (Some(0.9), Some(0.6)));
        assert_eq!((m["min"].as_f64(), m["argmin"].as_i64()), (Some(0.4), Some(3)));
        assert_eq!((m["max"].as_f64(), m["argmax"].as_i64()), (Some(0.9), Some(1)));
        assert!((m["rise"].as_f64().unwrap() - 0.2).abs() < 1e-12);
        assert!((m["drop"].as_f64().unwrap() - 0.3).abs() < 1e-12);
        assert!(summarize(&[]).is_none());
    }
}
