//! `clearing serve`'s HTTP face (on tokio, with axum): the online services
//! answered from the state of the stages this process runs (interactive
//! queries, `runtime::queries`).
//!
//! Every request is bounded: its body ([`Limits::body_bytes`]), the requests
//! in flight (beyond them, 503 at once rather than a queue), and its time
//! (a look-up that takes longer is answered 503). The blocking work (store
//! reads, signature checks) runs on a few reader threads of its own
//! ([`readers`]), not on the async threads nor on tokio's blocking pool;
//! lots on a thread of theirs, so that a look-up never waits behind a lot.
//! No request body, NIR or key is ever logged: a log line names the
//! method, the route and the status.

mod auth;
mod eu;
mod forward;
mod intake;
mod limit;
mod openapi;
mod owners;
mod pending;
mod readers;
mod rights;

pub use auth::Professionals;
pub use forward::PeerKey;
pub use intake::Intake;
pub use limit::RateLimit;
pub use owners::{Owners, advertise_until};
pub use rights::read_backlogs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clearing_pipeline::bus::Bus;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::runtime::queries::StateDirectory;
use serde::Serialize;

use readers::{Readers, Refused};

/// The bounds every request is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes: usize,
    /// Blocking jobs (look-ups, signature checks; lots apart) waiting or
    /// running at once; beyond them, 503 at once.
    pub in_flight: usize,
    /// The reader threads that run them.
    pub readers: usize,
    pub timeout: Duration,
    /// Longest a forward to a partition's owner may take.
    pub forward_timeout: Duration,
}

/// What the handlers share.
pub struct Api {
    pub directory: Arc<StateDirectory>,
    pub bus: Arc<dyn Bus>,
    pub registry: Arc<SchemaRegistry>,
    pub pseudonyms: PseudonymKey,
    pub limits: Limits,
    /// `None`: this instance takes no lots (it answers look-ups only).
    pub intake: Option<Intake>,
    /// The rule tables the stages run (the EU card answer reads them).
    pub rules: Arc<clearing_pipeline::rules::Rules>,
    institutions: eu::Institutions,
    /// Who may ask (`None`: anyone, `--auth none`, for development only).
    pub professionals: Option<Arc<Professionals>>,
    /// Requests per client (`None`: no limit).
    pub rate_limit: Option<RateLimit>,
    /// Who holds which partition (`None`: no forwarding; a question for a
    /// partition held elsewhere is answered 421).
    pub owners: Option<Arc<Owners>>,
    /// The secret a hop between instances is signed with.
    pub peer_key: Option<PeerKey>,
    peers: forward::Peers,
    /// The OpenAPI document as this server serves it.
    document: String,
    readers: Readers,
    /// The `ref.rights` records the stage has yet to apply, by beneficiary.
    pending: pending::PendingRights,
    /// The lots' own reader (they go one at a time, under the intake's lock).
    lot_reader: Readers,
}

/// What an [`Api`] is made of.
pub struct Parts {
    pub directory: Arc<StateDirectory>,
    pub bus: Arc<dyn Bus>,
    pub registry: Arc<SchemaRegistry>,
    pub pseudonyms: PseudonymKey,
    pub rules: Arc<clearing_pipeline::rules::Rules>,
    pub limits: Limits,
    pub intake: Option<Intake>,
    pub professionals: Option<Arc<Professionals>>,
    pub rate_limit: Option<RateLimit>,
    pub owners: Option<Arc<Owners>>,
    pub peer_key: Option<PeerKey>,
}

impl Api {
    /// The API and its reader threads (named `lookup-N`, and `lots-0`; they
    /// start with the calling thread's priority).
    pub fn new(parts: Parts) -> std::io::Result<Arc<Api>> {
        let readers = Readers::start("lookup", parts.limits.readers, parts.limits.in_flight)?;
        let lot_reader = Readers::start("lots", 1, parts.limits.in_flight)?;
        Ok(Arc::new(Api {
            document: openapi::served(parts.professionals.is_some()),
            readers,
            pending: pending::PendingRights::default(),
            lot_reader,
            directory: parts.directory,
            bus: parts.bus,
            registry: parts.registry,
            pseudonyms: parts.pseudonyms,
            limits: parts.limits,
            intake: parts.intake,
            rules: parts.rules,
            institutions: eu::Institutions::default(),
            professionals: parts.professionals,
            rate_limit: parts.rate_limit,
            owners: parts.owners,
            peer_key: parts.peer_key,
            peers: forward::Peers::default(),
        }))
    }
}

/// An error answer: a status and the pipeline's reason code.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            message: message.into(),
        }
    }

    /// The store or the bus beneath failed: retry.
    pub fn unavailable(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            what.to_string(),
        )
    }

    fn busy() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many requests in flight; retry",
        )
    }

    /// A job the readers did not do: busy (retry), or failed.
    fn refused(refused: Refused) -> ApiError {
        match refused {
            Refused::Busy => ApiError::busy(),
            Refused::Failed => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the look-up failed",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}

/// Which readers run a job.
#[derive(Debug, Clone, Copy)]
pub enum Pool {
    /// Look-ups and the other short reads.
    Lookups,
    /// Lots (one at a time), apart so that look-ups never wait behind them.
    Lots,
}

/// Runs `work` (a blocking read of a store) on a reader, within the
/// in-flight bound and the time bound.
pub async fn bounded<T: Send + 'static>(
    api: &Arc<Api>,
    work: impl FnOnce(&Api) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    bounded_on(api, Pool::Lookups, work).await
}

/// [`bounded`] on the readers of `pool`.
pub async fn bounded_on<T: Send + 'static>(
    api: &Arc<Api>,
    pool: Pool,
    work: impl FnOnce(&Api) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let readers = match pool {
        Pool::Lookups => &api.readers,
        Pool::Lots => &api.lot_reader,
    };
    let shared = api.clone();
    let answer = readers
        .submit(move || work(&shared))
        .map_err(ApiError::refused)?;
    match tokio::time::timeout(api.limits.timeout, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(refused)) => Err(ApiError::refused(refused)),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the look-up took too long; retry",
        )),
    }
}

pub fn router(api: Arc<Api>) -> Router {
    let body_limit = api.limits.body_bytes;
    // The questions need a professional's signature (or a hop's word) and
    // are held to the client's rate; health and the document are not.
    let questions = Router::new()
        .route("/v1/rights", post(rights::look_up))
        .route("/v1/lots", post(intake::take_lot))
        .route("/v1/eu/entitlement", post(eu::entitlement))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::admit,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/v1/openapi.json", get(openapi::document))
        .merge(questions)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(api)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    /// The entitlement partitions this instance answers for.
    rights_partitions: Vec<u32>,
}

async fn health(axum::extract::State(api): axum::extract::State<Arc<Api>>) -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        rights_partitions: api
            .directory
            .partitions(clearing_pipeline::runtime::StageKind::Entitlement),
    })
}

/// Serves on `listener` until `stop` is set (SIGINT, SIGTERM), then takes
/// no new connection and lets the requests in flight finish (a connection
/// between requests is closed, one mid-request is answered first).
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let shutdown = async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // The peer's address keys the rate of a client that does not sign.
    let app = router(api).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The address actually bound (port 0 picks one).
pub fn bound(listener: &tokio::net::TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}
