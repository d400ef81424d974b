//! The contract of the `Bus` trait (pipeline/src/bus/mod.rs), each property
//! written once, as a function of a [`Subject`], and run against both
//! backends: the local log in a fresh directory (`local::…`) and Apache
//! Kafka in a fresh namespace of the test broker (`kafka::…`:
//! `CLEARING_KAFKA` when set, else the broker `ops/broker.sh ensure` starts).
//! Where a backend legitimately differs, the property says so and checks
//! each side. A broker that cannot be reached fails the Kafka half: it is
//! never skipped. `cargo test --test bus_contract local::` runs the local
//! half alone.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clearing_pipeline::bus::{
    self, Bus, BusConsumer, BusError, BusProducer, Record, TopicSpec, read_until, scan,
};

/// A bus of one backend, empty, and what the properties need to know of it.
struct Subject {
    bus: Arc<dyn Bus>,
    url: String,
    /// The local log's directory (removed at the end), or none on Kafka.
    dir: Option<tempfile::TempDir>,
}

impl Subject {
    fn local() -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("local:{}", dir.path().display());
        Subject {
            bus: bus::open(&url).unwrap(),
            url,
            dir: Some(dir),
        }
    }

    fn kafka(test: &str) -> Subject {
        let bootstrap = common::kafka_bootstrap();
        let url = format!("kafka://{bootstrap}/{}", common::fresh_namespace(test));
        let bus = bus::open(&url).unwrap_or_else(|e| {
            panic!("no Kafka broker at {bootstrap} ({e}): see `ops/broker.sh status` and its log")
        });
        Subject {
            bus,
            url,
            dir: None,
        }
    }

    fn is_kafka(&self) -> bool {
        self.dir.is_none()
    }

    fn producer(&self) -> Box<dyn BusProducer> {
        self.bus.producer().unwrap()
    }

    /// Topic `name` with `partitions` partitions, and `count` records sent
    /// round-robin over them: record `i` has the value `i` (4 bytes, big
    /// endian), the key `key` and the timestamp `1_000 + i`.
    fn topic_with(&self, name: &str, partitions: u32, count: u32, key: &[u8]) {
        self.bus
            .ensure_topic(&TopicSpec::new(name, partitions))
            .unwrap();
        let mut producer = self.producer();
        for i in 0..count {
            producer
                .send(
                    name,
                    i % partitions,
                    key,
                    &i.to_be_bytes(),
                    1_000 + i64::from(i),
                )
                .unwrap();
        }
        producer.flush().unwrap();
    }

    fn offsets(&self, topic: &str, partition: u32, from: u64, max: usize) -> Vec<u64> {
        offsets(&self.bus.read(topic, partition, from, max).unwrap())
    }
}

fn offsets(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.offset).collect()
}

fn values(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.value.clone()).collect()
}

/// Polls until the consumer announces an assignment of `partitions`
/// partitions (a rebalance may announce others first); no record may come
/// before the first announcement.
fn await_assignment(
    consumer: &mut dyn BusConsumer,
    partitions: usize,
    within: Duration,
) -> Vec<(String, u32)> {
    let deadline = Instant::now() + within;
    let mut announced = false;
    loop {
        let polled = consumer.poll(100, Duration::from_millis(100)).unwrap();
        assert!(
            announced || polled.records.is_empty(),
            "records before the assignment was announced"
        );
        if let Some(assignment) = polled.assignment {
            announced = true;
            if assignment.partitions.len() == partitions {
                return assignment.partitions;
            }
        }
        assert!(Instant::now() < deadline, "no assignment within {within:?}");
    }
}

/// Polls until `count` records came (or fails after `within`), then once
/// more to see that nothing else arrives.
fn poll_records(consumer: &mut dyn BusConsumer, count: usize, within: Duration) -> Vec<Record> {
    let deadline = Instant::now() + within;
    let mut records = Vec::new();
    while records.len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} records within {within:?}",
            records.len()
        );
        let polled = consumer.poll(1000, Duration::from_millis(100)).unwrap();
        assert!(polled.assignment.is_none(), "unexpected rebalance");
        records.extend(polled.records);
    }
    let polled = consumer.poll(1000, Duration::from_millis(500)).unwrap();
    records.extend(polled.records);
    records
}

