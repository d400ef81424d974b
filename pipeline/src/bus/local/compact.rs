//! Compaction of a compacted topic's partition, like Kafka's log cleaner:
//! closed segments only (never the active one), the latest record per key
//! kept at its offset (the segments keep their names and get offset gaps),
//! a tombstone kept until [`CompactSettings::tombstone_retention`] offsets
//! lie past it, then dropped. Each segment is rewritten beside itself
//! (`<segment>.compacting`), synced and renamed over it, in offset order, so
//! that a compaction killed at any point leaves each segment whole, old or
//! new, and no key's older value without the record that superseded it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, Write};
use std::path::Path;

use super::files::{note_created, note_synced, sync_dir};
use super::frame::{Frame, FrameRead, encode_frame, read_frame};
use super::io;
use super::partition::PartitionLog;
use crate::bus::BusError;

/// Offsets a tombstone is kept for by default: a store that recorded a
/// changelog position less far behind still reads the delete.
pub const DEFAULT_TOMBSTONE_RETENTION: u64 = 1_000_000;

/// How a partition is compacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactSettings {
    /// A tombstone is dropped once the cleaned range ends this many
    /// offsets past it (the analogue of Kafka's `delete.retention.ms`).
    pub tombstone_retention: u64,
    /// The key of the record that ends a batch (a changelog's commit
    /// marker), if the topic is written in batches: only records up to the
    /// last such record of the closed segments are cleaned, so that the
    /// writes of a batch a crash cut never supersede committed ones.
    pub batch_end_key: Option<Vec<u8>>,
}

impl Default for CompactSettings {
    fn default() -> CompactSettings {
        CompactSettings {
            tombstone_retention: DEFAULT_TOMBSTONE_RETENTION,
            batch_end_key: None,
        }
    }
}

/// What compacting one partition did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Closed segments rewritten (or removed, when nothing of them stayed).
    pub segments: usize,
    pub records_dropped: u64,
    pub tombstones_dropped: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The end of the cleaned range: records from there on were kept as
    /// they were.
    pub cleaned_end: u64,
}

/// The frames of a segment file, in order (the open scanned them).
fn frames(path: &Path) -> Result<Vec<Frame>, BusError> {
    let context = || path.display().to_string();
    let mut reader = BufReader::new(File::open(path).map_err(|e| io(context())(e))?);
    let mut out = Vec::new();
    while let FrameRead::Frame(frame) = read_frame(&mut reader).map_err(|e| io(context())(e))? {
        out.push(frame);
    }
    Ok(out)
}

/// Which records of the closed segments stay: the offset after the cleaned
/// range, and the latest offset of each key in it.
fn plan(closed: &[Vec<Frame>], settings: &CompactSettings) -> (u64, BTreeMap<Vec<u8>, u64>) {
    let all = closed.iter().flatten();
    let end = match &settings.batch_end_key {
        Some(marker) => all.clone().rfind(|f| &f.2 == marker),
        None => all.clone().next_back(),
    }
    .map_or(0, |f| f.0 + 1);
    let mut latest = BTreeMap::new();
    for f in all.filter(|f| f.0 < end) {
        latest.insert(f.2.clone(), f.0);
    }
    (end, latest)
}

