//! The console's pages as maud templates: everything interpolated is
//! escaped by maud, except the SVG pictures, which [`super::svg`] escapes
//! itself. No page holds a learner's row: lists of requests, a form, and
//! the batch's counts.

use super::svg;
use chrono::{DateTime, Utc};
use exhaust_core::summary::{BatchSummary, Figure, share};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Where the stylesheet and script are served (with a version, so a new
/// build's assets are never served from an old cache).
pub const CSS_PATH: &str = concat!("/console/assets/console.css?v=", env!("CARGO_PKG_VERSION"));
/// See [`CSS_PATH`].
pub const JS_PATH: &str = concat!("/console/assets/console.js?v=", env!("CARGO_PKG_VERSION"));

/// What the page header shows of the viewer.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The channel the pages are for.
    pub channel: Option<String>,
    /// Whether a sign-out button is offered (token sessions).
    pub sign_out: bool,
    /// The session's CSRF token, for the sign-out form.
    pub csrf: String,
    /// Which navigation entry is current: `requests`, `new` or none.
    pub current: &'static str,
}

/// The page around `main`.
pub fn layout(title: &str, chrome: &Chrome, main: Markup) -> Markup {
    let current = |name: &str| (chrome.current == name).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · exhaust" }
                link rel="stylesheet" href=(CSS_PATH);
                script src=(JS_PATH) defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    div class="wrap top-row" {
                        a class="brand" href="/console" { "exhaust" span class="brand-sub" { " · progress reports" } }
                        @if let Some(c) = &chrome.channel {
                            p class="channel" { "Channel " code { (c) } }
                        }
                        @if chrome.channel.is_some() {
                            nav aria-label="Console" {
                                ul {
                                    li { a href="/console" aria-current=[current("requests")] { "Requests" } }
                                    li { a href="/console/new" aria-current=[current("new")] { "New request" } }
                                    @if chrome.sign_out {
                                        li {
                                            form method="post" action="/console/sign-out" class="inline" {
                                                input type="hidden" name="csrf" value=(chrome.csrf);
                                                button type="submit" class="link" { "Sign out" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                main id="main" class="wrap" tabindex="-1" {
                    (main)
                }
            }
        }
    }
}

/// A message page (refusals, missing things), with a way back.
pub fn message(title: &str, chrome: &Chrome, text: &str) -> Markup {
    layout(
        title,
        chrome,
        html! {
            h1 { (title) }
            p { (text) }
            p { a href="/console" { "Back to the requests" } }
        },
    )
}

/// The sign-in page of the `token` mode.
pub fn sign_in(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        &Chrome::default(),
        html! {
            h1 { "Sign in" }
            p { "Paste an API token of your organisation's channel (made with "
                code { "exhaust token create" } "). It is checked once; the console then keeps a session, never the token." }
            @if let Some(e) = error {
                div class="error-summary" role="alert" aria-labelledby="error-title" {
                    h2 id="error-title" { "There is a problem" }
                    ul { li { a href="#token" { (e) } } }
                }
            }
            form method="post" action="/console/sign-in" class="stack" novalidate {
                input type="hidden" name="csrf" value=(csrf);
                div class={ "field" @if error.is_some() { " invalid" } } {
                    label for="token" { "API token" }
                    @if let Some(e) = error {
                        p id="token-error" class="field-error" { span class="visually-hidden" { "Error: " } (e) }
                    }
                    input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required
                        aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "token-error")];
                }
                button type="submit" class="primary" { "Sign in" }
            }
        },
    )
}

/// The channel chooser (mode `none`, or `sunbird` without `X-Channel-ID`).
pub fn choose_channel(note: &str) -> Markup {
    layout(
        "Choose a channel",
        &Chrome::default(),
        html! {
            h1 { "Choose a channel" }
            p { (note) }
            form method="get" action="/console" class="stack" {
                div class="field" {
                    label for="channel" { "Channel (org id)" }
                    input id="channel" name="channel" type="text" autocomplete="off" spellcheck="false" required;
                }
                button type="submit" class="primary" { "Show its requests" }
            }
        },
    )
}

/// One request as the list shows it.
#[derive(Debug, Clone)]
pub struct RequestRow {
    /// The request id.
    pub request_id: String,
    /// The client's tag (without `:<channel>`).
    pub tag: String,
    /// The status.
    pub status: String,
    /// Submitted at.
    pub submitted: Option<DateTime<Utc>>,
    /// Completed at.
    pub completed: Option<DateTime<Utc>>,
    /// Failed attempts.
    pub attempts: i32,
    /// `err_message`.
    pub message: String,
    /// (file name, signed link) per stored file.
    pub downloads: Vec<(String, String)>,
    /// (batch id, link to its page) per built batch.
    pub batches: Vec<(String, String)>,
    /// How many batches the request names (at least 1; a search counts
    /// as 1): the files cell keeps room for each one's two links from the
    /// start, so the row keeps its height when they come.
    pub expected: usize,
}

impl RequestRow {
    /// Whether the row may still change (the page keeps refreshing it).
    pub fn pending(&self) -> bool {
        matches!(self.status.as_str(), "SUBMITTED" | "PROCESSING")
    }
}

fn time(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => html! {
            time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
                (t.format("%Y-%m-%d %H:%M UTC"))
            }
        },
        None => html! { span class="none" { "—" } },
    }
}

