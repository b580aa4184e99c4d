//! `load`: bring data into the pipeline as a dataset artifact.
//!
//! - Files: CSV, Parquet and Arrow IPC through polars; `.npy` (float64/float32, C order,
//!   samples × genes) as the D-GEX authors distribute their processed GEO arrays
//!   (`bgedv2_X_tr_float64.npy` with `y_path = "bgedv2_Y_tr_0-4760_float64.npy"`).
//! - Bundled datasets by name, shipped inside the binary (smartcore's `datasets` feature), so
//!   nothing is downloaded: `iris`, `digits`, `breast_cancer`, `boston`, `diabetes`;
//!   `wine_quality_red` through linfa-datasets.
//!
//! Column roles come from selectors: a column name, or an index range `"i..j"` (end
//! exclusive). The file's content, not its path, joins the cache key (the engine hashes every
//! file named by `path` / `y_path`).

use crate::dataset::Dataset;
use polars::prelude::*;
use repro_core::ParamError;
use repro_core::{stage_params, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};
use std::path::Path;

stage_params! {
    /// Params of `load`.
    pub struct LoadParams {
        /// Bundled dataset: iris, digits, breast_cancer, boston, diabetes or wine_quality_red. Exclusive with `path`.
        dataset: Option<String> = None,
        /// File to read (relative to the project root): .csv, .parquet, .arrow/.ipc/.feather or .npy.
        path: Option<String> = None,
        /// For .npy features: the matching targets array (rows must agree).
        y_path: Option<String> = None,
        /// "auto" (by extension), "csv", "parquet", "ipc" or "npy".
        format: String = "auto".into(),
        /// Feature columns: names or index ranges "i..j" (of a file, or of a bundled dataset).
        /// Empty = every column not used otherwise.
        features: Vec<String> = vec![],
        /// Target columns: names or index ranges "i..j".
        targets: Vec<String> = vec![],
        /// Class-label column (integers or strings; strings become sorted class indices).
        label: Option<String> = None,
        /// CSV: the first line holds column names.
        has_header: bool = true,
        /// CSV field separator (one character).
        separator: String = ",".into(),
        /// Keep only the rows of these classes (names as in the dataset's class list), relabelled
        /// 0, 1, … in the order given: `["setosa", "versicolor"]` is Iris classes 0/1.
        keep_classes: Vec<String> = vec![],
        /// Keep only the first n rows (after `keep_classes`), e.g. Covertype's first 100,000.
        head: Option<usize> = None,
        /// With `path = ""` (an unset var naming a file the user may supply), write an empty
        /// dataset instead of failing; downstream stages report "data not bundled".
        optional: bool = false,
    }
}

pub struct Load;

pub const BUNDLED: &[(&str, &str)] = &[
    ("iris", "Fisher's Iris (150 × 4, 3 classes); UCI, via smartcore (Apache-2.0)"),
    ("digits", "Optical recognition of handwritten digits (1,797 × 64, 10 classes); UCI, via smartcore"),
    ("breast_cancer", "Wisconsin diagnostic breast cancer (569 × 30, 2 classes); UCI, via smartcore"),
    ("boston", "Boston housing (506 × 13, regression target MEDV); via smartcore"),
    ("diabetes", "Diabetes progression (442 × 10, regression); Efron et al. 2004, via smartcore"),
    ("wine_quality_red", "Red wine quality (1,599 × 11, regression target `quality`); Cortez et al. 2009, UCI, via linfa-datasets (MIT/Apache-2.0)"),
];

fn classification<Y: Copy + Into<f64>>(d: smartcore::dataset::Dataset<f32, Y>, classes: Vec<String>) -> Dataset {
    let n = d.num_samples;
    Dataset {
        features: d.feature_names.clone(),
        x: d.data,
        targets: vec![],
        y: vec![],
        classes,
        labels: Some(d.target.iter().map(|v| (*v).into() as i64).collect()),
        ids: (0..n as i64).collect(),
    }
}

