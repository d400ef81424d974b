//! The events on the wire, one struct per Avro record, fields in schema order.
//!
//! These are transport shapes: amounts in cents (`*_cents`), dates as
//! `NaiveDate` (Avro `date`), instants as milliseconds (Avro
//! `timestamp-millis`). Conversions to and from the domain live in
//! `events::convert`; the binary codec in `events::codec`; the schemas in
//! `schemas/*.avsc`.

use chrono::NaiveDate;

pub use crate::domain::{Category, Complement, Pathway, Route, SignatureCheck, Stage, Status};

/// Avro enum `Sector`: symbols `S1`, `S2`, `S3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectorSymbol {
    S1,
    S2,
    S3,
}

/// Avro enum `LocalRegime`: symbol `ALSACE_MOSELLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalRegimeSymbol {
    AlsaceMoselle,
}

/// Where an output came from: its input's position (design.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Index of this output among the outputs of that input.
    pub ordinal: i32,
}

/// The offset of a reference topic partition a decision saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Common header of every event a stage emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// Derived: hash(input event id, stage, ordinal), hex.
    pub event_id: String,
    pub causation_id: Option<String>,
    /// The FSE id.
    pub correlation_id: String,
    /// The insurer's clock for the claim, in milliseconds since the epoch:
    /// the FSE's ingest stamp, or its `received_at` on records without one.
    /// Never `now()`.
    pub event_time_millis: i64,
    pub source: Option<SourceRef>,
    pub ref_watermark: Vec<RefOffset>,
    pub rules_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfessionalRec {
    /// The signer, whoever bills.
    pub rpps: String,
    pub category: Category,
    pub sector: SectorSymbol,
    pub optam: bool,
    /// The number the care is billed under, when not the RPPS (since
    /// 2026-12-06; the versions of the FSE's topics before it lack it).
    pub billing: Option<BillingRec>,
}

/// Avro enum `BillingKind`: what a billing identifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingKind {
    Am,
    Finess,
}

/// An executant's billing identifier: an AM number or a FINESS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingRec {
    pub kind: BillingKind,
    pub id: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct BeneficiaryRec {
    pub nir: String,
    pub birth_date: NaiveDate,
    pub rank: i32,
}

impl std::fmt::Debug for BeneficiaryRec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeneficiaryRec(<redacted>)")
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct EhicRec {
    pub country: String,
    pub institution_id: String,
    pub card_id: String,
    pub personal_id: String,
    pub surname: String,
    pub given_names: String,
    pub birth_date: NaiveDate,
    pub expiry: NaiveDate,
}

impl std::fmt::Debug for EhicRec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EhicRec({}, <redacted>)", self.country)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TiersPayantRec {
    pub amo: bool,
    pub amc: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActLineRec {
    pub code: String,
    pub quantity: i32,
    pub coefficient_hundredths: i32,
    pub charged_cents: i64,
    pub complement: Option<Complement>,
    pub ald_related: bool,
    pub base_cents: Option<i64>,
    /// CIP13.
    pub product: Option<String>,
    pub unit_price_cents: Option<i64>,
    pub leg: Option<i32>,
    /// `None` on lines without one and on every record written before
    /// 2026-12-06 (their schemas lack the field: events/codec/records.rs).
    pub prescription: Option<PrescriptionRec>,
}

/// Avro enum `PrescriberKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrescriberKind {
    Rpps,
    Finess,
    Am,
}

/// Avro enum `NonSubstitution`: the justified "non substituable" mentions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonSubstitution {
    Mte,
    Efg,
    Cif,
}

/// The prescription behind a prescribed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrescriptionRec {
    pub prescriber_kind: PrescriberKind,
    pub prescriber_id: String,
    pub date: NaiveDate,
    /// Number of an ordonnance numérique.
    pub number: Option<String>,
    /// What the prescription allows for the line's item over all dispensings.
    pub quantity: Option<i32>,
    pub non_substitution: Option<NonSubstitution>,
    /// A foreign ePrescription (EU/EEA, MyHealth@EU); `None` for a French
    /// one and on every record written before this field (2026-12-06).
    pub foreign: Option<ForeignPrescriptionRec>,
    /// How many times it may be renewed ("à renouveler N fois"); `None` for
    /// none and on every record written before this field (2026-12-07).
    pub renewals: Option<i32>,
}

