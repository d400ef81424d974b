//! What-if replay: the recorded inputs under another rule-table set, beside
//! a baseline under the recorded rules, both run by the live runtime into
//! their own local logs; then what changes, claim by claim and in money.
//!
//! Both runs receive the same inputs and the reference data as recorded at
//! the end of the range, so every difference between them comes from the
//! rules alone (a rights change recorded mid-stream is not a rule change).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::bus::{Bus, BusError, scan};
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::model::{
    AuditCheckpoint, DecisionRec, FseDecided, FseRejected, FseSubmitted,
};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::{self, Shared, topics};
use serde::Serialize;

use crate::archive::append_copy;
use crate::verify::ReplayError;

/// Who a group of claims pays, in cents: the professionals (tiers payant),
/// the insured (less what they owed), and the deductions deferred to a
/// later benefit. A rule can move money between them and leave the
/// AMO + CSS total as it was.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Payees {
    pub to_professional_cents: i64,
    pub to_insured_cents: i64,
    pub deferred_cents: i64,
}

impl Payees {
    fn of(list: &[DecisionRec]) -> Payees {
        list.iter().fold(Payees::default(), |p, d| Payees {
            to_professional_cents: p.to_professional_cents + d.paid_to_professional_cents,
            to_insured_cents: p.to_insured_cents + d.paid_to_insured_cents,
            deferred_cents: p.deferred_cents + d.deferred_cents,
        })
    }

    fn add(&mut self, other: Payees) {
        self.to_professional_cents += other.to_professional_cents;
        self.to_insured_cents += other.to_insured_cents;
        self.deferred_cents += other.deferred_cents;
    }
}

/// Money moved by a group of claims, in cents, on each side.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Money {
    pub claims: u64,
    pub changed: u64,
    pub baseline_cents: i64,
    pub what_if_cents: i64,
    pub difference_cents: i64,
    pub baseline_payees: Payees,
    pub what_if_payees: Payees,
}

/// One claim whose decision changes.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub fse_id: String,
    pub baseline_status: String,
    pub what_if_status: String,
    pub baseline_cents: i64,
    pub what_if_cents: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhatIfReport {
    pub baseline_rules: String,
    pub what_if_rules: String,
    pub claims: u64,
    pub changed: u64,
    pub total: Money,
    pub by_route: BTreeMap<String, Money>,
    pub by_category: BTreeMap<String, Money>,
    /// By month of care (`YYYY-MM`).
    pub by_month: BTreeMap<String, Money>,
    /// The first changed claims (at most 50), for a person to look at.
    pub examples: Vec<Change>,
    pub seconds: f64,
}

/// The inputs of a run: claims and reference topics, offsets kept.
fn copy_inputs(source: &dyn Bus, target: &LocalLog) -> Result<(), BusError> {
    for topic in [
        topics::FSE_SUBMITTED,
        topics::REF_RIGHTS,
        topics::REF_PKI,
        topics::REF_EU_INSTITUTIONS,
    ] {
        for partition in 0..source.partition_count(topic)? {
            scan(source, topic, partition, 0, |r| {
                append_copy(target, topic, partition, &r)?;
                Ok::<_, BusError>(true)
            })?;
            target.flush_partition(topic, partition)?;
        }
    }
    Ok(())
}

/// The final decisions of a run, by FSE id (a resent FSE has several).
fn decisions(
    bus: &dyn Bus,
    registry: &SchemaRegistry,
) -> Result<BTreeMap<String, Vec<DecisionRec>>, BusError> {
    let mut out: BTreeMap<String, Vec<DecisionRec>> = BTreeMap::new();
    for topic in [topics::FSE_DECIDED, topics::FSE_REJECTED] {
        for partition in 0..bus.partition_count(topic)? {
            scan(bus, topic, partition, 0, |r| {
                let decision = if topic == topics::FSE_DECIDED {
                    registry
                        .decode_single::<FseDecided>(&r.value)
                        .map(|e| (e.header.correlation_id, e.decision))
                } else {
                    registry
                        .decode_single::<FseRejected>(&r.value)
                        .map(|e| (e.header.correlation_id, e.decision))
                };
                if let Ok((id, d)) = decision {
                    out.entry(id).or_default().push(d);
                }
                Ok::<_, BusError>(true)
            })?;
        }
    }
    Ok(out)
}

