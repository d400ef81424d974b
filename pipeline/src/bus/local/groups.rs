//! Consumer groups' committed offsets: one JSON file per group in
//! `_groups/`, held in memory between writes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::files::note_created;
use super::{LocalLog, io, lock};
use crate::bus::BusError;

/// How often a group's offsets file is rewritten while its consumers
/// commit. The offsets are informational (a stage seeks to the cursor in
/// its own state), and rewriting the file at every batch (create, write,
/// rename) was a visible share of the pipeline's CPU (docs/performance.md,
/// "Kept, and what each gave").
pub(super) const GROUP_WRITE_EVERY: Duration = Duration::from_secs(1);

pub(super) struct GroupOffsets {
    pub(super) offsets: BTreeMap<String, u64>,
    /// When the file was last written, if it has been by this process.
    written: Option<Instant>,
    /// Commits not yet in the file.
    dirty: bool,
}

impl LocalLog {
    fn group_path(&self, group: &str) -> PathBuf {
        self.dir.join("_groups").join(format!("{group}.json"))
    }

    /// Calls `with` on a group's offsets, read from its file on first use.
    /// They are informational (a stage seeks to the cursor in its own
    /// state), so they are written without an fsync and a file a power loss
    /// left empty reads as no offsets.
    pub(super) fn with_group<T>(
        &self,
        group: &str,
        with: impl FnOnce(&mut GroupOffsets) -> T,
    ) -> Result<T, BusError> {
        let mut groups = lock(&self.groups);
        if !groups.contains_key(group) {
            let offsets = match fs::read_to_string(self.group_path(group)) {
                Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => return Err(io(format!("group {group}"))(e)),
            };
            groups.insert(
                group.to_string(),
                GroupOffsets {
                    offsets,
                    written: None,
                    dirty: false,
                },
            );
        }
        let entry = groups
            .get_mut(group)
            .ok_or_else(|| BusError::Corrupt(format!("group {group}")))?;
        Ok(with(entry))
    }

    /// Records commits; the file follows every [`GROUP_WRITE_EVERY`], or
    /// now with `write_now`.
    pub(super) fn commit_group(
        &self,
        group: &str,
        offsets: &[(String, u32, u64)],
        write_now: bool,
    ) -> Result<(), BusError> {
        // Written under the lock: a later snapshot never lands first.
        self.with_group(group, |g| {
            for (topic, partition, offset) in offsets {
                g.offsets.insert(group_key(topic, *partition), *offset);
            }
            g.dirty |= !offsets.is_empty();
            if g.dirty
                && (write_now || g.written.is_none_or(|at| at.elapsed() >= GROUP_WRITE_EVERY))
            {
                self.write_group(group, &g.offsets)?;
                g.written = Some(Instant::now());
                g.dirty = false;
            }
            Ok(())
        })?
    }

    fn write_group(&self, group: &str, offsets: &BTreeMap<String, u64>) -> Result<(), BusError> {
        let path = self.group_path(group);
        let tmp = path.with_extension("tmp");
        let text =
            serde_json::to_vec_pretty(offsets).map_err(|e| BusError::Corrupt(e.to_string()))?;
        let mut file = File::create(&tmp).map_err(io(tmp.display().to_string()))?;
        file.write_all(&text)
            .map_err(io(tmp.display().to_string()))?;
        fs::rename(&tmp, &path).map_err(io(path.display().to_string()))?;
        note_created(self.journal.as_deref(), &path)
    }
}

pub(super) fn group_key(topic: &str, partition: u32) -> String {
    format!("{topic}/{partition}")
}
