//! Giving back the space sled 0.34 keeps: a store whose files hold many
//! times its live keys and values is copied into a fresh database when it is
//! opened, and the copy takes its place.
//!
//! sled writes a log of pages and reclaims a segment only once enough of it
//! is dead. With retention (`state::expiry`) what a store holds is flat, but
//! its files settle far above it: 12 times the live bytes for
//! reimbursement's counters, rewritten by every claim (docs/performance.md,
//! "Five years with retention"). sled 0.34 has no setting for it (its `Mode`
//! and cleanup thresholds are read by nothing), so the store is rewritten.
//!
//! The rewrite runs at open, before the stage reads a key: it needs the
//! store to itself, and an open already reads every key ([`super::SledStore::open_or_rebuild`]),
//! which is what measuring the live bytes costs. A process that runs for
//! months keeps sled's own amplification until it is next started (a
//! deployment); docs/architecture.md, "Retention on the insurer's clock".
//!
//! The swap survives a kill or a power loss at any point. The copy is made
//! beside the store (`<dir>.rewrite`), flushed, and marked complete
//! (`<dir>.rewrite.done`, synced) before the store is moved aside
//! (`<dir>.rewrite.old`) and the copy renamed into its place.
//! [`recover`], run before every open, finishes a marked swap and throws
//! away an unmarked copy: the store is either the old one or the whole copy,
//! never a mix, and both hold the same keys.

use std::path::Path;

use super::StoreError;
use super::sled_store::{beside, open_db, remove_tree, sled_error};

/// When a store is rewritten at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewritePolicy {
    /// Its files exceed this many times its live keys and values…
    pub amplification: u64,
    /// …and this many bytes: below it the space is not worth an open's copy.
    pub min_bytes: u64,
}

impl RewritePolicy {
    /// A fresh copy is 3.1 to 4.3 times its live bytes when they are small
    /// keys and values like a stage's (sled's page and log overhead;
    /// measured 2026-12-06 on 40,000 keys of 90 bytes, churned stores at 8
    /// to 36 times); 8 leaves a copy alone until it has about doubled.
    pub const DEFAULT: RewritePolicy = RewritePolicy {
        amplification: 8,
        min_bytes: 8 << 20,
    };

    /// Never rewrite.
    pub const NEVER: RewritePolicy = RewritePolicy {
        amplification: u64::MAX,
        min_bytes: u64::MAX,
    };

    pub fn wants(&self, disk_bytes: u64, live_bytes: u64) -> bool {
        disk_bytes > self.min_bytes && disk_bytes > live_bytes.saturating_mul(self.amplification)
    }
}

/// A store rewritten at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// sled's files before and after.
    pub disk_bytes_before: u64,
    pub disk_bytes_after: u64,
    /// The live keys and values copied.
    pub live_bytes: u64,
}

impl std::fmt::Display for Rewritten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "state store rewritten to reclaim sled's dead space: {} bytes on disk for {} live, now {}",
            self.disk_bytes_before, self.live_bytes, self.disk_bytes_after
        )
    }
}

const COPY: &str = "rewrite";
const DONE: &str = "rewrite.done";
const OLD: &str = "rewrite.old";

/// Keys per batch written into the copy: bounded memory for any store size.
const CHUNK: usize = 4096;

fn io(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

/// Makes a rename or a file creation in `dir`'s parent durable.
fn sync_parent(dir: &Path) -> Result<(), StoreError> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", parent.display())))
}

/// Finishes a swap that was marked complete, or throws away a copy that was
/// not. Run before opening the store; a no-op when no rewrite was under way.
pub fn recover(dir: &Path) -> Result<(), StoreError> {
    let (copy, done, old) = (beside(dir, COPY), beside(dir, DONE), beside(dir, OLD));
    if done.exists() {
        if copy.exists() {
            swap(dir)?;
        } else {
            // Swapped; only the tidying was left.
            remove_tree(&old).map_err(io(format!("removing {}", old.display())))?;
            std::fs::remove_file(&done).map_err(io(format!("removing {}", done.display())))?;
        }
    } else {
        remove_tree(&copy).map_err(io(format!("removing {}", copy.display())))?;
        if !dir.exists() && old.exists() {
            // Not written by this module's order of steps; kept safe anyway.
            std::fs::rename(&old, dir).map_err(io(format!("restoring {}", dir.display())))?;
        }
    }
    Ok(())
}

