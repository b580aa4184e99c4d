//! Activations and their derivatives, elementwise on f32. `derivative` gets both the
//! pre-activation z and the activation a = f(z), so cheap forms (tanh: 1 − a²) are used.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Activation {
    Identity,
    Sigmoid,
    Tanh,
    Relu,
    /// max(αx, x).
    LeakyRelu {
        #[serde(default = "leaky_alpha")]
        alpha: f32,
    },
    /// PReLU: max(αx, x) with α = 0.25 to start (PyTorch's `nn.PReLU()`); `learnable = true`
    /// trains α (one slope per layer, as `nn.PReLU()` with one parameter), otherwise it stays fixed.
    Prelu {
        #[serde(default = "prelu_alpha")]
        alpha: f32,
        #[serde(default)]
        learnable: bool,
    },
    Elu {
        #[serde(default = "one")]
        alpha: f32,
    },
    Selu,
    /// tanh approximation, as PyTorch's `gelu(approximate="tanh")`.
    Gelu,
    Silu,
    Softplus,
    Softsign,
    /// exp(−x²).
    Gaussian,
    /// Soboleva modified hyperbolic tangent: (e^{ax} − e^{−bx}) / (e^{cx} + e^{−dx}).
    Soboleva {
        a: f32,
        b: f32,
        c: f32,
        d: f32,
    },
    /// 1 for x ≥ 0, else 0; derivative 0 (no gradient flows).
    BinaryStep,
    /// A-ReLU (LALR paper §IV): k·x^n for x ≥ 0, else 0; derivative k·n·x^(n−1), 0 at 0.
    Arelu {
        #[serde(default = "arelu_k")]
        k: f32,
        #[serde(default = "arelu_n")]
        n: f32,
    },
}

fn leaky_alpha() -> f32 {
    0.01
}
fn prelu_alpha() -> f32 {
    0.25
}
fn one() -> f32 {
    1.0
}
fn arelu_k() -> f32 {
    0.6
}
fn arelu_n() -> f32 {
    1.2
}

const SELU_L: f32 = 1.050_700_9;
const SELU_A: f32 = 1.673_263_2;
const GELU_C: f32 = 0.797_884_6; // sqrt(2/pi)

/// x^y for x > 0: the C library's bits, vectorizable (`nn::powf`), for a finite y.
fn pow(x: f32, y: f32) -> f32 {
    if y.is_finite() {
        super::powf::powf_pos(x, y)
    } else {
        x.powf(y)
    }
}

