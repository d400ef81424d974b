//! The ledger stage's core: accumulations that close on an explicit, dated
//! close event — batches (ARL), payment runs (orders) and EU half-years
//! (claims). An FSE outcome is added to its accumulators; a close event dated
//! D emits every accumulator due by D and keeps the rest.
//!
//! State (one partition's tree; no scan is needed, so the pure function only
//! gets and puts):
//! - `lqd/<date>` and `lqd/<date>/<i>`: the open accumulators by the date a
//!   close first emits them (a batch or a payment: its day of receipt; an EU
//!   half-year: the day after it ends; anything opened after a close of that
//!   date: the day after the last close), in the order they opened; `lq/min`
//!   the earliest such date. A close on D walks the days from `lq/min` to D:
//!   its cost is the days walked plus what it emits, whatever stays open;
//! - `acc/<kind>/…`: an accumulator's entry count, and `acc/<kind>/…/<i>` its
//!   entries, one key each (adding is O(1) whatever the accumulator's size).
//!   Insured payees' keys start `acc/payi/<beneficiary key>`;
//! - `lclose/on`, `lclose/value`: the last close date and its value date. A
//!   close at or before the last one is a repeat and emits nothing.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::calendar::{HalfYear, is_working_day};
use super::eu_clearing::{self, EuEntry};
use super::payments::{self, PayEntry};
use super::returns::{self, LotEntry};
use super::{Emit, OutboundError};
use crate::events::model::{EventHeader, LedgerEntry, LedgerOutcomeRec, PayeeKind, Status};
use crate::rules::{EuClaimAmount, Rules};
use crate::stages::Context;
use crate::stages::contract::{self, Decided, Topics};
use crate::stages::emit::{EmitKey, Inputs};
use crate::state::{StateTxn, StoreError};
use crate::topics;

/// What the ledger consults besides its input and state.
pub struct LedgerCtx<'a> {
    pub rules: &'a Rules,
    /// The partition: part of every batch, order and claim id (accumulations
    /// are per partition, docs/outbound.md).
    pub partition: u32,
}

const MIN_DUE: &[u8] = b"lq/min";
/// A close walks at most this many days back (older entries are a bug).
const MAX_WALK_DAYS: i64 = 366 * 60;
const LAST_CLOSE: &[u8] = b"lclose/on";
const LAST_VALUE: &[u8] = b"lclose/value";

/// An accumulator's identity; its key is `acc/` + [`Acc::id`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Acc {
    Lot {
        rpps: String,
        received_on: NaiveDate,
    },
    PayInsured {
        key: String,
        received_on: NaiveDate,
    },
    /// What one payee (a billing identifier, or the RPPS) is owed from one
    /// day of receipt.
    PayProfessional {
        payee: String,
        received_on: NaiveDate,
    },
    Eu {
        country: String,
        institution: String,
        half: HalfYear,
    },
}

/// Identifiers inside keys are joined with `/`: one that holds `/` (or `%`,
/// or nothing) is percent-escaped, so that an id always parses back to the
/// same accumulator. An RPPS as sent may be anything validation rejected.
fn part(text: &str) -> Result<String, OutboundError> {
    if text.len() > MAX_PART_LEN {
        return Err(OutboundError::Input(format!(
            "an identifier of {} bytes cannot key an accumulation",
            text.len()
        )));
    }
    if text.is_empty() {
        return Ok("%".into());
    }
    Ok(text.replace('%', "%25").replace('/', "%2F"))
}

/// The escaped form of an identifier already checked by [`part`].
fn esc(text: &str) -> String {
    part(text).unwrap_or_else(|_| "%".into())
}

fn unpart(text: &str) -> String {
    if text == "%" {
        return String::new();
    }
    text.replace("%2F", "/").replace("%25", "%")
}

/// Longest identifier that keys an accumulation.
const MAX_PART_LEN: usize = 256;

impl Acc {
    fn id(&self) -> String {
        match self {
            Acc::Lot { rpps, received_on } => format!("lot/{}/{received_on}", esc(rpps)),
            Acc::PayInsured { key, received_on } => format!("payi/{}/{received_on}", esc(key)),
            Acc::PayProfessional { payee, received_on } => {
                format!("payp/{}/{received_on}", esc(payee))
            }
            Acc::Eu {
                country,
                institution,
                half,
            } => format!("eu/{}/{}/{}", esc(country), esc(institution), half.label()),
        }
    }

