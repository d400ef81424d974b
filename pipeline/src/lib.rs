//! The clearing pipeline: domain model, dated rule tables, pure stages, state.
//!
//! Layout (see docs/architecture.md): [`domain`] and [`ids`] are the checked
//! vocabulary; [`rules`] the dated tables; [`stages`] the pure decisions;
//! [`state`] the stores they read and write through an overlay; [`refdata`]
//! the global reference data; [`adjudicate`] runs the stages in process.

pub mod adjudicate;
pub mod allocator;
pub mod bus;
pub mod clock;
pub mod dates;
pub mod domain;
pub mod events;
pub mod ids;
pub mod money;
pub mod online;
pub mod outbound;
pub mod pki;
pub mod priority;
pub mod pseudonym;
pub mod refdata;
pub mod rules;
pub mod runtime;
pub mod signatures;
pub mod stages;
pub mod state;
pub mod synth;
pub mod topics;

pub use domain::rights;
