//! `clearing explain FSE_ID`: the decision path of one claim, read from the
//! claim's partition only — each stage's event with the rules and reference
//! versions it used, the arithmetic line by line, and the reimbursement
//! accumulators before and after, recomputed by replaying the partition's
//! reimbursement stage up to the claim.

use std::fmt::Write as _;

use clearing_pipeline::bus::{Bus, BusError, Record};
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::model::RefOffset;
use clearing_pipeline::events::model::{FseDecided, FseRejected, FseSubmitted};
use clearing_pipeline::events::render::render_full;
use clearing_pipeline::money::{Cents, Rate};
use clearing_pipeline::runtime::batch::{BatchInput, Cursor, Source, run_batch};
use clearing_pipeline::runtime::refs::GlobalRefs;
use clearing_pipeline::runtime::worker::output_source;
use clearing_pipeline::runtime::{StageKind, WorkerStats, topics};
use clearing_pipeline::state::{MemStore, StateRead, StateStore, StateTxn, WriteBatch};
use serde::Serialize;
use serde_json::Value;

use crate::verify::{ReplayError, Setup, checkpoints, with_context};

/// One stage's step for the claim.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub stage: String,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub event: Value,
}

/// A state value the claim changed.
#[derive(Debug, Clone, Serialize)]
pub struct Accumulator {
    pub key: String,
    pub meaning: String,
    pub before: Value,
    pub after: Value,
}

/// One submission of the FSE (a resend is a second one).
#[derive(Debug, Clone, Serialize)]
pub struct Occurrence {
    pub partition: u32,
    pub submitted_offset: u64,
    pub submitted: Value,
    pub steps: Vec<Step>,
    /// `base × rate = amount` per line, then the totals.
    pub arithmetic: Vec<String>,
    pub accumulators: Vec<Accumulator>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub fse_id: String,
    pub partitions_scanned: Vec<u32>,
    pub occurrences: Vec<Occurrence>,
}

fn scan(
    bus: &dyn Bus,
    topic: &str,
    partition: u32,
    mut each: impl FnMut(Record) -> bool,
) -> Result<(), BusError> {
    clearing_pipeline::bus::scan(bus, topic, partition, 0, |r| Ok::<_, BusError>(each(r)))
}

/// The output of `kind` for input `offset` of `partition`, if any.
fn output_of(
    setup: &Setup,
    kind: StageKind,
    partition: u32,
    offset: u64,
) -> Result<Option<Record>, BusError> {
    for topic in kind.output_topics() {
        let mut found = None;
        scan(setup.bus.as_ref(), topic, partition, |r| {
            if matches!(output_source(&setup.registry, &r, kind), Some(Source::Input(o, _)) if o == offset)
            {
                found = Some(r);
                return false;
            }
            true
        })?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        cents.unsigned_abs() / 100,
        cents.unsigned_abs() % 100
    )
}

fn arithmetic(registry: &SchemaRegistry, record: &Record) -> Vec<String> {
    let decision = match record.topic.as_str() {
        topics::FSE_DECIDED => registry
            .decode_single::<FseDecided>(&record.value)
            .map(|e| e.decision),
        _ => registry
            .decode_single::<FseRejected>(&record.value)
            .map(|e| e.decision),
    };
    let Ok(d) = decision else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, l) in d.lines.iter().enumerate() {
        // The line's AMO is net of its deductions: gross = AMO + both.
        let gross = l.amo_cents + l.participation_cents + l.franchise_cents;
        let by_rate = Rate::new(u8::try_from(l.rate_percent).unwrap_or(0))
            .map(|r| Cents::new(l.base_cents).apply_rate(r).get());
        let note = match by_rate {
            Some(g) if g == gross => String::new(),
            Some(g) => format!(" (rate gives {}; the flat fee or a cap applies)", euros(g)),
            None => String::new(),
        };
        out.push(format!(
            "line {}: {} charged {} ; base {} (tariff {}) × {} % = {}{note} ; − participation {} − franchise {} = AMO {} ; CSS {}",
            i + 1,
            l.code,
            euros(l.charged_cents),
            euros(l.base_cents),
            l.tariff,
            l.rate_percent,
            euros(gross),
            euros(l.participation_cents),
            euros(l.franchise_cents),
            euros(l.amo_cents),
            euros(l.css_cents),
        ));
    }
    if !d.lines.is_empty() {
        out.push(format!(
            "AMO {} + CSS {} ; deductions: participation {} + franchises {} + flat fee {} ; deferred {} ; imputed from earlier claims {}",
            euros(d.amo_cents),
            euros(d.css_cents),
            euros(d.participation_cents),
            euros(d.franchise_cents),
            euros(d.flat_fee_cents),
            euros(d.deferred_cents),
            euros(d.imputed_cents),
        ));
        out.push(format!(
            "paid to the professional {} ; to the insured {} ; left to the patient {}",
            euros(d.paid_to_professional_cents),
            euros(d.paid_to_insured_cents),
            euros(d.patient_cents),
        ));
    }
    for r in &d.reasons {
        out.push(format!("rejected: {} — {}", r.code, r.message));
    }
    out
}

