//! The console: pages for people at `/console`, rendered on the server
//! ([`pages`], maud), with the batch pictures drawn as SVG ([`svg`]), one
//! stylesheet and one small script embedded in the binary, and no build
//! step.
//!
//! Who sees what follows the API's authorisation exactly: every page
//! resolves the viewer's [`Identity`] and channel, then calls the same
//! [`Authorizer::authorize`](crate::auth::Authorizer::authorize) the API
//! calls, before any store or storage read; every list, request and
//! summary read is of that channel only.
//!
//! - `none` (a loopback-only server): `/console?channel=C` chooses the
//!   channel, kept in the session.
//! - `token`: the person pastes an API token once (`/console/sign-in`); the
//!   session keeps the token's id and channel, never the token, and checks
//!   on every page that the token is still valid, so a revoked token's
//!   session stops at once.
//! - `sunbird`: the gateway's headers, as the API reads them, on every
//!   page; the channel is the `X-Channel-ID` header, else one chosen with
//!   `?channel=`.
//!
//! Forms carry a CSRF token ([`session`]) and are refused from another
//! site (`Sec-Fetch-Site: cross-site`, or an `Origin` of another host).
//! Pages are sent with a strict content security policy (the page's own
//! stylesheet and script only), `no-store` and `no-referrer` (download
//! links hold signed tokens).

pub mod pages;
pub mod session;
pub mod svg;

use crate::auth::{AuthFailure, Identity};
use crate::download::{file_name, object_key};
use crate::state::AppState;
use crate::summary::{Found, load};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use exhaust_core::auth::{Caller, Denied};
use exhaust_core::request::{
    JobRequest, NewRequest, PROGRESS_EXHAUST, RequestData, RequestStatus, SubmitError, stored_tag,
    with_output_format,
};
use exhaust_core::store::{ChannelQuery, RequestStore, Submission};
use exhaust_core::typed::OutputFormat;
use maud::Markup;
use pages::{Chrome, FieldErrors, Filters, NewForm, RequestRow, urlencode};
use session::{Keys, SESSION_SECONDS, Session};

/// Requests per page of the list.
pub const PAGE_SIZE: usize = 25;

/// The deepest page of the list (100,000 requests back): each page reads
/// the rows before it in the channel's index, so a page's work stays
/// bounded.
pub const MAX_PAGE: usize = 4000;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The content security policy of every console answer: only the
/// console's own stylesheet, script and forms; inline SVG is markup, not
/// an image.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (outside the API's authentication middleware: the
/// console authenticates each page itself, the same way).
pub fn routes() -> Router<AppState> {
    Router::new()
        // A person who opens the server's address lands on the console.
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/console") }),
        )
        .route("/console", get(requests_page))
        .route("/console/rows", get(rows_fragment))
        .route("/console/new", get(new_page).post(new_submit))
        .route("/console/sign-in", get(sign_in_page).post(sign_in_submit))
        .route("/console/sign-out", post(sign_out))
        .route(
            "/console/requests/{request_id}/batches/{batch_id}",
            get(batch_page),
        )
        .route(
            "/console/requests/{request_id}/batches/{batch_id}/{file}",
            get(figure_csv),
        )
        .route("/console/assets/{file}", get(asset))
}

/// Who is looking, for which channel, once authorised.
struct Viewer {
    channel: String,
    session: Session,
    /// The session changed (new, or a channel chosen): send the cookie.
    changed: bool,
    /// A token session (a sign-out button).
    signed_in: bool,
}

