//! The four deciding stages as pure functions (design.md §2), and the
//! contract by which the runtime runs them and the outbound ones.
//!
//! Each decision is `fn(input, &mut StateTxn, &Context) -> Result<Outcome<Out>, StoreError>`:
//! no I/O, no clock, no randomness, no hash-map iteration. Bad input is an
//! [`Outcome::Reject`] carrying a coded decision; a `StoreError` is a
//! technical failure of the store beneath, never the claim's fault. Each
//! stage's file also declares it on the bus ([`contract::Stage`]): its input
//! event, its topics, decode, decide and encode.

pub mod contract;
pub mod emit;
pub mod entitlement;
pub mod registry;
pub mod reimbursement;
pub mod routing;
pub mod validation;

pub use registry::StageKind;

use chrono::NaiveDate;

use crate::domain::{Decision, Fse, Reason, SignatureCheck};
use crate::ids::{Country, EhicInstitutionId};
use crate::pseudonym::{BeneficiaryKey, PseudonymKey};
use crate::refdata::RefView;
use crate::rights::LocalRegime;
use crate::rules::Rules;

/// What a stage did with its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Pass(T),
    Reject(Box<Decision>),
}

/// Everything a stage may consult besides its input and its state.
pub struct Context<'a> {
    pub rules: &'a Rules,
    pub refs: &'a RefView<'a>,
    pub pseudonyms: &'a PseudonymKey,
}

/// Output of validation (`fse.validated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub fse: Fse,
    pub beneficiary: BeneficiaryKey,
    pub signature_check: SignatureCheck,
    pub warnings: Vec<Reason>,
}

/// What the beneficiary's situation is on the date of care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// `None` for EHIC visitors, and for an insured patient without coverage
    /// whose claim is only foreign ePrescriptions (see [`Self::covered`]).
    pub regime: Option<String>,
    pub fund: Option<String>,
    pub ald: bool,
    pub css: bool,
    pub ame: bool,
    pub maternity: bool,
    /// Under the minor age on 1 January of the year of care.
    pub minor: bool,
    /// Young enough that the care pathway does not apply.
    pub pathway_free: bool,
    pub local_regime: Option<LocalRegime>,
    pub declared_gp: Option<String>,
    pub amc: Option<String>,
    /// `sha256:` of the rights record used (`None` for visitors).
    pub rights_digest: Option<String>,
}

impl Entitlement {
    /// Whether a patient identified as insured has a mandatory share: a
    /// regime or AME on the date of care. Entitlement passes an insured
    /// patient without either only for foreign ePrescriptions, paid with no
    /// mandatory share (docs/rules.md, "EU ePrescriptions").
    pub fn covered(&self) -> bool {
        self.regime.is_some() || self.ame
    }
}

/// Output of entitlement (`fse.entitled`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitled {
    pub validated: Validated,
    pub entitlement: Entitlement,
}

/// Where the claim is billed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    Domestic,
    /// Billed to the visitor's competent institution.
    Eu {
        country: Country,
        institution: EhicInstitutionId,
    },
}

/// Output of routing (`fse.routed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub entitled: Entitled,
    pub routing: Routing,
}

/// Age in whole years on `on`.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> i32 {
    use chrono::Datelike;
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// A rejection decision from a stage's reasons, with what is known so far.
pub(crate) fn reject(
    fse_id: Option<&str>,
    reasons: Vec<Reason>,
    warnings: Vec<Reason>,
    ctx: &Context<'_>,
) -> Box<Decision> {
    Box::new(Decision::rejected(
        fse_id.map(str::to_string),
        reasons,
        warnings,
        &ctx.rules.version,
    ))
}

