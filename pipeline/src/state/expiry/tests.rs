use super::*;
use crate::state::{MemStore, StateRead, StateStore};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// The keys `store` holds under `prefix`, in order.
fn keys_under(store: &MemStore, prefix: &[u8]) -> Vec<Vec<u8>> {
    (store.scan_prefix(prefix).unwrap().into_iter())
        .map(|(key, _)| key)
        .collect()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

#[test]
fn a_key_lives_until_the_clock_reaches_its_day() {
    let store = MemStore::default();
    let mut txn = StateTxn::new(&store);
    advance(&mut txn, date("2025-01-01"), u64::MAX).unwrap();
    txn.put(b"dup/a".to_vec(), b"x".to_vec());
    expire_on(&mut txn, b"dup/a", date("2025-01-03")).unwrap();
    assert_eq!(
        advance(&mut txn, date("2025-01-02"), u64::MAX)
            .unwrap()
            .keys,
        0
    );
    assert!(txn.get(b"dup/a").unwrap().is_some());
    // A late input does not move the clock back.
    assert_eq!(
        advance(&mut txn, date("2024-06-01"), u64::MAX)
            .unwrap()
            .days,
        0
    );
    let swept = advance(&mut txn, date("2025-01-03"), u64::MAX).unwrap();
    assert_eq!(swept.keys, 1);
    assert_eq!(txn.get(b"dup/a").unwrap(), None);
    // Nothing of the index is left behind but the clock.
    store.apply(&txn.into_writes()).unwrap();
    let left = store.scan_prefix(b"").unwrap();
    assert_eq!(
        left,
        vec![(NEXT.to_vec(), b"2025-01-04".to_vec())],
        "{left:?}"
    );
}

#[test]
fn a_day_already_passed_is_swept_by_the_next_input() {
    let store = MemStore::default();
    let mut txn = StateTxn::new(&store);
    advance(&mut txn, date("2025-03-10"), u64::MAX).unwrap();
    txn.put(b"k".to_vec(), vec![1]);
    expire_on(&mut txn, b"k", date("2025-01-01")).unwrap();
    assert_eq!(
        advance(&mut txn, date("2025-03-10"), u64::MAX)
            .unwrap()
            .keys,
        0
    );
    assert_eq!(
        advance(&mut txn, date("2025-03-11"), u64::MAX)
            .unwrap()
            .keys,
        1
    );
    assert_eq!(txn.get(b"k").unwrap(), None);
}

#[test]
fn a_day_of_many_keys_is_swept_a_share_per_input() {
    let store = MemStore::default();
    let mut txn = StateTxn::new(&store);
    advance(&mut txn, date("2025-01-01"), 4).unwrap();
    for n in 0..10 {
        let key = format!("k/{n}").into_bytes();
        txn.put(key.clone(), vec![1]);
        expire_on(&mut txn, &key, date("2025-02-01")).unwrap();
    }
    let left = |txn: &StateTxn<'_>| {
        (0..10)
            .filter(|n| txn.get(format!("k/{n}").as_bytes()).unwrap().is_some())
            .count()
    };
    assert_eq!(advance(&mut txn, date("2025-02-01"), 4).unwrap().keys, 4);
    assert_eq!(left(&txn), 6);
    // A key scheduled meanwhile on the day being swept joins it.
    txn.put(b"late".to_vec(), vec![1]);
    expire_on(&mut txn, b"late", date("2025-01-15")).unwrap();
    assert_eq!(
        advance(&mut txn, date("2025-02-01"), 4).unwrap(),
        Swept { days: 0, keys: 4 }
    );
    assert_eq!(
        advance(&mut txn, date("2025-02-02"), 4).unwrap(),
        Swept { days: 2, keys: 3 }
    );
    assert_eq!((left(&txn), txn.get(b"late").unwrap()), (0, None));
    store.apply(&txn.into_writes()).unwrap();
    assert_eq!(
        store.scan_prefix(b"").unwrap(),
        vec![(NEXT.to_vec(), b"2025-02-03".to_vec())]
    );
}

