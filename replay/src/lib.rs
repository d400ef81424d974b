//! Deterministic replay for audit (design.md §5, docs/audit.md): re-run
//! recorded inputs through the live stage code and compare with the
//! recorded outputs and their hash chains; archive a run; explain one
//! claim; replay under other rule tables (what-if).

pub mod archive;
pub mod diff;
pub mod explain;
pub mod run;
pub mod verify;
pub mod whatif;
