//! The outbound flows on the local log, with real processes: every decided
//! FSE gets exactly one final return, batches count every FSE, payment
//! orders add up to the paid amounts, EU claims to the visitors' AMO shares
//! with their art. 67 dates (late ones not receivable), and the whole of it
//! comes out the same after SIGKILLs at random points.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use chrono::NaiveDate;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::events::model::*;

use common::{CLOSES, clearing, each_record, ok, outbound_bodies, pipe};

fn url(bus: &Path) -> String {
    format!("local:{}", bus.display())
}

/// A data set and a bus loaded with it.
fn prepare(data: &Path, bus: &Path, claims: usize) {
    if !data.join("claims.jsonl").exists() {
        ok(clearing()
            .args(["gen", "--seed", "23", "--claims", &claims.to_string()])
            .args(["--professionals", "60"])
            .arg("--out")
            .arg(data));
    }
    for (topic, file) in [
        ("ref.rights", "rights.jsonl"),
        ("ref.pki", "pki.jsonl"),
        ("ref.eu.institutions", "eu_institutions.jsonl"),
    ] {
        pipe(
            clearing().args(["publish", "--bus", &url(bus), "--topic", topic]),
            &data.join(file),
        );
    }
    pipe(
        clearing().args(["submit", "--ingest-clock", "simulated", "--bus", &url(bus)]),
        &data.join("claims.jsonl"),
    );
}

fn run_to_end(bus: &Path, stages: &str) {
    ok(clearing()
        .args([
            "run",
            "--until-caught-up",
            "--batch",
            "89",
            "--stages",
            stages,
        ])
        .args(["--bus", &url(bus)]));
}

fn close_all(bus: &Path) {
    for on in CLOSES {
        ok(clearing().args(["close", "--bus", &url(bus), "--on", on]));
    }
    run_to_end(bus, "ledger");
}

fn each<T: clearing_pipeline::events::AvroRecord>(bus: &Path, topic: &str) -> Vec<T> {
    each_record(&LocalLog::open(bus).unwrap(), topic)
}

fn decisions(bus: &Path) -> Vec<DecisionRec> {
    let mut out: Vec<DecisionRec> = each::<FseDecided>(bus, "fse.decided")
        .into_iter()
        .map(|e| e.decision)
        .collect();
    out.extend(
        each::<FseRejected>(bus, "fse.rejected")
            .into_iter()
            .map(|e| e.decision),
    );
    out
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn outbound_flows_reconcile_with_the_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let (data, bus) = (dir.path().join("data"), dir.path().join("bus"));
    prepare(&data, &bus, 1200);
    run_to_end(&bus, "all");
    close_all(&bus);

    let decisions = decisions(&bus);
    assert_eq!(
        decisions.len(),
        1200,
        "every FSE decided (none dead-lettered)"
    );
    returns_match_the_decisions(&bus, &decisions);
    payment_orders_add_up(&bus, &decisions);
    orders_pay_each_billing_identifier(&bus);
    eu_claims_carry_their_art_67_dates(&bus, &decisions);

    // Complementary claims only under tiers payant on the AMC part.
    let amc = each::<AmcClaim>(&bus, "amc.claims");
    assert!(!amc.is_empty());
    assert!(
        amc.iter()
            .all(|c| c.amount_cents == c.ticket_cents + c.depassement_cents)
    );

    read_renders_orders_for_scripts(&bus);
}

