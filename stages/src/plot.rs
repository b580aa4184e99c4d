//! `plot`: line plots of per-epoch histories (the LALR paper's Figures 1–4: learning rate per
//! epoch and MAE per epoch, Lipschitz vs decay), drawn with plotters into SVG. One line per
//! combination of the `series` axes, averaged over the other axes (the replicates).

use plotters::prelude::*;
use repro_core::{read_json, stage_params, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};
use serde_json::Value;
use std::collections::BTreeMap;

stage_params! {
    /// Params of `plot`.
    pub struct PlotParams {
        /// History field on the y axis: "lr", "train_loss", "eval_mae", "eval_accuracy", …
        y: String = "lr".into(),
        /// Axes whose values make one line each.
        series: Vec<String> = vec![],
        /// Display names of axis values: { model = { dgex_d = "D-GEX(D)" } }.
        labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new(),
        /// Chart title.
        title: String = String::new(),
        /// y-axis label (default: the field name).
        y_label: String = String::new(),
        /// Logarithmic y axis.
        log_y: bool = false,
        /// Width in pixels.
        width: u32 = 800,
        /// Height in pixels.
        height: u32 = 500,
        /// Only epochs from this one on (e.g. 125 for the LALR paper's Figure 4); 0 = all.
        from_epoch: i64 = 0,
    }
}

pub struct Plot;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        o => o.to_string(),
    }
}

/// Mean curve per series: name → [(epoch, value)].
/// One named line: (label, [(epoch, value)]).
pub type Curve = (String, Vec<(f64, f64)>);

pub fn curves(p: &PlotParams, inputs: &[(BTreeMap<String, Value>, Vec<Value>)]) -> StageResult<Vec<Curve>> {
    // Series in numeric-aware order of their axis values (500 before 1500).
    let mut order: Vec<(Vec<Value>, String)> = Vec::new();
    let mut acc: BTreeMap<String, BTreeMap<i64, (f64, usize)>> = BTreeMap::new();
    for (axes, hist) in inputs {
        let key: Vec<Value> = p.series.iter().map(|a| axes.get(a).cloned().unwrap_or(Value::Null)).collect();
        let name: Vec<String> = p
            .series
            .iter()
            .map(|a| {
                let raw = axes.get(a).map(show).unwrap_or_default();
                let lab = p.labels.get(a).and_then(|m| m.get(&raw)).cloned();
                lab.unwrap_or(if p.series.len() > 1 { format!("{a}={raw}") } else { raw })
            })
            .collect();
        let name = name.join(", ");
        if !order.iter().any(|(_, n)| *n == name) {
            order.push((key, name.clone()));
        }
        let entry = acc.entry(name).or_default();
        for h in hist {
            let (Some(e), Some(v)) = (h.get("epoch").and_then(Value::as_i64), h.get(&p.y).and_then(Value::as_f64))
            else {
                if h.get(&p.y).is_none() {
                    return Err(StageError::param("y", format!("history has no field `{}`", p.y)));
                }
                continue;
            };
            if e < p.from_epoch {
                continue;
            }
            let s = entry.entry(e).or_insert((0.0, 0));
            s.0 += v;
            s.1 += 1;
        }
    }
    order.sort_by(|a, b| crate::values::cmp_vals(&a.0, &b.0));
    Ok(order
        .into_iter()
        .map(|(_, name)| {
            let pts =
                acc.remove(&name).unwrap_or_default().into_iter().map(|(e, (s, n))| (e as f64, s / n as f64)).collect();
            (name, pts)
        })
        .collect())
}

