//! Prometheus metrics on `--metrics-addr`: the workers' counters per stage.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use clearing_pipeline::runtime::Progress;

/// Serves `/metrics` on `addr` (bind to localhost unless told otherwise).
pub fn install(addr: SocketAddr) -> Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("metrics exporter on {addr}"))
}

/// Publishes the latest counters.
pub fn record(progress: &Progress) {
    for (stage, s) in &progress.stats {
        let stage = stage.name();
        for (name, value) in [
            ("clearing_inputs_total", s.inputs),
            ("clearing_passed_total", s.passed),
            ("clearing_rejected_total", s.rejected),
            ("clearing_dead_letters_total", s.dead_letters),
            ("clearing_duplicates_dropped_total", s.duplicates_dropped),
            (
                "clearing_restored_outputs_suppressed_total",
                s.restored_outputs_suppressed,
            ),
            ("clearing_reference_errors_total", s.ref_errors),
            ("clearing_batches_total", s.batches),
        ] {
            metrics::counter!(name, "stage" => stage).absolute(value);
        }
    }
}