/// A rejection once the FSE is checked: carries its key, dates and signature outcome.
pub(crate) fn reject_validated(
    validated: &Validated,
    reasons: Vec<Reason>,
    ctx: &Context<'_>,
) -> Box<Decision> {
    let mut decision = Decision::rejected(
        Some(validated.fse.fse_id.clone()),
        reasons,
        validated.warnings.clone(),
        &ctx.rules.version,
    );
    decision.signature_check = Some(validated.signature_check);
    decision.beneficiary_key = Some(validated.beneficiary.to_string());
    decision.care_date = Some(validated.fse.care_date);
    decision.reimbursement_date = Some(validated.fse.reimbursement_date());
    Box::new(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(age_on(d("2007-01-01"), d("2025-01-01")), 18);
        assert_eq!(age_on(d("2007-01-02"), d("2025-01-01")), 17);
        assert_eq!(age_on(d("2008-02-29"), d("2025-02-28")), 16);
        assert_eq!(age_on(d("2008-02-29"), d("2025-03-01")), 17);
    }

    // -----------------------------------------------------------------------
    // A kit for the stages' given/when/then tests (entitlement, routing,
    // reimbursement): the context built by hand, one `MemStore` per stage,
    // and claims written as the contract's JSON.

    use serde_json::{Value, json};

    use crate::clock::simulated_receipt;

    use crate::domain::FseInput;
    use crate::domain::rights::RightsInput;
    use crate::refdata::{EuInstitutionInput, InstitutionDirectory, TrustUnsigned};
    use crate::state::{MemStore, StateStore, StateTxn};

    /// A GP (Luhn-valid RPPS), the declared GP of the default rights.
    pub(crate) const GP: &str = "10000123454";
    /// Another doctor (Luhn-valid RPPS).
    pub(crate) const OTHER_DOCTOR: &str = "10101234564";
    pub(crate) const NURSE: &str = "10000000009";
    pub(crate) const PHARMACIST: &str = "10002727377";
    pub(crate) const NIR: &str = "185057800604830";
    pub(crate) const BIRTH: &str = "1985-05-12";
    /// The default date of care (a Monday), received the same day.
    pub(crate) const CARE: &str = "2025-06-02";

    /// Merges the members of `extra` over `base`.
    pub(crate) fn merged(mut base: Value, extra: Value) -> Value {
        if let Value::Object(members) = extra {
            for (k, v) in members {
                base[k] = v;
            }
        }
        base
    }

    /// A rights record for `NIR`, covered since 2000, declared GP `GP`.
    pub(crate) fn rights_json(extra: Value) -> Value {
        merged(
            json!({
                "nir": NIR, "birth_date": BIRTH, "rank": 1,
                "coverage": [{"from": "2000-01-01", "to": null, "regime": "01", "fund": "751"}],
                "ald": [], "css": [], "ame": [], "maternity": [],
                "local_regime": null, "declared_gp": GP
            }),
            extra,
        )
    }

    /// A GP consultation (G, EUR 30) on `CARE` for `NIR`, in the pathway;
    /// `extra` replaces top-level members. `received_at` follows `care_date`.
    pub(crate) fn claim(extra: Value) -> Value {
        let mut v = merged(
            json!({
                "fse_id": "12345678-000000042",
                "care_date": CARE,
                "professional": {"rpps": GP, "category": "gp", "sector": "1", "optam": false},
                "beneficiary": {"nir": NIR, "birth_date": BIRTH, "rank": 1},
                "pathway": "mt",
                "tiers_payant": {"amo": false, "amc": false},
                "acts": [{"code": "G", "charged": "30.00"}]
            }),
            extra,
        );
        if v.get("received_at").is_none() {
            let care = v["care_date"].as_str().unwrap_or(CARE).to_string();
            v["received_at"] = json!(format!("{care}T18:00:00+02:00"));
        }
        v
    }

    /// The same claim for a visitor with a German EHIC; `ehic` members
    /// replace the card's.
    pub(crate) fn visitor_claim(ehic: Value, extra: Value) -> Value {
        let card = merged(
            json!({"country": "DE", "institution_id": "108310400",
                   "card_id": "80276001234567890123", "personal_id": "X123456789",
                   "surname": "Muster", "given_names": "Erika",
                   "birth_date": "1970-01-31", "expiry": "2027-12-31"}),
            ehic,
        );
        let mut v = claim(merged(json!({"pathway": "emergency"}), extra));
        v.as_object_mut().unwrap().remove("beneficiary");
        v["ehic"] = card;
        v
    }

    pub(crate) struct Kit {
        pub(crate) rules: Rules,
        pub(crate) institutions: InstitutionDirectory,
        pub(crate) pseudonyms: PseudonymKey,
        pub(crate) validation: MemStore,
        pub(crate) entitlement: MemStore,
        pub(crate) routing: MemStore,
        pub(crate) reimbursement: MemStore,
    }

    impl Kit {
        /// Embedded rules, the development key, no rights, and the German
        /// institution of `visitor_claim` in the directory.
        pub(crate) fn new() -> Kit {
            let mut kit = Kit {
                rules: Rules::embedded().unwrap(),
                institutions: InstitutionDirectory::default(),
                pseudonyms: PseudonymKey::development(),
                validation: MemStore::default(),
                entitlement: MemStore::default(),
                routing: MemStore::default(),
                reimbursement: MemStore::default(),
            };
            kit.institution(json!({"country": "DE", "institution_id": "108310400",
                                   "name": "AOK Baden-Wuerttemberg", "from": "2004-06-01"}));
            kit
        }

        /// The context of every stage call: trust-unsigned signatures.
        pub(crate) fn with_ctx<T>(&self, f: impl FnOnce(&Context<'_>) -> T) -> T {
            let refs = RefView {
                signatures: &TrustUnsigned,
                institutions: &self.institutions,
            };
            let ctx = Context {
                rules: &self.rules,
                refs: &refs,
                pseudonyms: &self.pseudonyms,
            };
            f(&ctx)
        }

        /// Runs a stage over an overlay of `store`, then applies its writes
        /// as the runtime does after a batch.
        pub(crate) fn run<T>(
            store: &MemStore,
            stage: impl FnOnce(&mut StateTxn<'_>) -> Result<T, crate::state::StoreError>,
        ) -> T {
            let mut txn = StateTxn::new(store);
            let out = stage(&mut txn).unwrap();
            store.apply(&txn.into_writes()).unwrap();
            out
        }

        /// Given: a rights record (`rights_json(extra)`) in the entitlement
        /// stage's state. Returns the key it is stored under.
        pub(crate) fn rights(&mut self, extra: Value) -> BeneficiaryKey {
            let input: RightsInput = serde_json::from_value(rights_json(extra)).unwrap();
            let pseudonyms = &self.pseudonyms;
            Kit::run(&self.entitlement, |txn| {
                Ok(super::entitlement::apply_rights(input, txn, pseudonyms).unwrap())
            })
        }

        pub(crate) fn institution(&mut self, v: Value) {
            let input: EuInstitutionInput = serde_json::from_value(v).unwrap();
            self.institutions.upsert(input).unwrap();
        }

        /// The claim through validation, which must pass.
        pub(crate) fn validated(&self, fse: &Value) -> Validated {
            let input: FseInput = serde_json::from_value(fse.clone()).unwrap();
            let outcome = self.with_ctx(|ctx| {
                Kit::run(&self.validation, |txn| {
                    super::validation::validate(&input, simulated_receipt(&input), txn, ctx)
                })
            });
            match outcome {
                Outcome::Pass(v) => v,
                Outcome::Reject(d) => panic!("validation rejected: {:?}", d.reasons),
            }
        }

        /// The claim through entitlement, which must pass.
        pub(crate) fn entitled(&self, fse: &Value) -> Entitled {
            let validated = self.validated(fse);
            let outcome = self.with_ctx(|ctx| {
                Kit::run(&self.entitlement, |txn| {
                    super::entitlement::entitle(validated, txn, ctx)
                })
            });
            match outcome {
                Outcome::Pass(e) => e,
                Outcome::Reject(d) => panic!("entitlement rejected: {:?}", d.reasons),
            }
        }

        /// The claim through routing, which must pass.
        pub(crate) fn routed(&self, fse: &Value) -> Routed {
            let entitled = self.entitled(fse);
            let outcome = self.with_ctx(|ctx| {
                Kit::run(&self.routing, |txn| {
                    super::routing::route(entitled, txn, ctx)
                })
            });
            match outcome {
                Outcome::Pass(r) => r,
                Outcome::Reject(d) => panic!("routing rejected: {:?}", d.reasons),
            }
        }
    }

    /// `(code, field)` of each reason or warning.
    pub(crate) fn codes(reasons: &[Reason]) -> Vec<(&'static str, Option<&str>)> {
        reasons
            .iter()
            .map(|r| (r.code.as_str(), r.field.as_deref()))
            .collect()
    }

    #[test]
    fn the_kit_pays_the_default_claim() {
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let routed = kit.routed(&claim(json!({})));
        assert_eq!(routed.routing, Routing::Domestic);
        assert_eq!(routed.entitled.validated.fse.fse_id, "12345678-000000042");
    }
}
