//! Routing: domestic care, or an EU/EEA/CH/UK visitor on an EHIC whose costs
//! are billed to the competent institution of the card's state. Checks the
//! card's state against the coordination table on the date of care, the
//! card's expiry, and the institution against the EU directory.

use super::contract::{self, Decided, Topics};
use super::emit::{Carried, Inputs, claim_ref};
use super::{Context, Entitled, Outcome, Routed, Routing, reject_validated};
use chrono::NaiveDate;

use crate::domain::{Patient, Reason, ReasonCode, Stage};
use crate::events::convert;
use crate::events::model::{EventHeader, FseEntitled};
use crate::ids::{Country, EhicInstitutionId};
use crate::state::{StateTxn, StoreError};
use crate::topics;

/// Routing on the bus: `fse.entitled` in; `fse.routed` or
/// `fse.rejected` out.
pub struct RoutingStage;

impl contract::Stage for RoutingStage {
    type Input = FseEntitled;

    const TOPICS: Topics = Topics {
        name: "routing",
        input: topics::FSE_ENTITLED,
        pass: topics::FSE_ROUTED,
        outputs: &[topics::FSE_ROUTED, topics::FSE_REJECTED],
        changelog: "routing.changelog",
        dlq: "dlq.routing",
    };

    fn header(event: &FseEntitled) -> Option<&EventHeader> {
        Some(&event.header)
    }

    fn decide(
        &self,
        event: FseEntitled,
        at: &Inputs<'_>,
        state: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Decided, StoreError> {
        let claim = claim_ref(&event.fse, event.entitlement.amc.as_deref(), None);
        let carried = Carried {
            header: &event.header,
            fse_id: event.fse.fse_id.clone(),
            claim,
        };
        at.decide_downstream(
            carried,
            convert::entitled_from_event(&event),
            |input| route(input, state, ctx),
            |mut header, out| {
                header.rules_version = ctx.rules.version.clone();
                let event = convert::routed_event(header, event.fse, &out);
                at.pass(Self::TOPICS.pass, &event)
            },
        )
    }
}

/// What routing reads of an EHIC.
pub struct CardFacts<'a> {
    pub country: Country,
    pub institution_id: &'a EhicInstitutionId,
    pub expiry: NaiveDate,
}

/// Why an EU card cannot be billed for care on `care`, in the order the
/// rules are checked (the first that applies); `None`: the card's
/// institution is billed. Read by the routing stage and by the online EU
/// card answer, so that both say the same.
pub fn card_problem(
    card: &CardFacts<'_>,
    care: NaiveDate,
    rules: &crate::rules::Rules,
    institutions: &crate::refdata::InstitutionDirectory,
) -> Option<(ReasonCode, &'static str, &'static str)> {
    if card.country.as_str() == "FR" {
        Some((
            ReasonCode::EhicFrenchCard,
            "ehic.country",
            "a French EHIC is not usable in France",
        ))
    } else if !rules.eu.accepts(card.country, care) {
        Some((
            ReasonCode::EhicStateNotAccepted,
            "ehic.country",
            "the card's state is not under coordination on the date of care",
        ))
    } else if card.expiry < care {
        Some((
            ReasonCode::EhicExpired,
            "ehic.expiry",
            "the card had expired on the date of care",
        ))
    } else if institutions
        .valid_on(card.country, card.institution_id, care)
        .is_none()
    {
        Some((
            ReasonCode::EuInstitutionUnknown,
            "ehic.institution_id",
            "the institution is not in the EU directory on the date of care",
        ))
    } else {
        None
    }
}