/// A foreign ePrescription: issuing country (ISO 3166-1 alpha-2), its id
/// there and the prescribed substance (ATC code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignPrescriptionRec {
    pub country: String,
    pub id: String,
    pub atc: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRec {
    pub alg: String,
    pub cert: String,
    pub value: Vec<u8>,
}

/// `fse.submitted`: the care sheet as the professional's software sends it,
/// and the insurer's receipt stamp. Signed over its *signed form*: the
/// fields up to `signature`, encoded with `signature: null` under
/// `fse.submitted.v1` (docs/signatures.md), so the stamp, added after the
/// signature, is outside the signed bytes. `fse.validated` and `fse.entitled`
/// carry the FSE in that signed form (their header's `event_time_millis`
/// carries the stamp on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FseSubmitted {
    pub fse_id: String,
    pub received_at_millis: i64,
    /// The offset `received_at` was stamped with, in minutes east of UTC.
    pub received_offset_minutes: i32,
    pub care_date: NaiveDate,
    pub professional: ProfessionalRec,
    pub beneficiary: Option<BeneficiaryRec>,
    pub ehic: Option<EhicRec>,
    pub pathway: Option<Pathway>,
    pub tiers_payant: TiersPayantRec,
    pub acts: Vec<ActLineRec>,
    pub signature: Option<SignatureRec>,
    /// When the insurer's front door received it (milliseconds since the
    /// epoch): the insurer's clock, never the sender's. `None` on records
    /// written before 2026-12-05 (docs/architecture.md, "The insurer's clock").
    pub ingested_at_millis: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonRec {
    pub code: String,
    pub stage: Stage,
    pub message: String,
    pub field: Option<String>,
    pub line: Option<i32>,
}

/// `fse.validated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FseValidated {
    pub header: EventHeader,
    pub fse: FseSubmitted,
    pub beneficiary_key: String,
    pub signature_check: SignatureCheck,
    pub warnings: Vec<ReasonRec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementRec {
    pub regime: Option<String>,
    pub fund: Option<String>,
    pub ald: bool,
    pub css: bool,
    pub ame: bool,
    pub maternity: bool,
    pub minor: bool,
    pub pathway_free: bool,
    pub local_regime: Option<LocalRegimeSymbol>,
    pub declared_gp: Option<String>,
    pub amc: Option<String>,
    pub rights_digest: Option<String>,
}

/// `fse.entitled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FseEntitled {
    pub header: EventHeader,
    pub fse: FseSubmitted,
    pub beneficiary_key: String,
    pub signature_check: SignatureCheck,
    pub warnings: Vec<ReasonRec>,
    pub entitlement: EntitlementRec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRec {
    pub route: Route,
    /// EU route: the card's state (EU convention code) and institution.
    pub country: Option<String>,
    pub institution_id: Option<String>,
}

/// `fse.routed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FseRouted {
    pub header: EventHeader,
    pub fse: FseSubmitted,
    pub beneficiary_key: String,
    pub signature_check: SignatureCheck,
    pub warnings: Vec<ReasonRec>,
    pub entitlement: EntitlementRec,
    pub routing: RoutingRec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionLineRec {
    pub code: String,
    pub charged_cents: i64,
    pub base_cents: i64,
    pub rate_percent: i32,
    pub amo_cents: i64,
    pub css_cents: i64,
    pub participation_cents: i64,
    pub franchise_cents: i64,
    pub tariff: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRec {
    pub fse_id: Option<String>,
    pub status: Status,
    pub route: Option<Route>,
    pub reasons: Vec<ReasonRec>,
    pub warnings: Vec<ReasonRec>,
    pub lines: Vec<DecisionLineRec>,
    pub amo_cents: i64,
    pub css_cents: i64,
    pub participation_cents: i64,
    pub franchise_cents: i64,
    pub flat_fee_cents: i64,
    pub deferred_cents: i64,
    pub imputed_cents: i64,
    pub patient_cents: i64,
    pub paid_to_professional_cents: i64,
    pub paid_to_insured_cents: i64,
    pub rules_version: String,
    pub signature_check: Option<SignatureCheck>,
    pub beneficiary_key: Option<String>,
    pub care_date: Option<NaiveDate>,
    pub reimbursement_date: Option<NaiveDate>,
}

/// What the outbound flows need about a claim besides its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRefRec {
    /// As sent (a rejected FSE's RPPS may not check).
    pub rpps: String,
    /// Date of receipt (date of `received_at` in its offset).
    pub received_on: NaiveDate,
    pub tiers_payant: TiersPayantRec,
    pub amc: Option<String>,
    pub eu_country: Option<String>,
    pub eu_institution_id: Option<String>,
    /// The billing identifier the professional's share is paid to; `None`:
    /// the RPPS (and every record written before 2026-12-06).
    pub payee: Option<String>,
}

