//! Bad input on the wire (issue 8): a catalogue of malformed records on every
//! topic a stage reads, each through the production code — the shared batch
//! core (`runtime::batch::run_batch`) for the seven stage inputs, the
//! reference path (`runtime::refs`) for the three reference topics.
//!
//! The world is a small `synth::generate` data set (signed claims, rights,
//! PKI, EU institutions) run through the seven stages in process, which gives
//! real records for every input topic. For a stage topic, each test runs one
//! real records for every input topic. For a stage topic, each case runs one
//! batch from the stage's state just before the last two records of the
//! stream: the bad record(s), then the last record (the "follower"). It
//! asserts the bad record's exact outcome — a dead letter on the stage's dlq
//! topic with the raw bytes and an error that quotes no personal data, a
//! rejection with its exact reason codes, or a drop the design calls for —
//! and that the follower gives, byte for byte, the outputs it gives alone:
//! the stage kept going and the bad record changed no state.
//!
//! Bad bytes that keep a decodable header are made from the second-to-last
//! record (the "template"), unprocessed by the base state, so that its
//! upstream offset lies between the filter's mark and the follower's.
//!
//! The cases are tables, one a topic and kind ([`check::run_all`] runs one
//! and names each case that fails): the generic classes of bad bytes every
//! topic gets (`classes`), then each topic's own.

mod check;
mod claims;
mod classes;
mod craft;
mod references;
mod stage_outputs;
mod world;
