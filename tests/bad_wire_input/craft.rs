//! Crafting bad bytes: a topic's template (a valid record), its body up to
//! a chosen field, and records decoded, changed and re-encoded.

use clearing_pipeline::events::codec::{AvroField, AvroRecord, Decoder, Encoder};
use clearing_pipeline::events::model::{
    EventHeader, FseDecided, FseEntitled, FseRejected, FseRouted, FseSubmitted, FseValidated,
    LedgerEntry, SourceRef,
};
use clearing_pipeline::runtime::topics;

use crate::check::{Case, Expect, case};
use crate::world::world;

pub fn long(value: i64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.long(value);
    e.into_bytes()
}

pub fn enc(fields: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut e = Encoder::new();
    fields(&mut e);
    e.into_bytes()
}

/// A valid record of `topic` that is none of the stage's own (for headerless
/// topics: the template; else the template).
pub fn template(topic: &str) -> Vec<u8> {
    let w = world();
    match topic {
        topics::REF_RIGHTS => w.registry.encode_single(&w.rights[0]),
        topics::REF_PKI => w.registry.encode_single(&w.pki_events[0]),
        topics::REF_EU_INSTITUTIONS => w.registry.encode_single(&w.institution_records[0]),
        _ => w.streams[topic].template().value.clone(),
    }
}

/// Re-encodes `topic`'s template with the fingerprint of `T` (its type).
pub fn decoded<T: AvroRecord>(topic: &str) -> T {
    world().registry.decode_single(&template(topic)).unwrap()
}

/// Where a crafted field goes.
#[derive(Clone, Copy)]
pub enum At {
    /// The first string of the record.
    FirstString,
    /// A `["null", …]` union.
    Union,
    /// An array.
    Array,
    /// An enum.
    Enum,
    /// A `date`.
    Date,
    /// A boolean.
    Bool,
}

/// The header fields before `at` (a header opens every stage output).
fn header_prefix(e: &mut Encoder, h: &EventHeader, at: At) {
    h.event_id.encode_field(e);
    if let At::Union = at {
        return;
    }
    h.causation_id.encode_field(e);
    h.correlation_id.encode_field(e);
    h.event_time_millis.encode_field(e);
    h.source.encode_field(e);
}

fn fse_prefix(e: &mut Encoder, f: &FseSubmitted, at: At) {
    f.fse_id.encode_field(e);
    f.received_at_millis.encode_field(e);
    f.received_offset_minutes.encode_field(e);
    if let At::Date = at {
        return;
    }
    f.care_date.encode_field(e);
    if let At::Union = at {
        f.professional.encode_field(e);
        return;
    }
    f.professional.rpps.encode_field(e);
    if let At::Enum = at {
        return;
    }
    f.professional.category.encode_field(e);
    f.professional.sector.encode_field(e);
    if let At::Bool = at {
        return;
    }
    f.professional.optam.encode_field(e);
    f.beneficiary.encode_field(e);
    f.ehic.encode_field(e);
    f.pathway.encode_field(e);
    f.tiers_payant.encode_field(e);
}

/// The template's body up to the field `at` (excluded), or `None` when the
/// topic's schema has no such field.
pub fn prefix(topic: &str, at: At) -> Option<Vec<u8>> {
    if let At::FirstString = at {
        return Some(match topic {
            topics::REF_PKI => long(0),
            _ => Vec::new(),
        });
    }
    // Fields a topic's schema lacks.
    if matches!(
        (topic, at),
        (
            topics::REF_PKI | topics::REF_EU_INSTITUTIONS,
            At::Array | At::Enum | At::Bool
        ) | (topics::REF_RIGHTS, At::Bool)
    ) {
        return None;
    }
    Some(match topic {
        topics::FSE_SUBMITTED => {
            let f: FseSubmitted = decoded(topic);
            enc(|e| fse_prefix(e, &f, at))
        }
        topics::FSE_VALIDATED | topics::FSE_ENTITLED | topics::FSE_ROUTED => {
            carried_claim_prefix(topic, at)
        }
        topics::FSE_DECIDED | topics::FSE_REJECTED => decision_prefix(topic, at),
        topics::OUTBOUND_LEDGER => ledger_prefix(topic, at),
        topics::REF_RIGHTS => rights_prefix(at),
        topics::REF_PKI => match at {
            At::Union => Vec::new(),
            At::Date => enc(|e| {
                e.union_branch(1);
                "cert-1".to_string().encode_field(e);
            }),
            _ => return None,
        },
        topics::REF_EU_INSTITUTIONS => institution_prefix(at),
        _ => unreachable!("{topic}"),
    })
}