fn partition_offsets(records: &[Record], partition: u32) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r.partition == partition)
        .map(|r| r.offset)
        .collect()
}

/// `ensure_topic` creates a topic once and then checks it; the counts and
/// the unknown topics and partitions.
fn topics_are_ensured_once_with_their_partition_count(s: &Subject) {
    let bus = s.bus.as_ref();
    assert_eq!(bus.describe(), s.url);
    bus.ensure_topic(&TopicSpec::new("t", 2)).unwrap();
    bus.ensure_topic(&TopicSpec::new("t", 2)).unwrap();
    assert!(matches!(
        bus.ensure_topic(&TopicSpec::new("t", 3)),
        Err(BusError::Config(_))
    ));
    assert_eq!(bus.partition_count("t").unwrap(), 2);
    assert!(matches!(
        bus.partition_count("absent"),
        Err(BusError::UnknownTopic(_))
    ));
    assert!(matches!(
        bus.read("t", 2, 0, 1),
        Err(BusError::UnknownPartition(_, 2))
    ));
    assert!(matches!(
        bus.end_offset("t", 2),
        Err(BusError::UnknownPartition(_, 2))
    ));
    assert_eq!(bus.end_offset("t", 0).unwrap(), 0);
    assert!(bus.read("t", 0, 0, 10).unwrap().is_empty(), "empty tail");
    assert!(matches!(
        s.producer().send("absent", 0, b"", b"", 1),
        Err(BusError::UnknownTopic(_))
    ));
}

/// What a producer sends comes back from `read` in offset order, with its
/// key, value and timestamp, from any offset and in reads of any size.
/// Timestamps are positive here: Kafka has none at 0 or below (librdkafka
/// stamps those with the time of sending), where the local log keeps any.
fn records_read_back_in_order_with_keys_values_and_timestamps(s: &Subject) {
    s.topic_with("t", 2, 3000, b"k");
    let bus = s.bus.as_ref();
    assert_eq!(bus.end_offset("t", 0).unwrap(), 1500);
    assert_eq!(bus.end_offset("t", 1).unwrap(), 1500);
    let records = bus.read("t", 1, 1400, 10).unwrap();
    assert_eq!(offsets(&records), (1400..1410).collect::<Vec<_>>());
    assert_eq!(records[0].value, 2801u32.to_be_bytes());
    assert_eq!(records[0].key, b"k");
    assert_eq!(records[0].timestamp_millis, 3801);
    assert_eq!((records[0].topic.as_str(), records[0].partition), ("t", 1));
    assert_eq!(s.offsets("t", 0, 1499, 5), [1499]);
    assert!(s.offsets("t", 0, 1500, 5).is_empty());
    assert!(s.offsets("t", 0, 0, 0).is_empty(), "a read of none");
    // A scan in small steps (a reader continues where it stopped), then one
    // that jumps back.
    let mut from = 0;
    let mut seen = Vec::new();
    loop {
        let records = bus.read("t", 0, from, 97).unwrap();
        let Some(last) = records.last() else { break };
        from = last.offset + 1;
        seen.extend(offsets(&records));
    }
    assert_eq!(seen, (0..1500).collect::<Vec<u64>>());
    let again = bus.read("t", 0, 3, 2).unwrap();
    assert_eq!(offsets(&again), [3, 4]);
    assert_eq!(again[0].value, 6u32.to_be_bytes());
    // An empty key and an empty value.
    let mut producer = s.producer();
    producer.send("t", 0, b"", b"", 5).unwrap();
    producer.flush().unwrap();
    let last = bus.read("t", 0, 1500, 10).unwrap();
    assert_eq!(last.len(), 1);
    assert!(last[0].key.is_empty() && last[0].value.is_empty());
}

