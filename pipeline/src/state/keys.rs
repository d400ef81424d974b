//! Key layouts of each stage's state. Every key starts with a kind and the
//! beneficiary's pseudonymous key, so a beneficiary's state is a contiguous
//! range and never mixes with another's.

use chrono::NaiveDate;

use crate::pseudonym::BeneficiaryKey;

fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("/").into_bytes()
}

/// Validation: an FSE id already received for this beneficiary (rule sets
/// before 2026-12-07, and stores they wrote).
pub fn seen_fse(beneficiary: &BeneficiaryKey, fse_id: &str) -> Vec<u8> {
    key(&["dup", beneficiary.as_str(), fse_id])
}

/// Validation: an FSE id already received for this beneficiary from this
/// professional (RPPS). Never equal to a [`seen_fse`] key: its third part
/// is an RPPS (11 digits), theirs an FSE id (with a '-').
pub fn seen_fse_of(beneficiary: &BeneficiaryKey, rpps: &str, fse_id: &str) -> Vec<u8> {
    key(&["dup", beneficiary.as_str(), rpps, fse_id])
}

/// Entitlement: the beneficiary's rights record.
pub fn rights(beneficiary: &BeneficiaryKey) -> Vec<u8> {
    key(&["rights", beneficiary.as_str()])
}

/// Reimbursement: participation taken in a reimbursement year (cents).
pub fn participation_year(beneficiary: &BeneficiaryKey, year: i32) -> Vec<u8> {
    key(&["pfy", beneficiary.as_str(), &year.to_string()])
}

/// Reimbursement: franchises taken in a reimbursement year (cents).
pub fn franchise_year(beneficiary: &BeneficiaryKey, year: i32) -> Vec<u8> {
    key(&["fry", beneficiary.as_str(), &year.to_string()])
}

/// Reimbursement: participation-bearing acts by one professional on a day of care (count).
pub fn participation_day(beneficiary: &BeneficiaryKey, care: NaiveDate, rpps: &str) -> Vec<u8> {
    key(&["pfd", beneficiary.as_str(), &care.to_string(), rpps])
}

/// Reimbursement: auxiliary-act franchises by one professional on a day of care (cents).
pub fn auxiliary_franchise_day(
    beneficiary: &BeneficiaryKey,
    care: NaiveDate,
    rpps: &str,
) -> Vec<u8> {
    key(&["fad", beneficiary.as_str(), &care.to_string(), rpps])
}

/// Reimbursement: transport franchises on a day of care (cents).
pub fn transport_franchise_day(beneficiary: &BeneficiaryKey, care: NaiveDate) -> Vec<u8> {
    key(&["ftd", beneficiary.as_str(), &care.to_string()])
}

/// Reimbursement: quantity of one item (a CIP13, else an act code) paid so
/// far on one prescription (its identity: `Prescription::identity`).
pub fn dispensed(beneficiary: &BeneficiaryKey, prescription: &str, item: &str) -> Vec<u8> {
    key(&["rx", beneficiary.as_str(), prescription, item])
}

/// Reimbursement: number of paid dispensings of a renewable prescription
/// (its identity). `rxd`, not `rx`: a prescription number may hold a `/`.
pub fn dispensings(beneficiary: &BeneficiaryKey, prescription: &str) -> Vec<u8> {
    key(&["rxd", beneficiary.as_str(), prescription])
}

/// Reimbursement: deductions owed by the beneficiary, not yet taken (cents).
pub fn deferred_balance(beneficiary: &BeneficiaryKey) -> Vec<u8> {
    key(&["def", beneficiary.as_str()])
}

/// The runtime's own keys in a stage partition's state. A leading NUL (or,
/// for the duplicate filter's marks, SOH; for the expiry index and clock,
/// STX: [`super::expiry`]) never starts a stage's key (those start with a
/// kind, above), so the two never meet.
pub mod reserved {
    /// The position of the next input to apply.
    pub const APPLIED: &[u8] = b"\0applied";
    /// The bus offset to read next, kept only where it differs from
    /// [`APPLIED`]: on a topic whose offsets have gaps (Kafka's transaction
    /// markers take offsets).
    pub const APPLIED_RAW: &[u8] = b"\0applied_raw";
    /// The highest upstream source offset processed (the downstream
    /// duplicate filter of single-producer topics).
    pub const UPSTREAM: &[u8] = b"\0upstream";
    /// The hash chain over the partition's outputs.
    pub const CHAIN: &[u8] = b"\0chain";
    /// Prefix: each output topic's end at the last commit (restore scans from it).
    pub const OUT_END: &str = "\0out_end/";
    /// Prefix: how far a reference topic is applied (`ref.rights`).
    pub const REF_POSITION: &str = "\0ref/";
    /// Local only (never in the changelog): how far the store has applied
    /// its changelog, so a stale store catches up from there.
    pub const CHANGELOG_END: &[u8] = b"\0changelog_end";
    /// The changelog record that ends a batch's writes (a record key of the
    /// changelog, never a state key). The catch-up applies a batch only once
    /// it has read its marker, so a process killed while writing a batch's
    /// changelog leaves nothing half-applied.
    pub const CHANGELOG_COMMIT: &[u8] = b"\0commit";
}

/// The duplicate filter's mark for a topic several stages write: one per
/// source topic.
pub fn upstream_mark(source_topic: &str) -> Vec<u8> {
    format!("\u{1}upstream/{source_topic}").into_bytes()
}
