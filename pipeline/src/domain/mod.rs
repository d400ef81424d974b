//! The domain model: care sheets (FSE), rights, reasons and decisions.
//!
//! Input shapes (`*Input`) mirror the JSON of contract.md and accept anything
//! well-typed; checked shapes are built from them by the validation stage
//! ("parse, don't validate"), so the later stages never see a raw string
//! where a checked type belongs.

pub mod decision;
pub mod fse;
pub mod json;
pub mod reason;
pub mod rights;

use serde::{Deserialize, Serialize};

pub use decision::{Decision, DecisionLine, Route, SignatureCheck, Status};
pub use fse::{
    ActLine, Billing, Complement, Ehic, ForeignPrescription, Fse, FseInput, Insured,
    NonSubstitution, Pathway, Patient, Prescriber, Prescription, PrescriptionInput, Professional,
    Sector, Signature, TiersPayant,
};
pub use reason::{Reason, ReasonCode, Stage};
pub use rights::{Period, Rights, RightsInput};

/// The professional's category, as the FSE declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Gp,
    Specialist,
    Dentist,
    Midwife,
    Nurse,
    Physiotherapist,
    Pharmacist,
    Laboratory,
    Radiology,
    Transport,
    Hospital,
}

impl Category {
    pub const ALL: [Category; 11] = [
        Category::Gp,
        Category::Specialist,
        Category::Dentist,
        Category::Midwife,
        Category::Nurse,
        Category::Physiotherapist,
        Category::Pharmacist,
        Category::Laboratory,
        Category::Radiology,
        Category::Transport,
        Category::Hospital,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Gp => "gp",
            Category::Specialist => "specialist",
            Category::Dentist => "dentist",
            Category::Midwife => "midwife",
            Category::Nurse => "nurse",
            Category::Physiotherapist => "physiotherapist",
            Category::Pharmacist => "pharmacist",
            Category::Laboratory => "laboratory",
            Category::Radiology => "radiology",
            Category::Transport => "transport",
            Category::Hospital => "hospital",
        }
    }

    pub fn parse(text: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Doctors: the care pathway and sector bases apply to them.
    pub fn is_doctor(self) -> bool {
        matches!(self, Category::Gp | Category::Specialist)
    }

    /// Whether an executant of this category may bill under an AM number of
    /// category `am` (domain.md 2.3): an establishment's number (`0`) takes
    /// any; a radiologist is a doctor (`1`); a hospital bills under `0` only.
    pub fn bills_under(self, am: crate::ids::AmCategory) -> bool {
        use crate::ids::AmCategory as Am;
        match am {
            Am::Establishment => true,
            Am::Doctor => matches!(
                self,
                Category::Gp | Category::Specialist | Category::Radiology
            ),
            Am::Supplier => matches!(self, Category::Pharmacist | Category::Transport),
            Am::Laboratory => self == Category::Laboratory,
            Am::Dentist => self == Category::Dentist,
            Am::Midwife => self == Category::Midwife,
            Am::Nurse => self == Category::Nurse,
            Am::Physiotherapist => self == Category::Physiotherapist,
            // Professions this pipeline has no category for.
            Am::Podiatrist | Am::SpeechOrOrthoptist => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Category;
    use crate::ids::AmCategory;

    #[test]
    fn an_am_numbers_category_takes_its_professions_and_an_establishment_any() {
        use AmCategory as Am;
        let takes = |am: Am| {
            Category::ALL
                .into_iter()
                .filter(|c| c.bills_under(am))
                .collect::<Vec<_>>()
        };
        assert_eq!(takes(Am::Establishment), Category::ALL.to_vec());
        assert_eq!(
            takes(Am::Doctor),
            [Category::Gp, Category::Specialist, Category::Radiology]
        );
        assert_eq!(
            takes(Am::Supplier),
            [Category::Pharmacist, Category::Transport]
        );
        assert_eq!(takes(Am::Laboratory), [Category::Laboratory]);
        assert_eq!(takes(Am::Dentist), [Category::Dentist]);
        assert_eq!(takes(Am::Midwife), [Category::Midwife]);
        assert_eq!(takes(Am::Nurse), [Category::Nurse]);
        assert_eq!(takes(Am::Physiotherapist), [Category::Physiotherapist]);
        assert!(takes(Am::Podiatrist).is_empty());
        assert!(takes(Am::SpeechOrOrthoptist).is_empty());
    }
}
