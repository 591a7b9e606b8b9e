//! `HttpPreferences` against a mock of Sunbird's user-org service: levels,
//! public keys, and how failures are classed (retryable or not).

use exhaust_core::OrgId;
use exhaust_core::security::{PreferenceSource, SecurityLevel};
use exhaust_core::source::SourceError;
use exhaust_sources::live::preferences::{HttpPreferences, PreferenceConfig};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PREF_PATH: &str = "/private/v2/org/preferences/read";
const SEARCH_PATH: &str = "/private/v2/org/search";
const JOB: &str = "progress-exhaust";
const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----";

fn config(base: &str) -> PreferenceConfig {
    PreferenceConfig {
        preference_url: format!("{base}{PREF_PATH}"),
        org_search_url: format!("{base}{SEARCH_PATH}"),
        timeout_ms: 500,
        retries: 2,
        retry_backoff_ms: 1,
    }
}

fn source(server: &MockServer) -> HttpPreferences {
    HttpPreferences::new(config(&server.uri())).expect("client")
}

fn org() -> OrgId {
    OrgId::new("0126-org")
}

/// Sunbird's answer to a preference read, with this `data`.
fn preference_answer(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "api.org.preferences.read", "responseCode": "OK",
        "result": {"response": {"orgId": "default", "key": "dataSecurityPolicy", "data": data}}
    }))
}

async fn mount_policy(server: &MockServer, data: Value) {
    Mock::given(method("POST"))
        .and(path(PREF_PATH))
        .and(body_json(
            json!({"request": {"orgId": "0126-org", "key": "dataSecurityPolicy"}}),
        ))
        .respond_with(preference_answer(data))
        .expect(1)
        .mount(server)
        .await;
}

async fn level_of(data: Value) -> Result<SecurityLevel, SourceError> {
    let server = MockServer::start().await;
    mount_policy(&server, data).await;
    source(&server).security_level(&org(), JOB).await
}

#[tokio::test]
async fn the_job_level_wins() {
    let data = json!({
        "level": "PLAIN_DATASET",
        "job": {"progress-exhaust": {"level": "TEXT_KEY_ENCRYPTED_DATASET"},
                "response-exhaust": {"level": "PUBLIC_KEY_ENCRYPTED_DATASET"}},
        "securityLevels": {"PLAIN_DATASET": "..."}
    });
    assert_eq!(level_of(data).await, Ok(SecurityLevel::TextKeyEncrypted));
}

#[tokio::test]
async fn the_tenant_level_applies_when_the_job_has_none() {
    let data =
        json!({"level": "PASSWORD_PROTECTED_DATASET", "job": {"progress-exhaust": {"level": ""}}});
    assert_eq!(level_of(data).await, Ok(SecurityLevel::PasswordProtected));
    let data = json!({"level": "PUBLIC_KEY_ENCRYPTED_DATASET"});
    assert_eq!(level_of(data).await, Ok(SecurityLevel::PublicKeyEncrypted));
}

#[tokio::test]
async fn a_policy_without_level_is_plain() {
    assert_eq!(level_of(json!({})).await, Ok(SecurityLevel::Plain));
    // `data` as JSON text, as the service stores it.
    let data = json!(r#"{"level":"TEXT_KEY_ENCRYPTED_DATASET"}"#);
    assert_eq!(level_of(data).await, Ok(SecurityLevel::TextKeyEncrypted));
}

#[tokio::test]
async fn an_unknown_level_is_bad_data_naming_it() {
    let err = level_of(json!({"level": "TOP_SECRET_DATASET"}))
        .await
        .expect_err("unknown level");
    assert!(matches!(err, SourceError::BadData { .. }), "{err:?}");
    assert!(err.to_string().contains("TOP_SECRET_DATASET"), "{err}");
    assert!(err.to_string().contains("0126-org"), "{err}");
}

#[tokio::test]
async fn a_service_answering_503_is_unavailable_after_the_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PREF_PATH))
        .respond_with(ResponseTemplate::new(503))
        .expect(3) // one call and two retries
        .mount(&server)
        .await;
    let err = source(&server)
        .security_level(&org(), JOB)
        .await
        .expect_err("503");
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("503"), "{err}");
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
}

