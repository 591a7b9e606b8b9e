//! The server's other routes and modes end to end: signed downloads, the
//! configured bearer token, the reference request id, health (and what it
//! never shows), the in-process worker, the OpenAPI document and a store
//! that fails. Every scenario runs on both stores.

mod support;

use support::*;

/// Links are refused when tampered with, expired or signed with another
/// secret; a configured secret keeps links valid across restarts.
async fn download_tokens(w: World) {
    w.clock.set(Utc::now());
    let secret = "a-configured-secret-of-enough-bytes";
    let mut config = w.config(&conformance());
    config.download_secret = Some(Secret::new(secret.as_bytes().to_vec()));
    let server = w.start(config.clone()).await;
    let api = Api::new(&server);
    let a = api
        .submit(
            Some(CHANNEL),
            &body("t", "u", json!({"batchId": BATCH}), None),
        )
        .await;
    let id = a.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    run_worker_once(&w, &server, &conformance()).await;
    let a = api.read("t", &id, Some(CHANNEL)).await;
    let url = a.json["result"]["downloadUrls"][0]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(api.get(&url).await.0, StatusCode::OK);

    let (prefix, token) = url.rsplit_once('/').expect("token");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let refused = |a: &(StatusCode, reqwest::header::HeaderMap, Vec<u8>)| {
        assert_eq!(a.0, StatusCode::FORBIDDEN);
        let j: Value = serde_json::from_slice(&a.2).expect("envelope");
        assert_eq!(j["responseCode"], "FORBIDDEN");
        j["params"]["errmsg"].as_str().expect("message").to_string()
    };
    // A signature changed by one character.
    let mut sig = parts[2].to_string();
    let last = sig.pop().expect("char");
    sig.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = format!("{prefix}/{}.{}.{sig}", parts[0], parts[1]);
    assert_eq!(
        refused(&api.get(&tampered).await),
        "the download link is not valid"
    );
    // Another key, or a later expiry, under the same signature.
    let other_key = exhaust_server::download::Downloads::new(
        Secret::new(b"irrelevant-for-encoding".to_vec()),
        "http://x",
        Duration::from_secs(60),
    )
    .token("progress-exhaust/other.zip", 1);
    let other_key_part = other_key.split('.').next().expect("key part");
    refused(
        &api.get(&format!(
            "{prefix}/{other_key_part}.{}.{}",
            parts[1], parts[2]
        ))
        .await,
    );
    let later: i64 = parts[1].parse::<i64>().expect("expiry") + 86_400;
    refused(
        &api.get(&format!("{prefix}/{}.{later}.{}", parts[0], parts[2]))
            .await,
    );
    // Garbage, and a link for a key outside the store signed with the
    // right secret (the store refuses the key).
    refused(&api.get(&format!("{prefix}/not-a-token")).await);
    let right = Downloads::new(
        Secret::new(secret.as_bytes().to_vec()),
        &server.url(),
        Duration::from_secs(600),
    );
    let escape = right.url("../outside.zip", Utc::now());
    refused(&api.get(&escape).await);
    // A missing file under a valid link: 404.
    let gone = right.url("progress-exhaust/none.zip", Utc::now());
    assert_eq!(api.get(&gone).await.0, StatusCode::NOT_FOUND);
    // Signed with another secret (a restart with a random secret).
    let foreign = Downloads::new(Secret::random(), &server.url(), Duration::from_secs(600));
    let key = url_key(&url);
    refused(&api.get(&foreign.url(&key, Utc::now())).await);

    // A restart with the same configured secret keeps the link valid.
    server.shutdown().await.expect("shutdown");
    let restarted = w.start(config).await;
    let moved = url.replace(
        prefix.trim_end_matches("/dataset/v1/download"),
        &restarted.url(),
    );
    assert_eq!(Api::new(&restarted).get(&moved).await.0, StatusCode::OK);

    // Expired: 31 minutes later.
    w.clock.advance(ChronoDuration::minutes(31));
    let a = Api::new(&restarted).get(&moved).await;
    assert_eq!(refused(&a), "the download link has expired");
    restarted.shutdown().await.expect("shutdown");
}
on_both_stores!(downloads, World, download_tokens);

fn url_key(url: &str) -> String {
    use base64::Engine;
    let token = url.rsplit('/').next().expect("token");
    let key = token.split('.').next().expect("key");
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key)
            .expect("base64"),
    )
    .expect("utf-8")
}

