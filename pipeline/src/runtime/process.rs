//! One input record through one stage ([`process`]), and what the runtime
//! reads of an output's header without decoding it whole. The stages
//! themselves, and how an output is made, are in [`crate::stages`].

pub use crate::stages::contract::single_producer;
pub use crate::stages::emit::{
    DEAD_LETTER_MAX_BYTES, Inputs, Output, Processed, dead_letter_output, derived_event_id,
};

use crate::bus::Record;
use crate::events::codec::{AvroField, Decoder};
use crate::events::model::{EventHeader, RefOffset, SourceRef};
use crate::stages::Context;
use crate::state::{StateTxn, StoreError};

/// Runs `inputs.record` through its stage.
pub fn process(
    inputs: &Inputs<'_>,
    state: &mut StateTxn<'_>,
    ctx: &Context<'_>,
) -> Result<Processed, StoreError> {
    inputs.stage.stage().process(inputs, state, ctx)
}

/// The source an event carries in its header, read without decoding the
/// rest (every stage output starts with its header). `None` for
/// `fse.submitted` (no header) and for bytes that do not decode.
pub fn header_source(record: &Record) -> Option<SourceRef> {
    if record.topic == crate::topics::FSE_SUBMITTED {
        return None;
    }
    decode_header(&record.value)?.source
}

/// The header every stage event begins with.
fn decode_header(value: &[u8]) -> Option<EventHeader> {
    let (_, body) = crate::events::registry::split_single(value).ok()?;
    <EventHeader as AvroField>::decode_field(&mut Decoder::new(body)).ok()
}

/// The reference watermark an output on `topic` was decided at; `None` for
/// a dead letter, which has no header (and whose input no reference data
/// could have decided otherwise).
pub fn output_watermark(topic: &str, value: &[u8]) -> Option<Vec<RefOffset>> {
    if topic.starts_with("dlq.") {
        return None;
    }
    decode_header(value).map(|h| h.ref_watermark)
}

/// The ordinal of an output among its input's outputs to the same topic
/// (restore mode checks outputs one by one: an input may have many on one
/// topic, and a crash may leave any prefix of them written). 0 for dead
/// letters, which are one per input.
pub fn output_ordinal(topic: &str, value: &[u8]) -> u32 {
    if topic.starts_with("dlq.") {
        return 0;
    }
    decode_header(value)
        .and_then(|h| h.source)
        .and_then(|s| u32::try_from(s.ordinal).ok())
        .unwrap_or(0)
}
