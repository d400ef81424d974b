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
//! Two bounds ([`RewritePolicy`]): files over 8 times the live bytes (the
//! default), and, when asked (`--store-rewrite-growth`), files grown past
//! the last copy's own amplification by a share ([`Baseline`], kept
//! beside the store): a store's floor depends on its keys, so growth past
//! it is dead space whatever the floor.
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
use super::sled_store::{beside, open_db_cached, remove_tree, sled_error};

/// When a store is rewritten at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewritePolicy {
    /// Its files exceed this many times its live keys and values…
    pub amplification: u64,
    /// …or, when set, this many percent more times its live bytes than the
    /// last copy was when made ([`Baseline`]): a store's own amplification
    /// after a copy is its steady floor (sled's page overhead, which
    /// depends on its keys), so growth past it is dead space, whatever the
    /// store's floor is…
    pub growth_pct: Option<u64>,
    /// …and this many bytes: below it the space is not worth an open's copy.
    pub min_bytes: u64,
}

impl RewritePolicy {
    /// A fresh copy is 3.1 to 5.5 times its live bytes when they are small
    /// keys and values like a stage's (sled's page and log overhead;
    /// measured 2026-12-06 on 40,000 keys of 90 bytes, churned stores at 8
    /// to 36 times, and in the five-year time-lapse at 4.6 to 5.5); 8 leaves
    /// a copy alone until it has about doubled. No growth bound by default:
    /// each rewrite copies the whole store, which at a national scale is an
    /// open of minutes (docs/architecture.md, "Retention on the insurer's clock").
    pub const DEFAULT: RewritePolicy = RewritePolicy {
        amplification: 8,
        growth_pct: None,
        min_bytes: 8 << 20,
    };

    /// Never rewrite.
    pub const NEVER: RewritePolicy = RewritePolicy {
        amplification: u64::MAX,
        growth_pct: None,
        min_bytes: u64::MAX,
    };

    pub fn wants(&self, disk_bytes: u64, live_bytes: u64, last_copy: Option<Baseline>) -> bool {
        if disk_bytes <= self.min_bytes {
            return false;
        }
        let amplified = disk_bytes > live_bytes.saturating_mul(self.amplification);
        // The files the last copy's amplification gives today's live bytes,
        // exceeded by the share and by GROWTH_SLACK.
        let grown = match (self.growth_pct, last_copy) {
            (Some(pct), Some(copy)) if copy.live_bytes > 0 => {
                let floor = u128::from(copy.disk_bytes) * u128::from(live_bytes)
                    / u128::from(copy.live_bytes);
                let disk = u128::from(disk_bytes);
                disk * 100 > floor * (100 + u128::from(pct)) && disk > floor + GROWTH_SLACK
            }
            _ => false,
        };
        amplified || grown
    }
}

/// Growth a store's files may have past its copy's floor whatever the share:
/// sled's files grow by whole segments (512 KiB), and an open can start a
/// new one (measured 2026-12-06: a 5.0 MiB copy at 5.5 MiB once reopened).
const GROWTH_SLACK: u128 = 2 << 20;

/// A store's files and live bytes when its last copy was made: its own
/// floor of amplification. Kept beside the store (`<dir>.rewrite.base`);
/// missing or unreadable, only the amplification bound applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    pub disk_bytes: u64,
    pub live_bytes: u64,
}

impl Baseline {
    pub fn read(dir: &Path) -> Option<Baseline> {
        let text = std::fs::read_to_string(beside(dir, BASE)).ok()?;
        let mut words = text.split_whitespace().map(str::parse::<u64>);
        match (words.next(), words.next(), words.next()) {
            (Some(Ok(disk_bytes)), Some(Ok(live_bytes)), None) => Some(Baseline {
                disk_bytes,
                live_bytes,
            }),
            _ => None,
        }
    }

    /// Written whole (a temporary file renamed) and synced: a kill leaves
    /// the previous baseline or none, either of them safe.
    pub fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let (path, tmp) = (beside(dir, BASE), beside(dir, "rewrite.base.tmp"));
        std::fs::File::create(&tmp)
            .and_then(|mut f| {
                use std::io::Write;
                writeln!(f, "{} {}", self.disk_bytes, self.live_bytes)?;
                f.sync_all()
            })
            .map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("renaming {}", tmp.display())))?;
        sync_parent(dir)
    }

    /// Forgets the baseline (a store replaced by an empty one).
    pub fn remove(dir: &Path) -> Result<(), StoreError> {
        let path = beside(dir, BASE);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("removing {}", path.display()))(e))
            }
            _ => Ok(()),
        }
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
const BASE: &str = "rewrite.base";

