//! Axis values as tables and figures show and order them.

use serde_json::Value;
use std::cmp::Ordering;

/// A value as text: strings without quotes, everything else as JSON.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Numeric-aware ordering of axis values (500 before 1500), element by element.
pub fn cmp_vals(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p.total_cmp(&q),
            _ => show(x).cmp(&show(y)),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_order_by_value_strings_by_text() {
        assert_eq!(cmp_vals(&[json!(500)], &[json!(1500)]), Ordering::Less);
        assert_eq!(cmp_vals(&[json!("b")], &[json!("a")]), Ordering::Greater);
        assert_eq!(cmp_vals(&[json!(1), json!("x")], &[json!(1), json!("x")]), Ordering::Equal);
        assert_eq!(show(&json!("tanh")), "tanh");
        assert_eq!(show(&json!(0.5)), "0.5");
    }
}
