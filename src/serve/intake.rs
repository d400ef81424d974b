//! `POST /v1/lots`: the front door for professionals' software. A lot of
//! signed FSEs (each as `clearing submit` reads it) is checked FSE by FSE
//! for shape, stamped with the insurer's receipt time, appended to
//! `fse.submitted`, and answered per FSE: accepted (with the partition it
//! went to), or refused with the pipeline's reason code and field. The
//! pipeline's own checks (signature, identifiers, rights) follow on the
//! bus, as for any FSE. The FSEs come as JSON objects (`fses`) or as Avro
//! single-object records of `fse.submitted`, base64 (`fses_avro`). When
//! requests are signed, a lot carries only FSEs of the professional who
//! signed the request, each signed with one of their cards; another's is
//! refused `sender_not_signer`.
//!
//! Idempotent on the lot id: the answer is kept (a sled tree beside the
//! stages' stores) once the lot is on the bus, and a lot sent again gets
//! it back and appends nothing. A process killed between the append and
//! the keeping of the answer appends the lot again when it is resent; the
//! validation stage then rejects each FSE sent twice as a duplicate (its id
//! for its beneficiary), so nothing is paid twice.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clearing_pipeline::adjudicate::FSE_OBJECTS;
use clearing_pipeline::bus::{Bus, BusProducer};
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::{FseInput, json};
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::convert::submitted_from_input;
use clearing_pipeline::events::model::FseSubmitted;
use clearing_pipeline::pki::Pki;
use clearing_pipeline::runtime::ingest::send_submitted;
use clearing_pipeline::runtime::topics;
use clearing_pipeline::stages::validation;
use serde::{Deserialize, Serialize};

use super::auth::Professional;
use super::{Api, ApiError, Pool, bounded_on};

/// Most FSEs in a lot.
pub const MAX_LOT: usize = 1000;

/// The intake's own state: a producer shared by the requests, and the
/// answers of the lots already taken.
pub struct Intake {
    producer: Mutex<Box<dyn BusProducer>>,
    lots: sled::Tree,
}

