//! JSON renderings of wire events for people and scripts (`clearing read`):
//! decisions in the contract's shape, FSEs and reference data in their JSON
//! input shapes, the rest with their headers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::convert;
use super::model::*;
use super::registry::{DecodeError, SchemaRegistry};
use crate::money::Cents;

fn money(cents: i64) -> String {
    Cents::new(cents).to_string()
}

fn reasons(list: &[ReasonRec]) -> Value {
    Value::Array(
        list.iter()
            .map(|r| {
                json!({"code": r.code, "stage": r.stage, "message": r.message,
                       "field": r.field, "line": r.line})
            })
            .collect(),
    )
}

fn header(h: &EventHeader) -> Value {
    json!({
        "event_id": h.event_id, "causation_id": h.causation_id,
        "correlation_id": h.correlation_id, "event_time_millis": h.event_time_millis,
        "source": h.source.as_ref().map(|s| json!({"topic": s.topic, "partition": s.partition,
            "offset": s.offset, "ordinal": s.ordinal})),
        "ref_watermark": h.ref_watermark.iter().map(|r| json!({"topic": r.topic,
            "partition": r.partition, "offset": r.offset})).collect::<Vec<_>>(),
        "rules_version": h.rules_version,
    })
}

/// A decision in the contract's JSON shape (`fse.decided` / `fse.rejected`).
pub fn decision(d: &DecisionRec) -> Value {
    json!({
        "fse_id": d.fse_id, "status": d.status, "route": d.route,
        "reasons": reasons(&d.reasons), "warnings": reasons(&d.warnings),
        "lines": d.lines.iter().map(|l| json!({
            "code": l.code, "charged": money(l.charged_cents), "base": money(l.base_cents),
            "rate": l.rate_percent, "amo": money(l.amo_cents), "css": money(l.css_cents),
            "participation": money(l.participation_cents), "franchise": money(l.franchise_cents),
            "tariff": l.tariff})).collect::<Vec<_>>(),
        "amo": money(d.amo_cents), "css": money(d.css_cents),
        "participation": money(d.participation_cents), "franchise": money(d.franchise_cents),
        "flat_fee": money(d.flat_fee_cents), "deferred": money(d.deferred_cents),
        "imputed": money(d.imputed_cents), "patient": money(d.patient_cents),
        "paid_to_professional": money(d.paid_to_professional_cents),
        "paid_to_insured": money(d.paid_to_insured_cents),
        "rules_version": d.rules_version, "signature_check": d.signature_check,
        "beneficiary_key": d.beneficiary_key, "care_date": d.care_date,
        "reimbursement_date": d.reimbursement_date,
    })
}

fn return_kind(kind: ReturnKind) -> &'static str {
    match kind {
        ReturnKind::ArlPositive => "arl_positive",
        ReturnKind::ArlNegative => "arl_negative",
        ReturnKind::RspPayment => "rsp_payment",
        ReturnKind::RspRejection => "rsp_rejection",
    }
}

fn payee_kind(kind: PayeeKind) -> &'static str {
    match kind {
        PayeeKind::Professional => "professional",
        PayeeKind::Insured => "insured",
    }
}

/// A return to the professional (`returns.professional`).
pub fn professional_return(r: &ProfessionalReturn) -> Value {
    let mut v = json!({
        "kind": return_kind(r.kind), "rpps": r.rpps, "batch_id": r.batch_id,
        "fse_id": r.fse_id, "amount": r.amount_cents.map(money),
        "reasons": reasons(&r.reasons), "fse_count": r.fse_count,
        "header": header(&r.header),
    });
    with_payee(&mut v, &r.payee);
    v
}

/// Adds `payee` only when a billing identifier is paid, so that every other
/// record renders as it did before the field.
fn with_payee(v: &mut Value, payee: &Option<String>) {
    if let (Some(payee), Some(map)) = (payee, v.as_object_mut()) {
        map.insert("payee".into(), json!(payee));
    }
}

