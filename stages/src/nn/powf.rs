//! x^y for x > 0 on f32, bit for bit what the C library of our reference machine computes on
//! a CPU with FMA (glibc 2.36's `powf`, Debian 12, in its FMA build `__powf_fma`: the
//! table-driven log2/exp2 algorithm of Szabolcs Nagy, Arm's optimized-routines, in double
//! precision), written without branches so that a slice of it vectorizes. The A-ReLU
//! (`k·x^n`, derivative `k·n·x^(n−1)`) called `f32::powf` one value at a time, a tenth of an
//! A-ReLU network's training; [`powf_slice`] gives the same bits 8 lanes at a time where the CPU
//! has AVX-512 (the same steps written in intrinsics, the tables read by register permutes). The
//! tables below are the bit patterns of glibc's `__powf_log2_data` and
//! `__exp2f_data`, read out of this machine's `libm.so.6`. Checked against the C library on all
//! 2³¹ positive inputs for the exponents the D-GEX(L) networks use (1.2 and 0.2), and the
//! vector path against the scalar one on the same inputs; the tests sweep a strided subset for
//! several exponents.
//!
//! On a CPU without FMA glibc runs another build of the same algorithm (separate multiply and
//! add), which differs in the last bit now and then; this port always computes the FMA build's
//! bits (`f64::mul_add`), so an A-ReLU network now gives the same bytes there too.

const LOG2_TAB: [(u64, u64); 16] = [
    (0x3ff661ec79f8f3be, 0xbfdefec65b963019),
    (0x3ff571ed4aaf883d, 0xbfdb0b6832d4fca4),
    (0x3ff49539f0f010b0, 0xbfd7418b0a1fb77b),
    (0x3ff3c995b0b80385, 0xbfd39de91a6dcf7b),
    (0x3ff30d190c8864a5, 0xbfd01d9bf3f2b631),
    (0x3ff25e227b0b8ea0, 0xbfc97c1d1b3b7af0),
    (0x3ff1bb4a4a1a343f, 0xbfc2f9e393af3c9f),
    (0x3ff12358f08ae5ba, 0xbfb960cbbf788d5c),
    (0x3ff0953f419900a7, 0xbfaa6f9db6475fce),
    (0x3ff0000000000000, 0x0000000000000000),
    (0x3fee608cfd9a47ac, 0x3fb338ca9f24f53d),
    (0x3feca4b31f026aa0, 0x3fc476a9543891ba),
    (0x3feb2036576afce6, 0x3fce840b4ac4e4d2),
    (0x3fe9c2d163a1aa2d, 0x3fd40645f0c6651c),
    (0x3fe886e6037841ed, 0x3fd88e9c2c1b9ff8),
    (0x3fe767dcf5534862, 0x3fdce0a44eb17bcc),
];
const LOG2_POLY: [u64; 5] =
    [0x3fd27616c9496e0b, 0xbfd71969a075c67a, 0x3fdec70a6ca7badd, 0xbfe7154748bef6c8, 0x3ff71547652ab82b];
const EXP2_TAB: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];
const EXP2_SHIFT: u64 = 0x42e8000000000000;
const EXP2_POLY: [u64; 3] = [0x3fac6af84b912394, 0x3fcebfce50fac4f3, 0x3fe62e42ff0c52d6];

/// x ∈ [OFF, 2·OFF) after removing the exponent: the log2 table's range.
const OFF: u32 = 0x3f33_0000;
/// Above this y·log2(x) the result overflows to +inf (glibc's threshold).
const OVERFLOW: f64 = 127.99999995700433; // 0x1.fffffffd1d571p+6

#[inline(always)]
fn d(bits: u64) -> f64 {
    f64::from_bits(bits)
}

/// log2(x) in double for the bits of a positive normal x (a subnormal one arrives normalized,
/// with a negative biased exponent): x = 2^k·z, log2(x) = k + log2(c) + log1p(z/c − 1)/ln2.
#[inline(always)]
fn log2(ix: u32) -> f64 {
    let tmp = ix.wrapping_sub(OFF);
    let i = ((tmp >> 19) % 16) as usize;
    let top = tmp & 0xff80_0000;
    let z = f64::from(f32::from_bits(ix.wrapping_sub(top)));
    let k = f64::from((top as i32) >> 23);
    let (invc, logc) = (d(LOG2_TAB[i].0), d(LOG2_TAB[i].1));
    let a = |j: usize| d(LOG2_POLY[j]);
    let r = z.mul_add(invc, -1.0);
    let y0 = logc + k;
    let r2 = r * r;
    let y = a(0).mul_add(r, a(1));
    let p = a(2).mul_add(r, a(3));
    let r4 = r2 * r2;
    let q = a(4).mul_add(r, y0);
    let q = p.mul_add(r2, q);
    y.mul_add(r4, q)
}