/// Every FSE exactly one final return, of its decision's kind, and batch
/// acknowledgements that count every FSE.
fn returns_match_the_decisions(bus: &Path, decisions: &[DecisionRec]) {
    let returns = each::<ProfessionalReturn>(bus, "returns.professional");
    let mut want: BTreeMap<(Option<String>, bool), usize> = BTreeMap::new();
    for dec in decisions {
        *want
            .entry((dec.fse_id.clone(), dec.status == Status::Paid))
            .or_default() += 1;
    }
    let mut got: BTreeMap<(Option<String>, bool), usize> = BTreeMap::new();
    let mut arl_fses = 0;
    let mut negative = 0;
    for r in &returns {
        match r.kind {
            ReturnKind::RspPayment | ReturnKind::RspRejection => {
                *got.entry((r.fse_id.clone(), r.kind == ReturnKind::RspPayment))
                    .or_default() += 1;
                assert!(r.batch_id.is_none() && r.fse_count.is_none());
                if r.kind == ReturnKind::RspRejection {
                    assert!(!r.reasons.is_empty(), "a rejection says why");
                }
            }
            ReturnKind::ArlPositive | ReturnKind::ArlNegative => {
                arl_fses += r.fse_count.unwrap();
                negative += usize::from(r.kind == ReturnKind::ArlNegative);
                assert!(r.batch_id.as_deref().unwrap().starts_with(&r.rpps));
            }
        }
    }
    assert_eq!(got, want);
    assert_eq!(
        arl_fses as usize,
        decisions.len(),
        "batches count every FSE"
    );
    assert!(
        negative > 0,
        "the planted bad signatures make whole-batch refusals"
    );
}

/// Payment orders add up to what the decisions pay, each FSE once per payee.
fn payment_orders_add_up(bus: &Path, decisions: &[DecisionRec]) {
    let orders = each::<PaymentOrder>(bus, "payments.orders");
    let paid: i64 = decisions
        .iter()
        .map(|d| d.paid_to_professional_cents + d.paid_to_insured_cents)
        .sum();
    assert_eq!(orders.iter().map(|o| o.amount_cents).sum::<i64>(), paid);
    let imputed: i64 = decisions.iter().map(|d| d.imputed_cents).sum();
    assert_eq!(orders.iter().map(|o| o.imputed_cents).sum::<i64>(), imputed);
    let mut keys: Vec<(&str, String, NaiveDate)> = orders
        .iter()
        .map(|o| (o.payee.as_str(), o.order_id.clone(), o.value_date))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        n,
        "one order per payee, partition and value date"
    );
    guarantees_track_tiers_payant(&orders, decisions);
}

/// The generator's pharmacies, laboratories and transporters bill under
/// their AM number and some GPs under a health centre's FINESS: every FSE
/// paying a professional is in an order to its payee (the billing
/// identifier, else the RPPS), and a centre's order pays several GPs' FSEs.
fn orders_pay_each_billing_identifier(bus: &Path) {
    let mut payee_of: BTreeMap<String, (String, String)> = BTreeMap::new();
    for e in each::<FseDecided>(bus, "fse.decided") {
        let claim = e.claim.unwrap();
        if e.decision.paid_to_professional_cents > 0 {
            let payee = claim.payee.clone().unwrap_or_else(|| claim.rpps.clone());
            payee_of.insert(e.decision.fse_id.unwrap(), (payee, claim.rpps));
        }
    }
    let billed = payee_of.values().filter(|(p, r)| p != r).count();
    assert!(billed > 100, "{billed} FSEs paid to a billing identifier");
    let orders = each::<PaymentOrder>(bus, "payments.orders");
    let mut in_orders = 0;
    // The most RPPS one order to a billing identifier pays for.
    let mut most_rpps = 0;
    for o in orders
        .iter()
        .filter(|o| o.payee_kind == PayeeKind::Professional)
    {
        let mut rpps_paid = std::collections::BTreeSet::new();
        for id in &o.fse_ids {
            let (payee, rpps) = &payee_of[id];
            assert_eq!(payee, &o.payee, "{id} paid to its payee");
            in_orders += 1;
            if payee != rpps {
                rpps_paid.insert(rpps);
            }
        }
        most_rpps = most_rpps.max(rpps_paid.len());
    }
    assert_eq!(in_orders, payee_of.len(), "every FSE in one order");
    assert!(
        most_rpps > 1,
        "no order pays a health centre for several GPs"
    );
}