/// sled's page cache for each side of a copy.
const COPY_CACHE: u64 = 8 << 20;

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
        // Each key is read and written once: a small cache keeps the copy
        // from adding the store's size to the process's memory.
        let from = open_db_cached(dir, COPY_CACHE)?;
        let to = open_db_cached(&copy, COPY_CACHE)?;
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
        growth_pct: None,
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
            growth_pct: None,
            min_bytes: 100,
        };
        assert!(p.wants(401, 100, None));
        assert!(!p.wants(400, 100, None));
        assert!(!p.wants(100, 1, None), "at the floor");
        assert!(p.wants(101, 0, None));
        assert!(!RewritePolicy::NEVER.wants(u64::MAX - 1, 0, None));
    }

    #[test]
    fn growth_is_judged_against_the_last_copys_own_amplification() {
        const MIB: u64 = 1 << 20;
        let p = RewritePolicy {
            amplification: 8,
            growth_pct: Some(10),
            min_bytes: 100,
        };
        let copy = Some(Baseline {
            disk_bytes: 40 * MIB,
            live_bytes: 10 * MIB,
        });
        assert!(!p.wants(44 * MIB, 10 * MIB, copy), "10 % more: not past");
        assert!(p.wants(44 * MIB + 1, 10 * MIB, copy));
        assert!(
            !p.wants(88 * MIB, 20 * MIB, copy),
            "more live keys at the same floor"
        );
        assert!(!p.wants(44 * MIB + 1, 10 * MIB, None), "no copy, no growth");
        let small_copy = Some(Baseline {
            disk_bytes: 4 * MIB,
            live_bytes: MIB,
        });
        assert!(
            !p.wants(6 * MIB, MIB, small_copy),
            "50 % more, but within sled's segments' slack"
        );
        assert!(p.wants(6 * MIB + 1, MIB, small_copy));
        let empty_copy = Some(Baseline {
            disk_bytes: 40 * MIB,
            live_bytes: 0,
        });
        assert!(!p.wants(60 * MIB, 10 * MIB, empty_copy));
        assert!(
            !RewritePolicy::DEFAULT.wants(50 * MIB, 10 * MIB, copy),
            "no growth bound by default"
        );
    }

    #[test]
    fn an_unreadable_baseline_is_none_and_a_written_one_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("validation");
        assert_eq!(Baseline::read(&dir), None);
        std::fs::write(beside(&dir, BASE), "12 x\n").unwrap();
        assert_eq!(Baseline::read(&dir), None);
        std::fs::write(beside(&dir, BASE), "12 3 4\n").unwrap();
        assert_eq!(Baseline::read(&dir), None);
        let b = Baseline {
            disk_bytes: 22_544_383,
            live_bytes: 4_751_114,
        };
        b.write(&dir).unwrap();
        assert_eq!(Baseline::read(&dir), Some(b));
        Baseline::remove(&dir).unwrap();
        Baseline::remove(&dir).unwrap();
        assert_eq!(Baseline::read(&dir), None);
    }

    /// A copy reopened is left alone under a growth bound (sled's files do
    /// not grow past it by being opened), and rewritten again once churn
    /// has grown them past it.
    #[test]
    fn a_copy_is_rewritten_again_by_growth_and_only_by_growth() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("reimbursement");
        let before = contents(&churned(&dir));
        let (store, notes) = SledStore::open_or_rebuild_with(&dir, "meta", EAGER).unwrap();
        let first = notes
            .rewritten
            .clone()
            .unwrap_or_else(|| panic!("not rewritten: {notes:?}"));
        let base = Baseline::read(&dir).unwrap_or_else(|| panic!("no baseline after {first}"));
        assert_eq!(base.disk_bytes, first.disk_bytes_after);
        drop(store);
        let growth = RewritePolicy {
            amplification: u64::MAX,
            growth_pct: Some(10),
            min_bytes: 0,
        };
        for reopen in 0..3 {
            let (store, notes) = SledStore::open_or_rebuild_with(&dir, "meta", growth).unwrap();
            assert_eq!(
                notes.rewritten, None,
                "reopen {reopen}: {} bytes on disk against the copy's {base:?}",
                notes.disk_bytes
            );
            assert_eq!(contents(&store), before);
        }
        // Churn the copy, then put back what it held: the same live bytes.
        {
            let store = SledStore::open(&dir, "meta").unwrap();
            let part = store.tree("p0").unwrap();
            let key = |k: u32| format!("dup/{k:06}").into_bytes();
            for round in 0u8..40 {
                let mut batch = WriteBatch::new();
                for k in (0..20_000).step_by(3) {
                    batch.insert(key(k), Some(vec![round; 80]));
                }
                part.apply(&batch).unwrap();
                part.flush().unwrap();
            }
            // Rewrites alone grow sled's files or not, as its segment
            // cleaning keeps up (a CI run of 2026-12-07 found them the
            // same size after the 40 rounds): 8 MB of keys written and
            // deleted grow them whatever the timing, leaving the live
            // bytes as they were.
            let pad = |k: u32| format!("pad/{k:06}").into_bytes();
            for value in [Some(vec![9; 400]), None] {
                let mut batch = WriteBatch::new();
                for k in 0..20_000 {
                    batch.insert(pad(k), value.clone());
                }
                part.apply(&batch).unwrap();
                part.flush().unwrap();
            }
            let mut batch = WriteBatch::new();
            for k in (0..20_000).step_by(3) {
                let held = before.iter().find(|(held, _)| *held == key(k));
                batch.insert(key(k), held.map(|(_, v)| v.clone()));
            }
            part.apply(&batch).unwrap();
            part.flush().unwrap();
        }
        let (store, notes) = SledStore::open_or_rebuild_with(&dir, "meta", growth).unwrap();
        let again = notes
            .rewritten
            .clone()
            .unwrap_or_else(|| panic!("churned copy not rewritten: {notes:?}, copy {base:?}"));
        assert!(again.disk_bytes_after < again.disk_bytes_before, "{again}");
        assert_eq!(contents(&store), before);
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
