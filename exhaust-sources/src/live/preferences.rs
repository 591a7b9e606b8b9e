//! The data security level of an org's reports, and its public key, from
//! Sunbird's user-org service (reference 3.1 and 3.2): [`HttpPreferences`]
//! implements core's [`PreferenceSource`] over HTTP.
//!
//! - The level comes from the tenant preference `dataSecurityPolicy`
//!   (`POST preference_url`, `result.response.data`): the job's own level,
//!   else the tenant's, by core's [`level_from_policy`]. The service answers
//!   with the `default` org's policy when the org has none. A policy that
//!   sets no level at all gives [`SecurityLevel::Plain`], as Sunbird's job
//!   does (an empty level there means no protection).
//! - The public key is a PEM file whose URL is the org's
//!   `keys.exhaustEncryptionKey[0]` in org search (`POST org_search_url`).
//!
//! Failures keep core's split: a service that is down, times out or answers
//! 5xx (or 408/429) is [`SourceError::Unavailable`] after the configured
//! retries, so the request stays retryable; any other 4xx, or an answer that
//! cannot be read, is [`SourceError::BadData`] and is not retried.
//!
//! Nothing here logs response bodies or key material; URLs appear without
//! their query (a signed download URL carries a token there).

use crate::live::retry::{Retry, transient_status};
use exhaust_core::OrgId;
use exhaust_core::redact::redact_url;
use exhaust_core::security::{PreferenceSource, SecurityLevel, level_from_policy};
use exhaust_core::source::{SourceError, SourceResult};
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::time::Duration;

const PREFERENCE_SOURCE: &str = "tenant preference service";
const ORG_SEARCH_SOURCE: &str = "org search";
const PUBLIC_KEY_SOURCE: &str = "org public key download";

/// Largest JSON answer read (an org search for one id is a few KB).
const MAX_JSON_BYTES: usize = 4 << 20;
/// Largest public key file read (an RSA-16384 PEM is about 3 KB).
const MAX_PEM_BYTES: usize = 64 << 10;

/// Where the preference and org services are, and how patiently to call
/// them. Deserialized from the `[preferences]` configuration; every field
/// has a default.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreferenceConfig {
    /// Tenant preference read (`tenant.pref.read.private.api.url`).
    pub preference_url: String,
    /// Org search (`org.search.private.api.url`).
    pub org_search_url: String,
    /// Time limit of one HTTP call, connecting and reading included.
    pub timeout_ms: u64,
    /// Retries after a failure that may pass (down, timeout, 5xx, 408, 429).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff_ms: u64,
}

impl Default for PreferenceConfig {
    fn default() -> Self {
        Self {
            preference_url: "http://learner-service:9000/private/v2/org/preferences/read".into(),
            org_search_url: "http://learner-service:9000/private/v2/org/search".into(),
            timeout_ms: 10_000,
            retries: 2,
            retry_backoff_ms: 500,
        }
    }
}

// Written by hand: a URL may hold a password or a token.
impl std::fmt::Debug for PreferenceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreferenceConfig")
            .field("preference_url", &redact_url(&self.preference_url))
            .field("org_search_url", &redact_url(&self.org_search_url))
            .field("timeout_ms", &self.timeout_ms)
            .field("retries", &self.retries)
            .field("retry_backoff_ms", &self.retry_backoff_ms)
            .finish()
    }
}

/// A [`PreferenceConfig`] that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PreferenceConfigError {
    /// A URL does not parse or is not http(s).
    #[error("preferences.{field} is not an http(s) URL: {url:?}")]
    InvalidUrl {
        /// The configuration field.
        field: &'static str,
        /// Its value, with any password, query and fragment masked.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client of the preference service: {0}")]
    Client(#[source] reqwest::Error),
}

/// Core's [`PreferenceSource`] over Sunbird's tenant preference and org
/// search APIs. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct HttpPreferences {
    client: Client,
    preference_url: Url,
    org_search_url: Url,
    retries: u32,
    backoff_ms: u64,
}

// Written by hand: a URL may hold a password or a token.
impl std::fmt::Debug for HttpPreferences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPreferences")
            .field("preference_url", &redact_url(self.preference_url.as_str()))
            .field("org_search_url", &redact_url(self.org_search_url.as_str()))
            .field("retries", &self.retries)
            .field("backoff_ms", &self.backoff_ms)
            .finish_non_exhaustive()
    }
}

