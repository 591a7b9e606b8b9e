//! Authorisation and the server's bounds end to end (issue #23): the
//! `token` mode with tokens in the request store, the `sunbird` mode with a
//! real `consumer_channel_mapping` table, user tokens signed here with a
//! freshly generated RSA key and Sunbird's user read API faked with
//! wiremock; no org ever receives another org's learners; bodies, fields
//! and lists bounded. Every scenario runs on SQLite and on PostgreSQL.

mod support;

use exhaust_core::store::{RequestStore, StatusCounts};
use exhaust_server::auth::AuthMode;
use exhaust_sources::requests::AnyRequestStore;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use support::*;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The org of six of the sample batch's 38 learners.
const OTHER_ORG: &str = "0171480710251966797";

/// An API token for `channel`, made as `exhaust token create` makes one.
async fn token_for(store: &AnyRequestStore, channel: &str) -> (String, String) {
    let mut random = [0u8; exhaust_core::auth::TOKEN_RANDOM_BYTES];
    for (i, b) in random.iter_mut().enumerate() {
        *b = u8::try_from((i * 31 + channel.len() * 7 + rand_seed()) % 256).unwrap_or(0);
    }
    let t = store
        .create_token(channel, "test", 1_700_000_000_000, &random)
        .await
        .expect("token");
    (t.id, t.text)
}

/// A different seed per call, so two tokens of one test differ.
fn rand_seed() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed) * 13 + std::process::id() as usize
}

fn token_mode(w: &World, snapshot: &std::path::Path) -> ServerConfig {
    let mut c = w.config(snapshot);
    c.settings.auth.mode = Some(AuthMode::Token);
    c
}

async fn nothing_stored(store: &AnyRequestStore) {
    assert_eq!(
        store.count_by_status().await.expect("count"),
        StatusCounts::default(),
        "a refused call stores nothing"
    );
}

