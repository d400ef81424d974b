//! The Kafka backend (`kafka://HOST:PORT[,HOST:PORT…][/NAMESPACE]`), on rdkafka
//! (bundled librdkafka 2.12), built with the crate's `kafka` feature. Same
//! semantics as the local log ([`super::local`]); docs/operations.md is the
//! runbook.
//!
//! - **Topics** are created explicitly with the admin client (never
//!   auto-created: every client sets `allow.auto.create.topics=false`).
//! - **Reads** (`Bus::read`: changelog restore, output scans, reference
//!   topics) use consumers that `assign` one partition at an explicit offset
//!   and never join a group or commit, kept in a small pool so a contiguous
//!   scan continues from the consumer's prefetched queue.
//! - **Producers** are idempotent, `acks=all`, explicit partition on every
//!   record; `flush` returns an error if any delivery failed (`produce`).
//! - **Group consumers** hand the assignment to the caller before any record
//!   and start fetching only once the caller has positioned the partitions
//!   (`consume`).
//!
//! A `/NAMESPACE` suffix prefixes every topic and group name on the broker
//! with `NAMESPACE.` (several pipelines, or test runs, on one cluster); the
//! pipeline sees its usual names.

mod consume;
mod error;
mod produce;
mod read;
mod security;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::bus::{
    BrokerErrorKind, Bus, BusConsumer, BusError, BusProducer, PORTABLE_RECORD_BYTES, Record,
    TopicSpec,
};
use error::broker;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

/// How long a metadata, watermark or offset request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new topic may take to show all its partitions in the metadata.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one record's key + value on Kafka (`BusError::TooLarge` beyond).
/// A claim is about 1 KiB; a lot or a dead letter can be far larger. Every
/// topic the bus creates sets `max.message.bytes` to this plus
/// `FRAME_ROOM`, since Apache Kafka's default (1 MB) would refuse such a
/// record at delivery. The smaller bound of the two backends, so the
/// number lives beside the trait ([`PORTABLE_RECORD_BYTES`]), known without
/// this feature.
pub const MAX_RECORD_BYTES: usize = PORTABLE_RECORD_BYTES;
/// Room for the record framing around the largest key + value.
const FRAME_ROOM: usize = 64 * 1024;
/// The replication factor and `min.insync.replicas` of a production cluster
/// (ops/topics.toml says the same, and a test keeps the two in agreement):
/// with `acks=all`, an acknowledged record is on two brokers, and one broker
/// may be down without stopping writes.
pub const REPLICATION_FACTOR: u32 = 3;
pub const MIN_INSYNC_REPLICAS: u32 = 2;
/// `message.timestamp.{before,after}.max.ms` that accepts any timestamp.
const TIMESTAMP_ANY: &str = "9223372036854775807";
/// Overrides the replication factor of the topics the bus creates.
const REPLICATION_ENV: &str = "CLEARING_KAFKA_REPLICATION_FACTOR";
/// The environment variable that turns librdkafka's log on (its value is
/// librdkafka's `debug` setting, e.g. `cgrp,fetch`, or `all`).
const DEBUG_ENV: &str = "CLEARING_KAFKA_DEBUG";

/// Topic and group names on the broker: the pipeline's names, prefixed with
/// the namespace when the URL has one.
#[derive(Debug, Clone)]
struct Names {
    prefix: String,
}

impl Names {
    fn topic(&self, logical: &str) -> String {
        format!("{}{logical}", self.prefix)
    }

    fn group(&self, logical: &str) -> String {
        format!("{}{logical}", self.prefix)
    }

    /// The pipeline's name of a broker topic (records carry these).
    fn logical<'a>(&self, physical: &'a str) -> &'a str {
        physical.strip_prefix(&self.prefix).unwrap_or(physical)
    }
}

