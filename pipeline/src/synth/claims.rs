//! Synthetic signed claims: a realistic mix of care, and a configurable share
//! of bad claims of every rejection kind. Claim `i` depends only on the seed,
//! the world and `i`, so claims can be made in any order, on any thread.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime};

use super::billing;
use super::eprescription;
use super::renewal;
use super::rng::Rng;
use super::world::{Professional, World};
use crate::domain::rights::RightsInput;
use crate::domain::{Category, Complement, Pathway};
use crate::events::model::*;
use crate::events::registry::SchemaRegistry;
use crate::ids::Cip13;
use crate::rules::{BaseKind, Rules};

const STREAM_CLAIMS: u64 = 4;

/// The kinds of bad claim the generator makes, one per rejection the
/// pipeline must give (the reason code it expects is in [`BadKind::expected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BadKind {
    Duplicate,
    BadNirKey,
    UnknownActCode,
    ActNotAllowedForCategory,
    CareDateAfterReceipt,
    ClaimTimeBarred,
    BadSignature,
    UnknownCertificate,
    CertificateOtherProfessional,
    CertificateRevoked,
    CertificateNotValid,
    UnknownBeneficiary,
    NotCoveredOnCareDate,
    ExonerationNotFound,
    EhicExpired,
    EuInstitutionUnknown,
    EhicFrenchCard,
    InvalidAmount,
    /// A foreign ePrescription from a state outside the service's list.
    EuEprescriptionCountry,
    /// A foreign ePrescription naming a substance the product is not.
    EuEprescriptionSubstance,
    /// A billing identifier failing its check (a FINESS's key, an AM
    /// number's shape).
    InvalidBillingId,
    /// An AM number of a category the professional does not bill under.
    BillingCategoryMismatch,
}

impl BadKind {
    pub const ALL: [BadKind; 22] = [
        BadKind::Duplicate,
        BadKind::BadNirKey,
        BadKind::UnknownActCode,
        BadKind::ActNotAllowedForCategory,
        BadKind::CareDateAfterReceipt,
        BadKind::ClaimTimeBarred,
        BadKind::BadSignature,
        BadKind::UnknownCertificate,
        BadKind::CertificateOtherProfessional,
        BadKind::CertificateRevoked,
        BadKind::CertificateNotValid,
        BadKind::UnknownBeneficiary,
        BadKind::NotCoveredOnCareDate,
        BadKind::ExonerationNotFound,
        BadKind::EhicExpired,
        BadKind::EuInstitutionUnknown,
        BadKind::EhicFrenchCard,
        BadKind::InvalidAmount,
        BadKind::EuEprescriptionCountry,
        BadKind::EuEprescriptionSubstance,
        BadKind::InvalidBillingId,
        BadKind::BillingCategoryMismatch,
    ];

    /// A kind drawn uniformly among those that can apply: the foreign
    /// ePrescription ones only to a claim with a line that can carry one
    /// (`foreign_possible`), the billing ones only to a claim that names a
    /// billing identifier (`billing_possible`), so any other claim draws
    /// what it drew before them (2026-12-06).
    fn draw(rng: &mut Rng, foreign_possible: bool, billing_possible: bool) -> BadKind {
        let kinds: Vec<BadKind> = (BadKind::ALL.iter().copied())
            .filter(|k| foreign_possible || !eprescription::needs_one(*k))
            .filter(|k| billing_possible || !billing::needs_one(*k))
            .collect();
        *rng.pick(&kinds)
    }

    /// The reason code the pipeline must give for this kind.
    pub fn expected(self) -> &'static str {
        match self {
            BadKind::Duplicate => "duplicate",
            BadKind::BadNirKey => "invalid_nir",
            BadKind::UnknownActCode => "unknown_act_code",
            BadKind::ActNotAllowedForCategory => "act_not_allowed_for_category",
            BadKind::CareDateAfterReceipt => "care_date_after_receipt",
            BadKind::ClaimTimeBarred => "claim_time_barred",
            BadKind::BadSignature => "bad_signature",
            BadKind::UnknownCertificate => "unknown_certificate",
            BadKind::CertificateOtherProfessional => "certificate_other_professional",
            BadKind::CertificateRevoked => "certificate_revoked",
            BadKind::CertificateNotValid => "certificate_not_valid",
            BadKind::UnknownBeneficiary => "unknown_beneficiary",
            BadKind::NotCoveredOnCareDate => "not_covered_on_care_date",
            BadKind::ExonerationNotFound => "exoneration_not_found",
            BadKind::EhicExpired => "ehic_expired",
            BadKind::EuInstitutionUnknown => "eu_institution_unknown",
            BadKind::EhicFrenchCard => "ehic_french_card",
            BadKind::InvalidAmount => "invalid_amount",
            BadKind::EuEprescriptionCountry => "eu_eprescription_country",
            BadKind::EuEprescriptionSubstance => "eu_eprescription_substance_mismatch",
            BadKind::InvalidBillingId => "invalid_billing_id",
            BadKind::BillingCategoryMismatch => "billing_category_mismatch",
        }
    }
}

