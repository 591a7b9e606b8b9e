//! Sunbird's response envelope (reference 1.6): `id`, `ver`, `ts`,
//! `params{resmsgid, msgid, status, err, errmsg}`, `responseCode` and
//! `result`, written with null fields left out, as Sunbird's NON_NULL JSON
//! writer does.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The API ids of Sunbird's Data Exhaust routes (`APIIds` in Sunbird's
/// `Model.scala`), plus this server's own for the download route.
pub mod api_id {
    /// `POST /dataset/v1/request/submit`.
    pub const SUBMIT: &str = "ekstep.analytics.dataset.request.submit";
    /// `GET /dataset/v1/request/read/{tag}`.
    pub const READ: &str = "ekstep.analytics.dataset.request.info";
    /// `GET /dataset/v1/request/list/{tag}`.
    pub const LIST: &str = "ekstep.analytics.dataset.request.list";
    /// `GET /dataset/v1/download/{token}` (this server's; Sunbird hands out
    /// cloud URLs only).
    pub const DOWNLOAD: &str = "exhaust.dataset.download";
    /// A path no route serves (this server's 404).
    pub const NO_ROUTE: &str = "exhaust.route.unknown";
    /// `GET /dataset/v1/request/summary/{tag}` (this server's: a built
    /// batch at a glance).
    pub const SUMMARY: &str = "exhaust.dataset.request.summary";
}

/// Sunbird's response codes, and the HTTP status each maps to
/// (`BaseController.scala`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseCode {
    /// 200.
    Ok,
    /// 400: the request is invalid.
    ClientError,
    /// 401: no valid credentials (an API token missing or wrong, a user
    /// token that does not verify).
    Unauthorized,
    /// 403: not allowed (no `X-Channel-ID`, credentials that do not allow
    /// the channel, a bad download link).
    Forbidden,
    /// 404.
    ResourceNotFound,
    /// 408: the call took longer than the server allows (Sunbird's
    /// `REQUEST_TIMEOUT`).
    RequestTimeout,
    /// 413: the body is larger than the server reads.
    PayloadTooLarge,
    /// 500: a store or storage failed.
    ServerError,
    /// 503: the server is at its limit of calls in flight.
    ServiceUnavailable,
}

impl ResponseCode {
    /// The text in `responseCode` and `params.err`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::ClientError => "CLIENT_ERROR",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::ResourceNotFound => "RESOURCE_NOT_FOUND",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::ServerError => "SERVER_ERROR",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// The HTTP status.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::Ok => StatusCode::OK,
            Self::ClientError => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::ResourceNotFound => StatusCode::NOT_FOUND,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// `params`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Params {
    /// A random UUID (v4) per response.
    pub resmsgid: String,
    /// Always null in Sunbird, so always left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// `successful` or `failed`.
    pub status: String,
    /// The response code of an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
    /// The message of an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
}

/// The envelope of every API response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    /// The API id (`ekstep.analytics.dataset.request.submit`, `.info`, `.list`).
    pub id: String,
    /// `1.0`.
    pub ver: String,
    /// UTC time, `yyyy-MM-dd'T'HH:mm:ss.SSS+00:00`.
    pub ts: String,
    /// Message ids and the error, if any.
    pub params: Params,
    /// `OK`, `CLIENT_ERROR`, `FORBIDDEN`, ...
    pub response_code: String,
    /// The result; absent on errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
}

/// The shape of every error response, for the OpenAPI document (written by
/// [`Reply::error`]): `params.status` is `failed`, `params.err` and
/// `responseCode` are the response code, `params.errmsg` says why, and there
/// is no `result`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ErrorEnvelope {
    /// The API id (`ekstep.analytics.dataset.request.submit`, `.info`, `.list`;
    /// `exhaust.dataset.download` for downloads).
    id: String,
    /// `1.0`.
    #[schema(pattern = r"^1\.0$")]
    ver: String,
    /// UTC time, `yyyy-MM-dd'T'HH:mm:ss.SSS+00:00`.
    ts: String,
    /// The error.
    params: ErrorParams,
    /// The response code, as in `params.err`.
    response_code: ResponseCode,
}

