//! The schema registry: every schema this binary knows, by fingerprint, and
//! the Avro single-object encoding of the events.
//!
//! A message is `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin)
//! fingerprint of the writer schema's Parsing Canonical Form, then the Avro
//! binary body. Any Avro library reads it with the `.avsc` alone.
//!
//! The registry is built at start from the schemas embedded in the binary:
//! the current `schemas/<topic>.avsc` of each topic and the older versions
//! kept as `schemas/history/<topic>.v<N>.avsc`. A message written with the
//! current schema takes the hand-written fast path of `codec.rs`; one written
//! with an older version is resolved by apache-avro to the current schema,
//! re-encoded, then decoded by the fast path. Anything else is a
//! [`DecodeError`] naming what went wrong, for the runtime to dead-letter.
//! This module never panics on input.

use std::collections::HashMap;
use std::fmt;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use thiserror::Error;

use super::codec::{
    AvroField, AvroRecord, BEFORE_BILLING, BEFORE_FOREIGN, BEFORE_RENEWALS, CodecError, Decoder,
    Encoder, MAX_BYTES_LEN, SIGNED_FORM_VERSION, decode_body,
};
use super::model::{
    AmcClaim, AuditCheckpoint, DeadLetter, EuClaim, EuInstitutionRecord, FseDecided, FseEntitled,
    FseRejected, FseRouted, FseSubmitted, FseValidated, LedgerEntry, PaymentOrder, PkiEvent,
    ProfessionalReturn, RightsRecord,
};

/// The two bytes that open an Avro single-object message.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Magic plus the 8-byte fingerprint.
pub const HEADER_LEN: usize = 10;

/// Which version of a topic's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SchemaVersion {
    /// `schemas/history/<topic>.v<N>.avsc`: an older version, still readable.
    History(u32),
    /// `schemas/<topic>.avsc`: the version this binary writes.
    Current,
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaVersion::History(n) => write!(f, "v{n}"),
            SchemaVersion::Current => f.write_str("current"),
        }
    }
}

/// A schema text embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedSchema {
    pub topic: &'static str,
    pub version: SchemaVersion,
    pub json: &'static str,
}

const fn current<T: AvroRecord>() -> EmbeddedSchema {
    EmbeddedSchema {
        topic: T::TOPIC,
        version: SchemaVersion::Current,
        json: T::SCHEMA_JSON,
    }
}

