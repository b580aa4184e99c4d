//! tanh on f32, bit for bit the function the C library of our reference machine computes
//! (glibc 2.36's `tanhf`, Debian 12: fdlibm's algorithm, Sun Microsystems 1993, on its
//! `expm1f`), but
//! written without branches so that a slice of it vectorizes: every lane computes each case and
//! keeps the one its argument selects. `f32::tanh` calls the C library one value at a time and
//! was a fifth of a tanh network's training time; [`tanh_slice`] gives the same bits 16 lanes at
//! a time where the CPU has AVX-512, and the same bits one by one elsewhere. Checked against
//! the C library on all 2³² inputs on the reference machine (the test sweeps a strided subset).

const LN2_HI: f32 = f32::from_bits(0x3f31_7180);
const LN2_LO: f32 = f32::from_bits(0x3717_f7d1);
const INVLN2: f32 = f32::from_bits(0x3fb8_aa3b);
// fdlibm's scaled coefficients of expm1's rational approximation.
const Q1: f32 = f32::from_bits(0xbd08_8889);
const Q2: f32 = f32::from_bits(0x3ad0_0d01);
const Q3: f32 = f32::from_bits(0xb8a6_70cd);
const Q4: f32 = f32::from_bits(0x3686_7e54);
const Q5: f32 = f32::from_bits(0xb457_edbb);

/// Adds `k` to the exponent of `y` (fdlibm's `SET_FLOAT_WORD(y, i + (k << 23))`).
#[inline(always)]
fn scale(y: f32, k: i32) -> f32 {
    f32::from_bits((y.to_bits() as i32).wrapping_add(k.wrapping_shl(23)) as u32)
}

/// fdlibm's `expm1f` for finite `u` below 88.7 (what tanh asks: u = ±2|x|, |x| < 22), with
/// every case computed and the right one selected.
#[inline(always)]
fn expm1(u: f32) -> f32 {
    let hx = u.to_bits() & 0x7fff_ffff;
    let neg = u.to_bits() >> 31 != 0;
    // Argument reduction u = k·ln2 + r: k = ±1 near ±ln2, else round(u/ln2); 0 below ln2/2.
    let near = hx < 0x3f85_1592;
    // C's float → int truncation; clamped (NaN included) so the unchecked form, which
    // vectorizes, is defined on every lane (lanes outside ±64 take another case).
    #[expect(clippy::manual_clamp, reason = "clamp keeps NaN; max/min send it to −200")]
    let v = (INVLN2 * u + if neg { -0.5 } else { 0.5 }).max(-200.0).min(200.0);
    // SAFETY: v is finite and within ±200.
    let k_round: i32 = unsafe { v.to_int_unchecked() };
    let k_near = if neg { -1 } else { 1 };
    let k = if hx > 0x3eb1_7218 {
        if near {
            k_near
        } else {
            k_round
        }
    } else {
        0
    };
    // With k = ±1 or 0 these are the exact hi = u ∓ ln2_hi, lo = ±ln2_lo (or u, 0) of the
    // special cases: 1·ln2_hi and 0·ln2_hi are exact.
    let t = k as f32;
    let hi = u - t * LN2_HI;
    let lo = t * LN2_LO;
    let x = hi - lo;
    let c = (hi - x) - lo;
    let hfx = 0.5 * x;
    let hxs = x * hfx;
    let r1 = 1.0 + hxs * (Q1 + hxs * (Q2 + hxs * (Q3 + hxs * (Q4 + hxs * Q5))));
    let t3 = 3.0 - r1 * hfx;
    let e = hxs * ((r1 - t3) / (6.0 - x * t3));
    let r_k0 = x - (x * e - hxs);
    let e = x * (e - c) - c - hxs;
    let r_km1 = 0.5 * (x - e) - 0.5;
    let r_k1 = if x < -0.25 { -2.0 * (e - (x + 0.5)) } else { 1.0 + 2.0 * (x - e) };
    let r_far = scale(1.0 - (e - x), k) - 1.0;
    // t = 1 − 2^−k for 2 ≤ k < 23; 2^−k for 23 ≤ k ≤ 56 (shifts kept in range for other lanes).
    let t_lt23 = f32::from_bits(0x3f80_0000 - (0x0100_0000u32 >> (k.clamp(0, 31) as u32)));
    let r_lt23 = scale(t_lt23 - (e - x), k);
    let t_ge23 = f32::from_bits(((0x7f - k.clamp(0, 0x7f)) << 23) as u32);
    let r_ge23 = scale((x - (e + t_ge23)) + 1.0, k);
    let r = match k {
        0 => r_k0,
        -1 => r_km1,
        1 => r_k1,
        k if k <= -2 || k > 56 => r_far,
        k if k < 23 => r_lt23,
        _ => r_ge23,
    };
    if hx < 0x3300_0000 {
        u // |u| < 2^−25
    } else if neg && hx >= 0x4195_b844 {
        1.0e-30 - 1.0 // u ≤ −27·ln2
    } else {
        r
    }
}

