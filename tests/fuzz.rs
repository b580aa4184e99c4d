//! Property tests (proptest, stable Rust), run in CI with a fixed budget: the pipeline parser
//! and planner, the `.npy` loader and run records, fed random and mutated input, never panic,
//! never hang and never answer other than "ok" or a clean error (exit 0/1/2).
//!
//! `PROPTEST_CASES` overrides the number of cases of every property; a watchdog aborts the
//! process, printing the input, if one case runs longer than 20 s (a hang).

use proptest::prelude::*;
use repro_engine::diag::Error;
use repro_engine::store::{Record, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// --- watchdog --------------------------------------------------------------------------------

static CASE_STARTED: AtomicU64 = AtomicU64::new(0);
static CASE_INPUT: Mutex<String> = Mutex::new(String::new());

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Marks the start of a case; the watchdog aborts if one lasts over 20 s.
fn case(input: &str) {
    static START: Once = Once::new();
    START.call_once(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(1));
            let t = CASE_STARTED.load(Ordering::Relaxed);
            if t != 0 && now_s().saturating_sub(t) > 20 {
                eprintln!("HANG: a case ran over 20 s; its input:\n{}", CASE_INPUT.lock().unwrap());
                std::process::abort();
            }
        });
    });
    *CASE_INPUT.lock().unwrap() = input.to_string();
    CASE_STARTED.store(now_s(), Ordering::Relaxed);
}

fn case_done() {
    CASE_STARTED.store(0, Ordering::Relaxed);
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// --- pipelines ---------------------------------------------------------------------------------

/// The shipped pipelines (and their includes) in a temporary project.
fn project() -> &'static (tempfile::TempDir, Vec<PathBuf>) {
    static P: std::sync::OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut files = Vec::new();
        for sub in ["", "common"] {
            std::fs::create_dir_all(dir.path().join("pipelines").join(sub)).unwrap();
            for e in std::fs::read_dir(src.join(sub)).unwrap().flatten() {
                if e.path().extension().is_some_and(|x| x == "toml") {
                    let dest = dir.path().join("pipelines").join(sub).join(e.file_name());
                    std::fs::copy(e.path(), &dest).unwrap();
                    if sub.is_empty() {
                        files.push(dest);
                    }
                }
            }
        }
        files.sort();
        (dir, files)
    })
}

/// Plans a pipeline text as `pipelines/<name>` of the project: the exit code the binary
/// would give (0 planned, 2 invalid, 1 an I/O error). A panic fails the property.
fn plan_text(name: &str, text: &[u8], sets: &[String]) -> i32 {
    let (dir, _) = project();
    let path = dir.path().join("pipelines").join(name);
    std::fs::write(&path, text).unwrap();
    let ov = repro_engine::spec::Overrides { sets: sets.to_vec(), profile: None };
    let r = repro_engine::spec::load(&path, &ov).and_then(|s| repro_engine::plan::plan(s, repro_stages::registry()));
    match r {
        Ok(_) => 0,
        Err(Error::Invalid(problems, _)) => {
            assert!(!problems.is_empty(), "an invalid pipeline with no problem");
            2
        }
        Err(Error::Usage(_)) => 2,
        Err(Error::Io(_)) => 1,
    }
}