fn meaning(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        ["pfy", _, year] => format!("participation forfaitaire taken in {year} (cents)"),
        ["fry", _, year] => format!("franchises taken in {year} (cents)"),
        ["pfd", _, day, rpps] => {
            format!("participation-bearing acts on {day} by professional {rpps}")
        }
        ["fad", _, day, rpps] => {
            format!("auxiliary-act franchises on {day} by professional {rpps} (cents)")
        }
        ["ftd", _, day] => format!("transport franchises on {day} (cents)"),
        ["def", _] => "deductions owed, not yet taken (cents)".into(),
        _ => "stage state".into(),
    }
}

fn value_json(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::from(0),
        Some(b) => match <[u8; 8]>::try_from(b) {
            Ok(a) => Value::from(i64::from_be_bytes(a)),
            Err(_) => Value::from(format!("{} bytes", b.len())),
        },
    }
}

/// The reimbursement state the input at `offset` changed, by replaying the
/// partition's reimbursement checkpoints up to it.
fn accumulators(
    setup: &Setup,
    partition: u32,
    offset: u64,
) -> Result<Vec<Accumulator>, ReplayError> {
    let mut replay = Reimbursement {
        setup,
        partition,
        store: MemStore::default(),
        cursor: Cursor::START,
        refs: GlobalRefs::default(),
        stats: WorkerStats::default(),
    };
    for (_, c) in checkpoints(setup, Reimbursement::KIND, partition)? {
        let from = u64::try_from(c.input_offset_from).unwrap_or(0);
        let to = u64::try_from(c.input_offset_to).unwrap_or(0);
        if to < replay.cursor.raw {
            continue;
        }
        let watermark = replay.refs.advance(
            setup.bus.as_ref(),
            &setup.registry,
            Reimbursement::KIND,
            false,
            Some(&c.ref_watermark),
            &mut replay.stats,
        )?;
        let records = replay.inputs(from, to)?;
        let contains = (from..=to).contains(&offset);
        // The batch up to the claim, then the claim alone.
        let (before, target): (Vec<Record>, Vec<Record>) = if contains {
            records
                .into_iter()
                .filter(|r| r.offset <= offset)
                .partition(|r| r.offset < offset)
        } else {
            (records, Vec::new())
        };
        for part in [before, target] {
            if part.is_empty() {
                continue;
            }
            let writes = replay.run(&part, &watermark, &c.rules_version)?;
            if part.iter().any(|r| r.offset == offset) {
                return replay.changes(&writes);
            }
            replay.store.apply(&writes)?;
        }
        if contains {
            break;
        }
    }
    Ok(Vec::new())
}

/// A partition's reimbursement stage replayed from empty state.
struct Reimbursement<'a> {
    setup: &'a Setup,
    partition: u32,
    store: MemStore,
    cursor: Cursor,
    refs: GlobalRefs,
    stats: WorkerStats,
}

