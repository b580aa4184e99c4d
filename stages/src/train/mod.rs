//! `train`: fit an MLP (or linear / logistic / softmax regression, the zero-hidden case) to a
//! dataset artifact and write its weights (safetensors), the weights at the epochs listed in
//! `save_at` (`epoch100`, `epoch200`, … so one 200-epoch run yields a table's 100- and
//! 200-epoch columns) and its history (per epoch: train loss, learning rate, and metrics of
//! the optional `eval` dataset).
//!
//! The module is split by concern: [`params`] (what a pipeline writes, checked at plan time),
//! [`fit`] (the loop), [`schedule`] (one file per learning-rate policy behind `LrSchedule`:
//! `fixed`; `dgex_decay`, the D-GEX authors' code; `exp_decay`, LogGENE's baseline;
//! `lipschitz`, LALR with presets `paper` and `published_code`; `lipschitz_adaptive`,
//! LipschitzLR's adaptive optimizers) and [`stepper`] (first-order optimizers vs L-BFGS
//! behind `Stepper`).

pub mod candle;
pub mod fit;
pub mod params;
pub mod schedule;
pub mod stepper;

pub use fit::{fit, FitData, Trained};
pub use params::{AdaptiveRule, Backend, Batching, Clip, LalrVariant, MChoice, Policy, TrainParams, YNorm};
pub use schedule::{lalr_knobs, lalr_rate, Lalr, Measured};

use crate::dataset::Dataset;
use crate::metrics::targets_for;
use crate::nn::mlp::Mlp;
use repro_core::{write_json, Ctx, InputSlot, Metrics, ParamError, StageError, StageResult, TypedStage};

/// The `train` stage kind.
pub struct Train;

