//! Prometheus metrics on `--metrics-addr`. The runtime records through the
//! `metrics` facade (per stage and partition: inputs, outputs by topic,
//! rejections by code, batch latency, consumer lag, end-to-end latency);
//! this installs the exporter that serves them.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};

/// Serves `/metrics` on `addr` (bind to localhost unless told otherwise).
pub fn install(addr: SocketAddr) -> Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("metrics exporter on {addr}"))
}
