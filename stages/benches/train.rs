//! One D-GEX epoch (`cargo bench -p repro-stages --bench train`): 943 → 1500 → 4760, tanh,
//! MSE, SGD, batch 200, 100 random batches from 20,000 rows, f32, 2 threads — the setting the
//! first training issue measured in other frameworks on its machine (plain candle loop ≈ 16 s,
//! PyTorch CPU 5.8 s, JAX 3.45 s, Keras+XLA 3.1 s, numpy+OpenBLAS by hand 3.1 s). #19's goal on
//! this project's 2-core machine: 80 % of the f32 peak, ≤ 5.4 s. The epoch's five products (the
//! forward pass, two weight gradients and the hidden gradient; none for the input) are 0.97 TFLOP.
//! The `candle` filter adds train's candle backend on the CPU (`backend = "candle"`) and the
//! plain candle loop as the baseline (both slow). `shapes` times the step's five matmuls alone,
//! `tanh` the hidden activation (the C library's against the vectorized one), `powf` the
//! A-ReLU's power likewise. `peak` measures what the FMA units of this machine deliver (a loop
//! of independent register-only FMAs on 1 and on 2 threads at once): the ceiling the epoch's
//! matmuls are to be read against, rather than a nominal clock × width.

use repro_stages::nn::act::Activation;
use repro_stages::nn::loss::Loss;
use repro_stages::nn::optim::{Convention, Optimizer};
use repro_stages::rng::{rng, Rng};
use repro_stages::train::{fit, Backend, Batching, FitData, TrainParams};
use std::time::Instant;

const ROWS: usize = 20_000;
const P: usize = 943;
const H: usize = 1500;
const Q: usize = 4760;

fn data() -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(1, "bench");
    let x: Vec<f32> = (0..ROWS * P).map(|_| r.random::<f32>() * 2.0 - 1.0).collect();
    let y: Vec<f32> = (0..ROWS * Q).map(|_| r.random::<f32>() * 2.0 - 1.0).collect();
    (x, y)
}

fn ours(x: &[f32], y: &[f32], threads: usize) -> f64 {
    epoch_seconds(x, y, threads, Backend::Native)
}

/// Seconds per D-GEX epoch with `backend` (the difference of a 3- and a 1-epoch run, so set-up
/// and the first epoch's allocations are not counted).
fn epoch_seconds(x: &[f32], y: &[f32], threads: usize, backend: Backend) -> f64 {
    let p = |epochs| TrainParams {
        backend,
        hidden: vec![H],
        activation: Activation::Tanh,
        loss: Loss::Mse,
        optimizer: Optimizer::Sgd { momentum: 0.0, nesterov: false, convention: Convention::Pytorch },
        lr: 1e-3,
        epochs,
        batch: 200,
        batching: Batching::Random,
        steps_per_epoch: 100,
        ..Default::default()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let t = Instant::now();
        fit(&p(1), &FitData::new(x, y, Q), 1, threads, None).unwrap();
        let one = t.elapsed().as_secs_f64();
        let t = Instant::now();
        fit(&p(3), &FitData::new(x, y, Q), 1, threads, None).unwrap();
        let three = t.elapsed().as_secs_f64();
        (three - one) / 2.0
    })
}