/// Parses `kafka://HOST:PORT[,HOST:PORT…][/NAMESPACE]` into the bootstrap list
/// and the names.
fn parse_url(url: &str) -> Result<(String, Names), BusError> {
    let rest = url
        .strip_prefix("kafka://")
        .ok_or_else(|| BusError::Config(format!("{url}: expected kafka://HOST:PORT")))?;
    let (servers, namespace) = match rest.split_once('/') {
        Some((servers, ns)) => (servers, ns.trim_end_matches('/')),
        None => (rest, ""),
    };
    let valid_server = |s: &str| {
        s.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    };
    if servers.is_empty() || !servers.split(',').all(valid_server) {
        return Err(BusError::Config(format!(
            "{url}: expected kafka://HOST:PORT[,HOST:PORT…][/NAMESPACE]"
        )));
    }
    if !namespace
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || namespace.len() > 100
    {
        return Err(BusError::Config(format!(
            "{url}: a namespace is at most 100 of [A-Za-z0-9._-]"
        )));
    }
    let prefix = if namespace.is_empty() {
        String::new()
    } else {
        format!("{namespace}.")
    };
    Ok((servers.to_string(), Names { prefix }))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn partition_i32(partition: u32) -> Result<i32, BusError> {
    i32::try_from(partition).map_err(|_| BusError::Config(format!("partition {partition}")))
}

fn offset_i64(offset: u64) -> Result<i64, BusError> {
    i64::try_from(offset).map_err(|_| BusError::Config(format!("offset {offset}")))
}

/// librdkafka's log goes to stderr when `CLEARING_KAFKA_DEBUG` is set, and
/// nowhere otherwise (a reconnecting client is chatty; errors that matter
/// reach the caller as `BusError`s).
#[derive(Clone, Copy)]
pub(super) struct LogContext {
    verbose: bool,
}

impl LogContext {
    pub(super) fn from_env() -> LogContext {
        LogContext {
            verbose: std::env::var_os(DEBUG_ENV).is_some(),
        }
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if self.verbose {
            eprintln!("librdkafka {level:?} {fac}: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.verbose {
            eprintln!("librdkafka error: {error}: {reason}");
        }
    }
}

impl ConsumerContext for LogContext {}

/// What every client shares; the per-client settings are added by each.
fn base_config(bootstrap: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("allow.auto.create.topics", "false")
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000")
        .set("topic.metadata.refresh.interval.ms", "60000");
    // SASL / TLS from the deployment (checked by `KafkaBus::connect` first).
    if let Ok(properties) = security::process_properties() {
        properties.apply(&mut config);
    }
    if let Ok(debug) = std::env::var(DEBUG_ENV)
        && !debug.is_empty()
    {
        config.set("debug", debug);
        config.set_log_level(RDKafkaLogLevel::Debug);
    }
    config
}

/// What every consumer fetches: up to 100 ms' worth, and room for the
/// largest record with its framing.
fn fetch_settings(config: &mut ClientConfig) {
    config
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .set(
            "fetch.message.max.bytes",
            (MAX_RECORD_BYTES + FRAME_ROOM).to_string(),
        )
        .set("fetch.max.bytes", (2 * MAX_RECORD_BYTES).to_string())
        .set(
            "receive.message.max.bytes",
            (2 * MAX_RECORD_BYTES + FRAME_ROOM).to_string(),
        )
        .set("queued.max.messages.kbytes", "16384");
}

/// Settings of the group-less consumers (reads, metadata, offsets).
fn reader_config(bootstrap: &str, group: Option<&str>) -> ClientConfig {
    let mut config = base_config(bootstrap, "clearing-reader");
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A read stops at the end of what is readable without waiting
        // out a poll (markers end most partitions stages write).
        .set("enable.partition.eof", "true")
        // librdkafka's default, spelled out: a fenced owner's aborted
        // transaction is never read back (restore, replay, `clearing read`).
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
    fetch_settings(&mut config);
    if let Some(group) = group {
        config.set("group.id", group);
    }
    config
}

/// Whether stages write through transactions (the default):
/// `CLEARING_KAFKA_TRANSACTIONS=0` turns them off, to measure what they cost
/// (docs/performance.md); a paused member is then no longer fenced.
fn transactions_enabled() -> bool {
    std::env::var("CLEARING_KAFKA_TRANSACTIONS").map_or(true, |v| v != "0")
}

/// Runs a future to completion on this thread (the admin client's results
/// are futures; rdkafka's own thread completes them).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

pub(super) struct Inner {
    url: String,
    bootstrap: String,
    names: Names,
    /// Metadata, watermarks: no group, never assigned, shared by threads.
    meta: BaseConsumer<LogContext>,
    /// Watermarks as a reader of uncommitted records sees them: the high
    /// watermark, past records of transactions not yet settled. Made at the
    /// first [`Bus::settled`]: most processes (submit, serve) never ask.
    meta_uncommitted: std::sync::OnceLock<BaseConsumer<LogContext>>,
    admin: AdminClient<LogContext>,
    /// Partition counts by broker topic name.
    partitions: Mutex<HashMap<String, u32>>,
    readers: read::Pool,
    /// Group-bound clients for `committed` (they never join the group).
    offset_clients: Mutex<HashMap<String, Arc<BaseConsumer<LogContext>>>>,
    /// How the topics this bus creates are replicated.
    replication: Replication,
    /// `CLEARING_KAFKA_REPLICATION_FACTOR`, when set.
    configured_factor: Option<u32>,
}

/// The replication of the topics a bus creates: [`REPLICATION_FACTOR`], or
/// as many brokers as the cluster has when it has fewer (a development
/// broker), or `CLEARING_KAFKA_REPLICATION_FACTOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    pub factor: u32,
    pub min_insync: u32,
}

impl Replication {
    /// `configured`: the operator's factor, if any; `brokers`: the cluster's
    /// size. An acknowledged record must survive the loss of one broker, so
    /// `min.insync.replicas` is one less than the factor (at least 1).
    fn choose(configured: Option<u32>, brokers: u32) -> Replication {
        let factor = configured.unwrap_or(REPLICATION_FACTOR.min(brokers.max(1)));
        let min_insync = if factor >= REPLICATION_FACTOR {
            MIN_INSYNC_REPLICAS
        } else {
            factor.saturating_sub(1).max(1)
        };
        Replication { factor, min_insync }
    }
}

/// A Kafka bus. Cheap to clone; producers and consumers share its metadata.
#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

impl KafkaBus {
    /// Connects and checks that the broker answers within 10 s.
    pub fn connect(url: &str) -> Result<KafkaBus, BusError> {
        let (bootstrap, names) = parse_url(url)?;
        let security = security::process_properties().map_err(BusError::Config)?;
        if !security.is_empty() {
            // Names only: values may be secrets.
            eprintln!(
                "clearing: Kafka security settings from the environment: {}",
                security.names().collect::<Vec<_>>().join(", ")
            );
        }
        let context = LogContext::from_env();
        let meta: BaseConsumer<LogContext> = reader_config(&bootstrap, None)
            .create_with_context(context)
            .map_err(|e| BusError::Config(format!("{url}: {e}")))?;
        let admin: AdminClient<LogContext> = base_config(&bootstrap, "clearing-admin")
            .create_with_context(context)
            .map_err(|e| BusError::Config(format!("{url}: {e}")))?;
        // Any topic list proves the broker is there (and fills the cache).
        let metadata = meta.fetch_metadata(None, REQUEST_TIMEOUT).map_err(|e| {
            let kind = error::kind_of(e.rdkafka_error_code());
            let message = format!(
                "{url}: no answer from the broker ({e}); is it running? (ops/broker.sh start)"
            );
            error::failed(kind, message)
        })?;
        let partitions = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| (t.name().to_string(), t.partitions().len() as u32))
            .collect();
        let configured = match std::env::var(REPLICATION_ENV) {
            Ok(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|f| *f > 0)
                    .ok_or_else(|| BusError::Config(format!("{REPLICATION_ENV}={v}")))?,
            ),
            Err(_) => None,
        };
        let brokers = u32::try_from(metadata.brokers().len()).unwrap_or(u32::MAX);
        let replication = Replication::choose(configured, brokers);
        Ok(KafkaBus {
            inner: Arc::new(Inner {
                url: url.to_string(),
                readers: read::Pool::new(&bootstrap),
                bootstrap,
                names,
                meta,
                meta_uncommitted: std::sync::OnceLock::new(),
                admin,
                partitions: Mutex::new(partitions),
                offset_clients: Mutex::new(HashMap::new()),
                replication,
                configured_factor: configured,
            }),
        })
    }
}

