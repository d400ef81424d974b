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
    ActLine, Complement, Ehic, ForeignPrescription, Fse, FseInput, Insured, NonSubstitution,
    Pathway, Patient, Prescriber, Prescription, PrescriptionInput, Professional, Sector, Signature,
    TiersPayant,
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
}
