//! The electronic care sheet (FSE): its input shape and its checked shape.
//!
//! [`FseInput`] is the JSON of contract.md with every field optional, so that
//! a missing or malformed field becomes a coded rejection naming the field
//! rather than a parse failure. [`Fse`] is the checked form the stages after
//! validation work on. Personal fields never appear in `Debug` output.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::domain::Category;
use crate::ids::{
    AmNumber, Country, EhicCardId, EhicInstitutionId, EhicPersonalId, Finess, Nir, Rpps,
};
use crate::money::{Cents, Hundredths};

/// Bound on act lines per FSE: far above a real care sheet (a pharmacy FSE
/// rarely carries more than a dozen products).
pub const MAX_LINES: usize = 99;
/// Bound on one line's quantity (boxes, acts, legs).
pub const MAX_QUANTITY: u32 = 99;
/// Bound on free-text fields (names, ids) in bytes.
pub const MAX_TEXT_BYTES: usize = 128;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FseInput {
    pub fse_id: Option<String>,
    pub received_at: Option<String>,
    pub care_date: Option<String>,
    pub professional: Option<ProfessionalInput>,
    pub beneficiary: Option<BeneficiaryInput>,
    pub ehic: Option<EhicInput>,
    pub pathway: Option<String>,
    pub tiers_payant: Option<TiersPayantInput>,
    pub acts: Option<Vec<ActLineInput>>,
    pub signature: Option<SignatureInput>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfessionalInput {
    pub rpps: Option<String>,
    pub category: Option<String>,
    pub sector: Option<String>,
    #[serde(default)]
    pub optam: bool,
    /// The number the care is billed under when it is not the RPPS (since
    /// 2026-12-06): the practice's AM number or the establishment's FINESS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingInput>,
}

/// A billing identifier as sent: `kind` `am` or `finess`, and the number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingInput {
    pub kind: Option<String>,
    pub id: Option<String>,
}

#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeneficiaryInput {
    pub nir: Option<String>,
    pub birth_date: Option<String>,
    pub rank: Option<u8>,
}

impl std::fmt::Debug for BeneficiaryInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeneficiaryInput(<redacted>)")
    }
}

#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EhicInput {
    pub country: Option<String>,
    pub institution_id: Option<String>,
    pub card_id: Option<String>,
    pub personal_id: Option<String>,
    pub surname: Option<String>,
    pub given_names: Option<String>,
    pub birth_date: Option<String>,
    pub expiry: Option<String>,
}

impl std::fmt::Debug for EhicInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EhicInput(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiersPayantInput {
    #[serde(default)]
    pub amo: bool,
    #[serde(default)]
    pub amc: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActLineInput {
    pub code: Option<String>,
    pub quantity: Option<u32>,
    pub coefficient: Option<String>,
    pub charged: Option<String>,
    pub complement: Option<String>,
    #[serde(default)]
    pub ald_related: bool,
    pub base: Option<String>,
    pub product: Option<String>,
    pub unit_price: Option<String>,
    pub leg: Option<u32>,
    /// The prescription behind a prescribed line (since 2026-12-06).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prescription: Option<PrescriptionInput>,
}

/// A line's prescription as sent: the prescriber (`prescriber_kind` `rpps`,
/// `finess` for an establishment, or `am` for an Assurance Maladie number),
/// its date, the number of an ordonnance numérique, the quantity it allows
/// for the line's item over all dispensings (default: the line's), and a
/// justified non-substitution mention (`mte`, `efg`, `cif`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrescriptionInput {
    pub prescriber_kind: Option<String>,
    pub prescriber: Option<String>,
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_substitution: Option<String>,
    /// An ePrescription issued in another EU/EEA country (since
    /// 2026-12-06): then no French prescriber is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign: Option<ForeignPrescriptionInput>,
    /// How many times it may be renewed, "à renouveler N fois" (since
    /// 2026-12-07); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewals: Option<u32>,
}

/// A foreign ePrescription as sent: the issuing country (ISO 3166-1
/// alpha-2), its id there, the prescribed substance (ATC code).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignPrescriptionInput {
    pub country: Option<String>,
    pub id: Option<String>,
    pub atc: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureInput {
    pub alg: Option<String>,
    pub cert: Option<String>,
    pub value: Option<String>,
}

// ---------------------------------------------------------------------------
// Checked shapes

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sector {
    #[serde(rename = "1")]
    One,
    #[serde(rename = "2")]
    Two,
    #[serde(rename = "3")]
    Three,
}

impl Sector {
    pub fn parse(text: &str) -> Option<Sector> {
        match text {
            "1" => Some(Sector::One),
            "2" => Some(Sector::Two),
            "3" => Some(Sector::Three),
            _ => None,
        }
    }
}

/// The care pathway (parcours de soins) the FSE declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pathway {
    /// The executant is the declared GP (médecin traitant).
    Mt,
    Referred,
    DirectAccess,
    Emergency,
    /// No declared GP and no exception.
    Outside,
}

