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

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
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
    read: Mutex<(Pki, u64)>,
}

impl Professionals {
    /// Runs `check` over the PKI with every `ref.pki` record up to the
    /// topic's end applied (a record that does not apply is skipped, as the
    /// stages skip it).
    fn with_pki<T>(
        &self,
        bus: &dyn Bus,
        registry: &SchemaRegistry,
        check: impl FnOnce(&Pki) -> T,
    ) -> Result<T, BusError> {
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        let (pki, position) = &mut *read;
        read_until(bus, topics::REF_PKI, 0, position, None, |record| {
            if let Ok(event) = registry.decode_single::<PkiEvent>(&record.value)
                && let Ok(pki_record) = convert::pki_record(&event)
            {
                let _skipped = pki.apply(pki_record);
            }
        })?;
        Ok(check(pki))
    }
}

/// The machine's clock: the shell's, never a decision's.
fn now_millis() -> i64 {
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

fn headers(request: &Request) -> Result<Signed, Box<Response>> {
    let header = |name: &str| {
        request
            .headers()
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

/// The middleware: the request goes on only if signed by a professional
/// whose certificate is valid and unrevoked today.
pub async fn require_signature(
    State(api): State<Arc<Api>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(professionals) = api.professionals.clone() else {
        return next.run(request).await;
    };
    let signed = match headers(&request) {
        Ok(signed) => signed,
        Err(refusal) => return *refusal,
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, api.limits.body_bytes).await else {
        return refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the body is over the limit",
        );
    };
    let text = signed_text(
        parts.method.as_str(),
        parts.uri.path(),
        &signed.date,
        &bytes,
    );
    let today = clearing_pipeline::clock::insurer_date(now_millis()).unwrap_or_default();
    let checked = {
        let (api, professionals) = (api.clone(), professionals.clone());
        tokio::task::spawn_blocking(move || {
            professionals.with_pki(api.bus.as_ref(), &api.registry, |pki| {
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
            })
        })
        .await
    };
    match checked {
        Ok(Ok(Ok(()))) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
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
        Err(_) => ApiError::unavailable("the check failed").into_response(),
    }
}
