//! The dataset artifact: the one format tabular data takes between stages.
//!
//! A dataset is a safetensors file holding up to four tensors, one per column role:
//! `x` (features, rows × p, f32), `y` (targets, rows × q, f32), `label` (class index per row,
//! i64) and `id` (the row's index in the data it was first loaded or generated as, i64, so every
//! row keeps its provenance through dedupe, split and subsample). Column names and class names
//! are JSON lists in the one safetensors metadata entry `repro` (`features`, `targets`,
//! `classes`, and `format = "repro.dataset.v1"`).
//!
//! Why not Arrow IPC or Parquet: training needs the features as one contiguous row-major f32
//! matrix. Safetensors stores exactly that, so reading is one memory-mapped copy (no column →
//! row transposition of 200 M values) and writing is one sequential write; the header is JSON
//! with a fixed layout, so equal data gives equal bytes. Polars remains the reader of the
//! user-facing formats (CSV, Parquet, IPC) in the `load` stage. See `benches/dataset.rs`.

use repro_core::{StageError, StageResult, WithPath};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

pub const FORMAT: &str = "repro.dataset.v1";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub features: Vec<String>,
    /// rows × features, row-major.
    pub x: Vec<f32>,
    pub targets: Vec<String>,
    /// rows × targets, row-major.
    pub y: Vec<f32>,
    pub classes: Vec<String>,
    pub labels: Option<Vec<i64>>,
    pub ids: Vec<i64>,
}

impl Dataset {
    /// The dataset as a table (`repro show`): `id`, one column per feature and per target, and
    /// `label` (its class name) for classification, written as CSV or Parquet by extension or
    /// `format` ("csv" | "parquet").
    pub fn export(&self, out: &mut dyn std::io::Write, format: &str) -> StageResult<()> {
        use polars::prelude::*;
        let n = self.rows();
        let (p, q) = (self.p(), self.q());
        let mut cols = vec![Column::new("id".into(), self.ids.clone())];
        for (j, name) in self.features.iter().enumerate() {
            cols.push(Column::new(name.as_str().into(), (0..n).map(|r| self.x[r * p + j]).collect::<Vec<f32>>()));
        }
        for (j, name) in self.targets.iter().enumerate() {
            cols.push(Column::new(name.as_str().into(), (0..n).map(|r| self.y[r * q + j]).collect::<Vec<f32>>()));
        }
        if let Some(l) = &self.labels {
            let names: Vec<String> =
                l.iter().map(|c| self.classes.get(*c as usize).cloned().unwrap_or_else(|| c.to_string())).collect();
            cols.push(Column::new("label".into(), names));
        }
        let err = |e: PolarsError| StageError::msg(format!("cannot export the dataset: {e}"));
        let mut df = DataFrame::new_infer_height(cols).map_err(err)?;
        match format {
            "parquet" => ParquetWriter::new(out).finish(&mut df).map(|_| ()).map_err(err),
            _ => CsvWriter::new(out).finish(&mut df).map_err(err),
        }
    }

    pub fn rows(&self) -> usize {
        self.ids.len()
    }
    /// No rows and no columns: what an `optional` load writes when its file was not given.
    /// Stages pass it on (split, standardize, train) or report null metrics (evaluate, gd).
    pub fn is_absent(&self) -> bool {
        self.rows() == 0 && self.features.is_empty()
    }
    pub fn p(&self) -> usize {
        self.features.len()
    }
    pub fn q(&self) -> usize {
        self.targets.len()
    }
    pub fn x_row(&self, i: usize) -> &[f32] {
        let p = self.p();
        &self.x[i * p..(i + 1) * p]
    }
    pub fn y_row(&self, i: usize) -> &[f32] {
        let q = self.q();
        &self.y[i * q..(i + 1) * q]
    }

    /// Checks shapes and that every value is finite; `what` names the artifact in messages.
    pub fn validate(&self, what: &str) -> StageResult<()> {
        let n = self.rows();
        if self.x.len() != n * self.p() || self.y.len() != n * self.q() {
            return Err(StageError::msg(format!("{what}: tensor shapes do not match the column lists")));
        }
        self.validate_labels(what)?;
        self.validate_values(what, &self.x, 0)?;
        self.validate_values(what, &self.y, self.p())
    }

