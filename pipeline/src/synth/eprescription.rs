//! Foreign ePrescriptions (EU/EEA, MyHealth@EU) in synthetic claims: which
//! pharmacy lines can carry one, the one a claim carries, and the two ways
//! a bad claim spoils it (docs/rules.md, "EU ePrescriptions").
//!
//! Everything is read from the rule set given (the service's dates and
//! issuing states, the products' ATC codes) and drawn from the claim's
//! index, never from its random stream, so a data set dated before the
//! service is byte for byte what it was before foreign ePrescriptions.

use chrono::{Datelike, NaiveDate};

use crate::events::model::{
    ActLineRec, EhicRec, ForeignPrescriptionRec, PrescriberKind, PrescriptionRec,
};
use crate::rules::Rules;

use super::claims::BadKind;

/// About one claim in this many, among those that can, dispenses foreign
/// ePrescriptions.
const ONE_IN: usize = 50;
/// Which claims of each `ONE_IN`: an even residue, so that half of them
/// also allow more than the line dispenses (`prescribe`'s `index % 4`).
const RESIDUE: usize = 24;
/// An EHIC visitor's pharmacy claim is on a prescription from home more
/// often: about one in this many.
const VISITOR_ONE_IN: usize = 5;
/// States whose EHIC France accepts but whose ePrescriptions it never
/// dispenses (the service links EU/EEA states only): the bad kind
/// `EuEprescriptionCountry` takes the first one the entry does not list.
const OUTSIDE_THE_SERVICE: [&str; 2] = ["CH", "UK"];

/// The substance a foreign ePrescription for `line` names: its product's
/// ATC code, when the product is listed with one and the service is in
/// force on `care`; `None` when the line cannot carry one.
pub(super) fn substance<'r>(
    rules: &'r Rules,
    care: NaiveDate,
    line: &ActLineRec,
) -> Option<&'r str> {
    rules.general.eu_eprescription_countries(care)?;
    let cip = line.product.as_deref()?;
    rules.acts.products.product(cip)?.atc.as_deref()
}

/// The first of `acts` that is prescribed and can carry a foreign
/// ePrescription on `care`, and the substance it would name.
fn first_carrier<'r>(
    acts: &[ActLineRec],
    rules: &'r Rules,
    care: NaiveDate,
) -> Option<(usize, &'r str)> {
    acts.iter().enumerate().find_map(|(n, line)| {
        line.prescription.as_ref()?;
        substance(rules, care, line).map(|atc| (n, atc))
    })
}

/// Whether a bad kind that spoils a foreign ePrescription can apply to
/// these lines on `care` ([`spoil`]).
pub(super) fn spoilable(acts: &[ActLineRec], rules: &Rules, care: NaiveDate) -> bool {
    first_carrier(acts, rules, care).is_some()
}

/// Whether claim `index` dispenses foreign ePrescriptions where it can.
pub(super) fn drawn(index: usize, ehic: Option<&EhicRec>) -> bool {
    index % ONE_IN == RESIDUE || (ehic.is_some() && index % VISITOR_ONE_IN == 2)
}

/// Whether `kind` is one only a claim with a line that can carry a foreign
/// ePrescription can be spoiled as.
pub(super) fn needs_one(kind: BadKind) -> bool {
    matches!(
        kind,
        BadKind::EuEprescriptionCountry | BadKind::EuEprescriptionSubstance
    )
}

/// The foreign ePrescription of claim `index` (care on `care`) for a line
/// of `atc`: issued in the visitor's own state when the service lists it,
/// else in a listed state drawn from the index; an id unique to the claim,
/// so no other claim's dispensings count against it. `None` when the
/// service is not in force.
fn issued(
    rules: &Rules,
    care: NaiveDate,
    ehic: Option<&EhicRec>,
    index: usize,
    atc: &str,
) -> Option<ForeignPrescriptionRec> {
    let countries = rules.general.eu_eprescription_countries(care)?;
    let home = ehic.and_then(|e| countries.iter().find(|c| **c == e.country));
    let country = match home {
        Some(c) => c,
        None => countries.get((index / ONE_IN) % countries.len().max(1))?,
    };
    Some(ForeignPrescriptionRec {
        country: country.clone(),
        id: format!("{country}-RX-{}-{index:09}", care.year()),
        atc: atc.to_string(),
    })
}