/// `token` mode: no credentials → 401 and nothing stored; a token acts for
/// its own channel only (an org's token claiming `System` → 403); a
/// revoked token → 401; the configured bearer token is a `System` token;
/// no token is ever logged.
async fn tokens(w: World) {
    let store = w.t.open().await;
    let mut config = token_mode(&w, &conformance());
    let fixed = "a-configured-bearer-token-0123456789";
    config.bearer_token = Some(Secret::new(fixed.as_bytes().to_vec()));
    let server = w.start(config).await;
    let (a_id, a_token) = token_for(&store, CHANNEL).await;
    let (_, b_token) = token_for(&store, "org-b").await;
    let b = body("t", "u", json!({ "batchId": BATCH }), None);

    let anonymous = Api::new(&server);
    for api in [
        &anonymous,
        &Api::new(&server).with_bearer("exh_not-a-token"),
    ] {
        let a = api.submit(Some("System"), &b).await;
        assert_error(
            &a,
            401,
            SUBMIT,
            "UNAUTHORIZED",
            "a valid Authorization: Bearer token is required",
        );
        assert_eq!(a.headers["www-authenticate"], "Bearer");
        let a = api.read("t", "X", Some(CHANNEL)).await;
        assert_eq!(a.status.as_u16(), 401, "{}", a.text);
        let a = api.list("t", None, Some(CHANNEL)).await;
        assert_eq!(a.status.as_u16(), 401, "{}", a.text);
    }
    nothing_stored(&store).await;

    let org_a = Api::new(&server).with_bearer(&a_token);
    for channel in ["System", "org-b", &CHANNEL.to_uppercase()] {
        let a = org_a.submit(Some(channel), &b).await;
        assert_error(
            &a,
            403,
            SUBMIT,
            "FORBIDDEN",
            &format!("this API token is not authorized for X-Channel-ID='{channel}'"),
        );
        let a = org_a.list("t", None, Some(channel)).await;
        assert_eq!(a.status.as_u16(), 403, "{}", a.text);
    }
    nothing_stored(&store).await;

    let a = org_a.submit(Some(CHANNEL), &b).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = a.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    let a = org_a.read("t", &id, Some(CHANNEL)).await;
    assert_eq!(a.json["result"]["requestId"], id.as_str(), "{}", a.text);
    // Another org's token cannot read it, under either channel.
    let org_b = Api::new(&server).with_bearer(&b_token);
    assert_eq!(
        org_b.read("t", &id, Some(CHANNEL)).await.status.as_u16(),
        403
    );
    let a = org_b.read("t", &id, Some("org-b")).await;
    assert_eq!(a.json["params"]["status"], "failed", "{}", a.text);

    // The configured token acts for System, and only for it.
    let system = Api::new(&server).with_bearer(fixed);
    assert_eq!(
        system.submit(Some("System"), &b).await.status,
        StatusCode::OK
    );
    assert_eq!(system.submit(Some(CHANNEL), &b).await.status.as_u16(), 403);

    // Revoked: refused at once.
    assert!(
        store
            .revoke_token(&a_id, 1_700_000_000_001)
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_token(&a_id, 1_700_000_000_002)
            .await
            .expect("again")
    );
    let a = org_a.list("t", None, Some(CHANNEL)).await;
    assert_eq!(a.status.as_u16(), 401, "{}", a.text);
    let log = logged();
    for secret in [a_token.as_str(), b_token.as_str(), fixed] {
        assert!(!log.contains(secret), "a token was logged");
    }
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(api_tokens, World, tokens);

/// Org A and `System` ask for the same batch through the API: two files,
/// System's with all 38 learners, A's with only A's six.
async fn one_file_per_org(w: World) {
    let store = w.t.open().await;
    let server = w.start(token_mode(&w, &sample())).await;
    let (_, system_token) = token_for(&store, "System").await;
    let (_, org_token) = token_for(&store, OTHER_ORG).await;
    let b = body("t", "u-1", json!({ "batchId": SAMPLE_BATCH }), None);
    let mut ids = Vec::new();
    for (token, channel) in [(&system_token, "System"), (&org_token, OTHER_ORG)] {
        let a = Api::new(&server)
            .with_bearer(token)
            .submit(Some(channel), &b)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        ids.push(
            a.json["result"]["requestId"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let summary = run_worker_once(&w, &server, &sample()).await;
    assert_eq!((summary.succeeded, summary.duplicates), (2, 0), "{summary}");
    let mut counts = Vec::new();
    for ((token, channel), id) in [(&system_token, "System"), (&org_token, OTHER_ORG)]
        .into_iter()
        .zip(&ids)
    {
        let api = Api::new(&server).with_bearer(token);
        let a = api.read("t", id, Some(channel)).await;
        let url = a.json["result"]["downloadUrls"][0]
            .as_str()
            .expect("url")
            .to_string();
        let (status, _, zip) = api.get(&url).await;
        assert_eq!(status, StatusCode::OK);
        let (_, csv) = unzip(&zip);
        counts.push(column(&csv, "User UUID").len());
    }
    assert_eq!(counts, [38, 6]);
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(no_file_crosses_orgs, World, one_file_per_org);

/// `none` trusts the headers, so it is refused on any address but
/// loopback, naming the setting; so is a `sunbird` mode without its keys.
async fn refusals_at_start(w: World) {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("listener");
    let e = exhaust_server::start(w.config(&conformance()), listener)
        .await
        .expect_err("none off loopback");
    let text = format!("{e:#}");
    assert!(
        text.contains("EXHAUST_AUTH") && text.contains("loopback"),
        "{text}"
    );

    let mut c = w.config(&conformance());
    c.settings.auth.mode = Some(AuthMode::Sunbird);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let e = exhaust_server::start(c, listener)
        .await
        .expect_err("no keys");
    let text = format!("{e:#}");
    assert!(text.contains("EXHAUST_AUTH_PUBLIC_KEY_DIR"), "{text}");

    // Token mode off loopback is fine.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("listener");
    let server = exhaust_server::start(token_mode(&w, &conformance()), listener)
        .await
        .expect("token mode starts anywhere");
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(start_refusals, World, refusals_at_start);

// ---------------------------------------------------------------------------
// The `sunbird` mode.

const ISSUER: &str = "https://sunbird.example/auth/realms/sunbird";

/// An RSA key pair made with openssl: (private PEM, public SPKI PEM).
fn rsa_pair(dir: &std::path::Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.key"));
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&private)
        .status()
        .expect("openssl is installed (scripts/services)");
    assert!(ok.success());
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .expect("openssl");
    assert!(public.status.success());
    (
        std::fs::read_to_string(&private).expect("private key"),
        String::from_utf8(public.stdout).expect("pem"),
    )
}

/// A user token as Keycloak signs one.
fn user_token(private: &str, kid: Option<&str>, iss: &str, sub: &str, exp_in: i64) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid.map(str::to_owned);
    let now = Utc::now().timestamp();
    let claims = json!({"sub": sub, "iss": iss, "exp": now + exp_in, "iat": now - 10,
                        "aud": "account", "typ": "Bearer"});
    jsonwebtoken::encode(
        &h,
        &claims,
        &EncodingKey::from_rsa_pem(private.as_bytes()).expect("key"),
    )
    .expect("signed")
}

/// Sunbird's consumer table in the store's database (its DDL), with rows.
async fn consumer_table(w: &World, rows: &[(&str, &str, Option<i32>)]) -> String {
    let store = w.t.open().await;
    let name = match &store {
        AnyRequestStore::Postgres(_) => {
            let schema = w.t.table().split('.').next().expect("schema");
            format!("{schema}.dev_consumer_channel_mapping")
        }
        AnyRequestStore::Sqlite(_) => "dev_consumer_channel_mapping".to_string(),
    };
    let ddl = format!(
        "CREATE TABLE {name} (consumer_id text NOT NULL, channel text NOT NULL, \
         status smallint, created_by text, created_on timestamptz, updated_on timestamptz)"
    );
    match &store {
        AnyRequestStore::Postgres(s) => {
            sqlx::query(sqlx::AssertSqlSafe(ddl))
                .execute(s.pool())
                .await
                .expect("create");
            for (c, ch, st) in rows {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {name} (consumer_id, channel, status) VALUES ($1, $2, $3)"
                )))
                .bind(c)
                .bind(ch)
                .bind(st.map(|v| v as i16))
                .execute(s.pool())
                .await
                .expect("insert");
            }
        }
        AnyRequestStore::Sqlite(s) => {
            sqlx::query(sqlx::AssertSqlSafe(ddl))
                .execute(s.pool())
                .await
                .expect("create");
            for (c, ch, st) in rows {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {name} (consumer_id, channel, status) VALUES (?1, ?2, ?3)"
                )))
                .bind(c)
                .bind(ch)
                .bind(*st)
                .execute(s.pool())
                .await
                .expect("insert");
            }
        }
    }
    name
}

