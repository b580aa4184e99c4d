//! The audit's own tools: variant reports that never overwrite the default ones, `repro
//! compare` of the two, and `repro verify --recompute` (the determinism check).

mod common;
use common::{project_with, report, run_ok, Proj};
use std::collections::BTreeMap;

fn lecture() -> Proj {
    let p = project_with(&["lecture_init.toml"]);
    let xor = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/xor.csv");
    p.write("data/xor.csv", &std::fs::read_to_string(xor).unwrap());
    p
}

/// Every file under `reports/` with its bytes.
fn reports(p: &Proj) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(p.path("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|f| (f.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&f).unwrap()))
        .collect()
}

#[test]
fn a_variant_run_publishes_beside_the_default_reports_and_compare_shows_both() {
    let p = lecture();
    run_ok(&p, &["pipelines/lecture_init.toml"]);
    let defaults = reports(&p);
    run_ok(&p, &["pipelines/lecture_init.toml", "--set", "trials=[1,2,3,4,5]"]);
    let after = reports(&p);
    for (name, bytes) in &defaults {
        assert_eq!(&after[name], bytes, "{name} was overwritten by the variant run");
    }
    let v = "lecture_init@trials=1,2,3,4,5";
    for ext in ["md", "tex", "csv", "parquet", "json", "provenance.json"] {
        assert!(after.contains_key(&format!("{v}.{ext}")), "no {v}.{ext}: {:?}", after.keys());
    }
    let md = String::from_utf8(after[&format!("{v}.md")].clone()).unwrap();
    assert!(md.starts_with("> Variant `trials=1,2,3,4,5`"), "{md}");
    assert!(md.lines().next().unwrap().contains("--set trials=[1,2,3,4,5]"), "{md}");
    // The sidecar names the overrides and the hashes of the bytes published.
    let prov: serde_json::Value = serde_json::from_slice(&after[&format!("{v}.provenance.json")]).unwrap();
    assert_eq!(prov["overrides"], serde_json::json!(["--set trials=[1,2,3,4,5]"]));
    assert_eq!(prov["files"][format!("{v}.md")], blake3::hash(md.as_bytes()).to_hex().as_str());
    // A --set equal to the default is no variant: it publishes over the defaults, unchanged.
    let twenty = format!("trials=[{}]", (1..=20).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    run_ok(&p, &["pipelines/lecture_init.toml", "--set", &twenty]);
    assert_eq!(reports(&p).len(), after.len());

    // compare: each cell with both values, read from the two JSON reports, and the verdicts.
    let out = p.repro(&["compare", "pipelines/lecture_init.toml", "--set", "trials=[1,2,3,4,5]"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (a, b) = (report(&p, "lecture_init"), report(&p, v));
    for (ca, cb) in a["cells"].as_array().unwrap().iter().zip(b["cells"].as_array().unwrap()) {
        assert_eq!(ca["axes"], cb["axes"]);
        let line = text.lines().find(|l| l.contains(ca["cell"].as_str().unwrap())).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (x, y) = (ca["value"].as_str().unwrap(), cb["value"].as_str().unwrap());
        assert!(cols.windows(2).any(|w| w == [x, y]), "{line} lacks {x} {y}");
        assert!(x.ends_with("/20") && y.ends_with("/5"), "{x} {y}");
    }
    let verdicts = (a["claims"][0]["verdict"].as_str().unwrap(), b["claims"][0]["verdict"].as_str().unwrap());
    let word = |v: &str| v.replace('_', " ");
    assert!(text.contains(&format!(": {} → {}", word(verdicts.0), word(verdicts.1))), "{text}");

    // Without a variant there is nothing to compare; a variant never run is named.
    let out = p.repro(&["compare", "pipelines/lecture_init.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = p.repro(&["compare", "pipelines/lecture_init.toml", "--set", "trials=[1,2]"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("lecture_init@trials=1,2.json"), "{out:?}");
}

const NOISY: &str = r#"
[pipeline]
name = "noisy"
seed = 1

[stage.steady]
kind = "command"
run = ["sh", "-c", "echo 0.5 > {out:out}"]

[stage.dice]
kind = "command"
run = ["sh", "-c", "od -An -N8 -tu8 /dev/urandom > {out:out}"]
"#;

/// Every file under `cache/` with its bytes.
fn cache(p: &Proj) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![p.path("cache")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let f = e.unwrap().path();
            if f.is_dir() {
                stack.push(f);
            } else {
                m.insert(f.display().to_string(), std::fs::read(&f).unwrap());
            }
        }
    }
    m
}

/// A stage whose output is not a function of its key (a random number the seed does not
/// drive, as a stage whose code changed would give) is found by recomputing it: the steady
/// stage is byte-identical, the other different, exit 1, and the cache is untouched.
#[test]
fn verify_recompute_finds_a_stage_that_does_not_reproduce() {
    let p = Proj::new();
    p.write("pipelines/noisy.toml", NOISY);
    run_ok(&p, &["pipelines/noisy.toml"]);
    let before = cache(&p);
    let out = p.repro(&["verify", "--recompute"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("identical") && l.contains("steady")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("DIFFERENT") && l.contains("dice") && l.contains("out:")), "{text}");
    assert!(
        text.contains("recomputed 2 cached instances: 1 byte-identical, 0 within tolerance, 1 different"),
        "{text}"
    );
    assert_eq!(cache(&p), before, "verify --recompute changed the cache");

    // Naming the steady stage checks only it; a sample of 1 draws the same instance for a seed.
    let out = p.repro(&["verify", "--recompute", "--pipeline", "pipelines/noisy.toml", "steady"]);
    assert!(out.status.success(), "{out:?}");
    let draw = |seed: &str| {
        let out = p.repro(&["verify", "--recompute", "--sample", "1", "--seed", seed]);
        String::from_utf8(out.stdout).unwrap().lines().next().unwrap().split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!(draw("7"), draw("7"));
    let out = p.repro(&["verify", "--recompute", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// The issue's acceptance on a real pipeline: three sampled instances of a cached
/// `lipschitz_table1` recompute to the same bytes.
#[test]
fn sampled_lipschitz_instances_recompute_identically() {
    let p = project_with(&["lipschitz_table1.toml"]);
    run_ok(&p, &["pipelines/lipschitz_table1.toml"]);
    let out = p.repro(&["verify", "--recompute", "--sample", "3"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("identical")).count(), 3, "{text}");
}
