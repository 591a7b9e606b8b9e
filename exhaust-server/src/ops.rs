//! The routes around the API: signed downloads, health, metrics, the
//! OpenAPI document, and the middlewares (authentication, the server's
//! limits, call counts and access logs).

use crate::api::bad_path;
use crate::auth::AuthFailure;
use crate::download::{TokenError, file_name};
use crate::envelope::{Reply, ResponseCode, api_id};
use crate::health::{CheckError, Health, part, summarise};
use crate::state::AppState;
use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use exhaust_core::auth::Denied;
use exhaust_core::request::RequestStatus;
use exhaust_core::store::{RequestStore, StoreError};
use exhaust_writer::StorageError;
use std::sync::Arc;
use std::time::Instant;
use utoipa::ToSchema;

/// The body of a download, for the OpenAPI document: the zip's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct ZipFile(Vec<u8>);

/// The OpenAPI document as served.
#[derive(Debug, Clone)]
pub struct OpenApiJson(pub Arc<String>);

/// Downloads a file through a signed link (local storage).
///
/// The link's token holds the file's key and an expiry, signed with the
/// server's download secret. Tampered, foreign or expired tokens get 403.
#[utoipa::path(
    get,
    path = "/dataset/v1/download/{token}",
    tag = "Downloads",
    params(("token" = String, Path, description = "The token of a link from `downloadUrls`", min_length = 1)),
    responses(
        (status = 200, description = "The zip, streamed", content_type = "application/zip", body = ZipFile,
            headers(
                ("Content-Disposition" = String, description = "`attachment; filename=\"<batchId>_progress_<yyyyMMdd>.zip\"`"),
                ("Content-Length" = u64, description = "The zip's size in bytes"),
            )),
        (status = 400, description = "CLIENT_ERROR: a path that does not decode as UTF-8", body = crate::envelope::ErrorEnvelope),
        (status = 403, description = "FORBIDDEN: tampered, wrongly signed or expired token", body = crate::envelope::ErrorEnvelope),
        (status = 404, description = "RESOURCE_NOT_FOUND: the file is gone, or no route (an empty token)", body = crate::envelope::ErrorEnvelope),
        (status = 500, description = "SERVER_ERROR: the storage failed", body = crate::envelope::ErrorEnvelope),
    )
)]
pub async fn download(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let id = api_id::DOWNLOAD;
    let now = state.now();
    let token = match token {
        Ok(Path(t)) => t,
        Err(e) => return bad_path(id, now, &e).into_response(),
    };
    let key = match state.downloads().verify(&token, now) {
        Ok(k) => k,
        Err(e) => {
            let reason = match e {
                TokenError::Malformed => "malformed",
                TokenError::BadSignature => "bad signature",
                TokenError::Expired => "expired",
            };
            tracing::info!(reason, "download refused");
            return Reply::error(id, now, ResponseCode::Forbidden, e.to_string()).into_response();
        }
    };
    match state.storage().open(&key).await {
        Ok(Some(file)) => {
            tracing::info!(bytes = file.size, "download served");
            let disposition = format!("attachment; filename=\"{}\"", file_name(&key));
            // Streamed from the store: a large report is never held whole.
            let mut response =
                (StatusCode::OK, axum::body::Body::from_stream(file.chunks)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        Ok(None) => Reply::error(
            id,
            now,
            ResponseCode::ResourceNotFound,
            "the file is no longer stored",
        )
        .into_response(),
        Err(StorageError::BadKey { .. }) => Reply::error(
            id,
            now,
            ResponseCode::Forbidden,
            "the download link is not valid",
        )
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "download failed");
            Reply::error(
                id,
                now,
                ResponseCode::ServerError,
                "the file could not be read; try again later",
            )
            .into_response()
        }
    }
}

/// Liveness: the process serves HTTP. Nothing else is asked (a database
/// outage must not restart every pod): 200 `{"status":"up"}` whenever the
/// server can answer at all.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "Operations",
    responses((status = 200, description = "The process serves", content_type = "application/json", body = Object))
)]
pub async fn livez() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "status": "up" })),
    )
        .into_response()
}

/// Readiness: whether the request store, the storage and the report source
/// answer, as `/health` says it (each part by its kind); 503 naming the
/// part that is down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "Operations",
    responses(
        (status = 200, description = "Every part is up", content_type = "application/json", body = Health),
        (status = 503, description = "Some part is down, named by its kind", content_type = "application/json", body = Health),
    )
)]
pub async fn readyz(state: State<AppState>) -> Response {
    health(state).await
}

