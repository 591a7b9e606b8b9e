//! Sunbird's Data Exhaust API (reference 1): submit, read and list, with
//! Sunbird's envelope, result fields, messages and status codes. Every rule
//! is the library's: validation and the request id are
//! [`NewRequest::into_job_request`], resubmission is [`RequestStore::submit`];
//! this module reads the HTTP request and writes the response.
//!
//! `encryptionKey` is taken from the body and handed to the store; it is
//! never returned, logged or echoed in an error message.

use crate::auth::Identity;
use crate::download::object_key;
use crate::envelope::{Envelope, Reply, ResponseCode, api_id};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use exhaust_core::request::{
    JobRequest, MAX_CHANNEL_CHARS, NewRequest, RequestStatus, SubmitError, stored_tag,
    with_output_format,
};
use exhaust_core::store::{RequestStore, StoreError, Submission};
use exhaust_core::typed::OutputFormat;
use exhaust_writer::StorageError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// The list limit when none is given (`data_exhaust.list.limit`).
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// The largest list limit: each listed request is read and its links
/// signed, so one call's work stays bounded. (Sunbird's route reads any
/// Java `Int`; a portal asks for its default of 100.)
pub const MAX_LIST_LIMIT: u64 = 1000;

/// The header naming the requesting org.
pub const CHANNEL_HEADER: &str = "X-Channel-ID";

/// `jobStats`: submission time always; completion time and execution time
/// for SUCCESS and FAILED requests (absent when not recorded).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStats {
    /// `dt_job_submitted`, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dt_job_submitted: Option<i64>,
    /// `dt_job_completed`, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dt_job_completed: Option<i64>,
    /// `execution_time`, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_time: Option<i64>,
}

/// A request as the API shows it (Sunbird's `JobResponse`). The encryption
/// key is not part of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobResponse {
    /// The request id.
    pub request_id: String,
    /// The stored tag, `<tag>:<channel>`.
    pub tag: String,
    /// `job_id`.
    pub dataset: String,
    /// The requesting user.
    pub requested_by: String,
    /// The requesting org.
    pub requested_channel: String,
    /// `SUBMITTED`, `PROCESSING`, `SUCCESS` or `FAILED`.
    pub status: String,
    /// `dt_job_completed` when set, else `dt_job_submitted`, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<i64>,
    /// `request_data`.
    #[schema(value_type = Object)]
    pub dataset_config: Value,
    /// `iteration`: failed attempts so far.
    pub attempts: i32,
    /// Times.
    pub job_stats: JobStats,
    /// Signed links to the files (SUCCESS or FAILED with stored files;
    /// otherwise empty).
    pub download_urls: Vec<String>,
    /// When the links expire: now + the link expiry, epoch ms.
    pub expires_at: i64,
    /// `err_message`, or empty.
    pub status_message: String,
}

/// The result of list: `{count, jobs}`, newest submission first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListResult {
    /// How many jobs follow.
    pub count: usize,
    /// The jobs.
    pub jobs: Vec<JobResponse>,
}

/// The pattern of a text the API trims before checking it is not empty:
/// at least one character that is not white space, with Rust's meaning of
/// white space (`char::is_whitespace`), spelled out so that every regex
/// dialect (ECMA in the document, Python's in schemathesis) reads it alike.
pub const NOT_BLANK: &str =
    r"[^\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// The pattern of `tag` and `dataset`: no NUL anywhere, and at least one
/// character that is neither NUL nor white space ([`NOT_BLANK`]'s class).
pub const FIELD_PATTERN: &str = r"^[^\u0000]*[^\u0000\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$";

/// The pattern of the other text fields: no NUL.
pub const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

/// The pattern of `X-Channel-ID`: visible ASCII, spaces and tabs (what an
/// HTTP header value can hold as text), with at least one visible character.
pub const CHANNEL_PATTERN: &str = r"^[\t\x20-\x7e]*[\x21-\x7e][\t\x20-\x7e]*$";