impl Activation {
    pub fn f(&self, x: f32) -> f32 {
        match *self {
            Activation::Identity => x,
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => super::tanh::tanh(x),
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu { alpha } | Activation::Prelu { alpha, .. } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Activation::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x.exp_m1()
                }
            }
            Activation::Selu => {
                if x > 0.0 {
                    SELU_L * x
                } else {
                    SELU_L * SELU_A * x.exp_m1()
                }
            }
            Activation::Gelu => 0.5 * x * (1.0 + (GELU_C * (x + 0.044715 * x * x * x)).tanh()),
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Gaussian => (-x * x).exp(),
            Activation::Soboleva { a, b, c, d } => ((a * x).exp() - (-b * x).exp()) / ((c * x).exp() + (-d * x).exp()),
            Activation::BinaryStep => {
                if x >= 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Arelu { k, n } => {
                if x > 0.0 {
                    k * pow(x, n)
                } else {
                    0.0
                }
            }
        }
    }

    /// df/dz at z, given a = f(z).
    pub fn derivative(&self, z: f32, a: f32) -> f32 {
        match *self {
            Activation::Identity => 1.0,
            Activation::Sigmoid => a * (1.0 - a),
            Activation::Tanh => 1.0 - a * a,
            Activation::Relu => {
                if z > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu { alpha } | Activation::Prelu { alpha, .. } => {
                if z >= 0.0 {
                    1.0
                } else {
                    alpha
                }
            }
            Activation::Elu { alpha } => {
                if z > 0.0 {
                    1.0
                } else {
                    a + alpha
                }
            }
            Activation::Selu => {
                if z > 0.0 {
                    SELU_L
                } else {
                    a + SELU_L * SELU_A
                }
            }
            Activation::Gelu => {
                let u = GELU_C * (z + 0.044715 * z * z * z);
                let t = u.tanh();
                0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * z * z)
            }
            Activation::Silu => {
                let s = 1.0 / (1.0 + (-z).exp());
                s * (1.0 + z * (1.0 - s))
            }
            Activation::Softplus => 1.0 / (1.0 + (-z).exp()),
            Activation::Softsign => 1.0 / ((1.0 + z.abs()) * (1.0 + z.abs())),
            Activation::Gaussian => -2.0 * z * a,
            Activation::Soboleva { a: pa, b, c, d } => {
                let num = (pa * z).exp() - (-b * z).exp();
                let den = (c * z).exp() + (-d * z).exp();
                let dnum = pa * (pa * z).exp() + b * (-b * z).exp();
                let dden = c * (c * z).exp() - d * (-d * z).exp();
                (dnum * den - num * dden) / (den * den)
            }
            Activation::BinaryStep => 0.0,
            Activation::Arelu { k, n } => {
                if z > 0.0 {
                    k * n * pow(z, n - 1.0)
                } else {
                    0.0
                }
            }
        }
    }

    /// Largest |f'| (the factor LALR assumes is 1 for ReLU-type nets); informational.
    pub fn name(&self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v["name"].as_str().map(String::from)).unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One of every activation (binary step aside: it has no derivative to check).
    pub(crate) fn all() -> Vec<Activation> {
        vec![
            Activation::Identity,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Relu,
            Activation::LeakyRelu { alpha: 0.01 },
            Activation::Prelu { alpha: 0.25, learnable: false },
            Activation::Elu { alpha: 1.0 },
            Activation::Selu,
            Activation::Gelu,
            Activation::Silu,
            Activation::Softplus,
            Activation::Softsign,
            Activation::Gaussian,
            Activation::Soboleva { a: 1.0, b: 0.8, c: 1.2, d: 0.9 },
            Activation::Arelu { k: 0.6, n: 1.2 },
        ]
    }

    /// Central finite differences in f64 of the f32 function, away from kinks at 0.
    #[test]
    fn derivatives_match_finite_differences() {
        for act in all() {
            for &x in &[-2.3f32, -0.7, -0.2, 0.3, 0.9, 1.7, 3.1] {
                let h = 1e-3f32;
                let fd = (f64::from(act.f(x + h)) - f64::from(act.f(x - h))) / (2.0 * f64::from(h));
                let an = f64::from(act.derivative(x, act.f(x)));
                assert!((fd - an).abs() < 2e-3 * (1.0 + an.abs()), "{act:?} at {x}: fd {fd} vs {an}");
            }
        }
    }

    // Hand values: A-ReLU(2) = 0.6·2^1.2 = 1.37844; A-ReLU'(2) = 0.6·1.2·2^0.2 = 0.82706;
    // SELU(−1) = 1.0507·1.67326·(e^−1 − 1) = −1.11133; GELU_tanh(1) = 0.84119 (PyTorch).
    #[test]
    fn hand_values() {
        let ar = Activation::Arelu { k: 0.6, n: 1.2 };
        assert!((ar.f(2.0) - 1.378_44).abs() < 1e-4);
        assert!((ar.derivative(2.0, ar.f(2.0)) - 0.827_06).abs() < 1e-4);
        assert_eq!(ar.f(-1.0), 0.0);
        assert_eq!(ar.derivative(0.0, 0.0), 0.0);
        assert!((Activation::Selu.f(-1.0) + 1.111_33).abs() < 1e-4);
        assert!((Activation::Gelu.f(1.0) - 0.841_19).abs() < 1e-4);
        assert_eq!(Activation::BinaryStep.f(0.0), 1.0);
    }

    /// The lecture's printed ranges (dnn_lecture.md:176, 210): GELU maps ℝ onto [−0.17, ∞)
    /// and SiLU onto [−0.278, ∞). The minima on a fine grid, to the printed digits (the
    /// lecture's GELU is the erf form, ours PyTorch's tanh approximation: both −0.170).
    #[test]
    fn the_lectures_printed_ranges() {
        let min = |a: Activation| (-50_000..0).map(|i| a.f(i as f32 * 1e-4)).fold(f32::INFINITY, f32::min);
        assert!((min(Activation::Gelu) - -0.17).abs() < 5e-3, "{}", min(Activation::Gelu));
        assert!((min(Activation::Silu) - -0.278).abs() < 5e-4, "{}", min(Activation::Silu));
    }
}