/// `params` of an error response.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorParams {
    /// A random UUID (v4) per response.
    resmsgid: String,
    /// Always `failed`.
    status: Failed,
    /// The response code.
    err: ResponseCode,
    /// Why the call failed (never a value of the request).
    errmsg: String,
}

/// The one value of `params.status` in an error response.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum Failed {
    /// `failed`.
    #[schema(rename = "failed")]
    Failed,
}

/// Sunbird's `ts`: the Joda pattern `yyyy-MM-dd'T'HH:mm:ss.SSSZZ` in UTC.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

fn params(status: &str, err: Option<&str>, errmsg: Option<String>) -> Params {
    Params {
        resmsgid: uuid::Uuid::new_v4().to_string(),
        msgid: None,
        status: status.into(),
        err: err.map(Into::into),
        errmsg,
    }
}

/// A finished API response: the envelope, serialised (so fields keep
/// their declared order), and its HTTP status.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    extra_headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Reply {
    fn new<T: Serialize>(status: StatusCode, envelope: &Envelope<T>) -> Self {
        let body = serde_json::to_vec(envelope).unwrap_or_else(|e| {
            // Only a non-string map key could fail here; say so in JSON.
            format!("{{\"error\":\"the response could not be written: {e}\"}}").into_bytes()
        });
        Self {
            status,
            body,
            extra_headers: Vec::new(),
        }
    }

    /// A successful response with `result`.
    pub fn ok<T: Serialize>(id: &str, now: DateTime<Utc>, result: T) -> Self {
        Self::new(
            StatusCode::OK,
            &Envelope {
                id: id.into(),
                ver: "1.0".into(),
                ts: timestamp(now),
                params: params("successful", None, None),
                response_code: ResponseCode::Ok.as_str().into(),
                result: Some(result),
            },
        )
    }

    /// Sunbird's `errorResponse(apiId, message, code)`: `params.status`
    /// `failed`, `params.err` and `responseCode` the code, no result, and
    /// the HTTP status of the code.
    pub fn error(
        id: &str,
        now: DateTime<Utc>,
        code: ResponseCode,
        message: impl Into<String>,
    ) -> Self {
        Self::new::<()>(
            code.http_status(),
            &Envelope {
                id: id.into(),
                ver: "1.0".into(),
                ts: timestamp(now),
                params: params("failed", Some(code.as_str()), Some(message.into())),
                response_code: code.as_str().into(),
                result: None,
            },
        )
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.extra_headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.extra_headers {
            headers.insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_have_milliseconds_and_a_utc_offset() {
        let t = Utc
            .with_ymd_and_hms(2024, 1, 15, 10, 0, 0)
            .single()
            .expect("time");
        assert_eq!(timestamp(t), "2024-01-15T10:00:00.000+00:00");
    }

    #[test]
    fn null_fields_are_left_out() {
        let t = Utc::now();
        let ok: serde_json::Value =
            serde_json::from_slice(Reply::ok(api_id::READ, t, serde_json::json!({})).body())
                .expect("json");
        let params = ok["params"].as_object().expect("params");
        assert!(!params.contains_key("msgid"));
        assert!(!params.contains_key("err"));
        assert!(!params.contains_key("errmsg"));
        assert_eq!(params["status"], "successful");
        let err = Reply::error(api_id::SUBMIT, t, ResponseCode::ClientError, "tag is empty");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err: serde_json::Value = serde_json::from_slice(err.body()).expect("json");
        assert!(err.get("result").is_none());
        assert_eq!(err["responseCode"], "CLIENT_ERROR");
        assert_eq!(err["params"]["err"], "CLIENT_ERROR");
        assert_eq!(err["params"]["errmsg"], "tag is empty");
        assert_eq!(err["params"]["status"], "failed");
    }
}