/// The submit body (for the OpenAPI document; the handler reads the JSON
/// itself, so that errors never echo a value of the body).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SubmitBody {
    /// Sunbird's API id: any value, not read.
    #[schema(value_type = Option<Value>)]
    id: Option<Value>,
    /// Version: any value, not read.
    #[schema(value_type = Option<Value>)]
    ver: Option<Value>,
    /// Time: any value, not read.
    #[schema(value_type = Option<Value>)]
    ts: Option<Value>,
    /// `{"msgid": ...}`: any value, not read.
    #[schema(value_type = Option<Value>)]
    params: Option<Value>,
    /// The request.
    request: SubmitRequest,
}

/// The `request` of a submit body. `tag`, `dataset` and `datasetConfig`
/// are checked in that order (`tag is empty`, `dataset is empty`,
/// `datasetConfig is empty`: 400); a text field of another type than
/// string is refused (400) without echoing its value.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SubmitRequest {
    /// The client's tag (stored as `<tag>:<X-Channel-ID>`): not empty or
    /// white space only, at most 256 characters, no NUL.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    )]
    tag: String,
    /// The requesting user (absent or null: empty): at most 256
    /// characters, no NUL.
    #[schema(max_length = 256, pattern = r"^[^\u0000]*$")]
    requested_by: Option<String>,
    /// `progress-exhaust` (any other dataset is stored for its own job):
    /// not empty or white space only, at most 64 characters, no NUL.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    )]
    dataset: String,
    /// What to build: at least one key.
    dataset_config: DatasetConfig,
    /// The key protecting the files (as Sunbird's course service sends it):
    /// at most 1024 characters, no NUL. Stored, never returned.
    #[schema(max_length = 1024, pattern = r"^[^\u0000]*$")]
    encryption_key: Option<String>,
    /// The file format (Sunbird accepts and ignores the field): `csv` when
    /// absent or null; `parquet`, `arrow` and `xlsx` too in builds that
    /// write them (`exhaust_writer::format_available`). Any case, white
    /// space around it ignored; any other value: 400.
    #[schema(schema_with = output_format_schema)]
    output_format: Option<String>,
}

/// `datasetConfig`: an object with at least one key. The progress exhaust
/// reads `batchId`, `batchFilter` or `searchFilter` (and `type` goes into
/// the request id); they are checked when the request is built, not at
/// submission, as by Sunbird, so other keys and values are stored as sent.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase", min_properties = 1)]
#[allow(dead_code)]
pub struct DatasetConfig {
    /// One batch id: as a string, at most 256 characters and no NUL
    /// (another type is stored, and refused when the request is built).
    #[schema(schema_with = batch_id_schema)]
    batch_id: Option<Value>,
    /// A list of batch ids: at most 1000, each string at most 256
    /// characters and no NUL.
    #[schema(schema_with = batch_filter_schema)]
    batch_filter: Option<Value>,
    /// A full search body, `{"request": {"filters": ...}}`.
    #[schema(value_type = Option<Value>)]
    search_filter: Option<Value>,
    /// A dataset sub-id: when a string, it is part of the request id.
    #[schema(value_type = Option<Value>, rename = "type")]
    kind: Option<Value>,
}

/// The schema of `outputFormat`: null, or the name of a format this build
/// writes, in any case, with white space around it. The formats come from
/// the writer's one list (`exhaust_writer::format_available`).
fn output_format_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    const WS: &str =
        r"[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*";
    // Each name as a case-insensitive pattern: `csv` is `[cC][sS][vV]`.
    let names: Vec<String> = OutputFormat::ALL
        .iter()
        .filter(|f| exhaust_writer::format_available(**f))
        .map(|f| {
            f.as_str()
                .chars()
                .map(|c| format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()))
                .collect()
        })
        .collect();
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(format!("^{WS}({}){WS}$", names.join("|"))))
        .into()
}

/// The schema of one id of `datasetConfig`: a string of at most 256
/// characters without NUL, or any value of another type (which the job
/// refuses when it builds the request, as Sunbird's does).
fn batch_id_schema() -> utoipa::openapi::Schema {
    batch_id_any_of().into()
}

