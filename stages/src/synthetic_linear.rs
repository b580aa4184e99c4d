//! `synthetic_linear`: y = slope·x + intercept + U(−noise, noise) at `n` points drawn
//! uniformly from [x_min, x_max] (seeded): the lecture's worked regression example
//! (dnn_lecture.md: N = 30, y = 3x + 2 + U(−0.1, 0.1)).

use crate::dataset::Dataset;
use crate::rng::{rng, Rng};
use repro_core::ParamError;
use repro_core::{stage_params, Ctx, InputSlot, Metrics, StageResult, TypedStage};

stage_params! {
    /// Params of `synthetic_linear`.
    pub struct SyntheticLinearParams {
        /// Number of points.
        n: usize = 30,
        /// Slope.
        slope: f64 = 3.0,
        /// Intercept.
        intercept: f64 = 2.0,
        /// Half-width of the uniform noise.
        noise: f64 = 0.1,
        /// Smallest x.
        x_min: f64 = -2.0,
        /// Largest x.
        x_max: f64 = 2.0,
    }
}

pub struct SyntheticLinear;

impl TypedStage for SyntheticLinear {
    type Params = SyntheticLinearParams;
    const KIND: &'static str = "synthetic_linear";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Generate y = slope·x + intercept + U(−noise, noise) at n seeded uniform points (the lecture's regression example).";
    const INPUTS: &'static [InputSlot] = &[];

    fn validate(p: &SyntheticLinearParams) -> Result<(), ParamError> {
        if p.n == 0 {
            return Err(ParamError::new("n", "must be at least 1"));
        }
        repro_core::check_memory("n", "this many points", p.n as u128 * 64)?;
        if p.x_min.is_nan() || p.x_max.is_nan() || p.x_min >= p.x_max {
            return Err(ParamError::new("x_max", "must exceed x_min"));
        }
        Ok(())
    }

    fn run(&self, p: &SyntheticLinearParams, ctx: &Ctx) -> StageResult<Metrics> {
        let mut r = rng(ctx.seed, "synthetic_linear");
        let mut x = Vec::with_capacity(p.n);
        let mut y = Vec::with_capacity(p.n);
        for _ in 0..p.n {
            let xi = p.x_min + (p.x_max - p.x_min) * r.random::<f64>();
            let e = (r.random::<f64>() * 2.0 - 1.0) * p.noise;
            x.push(xi as f32);
            y.push((p.slope * xi + p.intercept + e) as f32);
        }
        Dataset {
            features: vec!["x".into()],
            x,
            targets: vec!["y".into()],
            y,
            classes: vec![],
            labels: None,
            ids: (0..p.n as i64).collect(),
        }
        .write(&ctx.output("out"))?;
        Ok(Metrics::new())
    }
}