/// A configured bearer token (a `System` token of the `token` mode)
/// guards the API routes, not the downloads nor the health check.
async fn bearer_token(w: World) {
    let token = "t0k3n-for-the-api";
    let mut config = w.config(&conformance());
    config.bearer_token = Some(Secret::new(token.as_bytes().to_vec()));
    let server = w.start(config).await;
    let open = Api::new(&server);
    let wrong = Api::new(&server).with_bearer("not-it");
    let right = Api::new(&server).with_bearer(token);
    let b = body("t", "u", json!({"batchId": BATCH}), None);

    for api in [&open, &wrong] {
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
        assert_error(
            &a,
            401,
            READ,
            "UNAUTHORIZED",
            "a valid Authorization: Bearer token is required",
        );
        let a = api.list("t", None, Some(CHANNEL)).await;
        assert_error(
            &a,
            401,
            LIST,
            "UNAUTHORIZED",
            "a valid Authorization: Bearer token is required",
        );
    }
    // It acts for System only.
    let a = right.submit(Some(CHANNEL), &b).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    let a = right.submit(Some("System"), &b).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = a.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    run_worker_once(&w, &server, &conformance()).await;
    let a = right.read("t", &id, Some("System")).await;
    let url = a.json["result"]["downloadUrls"][0]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(
        open.get(&url).await.0,
        StatusCode::OK,
        "downloads need no token"
    );
    assert_eq!(
        open.get(&format!("{}/health", server.url())).await.0,
        StatusCode::OK
    );
    assert!(!logged().contains(token), "the token is never logged");
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(bearer, World, bearer_token);

/// The request id of the reference's worked example (1.3), through the API.
async fn reference_request_id(w: World) {
    let at = Utc
        .with_ymd_and_hms(2024, 1, 15, 10, 0, 0)
        .single()
        .expect("time");
    w.clock.set(at);
    let server = w.start(w.config(&conformance())).await;
    let a = Api::new(&server)
        .submit(
            Some("0126796199493140480"),
            &body("do_123_0123", "u-001", json!({"batchId": "0123"}), None),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json["ts"], "2024-01-15T10:00:00.000+00:00");
    let r = &a.json["result"];
    assert_eq!(r["requestId"], "65D9E6F1BF0B4DBCD0C86AAA410662B3");
    assert_eq!(r["tag"], "do_123_0123:0126796199493140480");
    assert_eq!(r["jobStats"]["dtJobSubmitted"], 1_705_312_800_000_i64);
    assert_eq!(r["expiresAt"], 1_705_314_600_000_i64);
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(request_id, World, reference_request_id);

/// /health: 200 when every part answers, 503 naming the part that does not.
async fn health(w: World) {
    let snapshot = w.snapshot_copy(&conformance());
    let server = w.start(w.config(&snapshot)).await;
    let api = Api::new(&server);
    let url = format!("{}/health", server.url());
    let health = |a: (StatusCode, reqwest::header::HeaderMap, Vec<u8>)| {
        (a.0, serde_json::from_slice::<Value>(&a.2).expect("json"))
    };
    let (status, j) = health(api.get(&url).await);
    assert_eq!(status, StatusCode::OK, "{j}");
    assert_eq!(j["status"], "ok");
    for part in ["store", "storage", "source"] {
        assert_eq!(j[part]["status"], "up", "{j}");
    }
    assert_eq!(
        j["store"]["kind"],
        if w.t.url().starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    );

    std::fs::remove_dir_all(&snapshot).expect("remove snapshot");
    let (status, j) = health(api.get(&url).await);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{j}");
    assert_eq!(j["status"], "down");
    assert_eq!(j["source"]["status"], "down");
    assert_eq!(j["store"]["status"], "up");

    std::fs::remove_dir_all(w.files()).expect("remove storage");
    let (status, j) = health(api.get(&url).await);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(j["storage"]["status"], "down", "{j}");
    assert_eq!(j["storage"]["error"], "the storage folder is gone");

    let metrics =
        String::from_utf8(api.get(&format!("{}/metrics", server.url())).await.2).expect("text");
    assert!(
        metrics.contains("exhaust_health_failures_total{part=\"source\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("exhaust_health_failures_total{part=\"storage\"} 1"),
        "{metrics}"
    );
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(health_checks, World, health);

/// A TCP relay to PostgreSQL that the test can cut and mend: what a
/// database outage looks like from the server.
struct Relay {
    port: u16,
    accept: tokio::task::JoinHandle<()>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("relay port");
        let port = listener.local_addr().expect("addr").port();
        let links = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                held.lock().expect("links").push(link);
            }
        });
        Self {
            port,
            accept,
            links,
        }
    }

    /// The port closed and every relayed connection dropped, before this
    /// returns: aborting a task only asks, awaiting it is what waits for
    /// its sockets to be closed.
    async fn cut(self) -> u16 {
        self.accept.abort();
        let _ = self.accept.await;
        let links = std::mem::take(&mut *self.links.lock().expect("links"));
        for link in links {
            link.abort();
            let _ = link.await;
        }
        self.port
    }
}

