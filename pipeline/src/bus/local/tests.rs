//! The local log's own tests: its files (segments, gaps, torn tails,
//! damage, repair), its reopen and its lock. What every backend promises is
//! in tests/bus_contract.rs.

use std::time::Duration;

use super::LocalLog;
use crate::bus::{Bus, TopicSpec};

#[test]
fn appends_at_offsets_keep_gaps_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LocalLog::open(dir.path()).unwrap();
        log.ensure_topic(&TopicSpec::new("t", 1)).unwrap();
        for offset in [3u64, 4, 9, 10, 2000] {
            log.append_at("t", 0, offset, 0, b"k", &offset.to_be_bytes())
                .unwrap();
        }
        assert!(log.append_at("t", 0, 5, 0, b"k", b"v").is_err());
        log.flush_partition("t", 0).unwrap();
        assert_eq!(log.end_offset("t", 0).unwrap(), 2001);
    }
    let log = LocalLog::open(dir.path()).unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), 2001);
    let offsets: Vec<u64> = log
        .read("t", 0, 0, 100)
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, [3, 4, 9, 10, 2000]);
    let from_gap: Vec<u64> = log
        .read("t", 0, 5, 2)
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(from_gap, [9, 10]);
}

/// Readers at the tail resume where they stopped: whatever the mix of
/// readers, batch sizes, appends between reads and segment changes (a
/// gap starts one), every read returns exactly the records from its
/// offset on.
#[test]
fn reads_that_resume_where_they_stopped_see_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalLog::open(dir.path()).unwrap();
    log.ensure_topic(&TopicSpec::new("t", 1)).unwrap();
    let mut producer = log.producer().unwrap();
    let mut written: Vec<u64> = Vec::new();
    let mut readers = [0u64; 3];
    let mut next = 0u64;
    for round in 0..200u64 {
        for _ in 0..(round % 7) {
            if round % 50 == 49 {
                // A gap: the next record starts a new segment.
                next += 10;
                log.append_at("t", 0, next, 0, b"k", &next.to_be_bytes())
                    .unwrap();
                log.flush_partition("t", 0).unwrap();
            } else {
                producer.send("t", 0, b"k", &next.to_be_bytes(), 0).unwrap();
            }
            written.push(next);
            next += 1;
        }
        producer.flush().unwrap();
        for (n, position) in readers.iter_mut().enumerate() {
            let max = 1 + (round as usize + n) % 5;
            let got: Vec<u64> = log
                .read("t", 0, *position, max)
                .unwrap()
                .iter()
                .map(|r| r.offset)
                .collect();
            let want: Vec<u64> = written
                .iter()
                .copied()
                .filter(|o| *o >= *position)
                .take(max)
                .collect();
            assert_eq!(got, want, "reader {n} at {position}, round {round}");
            if let Some(last) = got.last() {
                *position = last + 1;
            }
        }
    }
    for position in readers {
        let rest: Vec<u64> = log
            .read("t", 0, position, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect();
        let want: Vec<u64> = written.iter().copied().filter(|o| *o >= position).collect();
        assert_eq!(rest, want);
    }
}

#[test]
fn append_flush_read_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = LocalLog::open(dir.path()).unwrap();
        bus.ensure_topic(&TopicSpec::new("t", 2)).unwrap();
        let mut producer = bus.producer().unwrap();
        for i in 0..3000u32 {
            producer
                .send("t", i % 2, b"k", &i.to_be_bytes(), i64::from(i))
                .unwrap();
        }
        assert_eq!(
            bus.end_offset("t", 0).unwrap(),
            0,
            "invisible before the flush"
        );
        producer.flush().unwrap();
        assert_eq!(bus.end_offset("t", 0).unwrap(), 1500);
        let records = bus.read("t", 1, 1400, 10).unwrap();
        assert_eq!(records.len(), 10);
        assert_eq!(records[0].offset, 1400);
        assert_eq!(records[0].value, 2801u32.to_be_bytes());
        assert!(LocalLog::open(dir.path()).is_err(), "one process at a time");
    }
    let bus = LocalLog::open(dir.path()).unwrap();
    assert_eq!(
        bus.end_offset("t", 1).unwrap(),
        1500,
        "offsets survive a reopen"
    );
    assert_eq!(bus.read("t", 0, 1499, 5).unwrap().len(), 1);
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = LocalLog::open(dir.path()).unwrap();
        bus.ensure_topic(&TopicSpec::new("t", 1)).unwrap();
        let mut producer = bus.producer().unwrap();
        for i in 0..10u8 {
            producer.send("t", 0, b"", &[i; 100], 0).unwrap();
        }
        producer.flush().unwrap();
    }
    let segment = dir.path().join("t/0/00000000000000000000.log");
    let len = std::fs::metadata(&segment).unwrap().len();
    // A crash mid-append: half a record at the end.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(len - 50).unwrap();
    drop(file);
    let bus = LocalLog::open(dir.path()).unwrap();
    assert_eq!(bus.end_offset("t", 0).unwrap(), 9);
    let mut producer = bus.producer().unwrap();
    producer.send("t", 0, b"", b"after", 0).unwrap();
    producer.flush().unwrap();
    let records = bus.read("t", 0, 8, 10).unwrap();
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![8, 9]
    );
    assert_eq!(records[1].value, b"after");
}

