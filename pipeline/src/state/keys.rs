//! Key layouts of each stage's state. Every key starts with a kind and the
//! beneficiary's pseudonymous key, so a beneficiary's state is a contiguous
//! range and never mixes with another's.

use chrono::NaiveDate;

use crate::pseudonym::BeneficiaryKey;

fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("/").into_bytes()
}

/// Validation: an FSE id already received for this beneficiary.
pub fn seen_fse(beneficiary: &BeneficiaryKey, fse_id: &str) -> Vec<u8> {
    key(&["dup", beneficiary.as_str(), fse_id])
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

/// Reimbursement: deductions owed by the beneficiary, not yet taken (cents).
pub fn deferred_balance(beneficiary: &BeneficiaryKey) -> Vec<u8> {
    key(&["def", beneficiary.as_str()])
}
