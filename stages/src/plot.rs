//! `plot`: line plots of per-epoch histories (the LALR paper's Figures 1–4: learning rate per
//! epoch and MAE per epoch, Lipschitz vs decay), drawn with plotters into SVG and PNG. One line
//! per combination of the `series` axes: the mean over the other axes (the replicates) with a
//! ± std band, n in the legend, a dash pattern and marker per line, text in the bundled font.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use repro_core::{read_json, stage_params, Ctx, InputSlot, Metrics, ParamError, StageError, StageResult, TypedStage};
use serde_json::Value;
use std::collections::BTreeMap;

stage_params! {
    /// Params of `plot`.
    pub struct PlotParams {
        /// History field on the y axis: "lr", "train_loss", "eval_mae", "eval_accuracy", …
        y: String = "lr".into(),
        /// Integer history field on the x axis: "epoch" (train), "iteration" (gd).
        x: String = "epoch".into(),
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
        /// Width of the SVG in pixels (the PNG is drawn at twice the size). Text scales with
        /// it: about 8–9 pt when the figure is set at a column's width (3.3 in).
        width: u32 = 640,
        /// Height in pixels.
        height: u32 = 420,
        /// Only x values (epochs) from this one on (e.g. 125 for the LALR paper's Figure 4); 0 = all.
        from_epoch: i64 = 0,
        /// The band around each mean line over the replicates: "std" (± one sample standard
        /// deviation, where a series has n ≥ 2) or "none".
        band: String = "std".into(),
        /// The data is synthetic: the title says so.
        synthetic: bool = false,
        /// When every input is empty (runs on data the user did not supply): draw the title and
        /// this text instead of failing, e.g. "heart.csv not given: --set heart_csv=…". Unset:
        /// an empty figure is an error.
        #[serde(skip_serializing_if = "String::is_empty")]
        missing: String = String::new(),
        /// x-axis label (default: the field name).
        #[serde(skip_serializing_if = "String::is_empty")]
        x_label: String = String::new(),
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

/// The one font of every figure, bundled (DejaVu Sans, its licence beside it in `assets/`) so
/// that text is measured and rasterized the same on every machine: no system font lookup.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        assert!(
            plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok(),
            "the bundled font parses"
        );
    });
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        o => o.to_string(),
    }
}

/// One point of a curve: the mean over the replicates at an epoch, their sample standard
/// deviation (n ≥ 2) and how many there were.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub epoch: i64,
    pub mean: f64,
    pub std: Option<f64>,
    pub n: usize,
}

/// One named line.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub name: String,
    /// Replicates behind it (the most at any epoch).
    pub n: usize,
    pub points: Vec<Point>,
}

pub fn curves(p: &PlotParams, inputs: &[(BTreeMap<String, Value>, Vec<Value>)]) -> StageResult<Vec<Curve>> {
    // Series in numeric-aware order of their axis values (500 before 1500).
    let mut order: Vec<(Vec<Value>, String)> = Vec::new();
    let mut acc: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
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
            let (Some(e), Some(v)) = (h.get(&p.x).and_then(Value::as_i64), h.get(&p.y).and_then(Value::as_f64)) else {
                for (param, field) in [("x", &p.x), ("y", &p.y)] {
                    if h.get(field).is_none() {
                        return Err(StageError::param(param, format!("history has no field `{field}`")));
                    }
                }
                continue;
            };
            if e >= p.from_epoch {
                entry.entry(e).or_default().push(v);
            }
        }
    }
    order.sort_by(|a, b| crate::values::cmp_vals(&a.0, &b.0));
    Ok(order
        .into_iter()
        .map(|(_, name)| {
            let points: Vec<Point> = acc
                .remove(&name)
                .unwrap_or_default()
                .into_iter()
                .map(|(epoch, v)| {
                    let n = v.len();
                    let mean = v.iter().sum::<f64>() / n as f64;
                    let std =
                        (n > 1).then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
                    Point { epoch, mean, std, n }
                })
                .collect();
            let n = points.iter().map(|q| q.n).max().unwrap_or(0);
            Curve { name, n, points }
        })
        .collect())
}

/// The figure as SVG, `width` × `height`.
pub fn draw_svg(p: &PlotParams, curves: &[Curve]) -> StageResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (p.width, p.height)).into_drawing_area();
        draw(root, p, curves, 1)?;
    }
    Ok(svg)
}

