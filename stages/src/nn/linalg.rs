//! Dense f32 kernels over row-major slices, on the `gemm` crate (the matmul candle itself uses,
//! built here with its AVX-512 `x86-v4` kernels). Every call names its shapes; the output
//! buffer is the caller's, so training loops reuse it instead of allocating per step.

use gemm::Parallelism;
use rayon::prelude::*;

fn par(threads: usize) -> Parallelism {
    if threads <= 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    }
}

/// Which operand is transposed: `C = op(A)·op(B)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    N,
    T,
}

/// `C (m×n) = beta·C + op(A)·op(B)` where `op(A)` is m×k and `op(B)` is k×n, row-major;
/// `A` is stored m×k (`Op::N`) or k×m (`Op::T`), likewise `B`. `beta` is 0 or 1.
#[expect(clippy::too_many_arguments, reason = "mirrors the BLAS gemm signature: shapes, transposes and accumulation")]
pub fn gemm(
    c: &mut [f32],
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    threads: usize,
) {
    product(c, a, ta, b, tb, m, n, k, accumulate, threads, column_split(m, n, k, threads));
}

/// [`gemm`] with the `gemm` crate's own threading instead of the column split: for the
/// `shapes` bench, which times the two side by side.
#[doc(hidden)]
#[expect(clippy::too_many_arguments, reason = "gemm's signature")]
pub fn gemm_own_threading(
    c: &mut [f32],
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    threads: usize,
) {
    product(c, a, ta, b, tb, m, n, k, accumulate, threads, None);
}