/// Headers every console answer carries.
fn harden(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn secure(state: &AppState) -> bool {
    state.downloads().public_url().starts_with("https://")
}

fn with_cookie(state: &AppState, mut response: Response, session: Option<&Session>) -> Response {
    let value = match session {
        Some(s) => session::set_cookie(
            &Keys::new(state.downloads()).seal(s),
            (s.expires - state.now().timestamp()).min(SESSION_SECONDS),
            secure(state),
        ),
        None => session::set_cookie("", 0, secure(state)),
    };
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

fn html(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    harden(r)
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    harden(r)
}

fn refused(status: StatusCode, title: &str, text: &str) -> Response {
    html(status, pages::message(title, &Chrome::default(), text))
}

/// The session in the request's cookie, or a new one.
fn session_of(state: &AppState, headers: &HeaderMap, now: DateTime<Utc>) -> (Session, bool) {
    let keys = Keys::new(state.downloads());
    match session::cookie_value(headers).and_then(|v| keys.open(v, now)) {
        Some(s) => (s, false),
        None => (Session::fresh(now), true),
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A chosen channel, as the API would take it from `X-Channel-ID`.
fn valid_channel(c: &str) -> Option<String> {
    let c = c.trim();
    (!c.is_empty()
        && c.chars().count() <= exhaust_core::request::MAX_CHANNEL_CHARS
        && c.chars().all(|ch| ch == '\t' || (' '..='~').contains(&ch)))
    .then(|| c.to_string())
}

/// The viewer of a page, authorised for its channel as the API authorises
/// a call; otherwise the answer to give (sign in, choose a channel,
/// refused).
async fn viewer(
    state: &AppState,
    headers: &HeaderMap,
    chosen: Option<&str>,
) -> Result<Viewer, Response> {
    let now = state.now();
    let (mut session, mut changed) = session_of(state, headers, now);
    let auth = state.auth();
    let (identity, channel, signed_in) = match auth.mode_name() {
        "token" => {
            let (Some(id), Some(channel)) = (session.token_id.clone(), session.channel.clone())
            else {
                return Err(with_cookie(
                    state,
                    redirect("/console/sign-in"),
                    changed.then_some(&session),
                ));
            };
            match auth.token_still_valid(state.store(), &id, &channel).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(token_id = %id, "console session ended: the token is revoked or unknown");
                    return Err(with_cookie(state, redirect("/console/sign-in"), None));
                }
                Err(failure) => return Err(unavailable(state, &failure)),
            }
            let identity = Identity::Known(Caller::Token {
                id,
                channel: channel.clone(),
            });
            (identity, channel, true)
        }
        "sunbird" => {
            let identity = match auth.authenticate(state.store(), headers).await {
                Ok(i) => i,
                Err(AuthFailure::Denied(_)) => {
                    return Err(refused(
                        StatusCode::UNAUTHORIZED,
                        "Sign in through your portal",
                        "This console is behind Sunbird's gateway: open it through the portal, \
                         signed in, so that the gateway sends who you are.",
                    ));
                }
                Err(failure) => return Err(unavailable(state, &failure)),
            };
            if let Some(c) = chosen.and_then(valid_channel) {
                session.channel = Some(c);
                changed = true;
            }
            let channel = header_text(headers, crate::api::CHANNEL_HEADER)
                .and_then(valid_channel)
                .or_else(|| session.channel.clone());
            let Some(channel) = channel else {
                return Err(with_cookie(
                    state,
                    html(
                        StatusCode::OK,
                        pages::choose_channel(
                            "The gateway sent no channel (X-Channel-ID): name the org whose requests to show.",
                        ),
                    ),
                    Some(&session),
                ));
            };
            (identity, channel, false)
        }
        _ => {
            if let Some(c) = chosen.and_then(valid_channel) {
                session.channel = Some(c);
                changed = true;
            }
            let Some(channel) = session.channel.clone() else {
                return Err(with_cookie(
                    state,
                    html(
                        StatusCode::OK,
                        pages::choose_channel(
                            "This server trusts whoever reaches it (it listens on this machine only): \
                             name the org whose requests to show, or open /console?channel=<org id>.",
                        ),
                    ),
                    Some(&session),
                ));
            };
            (Identity::Known(Caller::Trusted), channel, false)
        }
    };
    match auth.authorize(state.store(), &identity, &channel).await {
        Ok(()) => Ok(Viewer {
            channel,
            session,
            changed,
            signed_in,
        }),
        Err(AuthFailure::Denied(Denied::Forbidden(m) | Denied::Unauthenticated(m))) => {
            tracing::info!(who = %identity.describe(), "console page refused: not authorised for the channel");
            Err(refused(StatusCode::FORBIDDEN, "Not allowed", &m))
        }
        Err(failure) => Err(unavailable(state, &failure)),
    }
}

fn unavailable(state: &AppState, failure: &AuthFailure) -> Response {
    state.metrics().store_error();
    tracing::error!(failure = ?failure, "console: authorisation could not be checked");
    refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Try again later",
        "Authorisation could not be checked; try again later.",
    )
}

fn store_failed(state: &AppState, e: &dyn std::fmt::Display) -> Response {
    state.metrics().store_error();
    tracing::error!(error = %e, "console: the request store failed");
    refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Try again later",
        "The request store failed; try again later.",
    )
}