/// The figure as PNG at twice the SVG's size (for places that do not render SVG).
pub fn draw_png(p: &PlotParams, curves: &[Curve]) -> StageResult<Vec<u8>> {
    let (w, h) = (p.width * 2, p.height * 2);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(root, p, curves, 2)?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let err = |e: png::EncodingError| StageError::msg(format!("plot: cannot encode PNG: {e}"));
    enc.write_header().map_err(err)?.write_image_data(&rgb).map_err(err)?;
    Ok(out)
}

/// Draws the chart: integer epoch ticks; per series a colour, a dash pattern and a marker
/// shape (so overlapping lines stay apart in print); the replicate band; "name (n = k)" in the
/// legend; text sized from the width.
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    p: &PlotParams,
    curves: &[Curve],
    scale: u32,
) -> StageResult<()> {
    register_font();
    let err = |e: String| StageError::msg(format!("plot: {e}"));
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let band = p.band == "std";
    let (mut x0, mut x1, mut y0, mut y1) = (i64::MAX, i64::MIN, f64::INFINITY, f64::NEG_INFINITY);
    for q in curves.iter().flat_map(|c| &c.points) {
        let s = if band { q.std.unwrap_or(0.0) } else { 0.0 };
        x0 = x0.min(q.epoch);
        x1 = x1.max(q.epoch);
        y0 = y0.min(q.mean - s);
        y1 = y1.max(q.mean + s);
    }
    let empty = x0 > x1;
    if empty && p.missing.is_empty() {
        return Err(StageError::msg(
            "plot: no points (every input history is empty: runs on a dataset that is not bundled? give its file)",
        ));
    }
    if !empty && x1 <= x0 {
        x1 = x0 + 1;
    }
    if y1 <= y0 {
        y1 = y0 + y0.abs().max(1e-12);
    }
    let text = (p.width * scale / 32).max(10); // 20 px on a 640 px figure
    let ylab = if p.y_label.is_empty() { p.y.clone() } else { p.y_label.clone() };
    let title = if p.synthetic { format!("{} [synthetic data]", p.title) } else { p.title.clone() };
    // The title, wrapped to the width (DejaVu Sans averages about 0.55 em per character).
    let size = text * 23 / 20;
    let lines = wrap(&title, ((p.width * scale) as f64 / (size as f64 * 0.56)) as usize);
    let line_h = size * 6 / 5;
    let (top, body) = root.split_vertically(lines.len() as u32 * line_h + text / 2);
    let style = ("sans-serif", size).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
    for (k, line) in lines.iter().enumerate() {
        let at = ((p.width * scale / 2) as i32, (text / 2 + k as u32 * line_h) as i32);
        top.draw(&Text::new(line.clone(), at, style.clone())).map_err(|e| err(e.to_string()))?;
    }
    if empty {
        // No data (the user's file was not given): the title and the `missing` text, centred.
        let style = ("sans-serif", text).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        let (w, h) = body.dim_in_pixel();
        for (k, line) in wrap(&p.missing, ((p.width * scale) as f64 / (text as f64 * 0.56)) as usize).iter().enumerate()
        {
            let at = ((w / 2) as i32, (h / 3 + k as u32 * text * 6 / 5) as i32);
            body.draw(&Text::new(line.clone(), at, style.clone())).map_err(|e| err(e.to_string()))?;
        }
        return root.present().map_err(|e| err(e.to_string()));
    }
    let mut builder = ChartBuilder::on(&body);
    builder.margin(text / 2).margin_right(text * 3 / 2).x_label_area_size(text * 5 / 2).y_label_area_size(text * 4);
    let stroke = scale * 2;
    macro_rules! body {
        ($chart:expr, $floor:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(if p.x_label.is_empty() { p.x.as_str() } else { p.x_label.as_str() })
                .y_desc(ylab.as_str())
                .x_labels(8)
                .label_style(("sans-serif", text))
                .axis_desc_style(("sans-serif", text))
                .light_line_style(WHITE.mix(0.0))
                .y_label_formatter(&|v: &f64| {
                    if v.abs() < 1e-2 && *v != 0.0 {
                        format!("{v:.1e}")
                    } else {
                        let s = format!("{v:.3}");
                        s.trim_end_matches('0').trim_end_matches('.').to_string()
                    }
                })
                .draw()
                .map_err(|e| err(e.to_string()))?;
            let floor: f64 = $floor;
            for (i, c) in curves.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                if band && c.points.iter().any(|q| q.std.is_some()) {
                    let upper = c.points.iter().map(|q| (q.epoch, q.mean + q.std.unwrap_or(0.0)));
                    let lower = c.points.iter().rev().map(|q| (q.epoch, (q.mean - q.std.unwrap_or(0.0)).max(floor)));
                    chart
                        .draw_series(std::iter::once(Polygon::new(
                            upper.chain(lower).collect::<Vec<_>>(),
                            color.mix(0.18).filled(),
                        )))
                        .map_err(|e| err(e.to_string()))?;
                }
                let pts: Vec<(i64, f64)> = c.points.iter().map(|q| (q.epoch, q.mean)).collect();
                let style = color.stroke_width(stroke);
                let line = match i % 3 {
                    0 => chart.draw_series(LineSeries::new(pts.iter().copied(), style)),
                    1 => chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 7 * stroke, 4 * stroke, style)),
                    _ => chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 2 * stroke, 3 * stroke, style)),
                };
                let legend = format!("{} (n = {})", c.name, c.n);
                let r = (text / 4 + 1) as i32;
                let shape = marker(i, r);
                let mark = shape.clone();
                line.map_err(|e| err(e.to_string()))?.label(legend).legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (6 * r, 0)], color.stroke_width(stroke))
                        + Polygon::new(mark.iter().map(|(a, b)| (a + 3 * r, *b)).collect::<Vec<_>>(), color.filled())
                });
                // About eight markers per line, shifted per series so that they do not overlap.
                let every = (pts.len() / 8).max(1);
                let at = pts.iter().enumerate().filter(|(j, _)| (j + i * every / curves.len().max(1)) % every == 0);
                chart
                    .draw_series(at.map(|(_, q)| EmptyElement::at(*q) + Polygon::new(shape.clone(), color.filled())))
                    .map_err(|e| err(e.to_string()))?;
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", text))
                .legend_area_size(7 * (text / 4 + 1))
                .margin(text / 3)
                .background_style(WHITE.mix(0.85))
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
        body!(builder.build_cartesian_2d(x0..x1, (lo..hi).log_scale()).map_err(|e| err(e.to_string()))?, lo);
    } else {
        let pad = (y1 - y0) * 0.05;
        body!(builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad)).map_err(|e| err(e.to_string()))?, f64::MIN);
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Words of `s` in lines of at most `width` characters (a longer word gets its own line).
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for w in s.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + w.chars().count() <= width => {
                l.push(' ');
                l.push_str(w);
            }
            _ => lines.push(w.to_string()),
        }
    }
    lines
}