/// `read_until` hands over the records below its bound and leaves the
/// position past them; `scan` reads from an offset until told to stop.
fn bounded_reads_stop_where_they_are_told(s: &Subject) {
    s.topic_with("t", 1, 10, b"k");
    let bus = s.bus.as_ref();
    let mut position = 2;
    let mut got = Vec::new();
    read_until(bus, "t", 0, &mut position, Some(5), |r| got.push(r.offset)).unwrap();
    assert_eq!((got.as_slice(), position), ([2, 3, 4].as_slice(), 5));
    got.clear();
    read_until(bus, "t", 0, &mut position, None, |r| got.push(r.offset)).unwrap();
    assert_eq!((got.as_slice(), position), ([5, 6, 7, 8, 9].as_slice(), 10));
    read_until(bus, "t", 0, &mut position, Some(3), |_| panic!("below")).unwrap();
    assert_eq!(position, 10, "a bound behind the position reads nothing");
    let mut scanned = Vec::new();
    scan::<BusError>(bus, "t", 0, 4, |r| {
        scanned.push(r.offset);
        Ok(scanned.len() < 3)
    })
    .unwrap();
    assert_eq!(scanned, [4, 5, 6]);
    let mut all = 0;
    scan::<BusError>(bus, "t", 0, 0, |_| {
        all += 1;
        Ok(true)
    })
    .unwrap();
    assert_eq!(all, 10);
}

/// Records up to `max_record_bytes` (key + value) round-trip, one byte more
/// is refused with `TooLarge`, and a large batch reads back whole.
fn large_records_round_trip_and_one_over_the_limit_is_refused(s: &Subject) {
    let bus = s.bus.as_ref();
    bus.ensure_topic(&TopicSpec::new("t", 1)).unwrap();
    let limit = bus.max_record_bytes();
    let mut producer = s.producer();
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    producer.send("t", 0, b"big", &big, 1).unwrap();
    producer.flush().unwrap();
    assert_eq!(bus.read("t", 0, 0, 1).unwrap()[0].value, big, "1 MiB");
    let largest = vec![9u8; limit - 3];
    producer.send("t", 0, b"max", &largest, 1).unwrap();
    producer.flush().unwrap();
    assert_eq!(bus.read("t", 0, 1, 1).unwrap()[0].value, largest);
    for (key, value) in [(&b""[..], limit + 1), (&b"k"[..], limit)] {
        assert!(matches!(
            producer.send("t", 0, key, &vec![0u8; value], 1),
            Err(BusError::TooLarge(n)) if n == limit + 1
        ));
    }
    let started = Instant::now();
    for i in 0..10_000u32 {
        producer
            .send("t", 0, &i.to_be_bytes(), &[7u8; 200], 1)
            .unwrap();
    }
    producer.flush().unwrap();
    let produced = started.elapsed();
    assert_eq!(bus.end_offset("t", 0).unwrap(), 10_002);
    let started = Instant::now();
    let (mut from, mut count) = (2, 0);
    loop {
        let records = bus.read("t", 0, from, 4096).unwrap();
        let Some(last) = records.last() else { break };
        for (j, r) in records.iter().enumerate() {
            assert_eq!(r.offset, from + j as u64);
            assert_eq!(r.key, ((r.offset - 2) as u32).to_be_bytes());
        }
        count += records.len();
        from = last.offset + 1;
    }
    assert_eq!(count, 10_000);
    eprintln!(
        "{}: 10,000 records of 200 B produced in {produced:?}, read back in {:?}",
        s.url,
        started.elapsed()
    );
}

/// `acknowledged_end`: none before a flush, then the end of what this
/// producer had acknowledged, never past the partition's end.
fn a_producer_knows_the_end_of_what_it_had_acknowledged(s: &Subject) {
    let bus = s.bus.as_ref();
    bus.ensure_topic(&TopicSpec::new("t", 2)).unwrap();
    let mut other = s.producer();
    let mut producer = s.producer();
    other.send("t", 0, b"k", b"a", 1).unwrap();
    other.flush().unwrap();
    producer.send("t", 0, b"k", b"b", 1).unwrap();
    assert_eq!(producer.acknowledged_end("t", 0), None, "not flushed yet");
    producer.flush().unwrap();
    assert_eq!(producer.acknowledged_end("t", 0), Some(2));
    other.send("t", 0, b"k", b"c", 1).unwrap();
    other.flush().unwrap();
    // Another writer's records are past it: never beyond the true end.
    assert_eq!(producer.acknowledged_end("t", 0), Some(2));
    assert_eq!(bus.end_offset("t", 0).unwrap(), 3);
    assert_eq!(producer.acknowledged_end("t", 1), None);
}

