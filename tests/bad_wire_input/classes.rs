//! The generic classes of bad bytes, each a function of the topic: every
//! class that applies to a topic's schema runs on it, one table a topic.

use clearing_pipeline::events::model::DeadLetter;
use clearing_pipeline::runtime::topics;

use crate::check::{Case, Expect, Row, refused, refused_each, row, run_all};
use crate::craft::{At, crafted, header_len, long, template};
use crate::world::world;

/// A class: the bad records of a topic.
type Class = fn(&str) -> Case;

/// The classes that apply to `topic`: all but those of a field its schema
/// lacks (arrays, enums and booleans on some reference topics).
fn classes(topic: &'static str) -> Vec<Row> {
    let mut classes: Vec<(&'static str, Class)> = vec![
        ("empty_value", empty_value),
        ("random_bytes", random_bytes),
        ("single_c3_byte", single_c3_byte),
        (
            "truncated_single_object_header",
            truncated_single_object_header,
        ),
        ("bad_magic", bad_magic),
        ("plain_json", plain_json),
        ("unknown_fingerprint", unknown_fingerprint),
        // On a header topic, the header is read by the filter before the
        // fingerprint is checked, and its offset moves the mark.
        ("another_topics_event", another_topics_event),
        (
            "truncated_body_at_several_points",
            truncated_body_at_several_points,
        ),
        ("trailing_garbage", trailing_garbage),
        ("two_events_concatenated", two_events_concatenated),
        (
            "string_length_claims_gigabytes",
            string_length_claims_gigabytes,
        ),
        (
            "oversized_string_of_two_mebibytes",
            oversized_string_of_two_mebibytes,
        ),
        (
            "oversized_message_of_four_mebibytes",
            oversized_message_of_four_mebibytes,
        ),
        ("negative_length", negative_length),
        ("overflowing_varint", overflowing_varint),
        ("union_branch_out_of_range", union_branch_out_of_range),
        ("invalid_utf8_in_a_string", invalid_utf8_in_a_string),
        ("date_out_of_range", date_out_of_range),
        ("bit_flip_in_a_length_prefix", bit_flip_in_a_length_prefix),
        (
            "bit_flip_at_every_body_position",
            bit_flip_at_every_body_position,
        ),
    ];
    if !matches!(topic, topics::REF_PKI | topics::REF_EU_INSTITUTIONS) {
        classes.push((
            "array_claims_billions_of_items",
            array_claims_billions_of_items,
        ));
        classes.push(("enum_index_out_of_range", enum_index_out_of_range));
    }
    if !topic.starts_with("ref.") {
        classes.push(("invalid_boolean_byte", invalid_boolean_byte));
    }
    (classes.into_iter())
        .map(|(name, class)| row(name, move || class(topic)))
        .collect()
}

#[test]
fn fse_submitted() {
    run_all(topics::FSE_SUBMITTED, classes(topics::FSE_SUBMITTED));
}

#[test]
fn fse_validated() {
    run_all(topics::FSE_VALIDATED, classes(topics::FSE_VALIDATED));
}

#[test]
fn fse_entitled() {
    run_all(topics::FSE_ENTITLED, classes(topics::FSE_ENTITLED));
}

#[test]
fn fse_routed() {
    run_all(topics::FSE_ROUTED, classes(topics::FSE_ROUTED));
}

#[test]
fn fse_decided() {
    run_all(topics::FSE_DECIDED, classes(topics::FSE_DECIDED));
}

#[test]
fn fse_rejected() {
    run_all(topics::FSE_REJECTED, classes(topics::FSE_REJECTED));
}

#[test]
fn outbound_ledger() {
    run_all(topics::OUTBOUND_LEDGER, classes(topics::OUTBOUND_LEDGER));
}

#[test]
fn ref_rights() {
    run_all(topics::REF_RIGHTS, classes(topics::REF_RIGHTS));
}

#[test]
fn ref_pki() {
    run_all(topics::REF_PKI, classes(topics::REF_PKI));
}

#[test]
fn ref_eu_institutions() {
    run_all(
        topics::REF_EU_INSTITUTIONS,
        classes(topics::REF_EU_INSTITUTIONS),
    );
}

fn empty_value(_: &str) -> Case {
    refused(Vec::new())
}

fn random_bytes(_: &str) -> Case {
    // A fixed xorshift: the same bytes every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    refused(bytes)
}

fn single_c3_byte(_: &str) -> Case {
    refused(vec![0xC3])
}

fn truncated_single_object_header(topic: &str) -> Case {
    let t = template(topic);
    refused_each((1..10).map(|n| t[..n].to_vec()).collect())
}

fn bad_magic(topic: &str) -> Case {
    let mut t = template(topic);
    t[1] = 0x02;
    refused(t)
}