impl PartitionLog {
    /// Compacts the closed segments; see the module's doc. The partition is
    /// reopened after (its index and read positions name byte positions).
    pub(super) fn compact(&mut self, settings: &CompactSettings) -> Result<Compacted, BusError> {
        self.flush()?;
        let closed_count = self.segments.len().saturating_sub(1);
        let paths: Vec<_> = self.segments[..closed_count]
            .iter()
            .map(|s| s.path.clone())
            .collect();
        let closed = paths
            .iter()
            .map(|p| frames(p))
            .collect::<Result<Vec<_>, _>>()?;
        let (end, latest) = plan(&closed, settings);
        let mut done = Compacted {
            cleaned_end: end,
            ..Compacted::default()
        };
        for (path, frames) in paths.iter().zip(closed) {
            let before = frames.iter().map(|f| f.4).sum::<u64>();
            done.bytes_before += before;
            let total = frames.len();
            let mut tombstones = 0;
            let kept: Vec<Frame> = frames
                .into_iter()
                .filter(|(offset, _, key, value, _)| {
                    let superseded = *offset < end && latest.get(key) != Some(offset);
                    let expired = *offset < end
                        && value.is_none()
                        && end - offset > settings.tombstone_retention;
                    tombstones += u64::from(!superseded && expired);
                    !superseded && !expired
                })
                .collect();
            done.bytes_after += kept.iter().map(|f| f.4).sum::<u64>();
            if kept.len() == total {
                continue;
            }
            done.segments += 1;
            done.records_dropped += (total - kept.len()) as u64;
            done.tombstones_dropped += tombstones;
            self.replace_segment(path, &kept)?;
        }
        let journal = self.journal.clone();
        let dir = self.dir.clone();
        let (topic, partition, gaps) = (self.topic.clone(), self.partition, self.gaps);
        let segment_bytes = self.segment_bytes;
        *self = PartitionLog::open(dir, &topic, partition, journal, gaps)?;
        self.segment_bytes = segment_bytes;
        Ok(done)
    }

