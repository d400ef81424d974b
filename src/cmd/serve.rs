//! `clearing serve`: the stages, as `clearing run` runs them, and the online
//! services answered from their state (docs/operations.md, "Online
//! services"). Several instances in one group share the partitions; each
//! answers for the partitions it holds and forwards a question for another
//! to its holder (`serve::owners`, `serve::forward`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use clearing_pipeline::priority;
use clearing_pipeline::runtime::queries::StateDirectory;
use clearing_pipeline::runtime::{self, Progress};

use super::pseudonym_key;
use super::stream::{RunArgs, open_run_bus, parse_stages, shared};
use crate::serve::{
    Api, Intake, Limits, Owners, Parts, PeerKey, Professionals, RateLimit, advertise_until,
};

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
    /// Requests handled at once (look-ups and signature checks waiting for
    /// a reader or running on one); beyond them, 503 at once.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Threads that do the requests' blocking work (store reads, signature
    /// checks), at the API's priority.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub lookup_threads: u16,
    /// The stages' nice value (0-19): on contended cores the scheduler
    /// answers the API first, and the stages' sled writers run 10 further
    /// behind (Linux; best effort elsewhere).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub stages_nice: i32,
    /// Longest a look-up may take, milliseconds; beyond it, 503.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// `signed`: every question signed by a professional of the health PKI
    /// (`ref.pki`); `none`: anyone may ask (development and tests only).
    #[arg(long, default_value = "signed", value_parser = ["signed", "none"])]
    pub auth: String,
    /// Requests a second per client (the signing certificate; the peer's
    /// IP address under `--auth none`); beyond them, 429. 0: no limit.
    #[arg(long, default_value_t = 100)]
    pub rate_per_second: u32,
    /// Requests a client may make at once after being idle.
    #[arg(long, default_value_t = 200)]
    pub rate_burst: u32,
    /// The address (`HOST:PORT`) the other instances reach this one at, for
    /// the partitions it holds; default: the address bound. Forwarding is on
    /// when `CLEARING_PEER_SECRET` is set (docs/operations.md).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Longest a question forwarded to another instance may take,
    /// milliseconds; beyond it, 503.
    #[arg(long, default_value_t = 1000)]
    pub forward_timeout_ms: u64,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let stages = parse_stages(&args.run.stages)?;
    let bus = open_run_bus(&args.run)?;
    let mut shared = Arc::into_inner(shared(&args.run, bus.clone())?)
        .context("the runtime's context is not shared yet")?;
    let directory = StateDirectory::new();
    shared.queries = Some(directory.clone());
    let shared = Arc::new(shared);
    // SIGINT or SIGTERM stops the HTTP API first (the requests in flight
    // answered), then the stages, which those requests read.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let stages_stop = Arc::new(AtomicBool::new(false));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("serve")
        .build()?;
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("listening on {}", args.listen))?;
    let bound = crate::serve::bound(&listener)?;
    let peer_key = PeerKey::from_env();
    let owners = match &peer_key {
        Some(_) => {
            let own = args.advertise.clone().unwrap_or_else(|| bound.to_string());
            Some(Arc::new(Owners::open(bus.as_ref(), &args.run.group, own)?))
        }
        None => None,
    };
    let intake = Intake::open(bus.as_ref(), &shared.state_dir)?;
    let api = Api::new(Parts {
        directory: directory.clone(),
        bus: bus.clone(),
        registry: shared.registry.clone(),
        pseudonyms: pseudonym_key()?,
        rules: shared.rules.clone(),
        limits: Limits {
            body_bytes: args.max_body_bytes,
            in_flight: args.max_in_flight,
            readers: usize::from(args.lookup_threads),
            timeout: Duration::from_millis(args.timeout_ms),
            forward_timeout: Duration::from_millis(args.forward_timeout_ms),
        },
        intake: Some(intake),
        professionals: (args.auth == "signed").then(|| Arc::new(Professionals::default())),
        rate_limit: RateLimit::new(args.rate_per_second, args.rate_burst),
        owners: owners.clone(),
        peer_key,
    })
    .context("starting the reader threads")?;
    println!("clearing serve: listening on {bound}");
    eprintln!(
        "clearing serve: stages {:?} on {}; {}; SIGINT or SIGTERM stops",
        stages.iter().map(|s| s.name()).collect::<Vec<_>>(),
        bus.describe(),
        owners.as_ref().map_or_else(
            || "no forwarding (CLEARING_PEER_SECRET unset)".to_string(),
            |o| format!("claims its partitions for {}", o.own_address())
        ),
    );
    let advertiser = match owners {
        Some(owners) => Some(std::thread::Builder::new().name("claims".into()).spawn({
            let (bus, directory, stop) = (bus.clone(), directory.clone(), stages_stop.clone());
            move || advertise_until(bus, owners, directory, stop)
        })?),
        None => None,
    };
    // Every 100 ms, the unapplied ref.rights of the partitions held, read
    // ahead of the look-ups, at the API's priority.
    let backlog_reader = std::thread::Builder::new()
        .name("rights-backlog".into())
        .spawn({
            let (api, stop) = (api.clone(), stages_stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    crate::serve::read_backlogs(&api);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })?;
    let stages_nice = args.stages_nice;
    let stages_thread = std::thread::Builder::new().name("stages".into()).spawn({
        let (stop, shared, http_stop) = (stages_stop.clone(), shared.clone(), stop.clone());
        move || {
            // Before the stages' threads start: they, and the writers
            // behind them, take their priority from this thread's.
            if let Err(e) = priority::set_current(stages_nice) {
                eprintln!("clearing serve: the stages run at the API's priority ({e})");
            }
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
            http_stop.store(true, Ordering::Relaxed);
            ran
        }
    })?;
    let served = tokio.block_on(crate::serve::serve(listener, api, stop.clone()));
    stages_stop.store(true, Ordering::Relaxed);
    if let Some(advertiser) = advertiser {
        advertiser
            .join()
            .map_err(|_| anyhow::anyhow!("the claims' thread panicked"))?;
    }
    backlog_reader
        .join()
        .map_err(|_| anyhow::anyhow!("the rights backlog's thread panicked"))?;
    let ran = stages_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the stages' thread panicked"))?;
    served.context("serving")?;
    ran?;
    eprintln!("clearing serve: stopped cleanly");
    Ok(ExitCode::SUCCESS)
}