/// tanh(x), the same bits as glibc's `tanhf` (fdlibm's algorithm).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let jx = x.to_bits();
    let ix = jx & 0x7fff_ffff;
    let ax = f32::from_bits(ix);
    let ge1 = ix >= 0x3f80_0000;
    let t = expm1(if ge1 { 2.0 * ax } else { -2.0 * ax });
    // fdlibm: 1 − 2/(t+2) for |x| ≥ 1, (−t)/(t+2) below; one division serves both.
    let q = if ge1 { 2.0 } else { -t } / (t + 2.0);
    let z = if ge1 { 1.0 - q } else { q };
    let z = if ix >= 0x41b0_0000 { 1.0 - 1.0e-30 } else { z }; // |x| ≥ 22
    let signed = if jx >> 31 == 0 { z } else { -z };
    if ix >= 0x7f80_0000 {
        if jx >> 31 == 0 {
            1.0 / x + 1.0
        } else {
            1.0 / x - 1.0
        }
    } else if ix < 0x2400_0000 {
        x * (1.0 + x) // |x| < 2^−55 (x itself at 0)
    } else {
        signed
    }
}

fn tanh_each(a: &mut [f32], z: &[f32]) {
    for (a, z) in a.iter_mut().zip(z) {
        *a = tanh(*z);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
fn tanh_avx512(a: &mut [f32], z: &[f32]) {
    // The loop is written here, not called, so that it is compiled with these features.
    for (a, z) in a.iter_mut().zip(z) {
        *a = tanh(*z);
    }
}

/// `a[i] = tanh(z[i])`, vectorized where the CPU allows; the same bits either way.
pub fn tanh_slice(a: &mut [f32], z: &[f32]) {
    assert_eq!(a.len(), z.len());
    #[cfg(target_arch = "x86_64")]
    if super::avx512() {
        // SAFETY: the features the function is compiled for are present.
        return unsafe { tanh_avx512(a, z) };
    }
    tanh_each(a, z)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 997th bit pattern (4.3 million values: both signs, subnormals, the cut-offs,
    /// infinities and NaNs), plus the branch edges.
    fn sweep() -> Vec<f32> {
        let edges = [0x3f80_0000u32, 0x41b0_0000, 0x2400_0000, 0x3eb1_7218, 0x3f85_1592, 0x4195_b844, 0x3300_0000];
        let mut v: Vec<f32> = (0..=u32::MAX).step_by(997).map(f32::from_bits).collect();
        for e in edges {
            for d in [-2i64, -1, 0, 1, 2] {
                for sign in [0, 0x8000_0000u32] {
                    v.push(f32::from_bits((e as i64 + d) as u32 | sign));
                }
            }
        }
        v
    }

    #[test]
    fn slice_path_gives_the_scalar_bits() {
        let z = sweep();
        let mut a = vec![0f32; z.len()];
        tanh_slice(&mut a, &z);
        for (x, got) in z.iter().zip(&a) {
            let want = tanh(*x);
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "tanh({x:e})");
        }
    }

    /// Within 2 ulp of tanh in f64 (fdlibm's bound for tanhf), exact at the fixed points.
    #[test]
    fn close_to_tanh_in_double() {
        for x in sweep() {
            let got = tanh(x);
            if x.is_nan() {
                assert!(got.is_nan());
                continue;
            }
            let want = (x as f64).tanh() as f32;
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2, "tanh({x:e}) = {got:e}, f64 says {want:e}");
        }
        assert_eq!((tanh(0.0), tanh(f32::INFINITY), tanh(f32::NEG_INFINITY)), (0.0, 1.0, -1.0));
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        // numpy: np.tanh(np.float32(0.5)) = 0.46211717, np.tanh(np.float32(-3)) = -0.9950548
        assert_eq!((tanh(0.5), tanh(-3.0)), (0.462_117_17, -0.995_054_8));
    }

    /// The committed reports were computed with glibc 2.36's `tanhf`; this pins the port to it.
    /// A glibc with another `tanhf` fails here: the port still gives the reports' bits there
    /// (it no longer calls the C library), but this check can no longer vouch for it.
    #[test]
    #[cfg(all(target_env = "gnu", target_os = "linux"))]
    fn same_bits_as_the_c_library() {
        for x in sweep() {
            let (got, libm) = (tanh(x), x.tanh());
            assert!(
                got.to_bits() == libm.to_bits() || (got.is_nan() && libm.is_nan()),
                "tanh({x:e}): {got:e} vs {libm:e}"
            );
        }
    }
}