    /// Writes `kept` beside the segment, syncs it and renames it over the
    /// segment (or removes the segment if nothing is kept), then syncs the
    /// directory: a crash leaves the old segment or the new one.
    fn replace_segment(&self, path: &Path, kept: &[Frame]) -> Result<(), BusError> {
        let journal = self.journal.as_deref();
        if kept.is_empty() {
            fs::remove_file(path).map_err(io(path.display().to_string()))?;
            return sync_dir(&self.dir, journal);
        }
        let tmp = path.with_extension("log.compacting");
        let context = || tmp.display().to_string();
        let mut bytes = Vec::new();
        for (offset, timestamp, key, value, _) in kept {
            bytes.extend(encode_frame(*offset, *timestamp, key, value.as_deref()));
        }
        let mut file = File::create(&tmp).map_err(|e| io(context())(e))?;
        file.write_all(&bytes).map_err(|e| io(context())(e))?;
        file.sync_all().map_err(|e| io(context())(e))?;
        fs::rename(&tmp, path).map_err(io(path.display().to_string()))?;
        note_created(journal, path)?;
        sync_dir(&self.dir, journal)?;
        note_synced(journal, path, bytes.len() as u64, bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use crate::bus::local::{CompactSettings, LocalLog};
    use crate::bus::{Bus, TopicSpec};

    /// Writes `ops` (a key of four, a value or a delete) to a compacted
    /// topic whose segments roll every few records.
    fn written(dir: &std::path::Path, ops: &[(u8, Option<u8>)]) -> std::sync::Arc<LocalLog> {
        let log = LocalLog::open_with_segment_bytes(dir, 120).unwrap();
        let mut spec = TopicSpec::new("c", 1);
        spec.compacted = true;
        log.ensure_topic(&spec).unwrap();
        let mut producer = log.producer().unwrap();
        for (i, (key, value)) in ops.iter().enumerate() {
            let key = [*key];
            match value {
                Some(v) => producer.send("c", 0, &key, &[*v], i as i64).unwrap(),
                None => producer.send_tombstone("c", 0, &key, i as i64).unwrap(),
            }
        }
        producer.flush().unwrap();
        log
    }

    /// The latest value per key the log's records say (a tombstone: none),
    /// checking that offsets increase.
    fn latest(log: &std::sync::Arc<LocalLog>) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let records = log.read("c", 0, 0, usize::MAX).unwrap();
        assert!(records.windows(2).all(|w| w[0].offset < w[1].offset));
        let mut state = BTreeMap::new();
        for r in records {
            if r.tombstone {
                state.remove(&r.key);
            } else {
                state.insert(r.key, r.value);
            }
        }
        state
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn compaction_keeps_the_latest_value_per_key(
            ops in proptest::collection::vec((0u8..4, proptest::option::of(any::<u8>())), 1..120),
            retention in 0u64..40,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let log = written(dir.path(), &ops);
            let before = latest(&log);
            let end = log.end_offset("c", 0).unwrap();
            let settings = CompactSettings { tombstone_retention: retention, batch_end_key: None };
            let done = log.compact_topic("c", &settings).unwrap();
            prop_assert_eq!(&latest(&log), &before);
            prop_assert_eq!(log.end_offset("c", 0).unwrap(), end, "the next offset stays");
            // Each key has one record at most in the cleaned range.
            let cleaned = done[0].cleaned_end;
            let records = log.read("c", 0, 0, usize::MAX).unwrap();
            let mut keys: Vec<_> = records.iter().filter(|r| r.offset < cleaned).map(|r| &r.key).collect();
            let count = keys.len();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), count);
            // Compacting again changes nothing; reopened, the log reads the same.
            let again = log.compact_topic("c", &settings).unwrap();
            prop_assert_eq!(again[0].records_dropped, 0);
            drop(log);
            let log = LocalLog::open_with_segment_bytes(dir.path(), 120).unwrap();
            prop_assert_eq!(latest(&log), before);
            prop_assert!(log.check().unwrap().damage.is_empty());
        }
    }

    /// Copies the segment files (and any other file) of `c/0`.
    fn copy_partition(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to.join("c/0")).unwrap();
        std::fs::copy(from.join("c/topic.json"), to.join("c/topic.json")).unwrap();
        for entry in std::fs::read_dir(from.join("c/0")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join("c/0").join(entry.file_name())).unwrap();
        }
    }

    /// A compaction killed after it replaced the first `k` segments, with
    /// the next one's rewrite cut short beside it, for every `k`: the log
    /// opens, checks clean and reads the same latest value per key.
    #[test]
    fn a_compaction_killed_between_or_inside_segments_leaves_a_correct_log() {
        let ops: Vec<(u8, Option<u8>)> = (0..150u32)
            .map(|i| ((i % 6) as u8, (i % 4 != 3).then_some(i as u8)))
            .collect();
        let root = tempfile::tempdir().unwrap();
        let (original, compacted) = (root.path().join("a"), root.path().join("b"));
        let want = latest(&written(&original, &ops));
        copy_partition(&original, &compacted);
        let settings = CompactSettings {
            tombstone_retention: 0,
            batch_end_key: None,
        };
        LocalLog::open(&compacted)
            .unwrap()
            .compact_topic("c", &settings)
            .unwrap();
        let mut names: Vec<_> = std::fs::read_dir(original.join("c/0"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".log"))
            .collect();
        names.sort();
        assert!(names.len() > 5, "{} segments", names.len());
        let closed = &names[..names.len() - 1];
        for k in 0..=closed.len() {
            let crashed = root.path().join(format!("crash-{k}"));
            copy_partition(&original, &crashed);
            let segments = crashed.join("c/0");
            for name in &closed[..k] {
                match std::fs::read(compacted.join("c/0").join(name)) {
                    Ok(bytes) => std::fs::write(segments.join(name), bytes).unwrap(),
                    Err(_) => std::fs::remove_file(segments.join(name)).unwrap(),
                }
            }
            if let Some(next) = closed.get(k)
                && let Ok(bytes) = std::fs::read(compacted.join("c/0").join(next))
            {
                let cut = &bytes[..bytes.len() / 2];
                let tmp = segments.join(next).with_extension("log.compacting");
                std::fs::write(tmp, cut).unwrap();
            }
            let log = LocalLog::open(&crashed).unwrap();
            assert!(log.check().unwrap().damage.is_empty(), "crash {k}");
            assert_eq!(latest(&log), want, "crash {k}");
            // Compacting again finishes the job.
            log.compact_topic("c", &settings).unwrap();
            assert_eq!(latest(&log), want, "crash {k}, compacted again");
        }
    }

    #[test]
    fn a_topic_that_is_not_compacted_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(dir.path()).unwrap();
        log.ensure_topic(&TopicSpec::new("t", 1)).unwrap();
        assert!(log.compact_topic("t", &CompactSettings::default()).is_err());
    }
}
