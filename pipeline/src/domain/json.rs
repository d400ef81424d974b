//! Reading JSON input into the contract's shapes, with errors that name the
//! field but never echo a value (values may be personal data).

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Bound on a field name quoted in an error.
const MAX_NAME: usize = 64;

/// Where a JSON document departs from the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {what}")]
pub struct ShapeError {
    /// Dotted path of the field, `(document)` for the whole.
    pub path: String,
    pub what: &'static str,
}

fn join(path: &str, name: &str) -> String {
    let name: String = name.chars().take(MAX_NAME).collect();
    if path.is_empty() || path == "." {
        name
    } else {
        format!("{path}.{name}")
    }
}

/// The quoted name in serde's "missing field `x`" / "unknown field `x`".
fn quoted(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(&message[start..end])
}

/// serde accepts a sequence where a struct is due; the contract does not.
/// `objects` lists the fields that must be objects (or null); a name ending
/// in `[]` is an array whose items must be objects.
fn check_objects(value: &Value, objects: &[&str]) -> Result<(), ShapeError> {
    if !value.is_object() {
        return Err(ShapeError {
            path: "(document)".into(),
            what: "expected an object",
        });
    }
    for name in objects {
        let (field, items) = match name.strip_suffix("[]") {
            Some(field) => (field, true),
            None => (*name, false),
        };
        match (value.get(field), items) {
            (None | Some(Value::Null), _) => {}
            (Some(Value::Object(_)), false) => {}
            (Some(Value::Array(list)), true) => {
                if let Some(i) = list.iter().position(|v| !v.is_object()) {
                    return Err(ShapeError {
                        path: format!("{field}[{i}]"),
                        what: "expected an object",
                    });
                }
            }
            _ => {
                return Err(ShapeError {
                    path: field.to_string(),
                    what: if items {
                        "expected an array"
                    } else {
                        "expected an object"
                    },
                });
            }
        }
    }
    Ok(())
}

/// Deserializes `value` into `T`, first checking that `objects` are objects.
pub fn from_value<T: DeserializeOwned>(value: &Value, objects: &[&str]) -> Result<T, ShapeError> {
    check_objects(value, objects)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if message.starts_with("missing field") {
            ShapeError {
                path: join(&path, quoted(&message).unwrap_or("?")),
                what: "missing",
            }
        } else if message.starts_with("unknown field") {
            // serde's path already ends with the unknown field.
            let path = if path.is_empty() || path == "." {
                quoted(&message).unwrap_or("?").to_string()
            } else {
                path
            };
            ShapeError {
                path: path.chars().take(4 * MAX_NAME).collect(),
                what: "not a field of this record",
            }
        } else {
            ShapeError {
                path: if path == "." {
                    "(document)".into()
                } else {
                    path
                },
                what: "wrong type or value",
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u8,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Option<Inner>,
        list: Option<Vec<Inner>>,
        name: String,
    }

    fn err(json: &str) -> ShapeError {
        from_value::<Outer>(&serde_json::from_str(json).unwrap(), &["inner", "list[]"]).unwrap_err()
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        assert_eq!(err(r#"{"inner": [7], "name": "x"}"#).path, "inner");
        assert_eq!(
            err(r#"{"list": [{"a": 1}, [2]], "name": "x"}"#).path,
            "list[1]"
        );
        assert_eq!(
            err(r#"{"inner": {"a": 1}}"#),
            ShapeError {
                path: "name".into(),
                what: "missing"
            }
        );
        assert_eq!(err(r#"{"name": "x", "extra": 1}"#).path, "extra");
        let wrong = err(r#"{"name": 185057800604830}"#);
        assert_eq!(wrong.path, "name");
        assert!(!wrong.to_string().contains("1850578"));
        assert_eq!(err("[1]").path, "(document)");
    }
}