/// 2^xd rounded to f32, for xd within (−150, 128): 2^(k/32) from the table times a cubic in
/// the remainder.
#[inline(always)]
fn exp2(xd: f64) -> f32 {
    let shift = d(EXP2_SHIFT);
    let kd = xd + shift;
    let ki = kd.to_bits();
    let r = xd - (kd - shift);
    let s = d(EXP2_TAB[(ki % 32) as usize].wrapping_add(ki << 47));
    let c = |j: usize| d(EXP2_POLY[j]);
    let z = c(0).mul_add(r, c(1));
    let r2 = r * r;
    let y = c(2).mul_add(r, 1.0);
    let y = z.mul_add(r2, y);
    (y * s) as f32
}

/// x^y for x > 0 (subnormal and +inf included) and finite y: the C library's bits (see the
/// module). Other arguments are the caller's to avoid: x ≤ 0 or NaN gives garbage, not
/// `powf`'s answer.
#[inline(always)]
pub fn powf_pos(x: f32, y: f32) -> f32 {
    let ix = x.to_bits();
    // glibc normalizes a subnormal x so that its exponent becomes negative.
    let sub = (f32::from_bits(ix) * f32::from_bits(0x4b00_0000)).to_bits().wrapping_sub(23 << 23);
    let ix = if ix < 0x0080_0000 { sub } else { ix };
    let ylogx = f64::from(y) * log2(ix);
    let r = exp2(ylogx);
    let r = if ylogx > OVERFLOW {
        f32::INFINITY
    } else if ylogx <= -150.0 {
        0.0
    } else {
        r
    };
    let inf = if y > 0.0 { f32::INFINITY } else { 0.0 };
    let r = if x.to_bits() == 0x7f80_0000 { inf } else { r };
    if y == 0.0 {
        1.0
    } else {
        r
    }
}

fn powf_each(a: &mut [f32], z: &[f32], y: f32, scale: f32) {
    for (a, z) in a.iter_mut().zip(z) {
        *a = if *z > 0.0 { scale * powf_pos(*z, y) } else { 0.0 };
    }
}