/// Liveness does not depend on the store; readiness does: while
/// PostgreSQL cannot be reached, `/livez` is 200 and `/readyz` 503 naming
/// the store; when it answers again, both are 200.
#[tokio::test]
async fn liveness_and_readiness() {
    let w = World::postgres().await;
    let relay = Relay::start(0).await;
    let mut config = w.config(&conformance());
    let url = pg_url().replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port), 1);
    assert_ne!(url, pg_url(), "the test URL names 127.0.0.1:5432");
    config.settings.store.url = url;
    let server = w.start(config).await;
    let api = Api::new(&server);
    let probe = |path: &str| {
        let url = format!("{}{path}", server.url());
        let api = &api;
        async move {
            let (status, _, body) = api.get(&url).await;
            (
                status,
                serde_json::from_slice::<Value>(&body).expect("json"),
            )
        }
    };
    assert_eq!(probe("/livez").await.0, StatusCode::OK);
    assert_eq!(probe("/readyz").await.0, StatusCode::OK);

    let port = relay.cut().await;
    let (status, body) = probe("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["store"]["status"], "down", "{body}");
    assert_eq!(body["store"]["kind"], "postgres", "{body}");
    let (status, body) = probe("/livez").await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("up")));

    let _relay = Relay::start(port).await;
    let mut ready = None;
    for _ in 0..50 {
        let (status, _) = probe("/readyz").await;
        if status == StatusCode::OK {
            ready = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready,
        Some(StatusCode::OK),
        "ready again once the store answers"
    );
    assert_eq!(probe("/livez").await.0, StatusCode::OK);
    server.shutdown().await.expect("shutdown");
}