proptest! {
    /// With a budget per input, no key goes before its day, no input
    /// deletes more than the budget, and the backlog clears.
    #[test]
    fn a_bounded_sweep_is_never_early_and_catches_up(
        steps in proptest::collection::vec((0u64..40, 0u64..30), 1..60),
        budget in 1u64..5,
    ) {
        let start = date("2025-01-01");
        let store = MemStore::default();
        let mut txn = StateTxn::new(&store);
        let mut due: std::collections::BTreeMap<Vec<u8>, NaiveDate> = std::collections::BTreeMap::new();
        let mut clock: Option<NaiveDate> = None;
        for (n, (at, ttl)) in steps.into_iter().enumerate() {
            let today = start + chrono::Days::new(at);
            let before: Vec<Vec<u8>> = due.keys().filter(|k| txn.get(k).unwrap().is_some()).cloned().collect();
            let swept = advance(&mut txn, today, budget).unwrap();
            prop_assert!(swept.keys <= budget);
            let now = clock.map_or(today, |c: NaiveDate| c.max(today));
            clock = Some(now);
            for key in before {
                if txn.get(&key).unwrap().is_none() {
                    prop_assert!(due[&key] <= now, "deleted before its day");
                }
            }
            let key = format!("k/{n}").into_bytes();
            txn.put(key.clone(), vec![1]);
            let on = today + chrono::Days::new(ttl);
            expire_on(&mut txn, &key, on).unwrap();
            due.insert(key, on);
        }
        let end = clock.unwrap() + chrono::Days::new(100);
        for _ in 0..due.len() {
            advance(&mut txn, end, budget).unwrap();
        }
        for key in due.keys() {
            prop_assert!(txn.get(key).unwrap().is_none());
        }
    }


    /// Whatever the order inputs arrive in, a key is present exactly
    /// while the clock (the latest date seen) is before the day it was
    /// scheduled on, or, scheduled on a day already passed, the day after
    /// the clock then; and the index empties as the clock passes.
    #[test]
    fn keys_live_exactly_until_their_day(
        steps in proptest::collection::vec((0u64..60, 0u64..90), 1..80)
    ) {
        let start = date("2025-01-01");
        let store = MemStore::default();
        let mut txn = StateTxn::new(&store);
        let mut clock: Option<NaiveDate> = None;
        let mut due = std::collections::BTreeMap::new();
        for (n, (at, ttl)) in steps.into_iter().enumerate() {
            let today = start + chrono::Days::new(at);
            advance(&mut txn, today, u64::MAX).unwrap();
            let now = clock.map_or(today, |c: NaiveDate| c.max(today));
            clock = Some(now);
            let key = format!("k/{n}").into_bytes();
            let on = today + chrono::Days::new(ttl);
            txn.put(key.clone(), vec![1]);
            expire_on(&mut txn, &key, on).unwrap();
            due.insert(key, on.max(now.succ_opt().unwrap()));
            for (key, day) in &due {
                prop_assert_eq!(txn.get(key).unwrap().is_some(), *day > now);
            }
        }
        let end = clock.unwrap() + chrono::Days::new(200);
        advance(&mut txn, end, u64::MAX).unwrap();
        store.apply(&txn.into_writes()).unwrap();
        prop_assert_eq!(store.scan_prefix(b"").unwrap().len(), 1);
    }
}

/// The scheduling of the layout before 2026-12-07 (one index entry per
/// key), as a store upgraded in place holds it.
fn expire_on_before_chunks(state: &mut StateTxn<'_>, key: &[u8], on: NaiveDate) {
    let day = match next_day(state).unwrap() {
        Some(next) => on.max(next),
        None => on,
    };
    let count_key = old_day_key(day);
    let n = state.get_i64(&count_key).unwrap();
    state.put(old_item_key(day, n), key.to_vec());
    state.put_i64(count_key, n + 1);
}

/// What the index must do, in the plainest terms: keys by day in the order
/// scheduled, a day's swept from its last, a budget per move of the clock.
#[derive(Default)]
struct Model {
    next: Option<NaiveDate>,
    days: BTreeMap<NaiveDate, Vec<Vec<u8>>>,
}

impl Model {
    fn schedule(&mut self, key: Vec<u8>, on: NaiveDate) {
        let day = self.next.map_or(on, |next| on.max(next));
        self.days.entry(day).or_default().push(key);
    }

    fn advance(&mut self, today: NaiveDate, budget: u64) -> (u32, BTreeSet<Vec<u8>>) {
        let mut deleted = BTreeSet::new();
        let Some(mut day) = self.next else {
            self.next = today.succ_opt();
            return (0, deleted);
        };
        let mut days = 0;
        while day <= today && (deleted.len() as u64) < budget {
            let keys = self.days.entry(day).or_default();
            while (deleted.len() as u64) < budget
                && let Some(key) = keys.pop()
            {
                deleted.insert(key);
            }
            if !keys.is_empty() {
                break;
            }
            self.days.remove(&day);
            days += 1;
            day = day.succ_opt().unwrap();
        }
        self.next = Some(day);
        (days, deleted)
    }
}

