//! A stage partition's changelog: how a batch's writes are written to it
//! (`1 || value`, a tombstone for a delete, then a commit marker) and how a
//! local store catches up from it. Changelogs written before tombstones
//! (2026-12-05) hold a delete as the value `0`, which the catch-up still
//! reads.

use super::StageKind;
use super::batch::get_u64;
use super::worker::RuntimeError;
use crate::bus::local::{CompactSettings, Compacted, LocalLog};
use crate::bus::{Bus, BusError, BusProducer, Record};
use crate::state::keys::reserved::{CHANGELOG_COMMIT, CHANGELOG_END};
use crate::state::{StateRead, StateStore, StoreTree, WriteBatch};

/// Sends a write to the changelog: `1 || value`, or for a delete a
/// tombstone, which compaction drops in time with the key's earlier records
/// (the value `0` it replaced was a value, kept for ever).
pub(super) fn send_change(
    producer: &mut (impl BusProducer + ?Sized),
    changelog: &str,
    partition: u32,
    key: &[u8],
    value: &Option<Vec<u8>>,
) -> Result<(), BusError> {
    match value {
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(1);
            out.extend_from_slice(v);
            producer.send(changelog, partition, key, &out, 0)
        }
        None => producer.send_tombstone(changelog, partition, key, 0),
    }
}

/// The write a changelog record holds: `Some(value)`, or `None` for a
/// delete (a tombstone, or the value `0` of logs written before them);
/// `None` if it is neither.
pub(super) fn change_of(record: &Record) -> Option<Option<Vec<u8>>> {
    if record.tombstone {
        return Some(None);
    }
    match record.value.split_first() {
        Some((1, v)) => Some(Some(v.to_vec())),
        Some((0, _)) => Some(None),
        _ => None,
    }
}

/// Catches the local store up from the changelog: from the start when
/// there is no store (a new machine, a lost disk), from the position it
/// recorded when it is stale (sled is written behind the stage, and the
/// partition may have been owned elsewhere since). Only whole batches are
/// applied (each ends with a [`CHANGELOG_COMMIT`] record); a batch cut by
/// a crash is dropped and its keys rewritten with their committed values,
/// so that compaction, which keeps a key's last record, cannot keep a
/// value of the cut batch.
pub(super) fn catch_up(
    bus: &dyn Bus,
    producer: &mut dyn BusProducer,
    kind: StageKind,
    tree: &StoreTree,
    partition: u32,
) -> Result<(), RuntimeError> {
    let changelog = kind.changelog_topic();
    let recorded = get_u64(tree, CHANGELOG_END)?.unwrap_or(0);
    if recorded >= bus.end_offset(changelog, partition)? {
        return Ok(());
    }
    let cut = apply_whole_batches(bus, changelog, partition, recorded, tree)?;
    if !cut.is_empty() {
        rewrite_cut_batch(bus, producer, changelog, partition, tree, &cut)?;
        eprintln!(
            "{}: partition {partition}: a batch cut by a crash ({} keys) was left out of \
             the changelog catch-up and its keys rewritten",
            kind.name(),
            cut.len()
        );
    }
    tree.flush()?;
    Ok(())
}

/// Applies the changelog from `from`, batch by batch as their commit
/// markers are read. Returns the writes read after the last marker (a batch
/// cut by a crash).
fn apply_whole_batches(
    bus: &dyn Bus,
    changelog: &str,
    partition: u32,
    mut from: u64,
    tree: &StoreTree,
) -> Result<WriteBatch, RuntimeError> {
    // The writes read since the last commit marker.
    let mut open = WriteBatch::new();
    loop {
        let records = bus.read(changelog, partition, from, 4096)?;
        let Some(last) = records.last() else { break };
        from = last.offset + 1;
        for r in &records {
            if r.key == CHANGELOG_COMMIT {
                open.insert(
                    CHANGELOG_END.to_vec(),
                    Some((r.offset + 1).to_be_bytes().to_vec()),
                );
                tree.apply(&open)?;
                open.clear();
                continue;
            }
            let Some(value) = change_of(r) else {
                return Err(RuntimeError::Corrupt(format!(
                    "{changelog}/{partition}@{}",
                    r.offset
                )));
            };
            open.insert(r.key.clone(), value);
        }
    }
    Ok(open)
}

/// A cut batch's keys get their committed values again, ended by a commit
/// marker, and the store records the changelog's new end.
fn rewrite_cut_batch(
    bus: &dyn Bus,
    producer: &mut dyn BusProducer,
    changelog: &'static str,
    partition: u32,
    tree: &StoreTree,
    cut: &WriteBatch,
) -> Result<(), RuntimeError> {
    for key in cut.keys() {
        let value = tree.get(key)?;
        send_change(producer, changelog, partition, key, &value)?;
    }
    producer.send(changelog, partition, CHANGELOG_COMMIT, &[1], 0)?;
    producer.flush()?;
    let repaired_end = bus.end_offset(changelog, partition)?;
    let mut mark = WriteBatch::new();
    mark.insert(
        CHANGELOG_END.to_vec(),
        Some(repaired_end.to_be_bytes().to_vec()),
    );
    tree.apply(&mark)?;
    Ok(())
}