/// Copies every tree of the store in `dir` into a fresh database and puts
/// it in the store's place. Nothing may have the store open.
pub fn rewrite(dir: &Path) -> Result<(), StoreError> {
    let (copy, done) = (beside(dir, COPY), beside(dir, DONE));
    remove_tree(&copy).map_err(io(format!("removing {}", copy.display())))?;
    {
        let from = open_db(dir)?;
        let to = open_db(&copy)?;
        for name in from.tree_names() {
            let source = from
                .open_tree(&name)
                .map_err(|e| sled_error(dir, "reading", e))?;
            let target = to
                .open_tree(&name)
                .map_err(|e| sled_error(&copy, "writing", e))?;
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for item in source.iter() {
                let (key, value) = item.map_err(|e| sled_error(dir, "reading", e))?;
                batch.insert(key, value);
                in_batch += 1;
                if in_batch == CHUNK {
                    target
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(|e| sled_error(&copy, "writing", e))?;
                    in_batch = 0;
                }
            }
            target
                .apply_batch(batch)
                .map_err(|e| sled_error(&copy, "writing", e))?;
        }
        to.flush().map_err(|e| sled_error(&copy, "flushing", e))?;
    }
    std::fs::File::create(&done)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("marking {}", done.display())))?;
    sync_parent(dir)?;
    swap(dir)
}