    /// [`Dataset::validate`] of a dataset read by [`Dataset::read_joined`], on its joined matrix
    /// `m` ([x_row | y_row] per row): the same checks and messages.
    pub fn validate_joined(&self, what: &str, m: &[f32]) -> StageResult<()> {
        self.validate_labels(what)?;
        self.validate_values(what, m, 0)
    }

    fn validate_labels(&self, what: &str) -> StageResult<()> {
        match &self.labels {
            Some(l) if l.len() != self.rows() => {
                Err(StageError::msg(format!("{what}: {} labels for {} rows", l.len(), self.rows())))
            }
            _ => Ok(()),
        }
    }

    /// Every value of `m` finite; `m`'s columns are the joined columns (features, then targets)
    /// from `first` on, and as many as its rows hold.
    fn validate_values(&self, what: &str, m: &[f32], first: usize) -> StageResult<()> {
        let Some(pos) = m.iter().position(|v| !v.is_finite()) else { return Ok(()) };
        let width = m.len() / self.rows().max(1);
        let j = first + pos % width;
        let (kind, name) =
            if j < self.p() { ("feature", &self.features[j]) } else { ("target", &self.targets[j - self.p()]) };
        Err(StageError::msg(format!(
            "{what}: non-finite value {} in row {}, {kind} column `{name}`",
            m[pos],
            pos / width
        )))
    }

    /// The rows at `idx`, in that order.
    pub fn select_rows(&self, idx: &[usize]) -> Dataset {
        let (p, q) = (self.p(), self.q());
        let mut x = Vec::with_capacity(idx.len() * p);
        let mut y = Vec::with_capacity(idx.len() * q);
        for &i in idx {
            x.extend_from_slice(self.x_row(i));
            y.extend_from_slice(self.y_row(i));
        }
        Dataset {
            features: self.features.clone(),
            x,
            targets: self.targets.clone(),
            y,
            classes: self.classes.clone(),
            labels: self.labels.as_ref().map(|l| idx.iter().map(|&i| l[i]).collect()),
            ids: idx.iter().map(|&i| self.ids[i]).collect(),
        }
    }

    /// Keeps only the target columns at `cols`, in that order.
    pub fn select_targets(&self, cols: &[usize]) -> Dataset {
        let y = pick_columns(&self.y, self.q(), cols);
        Dataset { targets: cols.iter().map(|&c| self.targets[c].clone()).collect(), y, ..self.clone() }
    }

    /// Keeps only the feature columns at `cols`, in that order.
    pub fn select_features(&self, cols: &[usize]) -> Dataset {
        let x = pick_columns(&self.x, self.p(), cols);
        Dataset { features: cols.iter().map(|&c| self.features[c].clone()).collect(), x, ..self.clone() }
    }