pub struct ClaimConfig {
    pub seed: u64,
    /// Per mille of claims that are bad (of a kind drawn uniformly).
    pub bad_per_mille: u32,
    /// Per mille of claims from EHIC visitors.
    pub visitors_per_mille: u32,
}

/// The dates of a claim its caller chooses (the time-lapse load test walks
/// receipt days at a constant volume): the date of care, and the day the
/// insurer receives it (at a working hour drawn as usual).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dating {
    pub care: NaiveDate,
    pub received: NaiveDate,
}

/// The dates of claim `index`, when its caller chooses them.
pub type DateOf<'a> = Option<&'a (dyn Fn(usize) -> Dating + Sync)>;

/// One generated claim, signed, and the bad kind it was made as (if any).
pub struct GeneratedClaim {
    pub fse: FseSubmitted,
    pub bad: Option<BadKind>,
}

/// Claim mix by the professional's category (per mille of claims).
const CLAIM_MIX: [(Category, u32); 10] = [
    (Category::Gp, 300),
    (Category::Pharmacist, 300),
    (Category::Specialist, 110),
    (Category::Nurse, 100),
    (Category::Physiotherapist, 60),
    (Category::Laboratory, 50),
    (Category::Dentist, 35),
    (Category::Radiology, 25),
    (Category::Transport, 15),
    (Category::Midwife, 5),
];

/// Share of claims under tiers payant, by category (IGAS 2017-111R, §1.6).
fn tiers_payant_per_mille(category: Category) -> u32 {
    match category {
        Category::Gp => 250,
        Category::Specialist => 200,
        Category::Dentist => 100,
        Category::Nurse => 930,
        Category::Pharmacist => 990,
        Category::Physiotherapist => 500,
        Category::Laboratory | Category::Transport => 900,
        Category::Radiology => 500,
        Category::Midwife => 300,
        Category::Hospital => 1000,
    }
}

const SURNAMES: [&str; 8] = [
    "Muller", "Rossi", "Garcia", "Jansen", "Smith", "Peeters", "Schmid", "Bianchi",
];
const GIVEN_NAMES: [&str; 8] = [
    "Anna", "Luca", "Maria", "Jan", "Emma", "Lukas", "Sofia", "Noah",
];

fn tariff_cents(
    rules: &Rules,
    code: &str,
    category: Category,
    kind: BaseKind,
    care: NaiveDate,
) -> i64 {
    rules
        .acts
        .find(code, category)
        .and_then(|a| a.tariff_at(kind, care))
        .and_then(|v| v.value.amount)
        .map_or(0, |c| c.get())
}

fn billable(rules: &Rules, code: &str, category: Category, care: NaiveDate) -> bool {
    rules
        .acts
        .find(code, category)
        .is_some_and(|a| a.billable_on(care))
}

fn line(code: &str, quantity: i32, coefficient_hundredths: i32, charged_cents: i64) -> ActLineRec {
    ActLineRec {
        code: code.to_string(),
        quantity,
        coefficient_hundredths,
        charged_cents,
        complement: None,
        ald_related: false,
        base_cents: None,
        product: None,
        unit_price_cents: None,
        leg: None,
        prescription: None,
    }
}

/// The act lines a professional of this category bills on one visit.
fn acts_for(rng: &mut Rng, rules: &Rules, pro: &Professional, care: NaiveDate) -> Vec<ActLineRec> {
    let category = pro.category;
    let kind = match (pro.sector, pro.optam) {
        ("2", false) if category.is_doctor() => BaseKind::NonOptam,
        _ => BaseKind::Convention,
    };
    // Sector 2 and 3 doctors charge above the tariff.
    let depassement = if category.is_doctor() && pro.sector != "1" {
        rng.range(3, 25) * 100
    } else {
        0
    };
    let visit = Visit {
        rules,
        category,
        kind,
        care,
    };
    match category {
        Category::Gp => visit.gp(rng, depassement),
        Category::Specialist => visit.specialist(rng, depassement),
        Category::Dentist => {
            let code = if rng.chance(600) { "C" } else { "HBJD001" };
            vec![line(code, 1, 100, visit.tariff(code))]
        }
        Category::Midwife => {
            let coefficient = rng.range(12, 16) as i32 * 100;
            let tariff = visit.tariff("SF");
            vec![line(
                "SF",
                1,
                coefficient,
                tariff * i64::from(coefficient) / 100,
            )]
        }
        Category::Nurse => visit.nurse(rng),
        Category::Physiotherapist => {
            let coefficient = *rng.pick(&[750, 800, 1000]);
            vec![visit.coefficient_line("AMK", coefficient)]
        }
        Category::Laboratory => {
            let coefficient = rng.range(20, 400) as i32 * 100;
            vec![visit.coefficient_line("B", coefficient)]
        }
        Category::Radiology => vec![line("ZBQK002", 1, 100, visit.tariff("ZBQK002"))],
        Category::Transport => visit.transport(rng),
        Category::Pharmacist => visit.pharmacy(rng),
        Category::Hospital => vec![line("FJ", 1, 100, visit.tariff("FJ"))],
    }
}

