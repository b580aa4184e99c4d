//! `quantile_curve`: LogGENE §5.5 (Figures 3–4), the reading of multiple sBQC quantile heads
//! along one variable. For a value x of the variable, the paper solves Q_x(τ) = 0 in τ: "there is
//! a τ % chance that x would be classified as 0, and (1 − τ) % chance as 1"
//! (loggene_logcosh.txt:552–553). Here Q_x is the model's heads ŷ_h at τ_h = h/(H + 1), joined
//! by straight lines in τ; τ*(x) is its first zero from the lowest τ up. Where no head changes
//! sign the zero lies outside [τ_1, τ_H]; then every head says the same side (head h fits
//! F_τh(ŷ_h) = P(class 0 | x), and F_τ(0) = τ), and τ* is the nearest edge head's own
//! probability: F_τH(ŷ_H) (above τ_H) when all ŷ > 0, F_τ1(ŷ_1) (below τ_1) when all ŷ < 0 —
//! our extension, continuous with the zero at the edges; the paper's figures stay inside.
//!
//! The grid runs over the data's range of the variable in its own units (whole multiples of
//! `step`, e.g. beats per minute), mapped to the model's scale with the `stats` of the
//! `standardize` stage that fed training. Outputs: `curve` (records {x, tau, roots, heads: the outputs ŷ_1…ŷ_H}) for `plot`,
//! and `metrics` with τ* at each value of `at` (`tau_x1`, `tau_x2`, … in the order given, so
//! tables line up across datasets read at different values) and the share of grid points
//! whose heads cross zero more than once (`multiple_roots`), and `head_spread`, the mean over the
//! grid of ŷ_1 − ŷ_H (lowest-τ head minus highest): positive when the heads fall as τ grows, the
//! order of the sBQC optimum (head τ fits F_τ(ŷ_τ) = P(class 0 | x), and F_τ(0) = τ grows with
//! τ), which LogGENE's crossing penalty on the raw outputs counts as crossing; near 0 when the
//! heads have collapsed onto one curve.

use crate::dataset::Dataset;
use crate::nn::loss::{sbqc_cdf, Loss, QuantileBase};
use crate::nn::mlp::Mlp;
use crate::standardize::Stats;
use repro_core::{
    read_json, stage_params, write_json, Ctx, InputSlot, Metrics, ParamError, StageError, StageResult, TypedStage,
};
use serde_json::{json, Value};

stage_params! {
    /// Params of `quantile_curve`.
    pub struct QuantileCurveParams {
        /// Grid step in the variable's own units; the grid holds the multiples of `step` inside
        /// the data's range (the figure's x axis is whole numbers).
        step: i64 = 1,
        /// Values of the variable (own units) at which τ* is written as the metrics `tau_x1`,
        /// `tau_x2`, … (in this order), e.g. [120, 140] beats per minute for the paper's reading
        /// of Figure 3.
        at: Vec<f64> = vec![],
    }
}

pub struct QuantileCurve;

/// τ* of one row of head outputs `q` (head h at τ_h = (h + 1)/(H + 1)) and the number of
/// zeros of the piecewise-linear Q(τ) on [τ_1, τ_H].
pub fn zero_crossing(q: &[f64]) -> (f64, usize) {
    let h = q.len();
    let tau = |i: usize| (i + 1) as f64 / (h + 1) as f64;
    let mut roots = Vec::new();
    for i in 0..h {
        if q[i] == 0.0 {
            roots.push(tau(i));
        } else if i + 1 < h && q[i] * q[i + 1] < 0.0 {
            roots.push(tau(i) + (tau(i + 1) - tau(i)) * q[i] / (q[i] - q[i + 1]));
        }
    }
    match roots.first() {
        Some(t) => (*t, roots.len()),
        None if q[0] > 0.0 => (sbqc_cdf(q[h - 1], tau(h - 1)).0, 0),
        None => (sbqc_cdf(q[0], tau(0)).0, 0),
    }
}

