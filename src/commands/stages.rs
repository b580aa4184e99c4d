//! `repro stages`: every stage kind with its inputs, outputs and params, in the terms a
//! pipeline file is written in (TOML types, TOML defaults, the accepted names of each choice).

use repro_core::{closest, Stage};
use repro_engine::diag::{exit, Error, Result};
use serde_json::{json, Value};

pub fn stages(kind: Option<&str>, as_json: bool) -> Result<i32> {
    let reg = repro_stages::registry();
    let list: Vec<_> = reg.iter().filter(|s| kind.is_none_or(|k| s.kind() == k)).collect();
    if list.is_empty() {
        let kinds: Vec<&str> = reg.iter().map(|s| s.kind()).collect();
        let k = kind.unwrap_or("");
        let hint = closest(k, &kinds).map(|c| format!("did you mean `{c}`? ")).unwrap_or_default();
        return Err(Error::Usage(format!("no stage kind `{k}`; {hint}kinds: {}", kinds.join(", "))));
    }
    if as_json {
        let v: Vec<Value> = list
            .iter()
            .map(|s| {
                let inputs: Vec<Value> = s
                    .inputs()
                    .iter()
                    .map(|i| json!({"name": i.name, "doc": i.doc, "required": i.required, "many": i.many}))
                    .collect();
                let params: Vec<Value> = s
                    .params_doc()
                    .into_iter()
                    .map(|p| {
                        json!({"name": p.name, "type": p.ty, "toml_type": toml_type(**s, p.name, p.ty),
                            "default": p.default, "toml_default": toml_value(&p.default), "doc": p.doc})
                    })
                    .collect();
                json!({"kind": s.kind(), "version": s.version(), "doc": s.doc(), "inputs": inputs, "params": params})
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).unwrap());
        return Ok(exit::OK);
    }
    for s in list {
        outln!("{} (v{})\n  {}", s.kind(), s.version(), s.doc());
        for i in s.inputs() {
            let card = match (i.required, i.many) {
                (_, true) => "many",
                (true, false) => "one",
                (false, false) => "optional",
            };
            outln!("  input  {:<16} {card}: {}", i.name, i.doc);
        }
        let defaults: serde_json::Map<String, Value> =
            s.params_doc().into_iter().map(|p| (p.name.to_string(), p.default)).collect();
        outln!("  output {} (with default params)", s.outputs(&Value::Object(defaults)).join(", "));
        outln!("  example:");
        for line in example(*s).lines() {
            outln!("    {line}");
        }
        outln!("  params:");
        for p in s.params_doc() {
            outln!("  {} = {}", p.name, toml_value(&p.default));
            outln!("      {}", toml_type(*s, p.name, p.ty));
            outln!("      {}", p.doc.lines().map(str::trim).collect::<Vec<_>>().join(" "));
        }
        outln!();
    }
    Ok(exit::OK)
}

/// A minimal stage table for `kind`: its inputs (required ones bound to a placeholder
/// reference, optional ones commented out) and the params a pipeline usually sets, at their
/// defaults.
pub fn example(stage: &dyn Stage) -> String {
    let mut t = format!("[stage.my_{}]\nkind = \"{}\"\n", stage.kind(), stage.kind());
    for i in stage.inputs() {
        let reference = if i.many { "\"upstream[*]\"" } else { "\"upstream.out\"" };
        let hash = if i.required { "" } else { "# " };
        t.push_str(&format!("{hash}{} = {reference}   # {}\n", i.name, i.doc));
    }
    for p in stage.params_doc().into_iter().take(3) {
        match p.default {
            serde_json::Value::Null => t.push_str(&format!("# {} = …   (unset by default)\n", p.name)),
            d => t.push_str(&format!("{} = {}\n", p.name, toml_value(&d))),
        }
    }
    t
}