#[test]
fn preallocated_space_is_cut_at_close_and_after_a_crash() {
    let (dir, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let segment = |root: &std::path::Path| root.join("t/0/00000000000000000000.log");
    let records = 10u64;
    let frame = 8 + 24 + 100;
    {
        // The log the crashed segment is put into: the same topic, empty.
        let bus = LocalLog::open(crashed.path()).unwrap();
        bus.ensure_topic(&TopicSpec::new("t", 1)).unwrap();
    }
    {
        let bus = LocalLog::open(dir.path()).unwrap();
        bus.ensure_topic(&TopicSpec::new("t", 1)).unwrap();
        let mut producer = bus.producer().unwrap();
        for i in 0..records {
            producer.send("t", 0, b"", &[i as u8; 100], 0).unwrap();
        }
        producer.flush().unwrap();
        // Open: the file runs past its records, zeros to be written over.
        let open_len = std::fs::metadata(segment(dir.path())).unwrap().len();
        assert!(open_len > records * frame, "preallocated: {open_len}");
        // A crash now leaves that space on disk: the segment as it is.
        let target = segment(crashed.path());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(segment(dir.path()), target).unwrap();
    }
    assert_eq!(
        std::fs::metadata(segment(dir.path())).unwrap().len(),
        records * frame,
        "a clean close cuts the space"
    );
    let bus = LocalLog::open(crashed.path()).unwrap();
    assert_eq!(bus.end_offset("t", 0).unwrap(), records);
    assert_eq!(
        std::fs::metadata(segment(crashed.path())).unwrap().len(),
        records * frame,
        "the open after a crash cuts it"
    );
    let mut producer = bus.producer().unwrap();
    producer.send("t", 0, b"", b"after", 0).unwrap();
    producer.flush().unwrap();
    let read = bus.read("t", 0, 0, 100).unwrap();
    assert_eq!(read.len() as u64, records + 1);
    assert_eq!(read[records as usize].value, b"after");
    assert_eq!(read[3].value, [3u8; 100]);
}

/// Five records, flushed (acknowledged), in one segment; returns the
/// segment's path. Each frame is 8 + 24 + 64 = 96 bytes.
fn five_synced_records(dir: &std::path::Path) -> std::path::PathBuf {
    let bus = LocalLog::open(dir).unwrap();
    bus.ensure_topic(&TopicSpec::new("t", 1)).unwrap();
    let mut producer = bus.producer().unwrap();
    for i in 0..5u8 {
        producer.send("t", 0, b"", &[i; 64], 0).unwrap();
    }
    producer.flush().unwrap();
    dir.join("t/0/00000000000000000000.log")
}

const FRAME_OF_64: usize = 8 + 24 + 64;

fn flip(path: &std::path::Path, at: usize, mask: u8) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= mask;
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// A flipped byte in the middle of the active segment is damage, not a
/// torn tail: two acknowledged records follow it. The log refuses to
/// open the partition, names where, and leaves the bytes as they are.
#[test]
fn a_flipped_byte_is_detected_by_the_crc() {
    let dir = tempfile::tempdir().unwrap();
    let segment = five_synced_records(dir.path());
    let third_record = 2 * FRAME_OF_64;
    let damaged = flip(&segment, third_record + 40, 1);
    let bus = LocalLog::open(dir.path()).unwrap();
    let error = bus.end_offset("t", 0).unwrap_err().to_string();
    for part in [
        "topic t",
        "partition 0",
        "00000000000000000000.log",
        "record 2",
        &format!("byte {third_record}"),
        "clearing log check",
    ] {
        assert!(error.contains(part), "{part:?} not in {error:?}");
    }
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        damaged,
        "nothing cut: records 3 and 4 are still there"
    );
    drop(bus);
    // The same on the next open: the damage stays until an operator acts.
    let bus = LocalLog::open(dir.path()).unwrap();
    assert!(bus.read("t", 0, 0, 10).is_err());
}

/// A length field damaged so that the frame's end is unknown: the scan
/// finds the valid frames past it, so this is not a torn tail either.
#[test]
fn a_damaged_length_followed_by_valid_records_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let segment = five_synced_records(dir.path());
    let damaged = flip(&segment, 2 * FRAME_OF_64, 0x80);
    let bus = LocalLog::open(dir.path()).unwrap();
    let error = bus.end_offset("t", 0).unwrap_err().to_string();
    assert!(error.contains("record 2"), "{error}");
    assert_eq!(std::fs::read(&segment).unwrap(), damaged);
}

