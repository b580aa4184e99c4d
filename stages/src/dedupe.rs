//! `dedupe`: drop exact duplicate profiles (by a hash of the row's bytes) and, with
//! `threshold > 0`, near-duplicates closer than `threshold` in Euclidean distance, as the
//! D-GEX preprocessing did (`kmeans.py`, `nodup_idx.py`): k-means into `clusters` groups, then
//! within a group the later of any pair closer than the threshold is dropped; the lowest index
//! is kept. Candidate pairs come from a Gram matrix of cluster-centred rows (gemm) and are
//! confirmed with an exact f64 distance, so f32 cancellation cannot drop a distinct row.

use crate::dataset::Dataset;
use crate::nn::linalg::{gemm, Op};
use crate::rng::{permutation, rng};
use rayon::prelude::*;
use repro_core::ParamError;
use repro_core::{stage_params, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

stage_params! {
    /// Params of `dedupe`.
    pub struct DedupeParams {
        /// Euclidean distance under which two profiles are duplicates; 0 keeps only exact duplicates out. D-GEX: 1.0.
        threshold: f64 = 0.0,
        /// k-means clusters searched for near-duplicates (D-GEX: 100).
        clusters: usize = 100,
        /// Lloyd iterations of the k-means.
        iterations: usize = 10,
    }
}

pub struct Dedupe;

/// [`keep_rows_until`] without cancellation (tests).
#[cfg(test)]
pub fn keep_rows(m: &[f32], cols: usize, p: &DedupeParams, seed: u64, threads: usize) -> Vec<usize> {
    keep_rows_until(m, cols, p, seed, threads, &AtomicBool::new(false)).expect("never cancelled")
}

/// Indices of the rows to keep, ascending; stops with "cancelled" within one k-means
/// iteration or one bucket per thread of `cancel` being set.
///
/// One body of about 90 lines, on purpose: the three screens (exact hashes, k-means buckets,
/// the within-bucket Gram screen with exact distances) share their buffers and the order of
/// the seeded k-means draws, which splitting would obscure.
pub fn keep_rows_until(
    m: &[f32],
    cols: usize,
    p: &DedupeParams,
    seed: u64,
    threads: usize,
    cancel: &AtomicBool,
) -> StageResult<Vec<usize>> {
    let stop = || cancel.load(Ordering::Relaxed);
    let n = m.len() / cols.max(1);
    let mut seen = HashSet::new();
    let exact: Vec<usize> = (0..n)
        .filter(|&r| {
            let bytes: &[u8] = bytemuck::cast_slice(&m[r * cols..(r + 1) * cols]);
            seen.insert(*blake3::hash(bytes).as_bytes())
        })
        .collect();
    if p.threshold <= 0.0 || exact.len() < 2 {
        return Ok(exact);
    }
    let k = p.clusters.clamp(1, exact.len());
    let row = |i: usize| &m[i * cols..(i + 1) * cols];
    // k-means: centres start at k distinct rows chosen by the seed.
    let perm = permutation(&mut rng(seed, "kmeans-init"), exact.len());
    let mut centres: Vec<f32> = perm[..k].iter().flat_map(|&i| row(exact[i]).to_vec()).collect();
    let mut assign = vec![0usize; exact.len()];
    // Without exact duplicates (the usual case) the rows are used in place: no second copy
    // of a multi-GB matrix.
    let data: std::borrow::Cow<[f32]> = if exact.len() == n {
        std::borrow::Cow::Borrowed(m)
    } else {
        std::borrow::Cow::Owned(exact.iter().flat_map(|&i| row(i).to_vec()).collect())
    };
    let ne = exact.len();
    let mut dots = vec![0f32; ne * k];
    for _ in 0..p.iterations.max(1) {
        if stop() {
            return Err(StageError::cancelled());
        }
        gemm(&mut dots, &data, Op::N, &centres, Op::T, ne, k, cols, false, threads);
        let cn: Vec<f32> = centres.chunks(cols).map(|c| c.iter().map(|v| v * v).sum()).collect();
        assign.par_iter_mut().enumerate().for_each(|(i, a)| {
            let d = &dots[i * k..(i + 1) * k];
            *a = (0..k).min_by(|&x, &y| (cn[x] - 2.0 * d[x]).total_cmp(&(cn[y] - 2.0 * d[y]))).unwrap();
        });
        let mut sums = vec![0f64; k * cols];
        let mut counts = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            counts[a] += 1;
            for (s, v) in sums[a * cols..(a + 1) * cols].iter_mut().zip(&data[i * cols..(i + 1) * cols]) {
                *s += f64::from(*v);
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..cols {
                    centres[c * cols + j] = (sums[c * cols + j] / counts[c] as f64) as f32;
                }
            }
        }
    }
    let t2 = p.threshold * p.threshold;
    let dropped: Vec<Vec<usize>> = (0..k)
        .into_par_iter()
        .map(|c| {
            let members: Vec<usize> = (0..ne).filter(|&i| assign[i] == c).collect();
            let s = members.len();
            if s < 2 || stop() {
                return Vec::new();
            }
            let centre = &centres[c * cols..(c + 1) * cols];
            let centred: Vec<f32> = members
                .iter()
                .flat_map(|&i| data[i * cols..(i + 1) * cols].iter().zip(centre).map(|(a, b)| a - b))
                .collect();
            let mut gram = vec![0f32; s * s];
            gemm(&mut gram, &centred, Op::N, &centred, Op::T, s, s, cols, false, 1);
            let mut drop = vec![false; s];
            for b in 0..s {
                for a in 0..b {
                    if drop[a] {
                        continue;
                    }
                    let approx = f64::from(gram[a * s + a] + gram[b * s + b] - 2.0 * gram[a * s + b]);
                    // Generous screen; the exact distance decides.
                    if approx < 4.0 * t2 + 1e-2 * f64::from(gram[a * s + a] + gram[b * s + b]).sqrt() {
                        let ra = &data[members[a] * cols..(members[a] + 1) * cols];
                        let rb = &data[members[b] * cols..(members[b] + 1) * cols];
                        let exact: f64 = ra.iter().zip(rb).map(|(x, y)| f64::from(x - y).powi(2)).sum();
                        if exact < t2 {
                            drop[b] = true;
                            break;
                        }
                    }
                }
            }
            (0..s).filter(|&i| drop[i]).map(|i| members[i]).collect()
        })
        .collect();
    if stop() {
        return Err(StageError::cancelled());
    }
    let dropped: HashSet<usize> = dropped.into_iter().flatten().collect();
    Ok((0..ne).filter(|i| !dropped.contains(i)).map(|i| exact[i]).collect())
}

