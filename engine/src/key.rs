//! Cache keys. One struct, [`KeyInput`], holds every input of a stage instance's key; it is
//! encoded as canonical JSON (object keys sorted, no whitespace, integers and floats kept
//! distinct) and hashed with blake3. Stage and instance names, file paths, comments,
//! whitespace and key order in the pipeline file are deliberately not part of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Bumped when the key encoding or the store layout changes: old entries then never match.
pub const CACHE_FORMAT: u32 = 1;

/// One bound input artifact as it enters a key: its content hash and, for stages that read
/// them (tabulate lays tables out by them), the axis values of the instance that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputKey {
    /// blake3 of the artifact's bytes.
    pub hash: String,
    /// Axis values of the producer (only for stages that read them).
    pub axes: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// Everything a stage instance's cache key is made of.
pub struct KeyInput {
    /// [`CACHE_FORMAT`].
    pub format: u32,
    /// Stage kind.
    pub kind: String,
    /// Stage implementation version.
    pub version: u32,
    /// Canonical params.
    pub params: Value,
    /// Slot → input artifacts.
    pub inputs: BTreeMap<String, Vec<InputKey>>,
    /// Content hashes of files read from outside the store, in param order.
    pub external: Vec<String>,
    /// The instance seed (0 for a stage without randomness).
    pub seed: u64,
}

impl KeyInput {
    /// blake3 of the canonical JSON: the key.
    pub fn key(&self) -> String {
        blake3::hash(self.canonical().as_bytes()).to_hex().to_string()
    }

    /// The canonical JSON of the key input, written field by field in sorted order: what
    /// `canonical_json(&serde_json::to_value(self))` gives, without building the value tree
    /// (a 10,000-instance no-op computes 10,000 of these, #19; a test pins the two together).
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"external\":[");
        for (i, h) in self.external.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_str_json(h, &mut out);
        }
        out.push_str(&format!("],\"format\":{},\"inputs\":{{", self.format));
        for (n, (slot, arts)) in self.inputs.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            push_str_json(slot, &mut out);
            out.push_str(":[");
            for (i, a) in arts.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"axes\":{");
                for (j, (k, v)) in a.axes.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_str_json(k, &mut out);
                    out.push(':');
                    write_canonical(v, &mut out);
                }
                out.push_str("},\"hash\":");
                push_str_json(&a.hash, &mut out);
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("},\"kind\":");
        push_str_json(&self.kind, &mut out);
        out.push_str(",\"params\":");
        write_canonical(&self.params, &mut out);
        out.push_str(&format!(",\"seed\":{},\"version\":{}}}", self.seed, self.version));
        out
    }
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical_json(v: &Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

/// A string as a JSON string literal, escaped as serde_json escapes it.
fn push_str_json(s: &str, out: &mut String) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::from(s).to_string());
    }
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str_json(k, out);
                out.push(':');
                write_canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(e, out);
            }
            out.push(']');
        }
        Value::String(s) => push_str_json(s, out),
        other => out.push_str(&other.to_string()),
    }
}

/// Field-by-field differences between two key inputs, for `repro status`.
pub fn diff(old: &KeyInput, new: &KeyInput) -> Vec<String> {
    let mut out = Vec::new();
    if old.format != new.format {
        out.push(format!("cache format {} → {}", old.format, new.format));
    }
    if old.kind != new.kind {
        out.push(format!("kind {} → {}", old.kind, new.kind));
    }
    if old.version != new.version {
        out.push(format!("stage version {} → {}", old.version, new.version));
    }
    diff_json("params", &old.params, &new.params, &mut out);
    let slots: std::collections::BTreeSet<&String> = old.inputs.keys().chain(new.inputs.keys()).collect();
    for s in slots {
        if old.inputs.get(s) != new.inputs.get(s) {
            out.push(format!("input {s} changed"));
        }
    }
    if old.external != new.external {
        out.push("external file content changed".into());
    }
    if old.seed != new.seed {
        out.push(format!("seed {} → {}", old.seed, new.seed));
    }
    out
}

fn diff_json(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff_json(&p, u, v, out),
                    (None, Some(v)) => out.push(format!("{p}: (none) → {v}")),
                    (Some(u), None) => out.push(format!("{p}: {u} → (none)")),
                    (None, None) => {}
                }
            }
        }
        _ if a != b => out.push(format!("{path}: {a} → {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ki(params: Value) -> KeyInput {
        KeyInput {
            format: CACHE_FORMAT,
            kind: "train".into(),
            version: 1,
            params,
            inputs: BTreeMap::from([(
                "data".to_string(),
                vec![InputKey { hash: "ab".repeat(32), axes: BTreeMap::from([("rep".to_string(), json!(1))]) }],
            )]),
            external: vec![],
            seed: 42,
        }
    }

    // Golden values pin the encoding: a change here invalidates every user's cache, so it
    // must come with a CACHE_FORMAT bump.
    #[test]
    fn golden_key() {
        let k = ki(json!({"lr": 0.1, "epochs": 200}));
        assert_eq!(
            canonical_json(&serde_json::to_value(&k).unwrap()),
            r#"{"external":[],"format":1,"inputs":{"data":[{"axes":{"rep":1},"hash":"abababababababababababababababababababababababababababababababab"}]},"kind":"train","params":{"epochs":200,"lr":0.1},"seed":42,"version":1}"#
        );
        // Python: blake3.blake3(<the string above>.encode()).hexdigest()
        assert_eq!(k.key(), "a88b437af02f8199fad569fa889fcb14cd1935cb6766d4dbd82c157f8192f242");
    }

    #[test]
    fn order_resistant() {
        let a: Value = serde_json::from_str(r#"{"lr": 0.1, "epochs": 200, "opt": {"b": 1, "a": 2}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"opt": {"a": 2, "b": 1}, "epochs": 200, "lr": 0.1}"#).unwrap();
        assert_eq!(ki(a).key(), ki(b).key());
    }

    #[test]
    fn care_about_order() {
        assert_ne!(ki(json!({"save_at": [100, 200]})).key(), ki(json!({"save_at": [200, 100]})).key());
    }

    #[test]
    fn integers_and_floats_are_distinct() {
        assert_ne!(ki(json!({"x": 1})).key(), ki(json!({"x": 1.0})).key());
    }

    #[test]
    fn diff_names_the_field() {
        let d = diff(&ki(json!({"lr": 0.1})), &ki(json!({"lr": 0.2})));
        assert_eq!(d, vec!["params.lr: 0.1 → 0.2"]);
    }
}