pub fn draw_svg(p: &PlotParams, curves: &[Curve]) -> StageResult<String> {
    let mut svg = String::new();
    {
        let err = |e: String| StageError::msg(format!("plot: {e}"));
        let root = SVGBackend::with_string(&mut svg, (p.width, p.height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let pts = curves.iter().flat_map(|(_, v)| v);
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for (x, y) in pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y0 = y0.min(*y);
            y1 = y1.max(*y);
        }
        if !x0.is_finite() {
            return Err(StageError::msg("plot: no points"));
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + y0.abs().max(1e-12);
        }
        let ylab = if p.y_label.is_empty() { p.y.clone() } else { p.y_label.clone() };
        let mut builder = ChartBuilder::on(&root);
        builder.caption(&p.title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(80);
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc("epoch")
                    .y_desc(ylab.as_str())
                    .y_label_formatter(&|v: &f64| {
                        if v.abs() < 1e-2 && *v != 0.0 {
                            format!("{v:.1e}")
                        } else {
                            format!("{v:.3}")
                        }
                    })
                    .draw()
                    .map_err(|e| err(e.to_string()))?;
                for (i, (name, pts)) in curves.iter().enumerate() {
                    let c = COLORS[i % COLORS.len()];
                    chart
                        .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                        .map_err(|e| err(e.to_string()))?
                        .label(name.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(e.to_string()))?;
            }};
        }
        if p.log_y {
            // Whole decades, so that the axis has labelled powers of ten even when the data
            // spans less than one (plotters places log ticks at powers of the base only).
            // (Just below the decade: plotters finds its first tick by a rounded ceil(log10).)
            let lo = 10f64.powf(y0.max(1e-12).log10().floor()) * (1.0 - 1e-9);
            let hi = 10f64.powf(y1.max(lo).log10().ceil()).max(lo * 10.0);
            body!(builder.build_cartesian_2d(x0..x1, (lo..hi).log_scale()).map_err(|e| err(e.to_string()))?);
        } else {
            let pad = (y1 - y0) * 0.05;
            body!(builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad)).map_err(|e| err(e.to_string()))?);
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

impl TypedStage for Plot {
    type Params = PlotParams;
    const KIND: &'static str = "plot";
    const VERSION: u32 = 3;
    const DOC: &'static str = "Line plot (SVG) of a per-epoch history field (lr, train_loss, eval_mae, …) over many training runs: one line per combination of the `series` axes, averaged over the rest. The LALR paper's Figures 1–4.";
    const USES_SEED: bool = false;
    const USES_INPUT_AXES: bool = true;
    const INPUTS: &'static [InputSlot] = &[InputSlot::many("inputs", "training histories, e.g. \"train[*].history\"")];

    fn outputs(_p: &PlotParams) -> Vec<String> {
        vec!["svg".into()]
    }

    fn run(&self, p: &PlotParams, ctx: &Ctx) -> StageResult<Metrics> {
        let mut inputs = Vec::new();
        for a in ctx.inputs.get("inputs").into_iter().flatten() {
            let h: Vec<Value> = read_json(&a.path)?;
            inputs.push((a.axes.clone(), h));
        }
        let c = curves(p, &inputs)?;
        std::fs::write(ctx.output("svg"), draw_svg(p, &c)?)?;
        Ok(Metrics::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn curves_average_replicates_and_svg_renders() {
        let h = |a: f64| vec![json!({"epoch": 1, "lr": a}), json!({"epoch": 2, "lr": a / 2.0})];
        let ax = |m: &str, r: i64| BTreeMap::from([("model".to_string(), json!(m)), ("rep".to_string(), json!(r))]);
        let p = PlotParams { series: vec!["model".into()], ..Default::default() };
        let c = curves(&p, &[(ax("a", 1), h(1.0)), (ax("a", 2), h(3.0)), (ax("b", 1), h(5.0))]).unwrap();
        assert_eq!(c[0], ("a".to_string(), vec![(1.0, 2.0), (2.0, 1.0)]));
        assert_eq!(c[1], ("b".to_string(), vec![(1.0, 5.0), (2.0, 2.5)]));
        let svg = draw_svg(&p, &c).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{}", &svg[..200.min(svg.len())]);
        assert_eq!(svg, draw_svg(&p, &c).unwrap());
        // A log axis over less than a decade still gets labelled ticks (1e-4 here).
        let lg = PlotParams { log_y: true, y: "lr".into(), ..Default::default() };
        let svg = draw_svg(&lg, &[("a".to_string(), vec![(1.0, 5e-4), (2.0, 1.9e-4)])]).unwrap();
        assert!(svg.contains("1.0e-4"), "no tick label on the log axis");
        // from_epoch keeps epochs ≥ 2 only.
        let late = PlotParams { from_epoch: 2, ..p };
        let c = curves(&late, &[(ax("a", 1), h(1.0))]).unwrap();
        assert_eq!(c[0].1, vec![(2.0, 0.5)]);
    }
}