/// Every schema of every topic: the current ones, then the history. A test
/// checks this list against the files in `schemas/` and `schemas/history/`.
pub const EMBEDDED_SCHEMAS: &[EmbeddedSchema] = &[
    current::<FseSubmitted>(),
    current::<FseValidated>(),
    current::<FseEntitled>(),
    current::<FseRouted>(),
    current::<FseDecided>(),
    current::<FseRejected>(),
    current::<PaymentOrder>(),
    current::<ProfessionalReturn>(),
    current::<EuClaim>(),
    current::<AmcClaim>(),
    current::<LedgerEntry>(),
    current::<AuditCheckpoint>(),
    current::<RightsRecord>(),
    current::<PkiEvent>(),
    current::<EuInstitutionRecord>(),
    current::<DeadLetter>(),
    EmbeddedSchema {
        topic: "fse.submitted",
        version: SchemaVersion::History(0),
        json: include_str!("../../../schemas/history/fse.submitted.v0.avsc"),
    },
    history(
        "fse.submitted",
        SIGNED_FORM_VERSION,
        include_str!("../../../schemas/history/fse.submitted.v1.avsc"),
    ),
    history(
        "fse.submitted",
        2,
        include_str!("../../../schemas/history/fse.submitted.v2.avsc"),
    ),
    history(
        "fse.submitted",
        BEFORE_FOREIGN,
        include_str!("../../../schemas/history/fse.submitted.v3.avsc"),
    ),
    history(
        "fse.submitted",
        BEFORE_BILLING,
        include_str!("../../../schemas/history/fse.submitted.v4.avsc"),
    ),
    history(
        "fse.submitted",
        BEFORE_RENEWALS,
        include_str!("../../../schemas/history/fse.submitted.v5.avsc"),
    ),
    history(
        "fse.validated",
        0,
        include_str!("../../../schemas/history/fse.validated.v0.avsc"),
    ),
    history(
        "fse.validated",
        1,
        include_str!("../../../schemas/history/fse.validated.v1.avsc"),
    ),
    history(
        "fse.validated",
        2,
        include_str!("../../../schemas/history/fse.validated.v2.avsc"),
    ),
    history(
        "fse.validated",
        3,
        include_str!("../../../schemas/history/fse.validated.v3.avsc"),
    ),
    history(
        "fse.entitled",
        0,
        include_str!("../../../schemas/history/fse.entitled.v0.avsc"),
    ),
    history(
        "fse.entitled",
        1,
        include_str!("../../../schemas/history/fse.entitled.v1.avsc"),
    ),
    history(
        "fse.entitled",
        2,
        include_str!("../../../schemas/history/fse.entitled.v2.avsc"),
    ),
    history(
        "fse.entitled",
        3,
        include_str!("../../../schemas/history/fse.entitled.v3.avsc"),
    ),
    history(
        "fse.routed",
        0,
        include_str!("../../../schemas/history/fse.routed.v0.avsc"),
    ),
    history(
        "fse.routed",
        1,
        include_str!("../../../schemas/history/fse.routed.v1.avsc"),
    ),
    history(
        "fse.routed",
        2,
        include_str!("../../../schemas/history/fse.routed.v2.avsc"),
    ),
    history(
        "fse.routed",
        3,
        include_str!("../../../schemas/history/fse.routed.v3.avsc"),
    ),
    history(
        "fse.decided",
        0,
        include_str!("../../../schemas/history/fse.decided.v0.avsc"),
    ),
    history(
        "fse.decided",
        1,
        include_str!("../../../schemas/history/fse.decided.v1.avsc"),
    ),
    history(
        "fse.rejected",
        0,
        include_str!("../../../schemas/history/fse.rejected.v0.avsc"),
    ),
    history(
        "fse.rejected",
        1,
        include_str!("../../../schemas/history/fse.rejected.v1.avsc"),
    ),
    history(
        "payments.orders",
        0,
        include_str!("../../../schemas/history/payments.orders.v0.avsc"),
    ),
    history(
        "returns.professional",
        0,
        include_str!("../../../schemas/history/returns.professional.v0.avsc"),
    ),
    history(
        "returns.professional",
        1,
        include_str!("../../../schemas/history/returns.professional.v1.avsc"),
    ),
    history(
        "outbound.ledger",
        0,
        include_str!("../../../schemas/history/outbound.ledger.v0.avsc"),
    ),
    history(
        "dlq",
        0,
        include_str!("../../../schemas/history/dlq.v0.avsc"),
    ),
    history(
        "ref.rights",
        0,
        include_str!("../../../schemas/history/ref.rights.v0.avsc"),
    ),
];

const fn history(topic: &'static str, version: u32, json: &'static str) -> EmbeddedSchema {
    EmbeddedSchema {
        topic,
        version: SchemaVersion::History(version),
        json,
    }
}

/// One known schema.
#[derive(Debug, Clone)]
pub struct RegisteredSchema {
    pub topic: &'static str,
    pub version: SchemaVersion,
    pub fingerprint: [u8; 8],
    pub schema: Schema,
}

/// A registry that cannot be built: an embedded schema is broken. A bug,
/// caught by the tests, never a run-time condition.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("schema {topic} {version} does not parse: {source}")]
    Parse {
        topic: &'static str,
        version: SchemaVersion,
        #[source]
        source: apache_avro::Error,
    },
    #[error("schema {topic} {version} has no canonical form: {source}")]
    CanonicalForm {
        topic: &'static str,
        version: SchemaVersion,
        #[source]
        source: CanonicalFormError,
    },
    #[error("schemas {first} and {second} have the same fingerprint {fingerprint}")]
    DuplicateFingerprint {
        first: String,
        second: String,
        fingerprint: String,
    },
    #[error("topic {topic} has no current schema")]
    NoCurrent { topic: &'static str },
    #[error("schema {topic} {version} is not readable as the current one: {reason}")]
    Incompatible {
        topic: &'static str,
        version: SchemaVersion,
        reason: String,
    },
}

