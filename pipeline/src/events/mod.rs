//! Events on the wire: Avro transport shapes, their codec and the schema registry.

pub mod codec;
pub mod convert;
pub mod model;
pub mod registry;
pub mod render;
pub mod wire;

#[cfg(test)]
mod tests;

pub use codec::{AvroEnum, AvroField, AvroRecord, CodecError, Decoder, Encoder};
pub use registry::{DecodeError, SchemaRegistry, fingerprint_of};
