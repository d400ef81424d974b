//! The four stages run in process, in order, with no bus: `clearing adjudicate`.
//!
//! Same pure stage functions as the streaming runtime; each stage has its own
//! store, and each claim's writes are applied before the next claim, as one
//! batch of one would be by the runtime.

use crate::clock::simulated_receipt;
use crate::domain::json;
use crate::domain::rights::RightsInput;
use crate::domain::{Decision, FseInput};
use crate::pseudonym::PseudonymKey;
use crate::refdata::{EuInstitutionInput, InstitutionDirectory, RefView, SignatureVerifier};
use crate::rules::Rules;
use crate::stages::{Context, Outcome, entitlement, reimbursement, routing, validation};
use crate::state::{MemStore, StateStore, StateTxn, StoreError};

/// Bound on one JSON line: an FSE of the maximum line count fits far inside.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// The fields of an FSE that must be JSON objects (arrays: their items).
pub const FSE_OBJECTS: &[&str] = &[
    "professional",
    "beneficiary",
    "ehic",
    "tiers_payant",
    "signature",
    "acts[]",
];

/// The fields of a rights record whose items must be JSON objects.
pub const RIGHTS_OBJECTS: &[&str] = &["coverage[]", "ald[]", "css[]", "ame[]", "maternity[]"];

/// A line that cannot become a decision at all.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("line is {0} bytes; at most {MAX_LINE_BYTES}")]
    TooLong(usize),
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One store per stage, as in the pipeline.
#[derive(Default, Clone)]
struct Stores {
    validation: MemStore,
    entitlement: MemStore,
    routing: MemStore,
    reimbursement: MemStore,
}

/// Cloning gives an independent adjudicator with the same reference data and
/// state so far (a loaded world reused for many separate runs: fuzzing, tests).
#[derive(Clone)]
pub struct Adjudicator {
    rules: Rules,
    pseudonyms: PseudonymKey,
    verifier: std::sync::Arc<dyn SignatureVerifier>,
    institutions: InstitutionDirectory,
    stores: Stores,
}

fn parse_object(line: &str) -> Result<json::Document, LineError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(LineError::TooLong(line.len()));
    }
    // Syntax errors carry a position, never the text.
    let document = json::parse(line).map_err(|e| LineError::NotJson(e.to_string()))?;
    if !document.value().is_object() {
        return Err(LineError::NotJson("expected an object".to_string()));
    }
    Ok(document)
}

impl Adjudicator {
    pub fn new(
        rules: Rules,
        pseudonyms: PseudonymKey,
        verifier: Box<dyn SignatureVerifier>,
    ) -> Adjudicator {
        Adjudicator {
            rules,
            pseudonyms,
            verifier: verifier.into(),
            institutions: InstitutionDirectory::default(),
            stores: Stores::default(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Loads one rights record (JSON line of `ref.rights`).
    pub fn load_rights_line(&mut self, line: &str) -> Result<(), LineError> {
        let document = parse_object(line)?;
        let input: RightsInput = json::from_document(&document, RIGHTS_OBJECTS)
            .map_err(|e| LineError::Invalid(e.to_string()))?;
        let mut txn = StateTxn::new(&self.stores.entitlement);
        entitlement::apply_rights(input, &mut txn, &self.pseudonyms)
            .map_err(|e| LineError::Invalid(e.to_string()))?;
        let writes = txn.into_writes();
        self.stores.entitlement.apply(&writes)?;
        Ok(())
    }

    /// Loads one EU institution (JSON line of `ref.eu.institutions`).
    pub fn load_institution_line(&mut self, line: &str) -> Result<(), LineError> {
        let document = parse_object(line)?;
        let input: EuInstitutionInput =
            json::from_document(&document, &[]).map_err(|e| LineError::Invalid(e.to_string()))?;
        self.institutions
            .upsert(input)
            .map_err(|e| LineError::Invalid(e.to_string()))
    }

    /// Decides one FSE JSON line. A JSON object of the wrong shape is a coded
    /// `malformed` rejection; only a line that is not a JSON object at all is
    /// an error.
    pub fn decide_line(&mut self, line: &str) -> Result<Decision, LineError> {
        let document = parse_object(line)?;
        let input: FseInput = match json::from_document(&document, FSE_OBJECTS) {
            Ok(input) => input,
            Err(e) => {
                // An id given twice is no id: each reader could take another.
                let fse_id = document.unique("fse_id").and_then(|v| v.as_str());
                let mut decision = validation::malformed(fse_id, &e, &self.rules);
                decision.signature_check = self.verifier.unchecked_outcome();
                return Ok(decision);
            }
        };
        Ok(self.decide(&input)?)
    }

    /// Runs the four stages over one FSE.
    pub fn decide(&mut self, input: &FseInput) -> Result<Decision, StoreError> {
        let refs = RefView {
            signatures: self.verifier.as_ref(),
            institutions: &self.institutions,
        };
        let ctx = Context {
            rules: &self.rules,
            refs: &refs,
            pseudonyms: &self.pseudonyms,
        };
        let stores = &self.stores;
        // No front door here: each claim is judged as received at its
        // `received_at` (docs/architecture.md, "The insurer's clock").
        let receipt = simulated_receipt(input);
        let validated = match run(&stores.validation, |txn| {
            validation::validate(input, receipt, txn, &ctx)
        })? {
            Outcome::Pass(v) => v,
            Outcome::Reject(decision) => return Ok(*decision),
        };
        let entitled = match run(&stores.entitlement, |txn| {
            entitlement::entitle(validated, txn, &ctx)
        })? {
            Outcome::Pass(e) => e,
            Outcome::Reject(decision) => return Ok(*decision),
        };
        let routed = match run(&stores.routing, |txn| routing::route(entitled, txn, &ctx))? {
            Outcome::Pass(r) => r,
            Outcome::Reject(decision) => return Ok(*decision),
        };
        match run(&stores.reimbursement, |txn| {
            reimbursement::reimburse(routed, txn, &ctx)
        })? {
            Outcome::Pass(decision) => Ok(decision),
            Outcome::Reject(decision) => Ok(*decision),
        }
    }
}

/// Runs one stage over an overlay of its store and applies the writes.
fn run<T>(
    store: &MemStore,
    stage: impl FnOnce(&mut StateTxn<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut txn = StateTxn::new(store);
    let out = stage(&mut txn)?;
    let writes = txn.into_writes();
    store.apply(&writes)?;
    Ok(out)
}
