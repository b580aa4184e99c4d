//! The lecture's learning-rate schedules ("Adaptive learning rate", dnn_lecture.md:630–645):
//! decreasing (`step`: halving on a fixed schedule, `linear`: linear decrease from α₀ to α_f)
//! and increasing (`one_cycle`, `cosine_restarts`: SGD with warm restarts). The lecture names
//! them without formulas; each follows its reference implementation (PyTorch's `StepLR`,
//! `OneCycleLR`, `CosineAnnealingWarmRestarts`), stepped once per epoch. Epoch e (1-based) is
//! scheduler step e − 1.

use super::super::params::Policy;
use super::{EpochView, LrSchedule};
use serde_json::Value;
use std::f64::consts::PI;

pub(super) struct Lecture {
    pub(super) policy: Policy,
    /// The params' `lr`: the start (step, linear), the peak (one_cycle), the maximum (cosine).
    pub(super) base: f64,
    pub(super) epochs: usize,
}

/// Cosine annealing from `start` to `end` at fraction `pct` (PyTorch's `_annealing_cos`).
fn anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
}

impl Lecture {
    /// The rate of epoch `e`.
    pub(super) fn rate(&self, e: usize) -> f64 {
        let t = e.saturating_sub(1);
        match self.policy {
            Policy::Step { every, factor } => self.base * factor.powi((t / every) as i32),
            Policy::Linear { final_lr, until } => {
                let tau = if until == 0 { self.epochs.saturating_sub(1).max(1) } else { until };
                self.base + (final_lr - self.base) * (t as f64 / tau as f64).min(1.0)
            }
            Policy::OneCycle { div_factor, final_div_factor, pct_start } => {
                let initial = self.base / div_factor;
                let floor = initial / final_div_factor;
                let peak_step = pct_start * self.epochs as f64 - 1.0;
                let last = self.epochs as f64 - 1.0;
                let t = t as f64;
                let frac = |from: f64, to: f64| if to > from { (t - from) / (to - from) } else { 1.0 };
                if t <= peak_step {
                    anneal(initial, self.base, frac(0.0, peak_step))
                } else {
                    anneal(self.base, floor, frac(peak_step, last))
                }
            }
            Policy::CosineRestarts { t0, t_mult, min_lr } => {
                let (mut t_i, mut t_cur) = (t0, t);
                while t_cur >= t_i {
                    t_cur -= t_i;
                    t_i *= t_mult;
                }
                min_lr + (self.base - min_lr) * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
            }
            _ => unreachable!("not one of the lecture's schedules"),
        }
    }
}

impl LrSchedule for Lecture {
    fn before_epoch(&mut self, epoch: usize, _lr: f64, _view: &mut EpochView) -> (f64, Option<Value>) {
        (self.rate(epoch), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(policy: &str, base: f64, epochs: usize) -> Vec<f64> {
        let policy: Policy = serde_json::from_str(policy).unwrap();
        let s = Lecture { policy, base, epochs };
        (1..=epochs).map(|e| s.rate(e)).collect()
    }

    fn close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    /// By hand: halving every 2 epochs from 0.1; linear 0.1 → 0.01 over epochs 1..4 (τ = 3),
    /// then held at 0.01; with until = 2 it reaches 0.01 at epoch 3.
    #[test]
    fn step_and_linear_by_hand() {
        close(&rates(r#"{"name": "step", "every": 2}"#, 0.1, 5), &[0.1, 0.1, 0.05, 0.05, 0.025]);
        close(&rates(r#"{"name": "linear", "final_lr": 0.01}"#, 0.1, 4), &[0.1, 0.07, 0.04, 0.01]);
        close(&rates(r#"{"name": "linear", "final_lr": 0.01, "until": 2}"#, 0.1, 4), &[0.1, 0.055, 0.01, 0.01]);
    }

    /// PyTorch's OneCycleLR and CosineAnnealingWarmRestarts, their step logic written out in
    /// Python (torch is not installed here; the code mirrors torch/optim/lr_scheduler.py):
    ///   onecycle(max_lr=0.1, total=10, div=25, final_div=1e4, pct=0.3): phases end at
    ///   pct·total − 1 = 2 (0.004 → 0.1) and 9 (0.1 → 4e-7), cos annealing per phase →
    ///   [0.004, 0.052, 0.1, 0.09504846320134738, 0.0811745653949763, 0.06112620219362893,
    ///    0.03887419780637107, 0.0188258346050237, 0.004951936798652629, 4e-07]
    ///   sgdr(base=0.1, T_0=2, T_mult=2, eta_min=0), 8 steps: T_cur += 1; if T_cur ≥ T_i:
    ///   T_cur −= T_i, T_i ·= T_mult →
    ///   [0.1, 0.05, 0.1, 0.08535533905932738, 0.05, 0.014644660940672627, 0.1, 0.09619397662556434]
    #[test]
    fn one_cycle_and_warm_restarts_match_pytorch() {
        close(
            &rates(r#"{"name": "one_cycle"}"#, 0.1, 10),
            &[
                0.004,
                0.052,
                0.1,
                0.09504846320134738,
                0.0811745653949763,
                0.06112620219362893,
                0.03887419780637107,
                0.0188258346050237,
                0.004951936798652629,
                4e-07,
            ],
        );
        close(
            &rates(r#"{"name": "cosine_restarts", "t0": 2, "t_mult": 2}"#, 0.1, 8),
            &[0.1, 0.05, 0.1, 0.08535533905932738, 0.05, 0.014644660940672627, 0.1, 0.09619397662556434],
        );
    }
}