impl Pathway {
    pub fn parse(text: &str) -> Option<Pathway> {
        match text {
            "mt" => Some(Pathway::Mt),
            "referred" => Some(Pathway::Referred),
            "direct_access" => Some(Pathway::DirectAccess),
            "emergency" => Some(Pathway::Emergency),
            "outside" => Some(Pathway::Outside),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Complement {
    Night,
    Sunday,
    Urgency,
}

impl Complement {
    pub fn parse(text: &str) -> Option<Complement> {
        match text {
            "night" => Some(Complement::Night),
            "sunday" => Some(Complement::Sunday),
            "urgency" => Some(Complement::Urgency),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Professional {
    /// The signer (the CPS card's holder), whoever is paid.
    pub rpps: Rpps,
    pub category: Category,
    pub sector: Sector,
    pub optam: bool,
    /// `None`: the RPPS bills, as before billing identifiers existed.
    pub billing: Option<Billing>,
}

impl Professional {
    /// Who is paid: the billing identifier when there is one, else the RPPS.
    pub fn payee(&self) -> &str {
        self.billing
            .as_ref()
            .map_or(self.rpps.as_str(), Billing::id)
    }
}

/// The number an executant bills under (domain.md 1.1, 2.3, 2.4): a
/// practice location's AM number, or an establishment's FINESS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Billing {
    Am(AmNumber),
    Finess(Finess),
}

impl Billing {
    pub fn kind(&self) -> &'static str {
        match self {
            Billing::Am(_) => "am",
            Billing::Finess(_) => "finess",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Billing::Am(a) => a.as_str(),
            Billing::Finess(f) => f.as_str(),
        }
    }
}

/// A beneficiary of the French scheme: the insured's NIR, birth date, rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insured {
    pub nir: Nir,
    pub birth_date: NaiveDate,
    pub rank: u8,
}

/// A visitor's European Health Insurance Card (front-face fields 3–9).
#[derive(Clone, PartialEq, Eq)]
pub struct Ehic {
    pub country: Country,
    pub institution_id: EhicInstitutionId,
    pub card_id: EhicCardId,
    pub personal_id: EhicPersonalId,
    pub surname: String,
    pub given_names: String,
    pub birth_date: NaiveDate,
    pub expiry: NaiveDate,
}

impl std::fmt::Debug for Ehic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ehic")
            .field("country", &self.country)
            .field("institution_id", &self.institution_id)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patient {
    Insured(Insured),
    Visitor(Ehic),
}

impl Patient {
    pub fn birth_date(&self) -> NaiveDate {
        match self {
            Patient::Insured(i) => i.birth_date,
            Patient::Visitor(e) => e.birth_date,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TiersPayant {
    pub amo: bool,
    pub amc: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActLine {
    pub code: String,
    pub quantity: u32,
    pub coefficient: Hundredths,
    pub charged: Cents,
    pub complement: Option<Complement>,
    pub ald_related: bool,
    /// The base the professional's software computed: checked, never trusted.
    pub declared_base: Option<Cents>,
    pub product: Option<crate::ids::Cip13>,
    pub unit_price: Option<Cents>,
    pub leg: Option<u32>,
    pub prescription: Option<Prescription>,
}

/// Who wrote a prescription: a person by RPPS, an establishment by FINESS,
/// or a professional or establishment by its Assurance Maladie number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prescriber {
    Rpps(Rpps),
    Finess(crate::ids::Finess),
    /// 9 characters: department (2, `2A`/`2B` allowed), category, order
    /// number and key; the key rule is UNCONFIRMED (domain.md 2.3): unchecked.
    Am(String),
    /// The prescriber of a foreign ePrescription, known abroad only.
    Foreign,
}

impl Prescriber {
    pub fn kind(&self) -> &'static str {
        match self {
            Prescriber::Rpps(_) => "rpps",
            Prescriber::Finess(_) => "finess",
            Prescriber::Am(_) => "am",
            Prescriber::Foreign => "foreign",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Prescriber::Rpps(r) => r.as_str(),
            Prescriber::Finess(f) => f.as_str(),
            Prescriber::Am(a) => a,
            Prescriber::Foreign => "",
        }
    }
}

/// A justified "non substituable" mention (since 2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonSubstitution {
    /// Narrow therapeutic margin.
    Mte,
    /// Child under 6 with no suitable generic form.
    Efg,
    /// Formal contraindication to an excipient of the generics.
    Cif,
}

impl NonSubstitution {
    pub fn parse(text: &str) -> Option<NonSubstitution> {
        match text {
            "mte" => Some(NonSubstitution::Mte),
            "efg" => Some(NonSubstitution::Efg),
            "cif" => Some(NonSubstitution::Cif),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NonSubstitution::Mte => "mte",
            NonSubstitution::Efg => "efg",
            NonSubstitution::Cif => "cif",
        }
    }
}

/// A checked prescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prescription {
    pub prescriber: Prescriber,
    pub date: NaiveDate,
    pub number: Option<String>,
    /// What it allows for the line's item; `None`: the line's quantity.
    pub quantity: Option<u32>,
    pub non_substitution: Option<NonSubstitution>,
    pub foreign: Option<ForeignPrescription>,
    /// How many times it may be renewed; `None`: none (docs/rules.md,
    /// "Prescriptions").
    pub renewals: Option<u32>,
}

/// A checked foreign ePrescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignPrescription {
    pub country: crate::ids::Country,
    pub id: String,
    /// The prescribed substance: an ATC code of any level (1 to 7 characters).
    pub atc: String,
}

impl Prescription {
    /// The prescription's identity for its dispensing count: a foreign
    /// ePrescription's country and id, else the number of an ordonnance
    /// numérique, else prescriber and date.
    pub fn identity(&self) -> String {
        if let Some(f) = &self.foreign {
            return format!("eu:{}:{}", f.country.as_str(), f.id);
        }
        match &self.number {
            Some(number) => format!("n:{number}"),
            None => format!(
                "{}:{}:{}",
                self.prescriber.kind(),
                self.prescriber.id(),
                self.date
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub alg: String,
    pub cert: String,
    /// Base64 of the signature bytes, as received.
    pub value: String,
}

/// A checked FSE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fse {
    pub fse_id: String,
    pub received_at: DateTime<FixedOffset>,
    pub care_date: NaiveDate,
    pub professional: Professional,
    pub patient: Patient,
    /// `None`: the FSE does not fill it (pharmacies, labs, transport, or a
    /// doctor's FSE left blank, code 22); reimbursement reads it by the rules.
    pub pathway: Option<Pathway>,
    pub tiers_payant: TiersPayant,
    pub lines: Vec<ActLine>,
    pub signature: Option<Signature>,
}

impl Fse {
    /// The reimbursement date: the date of `received_at` in the offset it was
    /// stamped with (the receiving system's local date). Yearly caps count by it.
    pub fn reimbursement_date(&self) -> NaiveDate {
        self.received_at.date_naive()
    }
}
