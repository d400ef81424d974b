//! A fixed-rate load generator for `clearing serve` (scripts/serve-load.sh):
//! requests are sent on a schedule, RATE a second, whatever the answers'
//! times (an open loop, as wrk2 and oha's `-q` do; wrk waits for each
//! answer, so a slow server is sent less). Each latency runs from the time
//! the request was due, so a stall counts for every request it delayed.
//!
//!   serve_rate card ID RPPS SEED
//!       prints the `ref.pki` record (JSON) of a load card: an ECDSA P-256
//!       key derived from SEED, valid from 30 days ago for a year.
//!   serve_rate run ADDR PATH BODIES RATE SECONDS CONNECTIONS [CERT SEED]
//!       POSTs the lines of BODIES in turn to http://ADDR/PATH; signed as
//!       card CERT (key from SEED) when given.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clearing_pipeline::pki::{PkiRecord, SignatureAlg, SigningKey};
use hdrhistogram::Histogram;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn now() -> chrono::DateTime<chrono::Utc> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    chrono::DateTime::from_timestamp(since.as_secs() as i64, 0).unwrap_or_default()
}

fn key_of(seed: &str) -> Result<SigningKey, Failure> {
    let seed: u8 = seed.parse()?;
    Ok(SigningKey::generate(
        SignatureAlg::EcdsaP256Sha256,
        [seed; 32],
    ))
}

fn card(id: &str, rpps: &str, seed: &str) -> Result<(), Failure> {
    let key = key_of(seed)?;
    let today = now().date_naive();
    let record = PkiRecord::Certificate {
        id: id.into(),
        rpps: rpps.into(),
        alg: SignatureAlg::EcdsaP256Sha256,
        public_key: BASE64.encode(key.public_key_der()),
        issuer: "IGC-SANTE-ROOT".into(),
        not_before: today - chrono::Days::new(30),
        not_after: today + chrono::Days::new(365),
    };
    println!("{}", record.to_json());
    Ok(())
}

/// The signature headers of `POST path` with `body` now (auth.rs's text).
fn sign(key: &SigningKey, cert: &str, path: &str, body: &str) -> [(&'static str, String); 3] {
    let date = now().to_rfc3339();
    let text = format!(
        "POST\n{path}\n{date}\n{}",
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    [
        ("clearing-cert", cert.to_string()),
        ("clearing-date", date),
        (
            "clearing-signature",
            BASE64.encode(key.sign(text.as_bytes())),
        ),
    ]
}

struct Tally {
    latencies: Histogram<u64>,
    /// The latencies of the requests due in each second of the run.
    by_second: Vec<Histogram<u64>>,
    statuses: std::collections::BTreeMap<u16, u64>,
    errors: u64,
}

async fn connect(addr: &str) -> Result<SendRequest<Body>, Failure> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    addr: String,
    path: String,
    bodies: Vec<String>,
    rate: f64,
    seconds: u64,
    connections: usize,
    signer: Option<(String, SigningKey)>,
) -> Result<(), Failure> {
    let pool = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    for _ in 0..connections {
        pool.lock().await.push(connect(&addr).await?);
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(connections));
    let tally = Arc::new(Mutex::new(Tally {
        latencies: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        by_second: (0..seconds.max(1))
            .map(|_| Histogram::new_with_bounds(1, 60_000_000, 2))
            .collect::<Result<_, _>>()?,
        statuses: Default::default(),
        errors: 0,
    }));
    let (bodies, signer) = (Arc::new(bodies), Arc::new(signer));
    let total = (rate * seconds as f64) as u64;
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let (pool, permits, tally, bodies, signer, addr, path) = (
            pool.clone(),
            permits.clone(),
            tally.clone(),
            bodies.clone(),
            signer.clone(),
            addr.clone(),
            path.clone(),
        );
        tasks.spawn(async move {
            let body = &bodies[i as usize % bodies.len()];
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            let sender = pool.lock().await.pop();
            let mut sender = match sender {
                Some(s) if s.is_ready() => s,
                _ => match connect(&addr).await {
                    Ok(s) => s,
                    Err(_) => {
                        tally.lock().unwrap().errors += 1;
                        return;
                    }
                },
            };
            let mut request = hyper::Request::post(path.as_str())
                .header("host", addr.as_str())
                .header("content-type", "application/json");
            if let Some((cert, key)) = signer.as_ref() {
                for (name, value) in sign(key, cert, &path, body) {
                    request = request.header(name, value);
                }
            }
            let Ok(request) = request.body(Body::from(body.clone())) else {
                return;
            };
            let answered = match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let read = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20).await;
                    read.ok().map(|_| status)
                }
                Err(_) => None,
            };
            let took = due.elapsed();
            {
                let mut tally = tally.lock().unwrap();
                match answered {
                    Some(status) => {
                        *tally.statuses.entry(status).or_default() += 1;
                        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                        let _ = tally.latencies.record(micros);
                        let second = ((i as f64 / rate) as usize).min(tally.by_second.len() - 1);
                        let _ = tally.by_second[second].record(micros);
                    }
                    None => tally.errors += 1,
                }
            }
            if answered.is_some() {
                pool.lock().await.push(sender);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let tally = tally.lock().unwrap();
    let h = &tally.latencies;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "target {rate}/s for {seconds} s over {connections} connections{}: sent {total} in {:.2} s ({:.0}/s)",
        if signer.is_some() { ", signed" } else { "" },
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!("statuses {:?}, errors {}", tally.statuses, tally.errors);
    println!(
        "latency from the due time: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    // Where the tail sits in time: a stall shows as a second or two.
    let p99s: Vec<(usize, f64)> = tally
        .by_second
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.is_empty())
        .map(|(second, h)| (second, h.value_at_quantile(0.99) as f64 / 1000.0))
        .collect();
    let mut slowest = p99s.clone();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    let named: Vec<String> = slowest
        .iter()
        .take(3)
        .map(|(second, p99)| format!("second {second}: {p99:.2} ms"))
        .collect();
    let after_first = p99s.iter().skip(1).map(|s| s.1).fold(0.0, f64::max);
    println!(
        "slowest seconds (p99 of the requests due in each): {}; after the first second at most {after_first:.2} ms",
        named.join(", ")
    );
    Ok(())
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["card", id, rpps, seed] => card(id, rpps, seed),
        [
            "run",
            addr,
            path,
            bodies,
            rate,
            seconds,
            connections,
            rest @ ..,
        ] => {
            let lines: Vec<String> = std::fs::read_to_string(bodies)?
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            if lines.is_empty() {
                return Err("no bodies".into());
            }
            let signer = match rest {
                [cert, seed] => Some((cert.to_string(), key_of(seed)?)),
                [] => None,
                _ => return Err("CERT and SEED go together".into()),
            };
            // One thread: the generator takes one core at most.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run(
                    addr.to_string(),
                    path.to_string(),
                    lines,
                    rate.parse()?,
                    seconds.parse()?,
                    connections.parse()?,
                    signer,
                ))
        }
        _ => Err("usage: serve_rate card ID RPPS SEED | \
                  serve_rate run ADDR PATH BODIES RATE SECONDS CONNECTIONS [CERT SEED]"
            .into()),
    }
}