/// A decision's outcome: what a rule change can change (its rule-set
/// version always differs, so it is left out).
type Outcome = (String, Vec<String>, [i64; 11]);

fn outcomes(list: &[DecisionRec]) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = list
        .iter()
        .map(|d| {
            (
                format!("{:?}", d.status),
                d.reasons.iter().map(|r| r.code.clone()).collect(),
                [
                    d.amo_cents,
                    d.css_cents,
                    d.participation_cents,
                    d.franchise_cents,
                    d.flat_fee_cents,
                    d.deferred_cents,
                    d.imputed_cents,
                    d.patient_cents,
                    d.paid_to_professional_cents,
                    d.paid_to_insured_cents,
                    i64::try_from(d.lines.len()).unwrap_or(0),
                ],
            )
        })
        .collect();
    out.sort();
    out
}

/// What a claim's decisions pay (AMO and CSS), and their statuses.
fn summary(list: &[DecisionRec]) -> (i64, String) {
    let paid = list.iter().map(|d| d.amo_cents + d.css_cents).sum();
    let mut statuses: Vec<String> = list
        .iter()
        .map(|d| format!("{:?}", d.status).to_lowercase())
        .collect();
    statuses.sort();
    (paid, statuses.join("+"))
}

fn run(
    source: &dyn Bus,
    dir: &Path,
    rules: Rules,
    pseudonyms: &PseudonymKey,
    trust_unsigned: bool,
) -> Result<Arc<LocalLog>, ReplayError> {
    let log = LocalLog::open(&dir.join("bus"))?;
    let partitions = source.partition_count(topics::FSE_SUBMITTED)?;
    runtime::ensure_topics(&log, partitions).map_err(|e| ReplayError::Other(e.to_string()))?;
    copy_inputs(source, &log)?;
    let shared = Arc::new(Shared {
        bus: Arc::new(log.clone()),
        rules: Arc::new(rules),
        registry: Arc::new(SchemaRegistry::new().map_err(|e| ReplayError::Other(e.to_string()))?),
        pseudonyms: pseudonyms.clone(),
        trust_unsigned,
        state_dir: dir.join("state"),
        group: "what-if".into(),
        batch_max: 2000,
        verify_threads: clearing_pipeline::runtime::cores(),
        workers_per_stage: clearing_pipeline::runtime::DEFAULT_WORKERS_PER_STAGE,
        queries: None,
        store_rewrite: clearing_pipeline::state::RewritePolicy::DEFAULT,
        store_engine: clearing_pipeline::state::Engine::default(),
    });
    runtime::run_to_end(shared).map_err(|e| ReplayError::Other(e.to_string()))?;
    Ok(log)
}

