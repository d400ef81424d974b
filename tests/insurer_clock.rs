//! The insurer's clock end to end (docs/architecture.md, "The insurer's
//! clock"): a certificate is judged valid and unrevoked on the date the
//! front door stamped, never on the dates the signer wrote; a record without
//! the stamp (written before 2026-12-05) is judged as it always was; and
//! `clearing submit` stamps the machine's clock.

mod common;

use std::path::Path;
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::domain::{FseInput, SignatureCheck};
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::convert::submitted_from_input;
use clearing_pipeline::events::model::{FseRejected, FseSubmitted, FseValidated};
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::runtime::ingest::{Ingest, fse_key};
use clearing_pipeline::runtime::{self, StageKind, topics};
use common::dataset::{DataSet, run_to_end, shared};
use common::{clearing, each_record, with_stdin};

/// A month of claims, and one of them whose card the PKI revokes the day
/// after everything its signer wrote (care and `received_at`): a backdated
/// claim is one the signer dates before a revocation that has happened.
fn world(dir: &Path) -> (DataSet, FseInput, NaiveDate) {
    let mut data = DataSet::small_month(&dir.join("data"));
    let revoked_certs: Vec<String> = data
        .pki
        .iter()
        .filter_map(|r| match r {
            PkiRecord::Revocation { cert, .. } => Some(cert.clone()),
            PkiRecord::Certificate { .. } => None,
        })
        .collect();
    let claim = data
        .claims
        .iter()
        // Without a prescription: the record written before the stamp
        // (fse.submitted.v1) predates prescriptions too, and could not carry one.
        .find(|c| {
            let cert = c.signature.as_ref().and_then(|s| s.cert.clone());
            let prescribed = (c.acts.iter().flatten()).any(|a| a.prescription.is_some());
            !prescribed && cert.is_some_and(|cert| !revoked_certs.contains(&cert))
        })
        .expect("a claim without prescription signed by a card never revoked")
        .clone();
    let received = received_date(&claim);
    let revoked_on = received + Days::new(1);
    let cert = claim
        .signature
        .as_ref()
        .and_then(|s| s.cert.clone())
        .expect("signed");
    data.pki.push(PkiRecord::Revocation { cert, revoked_on });
    (data, claim, revoked_on)
}

fn received_date(claim: &FseInput) -> NaiveDate {
    let text = claim.received_at.as_deref().expect("received_at");
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .date_naive()
}

/// Noon in Paris on `date`, as the front door would stamp it.
fn stamp_on(date: NaiveDate) -> i64 {
    date.and_hms_opt(10, 0, 0)
        .expect("a time")
        .and_utc()
        .timestamp_millis()
}

fn now_millis() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// How the one claim reaches `fse.submitted`.
enum Written {
    /// By the front door, stamped at this instant.
    Stamped(i64),
    /// As a producer wrote it before the stamp existed: the signed form
    /// (fse.submitted.v1) alone.
    V1,
}

