//! The content search API (`POST <base>/v3/search`) through `reqwest`:
//! collection metadata for [`CollectionSource`].
//!
//! Sunbird's job reads every list under `result` except `count` (content,
//! collections, question sets, ...) and unions them; so does this adapter.
//! Unlike the job it pages (`limit`/`offset`), so that no collection past the
//! service's result limit is lost, and asks for collections by id in chunks.
//! A request that times out or gets a 5xx, 408 or 429 is sent again with
//! back-off and then reported as [`SourceError::Unavailable`]; another 4xx
//! or a body that is not the search response is [`SourceError::BadData`]
//! (sending it again would not help).

use crate::live::retry::{Counters, GaveUp, Retry, transient_status};
use crate::rows::ContentRow;
use exhaust_core::ContentId;
use exhaust_core::model::CollectionMeta;
use exhaust_core::redact::redact_url;
use exhaust_core::source::{CollectionSource, ReadStats, SourceError, SourceResult};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const SOURCE: &str = "search";

/// Where the content search API is and how to call it.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// The service's base URL (default `http://127.0.0.1:9000`; Sunbird
    /// deploys `http://<ingress>/search`).
    pub base_url: String,
    /// The search route (default `/v3/search`).
    pub path: String,
    /// Timeout of one request, in milliseconds (default 30000).
    pub timeout_ms: u64,
    /// Retries after a timeout, a 5xx, 408 or 429 (default 3).
    pub retries: u32,
    /// The first retry's wait in milliseconds, doubled per retry (default 500).
    pub retry_backoff_ms: u64,
    /// Results asked per request (`limit`), paged with `offset` (default 1000).
    pub page_limit: usize,
    /// Collection ids per request when reading collections by id (default 500).
    pub ids_per_request: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:9000".into(),
            path: "/v3/search".into(),
            timeout_ms: 30_000,
            retries: 3,
            retry_backoff_ms: 500,
            page_limit: 1000,
            ids_per_request: 500,
        }
    }
}

// Written by hand: the base URL may hold a password or a token.
impl std::fmt::Debug for SearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field("path", &self.path)
            .field("timeout_ms", &self.timeout_ms)
            .field("retries", &self.retries)
            .field("retry_backoff_ms", &self.retry_backoff_ms)
            .field("page_limit", &self.page_limit)
            .field("ids_per_request", &self.ids_per_request)
            .finish()
    }
}

impl SearchConfig {
    /// The URL requests are posted to.
    pub fn url(&self) -> String {
        format!(
            "{}/{}",
            self.base_url.trim_end_matches('/'),
            self.path.trim_start_matches('/')
        )
    }
}

/// The content search API behind [`CollectionSource`].
#[derive(Clone)]
pub struct SearchSource {
    client: reqwest::Client,
    url: String,
    cfg: SearchConfig,
    counters: std::sync::Arc<Counters>,
}

// Written by hand: the URL may hold a password or a token.
impl std::fmt::Debug for SearchSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchSource")
            .field("url", &redact_url(&self.url))
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// One failed search call: worth sending again, or final.
enum Failure {
    Transient(String),
    Final(SourceError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient(d) => f.write_str(d),
            Failure::Final(e) => e.fmt(f),
        }
    }
}

/// The statuses Sunbird's job asks for when it checks collections by id.
const STATUSES: [&str; 3] = ["Live", "Unlisted", "Retired"];
/// The fields it asks for.
const FIELDS: [&str; 5] = ["channel", "identifier", "name", "userConsent", "status"];

impl SearchSource {
    /// A client for the service. Nothing is sent until the first read.
    pub fn new(cfg: &SearchConfig) -> SourceResult<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
            .build()
            .map_err(|e| {
                SourceError::unavailable(SOURCE, format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            client,
            url: cfg.url(),
            cfg: cfg.clone(),
            counters: Default::default(),
        })
    }

    /// What this source has read since it was created.
    pub fn read_stats(&self) -> ReadStats {
        self.counters.stats()
    }

    /// The configuration it was created with.
    pub fn config(&self) -> &SearchConfig {
        &self.cfg
    }

    /// Posts one body, sending it again after a transient failure; the
    /// parsed response.
    async fn post(&self, body: &Value) -> SourceResult<Value> {
        let shown = &redact_url(&self.url);
        let retry = Retry {
            retries: self.cfg.retries,
            base_ms: self.cfg.retry_backoff_ms,
        };
        let answer = retry
            .run(
                "search request",
                |f: &Failure| matches!(f, Failure::Transient(_)),
                || async move {
                    self.counters.query();
                    let resp = match self.client.post(&self.url).json(body).send().await {
                        Ok(resp) => resp,
                        Err(e) if e.is_timeout() => {
                            return Err(Failure::Transient(format!(
                                "{shown} did not answer within {} ms",
                                self.cfg.timeout_ms
                            )));
                        }
                        Err(e) => {
                            return Err(Failure::Transient(format!("cannot reach {shown}: {e}")));
                        }
                    };
                    let status = resp.status();
                    let bytes = resp.bytes().await.map_err(|e| {
                        Failure::Transient(format!("reading the answer of {shown} failed: {e}"))
                    })?;
                    if status.is_success() {
                        self.counters.received(0, bytes.len());
                        return serde_json::from_slice(&bytes).map_err(|e| {
                            Failure::Final(SourceError::bad_data(
                                SOURCE,
                                format!("{shown} answered with JSON that cannot be read: {e}"),
                            ))
                        });
                    }
                    let excerpt: String =
                        String::from_utf8_lossy(&bytes).chars().take(200).collect();
                    let detail = format!("{shown} answered {status}: {excerpt}");
                    if transient_status(status) {
                        Err(Failure::Transient(detail))
                    } else {
                        Err(Failure::Final(SourceError::bad_data(
                            SOURCE,
                            format!("{detail} (the search request was refused)"),
                        )))
                    }
                },
            )
            .await;
        match answer {
            Ok(v) => Ok(v),
            Err(GaveUp {
                error: Failure::Final(e),
                ..
            }) => Err(e),
            Err(GaveUp {
                error: Failure::Transient(detail),
                attempts,
                ..
            }) => Err(SourceError::unavailable(
                SOURCE,
                format!("{detail} (after {attempts} attempts)"),
            )),
        }
    }

