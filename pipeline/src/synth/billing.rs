//! Billing identifiers in synthetic claims (docs/rules.md, "Billing
//! identifiers"): which professionals bill under a practice's AM number or
//! a health centre's FINESS, and the two ways a bad claim spoils one.
//!
//! Decided from the professional's index, never from a random stream, so
//! every other field of the world and of the claims stays what it was.

use crate::domain::Category;
use crate::events::model::{BillingKind, BillingRec};
use crate::ids::{AmNumber, Finess};

use super::claims::BadKind;

/// Health centres whose GPs bill under the centre's FINESS: first 8
/// digits, the Luhn key appended. Few, so that several GPs share each and
/// payment orders have something to group by payee.
const HEALTH_CENTRES: [&str; 3] = ["75001234", "13004567", "69002345"];

/// About one GP in this many works at a health centre.
const GP_AT_A_CENTRE_ONE_IN: usize = 4;

/// Departments of practices' AM numbers (Corsica included: the shape
/// admits 2A/2B, and no key is computed).
const DEPARTMENTS: [&str; 6] = ["75", "13", "69", "2A", "59", "33"];

/// The identifier professional `index` of `category` bills under, if any:
/// pharmacists, transporters and laboratories under their practice's AM
/// number (category `2` or `3`, domain.md 2.3), one GP in four under one of
/// the health centres' FINESS; everyone else under their RPPS.
pub(super) fn billing_for(index: usize, category: Category) -> Option<BillingRec> {
    let am_char = match category {
        Category::Pharmacist | Category::Transport => '2',
        Category::Laboratory => '3',
        Category::Gp if index.is_multiple_of(GP_AT_A_CENTRE_ONE_IN) => {
            let body = HEALTH_CENTRES[(index / GP_AT_A_CENTRE_ONE_IN) % HEALTH_CENTRES.len()];
            let finess = Finess::from_body(body).ok()?;
            return Some(BillingRec {
                kind: BillingKind::Finess,
                id: finess.as_str().to_string(),
            });
        }
        _ => return None,
    };
    let department = DEPARTMENTS[index % DEPARTMENTS.len()];
    Some(BillingRec {
        kind: BillingKind::Am,
        id: format!("{department}{am_char}{:06}", index % 1_000_000),
    })
}

/// Whether `kind` spoils a billing identifier, so applies only to a claim
/// that names one.
pub(super) fn needs_one(kind: BadKind) -> bool {
    matches!(
        kind,
        BadKind::InvalidBillingId | BadKind::BillingCategoryMismatch
    )
}

/// Spoils `billing` (of a professional of `category`) as `kind` asks:
/// an identifier that fails its check (a FINESS's key, an AM number's
/// length), or an AM number of a category the professional does not bill
/// under. `None` when `kind` is not a billing kind or no such number exists.
pub(super) fn spoil(kind: BadKind, billing: &mut BillingRec, category: Category) -> Option<()> {
    match kind {
        BadKind::InvalidBillingId => match billing.kind {
            BillingKind::Finess => {
                let (body, key) = billing.id.split_at(billing.id.len().checked_sub(1)?);
                let key = key.parse::<u8>().ok()?;
                billing.id = format!("{body}{}", (key + 1) % 10);
            }
            BillingKind::Am => {
                billing.id.pop();
            }
        },
        BadKind::BillingCategoryMismatch => {
            // The practice's department where it has one (a FINESS's is not
            // an AM number's).
            let department = match billing.kind {
                BillingKind::Am => billing.id.get(..2).unwrap_or("75"),
                BillingKind::Finess => "75",
            }
            .to_string();
            let id = ('1'..='9')
                .map(|c| format!("{department}{c}000001"))
                .find(|id| {
                    AmNumber::parse(id).is_ok_and(|am| !category.bills_under(am.category()))
                })?;
            billing.kind = BillingKind::Am;
            billing.id = id;
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Category;

    fn checks(billing: &BillingRec, category: Category) -> Result<(), &'static str> {
        match billing.kind {
            BillingKind::Finess => Finess::parse(&billing.id)
                .map(|_| ())
                .map_err(|_| "invalid"),
            BillingKind::Am => {
                let am = AmNumber::parse(&billing.id).map_err(|_| "invalid")?;
                if category.bills_under(am.category()) {
                    Ok(())
                } else {
                    Err("mismatch")
                }
            }
        }
    }

    #[test]
    fn billing_identifiers_are_valid_for_their_category_and_centres_are_shared() {
        let mut centres = std::collections::BTreeMap::<String, usize>::new();
        for index in 0..400 {
            for category in Category::ALL {
                let Some(b) = billing_for(index, category) else {
                    continue;
                };
                assert_eq!(checks(&b, category), Ok(()), "{index} {category:?} {b:?}");
                if b.kind == BillingKind::Finess {
                    assert_eq!(category, Category::Gp);
                    *centres.entry(b.id).or_default() += 1;
                }
            }
        }
        assert_eq!(centres.len(), HEALTH_CENTRES.len());
        assert!(centres.values().all(|&n| n > 1), "{centres:?}");
        for category in [
            Category::Pharmacist,
            Category::Transport,
            Category::Laboratory,
        ] {
            assert!(billing_for(7, category).is_some_and(|b| b.kind == BillingKind::Am));
        }
        for category in [Category::Nurse, Category::Specialist, Category::Dentist] {
            assert_eq!(billing_for(8, category), None);
        }
    }

    #[test]
    fn each_spoiling_fails_the_check_it_names() {
        for index in 0..40 {
            for category in Category::ALL {
                let Some(good) = billing_for(index, category) else {
                    continue;
                };
                let mut b = good.clone();
                spoil(BadKind::InvalidBillingId, &mut b, category).unwrap();
                assert_eq!(checks(&b, category), Err("invalid"), "{b:?}");
                let mut b = good;
                spoil(BadKind::BillingCategoryMismatch, &mut b, category).unwrap();
                assert_eq!(checks(&b, category), Err("mismatch"), "{b:?}");
            }
        }
    }
}
