//! Deterministic replay (filled by the replay issue).
