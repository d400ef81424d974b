//! The contract every stage fulfils, decision stages and outbound ones
//! alike: which event it reads, which topics it writes, and how one decoded
//! input becomes its outputs. The runtime knows stages only through it
//! ([`Process`]), so adding a stage is its own file and one line in
//! [`StageKind`](super::StageKind).
//!
//! Still the functional core: decoding and encoding are pure, and a stage's
//! state writes go to an overlay of the input's own, merged only when the
//! input is not dead-lettered.

use crate::events::codec::AvroRecord;
use crate::events::model::EventHeader;
use crate::state::{StateTxn, StoreError};

use super::Context;
use super::emit::{Inputs, Output, Processed};

/// A stage's topics. Changelog and dead-letter topic names follow the
/// stage's name (`<name>.changelog`, `dlq.<name>`), written out so that
/// they are constants.
#[derive(Debug)]
pub struct Topics {
    pub name: &'static str,
    /// The topic it consumes.
    pub input: &'static str,
    /// Where an input that passes goes (the stage's main output).
    pub pass: &'static str,
    /// Every topic its outputs go to, dead letters aside.
    pub outputs: &'static [&'static str],
    pub changelog: &'static str,
    pub dlq: &'static str,
}

/// What a stage made of one decoded input.
#[derive(Debug)]
pub enum Decided {
    /// Outputs to emit, in order; the input's state writes are kept.
    Outputs(Vec<Output>),
    /// The input cannot be processed: a dead letter with its raw bytes and
    /// this error; its state writes are dropped.
    DeadLetter(String),
}

impl Decided {
    pub fn one(output: Output) -> Decided {
        Decided::Outputs(vec![output])
    }
}

/// A stage: its input event, its topics, and decide-and-encode. Decoding,
/// the downstream duplicate filter and the input's overlay are the same for
/// every stage ([`Process`]).
pub trait Stage: Sync {
    /// The event read from [`Topics::input`].
    type Input: AvroRecord;

    const TOPICS: Topics;

    /// The event's header, for the duplicate filter of topics several
    /// stages write (`None` for an event without one).
    fn header(input: &Self::Input) -> Option<&EventHeader>;

    /// The insurer's time of the input, in ms since the epoch, for a stage
    /// whose state expires ([`crate::state::expiry`]): what moves the
    /// partition's clock. `None` (the default): the stage keeps no clock.
    fn event_time(_input: &Self::Input) -> Option<i64> {
        None
    }

    /// One input's outputs, encoded, with `state` the input's own overlay.
    /// An `Err` is a failure of the store beneath, never the input's fault.
    fn decide(
        &self,
        input: Self::Input,
        at: &Inputs<'_>,
        state: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Decided, StoreError>;
}

/// A stage as the runtime calls it, whatever its input type.
pub trait Process: Sync {
    fn topics(&self) -> &'static Topics;

    /// Runs `at.record` through the stage: bytes that do not decode, or
    /// that the stage dead-letters, become a dead letter; a duplicate of a
    /// multi-producer topic is dropped.
    fn process(
        &self,
        at: &Inputs<'_>,
        state: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Processed, StoreError>;
}

impl<S: Stage> Process for S {
    fn topics(&self) -> &'static Topics {
        &S::TOPICS
    }