/// `prescription` made the foreign ePrescription `foreign`: no French
/// prescriber (the wire's required prescriber fields are RPPS and empty,
/// as `events::convert` writes them), no ordonnance numérique number and
/// no French non-substitution mention.
fn make_foreign(prescription: &mut PrescriptionRec, foreign: ForeignPrescriptionRec) {
    prescription.prescriber_kind = PrescriberKind::Rpps;
    prescription.prescriber_id = String::new();
    prescription.number = None;
    prescription.non_substitution = None;
    prescription.foreign = Some(foreign);
}

/// Makes the prescription of every line of claim `index` that can carry a
/// foreign ePrescription one (the same for every such line of the claim).
pub(super) fn dispense(
    acts: &mut [ActLineRec],
    rules: &Rules,
    care: NaiveDate,
    ehic: Option<&EhicRec>,
    index: usize,
) {
    for line in acts {
        let Some(atc) = substance(rules, care, line) else {
            continue;
        };
        let Some(foreign) = issued(rules, care, ehic, index, atc) else {
            continue;
        };
        if let Some(p) = &mut line.prescription {
            make_foreign(p, foreign);
        }
    }
}

/// Spoils claim `index`'s first line that can carry a foreign ePrescription
/// (made one first if it is French) as `kind`: issued in a state outside
/// the service, or naming a substance its product is not. `None`, with the
/// lines untouched, when no line can carry one or the rules offer no such
/// state or substance.
pub(super) fn spoil(
    kind: BadKind,
    acts: &mut [ActLineRec],
    rules: &Rules,
    care: NaiveDate,
    ehic: Option<&EhicRec>,
    index: usize,
) -> Option<()> {
    let countries = rules.general.eu_eprescription_countries(care)?;
    let (n, atc) = first_carrier(acts, rules, care)?;
    let mut foreign = issued(rules, care, ehic, index, atc)?;
    match kind {
        BadKind::EuEprescriptionCountry => {
            let outside = OUTSIDE_THE_SERVICE
                .iter()
                .find(|c| !countries.iter().any(|listed| listed == *c))?;
            foreign.id = foreign.id.replacen(&foreign.country, outside, 1);
            foreign.country = outside.to_string();
        }
        BadKind::EuEprescriptionSubstance => {
            let other = (rules.acts.products.products())
                .filter_map(|p| p.atc.as_deref())
                .find(|other| *other != atc)?;
            foreign.atc = other.to_string();
        }
        _ => return None,
    }
    let p = acts.get_mut(n)?.prescription.as_mut()?;
    make_foreign(p, foreign);
    Some(())
}

