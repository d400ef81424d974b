//! `clearing serve`: the stages, as `clearing run` runs them, and the online
//! services answered from their state (docs/operations.md, "Online
//! services"). Several instances in one group share the partitions; each
//! answers for the partitions it holds.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use clearing_pipeline::runtime::queries::StateDirectory;
use clearing_pipeline::runtime::{self, Progress};

use super::pseudonym_key;
use super::stream::{RunArgs, open_run_bus, parse_stages, shared};
use crate::serve::{Api, Intake, Limits, Parts, Professionals};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Where the HTTP API listens (`IP:PORT`; port 0 picks a free one). The
    /// address bound is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Largest request body, bytes (a lot of 1,000 FSEs is about 1.5 MB).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Requests handled at once; beyond them, 503 at once.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Longest a look-up may take, milliseconds; beyond it, 503.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// `signed`: every question signed by a professional of the health PKI
    /// (`ref.pki`); `none`: anyone may ask (development and tests only).
    #[arg(long, default_value = "signed", value_parser = ["signed", "none"])]
    pub auth: String,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let stages = parse_stages(&args.run.stages)?;
    let bus = open_run_bus(&args.run)?;
    let mut shared = Arc::into_inner(shared(&args.run, bus.clone())?)
        .context("the runtime's context is not shared yet")?;
    let directory = StateDirectory::new();
    shared.queries = Some(directory.clone());
    let shared = Arc::new(shared);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let intake = Intake::open(bus.as_ref(), &shared.state_dir)?;
    let api = Api::new(Parts {
        directory,
        bus: bus.clone(),
        registry: shared.registry.clone(),
        pseudonyms: pseudonym_key()?,
        rules: shared.rules.clone(),
        limits: Limits {
            body_bytes: args.max_body_bytes,
            in_flight: args.max_in_flight,
            timeout: Duration::from_millis(args.timeout_ms),
        },
        intake: Some(intake),
        professionals: (args.auth == "signed").then(|| Arc::new(Professionals::default())),
    });
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("serve")
        .build()?;
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("listening on {}", args.listen))?;
    println!(
        "clearing serve: listening on {}",
        crate::serve::bound(&listener)?
    );
    eprintln!(
        "clearing serve: stages {:?} on {}; SIGINT or SIGTERM stops",
        stages.iter().map(|s| s.name()).collect::<Vec<_>>(),
        bus.describe()
    );
    let stages_thread = std::thread::Builder::new().name("stages".into()).spawn({
        let (stop, shared) = (stop.clone(), shared.clone());
        move || {
            let report = |_: &Progress| {};
            let ran = runtime::run_stages(
                shared,
                &stages,
                &stop,
                false,
                Duration::from_secs(1),
                &report,
            );
            // The API without its stages would answer from stale state.
            stop.store(true, Ordering::Relaxed);
            ran
        }
    })?;
    let served = tokio.block_on(crate::serve::serve(listener, api, stop.clone()));
    stop.store(true, Ordering::Relaxed);
    let ran = stages_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the stages' thread panicked"))?;
    served.context("serving")?;
    ran?;
    eprintln!("clearing serve: stopped cleanly");
    Ok(ExitCode::SUCCESS)
}
