//! The only source of randomness in stages: a ChaCha8 stream seeded from the instance seed the
//! engine derives from the pipeline seed. ChaCha's output is specified, so the same seed gives
//! the same numbers on every platform and release.

use rand::SeedableRng;
pub use rand::{Rng, RngCore};
pub use rand_chacha::ChaCha8Rng as StageRng;

/// A generator for one purpose (`stream`) of a stage: distinct streams are independent, so
/// adding a draw for one purpose never shifts the numbers of another.
pub fn rng(seed: u64, stream: &str) -> StageRng {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(stream.as_bytes());
    StageRng::from_seed(*h.finalize().as_bytes())
}

/// Fisher-Yates permutation of `0..n`.
pub fn permutation(rng: &mut StageRng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
    v
}

/// Standard normal by Box-Muller (portable: no platform-specific float tricks).
pub fn normal(rng: &mut StageRng) -> f64 {
    loop {
        let u1: f64 = rng.random();
        if u1 > f64::MIN_POSITIVE {
            let u2: f64 = rng.random();
            return (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: u64 = rng(7, "init").random();
        let b: u64 = rng(7, "init").random();
        let c: u64 = rng(7, "batches").random();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(&mut rng(1, "p"), 1000);
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = rng(3, "n");
        let xs: Vec<f64> = (0..200_000).map(|_| normal(&mut r)).collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
        assert!(m.abs() < 0.01, "mean {m}");
        assert!((v - 1.0).abs() < 0.02, "var {v}");
    }
}