/// The store aside, the complete copy in its place, the old one removed.
fn swap(dir: &Path) -> Result<(), StoreError> {
    let (copy, done, old) = (beside(dir, COPY), beside(dir, DONE), beside(dir, OLD));
    if dir.exists() {
        remove_tree(&old).map_err(io(format!("removing {}", old.display())))?;
        std::fs::rename(dir, &old).map_err(io(format!("moving {} aside", dir.display())))?;
    }
    std::fs::rename(&copy, dir).map_err(io(format!("renaming {}", copy.display())))?;
    sync_parent(dir)?;
    remove_tree(&old).map_err(io(format!("removing {}", old.display())))?;
    std::fs::remove_file(&done).map_err(io(format!("removing {}", done.display())))?;
    sync_parent(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::sled_store::copy_tree;
    use crate::state::{SledStore, StateRead, StateStore, WriteBatch};

    /// A store whose keys were written, a third of them deleted and written
    /// again many times: sled's files grow to many times the live bytes.
    fn churned(dir: &Path) -> SledStore {
        let store = SledStore::open(dir, "meta").unwrap();
        let part = store.tree("p0").unwrap();
        let key = |k: u32| format!("dup/{k:06}").into_bytes();
        let mut batch = WriteBatch::new();
        for k in 0..20_000 {
            batch.insert(key(k), Some(vec![7; 80]));
        }
        part.apply(&batch).unwrap();
        for round in 0u8..40 {
            let mut batch = WriteBatch::new();
            for k in (0..20_000).step_by(3) {
                batch.insert(key(k), (round % 2 == 0).then(|| vec![round; 80]));
            }
            part.apply(&batch).unwrap();
            part.flush().unwrap();
        }
        let mut meta = WriteBatch::new();
        meta.insert(b"offset".to_vec(), Some(b"42".to_vec()));
        store.apply(&meta).unwrap();
        store.flush().unwrap();
        store
    }

    fn written_once(dir: &Path, keys: u32) -> SledStore {
        let store = SledStore::open(dir, "meta").unwrap();
        let part = store.tree("p0").unwrap();
        let mut batch = WriteBatch::new();
        for k in 0..keys {
            batch.insert(format!("rights/{k:06}").into_bytes(), Some(vec![1; 300]));
        }
        part.apply(&batch).unwrap();
        part.flush().unwrap();
        store
    }

    fn contents(store: &SledStore) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut all = store.scan_prefix(b"").unwrap();
        all.extend(store.tree("p0").unwrap().scan_prefix(b"").unwrap());
        all
    }

    /// Eager enough for any churned store: sled's own cleaner, running in
    /// the background, leaves it at 6 to 36 times its live bytes by timing.
    const EAGER: RewritePolicy = RewritePolicy {
        amplification: 2,
        min_bytes: 0,
    };

    #[test]
    fn a_churned_store_is_rewritten_at_open_with_the_same_keys_and_fewer_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("reimbursement");
        let before = contents(&churned(&dir));
        let (store, notes) = SledStore::open_or_rebuild_with(&dir, "meta", EAGER).unwrap();
        let rewritten = notes
            .rewritten
            .clone()
            .unwrap_or_else(|| panic!("not rewritten: {notes:?}"));
        assert!(
            rewritten.disk_bytes_after < rewritten.disk_bytes_before
                && rewritten.disk_bytes_after <= 5 * rewritten.live_bytes,
            "{rewritten}"
        );
        assert_eq!(contents(&store), before);
        assert_eq!(store.get(b"offset").unwrap(), Some(b"42".to_vec()));
        drop(store);
        for leftover in [COPY, DONE, OLD] {
            assert!(!beside(&dir, leftover).exists(), "{leftover} left behind");
        }
        // The copy is within the default policy: opened again, it is left as it is.
        let (store, notes) = SledStore::open_or_rebuild_with(
            &dir,
            "meta",
            RewritePolicy {
                min_bytes: 0,
                ..RewritePolicy::DEFAULT
            },
        )
        .unwrap();
        assert_eq!(notes.rewritten, None);
        assert_eq!(contents(&store), before);
    }

    #[test]
    fn a_store_written_once_is_not_touched() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("entitlement");
        drop(written_once(&dir, 20_000));
        let policy = RewritePolicy {
            min_bytes: 0,
            ..RewritePolicy::DEFAULT
        };
        let (_, notes) = SledStore::open_or_rebuild_with(&dir, "meta", policy).unwrap();
        assert_eq!(notes.rewritten, None);
    }

    #[test]
    fn the_policy_needs_both_the_ratio_and_the_size() {
        let p = RewritePolicy {
            amplification: 4,
            min_bytes: 100,
        };
        assert!(p.wants(401, 100));
        assert!(!p.wants(400, 100));
        assert!(!p.wants(100, 1), "at the floor");
        assert!(p.wants(101, 0));
        assert!(!RewritePolicy::NEVER.wants(u64::MAX - 1, 0));
    }

    /// A kill at each step of the swap: the next open finds the old store or
    /// the whole copy, with the same keys, and nothing left beside it.
    #[test]
    fn a_kill_at_any_step_of_the_swap_leaves_one_whole_store() {
        for step in 0..5 {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("validation");
            let before = contents(&written_once(&dir, 2000));
            let (copy, done, old) = (beside(&dir, COPY), beside(&dir, DONE), beside(&dir, OLD));
            // A stand-in for the fresh copy (the same keys), then the swap's
            // steps in `rewrite`'s order, stopped at `step`.
            copy_tree(&dir, &copy).unwrap();
            if step >= 1 {
                std::fs::File::create(&done).unwrap();
            }
            if step >= 2 {
                std::fs::rename(&dir, &old).unwrap();
            }
            if step >= 3 {
                std::fs::rename(&copy, &dir).unwrap();
            }
            if step >= 4 {
                std::fs::remove_dir_all(&old).unwrap();
            }
            let (store, _) = SledStore::open_or_rebuild_with(&dir, "meta", RewritePolicy::NEVER)
                .unwrap_or_else(|e| panic!("step {step}: {e}"));
            assert_eq!(contents(&store), before, "step {step}");
            for leftover in [&copy, &done, &old] {
                assert!(
                    !leftover.exists(),
                    "step {step}: {} left",
                    leftover.display()
                );
            }
        }
    }
}