/// The guarantee: every tiers-payant payment to a professional is tracked,
/// with the decree's tiers.
fn guarantees_track_tiers_payant(orders: &[PaymentOrder], decisions: &[DecisionRec]) {
    let tp_paid = decisions
        .iter()
        .filter(|d| d.paid_to_professional_cents > 0)
        .count();
    let guarantees: Vec<&GuaranteeRec> = orders.iter().flat_map(|o| &o.guarantees).collect();
    assert_eq!(guarantees.len(), tp_paid);
    for g in &guarantees {
        assert_eq!(g.late, g.paid_working_day > 7, "{g:?}");
        match g.paid_working_day {
            0..=7 => assert_eq!(g.penalty_cents, 0),
            8 | 9 => assert_eq!(g.penalty_cents, 100),
            _ => assert!(g.penalty_cents >= 0),
        }
    }
    assert!(
        guarantees.iter().any(|g| g.late),
        "the mid-2025 run is late for 2024"
    );
    for o in orders {
        assert_eq!(
            o.late_penalty_cents,
            o.guarantees.iter().map(|g| g.penalty_cents).sum::<i64>()
        );
        assert!(o.value_date > d(CLOSES[0]), "paid after its run");
    }
}

/// EU claims: the visitors' AMO shares (Reg. 987/2009 art. 62: what the
/// competent institution owes, whatever deferred deductions or imputed debts
/// did to the payments), with their art. 67 dates.
fn eu_claims_carry_their_art_67_dates(bus: &Path, decisions: &[DecisionRec]) {
    let claims = each::<EuClaim>(bus, "eu.claims");
    let eu_paid: i64 = decisions
        .iter()
        .filter(|d| d.route == Some(Route::Eu))
        .map(|d| d.amo_cents)
        .sum();
    assert!(eu_paid > 0, "the data set has visitors");
    assert_eq!(claims.iter().map(|c| c.amount_cents).sum::<i64>(), eu_paid);
    for c in &claims {
        match c.half_year.as_str() {
            "2024-H2" => {
                assert_eq!(c.introduced_on, d("2025-06-16"));
                assert_eq!(c.introduction_deadline, d("2025-12-31"));
                assert_eq!(c.payment_due, d("2026-12-31"));
                assert_eq!(c.dispute_deadline, d("2028-06-30"));
                assert!(c.receivable);
            }
            "2025-H1" => {
                assert_eq!(c.introduced_on, d("2026-08-03"));
                assert_eq!(c.introduction_deadline, d("2026-06-30"));
                assert!(!c.receivable, "introduced 13 months after the half-year");
            }
            _ => {}
        }
        assert_eq!(c.currency, "EUR");
    }
    assert!(claims.iter().any(|c| c.receivable) && claims.iter().any(|c| !c.receivable));
}

/// `clearing read` renders them for scripts, amounts as decimal strings.
fn read_renders_orders_for_scripts(bus: &Path) {
    let out = clearing()
        .args(["read", "--bus", &url(bus), "--topic", "payments.orders"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert!(first["amount"].as_str().unwrap().contains('.'), "{first}");
    assert!(first["payee_kind"].is_string() && first["value_date"].is_string());
}

#[test]
fn a_close_outside_the_holiday_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = clearing()
        .args(["close", "--bus", &url(dir.path()), "--on", "2099-01-01"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2099-01-01"));
}

#[test]
fn sigkill_at_random_points_changes_no_outbound_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (clean, crashed) = (dir.path().join("clean"), dir.path().join("crashed"));
    prepare(&data, &clean, 1500);
    prepare(&data, &crashed, 1500);
    run_to_end(&clean, "all");
    close_all(&clean);

    let mut kills = 0;
    for delay_ms in [60u64, 140, 250, 380, 520, 700] {
        let mut child = clearing()
            .args(["run", "--batch", "53", "--bus", &url(&crashed)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills > 0);
    run_to_end(&crashed, "all");
    // Closes arrive while the ledger may be killed too.
    for on in CLOSES {
        ok(clearing().args(["close", "--bus", &url(&crashed), "--on", on]));
        let mut child = clearing()
            .args([
                "run",
                "--stages",
                "ledger",
                "--batch",
                "7",
                "--bus",
                &url(&crashed),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
        child.kill().ok();
        child.wait().unwrap();
    }
    run_to_end(&crashed, "ledger");

    let (want, got) = (
        outbound_bodies(&LocalLog::open(&clean).unwrap()),
        outbound_bodies(&LocalLog::open(&crashed).unwrap()),
    );
    assert_eq!(
        got.len(),
        want.len(),
        "no outbound event lost or duplicated"
    );
    let first = want.iter().zip(&got).find(|(a, b)| a != b);
    assert!(first.is_none(), "first difference: {first:?}");
}