/// A stage output carrying the claim: its header, then the claim.
fn carried_claim_prefix(topic: &str, at: At) -> Vec<u8> {
    let (h, f) = match topic {
        topics::FSE_VALIDATED => {
            let v: FseValidated = decoded(topic);
            (v.header, v.fse)
        }
        topics::FSE_ENTITLED => {
            let v: FseEntitled = decoded(topic);
            (v.header, v.fse)
        }
        _ => {
            let v: FseRouted = decoded(topic);
            (v.header, v.fse)
        }
    };
    enc(|e| {
        header_prefix(e, &h, at);
        if matches!(at, At::Enum | At::Date | At::Bool) {
            h.ref_watermark.encode_field(e);
            h.rules_version.encode_field(e);
            fse_prefix(e, &f, at);
        }
    })
}

/// A decision (paid or rejected): its header, the decision, the claim's context.
fn decision_prefix(topic: &str, at: At) -> Vec<u8> {
    let (h, d, c) = if topic == topics::FSE_DECIDED {
        let v: FseDecided = decoded(topic);
        (v.header, v.decision, v.claim)
    } else {
        let v: FseRejected = decoded(topic);
        (v.header, v.decision, v.claim)
    };
    let c = c.unwrap();
    enc(|e| {
        header_prefix(e, &h, at);
        if let At::Union | At::Array = at {
            return;
        }
        h.ref_watermark.encode_field(e);
        h.rules_version.encode_field(e);
        d.fse_id.encode_field(e);
        if let At::Enum = at {
            return;
        }
        d.encode_field(e);
        e.union_branch(1);
        c.rpps.encode_field(e);
        if let At::Date = at {
            return;
        }
        c.received_on.encode_field(e);
    })
}

fn ledger_prefix(topic: &str, at: At) -> Vec<u8> {
    let l: LedgerEntry = decoded(topic);
    enc(|e| {
        header_prefix(e, &l.header, at);
        if let At::Union | At::Array = at {
            return;
        }
        l.header.ref_watermark.encode_field(e);
        l.header.rules_version.encode_field(e);
        if let At::Date = at {
            e.union_branch(1);
            return;
        }
        let o = l.outcome.clone().unwrap();
        e.union_branch(0);
        e.union_branch(1);
        o.fse_id.encode_field(e);
        o.beneficiary_key.encode_field(e);
        o.rpps.encode_field(e);
        o.received_on.encode_field(e);
        if let At::Enum = at {
            return;
        }
        o.status.encode_field(e);
    })
}

fn rights_prefix(at: At) -> Vec<u8> {
    let r = &world().rights[0];
    enc(|e| {
        r.nir.encode_field(e);
        if let At::Date = at {
            return;
        }
        r.birth_date.encode_field(e);
        r.rank.encode_field(e);
        if let At::Array = at {
            return;
        }
        for _ in 0..5 {
            e.long(0); // coverage, ald, css, ame, maternity: empty
        }
        if let At::Enum = at {
            e.union_branch(1);
        }
    })
}

fn institution_prefix(at: At) -> Vec<u8> {
    let r = &world().institution_records[0];
    enc(|e| {
        r.country.encode_field(e);
        r.institution_id.encode_field(e);
        r.name.encode_field(e);
        if let At::Date = at {
            r.acronym.encode_field(e);
        }
    })
}

/// `topic`'s single-object header with the body `prefix(at) + rest`.
pub fn crafted(topic: &str, at: At, rest: &[u8]) -> Vec<u8> {
    let mut body = prefix(topic, at).expect("the topic has the field");
    body.extend_from_slice(rest);
    with_fingerprint(topic, &body)
}

pub fn with_fingerprint(topic: &str, body: &[u8]) -> Vec<u8> {
    let mut out = template(topic)[..10].to_vec();
    out.extend_from_slice(body);
    out
}

/// The length of the template's header fields (stage outputs), or 0.
pub fn header_len(topic: &str) -> usize {
    let bytes = template(topic);
    let body = &bytes[10..];
    if matches!(
        topic,
        topics::FSE_SUBMITTED | topics::REF_RIGHTS | topics::REF_PKI | topics::REF_EU_INSTITUTIONS
    ) {
        return 0;
    }
    let mut d = Decoder::new(body);
    EventHeader::decode_field(&mut d).unwrap();
    d.position()
}

/// `template` of a stage topic decoded, changed, re-encoded.
pub fn changed<T: AvroRecord>(topic: &str, change: impl FnOnce(&mut T)) -> Vec<u8> {
    let mut v: T = decoded(topic);
    change(&mut v);
    world().registry.encode_single(&v)
}

/// The header's source of a stage topic's template, changed.
pub fn with_source<T: AvroRecord>(
    topic: &str,
    header: fn(&mut T) -> &mut EventHeader,
    change: impl FnOnce(&mut SourceRef),
) -> Vec<u8> {
    changed(topic, |v: &mut T| {
        let h = header(v);
        let mut s = h.source.clone().unwrap();
        change(&mut s);
        h.source = Some(s);
    })
}

/// The first record of a stage topic: processed by the base state.
pub fn replayed(topic: &str) -> Case {
    case(
        world().streams[topic].records[0].value.clone(),
        Expect::Duplicate,
    )
}