/// A group's consumer announces its assignment before any record, then
/// delivers each partition in order once; its commits are the group's, and
/// a new consumer of the group resumes from them. `position`, where the
/// backend knows it (Kafka: markers take offsets), is past the last record
/// delivered; the local log has no markers and says `None`.
fn a_group_announces_its_assignment_and_resumes_from_its_commit(s: &Subject) {
    s.topic_with("t", 2, 20, b"");
    let bus = s.bus.as_ref();
    {
        let mut consumer = bus.consumer("g").unwrap();
        consumer.subscribe(&["t"]).unwrap();
        let mut assigned = await_assignment(consumer.as_mut(), 2, Duration::from_secs(30));
        assigned.sort();
        assert_eq!(assigned, [("t".to_string(), 0), ("t".to_string(), 1)]);
        let records = poll_records(consumer.as_mut(), 20, Duration::from_secs(30));
        assert_eq!(records.len(), 20);
        for partition in 0..2 {
            let offsets = partition_offsets(&records, partition);
            assert_eq!(offsets, (0..10).collect::<Vec<_>>(), "in order, once");
            let position = consumer.position("t", partition);
            assert!(position.is_none_or(|p| p == 10), "{position:?}");
        }
        assert_eq!(consumer.position("t", 0).is_some(), s.is_kafka());
        consumer.commit(&[("t".into(), 0, 4)]).unwrap();
        assert_eq!(bus.committed("g", "t", 0).unwrap(), Some(4));
        assert_eq!(bus.committed("g", "t", 1).unwrap(), None);
    }
    // A new consumer of the group starts from the commit (partition 0) or
    // the beginning (partition 1, never committed).
    let mut again = bus.consumer("g").unwrap();
    again.subscribe(&["t"]).unwrap();
    await_assignment(again.as_mut(), 2, Duration::from_secs(30));
    let records = poll_records(again.as_mut(), 16, Duration::from_secs(30));
    assert_eq!(partition_offsets(&records, 0), (4..10).collect::<Vec<_>>());
    assert_eq!(partition_offsets(&records, 1).len(), 10);
    assert_eq!(bus.committed("other", "t", 0).unwrap(), None, "per group");
}

/// `seek` right after the assignment (as the runtime does, to each store's
/// applied offset) and while fetching.
fn seek_moves_a_partition_after_its_assignment_and_while_fetching(s: &Subject) {
    s.topic_with("t", 2, 40, b"");
    let mut consumer = s.bus.consumer("g").unwrap();
    consumer.subscribe(&["t"]).unwrap();
    await_assignment(consumer.as_mut(), 2, Duration::from_secs(30));
    consumer.seek("t", 0, 17).unwrap();
    consumer.seek("t", 1, 5).unwrap();
    let records = poll_records(consumer.as_mut(), 3 + 15, Duration::from_secs(30));
    assert_eq!(partition_offsets(&records, 0), (17..20).collect::<Vec<_>>());
    assert_eq!(partition_offsets(&records, 1), (5..20).collect::<Vec<_>>());
    // Back to an earlier offset on a partition being fetched.
    consumer.seek("t", 0, 2).unwrap();
    let records = poll_records(consumer.as_mut(), 18, Duration::from_secs(30));
    assert_eq!(partition_offsets(&records, 0), (2..20).collect::<Vec<_>>());
    assert!(partition_offsets(&records, 1).is_empty());
    // Kafka refuses a seek of a partition this consumer was not assigned;
    // the local log takes any (one process owns every partition, and the
    // runtime seeks only what it was assigned).
    if s.is_kafka() {
        assert!(matches!(
            consumer.seek("other", 0, 1),
            Err(BusError::Config(_))
        ));
    }
}