fn regression<Y: Copy + Into<f64>>(d: smartcore::dataset::Dataset<f32, Y>, target: &str) -> Dataset {
    let n = d.num_samples;
    Dataset {
        features: d.feature_names.clone(),
        x: d.data,
        targets: vec![target.to_string()],
        y: d.target.iter().map(|v| (*v).into() as f32).collect(),
        classes: vec![],
        labels: None,
        ids: (0..n as i64).collect(),
    }
}

pub fn bundled(name: &str) -> Option<Dataset> {
    use smartcore::dataset as sd;
    let mut d = match name {
        "iris" => {
            classification(sd::iris::load_dataset(), vec!["setosa".into(), "versicolor".into(), "virginica".into()])
        }
        "digits" => classification(sd::digits::load_dataset(), (0..10).map(|i| i.to_string()).collect()),
        "breast_cancer" => classification(sd::breast_cancer::load_dataset(), vec!["malignant".into(), "benign".into()]),
        "boston" => regression(sd::boston::load_dataset(), "MEDV"),
        "diabetes" => regression(sd::diabetes::load_dataset(), "progression"),
        "wine_quality_red" => {
            let ds = linfa_datasets::winequality();
            let n = ds.records.nrows();
            Dataset {
                features: ds.feature_names().to_vec(),
                x: ds.records.iter().map(|v| *v as f32).collect(),
                targets: vec!["quality".into()],
                y: ds.targets.iter().map(|v| *v as f32).collect(),
                classes: vec![],
                labels: None,
                ids: (0..n as i64).collect(),
            }
        }
        _ => return None,
    };
    if d.features.len() != d.x.len() / d.rows().max(1) {
        let p = d.x.len() / d.rows().max(1);
        d.features = (0..p).map(|i| format!("x{i}")).collect();
    }
    Some(d)
}

/// Resolves selectors against column names, in selector order.
fn select(selectors: &[String], names: &[String], param: &str) -> StageResult<Vec<usize>> {
    let mut out = Vec::new();
    for s in selectors {
        if let Some((a, b)) = s.split_once("..") {
            let parse = |v: &str| v.trim().parse::<usize>();
            match (parse(a), parse(b)) {
                (Ok(a), Ok(b)) if a <= b && b <= names.len() => out.extend(a..b),
                _ => {
                    return Err(StageError::param(
                        param,
                        format!(
                            "bad index range `{s}` for {} columns (want \"i..j\", j ≤ {})",
                            names.len(),
                            names.len()
                        ),
                    ))
                }
            }
        } else {
            match names.iter().position(|n| n == s) {
                Some(i) => out.push(i),
                None => {
                    let known: Vec<&str> = names.iter().map(String::as_str).collect();
                    let hint =
                        repro_core::closest(s, &known).map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default();
                    return Err(StageError::param(param, format!("no column named `{s}`{hint}")));
                }
            }
        }
    }
    Ok(out)
}

fn read_frame(path: &Path, format: &str, p: &LoadParams) -> StageResult<DataFrame> {
    let err = |e: PolarsError| StageError::param("path", format!("{}: {e}", path.display()));
    let file = || std::fs::File::open(path).map_err(|e| StageError::param("path", format!("{}: {e}", path.display())));
    match format {
        "csv" => {
            let sep = p.separator.as_bytes();
            CsvReadOptions::default()
                .with_has_header(p.has_header)
                .map_parse_options(|o| o.with_separator(sep[0]))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .map_err(err)?
                .finish()
                .map_err(err)
        }
        "parquet" => ParquetReader::new(file()?).finish().map_err(err),
        "ipc" => IpcReader::new(file()?).finish().map_err(err),
        other => Err(StageError::param("format", format!("unknown format `{other}`"))),
    }
}

fn column_f32(df: &DataFrame, name: &str, param: &str) -> StageResult<Vec<f32>> {
    let col = df.column(name).map_err(|e| StageError::param(param, e.to_string()))?;
    let c = col
        .cast(&DataType::Float64)
        .map_err(|e| StageError::param(param, format!("column `{name}` is not numeric: {e}")))?;
    let ca = c.f64().map_err(|e| StageError::param(param, e.to_string()))?;
    ca.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Some(v) if v.is_finite() => Ok(v as f32),
            _ => Err(StageError::param(param, format!("column `{name}` row {i} is missing or not finite"))),
        })
        .collect()
}