/// The status as a badge: its text always, its colour only as a help.
fn badge(status: &str) -> Markup {
    let class = format!("badge badge-{}", status.to_ascii_lowercase());
    html! { span class=(class) { (status) } }
}

/// The rows of the requests table (also served alone, for the refresh).
pub fn request_rows(rows: &[RequestRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            tr { td colspan="7" class="empty" { "No requests match." } }
        }
        @for r in rows {
            tr data-request=(r.request_id) data-status=(r.status) data-pending=[r.pending().then_some("true")] {
                td data-label="Status" { (badge(&r.status)) }
                td data-label="Request" {
                    span class="tag" { (r.tag) }
                    br;
                    code class="rid" { (r.request_id) }
                }
                td data-label="Submitted" { (time(r.submitted)) }
                td data-label="Completed" { (time(r.completed)) }
                td data-label="Attempts" class="num" { (r.attempts) }
                td data-label="Files" class="files" {
                    @let slots = format!("plain slots-{}", r.expected.clamp(1, 5));
                    ul class=(slots) {
                        @if r.downloads.is_empty() && r.batches.is_empty() {
                            li class="none" { @if r.pending() { "Building…" } @else { "—" } }
                        }
                        @for (name, url) in &r.downloads {
                            li { a href=(url) rel="noreferrer" download { "Download ZIP" span class="visually-hidden" { " " (name) } } }
                        }
                        @for (batch, url) in &r.batches {
                            li { a href=(url) { "At a glance" span class="visually-hidden" { ": batch " (batch) } } }
                        }
                    }
                }
                td data-label="Message" class="message" {
                    @if r.message.is_empty() { span class="none" { "—" } } @else { (r.message) }
                }
            }
        }
    }
}

/// The list's filters as given.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// A status, or empty for all.
    pub status: String,
    /// A client's tag, or empty.
    pub tag: String,
    /// The page, from 1.
    pub page: usize,
}