/// A topic replicated less than a production run requires (or that the bus
/// would create so), found by [`KafkaBus::replication_shortfalls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationShortfall {
    /// The pipeline's name of the topic.
    pub topic: String,
    /// Replicas of its least replicated partition.
    pub factor: u32,
    pub min_insync: u32,
    /// False for a topic the bus would create with these settings.
    pub exists: bool,
}

impl KafkaBus {
    /// What a production run requires of every topic: [`REPLICATION_FACTOR`]
    /// replicas and [`MIN_INSYNC_REPLICAS`], or more replicas when
    /// `CLEARING_KAFKA_REPLICATION_FACTOR` asks for more. A configured factor
    /// below three does not lower it: one broker's loss would then lose
    /// acknowledged records, which only `--allow-under-replicated` accepts.
    pub fn required_replication(&self) -> Replication {
        Replication {
            factor: self
                .inner
                .configured_factor
                .unwrap_or(REPLICATION_FACTOR)
                .max(REPLICATION_FACTOR),
            min_insync: MIN_INSYNC_REPLICAS,
        }
    }

    /// Why this process's connection can be read on the network, if it can
    /// (`security::SecurityProperties::in_clear`).
    pub fn in_clear(&self) -> Option<String> {
        security::process_properties()
            .ok()
            .and_then(|p| p.in_clear())
    }