impl Reimbursement<'_> {
    const KIND: StageKind = StageKind::Reimbursement;

    /// The stage's inputs `from..=to`.
    fn inputs(&self, from: u64, to: u64) -> Result<Vec<Record>, BusError> {
        let mut records = Vec::new();
        scan(
            self.setup.bus.as_ref(),
            Self::KIND.input_topic(),
            self.partition,
            |r| {
                if r.offset > to {
                    return false;
                }
                if r.offset >= from {
                    records.push(r);
                }
                true
            },
        )?;
        Ok(records)
    }

    /// Runs `records` as one batch; returns its writes, not applied.
    fn run(
        &mut self,
        records: &[Record],
        watermark: &[RefOffset],
        rules_version: &str,
    ) -> Result<WriteBatch, ReplayError> {
        let bus = self.setup.bus.as_ref();
        let rules = self.setup.rules_for(rules_version)?;
        let mut txn = StateTxn::new(&self.store);
        let mut restore = None;
        let input = BatchInput {
            kind: Self::KIND,
            partition: self.partition,
            records,
            prelude: Vec::new(),
            watermark,
            registry: &self.setup.registry,
            record_limit: bus.max_record_bytes(),
        };
        let (cursor, stats) = (&mut self.cursor, &mut self.stats);
        with_context(
            self.setup,
            &rules,
            &self.refs,
            self.setup.trust_unsigned,
            |ctx| run_batch(input, ctx, cursor, &mut restore, &mut txn, stats),
        )?;
        Ok(txn.into_writes())
    }

    /// The accumulators `writes` change, before and after.
    fn changes(&self, writes: &WriteBatch) -> Result<Vec<Accumulator>, ReplayError> {
        let mut out = Vec::new();
        for (key, value) in writes {
            if key.first() == Some(&0) {
                continue;
            }
            let text = String::from_utf8_lossy(key).into_owned();
            out.push(Accumulator {
                meaning: meaning(&text),
                // The pseudonymous key is not personal data, but
                // the meaning says enough: show the kind and dates.
                key: text,
                before: value_json(self.store.get(key)?.as_deref()),
                after: value_json(value.as_deref()),
            });
        }
        Ok(out)
    }
}

/// Explains `fse_id`, scanning only `partitions` (the claim's, when its
/// beneficiary key is known; all otherwise).
pub fn explain(
    setup: &Setup,
    fse_id: &str,
    partitions: &[u32],
) -> Result<Explanation, ReplayError> {
    let mut occurrences = Vec::new();
    for &partition in partitions {
        for record in submissions(setup, partition, fse_id)? {
            occurrences.push(occurrence(setup, partition, &record)?);
        }
    }
    Ok(Explanation {
        fse_id: fse_id.to_string(),
        partitions_scanned: partitions.to_vec(),
        occurrences,
    })
}

/// Every submission of `fse_id` in a partition of `fse.submitted`.
fn submissions(setup: &Setup, partition: u32, fse_id: &str) -> Result<Vec<Record>, BusError> {
    let mut submitted = Vec::new();
    scan(setup.bus.as_ref(), topics::FSE_SUBMITTED, partition, |r| {
        if let Ok(e) = setup.registry.decode_single::<FseSubmitted>(&r.value)
            && e.fse_id == fse_id
        {
            submitted.push(r);
        }
        true
    })?;
    Ok(submitted)
}

/// One submission's path, arithmetic and accumulators.
fn occurrence(setup: &Setup, partition: u32, record: &Record) -> Result<Occurrence, ReplayError> {
    let registry = setup.registry.as_ref();
    let (steps, decision) = path(setup, partition, record.offset)?;
    let reimbursed_input = steps
        .iter()
        .find(|s| s.stage == StageKind::Routing.name() && s.topic == topics::FSE_ROUTED)
        .map(|s| s.offset);
    Ok(Occurrence {
        partition,
        submitted_offset: record.offset,
        submitted: clearing_pipeline::events::render::render(
            registry,
            topics::FSE_SUBMITTED,
            &record.value,
        )
        .unwrap_or(Value::Null),
        steps,
        arithmetic: decision
            .as_ref()
            .map(|d| arithmetic(registry, d))
            .unwrap_or_default(),
        accumulators: match reimbursed_input {
            Some(o) => accumulators(setup, partition, o)?,
            None => Vec::new(),
        },
    })
}