/// Runs schedulings and moves of the clock against the index and the model
/// side by side, checking each move's deletions as they are made.
struct Harness<'s> {
    txn: StateTxn<'s>,
    model: Model,
    due: BTreeMap<Vec<u8>, NaiveDate>,
    deleted: BTreeSet<Vec<u8>>,
    clock: Option<NaiveDate>,
}

impl<'s> Harness<'s> {
    fn new(store: &'s MemStore) -> Harness<'s> {
        Harness {
            txn: StateTxn::new(store),
            model: Model::default(),
            due: BTreeMap::new(),
            deleted: BTreeSet::new(),
            clock: None,
        }
    }

    fn schedule(&mut self, key: &[u8], on: NaiveDate, before_chunks: bool) {
        self.txn.put(key.to_vec(), vec![1]);
        if before_chunks {
            expire_on_before_chunks(&mut self.txn, key, on);
        } else {
            expire_on(&mut self.txn, key, on).unwrap();
        }
        self.model.schedule(key.to_vec(), on);
        assert!(
            self.due.insert(key.to_vec(), on).is_none(),
            "scheduled once"
        );
    }

    fn advance(&mut self, today: NaiveDate, budget: u64) {
        let mut step = StateTxn::new(&self.txn);
        let swept = advance(&mut step, today, budget).unwrap();
        let writes = step.into_writes();
        let now = self.clock.map_or(today, |clock| clock.max(today));
        self.clock = Some(now);
        let deleted: BTreeSet<Vec<u8>> = writes
            .iter()
            .filter(|(key, value)| value.is_none() && !key.starts_with(b"\x02"))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &deleted {
            assert!(
                self.txn.get(key).unwrap().is_some(),
                "{key:?} deleted twice"
            );
            assert!(self.due[key] <= now, "{key:?} deleted before its day");
            self.deleted.insert(key.clone());
        }
        let (days, expected) = self.model.advance(today, budget);
        assert_eq!(deleted, expected, "the keys due, in the order due");
        assert_eq!(
            swept,
            Swept {
                days,
                keys: deleted.len() as u64
            }
        );
        assert!(swept.keys <= budget);
        self.txn.merge(writes);
    }

    /// Sweeps everything left; then every key is gone, each deleted once,
    /// and of the index only the clock is left.
    fn finish(mut self, store: &MemStore, budget: u64) {
        let end = self.clock.unwrap_or(date("2025-01-01")) + chrono::Days::new(400);
        for _ in 0..=self.due.len() {
            self.advance(end, budget);
        }
        assert!(self.model.days.is_empty());
        assert_eq!(self.deleted.len(), self.due.len());
        store.apply(&self.txn.into_writes()).unwrap();
        let left = keys_under(store, b"");
        assert_eq!(left, vec![NEXT.to_vec()]);
    }
}

#[test]
fn scheduling_a_day_s_keys_writes_a_chunk_per_chunk_keys() {
    let store = MemStore::default();
    let mut txn = StateTxn::new(&store);
    advance(&mut txn, date("2025-01-01"), u64::MAX).unwrap();
    let n = 3 * CHUNK_KEYS + 5;
    for i in 0..n {
        expire_on(&mut txn, format!("dup/{i}").as_bytes(), date("2027-10-01")).unwrap();
    }
    store.apply(&txn.into_writes()).unwrap();
    let index = keys_under(&store, b"\x02exc/");
    // The count and four chunks, not one entry per key.
    assert_eq!(index.len(), 1 + 4, "{index:?}");
    assert!(store.scan_prefix(b"\x02exp/2").unwrap().is_empty());
    let last = store
        .get(&chunk_key(date("2027-10-01"), 3))
        .unwrap()
        .unwrap();
    let keys: Vec<&[u8]> = entries(b"last", &last)
        .unwrap()
        .into_iter()
        .map(|(_, key)| key)
        .collect();
    assert_eq!(keys.len(), 5);
    assert_eq!(keys[0], format!("dup/{}", 3 * CHUNK_KEYS).as_bytes());
}

#[test]
fn a_store_of_the_layout_before_chunks_is_swept_with_the_chunks() {
    // Given: a store upgraded in place, its clock at 2025-03-10, entries of
    // the old layout on a day already due, on the clock's day (partly swept)
    // and on days to come.
    let store = MemStore::default();
    let mut run = Harness::new(&store);
    run.advance(date("2025-03-01"), 2);
    for (i, on) in ["2025-03-05", "2025-03-05", "2025-03-05", "2025-03-20"]
        .iter()
        .enumerate()
    {
        run.schedule(format!("old/{i}").as_bytes(), date(on), true);
    }
    run.advance(date("2025-03-10"), 2);
    for i in 4..10 {
        run.schedule(format!("old/{i}").as_bytes(), date("2025-04-01"), true);
    }
    // When: new schedulings on the same days, before and after them, and
    // on a day already passed.
    for (i, on) in [
        "2025-03-11",
        "2025-03-20",
        "2025-04-01",
        "2025-04-01",
        "2025-02-01",
    ]
    .iter()
    .enumerate()
    {
        run.schedule(format!("new/{i}").as_bytes(), date(on), false);
    }
    for i in 0..40 {
        run.schedule(format!("many/{i}").as_bytes(), date("2025-04-01"), false);
    }
    // Then: the clock sweeps both, each key once, none before its day.
    for day in [
        "2025-03-11",
        "2025-03-12",
        "2025-03-25",
        "2025-04-01",
        "2025-04-01",
    ] {
        run.advance(date(day), 3);
    }
    assert!(run.deleted.contains(b"old/3".as_slice()));
    assert!(!run.deleted.contains(b"old/4".as_slice()));
    run.finish(&store, 3);
}

fn corrupt_store(index: &[(Vec<u8>, Vec<u8>)]) -> MemStore {
    let store = MemStore::default();
    let mut txn = StateTxn::new(&store);
    advance(&mut txn, date("2025-01-01"), u64::MAX).unwrap();
    for (key, value) in index {
        txn.put(key.clone(), value.clone());
    }
    store.apply(&txn.into_writes()).unwrap();
    store
}

#[test]
fn a_corrupt_chunk_is_a_store_error_not_a_panic() {
    let day = date("2025-01-05");
    let count = |n: i64| (day_key(day), n.to_be_bytes().to_vec());
    let chunk = |bytes: &[u8]| (chunk_key(day, 0), bytes.to_vec());
    let mut one = Vec::new();
    push_entry(b"chunk", &mut one, b"dup/a").unwrap();
    let cases = [
        (
            "a length past the end",
            vec![count(1), chunk(&[0, 0, 1, 0, b'k'])],
        ),
        (
            "a length cut short",
            vec![count(2), chunk(&[one.as_slice(), &[0, 0]].concat())],
        ),
        ("fewer keys than counted", vec![count(2), chunk(&one)]),
        ("a missing chunk", vec![count(1)]),
        ("a negative count", vec![count(-1), chunk(&one)]),
    ];
    for (what, index) in cases {
        let store = corrupt_store(&index);
        let mut txn = StateTxn::new(&store);
        let swept = advance(&mut txn, date("2025-02-01"), u64::MAX);
        assert!(
            matches!(swept, Err(StoreError::Corrupt { .. })),
            "{what}: {swept:?}"
        );
    }
    // Scheduling onto a day whose last chunk is missing.
    let store = corrupt_store(&[count(1)]);
    let mut txn = StateTxn::new(&store);
    assert!(matches!(
        expire_on(&mut txn, b"dup/b", day),
        Err(StoreError::Corrupt { .. })
    ));
}

proptest! {
    /// Against the model, through an upgrade in place: schedulings in the
    /// layout before chunks, then in chunks, and moves of the clock in any
    /// order delete exactly the keys due, the same as the model at each
    /// move, each once, never early; swept to the end, nothing of the index
    /// is left but the clock.
    #[test]
    fn the_index_deletes_what_the_model_does(
        // Few days, so that a day holds several chunks, and a dozen moves
        // of the clock (one step in eight) sweep them partly.
        before in proptest::collection::vec((0u64..30, 0u64..8, 0u8..8), 0..80),
        after in proptest::collection::vec((0u64..60, 0u64..8, 0u8..8), 0..300),
        budget in 1u64..80,
    ) {
        let start = date("2025-01-01");
        let store = MemStore::default();
        let mut run = Harness::new(&store);
        let steps = before.into_iter().map(|step| (step, true))
            .chain(after.into_iter().map(|step| (step, false)));
        for (n, ((at, on, moves), before_chunks)) in steps.enumerate() {
            let today = start + chrono::Days::new(at);
            if moves == 0 || run.clock.is_none() {
                run.advance(today, budget);
            }
            // Keys of any bytes: the length prefix, not a separator, ends them.
            let key = [&[0u8, b'/', 0xff][..], &(n as u32).to_be_bytes()].concat();
            run.schedule(&key, start + chrono::Days::new(on * 9), before_chunks);
        }
        run.finish(&store, budget);
    }
}