/// Runs the recorded inputs of `source` under `baseline` and `what_if`
/// rules into `out/baseline` and `out/what-if`, and compares.
pub fn what_if(
    source: &dyn Bus,
    out: &Path,
    baseline: Rules,
    what_if: Rules,
    pseudonyms: &PseudonymKey,
    trust_unsigned: bool,
) -> Result<WhatIfReport, ReplayError> {
    let started = std::time::Instant::now();
    let registry = SchemaRegistry::new().map_err(|e| ReplayError::Other(e.to_string()))?;
    let mut report = WhatIfReport::new(baseline.version.clone(), what_if.version.clone());
    let base_log = run(
        source,
        &out.join("baseline"),
        baseline,
        pseudonyms,
        trust_unsigned,
    )?;
    let alt_log = run(
        source,
        &out.join("what-if"),
        what_if,
        pseudonyms,
        trust_unsigned,
    )?;
    let base = decisions(&base_log, &registry)?;
    let alt = decisions(&alt_log, &registry)?;
    let facts = submission_facts(source, &registry)?;
    let ids: std::collections::BTreeSet<&String> = base.keys().chain(alt.keys()).collect();
    let empty = Vec::new();
    for id in ids {
        let b = base.get(id).unwrap_or(&empty);
        let a = alt.get(id).unwrap_or(&empty);
        report.add(id, b, a, facts.get(id));
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The rule sets the recorded run's checkpoints name, each once.
pub fn recorded_rules_versions(
    source: &dyn Bus,
) -> Result<std::collections::BTreeSet<String>, ReplayError> {
    let registry = SchemaRegistry::new().map_err(|e| ReplayError::Other(e.to_string()))?;
    let mut versions = std::collections::BTreeSet::new();
    for partition in 0..source.partition_count(topics::AUDIT_CHECKPOINTS)? {
        scan(source, topics::AUDIT_CHECKPOINTS, partition, 0, |r| {
            if let Ok(c) = registry.decode_single::<AuditCheckpoint>(&r.value) {
                versions.insert(c.rules_version);
            }
            Ok::<_, BusError>(true)
        })?;
    }
    Ok(versions)
}

/// The baseline of a what-if when none is given: the one rule set the
/// recorded run ran under (the current set or an earlier published one), so
/// that the baseline decides as the record did. `None` when the record names
/// no set this binary has, or several (the live runtime runs one set: the
/// caller must choose with `--recorded-rules`).
pub fn recorded_baseline(
    versions: &std::collections::BTreeSet<String>,
    current: Rules,
) -> Result<Option<Rules>, ReplayError> {
    let [version] = versions.iter().collect::<Vec<_>>()[..] else {
        return Ok(None);
    };
    if *version == current.version {
        return Ok(Some(current));
    }
    match Rules::published(version) {
        Ok(found) => Ok(found.map(|rules| (*rules).clone())),
        Err(e) => Err(ReplayError::Other(e.to_string())),
    }
}

/// Category and month of each claim, from its submission.
fn submission_facts(
    source: &dyn Bus,
    registry: &SchemaRegistry,
) -> Result<BTreeMap<String, (String, String)>, BusError> {
    let mut facts: BTreeMap<String, (String, String)> = BTreeMap::new();
    for partition in 0..source.partition_count(topics::FSE_SUBMITTED)? {
        scan(source, topics::FSE_SUBMITTED, partition, 0, |r| {
            if let Ok(e) = registry.decode_single::<FseSubmitted>(&r.value) {
                facts.insert(
                    e.fse_id,
                    (
                        format!("{:?}", e.professional.category).to_lowercase(),
                        e.care_date.format("%Y-%m").to_string(),
                    ),
                );
            }
            Ok::<_, BusError>(true)
        })?;
    }
    Ok(facts)
}

impl WhatIfReport {
    fn new(baseline_rules: String, what_if_rules: String) -> WhatIfReport {
        WhatIfReport {
            baseline_rules,
            what_if_rules,
            claims: 0,
            changed: 0,
            total: Money::default(),
            by_route: BTreeMap::new(),
            by_category: BTreeMap::new(),
            by_month: BTreeMap::new(),
            examples: Vec::new(),
            seconds: 0.0,
        }
    }

    /// Counts claim `id`, decided `b` in the baseline and `a` in the
    /// what-if, in the total and in its route, category and month.
    fn add(
        &mut self,
        id: &str,
        b: &[DecisionRec],
        a: &[DecisionRec],
        facts: Option<&(String, String)>,
    ) {
        let (b_paid, b_status) = summary(b);
        let (a_paid, a_status) = summary(a);
        let changed = outcomes(b) != outcomes(a);
        let route = b
            .iter()
            .chain(a)
            .find_map(|d| d.route)
            .map_or("none".to_string(), |r| format!("{r:?}").to_lowercase());
        let (category, month) = facts
            .cloned()
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        for money in [
            &mut self.total,
            self.by_route.entry(route).or_default(),
            self.by_category.entry(category).or_default(),
            self.by_month.entry(month).or_default(),
        ] {
            money.claims += 1;
            money.changed += u64::from(changed);
            money.baseline_cents += b_paid;
            money.what_if_cents += a_paid;
            money.difference_cents += a_paid - b_paid;
            money.baseline_payees.add(Payees::of(b));
            money.what_if_payees.add(Payees::of(a));
        }
        self.claims += 1;
        if changed {
            self.changed += 1;
            if self.examples.len() < 50 {
                self.examples.push(Change {
                    fse_id: id.to_string(),
                    baseline_status: b_status,
                    what_if_status: a_status,
                    baseline_cents: b_paid,
                    what_if_cents: a_paid,
                });
            }
        }
    }
}