impl HttpPreferences {
    /// Checks the configuration and builds the HTTP client; no call is made.
    ///
    /// # Errors
    /// A URL that is not http(s); a client that cannot be built.
    pub fn new(config: PreferenceConfig) -> Result<Self, PreferenceConfigError> {
        let parse = |field: &'static str, url: &str| {
            Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| PreferenceConfigError::InvalidUrl {
                    field,
                    url: redact_url(url),
                })
        };
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(PreferenceConfigError::Client)?;
        Ok(Self {
            client,
            preference_url: parse("preference_url", &config.preference_url)?,
            org_search_url: parse("org_search_url", &config.org_search_url)?,
            retries: config.retries,
            backoff_ms: config.retry_backoff_ms,
        })
    }

    async fn level(&self, org: &OrgId, job_id: &str) -> SourceResult<SecurityLevel> {
        let body = json!({"request": {"orgId": org.as_str(), "key": "dataSecurityPolicy"}});
        let answer = self
            .with_retries(PREFERENCE_SOURCE, || {
                self.post_json(PREFERENCE_SOURCE, &self.preference_url, &body)
            })
            .await?;
        let data = match answer.pointer("/result/response/data") {
            // The service stores `data` as JSON text and parses it; accept
            // the text too, should a deployment return it unparsed.
            Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| {
                SourceError::bad_data(
                    PREFERENCE_SOURCE,
                    format!("dataSecurityPolicy of org {org}: data is not JSON: {e}"),
                )
            })?,
            Some(data) => data.clone(),
            None => {
                return Err(SourceError::bad_data(
                    PREFERENCE_SOURCE,
                    format!(
                        "dataSecurityPolicy of org {org}: the answer has no result.response.data"
                    ),
                ));
            }
        };
        match level_from_policy(&data, job_id) {
            Ok(Some(level)) => Ok(level),
            Ok(None) => {
                tracing::debug!(org = %org, job_id, "dataSecurityPolicy sets no level: plain");
                Ok(SecurityLevel::Plain)
            }
            Err(e) => Err(SourceError::bad_data(
                PREFERENCE_SOURCE,
                format!("dataSecurityPolicy of org {org}: {e}"),
            )),
        }
    }

    async fn key(&self, org: &OrgId) -> SourceResult<Option<String>> {
        let body = json!({"request": {"filters": {"id": org.as_str()}}});
        let answer = self
            .with_retries(ORG_SEARCH_SOURCE, || {
                self.post_json(ORG_SEARCH_SOURCE, &self.org_search_url, &body)
            })
            .await?;
        let Some(content) = answer
            .pointer("/result/response/content")
            .and_then(Value::as_array)
        else {
            return Err(SourceError::bad_data(
                ORG_SEARCH_SOURCE,
                format!("org {org}: the answer has no result.response.content list"),
            ));
        };
        let url = content
            .first()
            .and_then(|o| o.pointer("/keys/exhaustEncryptionKey/0"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let Some(url) = url else {
            tracing::debug!(org = %org, found = !content.is_empty(), "org has no exhaustEncryptionKey");
            return Ok(None);
        };
        let url = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                SourceError::bad_data(
                    ORG_SEARCH_SOURCE,
                    format!("org {org}: keys.exhaustEncryptionKey[0] is not an http(s) URL"),
                )
            })?;
        let pem = self
            .with_retries(PUBLIC_KEY_SOURCE, || self.get_pem(&url))
            .await?;
        Ok(Some(pem))
    }

    /// Calls `attempt` until it succeeds, fails for good, or the retries
    /// are spent; waits `backoff`, doubling, between attempts.
    async fn with_retries<T, F, Fut>(&self, source_name: &str, attempt: F) -> SourceResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = SourceResult<T>>,
    {
        let retry = Retry {
            retries: self.retries,
            base_ms: self.backoff_ms,
        };
        retry
            .run(source_name, SourceError::is_retryable, attempt)
            .await
            .map_err(|g| match g.error {
                SourceError::Unavailable {
                    source_name,
                    detail,
                } => SourceError::unavailable(
                    source_name,
                    format!("{detail} (after {} attempts)", g.attempts),
                ),
                other => other,
            })
    }

    async fn post_json(&self, source_name: &str, url: &Url, body: &Value) -> SourceResult<Value> {
        let response = self
            .client
            .post(url.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| unavailable(source_name, url, &e))?;
        let status = response.status();
        let bytes = read_limited(source_name, url, response, MAX_JSON_BYTES).await?;
        check_status(source_name, url, status, &bytes)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            SourceError::bad_data(
                source_name,
                format!("{} answered with unreadable JSON: {e}", shown(url)),
            )
        })
    }

    async fn get_pem(&self, url: &Url) -> SourceResult<String> {
        let source_name = PUBLIC_KEY_SOURCE;
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| unavailable(source_name, url, &e))?;
        let status = response.status();
        let bytes = read_limited(source_name, url, response, MAX_PEM_BYTES).await?;
        check_status(source_name, url, status, &[])?;
        let pem = String::from_utf8(bytes).map_err(|_| {
            SourceError::bad_data(source_name, format!("{} is not text", shown(url)))
        })?;
        if pem.contains("PRIVATE KEY") {
            // Never pass on, or show, what looks like a private key.
            return Err(SourceError::bad_data(
                source_name,
                format!("{} serves a private key, not a public key", shown(url)),
            ));
        }
        let pem = pem.trim();
        if pem.is_empty() {
            return Err(SourceError::bad_data(
                source_name,
                format!("{} is empty", shown(url)),
            ));
        }
        Ok(pem.to_owned())
    }
}

