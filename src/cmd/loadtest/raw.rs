//! The raw limits, measured in the same run as the pipeline so that its
//! figures are ratios: signature verification of the same claims, and the
//! bus's bare consume→produce rate over the same records.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clearing_pipeline::adjudicate::FSE_OBJECTS;
use clearing_pipeline::bus::{Bus, TopicSpec};
use clearing_pipeline::clock::Receipt;
use clearing_pipeline::domain::{FseInput, json};
use clearing_pipeline::events::convert::{input_from_submitted, submitted_from_input};
use clearing_pipeline::events::model::FseSubmitted;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::pki::{Pki, PkiRecord};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::{EuInstitutionInput, InstitutionDirectory, RefView};
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::topics;
use clearing_pipeline::signatures::{PkiVerifier, canonical_bytes};
use clearing_pipeline::stages::{Context, validation};
use clearing_pipeline::state::{MemStore, StateTxn};

use super::report::Verification;
use super::sample;
use crate::cmd::for_each_line;

/// Claims per interleaved round: short enough that load from other
/// processes falls on both sides of a round alike.
const BLOCK: usize = 150;
pub const PASSTHROUGH_TOPIC: &str = "loadtest.passthrough";
const PASSTHROUGH_GROUP: &str = "loadtest.passthrough";

struct Signed {
    cert: String,
    rpps: String,
    alg: String,
    date: chrono::NaiveDate,
    message: Vec<u8>,
    signature: Vec<u8>,
    /// The claim as validation receives it: `fse.submitted` bytes.
    submitted: Vec<u8>,
}

/// Raw `Pki::verify` (precomputed canonical bytes) against the validation
/// stage's pure path (decode + `validation::validate` with `PkiVerifier`,
/// state in memory) on the first `limit` signed claims of the corpus,
/// interleaved in rounds of [`BLOCK`] claims, in CPU time of the thread.
pub fn verification(corpus: &Path, limit: usize, rules: &Rules) -> Result<Verification> {
    let registry = SchemaRegistry::new()?;
    let pseudonyms = PseudonymKey::development();
    let (pki, institutions) = reference(corpus)?;
    let signed = signed_claims(corpus, limit, &registry)?;
    let rsa = signed.iter().filter(|s| s.alg.starts_with("rsa")).count();
    let verifier = PkiVerifier {
        pki: &pki,
        registry: &registry,
    };
    let refs = RefView {
        signatures: &verifier,
        institutions: &institutions,
    };
    let ctx = Context {
        rules,
        refs: &refs,
        pseudonyms: &pseudonyms,
    };
    let mut t = time_rounds(&signed, &pki, &ctx, &registry)?;
    t.ratios.sort_by(f64::total_cmp);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let raw_per_s = signed.len() as f64 / t.raw_s.max(1e-12);
    Ok(Verification {
        claims: signed.len(),
        rsa,
        rounds: t.ratios.len(),
        raw_per_s,
        raw_wall_per_s: signed.len() as f64 / t.wall_s.max(1e-12),
        validation_per_s: signed.len() as f64 / t.validate_s.max(1e-12),
        validation_ratio: t.ratios.get(t.ratios.len() / 2).copied().unwrap_or(0.0),
        pipeline_validation_ratio: None,
        raw_all_cores_per_s: raw_per_s * cores as f64,
    })
}

/// The corpus's PKI and EU institutions.
fn reference(corpus: &Path) -> Result<(Pki, InstitutionDirectory)> {
    let mut pki = Pki::default();
    for_each_line(&corpus.join("pki.jsonl"), |_, line| {
        pki.apply(PkiRecord::from_json(line)?)?;
        Ok(())
    })?;
    let mut institutions = InstitutionDirectory::default();
    for_each_line(&corpus.join("eu_institutions.jsonl"), |_, line| {
        let input: EuInstitutionInput = serde_json::from_str(line)?;
        institutions.upsert(input)?;
        Ok(())
    })?;
    Ok((pki, institutions))
}

/// The signed claims among the first `limit` of the corpus.
fn signed_claims(corpus: &Path, limit: usize, registry: &SchemaRegistry) -> Result<Vec<Signed>> {
    let mut signed = Vec::new();
    let mut seen = 0usize;
    for_each_line(&corpus.join("claims.jsonl"), |_, line| {
        if seen >= limit {
            return Ok(());
        }
        seen += 1;
        let input: FseInput = json::from_value(&serde_json::from_str(line)?, FSE_OBJECTS)?;
        let wire: FseSubmitted = submitted_from_input(&input)?;
        if let Some(sig) = &wire.signature {
            signed.push(Signed {
                cert: sig.cert.clone(),
                rpps: wire.professional.rpps.clone(),
                alg: sig.alg.clone(),
                date: wire.care_date,
                message: canonical_bytes(registry, &wire),
                signature: sig.value.clone(),
                submitted: registry.encode_single(&wire),
            });
        }
        Ok(())
    })?;
    Ok(signed)
}

