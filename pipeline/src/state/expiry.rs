//! Deterministic expiry of a partition's state, on the insurer's clock.
//!
//! A stage that writes a key it need not keep for ever schedules its
//! deletion for a date ([`expire_on`]); every input moves the partition's
//! clock to its own insurer date ([`advance`]), and the days the clock passes
//! delete what was scheduled on them. The clock is driven by the dates in the
//! stream, never the wall clock, so a replay of the same inputs deletes the
//! same keys at the same input, and each deletion is a write of the batch
//! like any other (a tombstone on the changelog).
//!
//! State (its keys start with STX, which no stage key starts with):
//! - `\x02exp/next`: the first day not yet swept (absent before the first
//!   input); the clock never goes back, so a late input sweeps nothing;
//! - `\x02exp/<date>`: how many keys are scheduled on that day, and
//!   `\x02exp/<date>/<i>` each of them (scheduling is O(1) whatever the
//!   day's size, and no scan is needed: the pure core only gets and puts).

use chrono::NaiveDate;

use super::{StateTxn, StoreError};

const NEXT: &[u8] = b"\x02exp/next";

fn day_key(day: NaiveDate) -> Vec<u8> {
    format!("\x02exp/{day}").into_bytes()
}

fn item_key(day: NaiveDate, index: i64) -> Vec<u8> {
    format!("\x02exp/{day}/{index:010}").into_bytes()
}

fn corrupt(key: &[u8], what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        what: what.to_string(),
    }
}

fn next_day(state: &StateTxn<'_>) -> Result<Option<NaiveDate>, StoreError> {
    match state.get(NEXT)? {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .map(Some)
            .ok_or_else(|| corrupt(NEXT, "not a date")),
    }
}

/// Schedules the deletion of `key` on `on`. Call it when the key is created
/// (a key is scheduled once: its date is a function of the key itself). A
/// date the clock has already passed is swept by the next input.
pub fn expire_on(state: &mut StateTxn<'_>, key: &[u8], on: NaiveDate) -> Result<(), StoreError> {
    let day = match next_day(state)? {
        Some(next) => on.max(next),
        None => on,
    };
    let count_key = day_key(day);
    let n = state.get_i64(&count_key)?;
    state.put(item_key(day, n), key.to_vec());
    state.put_i64(count_key, n + 1);
    Ok(())
}

/// What one move of the clock deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Days swept to the end.
    pub days: u32,
    pub keys: u64,
}

/// Most keys one input deletes. A day can hold a whole quarter's keys (the
/// time-bar runs from the quarter after the care): deleted at once, they
/// would make one batch, and its changelog, as large as a quarter of the
/// store. A bounded share per input spreads them over the inputs that
/// follow. Deleting a key later than its day never changes a decision: no
/// claim that could read it is in time any more.
pub const KEYS_PER_INPUT: u64 = 64;

/// Moves the partition's clock to `today`: keys scheduled on a day up to
/// `today` are deleted with their index entries, at most `budget` of them,
/// the rest by the next inputs. A `today` before the day the clock is at
/// deletes nothing.
pub fn advance(
    state: &mut StateTxn<'_>,
    today: NaiveDate,
    budget: u64,
) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    let Some(mut day) = next_day(state)? else {
        // The first input: nothing can be scheduled before it but what it
        // schedules itself, on or after today.
        put_next(state, today)?;
        return Ok(swept);
    };
    let start = day;
    while day <= today && swept.keys < budget {
        let count_key = day_key(day);
        let mut left = state.get_i64(&count_key)?;
        // From the last scheduled: the count is what is left to delete.
        while left > 0 && swept.keys < budget {
            let item = item_key(day, left - 1);
            let key = state
                .get(&item)?
                .ok_or_else(|| corrupt(&item, "hole in the expiry index"))?;
            state.delete(key);
            state.delete(item);
            left -= 1;
            swept.keys += 1;
        }
        if left > 0 {
            state.put_i64(count_key, left);
            break;
        }
        if state.get(&count_key)?.is_some() {
            state.delete(count_key);
        }
        swept.days += 1;
        day = day
            .succ_opt()
            .ok_or_else(|| corrupt(NEXT, "the clock left the calendar"))?;
    }
    if day != start {
        state.put(NEXT.to_vec(), day.to_string().into_bytes());
    }
    Ok(swept)
}

fn put_next(state: &mut StateTxn<'_>, today: NaiveDate) -> Result<(), StoreError> {
    let next = today
        .succ_opt()
        .ok_or_else(|| corrupt(NEXT, "the clock left the calendar"))?;
    state.put(NEXT.to_vec(), next.to_string().into_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemStore, StateStore};
    use proptest::prelude::*;

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
}
