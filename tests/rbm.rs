//! The ReLU RBM pipeline end to end at a small size: pretraining under every step policy,
//! fine-tuning from the pretrained stacks, both tables with their claims judged over paired
//! seeds, the loss-per-epoch figure. The verdicts themselves are findings, not asserted.

mod common;
use common::{
    claims_are_well_formed, project_with, published, published_report, run_ok, same_bytes_on_1_and_3_threads,
};

#[test]
fn rbm_adaptive_step_runs_every_policy_and_judges_the_abstract() {
    let p = project_with(&["rbm_adaptive_step.toml"]);
    let small = ["--set", "reps=[1, 2]", "--set", "pretrain_epochs=3", "--set", "finetune_epochs=2"];
    let mut args = vec!["pipelines/rbm_adaptive_step.toml"];
    args.extend(small);
    let doc = run_ok(&p, &args);
    let stages = doc["stages"].as_array().unwrap();
    // 3 constant steps + Adam + 4 adaptive variants, 2 seeds each.
    assert_eq!(stages.iter().filter(|s| s["kind"] == "pretrain").count(), 16, "{doc}");
    assert_eq!(stages.iter().filter(|s| s["kind"] == "train").count(), 18, "{doc}");

    // The reported loss is the last epoch of layer 1; its own history counts epochs 1..3 and
    // the stack's history continues with layer 2 at epochs 4..6.
    let pre = stages.iter().find(|s| s["name"] == "pre_adaptive[lr=adaptive,policy=per_layer,rep=1]").unwrap();
    let key = pre["key"].as_str().unwrap();
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path(&format!("cache/runs/{}/{key}.json", &key[..2]))).unwrap())
            .unwrap();
    let out = |name: &str| -> serde_json::Value {
        let hash = rec["outputs"][name]["hash"].as_str().unwrap();
        let path = p.path(&format!("cache/objects/{}/{hash}", &hash[..2]));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let layer1 = out("layer1_history");
    let epochs: Vec<i64> = layer1.as_array().unwrap().iter().map(|h| h["epoch"].as_i64().unwrap()).collect();
    assert_eq!(epochs, [1, 2, 3]);
    assert_eq!(pre["metrics"]["recon_loss"], layer1[2]["train_loss"]);
    let all = out("history");
    assert_eq!(all.as_array().unwrap().len(), 6);
    assert_eq!((all[3]["epoch"].as_i64(), all[3]["layer"].as_i64()), (Some(4), Some(2)));

    let loss = published_report(&p, &doc, "rbm_adaptive_step_loss");
    assert_eq!(loss["cells"].as_array().unwrap().len(), 16, "8 policies × train/test");
    assert_eq!(claims_are_well_formed(&loss, 2), 4);
    let acc = published_report(&p, &doc, "rbm_adaptive_step_accuracy");
    assert_eq!(acc["cells"].as_array().unwrap().len(), 9, "8 policies + no pretraining");
    assert_eq!(claims_are_well_formed(&acc, 2), 4);
    for c in acc["claims"].as_array().unwrap().iter().chain(loss["claims"].as_array().unwrap()) {
        // Every policy starts from the same weights and batch order in a seed: paired.
        assert_eq!(c["shown"]["test"]["over"], serde_json::json!(["rep"]), "{c}");
    }
    let svg = std::fs::read_to_string(p.path(&published(&doc, "rbm_adaptive_step_loss_curve", "svg"))).unwrap();
    assert!(svg.contains("adaptive per_layer") && svg.contains("constant, 1e-5"), "legend");
}

/// MNIST does not ship: a user's CSV (a `label` column and pixel columns 0–255) runs through
/// the same stages with `--set data=mnist`, and the reports say which data they ran on.
#[test]
fn a_users_mnist_csv_runs_instead_of_digits() {
    let p = project_with(&["rbm_adaptive_step.toml"]);
    let csv = common::mnist_like_csv(80, 4, 60);
    p.write("data/mnist_small.csv", &csv);
    let args = [
        "pipelines/rbm_adaptive_step.toml",
        "--set",
        "data=mnist",
        "--set",
        "mnist_csv=data/mnist_small.csv",
        "--set",
        "reps=[1, 2]",
        "--set",
        "pretrain_epochs=2",
        "--set",
        "finetune_epochs=2",
    ];
    let doc = run_ok(&p, &args);
    let acc = published_report(&p, &doc, "rbm_adaptive_step_accuracy");
    assert!(acc["caption"].as_str().unwrap().contains("MNIST (user file)"), "{}", acc["caption"]);
    assert_eq!(acc["cells"].as_array().unwrap().len(), 9);
    let pre = doc["stages"].as_array().unwrap().iter().find(|s| s["kind"] == "pretrain").unwrap();
    assert!(pre["metrics"]["recon_loss"].as_f64().unwrap().is_finite(), "{pre}");
}

/// `pretrain` (and the fine-tuning `train` after it) computes the same bytes on one thread and
/// on three: the RBM's up and down passes over the whole training set (1,437 rows × 64 × 64)
/// are large enough for the gemm crate to split.
#[test]
fn pretraining_is_the_same_bytes_on_one_thread_and_on_three() {
    let (one, three) = (project_with(&["rbm_adaptive_step.toml"]), project_with(&["rbm_adaptive_step.toml"]));
    let args = [
        "pipelines/rbm_adaptive_step.toml",
        "--target",
        "ft_adaptive",
        "--set",
        "reps=[1]",
        "--set",
        "pretrain_epochs=2",
        "--set",
        "finetune_epochs=1",
    ];
    same_bytes_on_1_and_3_threads(&one, &three, &args, &["standardize", "pretrain", "train"]);
}
