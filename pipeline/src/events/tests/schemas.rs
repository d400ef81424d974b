//! Schema hygiene: the files are the embedded ones, every record and field
//! has a doc, names and types follow the conventions, named types agree
//! across files and with the Rust enums, and the fingerprints follow the
//! spec's Parsing Canonical Form.

use std::collections::BTreeMap;

use apache_avro::Schema;
use serde_json::Value;

use super::schemas_dir;
use crate::events::codec::AvroEnum;
use crate::events::model::*;
use crate::events::registry::{
    EMBEDDED_SCHEMAS, SchemaVersion, fingerprint_json, parsing_canonical_form, rabin64,
};

const TOPICS: [&str; 16] = [
    "fse.submitted",
    "fse.validated",
    "fse.entitled",
    "fse.routed",
    "fse.decided",
    "fse.rejected",
    "payments.orders",
    "returns.professional",
    "eu.claims",
    "amc.claims",
    "outbound.ledger",
    "audit.checkpoints",
    "ref.rights",
    "ref.pki",
    "ref.eu.institutions",
    "dlq",
];

/// Every `.avsc` file: (path relative to schemas/, parsed JSON).
fn all_files() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for dir in ["", "history"] {
        for entry in std::fs::read_dir(schemas_dir().join(dir)).expect("schemas dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("avsc") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let rel = if dir.is_empty() {
                name.to_owned()
            } else {
                format!("{dir}/{name}")
            };
            out.push((rel, json));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn the_files_are_the_embedded_current_schemas() {
    let mut topics = Vec::new();
    for entry in std::fs::read_dir(schemas_dir()).expect("schemas dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let topic = name
            .strip_suffix(".avsc")
            .unwrap_or_else(|| panic!("{name}: only .avsc files belong in schemas/"));
        let text = std::fs::read_to_string(&path).expect("readable");
        let embedded = EMBEDDED_SCHEMAS
            .iter()
            .find(|e| e.topic == topic && e.version == SchemaVersion::Current)
            .unwrap_or_else(|| panic!("{name} is not embedded as a current schema"));
        assert_eq!(embedded.json, text);
        Schema::parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        topics.push(topic.to_owned());
    }
    topics.sort();
    let mut expected: Vec<String> = TOPICS.iter().map(|t| (*t).to_owned()).collect();
    expected.sort();
    assert_eq!(topics, expected);
}

/// Walks a schema, calling `visit` on every object that defines a named
/// type, with the path to it.
fn walk<'a>(schema: &'a Value, path: &str, visit: &mut dyn FnMut(&str, &'a Value)) {
    match schema {
        Value::Array(branches) => {
            for (i, b) in branches.iter().enumerate() {
                walk(b, &format!("{path}[{i}]"), visit);
            }
        }
        Value::Object(map) => {
            let kind = map.get("type").and_then(Value::as_str).unwrap_or("");
            if matches!(kind, "record" | "enum" | "fixed") {
                visit(path, schema);
            }
            if let Some(Value::Array(fields)) = map.get("fields") {
                for field in fields {
                    let name = field.get("name").and_then(Value::as_str).unwrap_or("?");
                    if let Some(t) = field.get("type") {
                        walk(t, &format!("{path}.{name}"), visit);
                    }
                }
            }
            for key in ["items", "values"] {
                if let Some(inner) = map.get(key) {
                    walk(inner, path, visit);
                }
            }
            if let Some(inner @ (Value::Object(_) | Value::Array(_))) = map.get("type") {
                walk(inner, path, visit);
            }
        }
        _ => {}
    }
}

fn has_doc(v: &Value) -> bool {
    v.get("doc")
        .and_then(Value::as_str)
        .is_some_and(|d| !d.trim().is_empty())
}

fn is_logical(t: &Value, base: &str, logical: &str) -> bool {
    t.get("type").and_then(Value::as_str) == Some(base)
        && t.get("logicalType").and_then(Value::as_str) == Some(logical)
}

/// The non-null branch of `["null", T]`, or the type itself.
fn unwrap_optional(t: &Value) -> &Value {
    match t {
        Value::Array(branches) if branches.len() == 2 && branches[0] == "null" => &branches[1],
        other => other,
    }
}

#[test]
fn every_schema_has_a_namespace_and_docs_and_follows_the_conventions() {
    let mut problems = Vec::new();
    for (file, schema) in all_files() {
        if schema.get("namespace").and_then(Value::as_str) != Some("fr.clearing.v1") {
            problems.push(format!("{file}: namespace is not fr.clearing.v1"));
        }
        walk(&schema, "", &mut |path, named| {
            let name = named.get("name").and_then(Value::as_str).unwrap_or("?");
            if !has_doc(named) {
                problems.push(format!("{file}{path}: {name} has no doc"));
            }
            let Some(Value::Array(fields)) = named.get("fields") else {
                return;
            };
            for field in fields {
                let fname = field.get("name").and_then(Value::as_str).unwrap_or("?");
                let at = format!("{file}{path}.{fname}");
                if !has_doc(field) {
                    problems.push(format!("{at}: no doc"));
                }
                let t = field.get("type").unwrap_or(&Value::Null);
                let inner = unwrap_optional(t);
                if let Value::Array(branches) = t {
                    let optional = branches.len() == 2 && branches[0] == "null";
                    if optional && field.get("default") != Some(&Value::Null) {
                        problems.push(format!("{at}: optional without \"default\": null"));
                    }
                }
                if fname.ends_with("_cents") {
                    let doc = field.get("doc").and_then(Value::as_str).unwrap_or("");
                    if inner != "long" || !doc.contains("euro cents") {
                        problems.push(format!("{at}: amounts are long, documented in euro cents"));
                    }
                }
                if fname.ends_with("_millis") && !is_logical(inner, "long", "timestamp-millis") {
                    problems.push(format!("{at}: *_millis is a timestamp-millis long"));
                }
                if fname == "chain_hash"
                    && (inner.get("type").and_then(Value::as_str) != Some("fixed")
                        || inner.get("size").and_then(Value::as_u64) != Some(32))
                {
                    problems.push(format!("{at}: chain_hash is a fixed of 32 bytes"));
                }
            }
        });
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Dates in the Rust structs are Avro dates: every field the model types as
/// `NaiveDate` is `{"type": "int", "logicalType": "date"}` in the schema.
#[test]
fn dates_are_date_logical_types() {
    let dates = [
        "care_date",
        "birth_date",
        "expiry",
        "reimbursement_date",
        "value_date",
        "guarantee_due",
        "introduced_on",
        "introduction_deadline",
        "payment_due",
        "dispute_deadline",
        "from",
        "to",
        "not_before",
        "not_after",
        "revoked_on",
    ];
    let mut seen = 0;
    for (file, schema) in all_files() {
        walk(&schema, "", &mut |path, named| {
            let Some(Value::Array(fields)) = named.get("fields") else {
                return;
            };
            for field in fields {
                let fname = field.get("name").and_then(Value::as_str).unwrap_or("?");
                if dates.contains(&fname) {
                    seen += 1;
                    let t = unwrap_optional(field.get("type").unwrap_or(&Value::Null));
                    assert!(
                        is_logical(t, "int", "date"),
                        "{file}{path}.{fname}: not a date"
                    );
                }
            }
        });
    }
    assert!(seen > 20);
}

/// A named type defined in several files (EventHeader, Reason, Route…) is
/// the same everywhere, and every Avro enum is the Rust enum's symbols.
#[test]
fn named_types_agree_across_files_and_with_rust() {
    let mut defined: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for (file, schema) in all_files() {
        // The other events embed the care sheet in its signed form, which is
        // fse.submitted.v1; the current fse.submitted adds the receipt stamp.
        let schema = match file.as_str() {
            "fse.submitted.avsc" => signed_form_of(&schema),
            "history/fse.submitted.v1.avsc" => continue,
            f if f.starts_with("history/") => continue,
            _ => schema,
        };
        walk(&schema, "", &mut |path, named| {
            let name = named
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            // The top-level record carries the namespace; inline ones inherit it.
            let mut named = named.clone();
            if let Some(map) = named.as_object_mut() {
                map.remove("namespace");
            }
            match defined.get(&name) {
                Some((first, def)) => assert!(
                    *def == named,
                    "{name} differs between {first} and {file}{path}"
                ),
                None => {
                    defined.insert(name, (format!("{file}{path}"), named));
                }
            }
        });
    }
    fn symbols<E: AvroEnum>(defined: &BTreeMap<String, (String, Value)>) {
        let (_, def) = defined
            .get(E::NAME)
            .unwrap_or_else(|| panic!("enum {} is in no schema", E::NAME));
        let in_schema: Vec<&str> = def["symbols"]
            .as_array()
            .expect("symbols")
            .iter()
            .map(|s| s.as_str().expect("symbol"))
            .collect();
        assert_eq!(in_schema, E::SYMBOLS, "enum {}", E::NAME);
    }
    symbols::<Category>(&defined);
    symbols::<SectorSymbol>(&defined);
    symbols::<Pathway>(&defined);
    symbols::<Complement>(&defined);
    symbols::<Stage>(&defined);
    symbols::<SignatureCheck>(&defined);
    symbols::<LocalRegimeSymbol>(&defined);
    symbols::<Route>(&defined);
    symbols::<Status>(&defined);
    symbols::<PayeeKind>(&defined);
    symbols::<ReturnKind>(&defined);
    symbols::<PrescriberKind>(&defined);
    symbols::<NonSubstitution>(&defined);
    symbols::<BillingKind>(&defined);
    let enums = defined
        .values()
        .filter(|(_, d)| d["type"] == "enum")
        .count();
    assert_eq!(enums, 14, "every Avro enum is checked against a Rust enum");
}

/// A schema with the fields the signed form lacks left out: its act lines'
/// `prescription` and its professional's `billing` (2026-12-06).
fn without_later_fields(schema: &Value) -> Value {
    let mut schema = schema.clone();
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                let later = match map.get("name").and_then(Value::as_str) {
                    Some("ActLine") => Some("prescription"),
                    Some("Professional") => Some("billing"),
                    _ => None,
                };
                if let Some(later) = later
                    && let Some(Value::Array(fields)) = map.get_mut("fields")
                {
                    fields.retain(|f| f["name"] != later);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut schema);
    schema
}

/// fse.submitted without its receipt stamp: the FSE as the stage events
/// embed it, which is the signed form (history/fse.submitted.v1.avsc) with
/// the current documentation and, since 2026-12-06, each act line's
/// `prescription` and the professional's `billing` (outside v1:
/// signatures.rs appends them).
fn signed_form_of(current: &Value) -> Value {
    let mut form = current.clone();
    let fields = form["fields"].as_array_mut().expect("fields");
    let stamp = fields.pop().expect("a last field");
    assert_eq!(
        stamp["name"], "ingested_at_millis",
        "the stamp is the last field"
    );
    let v1: Value = serde_json::from_str(
        &std::fs::read_to_string(schemas_dir().join("history/fse.submitted.v1.avsc"))
            .expect("readable"),
    )
    .expect("JSON");
    form["doc"] = v1["doc"].clone();
    assert_eq!(
        without_later_fields(&form),
        v1,
        "fse.submitted is the signed form, prescriptions, billing and the stamp"
    );
    form
}

#[test]
fn rabin_matches_the_spec() {
    // CRC-64-AVRO of "int" (fastavro: fingerprint('"int"', "CRC-64-AVRO")).
    assert_eq!(rabin64(b"\"int\""), 0x7275_d51a_3f39_5c8f);
    assert_eq!(
        fingerprint_json("\"int\"").expect("fingerprint"),
        [0x8f, 0x5c, 0x39, 0x3f, 0x1a, 0xd5, 0x75, 0x72]
    );
    // And apache-avro's own Rabin agrees where its canonical form does.
    let schema = Schema::parse_str("\"string\"").expect("schema");
    let theirs = schema.fingerprint::<apache_avro::rabin::Rabin>();
    assert_eq!(
        fingerprint_json("\"string\"").expect("fp").to_vec(),
        theirs.bytes
    );
}

#[test]
fn canonical_form_follows_the_spec() {
    let schema = r#"{
        "type": "record", "name": "A", "namespace": "x.y", "doc": "stripped",
        "fields": [
            {"name": "d", "doc": "a date", "type": {"type": "int", "logicalType": "date"}},
            {"name": "e", "type": ["null", {"type": "enum", "name": "z.E", "symbols": ["S"]}],
             "default": null},
            {"name": "f", "type": "z.E"},
            {"name": "g", "type": {"type": "fixed", "name": "H", "size": "32"}},
            {"name": "h", "type": {"type": "array", "items": "H"}}
        ]
    }"#;
    assert_eq!(
        parsing_canonical_form(schema).expect("pcf"),
        concat!(
            r#"{"name":"x.y.A","type":"record","fields":["#,
            r#"{"name":"d","type":"int"},"#,
            r#"{"name":"e","type":["null",{"name":"z.E","type":"enum","symbols":["S"]}]},"#,
            r#"{"name":"f","type":"z.E"},"#,
            r#"{"name":"g","type":{"name":"x.y.H","type":"fixed","size":32}},"#,
            r#"{"name":"h","type":{"type":"array","items":"x.y.H"}}]}"#,
        )
    );
}

/// Our canonical form is apache-avro's, except where apache-avro 0.21
/// departs from the spec: it writes a logical type's base as
/// `{"type":"int"}` instead of `"int"`.
#[test]
fn canonical_form_agrees_with_apache_avro_up_to_logical_types() {
    for embedded in EMBEDDED_SCHEMAS {
        let ours = parsing_canonical_form(embedded.json).expect("pcf");
        let mut theirs = Schema::parse_str(embedded.json)
            .expect("parses")
            .canonical_form();
        for primitive in ["int", "long"] {
            theirs = theirs.replace(
                &format!(r#"{{"type":"{primitive}"}}"#),
                &format!(r#""{primitive}""#),
            );
        }
        assert_eq!(ours, theirs, "{} {}", embedded.topic, embedded.version);
    }
}