    pub fn write(&self, path: &Path) -> StageResult<()> {
        let n = self.rows();
        let ids: Vec<u8> = self.ids.iter().flat_map(|v| v.to_le_bytes()).collect();
        let labels: Option<Vec<u8>> = self.labels.as_ref().map(|l| l.iter().flat_map(|v| v.to_le_bytes()).collect());
        let mut tensors: Vec<(&str, TensorView<'_>)> = Vec::new();
        let err = |e: safetensors::SafeTensorError| StageError::msg(format!("dataset write: {e}"));
        tensors.push(("id", TensorView::new(Dtype::I64, vec![n], &ids).map_err(err)?));
        if let Some(l) = &labels {
            tensors.push(("label", TensorView::new(Dtype::I64, vec![n], l).map_err(err)?));
        }
        tensors
            .push(("x", TensorView::new(Dtype::F32, vec![n, self.p()], bytemuck::cast_slice(&self.x)).map_err(err)?));
        tensors
            .push(("y", TensorView::new(Dtype::F32, vec![n, self.q()], bytemuck::cast_slice(&self.y)).map_err(err)?));
        safetensors::serialize_to_file(tensors, Some(self.meta()), path).map_err(err)
    }

    /// The safetensors metadata: one key, because safetensors writes its metadata map in hash
    /// order, so several keys would make the bytes differ from run to run.
    fn meta(&self) -> HashMap<String, String> {
        let header = serde_json::json!({
            "format": FORMAT,
            "features": self.features,
            "targets": self.targets,
            "classes": self.classes,
        });
        [("repro".to_string(), header.to_string())].into()
    }

    /// Writes the rows `idx` as a dataset, byte for byte what `select_rows(idx).write(path)`
    /// writes (tested), without building the selection: the rows stream from `self`, so a split
    /// of the full GEO matrix holds it once, not once more for its largest part (#19). The
    /// header is safetensors' own (its serializer given the tensors' shapes only); the data
    /// follow in safetensors' order: descending dtype alignment, then name.
    pub fn write_rows(&self, idx: &[usize], path: &Path) -> StageResult<()> {
        use std::io::Write;
        #[derive(Clone)]
        struct Shape(Dtype, Vec<usize>);
        impl safetensors::View for Shape {
            fn dtype(&self) -> Dtype {
                self.0
            }
            fn shape(&self) -> &[usize] {
                &self.1
            }
            fn data(&self) -> std::borrow::Cow<'_, [u8]> {
                std::borrow::Cow::Borrowed(&[])
            }
            fn data_len(&self) -> usize {
                self.1.iter().product::<usize>() * self.0.bitsize() / 8
            }
        }
        let n = idx.len();
        let mut tensors = vec![("id", Shape(Dtype::I64, vec![n]))];
        if self.labels.is_some() {
            tensors.push(("label", Shape(Dtype::I64, vec![n])));
        }
        tensors.push(("x", Shape(Dtype::F32, vec![n, self.p()])));
        tensors.push(("y", Shape(Dtype::F32, vec![n, self.q()])));
        let err = |e: safetensors::SafeTensorError| StageError::msg(format!("dataset write: {e}"));
        // Length and header only: every data() is empty.
        let head = safetensors::serialize(tensors.clone(), Some(self.meta())).map_err(err)?;
        tensors.sort_by(|(a, l), (b, r)| r.0.cmp(&l.0).then(a.cmp(b)));
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).with_path("create", path)?);
        let mut put = |b: &[u8]| f.write_all(b).with_path("write", path);
        put(&head)?;
        for (name, _) in &tensors {
            for &i in idx {
                match *name {
                    "id" => put(&self.ids[i].to_le_bytes())?,
                    "label" => put(&self.labels.as_ref().expect("labelled")[i].to_le_bytes())?,
                    "x" => put(bytemuck::cast_slice(self.x_row(i)))?,
                    _ => put(bytemuck::cast_slice(self.y_row(i)))?,
                }
            }
        }
        f.flush().with_path("write", path)
    }

    pub fn read(path: &Path) -> StageResult<Dataset> {
        Self::read_into(path, false).map(|(d, _)| d)
    }

    /// Reads the dataset as one row-major matrix whose row r is [x_row(r) | y_row(r)] (what
    /// `dedupe` clusters on), without holding x and y beside it: the returned dataset has the
    /// names, labels and ids, and empty `x` and `y`.
    pub fn read_joined(path: &Path) -> StageResult<(Dataset, Vec<f32>)> {
        Self::read_into(path, true)
    }

    fn read_into(path: &Path, joined: bool) -> StageResult<(Dataset, Vec<f32>)> {
        let bad = |m: String| StageError::msg(format!("{}: not a dataset artifact: {m}", path.display()));
        let file = std::fs::File::open(path).with_path("open", path)?;
        // SAFETY: store objects are read-only and never modified in place.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let st = safetensors::SafeTensors::deserialize(&map).map_err(|e| bad(e.to_string()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| bad(e.to_string()))?;
        let md = meta.metadata().clone().unwrap_or_default();
        let header: serde_json::Value = serde_json::from_str(md.get("repro").map(String::as_str).unwrap_or("null"))
            .map_err(|e| bad(e.to_string()))?;
        if header["format"].as_str() != Some(FORMAT) {
            return Err(bad("missing format tag".into()));
        }
        let names = |k: &str| -> StageResult<Vec<String>> {
            serde_json::from_value(header[k].clone()).map_err(|e| bad(e.to_string()))
        };
        let i64s = |k: &str| -> StageResult<Vec<i64>> {
            let t = st.tensor(k).map_err(|e| bad(e.to_string()))?;
            Ok(bytemuck::pod_collect_to_vec(t.data()))
        };
        let labels = if st.names().contains(&"label") { Some(i64s("label")?) } else { None };
        let (features, targets, ids) = (names("features")?, names("targets")?, i64s("id")?);
        let (n, p, q) = (ids.len(), features.len(), targets.len());
        // The large tensors are copied out about 64 MiB at a time, each piece of the mapping
        // released once copied: a mapped file's pages count towards the process's memory until
        // unmapped, so copying a 5.4 GB full-GEO matrix at once held it twice (#19). Row r of
        // tensor `k` (width w) lands at dest[r·stride + offset ..][..w].
        let copy = |k: &str, w: usize, dest: &mut [f32], stride: usize, offset: usize| -> StageResult<()> {
            let t = st.tensor(k).map_err(|e| bad(e.to_string()))?;
            let data = t.data();
            if data.len() != n * w * 4 || dest.len() < n * stride {
                return Err(bad("tensor shapes do not match the column lists".into()));
            }
            if w == 0 {
                return Ok(());
            }
            let start = data.as_ptr() as usize - map.as_ptr() as usize;
            let rows_per_piece = ((64usize << 20) / (w * 4)).max(1);
            for r0 in (0..n).step_by(rows_per_piece) {
                let r1 = (r0 + rows_per_piece).min(n);
                let piece: &[f32] = bytemuck::cast_slice(&data[r0 * w * 4..r1 * w * 4]);
                if stride == w {
                    dest[r0 * w..r1 * w].copy_from_slice(piece);
                } else {
                    for (r, src) in (r0..r1).zip(piece.chunks(w)) {
                        dest[r * stride + offset..r * stride + offset + w].copy_from_slice(src);
                    }
                }
                #[cfg(unix)]
                // SAFETY: a read-only mapping of a store object, never modified in place: pages
                // dropped here are read back from the file, unchanged, if touched again.
                unsafe {
                    let _ = map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start + r0 * w * 4,
                        (r1 - r0) * w * 4,
                    );
                }
            }
            Ok(())
        };
        let (mut x, mut y, mut m) = (Vec::new(), Vec::new(), Vec::new());
        if joined {
            m = vec![0f32; n * (p + q)];
            copy("x", p, &mut m, p + q, 0)?;
            copy("y", q, &mut m, p + q, p)?;
        } else {
            x = vec![0f32; n * p];
            copy("x", p, &mut x, p, 0)?;
            y = vec![0f32; n * q];
            copy("y", q, &mut y, q, 0)?;
        }
        let classes = names("classes")?;
        Ok((Dataset { features, x, targets, y, classes, labels, ids }, m))
    }

    /// The dataset of the rows `keep` (ascending) of a joined matrix from [`Dataset::read_joined`]
    /// (`self` holds its names, labels and ids): the kept rows are compacted inside `m`'s own
    /// buffer, which becomes `y`, and only `x` is allocated anew.
    pub fn from_joined(&self, mut m: Vec<f32>, keep: &[usize]) -> Dataset {
        let (p, q) = (self.p(), self.q());
        let c = p + q;
        debug_assert!(keep.windows(2).all(|w| w[0] < w[1]));
        let mut x = Vec::with_capacity(keep.len() * p);
        for &r in keep {
            x.extend_from_slice(&m[r * c..r * c + p]);
        }
        // Row i's targets move to i·q ≤ keep[i]·c + p, in increasing i: never over a row not
        // yet moved.
        for (i, &r) in keep.iter().enumerate() {
            m.copy_within(r * c + p..(r + 1) * c, i * q);
        }
        m.truncate(keep.len() * q);
        Dataset {
            features: self.features.clone(),
            x,
            targets: self.targets.clone(),
            y: m,
            classes: self.classes.clone(),
            labels: self.labels.as_ref().map(|l| keep.iter().map(|&i| l[i]).collect()),
            ids: keep.iter().map(|&i| self.ids[i]).collect(),
        }
    }
}

