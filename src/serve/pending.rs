//! The `ref.rights` records the entitlement stage has yet to apply, read
//! once per partition and indexed by beneficiary, so that a look-up takes
//! its own beneficiary's from memory instead of reading the partition's
//! whole backlog again.
//!
//! A look-up must see every rights record published before it asks
//! ([`super::rights`]): the stage applies `ref.rights` only before a batch of
//! claims, so while few claims flow (at start-up above all) thousands of
//! records can wait, and every look-up read and decoded all of them: the
//! first second's tail of the load test (docs/performance.md, "Online
//! services"). Here each partition's backlog is read once, forward only, and
//! forgotten below the offset the stage has applied.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use clearing_pipeline::bus::{Bus, BusError, read_until};
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::events::convert;
use clearing_pipeline::events::model::RightsRecord;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::runtime::topics;

/// Every partition's backlog.
#[derive(Default)]
pub struct PendingRights {
    partitions: Mutex<BTreeMap<u32, Arc<Mutex<Backlog>>>>,
}

/// One partition's records from `from` (the stage's position when last
/// asked) to `read_to`.
#[derive(Default)]
struct Backlog {
    from: u64,
    read_to: u64,
    /// Each record's key, by offset: what to forget as the stage advances.
    keys: BTreeMap<u64, Vec<u8>>,
    by_key: BTreeMap<Vec<u8>, BTreeMap<u64, RightsInput>>,
}

