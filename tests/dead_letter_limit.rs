//! A dead letter always fits the bus's record limit (issue 17 item 2).
//!
//! A dead letter keeps the input's bytes, its error and its position, so an
//! input just under the bus's limit gives a letter over it. On Kafka (4 MiB)
//! the producer refused such a letter, the stage exited, and every restart
//! met the same input again. Here the local log is wrapped in a bus that says
//! a smaller limit and refuses records over it, as Kafka's producer does;
//! with Kafka's own limit the wrapper is the Kafka case without a broker.

use std::sync::Arc;

use clearing_pipeline::bus::kafka;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::bus::{
    Bus, BusConsumer, BusError, BusProducer, Record, TopicSpec, read_until,
};
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::events::model::{DeadLetter, FseRejected};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::process::DEAD_LETTER_MAX_BYTES;
use clearing_pipeline::runtime::{self, Shared, StageKind};
use clearing_replay::run::replay;
use clearing_replay::verify::Setup;

/// The local log, with a record limit of `limit` bytes (key + value).
struct Limited {
    log: Arc<LocalLog>,
    limit: usize,
}

struct LimitedProducer {
    inner: Box<dyn BusProducer>,
    limit: usize,
}

impl BusProducer for LimitedProducer {
    fn produce(
        &mut self,
        topic: &str,
        partition: u32,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp_millis: i64,
    ) -> Result<(), BusError> {
        let size = key.len() + value.map_or(0, <[u8]>::len);
        if size > self.limit {
            return Err(BusError::TooLarge(size));
        }
        self.inner
            .produce(topic, partition, key, value, timestamp_millis)
    }
    fn flush(&mut self) -> Result<(), BusError> {
        self.inner.flush()
    }
    fn acknowledged_end(&self, topic: &str, partition: u32) -> Option<u64> {
        self.inner.acknowledged_end(topic, partition)
    }
}

impl Bus for Limited {
    fn describe(&self) -> String {
        format!(
            "{} (records up to {} bytes)",
            self.log.describe(),
            self.limit
        )
    }
    fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        self.log.ensure_topic(spec)
    }
    fn partition_count(&self, topic: &str) -> Result<u32, BusError> {
        self.log.partition_count(topic)
    }
    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, BusError> {
        self.log.end_offset(topic, partition)
    }
    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, BusError> {
        self.log.read(topic, partition, from, max)
    }
    fn producer(&self) -> Result<Box<dyn BusProducer>, BusError> {
        Ok(Box::new(LimitedProducer {
            inner: self.log.producer()?,
            limit: self.limit,
        }))
    }
    fn consumer(&self, group: &str) -> Result<Box<dyn BusConsumer>, BusError> {
        self.log.consumer(group)
    }
    fn member(
        &self,
        group: &str,
        index: u32,
        members: u32,
    ) -> Result<Box<dyn BusConsumer>, BusError> {
        self.log.member(group, index, members)
    }
    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>, BusError> {
        self.log.committed(group, topic, partition)
    }
    fn max_record_bytes(&self) -> usize {
        self.limit
    }
}

fn shared(bus: &Arc<dyn Bus>, state: &std::path::Path) -> Arc<Shared> {
    Arc::new(Shared {
        bus: bus.clone(),
        rules: Arc::new(Rules::embedded().unwrap()),
        registry: Arc::new(SchemaRegistry::new().unwrap()),
        pseudonyms: PseudonymKey::development(),
        trust_unsigned: true,
        state_dir: state.to_path_buf(),
        group: "clearing".into(),
        batch_max: 16,
        verify_threads: 1,
        workers_per_stage: 1,
        queries: None,
        store_rewrite: clearing_pipeline::state::RewritePolicy::DEFAULT,
        store_engine: clearing_pipeline::state::Engine::default(),
    })
}

/// Every record of `topic`, all partitions.
fn records(bus: &dyn Bus, topic: &str) -> Vec<Record> {
    let mut out = Vec::new();
    for partition in 0..bus.partition_count(topic).unwrap() {
        let mut position = 0;
        read_until(bus, topic, partition, &mut position, None, |r| out.push(r)).unwrap();
    }
    out
}

/// Bytes that are no Avro message (no magic), of `len` bytes.
fn garbage(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The first example claim, which the stages decide (rejected at
/// entitlement: no rights are published).
fn claim() -> FseInput {
    let line = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/claims.jsonl"
    ))
    .unwrap();
    serde_json::from_str(line.lines().next().unwrap()).unwrap()
}

