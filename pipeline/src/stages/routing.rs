//! Routing: domestic care, or an EU/EEA/CH/UK visitor on an EHIC whose costs
//! are billed to the competent institution of the card's state. Checks the
//! card's state against the coordination table on the date of care, the
//! card's expiry, and the institution against the EU directory.

use super::{Context, Entitled, Outcome, Routed, Routing, reject_validated};
use crate::domain::{Patient, Reason, ReasonCode, Stage};
use crate::state::{StateTxn, StoreError};

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
            let problem = if ehic.country.as_str() == "FR" {
                Some((
                    ReasonCode::EhicFrenchCard,
                    "ehic.country",
                    "a French EHIC is not usable in France",
                ))
            } else if !ctx.rules.eu.accepts(ehic.country, care) {
                Some((
                    ReasonCode::EhicStateNotAccepted,
                    "ehic.country",
                    "the card's state is not under coordination on the date of care",
                ))
            } else if ehic.expiry < care {
                Some((
                    ReasonCode::EhicExpired,
                    "ehic.expiry",
                    "the card had expired on the date of care",
                ))
            } else if ctx
                .refs
                .institutions
                .valid_on(ehic.country, &ehic.institution_id, care)
                .is_none()
            {
                Some((
                    ReasonCode::EuInstitutionUnknown,
                    "ehic.institution_id",
                    "the institution is not in the EU directory on the date of care",
                ))
            } else {
                None
            };
            if let Some((code, field, message)) = problem {
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
