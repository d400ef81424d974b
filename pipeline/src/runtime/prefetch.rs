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
use crate::clock::Receipt;
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
    /// An answer holds for the receipt it was computed with (a resent FSE
    /// may come with another); any other goes to the wrapped verifier.
    answers: HashMap<FseInput, (Receipt, Answer)>,
    /// CPU the other threads spent verifying, nanoseconds: the stage's
    /// cost, though not on its thread.
    pub helper_cpu_ns: u64,
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
        let (answers, helper_cpu_ns) = std::thread::scope(|scope| {
            let mut chunks = records.chunks(chunk);
            let first = chunks.next().unwrap_or(&[]);
            let others: Vec<_> = chunks
                .map(|part| {
                    scope.spawn(move || {
                        let answers = check_all(inner, registry, part, part.len());
                        (answers, super::thread_cpu_ns())
                    })
                })
                .collect();
            // Sized for the whole batch: the other parts are added to it.
            let mut answers = check_all(inner, registry, first, records.len());
            let mut helper_cpu_ns = 0;
            for handle in others {
                // A panicking verifier leaves its part to the sequential path.
                if let Ok((part, cpu)) = handle.join() {
                    answers.extend(part);
                    helper_cpu_ns += cpu;
                }
            }
            (answers, helper_cpu_ns)
        });
        Prefetched {
            inner,
            answers,
            helper_cpu_ns,
        }
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
fn parse(registry: &SchemaRegistry, record: &Record) -> Option<(FseInput, Fse, Receipt)> {
    let submitted: FseSubmitted = registry.decode_single(&record.value).ok()?;
    let input = convert::input_from_submitted(&submitted);
    let fse = validation::reparse(&input)?;
    Some((input, fse, Receipt::of(submitted.ingested_at_millis)))
}

/// Checks `records` into a map sized for `capacity` answers up front: its
/// keys are whole FSEs, so each growth would hash and move every one again
/// (docs/performance.md, "Flat out: the per-claim budget").
fn check_all(
    inner: &dyn SignatureVerifier,
    registry: &SchemaRegistry,
    records: &[Record],
    capacity: usize,
) -> HashMap<FseInput, (Receipt, Answer)> {
    let mut answers = HashMap::with_capacity(capacity);
    answers.extend(
        records
            .iter()
            .filter_map(|record| parse(registry, record))
            .map(|(input, fse, receipt)| {
                let answer = inner.check(&input, &fse, receipt);
                (input, (receipt, answer))
            }),
    );
    answers
}

impl SignatureVerifier for Prefetched<'_> {
    fn check(&self, submission: &FseInput, fse: &Fse, receipt: Receipt) -> Answer {
        match self.answers.get(submission) {
            Some((computed_for, answer)) if *computed_for == receipt => answer.clone(),
            _ => self.inner.check(submission, fse, receipt),
        }
    }

    fn unchecked_outcome(&self) -> Option<SignatureCheck> {
        self.inner.unchecked_outcome()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::domain::{ReasonCode, Stage};
    use crate::events::convert::submitted_from_input;

    /// Answers by the signature value, and counts its calls.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl SignatureVerifier for Counting {
        fn check(&self, submission: &FseInput, _: &Fse, _: Receipt) -> Answer {
            self.0.fetch_add(1, Ordering::SeqCst);
            match submission
                .signature
                .as_ref()
                .and_then(|s| s.value.as_deref())
            {
                Some("Z29vZA==") => Ok(SignatureCheck::Verified),
                _ => Err(Reason::new(
                    Stage::Validation,
                    ReasonCode::BadSignature,
                    "no",
                )),
            }
        }
    }

    fn input(n: usize, signature: &str) -> FseInput {
        serde_json::from_str(&format!(
            r#"{{"fse_id": "12345678-{n:09}", "received_at": "2025-01-20T09:14:03.250+01:00",
            "care_date": "2025-01-20",
            "professional": {{"rpps": "10000123454", "category": "gp", "sector": "1", "optam": false}},
            "beneficiary": {{"nir": "185057800604830", "birth_date": "1985-05-12", "rank": 1}},
            "pathway": "mt", "tiers_payant": {{"amo": true, "amc": false}},
            "acts": [{{"code": "G", "quantity": 1, "coefficient": "1", "charged": "30.00"}}],
            "signature": {{"alg": "rsa-pkcs1-sha256", "cert": "CPS-1", "value": "{signature}"}}}}"#
        ))
        .unwrap()
    }

    fn record(registry: &SchemaRegistry, offset: u64, input: &FseInput) -> Record {
        Record {
            topic: "fse.submitted".into(),
            partition: 0,
            offset,
            timestamp_millis: 0,
            key: Vec::new(),
            value: registry.encode_single(&submitted_from_input(input).unwrap()),
            tombstone: false,
        }
    }

    #[test]
    fn every_answer_is_the_inner_verifiers_computed_once() {
        let registry = SchemaRegistry::new().unwrap();
        let inputs: Vec<FseInput> = (0..200)
            .map(|n| input(n, if n % 7 == 0 { "Zm9yZ2Vk" } else { "Z29vZA==" }))
            .collect();
        let mut records: Vec<Record> = inputs
            .iter()
            .enumerate()
            .map(|(n, i)| record(&registry, n as u64, i))
            .collect();
        records.push(Record {
            value: b"not avro".to_vec(),
            ..records[0].clone()
        });
        let inner = Counting::default();
        let prefetched = Prefetched::verify(&inner, &registry, &records, 3);
        assert_eq!(prefetched.len(), 200, "the undecodable record is left out");
        assert_eq!(inner.0.load(Ordering::SeqCst), 200);
        let reference = Counting::default();
        for input in &inputs {
            let fse = validation::reparse(input).unwrap();
            assert_eq!(
                prefetched.check(input, &fse, Receipt::Unstamped),
                reference.check(input, &fse, Receipt::Unstamped)
            );
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 200, "all were ready");
        // An FSE it has not seen goes to the inner verifier.
        let other = input(999, "Z29vZA==");
        let fse = validation::reparse(&other).unwrap();
        assert_eq!(
            prefetched.check(&other, &fse, Receipt::Unstamped),
            Ok(SignatureCheck::Verified)
        );
        assert_eq!(inner.0.load(Ordering::SeqCst), 201);
        // A seen FSE with another receipt is not answered from the prefetch.
        let seen = &inputs[1];
        let fse = validation::reparse(seen).unwrap();
        let later = Receipt::Stamped(chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap());
        assert_eq!(
            prefetched.check(seen, &fse, later),
            Ok(SignatureCheck::Verified)
        );
        assert_eq!(inner.0.load(Ordering::SeqCst), 202);
    }
}