/// A user read answer of Sunbird's learner service.
fn user_read(root_org: &str, roles: &[&str]) -> serde_json::Value {
    json!({
        "id": "api.user.read", "ver": "v1", "responseCode": "OK",
        "params": {"status": "success", "errmsg": null},
        "result": {"response": {
            "id": "u-1", "rootOrgId": root_org,
            "rootOrg": {"id": root_org, "slug": "org"},
            "organisations": [{"organisationId": root_org, "roles": roles}]
        }}
    })
}

struct SunbirdWorld {
    /// Signs as `key-1` (a PEM file).
    private: String,
    /// Signs as `key-2` (a bare base64 file, as Sunbird keeps keys).
    second_private: String,
    /// A key the server does not know.
    other_private: String,
    users: MockServer,
}

async fn sunbird_config(w: &World, table: &str) -> (ServerConfig, SunbirdWorld) {
    let keys = w.t.dir().join("keys");
    std::fs::create_dir_all(&keys).expect("keys");
    let scratch = w.t.dir().join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let (private, public) = rsa_pair(&scratch, "k1");
    // The second key as Sunbird's services keep keys: the bare base64.
    let (second_private, second_public) = rsa_pair(&scratch, "k2");
    let bare: String = second_public
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    std::fs::write(keys.join("key-1"), public).expect("key");
    std::fs::write(keys.join("key-2"), bare).expect("key");
    let (other_private, _) = rsa_pair(&scratch, "stranger");
    let users = MockServer::start().await;
    let mut c = w.config(&conformance());
    c.settings.auth.mode = Some(AuthMode::Sunbird);
    let s = &mut c.settings.auth.sunbird;
    s.public_key_dir = Some(keys);
    s.issuer = Some(ISSUER.into());
    s.user_read_url = Some(format!("{}/private/user/v1/read/", users.uri()));
    s.consumer_table = table.to_string();
    (
        c,
        SunbirdWorld {
            private,
            second_private,
            other_private,
            users,
        },
    )
}