fn candle_plain(x: &[f32], y: &[f32]) -> candle_core::Result<f64> {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{linear, Module, Optimizer as _, VarBuilder, VarMap};
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let l1 = linear(P, H, vb.pp("l1"))?;
    let l2 = linear(H, Q, vb.pp("l2"))?;
    let mut opt = candle_nn::SGD::new(vm.all_vars(), 1e-3)?;
    let xt = Tensor::from_slice(x, (ROWS, P), &dev)?;
    let yt = Tensor::from_slice(y, (ROWS, Q), &dev)?;
    let mut r = rng(2, "candle");
    let t = Instant::now();
    for _ in 0..100 {
        let idx: Vec<u32> = (0..200).map(|_| r.random_range(0..ROWS as u32)).collect();
        let idx = Tensor::from_vec(idx, 200, &dev)?;
        let xb = xt.index_select(&idx, 0)?;
        let yb = yt.index_select(&idx, 0)?;
        let out = l2.forward(&l1.forward(&xb)?.tanh()?)?;
        let loss = (out - yb)?.sqr()?.mean_all()?;
        opt.backward_step(&loss)?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Time of each matmul of one training step, to see where an epoch goes: on 1 thread, on 2 as
/// `nn::linalg::gemm` runs them (one single-threaded product per block of C's columns) and on 2
/// with gemm's own threading. The three are timed call by call in turn, 40 times each, and the
/// medians printed, so that the host's steal time falls on all three alike.
fn shapes() {
    use repro_stages::nn::linalg::{gemm, gemm_own_threading, Op};
    let cases: [(&str, usize, usize, usize, Op, Op); 6] = [
        ("square (reference) ", 2048, 2048, 2048, Op::N, Op::N),
        ("forward  x·W1      ", 200, H, P, Op::N, Op::N),
        ("forward  h·W2      ", 200, Q, H, Op::N, Op::N),
        ("backward hᵀ·dz (W2)", H, Q, 200, Op::T, Op::N),
        ("backward dz·W2ᵀ    ", 200, H, Q, Op::N, Op::T),
        ("backward xᵀ·dh (W1)", P, H, 200, Op::T, Op::N),
    ];
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let (mut sum_split, mut sum_own) = (0.0, 0.0);
    for (name, m, n, k, ta, tb) in cases {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        let flop = 2.0 * (m * n * k) as f64;
        let mut times = [vec![], vec![], vec![]];
        for rep in 0..41 {
            let t = Instant::now();
            one.install(|| gemm(&mut c, &a, ta, &b, tb, m, n, k, false, 1));
            let t1 = t.elapsed();
            let t = Instant::now();
            two.install(|| gemm(&mut c, &a, ta, &b, tb, m, n, k, false, 2));
            let t2 = t.elapsed();
            let t = Instant::now();
            two.install(|| gemm_own_threading(&mut c, &a, ta, &b, tb, m, n, k, false, 2));
            let t3 = t.elapsed();
            if rep > 0 {
                for (v, t) in times.iter_mut().zip([t1, t2, t3]) {
                    v.push(t.as_secs_f64() * 1e3);
                }
            }
        }
        let [t1, t2, t3] = times.map(|mut v| {
            v.sort_by(f64::total_cmp);
            (v[19] + v[20]) / 2.0
        });
        if m != 2048 {
            sum_split += t2;
            sum_own += t3;
        }
        let gf = |ms: f64| flop / ms / 1e6;
        println!(
            "  {name} {m:>5}×{n:<5} k={k:<5} 1 thread {t1:6.2} ms {:4.0} GFLOP/s | 2 threads {t2:6.2} ms {:4.0} GFLOP/s \
             | gemm's own threading on 2 {t3:6.2} ms {:4.0} GFLOP/s",
            gf(t1),
            gf(t2),
            gf(t3)
        );
    }
    println!("  a step's five products on 2 threads: {sum_split:.2} ms (gemm's own threading {sum_own:.2} ms)");
}

/// An activation over one step's hidden layer (200 × 1500 values drawn from `lo + span·U(0,1)`,
/// one thread): the C library one value at a time (`libm`) against our slice function
/// (`ours`), in ns per value.
fn activation_bench(what: &str, lo: f32, span: f32, libm: impl Fn(f32) -> f32, ours: impl Fn(&mut [f32], &[f32])) {
    let mut r = rng(3, what);
    let z: Vec<f32> = (0..200 * H).map(|_| lo + r.random::<f32>() * span).collect();
    let mut a = vec![0f32; z.len()];
    let reps = 200;
    let per_value = |t: Instant| t.elapsed().as_secs_f64() / (reps * z.len()) as f64 * 1e9;
    let t = Instant::now();
    for _ in 0..reps {
        for (a, z) in a.iter_mut().zip(&z) {
            *a = libm(std::hint::black_box(*z));
        }
    }
    let c = per_value(t);
    let t = Instant::now();
    for _ in 0..reps {
        ours(&mut a, std::hint::black_box(&z));
    }
    let o = per_value(t);
    println!("  {what}, 200 × {H} values, 1 thread: C library {c:.2} ns/value, ours {o:.2} ns/value ({:.1}×)", c / o);
}

/// f32 FLOP per second one thread gets from a loop of independent FMAs on registers (24
/// AVX-512 accumulators, or 12 AVX2 ones without AVX-512): no loads, no dependences a core
/// must wait on, so nothing a matmul does can go faster.
fn fma_peak_one_thread() -> f64 {
    const ITERS: usize = 20_000_000;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        #[target_feature(enable = "avx512f")]
        fn zmm(iters: usize) -> f32 {
            let mut acc = [_mm512_setzero_ps(); 24];
            let (a, b) = (_mm512_set1_ps(1.000_000_1), _mm512_set1_ps(0.999_999_9));
            for _ in 0..iters {
                for x in &mut acc {
                    *x = _mm512_fmadd_ps(a, b, *x);
                }
            }
            _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, *x)))
        }
        #[target_feature(enable = "avx2,fma")]
        fn ymm(iters: usize) -> f32 {
            let mut acc = [_mm256_setzero_ps(); 12];
            let (a, b) = (_mm256_set1_ps(1.000_000_1), _mm256_set1_ps(0.999_999_9));
            for _ in 0..iters {
                for x in &mut acc {
                    *x = _mm256_fmadd_ps(a, b, *x);
                }
            }
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds 8 f32.
            unsafe {
                _mm256_storeu_ps(lanes.as_mut_ptr(), acc.iter().fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, *x)))
            };
            lanes.iter().sum()
        }
        let t = Instant::now();
        let flop = if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the function is compiled for.
            std::hint::black_box(unsafe { zmm(ITERS) });
            ITERS * 24 * 32
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            std::hint::black_box(unsafe { ymm(ITERS) });
            ITERS * 12 * 16
        } else {
            return f64::NAN;
        };
        flop as f64 / t.elapsed().as_secs_f64()
    }
    #[cfg(not(target_arch = "x86_64"))]
    f64::NAN
}

