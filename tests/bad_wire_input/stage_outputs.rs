//! The topics a stage writes for the next: a replayed upstream event, a
//! header pointing elsewhere, and values the producing stage never writes.

use chrono::NaiveDate;
use clearing_pipeline::events::codec::AvroRecord;
use clearing_pipeline::events::model::{
    EventHeader, FseDecided, FseEntitled, FseRejected, FseRouted, FseSubmitted, FseValidated,
    LedgerEntry, LedgerOutcomeRec, Route, Status,
};
use clearing_pipeline::runtime::{StageKind, topics};

use crate::check::{Case, Expect, Row, case, own_writes, refused, row, run_all};
use crate::craft::{changed, replayed, with_source};
use crate::world::{batch, date, record, world};

/// A header topic's cases about the header: `T` is the topic's type.
fn header_rows<T: AvroRecord + 'static>(
    topic: &'static str,
    header: fn(&mut T) -> &mut EventHeader,
) -> Vec<Row> {
    vec![
        row("replayed_upstream_event", move || replayed(topic)),
        // The source names another topic and partition, far ahead: it must
        // be refused, and not move the filter's mark (which keys by offset
        // alone, and would then drop every later record of the partition).
        row("header_source_on_another_topic_and_partition", move || {
            refused(with_source(topic, header, |s| {
                s.topic = "fse.decided".into();
                s.partition = 9;
                s.offset = i64::MAX;
            }))
        }),
        row("event_ids_empty", move || {
            let bad = changed(topic, |v: &mut T| {
                let h = header(v);
                h.event_id = String::new();
                h.correlation_id = String::new();
            });
            case(bad, Expect::Accepted)
        }),
        // A record whose body does not decode, with a header whose source
        // offset is far ahead (a flipped high bit): it must not move the
        // downstream filter's mark, which would drop every later record.
        row("undecodable_record_with_a_header_far_ahead", move || {
            let mut bad = with_source(topic, header, |s| s.offset += 1 << 40);
            bad.truncate(bad.len() - 1);
            refused(bad)
        }),
    ]
}

type ClaimChange = fn(&mut FseSubmitted);

