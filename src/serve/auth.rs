//! Who may ask: professionals of the health PKI, each request signed with
//! the key of a certificate published on `ref.pki` (revocations included),
//! the way an FSE is signed. Three headers:
//! - `Clearing-Cert`: the certificate's id;
//! - `Clearing-Date`: the request's time, RFC 3339, within
//!   [`MAX_SKEW_SECONDS`] of the server's clock (a captured request cannot
//!   be replayed later);
//! - `Clearing-Signature`: base64 of the signature, with the certificate's
//!   algorithm, of [`signed_text`]: the method, the path, the date and the
//!   SHA-256 of the body, one per line.
//!
//! 401 (`unauthenticated`) when a header is missing, the date is off, the
//! certificate unknown or the signature wrong; 403 (`forbidden`) when the
//! certificate is revoked or not valid today. The certificate is judged on
//! the insurer's date now, as an FSE is on its receipt.
//!
//! A request another instance forwards carries the edge's word for who
//! asked instead ([`super::forward`]). Whoever asked, as judged here, rides
//! on the request ([`Professional`], [`Hop`]) for the handlers, and is then
//! held to the per-client rate ([`super::limit`]).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clearing_pipeline::bus::{Bus, BusError, read_until};
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::convert;
use clearing_pipeline::events::model::PkiEvent;
use clearing_pipeline::pki::{Pki, VerifyFailure};
use clearing_pipeline::runtime::topics;
use sha2::{Digest, Sha256};

use super::forward::FORWARDED;
use super::readers::Refused;
use super::{Api, ApiError};

/// How far a request's date may be from the server's clock.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// The text a request's signature covers.
pub(super) fn signed_text(method: &str, path: &str, date: &str, body: &[u8]) -> String {
    format!(
        "{method}\n{path}\n{date}\n{}",
        hex::encode(Sha256::digest(body))
    )
}

/// The health PKI as far as `ref.pki` has been read.
#[derive(Default)]
pub struct Professionals {
    read: RwLock<(Pki, u64)>,
}

impl Professionals {
    /// Runs `check` over the PKI with every `ref.pki` record up to the
    /// topic's end applied (a record that does not apply is skipped, as the
    /// stages skip it). The reading is one at a time; the checks (a
    /// signature's verification each) run side by side.
    pub(super) fn with_pki<T>(
        &self,
        bus: &dyn Bus,
        registry: &SchemaRegistry,
        check: impl FnOnce(&Pki) -> T,
    ) -> Result<T, BusError> {
        {
            let mut read = self.read.write().unwrap_or_else(|p| p.into_inner());
            let (pki, position) = &mut *read;
            read_until(bus, topics::REF_PKI, 0, position, None, |record| {
                if let Ok(event) = registry.decode_single::<PkiEvent>(&record.value)
                    && let Ok(pki_record) = convert::pki_record(&event)
                {
                    let _skipped = pki.apply(pki_record);
                }
            })?;
        }
        let read = self.read.read().unwrap_or_else(|p| p.into_inner());
        Ok(check(&read.0))
    }
}

/// Who asked, as judged at the edge: the certificate that signed the
/// request and the professional (RPPS) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Professional {
    pub cert: String,
    pub rpps: String,
}

/// Set on a request another instance forwarded: it is answered here or
/// refused, never forwarded again.
#[derive(Debug, Clone, Copy)]
pub struct Hop;

/// The machine's clock: the shell's, never a decision's.
pub(super) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn refused(status: StatusCode, code: &'static str, message: &str) -> Response {
    ApiError::new(status, code, message).into_response()
}

