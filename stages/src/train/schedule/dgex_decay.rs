//! `dgex_decay` (the D-GEX authors' code): after each epoch, if the MAE on a fixed random
//! monitor subset of the training rows rose, lr ×= factor; lr never falls below the floor.

use super::{EpochView, LrSchedule};
use crate::metrics::quick_metrics;
use crate::nn::loss::Loss;
use crate::nn::mlp::Predictions;
use crate::rng::{permutation, rng};
use serde_json::Value;

pub(super) struct DgexDecay {
    factor: f64,
    floor: f64,
    /// The monitor rows, ascending.
    monitor: Vec<usize>,
    last: f64,
    /// Buffers reused every epoch: the forward pass's, the predictions, the gathered rows.
    keep: Predictions,
    pred: Vec<f32>,
    mx: Vec<f32>,
    my: Vec<f32>,
}

impl DgexDecay {
    pub(super) fn new(factor: f64, floor: f64, monitor_rows: usize, rows: usize, seed: u64) -> Self {
        let mut monitor = permutation(&mut rng(seed, "monitor"), rows);
        monitor.truncate(monitor_rows.min(rows));
        monitor.sort_unstable();
        DgexDecay {
            factor,
            floor,
            monitor,
            last: f64::INFINITY,
            keep: Predictions::default(),
            pred: Vec::new(),
            mx: Vec::new(),
            my: Vec::new(),
        }
    }
}

impl LrSchedule for DgexDecay {
    fn before_epoch(&mut self, _epoch: usize, lr: f64, _view: &mut EpochView) -> (f64, Option<Value>) {
        (lr, None)
    }

    fn after_epoch(&mut self, lr: f64, v: &mut EpochView, history: &mut serde_json::Map<String, Value>) -> f64 {
        let (pin, q) = (v.model.inputs(), v.model.outputs());
        // Every row, ascending (monitor_rows ≥ rows, as in the fast profiles): the data as it is.
        let all = self.monitor.len() * q == v.y.len();
        if !all {
            self.mx.clear();
            self.my.clear();
            for &i in &self.monitor {
                self.mx.extend_from_slice(&v.x[i * pin..(i + 1) * pin]);
                self.my.extend_from_slice(&v.y[i * q..(i + 1) * q]);
            }
        }
        let (mx, my) = if all { (v.x, v.y) } else { (&self.mx[..], &self.my[..]) };
        v.model.predict_into(mx, &mut self.keep, &mut self.pred, v.threads);
        let mae = quick_metrics(&self.pred, my, q, &Loss::Mae)["mae"].as_f64().unwrap_or(0.0);
        history.insert("monitor_mae".into(), mae.into());
        let mut lr = lr;
        if mae > self.last {
            lr *= self.factor;
        }
        self.last = mae;
        lr.max(self.floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::act::Activation;
    use crate::nn::mlp::Mlp;

    /// A model that predicts 0 on targets whose MAE is set by hand: the rate decays only after
    /// an epoch whose monitor MAE rose, and stops at the floor. With factor 0.5, floor 0.3:
    /// MAE 1 (first: no decay) → 1.0; MAE 2 (rose) → 0.5; MAE 2 (same) → 0.5; MAE 3 → 0.3 (floor).
    #[test]
    fn decays_when_the_monitor_rises() {
        let model = Mlp::new(&[1, 1], &[Activation::Identity], &[]);
        let mut ws = model.workspace(2);
        let x = [0f32, 0.];
        let mut s = DgexDecay::new(0.5, 0.3, 5000, 2, 1);
        let mut lr = 1.0;
        let mut seen = Vec::new();
        for mae in [1f32, 2., 2., 3.] {
            let y = [mae, -mae];
            let mut v = EpochView { model: &model, ws: &mut ws, x: &x, y: &y, batch: 2, threads: 1, eval_x: None };
            let mut h = serde_json::Map::new();
            lr = s.after_epoch(lr, &mut v, &mut h);
            assert_eq!(h["monitor_mae"].as_f64(), Some(mae as f64));
            seen.push(lr);
        }
        assert_eq!(seen, vec![1.0, 0.5, 0.5, 0.3]);
    }

    /// With fewer monitor rows than training rows the MAE is over the monitor rows only: a
    /// model predicting 0 on targets 1, 2, …, 10 reports the mean of the monitored targets.
    #[test]
    fn the_monitor_mae_is_over_the_monitor_rows() {
        let model = Mlp::new(&[1, 1], &[Activation::Identity], &[]);
        let mut ws = model.workspace(10);
        let x = [0f32; 10];
        let y: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        let mut s = DgexDecay::new(0.5, 0.1, 3, 10, 7);
        assert_eq!(s.monitor.len(), 3);
        let want = s.monitor.iter().map(|&i| f64::from(y[i])).sum::<f64>() / 3.0;
        let mut v = EpochView { model: &model, ws: &mut ws, x: &x, y: &y, batch: 10, threads: 1, eval_x: None };
        let mut h = serde_json::Map::new();
        s.after_epoch(1.0, &mut v, &mut h);
        assert!((h["monitor_mae"].as_f64().unwrap() - want).abs() < 1e-6, "{h:?} vs {want}");
    }
}
