//! `POST /v1/lots`: the front door for professionals' software. A lot of
//! signed FSEs (each as `clearing submit` reads it) is checked FSE by FSE
//! for shape, stamped with the insurer's receipt time, appended to
//! `fse.submitted`, and answered per FSE: accepted (with the partition it
//! went to), or refused with the pipeline's reason code and field. The
//! pipeline's own checks (signature, identifiers, rights) follow on the
//! bus, as for any FSE.
//!
//! Idempotent on the lot id: the answer is kept (a sled tree beside the
//! stages' stores) once the lot is on the bus, and a lot sent again gets
//! it back and appends nothing. A process killed between the append and
//! the keeping of the answer appends the lot again when it is resent; the
//! validation stage then rejects each FSE sent twice as a duplicate (its id
//! for its beneficiary), so nothing is paid twice.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use clearing_pipeline::adjudicate::FSE_OBJECTS;
use clearing_pipeline::bus::{Bus, BusProducer};
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::{FseInput, json};
use clearing_pipeline::events::convert::submitted_from_input;
use clearing_pipeline::events::model::FseSubmitted;
use clearing_pipeline::runtime::ingest::send_submitted;
use clearing_pipeline::runtime::topics;
use clearing_pipeline::stages::validation;
use serde::{Deserialize, Serialize};

use super::{Api, ApiError, bounded};

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

pub async fn take_lot(
    State(api): State<Arc<Api>>,
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
    let fses = match document.unique("fses") {
        Some(serde_json::Value::Array(fses))
            if (1..=MAX_LOT).contains(&fses.len()) && fses.iter().all(|f| f.is_object()) =>
        {
            fses.clone()
        }
        _ => {
            return Err(malformed(format!(
                "fses: an array of 1 to {MAX_LOT} FSEs (objects)"
            )));
        }
    };
    if document.value().as_object().is_some_and(|o| o.len() != 2) {
        return Err(malformed("a lot has lot_id and fses only"));
    }
    bounded(&api, move |api| take(api, &lot_id, &fses))
        .await
        .map(axum::Json)
}

/// One FSE of a lot read as `clearing submit` reads it: the wire FSE, or
/// the code and field of its refusal, as validation words a malformed FSE.
fn shaped(
    value: &serde_json::Value,
    rules: &clearing_pipeline::rules::Rules,
) -> Result<FseSubmitted, (&'static str, String)> {
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

fn take(api: &Api, lot_id: &str, fses: &[serde_json::Value]) -> Result<LotAnswer, ApiError> {
    let intake = api
        .intake
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("this instance takes no lots"))?;
    // One lot at a time: the check, the append and the answer kept together.
    let mut producer = intake
        .producer
        .lock()
        .map_err(|_| ApiError::unavailable("intake poisoned"))?;
    if let Some(kept) = intake.lots.get(lot_id).map_err(ApiError::unavailable)? {
        return serde_json::from_slice(&kept).map_err(ApiError::unavailable);
    }
    let partitions = api
        .bus
        .partition_count(topics::FSE_SUBMITTED)
        .map_err(ApiError::unavailable)?;
    let mut answer = LotAnswer {
        lot_id: lot_id.to_string(),
        accepted: 0,
        refused: 0,
        fses: Vec::with_capacity(fses.len()),
    };
    for (index, value) in fses.iter().enumerate() {
        let fse_id = value
            .get("fse_id")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let mut fse = match shaped(value, &api.rules) {
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
        .insert(lot_id, kept)
        .map_err(ApiError::unavailable)?;
    intake.lots.flush().map_err(ApiError::unavailable)?;
    Ok(answer)
}