/// `gemm`'s body: with `split = Some(width)`, one single-threaded product per block of that
/// many columns of C; without, one call on `threads` threads of gemm's own.
#[expect(clippy::too_many_arguments, reason = "gemm's signature and the split")]
fn product(
    c: &mut [f32],
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    threads: usize,
    split: Option<usize>,
) {
    assert_eq!(c.len(), m * n, "gemm: C is {} values, expected {m}×{n}", c.len());
    assert_eq!(a.len(), m * k, "gemm: A is {} values, expected {m}×{k}", a.len());
    assert_eq!(b.len(), k * n, "gemm: B is {} values, expected {k}×{n}", b.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    // Row-major X stored r×c: element (i, j) at i*c + j, so rs = c, cs = 1.
    let (a_rs, a_cs) = match ta {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (b_rs, b_cs) = match tb {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    // C's columns [j0, j0 + cols) from the same columns of op(B), by one gemm call.
    let c_at = c.as_mut_ptr() as usize;
    let columns = |j0: usize, cols: usize, parallelism: Parallelism| {
        // SAFETY: the asserts above bound every index the strides reach, for any block of
        // columns within [0, n); callers give each thread disjoint blocks, so no element of C
        // is written by two threads.
        unsafe {
            gemm::gemm(
                m,
                cols,
                k,
                (c_at as *mut f32).add(j0),
                1,
                n as isize,
                accumulate,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr().offset(j0 as isize * b_cs),
                b_cs,
                b_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    };
    match split {
        // One single-threaded product per block of C's columns, side by side. Each block packs
        // only its own part of B and the threads meet once, where gemm's own threading meets
        // twice per depth block and packs op(B)ᵀ on every thread when op(B) is transposed
        // (dz·W2ᵀ of the D-GEX step: 16.5 against 18.0 ms, `cargo bench -p repro-stages
        // --bench train -- shapes`). The bits are the same: gemm sums each element over the
        // same depth blocks (their size depends on k alone) in the same order, whatever the
        // split.
        Some(width) => (0..n.div_ceil(width)).into_par_iter().for_each(|part| {
            let j0 = part * width;
            columns(j0, width.min(n - j0), Parallelism::None);
        }),
        None => columns(0, n, par(threads)),
    }
}

/// The width of the column blocks `gemm` splits C into, one per thread, when every block is a
/// large product: at least 256 columns, more than 64 rows and a depth over 2, so that neither
/// the whole nor a block takes one of gemm's special paths (small, gemv, gevv), whose sums run
/// in another order. Widths are multiples of 64, the rows of gemm's f32 AVX-512 microkernel
/// (C's columns are its rows: gemm computes a row-major C as Cᵀ = op(B)ᵀ·op(A)ᵀ).
fn column_split(m: usize, n: usize, k: usize, threads: usize) -> Option<usize> {
    if threads <= 1 || m <= 64 || k <= 2 || n / threads < 256 {
        return None;
    }
    Some(n.div_ceil(threads).div_ceil(64) * 64)
}

/// Solves the symmetric positive-definite system `A x = b` (A n×n, f64) by Cholesky, adding
/// `ridge` to the diagonal. Returns `None` if A is not positive definite.
pub fn cholesky_solve(a: &[f64], n: usize, b: &mut [f64], nrhs: usize, ridge: f64) -> Option<()> {
    let mut l = a.to_vec();
    for i in 0..n {
        l[i * n + i] += ridge;
    }
    for j in 0..n {
        let mut d = l[j * n + j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        if d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        l[j * n + j] = d;
        for i in j + 1..n {
            let mut s = l[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = s / d;
        }
    }
    // b is n × nrhs row-major: forward then backward substitution per column.
    for c in 0..nrhs {
        for i in 0..n {
            let mut s = b[i * nrhs + c];
            for k in 0..i {
                s -= l[i * n + k] * b[k * nrhs + c];
            }
            b[i * nrhs + c] = s / l[i * n + i];
        }
        for i in (0..n).rev() {
            let mut s = b[i * nrhs + c];
            for k in i + 1..n {
                s -= l[k * n + i] * b[k * nrhs + c];
            }
            b[i * nrhs + c] = s / l[i * n + i];
        }
    }
    Some(())
}

/// Ordinary least squares with intercept: returns (W p×q, b q) minimizing ‖XW + 1bᵀ − Y‖².
pub fn ols(x: &[f32], y: &[f32], n: usize, p: usize, q: usize, ridge: f64) -> (Vec<f64>, Vec<f64>) {
    let mx: Vec<f64> = (0..p).map(|j| (0..n).map(|i| f64::from(x[i * p + j])).sum::<f64>() / n as f64).collect();
    let my: Vec<f64> = (0..q).map(|j| (0..n).map(|i| f64::from(y[i * q + j])).sum::<f64>() / n as f64).collect();
    let xc: Vec<f32> = (0..n * p).map(|t| (f64::from(x[t]) - mx[t % p]) as f32).collect();
    let yc: Vec<f32> = (0..n * q).map(|t| (f64::from(y[t]) - my[t % q]) as f32).collect();
    let mut xtx = vec![0f32; p * p];
    gemm(&mut xtx, &xc, Op::T, &xc, Op::N, p, p, n, false, 2);
    let mut xty = vec![0f32; p * q];
    gemm(&mut xty, &xc, Op::T, &yc, Op::N, p, q, n, false, 2);
    let a: Vec<f64> = xtx.iter().map(|&v| f64::from(v)).collect();
    let mut w: Vec<f64> = xty.iter().map(|&v| f64::from(v)).collect();
    cholesky_solve(&a, p, &mut w, q, ridge.max(1e-6 * n as f64)).expect("ridge keeps XᵀX positive definite");
    let b: Vec<f64> = (0..q).map(|j| my[j] - (0..p).map(|i| mx[i] * w[i * q + j]).sum::<f64>()).collect();
    (w, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_all_transpose_combinations_match_naive() {
        let (m, n, k) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 3.0).collect(); // m×k
        let b: Vec<f32> = (0..k * n).map(|v| (v as f32).sin()).collect(); // k×n
        let naive = |i: usize, j: usize| (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum::<f32>();
        let at: Vec<f32> = (0..k * m).map(|t| a[(t % m) * k + t / m]).collect(); // k×m
        let bt: Vec<f32> = (0..n * k).map(|t| b[(t % k) * n + t / k]).collect(); // n×k
        for (aa, ta) in [(&a, Op::N), (&at, Op::T)] {
            for (bb, tb) in [(&b, Op::N), (&bt, Op::T)] {
                let mut c = vec![1.0f32; m * n];
                gemm(&mut c, aa, ta, bb, tb, m, n, k, true, 1);
                for i in 0..m {
                    for j in 0..n {
                        assert!((c[i * n + j] - 1.0 - naive(i, j)).abs() < 1e-4, "{ta:?}{tb:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn split_columns_give_the_bits_of_one_thread() {
        // Split into column blocks (2 threads: 777 → 448 + 329) against gemm's own
        // single-threaded product: the same bits, over several depth blocks (k = 1300 > 512)
        // and onto a C that is accumulated into; and within float error of an f64 sum.
        let (m, n, k) = (70, 777, 1300);
        assert_eq!(column_split(m, n, k, 2), Some(448));
        let mut s = 12345u32;
        let mut r = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let a: Vec<f32> = (0..m * k).map(|_| r()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| r()).collect();
        let c0: Vec<f32> = (0..m * n).map(|_| r()).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for (ta, tb) in [(Op::N, Op::N), (Op::T, Op::N), (Op::N, Op::T), (Op::T, Op::T)] {
            // op(A)(i, t) and op(B)(t, j) whatever the storage.
            let ga = |i: usize, t: usize| if ta == Op::N { a[i * k + t] } else { a[t * m + i] };
            let gb = |t: usize, j: usize| if tb == Op::N { b[t * n + j] } else { b[j * k + t] };
            let mut one = c0.clone();
            gemm(&mut one, &a, ta, &b, tb, m, n, k, true, 1);
            let mut two = c0.clone();
            pool.install(|| gemm(&mut two, &a, ta, &b, tb, m, n, k, true, 2));
            assert!(one.iter().zip(&two).all(|(x, y)| x.to_bits() == y.to_bits()), "{ta:?}{tb:?}");
            for (i, j) in [(0, 0), (69, 447), (69, 448), (35, 776), (1, 500)] {
                let want =
                    f64::from(c0[i * n + j]) + (0..k).map(|t| f64::from(ga(i, t)) * f64::from(gb(t, j))).sum::<f64>();
                assert!((f64::from(two[i * n + j]) - want).abs() < 1e-3, "{ta:?}{tb:?} ({i}, {j})");
            }
        }
        // Too narrow, too few rows or one thread: no split.
        assert_eq!(column_split(70, 511, 1300, 2), None);
        assert_eq!(column_split(64, 4096, 1300, 2), None);
        assert_eq!(column_split(200, 4096, 1300, 1), None);
    }

    #[test]
    fn ols_recovers_an_exact_linear_map() {
        // y0 = 2 x0 - x1 + 3, y1 = 0.5 x1 - 1 on 6 points.
        let x = [0., 1., 1., 0., 2., 3., -1., 2., 4., -2., 3., 3.];
        let y: Vec<f32> = x.chunks(2).flat_map(|r| [2. * r[0] - r[1] + 3., 0.5 * r[1] - 1.]).collect();
        let (w, b) = ols(&x, &y, 6, 2, 2, 0.0);
        let want_w = [2.0, 0.0, -1.0, 0.5];
        for (g, e) in w.iter().zip(want_w) {
            assert!((g - e).abs() < 1e-3, "{w:?}");
        }
        assert!((b[0] - 3.0).abs() < 1e-3 && (b[1] + 1.0).abs() < 1e-3, "{b:?}");
    }
}