    /// The topics of `specs` below [`Self::required_replication`]: those on
    /// the broker by their least replicated partition and their
    /// `min.insync.replicas`, the others by the settings this bus would
    /// create them with. Reads metadata and configuration only.
    pub fn replication_shortfalls(
        &self,
        specs: &[TopicSpec],
    ) -> Result<Vec<ReplicationShortfall>, BusError> {
        let inner = &self.inner;
        let required = self.required_replication();
        let metadata = inner
            .meta
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| broker("metadata", e))?;
        let mut existing = Vec::new();
        let mut out = Vec::new();
        for spec in specs {
            let name = inner.names.topic(&spec.name);
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty());
            match topic {
                Some(t) => {
                    let factor = t
                        .partitions()
                        .iter()
                        .map(|p| u32::try_from(p.replicas().len()).unwrap_or(u32::MAX))
                        .min()
                        .unwrap_or(0);
                    existing.push((spec.name.clone(), name, factor));
                }
                None if inner.replication.factor < required.factor
                    || inner.replication.min_insync < required.min_insync =>
                {
                    out.push(ReplicationShortfall {
                        topic: spec.name.clone(),
                        factor: inner.replication.factor,
                        min_insync: inner.replication.min_insync,
                        exists: false,
                    });
                }
                None => {}
            }
        }
        let min_insync = inner.min_insync_of(existing.iter().map(|(_, name, _)| name.as_str()))?;
        for (logical, name, factor) in existing {
            let min_insync = min_insync.get(&name).copied().unwrap_or(0);
            if factor < required.factor || min_insync < required.min_insync {
                out.push(ReplicationShortfall {
                    topic: logical,
                    factor,
                    min_insync,
                    exists: true,
                });
            }
        }
        Ok(out)
    }
}

