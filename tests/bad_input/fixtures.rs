//! The reference data every case is decided against, the valid claims the
//! cases are made from, and the edits that make them bad.

use clearing_pipeline::adjudicate::Adjudicator;
use clearing_pipeline::ids::Nir;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::{NoPki, TrustUnsigned};
use clearing_pipeline::rules::Rules;
use serde_json::{Value, json};

pub const GP: &str = "10000123454";
pub const NURSE: &str = "10000000009";
pub const PHARMACIST: &str = "10002727377";
/// Covered from 2000, declared GP = `GP`, no ALD.
pub const NIR: &str = "185057800604830";
/// Another covered beneficiary.
pub const OTHER_NIR: &str = "295109912611193";
pub const CARD: &str = "80276001234567890123";
pub const PERSONAL_ID: &str = "X123456789";
pub const CIP: &str = "3400935955838";

/// Covered from 2015 to the end of 2024 only.
pub fn lapsed_nir() -> String {
    Nir::from_body("1750175123456")
        .unwrap()
        .expose()
        .to_string()
}

/// A well-formed NIR with no rights record.
pub fn unknown_nir() -> String {
    Nir::from_body("2800175123457")
        .unwrap()
        .expose()
        .to_string()
}

pub fn rights(nir: &str, birth_date: &str, coverage_to: Value) -> String {
    json!({
        "nir": nir, "birth_date": birth_date, "rank": 1,
        "coverage": [{"from": "2000-01-01", "to": coverage_to, "regime": "01", "fund": "751"}],
        "ald": [], "css": [], "ame": [], "maternity": [],
        "local_regime": null, "declared_gp": GP
    })
    .to_string()
}

/// An EU institution of the directory, as a `ref.eu.institutions` line.
pub fn institution() -> Value {
    json!({"country": "DE", "institution_id": "108310400", "name": "AOK Baden-Wuerttemberg",
           "from": "2004-06-01", "to": null})
}

pub fn new_adjudicator(trust: bool) -> Adjudicator {
    let verifier: Box<dyn clearing_pipeline::refdata::SignatureVerifier> = if trust {
        Box::new(TrustUnsigned)
    } else {
        Box::new(NoPki)
    };
    let mut a = Adjudicator::new(
        Rules::embedded().unwrap(),
        PseudonymKey::development(),
        verifier,
    );
    a.load_rights_line(&rights(NIR, "1985-05-12", Value::Null))
        .unwrap();
    a.load_rights_line(&rights(OTHER_NIR, "1995-10-03", Value::Null))
        .unwrap();
    a.load_rights_line(&rights(&lapsed_nir(), "1975-01-15", json!("2024-12-31")))
        .unwrap();
    for institution in [
        institution(),
        json!({"country": "HR", "institution_id": "HZZO", "name": "Hrvatski zavod",
               "from": "2004-06-01", "to": null}),
    ] {
        a.load_institution_line(&institution.to_string()).unwrap();
    }
    a
}

pub fn adjudicator() -> Adjudicator {
    new_adjudicator(true)
}

/// A valid GP claim (E8: G at EUR 30, 2025): paid 19.00.
pub fn claim() -> Value {
    json!({
        "fse_id": "12345678-000000042",
        "received_at": "2025-01-20T09:14:03Z",
        "care_date": "2025-01-20",
        "professional": {"rpps": GP, "category": "gp", "sector": "1", "optam": false},
        "beneficiary": {"nir": NIR, "birth_date": "1985-05-12", "rank": 1},
        "pathway": "mt",
        "tiers_payant": {"amo": false, "amc": false},
        "acts": [{"code": "G", "quantity": 1, "coefficient": "1", "charged": "30.00"}]
    })
}

/// A valid EHIC visitor's claim (German card, emergency GP visit, 2025).
pub fn visitor() -> Value {
    json!({
        "fse_id": "45678901-000000100",
        "received_at": "2025-07-14T12:00:00+02:00",
        "care_date": "2025-07-14",
        "professional": {"rpps": GP, "category": "gp", "sector": "1"},
        "ehic": {"country": "DE", "institution_id": "108310400", "card_id": CARD,
                 "personal_id": PERSONAL_ID, "surname": "Muster", "given_names": "Erika",
                 "birth_date": "1970-01-31", "expiry": "2027-12-31"},
        "pathway": "emergency",
        "tiers_payant": {"amo": false, "amc": false},
        "acts": [{"code": "G", "charged": "30.00"}]
    })
}

/// A valid pharmacy claim (one PH7 box at 7.50).
pub fn pharmacy() -> Value {
    json!({
        "fse_id": "34567890-000000001",
        "received_at": "2025-02-04T11:30:00+01:00",
        "care_date": "2025-02-04",
        "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
        "beneficiary": {"nir": NIR, "birth_date": "1985-05-12", "rank": 1},
        "tiers_payant": {"amo": true, "amc": true},
        "acts": [{"code": "PH7", "quantity": 1, "product": CIP, "unit_price": "7.50",
                  "charged": "7.50"}]
    })
}

/// A valid nurse claim with a travel allowance.
pub fn nurse() -> Value {
    json!({
        "fse_id": "23456789-000000007",
        "received_at": "2025-03-05T16:20:00+01:00",
        "care_date": "2025-03-05",
        "professional": {"rpps": NURSE, "category": "nurse", "sector": "1"},
        "beneficiary": {"nir": NIR, "birth_date": "1985-05-12", "rank": 1},
        "pathway": "referred",
        "tiers_payant": {"amo": true, "amc": false},
        "acts": [{"code": "AMI", "coefficient": "2", "charged": "6.30", "complement": "sunday"},
                 {"code": "IFD", "charged": "2.50"}]
    })
}

/// The value that holds the last segment of a dotted path (`acts.0.code`),
/// and that segment; objects are created as needed.
fn parent<'v>(v: &'v mut Value, path: &'v str) -> (&'v mut Value, &'v str) {
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().expect("a path has a segment");
    let mut target = v;
    for part in parents {
        target = match part.parse::<usize>() {
            Ok(i) => &mut target[i],
            Err(_) => &mut target[*part],
        };
    }
    (target, last)
}

/// Sets `value` at a dotted path (`acts.0.code`), creating objects as needed.
pub fn set(mut v: Value, path: &str, value: Value) -> Value {
    let (target, last) = parent(&mut v, path);
    match last.parse::<usize>() {
        Ok(i) => target[i] = value,
        Err(_) => target[last] = value,
    }
    v
}

/// Removes the member at a dotted path.
pub fn remove(mut v: Value, path: &str) -> Value {
    let (target, last) = parent(&mut v, path);
    target
        .as_object_mut()
        .unwrap()
        .remove(last)
        .expect("the path exists");
    v
}
