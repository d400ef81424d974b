//! Reading JSON input into the contract's shapes, with errors that name the
//! field but never echo a value (values may be personal data), nor a key
//! that is not a field of the shape (a key may be personal data too: a NIR
//! sent as a name).
//!
//! [`parse`] refuses nothing that is JSON but records a key given twice in
//! one object: serde_json keeps the last, another parser may keep the first,
//! and the two would read two different claims. [`from_document`] then
//! refuses the document, naming the key's path only once the shape has
//! accepted every key of the document (so the path is made of field names).

use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

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

/// A JSON text that is not a document: where, and the kind of fault, never
/// the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {what}")]
pub struct SyntaxError {
    pub column: usize,
    pub what: &'static str,
}

/// A JSON document read by [`parse`]: its value (a key given twice keeps
/// its first value) and the keys given twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    value: Value,
    /// Paths of keys given twice in one object, in document order (at most
    /// [`MAX_TWICE`]). Never shown unless the shape accepts the document:
    /// an unknown key's name may be personal data.
    twice: Vec<String>,
}

/// Most keys given twice a document records: one is enough to refuse it.
const MAX_TWICE: usize = 16;

impl Document {
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The top-level `key`, unless the document gives it twice (then no
    /// value is the document's: each reader could take another).
    pub fn unique(&self, key: &str) -> Option<&Value> {
        if self.twice.iter().any(|path| path == key) {
            return None;
        }
        self.value.get(key)
    }
}

/// Reads one JSON text. A syntax error names its column and kind only.
pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    let mut twice = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Strict {
        at: At::Root,
        twice: &mut twice,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value))
    .map_err(|e| SyntaxError {
        column: e.column(),
        what: match e.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected value",
            serde_json::error::Category::Eof => "unexpected end of line",
        },
    })?;
    Ok(Document { value, twice })
}

/// Deserializes `document` into `T` as [`from_value`] does; a document that
/// gives a key twice is then refused, naming the key's path: `T` took every
/// key of it, so the path is made of field names.
pub fn from_document<T: DeserializeOwned>(
    document: &Document,
    objects: &[&str],
) -> Result<T, ShapeError> {
    let value = from_value(&document.value, objects)?;
    match document.twice.first() {
        Some(path) => Err(ShapeError {
            path: path.clone(),
            what: "given twice",
        }),
        None => Ok(value),
    }
}

/// Where a value sits in the document being read, as a chain to the root,
/// written out only for a key given twice.
#[derive(Clone, Copy)]
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Key(At::Root, key) => f.write_str(&join("", key)),
            At::Key(parent, key) => write!(f, "{parent}.{}", join("", key)),
            At::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Builds a `Value` as serde_json does, recording keys given twice.
