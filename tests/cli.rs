//! The conventions around the commands: `init`, completions, the man page, `--version`,
//! `dag --stages`, suggestions for mistyped names.

mod common;
use common::Proj;

#[test]
fn init_scaffolds_a_project_whose_example_runs() {
    let p = Proj::new();
    let out = p.repro(&["init"]);
    assert!(out.status.success());
    for f in ["pipelines/example.toml", "repro.toml", ".gitignore", "reports/.gitkeep"] {
        assert!(p.path(f).is_file(), "{f}");
    }
    assert_eq!(std::fs::read_to_string(p.path(".gitignore")).unwrap(), "/cache/\n");
    let doc = p.run_json(&["pipelines/example.toml"]);
    assert_eq!((doc["failed"].as_u64(), doc["ran"].as_u64()), (Some(0), Some(15)), "{doc}");
    let md = std::fs::read_to_string(p.path("reports/example.md")).unwrap();
    assert!(md.contains("| linear |") && md.contains("| mlp |") && md.contains("[synthetic data]"), "{md}");
    // A second init keeps what is there.
    std::fs::write(p.path("repro.toml"), "executor = \"local\"\n").unwrap();
    let out = String::from_utf8(p.repro(&["init"]).stdout).unwrap();
    assert!(out.contains("kept     ./repro.toml (exists)"), "{out}");
    assert_eq!(std::fs::read_to_string(p.path("repro.toml")).unwrap(), "executor = \"local\"\n");
}