impl Filters {
    /// The query string of these filters on `page`.
    pub fn query(&self, page: usize) -> String {
        let mut q = Vec::new();
        if !self.status.is_empty() {
            q.push(format!("status={}", urlencode(&self.status)));
        }
        if !self.tag.is_empty() {
            q.push(format!("tag={}", urlencode(&self.tag)));
        }
        if page > 1 {
            q.push(format!("page={page}"));
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }
}

/// Percent-encodes a query value.
pub fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The requests page.
pub fn requests(
    chrome: &Chrome,
    rows: &[RequestRow],
    filters: &Filters,
    more: bool,
    flash: Option<&str>,
) -> Markup {
    let statuses = ["SUBMITTED", "PROCESSING", "SUCCESS", "FAILED"];
    let pending = rows.iter().any(RequestRow::pending);
    layout(
        "Requests",
        chrome,
        html! {
            h1 { "Requests" }
            @if let Some(f) = flash {
                div class="notice" role="status" { (f) }
            }
            form method="get" action="/console" class="filters" aria-label="Filter the requests" {
                div class="field" {
                    label for="status" { "Status" }
                    select id="status" name="status" {
                        option value="" selected[filters.status.is_empty()] { "Any" }
                        @for s in statuses {
                            option value=(s) selected[filters.status == s] { (s) }
                        }
                    }
                }
                div class="field" {
                    label for="tag" { "Tag" }
                    input id="tag" name="tag" type="text" value=(filters.tag) autocomplete="off" spellcheck="false";
                }
                button type="submit" { "Filter" }
                @if !filters.status.is_empty() || !filters.tag.is_empty() {
                    a href="/console" class="reset" { "Clear filters" }
                }
            }
            div class="refresh" {
                label {
                    input type="checkbox" id="auto-refresh" checked[pending] disabled[!pending];
                    " Update the list every few seconds while a request is in progress"
                }
                " "
                a href={ "/console" (filters.query(filters.page)) } { "Refresh now" }
                p id="refresh-status" class="visually-hidden" role="status" {}
            }
            div class="table-region" role="region" aria-label="Requests" tabindex="0" {
                table class="requests" data-rows-url={ "/console/rows" (filters.query(filters.page)) } {
                    caption class="visually-hidden" { "Requests of this channel, newest first" }
                    thead {
                        tr {
                            th scope="col" { "Status" }
                            th scope="col" { "Request" }
                            th scope="col" { "Submitted" }
                            th scope="col" { "Completed" }
                            th scope="col" class="num" { "Attempts" }
                            th scope="col" { "Files" }
                            th scope="col" { "Message" }
                        }
                    }
                    tbody id="request-rows" {
                        (request_rows(rows))
                    }
                }
            }
            nav class="pages" aria-label="Pages" {
                @if filters.page > 1 {
                    a href={ "/console" (filters.query(filters.page - 1)) } rel="prev" { "← Newer" }
                }
                span { "Page " (filters.page) }
                @if more {
                    a href={ "/console" (filters.query(filters.page + 1)) } rel="next" { "Older →" }
                }
            }
        },
    )
}

/// What the new-request form holds (never the key).
#[derive(Debug, Clone, Default)]
pub struct NewForm {
    /// The client's tag.
    pub tag: String,
    /// The requesting user.
    pub requested_by: String,
    /// Batch ids, one per line or separated by commas.
    pub batches: String,
    /// A search filter (JSON).
    pub search: String,
    /// The output format.
    pub format: String,
}

/// Errors of the form, by field (`tag`, `requestedBy`, `batches`,
/// `search`, `format`, `key`), in Sunbird's words where Sunbird has them.
pub type FieldErrors = Vec<(&'static str, String)>;

fn field_error(errors: &FieldErrors, field: &str) -> Option<String> {
    errors
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, m)| m.clone())
}

/// The new-request page.
pub fn new_request(
    chrome: &Chrome,
    form: &NewForm,
    errors: &FieldErrors,
    formats: &[&str],
    key_was_given: bool,
) -> Markup {
    let err = |f: &str| field_error(errors, f);
    let field_class = |f: &str| {
        if err(f).is_some() {
            "field invalid"
        } else {
            "field"
        }
    };
    let described = |f: &str, hint: Option<&str>| {
        let mut ids = Vec::new();
        if let Some(h) = hint {
            ids.push(h.to_string());
        }
        if err(f).is_some() {
            ids.push(format!("{f}-error"));
        }
        (!ids.is_empty()).then(|| ids.join(" "))
    };
    let error_line = |f: &str| -> Markup {
        html! {
            @if let Some(e) = err(f) {
                p id={ (f) "-error" } class="field-error" { span class="visually-hidden" { "Error: " } (e) }
            }
        }
    };
    layout(
        "New request",
        chrome,
        html! {
            h1 { "New request" }
            @if !errors.is_empty() {
                div class="error-summary" role="alert" aria-labelledby="error-title" tabindex="-1" {
                    h2 id="error-title" { "The request was not submitted" }
                    ul {
                        @for (f, m) in errors {
                            li { a href={ "#" (f) } { (m) } }
                        }
                    }
                }
            }
            form method="post" action="/console/new" class="stack" novalidate {
                input type="hidden" name="csrf" value=(chrome.csrf);
                div class=(field_class("tag")) {
                    label for="tag" { "Tag" }
                    p id="tag-hint" class="hint" { "Your name for the request; requests are listed and read by tag." }
                    (error_line("tag"))
                    input id="tag" name="tag" type="text" value=(form.tag) autocomplete="off" spellcheck="false"
                        aria-invalid=[err("tag").map(|_| "true")] aria-describedby=[described("tag", Some("tag-hint"))];
                }
                div class=(field_class("requestedBy")) {
                    label for="requestedBy" { "Requested by" }
                    (error_line("requestedBy"))
                    input id="requestedBy" name="requestedBy" type="text" value=(form.requested_by) autocomplete="off"
                        aria-invalid=[err("requestedBy").map(|_| "true")] aria-describedby=[described("requestedBy", None)];
                }
                fieldset {
                    legend { "What to build: batch ids, or a search filter" }
                    div class=(field_class("batches")) {
                        label for="batches" { "Batch ids" }
                        p id="batches-hint" class="hint" { "One per line, or separated by commas." }
                        (error_line("batches"))
                        textarea id="batches" name="batches" rows="3" spellcheck="false"
                            aria-invalid=[err("batches").map(|_| "true")] aria-describedby=[described("batches", Some("batches-hint"))] { (form.batches) }
                    }
                    div class=(field_class("search")) {
                        label for="search" { "Or a search filter (JSON)" }
                        p id="search-hint" class="hint" { "A content search body: " code { "{\"request\":{\"filters\":{...}}}" } ". Every batch of the matching courses is built." }
                        (error_line("search"))
                        textarea id="search" name="search" rows="3" spellcheck="false"
                            aria-invalid=[err("search").map(|_| "true")] aria-describedby=[described("search", Some("search-hint"))] { (form.search) }
                    }
                }
                div class=(field_class("format")) {
                    label for="format" { "Output format" }
                    (error_line("format"))
                    select id="format" name="format" aria-describedby=[described("format", None)] {
                        @for f in formats {
                            option value=(f) selected[form.format == *f] { (f) }
                        }
                    }
                }
                div class=(field_class("key")) {
                    label for="key" { "Encryption key" }
                    p id="key-hint" class="hint" {
                        "Needed when your organisation's files are password protected or encrypted with a text key. It is stored with the request and never shown again."
                        @if key_was_given { " Enter it again: it is not kept in this form." }
                    }
                    (error_line("key"))
                    input id="key" name="key" type="password" autocomplete="off" value=""
                        aria-invalid=[err("key").map(|_| "true")] aria-describedby=[described("key", Some("key-hint"))];
                }
                button type="submit" class="primary" { "Submit the request" }
            }
        },
    )
}