/// Without a user token: the consumer and channel must be mapped with
/// status 1 (Sunbird's message otherwise); nothing is stored for a refusal.
async fn consumers(w: World) {
    let table = consumer_table(
        &w,
        &[
            ("portal", CHANNEL, Some(1)),
            ("portal", "org-off", Some(0)),
            ("twice", CHANNEL, Some(1)),
            ("twice", CHANNEL, Some(0)),
        ],
    )
    .await;
    let (config, _sb) = sunbird_config(&w, &table).await;
    let server = w.start(config).await;
    let store = w.t.open().await;
    let b = body("t", "u", json!({ "batchId": BATCH }), None);
    for (consumer, channel) in [
        (None, CHANNEL),
        (Some("portal"), "org-off"),
        (Some("portal"), "System"),
        (Some("stranger"), CHANNEL),
        (Some("twice"), CHANNEL),
    ] {
        let mut api = Api::new(&server);
        if let Some(c) = consumer {
            api = api.with_header("X-Consumer-ID", c);
        }
        let a = api.submit(Some(channel), &b).await;
        assert_error(
            &a,
            403,
            SUBMIT,
            "FORBIDDEN",
            &format!(
                "Given X-Consumer-ID='{}' and X-Channel-ID='{channel}' are not authorized",
                consumer.unwrap_or_default()
            ),
        );
    }
    nothing_stored(&store).await;
    let portal = Api::new(&server).with_header("X-Consumer-ID", "portal");
    let a = portal.submit(Some(CHANNEL), &b).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // Validation still comes first, as in Sunbird's API.
    let a = Api::new(&server)
        .submit(
            Some(CHANNEL),
            &body("", "u", json!({ "batchId": BATCH }), None),
        )
        .await;
    assert_error(&a, 400, SUBMIT, "CLIENT_ERROR", "tag is empty");
    assert_eq!(
        portal.list("t", None, Some(CHANNEL)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        portal
            .list("t", None, Some("org-off"))
            .await
            .status
            .as_u16(),
        403
    );
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(sunbird_consumers, World, consumers);

/// With a user token: verified here (signature by a configured key,
/// expiry, issuer, the gateway's user id), then the user's roles and root
/// org from the user read API decide.
async fn user_tokens(w: World) {
    let table = consumer_table(&w, &[]).await;
    let (config, sb) = sunbird_config(&w, &table).await;
    let good = user_token(&sb.private, Some("key-1"), ISSUER, "f:realm:u-1", 600);
    let mentor = user_token(&sb.private, Some("key-1"), ISSUER, "f:realm:u-2", 600);
    let public = user_token(&sb.private, None, ISSUER, "u-3", 600);
    let failing = user_token(&sb.private, Some("key-1"), ISSUER, "u-4", 600);
    let second = user_token(&sb.second_private, Some("key-2"), ISSUER, "u-1", 600);
    for (user, token, answer) in [
        ("u-1", &good, user_read(CHANNEL, &["ORG_ADMIN"])),
        ("u-1", &second, user_read(CHANNEL, &["REPORT_ADMIN"])),
        ("u-2", &mentor, user_read("another-org", &["COURSE_MENTOR"])),
        ("u-3", &public, user_read(CHANNEL, &["PUBLIC"])),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/private/user/v1/read/{user}")))
            .and(header("x-authenticated-user-token", token.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .mount(&sb.users)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/private/user/v1/read/u-4"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "responseCode": "RESOURCE_NOT_FOUND",
            "params": {"status": "failed", "errmsg": "user not found"}
        })))
        .mount(&sb.users)
        .await;
    let server = w.start(config).await;
    let store = w.t.open().await;
    let b = body("t", "u", json!({ "batchId": BATCH }), None);
    let as_user = |token: &str| Api::new(&server).with_header("x-authenticated-user-token", token);

    // Not verified: 401, before any user read.
    for token in [
        user_token(&sb.private, Some("key-1"), ISSUER, "u-1", -600),
        user_token(
            &sb.private,
            Some("key-1"),
            "https://evil.example/realms/x",
            "u-1",
            600,
        ),
        user_token(&sb.other_private, Some("key-1"), ISSUER, "u-1", 600),
        user_token(&sb.other_private, None, ISSUER, "u-1", 600),
        user_token(&sb.private, Some("no-such-key"), ISSUER, "u-1", 600),
        "not.a.jwt".to_string(),
    ] {
        let a = as_user(&token).submit(Some(CHANNEL), &b).await;
        assert_error(&a, 401, SUBMIT, "UNAUTHORIZED", "You are not authorized.");
    }
    // The gateway names another user than the token: refused.
    let a = as_user(&good)
        .with_header("X-Authenticated-Userid", "someone-else")
        .submit(Some(CHANNEL), &b)
        .await;
    assert_eq!(a.status.as_u16(), 401, "{}", a.text);
    nothing_stored(&store).await;

    // Authorised: a role of the list, and the channel is the root org.
    let a = as_user(&good)
        .with_header("X-Authenticated-Userid", "u-1")
        .submit(Some(CHANNEL), &b)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // A key kept as bare base64 verifies too.
    let a = as_user(&second).list("t", None, Some(CHANNEL)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // Not for another channel, not for System.
    for channel in ["System", "another-org"] {
        let a = as_user(&good).list("t", None, Some(channel)).await;
        assert_error(&a, 403, LIST, "FORBIDDEN", "You are not authorized.");
    }
    // A mentor of another org; a user without an authorised role.
    let a = as_user(&mentor).submit(Some(CHANNEL), &b).await;
    assert_error(&a, 403, SUBMIT, "FORBIDDEN", "You are not authorized.");
    let a = as_user(&public).submit(Some(CHANNEL), &b).await;
    assert_error(&a, 403, SUBMIT, "FORBIDDEN", "You are not authorized.");
    // The user read's own message, as Sunbird answers.
    let a = as_user(&failing).submit(Some(CHANNEL), &b).await;
    assert_error(&a, 403, SUBMIT, "FORBIDDEN", "user not found");
    let log = logged();
    assert!(!log.contains(&good), "a user token was logged");
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(sunbird_users, World, user_tokens);

/// The user read API slower than the request timeout: 408 in the
/// envelope; beyond the calls in flight: 503.
async fn limits(w: World) {
    let table = consumer_table(&w, &[]).await;
    let (mut config, sb) = sunbird_config(&w, &table).await;
    config.limits = exhaust_server::Limits {
        request_timeout: Duration::from_millis(800),
        max_in_flight: 1,
    };
    let slow = user_token(&sb.private, Some("key-1"), ISSUER, "u-1", 600);
    Mock::given(method("GET"))
        .and(path("/private/user/v1/read/u-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(user_read(CHANNEL, &["ORG_ADMIN"]))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&sb.users)
        .await;
    let server = w.start(config).await;
    let b = body("t", "u", json!({ "batchId": BATCH }), None);
    let api = Api::new(&server).with_header("x-authenticated-user-token", &slow);
    let first = api.submit(Some(CHANNEL), &b);
    let second = async {
        // While the first is in flight.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Api::new(&server).list("t", None, Some(CHANNEL)).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_error(
        &first,
        408,
        SUBMIT,
        "REQUEST_TIMEOUT",
        "the call took longer than the server allows; try again later",
    );
    assert_error(
        &second,
        503,
        LIST,
        "SERVICE_UNAVAILABLE",
        "the server is busy; try again later",
    );
    nothing_stored(&w.t.open().await).await;
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(call_limits, World, limits);

// ---------------------------------------------------------------------------
// Bounds (any mode).

/// A body over the limit: 413 in the envelope. A NUL or an over-long field:
/// 400, on both stores, and nothing stored. A list limit over 1000: 400.
async fn bounds(w: World) {
    let server = w.start(w.config(&conformance())).await;
    let store = w.t.open().await;
    let api = Api::new(&server);
    let huge = "x".repeat(3 << 20);
    let a = api
        .submit(
            Some(CHANNEL),
            &body(&huge, "u", json!({ "batchId": BATCH }), None),
        )
        .await;
    assert_error(
        &a,
        413,
        SUBMIT,
        "PAYLOAD_TOO_LARGE",
        "the request body is larger than 65536 bytes",
    );
    for (b, message) in [
        (
            body("t\u{0}x", "u", json!({ "batchId": BATCH }), None),
            "tag must not contain a NUL character",
        ),
        (
            body("t", "u\u{0}", json!({ "batchId": BATCH }), None),
            "requestedBy must not contain a NUL character",
        ),
        (
            body("t", "u", json!({ "batchId": "b\u{0}" }), None),
            "datasetConfig.batchId must not contain a NUL character",
        ),
        (
            body("t", "u", json!({ "batchId": BATCH }), Some("k\u{0}")),
            "encryptionKey must not contain a NUL character",
        ),
        (
            body(&"t".repeat(257), "u", json!({ "batchId": BATCH }), None),
            "tag is longer than 256 characters",
        ),
        (
            body(
                "t",
                "u",
                json!({ "batchId": BATCH }),
                Some(&"k".repeat(1025)),
            ),
            "encryptionKey is longer than 1024 characters",
        ),
    ] {
        let a = api.submit(Some(CHANNEL), &b).await;
        assert_error(&a, 400, SUBMIT, "CLIENT_ERROR", message);
    }
    nothing_stored(&store).await;
    let a = api.list("t", Some("1001"), Some(CHANNEL)).await;
    assert_error(&a, 400, LIST, "CLIENT_ERROR", "limit must be at most 1000");
    assert_eq!(
        api.list("t", Some("1000"), Some(CHANNEL)).await.status,
        StatusCode::OK
    );
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(body_and_field_bounds, World, bounds);