/// The marker of series `i` as a polygon of radius `r` around (0, 0): circle (octagon),
/// triangle, square, diamond.
fn marker(i: usize, r: i32) -> Vec<(i32, i32)> {
    match i % 4 {
        0 => (0..8)
            .map(|k| {
                let a = std::f64::consts::PI * (k as f64 + 0.5) / 4.0;
                ((r as f64 * a.cos()).round() as i32, (r as f64 * a.sin()).round() as i32)
            })
            .collect(),
        1 => vec![(0, -r - 1), (r + 1, r), (-r - 1, r)],
        2 => vec![(-r, -r), (r, -r), (r, r), (-r, r)],
        _ => vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)],
    }
}

impl TypedStage for Plot {
    type Params = PlotParams;
    const KIND: &'static str = "plot";
    const VERSION: u32 = 6;
    const DOC: &'static str = "Line plot (SVG and PNG) of a per-epoch history field (lr, train_loss, eval_mae, …) over many training runs: one line per combination of the `series` axes, the mean over the rest (the replicates) with a ± std band and n in the legend; distinct dashes and markers per line; integer epoch ticks. The LALR paper's Figures 1–4.";
    const USES_SEED: bool = false;
    const USES_INPUT_AXES: bool = true;
    const INPUTS: &'static [InputSlot] = &[InputSlot::many("inputs", "training histories, e.g. \"train[*].history\"")];

    fn validate(p: &PlotParams) -> Result<(), ParamError> {
        if p.band != "std" && p.band != "none" {
            return Err(ParamError::new("band", format!("expected \"std\" or \"none\", got \"{}\"", p.band)));
        }
        if p.width < 200 || p.height < 150 {
            return Err(ParamError::new("width", "a figure needs at least 200 × 150 pixels"));
        }
        Ok(())
    }

    fn outputs(_p: &PlotParams) -> Vec<String> {
        vec!["svg".into(), "png".into()]
    }

