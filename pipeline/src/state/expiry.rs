//! Keys that expire on a day of event time: the retention of state that is
//! needed only while a claim it concerns can still be received in time
//! (docs/rules.md, "How long an id stays consumed").
//!
//! A key to expire is indexed under its day (`<name>/<day>/<n>`, with a
//! count per day at `<name>/<day>/n`). The stage advances the clock to each
//! input's date of receipt before deciding it: every day passed is expired,
//! its keys and index deleted. The clock is the latest date the partition
//! has seen (`<name>/through`), taken from the events, never from the wall
//! clock, so a replay deletes the same keys at the same input. Reads go
//! through the batch's overlay only: no scan, so the stages stay pure
//! functions of their inputs and point reads.

use chrono::{Datelike, NaiveDate};

use super::{StateTxn, StoreError};

/// One kind of expiring key, named by its index's key prefix.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    name: &'static str,
}

impl Expiry {
    pub const fn new(name: &'static str) -> Expiry {
        Expiry { name }
    }

    fn through_key(self) -> Vec<u8> {
        format!("{}/through", self.name).into_bytes()
    }

    fn count_key(self, day: NaiveDate) -> Vec<u8> {
        format!("{}/{day}/n", self.name).into_bytes()
    }

    fn entry_key(self, day: NaiveDate, index: i64) -> Vec<u8> {
        format!("{}/{day}/{index:010}", self.name).into_bytes()
    }

    /// The last day expired, if the clock has started (days from the
    /// common era, as a counter).
    pub fn clock(self, state: &StateTxn<'_>) -> Result<Option<NaiveDate>, StoreError> {
        let key = self.through_key();
        let Some(days) = state.get_i64_if_any(&key)? else {
            return Ok(None);
        };
        i32::try_from(days)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                what: format!("{days} is not a day"),
            })
    }

    /// Expires every day after the clock up to `today`, and sets the clock
    /// to it (a date before the clock leaves it: inputs arrive in the order
    /// of receipt only near enough). The first call starts the clock:
    /// nothing can have been indexed before it. Returns the clock, for
    /// [`index`](Self::index).
    pub fn advance(
        self,
        state: &mut StateTxn<'_>,
        today: NaiveDate,
    ) -> Result<NaiveDate, StoreError> {
        let mut day = match self.clock(state)? {
            Some(through) if through >= today => return Ok(through),
            Some(through) => through,
            None => today,
        };
        while day < today {
            let Some(next) = day.succ_opt() else { break };
            day = next;
            let count_key = self.count_key(day);
            let count = state.get_i64(&count_key)?;
            for index in 0..count {
                let entry = self.entry_key(day, index);
                if let Some(key) = state.get(&entry)? {
                    state.delete(key);
                }
                state.delete(entry);
            }
            if count > 0 {
                state.delete(count_key);
            }
        }
        state.put_i64(self.through_key(), i64::from(today.num_days_from_ce()));
        Ok(today)
    }

    /// Indexes `key` to be deleted when the clock (as [`advance`](Self::advance)
    /// returned it) passes `day`, or on the next day to expire if `day` has
    /// already passed (an input received out of order).
    pub fn index(
        self,
        state: &mut StateTxn<'_>,
        clock: NaiveDate,
        day: NaiveDate,
        key: Vec<u8>,
    ) -> Result<(), StoreError> {
        let day = match clock.succ_opt() {
            Some(next) if next > day => next,
            _ => day,
        };
        let count_key = self.count_key(day);
        let index = state.get_i64(&count_key)?;
        state.put(self.entry_key(day, index), key);
        state.put_i64(count_key, index + 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemStore, StateRead, StateStore};

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    /// Runs `f` on an overlay of `store` and applies its writes.
    fn with(store: &MemStore, f: impl FnOnce(&mut StateTxn<'_>)) {
        let mut txn = StateTxn::new(store);
        f(&mut txn);
        store.apply(&txn.into_writes()).unwrap();
    }

    #[test]
    fn keys_go_on_their_day_and_late_ones_on_the_next() {
        const X: Expiry = Expiry::new("tx");
        let store = MemStore::default();
        with(&store, |s| {
            let clock = X.advance(s, day("2025-01-01")).unwrap();
            s.put(b"a".to_vec(), b"1".to_vec());
            X.index(s, clock, day("2025-01-03"), b"a".to_vec()).unwrap();
            s.put(b"b".to_vec(), b"1".to_vec());
            X.index(s, clock, day("2025-01-05"), b"b".to_vec()).unwrap();
        });
        with(&store, |s| {
            X.advance(s, day("2025-01-02")).unwrap();
        });
        assert!(store.get(b"a").unwrap().is_some());
        with(&store, |s| {
            let clock = X.advance(s, day("2025-01-04")).unwrap();
            // Its day has passed: it goes with the next one.
            s.put(b"c".to_vec(), b"1".to_vec());
            X.index(s, clock, day("2025-01-01"), b"c".to_vec()).unwrap();
        });
        assert!(store.get(b"a").unwrap().is_none());
        assert!(store.get(b"b").unwrap().is_some());
        // A date before the clock does not move it back.
        with(&store, |s| {
            assert_eq!(X.advance(s, day("2024-12-01")).unwrap(), day("2025-01-04"));
        });
        with(&store, |s| {
            X.advance(s, day("2025-01-05")).unwrap();
        });
        assert!(store.get(b"b").unwrap().is_none());
        assert!(store.get(b"c").unwrap().is_none());
        let left: Vec<_> = store
            .scan_prefix(b"")
            .unwrap()
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect();
        assert_eq!(left, ["tx/through"]);
    }
}