    /// Every collection a request body matches: posted as it is when it sets
    /// its own `limit` or `offset`, else page by page until the service's
    /// `count` (or a short page) says there is no more.
    async fn search_all(&self, body: &Value) -> SourceResult<Vec<CollectionMeta>> {
        let request = body
            .get("request")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                SourceError::bad_data(SOURCE, "a search body needs a \"request\" object")
            })?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if request.contains_key("limit") || request.contains_key("offset") {
            let page = read_result(&self.post(body).await?)?;
            self.keep(page.items, &mut seen, &mut out);
            return Ok(out);
        }
        let limit = self.cfg.page_limit.max(1);
        let mut offset = 0usize;
        loop {
            let mut paged = body.clone();
            if let Some(r) = paged.get_mut("request").and_then(Value::as_object_mut) {
                r.insert("limit".into(), json!(limit));
                r.insert("offset".into(), json!(offset));
            }
            let page = read_result(&self.post(&paged).await?)?;
            let got = page.items.len();
            self.keep(page.items, &mut seen, &mut out);
            offset += got;
            let done = match page.count {
                Some(count) => offset as u64 >= count,
                None => got < limit,
            };
            if done || got == 0 {
                return Ok(out);
            }
        }
    }

    fn keep(
        &self,
        items: Vec<CollectionMeta>,
        seen: &mut HashSet<String>,
        out: &mut Vec<CollectionMeta>,
    ) {
        self.counters.received(items.len(), 0);
        for m in items {
            // A collection may come under two lists, or twice across pages
            // when the index changes meanwhile: the first one is kept.
            if seen.insert(m.identifier.as_str().to_owned()) {
                out.push(m);
            }
        }
    }
}

/// One page of a search response.
struct Page {
    count: Option<u64>,
    items: Vec<CollectionMeta>,
}

/// Reads `result` as Sunbird's job does: every list under it except `count`,
/// each entry an object with an `identifier`. Values that are not lists
/// (`collectionsCount`) and `facets` (aggregations, not objects) are skipped.
fn read_result(response: &Value) -> SourceResult<Page> {
    let result = response
        .get("result")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            SourceError::bad_data(SOURCE, "the search response has no \"result\" object")
        })?;
    let count = result.get("count").and_then(Value::as_u64);
    let mut items = Vec::new();
    for (key, value) in result {
        if key == "count" || key == "facets" {
            continue;
        }
        let Value::Array(entries) = value else {
            continue;
        };
        for (i, entry) in entries.iter().enumerate() {
            let row: ContentRow = serde_json::from_value(entry.clone()).map_err(|e| {
                SourceError::bad_data(SOURCE, format!("result.{key}[{i}] cannot be read: {e}"))
            })?;
            items.push(
                row.into_meta().map_err(|e| {
                    SourceError::bad_data(SOURCE, format!("result.{key}[{i}]: {e}"))
                })?,
            );
        }
    }
    Ok(Page { count, items })
}

impl CollectionSource for SearchSource {
    async fn collections(&self, ids: &[ContentId]) -> SourceResult<Vec<CollectionMeta>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for chunk in ids.chunks(self.cfg.ids_per_request.max(1)) {
            let body = json!({
                "request": {
                    "filters": {
                        "identifier": chunk.iter().map(ContentId::as_str).collect::<Vec<_>>(),
                        "status": STATUSES,
                    },
                    "fields": FIELDS,
                }
            });
            for m in self.search_all(&body).await? {
                if seen.insert(m.identifier.as_str().to_owned()) {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    async fn search(&self, body: &Value) -> SourceResult<Vec<CollectionMeta>> {
        self.search_all(body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_under_result_is_read_except_count() {
        let response = json!({"result": {
            "count": 3,
            "content": [{"identifier": "do_1", "name": "A", "channel": "c", "status": "Live"}],
            "QuestionSet": [{"identifier": "do_2", "status": "Live", "userConsent": "Yes"}],
            "collectionsCount": 1,
            "facets": [{"name": "status", "values": []}]
        }});
        let page = read_result(&response).expect("reads");
        assert_eq!(page.count, Some(3));
        let mut ids: Vec<&str> = page.items.iter().map(|m| m.identifier.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["do_1", "do_2"]);
        let do_1 = page.items.iter().find(|m| m.identifier.as_str() == "do_1");
        assert_eq!(
            do_1.map(|m| m.user_consent.as_str()),
            Some("No"),
            "Sunbird's default"
        );
    }

    #[test]
    fn a_response_without_result_is_bad_data() {
        let e = read_result(&json!({"params": {}})).err().expect("refused");
        assert!(!e.is_retryable());
        let e = read_result(&json!({"result": {"content": [{"name": "no id"}]}}))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("result.content[0]"), "{e}");
    }

    #[test]
    fn the_url_joins_base_and_path() {
        let cfg = SearchConfig {
            base_url: "http://host/search/".into(),
            ..SearchConfig::default()
        };
        assert_eq!(cfg.url(), "http://host/search/v3/search");
    }
}
