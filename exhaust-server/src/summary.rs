//! A built batch at a glance: the [`BatchSummary`] stored beside its
//! report ([`summary_key`]), read for the console's batch page and served
//! as JSON at `GET /dataset/v1/request/summary/{tag}?requestId=&batchId=`,
//! authenticated and authorised exactly as read is (the caller's channel
//! is the request's, so no summary crosses channels).

use crate::auth::Identity;
use crate::envelope::{Reply, ResponseCode, api_id};
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use exhaust_core::request::{JobRequest, stored_tag};
use exhaust_core::store::RequestStore;
use exhaust_core::summary::{BatchSummary, summary_key};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

/// What looking for a batch's summary found.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// The summary.
    Summary(Box<BatchSummary>),
    /// The request has not built this batch.
    NotBuilt,
    /// The batch was built, and no summary is stored beside it (built
    /// before summaries existed, or its files are protected).
    NotStored,
}

/// Why a summary could not be read (the cause is for the log).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The storage failed.
    #[error("reading the summary: {0}")]
    Storage(#[from] exhaust_writer::StorageError),
    /// What is stored is not a summary this build reads.
    #[error(transparent)]
    Invalid(#[from] exhaust_core::summary::SummaryReadError),
}

/// The summary of `batch_id` of the request `row`, from the storage.
pub async fn load(state: &AppState, row: &JobRequest, batch_id: &str) -> Result<Found, LoadError> {
    let Ok(processed) = row.processed() else {
        return Ok(Found::NotBuilt);
    };
    let Some(built) = processed.iter().find(|p| p.batch_id == batch_id) else {
        return Ok(Found::NotBuilt);
    };
    let key = summary_key(&built.file_path);
    match state.storage().get(&key).await? {
        Some(bytes) => Ok(Found::Summary(Box::new(BatchSummary::from_json(&bytes)?))),
        None => Ok(Found::NotStored),
    }
}

/// The query of the summary route (for the OpenAPI document; the handler
/// reads the pairs itself, the first of a repeated one).
#[derive(Debug, Clone, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// The request id (required: 400 without it).
    #[param(rename = "requestId")]
    pub request_id: String,
    /// The batch, one the request built (required: 400 without it).
    #[param(rename = "batchId")]
    pub batch_id: String,
}

/// The result of the summary route.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryResult {
    /// The request.
    pub request_id: String,
    /// The batch.
    pub batch_id: String,
    /// The batch at a glance: counts only (`exhaust_core::summary::BatchSummary`).
    #[schema(value_type = Object)]
    pub summary: BatchSummary,
}

fn first(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// A built batch of a request at a glance.
///
/// Learners by progress band, each unit's completion, each assessment's
/// score distribution, enrolments and completions over time and
/// certificate status, as counted while the batch's report was written.
/// Counts only: no learner's row. Stored beside plain files only.
#[utoipa::path(
    get,
    path = "/dataset/v1/request/summary/{tag}",
    tag = "Data Exhaust",
    params(
        ("tag" = String, Path, description = "The client's tag; the server appends `:<X-Channel-ID>`", min_length = 1),
        SummaryQuery,
        ("X-Channel-ID" = String, Header, description = "The requesting org (required; blank counts as missing: 403): at most 256 characters", min_length = 1, max_length = 256, pattern = r"^[\t\x20-\x7e]*[\x21-\x7e][\t\x20-\x7e]*$"),
    ),
    responses(
        (status = 200, description = "The summary", body = crate::envelope::Envelope<SummaryResult>),
        (status = 400, description = "CLIENT_ERROR: `requestId and batchId are required`, a path that does not decode as UTF-8, or an X-Channel-ID longer than 256 characters", body = crate::envelope::ErrorEnvelope),
        (status = 401, description = "UNAUTHORIZED: no valid credentials (as read)", body = crate::envelope::ErrorEnvelope,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "FORBIDDEN: `X-Channel-ID is missing in request header`, or credentials that do not allow the channel (as read)", body = crate::envelope::ErrorEnvelope),
        (status = 404, description = "RESOURCE_NOT_FOUND: no such request of the channel, a batch it has not built, or no summary stored for the batch", body = crate::envelope::ErrorEnvelope),
        (status = 408, description = "REQUEST_TIMEOUT: the call took longer than the server allows", body = crate::envelope::ErrorEnvelope),
        (status = 503, description = "SERVICE_UNAVAILABLE: the server is at its limit of calls in flight", body = crate::envelope::ErrorEnvelope),
        (status = 500, description = "SERVER_ERROR: the store or the storage failed", body = crate::envelope::ErrorEnvelope),
    ),
    security((), ("bearer" = []), ("userToken" = []), ("consumer" = []))
)]
pub async fn summary(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    tag: Result<Path<String>, PathRejection>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Reply {
    let id = api_id::SUMMARY;
    let now = state.now();
    let tag = match tag {
        Ok(Path(t)) => t,
        Err(e) => return crate::api::bad_path(id, now, &e),
    };
    let channel = match crate::api::required_channel(&headers, id, now) {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let (Some(request_id), Some(batch_id)) = (first(&pairs, "requestId"), first(&pairs, "batchId"))
    else {
        return Reply::error(
            id,
            now,
            ResponseCode::ClientError,
            "requestId and batchId are required",
        );
    };
    if let Err(failure) = state
        .auth()
        .authorize(state.store(), &identity, &channel)
        .await
    {
        return crate::ops::auth_failed(&state, id, &failure);
    }
    let row = match state
        .store()
        .get(&stored_tag(&tag, &channel), &request_id)
        .await
    {
        Ok(Some(r)) if r.requested_channel == channel => r,
        Ok(_) => {
            return Reply::error(
                id,
                now,
                ResponseCode::ResourceNotFound,
                "no job available with the given request_id and tag",
            );
        }
        Err(e) => {
            state.metrics().store_error();
            tracing::error!(api = id, error = %e, "request store failed");
            return Reply::error(
                id,
                now,
                ResponseCode::ServerError,
                "the request store failed; try again later",
            );
        }
    };
    match load(&state, &row, &batch_id).await {
        Ok(Found::Summary(summary)) => {
            tracing::info!(request_id = %row.request_id, batch_id = %batch_id, "summary read");
            Reply::ok(
                id,
                now,
                SummaryResult {
                    request_id: row.request_id,
                    batch_id,
                    summary: *summary,
                },
            )
        }
        Ok(Found::NotBuilt) => Reply::error(
            id,
            now,
            ResponseCode::ResourceNotFound,
            "the request has not built this batch",
        ),
        Ok(Found::NotStored) => Reply::error(
            id,
            now,
            ResponseCode::ResourceNotFound,
            "no summary is stored for this batch",
        ),
        Err(e) => {
            tracing::error!(api = id, error = %e, "reading a summary failed");
            Reply::error(
                id,
                now,
                ResponseCode::ServerError,
                "the summary could not be read; try again later",
            )
        }
    }
}