/// Tokens that matter to the format, for insertion.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "=",
    ".",
    ",",
    "*",
    "\n",
    " ",
    "#",
    "${",
    "${x}",
    "${${",
    "[stage.x]\n",
    "kind = \"train\"\n",
    "kind = \"tabulate\"\n",
    "matrix = { a = [1, 2] }\n",
    "matrix = { a = [] }\n",
    "input = \"x\"\n",
    "inputs = \"x[*]\"\n",
    "data = \"x[a=1].out\"\n",
    "include = [\"common/geo.toml\"]\n",
    "include = [\"p.toml\"]\n",
    "[vars]\n",
    "[profiles.p]\n",
    "seed = -1\n",
    "seed_axes = [\"zz\"]\n",
    "report = \"../x\"\n",
    "-1",
    "0",
    "1e308",
    "nan",
    "inf",
    "9223372036854775807",
    "18446744073709551616",
    "\"\"",
    "é",
    "\u{0}",
    "true",
    "[[stage.y]]\n",
    "hidden = [1000000000000]\n",
    "epochs = 0\n",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, usize),
    Byte(usize, u8),
    DupLine(usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Edit::Insert(a, t)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Byte(a, b)),
        any::<usize>().prop_map(Edit::DupLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(mut text: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = text.len().max(1);
        match *e {
            Edit::Delete(a, len) => {
                let a = a % n;
                text.drain(a.min(text.len())..(a + len).min(text.len()));
            }
            Edit::Insert(a, t) => {
                let a = (a % n).min(text.len());
                text.splice(a..a, TOKENS[t].bytes());
            }
            Edit::Byte(a, b) => {
                if !text.is_empty() {
                    let a = a % text.len();
                    text[a] = b;
                }
            }
            Edit::DupLine(a) | Edit::SwapLines(a, _) => {
                let mut lines: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let i = a % lines.len();
                match *e {
                    Edit::DupLine(_) => lines.insert(i, lines[i].clone()),
                    Edit::SwapLines(_, b) => {
                        let j = b % lines.len();
                        lines.swap(i, j);
                    }
                    _ => unreachable!("matched above"),
                }
                text = lines.join(&b'\n');
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(600), ..ProptestConfig::default() })]

    /// Random edits of every shipped pipeline plan or fail with problems; never a panic or a hang.
    #[test]
    fn mutated_shipped_pipelines_plan_or_fail_cleanly(which in any::<usize>(), edits in prop::collection::vec(edit(), 1..8)) {
        let (_, files) = project();
        let src = &files[which % files.len()];
        let text = apply(std::fs::read(src).unwrap(), &edits);
        case(&String::from_utf8_lossy(&text));
        let code = plan_text("fuzz_mutated.toml", &text, &[]);
        case_done();
        prop_assert!(matches!(code, 0..=2));
    }

    /// Random `--set` values on a shipped pipeline: typed, checked, never a panic.
    #[test]
    fn random_overrides_fail_cleanly(which in any::<usize>(), name in "[a-z_]{1,12}", value in ".{0,24}") {
        let (_, files) = project();
        let src = &files[which % files.len()];
        let text = std::fs::read(src).unwrap();
        let set = format!("{name}={value}");
        case(&set);
        let code = plan_text("fuzz_set.toml", &text, std::slice::from_ref(&set));
        case_done();
        prop_assert!(matches!(code, 0 | 2));
    }
}