/// The validation stage's outcome for `claim` on a bus of its own holding
/// `data`'s reference data: its signature check, or its rejection codes.
fn validate(dir: &Path, data: &DataSet, claim: &FseInput, written: Written) -> Outcome {
    let bus: Arc<LocalLog> = LocalLog::open(&dir.join("bus")).unwrap();
    runtime::ensure_topics(&bus, 1).unwrap();
    data.publish_references(&bus);
    let (registry, pseudonyms) = (SchemaRegistry::new().unwrap(), PseudonymKey::development());
    let mut fse = submitted_from_input(claim).unwrap();
    match written {
        Written::Stamped(millis) => {
            fse.ingested_at_millis = Some(millis);
            let mut ingest = Ingest::new(
                &bus,
                &registry,
                &pseudonyms,
                clearing_pipeline::clock::IngestClock::Wall,
            )
            .unwrap();
            ingest.submit_wire(&fse).unwrap();
            ingest.flush().unwrap();
        }
        Written::V1 => {
            let mut producer = bus.producer().unwrap();
            let value = registry.encode_signed_form(&fse);
            producer
                .send(
                    topics::FSE_SUBMITTED,
                    0,
                    &fse_key(&fse, &pseudonyms),
                    &value,
                    fse.received_at_millis,
                )
                .unwrap();
            producer.flush().unwrap();
        }
    }
    run_to_end(
        &shared(bus.clone(), &dir.join("state")),
        &[StageKind::Validation],
    );
    let validated = each_record::<FseValidated>(&bus, topics::FSE_VALIDATED);
    let rejected = each_record::<FseRejected>(&bus, topics::FSE_REJECTED);
    match (validated.as_slice(), rejected.as_slice()) {
        ([v], []) => Outcome::Passed(v.signature_check),
        ([], [r]) => Outcome::Rejected(
            r.decision
                .reasons
                .iter()
                .map(|reason| reason.code.clone())
                .collect(),
        ),
        _ => panic!("{} validated, {} rejected", validated.len(), rejected.len()),
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Passed(SignatureCheck),
    Rejected(Vec<String>),
}

#[test]
fn a_backdated_claim_from_a_revoked_card_is_rejected_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (data, claim, revoked_on) = world(dir.path());
    let day_before = revoked_on - Days::new(1);
    // Received by the insurer before the revocation: the signature stands.
    assert_eq!(
        validate(
            &dir.path().join("before"),
            &data,
            &claim,
            Written::Stamped(stamp_on(day_before))
        ),
        Outcome::Passed(SignatureCheck::Verified)
    );
    // The same signed bytes received on the day of the revocation, and a
    // month later: the dates inside the FSE predate the revocation, and
    // prove nothing.
    for (name, receipt) in [("on", revoked_on), ("after", revoked_on + Days::new(30))] {
        assert_eq!(
            validate(
                &dir.path().join(name),
                &data,
                &claim,
                Written::Stamped(stamp_on(receipt))
            ),
            Outcome::Rejected(vec!["certificate_revoked".into()]),
            "received {receipt}, revoked {revoked_on}"
        );
    }
    // A record from before the stamp existed is judged on the date of care,
    // as it was when it was written, so that old runs replay as they ran.
    assert_eq!(
        validate(&dir.path().join("v1"), &data, &claim, Written::V1),
        Outcome::Passed(SignatureCheck::Verified)
    );
}

/// `clearing submit` stamps each FSE with the machine's clock by default,
/// outside the signed bytes, and with the FSE's own `received_at` under
/// `--ingest-clock simulated`.
#[test]
fn clearing_submit_stamps_the_insurer_receipt_time() {
    let dir = tempfile::tempdir().unwrap();
    let (_, claim, _) = world(dir.path());
    let line = serde_json::to_string(&claim).unwrap();
    let received_millis = submitted_from_input(&claim).unwrap().received_at_millis;
    for (clock, name) in [(None, "wall"), (Some("simulated"), "simulated")] {
        let bus_dir = dir.path().join(name);
        let url = format!("local:{}", bus_dir.display());
        let mut command = clearing();
        command.args(["submit", "--bus", &url]);
        if let Some(clock) = clock {
            command.args(["--ingest-clock", clock]);
        }
        let before = now_millis();
        let output = with_stdin(&mut command, &format!("{line}\n"));
        let after = now_millis();
        assert!(output.status.success(), "{output:?}");
        let bus = LocalLog::open(&bus_dir).unwrap();
        let submitted = each_record::<FseSubmitted>(&bus, topics::FSE_SUBMITTED);
        let [fse] = submitted.as_slice() else {
            panic!("{} records", submitted.len());
        };
        let stamp = fse.ingested_at_millis.expect("stamped");
        match clock {
            None => assert!((before..=after).contains(&stamp), "{stamp}"),
            Some(_) => assert_eq!(stamp, received_millis),
        }
        // The stamp is outside what was signed.
        assert_eq!(
            clearing_pipeline::signatures::canonical_bytes(&SchemaRegistry::new().unwrap(), fse),
            clearing_pipeline::signatures::canonical_bytes(
                &SchemaRegistry::new().unwrap(),
                &submitted_from_input(&claim).unwrap()
            )
        );
    }
}