/// A value as it is written in TOML: `"tanh"`, `[1, 2]`, `{ name = "arelu", k = 0.6 }`.
pub fn toml_value(v: &Value) -> String {
    match v {
        Value::Null => "(unset)".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!("[{}]", a.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Object(m) => {
            let bare = |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let fields: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{} = {}", if bare(k) { k.clone() } else { format!("{k:?}") }, toml_value(x)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        o => o.to_string(),
    }
}

/// A param's type in TOML terms. Choices are read from the stage itself (its deserializer's
/// "expected one of" for a probe value), so they never drift from the code.
pub fn toml_type(stage: &dyn Stage, param: &str, ty: &str) -> String {
    shape(stage, param, ty, &|v| v)
}

/// `wrap` puts a probe value where the type sits inside the param (`[v]` inside a list).
fn shape(stage: &dyn Stage, param: &str, ty: &str, wrap: &dyn Fn(Value) -> Value) -> String {
    let t = ty.trim().trim_start_matches("std::collections::");
    if let Some(inner) = t.strip_prefix("Vec<").and_then(|r| r.strip_suffix('>')) {
        return format!("list of {}", shape(stage, param, inner, &|v| wrap(json!([v]))));
    }
    if let Some(inner) = t.strip_prefix("Option<").and_then(|r| r.strip_suffix('>')) {
        return format!("{} (optional)", shape(stage, param, inner, wrap));
    }
    if let Some(inner) = t.strip_prefix("BTreeMap<String,").and_then(|r| r.strip_suffix('>')) {
        return format!("table of {}", shape(stage, param, inner.trim(), &|v| wrap(json!({ "k": v }))));
    }
    match t {
        "String" => "string".into(),
        "usize" | "u32" | "u64" => "integer ≥ 0".into(),
        "i64" | "i32" => "integer".into(),
        "f64" | "f32" => "float".into(),
        "bool" => "boolean".into(),
        "Value" | "serde_json::Value" => "any value".into(),
        // Structs and untagged choices, described by hand (checked by a test to cover every
        // type a param uses).
        "Claim" => "table: text, source, and lower + higher or lowest/highest + among (each a table of axis values); proxy, exact".into(),
        "Alpha" => "float, or \"1/L\"".into(),
        _ => choices(stage, param, wrap).unwrap_or_else(|| format!("a {t} (see the doc)")),
    }
}

/// `"a" | "b"` for a plain choice, `{ name = "a" | "b", … }` for one with settings, from the
/// stage's own error for a name that does not exist.
fn choices(stage: &dyn Stage, param: &str, wrap: &dyn Fn(Value) -> Value) -> Option<String> {
    let probe = "\u{1}";
    let expected = |v: Value| -> Option<Vec<String>> {
        let mut raw = serde_json::Map::new();
        raw.insert(param.to_string(), wrap(v));
        let e = stage.canonicalize(&raw).err()?.to_string();
        let list = e.split("expected one of ").nth(1).or_else(|| e.split("expected ").nth(1))?;
        let names: Vec<String> =
            list.split('`').enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, n)| format!("{n:?}")).collect();
        (!names.is_empty()).then_some(names)
    };
    if let Some(n) = expected(Value::String(probe.into())) {
        return Some(n.join(" | "));
    }
    expected(json!({ "name": probe }))
        .map(|n| format!("{{ name = {}, … }} (settings per name: see the doc)", n.join(" | ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every param of every kind is described without Rust syntax.
    #[test]
    fn every_param_type_is_in_toml_terms() {
        for s in repro_stages::registry().iter() {
            for p in s.params_doc() {
                let t = toml_type(*s, p.name, p.ty);
                assert!(
                    !t.contains('<') && !t.contains("::") && !t.contains("(see the doc)"),
                    "{} {}: {t}",
                    s.kind(),
                    p.name
                );
            }
        }
    }

    /// Every kind's example is TOML whose keys are the kind's own inputs and params.
    #[test]
    fn every_example_is_toml_of_the_kinds_own_keys() {
        for s in repro_stages::registry().iter() {
            let text = example(*s);
            let v: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", s.kind()));
            let stage = v["stage"].as_table().unwrap().values().next().unwrap().as_table().unwrap();
            assert_eq!(stage["kind"].as_str(), Some(s.kind()));
            for k in stage.keys().filter(|k| *k != "kind") {
                let known = s.inputs().iter().any(|i| i.name == k) || s.params_doc().iter().any(|p| p.name == k);
                assert!(known, "{}: example key `{k}`", s.kind());
            }
        }
    }

    #[test]
    fn choices_come_from_the_stage() {
        let reg = repro_stages::registry();
        let tab = reg.iter().find(|s| s.kind() == "tabulate").unwrap();
        assert_eq!(toml_type(*tab, "aggregate", "Aggregate"), r#""mean" | "std" | "mean_std" | "count_below""#);
        let train = reg.iter().find(|s| s.kind() == "train").unwrap();
        let act = toml_type(*train, "activation", "Activation");
        assert!(act.starts_with(r#"{ name = "identity" | "sigmoid" | "tanh""#), "{act}");
        assert_eq!(toml_value(&json!({"name": "arelu", "k": 0.6})), r#"{ k = 0.6, name = "arelu" }"#);
    }
}
