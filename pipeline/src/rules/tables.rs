//! The typed rule tables and their TOML shapes.
//!
//! Parsing checks each table on its own (dates sorted and unique, amounts
//! well-formed, codes unique per category); `Rules` checks the references
//! between tables.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use super::dated::{Dated, Version};
use crate::domain::Category;
use crate::ids::Country;
use crate::money::{Cents, Hundredths, Rate};

/// What kind of care an act is: decides its rate, its deductions and the
/// families the pathway penalty and the flat fee apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Doctors' clinical acts (consultations, visits).
    Consultation,
    /// Supplements to a consultation (coordination…): no participation of their own.
    Majoration,
    /// Doctors' technical acts (CCAM).
    Technical,
    Dental,
    Midwife,
    Nursing,
    Physiotherapy,
    Biology,
    Radiology,
    Pharmacy,
    Transport,
    Hospital,
    /// The hospital daily fee (forfait journalier): borne by the patient.
    HospitalDayFee,
}

/// How an act line's base is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    /// NGAP key: key value × coefficient × quantity.
    Coefficient,
    /// CCAM code, transport leg, daily fee: tariff × quantity.
    Unit,
    /// Pharmacy: the line's unit price × boxes, or the listed base × boxes
    /// where the product list is in force (rules/products.rs).
    DeclaredPrice,
}

/// A tariff version; `amount` absent means the code is not billable from that date.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TariffValue {
    #[serde(default)]
    pub amount: Option<Cents>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RateValue {
    pub percent: Rate,
}

/// Supplements for care given at night, on a Sunday or holiday, or in urgency.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplementValues {
    #[serde(default)]
    pub night: Option<Cents>,
    #[serde(default)]
    pub sunday: Option<Cents>,
    #[serde(default)]
    pub urgency: Option<Cents>,
}

/// One act of the nomenclature, for the professional categories that may bill it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Act {
    pub code: String,
    pub label: String,
    pub family: Family,
    pub categories: Vec<Category>,
    pub pricing: Pricing,
    /// Bears the participation forfaitaire (doctor acts, biology, radiology).
    #[serde(default)]
    pub participation: bool,
    /// Bears its family's franchise; travel allowances do not.
    #[serde(default = "yes")]
    franchise: bool,
    #[serde(default)]
    tariff: Option<Dated<TariffValue>>,
    /// Base for sector 2 doctors outside OPTAM, where it differs.
    #[serde(default)]
    non_optam: Option<Dated<TariffValue>>,
    /// Base for non-conventioned (sector 3) doctors: the tarif d'autorité.
    #[serde(default)]
    authority: Option<Dated<TariffValue>>,
    /// A rate of its own (pharmacy prestation codes), instead of its family's.
    #[serde(default)]
    rate: Option<Dated<RateValue>>,
    #[serde(default)]
    local_regime_rate: Option<Dated<RateValue>>,
}

/// Which base applies to a doctor's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseKind {
    Convention,
    NonOptam,
    Authority,
}

fn yes() -> bool {
    true
}

impl Act {
    pub fn bears_franchise(&self) -> bool {
        self.franchise
    }

    /// The tariff version in force on `date` for the given base kind; a kind
    /// with no table of its own falls back to the convention tariff, except
    /// the authority tariff, which has none to fall back to.
    pub fn tariff_at(&self, kind: BaseKind, date: NaiveDate) -> Option<&Version<TariffValue>> {
        let table = match kind {
            BaseKind::Convention => self.tariff.as_ref(),
            BaseKind::NonOptam => self.non_optam.as_ref().or(self.tariff.as_ref()),
            BaseKind::Authority => self.authority.as_ref(),
        };
        table?.at(date)
    }

    pub fn rate_override(&self) -> Option<&Dated<RateValue>> {
        self.rate.as_ref()
    }

    pub fn local_regime_rate(&self) -> Option<&Dated<RateValue>> {
        self.local_regime_rate.as_ref()
    }

    /// Billable on `date`: a tariff in force (or, priced by declaration, a rate).
    pub fn billable_on(&self, date: NaiveDate) -> bool {
        match self.pricing {
            Pricing::DeclaredPrice => self.rate.as_ref().and_then(|r| r.at(date)).is_some(),
            Pricing::Coefficient | Pricing::Unit => self
                .tariff
                .as_ref()
                .and_then(|t| t.at(date))
                .is_some_and(|v| v.value.amount.is_some()),
        }
    }