/// Members of a group (`Bus::member`) share its partitions, each partition
/// owned by one member, and a member receives records of its own
/// partitions only. On Kafka the group protocol shares them, and the
/// partitions of a member that leaves move to those that stay; on the local
/// log each member's share is fixed (`p % members == index`), since one
/// process runs every member.
fn members_of_a_group_share_its_partitions(s: &Subject) {
    s.topic_with("t", 4, 400, b"");
    let mut members: Vec<Box<dyn BusConsumer>> =
        (0..2).map(|i| s.bus.member("g", i, 2).unwrap()).collect();
    for member in &mut members {
        member.subscribe(&["t"]).unwrap();
    }
    let mut owned: [Vec<(String, u32)>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (i, member) in members.iter_mut().enumerate() {
            let polled = member.poll(1000, Duration::from_millis(50)).unwrap();
            // Records come before an assignment that follows them.
            for r in &polled.records {
                assert!(owned[i].contains(&(r.topic.clone(), r.partition)), "{r:?}");
            }
            if let Some(assignment) = polled.assignment {
                owned[i] = assignment.partitions;
            }
        }
        let split = owned[0].len() == 2
            && owned[1].len() == 2
            && owned[0].iter().all(|p| !owned[1].contains(p));
        if split {
            break;
        }
        assert!(Instant::now() < deadline, "no split within 60 s: {owned:?}");
    }
    if !s.is_kafka() {
        return;
    }
    // The leaver's partitions move to the member that stays.
    members.truncate(1);
    let started = Instant::now();
    loop {
        let polled = members[0].poll(1000, Duration::from_millis(100)).unwrap();
        if polled.assignment.is_some_and(|a| a.partitions.len() == 4) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no takeover within 60 s"
        );
    }
    eprintln!("takeover after a clean leave: {:?}", started.elapsed());
}

/// One owner writes at a time. On Kafka a fenced producer's owner is
/// replaced by a later producer of the same owner: the first one's next
/// write fails with `Fenced`, and what it sent and had not committed is
/// never read. The local log has no fenced producers
/// (`fenced_producer` is `None`): its lock lets one process open it, so a
/// second owner is refused at its open, and records become readable only
/// once flushed.
fn a_second_owner_fences_the_first(s: &Subject) {
    let bus = s.bus.as_ref();
    bus.ensure_topic(&TopicSpec::new("t", 1)).unwrap();
    let Some(mut first) = bus.fenced_producer("owner").unwrap() else {
        assert!(
            !s.is_kafka(),
            "Kafka's stages write through fenced producers"
        );
        assert!(matches!(bus::open(&s.url), Err(BusError::Busy(_))));
        return;
    };
    first.send("t", 0, b"k", b"committed", 1).unwrap();
    first.flush().unwrap();
    first.send("t", 0, b"k", b"left open", 1).unwrap();
    let mut second = bus.fenced_producer("owner").unwrap().unwrap();
    second.send("t", 0, b"k", b"second", 1).unwrap();
    second.flush().unwrap();
    let refused = first
        .send("t", 0, b"k", b"late", 1)
        .and_then(|()| first.flush());
    assert!(matches!(refused, Err(BusError::Fenced(_))), "{refused:?}");
    let read = bus.read("t", 0, 0, 100).unwrap();
    assert_eq!(values(&read), [b"committed".to_vec(), b"second".to_vec()]);
}