impl Inner {
    /// `min.insync.replicas` of each named topic, by broker topic name (one
    /// request); a topic whose value does not read is left out, so it
    /// counts as 0.
    fn min_insync_of<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, u32>, BusError> {
        let specifiers: Vec<ResourceSpecifier<'_>> = names.map(ResourceSpecifier::Topic).collect();
        if specifiers.is_empty() {
            return Ok(HashMap::new());
        }
        let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let results = block_on(self.admin.describe_configs(&specifiers, &options))
            .map_err(|e| broker("topic configurations", e))?;
        let mut out = HashMap::new();
        for result in results {
            let resource = result.map_err(|code| error::refused("topic configuration", code))?;
            let OwnedResourceSpecifier::Topic(name) = &resource.specifier else {
                continue;
            };
            if let Some(value) = resource
                .get("min.insync.replicas")
                .and_then(|e| e.value.as_deref())
                .and_then(|v| v.parse::<u32>().ok())
            {
                out.insert(name.clone(), value);
            }
        }
        Ok(out)
    }
}

impl Inner {
    /// The partition count the broker's metadata shows, `None` for no topic.
    fn fetch_count(&self, name: &str) -> Result<Option<u32>, BusError> {
        let metadata = self
            .meta
            .fetch_metadata(Some(name), REQUEST_TIMEOUT)
            .map_err(|e| broker(format!("metadata of {name}"), e))?;
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else {
            return Ok(None);
        };
        match topic.error() {
            None => {}
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => return Ok(None),
            Some(e) => {
                let code = RDKafkaErrorCode::from(e);
                return Err(error::refused(format!("metadata of {name}"), code));
            }
        }
        let count = topic.partitions().len() as u32;
        Ok((count > 0).then_some(count))
    }

    fn partition_count(&self, logical: &str) -> Result<u32, BusError> {
        let name = self.names.topic(logical);
        if let Some(count) = lock(&self.partitions).get(&name) {
            return Ok(*count);
        }
        match self.fetch_count(&name)? {
            Some(count) => {
                lock(&self.partitions).insert(name, count);
                Ok(count)
            }
            None => Err(BusError::UnknownTopic(logical.to_string())),
        }
    }

    /// Checks a (topic, partition) exists; returns the broker topic name.
    fn check(&self, logical: &str, partition: u32) -> Result<String, BusError> {
        if partition >= self.partition_count(logical)? {
            return Err(BusError::UnknownPartition(logical.to_string(), partition));
        }
        Ok(self.names.topic(logical))
    }

    /// (low, high) watermarks of a partition. A retriable error is
    /// retried for up to [`REQUEST_TIMEOUT`]; any other is returned.
    /// (log start, last stable offset) of a partition.
    fn watermarks(&self, name: &str, partition: u32) -> Result<(u64, u64), BusError> {
        Self::watermarks_of(&self.meta, name, partition)
    }

    fn watermarks_of(
        client: &BaseConsumer<LogContext>,
        name: &str,
        partition: u32,
    ) -> Result<(u64, u64), BusError> {
        let p = partition_i32(partition)?;
        let (low, high) = error::retrying(|| {
            client
                .fetch_watermarks(name, p, REQUEST_TIMEOUT)
                .map_err(|e| broker(format!("watermarks of {name}/{partition}"), e))
        })?;
        Ok((
            u64::try_from(low).unwrap_or(0),
            u64::try_from(high).unwrap_or(0),
        ))
    }