fn from_frame(df: &DataFrame, p: &LoadParams) -> StageResult<Dataset> {
    let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    let t = select(&p.targets, &names, "targets")?;
    let label = match &p.label {
        Some(l) => Some(select(std::slice::from_ref(l), &names, "label")?[0]),
        None => None,
    };
    let f = if p.features.is_empty() {
        (0..names.len()).filter(|i| !t.contains(i) && Some(*i) != label).collect()
    } else {
        select(&p.features, &names, "features")?
    };
    let n = df.height();
    let cols = |idx: &[usize], param: &str| -> StageResult<Vec<f32>> {
        let columns: Vec<Vec<f32>> =
            idx.iter().map(|&i| column_f32(df, &names[i], param)).collect::<StageResult<_>>()?;
        let mut m = Vec::with_capacity(n * idx.len());
        for r in 0..n {
            m.extend(columns.iter().map(|c| c[r]));
        }
        Ok(m)
    };
    let (labels, classes) = match label {
        Some(li) => {
            let col = df.column(&names[li]).map_err(|e| StageError::param("label", e.to_string()))?;
            let as_str = col.cast(&DataType::String).map_err(|e| StageError::param("label", e.to_string()))?;
            let vals: Vec<String> = as_str
                .str()
                .map_err(|e| StageError::param("label", e.to_string()))?
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect();
            let mut classes = vals.clone();
            classes.sort();
            classes.dedup();
            let labels = vals.iter().map(|v| classes.binary_search(v).unwrap() as i64).collect();
            (Some(labels), classes)
        }
        None => (None, vec![]),
    };
    Ok(Dataset {
        features: f.iter().map(|&i| names[i].clone()).collect(),
        x: cols(&f, "features")?,
        targets: t.iter().map(|&i| names[i].clone()).collect(),
        y: cols(&t, "targets")?,
        classes,
        labels,
        ids: (0..n as i64).collect(),
    })
}

/// Reads a 2-D `.npy` array of float64 or float32 in C order: (rows, cols, values as f32).
///
/// Streams: the header is read and checked first, then the data in 8 MiB chunks converted to
/// f32 as they arrive, so the peak is the f32 result plus one chunk (reading the whole file
/// first, as before, held the f64 bytes and the f32 copy at once: about 5 GB for the 3.4 GB
/// D-GEX target array instead of 1.7 GB).
pub fn read_npy(path: &Path, param: &str) -> StageResult<(usize, usize, Vec<f32>)> {
    use std::io::Read;
    let bad = |m: &str| StageError::param(param, format!("{}: {m}", path.display()));
    let mut f = std::fs::File::open(path).map_err(|e| bad(&e.to_string()))?;
    let len = f.metadata().map_err(|e| bad(&e.to_string()))?.len();
    let mut prefix = Vec::new();
    (&mut f).take(12).read_to_end(&mut prefix).map_err(|e| bad(&e.to_string()))?;
    let (hlen, start) = npy_header_len(&prefix).map_err(|m| bad(&m))?;
    let want = (start + hlen).saturating_sub(prefix.len()) as u64;
    (&mut f).take(want).read_to_end(&mut prefix).map_err(|e| bad(&e.to_string()))?;
    let h = npy_header(&prefix).map_err(|m| bad(&m))?;
    let data_len = len.saturating_sub(h.offset as u64);
    if (h.rows as u128) * (h.cols as u128) * (h.width as u128) != data_len as u128 {
        return Err(bad(&format!("{data_len} data bytes for shape ({}, {})", h.rows, h.cols)));
    }
    let n = h.rows * h.cols;
    let mut values: Vec<f32> = Vec::with_capacity(n);
    let mut buf = vec![0u8; (8 << 20) / h.width * h.width];
    while values.len() < n {
        let take = ((n - values.len()) * h.width).min(buf.len());
        f.read_exact(&mut buf[..take]).map_err(|e| bad(&e.to_string()))?;
        convert(&buf[..take], h.width, &mut values);
    }
    Ok((h.rows, h.cols, values))
}