    fn process(
        &self,
        at: &Inputs<'_>,
        state: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Processed, StoreError> {
        let input: S::Input = match at.registry.decode_single(&at.record.value) {
            Ok(v) => v,
            Err(e) => return Ok(at.dead_letter(format!("decode {}: {e}", S::TOPICS.input))),
        };
        // The clock moves before the input is decided, in the batch's own
        // writes: whatever becomes of the input, its date has been seen.
        let expired = match S::event_time(&input).and_then(crate::clock::insurer_date) {
            Some(today) => {
                crate::state::expiry::advance(state, today, crate::state::expiry::KEYS_PER_INPUT)?
                    .keys
            }
            None => 0,
        };
        if !single_producer(S::TOPICS.input)
            && let Some(header) = S::header(&input)
            && !fresh_upstream(state, header)?
        {
            return Ok(Processed {
                outputs: Vec::new(),
                duplicate: true,
                expired,
            });
        }
        let mut overlay = StateTxn::new(&*state);
        match self.decide(input, at, &mut overlay, ctx)? {
            Decided::Outputs(outputs) => {
                let writes = overlay.into_writes();
                state.merge(writes);
                Ok(Processed {
                    outputs,
                    duplicate: false,
                    expired,
                })
            }
            Decided::DeadLetter(error) => Ok(Processed {
                expired,
                ..at.dead_letter(error)
            }),
        }
    }
}

/// Whether the input's offsets of its sources follow one sequence: `false`
/// for topics several stages write (their sources' offsets interleave),
/// whose readers keep one mark per source topic ([`fresh_upstream`]).
pub fn single_producer(topic: &str) -> bool {
    !MULTI_PRODUCER.contains(&topic)
}

/// Topics written by more than one stage (or by a command and a stage).
const MULTI_PRODUCER: [&str; 2] = [crate::topics::FSE_REJECTED, crate::topics::OUTBOUND_LEDGER];

/// The downstream duplicate filter for a multi-producer input: one mark per
/// source topic, kept in the stage's state (atomic with it). `false` for a
/// duplicate a crash or a zombie owner wrote (identical: dropped). Inputs
/// without a source (close events) are always fresh.
fn fresh_upstream(state: &mut StateTxn<'_>, header: &EventHeader) -> Result<bool, StoreError> {
    let Some(source) = &header.source else {
        return Ok(true);
    };
    let key = crate::state::keys::upstream_mark(&source.topic);
    let mark = match state.get(&key)? {
        None => None,
        Some(_) => Some(state.get_i64(&key)?),
    };
    if mark.is_some_and(|m| source.offset <= m) {
        return Ok(false);
    }
    state.put_i64(key, source.offset);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::SourceRef;
    use crate::state::MemStore;

    fn header(topic: &str, offset: i64) -> EventHeader {
        let mut h = crate::outbound::blank_header();
        h.source = Some(SourceRef {
            topic: topic.into(),
            partition: 0,
            offset,
            ordinal: 0,
        });
        h
    }

    /// A stage that writes, then dead-letters a close event and passes an
    /// outcome: what it wrote is kept only for the input that passed.
    struct WritesThenDecides;

    impl Stage for WritesThenDecides {
        type Input = crate::events::model::LedgerEntry;
        const TOPICS: Topics = crate::outbound::ledger::LedgerStage::TOPICS;

        fn header(entry: &Self::Input) -> Option<&EventHeader> {
            Some(&entry.header)
        }

        fn decide(
            &self,
            entry: Self::Input,
            _: &Inputs<'_>,
            state: &mut StateTxn<'_>,
            _: &Context<'_>,
        ) -> Result<Decided, StoreError> {
            let dead = entry.close_on.is_some();
            state.put(
                if dead {
                    b"dead".to_vec()
                } else {
                    b"kept".to_vec()
                },
                vec![1],
            );
            Ok(if dead {
                Decided::DeadLetter("refused after a write".into())
            } else {
                Decided::Outputs(Vec::new())
            })
        }
    }

    #[test]
    fn a_dead_lettered_input_leaves_none_of_its_writes() {
        use crate::events::SchemaRegistry;
        use crate::events::model::LedgerEntry;
        use crate::refdata::{InstitutionDirectory, RefView, TrustUnsigned};

        let registry = SchemaRegistry::new().unwrap();
        let rules = crate::rules::Rules::embedded().unwrap();
        let institutions = InstitutionDirectory::default();
        let refs = RefView {
            signatures: &TrustUnsigned,
            institutions: &institutions,
        };
        let pseudonyms = crate::pseudonym::PseudonymKey::development();
        let ctx = Context {
            rules: &rules,
            refs: &refs,
            pseudonyms: &pseudonyms,
        };
        let store = MemStore::default();
        let mut txn = StateTxn::new(&store);
        for (offset, close_on) in [(0, chrono::NaiveDate::from_ymd_opt(2025, 6, 2)), (1, None)] {
            let entry = LedgerEntry {
                header: crate::outbound::blank_header(),
                close_on,
                outcome: None,
            };
            let record = crate::bus::Record {
                topic: crate::topics::OUTBOUND_LEDGER.into(),
                partition: 0,
                offset,
                timestamp_millis: 0,
                key: b"k".to_vec(),
                value: registry.encode_single(&entry),
                tombstone: false,
            };
            let at = Inputs {
                stage: super::super::StageKind::Ledger,
                record: &record,
                registry: &registry,
                ref_watermark: &[],
                record_limit: 1 << 20,
            };
            let processed = WritesThenDecides.process(&at, &mut txn, &ctx).unwrap();
            let dead_letters = processed.outputs.iter().filter(|o| o.topic == "dlq.ledger");
            assert_eq!(dead_letters.count(), usize::from(close_on.is_some()));
        }
        assert_eq!(txn.get(b"dead").unwrap(), None);
        assert_eq!(txn.get(b"kept").unwrap(), Some(vec![1]));
    }

    #[test]
    fn multi_producer_inputs_keep_one_mark_per_source_topic() {
        let store = MemStore::default();
        let mut txn = StateTxn::new(&store);
        // Interleaved sources, each increasing: all fresh.
        for (topic, offset) in [
            ("fse.submitted", 10),
            ("fse.routed", 3),
            ("fse.submitted", 11),
        ] {
            assert!(fresh_upstream(&mut txn, &header(topic, offset)).unwrap());
        }
        // A replayed duplicate of either source: dropped.
        assert!(!fresh_upstream(&mut txn, &header("fse.submitted", 11)).unwrap());
        assert!(!fresh_upstream(&mut txn, &header("fse.routed", 2)).unwrap());
        // No source (a close event): always fresh.
        let close = crate::outbound::blank_header();
        assert!(fresh_upstream(&mut txn, &close).unwrap());
        assert!(fresh_upstream(&mut txn, &close).unwrap());
    }
}
