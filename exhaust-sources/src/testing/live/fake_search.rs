//! The content search API faked with wiremock: it answers `POST /v3/search`
//! from a snapshot's `content.jsonl` the way Knowlg's search service does
//! (exact-value filters, `fields`, `limit`/`offset`, Sunbird's envelope,
//! `result.content` only when something matched), and caps `limit` like the
//! service's result window, so a client that does not page loses results.

use super::schema::snapshot_rows;
use serde_json::{Map, Value, json};
use std::path::Path;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A running fake.
pub struct FakeSearch {
    /// The wiremock server.
    pub server: MockServer,
}

impl FakeSearch {
    /// Serves the collections of `content.jsonl` in `dir`, at most
    /// `max_limit` per response.
    pub async fn start(dir: &Path, max_limit: usize) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/search"))
            .respond_with(SearchResponder {
                rows: snapshot_rows(dir, "content"),
                max_limit,
            })
            .mount(&server)
            .await;
        Self { server }
    }

    /// The base URL (the adapter appends `/v3/search`).
    pub fn base_url(&self) -> String {
        self.server.uri()
    }

    /// The bodies posted so far.
    pub async fn bodies(&self) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("JSON bodies"))
            .collect()
    }
}

struct SearchResponder {
    rows: Vec<Map<String, Value>>,
    max_limit: usize,
}

fn envelope(code: &str, status: &str, result: Value) -> Value {
    json!({
        "id": "api.search-service.search",
        "ver": "3.0",
        "ts": "2024-01-01T00:00:00.000Z",
        "params": {"resmsgid": "00000000-0000-0000-0000-000000000000", "msgid": null,
                   "status": status, "err": null, "errmsg": null},
        "responseCode": code,
        "result": result,
    })
}

fn matches(row: &Map<String, Value>, filters: &Map<String, Value>) -> bool {
    filters.iter().all(|(name, wanted)| {
        let actual = row.get(name);
        match wanted {
            Value::Array(values) => values.iter().any(|v| Some(v) == actual),
            v => Some(v) == actual,
        }
    })
}

impl Respond for SearchResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let bad = |why: &str| {
            ResponseTemplate::new(400).set_body_json(envelope(
                "CLIENT_ERROR",
                "failed",
                json!({"messages": [why]}),
            ))
        };
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return bad("the body is not JSON");
        };
        let Some(req) = body.get("request").and_then(Value::as_object) else {
            return bad("request is missing");
        };
        let empty = Map::new();
        let filters = req
            .get("filters")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let found: Vec<&Map<String, Value>> =
            self.rows.iter().filter(|r| matches(r, filters)).collect();
        let offset = req.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
        let limit = req
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(self.max_limit, |l| (l as usize).min(self.max_limit));
        let fields: Option<Vec<&str>> = req
            .get("fields")
            .and_then(Value::as_array)
            .map(|f| f.iter().filter_map(Value::as_str).collect());
        let page: Vec<Value> = found
            .iter()
            .skip(offset)
            .take(limit)
            .map(|row| {
                let kept: Map<String, Value> = row
                    .iter()
                    .filter(|(k, _)| {
                        fields.as_ref().is_none_or(|f| {
                            f.contains(&k.as_str()) || *k == "identifier" || *k == "objectType"
                        })
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Value::Object(kept)
            })
            .collect();
        let mut result = json!({"count": found.len()});
        if !page.is_empty() {
            result["content"] = Value::Array(page);
        }
        ResponseTemplate::new(200).set_body_json(envelope("OK", "successful", result))
    }
}