/// What the act lines of one visit are priced by.
struct Visit<'r> {
    rules: &'r Rules,
    category: Category,
    kind: BaseKind,
    care: NaiveDate,
}

impl<'r> Visit<'r> {
    /// The tariff of `code` for this professional's base kind.
    fn tariff(&self, code: &str) -> i64 {
        tariff_cents(self.rules, code, self.category, self.kind, self.care)
    }

    fn billable(&self, code: &str) -> bool {
        billable(self.rules, code, self.category, self.care)
    }

    /// One act at `coefficient` hundredths of its tariff, rounded.
    fn coefficient_line(&self, code: &str, coefficient: i32) -> ActLineRec {
        let tariff = self.tariff(code);
        line(
            code,
            1,
            coefficient,
            (tariff * i64::from(coefficient) + 50) / 100,
        )
    }

    fn gp(&self, rng: &mut Rng, depassement: i64) -> Vec<ActLineRec> {
        let code = if self.billable("G") { "G" } else { "C" };
        let tariff = tariff_cents(
            self.rules,
            code,
            self.category,
            BaseKind::Convention,
            self.care,
        );
        let mut consultation = line(code, 1, 100, tariff + depassement);
        if rng.chance(40) {
            consultation.complement = Some(Complement::Sunday);
            consultation.charged_cents += 1906;
        }
        let mut lines = vec![consultation];
        if rng.chance(100) {
            lines.push(line("MCG", 1, 100, 300));
        }
        lines
    }

    fn specialist(&self, rng: &mut Rng, depassement: i64) -> Vec<ActLineRec> {
        let choice = rng.weighted(&[700, 100, 100, 50, 50]);
        let code = ["CS", "APC", "DEQP003", "BGLA001", "QZFA036"][choice];
        let code = if self.billable(code) { code } else { "CS" };
        let convention = tariff_cents(
            self.rules,
            code,
            self.category,
            BaseKind::Convention,
            self.care,
        );
        let tariff = self.tariff(code).max(convention);
        vec![line(code, 1, 100, tariff + depassement)]
    }

    fn nurse(&self, rng: &mut Rng) -> Vec<ActLineRec> {
        let coefficient = *rng.pick(&[100, 150, 200, 300, 400]);
        let quantity = rng.range(1, 3) as i32;
        let tariff = self.tariff("AMI");
        let mut lines = vec![line(
            "AMI",
            quantity,
            coefficient,
            (tariff * i64::from(coefficient) * i64::from(quantity) + 50) / 100,
        )];
        if rng.chance(500) {
            lines.push(line("IFD", 1, 100, self.tariff("IFD")));
        }
        lines
    }

    fn transport(&self, rng: &mut Rng) -> Vec<ActLineRec> {
        let code = *rng.pick(&["VSL", "TAXI", "TAXI", "AMB"]);
        let tariff = self.tariff(code);
        let legs = rng.range(1, 2) as i32;
        (1..=legs)
            .map(|leg| {
                let mut l = line(code, 1, 100, tariff + rng.range(0, 3000));
                l.leg = Some(leg);
                l
            })
            .collect()
    }

    /// The listed products of `code`'s rate band with their base on the
    /// date of care, in CIP13 order; empty where no list is in force.
    fn listed_products(&self, code: &str) -> Vec<(&'r str, i64)> {
        let products = &self.rules.acts.products;
        if !products.in_force(self.care) {
            return Vec::new();
        }
        let band = (self.rules.acts.find(code, self.category))
            .and_then(|a| a.rate_override())
            .and_then(|r| r.at(self.care))
            .map(|v| v.value.percent);
        products
            .products()
            .filter_map(|p| {
                let version = p.price.at(self.care)?;
                let base = version.value.base?;
                (Some(version.value.band) == band).then_some((p.cip13.as_str(), base.get()))
            })
            .collect()
    }

    fn pharmacy(&self, rng: &mut Rng) -> Vec<ActLineRec> {
        let count = rng.range(1, 3);
        (0..count)
            .map(|_| {
                let code = ["PH7", "PH4", "PH2", "PH1"][rng.weighted(&[600, 200, 100, 100])];
                let code = if self.billable(code) { code } else { "PH7" };
                let boxes = rng.range(1, 5) as i32;
                let max_price = if code == "PH1" { 80_000 } else { 8_000 };
                let mut price = rng.range(150, max_price);
                let draw = rng.range(0, 9_999_999);
                // Where the product list is in force, a listed product of the
                // code's band at its listed price (the same draws as before).
                let listed = self.listed_products(code);
                let product = if listed.is_empty() {
                    Cip13::from_body(&format!("34009{draw:07}"))
                        .map(|c| c.as_str().to_string())
                        .ok()
                } else {
                    let (cip, base) = listed[draw as usize % listed.len()];
                    price = base;
                    Some(cip.to_string())
                };
                let mut l = line(code, boxes, 100, price * i64::from(boxes));
                l.product = product;
                l.unit_price_cents = Some(price);
                l
            })
            .collect()
    }
}