/// /health is open: a part that is down says its kind and a generic reason,
/// never the configured folders or hosts, which only the log has.
async fn health_names_no_path_or_host(w: World) {
    let get_health = |server: &Running| {
        let url = format!("{}/health", server.url());
        let api = Api::new(server);
        async move {
            let (status, _, bytes) = api.get(&url).await;
            let text = String::from_utf8(bytes).expect("text");
            let j: Value = serde_json::from_str(&text).expect("json");
            (status, text, j)
        }
    };
    let snapshot = w.snapshot_copy(&conformance());
    let server = w.start(w.config(&snapshot)).await;
    std::fs::remove_dir_all(&snapshot).expect("remove snapshot");
    std::fs::remove_dir_all(w.files()).expect("remove storage");
    let (status, text, j) = get_health(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{j}");
    assert_eq!(j["source"]["kind"], "snapshot");
    assert_eq!(j["source"]["error"], "not found");
    assert_eq!(j["storage"]["kind"], "local folder");
    assert_eq!(j["storage"]["status"], "down");
    for hidden in [&snapshot, &w.files(), &w.t.dir().to_path_buf()] {
        let hidden = hidden.display().to_string();
        assert!(!text.contains(&hidden), "{hidden} shows in {text}");
    }
    assert!(
        logged().contains(&snapshot.display().to_string()),
        "the log names the folder"
    );
    server.shutdown().await.expect("shutdown");

    // The live stores, at hosts that do not resolve.
    std::fs::create_dir_all(w.files()).expect("storage again");
    let mut config = w.config(&conformance());
    config.settings.source.live = Some(exhaust_sources::LiveConfig {
        cassandra: exhaust_sources::CassandraConfig {
            contact_points: vec!["cassandra-health-probe.invalid:9042".into()],
            connect_timeout_ms: 300,
            ..Default::default()
        },
        redis: exhaust_sources::RedisConfig {
            url: "redis://redis-health-probe.invalid:6379".into(),
            connect_timeout_ms: 300,
            ..Default::default()
        },
        ..Default::default()
    });
    let server = w.start(config).await;
    let (status, text, j) = get_health(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{j}");
    assert_eq!(j["source"]["kind"], "live");
    assert_eq!(j["source"]["status"], "down");
    assert!(
        ["unreachable", "timed out"].contains(&j["source"]["error"].as_str().unwrap_or("")),
        "{j}"
    );
    assert!(!text.contains("health-probe"), "a host shows in {text}");
    assert!(!text.contains("127.0.0.1"), "a host shows in {text}");
    // The driver's error names the host: the log has it, the body not.
    assert!(
        logged().contains("health-probe.invalid"),
        "the log names the host"
    );
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(health_privacy, World, health_names_no_path_or_host);

/// `--worker`: the server builds requests itself; the metrics count the
/// work; shutdown is graceful.
async fn worker_mode(w: World) {
    let mut config = w.config(&sample());
    config.worker = true;
    config.poll = Duration::from_secs(1);
    let server = w.start(config).await;
    let api = Api::new(&server);
    let a = api
        .submit(
            Some(SAMPLE_CHANNEL),
            &body("sample", "a-user", json!({"batchId": SAMPLE_BATCH}), None),
        )
        .await;
    let id = a.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    let mut result = Value::Null;
    for _ in 0..120 {
        let a = api.read("sample", &id, Some(SAMPLE_CHANNEL)).await;
        result = a.json["result"].clone();
        if result["status"] == "SUCCESS" || result["status"] == "FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(result["status"], "SUCCESS", "{result}");
    let url = result["downloadUrls"][0].as_str().expect("url");
    let (status, _, bytes) = api.get(url).await;
    assert_eq!(status, StatusCode::OK);
    let (_, csv) = unzip(&bytes);
    let batches = column(&csv, "Batch Id");
    assert_eq!(batches.len(), 38, "the sample batch has 38 learners");
    assert!(batches.iter().all(|b| b == SAMPLE_BATCH));

    let (_, headers, text) = api.get(&format!("{}/metrics", server.url())).await;
    assert!(
        headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(text).expect("text");
    for needle in [
        "exhaust_requests{status=\"SUCCESS\"} 1",
        "exhaust_requests{status=\"SUBMITTED\"} 0",
        "exhaust_batches_built_total 1",
        "exhaust_rows_written_total 38",
        "exhaust_requests_processed_total{outcome=\"succeeded\"} 1",
        "exhaust_batch_build_seconds_count 1",
        "exhaust_store_errors_total 0",
        "exhaust_worker_runs_total",
        "exhaust_api_calls_total{route=\"/dataset/v1/request/read/{tag}\",code=\"200\"}",
        "exhaust_api_calls_total{route=\"/dataset/v1/request/submit\",code=\"200\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }

    let url = server.url();
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("stops in time")
        .expect("shutdown");
    assert!(
        reqwest::get(format!("{url}/health")).await.is_err(),
        "no longer accepting"
    );
}
on_both_stores!(in_process_worker, World, worker_mode);

#[tokio::test]
async fn openapi_documents_every_route() {
    let w = World::sqlite().await;
    let server = w.start(w.config(&conformance())).await;
    let (status, _, bytes) = Api::new(&server)
        .get(&format!("{}/openapi.json", server.url()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&bytes).expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/dataset/v1/request/submit", "post"),
        ("/dataset/v1/request/read/{tag}", "get"),
        ("/dataset/v1/request/list/{tag}", "get"),
        ("/dataset/v1/download/{token}", "get"),
        ("/livez", "get"),
        ("/readyz", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{path} {method}"
        );
    }
    assert_eq!(
        doc,
        serde_json::to_value(exhaust_server::openapi()).expect("doc")
    );
    assert!(doc["components"]["schemas"].get("JobResponse").is_some());
    server.shutdown().await.expect("shutdown");
}

/// A store that fails (its PostgreSQL schema dropped under the server):
/// HTTP 500 SERVER_ERROR, counted in the metrics; the key still not logged.
#[tokio::test]
async fn store_failures_are_server_errors() {
    let w = World::postgres().await;
    let server = w.start(w.config(&conformance())).await;
    let api = Api::new(&server);
    let key = format!("ENCKEY-{}-store-down", uuid::Uuid::new_v4().simple());
    let ok = api
        .submit(
            Some(CHANNEL),
            &body("t", "u", json!({"batchId": BATCH}), None),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    let schema = w.t.table().split('.').next().expect("schema");
    let mut conn = PgConnection::connect(&pg_url()).await.expect("PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .expect("drop");

    let message = "the request store failed; try again later";
    let a = api
        .submit(
            Some(CHANNEL),
            &body("t2", "u", json!({"batchId": BATCH}), Some(&key)),
        )
        .await;
    assert_error(&a, 500, SUBMIT, "SERVER_ERROR", message);
    let a = api.read("t", "X", Some(CHANNEL)).await;
    assert_error(&a, 500, READ, "SERVER_ERROR", message);
    let a = api.list("t", None, Some(CHANNEL)).await;
    assert_error(&a, 500, LIST, "SERVER_ERROR", message);
    let metrics =
        String::from_utf8(api.get(&format!("{}/metrics", server.url())).await.2).expect("text");
    assert!(
        metrics.contains("exhaust_store_errors_total 4"),
        "{metrics}"
    );
    assert!(!logged().contains(&key));
    server.shutdown().await.expect("shutdown");
}
