//! Several professionals billing under one AM number (docs/rules.md,
//! "Billing identifiers"): a pharmacy's pharmacists sign with their own CPS
//! (RPPS) and bill under the pharmacy's AM number. Through the runtime on a
//! local log, in this process: two pharmacists may use the same FSE number
//! for the same patient (the number is unique per RPPS), both are paid, in
//! one order to the pharmacy; returns and batch acknowledgements stay per
//! RPPS.

mod common;

use std::sync::Arc;

use chrono::NaiveDate;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::model::{
    FseDecided, FseRejected, PayeeKind, PaymentOrder, ProfessionalReturn, ReturnKind,
};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, Shared, StageKind};
use common::dataset::run_to_end;
use common::each_record;
use serde_json::json;

const NIR: &str = "185057800604830";
const PHARMACISTS: [&str; 2] = ["10002727377", "10002727385"];
/// The pharmacy's AM number: department 75, category 2 (suppliers).
const PHARMACY: &str = "752000017";
const FSE_ID: &str = "75200001-000000042";

fn dispensing(rpps: &str, fse_id: &str) -> FseInput {
    serde_json::from_value(json!({
        "fse_id": fse_id,
        "received_at": "2025-03-04T18:00:00+01:00",
        "care_date": "2025-03-04",
        "professional": {"rpps": rpps, "category": "pharmacist", "sector": "1",
                         "billing": {"kind": "am", "id": PHARMACY}},
        "beneficiary": {"nir": NIR, "birth_date": "1985-05-12", "rank": 1},
        "tiers_payant": {"amo": true, "amc": false},
        "acts": [{"code": "PH7", "quantity": 1, "product": "3400940000004",
                  "unit_price": "1.61", "charged": "1.61"}],
    }))
    .unwrap()
}