fn pathway_for(rng: &mut Rng, category: Category, is_declared_gp: bool) -> Option<Pathway> {
    match category {
        Category::Gp if is_declared_gp => Some(Pathway::Mt),
        Category::Gp => Some(match rng.weighted(&[300, 300, 400]) {
            0 => Pathway::Outside,
            1 => Pathway::Emergency,
            _ => Pathway::Referred,
        }),
        Category::Specialist => Some(match rng.weighted(&[800, 100, 100]) {
            0 => Pathway::Referred,
            1 => Pathway::DirectAccess,
            _ => Pathway::Outside,
        }),
        Category::Dentist | Category::Midwife => Some(Pathway::DirectAccess),
        Category::Nurse | Category::Physiotherapist => Some(Pathway::Referred),
        // Imaging is prescribed: the radiologist, a doctor, sees the patient
        // on referral (a blank pathway is outside it since 2026-12-06).
        Category::Radiology => Some(Pathway::Referred),
        Category::Transport if rng.chance(100) => Some(Pathway::Emergency),
        _ => None,
    }
}

/// A good claim reaches the insurer at most this many days after the care.
const RECEIPT_DELAY_DAYS: i64 = 8;

/// The summer/winter offset approximating Paris time on `date` (minutes).
pub(super) fn paris_offset_minutes(date: NaiveDate) -> i32 {
    if (4..=10).contains(&date.month()) {
        120
    } else {
        60
    }
}

/// Milliseconds and offset of a receipt on `date`, in working hours, with a
/// summer/winter offset approximating Paris time.
fn receipt(rng: &mut Rng, date: NaiveDate) -> (i64, i32) {
    let offset_minutes = paris_offset_minutes(date);
    let seconds = rng.range(8 * 3600, 20 * 3600 - 1);
    let time =
        NaiveTime::from_num_seconds_from_midnight_opt(u32::try_from(seconds).unwrap_or(0), 0)
            .unwrap_or_default();
    let utc_millis = date.and_time(time).and_utc().timestamp_millis()
        - i64::from(offset_minutes) * 60_000
        + rng.range(0, 999);
    (utc_millis, offset_minutes)
}

fn date_plus(date: NaiveDate, days: i64) -> NaiveDate {
    date.checked_add_signed(Duration::days(days))
        .unwrap_or(date)
}

fn visitor(rng: &mut Rng, world: &World, care: NaiveDate, index: usize) -> EhicRec {
    let institution = rng.pick(&world.institutions);
    EhicRec {
        country: institution.country.to_string(),
        institution_id: institution.institution_id.clone(),
        card_id: format!(
            "80{:08}{:010}",
            rng.range(0, 99_999_999),
            index % 10_000_000_000
        ),
        personal_id: format!("P{:09}", rng.range(0, 999_999_999)),
        surname: rng.pick(&SURNAMES).to_string(),
        given_names: rng.pick(&GIVEN_NAMES).to_string(),
        birth_date: date_plus(care, -rng.range(18 * 365, 80 * 365)),
        expiry: date_plus(care, rng.range(30, 4 * 365)),
    }
}

/// Signs `fse` with `pro`'s card over its canonical bytes.
pub fn sign(fse: &mut FseSubmitted, pro: &Professional, registry: &SchemaRegistry) {
    fse.signature = None;
    let message = crate::signatures::canonical_bytes(registry, fse);
    fse.signature = Some(SignatureRec {
        alg: pro.key.alg().as_str().to_string(),
        cert: pro.certificate.id.clone(),
        value: pro.key.sign(&message),
    });
}