/// TFLOP of one epoch's products: 100 steps of a 200-row batch through x·W1, h·W2, hᵀ·dz,
/// dz·W2ᵀ and xᵀ·dh (2·m·n·k each).
fn epoch_tflop() -> f64 {
    2.0 * 200.0 * 100.0 * (2 * P * H + 3 * H * Q) as f64 / 1e12
}

/// The machine's f32 FMA peak on 1 and on 2 threads at once (medians of 9), and what it makes
/// of #19's epoch: its five products are 0.97 TFLOP (no gradient for the input).
fn peak() {
    let epoch_tflop = epoch_tflop();
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut runs: Vec<f64> =
            (0..9).map(|_| pool.install(|| rayon::broadcast(|_| fma_peak_one_thread())).iter().sum()).collect();
        runs.sort_by(f64::total_cmp);
        let gf = runs[4] / 1e9;
        println!(
            "  FMA peak, {threads} thread(s) at once: {gf:6.1} GFLOP/s (runs {:.1}–{:.1}); the epoch's \
             {epoch_tflop:.2} TFLOP of products take ≥ {:.2} s at it, {:.2} s at 80 %",
            runs[0] / 1e9,
            runs[8] / 1e9,
            epoch_tflop * 1e3 / gf,
            epoch_tflop * 1e3 / gf / 0.8
        );
    }
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    if filter.as_deref() == Some("peak") {
        peak();
        return;
    }
    if filter.as_deref() == Some("shapes") {
        shapes();
        return;
    }
    if filter.as_deref() == Some("tanh") {
        // `nn::tanh::tanh_slice`: the same bits as `tanhf`, vectorized.
        activation_bench("tanh", -3.0, 6.0, f32::tanh, repro_stages::nn::tanh::tanh_slice);
        return;
    }
    if filter.as_deref() == Some("powf") {
        // The A-ReLU 0.6·x^1.2 (D-GEX(L)'s) with `nn::powf::powf_slice`: `powf`'s bits.
        let arelu = |z: f32| if z > 0.0 { 0.6 * z.powf(1.2) } else { 0.0 };
        activation_bench("A-ReLU 0.6·x^1.2", -1.2, 4.0, arelu, |a: &mut [f32], z: &[f32]| {
            repro_stages::nn::powf::powf_slice(a, z, 1.2, 0.6)
        });
        return;
    }
    let (x, y) = data();
    let gflop = epoch_tflop() * 1e3;
    for threads in [2, 1] {
        let s = ours(&x, &y, threads);
        println!(
            "repro train, one D-GEX epoch ({threads} thread(s)): {s:6.2} s  ({:.0} GFLOP/s; #19's goal ≤ 5.4 s at 2 threads)",
            gflop / s
        );
    }
    if filter.as_deref() == Some("candle") {
        let s = epoch_seconds(&x, &y, 2, Backend::Candle);
        println!(
            "repro train, backend = \"candle\" on cpu, one D-GEX epoch (2 threads): {s:6.2} s  ({:.0} GFLOP/s)",
            gflop / s
        );
        let s = candle_plain(&x, &y).unwrap();
        println!("plain candle loop (linear + optim::SGD), one epoch: {s:6.2} s  ({:.0} GFLOP/s)", gflop / s);
    }
}