/// Whether the request store, the storage and the report source answer
/// (Sunbird's callers use this path; orchestrators use `/livez` and
/// `/readyz`).
#[utoipa::path(
    get,
    path = "/health",
    tag = "Operations",
    responses(
        (status = 200, description = "Every part is up", content_type = "application/json", body = Health),
        (status = 503, description = "Some part is down", content_type = "application/json", body = Health),
    )
)]
pub async fn health(State(state): State<AppState>) -> Response {
    let store = part("store", state.store().kind().to_string(), async {
        state.store().ping().await.map_err(|e| {
            let public = match e {
                StoreError::Unavailable(_) => "unreachable",
                StoreError::BadData(_) | StoreError::Refused(_) => "refused",
            };
            CheckError::new(public, e)
        })
    });
    // Kinds only: this route is open, so no paths, buckets or hosts.
    let storage_kind = match state.storage().local_root() {
        Some(_) => "local folder".to_string(),
        None => state
            .storage()
            .describe()
            .split_whitespace()
            .next()
            .unwrap_or("cloud")
            .to_string(),
    };
    let storage = part("storage", storage_kind, async {
        // object_store lists a missing local folder as empty, so its ping
        // alone would call a deleted folder healthy.
        if let Some(root) = state.storage().local_root() {
            let root = root.to_path_buf();
            let shown = root.display().to_string();
            let is_dir = tokio::task::spawn_blocking(move || root.is_dir())
                .await
                .unwrap_or(false);
            if !is_dir {
                return Err(CheckError::new(
                    "the storage folder is gone",
                    format!("{shown} is not a folder"),
                ));
            }
        }
        state
            .storage()
            .ping()
            .await
            .map_err(|e| CheckError::new("unreachable", e))
    });
    let source = part("source", state.source().describe(), state.source().check());
    let (store, storage, source) = tokio::join!(store, storage, source);
    let health = summarise(store, storage, source);
    // Each failure was logged in full by `part`.
    for (name, p) in [
        ("store", &health.store),
        ("storage", &health.storage),
        ("source", &health.source),
    ] {
        if p.status != "up" {
            state.metrics().health_failure(name);
        }
    }
    let code = if health.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(health)).into_response()
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Operations",
    responses((status = 200, description = "Metrics in the OpenMetrics text format", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics().refresh_process();
    // One COUNT ... GROUP BY, whatever the table's size.
    match state.store().count_by_status().await {
        Ok(counts) => {
            for status in [
                RequestStatus::Submitted,
                RequestStatus::Processing,
                RequestStatus::Success,
                RequestStatus::Failed,
            ] {
                state.metrics().set_status_count(status, counts.get(status));
            }
        }
        Err(e) => {
            state.metrics().store_error();
            tracing::warn!(error = %e, "counting requests by status failed");
        }
    }
    let mut response = state.metrics().encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "Operations",
    responses((status = 200, description = "The OpenAPI document of this server", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    let mut response = doc.0.as_str().to_owned().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Any path no route serves: 404 in Sunbird's envelope (not an empty body),
/// so every answer of this server is documented JSON or a zip.
pub async fn no_route(State(state): State<AppState>) -> Response {
    Reply::error(
        api_id::NO_ROUTE,
        state.now(),
        ResponseCode::ResourceNotFound,
        "no route serves this path",
    )
    .into_response()
}

/// The API id for an API path, for envelopes written by middleware.
fn api_id_of(path: &str) -> &'static str {
    if path.contains("/request/read/") {
        api_id::READ
    } else if path.contains("/request/list/") {
        api_id::LIST
    } else if path.contains("/request/summary/") {
        api_id::SUMMARY
    } else {
        api_id::SUBMIT
    }
}

/// Authenticates every call of the Data Exhaust routes before its body is
/// read or any store is asked for a request (see [`crate::auth`]): the
/// caller's [`Identity`] goes into the request's extensions for the
/// handler, which authorises it for the call's channel. No valid
/// credentials: 401 in Sunbird's envelope (with `WWW-Authenticate: Bearer`
/// in `token` mode).
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = api_id_of(req.uri().path());
    match state
        .auth()
        .authenticate(state.store(), req.headers())
        .await
    {
        Ok(identity) => {
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(failure) => {
            let reply = auth_failed(&state, id, &failure);
            if state.auth().uses_bearer() && reply.status() == StatusCode::UNAUTHORIZED {
                reply
                    .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
                    .into_response()
            } else {
                reply.into_response()
            }
        }
    }
}

/// The envelope of a refused or unverifiable call: 401 or 403 with the
/// rule's message; 500 when what authorisation reads did not answer (the
/// cause is logged, not returned).
pub fn auth_failed(state: &AppState, id: &str, failure: &AuthFailure) -> Reply {
    let now = state.now();
    match failure {
        AuthFailure::Denied(Denied::Unauthenticated(m)) => {
            tracing::info!(api = id, "call refused: not authenticated");
            Reply::error(id, now, ResponseCode::Unauthorized, m.clone())
        }
        AuthFailure::Denied(Denied::Forbidden(m)) => {
            tracing::info!(api = id, "call refused: not authorised for the channel");
            Reply::error(id, now, ResponseCode::Forbidden, m.clone())
        }
        AuthFailure::Unavailable(cause) => {
            state.metrics().store_error();
            tracing::error!(api = id, error = %cause, "authorisation could not be checked");
            Reply::error(
                id,
                now,
                ResponseCode::ServerError,
                "authorisation could not be checked; try again later",
            )
        }
    }
}

/// Answers a call that the server's limits stopped (see `crate::app`): 408
/// when it took longer than the request timeout, 503 when the server was
/// at its limit of calls in flight, in Sunbird's envelope.
pub async fn limit_reached(uri: axum::http::Uri, error: tower::BoxError) -> Response {
    let id = api_id_of(uri.path());
    let now = chrono::Utc::now();
    if error.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!(api = id, "call cut at the request timeout");
        Reply::error(
            id,
            now,
            ResponseCode::RequestTimeout,
            "the call took longer than the server allows; try again later",
        )
        .into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!(api = id, "call refused: too many calls in flight");
        Reply::error(
            id,
            now,
            ResponseCode::ServiceUnavailable,
            "the server is busy; try again later",
        )
        .into_response()
    } else {
        tracing::error!(api = id, error = %error, "call failed in the server's middleware");
        Reply::error(
            id,
            now,
            ResponseCode::ServerError,
            "the call could not be served; try again later",
        )
        .into_response()
    }
}

/// Counts each call by route template and status, and logs it (method,
/// route template, status, time: never the path, query or headers).
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.run(req).await;
    let code = response.status().as_u16();
    state.metrics().api_call(&route, code);
    state
        .metrics()
        .call_duration(&route, started.elapsed().as_secs_f64());
    tracing::info!(
        method = %method,
        route = %route,
        status = code,
        ms = started.elapsed().as_millis() as u64,
        "http"
    );
    response
}