/// A good claim `index`: who, what, when.
fn good_claim(
    config: &ClaimConfig,
    world: &World,
    rules: &Rules,
    index: usize,
    dating: Option<Dating>,
) -> (FseSubmitted, usize, Rng) {
    let mut rng = Rng::new(config.seed, (STREAM_CLAIMS << 40) | index as u64);
    let weights: Vec<u32> = CLAIM_MIX.iter().map(|(_, w)| *w).collect();
    let category = CLAIM_MIX[rng.weighted(&weights)].0;
    let span = (world.last_care_date - world.first_care_date)
        .num_days()
        .max(0);
    let drawn = date_plus(world.first_care_date, rng.range(0, span));
    let care = dating.map_or(drawn, |d| d.care);
    let is_visitor = rng.chance(config.visitors_per_mille);
    let beneficiary_index =
        usize::try_from(rng.below(world.beneficiaries.len().max(1) as u64)).unwrap_or(0);
    let rights = world
        .beneficiaries
        .get(beneficiary_index)
        .map(|b| &b.rights);
    // The latest day the claim can reach the insurer: a card revoked by then
    // is not used for a good claim.
    let receipt_by = dating.map_or(date_plus(care, RECEIPT_DELAY_DAYS), |d| d.received);
    let (pro_index, is_declared_gp) =
        professional_for(&mut rng, world, category, rights, care, receipt_by);
    let pro = &world.professionals[pro_index];
    let mut acts = acts_for(&mut rng, rules, pro, care);
    let has_ald = rights.is_some_and(|r| r.ald.iter().any(|p| p.contains(care)));
    if has_ald && !is_visitor && rng.chance(600) {
        for act in &mut acts {
            act.ald_related = true;
        }
    }
    let css = rights.is_some_and(|r| r.css.iter().any(|p| p.contains(care)));
    let tiers_amo = css || rng.chance(tiers_payant_per_mille(category));
    let tiers_amc =
        tiers_amo && rights.is_some_and(|r| r.amc_on(care).is_some()) && rng.chance(700);
    let delay = rng.range(0, RECEIPT_DELAY_DAYS);
    let received = dating.map_or(date_plus(care, delay), |d| d.received);
    let (received_at_millis, received_offset_minutes) = receipt(&mut rng, received);
    let (beneficiary, ehic) = match (is_visitor, rights) {
        (false, Some(r)) => (
            Some(BeneficiaryRec {
                nir: r.nir.clone(),
                birth_date: r.birth_date,
                rank: i32::from(r.rank),
            }),
            None,
        ),
        _ => (None, Some(visitor(&mut rng, world, care, index))),
    };
    let fse = FseSubmitted {
        fse_id: format!("{}-{:09}", pro.billing_number, index % 1_000_000_000),
        received_at_millis,
        received_offset_minutes,
        care_date: care,
        professional: professional_rec(pro),
        beneficiary,
        ehic,
        pathway: pathway_for(&mut rng, category, is_declared_gp),
        tiers_payant: TiersPayantRec {
            amo: tiers_amo,
            amc: tiers_amc,
        },
        acts,
        signature: None,
        // Stamped by the front door (`submit`), never by the sender.
        ingested_at_millis: None,
    };
    let mut fse = fse;
    prescribe(&mut fse, rules, world, index);
    (fse, pro_index, rng)
}

/// A prescription some days (up to 29) before the care.
fn prescription_date(care: NaiveDate, seed: usize) -> NaiveDate {
    date_plus(care, -((seed % 30) as i64))
}

/// The prescriptions of claim `index` dated again from its date of care.
fn redate_prescriptions(fse: &mut FseSubmitted, index: usize) {
    for line in &mut fse.acts {
        if let Some(p) = &mut line.prescription {
            p.date = prescription_date(fse.care_date, index.wrapping_mul(31));
        }
    }
}

/// Synthetic establishments that prescribe (FINESS, Luhn-valid; domain.md 2.4).
const PRESCRIBING_ESTABLISHMENTS: [&str; 2] = ["750000010", "130000011"];

/// The prescription of each prescribed line (the families the rules list):
/// a GP of the world, or now and then an establishment, some days before
/// the care; an ordonnance numérique number on two claims in three; now and
/// then more than the line dispenses (a remainder for a later claim), and a
/// justified non-substitution mention on a princeps in four. Where the
/// rules have foreign ePrescriptions in service on the date of care, about
/// one claim in 50 (one in 5 of an EHIC visitor's) dispenses its listed
/// substances on one instead ([`eprescription`]); one pharmacist's claim in
/// 50 is on a renewable prescription, its next three claims its monthly
/// renewals ([`renewal`]). Drawn from the claim's
/// index, not from its random stream, so every other field of the data set
/// stays what it was.
fn prescribe(fse: &mut FseSubmitted, rules: &Rules, world: &World, index: usize) {
    let category = fse.professional.category;
    let gps: Vec<&Professional> = (world.professionals.iter())
        .filter(|p| p.category == Category::Gp)
        .collect();
    // One prescription per claim covers every line of the same item (two
    // transport legs, two lines of one medicine): it allows their sum.
    let item = |line: &ActLineRec| line.product.clone().unwrap_or_else(|| line.code.clone());
    let mut per_item: std::collections::BTreeMap<String, i32> = std::collections::BTreeMap::new();
    for line in &fse.acts {
        *per_item.entry(item(line)).or_default() += line.quantity;
    }
    for (n, line) in fse.acts.iter_mut().enumerate() {
        let Some(act) = rules.acts.find(&line.code, category) else {
            continue;
        };
        if !rules.acts.prescriptions.covers(act.family) {
            continue;
        }
        // The claim's one prescriber and date (every line shares them).
        let seed = index.wrapping_mul(31);
        let (prescriber_kind, prescriber_id) = match gps.get(seed % gps.len().max(1)) {
            Some(gp) if !seed.is_multiple_of(7) => {
                (PrescriberKind::Rpps, gp.rpps.as_str().to_string())
            }
            _ => (
                PrescriberKind::Finess,
                PRESCRIBING_ESTABLISHMENTS[seed % 2].to_string(),
            ),
        };
        let princeps = (line.product.as_deref())
            .and_then(|cip| rules.acts.products.product(cip))
            .is_some_and(|p| p.kind == crate::rules::ProductKind::Princeps);
        line.prescription = Some(PrescriptionRec {
            prescriber_kind,
            prescriber_id,
            date: prescription_date(fse.care_date, seed),
            number: (!index.is_multiple_of(3)).then(|| format!("ON{index:012}")),
            quantity: Some(
                per_item.get(&item(line)).copied().unwrap_or(line.quantity)
                    + i32::from(index.is_multiple_of(4)),
            ),
            non_substitution: (princeps && (seed + n) % 4 == 1).then_some(NonSubstitution::Mte),
            foreign: None,
            renewals: None,
        });
    }
    if eprescription::drawn(index, fse.ehic.as_ref()) {
        eprescription::dispense(
            &mut fse.acts,
            rules,
            fse.care_date,
            fse.ehic.as_ref(),
            index,
        );
    }
    renewal::make_renewable(fse, rules, index);
}