fn batch_id_any_of() -> utoipa::openapi::schema::AnyOfBuilder {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, SchemaType, Type};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(exhaust_core::request::MAX_BATCH_ID_CHARS))
                .pattern(Some(r"^[^\u0000]*$")),
        )
        .item(ObjectBuilder::new().schema_type(SchemaType::from_iter([
            Type::Number,
            Type::Boolean,
            Type::Object,
            Type::Array,
            Type::Null,
        ])))
}

/// The schema of `batchFilter`: a list of at most 1000 ids (each as
/// [`batch_id_schema`]), or any value of another type.
fn batch_filter_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType, Type};
    AnyOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(batch_id_any_of())
                .max_items(Some(exhaust_core::request::MAX_BATCH_FILTER_IDS)),
        )
        .item(ObjectBuilder::new().schema_type(SchemaType::from_iter([
            Type::Number,
            Type::Boolean,
            Type::Object,
            Type::String,
            Type::Null,
        ])))
        .into()
}

/// The refusals every Data Exhaust route shares (authentication,
/// authorisation and the server's limits), for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// No valid credentials.
    #[response(
        status = 401,
        description = "UNAUTHORIZED: no valid credentials: in `[auth]` mode `token` an API token missing, unknown or revoked; in mode `sunbird` a user token that does not verify",
        headers(("WWW-Authenticate" = String, description = "`Bearer`"))
    )]
    Unauthorized(crate::envelope::ErrorEnvelope),
    /// Not allowed for the channel.
    #[response(
        status = 403,
        description = "FORBIDDEN: `X-Channel-ID is missing in request header`, or credentials that do not allow the channel (a token of another channel; Sunbird's `Given X-Consumer-ID=... are not authorized` or `You are not authorized.`)"
    )]
    Forbidden(crate::envelope::ErrorEnvelope),
    /// Too slow.
    #[response(
        status = 408,
        description = "REQUEST_TIMEOUT: the call took longer than the server allows"
    )]
    Timeout(crate::envelope::ErrorEnvelope),
    /// Too many calls in flight.
    #[response(
        status = 503,
        description = "SERVICE_UNAVAILABLE: the server is at its limit of calls in flight"
    )]
    Busy(crate::envelope::ErrorEnvelope),
}

/// Query of read.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// The request id (Sunbird defaults it to empty, which matches no
    /// request). When repeated, the first is used.
    #[serde(rename = "requestId")]
    #[param(rename = "requestId")]
    pub request_id: Option<String>,
}

/// Query of list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Most jobs returned (default 100): a whole number from 0 to 1000
    /// (400 otherwise). When repeated, the first is used.
    #[param(value_type = Option<i32>, minimum = 0, maximum = 1000)]
    pub limit: Option<String>,
}

/// The first value of `name` in a query, as Sunbird's framework reads a
/// repeated parameter (a repeat is not an error).
fn first_value(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

impl ReadQuery {
    /// From the query's pairs.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        Self {
            request_id: first_value(pairs, "requestId"),
        }
    }
}

impl ListQuery {
    /// From the query's pairs.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        Self {
            limit: first_value(pairs, "limit"),
        }
    }
}

