//! Prometheus metrics on `--metrics-addr`. The runtime records through the
//! `metrics` facade (per stage and partition: inputs, outputs by topic,
//! rejections by code, batch latency, consumer lag, end-to-end latency);
//! this installs the exporter that serves them.
//!
//! There is no endpoint unless asked for, and a bare port binds the loopback
//! only: the endpoint has no authentication, so exposing it beyond the host
//! takes an explicit address (and draws a warning).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context as _, Result};

/// Parses `--metrics-addr`: `PORT` or `localhost:PORT` (127.0.0.1), or an
/// explicit `IP:PORT` / `[IPv6]:PORT`.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let loopback = |port: &str| {
        port.parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    };
    if let Ok(addr) = loopback(text) {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:")
        && let Ok(addr) = loopback(port)
    {
        return Ok(addr);
    }
    text.parse()
        .map_err(|_| format!("{text}: expected PORT, localhost:PORT or IP:PORT"))
}

/// Serves `/metrics` on `addr`.
pub fn install(addr: SocketAddr) -> Result<()> {
    if !addr.ip().is_loopback() {
        eprintln!(
            "clearing: warning: metrics served on {addr}, beyond this host, without authentication"
        );
    }
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("metrics exporter on {addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_binds_the_loopback_only() {
        assert_eq!(parse_addr("9464"), Ok("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            parse_addr("localhost:9464"),
            Ok("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(parse_addr("[::1]:9464"), Ok("[::1]:9464".parse().unwrap()));
        // Anything wider is spelled out.
        assert_eq!(
            parse_addr("0.0.0.0:9464"),
            Ok("0.0.0.0:9464".parse().unwrap())
        );
        for bad in ["", "99999", "example.org:9464", "9464:", "localhost"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }
}