/// Why a message could not be decoded: what the runtime writes to the
/// dead-letter topic. Never carries the message's bytes.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("message of {len} bytes is shorter than the {HEADER_LEN}-byte single-object header")]
    TooShort { len: usize },
    #[error("bad magic {found:02x?}: not an Avro single-object message (C3 01)")]
    BadMagic { found: [u8; 2] },
    #[error("unknown schema fingerprint {fingerprint}")]
    UnknownFingerprint { fingerprint: String },
    #[error("expected a {expected} message, got one written with the {found} schema {version}")]
    WrongTopic {
        expected: &'static str,
        found: &'static str,
        version: SchemaVersion,
    },
    #[error("{topic} {version}: the body does not decode: {source}")]
    Body {
        topic: &'static str,
        version: SchemaVersion,
        #[source]
        source: CodecError,
    },
    #[error("{topic} {version}: the body does not resolve to the current schema: {source}")]
    Resolve {
        topic: &'static str,
        version: SchemaVersion,
        #[source]
        source: apache_avro::Error,
    },
    #[error("{topic}: no current schema registered")]
    NotRegistered { topic: &'static str },
}

/// Every schema this binary knows, by fingerprint.
#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    by_fingerprint: HashMap<[u8; 8], RegisteredSchema>,
    current: HashMap<&'static str, [u8; 8]>,
}

impl SchemaRegistry {
    /// The registry of every embedded schema ([`EMBEDDED_SCHEMAS`]).
    pub fn new() -> Result<Self, RegistryError> {
        Self::from_schemas(EMBEDDED_SCHEMAS)
    }

    /// A registry of the given schemas. Every older version must be readable
    /// with its topic's current schema.
    pub fn from_schemas(schemas: &[EmbeddedSchema]) -> Result<Self, RegistryError> {
        // apache-avro (the older-version path) trusts lengths up to 512 MiB
        // by default, per string and per array: bound it like our decoder.
        // A process-wide setting that only the first caller sets.
        apache_avro::util::max_allocation_bytes(MAX_BYTES_LEN);

        let mut by_fingerprint: HashMap<[u8; 8], RegisteredSchema> = HashMap::new();
        let mut current = HashMap::new();
        for embedded in schemas {
            let schema =
                Schema::parse_str(embedded.json).map_err(|source| RegistryError::Parse {
                    topic: embedded.topic,
                    version: embedded.version,
                    source,
                })?;
            let fingerprint =
                fingerprint_json(embedded.json).map_err(|source| RegistryError::CanonicalForm {
                    topic: embedded.topic,
                    version: embedded.version,
                    source,
                })?;
            if let Some(first) = by_fingerprint.get(&fingerprint) {
                return Err(RegistryError::DuplicateFingerprint {
                    first: format!("{} {}", first.topic, first.version),
                    second: format!("{} {}", embedded.topic, embedded.version),
                    fingerprint: hex::encode(fingerprint),
                });
            }
            if embedded.version == SchemaVersion::Current {
                current.insert(embedded.topic, fingerprint);
            }
            by_fingerprint.insert(
                fingerprint,
                RegisteredSchema {
                    topic: embedded.topic,
                    version: embedded.version,
                    fingerprint,
                    schema,
                },
            );
        }
        let registry = Self {
            by_fingerprint,
            current,
        };
        for entry in registry.by_fingerprint.values() {
            if entry.version == SchemaVersion::Current {
                continue;
            }
            let now = registry
                .current(entry.topic)
                .ok_or(RegistryError::NoCurrent { topic: entry.topic })?;
            SchemaCompatibility::can_read(&entry.schema, &now.schema).map_err(|e| {
                RegistryError::Incompatible {
                    topic: entry.topic,
                    version: entry.version,
                    reason: e.to_string(),
                }
            })?;
        }
        Ok(registry)
    }

    /// The schema with this fingerprint, if known.
    pub fn lookup(&self, fingerprint: &[u8; 8]) -> Option<&RegisteredSchema> {
        self.by_fingerprint.get(fingerprint)
    }

    /// The current schema of a topic.
    pub fn current(&self, topic: &str) -> Option<&RegisteredSchema> {
        self.current
            .get(topic)
            .and_then(|fp| self.by_fingerprint.get(fp))
    }

    /// Every known schema, in no particular order.
    pub fn schemas(&self) -> impl Iterator<Item = &RegisteredSchema> {
        self.by_fingerprint.values()
    }

