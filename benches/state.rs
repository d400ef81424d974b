//! A stage partition's state read through its mirror (state/mirror.rs): a
//! key never written, the duplicate check's usual case, which the key
//! filter answers in memory, against the same read from sled's tree; and a
//! key held. Figures in docs/performance.md. Run: `cargo bench --bench state`.

use std::hint::black_box;
use std::sync::Arc;

use clearing_pipeline::state::{Mirror, Persister, SledStore, StateRead, StateStore, WriteBatch};
use criterion::{Criterion, criterion_group, criterion_main};

/// A duplicate-check key of the stage's shape.
fn key(n: u64) -> Vec<u8> {
    format!("dup/B{:043}/{:08}-{n:09}", n * 7919, n % 100_000_000).into_bytes()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SledStore::open(&dir.path().join("validation"), "meta").expect("sled");
    let tree = db.tree("p0").expect("tree");
    // 200,000 keys held, written in batches as the persister writes them.
    for chunk in (0..200_000u64).collect::<Vec<_>>().chunks(20_000) {
        let batch: WriteBatch = chunk
            .iter()
            .map(|n| (key(*n), Some(b"2025-01-20".to_vec())))
            .collect();
        tree.apply(&batch).expect("apply");
    }
    tree.flush().expect("flush");
    let persister = Arc::new(Persister::start("bench").expect("persister"));
    let mirror = Mirror::open(db.tree("p0").expect("tree"), persister).expect("mirror");
    let mut group = c.benchmark_group("state");
    let mut n = 1_000_000u64;
    group.bench_function("get_never_written/mirror", |b| {
        b.iter(|| {
            n += 1;
            mirror.get(black_box(&key(n))).expect("get")
        })
    });
    group.bench_function("get_never_written/sled", |b| {
        b.iter(|| {
            n += 1;
            tree.get(black_box(&key(n))).expect("get")
        })
    });
    let mut held = 0u64;
    group.bench_function("get_held/mirror", |b| {
        b.iter(|| {
            held = (held + 7919) % 200_000;
            mirror.get(black_box(&key(held))).expect("get")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