/// The professional of a claim of `category` on `care`, and whether they
/// are the beneficiary's declared GP.
fn professional_for(
    rng: &mut Rng,
    world: &World,
    category: Category,
    rights: Option<&RightsInput>,
    care: NaiveDate,
    receipt_by: NaiveDate,
) -> (usize, bool) {
    // A beneficiary's declared GP sees most of their GP visits.
    let mut pro_index = *rng.pick(world.of_category(category));
    let mut is_declared_gp = false;
    if category == Category::Gp
        && let Some(gp) = rights.and_then(|r| r.declared_gp_on(care))
        && rng.chance(800)
        && let Some(i) = world
            .of_category(category)
            .iter()
            .find(|&&i| world.professionals[i].rpps.as_str() == gp)
    {
        pro_index = *i;
        is_declared_gp = true;
    }
    // A card revoked by the time the claim reaches the insurer is not used
    // for good claims (the revocation is judged on receipt): its holder
    // bills with the next professional's card of the category.
    if world.professionals[pro_index]
        .revoked_on
        .is_some_and(|revoked| revoked <= receipt_by)
        && let Some(&other) = world
            .of_category(category)
            .iter()
            .find(|&&i| world.professionals[i].revoked_on.is_none())
    {
        pro_index = other;
        is_declared_gp = false;
    }
    (pro_index, is_declared_gp)
}

fn professional_rec(pro: &Professional) -> ProfessionalRec {
    ProfessionalRec {
        rpps: pro.rpps.as_str().to_string(),
        category: pro.category,
        sector: match pro.sector {
            "2" => SectorSymbol::S2,
            "3" => SectorSymbol::S3,
            _ => SectorSymbol::S1,
        },
        optam: pro.optam,
        billing: pro.billing.clone(),
    }
}

/// Claim `index`, signed: good, or bad of a drawn kind.
pub fn claim(
    config: &ClaimConfig,
    world: &World,
    rules: &Rules,
    registry: &SchemaRegistry,
    index: usize,
) -> GeneratedClaim {
    claim_dated(config, world, rules, registry, index, None)
}

/// [`claim`], dated by `date_of` when given (every other draw is the same).
/// A bad kind that moves the dates (a late claim, a revoked or expired card,
/// coverage ended) moves them from the chosen ones.
pub fn claim_dated(
    config: &ClaimConfig,
    world: &World,
    rules: &Rules,
    registry: &SchemaRegistry,
    index: usize,
    date_of: DateOf<'_>,
) -> GeneratedClaim {
    let pros = &world.professionals;
    // A renewal replaces the claim (never when the caller chooses the
    // dates: a month later is not the day chosen).
    if date_of.is_none()
        && let Some((head, months)) = renewal::renewal_of(index)
    {
        let (head_fse, pro_index, mut rng) = good_claim(config, world, rules, head, None);
        let head_good = head == 0 || !rng.chance(config.bad_per_mille);
        let pro = &pros[pro_index];
        if head_good
            && let Some(mut fse) = renewal::renewed(&head_fse, months, index, world.last_care_date)
            && pro
                .revoked_on
                .is_none_or(|r| r > date_plus(fse.care_date, RECEIPT_DELAY_DAYS))
        {
            sign(&mut fse, pro, registry);
            return GeneratedClaim { fse, bad: None };
        }
    }
    let dating = date_of.map(|f| f(index));
    let (mut fse, pro_index, mut rng) = good_claim(config, world, rules, index, dating);
    if index == 0 || !rng.chance(config.bad_per_mille) {
        sign(&mut fse, &pros[pro_index], registry);
        return GeneratedClaim { fse, bad: None };
    }
    let foreign_possible = eprescription::spoilable(&fse.acts, rules, fse.care_date);
    let billing_possible = fse.professional.billing.is_some();
    let kind = BadKind::draw(&mut rng, foreign_possible, billing_possible);
    if kind == BadKind::Duplicate {
        // The professional's software sends an earlier claim again, byte
        // for byte (its signature covers received_at, so nothing changes).
        let earlier = claim_dated(config, world, rules, registry, index - 1, date_of);
        if earlier.bad.is_some() {
            return good_instead(fse, &pros[pro_index], registry);
        }
        return GeneratedClaim {
            fse: earlier.fse,
            bad: Some(kind),
        };
    }
    let bad = Bad {
        world,
        rules,
        index,
        pro_index,
    };
    let Some(signing) = bad.spoil(kind, &mut fse, &mut rng) else {
        return good_instead(fse, &pros[pro_index], registry);
    };
    // A kind that moved the date of care moves the prescriptions with it:
    // the claim is bad for its own reason only.
    redate_prescriptions(&mut fse, index);
    sign(&mut fse, &pros[signing.signer], registry);
    if let Some(tamper) = signing.after_signing {
        tamper(&mut fse);
    }
    if signing.signer != signing.pro_index
        && let Some(s) = &mut fse.signature
    {
        // Signed with another professional's card, and says so.
        s.cert = pros[signing.signer].certificate.id.clone();
    }
    GeneratedClaim {
        fse,
        bad: Some(kind),
    }
}