/// [`powf_each`] 8 lanes at a time, [`powf_pos`] step for step in AVX-512 (the same operations
/// in the same order, so the same bits), with the two tables read by in-register permutes: a
/// gather per table per 8 values was two fifths of the loop's time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")]
fn powf_avx512(a: &mut [f32], z: &[f32], y: f32, scale: f32) {
    use std::arch::x86_64::*;
    let pd = |bits: u64| _mm512_set1_pd(d(bits));
    // Eight table entries in one register, lane j holding entry j.
    let lanes = |e: [u64; 8]| {
        _mm512_setr_epi64(
            e[0] as i64,
            e[1] as i64,
            e[2] as i64,
            e[3] as i64,
            e[4] as i64,
            e[5] as i64,
            e[6] as i64,
            e[7] as i64,
        )
    };
    let column = |c: fn(&(u64, u64)) -> u64, half: usize| lanes(std::array::from_fn(|j| c(&LOG2_TAB[8 * half + j])));
    let (invc_lo, invc_hi) = (column(|e| e.0, 0), column(|e| e.0, 1));
    let (logc_lo, logc_hi) = (column(|e| e.1, 0), column(|e| e.1, 1));
    let exp2_tab: [__m512i; 4] = std::array::from_fn(|q| lanes(std::array::from_fn(|j| EXP2_TAB[8 * q + j])));
    let yd = _mm512_set1_pd(f64::from(y));
    let inf_x = _mm256_set1_ps(if y > 0.0 { f32::INFINITY } else { 0.0 });
    let (shift, one) = (pd(EXP2_SHIFT), _mm512_set1_pd(1.0));
    let mut ac = a.chunks_exact_mut(8);
    let mut zc = z.chunks_exact(8);
    for (a, z) in (&mut ac).zip(&mut zc) {
        // SAFETY: both chunks hold 8 f32.
        let x = unsafe { _mm256_loadu_ps(z.as_ptr()) };
        let ix0 = _mm256_castps_si256(x);
        // A subnormal x normalized as glibc does.
        let sub = _mm256_sub_epi32(
            _mm256_castps_si256(_mm256_mul_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x4b00_0000)))),
            _mm256_set1_epi32(23 << 23),
        );
        let ix = _mm256_mask_blend_epi32(_mm256_cmplt_epu32_mask(ix0, _mm256_set1_epi32(0x0080_0000)), ix0, sub);
        // log2(x): the table interval i, the exponent k, z in [OFF, 2·OFF).
        let tmp = _mm256_sub_epi32(ix, _mm256_set1_epi32(OFF as i32));
        let i = _mm512_cvtepu32_epi64(_mm256_and_si256(_mm256_srli_epi32::<19>(tmp), _mm256_set1_epi32(15)));
        let top = _mm256_and_si256(tmp, _mm256_set1_epi32(0xff80_0000u32 as i32));
        let zz = _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_sub_epi32(ix, top)));
        let k = _mm512_cvtepi32_pd(_mm256_srai_epi32::<23>(top));
        let invc = _mm512_castsi512_pd(_mm512_permutex2var_epi64(invc_lo, i, invc_hi));
        let logc = _mm512_castsi512_pd(_mm512_permutex2var_epi64(logc_lo, i, logc_hi));
        let r = _mm512_fmadd_pd(zz, invc, _mm512_set1_pd(-1.0));
        let y0 = _mm512_add_pd(logc, k);
        let r2 = _mm512_mul_pd(r, r);
        let q0 = _mm512_fmadd_pd(pd(LOG2_POLY[0]), r, pd(LOG2_POLY[1]));
        let p = _mm512_fmadd_pd(pd(LOG2_POLY[2]), r, pd(LOG2_POLY[3]));
        let r4 = _mm512_mul_pd(r2, r2);
        let q = _mm512_fmadd_pd(pd(LOG2_POLY[4]), r, y0);
        let q = _mm512_fmadd_pd(p, r2, q);
        let ylogx = _mm512_mul_pd(yd, _mm512_fmadd_pd(q0, r4, q));
        // exp2(y·log2 x): 2^(j/32) from the table (j = the low 5 bits of ki) times a cubic.
        let kd = _mm512_add_pd(ylogx, shift);
        let ki = _mm512_castpd_si512(kd);
        let rr = _mm512_sub_pd(ylogx, _mm512_sub_pd(kd, shift));
        let j = _mm512_and_si512(ki, _mm512_set1_epi64(31));
        let lo = _mm512_permutex2var_epi64(exp2_tab[0], j, exp2_tab[1]);
        let hi = _mm512_permutex2var_epi64(exp2_tab[2], j, exp2_tab[3]);
        let t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(j, _mm512_set1_epi64(16)), lo, hi);
        let s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64::<47>(ki)));
        let c = _mm512_fmadd_pd(pd(EXP2_POLY[0]), rr, pd(EXP2_POLY[1]));
        let rr2 = _mm512_mul_pd(rr, rr);
        let e = _mm512_fmadd_pd(pd(EXP2_POLY[2]), rr, one);
        let e = _mm512_fmadd_pd(c, rr2, e);
        let r = _mm512_cvtpd_ps(_mm512_mul_pd(e, s));
        let over = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(ylogx, _mm512_set1_pd(OVERFLOW));
        let under = _mm512_cmp_pd_mask::<_CMP_LE_OQ>(ylogx, _mm512_set1_pd(-150.0));
        let r = _mm256_mask_blend_ps(over, r, _mm256_set1_ps(f32::INFINITY));
        let r = _mm256_maskz_mov_ps(!under, r);
        let r = _mm256_mask_blend_ps(_mm256_cmpeq_epi32_mask(ix0, _mm256_set1_epi32(0x7f80_0000)), r, inf_x);
        let r = if y == 0.0 { _mm256_set1_ps(1.0) } else { r };
        let out = _mm256_maskz_mov_ps(
            _mm256_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm256_setzero_ps()),
            _mm256_mul_ps(_mm256_set1_ps(scale), r),
        );
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), out) };
    }
    powf_each(ac.into_remainder(), zc.remainder(), y, scale);
}

