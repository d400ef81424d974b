//! `POST /v1/rights`: a beneficiary's rights on a date (CDRi-like). The
//! question travels in the body, so that the NIR never sits in a URL or an
//! access log; it becomes the pseudonymous key at once. A beneficiary whose
//! partition another instance holds is asked of that instance
//! ([`super::forward`]), so that any instance answers for anyone.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clearing_pipeline::online::rights::{RightsOnDate, RightsQuery, rights_with_pending};
use clearing_pipeline::pseudonym::BeneficiaryKey;
use clearing_pipeline::runtime::ingest::partition_of;
use clearing_pipeline::runtime::refs::rights_position;
use clearing_pipeline::runtime::{StageKind, topics};
use clearing_pipeline::state::{StateRead, StateTxn};
use serde::Serialize;

use super::auth::{Hop, Professional};
use super::forward::Forwarded;
use super::{Api, ApiError, bounded};

/// `ref.rights` records not yet applied by the stage that a look-up reads
/// itself; beyond them the stage is too far behind to answer from.
const MAX_PENDING: u64 = 10_000;

#[derive(Debug, Serialize)]
pub struct RightsAnswer {
    /// The pseudonymous key the NIR maps to (never the NIR).
    pub beneficiary: String,
    pub date: chrono::NaiveDate,
    pub rights: RightsOnDate,
    pub as_of: AsOf,
}

/// How fresh the answer is: every `ref.rights` record of the beneficiary's
/// partition below `rights_offset` is in it.
#[derive(Debug, Serialize)]
pub struct AsOf {
    pub partition: u32,
    pub rights_offset: u64,
}

pub async fn look_up(
    State(api): State<Arc<Api>>,
    hop: Option<Extension<Hop>>,
    asker: Option<Extension<Professional>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query: RightsQuery = serde_json::from_slice(&body).map_err(|e| {
        // The parser's message names a field or a position, never a value.
        ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string())
    })?;
    let key = query
        .beneficiary(&api.pseudonyms)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))?;
    let partition = match bounded(&api, move |api| answer(api, &query, &key)).await? {
        Here::Answered(answer) => return Ok(axum::Json(answer).into_response()),
        Here::HeldElsewhere(partition) => partition,
    };
    let not_owner = || {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "not_owner",
            format!("partition {partition} is served by another instance"),
        )
    };
    // A hop is answered here or not at all; without the table, no forward.
    let (None, Some(owners), Some(peer_key)) = (hop, &api.owners, &api.peer_key) else {
        return Err(not_owner());
    };
    let hop = peer_key.header(asker.as_ref().map(|a| &a.0), "POST", PATH, &body);
    // The table as last read, then read again once if it was stale (no
    // owner known, or one that no longer holds the partition).
    for fresh in [false, true] {
        if fresh {
            let reading = api.clone();
            api.readers
                .run(move || owners_refresh(&reading))
                .await
                .map_err(ApiError::refused)??;
        }
        let owner = owners
            .owner(StageKind::Entitlement, partition)
            .filter(|address| address != owners.own_address());
        let Some(address) = owner else {
            continue;
        };
        let forwarded = api
            .peers
            .forward(
                &address,
                PATH,
                &hop,
                body.clone(),
                api.limits.forward_timeout,
                api.limits.body_bytes,
            )
            .await;
        match forwarded {
            Ok(Forwarded::Answer(answer)) => return Ok(answer),
            Ok(Forwarded::NotOwner) => {}
            // Unreachable, perhaps gone: the table is read again first.
            Err(e) if fresh => return Err(e),
            Err(_) => {}
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "owner_unknown",
        format!("no instance is known to hold partition {partition} now; retry"),
    ))
}

/// The route, as a hop names it.
const PATH: &str = "/v1/rights";

fn owners_refresh(api: &Api) -> Result<(), ApiError> {
    match &api.owners {
        Some(owners) => owners
            .refresh(api.bus.as_ref())
            .map_err(ApiError::unavailable),
        None => Ok(()),
    }
}

/// A look-up's end in this instance.
enum Here {
    Answered(RightsAnswer),
    /// The beneficiary's partition is not held here.
    HeldElsewhere(u32),
}

fn answer(api: &Api, query: &RightsQuery, key: &BeneficiaryKey) -> Result<Here, ApiError> {
    // Where ref.rights puts the key, hence which entitlement partition holds it.
    let partitions = api
        .bus
        .partition_count(topics::REF_RIGHTS)
        .map_err(ApiError::unavailable)?;
    let partition = partition_of(key.as_str().as_bytes(), partitions);
    let Some(found) = api
        .directory
        .read(StageKind::Entitlement, partition, |store| {
            fresh_rights(api, store, key, partition, query)
        })
    else {
        return Ok(Here::HeldElsewhere(partition));
    };
    let (rights, rights_offset) = found?;
    let rights = rights.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_beneficiary",
            "no rights are known for this beneficiary",
        )
    })?;
    Ok(Here::Answered(RightsAnswer {
        beneficiary: key.as_str().to_string(),
        date: query.date,
        rights,
        as_of: AsOf {
            partition,
            rights_offset,
        },
    }))
}

/// The rights from the partition's store and the `ref.rights` records it
/// has yet to apply (read here, up to the partition's end), and that end.
fn fresh_rights(
    api: &Api,
    store: &dyn StateRead,
    key: &BeneficiaryKey,
    partition: u32,
    query: &RightsQuery,
) -> Result<(Option<RightsOnDate>, u64), ApiError> {
    let applied = rights_position(&StateTxn::new(store)).map_err(ApiError::unavailable)?;
    let end = api
        .bus
        .end_offset(topics::REF_RIGHTS, partition)
        .map_err(ApiError::unavailable)?;
    if query.min_rights_offset.is_some_and(|wanted| wanted > end) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_yet_published",
            format!("ref.rights partition {partition} ends at {end}"),
        ));
    }
    if end.saturating_sub(applied) > MAX_PENDING {
        return Err(ApiError::unavailable(format!(
            "the entitlement state is {} ref.rights records behind",
            end - applied
        )));
    }
    let pending = api
        .pending
        .for_key(
            api.bus.as_ref(),
            &api.registry,
            partition,
            applied,
            end,
            key.as_str().as_bytes(),
        )
        .map_err(ApiError::unavailable)?;
    let rights = rights_with_pending(store, pending, &api.pseudonyms, key, query.date)
        .map_err(ApiError::unavailable)?;
    Ok((rights, end))
}

/// Reads each held partition's unapplied `ref.rights` ahead of the
/// look-ups ([`super::pending`]), from `clearing serve`'s `rights-backlog`
/// thread: the first look-ups of a partition then do not wait for its whole
/// backlog to be read. A failure is left to the look-ups, which read (and
/// report) themselves.
pub fn read_backlogs(api: &Api) {
    for partition in api.directory.partitions(StageKind::Entitlement) {
        let applied = api
            .directory
            .read(StageKind::Entitlement, partition, |store| {
                rights_position(&StateTxn::new(store))
            });
        let (Some(Ok(applied)), Ok(end)) =
            (applied, api.bus.end_offset(topics::REF_RIGHTS, partition))
        else {
            continue;
        };
        // Too far behind: the look-ups are refused, nothing to read ahead.
        if end.saturating_sub(applied) <= MAX_PENDING {
            let _ = api
                .pending
                .advance(api.bus.as_ref(), &api.registry, partition, applied, end);
        }
    }
}