/// `fse.decided` (status paid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FseDecided {
    pub header: EventHeader,
    pub decision: DecisionRec,
    /// `None` in events written before the outbound flows existed.
    pub claim: Option<ClaimRefRec>,
}

/// `fse.rejected` (status rejected, from any stage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FseRejected {
    pub header: EventHeader,
    pub decision: DecisionRec,
    pub claim: Option<ClaimRefRec>,
}

/// Avro enum `PayeeKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PayeeKind {
    Professional,
    Insured,
}

/// `payments.orders`: one order per payee and value date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOrder {
    pub header: EventHeader,
    pub order_id: String,
    pub payee_kind: PayeeKind,
    /// For a professional, the billing identifier the FSEs name (an AM
    /// number or a FINESS) or else the RPPS; for an insured, the
    /// pseudonymous key.
    pub payee: String,
    pub value_date: NaiveDate,
    pub amount_cents: i64,
    pub imputed_cents: i64,
    pub fse_ids: Vec<String>,
    /// Tiers-payant guarantee: the date by which payment is due (7 working days).
    pub guarantee_due: Option<NaiveDate>,
    pub late_penalty_cents: i64,
    /// The guarantee of each tiers-payant FSE the order pays.
    pub guarantees: Vec<GuaranteeRec>,
}

/// The 7-working-day payment guarantee of one tiers-payant FSE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuaranteeRec {
    pub fse_id: String,
    pub received_on: NaiveDate,
    pub due: NaiveDate,
    /// The working day after receipt on which the value date falls.
    pub paid_working_day: i32,
    pub late: bool,
    pub penalty_cents: i64,
}

/// Avro enum `ReturnKind`: ARL positive/negative per batch, RSP per FSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnKind {
    ArlPositive,
    ArlNegative,
    RspPayment,
    RspRejection,
}

/// `returns.professional`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfessionalReturn {
    pub header: EventHeader,
    pub kind: ReturnKind,
    pub rpps: String,
    pub batch_id: Option<String>,
    pub fse_id: Option<String>,
    pub amount_cents: Option<i64>,
    pub reasons: Vec<ReasonRec>,
    /// ARL: how many FSEs the batch holds.
    pub fse_count: Option<i32>,
    /// RSP payment: the billing identifier paid, when not the RPPS (since
    /// 2026-12-06).
    pub payee: Option<String>,
}

/// An FSE's final outcome, as the ledger accumulations need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerOutcomeRec {
    pub fse_id: Option<String>,
    pub beneficiary_key: Option<String>,
    pub rpps: String,
    pub received_on: NaiveDate,
    pub status: Status,
    pub validation_rejected: bool,
    pub reason_codes: Vec<String>,
    pub tiers_payant_amo: bool,
    pub amo_cents: i64,
    pub paid_to_professional_cents: i64,
    pub paid_to_insured_cents: i64,
    pub imputed_cents: i64,
    pub eu_country: Option<String>,
    pub eu_institution_id: Option<String>,
    /// The billing identifier paid, when not the RPPS (since 2026-12-06).
    pub payee: Option<String>,
}