impl Viewer {
    fn chrome(&self, state: &AppState, current: &'static str) -> Chrome {
        Chrome {
            channel: Some(self.channel.clone()),
            sign_out: self.signed_in,
            csrf: Keys::new(state.downloads()).csrf(&self.session),
            current,
        }
    }

    /// The answer, with the session cookie when it changed.
    fn answer(&self, state: &AppState, response: Response) -> Response {
        if self.changed {
            with_cookie(state, response, Some(&self.session))
        } else {
            response
        }
    }
}

/// A form post is the console's own: not from another site, and with the
/// session's CSRF token.
fn form_allowed(state: &AppState, headers: &HeaderMap, session: &Session, csrf: &str) -> bool {
    // Browsers say where a form comes from; `same-site` is another
    // origin of the same site, which is not this console either.
    if let Some(site) = header_text(headers, "sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        tracing::info!(site, "console: a form refused: sent from another origin");
        return false;
    }
    // Under `Referrer-Policy: no-referrer` a browser sends `Origin: null`
    // for the console's own forms: only a named origin is compared.
    if let (Some(origin), Some(host)) = (
        header_text(headers, header::ORIGIN.as_str()).filter(|o| *o != "null"),
        header_text(headers, header::HOST.as_str()),
    ) && origin.split_once("://").map(|(_, h)| h) != Some(host)
    {
        tracing::info!("console: a form refused: its origin is another host");
        return false;
    }
    let ok = Keys::new(state.downloads()).csrf_ok(session, csrf);
    if !ok {
        tracing::info!(
            given = !csrf.is_empty(),
            "console: a form refused: not the session's CSRF token"
        );
    }
    ok
}

fn csrf_refused() -> Response {
    refused(
        StatusCode::FORBIDDEN,
        "The form has expired",
        "The form was not sent from this console's page, or it is too old. Open the page again and send it from there.",
    )
}

fn value<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------
// The requests list.

fn filters_of(q: &[(String, String)]) -> Filters {
    let status = value(q, "status").trim().to_ascii_uppercase();
    Filters {
        status: if RequestStatus::parse(&status).is_some() {
            status
        } else {
            String::new()
        },
        tag: value(q, "tag").trim().to_string(),
        page: value(q, "page")
            .parse::<usize>()
            .unwrap_or(1)
            .clamp(1, MAX_PAGE),
    }
}