/// The grid: the multiples of `step` in [lo, hi].
fn grid(lo: f64, hi: f64, step: i64) -> Vec<i64> {
    let s = step as f64;
    let (a, b) = ((lo / s).ceil() as i64, (hi / s).floor() as i64);
    (a..=b).map(|k| k * step).collect()
}

/// The metric name of τ* at the `i`-th value of `at` (from 0): `tau_x1`, `tau_x2`, ….
fn metric_name(i: usize) -> String {
    format!("tau_x{}", i + 1)
}

impl TypedStage for QuantileCurve {
    type Params = QuantileCurveParams;
    const KIND: &'static str = "quantile_curve";
    const VERSION: u32 = 1;
    const DOC: &'static str = "LogGENE §5.5 (Figures 3–4): τ*(x), the zero in τ of a model's sBQC quantile heads (train loss quantiles with base = \"sbqc\") along its one input variable — the chance that x is classified 0 — on a grid of the variable in its own units (stats map it to the model's scale); outside the heads' range the nearest edge head's own probability (our extension). Outputs: curve ({x, tau, roots, heads} records for plot), metrics (tau_x1, tau_x2, … at the values of `at`; multiple_roots: share of the grid; head_spread: mean ŷ_1 − ŷ_H).";
    const INPUTS: &'static [InputSlot] = &[
        InputSlot::one("model", "a model trained with loss quantiles, base = \"sbqc\", on one feature"),
        InputSlot::one("data", "the dataset in the variable's own units (its range sets the grid)"),
        InputSlot::optional("stats", "the standardize stats that mapped the variable to the model's scale"),
    ];
    const USES_SEED: bool = false;

    fn outputs(_p: &QuantileCurveParams) -> Vec<String> {
        vec!["curve".into(), "metrics".into()]
    }

    fn validate(p: &QuantileCurveParams) -> Result<(), ParamError> {
        if p.step < 1 {
            return Err(ParamError::new("step", format!("must be at least 1, got {}", p.step)));
        }
        if let Some(v) = p.at.iter().find(|v| !v.is_finite()) {
            return Err(ParamError::new("at", format!("{v} is not a finite value")));
        }
        Ok(())
    }