impl PreferenceSource for HttpPreferences {
    fn security_level(
        &self,
        org: &OrgId,
        job_id: &str,
    ) -> impl Future<Output = SourceResult<SecurityLevel>> + Send {
        self.level(org, job_id)
    }

    fn public_key(&self, org: &OrgId) -> impl Future<Output = SourceResult<Option<String>>> + Send {
        self.key(org)
    }
}

/// Reads a body, refusing more than `limit` bytes.
async fn read_limited(
    source_name: &str,
    url: &Url,
    mut response: reqwest::Response,
    limit: usize,
) -> SourceResult<Vec<u8>> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(SourceError::bad_data(
            source_name,
            format!("{} answered with more than {limit} bytes", shown(url)),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| unavailable(source_name, url, &e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(SourceError::bad_data(
                source_name,
                format!("{} answered with more than {limit} bytes", shown(url)),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// 2xx passes; 5xx, 408 and 429 may pass later; any other status is the
/// request's fault. The message carries Sunbird's `params.errmsg` when the
/// body has one (never the body itself).
fn check_status(source_name: &str, url: &Url, status: StatusCode, body: &[u8]) -> SourceResult<()> {
    if status.is_success() {
        return Ok(());
    }
    let errmsg = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/params/errmsg")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let detail = format!("{} answered {status}{errmsg}", shown(url));
    if transient_status(status) {
        Err(SourceError::unavailable(source_name, detail))
    } else {
        Err(SourceError::bad_data(source_name, detail))
    }
}

/// Connection failures, timeouts and broken bodies: all may pass.
fn unavailable(source_name: &str, url: &Url, e: &reqwest::Error) -> SourceError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot be reached"
    } else {
        "failed"
    };
    // The error's own text would repeat the URL with its query.
    let cause = std::error::Error::source(e)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    SourceError::unavailable(source_name, format!("{} {kind}{cause}", shown(url)))
}

/// A URL as shown in messages: without credentials and query.
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    // Fails only for URLs that cannot have credentials, which have none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_secrets() {
        let url =
            Url::parse("https://user:pw@blob.example/keys/org.pem?sig=SECRET#x").expect("url");
        assert_eq!(shown(&url), "https://blob.example/keys/org.pem");
    }

    #[test]
    fn config_defaults_and_partial_config() {
        let config: PreferenceConfig =
            serde_json::from_value(json!({"preference_url": "http://lms/pref", "retries": 0}))
                .expect("config");
        assert_eq!(config.preference_url, "http://lms/pref");
        assert_eq!(config.retries, 0);
        assert_eq!(
            config.org_search_url,
            PreferenceConfig::default().org_search_url
        );
        assert!(serde_json::from_value::<PreferenceConfig>(json!({"retry": 1})).is_err());
        let err = HttpPreferences::new(PreferenceConfig {
            org_search_url: "learner/search".into(),
            ..PreferenceConfig::default()
        })
        .expect_err("relative URL");
        assert!(err.to_string().contains("org_search_url"), "{err}");
    }
}
