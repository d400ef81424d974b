//! The stages' stores after the run: keys by kind, bytes.

use std::collections::BTreeMap;
use std::path::Path;

use clearing_pipeline::runtime::StageKind;
use clearing_pipeline::state::{Engine, StateStore, StoreTree};

use super::report::StateInventory;
use super::sample;

/// Each stage's file slack (in [`StageKind::DECIDING`] order): what its
/// engine's files may hold beyond the content whatever the store's size, for
/// each partition's tree and the store's own (`meta`).
pub fn file_slack_bytes(state_dir: &Path, partitions: u32) -> Vec<f64> {
    StageKind::DECIDING
        .iter()
        .map(|kind| {
            let engine = Engine::of_store(&state_dir.join(kind.name()));
            (engine.file_slack_bytes() * (u64::from(partitions) + 1)) as f64
        })
        .collect()
}

/// Keys and bytes of each stage's store.
pub fn inventory(state_dir: &Path, partitions: u32) -> Vec<StateInventory> {
    StageKind::DECIDING
        .iter()
        .map(|kind| {
            let dir = state_dir.join(kind.name());
            let (by_kind, bytes) = count_keys(&dir, partitions);
            StateInventory {
                stage: kind.name(),
                disk_bytes: sample::dir_bytes(&dir),
                keys: by_kind.values().sum(),
                keys_by_kind: by_kind.into_iter().collect(),
                key_value_bytes: bytes,
            }
        })
        .collect()
}

/// Keys by kind and key+value bytes of the store in `dir`, if it opens.
fn count_keys(dir: &Path, partitions: u32) -> (BTreeMap<String, u64>, u64) {
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    if !dir.exists() {
        return (by_kind, bytes);
    }
    let Ok(db) = StoreTree::open(Engine::of_store(dir), dir, "meta") else {
        return (by_kind, bytes);
    };
    for p in 0..partitions {
        let Ok(tree) = db.tree(&format!("p{p}")) else {
            continue;
        };
        for (key, value) in tree.scan_prefix(b"").unwrap_or_default() {
            *by_kind.entry(key_kind(&key)).or_default() += 1;
            bytes += (key.len() + value.len()) as u64;
        }
    }
    (by_kind, bytes)
}

/// The prefix before the first '/'; the runtime's own keys (a control
/// byte first: `\0…` offsets, `\1…` upstream marks, `\2exp` the expiry
/// index, state::keys::reserved) as `\<byte><name>`.
fn key_kind(key: &[u8]) -> String {
    let kind = |rest: &[u8]| {
        String::from_utf8_lossy(rest)
            .split('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    match key.first() {
        Some(&control) if control < 0x20 => format!("\\{control}{}", kind(&key[1..])),
        _ => kind(key),
    }
}