    fn parse(id: &str) -> Option<Acc> {
        let parts: Vec<&str> = id.split('/').collect();
        let date = |s: &str| s.parse::<NaiveDate>().ok();
        match parts.as_slice() {
            ["lot", rpps, on] => Some(Acc::Lot {
                rpps: unpart(rpps),
                received_on: date(on)?,
            }),
            ["payi", key, on] => Some(Acc::PayInsured {
                key: unpart(key),
                received_on: date(on)?,
            }),
            ["payp", payee, on] => Some(Acc::PayProfessional {
                payee: unpart(payee),
                received_on: date(on)?,
            }),
            ["eu", country, institution, half] => Some(Acc::Eu {
                country: unpart(country),
                institution: unpart(institution),
                half: HalfYear::parse(half)?,
            }),
            _ => None,
        }
    }

    /// The first close date that emits it.
    fn due(&self) -> NaiveDate {
        match self {
            Acc::Lot { received_on, .. }
            | Acc::PayInsured { received_on, .. }
            | Acc::PayProfessional { received_on, .. } => *received_on,
            Acc::Eu { half, .. } => half.end().succ_opt().unwrap_or(NaiveDate::MAX),
        }
    }
}

fn corrupt(key: &[u8], what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        what: what.to_string(),
    }
}

fn get_json<T: DeserializeOwned>(
    state: &StateTxn<'_>,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match state.get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(key, e)),
    }
}

fn put_json<T: Serialize>(state: &mut StateTxn<'_>, key: Vec<u8>, value: &T) {
    // Serialising these plain structs cannot fail.
    state.put(key, serde_json::to_vec(value).unwrap_or_default());
}

fn get_date(state: &StateTxn<'_>, key: &[u8]) -> Result<Option<NaiveDate>, StoreError> {
    get_json::<NaiveDate>(state, key)
}

fn entry_key(id: &str, index: i64) -> Vec<u8> {
    format!("acc/{id}/{index:010}").into_bytes()
}

fn due_key(date: NaiveDate) -> Vec<u8> {
    format!("lqd/{date}").into_bytes()
}

fn due_item_key(date: NaiveDate, index: i64) -> Vec<u8> {
    format!("lqd/{date}/{index:010}").into_bytes()
}

/// Adds one entry to an accumulator, opening (and indexing) it if new.
fn add<T: Serialize>(state: &mut StateTxn<'_>, acc: &Acc, entry: &T) -> Result<(), StoreError> {
    let id = acc.id();
    let count_key = format!("acc/{id}").into_bytes();
    let count = match state.get(&count_key)? {
        None => {
            // Past a close of its date, the next close emits it.
            let after_close = get_date(state, LAST_CLOSE)?.and_then(|d| d.succ_opt());
            let due = after_close.map_or(acc.due(), |next| acc.due().max(next));
            let n = state.get_i64(&due_key(due))?;
            state.put(due_item_key(due, n), id.clone().into_bytes());
            state.put_i64(due_key(due), n + 1);
            if get_date(state, MIN_DUE)?.is_none_or(|min| due < min) {
                put_json(state, MIN_DUE.to_vec(), &due);
            }
            0
        }
        Some(_) => state.get_i64(&count_key)?,
    };
    put_json(state, entry_key(&id, count), entry);
    state.put_i64(count_key, count + 1);
    Ok(())
}

/// Takes (reads and deletes) every entry of an accumulator.
fn take<T: DeserializeOwned>(state: &mut StateTxn<'_>, id: &str) -> Result<Vec<T>, StoreError> {
    let count_key = format!("acc/{id}").into_bytes();
    let count = state.get_i64(&count_key)?;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for i in 0..count {
        let key = entry_key(id, i);
        let entry = get_json(state, &key)?.ok_or_else(|| corrupt(&key, "missing entry"))?;
        out.push(entry);
        state.delete(key);
    }
    state.delete(count_key);
    Ok(out)
}

/// The ledger on the bus: `outbound.ledger` (outcomes from settlement and
/// returns, close events from `clearing close`) in; acknowledgements,
/// payment orders and EU claims out, keyed by their own ids.
pub struct LedgerStage;

