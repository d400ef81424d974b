//! Outbound flows (the functional core): what leaves the insurer once a claim
//! is decided — returns to the professional, claims on complementary
//! insurers, payment orders with the tiers-payant guarantee, and claims on
//! foreign institutions under Reg. 987/2009.
//!
//! Three pure entry points, one per runtime stage (docs/outbound.md):
//! - [`settle`] — a paid decision (`fse.decided`) gives its payment return
//!   (RSP), its complementary claim if any, and its ledger outcome;
//! - [`return_rejection`] — a rejection (`fse.rejected`) gives its rejection
//!   return (RSP) and its ledger outcome;
//! - [`ledger::apply`] — a ledger entry (`outbound.ledger`) accumulates an
//!   outcome into batches, payment groups and EU half-years, and a close event
//!   emits the acknowledgements (ARL), payment orders and EU claims due.
//!
//! No I/O, no clock: every date comes from an event or a rule table. Output
//! events carry a blank header the runtime stamps (ids, source, versions).

pub mod amc;
pub mod calendar;
pub mod eu_clearing;
pub mod ledger;
pub mod payments;
pub mod returns;

use crate::domain::{Stage, Status};
use crate::events::model::{
    AmcClaim, ClaimRefRec, DecisionRec, EuClaim, EventHeader, FseDecided, FseRejected, LedgerEntry,
    LedgerOutcomeRec, PaymentOrder, ProfessionalReturn,
};
use crate::rules::Rules;
use crate::stages::Context;
use crate::stages::contract::{self, Decided, Topics};
use crate::stages::emit::{EmitKey, Inputs};
use crate::state::{StateTxn, StoreError};
use crate::topics;

pub use calendar::CalendarError;

/// At most this many FSE ids in one emitted event (a payment order, an EU
/// claim): a larger group is split into numbered parts. Well under the
/// codec's 10,000 items per array.
pub const MAX_FSES_PER_EVENT: usize = 1000;

/// Why an outbound input cannot be processed: the runtime dead-letters it
/// (raw bytes and this text), or, for a store failure, stops.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An event to emit; its header is stamped by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    Return(ProfessionalReturn),
    Amc(AmcClaim),
    Order(PaymentOrder),
    Eu(EuClaim),
    Ledger(LedgerEntry),
}

impl Emit {
    /// The id that correlates the event: the FSE, batch, order or claim id.
    pub fn correlation(&self) -> String {
        match self {
            Emit::Return(r) => r
                .fse_id
                .clone()
                .or_else(|| r.batch_id.clone())
                .unwrap_or_default(),
            Emit::Amc(a) => a.fse_id.clone(),
            Emit::Order(o) => o.order_id.clone(),
            Emit::Eu(e) => e.claim_id.clone(),
            Emit::Ledger(l) => l
                .outcome
                .as_ref()
                .and_then(|o| o.fse_id.clone())
                .or_else(|| l.close_on.map(|d| format!("close-{d}")))
                .unwrap_or_default(),
        }
    }

    pub fn header_mut(&mut self) -> &mut EventHeader {
        match self {
            Emit::Return(r) => &mut r.header,
            Emit::Amc(a) => &mut a.header,
            Emit::Order(o) => &mut o.header,
            Emit::Eu(e) => &mut e.header,
            Emit::Ledger(l) => &mut l.header,
        }
    }
}

/// The header the runtime overwrites.
pub fn blank_header() -> EventHeader {
    EventHeader {
        event_id: String::new(),
        causation_id: None,
        correlation_id: String::new(),
        event_time_millis: 0,
        source: None,
        ref_watermark: Vec::new(),
        rules_version: String::new(),
    }
}

fn claim_of<'a>(
    claim: &'a Option<ClaimRefRec>,
    what: &str,
) -> Result<&'a ClaimRefRec, OutboundError> {
    claim.as_ref().ok_or_else(|| {
        OutboundError::Input(format!(
            "{what} carries no claim context (written before the outbound flows): it cannot be settled"
        ))
    })
}

/// The ledger outcome of a decision.
fn outcome(decision: &DecisionRec, claim: &ClaimRefRec) -> LedgerOutcomeRec {
    LedgerOutcomeRec {
        fse_id: decision.fse_id.clone(),
        beneficiary_key: decision.beneficiary_key.clone(),
        rpps: claim.rpps.clone(),
        received_on: claim.received_on,
        status: decision.status,
        validation_rejected: decision.status == Status::Rejected
            && decision
                .reasons
                .iter()
                .any(|r| r.stage == Stage::Validation),
        reason_codes: decision.reasons.iter().map(|r| r.code.clone()).collect(),
        tiers_payant_amo: claim.tiers_payant.amo,
        amo_cents: decision.amo_cents,
        paid_to_professional_cents: decision.paid_to_professional_cents,
        paid_to_insured_cents: decision.paid_to_insured_cents,
        imputed_cents: decision.imputed_cents,
        eu_country: claim.eu_country.clone(),
        eu_institution_id: claim.eu_institution_id.clone(),
        payee: claim.payee.clone(),
    }
}