/// The last record of the active segment, whole on disk (its bytes run
/// to its declared end) but failing its CRC: a crash writes a prefix of
/// a frame, never a whole frame with a byte changed, so this is damage
/// to an acknowledged record, not a torn tail.
#[test]
fn a_damaged_last_record_whole_on_disk_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let segment = five_synced_records(dir.path());
    let damaged = flip(&segment, 4 * FRAME_OF_64 + 40, 1);
    let bus = LocalLog::open(dir.path()).unwrap();
    let error = bus.end_offset("t", 0).unwrap_err().to_string();
    assert!(
        error.contains("record 4") && error.contains("fails its CRC"),
        "{error}"
    );
    assert_eq!(std::fs::read(&segment).unwrap(), damaged);
}

/// The last frame of a closed segment (a later segment exists) was
/// synced when the segment rolled: damage there is never a torn tail.
#[test]
fn a_damaged_last_frame_of_a_closed_segment_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let segment = five_synced_records(dir.path());
    {
        let bus = LocalLog::open(dir.path()).unwrap();
        bus.append_at("t", 0, 100, 0, b"", &[9; 64]).unwrap();
        bus.flush_partition("t", 0).unwrap();
    }
    let damaged = flip(&segment, 4 * FRAME_OF_64 + 40, 1);
    let bus = LocalLog::open(dir.path()).unwrap();
    let error = bus.end_offset("t", 0).unwrap_err().to_string();
    assert!(
        error.contains("record 4") && error.contains("00000000000000000000.log"),
        "{error}"
    );
    assert_eq!(std::fs::read(&segment).unwrap(), damaged);
}

/// Damage that appears after the partition was opened (a disk error
/// under a running pipeline) is an error on read, not a shorter read.
#[test]
fn damage_after_the_log_opened_is_an_error_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let segment = five_synced_records(dir.path());
    let bus = LocalLog::open(dir.path()).unwrap();
    assert_eq!(bus.end_offset("t", 0).unwrap(), 5);
    flip(&segment, 2 * FRAME_OF_64 + 40, 1);
    let error = bus.read("t", 0, 0, 10).unwrap_err().to_string();
    assert!(
        error.contains("record 2") && error.contains("partition 0"),
        "{error}"
    );
    assert_eq!(bus.read("t", 0, 0, 2).unwrap().len(), 2, "before it reads");
}

/// `check` reports every damaged segment and every torn tail without
/// changing a byte; `quarantine_damage` moves the damaged bytes aside
/// and the partitions open again, with no offset given twice.
#[test]
fn check_reports_every_damage_and_quarantine_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    {
        let bus = LocalLog::open(root).unwrap();
        bus.ensure_topic(&TopicSpec::new("t", 3)).unwrap();
        let mut producer = bus.producer().unwrap();
        for partition in 0..3 {
            for i in 0..5u8 {
                producer.send("t", partition, b"", &[i; 64], 0).unwrap();
            }
        }
        producer.flush().unwrap();
        bus.append_at("t", 0, 100, 0, b"", &[9; 64]).unwrap();
        bus.flush_partition("t", 0).unwrap();
    }
    let segment = |p: u32| root.join(format!("t/{p}/00000000000000000000.log"));
    // Partition 0: the last frame of its closed segment; 1: the middle
    // of its only segment; 2: a torn tail, half a frame.
    flip(&segment(0), 4 * FRAME_OF_64 + 40, 1);
    let damaged_1 = flip(&segment(1), 2 * FRAME_OF_64 + 40, 1);
    let mut torn = std::fs::read(segment(2)).unwrap();
    torn.extend_from_within(..50);
    std::fs::write(segment(2), &torn).unwrap();
    let before: Vec<Vec<u8>> = (0..3).map(|p| std::fs::read(segment(p)).unwrap()).collect();

    let bus = LocalLog::open(root).unwrap();
    let report = bus.check().unwrap();
    assert_eq!((report.partitions, report.segments), (3, 4));
    assert_eq!(report.records, 4 + 1 + 2 + 5);
    let found: Vec<(u32, u64, Vec<u64>, bool)> = report
        .damage
        .iter()
        .map(|d| (d.partition, d.offset, d.records_after.clone(), d.closed))
        .collect();
    assert_eq!(found, [(0, 4, vec![], true), (1, 2, vec![3, 4], false)]);
    assert_eq!(report.torn_tails.len(), 1);
    assert_eq!(
        (report.torn_tails[0].partition, report.torn_tails[0].bytes),
        (2, 50)
    );
    let after: Vec<Vec<u8>> = (0..3).map(|p| std::fs::read(segment(p)).unwrap()).collect();
    assert_eq!(after, before, "check changes nothing");

    let moved = bus.quarantine_damage().unwrap();
    assert_eq!(moved.len(), 2);
    let quarantined_1 = &moved[1];
    let text = quarantined_1.to_string();
    assert!(
        text.contains("offsets 3 to 4") && text.contains(".quarantine"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&quarantined_1.file).unwrap(),
        damaged_1[2 * FRAME_OF_64..],
        "the bytes from the damage on, as they were"
    );
    drop(bus);

    let bus = LocalLog::open(root).unwrap();
    assert!(bus.check().unwrap().damage.is_empty());
    let offsets = |p: u32| -> Vec<u64> {
        bus.read("t", p, 0, 100)
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect()
    };
    assert_eq!(offsets(0), [0, 1, 2, 3, 100]);
    assert_eq!(offsets(1), [0, 1]);
    assert_eq!(offsets(2), [0, 1, 2, 3, 4], "the torn tail is cut");
    assert_eq!(
        bus.end_offset("t", 1).unwrap(),
        5,
        "new records do not take the quarantined records' offsets"
    );
    let mut producer = bus.producer().unwrap();
    producer.send("t", 1, b"", b"after", 0).unwrap();
    producer.flush().unwrap();
    assert_eq!(offsets(1), [0, 1, 5]);
}