/// A payment order (`payments.orders`).
pub fn payment_order(o: &PaymentOrder) -> Value {
    json!({
        "order_id": o.order_id, "payee_kind": payee_kind(o.payee_kind), "payee": o.payee,
        "value_date": o.value_date, "amount": money(o.amount_cents),
        "imputed": money(o.imputed_cents), "fse_ids": o.fse_ids,
        "guarantee_due": o.guarantee_due, "late_penalty": money(o.late_penalty_cents),
        "guarantees": o.guarantees.iter().map(|g| json!({
            "fse_id": g.fse_id, "received_on": g.received_on, "due": g.due,
            "paid_working_day": g.paid_working_day, "late": g.late,
            "penalty": money(g.penalty_cents)})).collect::<Vec<_>>(),
        "header": header(&o.header),
    })
}

/// A claim on a foreign institution (`eu.claims`).
pub fn eu_claim(c: &EuClaim) -> Value {
    json!({
        "claim_id": c.claim_id, "country": c.country, "institution_id": c.institution_id,
        "half_year": c.half_year, "introduced_on": c.introduced_on,
        "introduction_deadline": c.introduction_deadline, "payment_due": c.payment_due,
        "dispute_deadline": c.dispute_deadline, "receivable": c.receivable,
        "amount": money(c.amount_cents), "currency": c.currency, "fse_ids": c.fse_ids,
        "header": header(&c.header),
    })
}

/// A claim on a complementary insurer (`amc.claims`).
pub fn amc_claim(c: &AmcClaim) -> Value {
    json!({
        "amc": c.amc, "fse_id": c.fse_id, "beneficiary_key": c.beneficiary_key,
        "ticket": money(c.ticket_cents), "depassement": money(c.depassement_cents),
        "amount": money(c.amount_cents), "header": header(&c.header),
    })
}

fn ledger_entry(e: &LedgerEntry) -> Value {
    json!({
        "close_on": e.close_on,
        "outcome": e.outcome.as_ref().map(|o| {
            let mut v = json!({
                "fse_id": o.fse_id, "beneficiary_key": o.beneficiary_key, "rpps": o.rpps,
                "received_on": o.received_on, "status": o.status,
                "validation_rejected": o.validation_rejected, "reason_codes": o.reason_codes,
                "tiers_payant_amo": o.tiers_payant_amo, "amo": money(o.amo_cents),
                "paid_to_professional": money(o.paid_to_professional_cents),
                "paid_to_insured": money(o.paid_to_insured_cents),
                "imputed": money(o.imputed_cents), "eu_country": o.eu_country,
                "eu_institution_id": o.eu_institution_id});
            with_payee(&mut v, &o.payee);
            v
        }),
        "header": header(&e.header),
    })
}

/// Renders one message of `topic`.
pub fn render(registry: &SchemaRegistry, topic: &str, bytes: &[u8]) -> Result<Value, DecodeError> {
    Ok(match topic {
        "fse.submitted" => fse(&registry.decode_single::<FseSubmitted>(bytes)?),
        "fse.decided" => {
            let e: FseDecided = registry.decode_single(bytes)?;
            decision(&e.decision)
        }
        "fse.rejected" => {
            let e: FseRejected = registry.decode_single(bytes)?;
            decision(&e.decision)
        }
        "fse.validated" => validated(&registry.decode_single(bytes)?),
        "fse.entitled" => entitled(&registry.decode_single(bytes)?),
        "fse.routed" => routed(&registry.decode_single(bytes)?),
        "ref.rights" => serde_json::to_value(convert::rights_input(
            &registry.decode_single::<RightsRecord>(bytes)?,
        ))
        .unwrap_or(Value::Null),
        "ref.pki" => match convert::pki_record(&registry.decode_single::<PkiEvent>(bytes)?) {
            Ok(record) => serde_json::to_value(record).unwrap_or(Value::Null),
            Err(e) => json!({"error": e.to_string()}),
        },
        "ref.eu.institutions" => institution(&registry.decode_single(bytes)?),
        "audit.checkpoints" => checkpoint(&registry.decode_single(bytes)?),
        "returns.professional" => professional_return(&registry.decode_single(bytes)?),
        "payments.orders" => payment_order(&registry.decode_single(bytes)?),
        "eu.claims" => eu_claim(&registry.decode_single(bytes)?),
        "amc.claims" => amc_claim(&registry.decode_single(bytes)?),
        "outbound.ledger" => ledger_entry(&registry.decode_single(bytes)?),
        t if t.starts_with("dlq.") => dead_letter(&registry.decode_single(bytes)?),
        _ => json!({"bytes_base64": BASE64.encode(bytes)}),
    })
}