#[test]
fn completions_man_page_and_version() {
    let p = Proj::new();
    let bash = String::from_utf8(p.repro(&["completions", "bash"]).stdout).unwrap();
    assert!(bash.contains("_repro()") && bash.contains("compare") && bash.contains("--executor"), "{}", &bash[..200]);
    let man = String::from_utf8(p.repro(&["man"]).stdout).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH repro 1"), "{}", &man[..200.min(man.len())]);
    let v = String::from_utf8(p.repro(&["--version"]).stdout).unwrap();
    // The commit the binary was built from: 12 hex digits (or "unknown" outside git).
    let commit = v.lines().find_map(|l| l.strip_prefix("commit:")).unwrap().trim().to_string();
    assert!(commit == "unknown" || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{v}");
}

#[test]
fn dag_by_stage_and_suggestions_for_mistyped_names() {
    let p = Proj::new();
    p.repro(&["init"]);
    let text = String::from_utf8(p.repro(&["dag", "pipelines/example.toml", "--stages"]).stdout).unwrap();
    assert!(text.contains("fit (train, 6 instances) <- split"), "{text}");
    assert!(text.contains("eval (evaluate, 6 instances) <- split, fit"), "{text}");
    let out = p.repro(&["stages", "trian"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `train`?"));
    let out = p.repro(&["explain", "pipelines/example.toml", "fti"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `fit`?"), "{out:?}");
}

/// A problem a matrix stage would repeat per instance is reported once, and a stage whose
/// params are invalid does not also make every consumer report its outputs as missing.
#[test]
fn problems_are_reported_once_and_do_not_cascade() {
    let p = Proj::new();
    p.write(
        "pipelines/m.toml",
        "[pipeline]\nname = \"m\"\n[stage.a]\nkind = \"command\"\nmatrix = { n = [1, 2, 3] }\nrun = [\"sh\", \"-c\", \"echo ${n} > {out:out}\"]\n[stage.b]\nkind = \"command\"\nmatrix = { n = [1, 2, 3] }\ninputs = [\"a.outt\"]\nrun = [\"sh\", \"-c\", \"cat {in0} > {out:out}\"]\n",
    );
    let err = String::from_utf8(p.repro(&["run", "pipelines/m.toml"]).stderr).unwrap();
    assert_eq!(err.matches("has no output `outt`").count(), 1, "{err}");
    p.write(
        "pipelines/c.toml",
        "[pipeline]\nname = \"c\"\n[stage.a]\nkind = \"command\"\nrn = [\"true\"]\nrun = [\"true\"]\n[stage.b]\nkind = \"command\"\ninputs = [\"a.out\"]\nrun = [\"true\"]\n",
    );
    let err = String::from_utf8(p.repro(&["run", "pipelines/c.toml"]).stderr).unwrap();
    assert!(err.contains("unknown param `rn` (did you mean `run`?)"), "{err}");
    assert!(!err.contains("has no output"), "{err}");
}

/// The end of a run as text, with the times masked: counts, what a failure left undone, the
/// reports written. And the progress display, in a pseudo-terminal (`script`), moves: a
/// spinner line per running stage and the overall bar.
#[test]
fn run_summary_and_progress_display() {
    let p = Proj::new();
    p.write(
        "pipelines/s.toml",
        "[pipeline]\nname = \"s\"\n[stage.ok]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"sleep 1; echo 1 > {out:out}\"]\n[stage.bad]\nkind = \"command\"\nrun = [\"sh\", \"-c\", \"exit 3\"]\n[stage.after]\nkind = \"command\"\ninputs = [\"bad\"]\nrun = [\"true\"]\n[stage.table]\nkind = \"command\"\ninputs = [\"ok\"]\nreport = \"copy\"\nrun = [\"sh\", \"-c\", \"cp {in0} {out:out}\"]\n",
    );
    let out = p.repro(&["run", "pipelines/s.toml", "--keep-going", "-j", "1"]);
    let err = String::from_utf8(out.stderr).unwrap();
    let last: Vec<String> = err
        .lines()
        .skip_while(|l| !l.starts_with("s: "))
        .filter(|l| !l.starts_with("  slowest: "))
        .map(|l| l.split(" in ").next().unwrap().to_string())
        .collect();
    assert_eq!(
        last,
        [
            "s: 2 ran, 0 cached, 1 failed, 1 skipped",
            "  not run because something failed first: after (--keep-going runs the independent ones)",
            "  report  reports/copy.{out}",
        ],
        "{err}"
    );
    // In a terminal: the spinner of a running stage and the overall bar (util-linux `script`).
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("note: no `script`; the terminal display is not checked");
        return;
    }
    let cmd = format!("{} run pipelines/s.toml --force ok", env!("CARGO_BIN_EXE_repro"));
    let tty = std::process::Command::new("script")
        .args(["-qc", &cmd, "/dev/null"])
        .current_dir(p.dir.path())
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(screen.contains("stages [") && screen.contains("] 0/"), "no overall bar: {screen}");
    assert!(["⠁", "⠉", "⠙", "⠚", "⠒", "⠂"].iter().any(|s| screen.contains(&format!("{s} ok"))), "no spinner: {screen}");
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand() {
    let p = Proj::new();
    for shell in ["bash", "zsh", "fish"] {
        let text = String::from_utf8(p.repro(&["completions", shell]).stdout).unwrap();
        for sub in ["run", "status", "dag", "explain", "report", "compare", "verify", "show", "init"] {
            assert!(text.contains(sub), "{shell} completions lack `{sub}`");
        }
    }
}

/// `repro show`: a dataset as CSV (and Parquet by extension), JSON pretty-printed, and a clear
/// word for a stage with several instances.
#[test]
fn show_prints_and_exports_artifacts() {
    let p = Proj::new();
    p.repro(&["init"]);
    assert_eq!(p.run_json(&["pipelines/example.toml"])["failed"], 0);
    let csv = String::from_utf8(p.repro(&["show", "pipelines/example.toml", "split.train"]).stdout).unwrap();
    assert_eq!(csv.lines().next(), Some("id,x,y"));
    assert_eq!(csv.lines().count(), 1 + 320, "80 % of 400 rows");
    let out = p.repro(&["show", "pipelines/example.toml", "split.train", "-o", "train.parquet"]);
    assert!(out.status.success());
    assert_eq!(&std::fs::read(p.path("train.parquet")).unwrap()[..4], b"PAR1");
    let hist =
        String::from_utf8(p.repro(&["show", "pipelines/example.toml", "fit[model=mlp,rep=1].history"]).stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&hist).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 50);
    let out = p.repro(&["show", "pipelines/example.toml", "fit"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("`fit` has 6 instances: name one"), "{out:?}");
    let out = p.repro(&["run", "pipelines/exampel.toml"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("`pipelines/example.toml`?)"), "{out:?}");
}