    /// A single-object message: header, then the Avro body.
    /// The FSE's signed form as a single-object message: `fse.submitted.v1`'s
    /// header and body, whatever the current schema of the topic.
    pub fn encode_signed_form(&self, fse: &FseSubmitted) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&signed_form_fingerprint());
        let mut encoder = Encoder::from_vec(out);
        encoder.without.prescriptions = true;
        encoder.without.billing = true;
        fse.encode_field(&mut encoder);
        encoder.into_bytes()
    }

    pub fn encode_single<T: AvroRecord>(&self, value: &T) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&MAGIC);
        let older = value.written_as();
        match older {
            Some(version) => out.extend_from_slice(&history_fingerprint(T::TOPIC, version)),
            None => out.extend_from_slice(&fingerprint_of::<T>()),
        }
        let mut encoder = Encoder::from_vec(out);
        if let Some(version) = older {
            T::older_form(version, &mut encoder);
        }
        value.encode(&mut encoder);
        encoder.into_bytes()
    }

    /// Decodes a single-object message written with `T`'s current schema
    /// (fast path) or with an older version of it (resolved by apache-avro).
    pub fn decode_single<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        let (fingerprint, body) = split_single(bytes)?;
        if fingerprint == fingerprint_of::<T>() {
            return decode_body::<T>(body).map_err(|source| DecodeError::Body {
                topic: T::TOPIC,
                version: SchemaVersion::Current,
                source,
            });
        }
        let writer = self
            .lookup(&fingerprint)
            .ok_or_else(|| DecodeError::UnknownFingerprint {
                fingerprint: hex::encode(fingerprint),
            })?;
        if writer.topic != T::TOPIC || writer.version == SchemaVersion::Current {
            // A current schema of another topic (or T's current schema with
            // a fingerprint that differs from T's: impossible by construction).
            return Err(DecodeError::WrongTopic {
                expected: T::TOPIC,
                found: writer.topic,
                version: writer.version,
            });
        }
        if let SchemaVersion::History(version) = writer.version {
            let mut input = Decoder::new(body);
            if let Some(value) = T::decode_older(version, &mut input) {
                return value
                    .and_then(|v| input.finish().map(|()| v))
                    .map_err(|source| DecodeError::Body {
                        topic: writer.topic,
                        version: writer.version,
                        source,
                    });
            }
        }
        let reader = self
            .current(T::TOPIC)
            .ok_or(DecodeError::NotRegistered { topic: T::TOPIC })?;
        let resolve_error = |source| DecodeError::Resolve {
            topic: writer.topic,
            version: writer.version,
            source,
        };
        let mut input = body;
        let value = apache_avro::from_avro_datum(&writer.schema, &mut input, Some(&reader.schema))
            .map_err(resolve_error)?;
        if !input.is_empty() {
            return Err(DecodeError::Body {
                topic: writer.topic,
                version: writer.version,
                source: CodecError::TrailingBytes { count: input.len() },
            });
        }
        let current_body =
            apache_avro::to_avro_datum(&reader.schema, value).map_err(resolve_error)?;
        decode_body::<T>(&current_body).map_err(|source| DecodeError::Body {
            topic: T::TOPIC,
            version: SchemaVersion::Current,
            source,
        })
    }
}

/// Splits a single-object message into its writer fingerprint and its body.
pub fn split_single(bytes: &[u8]) -> Result<([u8; 8], &[u8]), DecodeError> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::TooShort { len: bytes.len() });
    };
    let (magic, fingerprint) = header.split_at(2);
    if magic != MAGIC {
        return Err(DecodeError::BadMagic {
            found: [magic[0], magic[1]],
        });
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(fingerprint);
    Ok((fp, body))
}

