//! A stage partition's state read through its mirror (state/mirror.rs): a
//! key never written, the duplicate check's usual case, which the key
//! filter answers in memory, against the same read from the store; a key
//! held; and a batch of new keys written, the persister's cost; for each
//! engine (state/tree.rs). Figures in docs/performance.md. Run: `cargo
//! bench --bench state`.

use std::hint::black_box;
use std::sync::Arc;

use clearing_pipeline::state::{
    Engine, Mirror, Persister, StateRead, StateStore, StoreTree, WriteBatch,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// A duplicate-check key of the stage's shape.
fn key(n: u64) -> Vec<u8> {
    format!("dup/B{:043}/{:08}-{n:09}", n * 7919, n % 100_000_000).into_bytes()
}

/// A store of `engine` holding 200,000 keys, written in batches as the
/// persister writes them.
fn filled(engine: Engine, dir: &std::path::Path) -> StoreTree {
    let db = StoreTree::open(engine, &dir.join(engine.name()), "meta").expect("store");
    let tree = db.tree("p0").expect("tree");
    for chunk in (0..200_000u64).collect::<Vec<_>>().chunks(20_000) {
        let batch: WriteBatch = chunk
            .iter()
            .map(|n| (key(*n), Some(b"2025-01-20".to_vec())))
            .collect();
        tree.apply(&batch).expect("apply");
    }
    tree.flush().expect("flush");
    tree
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("state");
    for engine in [Engine::Log, Engine::Sled] {
        let tree = filled(engine, dir.path());
        let persister = Arc::new(Persister::start("bench").expect("persister"));
        let mirror = Mirror::open(tree.clone_handle(), persister).expect("mirror");
        let name = engine.name();
        let mut n = 1_000_000u64;
        group.bench_function(format!("get_never_written/mirror-over-{name}"), |b| {
            b.iter(|| {
                n += 1;
                mirror.get(black_box(&key(n))).expect("get")
            })
        });
        group.bench_function(format!("get_never_written/{name}"), |b| {
            b.iter(|| {
                n += 1;
                tree.get(black_box(&key(n))).expect("get")
            })
        });
        let mut held = 0u64;
        group.bench_function(format!("get_held/{name}"), |b| {
            b.iter(|| {
                held = (held + 7919) % 200_000;
                tree.get(black_box(&key(held))).expect("get")
            })
        });
        // What the persister pays for a claim's new keys: a batch of 100
        // keys never written before (per batch; divide by 100 for a key).
        let mut next = 10_000_000u64;
        group.bench_function(format!("insert_100_new_keys/{name}"), |b| {
            b.iter(|| {
                let batch: WriteBatch = (next..next + 100)
                    .map(|n| (key(n), Some(b"2025-01-20".to_vec())))
                    .collect();
                next += 100;
                tree.apply(black_box(&batch)).expect("apply")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
