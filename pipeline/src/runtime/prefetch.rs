//! Signatures of a batch verified ahead of the stage, on every core.
//!
//! Verification is the floor of validation's cost (docs/performance.md) and
//! the stage runs a partition's inputs one after the other. Verification is
//! pure — same FSE, same PKI, same answer — and the PKI is fixed for the
//! whole batch (reference data is applied before it), so the batch's
//! signatures can be checked in parallel first; the stage then runs in
//! order and finds each answer ready. An FSE the prefetch did not cover
//! (one that does not decode or parse) is checked by the wrapped verifier
//! as before: the decisions are the same either way.

use std::collections::HashMap;

use crate::bus::Record;
use crate::domain::{Fse, FseInput, Reason, SignatureCheck};
use crate::events::convert;
use crate::events::model::FseSubmitted;
use crate::events::registry::SchemaRegistry;
use crate::refdata::SignatureVerifier;
use crate::stages::validation;

/// Below this many inputs a second thread costs more than it saves.
const PARALLEL_FROM: usize = 32;

type Answer = Result<SignatureCheck, Reason>;

/// A verifier whose answers for one batch were computed ahead.
pub struct Prefetched<'a> {
    inner: &'a dyn SignatureVerifier,
    /// Looked up only, never iterated: its order cannot reach a decision.
    answers: HashMap<FseInput, Answer>,
}

impl<'a> Prefetched<'a> {
    /// Verifies the signatures of the `fse.submitted` records on up to
    /// `threads` threads (the caller's included).
    pub fn verify(
        inner: &'a dyn SignatureVerifier,
        registry: &SchemaRegistry,
        records: &[Record],
        threads: usize,
    ) -> Prefetched<'a> {
        let threads = threads.clamp(1, records.len().div_ceil(PARALLEL_FROM).max(1));
        let chunk = records.len().div_ceil(threads).max(1);
        let answers = std::thread::scope(|scope| {
            let mut chunks = records.chunks(chunk);
            let first = chunks.next().unwrap_or(&[]);
            let others: Vec<_> = chunks
                .map(|part| scope.spawn(move || check_all(inner, registry, part)))
                .collect();
            let mut answers: HashMap<FseInput, Answer> = check_all(inner, registry, first);
            for handle in others {
                // A panicking verifier leaves its part to the sequential path.
                if let Ok(part) = handle.join() {
                    answers.extend(part);
                }
            }
            answers
        });
        Prefetched { inner, answers }
    }

    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

/// The FSE as the validation stage reads it, and its checked form when the
/// stage would reach the signature step with it.
fn parse(registry: &SchemaRegistry, record: &Record) -> Option<(FseInput, Fse)> {
    let submitted: FseSubmitted = registry.decode_single(&record.value).ok()?;
    let input = convert::input_from_submitted(&submitted);
    let fse = validation::reparse(&input)?;
    Some((input, fse))
}

fn check_all(
    inner: &dyn SignatureVerifier,
    registry: &SchemaRegistry,
    records: &[Record],
) -> HashMap<FseInput, Answer> {
    records
        .iter()
        .filter_map(|record| parse(registry, record))
        .map(|(input, fse)| {
            let answer = inner.check(&input, &fse);
            (input, answer)
        })
        .collect()
}

impl SignatureVerifier for Prefetched<'_> {
    fn check(&self, submission: &FseInput, fse: &Fse) -> Answer {
        match self.answers.get(submission) {
            Some(answer) => answer.clone(),
            None => self.inner.check(submission, fse),
        }
    }

    fn unchecked_outcome(&self) -> Option<SignatureCheck> {
        self.inner.unchecked_outcome()
    }
}