#[test]
fn pharmacists_under_one_am_number_are_paid_together_and_answered_apart() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Arc::new(LocalLog::open(&dir.path().join("bus")).unwrap());
    runtime::ensure_topics(&*bus, 1).unwrap();
    let rules = Rules::embedded().unwrap();
    let (registry, pseudonyms) = (SchemaRegistry::new().unwrap(), PseudonymKey::development());
    {
        let mut ingest =
            Ingest::new(&*bus, &registry, &pseudonyms, IngestClock::Simulated).unwrap();
        let rights: RightsInput = serde_json::from_value(json!({
            "nir": NIR, "birth_date": "1985-05-12", "rank": 1,
            "coverage": [{"from": "2000-01-01", "to": null, "regime": "01", "fund": "751"}],
            "ald": [], "css": [], "ame": [], "maternity": [],
            "local_regime": null, "declared_gp": null
        }))
        .unwrap();
        ingest.rights(&rights).unwrap();
        // Both pharmacists' FSE number 42 for the same patient, then the
        // first one's resent: only that is a duplicate.
        for (rpps, fse_id) in [
            (PHARMACISTS[0], FSE_ID),
            (PHARMACISTS[1], FSE_ID),
            (PHARMACISTS[0], FSE_ID),
            (PHARMACISTS[1], "75200001-000000043"),
        ] {
            ingest.submit(&dispensing(rpps, fse_id)).unwrap();
        }
        ingest.flush().unwrap();
    }
    let shared = Arc::new(Shared {
        bus: bus.clone(),
        rules: Arc::new(rules.clone()),
        registry: Arc::new(SchemaRegistry::new().unwrap()),
        pseudonyms: PseudonymKey::development(),
        trust_unsigned: true,
        state_dir: dir.path().join("state"),
        group: "clearing".into(),
        batch_max: 100,
        verify_threads: 1,
        workers_per_stage: 1,
        queries: None,
        store_rewrite: clearing_pipeline::state::RewritePolicy::DEFAULT,
        store_engine: clearing_pipeline::state::Engine::default(),
    });
    run_to_end(&shared, &StageKind::ALL);

    // Both FSEs numbered 42 are paid; the resend is the one duplicate.
    let decided = each_record::<FseDecided>(&*bus, "fse.decided");
    let mut paid: Vec<(String, String)> = decided
        .iter()
        .map(|e| {
            let claim = e.claim.as_ref().unwrap();
            assert_eq!(claim.payee.as_deref(), Some(PHARMACY));
            (claim.rpps.clone(), e.decision.fse_id.clone().unwrap())
        })
        .collect();
    paid.sort();
    assert_eq!(
        paid,
        [
            (PHARMACISTS[0].into(), FSE_ID.into()),
            (PHARMACISTS[1].into(), FSE_ID.into()),
            (PHARMACISTS[1].into(), "75200001-000000043".into()),
        ]
    );
    let rejected = each_record::<FseRejected>(&*bus, "fse.rejected");
    let refusals: Vec<(String, Vec<String>)> = rejected
        .iter()
        .map(|e| {
            let claim = e.claim.as_ref().unwrap();
            let codes = e.decision.reasons.iter().map(|r| r.code.clone()).collect();
            (claim.rpps.clone(), codes)
        })
        .collect();
    assert_eq!(
        refusals,
        [(PHARMACISTS[0].to_string(), vec!["duplicate".to_string()])]
    );

    // A payment run: one order to the pharmacy pays all three.
    {
        let mut ingest =
            Ingest::new(&*bus, &registry, &pseudonyms, IngestClock::Simulated).unwrap();
        ingest
            .close(NaiveDate::from_ymd_opt(2025, 3, 5).unwrap(), &rules)
            .unwrap();
        ingest.flush().unwrap();
    }
    run_to_end(&shared, &[StageKind::Ledger]);
    let orders: Vec<PaymentOrder> = each_record::<PaymentOrder>(&*bus, "payments.orders")
        .into_iter()
        .filter(|o| o.payee_kind == PayeeKind::Professional)
        .collect();
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(order.payee, PHARMACY);
    assert_eq!(order.fse_ids, [FSE_ID, FSE_ID, "75200001-000000043"]);
    let paid_to_pharmacy: i64 = decided
        .iter()
        .map(|e| e.decision.paid_to_professional_cents)
        .sum();
    assert!(paid_to_pharmacy > 0);
    assert_eq!(order.amount_cents, paid_to_pharmacy);
    assert_eq!(order.guarantees.len(), 3);

    // Returns per RPPS: each pharmacist's payment returns name the pharmacy
    // as payee; the resend's rejection goes to the pharmacist who sent it;
    // one batch acknowledgement per pharmacist (and day).
    let returns = each_record::<ProfessionalReturn>(&*bus, "returns.professional");
    let mut answered: Vec<(ReturnKind, String, Option<String>, Option<i32>)> = returns
        .iter()
        .map(|r| (r.kind, r.rpps.clone(), r.fse_id.clone(), r.fse_count))
        .collect();
    answered.sort_by_key(|(kind, rpps, fse, _)| (format!("{kind:?}"), rpps.clone(), fse.clone()));
    assert_eq!(
        answered,
        [
            (
                ReturnKind::ArlPositive,
                PHARMACISTS[0].into(),
                None,
                Some(2)
            ),
            (
                ReturnKind::ArlPositive,
                PHARMACISTS[1].into(),
                None,
                Some(2)
            ),
            (
                ReturnKind::RspPayment,
                PHARMACISTS[0].into(),
                Some(FSE_ID.into()),
                None
            ),
            (
                ReturnKind::RspPayment,
                PHARMACISTS[1].into(),
                Some(FSE_ID.into()),
                None
            ),
            (
                ReturnKind::RspPayment,
                PHARMACISTS[1].into(),
                Some("75200001-000000043".into()),
                None
            ),
            (
                ReturnKind::RspRejection,
                PHARMACISTS[0].into(),
                Some(FSE_ID.into()),
                None
            ),
        ]
    );
    for r in returns.iter().filter(|r| r.kind == ReturnKind::RspPayment) {
        assert_eq!(r.payee.as_deref(), Some(PHARMACY));
    }
}