/// `a[i] = scale·z[i]^y` where `z[i] > 0`, else 0 (the A-ReLU and its derivative), for a finite
/// `y`; vectorized where the CPU allows, the same bits either way.
pub fn powf_slice(a: &mut [f32], z: &[f32], y: f32, scale: f32) {
    assert_eq!(a.len(), z.len());
    assert!(y.is_finite(), "powf_slice: exponent {y} is not finite");
    #[cfg(target_arch = "x86_64")]
    if super::avx512() {
        // SAFETY: the features the function is compiled for are present.
        return unsafe { powf_avx512(a, z, y, scale) };
    }
    powf_each(a, z, y, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exponents: the A-ReLU's n = 1.2 and n − 1 = 0.2, and others of both signs.
    const YS: [f32; 7] = [1.2, 0.2, 0.5, 2.0, -1.5, 3.7, 1.0];

    /// Every 499th positive bit pattern (subnormals, the whole normal range, +inf), plus the
    /// table's interval edges and 1.
    fn sweep() -> Vec<f32> {
        let mut v: Vec<f32> = (1..=0x7f80_0000u32).step_by(499).map(f32::from_bits).collect();
        v.extend([1.0, f32::MIN_POSITIVE, f32::from_bits(1), f32::MAX, f32::INFINITY]);
        v.extend((0..16u32).map(|i| f32::from_bits(OFF + (i << 19))));
        v
    }

    #[test]
    fn slice_path_gives_the_scalar_bits() {
        let z: Vec<f32> = sweep().into_iter().flat_map(|x| [x, -x, 0.0]).collect();
        for y in YS {
            let mut a = vec![f32::NAN; z.len()];
            powf_slice(&mut a, &z, y, 0.6);
            for (x, got) in z.iter().zip(&a) {
                let want = if *x > 0.0 { 0.6 * powf_pos(*x, y) } else { 0.0 };
                assert_eq!(got.to_bits(), want.to_bits(), "0.6·{x:e}^{y}");
            }
        }
    }

    /// Within 1 ulp of x^y in f64 (the algorithm's bound is 0.82 ulp), exact where x^y is.
    #[test]
    fn close_to_pow_in_double() {
        for y in YS {
            for x in sweep() {
                let got = powf_pos(x, y);
                let want = (f64::from(x)).powf(f64::from(y)) as f32;
                let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
                assert!(ulps <= 1, "{x:e}^{y} = {got:e}, f64 says {want:e}");
            }
        }
        assert_eq!((powf_pos(4.0, 0.5), powf_pos(2.0, 2.0), powf_pos(8.0, -1.5)), (2.0, 4.0, 0.044_194_173));
        // numpy 2.4: np.float32(2.0) ** np.float32(1.2) = 2.297397, np.float32(0.3) ** np.float32(0.2) = 0.7860031,
        // np.float32(8) ** np.float32(-1.5) = 0.044194173
        assert_eq!((powf_pos(2.0, 1.2), powf_pos(0.3, 0.2)), (2.297_397, 0.786_003_1));
        assert_eq!(
            (powf_pos(f32::INFINITY, 1.2), powf_pos(f32::INFINITY, -1.5), powf_pos(3.0, 0.0)),
            (f32::INFINITY, 0.0, 1.0)
        );
        assert_eq!((powf_pos(f32::MAX, 2.0), powf_pos(f32::from_bits(1), 2.0)), (f32::INFINITY, 0.0));
    }

    /// The committed reports were computed with glibc 2.36's `powf` on CPUs with FMA; this pins
    /// the port to it (on glibc, where the CPU has FMA: elsewhere glibc runs its other build).
    #[test]
    #[cfg(all(target_env = "gnu", target_os = "linux", target_arch = "x86_64"))]
    fn same_bits_as_the_c_library() {
        if !std::arch::is_x86_feature_detected!("fma") {
            return;
        }
        for y in YS {
            for x in sweep() {
                let (got, libm) = (powf_pos(x, y), x.powf(y));
                assert_eq!(got.to_bits(), libm.to_bits(), "{x:e}^{y}: {got:e} vs {libm:e}");
            }
        }
    }

    /// Every positive f32 for the D-GEX(L) exponents, against the C library, and the slice path
    /// against the scalar port (a few minutes on 2 cores):
    /// `cargo test --release -p repro-stages powf -- --ignored`.
    #[test]
    #[ignore = "exhaustive: 2^32 powf calls"]
    #[cfg(all(target_env = "gnu", target_os = "linux", target_arch = "x86_64"))]
    fn every_positive_input_gives_the_c_librarys_bits() {
        use rayon::prelude::*;
        if !std::arch::is_x86_feature_detected!("fma") {
            return;
        }
        for y in [1.2f32, 0.2] {
            let bad = (1..=0x7f80_0000u32)
                .into_par_iter()
                .filter(|&b| {
                    let x = f32::from_bits(b);
                    powf_pos(x, y).to_bits() != x.powf(y).to_bits()
                })
                .count();
            assert_eq!(bad, 0, "x^{y}: {bad} inputs differ from the C library");
            // And the slice path (8 lanes at a time where the CPU has AVX-512) against the
            // scalar port, in blocks of 2^16 inputs (the last holds +inf and NaNs: 0 for a NaN).
            let bad: usize = (0..=0x7f80_0000u32 >> 16)
                .into_par_iter()
                .map(|blk| {
                    let z: Vec<f32> = (blk << 16..(blk + 1) << 16).map(f32::from_bits).collect();
                    let mut a = vec![0f32; z.len()];
                    powf_slice(&mut a, &z, y, 0.6);
                    let want = |x: f32| if x > 0.0 { 0.6 * powf_pos(x, y) } else { 0.0 };
                    z.iter().zip(&a).filter(|(x, got)| got.to_bits() != want(**x).to_bits()).count()
                })
                .sum();
            assert_eq!(bad, 0, "0.6·x^{y}: {bad} inputs where the slice path differs from the scalar port");
        }
    }
}