#[tokio::test]
async fn a_service_that_recovers_within_the_retries_answers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PREF_PATH))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_policy(&server, json!({"level": "TEXT_KEY_ENCRYPTED_DATASET"})).await;
    assert_eq!(
        source(&server).security_level(&org(), JOB).await,
        Ok(SecurityLevel::TextKeyEncrypted)
    );
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let prefs = HttpPreferences::new(config(&format!("http://127.0.0.1:{port}"))).expect("client");
    let err = prefs
        .security_level(&org(), JOB)
        .await
        .expect_err("closed port");
    assert!(err.is_retryable(), "{err:?}");
    let err = prefs.public_key(&org()).await.expect_err("closed port");
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn a_slow_service_times_out_as_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PREF_PATH))
        .respond_with(
            preference_answer(json!({"level": "PLAIN_DATASET"})).set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let prefs = HttpPreferences::new(PreferenceConfig {
        timeout_ms: 100,
        retries: 0,
        ..config(&server.uri())
    })
    .expect("client");
    let err = prefs
        .security_level(&org(), JOB)
        .await
        .expect_err("timeout");
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn a_client_error_is_bad_data_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PREF_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "responseCode": "CLIENT_ERROR",
            "params": {"err": "RESOURCE_NOT_FOUND", "errmsg": "Tenant preference not found."}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let err = source(&server)
        .security_level(&org(), JOB)
        .await
        .expect_err("400");
    assert!(matches!(err, SourceError::BadData { .. }), "{err:?}");
    assert!(err.to_string().contains("400"), "{err}");
    assert!(
        err.to_string().contains("Tenant preference not found."),
        "{err}"
    );
}

#[tokio::test]
async fn unreadable_answers_are_bad_data() {
    for answer in [
        ResponseTemplate::new(200).set_body_string("<html>gateway</html>"),
        ResponseTemplate::new(200).set_body_json(json!({"result": {}})),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(PREF_PATH))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
        let err = source(&server)
            .security_level(&org(), JOB)
            .await
            .expect_err("unreadable");
        assert!(matches!(err, SourceError::BadData { .. }), "{err:?}");
    }
}

/// Org search answering with this org.
async fn mount_org(server: &MockServer, org_json: Option<Value>) {
    let content: Vec<Value> = org_json.into_iter().collect();
    Mock::given(method("POST"))
        .and(path(SEARCH_PATH))
        .and(body_json(
            json!({"request": {"filters": {"id": "0126-org"}}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "responseCode": "OK",
            "result": {"response": {"count": content.len(), "content": content}}
        })))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_public_key_is_downloaded_from_the_org_key_url() {
    let server = MockServer::start().await;
    let key_url = format!("{}/keys/0126-org.pem?sig=token", server.uri());
    mount_org(
        &server,
        Some(
            json!({"id": "0126-org", "channel": "tn", "keys": {"exhaustEncryptionKey": [key_url]}}),
        ),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/keys/0126-org.pem"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{PEM}\n")))
        .expect(1)
        .mount(&server)
        .await;
    let pem = source(&server).public_key(&org()).await.expect("key");
    assert_eq!(pem.as_deref(), Some(PEM));
}

#[tokio::test]
async fn an_org_without_key_has_none() {
    for org_json in [
        Some(json!({"id": "0126-org", "channel": "tn"})),
        Some(json!({"id": "0126-org", "keys": {}})),
        Some(json!({"id": "0126-org", "keys": {"exhaustEncryptionKey": []}})),
        Some(json!({"id": "0126-org", "keys": {"exhaustEncryptionKey": [""]}})),
        None, // the org is not found
    ] {
        let server = MockServer::start().await;
        mount_org(&server, org_json).await;
        assert_eq!(source(&server).public_key(&org()).await, Ok(None));
    }
}

#[tokio::test]
async fn key_download_failures_are_classed() {
    // (status, retryable)
    for (status, retryable) in [(404, false), (403, false), (503, true)] {
        let server = MockServer::start().await;
        let key_url = format!("{}/keys/0126-org.pem?sig=SECRET-TOKEN", server.uri());
        mount_org(
            &server,
            Some(json!({"id": "0126-org", "keys": {"exhaustEncryptionKey": [key_url]}})),
        )
        .await;
        Mock::given(method("GET"))
            .and(path("/keys/0126-org.pem"))
            .respond_with(ResponseTemplate::new(status))
            .expect(if retryable { 3 } else { 1 })
            .mount(&server)
            .await;
        let err = source(&server).public_key(&org()).await.expect_err("fails");
        assert_eq!(err.is_retryable(), retryable, "{status}: {err:?}");
        assert!(
            !err.to_string().contains("SECRET-TOKEN"),
            "the signed URL's token is not shown: {err}"
        );
    }
}

#[tokio::test]
async fn a_private_key_at_the_key_url_is_refused() {
    let server = MockServer::start().await;
    let key_url = format!("{}/keys/oops.pem", server.uri());
    mount_org(
        &server,
        Some(json!({"id": "0126-org", "keys": {"exhaustEncryptionKey": [key_url]}})),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/keys/oops.pem"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END PRIVATE KEY-----\n",
        ))
        .mount(&server)
        .await;
    let err = source(&server)
        .public_key(&org())
        .await
        .expect_err("private");
    assert!(matches!(err, SourceError::BadData { .. }), "{err:?}");
    assert!(!err.to_string().contains("MIIEvQ"), "{err}");
}