/// A request as the list shows it: links signed now, the channel's own
/// tag.
async fn row_of(
    state: &AppState,
    r: &JobRequest,
    channel: &str,
    now: DateTime<Utc>,
) -> Result<RequestRow, exhaust_writer::StorageError> {
    let tag = r
        .tag
        .strip_suffix(&format!(":{channel}"))
        .unwrap_or(&r.tag)
        .to_string();
    let finished = matches!(r.status, RequestStatus::Success | RequestStatus::Failed);
    let mut downloads = Vec::new();
    if finished {
        for stored in &r.download_urls {
            let key = object_key(stored);
            let url = state.downloads().link(state.storage(), &key, now).await?;
            downloads.push((file_name(&key), url));
        }
    }
    let batches = match (finished, r.processed()) {
        (true, Ok(list)) => list
            .iter()
            .map(|p| {
                (
                    p.batch_id.clone(),
                    format!(
                        "/console/requests/{}/batches/{}?tag={}",
                        urlencode(&r.request_id),
                        urlencode(&p.batch_id),
                        urlencode(&tag)
                    ),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(RequestRow {
        request_id: r.request_id.clone(),
        tag,
        status: r.status.as_str().to_string(),
        submitted: r.dt_job_submitted,
        completed: r.dt_job_completed,
        attempts: r.iteration,
        message: r.err_message.clone().unwrap_or_default(),
        downloads,
        batches,
        expected: expected_batches(&r.request_data),
    })
}

/// How many batches a request names (`batchFilter`'s length, else 1).
fn expected_batches(data: &serde_json::Value) -> usize {
    data.get("batchFilter")
        .and_then(serde_json::Value::as_array)
        .map_or(1, Vec::len)
        .max(1)
}

/// The page of requests the filters ask for, and whether older ones follow.
async fn listed(
    state: &AppState,
    viewer: &Viewer,
    filters: &Filters,
) -> Result<(Vec<RequestRow>, bool), Response> {
    let now = state.now();
    let query = ChannelQuery {
        channel: viewer.channel.clone(),
        status: RequestStatus::parse(&filters.status),
        tag: (!filters.tag.is_empty()).then(|| stored_tag(&filters.tag, &viewer.channel)),
        offset: (filters.page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE + 1,
    };
    let mut rows = state
        .store()
        .list_channel(&query)
        .await
        .map_err(|e| store_failed(state, &e))?;
    let more = rows.len() > PAGE_SIZE;
    rows.truncate(PAGE_SIZE);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows
        .iter()
        .filter(|r| r.requested_channel == viewer.channel)
    {
        out.push(row_of(state, r, &viewer.channel, now).await.map_err(|e| {
            tracing::error!(error = %e, "console: signing download links failed");
            refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Try again later",
                "Download links could not be made; try again later.",
            )
        })?);
    }
    Ok((out, more))
}

async fn requests_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let chosen = (!value(&q, "channel").is_empty()).then(|| value(&q, "channel"));
    let viewer = match viewer(&state, &headers, chosen).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if chosen.is_some() {
        // The channel is in the session now: a clean address to keep.
        return viewer.answer(&state, redirect("/console"));
    }
    let filters = filters_of(&q);
    let (rows, more) = match listed(&state, &viewer, &filters).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let submitted = value(&q, "submitted");
    let flash = match value(&q, "outcome") {
        "created" => Some(format!("Request {submitted} submitted.")),
        "resubmitted" => Some(format!(
            "Request {submitted} failed before: it is queued again."
        )),
        "existing" => Some(format!(
            "The same request was already made today: request {submitted}, listed below."
        )),
        _ => None,
    }
    .filter(|_| submitted.len() <= 64 && submitted.chars().all(|c| c.is_ascii_alphanumeric()));
    tracing::info!(
        rows = rows.len(),
        page = filters.page,
        "console: requests listed"
    );
    let page = pages::requests(
        &viewer.chrome(&state, "requests"),
        &rows,
        &filters,
        more,
        flash.as_deref(),
    );
    viewer.answer(&state, html(StatusCode::OK, page))
}

/// The table rows alone, for the page's refresh.
async fn rows_fragment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let viewer = match viewer(&state, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match listed(&state, &viewer, &filters_of(&q)).await {
        Ok((rows, _)) => viewer.answer(&state, html(StatusCode::OK, pages::request_rows(&rows))),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------
// A new request.

/// The formats this build writes.
fn formats() -> Vec<&'static str> {
    OutputFormat::ALL
        .iter()
        .filter(|f| exhaust_writer::format_available(**f))
        .map(|f| f.as_str())
        .collect()
}

async fn new_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let viewer = match viewer(&state, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let form = NewForm {
        tag: "console".into(),
        requested_by: "console".into(),
        format: "csv".into(),
        ..NewForm::default()
    };
    let page = pages::new_request(
        &viewer.chrome(&state, "new"),
        &form,
        &Vec::new(),
        &formats(),
        false,
    );
    viewer.answer(&state, html(StatusCode::OK, page))
}

/// The field of the form a submission error is about.
fn field_of(e: &SubmitError) -> &'static str {
    match e {
        SubmitError::EmptyTag => "tag",
        SubmitError::EmptyDataset
        | SubmitError::EmptyDatasetConfig
        | SubmitError::TooManyIds(_) => "batches",
        SubmitError::MissingChannel => "tag",
        SubmitError::TooLong { field, .. } | SubmitError::Nul { field } => match *field {
            "tag" => "tag",
            "requestedBy" => "requestedBy",
            "encryptionKey" => "key",
            _ => "batches",
        },
    }
}

/// The form read into a request of the viewer's channel, or the errors to
/// show beside its fields.
fn request_of(
    pairs: &[(String, String)],
    channel: &str,
    now: DateTime<Utc>,
) -> Result<JobRequest, Box<(NewForm, FieldErrors)>> {
    let form = NewForm {
        tag: value(pairs, "tag").trim().to_string(),
        requested_by: value(pairs, "requestedBy").trim().to_string(),
        batches: value(pairs, "batches").trim().to_string(),
        search: value(pairs, "search").trim().to_string(),
        format: value(pairs, "format").trim().to_string(),
    };
    let mut errors: FieldErrors = Vec::new();
    let ids: Vec<String> = form
        .batches
        .split([',', '\n', '\r', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut config = serde_json::Map::new();
    match ids.as_slice() {
        [] => {}
        [one] => {
            config.insert("batchId".into(), serde_json::Value::String(one.clone()));
        }
        many => {
            config.insert("batchFilter".into(), serde_json::json!(many));
        }
    }
    if !form.search.is_empty() {
        if !ids.is_empty() {
            errors.push((
                "search",
                "Give batch ids or a search filter, not both".into(),
            ));
        }
        match serde_json::from_str::<serde_json::Value>(&form.search) {
            Ok(v @ serde_json::Value::Object(_)) => {
                config.insert("searchFilter".into(), v);
            }
            Ok(_) => errors.push(("search", "The search filter must be a JSON object".into())),
            // serde_json's message names a position, not the content.
            Err(e) => errors.push((
                "search",
                format!("The search filter is not valid JSON: {e}"),
            )),
        }
    }
    let format = match form.format.parse::<OutputFormat>() {
        Ok(f) if exhaust_writer::format_available(f) => f,
        _ => {
            errors.push(("format", format!("Choose one of: {}", formats().join(", "))));
            OutputFormat::Csv
        }
    };
    let key = value(pairs, "key");
    let config = if config.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Object(config)
    };
    let new = NewRequest {
        tag: form.tag.clone(),
        dataset: PROGRESS_EXHAUST.to_string(),
        requested_by: form.requested_by.clone(),
        channel: channel.to_string(),
        dataset_config: with_output_format(config.clone(), format),
        encryption_key: (!key.is_empty()).then(|| key.to_string()),
    };
    let row = match new.into_job_request(now) {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push((field_of(&e), e.to_string()));
            None
        }
    };
    // The job's own reading of what to build, in Sunbird's words (its
    // limits are the job's to apply, as for the API).
    if errors.is_empty()
        && let Err(e) = RequestData::parse(&config, usize::MAX)
    {
        errors.push(("batches", e.to_string()));
    }
    match row {
        Some(r) if errors.is_empty() => Ok(r),
        _ => Err(Box::new((form, errors))),
    }
}

async fn new_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let viewer = match viewer(&state, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !form_allowed(&state, &headers, &viewer.session, value(&pairs, "csrf")) {
        tracing::info!("console: a new request refused: no valid CSRF token");
        return csrf_refused();
    }
    let now = state.now();
    let row = match request_of(&pairs, &viewer.channel, now) {
        Ok(r) => r,
        Err(refusal) => {
            let (form, errors) = *refusal;
            let key_given = !value(&pairs, "key").is_empty();
            let page = pages::new_request(
                &viewer.chrome(&state, "new"),
                &form,
                &errors,
                &formats(),
                key_given,
            );
            return viewer.answer(&state, html(StatusCode::UNPROCESSABLE_ENTITY, page));
        }
    };
    let submission = match state.store().submit(&row).await {
        Ok(s) => s,
        Err(e) => return store_failed(&state, &e),
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
        outcome,
        "console: request submitted"
    );
    viewer.answer(
        &state,
        redirect(&format!(
            "/console?submitted={}&outcome={outcome}",
            urlencode(&stored.request_id)
        )),
    )
}

// ---------------------------------------------------------------------------
// Signing in and out (`token` mode).

async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.auth().mode_name() != "token" {
        return redirect("/console");
    }
    let (session, changed) = session_of(&state, &headers, state.now());
    let csrf = Keys::new(state.downloads()).csrf(&session);
    let page = html(StatusCode::OK, pages::sign_in(&csrf, None));
    if changed {
        with_cookie(&state, page, Some(&session))
    } else {
        page
    }
}

async fn sign_in_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if state.auth().mode_name() != "token" {
        return redirect("/console");
    }
    let now = state.now();
    let (session, _) = session_of(&state, &headers, now);
    if !form_allowed(&state, &headers, &session, value(&pairs, "csrf")) {
        return csrf_refused();
    }
    let token = value(&pairs, "token").trim();
    let mut bearer = HeaderMap::new();
    let identity = match HeaderValue::from_str(&format!("Bearer {token}")) {
        Ok(v) if !token.is_empty() => {
            bearer.insert(header::AUTHORIZATION, v);
            state.auth().authenticate(state.store(), &bearer).await
        }
        _ => Err(AuthFailure::Denied(Denied::Unauthenticated(String::new()))),
    };
    match identity {
        Ok(Identity::Known(Caller::Token { id, channel })) => {
            // A new nonce: a session never outlives a sign-in.
            let mut signed = Session::fresh(now);
            signed.token_id = Some(id.clone());
            signed.channel = Some(channel);
            tracing::info!(token_id = %id, "console: signed in");
            with_cookie(&state, redirect("/console"), Some(&signed))
        }
        Err(AuthFailure::Unavailable(cause)) => {
            unavailable(&state, &AuthFailure::Unavailable(cause))
        }
        _ => {
            let csrf = Keys::new(state.downloads()).csrf(&session);
            html(
                StatusCode::UNAUTHORIZED,
                pages::sign_in(
                    &csrf,
                    Some(
                        "The token is not valid: it may be mistyped, revoked, or made for another server",
                    ),
                ),
            )
        }
    }
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let (session, _) = session_of(&state, &headers, state.now());
    if !form_allowed(&state, &headers, &session, value(&pairs, "csrf")) {
        return csrf_refused();
    }
    let to = if state.auth().mode_name() == "token" {
        "/console/sign-in"
    } else {
        "/console"
    };
    with_cookie(&state, redirect(to), None)
}

// ---------------------------------------------------------------------------
// A batch at a glance.

/// The request of the viewer's channel with this id under `tag`.
async fn request_of_viewer(
    state: &AppState,
    viewer: &Viewer,
    request_id: &str,
    tag: &str,
) -> Result<JobRequest, Response> {
    let not_found = || {
        viewer.answer(
            state,
            refused(
                StatusCode::NOT_FOUND,
                "No such request",
                "This channel has no request with that id and tag.",
            ),
        )
    };
    match state
        .store()
        .get(&stored_tag(tag, &viewer.channel), request_id)
        .await
    {
        // Stored under the channel's tag and made by the channel: never
        // another channel's request.
        Ok(Some(r)) if r.requested_channel == viewer.channel => Ok(r),
        Ok(_) => Err(not_found()),
        Err(e) => Err(store_failed(state, &e)),
    }
}

async fn summary_of(
    state: &AppState,
    viewer: &Viewer,
    request_id: &str,
    batch_id: &str,
    tag: &str,
) -> Result<exhaust_core::summary::BatchSummary, Response> {
    let row = request_of_viewer(state, viewer, request_id, tag).await?;
    let none = |text: &str| {
        viewer.answer(
            state,
            refused(StatusCode::NOT_FOUND, "No summary for this batch", text),
        )
    };
    match load(state, &row, batch_id).await {
        Ok(Found::Summary(s)) => Ok(*s),
        Ok(Found::NotBuilt) => Err(none("The request has not built this batch (yet).")),
        Ok(Found::NotStored) => Err(none(
            "No summary is stored beside this batch's file: it was built before summaries \
             existed, or your organisation's files are protected (a summary is stored beside \
             plain files only). Its file can still be downloaded from the list.",
        )),
        Err(e) => {
            tracing::error!(error = %e, "console: reading a summary failed");
            Err(refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Try again later",
                "The summary could not be read; try again later.",
            ))
        }
    }
}