/// A figure of the batch page: the picture, its table, its CSV link.
fn figure(f: &Figure, n: usize, csv_url: &str) -> Markup {
    let id = format!("fig-{n}");
    let t = &f.table;
    html! {
        section class="figure" id=(f.id) aria-labelledby={ (id) "-h" } {
            h2 id={ (id) "-h" } { (f.title) }
            p class="description" { (f.description) }
            div class="figure-body" {
                div class="picture" { (PreEscaped(svg::render(f, &id))) }
                div class="data" {
                    div class="table-region" role="region" aria-label={ "Data of " (f.title) } tabindex="0" {
                        table class="numbers" data-figure=(f.id) {
                            caption { "Data of “" (f.title) "”" }
                            thead {
                                tr {
                                    @for (c, num) in t.columns.iter().zip(&t.numeric) {
                                        th scope="col" class=[num.then_some("num")] { (c) }
                                    }
                                }
                            }
                            tbody {
                                @if t.rows.is_empty() {
                                    tr { td colspan=(t.columns.len().max(1)) { "No data." } }
                                }
                                @for r in &t.rows {
                                    tr {
                                        @for (i, (cell, num)) in r.iter().zip(&t.numeric).enumerate() {
                                            @if i == 0 {
                                                th scope="row" class=[num.then_some("num")] { (cell) }
                                            } @else {
                                                td class=[num.then_some("num")] { (cell) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p { a href=(csv_url) download { "Download this data (CSV)" } }
                }
            }
        }
    }
}

/// The batch page.
pub fn batch(
    chrome: &Chrome,
    request_id: &str,
    summary: &BatchSummary,
    csv_base: &str,
    csv_query: &str,
) -> Markup {
    let name = summary
        .collection_name
        .clone()
        .unwrap_or_else(|| summary.collection_id.clone());
    let title = format!("Batch {} at a glance", summary.batch_id);
    let figures = summary.figures();
    let completed = summary
        .progress
        .as_ref()
        .and_then(|b| b.last())
        .map_or(0, |b| b.learners);
    layout(
        &title,
        chrome,
        html! {
            p class="crumbs" { a href="/console" { "Requests" } " › request " code { (request_id) } }
            h1 { (title) }
            dl class="facts" {
                div { dt { "Course" } dd { (name) } }
                @if let Some(b) = &summary.batch_name { div { dt { "Batch" } dd { (b) } } }
                div { dt { "Learners" } dd { (summary.learners) } }
                div { dt { "Completed" } dd { (completed) " (" (share(completed, summary.learners)) ")" } }
                div { dt { "Dates in" } dd { (summary.timezone) } }
            }
            nav class="toc" aria-label="Pictures on this page" {
                ul {
                    @for f in &figures {
                        li { a href={ "#" (f.id) } { (f.title) } }
                    }
                }
            }
            @for (n, f) in figures.iter().enumerate() {
                (figure(f, n + 1, &format!("{csv_base}/{}.csv{csv_query}", f.id)))
            }
        },
    )
}