/// The routing stage. Stateless today; it takes the state overlay like every
/// stage so that the AMC share (a later issue) can keep its own.
pub fn route(
    input: Entitled,
    _state: &mut StateTxn<'_>,
    ctx: &Context<'_>,
) -> Result<Outcome<Routed>, StoreError> {
    let fse = &input.validated.fse;
    let care = fse.care_date;
    let routing = match &fse.patient {
        Patient::Insured(_) => Routing::Domestic,
        Patient::Visitor(ehic) => {
            let card = CardFacts {
                country: ehic.country,
                institution_id: &ehic.institution_id,
                expiry: ehic.expiry,
            };
            if let Some((code, field, message)) =
                card_problem(&card, care, ctx.rules, ctx.refs.institutions)
            {
                let reason = Reason::new(Stage::Routing, code, message).field(field);
                return Ok(Outcome::Reject(reject_validated(
                    &input.validated,
                    vec![reason],
                    ctx,
                )));
            }
            Routing::Eu {
                country: ehic.country,
                institution: ehic.institution_id.clone(),
            }
        }
    };
    Ok(Outcome::Pass(Routed {
        entitled: input,
        routing,
    }))
}

#[cfg(test)]
mod tests {
    //! Given an entitled claim, when it is routed, then an insured's claim is
    //! domestic and a visitor's goes to the card's institution, unless the
    //! card cannot be used on the date of care.

    use serde_json::{Value, json};

    use super::*;
    use crate::ids::{Country, EhicInstitutionId};
    use crate::stages::tests::{Kit, claim, codes, visitor_claim};

    /// When: the routing stage runs on the entitled claim.
    fn when_routed(kit: &Kit, fse: &Value) -> Outcome<Routed> {
        let entitled = kit.entitled(fse);
        kit.with_ctx(|ctx| Kit::run(&kit.routing, |txn| route(entitled, txn, ctx)))
    }

    fn routing(kit: &Kit, fse: &Value) -> Routing {
        match when_routed(kit, fse) {
            Outcome::Pass(r) => r.routing,
            Outcome::Reject(d) => panic!("rejected: {:?}", d.reasons),
        }
    }

    fn rejection(kit: &Kit, fse: &Value) -> Vec<(&'static str, Option<String>)> {
        match when_routed(kit, fse) {
            Outcome::Pass(r) => panic!("routed to {:?}, expected a rejection", r.routing),
            Outcome::Reject(d) => {
                assert!(d.reasons.iter().all(|r| r.stage == Stage::Routing));
                assert_eq!(d.route, None);
                codes(&d.reasons)
                    .into_iter()
                    .map(|(c, f)| (c, f.map(str::to_string)))
                    .collect()
            }
        }
    }

    fn one(code: &'static str, field: &str) -> Vec<(&'static str, Option<String>)> {
        vec![(code, Some(field.to_string()))]
    }