/// Appends little-endian f64 (`width` 8) or f32 (4) values to `out` as f32.
fn convert(data: &[u8], width: usize, out: &mut Vec<f32>) {
    if width == 8 {
        out.extend(data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32));
    } else {
        out.extend(data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())));
    }
}

/// A checked `.npy` header: the shape, the bytes per value and where the data starts.
struct NpyHeader {
    rows: usize,
    cols: usize,
    width: usize,
    offset: usize,
}

/// The header's length and where it starts, from the first 12 bytes.
fn npy_header_len(bytes: &[u8]) -> Result<(usize, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    match bytes[6] {
        1 => Ok((u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)),
        2 | 3 if bytes.len() >= 12 => Ok((u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)),
        2 | 3 => Err("truncated header".into()),
        v => Err(format!("unsupported .npy version {v}")),
    }
}

/// Parses `.npy` bytes strictly: the magic, a version 1–3 header that is exactly one Python
/// dict literal padded with spaces and ended by a newline (trailing junk is an error), a
/// little-endian `<f8` or `<f4` C-order 2-D (or 1-D) shape, and exactly the data bytes that
/// shape needs.
pub fn parse_npy(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    let h = npy_header(bytes)?;
    let data = &bytes[h.offset..];
    if h.rows.checked_mul(h.cols).and_then(|n| n.checked_mul(h.width)) != Some(data.len()) {
        return Err(format!("{} data bytes for shape ({}, {})", data.len(), h.rows, h.cols));
    }
    let mut values = Vec::with_capacity(data.len() / h.width);
    convert(data, h.width, &mut values);
    Ok((h.rows, h.cols, values))
}

/// Checks the magic and the header (the bytes may end right after it).
fn npy_header(bytes: &[u8]) -> Result<NpyHeader, String> {
    let (hlen, start) = npy_header_len(bytes)?;
    let header_bytes = bytes.get(start..start.saturating_add(hlen)).ok_or("truncated header")?;
    let header = std::str::from_utf8(header_bytes).map_err(|_| "header is not text")?;
    let dict = header.trim_end_matches('\n').trim_end_matches(' ');
    if !header.ends_with('\n') || !dict.starts_with('{') || !dict.ends_with('}') || dict[1..].contains('{') {
        return Err("header is not one dict literal ended by a newline".into());
    }
    let field = |k: &str| -> Option<&str> {
        let i = dict.find(&format!("'{k}'"))?;
        dict.get(i + k.len() + 2..).map(|r| r.trim_start_matches([':', ' ']))
    };
    let descr = field("descr").ok_or("header has no descr")?;
    let le8 = descr.starts_with("'<f8'");
    let le4 = descr.starts_with("'<f4'");
    if !le8 && !le4 {
        return Err("only little-endian float64 or float32 arrays are supported".into());
    }
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-order arrays are not supported; save with np.ascontiguousarray".into());
    }
    let shape = field("shape").ok_or("header has no shape")?;
    let (open, close) = (shape.find('(').ok_or("bad shape")?, shape.find(')').ok_or("bad shape")?);
    let inner = shape.get(open + 1..close).ok_or("bad shape")?;
    let dims: Vec<usize> = inner
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|_| format!("bad dimension `{}` in shape", s.trim())))
        .collect::<Result<_, _>>()?;
    let (r, c) = match dims.as_slice() {
        [r, c] => (*r, *c),
        [r] => (*r, 1),
        _ => return Err(format!("expected a 2-D array, shape is ({inner})")),
    };
    let width = if le8 { 8 } else { 4 };
    if r.checked_mul(c).and_then(|n| n.checked_mul(width)).is_none() {
        return Err(format!("shape ({r}, {c}) is too large"));
    }
    Ok(NpyHeader { rows: r, cols: c, width, offset: start + hlen })
}