impl Backlog {
    /// Forgets the records below `applied`, the stage's position now.
    fn forget_below(&mut self, applied: u64) {
        if applied > self.read_to || applied < self.from {
            // Past all it read (nothing to keep, nothing read in between),
            // or behind what it forgot (a store restored, a partition
            // taken back): read again from there.
            *self = Backlog {
                from: applied,
                read_to: applied,
                ..Backlog::default()
            };
            return;
        }
        while let Some(entry) = self.keys.first_entry() {
            if *entry.key() >= applied {
                break;
            }
            let (offset, key) = entry.remove_entry();
            if let Some(records) = self.by_key.get_mut(&key) {
                records.remove(&offset);
                if records.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
        self.from = self.from.max(applied);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Backlog {
    /// Reads `partition`'s records from where it stopped up to `end`.
    fn read_to(
        &mut self,
        bus: &dyn Bus,
        registry: &SchemaRegistry,
        partition: u32,
        end: u64,
    ) -> Result<(), BusError> {
        if self.read_to >= end {
            return Ok(());
        }
        let Backlog {
            read_to,
            keys,
            by_key,
            ..
        } = self;
        let mut position = *read_to;
        let read = read_until(
            bus,
            topics::REF_RIGHTS,
            partition,
            &mut position,
            Some(end),
            |record| {
                if let Ok(rec) = registry.decode_single::<RightsRecord>(&record.value) {
                    keys.insert(record.offset, record.key.clone());
                    (by_key.entry(record.key).or_default())
                        .insert(record.offset, convert::rights_input(&rec));
                }
            },
        );
        // What was read before a failure is kept, and where it stopped.
        *read_to = position;
        read
    }
}

impl PendingRights {
    fn backlog(&self, partition: u32) -> Arc<Mutex<Backlog>> {
        lock(&self.partitions).entry(partition).or_default().clone()
    }

    /// Reads `partition`'s records up to `end` and forgets those below
    /// `applied`, ahead of the look-ups (`clearing serve`'s `rights-backlog`
    /// thread), so that none of them waits for a backlog read at start-up.
    pub fn advance(
        &self,
        bus: &dyn Bus,
        registry: &SchemaRegistry,
        partition: u32,
        applied: u64,
        end: u64,
    ) -> Result<(), BusError> {
        self.caught_up(bus, registry, partition, applied, end, |_| ())
    }

    /// `key`'s records of `partition` in `[applied, end)`, in order, having
    /// read what was not read yet. A record that does not decode is left
    /// out, as the stage turns it into a dead letter.
    pub fn for_key(
        &self,
        bus: &dyn Bus,
        registry: &SchemaRegistry,
        partition: u32,
        applied: u64,
        end: u64,
        key: &[u8],
    ) -> Result<Vec<RightsInput>, BusError> {
        self.caught_up(bus, registry, partition, applied, end, |backlog| {
            backlog.by_key.get(key).map_or_else(Vec::new, |records| {
                records
                    .range(applied..end)
                    .map(|(_, input)| input.clone())
                    .collect()
            })
        })
    }

    /// `then` over `partition`'s backlog once it holds `[applied, end)`.
    fn caught_up<T>(
        &self,
        bus: &dyn Bus,
        registry: &SchemaRegistry,
        partition: u32,
        applied: u64,
        end: u64,
        then: impl FnOnce(&Backlog) -> T,
    ) -> Result<T, BusError> {
        let backlog = self.backlog(partition);
        let mut backlog = lock(&backlog);
        backlog.forget_below(applied);
        backlog.read_to(bus, registry, partition, end)?;
        Ok(then(&backlog))
    }

    /// Records held, all partitions.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        lock(&self.partitions)
            .values()
            .map(|backlog| lock(backlog).keys.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clearing_pipeline::bus::local::LocalLog;
    use clearing_pipeline::clock::IngestClock;
    use clearing_pipeline::pseudonym::PseudonymKey;
    use clearing_pipeline::runtime::ingest::Ingest;
    use serde_json::json;

    /// Two beneficiaries on one NIR: ranks 1 and 2.
    fn rights(rank: u8, from: &str) -> RightsInput {
        serde_json::from_value(json!({
            "nir": "185057800604830", "birth_date": "1985-05-12", "rank": rank,
            "coverage": [{"from": from, "to": null, "regime": "01", "fund": "751"}]
        }))
        .unwrap()
    }

    /// A look-up sees exactly its key's records between the stage's
    /// position and the end it was given, however the two move between
    /// look-ups, and the backlog forgets what the stage has applied.
    #[test]
    fn a_key_sees_its_records_between_the_applied_position_and_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let bus = LocalLog::open(dir.path()).unwrap();
        clearing_pipeline::runtime::ensure_topics(&bus, 1).unwrap();
        let registry = SchemaRegistry::new().unwrap();
        let pseudonyms = PseudonymKey::development();
        let ranks = [1, 2, 1];
        let mut ingest = Ingest::new(&bus, &registry, &pseudonyms, IngestClock::Simulated).unwrap();
        let mut publish = |n: usize| {
            ingest
                .rights(&rights(ranks[n % 3], &format!("20{n:02}-01-01")))
                .unwrap();
            ingest.flush().unwrap();
        };
        for n in 0..6 {
            publish(n);
        }
        let records = bus.read(topics::REF_RIGHTS, 0, 0, 100).unwrap();
        let key_of = |offset: u64| records[offset as usize].key.clone();
        let first = key_of(0);
        let pending = PendingRights::default();
        let dates = |got: Vec<RightsInput>| -> Vec<String> {
            got.iter().map(|r| r.coverage[0].from.to_string()).collect()
        };
        let got = pending.for_key(&bus, &registry, 0, 0, 6, &first).unwrap();
        assert_eq!(
            dates(got),
            ["2000-01-01", "2002-01-01", "2003-01-01", "2005-01-01"]
        );
        assert_eq!(pending.held(), 6);
        // An end behind what was read: records past it are not seen.
        let got = pending.for_key(&bus, &registry, 0, 0, 3, &first).unwrap();
        assert_eq!(dates(got), ["2000-01-01", "2002-01-01"]);
        // The stage applied three; three more are published.
        for n in 6..9 {
            publish(n);
        }
        let got = pending.for_key(&bus, &registry, 0, 3, 9, &first).unwrap();
        assert_eq!(
            dates(got),
            ["2003-01-01", "2005-01-01", "2006-01-01", "2008-01-01"]
        );
        assert_eq!(pending.held(), 6, "the three applied are forgotten");
        // The stage passed everything read: nothing left, nothing missed.
        publish(9);
        let got = pending.for_key(&bus, &registry, 0, 9, 10, &first).unwrap();
        assert_eq!(dates(got), ["2009-01-01"]);
        assert_eq!(pending.held(), 1);
        let other = key_of(1);
        let got = pending.for_key(&bus, &registry, 0, 10, 10, &other).unwrap();
        assert!(got.is_empty());
        assert_eq!(pending.held(), 0);
        // The stage's position went back (its store restored): read again.
        let got = pending.for_key(&bus, &registry, 0, 7, 10, &other).unwrap();
        assert_eq!(dates(got), ["2007-01-01"]);
        assert_eq!(pending.held(), 3);
        // Read ahead of the look-ups, then looked up.
        publish(10);
        pending.advance(&bus, &registry, 0, 8, 11).unwrap();
        assert_eq!(pending.held(), 3, "offset 7 applied, 10 read");
        let got = pending.for_key(&bus, &registry, 0, 8, 11, &first).unwrap();
        assert_eq!(dates(got), ["2008-01-01", "2009-01-01"]);
    }
}