/// A schema text whose Parsing Canonical Form cannot be built.
#[derive(Debug, Error)]
pub enum CanonicalFormError {
    #[error("schema is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid schema: {0}")]
    Invalid(&'static str),
}

/// Avro's primitive type names.
const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The [Parsing Canonical Form] of a schema text, written from the spec.
///
/// Not apache-avro's `Schema::canonical_form`: in 0.21 it keeps a logical
/// type's base as `{"type":"int"}` where the spec ([PRIMITIVES] after
/// [STRIP]), Java and fastavro write `"int"`, so its fingerprints of our
/// schemas (dates, timestamps) would differ from every other library's.
///
/// [Parsing Canonical Form]: https://avro.apache.org/docs/current/specification/#parsing-canonical-form-for-schemas
pub fn parsing_canonical_form(schema_json: &str) -> Result<String, CanonicalFormError> {
    let schema: serde_json::Value = serde_json::from_str(schema_json)?;
    let mut canonical = Canonical {
        out: String::with_capacity(schema_json.len() / 2),
        defined: std::collections::HashSet::new(),
    };
    canonical.schema(&schema, "")?;
    Ok(canonical.out)
}

/// The Parsing Canonical Form being written, and the full names of the
/// named types it has defined (a second mention is written as the name).
struct Canonical {
    out: String,
    defined: std::collections::HashSet<String>,
}

type Map = serde_json::Map<String, serde_json::Value>;

impl Canonical {
    fn schema(
        &mut self,
        schema: &serde_json::Value,
        namespace: &str,
    ) -> Result<(), CanonicalFormError> {
        use serde_json::Value;
        match schema {
            // [PRIMITIVES], or a reference to a named type: [FULLNAMES].
            Value::String(name) => {
                if PRIMITIVES.contains(&name.as_str()) {
                    push_json_string(&mut self.out, name);
                } else {
                    push_json_string(&mut self.out, &full_name(name, namespace));
                }
                Ok(())
            }
            // A union.
            Value::Array(branches) => {
                self.out.push('[');
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.schema(branch, namespace)?;
                }
                self.out.push(']');
                Ok(())
            }
            Value::Object(map) => self.object(map, namespace),
            _ => Err(CanonicalFormError::Invalid(
                "a schema is a string, an array or an object",
            )),
        }
    }

    /// A schema written as an object: `{"type": ...}` and its attributes.
    fn object(&mut self, map: &Map, namespace: &str) -> Result<(), CanonicalFormError> {
        use serde_json::Value;
        let Some(kind) = map.get("type") else {
            return Err(CanonicalFormError::Invalid("object without \"type\""));
        };
        let kind = match kind {
            Value::String(kind) => kind.as_str(),
            // {"type": {...}} or {"type": [...]}: the inner schema.
            other => return self.schema(other, namespace),
        };
        match kind {
            "record" | "error" | "enum" | "fixed" => self.named(map, kind, namespace),
            "array" | "map" => {
                let attribute = if kind == "array" { "items" } else { "values" };
                let Some(inner) = map.get(attribute) else {
                    return Err(CanonicalFormError::Invalid(if kind == "array" {
                        "array without items"
                    } else {
                        "map without values"
                    }));
                };
                self.out
                    .push_str(&format!("{{\"type\":\"{kind}\",\"{attribute}\":"));
                self.schema(inner, namespace)?;
                self.out.push('}');
                Ok(())
            }
            // A primitive, with or without a logical type: [STRIP] then
            // [PRIMITIVES]. Or a named type referenced as {"type": "Name"}.
            name => self.schema(&Value::String(name.to_owned()), namespace),
        }
    }

    /// A record, enum or fixed: defined once, then referred to by name.
    fn named(&mut self, map: &Map, kind: &str, namespace: &str) -> Result<(), CanonicalFormError> {
        use serde_json::Value;
        let Some(Value::String(name)) = map.get("name") else {
            return Err(CanonicalFormError::Invalid("named type without a name"));
        };
        let own_namespace = match map.get("namespace") {
            Some(Value::String(ns)) => ns.as_str(),
            _ => namespace,
        };
        let full = full_name(name, own_namespace);
        if !self.defined.insert(full.clone()) {
            push_json_string(&mut self.out, &full);
            return Ok(());
        }
        let inner_namespace = full.rsplit_once('.').map_or("", |(ns, _)| ns);
        self.out.push_str("{\"name\":");
        push_json_string(&mut self.out, &full);
        self.out.push_str(",\"type\":");
        push_json_string(&mut self.out, kind);
        match kind {
            "enum" => self.symbols(map)?,
            "fixed" => self.size(map)?,
            _ => self.fields(map, inner_namespace)?,
        }
        self.out.push('}');
        Ok(())
    }

    fn symbols(&mut self, map: &Map) -> Result<(), CanonicalFormError> {
        use serde_json::Value;
        let Some(Value::Array(symbols)) = map.get("symbols") else {
            return Err(CanonicalFormError::Invalid("enum without symbols"));
        };
        self.out.push_str(",\"symbols\":[");
        for (i, symbol) in symbols.iter().enumerate() {
            let Value::String(symbol) = symbol else {
                return Err(CanonicalFormError::Invalid("enum symbol"));
            };
            if i > 0 {
                self.out.push(',');
            }
            push_json_string(&mut self.out, symbol);
        }
        self.out.push(']');
        Ok(())
    }

