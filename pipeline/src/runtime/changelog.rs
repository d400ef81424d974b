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
use crate::state::{SledStore, StateRead, StateStore, WriteBatch};

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
    tree: &SledStore,
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
    tree: &SledStore,
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
    tree: &SledStore,
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
