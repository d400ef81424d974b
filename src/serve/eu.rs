//! `POST /v1/eu/entitlement`: is an EU card good for care on a date, and
//! which institution is billed (NETC@RDS-like), by the routing stage's
//! rules over `ref.eu.institutions`, read up to its end at each question.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use clearing_pipeline::bus::{Bus, BusError, read_until};
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::convert;
use clearing_pipeline::events::model::EuInstitutionRecord;
use clearing_pipeline::online::eu::{CardAnswer, CardQuery, card_answer};
use clearing_pipeline::refdata::InstitutionDirectory;
use clearing_pipeline::runtime::topics;

use super::{Api, ApiError, bounded};

/// The EU directory as far as it has been read.
#[derive(Default)]
pub struct Institutions {
    read: Mutex<(InstitutionDirectory, u64)>,
}

impl Institutions {
    /// The directory with every record up to the topic's end applied (a
    /// record that does not apply is skipped, as the stages skip it).
    fn caught_up(
        &self,
        bus: &dyn Bus,
        registry: &SchemaRegistry,
    ) -> Result<InstitutionDirectory, BusError> {
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        let (directory, position) = &mut *read;
        read_until(
            bus,
            topics::REF_EU_INSTITUTIONS,
            0,
            position,
            None,
            |record| {
                if let Ok(rec) = registry.decode_single::<EuInstitutionRecord>(&record.value) {
                    let _skipped = directory.upsert(convert::institution_input(rec));
                }
            },
        )?;
        Ok(directory.clone())
    }
}

pub async fn entitlement(
    State(api): State<Arc<Api>>,
    body: Bytes,
) -> Result<axum::Json<CardAnswer>, ApiError> {
    let query: CardQuery = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))?;
    bounded(&api, move |api| {
        let directory = api
            .institutions
            .caught_up(api.bus.as_ref(), &api.registry)
            .map_err(ApiError::unavailable)?;
        Ok(card_answer(&query, &api.rules, &directory))
    })
    .await
    .map(axum::Json)
}