/// How a bad claim is signed: by whose card, as which professional, and
/// what is changed after signing.
struct Signing {
    signer: usize,
    pro_index: usize,
    after_signing: Option<fn(&mut FseSubmitted)>,
}

/// What spoiling good claim `index` (of the professional `pro_index`) needs.
struct Bad<'w> {
    world: &'w World,
    rules: &'w Rules,
    index: usize,
    pro_index: usize,
}

impl Bad<'_> {
    /// Makes the good claim `fse` bad of `kind` (not a duplicate); `None`
    /// when the kind cannot apply to it.
    fn spoil(&self, kind: BadKind, fse: &mut FseSubmitted, rng: &mut Rng) -> Option<Signing> {
        let signed = Signing {
            signer: self.pro_index,
            pro_index: self.pro_index,
            after_signing: None,
        };
        match kind {
            // Made by `claim` from the claim before.
            BadKind::Duplicate => return None,
            BadKind::UnknownActCode => fse.acts[0].code = "ZZZZ".into(),
            BadKind::ActNotAllowedForCategory => {
                fse.acts[0].code = if fse.professional.category == Category::Nurse {
                    "G"
                } else {
                    "AMI"
                }
                .into();
            }
            BadKind::CareDateAfterReceipt => {
                fse.care_date = date_plus(fse.care_date, 12);
            }
            BadKind::ClaimTimeBarred => {
                // Beyond the longest time-bar: 2 years from a next quarter
                // at most 92 days after the care (art. L.332-1 CSS).
                fse.received_at_millis += 900 * 86_400_000;
            }
            BadKind::BadSignature
            | BadKind::UnknownCertificate
            | BadKind::CertificateOtherProfessional
            | BadKind::CertificateRevoked
            | BadKind::CertificateNotValid => return self.signature(kind, fse, rng, signed),
            BadKind::BadNirKey
            | BadKind::UnknownBeneficiary
            | BadKind::NotCoveredOnCareDate
            | BadKind::ExonerationNotFound => self.beneficiary(kind, fse, rng)?,
            BadKind::EhicExpired | BadKind::EuInstitutionUnknown | BadKind::EhicFrenchCard => {
                self.ehic(kind, fse, rng)
            }
            BadKind::InvalidAmount => fse.acts[0].charged_cents = -rng.range(1, 5000),
            BadKind::EuEprescriptionCountry | BadKind::EuEprescriptionSubstance => {
                eprescription::spoil(
                    kind,
                    &mut fse.acts,
                    self.rules,
                    fse.care_date,
                    fse.ehic.as_ref(),
                    self.index,
                )?
            }
            BadKind::InvalidBillingId | BadKind::BillingCategoryMismatch => {
                let category = fse.professional.category;
                billing::spoil(kind, fse.professional.billing.as_mut()?, category)?
            }
        }
        Some(signed)
    }

    /// A signature that must fail: tampered, of an unknown, another
    /// professional's, a revoked or an expired card.
    fn signature(
        &self,
        kind: BadKind,
        fse: &mut FseSubmitted,
        rng: &mut Rng,
        mut signed: Signing,
    ) -> Option<Signing> {
        let pros = &self.world.professionals;
        match kind {
            BadKind::BadSignature => {
                signed.after_signing = Some(|f| {
                    if let Some(s) = &mut f.signature
                        && let Some(b) = s.value.get_mut(7)
                    {
                        *b ^= 0x40;
                    }
                })
            }
            BadKind::UnknownCertificate => {
                signed.after_signing = Some(|f| {
                    if let Some(s) = &mut f.signature {
                        s.cert = "CPS-UNKNOWN".into();
                    }
                })
            }
            BadKind::CertificateOtherProfessional => {
                signed.signer = (self.pro_index + 1) % pros.len();
            }
            BadKind::CertificateRevoked => {
                let revoked = pros.iter().position(|p| {
                    p.category == fse.professional.category && p.revoked_on.is_some()
                })?;
                signed.pro_index = revoked;
                signed.signer = revoked;
                let p = &pros[revoked];
                fse.professional.rpps = p.rpps.as_str().to_string();
                fse.professional.billing = p.billing.clone();
                fse.fse_id = format!("{}-{:09}", p.billing_number, self.index % 1_000_000_000);
                let on = p.revoked_on.unwrap_or(fse.care_date);
                let shift = (on - fse.care_date).num_days() + rng.range(0, 20);
                fse.care_date = date_plus(fse.care_date, shift);
                fse.received_at_millis += shift * 86_400_000;
            }
            _ => {
                let not_after = pros[self.pro_index].certificate.not_after;
                let after = (not_after - fse.care_date).num_days() + 5;
                fse.care_date = date_plus(fse.care_date, after);
                fse.received_at_millis += after * 86_400_000;
            }
        }
        Some(signed)
    }

    /// A beneficiary the rights refuse: a bad NIR key, a stranger, one whose
    /// coverage ended, one without the ALD a line claims. `None` for a
    /// visitor's claim (or when the world has no such beneficiary).
    fn beneficiary(&self, kind: BadKind, fse: &mut FseSubmitted, rng: &mut Rng) -> Option<()> {
        let world = self.world;
        // Foreign ePrescriptions alone are dispensed to a patient without
        // rights, with no mandatory share: such a claim is not refused.
        if matches!(
            kind,
            BadKind::UnknownBeneficiary | BadKind::NotCoveredOnCareDate
        ) && eprescription::only_foreign(&fse.acts)
        {
            return None;
        }
        match kind {
            BadKind::BadNirKey => {
                let b = fse.beneficiary.as_mut()?;
                let key: u32 = b.nir.get(13..).and_then(|k| k.parse().ok()).unwrap_or(1);
                let body = b.nir.get(..13).unwrap_or_default().to_string();
                b.nir = format!("{body}{:02}", key % 97 + 1);
            }
            BadKind::UnknownBeneficiary => {
                let b = fse.beneficiary.as_mut()?;
                b.nir = super::world::stranger_nir(rng, b.birth_date);
            }
            BadKind::NotCoveredOnCareDate => {
                let ended = world.beneficiaries.iter().find_map(|b| {
                    let end = b.rights.coverage.first()?.to?;
                    (b.rights.ame.is_empty()).then_some((b, end))
                });
                let ((b, end), rec) = ended.zip(fse.beneficiary.as_mut())?;
                rec.nir = b.rights.nir.clone();
                rec.birth_date = b.rights.birth_date;
                let shift = (end - fse.care_date).num_days() + rng.range(1, 30);
                fse.care_date = date_plus(fse.care_date, shift);
                fse.received_at_millis += shift * 86_400_000;
                for act in &mut fse.acts {
                    act.ald_related = false;
                }
            }
            _ => {
                let without_ald = world.beneficiaries.iter().find(|b| {
                    b.rights.ald.is_empty()
                        && b.rights.coverage.first().is_some_and(|c| c.to.is_none())
                });
                let (b, rec) = without_ald.zip(fse.beneficiary.as_mut())?;
                rec.nir = b.rights.nir.clone();
                rec.birth_date = b.rights.birth_date;
                for act in &mut fse.acts {
                    act.ald_related = true;
                }
            }
        }
        Some(())
    }

    /// A visitor's card routing refuses: expired, of an unknown institution,
    /// or French. A domestic claim becomes a visitor's.
    fn ehic(&self, kind: BadKind, fse: &mut FseSubmitted, rng: &mut Rng) {
        let mut card = fse
            .ehic
            .take()
            .unwrap_or_else(|| visitor(rng, self.world, fse.care_date, self.index));
        match kind {
            BadKind::EhicExpired => card.expiry = date_plus(fse.care_date, -rng.range(1, 400)),
            BadKind::EuInstitutionUnknown => card.institution_id = "999999999".into(),
            _ => card.country = "FR".into(),
        }
        fse.beneficiary = None;
        fse.ehic = Some(card);
        for act in &mut fse.acts {
            act.ald_related = false;
        }
    }
}

/// When a bad kind cannot apply to this claim, the claim stays good.
fn good_instead(
    mut fse: FseSubmitted,
    pro: &Professional,
    registry: &SchemaRegistry,
) -> GeneratedClaim {
    sign(&mut fse, pro, registry);
    GeneratedClaim { fse, bad: None }
}