    #[test]
    fn an_insured_claim_is_domestic() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        // When / Then
        assert_eq!(routing(&kit, &claim(json!({}))), Routing::Domestic);
    }

    #[test]
    fn a_visitor_claim_goes_to_the_card_institution() {
        // Given: the German institution is in the directory.
        let kit = Kit::new();
        // When
        let routed = routing(&kit, &visitor_claim(json!({}), json!({})));
        // Then
        assert_eq!(
            routed,
            Routing::Eu {
                country: Country::parse("DE").unwrap(),
                institution: EhicInstitutionId::parse("108310400").unwrap(),
            }
        );
    }

    #[test]
    fn a_greek_card_under_its_iso_code_is_routed_as_el() {
        // Given
        let mut kit = Kit::new();
        kit.institution(json!({"country": "EL", "institution_id": "EOPYY",
                               "name": "EOPYY", "from": "2012-01-01"}));
        let fse = visitor_claim(
            json!({"country": "GR", "institution_id": "EOPYY"}),
            json!({}),
        );
        // When
        let routed = routing(&kit, &fse);
        // Then
        let Routing::Eu { country, .. } = routed else {
            panic!("not routed to the EU")
        };
        assert_eq!(country.as_str(), "EL");
    }

    #[test]
    fn a_french_card_is_rejected() {
        // Given: a French card, even with a known institution.
        let mut kit = Kit::new();
        kit.institution(json!({"country": "FR", "institution_id": "751",
                               "name": "CPAM Paris", "from": "2004-06-01"}));
        let fse = visitor_claim(json!({"country": "FR", "institution_id": "751"}), json!({}));
        // When / Then
        assert_eq!(
            rejection(&kit, &fse),
            one("ehic_french_card", "ehic.country")
        );
    }

    #[test]
    fn a_french_card_is_the_reason_even_when_expired() {
        // Given
        let kit = Kit::new();
        let fse = visitor_claim(json!({"country": "FR", "expiry": "2020-01-01"}), json!({}));
        // When / Then
        assert_eq!(
            rejection(&kit, &fse),
            one("ehic_french_card", "ehic.country")
        );
    }

    #[test]
    fn a_croatian_card_before_accession_is_not_accepted() {
        // Given: HR accepted from 1 July 2013; the institution is known.
        let mut kit = Kit::new();
        kit.institution(json!({"country": "HR", "institution_id": "HZZO",
                               "name": "HZZO", "from": "2004-06-01"}));
        let card = json!({"country": "HR", "institution_id": "HZZO", "expiry": "2014-12-31"});
        let on = |care: &str, id: &str| {
            visitor_claim(
                card.clone(),
                json!({"care_date": care, "fse_id": id,
                       "acts": [{"code": "C", "charged": "23.00"}]}),
            )
        };
        // When / Then
        assert_eq!(
            rejection(&kit, &on("2013-06-30", "45678901-000000001")),
            one("ehic_state_not_accepted", "ehic.country")
        );
        assert!(matches!(
            routing(&kit, &on("2013-07-01", "45678901-000000002")),
            Routing::Eu { .. }
        ));
    }

    #[test]
    fn an_expired_card_is_rejected() {
        // Given: expired the day before the care.
        let kit = Kit::new();
        let fse = visitor_claim(json!({"expiry": "2025-06-01"}), json!({}));
        // When / Then
        assert_eq!(rejection(&kit, &fse), one("ehic_expired", "ehic.expiry"));
    }

    #[test]
    fn a_card_is_valid_on_its_expiry_day() {
        // Given
        let kit = Kit::new();
        let fse = visitor_claim(json!({"expiry": crate::stages::tests::CARE}), json!({}));
        // When / Then
        assert!(matches!(routing(&kit, &fse), Routing::Eu { .. }));
    }

    #[test]
    fn an_institution_not_in_the_directory_is_rejected() {
        // Given
        let kit = Kit::new();
        let fse = visitor_claim(json!({"institution_id": "999999"}), json!({}));
        // When / Then
        assert_eq!(
            rejection(&kit, &fse),
            one("eu_institution_unknown", "ehic.institution_id")
        );
    }

    #[test]
    fn an_institution_not_yet_valid_on_the_date_of_care_is_rejected() {
        // Given: an Italian institution listed from 2026 only.
        let mut kit = Kit::new();
        kit.institution(json!({"country": "IT", "institution_id": "120201",
                               "name": "ASL Roma 1", "from": "2026-01-01"}));
        let fse = visitor_claim(
            json!({"country": "IT", "institution_id": "120201"}),
            json!({}),
        );
        // When / Then
        assert_eq!(
            rejection(&kit, &fse),
            one("eu_institution_unknown", "ehic.institution_id")
        );
    }

    #[test]
    fn an_institution_no_longer_valid_is_rejected() {
        // Given: the German institution's entry ended before the care.
        let mut kit = Kit::new();
        kit.institution(json!({"country": "DE", "institution_id": "108310400",
                               "name": "AOK", "from": "2004-06-01", "to": "2025-06-01"}));
        // When / Then
        assert_eq!(
            rejection(&kit, &visitor_claim(json!({}), json!({}))),
            one("eu_institution_unknown", "ehic.institution_id")
        );
    }
}