impl TypedStage for Dedupe {
    type Params = DedupeParams;
    const KIND: &'static str = "dedupe";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Remove duplicate profiles: exact duplicates always; near-duplicates closer than `threshold` (Euclidean, over all columns) with D-GEX's k-means + within-cluster scan, keeping the lowest index. Reports how many were removed.";
    const INPUTS: &'static [InputSlot] = &[InputSlot::one("input", "dataset to deduplicate")];

    fn validate(p: &DedupeParams) -> Result<(), ParamError> {
        if !p.threshold.is_finite() || p.threshold < 0.0 {
            return Err(ParamError::new("threshold", "must be a finite distance ≥ 0"));
        }
        if p.clusters == 0 {
            return Err(ParamError::new("clusters", "must be at least 1"));
        }
        Ok(())
    }

    fn threads(_p: &DedupeParams) -> usize {
        usize::MAX
    }

    fn run(&self, p: &DedupeParams, ctx: &Ctx) -> StageResult<Metrics> {
        ctx.report(0, 0, "reading");
        // One joined matrix [x | y] per row, read straight from the file and compacted in
        // place: the full GEO matrix (5.4 GB) is held once, not as x and y plus a joined copy
        // plus the output (#19).
        let (d, m) = Dataset::read_joined(&ctx.input("input")?.path)?;
        ctx.report(0, 0, format!("clustering {} rows", d.rows()));
        let cols = d.p() + d.q();
        d.validate_joined("input", &m)?;
        let keep = keep_rows_until(&m, cols, p, ctx.base_seed, ctx.threads, ctx.cancel)?;
        let out = d.from_joined(m, &keep);
        out.write(&ctx.output("out"))?;
        let mut metrics = Metrics::new();
        metrics.insert("rows_in".into(), d.rows().into());
        metrics.insert("rows_out".into(), out.rows().into());
        metrics.insert("removed".into(), (d.rows() - out.rows()).into());
        tracing::info!(stage = ctx.instance, removed = d.rows() - out.rows(), "dedupe");
        Ok(metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Vec<f32> {
        // rows: 0 and 2 identical, 3 within 0.5 of 1, 4 far from everything.
        vec![0., 0., 0., 10., 10., 10., 0., 0., 0., 10.3, 10., 10.4, -50., 3., 7.]
    }

    /// A cancelled dedupe stops with "cancelled" instead of returning rows.
    #[test]
    fn cancelled_dedupe_stops() {
        let p = DedupeParams { threshold: 1.0, ..DedupeParams::default() };
        let e = keep_rows_until(&data(), 3, &p, 1, 1, &AtomicBool::new(true)).unwrap_err();
        assert_eq!(e.message, "cancelled");
    }

    #[test]
    fn exact_duplicates_only_by_default() {
        let keep = keep_rows(&data(), 3, &DedupeParams::default(), 1, 1);
        assert_eq!(keep, vec![0, 1, 3, 4]);
    }

    #[test]
    fn near_duplicates_under_threshold_keep_the_lowest_index() {
        let p = DedupeParams { threshold: 1.0, clusters: 2, ..Default::default() };
        assert_eq!(keep_rows(&data(), 3, &p, 1, 1), vec![0, 1, 4]);
        // distance(1, 3) = sqrt(0.09 + 0.16) = 0.5: kept apart under a 0.4 threshold.
        let p = DedupeParams { threshold: 0.4, clusters: 2, ..Default::default() };
        assert_eq!(keep_rows(&data(), 3, &p, 1, 1), vec![0, 1, 3, 4]);
    }

    #[test]
    fn dedupe_is_idempotent() {
        let p = DedupeParams { threshold: 1.0, clusters: 3, ..Default::default() };
        let m = data();
        let keep = keep_rows(&m, 3, &p, 9, 1);
        let once: Vec<f32> = keep.iter().flat_map(|&r| m[r * 3..r * 3 + 3].to_vec()).collect();
        let again = keep_rows(&once, 3, &p, 9, 1);
        assert_eq!(again, (0..keep.len()).collect::<Vec<_>>());
    }
}