impl TypedStage for Train {
    type Params = TrainParams;
    const KIND: &'static str = "train";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Train an MLP (hidden = [] for linear / logistic / softmax regression) with the papers' activations, losses, optimizers, initializers and learning-rate policies (fixed, dgex_decay, exp_decay, lipschitz with `paper` / `published_code` variants). Outputs: model, epoch<E> for each save_at epoch, history (JSON).";
    const INPUTS: &'static [InputSlot] = &[
        InputSlot::one("data", "training dataset"),
        InputSlot::optional("eval", "dataset evaluated after every epoch (history only)"),
        InputSlot::optional(
            "pretrained",
            "a model whose layers initialize the first hidden layers (e.g. pretrain.model: fine-tuning)",
        ),
    ];

    fn validate(p: &TrainParams) -> Result<(), ParamError> {
        params::validate(p)
    }

    fn outputs(p: &TrainParams) -> Vec<String> {
        let mut v = vec!["model".to_string(), "history".to_string()];
        v.extend(p.save_at.iter().map(|e| format!("epoch{e}")));
        v
    }

    fn threads(_p: &TrainParams) -> usize {
        usize::MAX
    }

    fn run(&self, p: &TrainParams, ctx: &Ctx) -> StageResult<Metrics> {
        let d = Dataset::read(&ctx.input("data")?.path)?;
        if d.is_absent() {
            // Data the user did not supply: empty model files, an empty history; `evaluate`
            // on the (equally absent) test data reports null metrics without reading them.
            for name in Self::outputs(p) {
                std::fs::write(ctx.output(&name), if name == "history" { "[]\n" } else { "" })?;
            }
            return Ok(Metrics::new());
        }
        d.validate("data")?;
        let (y, q) = targets_for(&d, &p.loss)?;
        let ev = match ctx.optional_input("eval") {
            Some(a) => {
                let e = Dataset::read(&a.path)?;
                if e.p() != d.p() {
                    return Err(StageError::param("eval", format!("eval has {} features, data has {}", e.p(), d.p())));
                }
                let (ey, _) = targets_for(&e, &p.loss)?;
                Some((e.x, ey))
            }
            None => None,
        };
        let pretrained = match ctx.optional_input("pretrained") {
            Some(a) => Some(Mlp::load(&a.path)?.0),
            None => None,
        };
        let data = FitData {
            x: &d.x,
            y: &y,
            q,
            eval: ev.as_ref().map(|(a, b)| (a.as_slice(), b.as_slice())),
            pretrained: pretrained.as_ref(),
        };
        let t = fit(p, &data, ctx.seed, ctx.threads, Some(ctx))?;
        let info =
            serde_json::json!({"features": d.features, "targets": d.targets, "classes": d.classes, "loss": p.loss});
        t.model.save(&ctx.output("model"), info.clone())?;
        for (e, m) in &t.saved {
            m.save(&ctx.output(&format!("epoch{e}")), info.clone())?;
        }
        write_json(&ctx.output("history"), &t.history)?;
        let mut m = Metrics::new();
        if p.backend == Backend::Candle {
            // What ran is part of the record (the device is also in the params, hence the key).
            m.insert("backend".into(), format!("candle {}", candle::CANDLE_VERSION).into());
            m.insert("device".into(), p.device.clone().into());
        }
        if let Some(last) = t.history.last() {
            m.insert("final".into(), last.clone());
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::act::Activation;
    use crate::nn::init::Init;
    use crate::nn::loss::Loss;
    use crate::nn::mlp::Mlp;
    use crate::nn::optim::{Convention, Method, Optimizer, State};
    use crate::rng::{rng, Rng};

    fn sgd(momentum: f64, nesterov: bool) -> Optimizer {
        Optimizer::Sgd { momentum, nesterov, convention: Convention::Pytorch }
    }

    /// The lecture's worked example (dnn_lecture.md): y = 3x + 2 + U(−0.1, 0.1) on 30 points,
    /// θ0 = (10, 5), α = 0.005, 1000 full-batch iterations; SGD, momentum 0.6 and Nesterov 0.8
    /// all land near (intercept, slope) = (2, 3).
    #[test]
    fn lecture_regression_lands_near_2_3() {
        let mut r = rng(0, "lecture");
        let xs: Vec<f32> = (0..30).map(|i| i as f32 / 29.0 * 4.0 - 2.0).collect();
        let ys: Vec<f32> = xs.iter().map(|x| 3.0 * x + 2.0 + (r.random::<f32>() * 0.2 - 0.1)).collect();
        for opt in [sgd(0.0, false), sgd(0.6, false), sgd(0.8, true)] {
            let p = TrainParams {
                hidden: vec![],
                init: Init::Uniform { a: 0.0 },
                loss: Loss::Mse,
                optimizer: opt,
                lr: 0.005,
                epochs: 1000,
                batch: 30,
                ..Default::default()
            };
            // θ0 = (10, 5): start from it by training a model whose weights we set first.
            let mut t = fit(&TrainParams { epochs: 1, lr: 1e-30, ..p.clone() }, &FitData::new(&xs, &ys, 1), 1, 1, None)
                .unwrap();
            t.model.layers[0].w[0] = 5.0;
            t.model.layers[0].b[0] = 10.0;
            let (w, b) = run_from(&p, t.model, &xs, &ys);
            assert!((b - 2.0).abs() < 0.1 && (w - 3.0).abs() < 0.1, "{opt:?}: intercept {b}, slope {w}");
        }
    }

    /// Full-batch gradient descent from a given model (the loop of `fit`, without init).
    fn run_from(p: &TrainParams, mut model: Mlp, x: &[f32], y: &[f32]) -> (f32, f32) {
        let mut ws = model.workspace(x.len());
        let Method::Elementwise(rule) = p.optimizer.method() else { panic!("not elementwise") };
        let mut st: Vec<(State, State)> =
            model.layers.iter().map(|l| (rule.state(l.w.len()), rule.state(l.b.len()))).collect();
        ws.inp[0].copy_from_slice(x);
        for _ in 0..p.epochs {
            model.forward(&mut ws, x.len(), None, 1);
            let out = model.output(&ws, x.len()).to_vec();
            p.loss.eval(&out, y, x.len(), 1, &mut ws.dz[0]);
            model.backward(&mut ws, x.len(), 1);
            rule.step(&mut model.layers[0].w, &ws.gw[0], &mut st[0].0, p.lr);
            rule.step(&mut model.layers[0].b, &ws.gb[0], &mut st[0].1, p.lr);
        }
        (model.layers[0].w[0], model.layers[0].b[0])
    }

    /// A 2-4-1 sigmoid net learns XOR from N(0, 1/√fan_in) initialization.
    #[test]
    fn xor_trains() {
        let x = [0f32, 0., 0., 1., 1., 0., 1., 1.];
        let y = [0f32, 1., 1., 0.];
        let p = TrainParams {
            hidden: vec![4],
            activation: Activation::Sigmoid,
            output_activation: Activation::Sigmoid,
            init: Init::Normal { std: 0.0 },
            loss: Loss::Mse,
            optimizer: sgd(0.9, false),
            lr: 2.0,
            epochs: 3000,
            batch: 4,
            ..Default::default()
        };
        let t = fit(&p, &FitData::new(&x, &y, 1), 3, 1, None).unwrap();
        let pred = t.model.predict(&x, 1);
        for (p, t) in pred.iter().zip(y) {
            assert!((p - t).abs() < 0.2, "{pred:?}");
        }
    }

    #[test]
    fn same_seed_same_bytes_any_thread_count() {
        let mut r = rng(9, "data");
        let x: Vec<f32> = (0..300 * 20).map(|_| r.random::<f32>()).collect();
        let y: Vec<f32> = (0..300 * 7).map(|_| r.random::<f32>()).collect();
        let p = TrainParams {
            hidden: vec![64],
            epochs: 3,
            batch: 50,
            batching: Batching::Random,
            steps_per_epoch: 4,
            ..Default::default()
        };
        let a = fit(&p, &FitData::new(&x, &y, 7), 5, 2, None).unwrap();
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| fit(&p, &FitData::new(&x, &y, 7), 5, 1, None).unwrap());
        assert_eq!(a.model, b.model);
        assert_eq!(a.history, b.history);
    }

    #[test]
    fn divergence_names_epoch_step_and_lr() {
        let x: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let y: Vec<f32> = (0..40).map(|i| (i * i) as f32).collect();
        let p = TrainParams { hidden: vec![], lr: 10.0, epochs: 50, batch: 40, ..Default::default() };
        let Err(e) = fit(&p, &FitData::new(&x, &y, 1), 1, 1, None) else { panic!("expected divergence") };
        assert!(
            e.message.contains("epoch") && e.message.contains("step 1") && e.message.contains("learning rate"),
            "{e}"
        );
    }

    /// `lipschitz_adaptive` schedules by hand. Softmax regression (no hidden layer, so the
    /// penultimate activations are the inputs) on X = [[1, 2], [3, 4]], classes 0/1, one batch
    /// of 2: Kz = √30, c = (k − 1)/(k·bs) = 1/4, K = c·Kz = 1.369306, S = ‖X∘X‖_F = √354,
    /// S_est = c²·S. Python:
    ///   sgd 1/K = 0.730297; AdaMo epoch 2: K1 = 0.9·0.1 + 0.1·K → 1/K1 = 4.406633;
    ///   RMSprop K2 = 0.1·S_est → (√K2 + 1e-7)/Kz = 0.062608, then K2 = 0.9·K2 + 0.1·S_est → 0.086299;
    ///   Adam K1 = 0.1·K, K2 = 0.001·S_est → (√K2 + 1e-7)/K1 = 0.250433, then 0.186356.
    /// The weights move between epochs but the inputs, hence Kz and S, do not.
    #[test]
    fn adaptive_schedules_by_hand() {
        let x = [1f32, 2., 3., 4.];
        let y = [1f32, 0., 0., 1.];
        let lrs = |rule: AdaptiveRule| -> Vec<f64> {
            let p = TrainParams {
                hidden: vec![],
                loss: Loss::SoftmaxCe,
                policy: Policy::LipschitzAdaptive { rule, first_lr: 0.1, bias_correction: false },
                epochs: 2,
                batch: 2,
                ..Default::default()
            };
            let t = fit(&p, &FitData::new(&x, &y, 2), 1, 1, None).unwrap();
            t.history.iter().map(|h| h["lr"].as_f64().unwrap()).collect()
        };
        let close = |got: Vec<f64>, want: [f64; 2]| {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-5 * w, "{got:?} vs {want:?}");
            }
        };
        close(lrs(AdaptiveRule::Sgd), [0.730297, 0.730297]);
        close(lrs(AdaptiveRule::Momentum), [0.1, 4.406633]);
        close(lrs(AdaptiveRule::Rmsprop), [0.062608, 0.086299]);
        close(lrs(AdaptiveRule::Adam), [0.250433, 0.186356]);
    }

    /// Full-batch L-BFGS through the trainer fits y = 2x + 1 exactly (no noise: the least-squares
    /// solution is w = 2, b = 1), from PyTorch-default initial weights, in one epoch of 20 iterations.
    #[test]
    fn lbfgs_fits_a_line() {
        let x = [0f32, 1., 2., 3., 4.];
        let y: Vec<f32> = x.iter().map(|v| 2.0 * v + 1.0).collect();
        let p = TrainParams {
            hidden: vec![],
            loss: Loss::Mse,
            optimizer: Optimizer::Lbfgs { max_iter: 20, history: 100, tolerance_grad: 1e-7, tolerance_change: 1e-9 },
            lr: 1.0,
            epochs: 1,
            batch: 5,
            ..Default::default()
        };
        let t = fit(&p, &FitData::new(&x, &y, 1), 4, 1, None).unwrap();
        let (w, b) = (t.model.layers[0].w[0], t.model.layers[0].b[0]);
        assert!((w - 2.0).abs() < 1e-3 && (b - 1.0).abs() < 1e-3, "w {w}, b {b}");
    }

    /// A learnable PReLU recovers the slope of data made by one: y = x for x ≥ 0 and 0.1·x
    /// below. A 1 → 1 → 1 network with positive weights represents it exactly with α = 0.1 (any
    /// w, v > 0 with v·w = 1, zero biases; negative w would mirror it to α = 10), so from
    /// w = v = 0.5 training moves α from 0.25 to near 0.1; a fixed slope stays at 0.25.
    #[test]
    fn learnable_prelu_learns_the_slope() {
        let x: Vec<f32> = (0..40).map(|i| i as f32 / 10.0 - 2.0).collect();
        let y: Vec<f32> = x.iter().map(|v| if *v >= 0.0 { *v } else { 0.1 * v }).collect();
        let p = |learnable: bool| TrainParams {
            hidden: vec![1],
            activation: Activation::Prelu { alpha: 0.25, learnable },
            init: Init::Constant { weight: 0.5, bias: 0.0 },
            loss: Loss::Mse,
            optimizer: sgd(0.9, false),
            lr: 0.02,
            epochs: 3000,
            batch: 40,
            ..Default::default()
        };
        let t = fit(&p(true), &FitData::new(&x, &y, 1), 2, 1, None).unwrap();
        let Activation::Prelu { alpha, .. } = t.model.layers[0].act else { panic!() };
        let final_loss = t.history.last().unwrap()["train_loss"].as_f64().unwrap();
        assert!((alpha - 0.1).abs() < 0.03, "α {alpha}, loss {final_loss}");
        let fixed = fit(&p(false), &FitData::new(&x, &y, 1), 2, 1, None).unwrap();
        assert_eq!(fixed.model.layers[0].act, Activation::Prelu { alpha: 0.25, learnable: false });
    }

    /// The LALR rate training computes, by hand, for every variant. A 2 → 2 → 1 network, ReLU
    /// hidden layer, every weight 0.5 and bias 0; X = [[1, 2], [3, 1], [2, 2], [0, 1]],
    /// y = [1, 2, 0, 1]; sequential batches of 2. Hidden activations h = 0.5·(x₁ + x₂) per
    /// unit = 1.5, 2, 2, 0.5; outputs = h. Kz = max batch ‖Z‖_F = √(2·1.5² + 2·2²) = √12.5,
    /// Ka = max batch ‖ŷ‖_F = √(1.5² + 2²) = 2.5, ‖Y‖_F = √6, ‖X‖_F = √24, max batch ‖y‖_F = √5.
    /// Python:
    ///   paper (m = 4 rows, ‖Y‖, 0.3):           0.3·4/((2.5 + √6)·√12.5)  = 0.06857499916318371
    ///   published_code with Kz from the training batches (m = 4, ‖X‖, 0.5):
    ///                                           0.5·4/((2.5 + √24)·√12.5) = 0.07645451998518922
    ///   paper with m = "batch" (m = 2, √5):      0.3·2/((2.5 + √5)·√12.5)  = 0.035832599593378395
    ///   published_script: the constant 1e-4 (the script never calls LALR).
    ///   m = "batch", norms = "max_row" (LogGENE's code: Ka = max row ‖ŷ‖₂ = 2, ‖y‖ = max
    ///   row ‖y‖₂ = 2):                          0.3·2/((2 + 2)·√12.5)      = 0.04242640687119285
    ///   log-cosh, Theorem 2 (g(0) = 0), m = "batch": L = tanh(√5)·√12.5/2,
    ///                                           0.3·2/(tanh(√5)·√12.5)      = 0.17362748419392496
    ///   the same with norms = "max_row" (‖y‖ = 2): 0.3·2/(tanh(2)·√12.5)   = 0.17603814558025893
    #[test]
    fn lalr_rate_of_every_variant_by_hand() {
        let x = [1f32, 2., 3., 1., 2., 2., 0., 1.];
        let y = [1f32, 2., 0., 1.];
        let first_lr_of = |policy: &str, loss: Loss| -> f64 {
            let policy: Policy = serde_json::from_str(policy).unwrap();
            let p = TrainParams {
                hidden: vec![2],
                activation: Activation::Relu,
                init: Init::Constant { weight: 0.5, bias: 0.0 },
                loss,
                policy,
                epochs: 1,
                batch: 2,
                ..Default::default()
            };
            fit(&p, &FitData::new(&x, &y, 1), 1, 1, None).unwrap().history[0]["lr"].as_f64().unwrap()
        };
        let first_lr = |policy: &str| first_lr_of(policy, Loss::Mse);
        let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
        close(first_lr(r#"{"name": "lipschitz", "variant": "paper"}"#), 0.06857499916318371);
        let code_on_train = r#"{"name": "lipschitz", "variant": "published_code", "kz_from": "train_batches"}"#;
        close(first_lr(code_on_train), 0.07645451998518922);
        close(first_lr(r#"{"name": "lipschitz", "variant": "paper", "m": "batch"}"#), 0.035832599593378395);
        close(first_lr(r#"{"name": "lipschitz", "variant": "published_script"}"#), 1e-4);
        let rows = r#"{"name": "lipschitz", "variant": "paper", "m": "batch", "norms": "max_row"}"#;
        close(first_lr(rows), 0.04242640687119285);
        let lc = r#"{"name": "lipschitz", "variant": "paper", "m": "batch"}"#;
        close(first_lr_of(lc, Loss::LogCosh), 0.17362748419392496);
        close(first_lr_of(rows, Loss::LogCosh), 0.17603814558025893);
    }

    /// `published_code` takes Kz from the `eval` set, as the authors' code did (a stale global
    /// holding the last forward pass, the test-set evaluation). Same network and data as
    /// above, eval X = [[1, 1], [2, 0]], floor 0 so that epoch 1 leaves the weights as they
    /// are: epoch 1 uses the code's sentinel Kz = 1e18: 0.5·4/((2.5 + √24)·1e18) = 2.7031e-19;
    /// epoch 2 uses ‖Z_eval‖_F = ‖[[1, 1], [1, 1]]‖ = 2: 0.5·4/((2.5 + √24)·2) = 0.13515377.
    /// Without `eval` the run is refused, naming `policy`.
    #[test]
    fn published_code_takes_kz_from_the_eval_set() {
        let (x, y) = ([1f32, 2., 3., 1., 2., 2., 0., 1.], [1f32, 2., 0., 1.]);
        let (ex, ey) = ([1f32, 1., 2., 0.], [0f32, 0.]);
        let policy: Policy =
            serde_json::from_str(r#"{"name": "lipschitz", "variant": "published_code", "floor": 0.0}"#).unwrap();
        let p = TrainParams {
            hidden: vec![2],
            activation: Activation::Relu,
            init: Init::Constant { weight: 0.5, bias: 0.0 },
            loss: Loss::Mse,
            policy,
            epochs: 2,
            batch: 2,
            ..Default::default()
        };
        let data = FitData { x: &x, y: &y, q: 1, eval: Some((&ex, &ey)), pretrained: None };
        let h = fit(&p, &data, 1, 1, None).unwrap().history;
        let lr: Vec<f64> = h.iter().map(|e| e["lr"].as_f64().unwrap()).collect();
        assert!((lr[0] - 2.703075476694486e-19).abs() < 1e-25, "{lr:?}");
        assert!((lr[1] - 0.1351537738347243).abs() < 1e-6, "{lr:?}");
        let Err(e) = fit(&p, &FitData::new(&x, &y, 1), 1, 1, None) else { panic!("eval is required") };
        assert_eq!(e.param.as_deref(), Some("policy"));
    }

    /// The LALR paper's worked example (§IV, after eq. 7): Kz = 983.88, Ka = 142.86,
    /// ‖y‖ = 4329.24, scale 0.3 gives "approximately 1.36×10⁻⁴" through the same function the
    /// `paper` variant trains with, when m = 2,000 examples: 0.3·2000/((142.86 + 4329.24)·983.88)
    /// = 1.3636e-4. With m = 200 (a batch) it would be 1.36e-5, ten times off.
    #[test]
    fn lalr_papers_worked_example() {
        let policy: Policy = serde_json::from_str(r#"{"name": "lipschitz", "variant": "paper"}"#).unwrap();
        let k = lalr_knobs(&policy).unwrap();
        let c = Measured { kz: 983.88, ka: 142.86, ynorm: 4329.24, m: 2000.0, outputs: 4760, decay: 0.0 };
        let (lr, _) = lalr_rate(&k, Loss::MseSum, c);
        assert!((lr - 0.00013636333425686765).abs() < 1e-12, "{lr}");
        assert_eq!(format!("{lr:.2e}"), "1.36e-4");
    }

    /// Presets resolve into the canonical params: `paper` and `published_code` have different
    /// keys, and an override shows.
    #[test]
    fn lalr_presets_resolve_into_the_canonical_params() {
        let paper: Policy = serde_json::from_str(r#"{"name": "lipschitz", "variant": "paper"}"#).unwrap();
        let v = serde_json::to_value(&paper).unwrap();
        assert_eq!(v["m"], "train_rows");
        assert_eq!(v["scale"], 0.3);
        let over: Policy = serde_json::from_str(r#"{"name": "lipschitz", "variant": "paper", "scale": 0.1}"#).unwrap();
        assert_eq!(serde_json::to_value(&over).unwrap()["scale"], 0.1);
        // Frobenius norms, the default, stay out of the canonical params; max_row shows.
        assert!(v.get("norms").is_none());
        let rows: Policy =
            serde_json::from_str(r#"{"name": "lipschitz", "variant": "paper", "norms": "max_row"}"#).unwrap();
        assert_eq!(serde_json::to_value(&rows).unwrap()["norms"], "max_row");
        let bad = serde_json::from_str::<Policy>(r#"{"name": "lipschitz", "variant": "paper", "mm": 1}"#);
        assert!(bad.unwrap_err().to_string().contains("mm"));
    }

    /// A `pretrained` stack replaces the drawn weights of the first layers (seen after an
    /// epoch at a negligible rate); one that does not fit the network is refused, naming the
    /// input.
    #[test]
    fn pretrained_layers_initialize_the_first_layers() {
        let x = [0f32, 1., 1., 0., 1., 1.];
        let y = [1f32, 0., 1.];
        let mut pre = Mlp::new(&[2, 3], &[Activation::Relu], &[]);
        pre.layers[0].w = vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        pre.layers[0].b = vec![0.01, 0.02, 0.03];
        let p = TrainParams { hidden: vec![3], lr: 1e-30, epochs: 1, batch: 3, ..Default::default() };
        let data = FitData { pretrained: Some(&pre), ..FitData::new(&x, &y, 1) };
        let t = fit(&p, &data, 1, 1, None).unwrap();
        assert_eq!(t.model.layers[0].w, pre.layers[0].w);
        assert_eq!(t.model.layers[0].b, pre.layers[0].b);
        let other = fit(&p, &FitData::new(&x, &y, 1), 1, 1, None).unwrap();
        assert_eq!(t.model.layers[1], other.model.layers[1], "the output layer is drawn as without");
        let wide = TrainParams { hidden: vec![4], ..p };
        let Err(e) = fit(&wide, &data, 1, 1, None) else { panic!("2→3 does not fit 2→4") };
        assert_eq!(e.param.as_deref(), Some("pretrained"));
    }
}
