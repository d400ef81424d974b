//! A question for a partition another instance holds goes to that instance
//! over HTTP (one hop, within [`Limits::forward_timeout`]), and its answer
//! comes back as it is.
//!
//! The client is judged once, at the edge: the hop does not carry the
//! client's signature but the edge's word for who asked, the header
//! [`FORWARDED`] = `MILLIS;CERT;RPPS;MAC`, the MAC an HMAC-SHA256 under the
//! instances' shared secret (`CLEARING_PEER_SECRET`) of the time, the
//! professional, the method, the path and the body's digest. The owner
//! takes a hop whose MAC verifies and whose time is within
//! [`MAX_SKEW_SECONDS`] of its clock, and never forwards it again (a
//! partition moving under it is answered 421 and the edge answers 503).
//!
//! [`Limits::forward_timeout`]: super::Limits

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

use super::ApiError;
use super::auth::{MAX_SKEW_SECONDS, Professional, now_millis};

/// The hop's header.
pub const FORWARDED: &str = "clearing-forwarded";

/// Idle connections kept per peer.
const IDLE_PER_PEER: usize = 16;

/// The instances' shared secret, which signs a hop.
#[derive(Clone)]
pub struct PeerKey(Vec<u8>);

impl PeerKey {
    /// From `CLEARING_PEER_SECRET`; `None` when unset or empty.
    pub fn from_env() -> Option<PeerKey> {
        std::env::var("CLEARING_PEER_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| PeerKey(s.into_bytes()))
    }

    /// The MAC of a hop, fed and not yet finalized.
    fn mac(
        &self,
        millis: i64,
        cert: &str,
        rpps: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        let text = format!(
            "{millis}\n{cert}\n{rpps}\n{method}\n{path}\n{}",
            hex::encode(Sha256::digest(body))
        );
        mac.update(text.as_bytes());
        mac
    }

    /// The header's value for a hop on behalf of `asker` (`-` for nobody,
    /// under `--auth none`).
    pub fn header(
        &self,
        asker: Option<&Professional>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> String {
        let (cert, rpps) = asker.map_or(("-", "-"), |p| (p.cert.as_str(), p.rpps.as_str()));
        let millis = now_millis();
        let mac = self.mac(millis, cert, rpps, method, path, body);
        format!(
            "{millis};{cert};{rpps};{}",
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// Who the edge says asked, if the header's MAC verifies and its time
    /// is fresh: `Ok(None)` for nobody (`--auth none` at the edge).
    pub fn verify(
        &self,
        value: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Option<Professional>, &'static str> {
        let mut fields = value.splitn(4, ';');
        let (Some(millis), Some(cert), Some(rpps), Some(mac)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err("the forwarded header is malformed");
        };
        let millis: i64 = millis
            .parse()
            .map_err(|_| "the forwarded header is malformed")?;
        let mac = hex::decode(mac).map_err(|_| "the forwarded header is malformed")?;
        self.mac(millis, cert, rpps, method, path, body)
            .verify_slice(&mac)
            .map_err(|_| "the forwarded header does not verify")?;
        if (now_millis() - millis).abs() > MAX_SKEW_SECONDS * 1000 {
            return Err("the forwarded header is stale");
        }
        Ok((cert != "-").then(|| Professional {
            cert: cert.to_string(),
            rpps: rpps.to_string(),
        }))
    }
}

/// What a forward came to.
pub enum Forwarded {
    /// The owner's answer, as it gave it.
    Answer(Response),
    /// The peer answered that it does not hold the partition (it moved).
    NotOwner,
}

/// Connections to the other instances, kept open between hops.
#[derive(Default)]
pub struct Peers {
    idle: Mutex<HashMap<String, Vec<SendRequest<Body>>>>,
}

impl Peers {
    fn take_idle(&self, address: &str) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let senders = idle.get_mut(address)?;
        while let Some(sender) = senders.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn give_back(&self, address: &str, sender: SendRequest<Body>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let senders = idle.entry(address.to_string()).or_default();
        if senders.len() < IDLE_PER_PEER {
            senders.push(sender);
        }
    }

    async fn connect(address: &str) -> std::io::Result<SendRequest<Body>> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            // The connection ends when the peer closes it or the sender goes.
            let _ended = connection.await;
        });
        Ok(sender)
    }

    /// `POST path` with `body` to the instance at `address`, with `hop` as
    /// the [`FORWARDED`] header, within `timeout`; its answer's body at
    /// most `body_limit` bytes.
    pub async fn forward(
        &self,
        address: &str,
        path: &str,
        hop: &str,
        body: Bytes,
        timeout: Duration,
        body_limit: usize,
    ) -> Result<Forwarded, ApiError> {
        let unavailable =
            |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "owner_unavailable", why);
        let exchange = async {
            let mut sender = match self.take_idle(address) {
                Some(sender) => sender,
                None => Self::connect(address).await.map_err(|e| {
                    unavailable(format!("the partition's owner is unreachable ({e})"))
                })?,
            };
            let request = Request::post(path)
                .header(header::HOST, address)
                .header(header::CONTENT_TYPE, "application/json")
                .header(FORWARDED, hop)
                .body(Body::from(body))
                .map_err(|e| unavailable(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| unavailable(format!("the partition's owner did not answer ({e})")))?;
            let (parts, incoming) = response.into_parts();
            let bytes = axum::body::to_bytes(Body::new(incoming), body_limit)
                .await
                .map_err(|e| unavailable(format!("the owner's answer was cut ({e})")))?;
            self.give_back(address, sender);
            Ok::<_, ApiError>((parts, bytes))
        };
        let (parts, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| unavailable("the partition's owner did not answer in time".into()))??;
        if parts.status == StatusCode::MISDIRECTED_REQUEST {
            return Ok(Forwarded::NotOwner);
        }
        let mut answer = (parts.status, bytes).into_response();
        if let Some(kind) = parts.headers.get(header::CONTENT_TYPE) {
            answer
                .headers_mut()
                .insert(header::CONTENT_TYPE, kind.clone());
        }
        answer.headers_mut().insert(
            "clearing-served-by",
            HeaderValue::from_str(address).unwrap_or(HeaderValue::from_static("peer")),
        );
        Ok(Forwarded::Answer(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_verifies_under_the_same_secret_and_body_only() {
        let key = PeerKey(b"s3cret".to_vec());
        let asker = Professional {
            cert: "CPS-1".into(),
            rpps: "10000123454".into(),
        };
        let hop = key.header(Some(&asker), "POST", "/v1/rights", b"{}");
        assert_eq!(
            key.verify(&hop, "POST", "/v1/rights", b"{}").unwrap(),
            Some(asker)
        );
        assert!(key.verify(&hop, "POST", "/v1/rights", b"{ }").is_err());
        assert!(key.verify(&hop, "POST", "/v1/lots", b"{}").is_err());
        assert!(
            PeerKey(b"other".to_vec())
                .verify(&hop, "POST", "/v1/rights", b"{}")
                .is_err()
        );
        let nobody = key.header(None, "POST", "/v1/rights", b"{}");
        assert_eq!(
            key.verify(&nobody, "POST", "/v1/rights", b"{}").unwrap(),
            None
        );
        // Another professional's name on a valid MAC's fields: refused.
        let forged = hop.replacen("CPS-1", "CPS-2", 1);
        assert!(key.verify(&forged, "POST", "/v1/rights", b"{}").is_err());
        assert!(key.verify("1;2", "POST", "/v1/rights", b"{}").is_err());
    }
}