/// A random pipeline built from the format's parts: stages of real kinds, random params,
/// references between them, matrices, vars.
fn random_pipeline() -> impl Strategy<Value = String> {
    let kinds: Vec<&'static str> = repro_stages::registry().iter().map(|s| s.kind()).collect();
    let value = prop_oneof![
        Just("1".to_string()),
        Just("-3".to_string()),
        Just("0.5".to_string()),
        Just("true".to_string()),
        Just("\"s0\"".to_string()),
        Just("\"s1.out\"".to_string()),
        Just("\"s2[*]\"".to_string()),
        Just("\"${v}\"".to_string()),
        Just("[1, 2]".to_string()),
        Just("{ name = \"tanh\" }".to_string()),
        Just("[]".to_string()),
    ];
    let key = prop_oneof![
        Just("data"),
        Just("input"),
        Just("inputs"),
        Just("model"),
        Just("epochs"),
        Just("hidden"),
        Just("rows"),
        Just("n"),
        Just("dataset"),
        Just("activation"),
        Just("metric"),
        Just("run"),
        Just("outputs"),
        Just("names"),
        Just("fractions"),
        Just("report"),
        Just("seed"),
    ];
    let stage = (prop::sample::select(kinds), prop::collection::vec((key, value.clone()), 0..5), any::<bool>());
    (prop::collection::vec(stage, 1..5), value).prop_map(|(stages, v)| {
        let mut s = format!("[vars]\nv = {v}\n\n");
        for (i, (kind, entries, matrix)) in stages.iter().enumerate() {
            s.push_str(&format!("[stage.s{i}]\nkind = \"{kind}\"\n"));
            if *matrix {
                s.push_str("matrix = { a = [1, 2] }\n");
            }
            let mut seen = std::collections::BTreeSet::new();
            for (k, val) in entries {
                if seen.insert(*k) {
                    s.push_str(&format!("{k} = {val}\n"));
                }
            }
            s.push('\n');
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1500), ..ProptestConfig::default() })]

    #[test]
    fn random_pipelines_plan_or_fail_cleanly(text in random_pipeline()) {
        case(&text);
        let code = plan_text("fuzz_random.toml", text.as_bytes(), &[]);
        case_done();
        prop_assert!(matches!(code, 0 | 2));
    }

    /// Random bytes, and random edits of a valid file, never panic the `.npy` loader; what it
    /// accepts is consistent.
    #[test]
    fn npy_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..200), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n";
        let mut valid = b"\x93NUMPY\x01\x00".to_vec();
        valid.extend((header.len() as u16).to_le_bytes());
        valid.extend(header.as_bytes());
        valid.extend([0u8; 16]);
        let mut mutated = valid.clone();
        let i = flip.0 % mutated.len();
        mutated[i] ^= flip.1;
        mutated.truncate(cut % (mutated.len() + 1));
        mutated.extend(&tail);
        for bytes in [&tail[..], &mutated[..]] {
            if let Ok((r, c, v)) = repro_stages::load::parse_npy(bytes) {
                prop_assert_eq!(v.len(), r * c);
            }
        }
    }

    /// A run record of random bytes, or a valid record with a field replaced by a random
    /// value, is never trusted unless it is valid for its key, and never panics the store.
    #[test]
    fn run_records_of_random_bytes_are_never_used(bytes in prop::collection::vec(any::<u8>(), 0..300), field in 0usize..6, junk in ".{0,70}") {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = "ab".repeat(32);
        let path = dir.path().join("runs/ab").join(format!("{key}.json"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        if let Some(r) = store.read_record(&key) {
            prop_assert_eq!(&r.key, &key);
        }
        let mut valid = serde_json::json!({
            "key": key, "instance": "a", "outputs": {"out": {"hash": "cd".repeat(32), "size": 2, "mtime_ns": 0}},
            "key_input": {"format": 1, "kind": "command", "version": 1, "params": {}, "inputs": {}, "external": [], "seed": 0},
            "metrics": {}, "seconds": 0.0, "started_unix": 0.0, "finished_unix": 0.0, "tool_version": "0", "environment": {}
        });
        let target = ["key", "instance", "outputs", "key_input", "seconds", "environment"][field];
        valid[target] = serde_json::Value::String(junk.clone());
        if field == 2 {
            valid["outputs"] = serde_json::json!({"out": {"hash": junk, "size": 2, "mtime_ns": 0}});
        }
        std::fs::write(&path, serde_json::to_vec(&valid).unwrap()).unwrap();
        if let Some(r) = store.read_record(&key) {
            let r: Record = r;
            prop_assert_eq!(&r.key, &key);
            prop_assert!(r.outputs.values().all(|o| repro_engine::store::is_hash(&o.hash)));
        }
        // lookup must not panic either (objects are absent: never trusted).
        prop_assert!(store.lookup(&key, &[]).is_none());
    }
}

// --- cache keys ---------------------------------------------------------------------------------

/// A JSON value of random shape: strings with quotes, backslashes, control characters and
/// non-ASCII text, integers and floats, nested arrays and objects.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "(.|[\"\\\\\u{0}-\u{1f}\u{7f}é✓])*".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z\"\\\\\u{1}é]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The value with the keys of every object inserted in sorted order (whatever order serde_json's
/// map keeps: insertion with `preserve_order`, sorted without).
fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(800), ..ProptestConfig::default() })]

    /// The key input's canonical JSON, written field by field, is exactly the canonical JSON of
    /// its serde value tree (the encoding the golden key pins, and every user's cache uses).
    #[test]
    fn streamed_key_encoding_equals_the_value_tree_encoding(
        params in json_value(),
        kind in "[a-z_\"\\\\]{1,12}",
        slots in prop::collection::btree_map("[a-z\"\u{2}]{1,5}", prop::collection::vec((prop::collection::btree_map("[a-z\\\\]{1,4}", json_value(), 0..3), "[0-9a-f]{64}"), 0..3), 0..3),
        external in prop::collection::vec("[0-9a-f\"]{0,64}", 0..3),
        seed in any::<u64>(),
        version in any::<u32>(),
    ) {
        use repro_engine::key::{canonical_json, InputKey, KeyInput};
        let ki = KeyInput {
            format: repro_engine::key::CACHE_FORMAT,
            kind,
            version,
            params,
            inputs: slots
                .into_iter()
                .map(|(s, arts)| (s, arts.into_iter().map(|(axes, hash)| InputKey { hash, axes }).collect()))
                .collect(),
            external,
            seed,
        };
        let value = serde_json::to_value(&ki).unwrap();
        let tree = canonical_json(&value);
        prop_assert_eq!(ki.canonical(), tree.clone());
        // And both are serde_json's own compact output of the value with its keys sorted.
        prop_assert_eq!(&tree, &serde_json::to_string(&sorted(value)).unwrap());
        prop_assert_eq!(ki.key(), blake3::hash(tree.as_bytes()).to_hex().to_string());
    }
}