struct Strict<'a, 'p> {
    at: At<'p>,
    twice: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict {
            at: At::Index(&self.at, items.len()),
            twice: &mut *self.twice,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Strict {
                at: At::Key(&self.at, &key),
                twice: &mut *self.twice,
            })?;
            if object.contains_key(&key) {
                if self.twice.len() < MAX_TWICE {
                    let mut path = String::new();
                    let _ = write!(path, "{}", At::Key(&self.at, &key));
                    self.twice.push(path);
                }
            } else {
                object.insert(key, value);
            }
        }
        Ok(Value::Object(object))
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
            // Named by the record holding it, never by its own name, which
            // may be personal data: serde's path ends with that name, unless
            // the record was buffered first (a tagged enum).
            let mut segments: Vec<_> = e.path().iter().collect();
            if let (Some(serde_path_to_error::Segment::Map { key }), Some(name)) =
                (segments.last(), quoted(&message))
                && key == name
            {
                segments.pop();
            }
            let mut path = String::new();
            for segment in segments {
                match segment {
                    serde_path_to_error::Segment::Seq { index } => {
                        let _ = write!(path, "[{index}]");
                    }
                    other => path = join(&path, &other.to_string()),
                }
            }
            ShapeError {
                path: if path.is_empty() {
                    "(document)".into()
                } else {
                    path.chars().take(4 * MAX_NAME).collect()
                },
                what: "has an unknown field",
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
        let wrong = err(r#"{"name": 185057800604830}"#);
        assert_eq!(wrong.path, "name");
        assert!(!wrong.to_string().contains("1850578"));
        assert_eq!(err("[1]").path, "(document)");
    }

    /// An unknown key is named by the record that holds it: its own name
    /// may be personal data.
    #[test]
    fn an_unknown_key_is_never_named() {
        for (json, path) in [
            (r#"{"name": "x", "185057800604830": 1}"#, "(document)"),
            (r#"{"name": "x", "inner": {"185057800604830": 1}}"#, "inner"),
            (
                r#"{"name": "x", "list": [{"a": 1}, {"185057800604830": 1}]}"#,
                "list[1]",
            ),
        ] {
            let e = err(json);
            assert_eq!(
                e,
                ShapeError {
                    path: path.into(),
                    what: "has an unknown field"
                }
            );
        }
        // A record buffered before it is read (a tagged enum) has no path
        // to its field: still no name.
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        #[allow(dead_code)]
        enum Tagged {
            One { a: u8 },
        }
        let value = serde_json::json!({"kind": "One", "a": 1, "185057800604830": 2});
        let e = from_value::<Tagged>(&value, &[]).unwrap_err();
        assert!(!e.to_string().contains("1850578"), "{e}");
    }

    fn doc(json: &str) -> Result<Outer, ShapeError> {
        from_document(&parse(json).unwrap(), &["inner", "list[]"])
    }

    /// A key given twice is refused, named by its path once the shape took
    /// every key; otherwise the shape's own refusal stands, which never
    /// names an unknown key.
    #[test]
    fn a_key_given_twice_is_refused() {
        for (json, path, what) in [
            (r#"{"name": "x", "name": "y"}"#, "name", "given twice"),
            (
                r#"{"name": "x", "inner": {"a": 1, "a": 1}}"#,
                "inner.a",
                "given twice",
            ),
            (
                r#"{"name": "x", "list": [{"a": 1}, {"a": 2, "a": 3}]}"#,
                "list[1].a",
                "given twice",
            ),
            (
                r#"{"name": "x", "185057800604830": 1, "185057800604830": 1}"#,
                "(document)",
                "has an unknown field",
            ),
            (
                r#"{"name": "x", "185057800604830": {"a": 1, "a": 2}}"#,
                "(document)",
                "has an unknown field",
            ),
        ] {
            assert_eq!(
                doc(json).unwrap_err(),
                ShapeError {
                    path: path.into(),
                    what
                },
                "{json}"
            );
        }
        // The first value is kept, and an id given twice is no id.
        let document = parse(r#"{"name": "x", "id": 1, "id": 2}"#).unwrap();
        assert_eq!(document.value()["id"], 1);
        assert_eq!(document.unique("id"), None);
        assert_eq!(document.unique("name"), Some(&Value::from("x")));
        assert!(doc(r#"{"name": "x", "list": [{"a": 1}, {"a": 2}]}"#).is_ok());
    }

    /// What serde_json reads, `parse` reads the same; what it refuses,
    /// `parse` refuses with a position and no text.
    #[test]
    fn parse_reads_what_serde_json_reads() {
        for json in [
            r#"{"a": [1, -2, 3.5, -0.0, true, null, "s\u00e9"], "b": {"c": {}}}"#,
            "[]",
            "18446744073709551615",
            r#""x""#,
        ] {
            let theirs: Value = serde_json::from_str(json).unwrap();
            assert_eq!(parse(json).unwrap().value(), &theirs, "{json}");
        }
        for json in [r#"{"a": 1"#, r#"{"185057800604830"}"#, "[1] 2", "", "1e400"] {
            assert!(serde_json::from_str::<Value>(json).is_err());
            let e = parse(json).unwrap_err();
            assert!(!e.to_string().contains("1850578"), "{e}");
        }
    }
}