    fn run(&self, p: &QuantileCurveParams, ctx: &Ctx) -> StageResult<Metrics> {
        let d = Dataset::read(&ctx.input("data")?.path)?;
        let mut m = Metrics::new();
        if d.is_absent() {
            // The user did not supply the file: no curve, null metrics ("data not bundled").
            for k in (0..p.at.len()).map(metric_name).chain(["multiple_roots".into(), "head_spread".into()]) {
                m.insert(k, Value::Null);
            }
            m.insert("status".into(), "data not bundled".into());
            write_json(&ctx.output("curve"), &Vec::<Value>::new())?;
            write_json(&ctx.output("metrics"), &m)?;
            return Ok(m);
        }
        let (model, info) = Mlp::load(&ctx.input("model")?.path)?;
        let heads = match serde_json::from_value::<Loss>(info["loss"].clone()) {
            Ok(Loss::Quantiles { heads, base: QuantileBase::Sbqc, .. }) if heads >= 2 => heads,
            _ => {
                return Err(StageError::param(
                    "model",
                    format!("needs a model trained with loss = {{ name = \"quantiles\", base = \"sbqc\" }} (2 or more heads); this one has loss {}", info["loss"]),
                ))
            }
        };
        if d.p() != 1 || model.inputs() != 1 {
            return Err(StageError::param(
                "data",
                format!(
                    "a curve is along one variable: the dataset has {} features and the model {} inputs; load one feature",
                    d.p(),
                    model.inputs()
                ),
            ));
        }
        // The variable's own units → the model's scale.
        let (shift, factor) = match ctx.input("stats") {
            Ok(slot) => {
                let st: Stats = read_json(&slot.path)?;
                if st.features.shift.len() != 1 {
                    return Err(StageError::param(
                        "stats",
                        format!("stats cover {} features, the curve needs 1", st.features.shift.len()),
                    ));
                }
                let f = if st.whitening.is_empty() { 1.0 / st.features.scale[0] } else { st.whitening[0] };
                (st.features.shift[0], f)
            }
            Err(_) => (0.0, 1.0),
        };
        let outputs = |xs: &[f64]| -> Vec<Vec<f64>> {
            let input: Vec<f32> = xs.iter().map(|x| ((x - shift) * factor) as f32).collect();
            model
                .predict(&input, ctx.threads)
                .chunks(heads)
                .map(|r| r.iter().map(|v| f64::from(*v)).collect())
                .collect()
        };
        let (lo, hi) =
            d.x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v as f64), b.max(*v as f64)));
        let xs = grid(lo, hi, p.step);
        if xs.is_empty() {
            return Err(StageError::param(
                "step",
                format!("no multiple of {} lies in the data's range [{lo}, {hi}]", p.step),
            ));
        }
        let grid_out = outputs(&xs.iter().map(|x| *x as f64).collect::<Vec<_>>());
        let taus: Vec<(f64, usize)> = grid_out.iter().map(|q| zero_crossing(q)).collect();
        let curve: Vec<Value> = xs
            .iter()
            .zip(&taus)
            .zip(&grid_out)
            .map(|((x, (t, r)), q)| json!({ "x": x, "tau": t, "roots": r, "heads": q }))
            .collect();
        write_json(&ctx.output("curve"), &curve)?;
        for (i, q) in outputs(&p.at).iter().enumerate() {
            m.insert(metric_name(i), zero_crossing(q).0.into());
        }
        let share = |n: usize| n as f64 / taus.len() as f64;
        m.insert("multiple_roots".into(), share(taus.iter().filter(|(_, r)| *r > 1).count()).into());
        let spread = grid_out.iter().map(|q| q[0] - q[heads - 1]).sum::<f64>() / grid_out.len() as f64;
        m.insert("head_spread".into(), spread.into());
        m.insert("grid_points".into(), taus.len().into());
        write_json(&ctx.output("metrics"), &m)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Three heads at τ = 0.25, 0.5, 0.75.
    //   (1, 0.5, −0.5): one sign change between 0.5 and 0.75: 0.5 + 0.25·0.5/(0.5 + 0.5) = 0.625.
    //   (1, −1, 1): zeros at 0.375 and 0.625; the first is τ*.
    //   (0.3, 0, −0.2): the zero is the middle head itself, 0.5.
    //   all positive (2, 1, 0.5): τ* = F_0.75(0.5) = 0.75 + (4·0.25/π)·atan(tanh(0.25))
    //     = 0.75 + 0.318310·0.240191 = 0.826455 (python: 0.75 + 4*0.25/math.pi*math.atan(math.tanh(0.25))).
    //   all negative (−0.5, −1, −2): τ* = F_0.25(−0.5) = 0.25 − (4·0.25/π)·0.240191 = 0.173545.
    #[test]
    fn zero_crossing_by_hand() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        let (t, r) = zero_crossing(&[1.0, 0.5, -0.5]);
        assert!(close(t, 0.625) && r == 1, "{t} {r}");
        let (t, r) = zero_crossing(&[1.0, -1.0, 1.0]);
        assert!(close(t, 0.375) && r == 2, "{t} {r}");
        let (t, r) = zero_crossing(&[0.3, 0.0, -0.2]);
        assert!(close(t, 0.5) && r == 1, "{t} {r}");
        let (t, r) = zero_crossing(&[2.0, 1.0, 0.5]);
        assert!(close(t, 0.826_455) && r == 0, "{t} {r}");
        let (t, r) = zero_crossing(&[-0.5, -1.0, -2.0]);
        assert!(close(t, 0.173_545) && r == 0, "{t} {r}");
    }

    #[test]
    fn grid_holds_the_multiples_of_step_inside_the_range() {
        assert_eq!(grid(71.0, 202.0, 20), vec![80, 100, 120, 140, 160, 180, 200]);
        assert_eq!(grid(-3.5, 3.5, 2), vec![-2, 0, 2]);
        assert!(grid(0.2, 0.8, 1).is_empty());
        assert_eq!(metric_name(0), "tau_x1");
    }
}
