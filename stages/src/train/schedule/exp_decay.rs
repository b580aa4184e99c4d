//! `exp_decay` (LogGENE's baseline): lr_e = lr · γ^(e−1).

use super::{EpochView, LrSchedule};
use serde_json::Value;

pub(super) struct ExpDecay {
    pub(super) base: f64,
    pub(super) gamma: f64,
}

impl LrSchedule for ExpDecay {
    fn before_epoch(&mut self, epoch: usize, _lr: f64, _view: &mut EpochView) -> (f64, Option<Value>) {
        (self.base * self.gamma.powi(epoch as i32 - 1), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::act::Activation;
    use crate::nn::mlp::Mlp;

    /// γ = 0.5 from 0.1: 0.1, 0.05, 0.025 (by hand).
    #[test]
    fn halves_each_epoch() {
        let model = Mlp::new(&[1, 1], &[Activation::Identity], &[]);
        let mut ws = model.workspace(1);
        let mut v = EpochView { model: &model, ws: &mut ws, x: &[0.0], y: &[0.0], batch: 1, threads: 1, eval_x: None };
        let mut s = ExpDecay { base: 0.1, gamma: 0.5 };
        let lrs: Vec<f64> = (1..=3).map(|e| s.before_epoch(e, 1.0, &mut v).0).collect();
        assert_eq!(lrs, vec![0.1, 0.05, 0.025]);
    }
}
