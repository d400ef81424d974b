//! The EU card answer (NETC@RDS-like): is a European Health Insurance Card
//! good for care on a date in France, and who is billed. The same rules as
//! the routing stage, in the same order (`routing::card_problem`), over the
//! same reference data (`ref.eu.institutions`).
//!
//! The card number is checked and never echoed: the answer names the
//! institution, not the card.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ids::{Country, EhicCardId, EhicInstitutionId};
use crate::refdata::InstitutionDirectory;
use crate::rules::Rules;
use crate::stages::routing::{CardFacts, card_problem};

/// The card's fields the answer needs, and the date of care.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardQuery {
    pub country: String,
    pub institution_id: String,
    pub card_id: String,
    pub expiry: NaiveDate,
    pub date: NaiveDate,
}

/// The query without the card number, for logs and errors.
impl std::fmt::Debug for CardQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardQuery(<redacted>)")
    }
}

/// The institution billed for the care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Billed {
    pub country: String,
    pub institution_id: String,
    pub name: String,
}

/// The answer: billed to the card's institution (the EU route), or why not,
/// with the reason code the pipeline gives a claim on that card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardAnswer {
    pub valid: bool,
    /// `eu` when valid: the claim would be billed to `institution`.
    pub route: Option<&'static str>,
    pub institution: Option<Billed>,
    pub code: Option<&'static str>,
    pub field: Option<&'static str>,
    pub message: Option<String>,
}

impl CardAnswer {
    fn refused(code: &'static str, field: &'static str, message: impl Into<String>) -> CardAnswer {
        CardAnswer {
            valid: false,
            route: None,
            institution: None,
            code: Some(code),
            field: Some(field),
            message: Some(message.into()),
        }
    }
}

/// The card on the date: its identifiers checked (`invalid_ehic`), then the
/// routing stage's rules.
pub fn card_answer(
    query: &CardQuery,
    rules: &Rules,
    institutions: &InstitutionDirectory,
) -> CardAnswer {
    let country = match Country::parse(&query.country) {
        Ok(country) => country,
        Err(e) => return CardAnswer::refused("invalid_ehic", "ehic.country", e.to_string()),
    };
    let institution_id = match EhicInstitutionId::parse(&query.institution_id) {
        Ok(id) => id,
        Err(e) => return CardAnswer::refused("invalid_ehic", "ehic.institution_id", e.to_string()),
    };
    if let Err(e) = EhicCardId::parse(&query.card_id) {
        return CardAnswer::refused("invalid_ehic", "ehic.card_id", e.to_string());
    }
    let card = CardFacts {
        country,
        institution_id: &institution_id,
        expiry: query.expiry,
    };
    if let Some((code, field, message)) = card_problem(&card, query.date, rules, institutions) {
        return CardAnswer::refused(code.as_str(), field, message);
    }
    let name = institutions
        .valid_on(country, &institution_id, query.date)
        .map(|i| i.name.clone())
        .unwrap_or_default();
    CardAnswer {
        valid: true,
        route: Some("eu"),
        institution: Some(Billed {
            country: country.as_str().to_string(),
            institution_id: institution_id.as_str().to_string(),
            name,
        }),
        code: None,
        field: None,
        message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refdata::EuInstitutionInput;
    use serde_json::json;

    fn directory() -> InstitutionDirectory {
        let mut directory = InstitutionDirectory::default();
        let aok: EuInstitutionInput = serde_json::from_value(json!({
            "country": "DE", "institution_id": "108310400",
            "name": "AOK Baden-Wuerttemberg", "from": "2004-06-01"
        }))
        .unwrap();
        directory.upsert(aok).unwrap();
        directory
    }

    fn card(extra: serde_json::Value) -> CardQuery {
        let mut v = json!({"country": "DE", "institution_id": "108310400",
                           "card_id": "80276001234567890123", "expiry": "2027-12-31",
                           "date": "2025-06-02"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_good_card_is_billed_to_its_institution_as_routing_would() {
        let rules = Rules::embedded().unwrap();
        let answer = card_answer(&card(json!({})), &rules, &directory());
        assert!(answer.valid);
        assert_eq!(answer.route, Some("eu"));
        assert_eq!(answer.institution.unwrap().name, "AOK Baden-Wuerttemberg");
    }

    #[test]
    fn each_refusal_carries_the_code_routing_gives() {
        let rules = Rules::embedded().unwrap();
        let code = |extra| card_answer(&card(extra), &rules, &directory()).code;
        assert_eq!(code(json!({"country": "FR"})), Some("ehic_french_card"));
        assert_eq!(code(json!({"expiry": "2025-06-01"})), Some("ehic_expired"));
        assert_eq!(
            code(json!({"institution_id": "999999999"})),
            Some("eu_institution_unknown")
        );
        assert_eq!(code(json!({"country": "US"})), Some("invalid_ehic"));
        assert_eq!(code(json!({"card_id": "x"})), Some("invalid_ehic"));
        // Valid on its expiry day, as in routing.
        assert_eq!(code(json!({"expiry": "2025-06-02"})), None);
        // The card number is never in the query's debug form.
        assert!(!format!("{:?}", card(json!({}))).contains("8027600"));
    }
}
