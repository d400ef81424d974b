//! Tests of the hand-written codec and the registry against apache-avro and
//! the `.avsc` files: round trips, byte identity, single-object framing,
//! hostile input, schema evolution, schema hygiene.

mod codec_unit;
mod evolution;
mod records;
mod schemas;
mod strategies;

use std::path::PathBuf;
use std::sync::LazyLock;

use crate::events::registry::SchemaRegistry;

static REGISTRY: LazyLock<SchemaRegistry> =
    LazyLock::new(|| SchemaRegistry::new().expect("the embedded schemas build a registry"));

pub(crate) fn registry() -> &'static SchemaRegistry {
    &REGISTRY
}

/// The workspace's `schemas/` directory.
pub(crate) fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}
