//! Every class of pipeline error, rendered: file, line and column, a caret, a label, and all
//! problems at once. Snapshots live in tests/snapshots/ (`UPDATE_SNAPSHOTS=1` to accept).

mod common;
use common::{snapshot, Proj};

fn errors_of(p: &Proj, args: &[&str]) -> String {
    let out = p.repro(args);
    assert_eq!(out.status.code(), Some(2), "expected exit 2; stderr: {}", String::from_utf8_lossy(&out.stderr));
    // Temp paths differ per run: keep the snapshot stable.
    String::from_utf8(out.stderr).unwrap().replace(&p.dir.path().display().to_string(), "<tmp>")
}

fn check(name: &str, text: &str, args: &[&str]) {
    let p = Proj::new();
    p.write("pipelines/p.toml", text);
    let mut a = vec!["run", "pipelines/p.toml"];
    a.extend_from_slice(args);
    snapshot(name, &errors_of(&p, &a));
}

#[test]
fn toml_syntax() {
    check("toml_syntax", "[stage.a]\nkind = \"command\"\nrun = [\"true\"\n", &[]);
}

#[test]
fn unknown_kind() {
    check("unknown_kind", "[stage.a]\nkind = \"trian\"\n", &[]);
}

#[test]
fn unknown_key_and_param() {
    check(
        "unknown_param",
        "[pipeline]\nseed = 1\nnmae = \"x\"\n\n[stage.t]\nkind = \"subsample\"\ninput = \"t\"\nnn = 5\n",
        &[],
    );
}

#[test]
fn wrong_type() {
    check("wrong_type", "[stage.g]\nkind = \"synthetic_geo\"\nrows = \"many\"\n", &[]);
}

#[test]
fn dangling_reference() {
    check(
        "dangling_reference",
        "[stage.q]\nkind = \"quantile_normalize\"\ninput = \"gen\"\n\n[stage.geo]\nkind = \"synthetic_geo\"\n",
        &[],
    );
}

#[test]
fn ambiguous_reference() {
    check(
        "ambiguous_reference",
        "[stage.geo]\nkind = \"synthetic_geo\"\n\n[stage.sub]\nkind = \"subsample\"\ninput = \"geo\"\nmatrix = { rep = [1, 2] }\nreplicate = \"${rep}\"\nreplicates = 2\n\n[stage.q]\nkind = \"quantile_normalize\"\ninput = \"sub\"\n",
        &[],
    );
}

#[test]
fn duplicate_names_across_includes() {
    let p = Proj::new();
    p.write("pipelines/common/a.toml", "[stage.geo]\nkind = \"synthetic_geo\"\n");
    p.write("pipelines/p.toml", "include = [\"common/a.toml\"]\n\n[stage.geo]\nkind = \"synthetic_geo\"\nrows = 10\n");
    snapshot("duplicate_names", &errors_of(&p, &["run", "pipelines/p.toml"]));
}

#[test]
fn cycle_prints_its_path() {
    check(
        "cycle",
        "[stage.a]\nkind = \"quantile_normalize\"\ninput = \"c\"\n\n[stage.b]\nkind = \"dedupe\"\ninput = \"a\"\n\n[stage.c]\nkind = \"standardize\"\ninput = \"b.out\"\n",
        &[],
    );
}

#[test]
fn bad_matrix_binding() {
    check(
        "bad_matrix_binding",
        "[stage.geo]\nkind = \"synthetic_geo\"\n\n[stage.sub]\nkind = \"subsample\"\ninput = \"geo\"\nmatrix = { rep = [1, 2] }\nreplicate = \"${rep}\"\nreplicates = 2\n\n[stage.q]\nkind = \"quantile_normalize\"\ninput = \"sub[rep=3]\"\n\n[stage.d]\nkind = \"dedupe\"\ninput = \"sub[fold=1]\"\n",
        &[],
    );
}

#[test]
fn bad_set() {
    check(
        "bad_set",
        "[vars]\nepochs = 10\n\n[stage.g]\nkind = \"synthetic_geo\"\nrows = \"${epochs}\"\n",
        &["--set", "epochs=ten", "--set", "epoch=3", "--set", "oops"],
    );
}

#[test]
fn many_problems_are_reported_at_once() {
    check(
        "many_problems",
        "[stage.a]\nkind = \"synthetic_geo\"\nrows = -1\nlandmark = 5\n\n[stage.b]\nkind = \"split\"\ninput = \"a\"\nfractions = [0.8, 0.3, 0.1]\n\n[stage.c]\nkind = \"load\"\n",
        &[],
    );
}

#[test]
fn unknown_var_in_interpolation() {
    check("unknown_var", "[vars]\nrows = 10\n\n[stage.g]\nkind = \"synthetic_geo\"\nrows = \"${row}\"\n", &[]);
}
