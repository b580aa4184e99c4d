//! Weight initializers, drawn from the stage's seeded generator (candle's CPU generator
//! cannot be seeded, so weights never come from it).

use crate::rng::{normal, Rng, StageRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Init {
    /// PyTorch `nn.Linear` default: W, b ~ U(±1/√fan_in) (kaiming_uniform with a = √5).
    TorchDefault,
    /// U(±√(6/(fan_in + fan_out))), zero bias (pylearn2 D-GEX hidden layers).
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunNormal,
    /// U(±a), zero bias (D-GEX output layer: a = 1e-4).
    Uniform {
        a: f64,
    },
    /// N(0, std²), zero bias; `std = 0` means 1/√fan_in (the lecture's XOR experiment).
    Normal {
        #[serde(default)]
        std: f64,
    },
    /// Every weight `weight`, every bias `bias` (the lecture's θ0 = (10, 5)).
    Constant {
        weight: f64,
        bias: f64,
    },
}

impl Init {
    /// Fills a fan_in × fan_out weight matrix and its bias.
    pub fn fill(&self, w: &mut [f32], b: &mut [f32], fan_in: usize, fan_out: usize, rng: &mut StageRng) {
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        let uni = |rng: &mut StageRng, a: f64| -> f32 { (rng.random::<f64>() * 2.0 * a - a) as f32 };
        b.fill(0.0);
        match *self {
            Init::TorchDefault => {
                let a = 1.0 / fi.sqrt();
                w.iter_mut().for_each(|v| *v = uni(rng, a));
                b.iter_mut().for_each(|v| *v = uni(rng, a));
            }
            Init::GlorotUniform => {
                let a = (6.0 / (fi + fo)).sqrt();
                w.iter_mut().for_each(|v| *v = uni(rng, a));
            }
            Init::HeUniform => {
                let a = (6.0 / fi).sqrt();
                w.iter_mut().for_each(|v| *v = uni(rng, a));
            }
            Init::Uniform { a } => w.iter_mut().for_each(|v| *v = uni(rng, a)),
            Init::Constant { weight, bias } => {
                w.fill(weight as f32);
                b.fill(bias as f32);
            }
            Init::GlorotNormal | Init::HeNormal | Init::LecunNormal | Init::Normal { .. } => {
                let std = match *self {
                    Init::GlorotNormal => (2.0 / (fi + fo)).sqrt(),
                    Init::HeNormal => (2.0 / fi).sqrt(),
                    Init::LecunNormal => (1.0 / fi).sqrt(),
                    Init::Normal { std } if std > 0.0 => std,
                    _ => 1.0 / fi.sqrt(),
                };
                w.iter_mut().for_each(|v| *v = (normal(rng) * std) as f32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales() {
        let mut r = crate::rng::rng(1, "init");
        let (fi, fo) = (400, 300);
        let mut w = vec![0f32; fi * fo];
        let mut b = vec![0f32; fo];
        Init::GlorotUniform.fill(&mut w, &mut b, fi, fo, &mut r);
        let a = (6.0f32 / 700.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= a));
        // U(±a) has variance a²/3.
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!((var / (a * a / 3.0) - 1.0).abs() < 0.02, "{var}");
        Init::HeNormal.fill(&mut w, &mut b, fi, fo, &mut r);
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!((var / (2.0 / 400.0) - 1.0).abs() < 0.02, "{var}");
        Init::TorchDefault.fill(&mut w, &mut b, fi, fo, &mut r);
        assert!(b.iter().all(|v| v.abs() <= 0.05) && b.iter().any(|v| *v != 0.0));
    }
}