/// Claims validation never passes, as a topic carrying the claim carries
/// them (`claim` finds it in `T`): refused. `names` picks the cases.
fn claim_rows<T: AvroRecord + 'static>(
    topic: &'static str,
    claim: fn(&mut T) -> &mut FseSubmitted,
    names: &[&str],
) -> Vec<Row> {
    let changes: [(&'static str, ClaimChange); 5] = [
        ("negative_amount", |f| f.acts[0].charged_cents = -1),
        ("amount_of_i64_max_cents", |f| {
            f.acts[0].charged_cents = i64::MAX
        }),
        ("care_date_in_year_9999", |f| f.care_date = date(9999, 1, 1)),
        ("care_date_before_1900", |f| f.care_date = date(1899, 1, 1)),
        ("empty_fse_id", |f| f.fse_id = String::new()),
    ];
    (changes.into_iter())
        .filter(|(name, _)| names.contains(name))
        .map(|(name, change)| {
            row(name, move || {
                refused(changed(topic, |v: &mut T| change(claim(v))))
            })
        })
        .collect()
}

#[test]
fn fse_validated() {
    const TOPIC: &str = topics::FSE_VALIDATED;
    let mut rows = header_rows(TOPIC, |v: &mut FseValidated| &mut v.header);
    rows.extend(claim_rows(
        TOPIC,
        |v: &mut FseValidated| &mut v.fse,
        &[
            "negative_amount",
            "amount_of_i64_max_cents",
            "care_date_in_year_9999",
            "care_date_before_1900",
            "empty_fse_id",
        ],
    ));
    rows.push(row("beneficiary_key_of_someone_else", || {
        case(
            changed(TOPIC, |v: &mut FseValidated| {
                v.beneficiary_key = "x-someone".into()
            }),
            Expect::Rejected(vec!["unknown_beneficiary"]),
        )
    }));
    run_all(TOPIC, rows);
}

#[test]
fn fse_entitled() {
    const TOPIC: &str = topics::FSE_ENTITLED;
    let mut rows = header_rows(TOPIC, |v: &mut FseEntitled| &mut v.header);
    rows.extend(claim_rows(
        TOPIC,
        |v: &mut FseEntitled| &mut v.fse,
        &["negative_amount", "care_date_in_year_9999", "empty_fse_id"],
    ));
    // The entitlement's regime and fund are carried, not re-checked: the
    // rules read its flags (ALD, CSS, ...), which cannot be malformed.
    rows.push(row("garbled_regime_is_carried", || {
        case(
            changed(TOPIC, |v: &mut FseEntitled| {
                v.entitlement.regime = Some("not a regime".into())
            }),
            Expect::Accepted,
        )
    }));
    run_all(TOPIC, rows);
}

#[test]
fn fse_routed() {
    const TOPIC: &str = topics::FSE_ROUTED;
    let mut rows = header_rows(TOPIC, |v: &mut FseRouted| &mut v.header);
    rows.extend(claim_rows(
        TOPIC,
        |v: &mut FseRouted| &mut v.fse,
        &["negative_amount", "care_date_in_year_9999"],
    ));
    rows.push(row("eu_route_without_an_institution", || {
        refused(changed(TOPIC, |v: &mut FseRouted| {
            v.routing.route = Route::Eu;
            v.routing.country = None;
            v.routing.institution_id = None;
        }))
    }));
    run_all(TOPIC, rows);
}

#[test]
fn fse_decided() {
    const TOPIC: &str = topics::FSE_DECIDED;
    let bad = |change: fn(&mut FseDecided)| move || refused(changed(TOPIC, change));
    let mut rows = header_rows(TOPIC, |v: &mut FseDecided| &mut v.header);
    rows.extend([
        row(
            "amounts_that_do_not_add_up",
            bad(|v| v.decision.paid_to_professional_cents += 1),
        ),
        row(
            "negative_amounts",
            bad(|v| {
                v.decision.amo_cents = -100;
                v.decision.paid_to_professional_cents -= 100 + v.decision.amo_cents.max(0);
            }),
        ),
        row(
            "amount_of_i64_max_cents",
            bad(|v| v.decision.amo_cents = i64::MAX),
        ),
        row(
            "a_rejection_on_the_paid_topic",
            bad(|v| v.decision.status = Status::Rejected),
        ),
        row("no_claim_context", bad(|v| v.claim = None)),
        row(
            "received_in_year_9999",
            bad(|v| v.claim.as_mut().unwrap().received_on = date(9999, 12, 31)),
        ),
        row(
            "received_before_1900",
            bad(|v| v.claim.as_mut().unwrap().received_on = date(1899, 12, 31)),
        ),
        row(
            "empty_fse_id",
            bad(|v| v.decision.fse_id = Some(String::new())),
        ),
    ]);
    run_all(TOPIC, rows);
}

#[test]
fn fse_rejected() {
    const TOPIC: &str = topics::FSE_REJECTED;
    let bad = |change: fn(&mut FseRejected)| move || refused(changed(TOPIC, change));
    let accepted =
        |change: fn(&mut FseRejected)| move || case(changed(TOPIC, change), Expect::Accepted);
    let mut rows = header_rows(TOPIC, |v: &mut FseRejected| &mut v.header);
    rows.extend([
        row(
            "a_payment_on_the_rejection_topic",
            bad(|v| v.decision.status = Status::Paid),
        ),
        row("no_claim_context", bad(|v| v.claim = None)),
        // A rejection's amounts are not used: neither its return nor its
        // ledger outcome pays anything.
        row(
            "amounts_on_a_rejection_are_not_used",
            accepted(|v| v.decision.amo_cents = i64::MAX),
        ),
        // Returned to the professional; its ledger outcome is refused by the
        // ledger (outbound_ledger's outcome_received_in_year_9999).
        row(
            "received_in_year_9999_is_returned",
            accepted(|v| v.claim.as_mut().unwrap().received_on = date(9999, 12, 31)),
        ),
        row(
            "a_rejection_without_reasons",
            bad(|v| v.decision.reasons.clear()),
        ),
        // Validation may reject a claim for its RPPS: the return goes out
        // with the RPPS as sent, whatever it is.
        row(
            "empty_rpps_is_returned_as_sent",
            accepted(|v| v.claim.as_mut().unwrap().rpps = String::new()),
        ),
    ]);
    run_all(TOPIC, rows);
}

mod outbound_ledger {
    use super::*;

    const TOPIC: &str = topics::OUTBOUND_LEDGER;

    /// The stream's close event, for another day.
    fn close(on: NaiveDate) -> Vec<u8> {
        let w = world();
        let mut close: LedgerEntry = w
            .registry
            .decode_single(&w.streams[TOPIC].follower().value)
            .unwrap();
        close.close_on = Some(on);
        w.registry.encode_single(&close)
    }

    /// The template's outcome, changed.
    fn outcome(change: fn(&mut LedgerOutcomeRec)) -> impl FnOnce() -> Case {
        move || {
            refused(changed(TOPIC, |v: &mut LedgerEntry| {
                change(v.outcome.as_mut().unwrap())
            }))
        }
    }

    #[test]
    fn entries() {
        let mut rows = header_rows(TOPIC, |v: &mut LedgerEntry| &mut v.header);
        rows.extend([
            row("both_an_outcome_and_a_close", || {
                refused(changed(TOPIC, |v: &mut LedgerEntry| {
                    v.close_on = Some(date(2025, 3, 3))
                }))
            }),
            row("neither_an_outcome_nor_a_close", || {
                refused(changed(TOPIC, |v: &mut LedgerEntry| v.outcome = None))
            }),
            row(
                "paid_outcome_amounts_that_do_not_add_up",
                outcome(|o| {
                    o.status = Status::Paid;
                    o.fse_id = Some("12345678-000000001".into());
                    o.amo_cents = -5;
                }),
            ),
            row(
                "paid_outcome_of_i64_max_cents",
                outcome(|o| {
                    o.status = Status::Paid;
                    o.fse_id = Some("12345678-000000001".into());
                    o.paid_to_professional_cents = i64::MAX;
                }),
            ),
            row(
                "paid_outcome_without_an_fse_id",
                outcome(|o| {
                    o.status = Status::Paid;
                    o.fse_id = None;
                }),
            ),
            // Taken, it would make every later close walk past its bound and
            // fail with a store error: the ledger stage would stop at each close.
            row(
                "outcome_received_before_1900",
                outcome(|o| o.received_on = date(1899, 12, 31)),
            ),
            // Taken, it would open an accumulation no close ever reaches.
            row(
                "outcome_received_in_year_9999",
                outcome(|o| o.received_on = date(9999, 12, 31)),
            ),
            row("rpps_of_a_kilobyte", outcome(|o| o.rpps = "1".repeat(1024))),
            row("close_outside_the_holiday_table", || {
                refused(close(date(9999, 12, 31)))
            }),
            row("close_before_1900", || refused(close(date(1899, 12, 31)))),
        ]);
        run_all(TOPIC, rows);
    }

    /// A close for a date at or before the last close is a repeat: no
    /// output, no state change; the stage goes on.
    #[test]
    fn close_for_a_date_before_the_last_close() {
        let w = world();
        let stream = &w.streams[TOPIC];
        let start = stream.start();
        let follower = stream.follower();
        let at = |i: u64, value: Vec<u8>| record(TOPIC, start + i, &follower.key, value);
        let mut records = vec![follower.clone()];
        records[0].offset = start;
        let (alone, _, alone_writes) = batch(w, StageKind::Ledger, &stream.base, &records);
        assert!(!alone.is_empty(), "the close emits");
        records.push(at(1, close(date(2025, 1, 6))));
        records.push(at(2, follower.value.clone()));
        let (outputs, stats, writes) = batch(w, StageKind::Ledger, &stream.base, &records);
        assert_eq!(outputs, alone, "the repeats give nothing");
        assert_eq!((stats.inputs, stats.dead_letters), (3, 0));
        assert_eq!(own_writes(&writes), own_writes(&alone_writes));
    }
}