/// The columns `cols` (in that order) of a row-major matrix `width` columns wide.
fn pick_columns(m: &[f32], width: usize, cols: &[usize]) -> Vec<f32> {
    let rows = m.len().checked_div(width).unwrap_or(0);
    let mut out = Vec::with_capacity(rows * cols.len());
    for row in m.chunks(width.max(1)).take(rows) {
        out.extend(cols.iter().map(|&c| row[c]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Dataset {
        Dataset {
            features: vec!["a".into(), "b".into()],
            x: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            targets: vec!["t".into()],
            y: vec![0.5, -0.5, 1.5],
            classes: vec![],
            labels: Some(vec![0, 1, 0]),
            ids: vec![10, 11, 12],
        }
    }

    #[test]
    fn round_trip_is_exact_and_bytes_are_stable() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        small().write(&a).unwrap();
        small().write(&b).unwrap();
        assert_eq!(Dataset::read(&a).unwrap(), small());
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }

    /// The joined read holds [x_row | y_row] per row, and compacting kept rows inside it gives
    /// exactly `select_rows` of the ordinary read.
    #[test]
    fn joined_read_and_compaction_match_the_plain_read() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        small().write(&a).unwrap();
        let (meta, m) = Dataset::read_joined(&a).unwrap();
        assert_eq!(m, vec![1.0, 2.0, 0.5, 3.0, 4.0, -0.5, 5.0, 6.0, 1.5]);
        assert!(meta.x.is_empty() && meta.y.is_empty() && meta.ids == [10, 11, 12]);
        for keep in [vec![0, 2], vec![1], vec![0, 1, 2], vec![]] {
            assert_eq!(meta.from_joined(m.clone(), &keep), small().select_rows(&keep), "{keep:?}");
        }
    }

    /// Streaming a selection writes the same bytes as writing the selected dataset, with and
    /// without labels, for any subset (empty, reordered, repeated) and for zero target columns.
    #[test]
    fn write_rows_is_byte_identical_to_select_then_write() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        let unlabelled = Dataset { labels: None, ..small() };
        let no_targets = small().select_targets(&[]);
        for ds in [small(), unlabelled, no_targets] {
            for idx in [vec![0, 1, 2], vec![2, 0], vec![], vec![1, 1]] {
                ds.select_rows(&idx).write(&a).unwrap();
                ds.write_rows(&idx, &b).unwrap();
                assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{idx:?}");
            }
        }
    }

    #[test]
    fn select_rows_and_targets() {
        let s = small().select_rows(&[2, 0]);
        assert_eq!(s.x, vec![5.0, 6.0, 1.0, 2.0]);
        assert_eq!(s.ids, vec![12, 10]);
        assert_eq!(s.labels, Some(vec![0, 0]));
        let t = small().select_targets(&[]);
        assert_eq!(t.q(), 0);
        assert_eq!(t.y.len(), 0);
    }

    #[test]
    fn validate_names_the_bad_cell() {
        let mut d = small();
        d.x[3] = f32::NAN;
        let e = d.validate("data").unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("`b`"), "{e}");
        let mut d = small();
        d.y[2] = f32::INFINITY;
        assert_eq!(
            d.validate("data").unwrap_err().to_string(),
            "data: non-finite value inf in row 2, target column `t`"
        );
        // The joined read reports the same cell.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d");
        d.write(&f).unwrap();
        let (meta, m) = Dataset::read_joined(&f).unwrap();
        assert_eq!(
            meta.validate_joined("data", &m).unwrap_err().to_string(),
            d.validate("data").unwrap_err().to_string()
        );
        d.x[3] = f32::NAN;
        d.write(&f).unwrap();
        let (meta, m) = Dataset::read_joined(&f).unwrap();
        assert_eq!(
            meta.validate_joined("data", &m).unwrap_err().to_string(),
            d.validate("data").unwrap_err().to_string()
        );
    }
}