/// `topic.json` is replaced whole, never left as a part.
#[test]
fn topic_metadata_is_written_through_a_synced_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let bus = LocalLog::open(dir.path()).unwrap();
    bus.ensure_topic(&TopicSpec::new("t", 2)).unwrap();
    let topic = dir.path().join("t");
    let names: Vec<String> = std::fs::read_dir(&topic)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["topic.json"], "no temporary file left");
    drop(bus);
    // A temporary file a crash left is ignored.
    std::fs::write(topic.join("topic.json.tmp"), b"{\"partit").unwrap();
    let bus = LocalLog::open(dir.path()).unwrap();
    assert_eq!(bus.partition_count("t").unwrap(), 2);
}

/// A crash mid-append in preallocated space: half a frame, then zeros.
/// Nothing valid follows the last complete frame, so it is cut.
#[test]
fn a_torn_frame_in_preallocated_space_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let segment = five_synced_records(dir.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    let half: Vec<u8> = bytes[FRAME_OF_64..FRAME_OF_64 + 50].to_vec();
    bytes.extend_from_slice(&half);
    bytes.resize(bytes.len() + 4096, 0);
    std::fs::write(&segment, &bytes).unwrap();
    let bus = LocalLog::open(dir.path()).unwrap();
    assert_eq!(bus.end_offset("t", 0).unwrap(), 5);
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        5 * FRAME_OF_64 as u64
    );
}

#[test]
fn members_of_a_group_share_the_partitions_and_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let bus = LocalLog::open(dir.path()).unwrap();
    bus.ensure_topic(&TopicSpec::new("t", 5)).unwrap();
    let mut producer = bus.producer().unwrap();
    for i in 0..50u32 {
        producer.send("t", i % 5, b"", &i.to_be_bytes(), 0).unwrap();
    }
    producer.flush().unwrap();
    let mut owned = Vec::new();
    let mut members = Vec::new();
    for index in 0..2 {
        let mut member = bus.member("g", index, 2).unwrap();
        member.subscribe(&["t"]).unwrap();
        let assignment = member.poll(100, Duration::from_millis(10)).unwrap();
        let partitions: Vec<u32> = assignment
            .assignment
            .unwrap()
            .partitions
            .iter()
            .map(|(_, p)| *p)
            .collect();
        let polled = member.poll(100, Duration::from_millis(10)).unwrap();
        assert!(
            polled
                .records
                .iter()
                .all(|r| partitions.contains(&r.partition))
        );
        assert_eq!(polled.records.len(), 10 * partitions.len());
        owned.extend(partitions);
        members.push(member);
    }
    owned.sort();
    assert_eq!(owned, vec![0, 1, 2, 3, 4], "every partition once");
    // Commits of both members land in the group's one file.
    std::thread::scope(|scope| {
        for (index, member) in members.iter_mut().enumerate() {
            scope.spawn(move || {
                for round in 1..=50u64 {
                    let p = index as u32;
                    member.commit(&[("t".into(), p, round)]).unwrap();
                }
            });
        }
    });
    assert_eq!(bus.committed("g", "t", 0).unwrap(), Some(50));
    assert_eq!(bus.committed("g", "t", 1).unwrap(), Some(50));
    assert!(bus.member("g", 2, 2).is_err());
    // Held in memory between writes; a dropped consumer writes the file.
    drop((members, producer, bus));
    let reopened = LocalLog::open(dir.path()).unwrap();
    assert_eq!(reopened.committed("g", "t", 1).unwrap(), Some(50));
}