fn plain_json(topic: &str) -> Case {
    let _ = topic;
    refused(br#"{"fse_id":"12345678-000000001","acts":[]}"#.to_vec())
}

fn unknown_fingerprint(topic: &str) -> Case {
    let mut t = template(topic);
    t[2..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    refused(t)
}

fn another_topics_event(topic: &str) -> Case {
    // A valid record of the topic before it in the list (wrong fingerprint).
    let all = [
        topics::FSE_SUBMITTED,
        topics::FSE_VALIDATED,
        topics::FSE_ENTITLED,
        topics::FSE_ROUTED,
        topics::FSE_DECIDED,
        topics::FSE_REJECTED,
        topics::OUTBOUND_LEDGER,
        topics::REF_RIGHTS,
        topics::REF_PKI,
        topics::REF_EU_INSTITUTIONS,
    ];
    let i = all.iter().position(|t| *t == topic).unwrap();
    let other = all[(i + all.len() - 1) % all.len()];
    refused_each(vec![
        template(other),
        world().registry.encode_single(&dead_letter()),
    ])
}

fn dead_letter() -> DeadLetter {
    DeadLetter {
        stage: "validation".into(),
        topic: "fse.submitted".into(),
        partition: 0,
        offset: 0,
        error: "x".into(),
        raw: Vec::new(),
        cut: None,
    }
}

fn truncated_body_at_several_points(topic: &str) -> Case {
    let t = template(topic);
    let len = t.len();
    let mut cuts = vec![
        10,
        11,
        12,
        10 + (len - 10) / 3,
        10 + (len - 10) / 2,
        len - 2,
        len - 1,
    ];
    cuts.sort_unstable();
    cuts.dedup();
    refused_each(cuts.into_iter().map(|n| t[..n].to_vec()).collect())
}

fn trailing_garbage(topic: &str) -> Case {
    let mut t = template(topic);
    t.extend_from_slice(b"\0garbage");
    let mut one = template(topic);
    one.push(0);
    refused_each(vec![t, one])
}

fn two_events_concatenated(topic: &str) -> Case {
    let t = template(topic);
    refused([t.clone(), t].concat())
}

fn string_length_claims_gigabytes(topic: &str) -> Case {
    refused_each(vec![
        crafted(topic, At::FirstString, &long(1 << 40)),
        crafted(topic, At::FirstString, &long(i64::MAX)),
    ])
}

fn oversized_string_of_two_mebibytes(topic: &str) -> Case {
    let mut rest = long(2 << 20);
    rest.extend(std::iter::repeat_n(b'a', 2 << 20));
    refused(crafted(topic, At::FirstString, &rest))
}

fn oversized_message_of_four_mebibytes(topic: &str) -> Case {
    let mut t = template(topic);
    t.resize(4 << 20, 0xAA);
    refused(t)
}

fn array_claims_billions_of_items(topic: &str) -> Case {
    refused_each(vec![
        crafted(topic, At::Array, &long(3_000_000_000)),
        crafted(topic, At::Array, &[long(-3_000_000_000), long(8)].concat()),
        crafted(topic, At::Array, &long(i64::MIN)),
    ])
}

fn negative_length(topic: &str) -> Case {
    refused_each(vec![
        crafted(topic, At::FirstString, &long(-1)),
        crafted(topic, At::FirstString, &long(i64::MIN)),
    ])
}

fn overflowing_varint(topic: &str) -> Case {
    refused_each(vec![
        crafted(topic, At::FirstString, &[0xFF; 11]),
        crafted(
            topic,
            At::FirstString,
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],
        ),
    ])
}

fn union_branch_out_of_range(topic: &str) -> Case {
    refused_each(vec![
        crafted(topic, At::Union, &long(2)),
        crafted(topic, At::Union, &long(-1)),
        crafted(topic, At::Union, &long(1 << 40)),
    ])
}

fn enum_index_out_of_range(topic: &str) -> Case {
    refused_each(vec![
        crafted(topic, At::Enum, &long(99)),
        crafted(topic, At::Enum, &long(-1)),
    ])
}

fn invalid_utf8_in_a_string(topic: &str) -> Case {
    refused_each(vec![
        crafted(
            topic,
            At::FirstString,
            &[long(2), vec![0xFF, 0xFE]].concat(),
        ),
        // A lone surrogate in CESU/WTF-8 form.
        crafted(
            topic,
            At::FirstString,
            &[long(3), vec![0xED, 0xA0, 0x80]].concat(),
        ),
    ])
}

fn date_out_of_range(topic: &str) -> Case {
    refused_each(vec![
        crafted(topic, At::Date, &long(i64::from(i32::MAX))),
        crafted(topic, At::Date, &long(i64::from(i32::MIN))),
        crafted(topic, At::Date, &long(1 << 40)),
    ])
}

fn invalid_boolean_byte(topic: &str) -> Case {
    refused_each(vec![
        crafted(topic, At::Bool, &[2]),
        crafted(topic, At::Bool, &[0xFF]),
    ])
}

fn bit_flip_in_a_length_prefix(topic: &str) -> Case {
    // The first field after the header is a string (or, for ref.pki, the
    // union branch): flipping the low bit of its even zig-zag length
    // makes it negative.
    let mut t = template(topic);
    let at = 10 + header_len(topic) + usize::from(topic == topics::REF_PKI);
    t[at] ^= 1;
    refused(t)
}

fn bit_flip_at_every_body_position(topic: &str) -> Case {
    let t = template(topic);
    let from = 10 + header_len(topic);
    let step = ((t.len() - from) / 40).max(1);
    Case {
        bad: (from..t.len())
            .step_by(step)
            .flat_map(|i| {
                [0x01u8, 0x80].map(|bit| {
                    let mut v = t.clone();
                    v[i] ^= bit;
                    v
                })
            })
            .collect(),
        key: None,
        expect: Expect::AnyOne,
    }
}