/// An FSE as its JSON input.
fn fse(f: &FseSubmitted) -> Value {
    serde_json::to_value(convert::input_from_submitted(f)).unwrap_or(Value::Null)
}

fn validated(e: &FseValidated) -> Value {
    json!({"header": header(&e.header), "fse": fse(&e.fse),
           "beneficiary_key": e.beneficiary_key, "signature_check": e.signature_check,
           "warnings": reasons(&e.warnings)})
}

fn entitled(e: &FseEntitled) -> Value {
    json!({"header": header(&e.header), "fse_id": e.fse.fse_id,
           "beneficiary_key": e.beneficiary_key,
           "entitlement": {"regime": e.entitlement.regime, "ald": e.entitlement.ald,
               "css": e.entitlement.css, "ame": e.entitlement.ame,
               "maternity": e.entitlement.maternity, "minor": e.entitlement.minor,
               "rights_digest": e.entitlement.rights_digest}})
}

fn routed(e: &FseRouted) -> Value {
    json!({"header": header(&e.header), "fse_id": e.fse.fse_id,
           "beneficiary_key": e.beneficiary_key, "route": e.routing.route,
           "country": e.routing.country, "institution_id": e.routing.institution_id})
}

fn institution(r: &EuInstitutionRecord) -> Value {
    json!({"country": r.country, "institution_id": r.institution_id, "name": r.name,
           "acronym": r.acronym, "from": r.from, "to": r.to})
}

fn checkpoint(c: &AuditCheckpoint) -> Value {
    json!({"stage": c.stage, "partition": c.partition,
           "input_offset_from": c.input_offset_from, "input_offset_to": c.input_offset_to,
           "output_count": c.output_count, "chain_hash": hex::encode(c.chain_hash),
           "rules_version": c.rules_version,
           "ref_watermark": c.ref_watermark.iter().map(|r| json!({"topic": r.topic,
               "partition": r.partition, "offset": r.offset})).collect::<Vec<_>>()})
}

fn dead_letter(d: &DeadLetter) -> Value {
    let mut letter = json!({"stage": d.stage, "topic": d.topic, "partition": d.partition,
           "offset": d.offset, "error": d.error, "raw_base64": BASE64.encode(&d.raw)});
    // Only a cut letter says so: a whole one reads as it always did.
    if let Some(cut) = &d.cut {
        letter["cut"] = json!({"length": cut.length, "sha256": hex::encode(cut.sha256)});
    }
    letter
}

/// Renders one message of `topic` with everything an auditor compares:
/// decisions and rejections keep their event header (source, reference
/// watermark, rules version), which the back-office form leaves out.
pub fn render_full(
    registry: &SchemaRegistry,
    topic: &str,
    bytes: &[u8],
) -> Result<Value, DecodeError> {
    Ok(match topic {
        "fse.decided" => {
            let e: FseDecided = registry.decode_single(bytes)?;
            json!({"header": header(&e.header), "decision": decision(&e.decision)})
        }
        "fse.rejected" => {
            let e: FseRejected = registry.decode_single(bytes)?;
            json!({"header": header(&e.header), "decision": decision(&e.decision)})
        }
        _ => render(registry, topic, bytes)?,
    })
}