/// The `X-Channel-ID` header, when present and not blank.
fn channel(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CHANNEL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

/// The `X-Channel-ID` header, or Sunbird's 403 when it is missing (400
/// when it is longer than a channel may be).
pub fn required_channel(
    headers: &HeaderMap,
    id: &'static str,
    now: DateTime<Utc>,
) -> Result<String, Reply> {
    let channel = channel(headers).ok_or_else(|| {
        Reply::error(
            id,
            now,
            ResponseCode::Forbidden,
            SubmitError::MissingChannel.to_string(),
        )
    })?;
    if channel.chars().count() > MAX_CHANNEL_CHARS {
        return Err(Reply::error(
            id,
            now,
            ResponseCode::ClientError,
            SubmitError::TooLong {
                field: "X-Channel-ID",
                max: MAX_CHANNEL_CHARS,
            }
            .to_string(),
        ));
    }
    Ok(channel)
}

/// Authorises the caller for the call's channel (Sunbird's point: after
/// validation, before the store): the envelope of the refusal otherwise.
async fn authorised(
    state: &AppState,
    id: &'static str,
    identity: &Identity,
    channel: &str,
) -> Result<(), Reply> {
    state
        .auth()
        .authorize(state.store(), identity, channel)
        .await
        .map_err(|failure| crate::ops::auth_failed(state, id, &failure))
}

/// What read and list check first, in Sunbird's order: the path's tag
/// (400 when it does not decode), then the channel header (403 when
/// missing): the client's tag and the channel.
fn tag_and_channel(
    tag: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    id: &'static str,
    now: DateTime<Utc>,
) -> Result<(String, String), Reply> {
    let tag = match tag {
        Ok(Path(t)) => t,
        Err(e) => return Err(bad_path(id, now, &e)),
    };
    Ok((tag, required_channel(headers, id, now)?))
}

/// A path parameter that does not decode (not UTF-8 once unescaped): 400
/// in Sunbird's envelope, instead of the framework's plain-text answer.
pub fn bad_path(id: &str, now: DateTime<Utc>, e: &PathRejection) -> Reply {
    tracing::info!(api = id, status = %e.status(), "path refused");
    Reply::error(
        id,
        now,
        ResponseCode::ClientError,
        "the path is not valid: it must decode as UTF-8 text",
    )
}

fn epoch_ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

/// Sunbird's `_createJobResponse`: the row as the API shows it, with signed
/// links for SUCCESS and FAILED requests that have files.
pub async fn job_response(
    state: &AppState,
    r: &JobRequest,
    now: DateTime<Utc>,
) -> Result<JobResponse, StorageError> {
    let processed = matches!(r.status, RequestStatus::Success | RequestStatus::Failed);
    let job_stats = if processed {
        JobStats {
            dt_job_submitted: epoch_ms(r.dt_job_submitted),
            dt_job_completed: epoch_ms(r.dt_job_completed),
            execution_time: r.execution_time,
        }
    } else {
        JobStats {
            dt_job_submitted: epoch_ms(r.dt_job_submitted),
            dt_job_completed: None,
            execution_time: None,
        }
    };
    let mut download_urls = Vec::new();
    if processed {
        for stored in &r.download_urls {
            let key = object_key(stored);
            download_urls.push(state.downloads().link(state.storage(), &key, now).await?);
        }
    }
    let expiry_ms = i64::try_from(state.downloads().expiry().as_millis()).unwrap_or(i64::MAX);
    Ok(JobResponse {
        request_id: r.request_id.clone(),
        tag: r.tag.clone(),
        dataset: r.job_id.clone(),
        requested_by: r.requested_by.clone(),
        requested_channel: r.requested_channel.clone(),
        status: r.status.as_str().to_string(),
        last_updated: epoch_ms(r.dt_job_completed.or(r.dt_job_submitted)),
        dataset_config: r.request_data.clone(),
        attempts: r.iteration,
        job_stats,
        download_urls,
        expires_at: now.timestamp_millis().saturating_add(expiry_ms),
        status_message: r.err_message.clone().unwrap_or_default(),
    })
}

fn store_failed(state: &AppState, id: &str, now: DateTime<Utc>, e: &StoreError) -> Reply {
    state.metrics().store_error();
    tracing::error!(api = id, error = %e, "request store failed");
    Reply::error(
        id,
        now,
        ResponseCode::ServerError,
        "the request store failed; try again later",
    )
}

fn storage_failed(id: &str, now: DateTime<Utc>, e: &StorageError) -> Reply {
    tracing::error!(api = id, error = %e, "signing download links failed");
    Reply::error(
        id,
        now,
        ResponseCode::ServerError,
        "download links could not be made; try again later",
    )
}

/// A text field of the submit `request`: absent or null is `None`; any
/// other type is refused with a message naming the field, not its value.
fn text_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("request.{name} must be a string")),
    }
}