/// Compacts every changelog of a local log (`clearing log compact`), each
/// only up to its last commit marker in the closed segments: a batch a
/// crash cut lies past it, so its writes neither go nor supersede committed
/// ones (docs/reliability.md, "Compacted changelogs"). The reference topics,
/// compacted on Kafka, are left whole: replay reads them at the offsets the
/// decisions recorded (docs/audit.md).
pub fn compact_changelogs(
    log: &LocalLog,
    tombstone_retention: u64,
) -> Result<Vec<(String, Vec<Compacted>)>, BusError> {
    let settings = CompactSettings {
        tombstone_retention,
        batch_end_key: Some(CHANGELOG_COMMIT.to_vec()),
    };
    log.topics()
        .into_iter()
        .filter(|(name, compacted)| *compacted && name.ends_with(".changelog"))
        .map(|(name, _)| {
            let done = log.compact_topic(&name, &settings)?;
            Ok((name, done))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::bus::TopicSpec;

    const KIND: StageKind = StageKind::Validation;

    /// A local log whose segments roll every few records, with the stage's
    /// changelog (compacted, one partition).
    fn log(dir: &std::path::Path) -> Arc<LocalLog> {
        let log = LocalLog::open_with_segment_bytes(dir, 300).unwrap();
        let mut spec = TopicSpec::new(KIND.changelog_topic(), 1);
        spec.compacted = true;
        log.ensure_topic(&spec).unwrap();
        log
    }

    /// Sends a batch's writes, and its commit marker if `commit`.
    fn send(log: &Arc<LocalLog>, writes: &WriteBatch, commit: bool) {
        let mut producer = log.producer().unwrap();
        let changelog = KIND.changelog_topic();
        for (key, value) in writes {
            send_change(producer.as_mut(), changelog, 0, key, value).unwrap();
        }
        if commit {
            producer
                .send(changelog, 0, CHANGELOG_COMMIT, &[1], 0)
                .unwrap();
        }
        producer.flush().unwrap();
    }

    /// Batches of puts, overwrites and deletes over ten keys; the state
    /// they leave.
    fn committed_batches(log: &Arc<LocalLog>) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut state = BTreeMap::new();
        for round in 0u32..40 {
            let mut writes = WriteBatch::new();
            for k in [round % 10, (round * 7 + 3) % 10] {
                let key = format!("k{k}").into_bytes();
                let value = (round % 5 != 4).then(|| format!("v{round}").into_bytes());
                writes.insert(key, value);
            }
            for (key, value) in &writes {
                match value {
                    Some(v) => state.insert(key.clone(), v.clone()),
                    None => state.remove(key),
                };
            }
            send(log, &writes, true);
        }
        state
    }

    /// The state a store restored from scratch from the changelog holds.
    fn restored(log: &Arc<LocalLog>, dir: &std::path::Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let _ = std::fs::remove_dir_all(dir);
        let tree = StoreTree::open(crate::state::Engine::default(), dir, "state").unwrap();
        let mut producer = log.producer().unwrap();
        catch_up(log, producer.as_mut(), KIND, &tree, 0).unwrap();
        tree.scan_prefix(b"k").unwrap().into_iter().collect()
    }

    /// Bytes of the changelog's segment files.
    fn bytes_on_disk(dir: &std::path::Path) -> u64 {
        let partition = dir.join(KIND.changelog_topic()).join("0");
        std::fs::read_dir(partition)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn a_compacted_changelog_is_smaller_and_restores_the_same_state() {
        let (bus_dir, state_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let log = log(bus_dir.path());
        let state = committed_batches(&log);
        assert_eq!(restored(&log, &state_dir.path().join("a")), state);
        let before = bytes_on_disk(bus_dir.path());
        let done = compact_changelogs(&log, 5).unwrap();
        assert!(done[0].1[0].tombstones_dropped > 0, "{done:?}");
        assert!(bytes_on_disk(bus_dir.path()) < before / 2);
        assert_eq!(restored(&log, &state_dir.path().join("b")), state);
        // Reopened from its files, the compacted log reads the same.
        drop(log);
        let log = self::log(bus_dir.path());
        assert_eq!(restored(&log, &state_dir.path().join("c")), state);
    }

    #[test]
    fn a_batch_cut_by_a_crash_stays_out_across_a_compaction() {
        let (bus_dir, state_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let log = log(bus_dir.path());
        let state = committed_batches(&log);
        // The cut batch overwrites and deletes every committed key, over
        // several segments: its writes lie in closed segments too.
        let cut: WriteBatch = (0..10)
            .map(|k| {
                let value = (k % 2 == 0).then(|| b"cut".repeat(20));
                (format!("k{k}").into_bytes(), value)
            })
            .collect();
        send(&log, &cut, false);
        compact_changelogs(&log, 0).unwrap();
        assert_eq!(restored(&log, &state_dir.path().join("a")), state);
        // The catch-up rewrote the cut keys with their committed values:
        // compacted again, the log still restores the committed state.
        compact_changelogs(&log, 0).unwrap();
        assert_eq!(restored(&log, &state_dir.path().join("b")), state);
    }

    #[test]
    fn the_catch_up_reads_old_zero_deletes_and_tombstones_alike() {
        let (bus_dir, state_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let log = log(bus_dir.path());
        let changelog = KIND.changelog_topic();
        let mut producer = log.producer().unwrap();
        for (key, value) in [(b"k1", &[1, 7][..]), (b"k2", &[1, 8]), (b"k3", &[1, 9])] {
            producer.send(changelog, 0, key, value, 0).unwrap();
        }
        producer
            .send(changelog, 0, CHANGELOG_COMMIT, &[1], 0)
            .unwrap();
        // A delete as changelogs wrote it before tombstones, and one now.
        producer.send(changelog, 0, b"k1", &[0], 0).unwrap();
        producer.send_tombstone(changelog, 0, b"k2", 0).unwrap();
        producer
            .send(changelog, 0, CHANGELOG_COMMIT, &[1], 0)
            .unwrap();
        producer.flush().unwrap();
        let state = restored(&log, state_dir.path());
        assert_eq!(state, BTreeMap::from([(b"k3".to_vec(), vec![9])]));
    }
}