/// Seconds of both sides over all rounds, and each round's raw/validation
/// ratio.
struct Timings {
    raw_s: f64,
    validate_s: f64,
    wall_s: f64,
    ratios: Vec<f64>,
}

fn time_rounds(
    signed: &[Signed],
    pki: &Pki,
    ctx: &Context<'_>,
    registry: &SchemaRegistry,
) -> Result<Timings> {
    let store = MemStore::default();
    // Timed in CPU time of this thread: on a shared machine, wall time would
    // count the time other processes had the core.
    let (mut raw_s, mut validate_s, mut ratios) = (0.0, 0.0, Vec::new());
    let mut wall_s = 0.0;
    for block in signed.chunks(BLOCK) {
        let (wall, cpu) = (Instant::now(), sample::this_thread_cpu_s());
        for s in block {
            black_box(
                pki.verify(&s.cert, &s.rpps, &s.alg, s.date, &s.message, &s.signature)
                    .is_ok(),
            );
        }
        let raw = sample::this_thread_cpu_s() - cpu;
        wall_s += wall.elapsed().as_secs_f64();
        let cpu = sample::this_thread_cpu_s();
        for s in block {
            let fse: FseSubmitted = registry.decode_single(&s.submitted)?;
            let input = input_from_submitted(&fse);
            let mut txn = StateTxn::new(&store);
            let receipt = Receipt::of(fse.ingested_at_millis);
            black_box(validation::validate(&input, receipt, &mut txn, ctx)?);
        }
        let validate = sample::this_thread_cpu_s() - cpu;
        raw_s += raw;
        validate_s += validate;
        if raw > 0.0 && validate > 0.0 {
            ratios.push(raw / validate);
        }
    }
    Ok(Timings {
        raw_s,
        validate_s,
        wall_s,
        ratios,
    })
}

pub struct PassthroughRun {
    pub records: u64,
    pub seconds: f64,
    pub bytes: u64,
}

/// A bare consume→produce loop, no processing: `fse.submitted` (the records
/// the pipeline just ran on) into [`PASSTHROUGH_TOPIC`] with the same
/// partitions, keys and values, flushing and committing per polled batch as
/// a stage does. Up to `cap` records.
pub fn passthrough(
    bus: &dyn Bus,
    partitions: u32,
    batch: usize,
    cap: u64,
) -> Result<PassthroughRun> {
    bus.ensure_topic(&TopicSpec {
        name: PASSTHROUGH_TOPIC.into(),
        partitions,
        compacted: false,
        retention_ms: None,
    })?;
    let available: u64 = (0..bus.partition_count(topics::FSE_SUBMITTED)?)
        .map(|p| bus.end_offset(topics::FSE_SUBMITTED, p))
        .sum::<Result<u64, _>>()?;
    let total = available.min(cap);
    let mut consumer = bus.consumer(PASSTHROUGH_GROUP)?;
    consumer.subscribe(&[topics::FSE_SUBMITTED])?;
    let mut producer = bus.producer()?;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut started: Option<Instant> = None;
    let mut idle_since = Instant::now();
    while records < total {
        let polled = consumer.poll(batch, Duration::from_millis(20))?;
        if let Some(assignment) = polled.assignment {
            for (topic, partition) in &assignment.partitions {
                consumer.seek(topic, *partition, 0)?;
            }
        }
        if polled.records.is_empty() {
            if idle_since.elapsed() > Duration::from_secs(30) {
                break;
            }
            continue;
        }
        idle_since = Instant::now();
        started.get_or_insert_with(Instant::now);
        let mut next: BTreeMap<(String, u32), u64> = BTreeMap::new();
        for record in &polled.records {
            if records >= total {
                break;
            }
            producer.send(
                PASSTHROUGH_TOPIC,
                record.partition,
                &record.key,
                &record.value,
                record.timestamp_millis,
            )?;
            records += 1;
            bytes += (record.key.len() + record.value.len()) as u64;
            next.insert((record.topic.clone(), record.partition), record.offset + 1);
        }
        producer.flush()?;
        let offsets: Vec<(String, u32, u64)> =
            next.into_iter().map(|((t, p), o)| (t, p, o)).collect();
        consumer.commit(&offsets)?;
    }
    let seconds = started
        .map(|s| s.elapsed().as_secs_f64())
        .context("bus pass-through: no record came back")?;
    Ok(PassthroughRun {
        records,
        seconds,
        bytes,
    })
}
