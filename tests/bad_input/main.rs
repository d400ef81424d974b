//! The bad-input catalogue: every class of bad input, through the same
//! in-process chain `clearing adjudicate` runs (`Adjudicator::decide_line`,
//! `load_rights_line`, `load_institution_line`).
//!
//! Each case asserts the exact outcome: `Err(LineError::..)` only for a line
//! that is not a JSON object at all (or is too long), otherwise a rejected
//! `Decision` with the exact reason codes and fields. The cases are tables
//! run by one driver ([`check::check`]), which names a failing case and
//! checks that no reason or warning echoes personal data (NIR, EHIC card
//! number, personal id, names). A property test finishes: random mutations
//! of valid claims never panic and never produce a decision that breaks its
//! invariants.

#[path = "../common/mod.rs"]
mod common;

mod check;
mod claims_and_rights;
mod fields;
mod fixtures;
mod keys;
mod lines;
mod reference;
mod robustness;