    fn run(&self, p: &PlotParams, ctx: &Ctx) -> StageResult<Metrics> {
        let mut inputs = Vec::new();
        for a in ctx.inputs.get("inputs").into_iter().flatten() {
            let h: Vec<Value> = read_json(&a.path)?;
            inputs.push((a.axes.clone(), h));
        }
        let c = curves(p, &inputs)?;
        std::fs::write(ctx.output("svg"), draw_svg(p, &c)?)?;
        std::fs::write(ctx.output("png"), draw_png(p, &c)?)?;
        Ok(Metrics::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// No points: an error, unless `missing` gives the text to draw in their place.
    #[test]
    fn an_empty_figure_needs_missing_text() {
        let p = PlotParams { title: "Figure 3".into(), ..Default::default() };
        let e = draw_svg(&p, &[]).unwrap_err();
        assert!(e.to_string().contains("no points"), "{e}");
        let p = PlotParams { missing: "heart.csv not given".into(), ..p };
        let svg = draw_svg(&p, &[]).unwrap();
        assert!(svg.contains("Figure 3") && svg.contains("heart.csv not given"), "{svg}");
    }

    fn pt(epoch: i64, mean: f64, std: Option<f64>, n: usize) -> Point {
        Point { epoch, mean, std, n }
    }

    #[test]
    fn curves_average_replicates_with_their_spread_and_both_formats_render() {
        let h = |a: f64| vec![json!({"epoch": 1, "lr": a}), json!({"epoch": 2, "lr": a / 2.0})];
        let ax = |m: &str, r: i64| BTreeMap::from([("model".to_string(), json!(m)), ("rep".to_string(), json!(r))]);
        let p = PlotParams { series: vec!["model".into()], ..Default::default() };
        let c = curves(&p, &[(ax("a", 1), h(1.0)), (ax("a", 2), h(3.0)), (ax("b", 1), h(5.0))]).unwrap();
        // a: epoch 1 values 1, 3 → mean 2, sample std √2; epoch 2: 0.5, 1.5 → 1, √0.5.
        assert_eq!(c[0].name, "a");
        assert_eq!(c[0].n, 2);
        assert_eq!(c[0].points, vec![pt(1, 2.0, Some(2f64.sqrt()), 2), pt(2, 1.0, Some(0.5f64.sqrt()), 2)]);
        assert_eq!(c[1].points, vec![pt(1, 5.0, None, 1), pt(2, 2.5, None, 1)]);
        let svg = draw_svg(&p, &c).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{}", &svg[..200.min(svg.len())]);
        assert_eq!(svg, draw_svg(&p, &c).unwrap());
        // n in the legend; integer epoch ticks; text of a readable size.
        let texts: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .map(|t| t.split('>').nth(1).unwrap().split('<').next().unwrap().trim())
            .collect();
        assert!(texts.contains(&"a (n = 2)") && texts.contains(&"b (n = 1)"), "legend: {texts:?}");
        // x tick labels are centred (y tick labels end-anchored): 1 and 2, nothing between.
        let centred: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter(|t| t.split('>').next().unwrap().contains("text-anchor=\"middle\""))
            .map(|t| t.split('>').nth(1).unwrap().split('<').next().unwrap().trim())
            .collect();
        assert_eq!(centred, ["lr", "epoch", "1", "2"], "epoch ticks (after the axis names)");
        // Text at least 16 px on the 640 px drawing (plotters writes 0.8 of the size asked).
        let sizes: Vec<f64> =
            svg.split("font-size=\"").skip(1).map(|t| t.split('"').next().unwrap().parse().unwrap()).collect();
        assert!(sizes.iter().all(|s| *s >= 16.0), "{sizes:?}");
        // The band: one filled polygon with the series colour at 18 % opacity.
        assert!(svg.contains("opacity=\"0.18\""), "no band");
        // PNG at twice the size, deterministic.
        let png = draw_png(&p, &c).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 2 * p.width);
        assert_eq!(png, draw_png(&p, &c).unwrap());
        // A log axis over less than a decade still gets labelled ticks (1e-4 here).
        let lg = PlotParams { log_y: true, y: "lr".into(), ..Default::default() };
        let one = |pts: Vec<(i64, f64)>| Curve {
            name: "a".into(),
            n: 1,
            points: pts.into_iter().map(|(e, m)| pt(e, m, None, 1)).collect(),
        };
        let svg = draw_svg(&lg, &[one(vec![(1, 5e-4), (2, 1.9e-4)])]).unwrap();
        assert!(svg.contains("1.0e-4"), "no tick label on the log axis");
        // from_epoch keeps epochs ≥ 2 only; synthetic data is named in the title.
        let late = PlotParams { from_epoch: 2, synthetic: true, title: "F".into(), ..p };
        let c = curves(&late, &[(ax("a", 1), h(1.0))]).unwrap();
        assert_eq!(c[0].points, vec![pt(2, 0.5, None, 1)]);
        assert!(draw_svg(&late, &c).unwrap().contains("F [synthetic data]"));
        assert_eq!(wrap("one two three four", 9), vec!["one two", "three", "four"]);
    }
}