/// Each stage's output for the claim submitted at `submitted`, in pipeline
/// order until one decides it (or nothing follows), and that decision.
fn path(
    setup: &Setup,
    partition: u32,
    submitted: u64,
) -> Result<(Vec<Step>, Option<Record>), BusError> {
    let mut steps = Vec::new();
    let mut input = submitted;
    for kind in StageKind::ALL {
        let Some(out) = output_of(setup, kind, partition, input)? else {
            break;
        };
        let event = render_full(&setup.registry, &out.topic, &out.value)
            .unwrap_or_else(|e| serde_json::json!({"undecodable": e.to_string()}));
        steps.push(Step {
            stage: kind.name().into(),
            topic: out.topic.clone(),
            partition,
            offset: out.offset,
            event,
        });
        if out.topic != kind.pass_topic() || kind == StageKind::Reimbursement {
            return Ok((steps, Some(out)));
        }
        input = out.offset;
    }
    Ok((steps, None))
}

/// The explanation for a person.
pub fn render_text(e: &Explanation) -> String {
    let mut out = String::new();
    if e.occurrences.is_empty() {
        let _ = writeln!(
            out,
            "FSE {}: not found in fse.submitted (partitions {:?})",
            e.fse_id, e.partitions_scanned
        );
        return out;
    }
    for (i, o) in e.occurrences.iter().enumerate() {
        let _ = writeln!(
            out,
            "FSE {} — submission {} of {}: fse.submitted/{}@{}",
            e.fse_id,
            i + 1,
            e.occurrences.len(),
            o.partition,
            o.submitted_offset
        );
        render_occurrence(&mut out, o);
    }
    out
}

fn render_occurrence(out: &mut String, o: &Occurrence) {
    let s = &o.submitted;
    let _ = writeln!(
        out,
        "  received {} ; care on {} ; professional {} ({}) ; {} act line(s)",
        s["received_at"].as_str().unwrap_or("-"),
        s["care_date"].as_str().unwrap_or("-"),
        s.pointer("/professional/rpps")
            .and_then(Value::as_str)
            .unwrap_or("-"),
        s.pointer("/professional/category")
            .and_then(Value::as_str)
            .unwrap_or("-"),
        s["acts"].as_array().map_or(0, Vec::len),
    );
    for step in &o.steps {
        let header = &step.event["header"];
        let _ = writeln!(
            out,
            "  {:<13} → {}/{}@{} ; rules {} ; reference data {}",
            step.stage,
            step.topic,
            step.partition,
            step.offset,
            header["rules_version"].as_str().unwrap_or("-"),
            watermark_text(&header["ref_watermark"]),
        );
        let _ = writeln!(out, "      {}", step_detail(step));
    }
    for line in &o.arithmetic {
        let _ = writeln!(out, "  {line}");
    }
    if !o.accumulators.is_empty() {
        let _ = writeln!(out, "  accumulators (reimbursement state, before → after):");
        for a in &o.accumulators {
            let _ = writeln!(out, "    {}: {} → {}", a.meaning, a.before, a.after);
        }
    }
}

/// `topic/partition@offset, …` of an event's reference watermark.
fn watermark_text(watermark: &Value) -> String {
    watermark
        .as_array()
        .map(|w| {
            w.iter()
                .map(|r| {
                    format!(
                        "{}/{}@{}",
                        r["topic"].as_str().unwrap_or("?"),
                        r["partition"],
                        r["offset"]
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "-".into())
}

/// What a stage's event says about the claim, by its topic.
fn step_detail(step: &Step) -> String {
    let event = &step.event;
    match step.topic.as_str() {
        topics::FSE_VALIDATED => format!(
            "signature {} ; warnings {}",
            event["signature_check"],
            event["warnings"].as_array().map_or(0, Vec::len)
        ),
        topics::FSE_ENTITLED => format!("entitlement {}", event["entitlement"]),
        topics::FSE_ROUTED => format!("route {} {}", event["route"], event["institution_id"]),
        topics::FSE_DECIDED | topics::FSE_REJECTED => format!(
            "status {}",
            event.pointer("/decision/status").unwrap_or(&Value::Null)
        ),
        _ => format!("{}", event.get("error").unwrap_or(&Value::Null)),
    }
}
