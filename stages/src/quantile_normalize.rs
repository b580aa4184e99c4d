//! `quantile_normalize`: per profile (row), replace every value by the mean sorted profile at
//! its rank, so that all profiles share one distribution (Bolstad et al. 2003; D-GEX
//! `bgedv2_reqnorm.py`).
//!
//! Reference accumulation sums fixed 256-row blocks in parallel and adds the block sums in
//! order, so the f64 reference (and the output bytes) do not depend on the thread count.

use crate::dataset::Dataset;

use rayon::prelude::*;
use repro_core::{stage_params, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ties {
    /// Tied values get the mean of the reference over their rank span (preprocessCore).
    Mean,
    /// `rankdata - 1` cast to int, as the D-GEX code does: the reference at the floor of the
    /// average 0-based rank.
    Floor,
}

stage_params! {
    /// Params of `quantile_normalize`.
    pub struct QuantileNormalizeParams {
        /// How tied values within a profile are mapped: "mean" (preprocessCore) or "floor" (D-GEX code).
        ties: Ties = Ties::Mean,
    }
}

pub struct QuantileNormalize;

const BLOCK: usize = 256;

/// Quantile-normalizes the rows of a row-major `rows × cols` matrix in place.
pub fn quantile_normalize_rows(m: &mut [f32], cols: usize, ties: Ties) {
    quantile_normalize_rows_until(m, cols, ties, &AtomicBool::new(false)).expect("never cancelled")
}

/// [`quantile_normalize_rows`], stopping with "cancelled" (the matrix half-done) within one
/// block of rows per thread of `cancel` being set.
pub fn quantile_normalize_rows_until(m: &mut [f32], cols: usize, ties: Ties, cancel: &AtomicBool) -> StageResult<()> {
    quantile_normalize_joined_until(m, cols, &mut [], 0, ties, cancel)
}

/// The rows of a row-major matrix with `cols` columns (`rows` empty slices when `cols` is 0).
fn rows_of(m: &[f32], cols: usize, rows: usize) -> Vec<&[f32]> {
    if cols == 0 {
        vec![&[][..]; rows]
    } else {
        m.chunks(cols).collect()
    }
}

fn rows_of_mut(m: &mut [f32], cols: usize, rows: usize) -> Vec<&mut [f32]> {
    if cols == 0 {
        (0..rows).map(|_| &mut [][..]).collect()
    } else {
        m.chunks_mut(cols).collect()
    }
}

/// Quantile-normalizes the joined profiles `[a_row | b_row]` of two row-major matrices with the
/// same rows (`a`: rows × `ca`, `b`: rows × `cb`) in place, without joining them in memory: a
/// full-GEO dataset is 5.4 GB, and a joined copy doubled the stage's peak (#19). Each profile is
/// joined into a buffer of one row, so the result is bit for bit that of the joined matrix.
pub fn quantile_normalize_joined_until(
    a: &mut [f32],
    ca: usize,
    b: &mut [f32],
    cb: usize,
    ties: Ties,
    cancel: &AtomicBool,
) -> StageResult<()> {
    let stop = || cancel.load(Ordering::Relaxed);
    let cols = ca + cb;
    if cols == 0 || (a.is_empty() && b.is_empty()) {
        return Ok(());
    }
    let rows = a.len().checked_div(ca).unwrap_or_else(|| b.len() / cb);
    let join = |buf: &mut Vec<f32>, x: &[f32], y: &[f32]| {
        buf.clear();
        buf.extend_from_slice(x);
        buf.extend_from_slice(y);
    };
    let block_sums: Vec<Vec<f64>> = {
        let (ra, rb) = (rows_of(a, ca, rows), rows_of(b, cb, rows));
        ra.par_chunks(BLOCK)
            .zip(rb.par_chunks(BLOCK))
            .map(|(ba, bb)| {
                let mut acc = vec![0f64; cols];
                if stop() {
                    return acc;
                }
                let mut buf = Vec::with_capacity(cols);
                for (x, y) in ba.iter().zip(bb) {
                    join(&mut buf, x, y);
                    buf.sort_unstable_by(f32::total_cmp);
                    for (a, v) in acc.iter_mut().zip(&buf) {
                        *a += f64::from(*v);
                    }
                }
                acc
            })
            .collect()
    };
    if stop() {
        return Err(StageError::cancelled());
    }
    let mut reference = vec![0f64; cols];
    for b in &block_sums {
        for (r, v) in reference.iter_mut().zip(b) {
            *r += v;
        }
    }
    for r in &mut reference {
        *r /= rows as f64;
    }
    // Prefix sums of the reference give the mean over any rank span in O(1).
    let mut prefix = vec![0f64; cols + 1];
    for i in 0..cols {
        prefix[i + 1] = prefix[i] + reference[i];
    }
    let (ra, rb) = (rows_of_mut(a, ca, rows), rows_of_mut(b, cb, rows));
    ra.into_par_iter().zip(rb).for_each_init(
        || (Vec::with_capacity(cols), Vec::with_capacity(cols)),
        |(order, row): &mut (Vec<u32>, Vec<f32>), (x, y)| {
            if stop() {
                return;
            }
            join(row, x, y);
            order.clear();
            order.extend(0..cols as u32);
            order.sort_unstable_by(|&a, &b| row[a as usize].total_cmp(&row[b as usize]).then(a.cmp(&b)));
            let mut i = 0;
            while i < cols {
                let v = row[order[i] as usize];
                let mut j = i;
                while j + 1 < cols && row[order[j + 1] as usize] == v {
                    j += 1;
                }
                let value = match ties {
                    Ties::Mean => (prefix[j + 1] - prefix[i]) / (j - i + 1) as f64,
                    Ties::Floor => reference[(i + j) / 2],
                };
                for &o in &order[i..=j] {
                    row[o as usize] = value as f32;
                }
                i = j + 1;
            }
            x.copy_from_slice(&row[..ca]);
            y.copy_from_slice(&row[ca..]);
        },
    );
    if stop() {
        return Err(StageError::cancelled());
    }
    Ok(())
}

impl TypedStage for QuantileNormalize {
    type Params = QuantileNormalizeParams;
    const KIND: &'static str = "quantile_normalize";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Quantile-normalize every profile (row) over all its columns (features and targets together, as D-GEX did over its 10,463 genes): each value becomes the mean sorted profile at its rank.";
    const USES_SEED: bool = false;
    const INPUTS: &'static [InputSlot] = &[InputSlot::one("input", "dataset to normalize")];

    fn threads(_p: &QuantileNormalizeParams) -> usize {
        usize::MAX
    }

    fn run(&self, p: &QuantileNormalizeParams, ctx: &Ctx) -> StageResult<Metrics> {
        ctx.report(0, 0, "reading");
        let mut d = Dataset::read(&ctx.input("input")?.path)?;
        ctx.report(0, 0, format!("quantile-normalizing {} rows", d.rows()));
        d.validate("input")?;
        let (pp, q) = (d.p(), d.q());
        // The joined profile [x | y], so that features and targets share one reference.
        let cols = pp + q;
        quantile_normalize_joined_until(&mut d.x, pp, &mut d.y, q, p.ties, ctx.cancel)?;
        d.write(&ctx.output("out"))?;
        let mut m = Metrics::new();
        m.insert("rows".into(), d.rows().into());
        m.insert("columns".into(), cols.into());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The classic example (Wikipedia "Quantile normalization"): arrays are columns there,
    // profiles are rows here. Independent reference, plain Python:
    //   arrays = [[5,2,3,4],[4,1,4,2],[3,4,6,8]]
    //   ref = [sum(s)/3 for s in zip(*[sorted(a) for a in arrays])]   # [2, 3, 14/3, 17/3]
    //   # array 2 has the value 4 twice, at ranks 2 and 3 -> (14/3 + 17/3) / 2 = 31/6
    //   # mean ties:  [[17/3, 2, 3, 14/3], [31/6, 2, 31/6, 3], [2, 3, 14/3, 17/3]]
    //   # floor ties (scipy rankdata average rank 3.5 -> int(3.5 - 1) = 2): 4 -> ref[2] = 14/3
    fn example() -> Vec<f32> {
        vec![5., 2., 3., 4., 4., 1., 4., 2., 3., 4., 6., 8.]
    }

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((f64::from(*x) - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    /// A cancelled normalization stops with "cancelled".
    #[test]
    fn cancelled_normalization_stops() {
        let mut m = example();
        let e = quantile_normalize_rows_until(&mut m, 4, Ties::Mean, &AtomicBool::new(true)).unwrap_err();
        assert_eq!(e.message, "cancelled");
    }

    #[test]
    fn classic_example_mean_ties() {
        let mut m = example();
        quantile_normalize_rows(&mut m, 4, Ties::Mean);
        let (a, b, c, d) = (2.0, 3.0, 14.0 / 3.0, 17.0 / 3.0);
        let t = 31.0 / 6.0;
        close(&m, &[d, a, b, c, t, a, t, b, a, b, c, d]);
    }

    #[test]
    fn classic_example_floor_ties() {
        let mut m = example();
        quantile_normalize_rows(&mut m, 4, Ties::Floor);
        let c = 14.0 / 3.0;
        close(&m[4..8], &[c, 2.0, c, 3.0]);
    }

    #[test]
    fn every_row_ends_with_the_same_sorted_values_and_threads_do_not_matter() {
        let mut r = crate::rng::rng(5, "qn");
        let m: Vec<f32> = (0..700 * 37).map(|_| crate::rng::normal(&mut r) as f32).collect();
        let mut a = m.clone();
        quantile_normalize_rows(&mut a, 37, Ties::Mean);
        let mut first: Vec<f32> = a[..37].to_vec();
        first.sort_by(f32::total_cmp);
        for row in a.chunks(37) {
            let mut s = row.to_vec();
            s.sort_by(f32::total_cmp);
            assert_eq!(s, first);
        }
        let mut b = m.clone();
        rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| {
            quantile_normalize_rows(&mut b, 37, Ties::Mean);
        });
        assert_eq!(a, b);
    }

    /// Normalizing x and y in place as one joined profile gives the bits of normalizing the
    /// joined matrix (700 rows: three 256-row blocks; rounded values, so ties occur; every split
    /// of the 9 columns, empty x or y included; both tie rules).
    #[test]
    fn split_profiles_normalize_exactly_as_the_joined_matrix() {
        let (rows, cols) = (700, 9);
        let mut r = crate::rng::rng(11, "qn-split");
        let m: Vec<f32> = (0..rows * cols).map(|_| (crate::rng::normal(&mut r) * 2.0).round() as f32).collect();
        for ties in [Ties::Mean, Ties::Floor] {
            let mut joined = m.clone();
            quantile_normalize_rows(&mut joined, cols, ties);
            for ca in 0..=cols {
                let cb = cols - ca;
                let mut x: Vec<f32> = m.chunks(cols).flat_map(|row| row[..ca].to_vec()).collect();
                let mut y: Vec<f32> = m.chunks(cols).flat_map(|row| row[ca..].to_vec()).collect();
                quantile_normalize_joined_until(&mut x, ca, &mut y, cb, ties, &AtomicBool::new(false)).unwrap();
                for (i, row) in joined.chunks(cols).enumerate() {
                    assert_eq!(&x[i * ca..(i + 1) * ca], &row[..ca], "{ties:?}, {ca} + {cb}, row {i}");
                    assert_eq!(&y[i * cb..(i + 1) * cb], &row[ca..], "{ties:?}, {ca} + {cb}, row {i}");
                }
            }
        }
    }
}