    fn size(&mut self, map: &Map) -> Result<(), CanonicalFormError> {
        use serde_json::Value;
        // [INTEGERS]: a number, whether written quoted or not.
        let size = match map.get("size") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let Some(size) = size else {
            return Err(CanonicalFormError::Invalid("fixed without a size"));
        };
        self.out.push_str(",\"size\":");
        self.out.push_str(&size.to_string());
        Ok(())
    }

    fn fields(&mut self, map: &Map, namespace: &str) -> Result<(), CanonicalFormError> {
        use serde_json::Value;
        let Some(Value::Array(fields)) = map.get("fields") else {
            return Err(CanonicalFormError::Invalid("record without fields"));
        };
        self.out.push_str(",\"fields\":[");
        for (i, field) in fields.iter().enumerate() {
            let (Some(Value::String(field_name)), Some(field_type)) =
                (field.get("name"), field.get("type"))
            else {
                return Err(CanonicalFormError::Invalid("field"));
            };
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str("{\"name\":");
            push_json_string(&mut self.out, field_name);
            self.out.push_str(",\"type\":");
            self.schema(field_type, namespace)?;
            self.out.push('}');
        }
        self.out.push(']');
        Ok(())
    }
}

/// [FULLNAMES]: a name with a dot is already full; otherwise it takes the
/// namespace in force (none when empty).
fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    }
}

/// [STRINGS]: a JSON string literal, non-ASCII characters kept as UTF-8.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// CRC-64-AVRO, the Rabin fingerprint of the Avro spec ("Schema Fingerprints").
pub fn rabin64(bytes: &[u8]) -> u64 {
    let mut fp = RABIN_EMPTY;
    for &b in bytes {
        fp = (fp >> 8) ^ RABIN_TABLE[((fp ^ u64::from(b)) & 0xff) as usize];
    }
    fp
}

const RABIN_EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const RABIN_TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (RABIN_EMPTY & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// The fingerprint of a schema text as the 8 bytes of the single-object
/// header: CRC-64-AVRO of its Parsing Canonical Form, little-endian.
pub fn fingerprint_json(schema_json: &str) -> Result<[u8; 8], CanonicalFormError> {
    let form = parsing_canonical_form(schema_json)?;
    Ok(rabin64(form.as_bytes()).to_le_bytes())
}

/// The fingerprint of `T`'s current schema, computed once per type.
///
/// # Panics
/// If `T`'s embedded schema does not parse: a build defect that every test
/// run catches, never a run-time condition.
/// The fingerprint of the FSE's signed form, `fse.submitted.v1`: the header
/// of the bytes a professional signs ([`crate::signatures::canonical_bytes`]).
pub fn signed_form_fingerprint() -> [u8; 8] {
    static CACHE: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
    *CACHE.get_or_init(|| {
        match fingerprint_json(include_str!(
            "../../../schemas/history/fse.submitted.v1.avsc"
        )) {
            Ok(fingerprint) => fingerprint,
            Err(e) => panic!("embedded schema fse.submitted.v1 is broken: {e}"),
        }
    })
}

/// The fingerprint of the history version `version` of `topic`'s schema.
///
/// # Panics
/// If no such schema is embedded, or it does not parse: a build defect (a
/// record names a version [`EMBEDDED_SCHEMAS`] lacks) that every test run
/// catches, never a run-time condition.
pub fn history_fingerprint(topic: &str, version: u32) -> [u8; 8] {
    type Cache = std::collections::BTreeMap<(&'static str, u32), [u8; 8]>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let all = CACHE.get_or_init(|| {
        let mut all = Cache::new();
        for schema in EMBEDDED_SCHEMAS {
            if let SchemaVersion::History(n) = schema.version {
                match fingerprint_json(schema.json) {
                    Ok(fingerprint) => all.insert((schema.topic, n), fingerprint),
                    Err(e) => panic!("embedded schema {}.v{n} is broken: {e}", schema.topic),
                };
            }
        }
        all
    });
    match all.get(&(topic, version)) {
        Some(fingerprint) => *fingerprint,
        None => panic!("no embedded schema {topic}.v{version}"),
    }
}

pub fn fingerprint_of<T: AvroRecord>() -> [u8; 8] {
    *T::fingerprint_cache().get_or_init(|| match fingerprint_json(T::SCHEMA_JSON) {
        Ok(fingerprint) => fingerprint,
        Err(e) => panic!("embedded schema of {} is broken: {e}", T::TOPIC),
    })
}