async fn batch_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((request_id, batch_id)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let viewer = match viewer(&state, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let tag = value(&q, "tag");
    let summary = match summary_of(&state, &viewer, &request_id, &batch_id, tag).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    tracing::info!(request_id = %request_id, batch_id = %batch_id, learners = summary.learners, "console: batch page");
    let base = format!(
        "/console/requests/{}/batches/{}",
        urlencode(&request_id),
        urlencode(&batch_id)
    );
    let page = pages::batch(
        &viewer.chrome(&state, ""),
        &request_id,
        &summary,
        &base,
        &format!("?tag={}", urlencode(tag)),
    );
    viewer.answer(&state, html(StatusCode::OK, page))
}

async fn figure_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((request_id, batch_id, file)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let viewer = match viewer(&state, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let summary = match summary_of(&state, &viewer, &request_id, &batch_id, value(&q, "tag")).await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let figure = file
        .strip_suffix(".csv")
        .and_then(|id| summary.figures().into_iter().find(|f| f.id == id));
    let Some(figure) = figure else {
        return refused(
            StatusCode::NOT_FOUND,
            "No such data",
            "This batch has no such picture.",
        );
    };
    let mut r = (StatusCode::OK, figure.table.to_csv()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name = file_name(&format!("{}_{}.csv", summary.batch_id, figure.id));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    viewer.answer(&state, harden(r))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return refused(StatusCode::NOT_FOUND, "Not found", "No such file."),
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Versioned by the page's link (`?v=`): cached for a day.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    harden(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn a_form_becomes_sunbirds_request() {
        let r = request_of(
            &pairs(&[
                ("tag", "t1"),
                ("requestedBy", "u"),
                ("batches", "b1, b2\nb1"),
                ("format", "csv"),
                ("key", "k"),
            ]),
            "ch1",
            now(),
        )
        .expect("a request");
        assert_eq!(r.tag, "t1:ch1");
        assert_eq!(r.requested_channel, "ch1");
        assert_eq!(
            r.request_data,
            serde_json::json!({"batchFilter": ["b1", "b2", "b1"]})
        );
        assert_eq!(r.encryption_key.as_deref(), Some("k"));
        let one = request_of(
            &pairs(&[("tag", "t"), ("batches", "b1"), ("format", "csv")]),
            "ch1",
            now(),
        )
        .expect("one batch");
        assert_eq!(one.request_data, serde_json::json!({"batchId": "b1"}));
        let search = request_of(
            &pairs(&[
                ("tag", "t"),
                ("search", r#"{"request":{"filters":{"x":"y"}}}"#),
                ("format", "csv"),
            ]),
            "ch1",
            now(),
        )
        .expect("a search");
        assert_eq!(
            search.request_data,
            serde_json::json!({"searchFilter": {"request": {"filters": {"x": "y"}}}})
        );
    }

    #[test]
    fn form_errors_are_sunbirds_words_beside_their_fields() {
        let errors = |list: &[(&str, &str)]| {
            request_of(&pairs(list), "ch1", now())
                .expect_err("refused")
                .1
        };
        assert_eq!(
            errors(&[("tag", " "), ("batches", "b1"), ("format", "csv")]),
            [("tag", "tag is empty".to_string())]
        );
        assert_eq!(
            errors(&[("tag", "t"), ("format", "csv")]),
            [("batches", "datasetConfig is empty".to_string())]
        );
        let e = errors(&[("tag", "t"), ("search", "{nope"), ("format", "csv")]);
        assert_eq!(e[0].0, "search");
        assert!(
            e[0].1.starts_with("The search filter is not valid JSON"),
            "{e:?}"
        );
        let e = errors(&[("tag", "t"), ("batches", "b"), ("format", "pdf")]);
        assert_eq!(e[0].0, "format");
        let e = errors(&[
            ("tag", "t"),
            ("batches", "b"),
            ("format", "csv"),
            ("key", &"k".repeat(2000)),
        ]);
        assert_eq!(
            e,
            [(
                "key",
                "encryptionKey is longer than 1024 characters".to_string()
            )]
        );
        // A key is never echoed in a message.
        assert!(!e[0].1.contains("kkkk"));
    }

    #[test]
    fn filters_keep_known_statuses_and_bounded_pages() {
        let f = filters_of(&pairs(&[
            ("status", "success"),
            ("tag", " t "),
            ("page", "999999"),
        ]));
        assert_eq!(
            (f.status.as_str(), f.tag.as_str(), f.page),
            ("SUCCESS", "t", MAX_PAGE)
        );
        let f = filters_of(&pairs(&[("status", "DONE"), ("page", "x")]));
        assert_eq!((f.status.as_str(), f.page), ("", 1));
        assert_eq!(
            Filters {
                status: "FAILED".into(),
                tag: "a b&c".into(),
                page: 2
            }
            .query(3),
            "?status=FAILED&tag=a%20b%26c&page=3"
        );
    }

    #[test]
    fn chosen_channels_are_header_values() {
        assert_eq!(valid_channel(" ch1 ").as_deref(), Some("ch1"));
        assert_eq!(valid_channel(""), None);
        assert_eq!(valid_channel("a\nb"), None);
        assert_eq!(valid_channel(&"c".repeat(300)), None);
    }
}
