//! Neural-network pieces for the `train` stage: dense kernels, activations, losses,
//! optimizers, initializers and the MLP with its hand-written backward pass.

pub mod act;
pub mod init;
pub mod lbfgs;
pub mod linalg;
pub mod loss;
pub mod mlp;
pub mod optim;
pub mod powf;
pub mod tanh;

/// Whether the CPU has the AVX-512 subsets (F, DQ, VL, BW) and FMA that the vectorized
/// activations (`tanh::tanh_slice`, `powf::powf_slice`) are compiled for.
#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("fma")
}