/// Reads the submit body into a [`NewRequest`] (with an empty channel when
/// the header is absent: validation reports it in Sunbird's order).
/// [`parse_submit`] for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub fn parse_submit_for_fuzzing(
    body: &[u8],
    channel: Option<String>,
) -> Result<NewRequest, String> {
    parse_submit(body, channel)
}

fn parse_submit(body: &[u8], channel: Option<String>) -> Result<NewRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        // serde_json's syntax errors name a position, never the content.
        format!("the request body is not valid JSON: {e}")
    })?;
    let Value::Object(top) = value else {
        return Err("the request body must be a JSON object with a \"request\" object".into());
    };
    let empty = serde_json::Map::new();
    let request = match top.get("request") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err("request must be a JSON object".into()),
    };
    let dataset_config = match request.get("datasetConfig") {
        None => Value::Null,
        Some(v @ (Value::Null | Value::Object(_))) => v.clone(),
        Some(_) => return Err("request.datasetConfig must be a JSON object".into()),
    };
    // Sunbird accepts and ignores `outputFormat`; here it chooses the file
    // format (csv when absent), recorded in request_data unless csv.
    let format = match text_field(request, "outputFormat")? {
        None => OutputFormat::Csv,
        Some(text) => text
            .parse::<OutputFormat>()
            .map_err(|e| format!("request.outputFormat: {e}"))?,
    };
    exhaust_writer::check_format(format).map_err(|e| format!("request.outputFormat: {e}"))?;
    let dataset_config = with_output_format(dataset_config, format);
    Ok(NewRequest {
        tag: text_field(request, "tag")?.unwrap_or_default(),
        dataset: text_field(request, "dataset")?.unwrap_or_default(),
        requested_by: text_field(request, "requestedBy")?.unwrap_or_default(),
        channel: channel.unwrap_or_default(),
        dataset_config,
        encryption_key: text_field(request, "encryptionKey")?,
    })
}

/// Queues a report request.
///
/// Validation runs first (`tag is empty`, `dataset is empty`,
/// `datasetConfig is empty`: 400 CLIENT_ERROR), then the channel (403).
/// A request with the same id and tag is returned as it is, unless it
/// FAILED: then it is queued again and its attempts start again.
#[utoipa::path(
    post,
    path = "/dataset/v1/request/submit",
    tag = "Data Exhaust",
    request_body(content = SubmitBody, content_type = "application/json", description = "Sunbird's submit body"),
    params(
        ("X-Channel-ID" = String, Header, description = "The requesting org (required; blank counts as missing: 403): at most 256 characters", min_length = 1, max_length = 256, pattern = r"^[\t\x20-\x7e]*[\x21-\x7e][\t\x20-\x7e]*$"),
    ),
    responses(
        (status = 200, description = "The request, as stored", body = Envelope<JobResponse>),
        (status = 400, description = "CLIENT_ERROR: `tag is empty`, `dataset is empty`, `datasetConfig is empty` (checked in that order, before the channel), a body that is not JSON, a field of the wrong type, a field longer than its cap (tag and requestedBy 256 characters, encryptionKey 1024, a batch id 256) or holding a NUL character", body = crate::envelope::ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE: a body of more than 65536 bytes", body = crate::envelope::ErrorEnvelope),
        Refusals,
        (status = 500, description = "SERVER_ERROR: the store failed", body = crate::envelope::ErrorEnvelope),
    ),
    security((), ("bearer" = []), ("userToken" = []), ("consumer" = []))
)]
pub async fn submit(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let id = api_id::SUBMIT;
    let now = state.now();
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            return Reply::error(
                id,
                now,
                ResponseCode::PayloadTooLarge,
                format!(
                    "the request body is larger than {} bytes",
                    crate::MAX_BODY_BYTES
                ),
            );
        }
        Err(e) => {
            tracing::info!(status = %e.status(), "submit body could not be read");
            return Reply::error(
                id,
                now,
                ResponseCode::ClientError,
                "the request body could not be read",
            );
        }
    };
    let new = match parse_submit(&body, channel(&headers)) {
        Ok(n) => n,
        Err(message) => return Reply::error(id, now, ResponseCode::ClientError, message),
    };
    let row = match new.into_job_request(now) {
        Ok(r) => r,
        Err(e @ SubmitError::MissingChannel) => {
            return Reply::error(id, now, ResponseCode::Forbidden, e.to_string());
        }
        Err(e) => return Reply::error(id, now, ResponseCode::ClientError, e.to_string()),
    };
    if let Err(reply) = authorised(&state, id, &identity, &row.requested_channel).await {
        return reply;
    }
    let submission = match state.store().submit(&row).await {
        Ok(s) => s,
        Err(e) => return store_failed(&state, id, now, &e),
    };
    let outcome = match &submission {
        Submission::Created(_) => "created",
        Submission::Resubmitted(_) => "resubmitted",
        Submission::Existing(_) => "existing",
    };
    let stored = submission.request();
    tracing::info!(
        request_id = %stored.request_id,
        channel = %stored.requested_channel,
        status = %stored.status,
        outcome,
        "request submitted"
    );
    match job_response(&state, stored, now).await {
        Ok(r) => Reply::ok(id, now, &r),
        Err(e) => storage_failed(id, now, &e),
    }
}

