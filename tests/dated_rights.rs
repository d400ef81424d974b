//! Dated rights end to end on the local log: a rights record that changes
//! the declared GP after a first claim. A late claim for care before the
//! change is still judged with the old GP (no pathway penalty); one after
//! it, from the old GP as `mt`, gets the outside-pathway rate; the run
//! replays IDENTICAL.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::events::model::{DecisionRec, FseDecided};
use clearing_pipeline::events::registry::SchemaRegistry;
use serde_json::{Value, json};

use common::{clearing, ok, with_stdin};

const GP: &str = "10000123454";
const NEW_GP: &str = "10101234564";
const NIR: &str = "185057800604830";

fn rights(periods: Value) -> Value {
    json!({
        "nir": NIR, "birth_date": "1985-05-12", "rank": 1,
        "coverage": [{"from": "2000-01-01", "to": null, "regime": "01", "fund": "751"}],
        "ald": [], "css": [], "ame": [], "maternity": [],
        "local_regime": null, "declared_gp": GP, "declared_gp_periods": periods
    })
}

/// A G consultation (EUR 30) by `rpps` as the declared GP (`mt`).
fn consultation(n: u32, rpps: &str, care: &str, received: &str) -> Value {
    json!({
        "fse_id": format!("12345678-{n:09}"),
        "received_at": format!("{received}T18:00:00+02:00"),
        "care_date": care,
        "professional": {"rpps": rpps, "category": "gp", "sector": "1", "optam": false},
        "beneficiary": {"nir": NIR, "birth_date": "1985-05-12", "rank": 1},
        "pathway": "mt",
        "tiers_payant": {"amo": false, "amc": false},
        "acts": [{"code": "G", "charged": "30.00"}]
    })
}

fn send(url: &str, verb: &[&str], line: &Value) {
    let out = with_stdin(
        clearing().args(verb).args(["--bus", url]),
        &format!("{line}\n"),
    );
    assert!(
        out.status.success(),
        "{verb:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_to_end(url: &str) {
    ok(clearing().args(["run", "--until-caught-up", "--trust-unsigned", "--bus", url]));
}

fn decided(bus: &Path) -> BTreeMap<String, DecisionRec> {
    let log = LocalLog::open(bus).unwrap();
    let registry = SchemaRegistry::new().unwrap();
    let mut out = BTreeMap::new();
    for partition in 0..log.partition_count("fse.decided").unwrap() {
        for record in log.read("fse.decided", partition, 0, usize::MAX).unwrap() {
            let d = registry
                .decode_single::<FseDecided>(&record.value)
                .unwrap()
                .decision;
            out.insert(d.fse_id.clone().unwrap(), d);
        }
    }
    out
}

fn penalised(d: &DecisionRec) -> bool {
    d.warnings.iter().any(|w| w.code == "pathway_not_honoured")
}

#[test]
fn a_late_claim_before_a_change_of_gp_is_judged_with_the_old_gp_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let url = format!("local:{}", bus.display());
    // Given: the GP declared, a first claim decided with it.
    send(
        &url,
        &["publish", "--topic", "ref.rights"],
        &rights(json!([])),
    );
    send(
        &url,
        &["submit"],
        &consultation(1, GP, "2025-06-02", "2025-06-02"),
    );
    run_to_end(&url);
    // When: the GP changes on 10 June, then claims arrive for care on
    // either side of the change, the first one late.
    let change = json!([{"from": "2025-06-10", "to": null, "rpps": NEW_GP}]);
    send(&url, &["publish", "--topic", "ref.rights"], &rights(change));
    for claim in [
        consultation(2, GP, "2025-06-09", "2025-06-20"),
        consultation(3, GP, "2025-06-10", "2025-06-20"),
        consultation(4, NEW_GP, "2025-06-10", "2025-06-20"),
    ] {
        send(&url, &["submit"], &claim);
    }
    run_to_end(&url);
    // Then
    let d = decided(&bus);
    let of = |n: u32| &d[&format!("12345678-{n:09}")];
    assert_eq!(d.len(), 4, "{:?}", d.keys().collect::<Vec<_>>());
    assert!(!penalised(of(1)) && !penalised(of(2)) && !penalised(of(4)));
    assert!(
        penalised(of(3)),
        "the old GP after the change is outside the pathway"
    );
    assert_eq!(
        of(2).amo_cents,
        of(1).amo_cents,
        "the late claim: the old GP's rate"
    );
    assert!(of(3).amo_cents < of(2).amo_cents);
    assert_eq!(of(4).amo_cents, of(1).amo_cents);
    // And the run replays IDENTICAL.
    drop(d);
    let status = clearing()
        .args(["replay", "--quiet", "--bus", &url])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "replay diverges");
}