impl contract::Stage for LedgerStage {
    type Input = LedgerEntry;

    const TOPICS: Topics = Topics {
        name: "ledger",
        input: topics::OUTBOUND_LEDGER,
        pass: topics::PAYMENTS_ORDERS,
        outputs: &[
            topics::RETURNS_PROFESSIONAL,
            topics::PAYMENTS_ORDERS,
            topics::EU_CLAIMS,
        ],
        changelog: "ledger.changelog",
        dlq: "dlq.ledger",
    };

    fn header(entry: &LedgerEntry) -> Option<&EventHeader> {
        Some(&entry.header)
    }

    fn decide(
        &self,
        entry: LedgerEntry,
        at: &Inputs<'_>,
        state: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Decided, StoreError> {
        let lctx = LedgerCtx {
            rules: ctx.rules,
            partition: at.record.partition,
        };
        let emits = apply(&entry, state, &lctx);
        at.outbound(emits, &entry.header, ctx, EmitKey::Correlation)
    }
}

/// One ledger entry: an outcome is accumulated (no output); a close emits
/// what is due — ARLs, then payment orders, then EU claims.
pub fn apply(
    entry: &LedgerEntry,
    state: &mut StateTxn<'_>,
    ctx: &LedgerCtx<'_>,
) -> Result<Vec<Emit>, OutboundError> {
    match (&entry.close_on, &entry.outcome) {
        (None, Some(outcome)) => {
            accumulate(outcome, state, ctx)?;
            Ok(Vec::new())
        }
        (Some(close_on), None) => close(*close_on, state, ctx),
        _ => Err(OutboundError::Input(
            "a ledger entry is either an outcome or a close event".into(),
        )),
    }
}

/// Adds an outcome to its accumulators. A refused outcome is dead-lettered
/// with its writes: each input writes to an overlay of its own, dropped
/// with the dead letter (stages/contract.rs), so no check need come first.
fn accumulate(
    o: &LedgerOutcomeRec,
    state: &mut StateTxn<'_>,
    ctx: &LedgerCtx<'_>,
) -> Result<(), OutboundError> {
    part(&o.rpps)?;
    if let Some(payee) = &o.payee {
        part(payee)?;
    }
    // Every accumulator is due on a date counted from the receipt: outside
    // the calendar it would never close (year 9999), or make every later
    // close walk past its bound and fail (year 1899), stopping the stage.
    is_working_day(&ctx.rules.calendar, o.received_on)?;
    let lot = Acc::Lot {
        rpps: o.rpps.clone(),
        received_on: o.received_on,
    };
    if o.status != Status::Paid {
        return Ok(add(state, &lot, &LotEntry::of(o))?);
    }
    let paid = Paid::check(o)?;
    add(state, &lot, &LotEntry::of(o))?;
    paid.add(o, state, ctx.rules)?;
    Ok(())
}

/// A paid outcome, checked: its id, and the insured payee and EU
/// institution it names, if any.
struct Paid<'o> {
    fse_id: String,
    insured: Option<&'o str>,
    eu: Option<(&'o String, &'o String)>,
}