impl Intake {
    pub fn open(bus: &dyn Bus, state_dir: &std::path::Path) -> anyhow::Result<Intake> {
        let db = sled::open(state_dir.join("intake"))?;
        Ok(Intake {
            producer: Mutex::new(bus.producer()?),
            lots: db.open_tree("lots")?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LotAnswer {
    pub lot_id: String,
    pub accepted: usize,
    pub refused: usize,
    pub fses: Vec<FseAnswer>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FseAnswer {
    /// The FSE's place in the lot, from 0.
    pub index: usize,
    pub fse_id: Option<String>,
    /// `accepted` or `refused`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

fn lot_id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed", message)
}

/// A lot's FSEs as sent: JSON objects (`fses`), or Avro single-object
/// records of `fse.submitted` in base64 (`fses_avro`).
enum Sent {
    Json(Vec<serde_json::Value>),
    Avro(Vec<serde_json::Value>),
}

impl Sent {
    fn len(&self) -> usize {
        match self {
            Sent::Json(fses) | Sent::Avro(fses) => fses.len(),
        }
    }
}

pub async fn take_lot(
    State(api): State<Arc<Api>>,
    asker: Option<Extension<Professional>>,
    body: Bytes,
) -> Result<axum::Json<LotAnswer>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| malformed("not UTF-8"))?;
    // A key given twice anywhere refuses the whole lot: each reader could
    // take another value (domain/json.rs).
    let document = json::parse(text).map_err(|e| malformed(e.to_string()))?;
    let lot_id = match document.unique("lot_id") {
        Some(serde_json::Value::String(id)) if lot_id_ok(id) => id.clone(),
        _ => {
            return Err(malformed("lot_id: 1 to 64 letters, digits, '-' or '_'"));
        }
    };
    let array = |name: &str, each: fn(&serde_json::Value) -> bool| match document.unique(name) {
        Some(serde_json::Value::Array(fses))
            if (1..=MAX_LOT).contains(&fses.len()) && fses.iter().all(each) =>
        {
            Ok(Some(fses.clone()))
        }
        None => Ok(None),
        _ => Err(malformed(format!(
            "{name}: an array of 1 to {MAX_LOT} FSEs ({})",
            if name == "fses" {
                "objects"
            } else {
                "base64 strings"
            }
        ))),
    };
    let sent = match (
        array("fses", serde_json::Value::is_object)?,
        array("fses_avro", serde_json::Value::is_string)?,
    ) {
        (Some(fses), None) => Sent::Json(fses),
        (None, Some(fses)) => Sent::Avro(fses),
        _ => {
            return Err(malformed(format!(
                "fses (JSON objects) or fses_avro (base64 Avro records): one of them, \
                 1 to {MAX_LOT} FSEs"
            )));
        }
    };
    if document.value().as_object().is_some_and(|o| o.len() != 2) {
        return Err(malformed("a lot has lot_id and fses (or fses_avro) only"));
    }
    let asker = asker.map(|a| a.0);
    bounded_on(&api, Pool::Lots, move |api| {
        take(api, asker.as_ref(), &lot_id, &sent)
    })
    .await
    .map(axum::Json)
}

/// An FSE of an Avro lot: base64 of a single-object record of
/// `fse.submitted` (any schema version the registry reads).
fn from_avro(
    value: &serde_json::Value,
    registry: &SchemaRegistry,
) -> Result<FseSubmitted, Refusal> {
    let refused = || ("malformed", "fses_avro".to_string());
    let bytes = value
        .as_str()
        .and_then(|text| BASE64.decode(text).ok())
        .ok_or_else(refused)?;
    registry
        .decode_single::<FseSubmitted>(&bytes)
        .map_err(|_| refused())
}

/// An FSE of the lot may be sent by the professional who signed it only:
/// the FSE's professional is the asker, and so is the owner of the
/// certificate it is signed with.
fn sent_by_its_signer(fse: &FseSubmitted, asker: &Professional, pki: &Pki) -> Result<(), Refusal> {
    let Some(signature) = &fse.signature else {
        return Err(("missing_signature", "signature".into()));
    };
    if fse.professional.rpps != asker.rpps {
        return Err((SENDER_NOT_SIGNER, "professional.rpps".into()));
    }
    match pki.certificate(&signature.cert) {
        None => Err(("unknown_certificate", "signature.cert".into())),
        Some(cert) if cert.rpps != asker.rpps => Err((SENDER_NOT_SIGNER, "signature.cert".into())),
        Some(_) => Ok(()),
    }
}

/// Why an FSE of a lot is refused: its code and field.
type Refusal = (&'static str, String);

/// The refusal of an FSE another professional signed.
pub const SENDER_NOT_SIGNER: &str = "sender_not_signer";

/// One FSE of a lot read as `clearing submit` reads it: the wire FSE, or
/// the code and field of its refusal, as validation words a malformed FSE.
fn shaped(
    value: &serde_json::Value,
    rules: &clearing_pipeline::rules::Rules,
) -> Result<FseSubmitted, Refusal> {
    let input: FseInput = json::from_value(value, FSE_OBJECTS).map_err(|e| {
        let decision = validation::malformed(None, &e, rules);
        let code = decision
            .reasons
            .first()
            .map_or("malformed", |r| r.code.as_str());
        (code, e.path)
    })?;
    submitted_from_input(&input).map_err(|e| {
        let code = if e.problem == "required" {
            "missing_field"
        } else {
            "malformed"
        };
        (code, e.field)
    })
}

fn take(
    api: &Api,
    asker: Option<&Professional>,
    lot_id: &str,
    sent: &Sent,
) -> Result<LotAnswer, ApiError> {
    let intake = api
        .intake
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("this instance takes no lots"))?;
    // Lot ids are the sender's: two professionals' lots of one id are two
    // lots, and neither gets the other's answer back.
    let kept_key = asker.map_or_else(|| lot_id.to_string(), |a| format!("{}/{lot_id}", a.rpps));
    // One lot at a time: the check, the append and the answer kept together.
    let mut producer = intake
        .producer
        .lock()
        .map_err(|_| ApiError::unavailable("intake poisoned"))?;
    if let Some(kept) = intake.lots.get(&kept_key).map_err(ApiError::unavailable)? {
        return serde_json::from_slice(&kept).map_err(ApiError::unavailable);
    }
    let partitions = api
        .bus
        .partition_count(topics::FSE_SUBMITTED)
        .map_err(ApiError::unavailable)?;
    // The PKI as far as ref.pki is read, to know whose each signing card is.
    let pki = match (asker, &api.professionals) {
        (Some(_), Some(professionals)) => Some(
            professionals
                .with_pki(api.bus.as_ref(), &api.registry, Pki::clone)
                .map_err(ApiError::unavailable)?,
        ),
        _ => None,
    };
    let mut answer = LotAnswer {
        lot_id: lot_id.to_string(),
        accepted: 0,
        refused: 0,
        fses: Vec::with_capacity(sent.len()),
    };
    let each: Box<dyn Iterator<Item = (Option<String>, Result<FseSubmitted, Refusal>)>> = match sent
    {
        Sent::Json(fses) => Box::new(fses.iter().map(|value| {
            let fse_id = value
                .get("fse_id")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            (fse_id, shaped(value, &api.rules))
        })),
        Sent::Avro(fses) => Box::new(fses.iter().map(|value| {
            let fse = from_avro(value, &api.registry);
            (fse.as_ref().ok().map(|f| f.fse_id.clone()), fse)
        })),
    };
    for (index, (fse_id, fse)) in each.enumerate() {
        let checked = fse.and_then(|fse| match (asker, &pki) {
            (Some(asker), Some(pki)) => sent_by_its_signer(&fse, asker, pki).map(|()| fse),
            _ => Ok(fse),
        });
        let mut fse = match checked {
            Ok(fse) => fse,
            Err((code, field)) => {
                answer.fses.push(FseAnswer {
                    index,
                    fse_id,
                    status: "refused".into(),
                    partition: None,
                    code: Some(code.into()),
                    field: Some(field),
                });
                continue;
            }
        };
        fse.ingested_at_millis = Some(IngestClock::Wall.stamp(&fse));
        let partition = send_submitted(
            producer.as_mut(),
            &api.registry,
            &api.pseudonyms,
            partitions,
            &fse,
        )
        .map_err(ApiError::unavailable)?;
        answer.fses.push(FseAnswer {
            index,
            fse_id,
            status: "accepted".into(),
            partition: Some(partition),
            code: None,
            field: None,
        });
    }
    producer.flush().map_err(ApiError::unavailable)?;
    answer.accepted = answer
        .fses
        .iter()
        .filter(|f| f.status == "accepted")
        .count();
    answer.refused = answer.fses.len() - answer.accepted;
    let kept = serde_json::to_vec(&answer).map_err(ApiError::unavailable)?;
    intake
        .lots
        .insert(kept_key.as_bytes(), kept)
        .map_err(ApiError::unavailable)?;
    intake.lots.flush().map_err(ApiError::unavailable)?;
    Ok(answer)
}
