//! `repro init [DIR]`: a project skeleton: `pipelines/example.toml` (a commented pipeline that
//! runs as is, on generated data), `reports/`, a `.gitignore` for the cache and a `repro.toml`
//! with the executor settings commented out. Existing files are never overwritten.

use repro_engine::diag::{exit, Error, Result};
use std::path::Path;

const EXAMPLE: &str = r#"# A pipeline: a DAG of stages, each a kind (`repro stages` lists them) with params and
# inputs. Run it with `repro run pipelines/example.toml`; the table lands in reports/.
[pipeline]
name = "example"
description = "Linear regression vs a small MLP on generated data, three seeds"
seed = 1                              # every random choice derives from it

[vars]                                # overridable: repro run … --set reps=[1,2,3,4,5]
reps = [1, 2, 3]
layers_linear = []                    # no hidden layer: linear regression
layers_mlp = [16]

[stage.data]
kind = "synthetic_linear"             # generated: y = 3x + 2 + noise
n = 400
noise = 0.3

[stage.split]
kind = "split"
input = "data"
names = ["train", "test"]
fractions = [0.8, 0.2]

[stage.fit]
kind = "train"
data = "split.train"
matrix = { model = ["linear", "mlp"], rep = "${reps}" }   # one instance per combination
seed_axes = ["rep"]                   # replicate r starts from the same seed in both models
hidden = "${layers_${model}}"         # a var chosen by the axis value
epochs = 50
batch = 32
optimizer = { name = "adam" }
lr = 0.01

[stage.eval]
kind = "evaluate"
matrix = { model = ["linear", "mlp"], rep = "${reps}" }
model = "fit.model"                   # the fit instance with the same model and rep
data = "split.test"

[stage.table]
kind = "tabulate"
report = "example"                    # published as reports/example.{md,tex,csv,parquet,json}
inputs = "eval[*]"
metric = "mae"
rows = ["model"]
row_header = "Model"
best_per = "column"                   # bold the lowest MAE of the column
caption = "Test MAE of a linear model and a 16-unit MLP (mean ± std over the seeds)"
synthetic = true
"#;

const CONFIG: &str = r#"# repro's project settings (all optional).
# executor = "local"          # or "slurm": every instance a Slurm job (README: Running on a cluster)
# [local]
# cpus = 1                    # threads per multi-threaded stage (default: its share of the free ones)
# [slurm]
# partition = "debug"
# max_jobs = 100
"#;

pub fn init(dir: &Path) -> Result<i32> {
    let files: [(&str, &str); 4] = [
        ("pipelines/example.toml", EXAMPLE),
        ("repro.toml", CONFIG),
        (".gitignore", "/cache/\n"),
        ("reports/.gitkeep", ""),
    ];
    for (rel, text) in files {
        let p = dir.join(rel);
        if p.exists() {
            outln!("kept     {} (exists)", p.display());
            continue;
        }
        std::fs::create_dir_all(p.parent().unwrap_or(dir))
            .map_err(|e| Error::io(format!("cannot create {}", p.display()), e))?;
        std::fs::write(&p, text).map_err(|e| Error::io(format!("cannot write {}", p.display()), e))?;
        outln!("created  {}", p.display());
    }
    outln!("next: repro run {}", dir.join("pipelines/example.toml").display());
    Ok(exit::OK)
}
