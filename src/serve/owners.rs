//! Who answers for which partition: each `clearing serve` instance claims,
//! on the compacted topic [`OWNERS_TOPIC`], the entitlement partitions its
//! stages hold, with the address its HTTP API is reached at (Kafka Streams'
//! `application.server`, carried here on a topic of its own rather than in
//! the group's member metadata, which librdkafka gives no way to write).
//!
//! A claim is keyed `GROUP/STAGE/PARTITION`, so the topic keeps the latest
//! claim of each partition. Claims are only ever made by the holder: an
//! instance claims a partition when its stages are assigned it and its
//! table does not already name it, and re-claims it whenever the table
//! names someone else (a late claim of a former holder is overwritten within
//! one [`ADVERTISE_EVERY`]). An instance that loses a partition writes
//! nothing: the next holder's claim replaces its own. An instance killed
//! leaves its claims until its partitions are reassigned (the group's
//! session timeout); meanwhile a forward to it fails and is answered 503.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clearing_pipeline::bus::{Bus, BusError, TopicSpec, read_until};
use clearing_pipeline::runtime::StageKind;
use clearing_pipeline::runtime::queries::StateDirectory;
use serde::{Deserialize, Serialize};

use super::auth::now_millis;

/// The claims of the online services (one partition, compacted). Not a
/// pipeline topic: no stage reads it, no claim or person is in it.
pub const OWNERS_TOPIC: &str = "serve.owners";

/// How often an instance reads the claims and makes its own.
pub const ADVERTISE_EVERY: Duration = Duration::from_millis(250);

/// One claim's value (JSON: an operational record, read by the instances
/// only, never by the stages or an audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    /// `HOST:PORT` of the claimant's HTTP API.
    address: String,
}

/// The latest claims read, and where the reading stopped.
pub struct Owners {
    group: String,
    /// This instance's address, as it claims.
    own: String,
    read: Mutex<(BTreeMap<String, String>, u64)>,
}

impl Owners {
    /// The table of `group`'s claims on `bus` (the topic made if missing),
    /// for an instance reached at `own` (`HOST:PORT`).
    pub fn open(bus: &dyn Bus, group: &str, own: String) -> Result<Owners, BusError> {
        bus.ensure_topic(&TopicSpec {
            name: OWNERS_TOPIC.to_string(),
            partitions: 1,
            compacted: true,
            retention_ms: None,
        })?;
        Ok(Owners {
            group: group.to_string(),
            own,
            read: Mutex::new((BTreeMap::new(), 0)),
        })
    }

    fn key(&self, kind: StageKind, partition: u32) -> String {
        format!("{}/{}/{partition}", self.group, kind.name())
    }

    pub fn own_address(&self) -> &str {
        &self.own
    }

    /// Reads the claims made since the last read.
    pub fn refresh(&self, bus: &dyn Bus) -> Result<(), BusError> {
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        let (table, position) = &mut *read;
        read_until(bus, OWNERS_TOPIC, 0, position, None, |record| {
            let Ok(key) = String::from_utf8(record.key) else {
                return;
            };
            match serde_json::from_slice::<Claim>(&record.value) {
                Ok(claim) if !record.tombstone => {
                    table.insert(key, claim.address);
                }
                // A tombstone, or a value this version cannot read: no
                // known owner rather than a wrong one.
                _ => {
                    table.remove(&key);
                }
            }
        })
    }

    /// The address the latest claim of `kind`'s `partition` names, as far
    /// as the table has been read.
    pub fn owner(&self, kind: StageKind, partition: u32) -> Option<String> {
        let read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        read.0.get(&self.key(kind, partition)).cloned()
    }

    /// Claims each partition of `held` the table does not name this
    /// instance for; returns how many claims were made.
    pub fn advertise(
        &self,
        bus: &dyn Bus,
        kind: StageKind,
        held: &[u32],
    ) -> Result<usize, BusError> {
        self.refresh(bus)?;
        let value = serde_json::to_vec(&Claim {
            address: self.own.clone(),
        })
        .map_err(|e| BusError::Config(e.to_string()))?;
        let missing: Vec<u32> = held
            .iter()
            .copied()
            .filter(|p| self.owner(kind, *p).as_deref() != Some(self.own.as_str()))
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let mut producer = bus.producer()?;
        for partition in &missing {
            let key = self.key(kind, *partition);
            producer.send(OWNERS_TOPIC, 0, key.as_bytes(), &value, now_millis())?;
        }
        producer.flush()?;
        self.refresh(bus)?;
        Ok(missing.len())
    }
}

/// Claims what this instance's stages hold every [`ADVERTISE_EVERY`] until
/// `stop`; a failed round (the broker away) is retried at the next.
pub fn advertise_until(
    bus: Arc<dyn Bus>,
    owners: Arc<Owners>,
    directory: Arc<StateDirectory>,
    stop: Arc<AtomicBool>,
) {
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let held = directory.partitions(StageKind::Entitlement);
        match owners.advertise(bus.as_ref(), StageKind::Entitlement, &held) {
            Ok(claimed) => {
                if claimed > 0 {
                    eprintln!(
                        "clearing serve: claimed {claimed} entitlement partition(s) for {}",
                        owners.own
                    );
                }
                failing = false;
            }
            Err(e) if !failing => {
                eprintln!("clearing serve: claiming partitions failed ({e}); retrying");
                failing = true;
            }
            Err(_) => {}
        }
        std::thread::sleep(ADVERTISE_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clearing_pipeline::bus::local::LocalLog;

    #[test]
    fn the_latest_claim_of_a_partition_names_its_owner_and_a_stale_one_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let bus = LocalLog::open(dir.path()).unwrap();
        let a = Owners::open(&bus, "g", "127.0.0.1:1".into()).unwrap();
        let b = Owners::open(&bus, "g", "127.0.0.1:2".into()).unwrap();
        let other_group = Owners::open(&bus, "h", "127.0.0.1:3".into()).unwrap();
        let kind = StageKind::Entitlement;
        assert_eq!(a.advertise(&bus, kind, &[0, 1]).unwrap(), 2);
        // Claimed already: nothing written again.
        assert_eq!(a.advertise(&bus, kind, &[0, 1]).unwrap(), 0);
        assert_eq!(b.advertise(&bus, kind, &[2, 3]).unwrap(), 2);
        other_group.advertise(&bus, kind, &[0]).unwrap();
        a.refresh(&bus).unwrap();
        assert_eq!(a.owner(kind, 2).as_deref(), Some("127.0.0.1:2"));
        assert_eq!(a.owner(kind, 0).as_deref(), Some("127.0.0.1:1"));
        // B takes partition 1 over; A's table follows at its next read, and
        // A, no longer holding it, does not claim it back.
        assert_eq!(b.advertise(&bus, kind, &[1, 2, 3]).unwrap(), 1);
        assert_eq!(a.advertise(&bus, kind, &[0]).unwrap(), 0);
        assert_eq!(a.owner(kind, 1).as_deref(), Some("127.0.0.1:2"));
        // A partition nobody claimed has no owner.
        assert_eq!(a.owner(StageKind::Validation, 0), None);
        assert_eq!(a.owner(kind, 7), None);
    }
}