/// The rows of the listed classes, relabelled 0, 1, … in the order listed.
fn keep_classes(d: Dataset, keep: &[String]) -> StageResult<Dataset> {
    if keep.is_empty() || d.rows() == 0 {
        return Ok(d);
    }
    let labels =
        d.labels.as_ref().ok_or_else(|| StageError::param("keep_classes", "the dataset has no class labels"))?;
    let mut map = Vec::new();
    for k in keep {
        let Some(i) = d.classes.iter().position(|c| c == k) else {
            return Err(StageError::param(
                "keep_classes",
                format!("no class `{k}`; the classes are {}", d.classes.join(", ")),
            ));
        };
        map.push(i as i64);
    }
    let idx: Vec<usize> = (0..d.rows()).filter(|&r| map.contains(&labels[r])).collect();
    let mut out = d.select_rows(&idx);
    out.labels = Some(idx.iter().map(|&r| map.iter().position(|c| *c == labels[r]).unwrap() as i64).collect());
    out.classes = keep.to_vec();
    Ok(out)
}

fn format_of(p: &LoadParams, path: &str) -> String {
    if p.format != "auto" {
        return p.format.clone();
    }
    let ext = Path::new(path).extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "csv" | "tsv" | "txt" => "csv",
        "parquet" | "pq" => "parquet",
        "arrow" | "ipc" | "feather" => "ipc",
        "npy" => "npy",
        _ => "csv",
    }
    .into()
}

impl TypedStage for Load {
    type Params = LoadParams;
    const KIND: &'static str = "load";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Load a dataset: a bundled one by name (iris, digits, breast_cancer, boston, diabetes, wine_quality_red) or a CSV / Parquet / Arrow IPC / .npy file, with column roles (features, targets, label) chosen by name or index range.";
    const USES_SEED: bool = false;
    const INPUTS: &'static [InputSlot] = &[];

    fn validate(p: &LoadParams) -> Result<(), ParamError> {
        match (&p.dataset, &p.path) {
            (Some(_), Some(_)) => return Err(ParamError::new("path", "give either `dataset` or `path`, not both")),
            (None, None) => return Err(ParamError::new("path", "give `dataset` (a bundled name) or `path` (a file)")),
            (Some(d), None) if !BUNDLED.iter().any(|(n, _)| n == d) => {
                let names: Vec<&str> = BUNDLED.iter().map(|(n, _)| *n).collect();
                return Err(ParamError::new(
                    "dataset",
                    format!("no bundled dataset `{d}`; bundled: {}", names.join(", ")),
                ));
            }
            _ => {}
        }
        if !["auto", "csv", "parquet", "ipc", "npy"].contains(&p.format.as_str()) {
            return Err(ParamError::new(
                "format",
                format!("unknown format `{}`; expected auto, csv, parquet, ipc or npy", p.format),
            ));
        }
        if p.path.as_deref() == Some("") && !p.optional {
            return Err(ParamError::new("path", "is empty; set it, or mark the stage `optional = true`"));
        }
        if p.separator.len() != 1 {
            return Err(ParamError::new("separator", "must be one ASCII character"));
        }
        Ok(())
    }

    fn external_files(p: &LoadParams) -> Vec<String> {
        p.path.iter().chain(p.y_path.iter()).filter(|s| !s.is_empty()).cloned().collect()
    }