/// Reads one request by tag (the client's, without `:channel`) and id.
///
/// An unknown request answers 200 with `params.status` `failed`,
/// `params.err` `OK` and no result, as Sunbird does.
#[utoipa::path(
    get,
    path = "/dataset/v1/request/read/{tag}",
    tag = "Data Exhaust",
    params(
        ("tag" = String, Path, description = "The client's tag; the server appends `:<X-Channel-ID>`", min_length = 1),
        ReadQuery,
        ("X-Channel-ID" = String, Header, description = "The requesting org (required; blank counts as missing: 403): at most 256 characters", min_length = 1, max_length = 256, pattern = r"^[\t\x20-\x7e]*[\x21-\x7e][\t\x20-\x7e]*$"),
    ),
    responses(
        (status = 200, description = "The request; or, for an unknown one, params.status `failed`, params.err and responseCode `OK`, errmsg `no job available with the given request_id and tag` and no result", body = Envelope<JobResponse>),
        (status = 400, description = "CLIENT_ERROR: a path that does not decode as UTF-8, or an X-Channel-ID longer than 256 characters", body = crate::envelope::ErrorEnvelope),
        Refusals,
        (status = 404, description = "RESOURCE_NOT_FOUND: no route (an empty tag)", body = crate::envelope::ErrorEnvelope),
        (status = 500, description = "SERVER_ERROR: the store failed, or download links could not be made", body = crate::envelope::ErrorEnvelope),
    ),
    security((), ("bearer" = []), ("userToken" = []), ("consumer" = []))
)]
pub async fn read(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    tag: Result<Path<String>, PathRejection>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Reply {
    let id = api_id::READ;
    let now = state.now();
    let (tag, channel) = match tag_and_channel(tag, &headers, id, now) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let query = ReadQuery::from_pairs(&pairs);
    if let Err(reply) = authorised(&state, id, &identity, &channel).await {
        return reply;
    }
    let request_id = query.request_id.unwrap_or_default();
    let row = match state
        .store()
        .get(&stored_tag(&tag, &channel), &request_id)
        .await
    {
        Ok(r) => r,
        Err(e) => return store_failed(&state, id, now, &e),
    };
    let Some(row) = row else {
        // Sunbird's getDataRequest: errorResponse(.., ResponseCode.OK).
        return Reply::error(
            id,
            now,
            ResponseCode::Ok,
            "no job available with the given request_id and tag",
        );
    };
    tracing::info!(request_id = %row.request_id, status = %row.status, "request read");
    match job_response(&state, &row, now).await {
        Ok(r) => Reply::ok(id, now, &r),
        Err(e) => storage_failed(id, now, &e),
    }
}

/// Lists the requests of a tag (the client's, without `:channel`), newest
/// submission first.
#[utoipa::path(
    get,
    path = "/dataset/v1/request/list/{tag}",
    tag = "Data Exhaust",
    params(
        ("tag" = String, Path, description = "The client's tag; the server appends `:<X-Channel-ID>`", min_length = 1),
        ListQuery,
        ("X-Channel-ID" = String, Header, description = "The requesting org (required; blank counts as missing: 403): at most 256 characters", min_length = 1, max_length = 256, pattern = r"^[\t\x20-\x7e]*[\x21-\x7e][\t\x20-\x7e]*$"),
    ),
    responses(
        (status = 200, description = "`{count, jobs}`", body = Envelope<ListResult>),
        (status = 400, description = "CLIENT_ERROR: `limit must be a whole number of 0 or more`, `limit must be at most 1000`, a path that does not decode as UTF-8, or an X-Channel-ID longer than 256 characters", body = crate::envelope::ErrorEnvelope),
        Refusals,
        (status = 404, description = "RESOURCE_NOT_FOUND: no route (an empty tag)", body = crate::envelope::ErrorEnvelope),
        (status = 500, description = "SERVER_ERROR: the store failed, or download links could not be made", body = crate::envelope::ErrorEnvelope),
    ),
    security((), ("bearer" = []), ("userToken" = []), ("consumer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    tag: Result<Path<String>, PathRejection>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Reply {
    let id = api_id::LIST;
    let now = state.now();
    let (tag, channel) = match tag_and_channel(tag, &headers, id, now) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let query = ListQuery::from_pairs(&pairs);
    // Absent: the default. Present, it must be a number, as Sunbird's route
    // binds it to an `Int` (an empty `limit=` is not one).
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIST_LIMIT,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n <= MAX_LIST_LIMIT => usize::try_from(n).unwrap_or(usize::MAX),
            Ok(_) => {
                return Reply::error(
                    id,
                    now,
                    ResponseCode::ClientError,
                    format!("limit must be at most {MAX_LIST_LIMIT}"),
                );
            }
            Err(_) => {
                return Reply::error(
                    id,
                    now,
                    ResponseCode::ClientError,
                    "limit must be a whole number of 0 or more",
                );
            }
        },
    };
    if let Err(reply) = authorised(&state, id, &identity, &channel).await {
        return reply;
    }
    let rows = match state.store().list(&stored_tag(&tag, &channel), limit).await {
        Ok(r) => r,
        Err(e) => return store_failed(&state, id, now, &e),
    };
    let mut jobs = Vec::with_capacity(rows.len());
    for r in &rows {
        match job_response(&state, r, now).await {
            Ok(j) => jobs.push(j),
            Err(e) => return storage_failed(id, now, &e),
        }
    }
    tracing::info!(count = jobs.len(), limit, "requests listed");
    Reply::ok(
        id,
        now,
        ListResult {
            count: jobs.len(),
            jobs,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_name_fields_not_values() {
        let e = parse_submit(
            br#"{"request":{"tag":"t","dataset":"d","datasetConfig":{"batchId":"b"},"encryptionKey":918273645}}"#,
            Some("c".into()),
        )
        .expect_err("a number key");
        assert_eq!(e, "request.encryptionKey must be a string");
        assert!(!e.contains("918273645"));
        let e = parse_submit(b"{\"request\": ", None).expect_err("cut");
        assert!(e.starts_with("the request body is not valid JSON"), "{e}");
        let e = parse_submit(b"[1]", None).expect_err("array");
        assert!(e.contains("JSON object"), "{e}");
        let e = parse_submit(br#"{"request":{"datasetConfig":"b"}}"#, None).expect_err("string");
        assert_eq!(e, "request.datasetConfig must be a JSON object");
    }

    #[test]
    fn a_missing_request_is_an_empty_one() {
        let n = parse_submit(b"{}", None).expect("parses");
        assert_eq!(n.validate().expect_err("empty").to_string(), "tag is empty");
    }
}