    fn create_topic(&self, spec: &TopicSpec, name: &str) -> Result<(), BusError> {
        let partitions = i32::try_from(spec.partitions)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                BusError::Config(format!(
                    "topic {}: {} partitions",
                    spec.name, spec.partitions
                ))
            })?;
        // No retention means kept forever (-1), said explicitly: the
        // broker's default (7 days) is measured on record timestamps, which
        // here are event times (an FSE's receipt, often months old), so it
        // would delete a claim path's records at once.
        let retention = spec.retention_ms.unwrap_or(-1).to_string();
        let replication = self.replication;
        let factor = i32::try_from(replication.factor)
            .map_err(|_| BusError::Config(format!("replication factor {}", replication.factor)))?;
        let min_insync = replication.min_insync.to_string();
        let max_message = (MAX_RECORD_BYTES + FRAME_ROOM).to_string();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(factor))
            .set(
                "cleanup.policy",
                if spec.compacted { "compact" } else { "delete" },
            )
            .set("retention.ms", &retention)
            .set("min.insync.replicas", &min_insync)
            .set("max.message.bytes", &max_message)
            // A record's timestamp is its event time (an FSE's receipt, a
            // close date), kept byte for byte like the local log keeps it:
            // the broker must take any, not only those within an hour of its
            // clock (Apache Kafka 4's default `after` bound), or a claim
            // dated ahead would be refused at delivery instead of rejected
            // by validation with a reason.
            .set("message.timestamp.before.max.ms", TIMESTAMP_ANY)
            .set("message.timestamp.after.max.ms", TIMESTAMP_ANY);
        let options = AdminOptions::new()
            .request_timeout(Some(REQUEST_TIMEOUT))
            .operation_timeout(Some(REQUEST_TIMEOUT));
        let results = block_on(self.admin.create_topics([&topic], &options))
            .map_err(|e| broker(format!("create topic {name}"), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(error::refused(format!("create topic {name}"), code));
                }
            }
        }
        Ok(())
    }
}

impl Bus for KafkaBus {
    fn describe(&self) -> String {
        self.inner.url.clone()
    }

    fn max_record_bytes(&self) -> usize {
        MAX_RECORD_BYTES
    }

    fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        let inner = &self.inner;
        let name = inner.names.topic(&spec.name);
        match inner.fetch_count(&name)? {
            Some(n) if n != spec.partitions => {
                return Err(BusError::Config(format!(
                    "topic {} has {n} partitions, {} wanted",
                    spec.name, spec.partitions
                )));
            }
            Some(_) => {}
            None => {
                inner.create_topic(spec, &name)?;
                // A new topic can take a moment to show every partition.
                let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
                loop {
                    let count = inner.fetch_count(&name)?;
                    if count == Some(spec.partitions) {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Err(match count {
                            // Created concurrently by someone else, differently.
                            Some(n) => BusError::Config(format!(
                                "topic {} has {n} partitions, {} wanted",
                                spec.name, spec.partitions
                            )),
                            None => error::failed(
                                BrokerErrorKind::Retriable,
                                format!(
                                    "topic {name} not visible {TOPIC_READY_TIMEOUT:?} after its creation"
                                ),
                            ),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        lock(&inner.partitions).insert(name, spec.partitions);
        Ok(())
    }

    fn partition_count(&self, topic: &str) -> Result<u32, BusError> {
        self.inner.partition_count(topic)
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, BusError> {
        let name = self.inner.check(topic, partition)?;
        Ok(self.inner.watermarks(&name, partition)?.1)
    }

    fn settled(&self, topic: &str, partition: u32) -> Result<bool, BusError> {
        let name = self.inner.check(topic, partition)?;
        // The stable end first: a record appended between the two requests
        // can then only make the answer "not settled", never the reverse.
        let stable = self.inner.watermarks(&name, partition)?.1;
        let uncommitted = match self.inner.meta_uncommitted.get() {
            Some(client) => client,
            None => {
                let client: BaseConsumer<LogContext> = reader_config(&self.inner.bootstrap, None)
                    .set("isolation.level", "read_uncommitted")
                    .create_with_context(LogContext::from_env())
                    .map_err(|e| broker("a read_uncommitted client", e))?;
                // Another thread may have set one meanwhile: either serves.
                self.inner.meta_uncommitted.get_or_init(|| client)
            }
        };
        let written = Inner::watermarks_of(uncommitted, &name, partition)?.1;
        Ok(stable >= written)
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, BusError> {
        let name = self.inner.check(topic, partition)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let (low, high) = self.inner.watermarks(&name, partition)?;
        // Below the log start (retention) there is nothing left to read.
        let from = from.max(low);
        if from >= high {
            return Ok(Vec::new());
        }
        self.inner.readers.read(&read::Span {
            name: &name,
            logical: topic,
            partition,
            from,
            max,
            high,
        })
    }

    fn producer(&self) -> Result<Box<dyn BusProducer>, BusError> {
        Ok(Box::new(produce::KafkaProducer::new(self.inner.clone())?))
    }

    fn fenced_producer(&self, owner: &str) -> Result<Option<Box<dyn BusProducer>>, BusError> {
        if !transactions_enabled() {
            return Ok(None);
        }
        let id = self.inner.names.group(owner);
        Ok(Some(Box::new(produce::KafkaProducer::transactional(
            self.inner.clone(),
            &id,
        )?)))
    }

    fn consumer(&self, group: &str) -> Result<Box<dyn BusConsumer>, BusError> {
        Ok(Box::new(consume::KafkaConsumer::new(
            self.inner.clone(),
            group,
        )?))
    }

    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>, BusError> {
        let inner = &self.inner;
        let name = inner.check(topic, partition)?;
        let group = inner.names.group(group);
        let client = {
            let mut clients = lock(&inner.offset_clients);
            match clients.get(&group) {
                Some(client) => client.clone(),
                None => {
                    let client: BaseConsumer<LogContext> =
                        reader_config(&inner.bootstrap, Some(&group))
                            .create_with_context(LogContext::from_env())
                            .map_err(|e| broker(format!("group {group}"), e))?;
                    let client = Arc::new(client);
                    clients.insert(group.clone(), client.clone());
                    client
                }
            }
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&name, partition_i32(partition)?);
        let offsets = error::retrying(|| {
            client
                .committed_offsets(tpl.clone(), REQUEST_TIMEOUT)
                .map_err(|e| {
                    broker(
                        format!("committed offset of {group} on {name}/{partition}"),
                        e,
                    )
                })
        })?;
        let offset = offsets
            .find_partition(&name, partition_i32(partition)?)
            .map(|e| e.offset());
        Ok(match offset {
            Some(Offset::Offset(o)) if o >= 0 => Some(o as u64),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_follows_the_cluster_up_to_three_and_survives_one_broker() {
        let r = |configured, brokers| {
            let Replication { factor, min_insync } = Replication::choose(configured, brokers);
            (factor, min_insync)
        };
        assert_eq!(r(None, 1), (1, 1));
        assert_eq!(r(None, 2), (2, 1));
        assert_eq!(r(None, 3), (3, 2));
        assert_eq!(r(None, 9), (3, 2));
        assert_eq!(r(Some(5), 9), (5, 2));
        assert_eq!(r(Some(1), 9), (1, 1));
        assert_eq!(r(None, 0), (1, 1));
    }

    #[test]
    fn urls_parse_into_servers_and_namespace() {
        let (servers, names) = parse_url("kafka://127.0.0.1:9092").unwrap();
        assert_eq!(servers, "127.0.0.1:9092");
        assert_eq!(names.topic("fse.submitted"), "fse.submitted");
        let (servers, names) = parse_url("kafka://a:1,b:2/test-7").unwrap();
        assert_eq!(servers, "a:1,b:2");
        assert_eq!(names.topic("fse.submitted"), "test-7.fse.submitted");
        assert_eq!(names.group("g.validation"), "test-7.g.validation");
        assert_eq!(names.logical("test-7.fse.decided"), "fse.decided");
        for bad in [
            "kafka://",
            "kafka://host",
            "kafka://host:port",
            "local:x",
            "kafka://h:1/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