/// Whether every line dispenses a foreign ePrescription (as entitlement
/// reads it: such a claim of a patient without rights is not refused).
pub(super) fn only_foreign(acts: &[ActLineRec]) -> bool {
    !acts.is_empty()
        && acts
            .iter()
            .all(|l| l.prescription.as_ref().is_some_and(|p| p.foreign.is_some()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DOLIPRANE: &str = "3400935955838";
    /// Listed without an ATC code (band 30).
    const NO_ATC: &str = "3400930000014";

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn rules() -> Rules {
        Rules::embedded().unwrap()
    }

    /// A pharmacy line dispensing `cip` on a French prescription.
    fn line(cip: &str) -> ActLineRec {
        ActLineRec {
            code: "PH7".into(),
            quantity: 1,
            coefficient_hundredths: 100,
            charged_cents: 218,
            complement: None,
            ald_related: false,
            base_cents: None,
            product: Some(cip.into()),
            unit_price_cents: Some(218),
            leg: None,
            prescription: Some(PrescriptionRec {
                prescriber_kind: PrescriberKind::Rpps,
                prescriber_id: "10000123454".into(),
                date: date("2026-12-01"),
                number: Some("ON000000000024".into()),
                quantity: Some(1),
                non_substitution: None,
                foreign: None,
                renewals: None,
            }),
        }
    }

    fn visitor(country: &str) -> EhicRec {
        EhicRec {
            country: country.into(),
            institution_id: "123456789".into(),
            card_id: "80000000000000000001".into(),
            personal_id: "P000000001".into(),
            surname: "Muller".into(),
            given_names: "Anna".into(),
            birth_date: date("1980-01-01"),
            expiry: date("2028-01-01"),
        }
    }

    fn foreign(line: &ActLineRec) -> Option<&ForeignPrescriptionRec> {
        line.prescription.as_ref()?.foreign.as_ref()
    }

    #[test]
    fn no_line_carries_one_before_the_service_date() {
        let rules = rules();
        let mut acts = vec![line(DOLIPRANE)];
        dispense(&mut acts, &rules, date("2026-11-30"), None, RESIDUE);
        assert_eq!(acts, vec![line(DOLIPRANE)]);
        let spoiled = spoil(
            BadKind::EuEprescriptionCountry,
            &mut acts,
            &rules,
            date("2026-11-30"),
            None,
            RESIDUE,
        );
        assert_eq!((spoiled, acts), (None, vec![line(DOLIPRANE)]));
    }

    #[test]
    fn a_foreign_eprescription_names_the_product_s_substance_and_no_french_prescriber() {
        let rules = rules();
        let care = date("2026-12-10");
        let mut acts = vec![line(DOLIPRANE), line(NO_ATC)];
        dispense(&mut acts, &rules, care, None, RESIDUE);
        let f = foreign(&acts[0]).unwrap();
        assert_eq!(f.atc, "N02BE01");
        let listed = rules.general.eu_eprescription_countries(care).unwrap();
        assert!(listed.contains(&f.country), "{f:?}");
        assert_eq!(f.id, format!("{}-RX-2026-000000024", f.country));
        let p = acts[0].prescription.as_ref().unwrap();
        assert_eq!((p.prescriber_id.as_str(), &p.number), ("", &None));
        // A product listed without an ATC code stays on its French prescription.
        assert_eq!(acts[1], line(NO_ATC));
    }

    #[test]
    fn a_visitor_s_eprescription_comes_from_their_own_state_when_it_is_listed() {
        let rules = rules();
        let care = date("2027-02-01");
        for (card, expect_home) in [("DE", true), ("CH", false)] {
            let mut acts = vec![line(DOLIPRANE)];
            dispense(&mut acts, &rules, care, Some(&visitor(card)), 7);
            let country = &foreign(&acts[0]).unwrap().country;
            assert_eq!(country == card, expect_home, "{card}: {country}");
        }
    }

    #[test]
    fn about_one_claim_in_fifty_and_one_visitor_s_in_five_is_drawn() {
        let drawn_of = |ehic: Option<&EhicRec>| (0..10_000).filter(|i| drawn(*i, ehic)).count();
        assert_eq!(drawn_of(None), 200);
        assert_eq!(drawn_of(Some(&visitor("DE"))), 2_200);
    }

    #[test]
    fn a_claim_of_only_foreign_eprescriptions_is_told_from_a_mixed_one() {
        let rules = rules();
        let care = date("2026-12-10");
        let mut acts = vec![line(DOLIPRANE)];
        assert!(!only_foreign(&acts));
        dispense(&mut acts, &rules, care, None, RESIDUE);
        assert!(only_foreign(&acts));
        acts.push(line(NO_ATC));
        assert!(!only_foreign(&acts));
        assert!(!only_foreign(&[]));
    }

    proptest! {
        /// From the service date on, a drawn claim's line of a listed
        /// substance carries a foreign ePrescription from a listed state
        /// naming that substance; the bad kinds spoil exactly the one field,
        /// a state the entry does not list or another listed substance.
        #[test]
        fn foreign_eprescriptions_follow_the_rules_in_force_and_bad_kinds_break_one_field(
            index in 0usize..10_000_000,
            days in -60i64..800,
            cip in prop::sample::select(vec![DOLIPRANE, "3400932644551", "3400940000004"]),
            kind in prop::sample::select(vec![
                BadKind::EuEprescriptionCountry,
                BadKind::EuEprescriptionSubstance,
            ]),
        ) {
            let rules = rules();
            let care = date("2026-12-01") + chrono::Duration::days(days);
            let listed = rules.general.eu_eprescription_countries(care);
            let atc = rules.acts.products.product(cip).and_then(|p| p.atc.clone()).unwrap();
            let mut acts = vec![line(cip)];
            dispense(&mut acts, &rules, care, None, index);
            let mut spoiled = acts.clone();
            let done = spoil(kind, &mut spoiled, &rules, care, None, index);
            let Some(listed) = listed else {
                prop_assert_eq!(&acts, &vec![line(cip)]);
                prop_assert_eq!(done, None);
                return Ok(());
            };
            let f = foreign(&acts[0]).unwrap();
            prop_assert!(listed.contains(&f.country));
            prop_assert_eq!(&f.atc, &atc);
            prop_assert_eq!(done, Some(()));
            let bad = foreign(&spoiled[0]).unwrap();
            match kind {
                BadKind::EuEprescriptionCountry => {
                    prop_assert!(!listed.contains(&bad.country));
                    prop_assert_eq!(&bad.atc, &atc);
                }
                _ => {
                    prop_assert!(listed.contains(&bad.country));
                    prop_assert_ne!(&bad.atc, &atc);
                    prop_assert!(rules.acts.products.products().any(|p| p.atc.as_ref() == Some(&bad.atc)));
                }
            }
        }
    }
}
