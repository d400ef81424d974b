//! Field-level differences between two JSON renderings of an event.

use serde::Serialize;
use serde_json::Value;

/// One field whose value differs, by JSON path (`decision.lines[0].amo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    pub path: String,
    pub recorded: Value,
    pub replayed: Value,
}

/// Every leaf that differs, in document order; objects by key (sorted by
/// serde_json's map), arrays by index.
pub fn diff(recorded: &Value, replayed: &Value) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    walk("", recorded, replayed, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<FieldDiff>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(
                    &sub,
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                walk(
                    &format!("{path}[{i}]"),
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(FieldDiff {
            path: if path.is_empty() {
                "$".into()
            } else {
                path.into()
            },
            recorded: a.clone(),
            replayed: b.clone(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_differing_leaf_by_its_path() {
        let a =
            json!({"decision": {"amo": "21.00", "lines": [{"rate": 70}, {"rate": 60}]}, "id": "x"});
        let b = json!({"decision": {"amo": "21.50", "lines": [{"rate": 70}]}, "id": "x"});
        let d = diff(&a, &b);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].path, "decision.amo");
        assert_eq!(d[0].recorded, json!("21.00"));
        assert_eq!(d[0].replayed, json!("21.50"));
        assert_eq!(d[1].path, "decision.lines[1]");
        assert_eq!(d[1].replayed, Value::Null);
        assert!(diff(&a, &a).is_empty());
    }
}