/// `outbound.ledger`: an FSE outcome to accumulate, or a close event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub header: EventHeader,
    pub close_on: Option<NaiveDate>,
    pub outcome: Option<LedgerOutcomeRec>,
}

/// `eu.claims`: a claim on actual expenditure to a foreign institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EuClaim {
    pub header: EventHeader,
    pub claim_id: String,
    pub country: String,
    pub institution_id: String,
    /// `YYYY-H1` or `YYYY-H2`: the half-year of booking.
    pub half_year: String,
    pub introduced_on: NaiveDate,
    pub introduction_deadline: NaiveDate,
    pub payment_due: NaiveDate,
    pub dispute_deadline: NaiveDate,
    pub receivable: bool,
    pub amount_cents: i64,
    pub currency: String,
    pub fse_ids: Vec<String>,
}

/// `amc.claims`: the remainder forwarded to a complementary insurer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmcClaim {
    pub header: EventHeader,
    pub amc: String,
    pub fse_id: String,
    pub beneficiary_key: String,
    pub ticket_cents: i64,
    pub depassement_cents: i64,
    pub amount_cents: i64,
}

/// `audit.checkpoints`: a stage partition's hash chain at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    pub stage: String,
    pub partition: i32,
    pub input_offset_from: i64,
    pub input_offset_to: i64,
    pub output_count: i64,
    /// SHA-256 chain hash: Avro `fixed` of 32 bytes.
    pub chain_hash: [u8; 32],
    pub rules_version: String,
    pub ref_watermark: Vec<RefOffset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodRec {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageRec {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub regime: String,
    pub fund: String,
}

/// `ref.rights` (keyed by the pseudonymous key; carries the NIR it is derived from).
#[derive(Clone, PartialEq, Eq)]
pub struct RightsRecord {
    pub nir: String,
    pub birth_date: NaiveDate,
    pub rank: i32,
    pub coverage: Vec<CoverageRec>,
    pub ald: Vec<PeriodRec>,
    pub css: Vec<PeriodRec>,
    pub ame: Vec<PeriodRec>,
    pub maternity: Vec<PeriodRec>,
    pub local_regime: Option<LocalRegimeSymbol>,
    pub declared_gp: Option<String>,
    pub amc: Option<String>,
    /// Dated values (added after `ref.rights.v0`, default `[]`): on a date
    /// inside one of these periods its value holds, else the scalar above.
    pub declared_gp_periods: Vec<GpPeriodRec>,
    pub local_regime_periods: Vec<LocalRegimePeriodRec>,
    pub amc_periods: Vec<AmcPeriodRec>,
}

/// Avro record `GpPeriod`: the declared GP over an inclusive period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpPeriodRec {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub rpps: String,
}

/// Avro record `LocalRegimePeriod`: the local regime over an inclusive period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRegimePeriodRec {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub regime: LocalRegimeSymbol,
}

/// Avro record `AmcPeriod`: the complementary insurer over an inclusive period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmcPeriodRec {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub amc: String,
}

impl std::fmt::Debug for RightsRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RightsRecord(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRec {
    pub id: String,
    pub rpps: String,
    /// `rsa-pkcs1-sha256` or `ecdsa-p256-sha256`.
    pub alg: String,
    /// SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
    pub issuer: String,
    pub not_before: NaiveDate,
    pub not_after: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRec {
    pub cert: String,
    pub revoked_on: NaiveDate,
}

/// `ref.pki`: a union of the two records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiEvent {
    Certificate(CertificateRec),
    Revocation(RevocationRec),
}

/// `ref.eu.institutions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EuInstitutionRecord {
    pub country: String,
    pub institution_id: String,
    pub name: String,
    pub acronym: Option<String>,
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
}

/// `dlq.<stage>`: bytes that could not be decoded or applied, with the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub stage: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub error: String,
    pub raw: Vec<u8>,
    /// Set when `raw` is only the input's beginning (the letter had to fit
    /// the bus's record limit).
    pub cut: Option<RawCutRec>,
}

/// The whole input of a dead letter whose `raw` bytes were cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCutRec {
    pub length: i64,
    pub sha256: [u8; 32],
}