impl<'o> Paid<'o> {
    fn check(o: &'o LedgerOutcomeRec) -> Result<Self, OutboundError> {
        let fse_id = o
            .fse_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| OutboundError::Input("a paid outcome without an FSE id".into()))?;
        let amounts = [
            o.amo_cents,
            o.paid_to_professional_cents,
            o.paid_to_insured_cents,
            o.imputed_cents,
        ];
        if amounts
            .iter()
            .any(|a| !(0..=crate::money::MAX_AMOUNT_CENTS).contains(a))
        {
            return Err(OutboundError::Input("outcome amounts out of range".into()));
        }
        let insured = if o.paid_to_insured_cents > 0 || o.imputed_cents > 0 {
            let key = o.beneficiary_key.as_deref().ok_or_else(|| {
                OutboundError::Input("a paid outcome without a beneficiary key".into())
            })?;
            part(key)?;
            Some(key)
        } else {
            None
        };
        let eu = match (&o.eu_country, &o.eu_institution_id) {
            (Some(country), Some(institution)) => {
                part(country)?;
                part(institution)?;
                Some((country, institution))
            }
            _ => None,
        };
        Ok(Paid {
            fse_id,
            insured,
            eu,
        })
    }

    /// Adds the outcome to its payees' payment runs and its EU half-year.
    fn add(
        self,
        o: &LedgerOutcomeRec,
        state: &mut StateTxn<'_>,
        rules: &Rules,
    ) -> Result<(), OutboundError> {
        let received_on = o.received_on;
        let entry = |amount: i64, imputed: i64, guaranteed: bool| PayEntry {
            fse_id: self.fse_id.clone(),
            received_on,
            amount_cents: amount,
            imputed_cents: imputed,
            amo_cents: o.amo_cents,
            guaranteed,
        };
        if o.paid_to_professional_cents > 0 {
            // Paid to the billing identifier the FSE names, else the RPPS.
            let payee = o.payee.clone().unwrap_or_else(|| o.rpps.clone());
            let acc = Acc::PayProfessional { payee, received_on };
            add(
                state,
                &acc,
                &entry(o.paid_to_professional_cents, 0, o.tiers_payant_amo),
            )?;
        }
        if let Some(key) = self.insured {
            let acc = Acc::PayInsured {
                key: key.into(),
                received_on,
            };
            add(
                state,
                &acc,
                &entry(o.paid_to_insured_cents, o.imputed_cents, false),
            )?;
        }
        if let Some((country, institution)) = self.eu {
            let half = HalfYear::of(received_on);
            let acc = Acc::Eu {
                country: country.clone(),
                institution: institution.clone(),
                half,
            };
            let amount_cents = match super::eu_clearing::limits(rules, half)?.amount {
                EuClaimAmount::Paid => o.paid_to_professional_cents + o.paid_to_insured_cents,
                EuClaimAmount::Amo => o.amo_cents,
            };
            let claim = EuEntry {
                fse_id: self.fse_id,
                amount_cents,
            };
            add(state, &acc, &claim)?;
        }
        Ok(())
    }
}

fn close(
    close_on: NaiveDate,
    state: &mut StateTxn<'_>,
    ctx: &LedgerCtx<'_>,
) -> Result<Vec<Emit>, OutboundError> {
    // The close date must be one the calendar answers for (value dates and
    // guarantees are counted from it).
    is_working_day(&ctx.rules.calendar, close_on)?;
    if get_date(state, LAST_CLOSE)?.is_some_and(|last| close_on <= last) {
        return Ok(Vec::new());
    }
    let previous_value = get_date(state, LAST_VALUE)?;
    let value_date = payments::value_date(ctx.rules, close_on, previous_value)?;
    let mut due = Due::default();
    for id in take_due_ids(state, close_on)? {
        due.take(state, ctx, close_on, id)?;
    }
    put_json(state, LAST_CLOSE.to_vec(), &close_on);
    let mut out = due.arls;
    let orders = payments::orders(ctx.rules, due.pay, value_date, ctx.partition)?;
    if !orders.is_empty() {
        put_json(state, LAST_VALUE.to_vec(), &value_date);
    }
    out.extend(orders.into_iter().map(Emit::Order));
    out.extend(due.eu);
    Ok(out)
}

/// Takes the ids of every accumulator due by `close_on` off the due index,
/// day by day from the earliest, in the order they opened.
fn take_due_ids(
    state: &mut StateTxn<'_>,
    close_on: NaiveDate,
) -> Result<Vec<String>, OutboundError> {
    let mut due_ids = Vec::new();
    let Some(min) = get_date(state, MIN_DUE)? else {
        return Ok(due_ids);
    };
    if (close_on - min).num_days() > MAX_WALK_DAYS {
        return Err(corrupt(MIN_DUE, "open accumulations older than the walk bound").into());
    }
    let mut day = min;
    while day <= close_on {
        let count = state.get_i64(&due_key(day))?;
        for i in 0..count {
            let key = due_item_key(day, i);
            let raw = state
                .get(&key)?
                .ok_or_else(|| corrupt(&key, "index hole"))?;
            state.delete(key.clone());
            due_ids.push(String::from_utf8(raw).map_err(|e| corrupt(&key, e))?);
        }
        state.delete(due_key(day));
        day = day
            .succ_opt()
            .ok_or_else(|| corrupt(MIN_DUE, "date overflow"))?;
    }
    // What stays open is due after `close_on`: the next walk starts there.
    put_json(state, MIN_DUE.to_vec(), &day);
    Ok(due_ids)
}