    /// Versions cited in a decision: `CODE@from`.
    pub fn version_tag(&self, from: NaiveDate) -> String {
        format!("{}@{}", self.code, from)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActsFile {
    act: Vec<Act>,
    #[serde(default)]
    product_list: Option<Dated<super::products::ListValue>>,
    #[serde(default)]
    generic_substitution: Option<Dated<super::products::GenericRule>>,
    #[serde(default)]
    product: Vec<super::products::Product>,
    #[serde(default)]
    generic_group: Vec<super::products::GenericGroup>,
    #[serde(default)]
    prescribed: Vec<super::prescriptions::Prescribed>,
}

/// The nomenclature: acts by code, each for some professional categories.
#[derive(Debug, Clone)]
pub struct ActTable {
    /// `(code, category)` → index into `acts`.
    by_code_category: BTreeMap<(String, Category), usize>,
    codes: BTreeSet<String>,
    acts: Vec<Act>,
    /// The product list (pharmacy), empty before 2026-12-06.
    pub products: super::products::ProductTable,
    /// Prescribed care, empty before 2026-12-06.
    pub prescriptions: super::prescriptions::PrescriptionTable,
}

impl ActTable {
    pub fn parse(text: &str) -> Result<ActTable, String> {
        let file: ActsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut by_code_category = BTreeMap::new();
        let mut codes = BTreeSet::new();
        for (index, act) in file.act.iter().enumerate() {
            if act.categories.is_empty() {
                return Err(format!("act {}: no category", act.code));
            }
            match act.pricing {
                Pricing::DeclaredPrice if act.rate.is_none() => {
                    return Err(format!(
                        "act {}: priced by declaration but no rate",
                        act.code
                    ));
                }
                Pricing::Coefficient | Pricing::Unit if act.tariff.is_none() => {
                    return Err(format!("act {}: no tariff", act.code));
                }
                _ => {}
            }
            for category in &act.categories {
                if by_code_category
                    .insert((act.code.clone(), *category), index)
                    .is_some()
                {
                    return Err(format!("act {} listed twice for {category:?}", act.code));
                }
            }
            codes.insert(act.code.clone());
        }
        let products =
            super::products::ProductTable::from_sections(super::products::ProductSections {
                product_list: file.product_list,
                generic_substitution: file.generic_substitution,
                product: file.product,
                generic_group: file.generic_group,
            })?;
        let prescriptions = super::prescriptions::PrescriptionTable::new(file.prescribed)?;
        Ok(ActTable {
            by_code_category,
            codes,
            acts: file.act,
            products,
            prescriptions,
        })
    }

    /// The act a professional of `category` bills under `code`.
    pub fn find(&self, code: &str, category: Category) -> Option<&Act> {
        self.by_code_category
            .get(&(code.to_string(), category))
            .map(|&i| &self.acts[i])
    }

    /// Whether any category may bill `code`.
    pub fn knows_code(&self, code: &str) -> bool {
        self.codes.contains(code)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Act> {
        self.acts.iter()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyRates {
    family: Family,
    rate: Dated<RateValue>,
    #[serde(default)]
    local_regime: Option<Dated<RateValue>>,
    #[serde(default)]
    complements: Option<Dated<ComplementValues>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutsidePathway {
    /// Families whose rate drops outside the care pathway (doctors' acts).
    pub families: Vec<Family>,
    pub rate: Dated<RateValue>,
}

/// Who is in the care pathway (rates.toml `[[care_pathway]]`, docs/rules.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarePathwayValue {
    /// The categories the pathway penalty and the sector bases apply to.
    pub doctors: Vec<Category>,
    /// The categories that may claim direct access.
    pub direct_access: Vec<Category>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesFile {
    family: Vec<FamilyRates>,
    outside_pathway: OutsidePathway,
    #[serde(default)]
    care_pathway: Vec<Version<CarePathwayValue>>,
}

/// Rates by family, the outside-pathway rate, the local regime's rates, and
/// the complements (night, Sunday, urgency) by family.
#[derive(Debug, Clone)]
pub struct RateTable {
    families: BTreeMap<Family, FamilyRates>,
    pub outside_pathway: OutsidePathway,
    /// Absent from rule sets before 2026-12-06: referred and direct-access
    /// claims needed no declared GP, an unfilled pathway read as referred,
    /// and only GPs and specialists were doctors.
    pub care_pathway: Option<Dated<CarePathwayValue>>,
}

impl RateTable {
    pub fn parse(text: &str) -> Result<RateTable, String> {
        let file: RatesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut families = BTreeMap::new();
        for entry in file.family {
            let family = entry.family;
            if families.insert(family, entry).is_some() {
                return Err(format!("family {family:?} listed twice"));
            }
        }
        let care_pathway = match file.care_pathway.is_empty() {
            true => None,
            false => Some(Dated::new(file.care_pathway, "care_pathway")?),
        };
        Ok(RateTable {
            families,
            outside_pathway: file.outside_pathway,
            care_pathway,
        })
    }

    pub fn family(&self, family: Family) -> Option<&Dated<RateValue>> {
        self.families.get(&family).map(|f| &f.rate)
    }

    pub fn local_regime(&self, family: Family) -> Option<&Dated<RateValue>> {
        self.families.get(&family)?.local_regime.as_ref()
    }

    pub fn complements(&self, family: Family) -> Option<&Dated<ComplementValues>> {
        self.families.get(&family)?.complements.as_ref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipationValue {
    pub amount: Cents,
    /// Acts per professional per day per beneficiary that bear one.
    pub daily_max_acts: u32,
    pub yearly_cap: Cents,
    /// Whether it is also taken on an act that bears the flat fee (§3.5).
    pub with_flat_fee: bool,
    /// What the flat fee spares when `with_flat_fee` is false.
    #[serde(default)]
    pub flat_fee_spares: FlatFeeSpares,
}

/// What the flat fee spares of the participation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlatFeeSpares {
    /// The whole claim (rule sets before 2026-12-06).
    #[default]
    Claim,
    /// Only the acts that bear the flat fee: the participation follows the lines.
    Line,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FranchiseValue {
    pub per_box: Cents,
    pub per_act: Cents,
    pub per_leg: Cents,
    /// Per professional, per beneficiary, per day of care.
    pub daily_cap_auxiliary: Cents,
    /// Per beneficiary, per day of care.
    pub daily_cap_transport: Cents,
    pub yearly_cap: Cents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatFeeValue {
    pub amount: Cents,
    /// Sum of bases of eligible acts of one claim at or above which it applies.
    pub threshold: Cents,
    /// Or any eligible NGAP act with a coefficient at or above this.
    pub coefficient_threshold: Hundredths,
}

/// What kind of franchise a family bears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FranchiseKind {
    Medicine,
    Auxiliary,
    Transport,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FranchiseTable {
    pub families: BTreeMap<Family, FranchiseKind>,
    pub versions: Dated<FranchiseValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatFeeTable {
    pub families: Vec<Family>,
    pub versions: Dated<FlatFeeValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeductionsFile {
    participation: Dated<ParticipationValue>,
    franchise: FranchiseTable,
    flat_fee: FlatFeeTable,
}

/// Participation forfaitaire, franchises and the flat fee on costly acts.
#[derive(Debug, Clone)]
pub struct DeductionTable {
    pub participation: Dated<ParticipationValue>,
    pub franchise: Dated<FranchiseValue>,
    franchise_kinds: BTreeMap<Family, FranchiseKind>,
    pub flat_fee: FlatFeeTable,
}

impl DeductionTable {
    pub fn parse(text: &str) -> Result<DeductionTable, String> {
        let file: DeductionsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(DeductionTable {
            participation: file.participation,
            franchise: file.franchise.versions,
            franchise_kinds: file.franchise.families,
            flat_fee: file.flat_fee,
        })
    }

    pub fn franchise_kind(&self, family: Family) -> Option<FranchiseKind> {
        self.franchise_kinds.get(&family).copied()
    }
}

/// What one beneficiary situation switches on or off (domain.md §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// Rate 100 % of the base.
    pub full_rate: bool,
    /// The ticket modérateur is paid by the solidarity coverage (CSS).
    #[serde(default)]
    pub ticket_paid_by_css: bool,
    pub exempt_participation: bool,
    pub exempt_franchise: bool,
    pub exempt_flat_fee: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionValue {
    /// Under this age on 1 January of the year of care: a minor.
    pub minor_age: u32,
    /// Under this age on the date of care: no pathway penalty.
    pub pathway_free_under: u32,
    pub minor: Exemption,
    pub css: Exemption,
    pub ame: Exemption,
    pub maternity: Exemption,
    pub ald_related: Exemption,
    /// Emergency transport is exempt from the transport franchise.
    pub emergency_transport_exempt_franchise: bool,
    /// Acts billed by a hospital are exempt from franchises.
    pub hospital_exempt_franchise: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptionsFile {
    version: Vec<Version<ExemptionValue>>,
}

#[derive(Debug, Clone)]
pub struct ExemptionTable {
    pub versions: Dated<ExemptionValue>,
}

impl ExemptionTable {
    pub fn parse(text: &str) -> Result<ExemptionTable, String> {
        let file: ExemptionsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(ExemptionTable {
            versions: Dated::new(file.version, "exemptions")?,
        })
    }
}

/// The insured's limitation period (the time-bar), in one of two readings.
/// Exactly one field is given; [`GeneralTable::parse`] refuses anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitationValue {
    /// The reading of rule sets recorded before 2026-12-05: a claim received
    /// more than this many days after the care is time-barred. Kept so that
    /// runs recorded under those sets replay as they ran.
    #[serde(default)]
    pub days: Option<u32>,
    /// Art. L.332-1 CSS: the action is barred after this many years counted
    /// from the first day of the quarter following the one of the care.
    #[serde(default)]
    pub years_from_next_quarter: Option<u32>,
}

impl LimitationValue {
    /// The first date on which a claim for care on `care` is time-barred:
    /// judged on the insurer's date of receipt, a claim is in time strictly
    /// before it. `None` only when the date leaves the calendar.
    pub fn barred_from(&self, care: NaiveDate) -> Option<NaiveDate> {
        match (self.days, self.years_from_next_quarter) {
            // Received more than `days` days after the care: barred on care + days + 1.
            (Some(days), _) => care.checked_add_days(chrono::Days::new(u64::from(days) + 1)),
            (None, Some(years)) => {
                let quarter_start_month = (care.month0() / 3) * 3 + 1;
                let next_quarter = NaiveDate::from_ymd_opt(care.year(), quarter_start_month, 1)?
                    .checked_add_months(chrono::Months::new(3))?;
                next_quarter.checked_add_months(chrono::Months::new(12 * years))
            }
            (None, None) => None,
        }
    }
}

/// How long claim-driven state outlives the time-bar (docs/rules.md,
/// "Retention"): a duplicate key or a counter is kept until no claim that
/// could still touch it is in time, then this margin more (for receipt
/// stamps that reach a partition out of order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionValue {
    pub margin_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeneralFile {
    limitation: Vec<Version<LimitationValue>>,
    /// Absent from rule sets before retention: their state is kept for ever,
    /// so runs recorded under them replay as they ran.
    #[serde(default)]
    retention: Vec<Version<RetentionValue>>,
    /// Absent from rule sets before 2026-12-06: no foreign ePrescription
    /// is in service under them.
    #[serde(default)]
    eu_eprescription: Vec<Version<EuEprescriptionValue>>,
    /// Absent from rule sets before 2026-12-07: an FSE number is a
    /// duplicate for its beneficiary whoever sent it.
    #[serde(default)]
    invoice_number: Vec<Version<InvoiceNumberValue>>,
}

/// Whose FSE (invoice) numbers must differ (docs/rules.md, "Billing
/// identifiers"): each professional numbers their own, so several
/// professionals billing under one AM number may use the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceNumberValue {
    /// A duplicate is the same number for the same beneficiary from the
    /// same RPPS (false: from anyone).
    pub per_professional: bool,
}

/// Whether French pharmacies dispense ePrescriptions issued in another
/// EU/EEA country (MyHealth@EU) from a date, and from which states
/// (docs/rules.md, "EU ePrescriptions"): states join the service one by
/// one, so the list is dated data like the rest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EuEprescriptionValue {
    pub in_force: bool,
    /// The issuing states (EU convention codes, as eu.toml), France never.
    pub countries: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GeneralTable {
    pub limitation: Dated<LimitationValue>,
    pub retention: Option<Dated<RetentionValue>>,
    pub eu_eprescription: Option<Dated<EuEprescriptionValue>>,
    pub invoice_number: Option<Dated<InvoiceNumberValue>>,
}

impl GeneralTable {
    pub fn parse(text: &str) -> Result<GeneralTable, String> {
        let file: GeneralFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for version in &file.limitation {
            if version.value.days.is_some() == version.value.years_from_next_quarter.is_some() {
                return Err(format!(
                    "limitation from {}: give exactly one of days and years_from_next_quarter",
                    version.from
                ));
            }
        }
        let retention = match file.retention.is_empty() {
            true => None,
            false => Some(Dated::new(file.retention, "retention")?),
        };
        for version in &file.eu_eprescription {
            for code in &version.value.countries {
                match crate::ids::country::Country::parse(code) {
                    Ok(c) if c.as_str() == code && code != "FR" => {}
                    _ => {
                        return Err(format!(
                            "eu_eprescription from {}: {code:?} is not a state other than \
                             France in its EU convention code",
                            version.from
                        ));
                    }
                }
            }
        }
        let eu_eprescription = match file.eu_eprescription.is_empty() {
            true => None,
            false => Some(Dated::new(file.eu_eprescription, "eu_eprescription")?),
        };
        let invoice_number = match file.invoice_number.is_empty() {
            true => None,
            false => Some(Dated::new(file.invoice_number, "invoice_number")?),
        };
        Ok(GeneralTable {
            limitation: Dated::new(file.limitation, "limitation")?,
            retention,
            eu_eprescription,
            invoice_number,
        })
    }

    /// Whether an FSE with care on `care` is a duplicate only of one from
    /// the same RPPS (else of any with its number for its beneficiary).
    pub fn invoice_number_per_professional(&self, care: NaiveDate) -> bool {
        (self.invoice_number.as_ref())
            .and_then(|d| d.at(care))
            .is_some_and(|v| v.value.per_professional)
    }

    /// The states whose ePrescriptions can be dispensed on `care`: those of
    /// the entry in force on that date; `None` when none is (before the
    /// first entry, or in a set without the entry).
    pub fn eu_eprescription_countries(&self, care: NaiveDate) -> Option<&[String]> {
        self.eu_eprescription
            .as_ref()
            .and_then(|d| d.at(care))
            .filter(|v| v.value.in_force)
            .map(|v| v.value.countries.as_slice())
    }

    /// The first date on which state kept for a claim with care on `care`
    /// may be deleted: the day its time-bar starts plus the retention margin,
    /// both as in force on `care`. `None`: kept for ever (no retention in the
    /// rule set, or no time-bar).
    pub fn kept_until(&self, care: NaiveDate) -> Option<NaiveDate> {
        let margin = self.retention.as_ref()?.at(care)?.value.margin_days;
        let barred_from = self.limitation.at(care)?.value.barred_from(care)?;
        barred_from.checked_add_days(chrono::Days::new(u64::from(margin)))
    }

    /// [`Self::kept_until`] for state that claims of a whole year touch (a
    /// yearly cap): that of the year's last day, the last care a claim
    /// counted in the year can have.
    pub fn year_kept_until(&self, year: i32) -> Option<NaiveDate> {
        self.kept_until(NaiveDate::from_ymd_opt(year, 12, 31)?)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EuCountryRow {
    code: String,
    /// First date of care for which this state's cards are accepted.
    accepted_from: NaiveDate,
    #[serde(default)]
    source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EuFile {
    country: Vec<EuCountryRow>,
}

/// Which states' EHICs are accepted, from which date of care.
#[derive(Debug, Clone)]
pub struct EuTable {
    accepted_from: BTreeMap<Country, (NaiveDate, String)>,
}

impl EuTable {
    pub fn parse(text: &str) -> Result<EuTable, String> {
        let file: EuFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut accepted_from = BTreeMap::new();
        for row in file.country {
            let country =
                Country::parse(&row.code).map_err(|e| format!("country {}: {e}", row.code))?;
            if accepted_from
                .insert(country, (row.accepted_from, row.source))
                .is_some()
            {
                return Err(format!("country {} listed twice", row.code));
            }
        }
        Ok(EuTable { accepted_from })
    }

    /// Whether a card of `country` is accepted for care on `date`.
    pub fn accepts(&self, country: Country, date: NaiveDate) -> bool {
        self.accepted_from
            .get(&country)
            .is_some_and(|(from, _)| *from <= date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    const ARTICLE: LimitationValue = LimitationValue {
        days: None,
        years_from_next_quarter: Some(2),
    };

    #[test]
    fn the_time_bar_runs_from_the_quarter_after_the_care() {
        for (care, barred) in [
            ("2023-01-01", "2025-04-01"),
            ("2023-01-20", "2025-04-01"),
            ("2023-03-31", "2025-04-01"),
            ("2023-04-01", "2025-07-01"),
            ("2023-06-30", "2025-07-01"),
            ("2023-07-01", "2025-10-01"),
            ("2023-09-30", "2025-10-01"),
            ("2023-10-01", "2026-01-01"),
            ("2023-12-31", "2026-01-01"),
            // Leap days: the count starts on a quarter's first day, so a
            // leap year changes nothing.
            ("2024-02-29", "2026-04-01"),
            ("2020-02-29", "2022-04-01"),
        ] {
            assert_eq!(
                ARTICLE.barred_from(date(care)),
                Some(date(barred)),
                "{care}"
            );
        }
    }

    #[test]
    fn the_day_count_of_earlier_rule_sets_is_kept() {
        let days = LimitationValue {
            days: Some(730),
            years_from_next_quarter: None,
        };
        // In time 730 days after the care, barred on the 731st (2024 has 366).
        assert_eq!(
            days.barred_from(date("2023-01-20")),
            Some(date("2025-01-20"))
        );
        assert_eq!(
            days.barred_from(date("2024-02-29")),
            Some(date("2026-03-01"))
        );
    }

    #[test]
    fn state_is_kept_through_the_time_bar_and_the_margin() {
        let table = GeneralTable::parse(
            "[[limitation]]\nfrom = \"2000-01-01\"\nsource = \"s\"\nyears_from_next_quarter = 2\n\
             [[retention]]\nfrom = \"2000-01-01\"\nsource = \"s\"\nmargin_days = 31\n",
        )
        .unwrap();
        // Care in Q1 2024: barred from 2026-04-01, kept 31 days more.
        assert_eq!(
            table.kept_until(date("2024-02-29")),
            Some(date("2026-05-02"))
        );
        // A yearly cap: every claim of 2024 has care on 2024-12-31 at the latest.
        assert_eq!(table.year_kept_until(2024), Some(date("2027-02-01")));
        let without = GeneralTable::parse(
            "[[limitation]]\nfrom = \"2000-01-01\"\nsource = \"s\"\nyears_from_next_quarter = 2\n",
        )
        .unwrap();
        assert_eq!(without.kept_until(date("2024-02-29")), None);
    }

    #[test]
    fn a_limitation_names_exactly_one_reading() {
        let table = |body: &str| {
            GeneralTable::parse(&format!(
                "[[limitation]]\nfrom = \"2000-01-01\"\nsource = \"s\"\n{body}"
            ))
        };
        assert!(table("years_from_next_quarter = 2").is_ok());
        assert!(table("days = 730").is_ok());
        assert!(table("days = 730\nyears_from_next_quarter = 2").is_err());
        assert!(table("").is_err());
    }

    #[test]
    fn eu_eprescriptions_are_in_service_from_their_entry_while_in_force() {
        let limitation =
            "[[limitation]]\nfrom = \"2000-01-01\"\nsource = \"s\"\nyears_from_next_quarter = 2\n";
        let table = GeneralTable::parse(&format!(
            "{limitation}[[eu_eprescription]]\nfrom = \"2026-12-01\"\nsource = \"s\"\nin_force = true\n\
             countries = [\"DE\", \"EL\"]\n\
             [[eu_eprescription]]\nfrom = \"2027-03-01\"\nsource = \"s\"\nin_force = false\ncountries = []\n"
        ))
        .unwrap();
        let countries = table.eu_eprescription_countries(date("2026-12-01"));
        assert_eq!(countries, Some(&["DE".to_string(), "EL".to_string()][..]));
        for bad in ["FR", "GR", "XX", "de"] {
            let text = format!(
                "{limitation}[[eu_eprescription]]\nfrom = \"2026-12-01\"\nsource = \"s\"\n\
                 in_force = true\ncountries = [\"{bad}\"]\n"
            );
            assert!(GeneralTable::parse(&text).is_err(), "{bad} accepted");
        }
        let in_service = |d| table.eu_eprescription_countries(date(d)).is_some();
        assert!(!in_service("2026-11-30"));
        assert!(in_service("2026-12-01"));
        assert!(in_service("2027-02-28"));
        assert!(!in_service("2027-03-01"));
        // A set without the entry (every set before 2026-12-06): never.
        let without = GeneralTable::parse(limitation).unwrap();
        assert_eq!(without.eu_eprescription_countries(date("2030-01-01")), None);
    }
}