fn unauthenticated(message: &str) -> Response {
    refused(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

/// The signature's headers, as text.
struct Signed {
    cert: String,
    date: String,
    signature: Vec<u8>,
}

fn headers(headers: &axum::http::HeaderMap) -> Result<Signed, Box<Response>> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (Some(cert), Some(date), Some(signature)) = (
        header("clearing-cert"),
        header("clearing-date"),
        header("clearing-signature"),
    ) else {
        return Err(Box::new(unauthenticated(
            "sign the request: Clearing-Cert, Clearing-Date and Clearing-Signature",
        )));
    };
    let signature = BASE64
        .decode(signature.trim())
        .map_err(|_| Box::new(unauthenticated("Clearing-Signature is not base64")))?;
    let at = chrono::DateTime::parse_from_rfc3339(&date)
        .map_err(|_| Box::new(unauthenticated("Clearing-Date is not an RFC 3339 time")))?;
    let skew_millis = now_millis() - at.timestamp_millis();
    if skew_millis.abs() > MAX_SKEW_SECONDS * 1000 {
        return Err(Box::new(unauthenticated(
            "Clearing-Date is too far from the server's clock",
        )));
    }
    Ok(Signed {
        cert,
        date,
        signature,
    })
}

/// The middleware: who asked (a hop's word, a professional's signature,
/// or nobody under `--auth none`), then the client's rate; the request goes
/// on with [`Professional`] (and [`Hop`]) among its extensions.
pub async fn admit(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, api.limits.body_bytes).await else {
        return refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the body is over the limit",
        );
    };
    let hop = parts
        .headers
        .get(FORWARDED)
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let asker = match hop {
        Some(hop) => {
            let Some(peers) = &api.peer_key else {
                return unauthenticated("this instance takes no forwarded requests");
            };
            match peers.verify(&hop, parts.method.as_str(), parts.uri.path(), &bytes) {
                Ok(asker) => {
                    parts.extensions.insert(Hop);
                    asker
                }
                Err(why) => return unauthenticated(why),
            }
        }
        None => match &api.professionals {
            Some(professionals) => match signer(&api, professionals, &parts, &bytes).await {
                Ok(professional) => Some(professional),
                Err(refusal) => return *refusal,
            },
            None => None,
        },
    };
    if let (Some(limit), None) = (&api.rate_limit, parts.extensions.get::<Hop>()) {
        let client = asker
            .as_ref()
            .map_or_else(|| peer.ip().to_string(), |p| format!("cert:{}", p.cert));
        if let Err(wait) = limit.take(&client, std::time::Instant::now()) {
            let mut answer = refused(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this client; retry after the time given",
            );
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            return answer;
        }
    }
    if let Some(asker) = asker {
        parts.extensions.insert(asker);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The professional whose card signed the request, valid and unrevoked
/// today; the refusal otherwise.
async fn signer(
    api: &Arc<Api>,
    professionals: &Arc<Professionals>,
    parts: &axum::http::request::Parts,
    bytes: &[u8],
) -> Result<Professional, Box<Response>> {
    let signed = headers(&parts.headers)?;
    let text = signed_text(parts.method.as_str(), parts.uri.path(), &signed.date, bytes);
    let today = clearing_pipeline::clock::insurer_date(now_millis()).unwrap_or_default();
    let checked = {
        let (shared, professionals) = (api.clone(), professionals.clone());
        api.readers
            .run(move || {
                professionals.with_pki(shared.bus.as_ref(), &shared.registry, |pki| {
                    let Some(cert) = pki.certificate(&signed.cert) else {
                        return Err(VerifyFailure::UnknownCertificate);
                    };
                    pki.verify(
                        &signed.cert,
                        &cert.rpps,
                        cert.alg.as_str(),
                        today,
                        text.as_bytes(),
                        &signed.signature,
                    )
                    .map(|()| Professional {
                        cert: signed.cert.clone(),
                        rpps: cert.rpps.clone(),
                    })
                })
            })
            .await
    };
    let refusal = match checked {
        Ok(Ok(Ok(professional))) => return Ok(professional),
        Ok(Ok(Err(VerifyFailure::Revoked))) => refused(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the certificate is revoked",
        ),
        Ok(Ok(Err(VerifyFailure::NotValidOnDate))) => refused(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the certificate is not valid today",
        ),
        Ok(Ok(Err(VerifyFailure::UnknownCertificate))) => unauthenticated("unknown certificate"),
        Ok(Ok(Err(_))) => unauthenticated("the signature does not verify"),
        Ok(Err(e)) => ApiError::unavailable(e).into_response(),
        Err(Refused::Busy) => ApiError::busy().into_response(),
        Err(Refused::Failed) => ApiError::unavailable("the check failed").into_response(),
    };
    Err(Box::new(refusal))
}
