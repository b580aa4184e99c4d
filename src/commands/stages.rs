//! `repro stages`: every stage kind with its inputs, outputs and params.

use repro_engine::diag::{exit, Error, Result};
use serde_json::{json, Value};

pub fn stages(kind: Option<&str>, as_json: bool) -> Result<i32> {
    let list: Vec<_> = repro_stages::registry().iter().filter(|s| kind.is_none_or(|k| s.kind() == k)).collect();
    if list.is_empty() {
        return Err(Error::Usage(format!("no stage kind `{}`", kind.unwrap_or(""))));
    }
    if as_json {
        let v: Vec<Value> = list
            .iter()
            .map(|s| {
                let inputs: Vec<Value> = s.inputs().iter().map(|i| json!({"name": i.name, "doc": i.doc, "required": i.required, "many": i.many})).collect();
                json!({"kind": s.kind(), "version": s.version(), "doc": s.doc(), "inputs": inputs, "params": s.params_doc()})
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
            outln!("  input  {:<20} {card}: {}", i.name, i.doc);
        }
        let defaults: serde_json::Map<String, Value> =
            s.params_doc().into_iter().map(|p| (p.name.to_string(), p.default)).collect();
        outln!("  output {} (with default params)", s.outputs(&Value::Object(defaults)).join(", "));
        for p in s.params_doc() {
            outln!(
                "  param  {:<20} {:<16} = {:<12} {}",
                p.name,
                p.ty.replace(' ', ""),
                p.default,
                p.doc.replace('\n', " ")
            );
        }
        outln!();
    }
    Ok(exit::OK)
}