/// Once a partition is settled, a reader sees every record committed to
/// it. On Kafka a commit returns before the broker writes the markers that
/// make its records readable, so right after it the end a reader sees may
/// stop short; and a transaction still open keeps the partition unsettled.
/// The local log makes a commit readable before it returns: always settled.
fn once_settled_every_committed_record_is_readable(s: &Subject) {
    let bus = s.bus.as_ref();
    bus.ensure_topic(&TopicSpec::new("s", 2)).unwrap();
    // Kafka's stages write in transactions (none with
    // CLEARING_KAFKA_TRANSACTIONS=0, nor on the local log).
    let fenced = bus.fenced_producer("settling").unwrap();
    let transactional = fenced.is_some();
    let mut producer = fenced.unwrap_or_else(|| s.producer());
    let data = |partition: u32| -> usize {
        let end = bus.end_offset("s", partition).unwrap();
        let mut count = 0;
        read_until(bus, "s", partition, &mut 0, Some(end), |_| count += 1).unwrap();
        count
    };
    for round in 1..=20 {
        for i in 0..3u32 {
            producer
                .send("s", i % 2, b"k", &i.to_be_bytes(), 1)
                .unwrap();
        }
        if round == 20 && transactional {
            // Open, its records on the broker but not yet readable.
            let deadline = Instant::now() + Duration::from_secs(30);
            while bus.settled("s", 0).unwrap() {
                assert!(
                    Instant::now() < deadline,
                    "an open transaction left s/0 settled"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(data(0), 2 * 19, "an open transaction's records were read");
        }
        producer.flush().unwrap();
        let unsettled = bus::await_settled(bus, &["s"], Duration::from_secs(30)).unwrap();
        assert_eq!(unsettled, Vec::<(String, u32)>::new(), "round {round}");
        assert_eq!((data(0), data(1)), (2 * round, round), "round {round}");
    }
}

/// A tombstone (a null value) on a compacted topic reads back as one,
/// directly and through a group, and is not an empty value: a changelog's
/// delete, which compaction drops in time.
fn a_null_value_round_trips_as_a_tombstone(s: &Subject) {
    let spec = TopicSpec {
        compacted: true,
        ..TopicSpec::new("c", 1)
    };
    s.bus.ensure_topic(&spec).unwrap();
    let mut producer = s.producer();
    producer.send("c", 0, b"k", b"v", 10).unwrap();
    producer.send_tombstone("c", 0, b"k", 11).unwrap();
    producer.send("c", 0, b"e", b"", 12).unwrap();
    producer.flush().unwrap();
    let read = s.bus.read("c", 0, 0, 10).unwrap();
    let shape = |records: &[Record]| -> Vec<(u64, Vec<u8>, Vec<u8>, bool)> {
        records
            .iter()
            .map(|r| (r.offset, r.key.clone(), r.value.clone(), r.tombstone))
            .collect()
    };
    let expected = vec![
        (0, b"k".to_vec(), b"v".to_vec(), false),
        (1, b"k".to_vec(), Vec::new(), true),
        (2, b"e".to_vec(), Vec::new(), false),
    ];
    assert_eq!(shape(&read), expected);
    assert_eq!(read[1].timestamp_millis, 11);
    let mut consumer = s.bus.consumer("tombstones").unwrap();
    consumer.subscribe(&["c"]).unwrap();
    await_assignment(consumer.as_mut(), 1, Duration::from_secs(30));
    consumer.seek("c", 0, 0).unwrap();
    let polled = poll_records(consumer.as_mut(), 3, Duration::from_secs(30));
    assert_eq!(shape(&polled), expected);
}

/// Each property, as a test on each backend: `local::NAME` and `kafka::NAME`.
macro_rules! contract {
    ($($property:ident),* $(,)?) => {
        mod local {
            $(#[test]
            fn $property() {
                super::$property(&super::Subject::local());
            })*
        }
        mod kafka {
            $(#[test]
            fn $property() {
                super::$property(&super::Subject::kafka(stringify!($property)));
            })*
        }
    };
}

contract!(
    topics_are_ensured_once_with_their_partition_count,
    records_read_back_in_order_with_keys_values_and_timestamps,
    bounded_reads_stop_where_they_are_told,
    large_records_round_trip_and_one_over_the_limit_is_refused,
    a_producer_knows_the_end_of_what_it_had_acknowledged,
    a_group_announces_its_assignment_and_resumes_from_its_commit,
    seek_moves_a_partition_after_its_assignment_and_while_fetching,
    members_of_a_group_share_its_partitions,
    a_second_owner_fences_the_first,
    a_null_value_round_trips_as_a_tombstone,
    once_settled_every_committed_record_is_readable,
);