/// An undecodable `fse.submitted` record and an undecodable `ref.rights`
/// record of `len` bytes each with their key, then a claim, on a bus that
/// takes records up to `limit`: every stage runs to the end, twice (a
/// restart). Returns the bus and the two bad inputs.
fn run(dir: &std::path::Path, limit: usize, len: usize) -> (Arc<dyn Bus>, [Vec<u8>; 2]) {
    let log = LocalLog::open(&dir.join("bus")).unwrap();
    let bus: Arc<dyn Bus> = Arc::new(Limited { log, limit });
    runtime::ensure_topics(bus.as_ref(), 1).unwrap();
    let key = b"not-a-beneficiary-key".to_vec();
    let inputs = [garbage(len - key.len(), 1), garbage(len - key.len(), 2)];
    let mut producer = bus.producer().unwrap();
    producer
        .send("fse.submitted", 0, &key, &inputs[0], 0)
        .unwrap();
    producer.send("ref.rights", 0, &key, &inputs[1], 0).unwrap();
    producer.flush().unwrap();
    let registry = SchemaRegistry::new().unwrap();
    let pseudonyms = PseudonymKey::development();
    let mut ingest =
        Ingest::new(bus.as_ref(), &registry, &pseudonyms, IngestClock::Simulated).unwrap();
    ingest.submit(&claim()).unwrap();
    ingest.flush().unwrap();
    let state = dir.join("state");
    // Before the fix each run stopped at the first letter, restart or not.
    for run in 0..2 {
        if let Err(e) = runtime::run_to_end(shared(&bus, &state)) {
            panic!("run {run}: the stages stopped: {e}");
        }
    }
    (bus, inputs)
}

/// Each bad input gave one dead letter that fits `bound`, keeps a prefix
/// of the input, and the claim behind them was decided. Returns the
/// letters' bytes.
fn check_letters(bus: &dyn Bus, bound: usize, inputs: &[Vec<u8>; 2]) -> Vec<Vec<u8>> {
    let registry = SchemaRegistry::new().unwrap();
    let mut values = Vec::new();
    for (topic, input, from) in [
        ("dlq.validation", &inputs[0], "fse.submitted"),
        ("dlq.entitlement", &inputs[1], "ref.rights"),
    ] {
        let letters = records(bus, topic);
        assert_eq!(letters.len(), 1, "{topic}: one dead letter, written once");
        let record = &letters[0];
        assert!(
            record.key.len() + record.value.len() <= bound,
            "{topic}: the letter fits the bus's limit"
        );
        let letter: DeadLetter = registry.decode_single(&record.value).unwrap();
        assert_eq!((letter.topic.as_str(), letter.offset), (from, 0));
        assert!(!letter.raw.is_empty() && letter.raw.len() < input.len());
        assert_eq!(
            letter.raw[..],
            input[..letter.raw.len()],
            "a prefix of the input"
        );
        let cut = letter.cut.expect("a cut letter says so");
        assert_eq!(cut.length, input.len() as i64);
        values.push(record.value.clone());
    }
    // The claim behind the bad input got its outcome.
    let rejected: Vec<FseRejected> = records(bus, "fse.rejected")
        .iter()
        .map(|r| registry.decode_single(&r.value).unwrap())
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].decision.fse_id.as_deref(),
        Some("12345678-000000042")
    );
    values
}

fn replays_identically(bus: Arc<dyn Bus>) {
    let setup = Setup {
        bus,
        rules: Arc::new(Rules::embedded().unwrap()),
        registry: Arc::new(SchemaRegistry::new().unwrap()),
        pseudonyms: PseudonymKey::development(),
        trust_unsigned: true,
    };
    let jobs: Vec<(StageKind, u32)> = StageKind::ALL.into_iter().map(|k| (k, 0)).collect();
    let report = replay(&setup, &jobs, None, 1, &|_, _| {}).unwrap();
    assert!(report.identical, "{:?}", report.first_divergence);
}

/// Dead letters are cut to the smallest limit of the backends, Kafka's, so
/// that they are the same bytes on every bus.
#[test]
fn the_dead_letter_bound_is_kafkas_record_limit() {
    assert_eq!(DEAD_LETTER_MAX_BYTES, kafka::MAX_RECORD_BYTES);
    const { assert!(DEAD_LETTER_MAX_BYTES < clearing_pipeline::bus::local::MAX_RECORD_BYTES) };
}

#[test]
fn an_input_just_under_a_small_limit_is_dead_lettered_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 256 * 1024;
    let (bus, inputs) = run(dir.path(), limit, limit - 100);
    check_letters(bus.as_ref(), limit, &inputs);
    replays_identically(bus);
}

/// Kafka's limit: the letters of inputs just under 4 MiB fit it, and are
/// the same bytes on the local log, whose limit is larger, so a Kafka run
/// and its archive (a local log) replay to the same letters.
#[test]
fn an_input_just_under_kafkas_limit_gives_the_same_letter_on_every_bus() {
    let len = kafka::MAX_RECORD_BYTES - 100;
    let dir = tempfile::tempdir().unwrap();
    let (bus, inputs) = run(dir.path(), kafka::MAX_RECORD_BYTES, len);
    let on_kafka = check_letters(bus.as_ref(), kafka::MAX_RECORD_BYTES, &inputs);
    replays_identically(bus);
    let dir = tempfile::tempdir().unwrap();
    let local = clearing_pipeline::bus::local::MAX_RECORD_BYTES;
    let (bus, inputs) = run(dir.path(), local, len);
    let on_local = check_letters(bus.as_ref(), kafka::MAX_RECORD_BYTES, &inputs);
    assert!(on_kafka == on_local, "the same letters on both buses");
}