    fn run(&self, p: &LoadParams, ctx: &Ctx) -> StageResult<Metrics> {
        let d = if p.optional && p.path.as_deref() == Some("") {
            Dataset::default()
        } else if let Some(name) = &p.dataset {
            let d =
                bundled(name).ok_or_else(|| StageError::param("dataset", format!("no bundled dataset `{name}`")))?;
            if p.features.is_empty() {
                d
            } else {
                d.select_features(&select(&p.features, &d.features, "features")?)
            }
        } else {
            let path_s = p.path.as_deref().unwrap_or_default();
            let path = ctx.resolve(path_s);
            if !path.exists() {
                return Err(StageError::param("path", format!("file not found: {}", path.display())));
            }
            if format_of(p, path_s) == "npy" {
                let (n, c, x) = read_npy(&path, "path")?;
                let (y, q) = match &p.y_path {
                    Some(yp) => {
                        let (ny, q, y) = read_npy(&ctx.resolve(yp), "y_path")?;
                        if ny != n {
                            return Err(StageError::param("y_path", format!("{ny} rows, but `path` has {n}")));
                        }
                        (y, q)
                    }
                    None => (vec![], 0),
                };
                Dataset {
                    features: (0..c).map(|i| format!("x{i}")).collect(),
                    x,
                    targets: (0..q).map(|i| format!("y{i}")).collect(),
                    y,
                    classes: vec![],
                    labels: None,
                    ids: (0..n as i64).collect(),
                }
            } else {
                from_frame(&read_frame(&path, &format_of(p, path_s), p)?, p)?
            }
        };
        let mut d = keep_classes(d, &p.keep_classes)?;
        if let Some(n) = p.head.filter(|n| *n < d.rows()) {
            d = d.select_rows(&(0..n).collect::<Vec<_>>());
        }
        d.validate(&format!("stage `{}`", ctx.instance))?;
        d.write(&ctx.output("out"))?;
        let mut m = Metrics::new();
        m.insert("rows".into(), d.rows().into());
        m.insert("features".into(), d.p().into());
        m.insert("targets".into(), d.q().into());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Iris classes in reverse order: 50 virginica rows become class 0, 50 setosa class 1.
    #[test]
    fn keep_classes_relabels_in_the_order_given() {
        let d = keep_classes(bundled("iris").unwrap(), &["virginica".into(), "setosa".into()]).unwrap();
        assert_eq!(d.rows(), 100);
        assert_eq!(d.classes, ["virginica", "setosa"]);
        let l = d.labels.as_ref().unwrap();
        // The bundled order is setosa (ids 0–49) first, so its rows come first, now labelled 1.
        assert_eq!((l[0], d.ids[0]), (1, 0));
        assert_eq!((l[99], d.ids[99]), (0, 149));
        assert_eq!(l.iter().filter(|v| **v == 0).count(), 50);
        let e = keep_classes(bundled("iris").unwrap(), &["setosa".into(), "virgnica".into()]).unwrap_err();
        assert!(e.message.contains("no class `virgnica`") && e.message.contains("versicolor"), "{e}");
    }

    #[test]
    fn empty_path_needs_optional() {
        let raw = |opt: bool| {
            let mut m = serde_json::Map::new();
            m.insert("path".into(), "".into());
            m.insert("optional".into(), opt.into());
            m
        };
        let stage: &dyn crate::Stage = &Load;
        let e = stage.canonicalize(&raw(false)).unwrap_err();
        assert!(e.to_string().contains("optional"), "{e}");
        let ok = stage.canonicalize(&raw(true)).unwrap();
        assert!(stage.external_files(&ok).is_empty());
    }

    /// `features` picks columns of a bundled dataset too: the breast cancer data's first row
    /// has mean radius 17.99 and mean perimeter 122.8 (UCI wdbc.data, sample 842302).
    #[test]
    fn features_select_columns_of_a_bundled_dataset() {
        let d = bundled("breast_cancer").unwrap();
        let cols = select(&["mean perimeter".into(), "mean radius".into()], &d.features, "features").unwrap();
        let s = d.select_features(&cols);
        assert_eq!(s.features, ["mean perimeter", "mean radius"]);
        assert_eq!((s.rows(), s.p()), (569, 2));
        assert!((s.x[0] - 122.8).abs() < 1e-4 && (s.x[1] - 17.99).abs() < 1e-4, "{:?}", &s.x[..2]);
        assert_eq!(s.labels, d.labels);
    }

    #[test]
    fn bundled_shapes() {
        let shapes = [
            ("iris", 150, 4),
            ("digits", 1797, 64),
            ("breast_cancer", 569, 30),
            ("boston", 506, 13),
            ("diabetes", 442, 10),
            ("wine_quality_red", 1599, 11),
        ];
        for (name, n, p) in shapes {
            let d = bundled(name).unwrap();
            assert_eq!((d.rows(), d.p()), (n, p), "{name}");
        }
        let iris = bundled("iris").unwrap();
        let mut counts = [0; 3];
        for l in iris.labels.unwrap() {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [50, 50, 50]);
    }

    #[test]
    fn csv_roles_by_name_and_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::fs::write(&path, "a,b,c,kind\n1,2,3,x\n4,5,6,y\n7,8,9,x\n").unwrap();
        let p = LoadParams {
            targets: vec!["c".into()],
            features: vec!["0..2".into()],
            label: Some("kind".into()),
            ..Default::default()
        };
        let d = from_frame(&read_frame(&path, "csv", &p).unwrap(), &p).unwrap();
        assert_eq!(d.features, vec!["a", "b"]);
        assert_eq!(d.x, vec![1., 2., 4., 5., 7., 8.]);
        assert_eq!(d.y, vec![3., 6., 9.]);
        assert_eq!(d.labels, Some(vec![0, 1, 0]));
        let bad = LoadParams { targets: vec!["cc".into()], ..Default::default() };
        let e = from_frame(&read_frame(&path, "csv", &bad).unwrap(), &bad).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("targets"));
        assert!(e.message.contains("did you mean `c`"), "{e}");
    }

    /// A float64 C-order .npy file's bytes (format version 1.0), as np.save writes them.
    fn npy_f64(rows: usize, cols: usize, values: impl Iterator<Item = f64>) -> Vec<u8> {
        let mut h = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        for v in values {
            bytes.extend(v.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn npy_float64_round_trip() {
        // np.save("a.npy", np.array([[1.5, -2.0, 3.0], [4.0, 5.0, 6.25]]))
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let bytes = npy_f64(2, 3, [1.5f64, -2.0, 3.0, 4.0, 5.0, 6.25].into_iter());
        std::fs::write(&path, bytes).unwrap();
        let (r, c, v) = read_npy(&path, "path").unwrap();
        assert_eq!((r, c), (2, 3));
        assert_eq!(v, vec![1.5, -2.0, 3.0, 4.0, 5.0, 6.25]);
    }

    /// The streaming reader agrees with the in-memory parser across chunk boundaries (an array
    /// of 1.5 M float64 values is 12 MB, more than one 8 MiB chunk), and a file whose data is
    /// shorter or longer than its shape needs is refused before any data is read.
    #[test]
    fn streaming_npy_reader_agrees_with_the_parser() {
        let dir = tempfile::tempdir().unwrap();
        let (rows, cols) = (500_000usize, 3usize);
        let bytes = npy_f64(rows, cols, (0..rows * cols).map(|i| (i as f64) * 0.25 - 7.0));
        let path = dir.path().join("big.npy");
        std::fs::write(&path, &bytes).unwrap();
        let streamed = read_npy(&path, "path").unwrap();
        assert_eq!(streamed, parse_npy(&bytes).unwrap());
        assert_eq!(streamed.2[1_234_567], 1_234_567.0 * 0.25 - 7.0);
        for cut in [bytes.len() - 8, bytes.len() + 8] {
            let mut b = bytes.clone();
            b.resize(cut, 0);
            std::fs::write(&path, &b).unwrap();
            let e = read_npy(&path, "path").unwrap_err();
            assert!(e.to_string().contains("data bytes for shape (500000, 3)"), "{e}");
        }
    }

    /// The hardening issue's cases: a header with trailing junk after the dict was accepted;
    /// a truncated version-2 header or a header length past the end panicked.
    #[test]
    fn npy_headers_are_strict_and_never_panic() {
        let npy = |header: &str, data: &[u8]| {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend((header.len() as u16).to_le_bytes());
            b.extend(header.as_bytes());
            b.extend(data);
            b
        };
        let one = 1.0f32.to_le_bytes();
        assert!(parse_npy(&npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }\n", &one)).is_ok());
        let junk = parse_npy(&npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), } junk\n", &one));
        assert_eq!(junk.unwrap_err(), "header is not one dict literal ended by a newline");
        assert_eq!(parse_npy(b"\x93NUMPY\x02\x00\xff\xff").unwrap_err(), "truncated header");
        assert_eq!(parse_npy(b"\x93NUMPY\x01\x00\xff\xff{}").unwrap_err(), "truncated header");
        let huge = "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 2), }\n";
        assert!(parse_npy(&npy(huge, &one)).unwrap_err().contains("is too large"));
    }
}