fn ledger_event(outcome: LedgerOutcomeRec) -> Emit {
    Emit::Ledger(LedgerEntry {
        header: blank_header(),
        close_on: None,
        outcome: Some(outcome),
    })
}

/// A paid decision: its payment return, its complementary claim (if the
/// beneficiary names an insurer and tiers payant covers its part), and its
/// ledger outcome, in that order.
pub fn settle(input: &FseDecided, rules: &Rules) -> Result<Vec<Emit>, OutboundError> {
    let decision = &input.decision;
    let claim = claim_of(&input.claim, "fse.decided")?;
    if decision.status != Status::Paid {
        return Err(OutboundError::Input(
            "fse.decided carries a decision that is not paid".into(),
        ));
    }
    check_paid_amounts(decision)?;
    if decision.fse_id.as_deref().is_none_or(str::is_empty) {
        return Err(OutboundError::Input(
            "fse.decided carries a paid decision without an FSE id".into(),
        ));
    }
    // Payments and their guarantees count from the receipt: a date the
    // calendar does not cover is refused here, not at every later close.
    calendar::is_working_day(&rules.calendar, claim.received_on)?;
    let mut out = vec![Emit::Return(returns::payment_return(decision, claim))];
    if let Some(amc) = amc::claim(decision, claim, rules)? {
        out.push(Emit::Amc(amc));
    }
    out.push(ledger_event(outcome(decision, claim)));
    Ok(out)
}

/// A rejection: its rejection return and its ledger outcome.
pub fn return_rejection(input: &FseRejected) -> Result<Vec<Emit>, OutboundError> {
    let decision = &input.decision;
    let claim = claim_of(&input.claim, "fse.rejected")?;
    if decision.status != Status::Rejected {
        return Err(OutboundError::Input(
            "fse.rejected carries a decision that is not a rejection".into(),
        ));
    }
    // The professional's return lists the reasons: a rejection without one
    // would be returned as a blank refusal.
    if decision.reasons.is_empty() {
        return Err(OutboundError::Input(
            "fse.rejected carries a rejection without a reason".into(),
        ));
    }
    Ok(vec![
        Emit::Return(returns::rejection_return(decision, claim)),
        ledger_event(outcome(decision, claim)),
    ])
}

/// Settlement on the bus: `fse.decided` in; the payment return, the
/// complementary claim and the ledger outcome out.
pub struct SettlementStage;

impl contract::Stage for SettlementStage {
    type Input = FseDecided;

    const TOPICS: Topics = Topics {
        name: "settlement",
        input: topics::FSE_DECIDED,
        pass: topics::RETURNS_PROFESSIONAL,
        outputs: &[
            topics::RETURNS_PROFESSIONAL,
            topics::AMC_CLAIMS,
            topics::OUTBOUND_LEDGER,
        ],
        changelog: "settlement.changelog",
        dlq: "dlq.settlement",
    };

    fn header(event: &FseDecided) -> Option<&EventHeader> {
        Some(&event.header)
    }

    fn decide(
        &self,
        event: FseDecided,
        at: &Inputs<'_>,
        _: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Decided, StoreError> {
        let emits = settle(&event, ctx.rules);
        at.outbound(emits, &event.header, ctx, EmitKey::Input)
    }
}

/// Returns on the bus: `fse.rejected` (which several stages write) in; the
/// rejection return and the ledger outcome out.
pub struct ReturnsStage;

impl contract::Stage for ReturnsStage {
    type Input = FseRejected;

    const TOPICS: Topics = Topics {
        name: "returns",
        input: topics::FSE_REJECTED,
        pass: topics::RETURNS_PROFESSIONAL,
        outputs: &[topics::RETURNS_PROFESSIONAL, topics::OUTBOUND_LEDGER],
        changelog: "returns.changelog",
        dlq: "dlq.returns",
    };

    fn header(event: &FseRejected) -> Option<&EventHeader> {
        Some(&event.header)
    }

    fn decide(
        &self,
        event: FseRejected,
        at: &Inputs<'_>,
        _: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Decided, StoreError> {
        let emits = return_rejection(&event);
        at.outbound(emits, &event.header, ctx, EmitKey::Input)
    }
}

/// The payment identity of a decision, checked again where the payment is
/// built (style.md: invariants in pairs). An upstream event that breaks it is
/// refused here, never paid.
fn check_paid_amounts(d: &DecisionRec) -> Result<(), OutboundError> {
    let amounts = [
        d.amo_cents,
        d.css_cents,
        d.deferred_cents,
        d.imputed_cents,
        d.paid_to_professional_cents,
        d.paid_to_insured_cents,
    ];
    let bound = crate::money::MAX_AMOUNT_CENTS;
    if amounts.iter().any(|a| !(0..=bound).contains(a)) {
        return Err(OutboundError::Input("decision amounts out of range".into()));
    }
    if d.paid_to_professional_cents + d.paid_to_insured_cents + d.imputed_cents
        != d.amo_cents + d.css_cents + d.deferred_cents
    {
        return Err(OutboundError::Input(
            "decision breaks payments = amo + css + deferred - imputed".into(),
        ));
    }
    Ok(())
}