/// What a close emits, gathered from the accumulators due: the ARLs, the
/// entries of each payee's payment, the EU claims.
#[derive(Default)]
struct Due {
    arls: Vec<Emit>,
    pay: BTreeMap<(PayeeKind, String), Vec<PayEntry>>,
    eu: Vec<Emit>,
}

impl Due {
    /// Takes the accumulator `id` whole into what the close emits.
    fn take(
        &mut self,
        state: &mut StateTxn<'_>,
        ctx: &LedgerCtx<'_>,
        close_on: NaiveDate,
        id: String,
    ) -> Result<(), OutboundError> {
        let acc = Acc::parse(&id).ok_or_else(|| corrupt(id.as_bytes(), "unknown accumulator"))?;
        match acc {
            Acc::Lot { rpps, received_on } => {
                let entries: Vec<LotEntry> = take(state, &id)?;
                self.arls.push(Emit::Return(returns::acknowledgement(
                    &rpps,
                    received_on,
                    &entries,
                    ctx.partition,
                    close_on,
                )));
            }
            Acc::PayInsured { key, .. } => {
                let entries: Vec<PayEntry> = take(state, &id)?;
                let payee = self.pay.entry((PayeeKind::Insured, key)).or_default();
                payee.extend(entries);
            }
            Acc::PayProfessional { payee, .. } => {
                let entries: Vec<PayEntry> = take(state, &id)?;
                let payee = self
                    .pay
                    .entry((PayeeKind::Professional, payee))
                    .or_default();
                payee.extend(entries);
            }
            Acc::Eu {
                country,
                institution,
                half,
            } => {
                let entries: Vec<EuEntry> = take(state, &id)?;
                let claims = eu_clearing::claims(
                    ctx.rules,
                    &country,
                    &institution,
                    half,
                    entries,
                    close_on,
                    ctx.partition,
                )?;
                self.eu.extend(claims.into_iter().map(Emit::Eu));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::{EuClaim, PaymentOrder, ProfessionalReturn, ReturnKind};
    use crate::outbound::blank_header;
    use crate::state::{MemStore, StateStore};
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn outcome(fse: &str, rpps: &str, on: &str, paid: i64, tp: bool) -> LedgerOutcomeRec {
        LedgerOutcomeRec {
            fse_id: Some(fse.into()),
            beneficiary_key: Some(format!("k-{fse}")),
            rpps: rpps.into(),
            received_on: d(on),
            status: Status::Paid,
            validation_rejected: false,
            reason_codes: vec![],
            tiers_payant_amo: tp,
            amo_cents: paid,
            paid_to_professional_cents: if tp { paid } else { 0 },
            paid_to_insured_cents: if tp { 0 } else { paid },
            imputed_cents: 0,
            eu_country: None,
            eu_institution_id: None,
            payee: None,
        }
    }

    fn rejected(fse: &str, rpps: &str, on: &str, validation: bool) -> LedgerOutcomeRec {
        LedgerOutcomeRec {
            status: Status::Rejected,
            validation_rejected: validation,
            reason_codes: vec!["bad_signature".into()],
            paid_to_professional_cents: 0,
            paid_to_insured_cents: 0,
            amo_cents: 0,
            ..outcome(fse, rpps, on, 0, false)
        }
    }

    fn visitor(fse: &str, on: &str, paid: i64) -> LedgerOutcomeRec {
        LedgerOutcomeRec {
            eu_country: Some("DE".into()),
            eu_institution_id: Some("DE-101575519".into()),
            ..outcome(fse, "10000123454", on, paid, false)
        }
    }

    fn o(x: LedgerOutcomeRec) -> LedgerEntry {
        LedgerEntry {
            header: blank_header(),
            close_on: None,
            outcome: Some(x),
        }
    }

    fn close_on(on: &str) -> LedgerEntry {
        LedgerEntry {
            header: blank_header(),
            close_on: Some(d(on)),
            outcome: None,
        }
    }

    /// Runs entries one by one, committing each (as batches would).
    struct Given {
        store: MemStore,
        rules: Rules,
    }

    impl Given {
        fn new() -> Given {
            Given {
                store: MemStore::default(),
                rules: Rules::embedded().unwrap(),
            }
        }

        fn when(&self, entry: LedgerEntry) -> Vec<Emit> {
            let mut txn = StateTxn::new(&self.store);
            let ctx = LedgerCtx {
                rules: &self.rules,
                partition: 1,
            };
            let out = apply(&entry, &mut txn, &ctx).unwrap();
            self.store.apply(&txn.into_writes()).unwrap();
            out
        }
    }

    fn orders(out: &[Emit]) -> Vec<&PaymentOrder> {
        out.iter()
            .filter_map(|e| match e {
                Emit::Order(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    fn arls(out: &[Emit]) -> Vec<&ProfessionalReturn> {
        out.iter()
            .filter_map(|e| match e {
                Emit::Return(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn eu(out: &[Emit]) -> Vec<&EuClaim> {
        out.iter()
            .filter_map(|e| match e {
                Emit::Eu(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_close_acknowledges_batches_and_pays_what_was_received_by_then() {
        let g = Given::new();
        assert!(
            g.when(o(outcome("F1", "P1", "2025-01-06", 2300, true)))
                .is_empty()
        );
        g.when(o(outcome("F2", "P1", "2025-01-06", 1000, true)));
        g.when(o(rejected("F3", "P1", "2025-01-06", true)));
        g.when(o(rejected("F4", "P2", "2025-01-06", true)));
        g.when(o(outcome("F5", "P1", "2025-01-08", 500, true)));
        let out = g.when(close_on("2025-01-07"));
        let a = arls(&out);
        assert_eq!(a.len(), 2, "one per professional and day");
        assert_eq!(
            (a[0].rpps.as_str(), a[0].kind, a[0].fse_count),
            ("P1", ReturnKind::ArlPositive, Some(3))
        );
        assert_eq!(
            (a[1].rpps.as_str(), a[1].kind),
            ("P2", ReturnKind::ArlNegative)
        );
        let p = orders(&out);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].fse_ids, ["F1", "F2"]);
        assert_eq!(p[0].amount_cents, 3300);
        // Tue 7 Jan + 3 working days.
        assert_eq!(p[0].value_date, d("2025-01-10"));
        assert_eq!(p[0].late_penalty_cents, 0);
        // A repeated close emits nothing; the next one takes F5.
        assert!(g.when(close_on("2025-01-07")).is_empty());
        let out = g.when(close_on("2025-01-08"));
        let p = orders(&out);
        assert_eq!(p[0].fse_ids, ["F5"]);
        assert_eq!(p[0].value_date, d("2025-01-13"));
        assert!(g.when(close_on("2025-01-09")).is_empty(), "nothing left");
    }

    /// A health centre's two GPs bill under its FINESS: one order pays the
    /// centre for both; a third GP without a billing identifier is paid on
    /// its RPPS; each professional's batch is still acknowledged by RPPS.
    #[test]
    fn a_payment_order_pays_the_billing_identifier_the_fses_name() {
        let g = Given::new();
        let centre = |x: LedgerOutcomeRec| LedgerOutcomeRec {
            payee: Some("750000010".into()),
            ..x
        };
        g.when(o(centre(outcome("F1", "P1", "2025-01-06", 2300, true))));
        g.when(o(centre(outcome("F2", "P2", "2025-01-06", 1000, true))));
        g.when(o(outcome("F3", "P3", "2025-01-06", 500, true)));
        let out = g.when(close_on("2025-01-07"));
        let paid: Vec<(&str, &[String], i64)> = orders(&out)
            .iter()
            .map(|p| (p.payee.as_str(), p.fse_ids.as_slice(), p.amount_cents))
            .collect();
        assert_eq!(
            paid,
            [
                ("750000010", &["F1".to_string(), "F2".to_string()][..], 3300),
                ("P3", &["F3".to_string()][..], 500),
            ]
        );
        let mut acknowledged: Vec<&str> = arls(&out).iter().map(|a| a.rpps.as_str()).collect();
        acknowledged.sort_unstable();
        assert_eq!(acknowledged, ["P1", "P2", "P3"]);
    }

    #[test]
    fn a_late_payment_run_owes_the_guarantee_penalties() {
        let g = Given::new();
        // Received Mon 6 Jan 2025; the run only closes on Fri 17 Jan: value
        // date Wed 22 Jan, the 12th working day: 10 % of the AMO part.
        g.when(o(outcome("F1", "P1", "2025-01-06", 2300, true)));
        // Received Fri 10 Jan: paid on its 8th working day: EUR 1.
        g.when(o(outcome("F2", "P1", "2025-01-10", 1000, true)));
        // Paid to an insured: no guarantee.
        g.when(o(outcome("F3", "P1", "2025-01-06", 700, false)));
        let out = g.when(close_on("2025-01-17"));
        let p = orders(&out);
        let ps = p
            .iter()
            .find(|o| o.payee_kind == PayeeKind::Professional)
            .unwrap();
        assert_eq!(ps.value_date, d("2025-01-22"));
        let by_fse: Vec<(&str, i32, bool, i64)> = ps
            .guarantees
            .iter()
            .map(|g| {
                (
                    g.fse_id.as_str(),
                    g.paid_working_day,
                    g.late,
                    g.penalty_cents,
                )
            })
            .collect();
        assert_eq!(by_fse, [("F1", 12, true, 230), ("F2", 8, true, 100)]);
        assert_eq!(ps.late_penalty_cents, 330);
        assert_eq!(ps.guarantee_due, Some(d("2025-01-15")));
        assert_eq!(
            ps.amount_cents, 3300,
            "penalties are owed apart, not in the amount"
        );
        let ins = p
            .iter()
            .find(|o| o.payee_kind == PayeeKind::Insured)
            .unwrap();
        assert!(ins.guarantees.is_empty());
    }

    #[test]
    fn eu_half_years_close_after_their_end_and_late_claims_are_not_receivable() {
        let g = Given::new();
        g.when(o(visitor("E1", "2024-11-03", 2100)));
        g.when(o(visitor("E2", "2024-12-31", 1900)));
        g.when(o(visitor("E3", "2025-01-02", 1000)));
        // A close inside H1 2025 introduces H2 2024 only.
        let out = g.when(close_on("2025-03-03"));
        let c = eu(&out);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].half_year, "2024-H2");
        assert_eq!(c[0].fse_ids, ["E1", "E2"]);
        assert_eq!(c[0].amount_cents, 4000);
        assert_eq!(c[0].introduced_on, d("2025-03-03"));
        assert_eq!(c[0].introduction_deadline, d("2025-12-31"));
        assert_eq!(c[0].payment_due, d("2026-09-30"));
        assert_eq!(c[0].dispute_deadline, d("2028-03-31"));
        assert!(c[0].receivable);
        // H1 2025 is only closed 14 months after its end: too late.
        let out = g.when(close_on("2026-08-31"));
        let c = eu(&out);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].half_year.as_str(), c[0].receivable),
            ("2025-H1", false)
        );
        assert_eq!(c[0].introduction_deadline, d("2026-06-30"));
    }

    /// Reg. 987/2009 art. 62 (actual expenditure of the institution of the
    /// place of stay; domain.md 4.1): a claim is for each decision's AMO
    /// share, whatever a deferred deduction or an imputed debt did to the
    /// payment. The rule set before 2026-12-06 summed the payments; it is
    /// kept so that its runs replay as they ran.
    #[test]
    fn an_eu_claim_is_for_the_amo_share_not_the_payment() {
        let imputed = LedgerOutcomeRec {
            paid_to_insured_cents: 1600,
            imputed_cents: 500,
            ..visitor("E1", "2024-11-04", 2100)
        };
        let deferred = LedgerOutcomeRec {
            tiers_payant_amo: true,
            paid_to_professional_cents: 2100,
            paid_to_insured_cents: 0,
            ..visitor("E2", "2024-11-05", 1900)
        };
        let total = |rules: Rules| {
            let g = Given {
                store: MemStore::default(),
                rules,
            };
            g.when(o(imputed.clone()));
            g.when(o(deferred.clone()));
            let out = g.when(close_on("2025-03-03"));
            eu(&out).iter().map(|c| c.amount_cents).sum::<i64>()
        };
        assert_eq!(total(Rules::embedded().unwrap()), 2100 + 1900);
        let before = "sha256:98f62d4c327e46e8c3dec4ea2321f500c3ef2f2c9d9405b8d3b74cb5fee677de";
        let before = Rules::published(before).unwrap().expect("kept");
        assert_eq!(total((*before).clone()), 1600 + 2100);
    }

    #[test]
    fn bad_entries_are_refused_not_accumulated() {
        let g = Given::new();
        let mut txn = StateTxn::new(&g.store);
        let ctx = LedgerCtx {
            rules: &g.rules,
            partition: 0,
        };
        let both = LedgerEntry {
            close_on: Some(d("2025-01-01")),
            ..o(outcome("F", "P", "2025-01-01", 1, true))
        };
        assert!(matches!(
            apply(&both, &mut txn, &ctx),
            Err(OutboundError::Input(_))
        ));
        let long = o(outcome("F", &"9".repeat(300), "2025-01-01", 1, true));
        assert!(matches!(
            apply(&long, &mut txn, &ctx),
            Err(OutboundError::Input(_))
        ));
        assert!(matches!(
            apply(&close_on("2099-01-01"), &mut txn, &ctx),
            Err(OutboundError::Calendar(_))
        ));
    }

    #[test]
    fn odd_identifiers_round_trip_through_their_keys() {
        let g = Given::new();
        g.when(o(outcome("F1", "P/1%2F", "2025-01-06", 100, true)));
        g.when(o(rejected("F2", "", "2025-01-06", true)));
        let out = g.when(close_on("2025-01-07"));
        let mut rpps: Vec<&str> = arls(&out).iter().map(|a| a.rpps.as_str()).collect();
        rpps.sort_unstable();
        assert_eq!(rpps, ["", "P/1%2F"]);
        assert_eq!(orders(&out)[0].payee, "P/1%2F");
    }

    proptest! {
        /// Whatever the outcomes and closes, every paid amount is ordered
        /// exactly once, every FSE is acknowledged in exactly one batch, and
        /// every visitor's payment is claimed exactly once, once a final close
        /// has passed every date.
        #[test]
        fn every_outcome_is_paid_acknowledged_and_claimed_exactly_once(
            items in proptest::collection::vec(
                (0u8..4, 0u64..400, 0i64..50_000, any::<bool>(), 0u8..3), 1..120),
            closes in proptest::collection::vec(0u64..400, 0..6),
        ) {
            let g = Given::new();
            let base = d("2024-01-01");
            let mut paid_total = 0i64;
            let mut eu_total = 0i64;
            let mut fses = 0usize;
            let mut out = Vec::new();
            let mut closes = closes;
            for (i, (kind, day, amount, tp, pro)) in items.iter().enumerate() {
                if let Some(c) = closes.pop() {
                    if i % 3 == 0 {
                        out.extend(g.when(close_on(&(base + chrono::Days::new(c)).to_string())));
                    } else {
                        closes.push(c);
                    }
                }
                let on = (base + chrono::Days::new(*day)).to_string();
                let id = format!("F{i:04}");
                let rpps = format!("P{pro}");
                let x = match kind {
                    0 => rejected(&id, &rpps, &on, *tp),
                    1 => { eu_total += amount; visitor(&id, &on, *amount) }
                    _ => outcome(&id, &rpps, &on, *amount, *tp),
                };
                if *kind != 0 { paid_total += amount; }
                fses += 1;
                out.extend(g.when(o(x)));
            }
            out.extend(g.when(close_on("2026-12-31")));
            let ordered: i64 = orders(&out).iter().map(|o| o.amount_cents).sum();
            prop_assert_eq!(ordered, paid_total);
            let mut ids: Vec<&String> = orders(&out).iter().flat_map(|o| o.fse_ids.iter()).collect();
            let n = ids.len();
            ids.sort();
            ids.dedup();
            prop_assert_eq!(ids.len(), n, "no FSE paid twice");
            let acked: i32 = arls(&out).iter().filter_map(|a| a.fse_count).sum();
            prop_assert_eq!(acked as usize, fses);
            prop_assert_eq!(eu(&out).iter().map(|c| c.amount_cents).sum::<i64>(), eu_total);
            // Nothing stays open once every date is closed.
            let open = g.store.scan_prefix(b"acc/").unwrap();
            prop_assert!(open.is_empty(), "{} keys left", open.len());
            // Value dates strictly increase, so a payee has one order per date
            // and part.
            let mut keys: Vec<String> = orders(&out).iter().map(|o| o.order_id.clone()).collect();
            let n = keys.len();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), n);
        }
    }
}
