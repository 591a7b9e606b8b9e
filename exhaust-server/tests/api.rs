//! The server end to end: started in-process on a random port, called over
//! HTTP, with requests in a real store (an SQLite file, and a PostgreSQL
//! schema of the test's own on 127.0.0.1:5432 or `EXHAUST_TEST_PG_URL`),
//! reports from snapshot folders and zips in a local storage folder. Every
//! scenario runs on both stores.

mod support;

use support::*;
// ---------------------------------------------------------------------------
// Scenarios.

/// Submit → a worker run → read shows SUCCESS with a link that downloads
/// the zip of the batch; list; the encryption key never comes back and is
/// never logged.
async fn submit_build_read_download(w: World) {
    // Whole milliseconds: PostgreSQL keeps microseconds, rounding the rest.
    let now = Utc
        .timestamp_millis_opt(Utc::now().timestamp_millis())
        .single()
        .expect("time");
    w.clock.set(now);
    let server = w.start(w.config(&conformance())).await;
    let api = Api::new(&server);
    let key = format!("ENCKEY-{}-never-shown", uuid::Uuid::new_v4().simple());
    let tag = "do_1130928636168192001667_batch-001";

    let a = api
        .submit(
            Some(CHANNEL),
            &body(tag, "user-002", json!({"batchId": BATCH}), Some(&key)),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_envelope(&a, SUBMIT, "OK", "successful");
    assert!(a.json["params"].get("err").is_none() && a.json["params"].get("errmsg").is_none());
    let r = &a.json["result"];
    let request_id = r["requestId"].as_str().expect("id").to_string();
    assert_eq!(request_id.len(), 32);
    assert!(
        request_id
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert_eq!(r["tag"], format!("{tag}:{CHANNEL}"));
    assert_eq!(r["dataset"], "progress-exhaust");
    assert_eq!(r["requestedBy"], "user-002");
    assert_eq!(r["requestedChannel"], CHANNEL);
    assert_eq!(r["status"], "SUBMITTED");
    assert_eq!(r["datasetConfig"], json!({"batchId": BATCH}));
    assert_eq!(r["attempts"], 0);
    let submitted = now.timestamp_millis();
    assert_eq!(r["jobStats"], json!({"dtJobSubmitted": submitted}));
    assert_eq!(r["lastUpdated"], submitted);
    assert_eq!(r["downloadUrls"], json!([]));
    assert_eq!(r["expiresAt"], submitted + 30 * 60 * 1000);
    assert_eq!(r["statusMessage"], "");
    assert!(!a.text.contains(&key) && !a.text.contains("encryptionKey"));

    let summary = run_worker_once(&w, &server, &conformance()).await;
    assert_eq!((summary.total, summary.succeeded), (1, 1), "{summary}");

    let a = api.read(tag, &request_id, Some(CHANNEL)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_envelope(&a, READ, "OK", "successful");
    let r = &a.json["result"];
    assert_eq!(r["status"], "SUCCESS", "{}", a.text);
    assert_eq!(r["requestId"], request_id.as_str());
    let stats = r["jobStats"].as_object().expect("stats");
    assert_eq!(
        stats.keys().collect::<Vec<_>>(),
        ["dtJobCompleted", "dtJobSubmitted", "executionTime"]
    );
    assert_eq!(r["lastUpdated"], stats["dtJobCompleted"]);
    assert!(!a.text.contains(&key));
    let urls = r["downloadUrls"].as_array().expect("urls");
    assert_eq!(urls.len(), 1);
    let url = urls[0].as_str().expect("url");
    assert!(
        url.starts_with(&format!("{}/dataset/v1/download/", server.url())),
        "{url}"
    );

    // The link needs neither the channel nor a token.
    let (status, headers, bytes) = api.get(url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/zip");
    let disposition = headers["content-disposition"].to_str().expect("text");
    assert!(
        disposition.starts_with("attachment; filename=\"batch-001_progress_")
            && disposition.ends_with(".zip\""),
        "{disposition}"
    );
    let (name, csv) = unzip(&bytes);
    assert!(name.starts_with("batch-001_progress_") && name.ends_with(".csv"));
    assert_eq!(
        column(&csv, "User UUID"),
        ["user-001", "user-002", "user-003", "user-004"]
    );
    assert!(column(&csv, "Batch Id").iter().all(|b| b == BATCH));

    let a = api.list(tag, None, Some(CHANNEL)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_envelope(&a, LIST, "OK", "successful");
    assert_eq!(a.json["result"]["count"], 1);
    assert_eq!(
        a.json["result"]["jobs"][0]["requestId"],
        request_id.as_str()
    );
    assert_eq!(a.json["result"]["jobs"][0]["status"], "SUCCESS");
    assert!(!a.text.contains(&key));

    // Submitting the same again the same day returns the finished request
    // as it is, links included.
    let a = api
        .submit(
            Some(CHANNEL),
            &body(tag, "user-002", json!({"batchId": BATCH}), Some(&key)),
        )
        .await;
    assert_eq!(a.json["result"]["status"], "SUCCESS", "{}", a.text);
    assert_eq!(a.json["result"]["requestId"], request_id.as_str());
    assert_eq!(
        a.json["result"]["downloadUrls"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(!a.text.contains(&key));

    let logs = logged();
    assert!(logs.contains(&request_id), "the logs name the request");
    assert!(!logs.contains(&key), "the logs never hold the key");
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(flow, World, submit_build_read_download);

/// `outputFormat` chooses the file inside the zip (csv when absent, and
/// Sunbird's "csv" keeps the request as Sunbird stores it); an unknown
/// format is refused with 400 naming it.
async fn output_formats(w: World) {
    let server = w.start(w.config(&conformance())).await;
    let api = Api::new(&server);
    let with_format = |format: &str| {
        let mut b = body("formats", "user-002", json!({"batchId": BATCH}), None);
        b["request"]["outputFormat"] = json!(format);
        b
    };

    let a = api.submit(Some(CHANNEL), &with_format("pdf")).await;
    assert_error(
        &a,
        400,
        SUBMIT,
        "CLIENT_ERROR",
        "request.outputFormat: unknown output format \"pdf\": use csv, parquet, arrow or xlsx",
    );

    let a = api.submit(Some(CHANNEL), &with_format("parquet")).await;
    if !exhaust_writer::format_available(exhaust_core::typed::OutputFormat::Parquet) {
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
        assert!(a.text.contains("not built in"), "{}", a.text);
        server.shutdown().await.expect("shutdown");
        return;
    }
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let parquet_id = a.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        a.json["result"]["datasetConfig"],
        json!({"batchId": BATCH, "outputFormat": "parquet"})
    );
    let a = api.submit(Some(CHANNEL), &with_format("CSV")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json["result"]["datasetConfig"], json!({"batchId": BATCH}));
    let csv_id = a.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    assert_ne!(csv_id, parquet_id, "each format is its own request");

    let summary = run_worker_once(&w, &server, &conformance()).await;
    assert_eq!((summary.total, summary.succeeded), (2, 2), "{summary}");
    for (id, ext, magic) in [
        (&parquet_id, "parquet", &b"PAR1"[..]),
        (&csv_id, "csv", &b"Collection Id"[..]),
    ] {
        let a = api.read("formats", id, Some(CHANNEL)).await;
        assert_eq!(a.json["result"]["status"], "SUCCESS", "{}", a.text);
        let url = a.json["result"]["downloadUrls"][0].as_str().expect("url");
        let (status, _, bytes) = api.get(url).await;
        assert_eq!(status, StatusCode::OK);
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("archive");
        assert_eq!(zip.len(), 1);
        let mut entry = zip.by_index(0).expect("entry");
        let name = entry.name().expect("name").to_string();
        assert!(
            name.starts_with("batch-001_progress_") && name.ends_with(&format!(".{ext}")),
            "{name}"
        );
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        assert!(data.starts_with(magic), "{name} is a {ext} file");
    }
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(formats, World, output_formats);

/// List: newest first, limited, scoped by channel; a bad limit is refused.
async fn listing(w: World) {
    let t0 = Utc
        .with_ymd_and_hms(2024, 3, 1, 8, 0, 0)
        .single()
        .expect("time");
    let server = w.start(w.config(&conformance())).await;
    let api = Api::new(&server);
    let mut ids = Vec::new();
    for (i, by) in ["u-1", "u-2", "u-3"].iter().enumerate() {
        w.clock.set(t0 + ChronoDuration::minutes(i as i64));
        let a = api
            .submit(
                Some(CHANNEL),
                &body("course_batch", by, json!({"batchId": BATCH}), None),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        ids.push(
            a.json["result"]["requestId"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let a = api.list("course_batch", None, Some(CHANNEL)).await;
    assert_eq!(a.json["result"]["count"], 3, "{}", a.text);
    let listed: Vec<&str> = a.json["result"]["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["requestId"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);

    let a = api.list("course_batch", Some("2"), Some(CHANNEL)).await;
    assert_eq!(a.json["result"]["count"], 2);
    assert_eq!(a.json["result"]["jobs"][0]["requestedBy"], "u-3");

    // Another org sees none of them.
    let a = api.list("course_batch", None, Some("another-org")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json["result"], json!({"count": 0, "jobs": []}));

    let a = api.list("course_batch", Some("many"), Some(CHANNEL)).await;
    assert_error(
        &a,
        400,
        LIST,
        "CLIENT_ERROR",
        "limit must be a whole number of 0 or more",
    );
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(list, World, listing);

/// Every validation and authorisation error, with Sunbird's code and text.
async fn errors(w: World) {
    let server = w.start(w.config(&conformance())).await;
    let api = Api::new(&server);
    let ok = || body("t", "u", json!({"batchId": BATCH}), None);
    let without = |field: &str| {
        let mut b = ok();
        b["request"].as_object_mut().expect("request").remove(field);
        b
    };

    // Validation first, in Sunbird's order, then the channel.
    let mut empty_tag = without("tag");
    empty_tag["request"]["dataset"] = json!("");
    let cases: Vec<(Value, Option<&str>, u16, &str, &str)> = vec![
        (
            empty_tag.clone(),
            Some(CHANNEL),
            400,
            "CLIENT_ERROR",
            "tag is empty",
        ),
        (empty_tag, None, 400, "CLIENT_ERROR", "tag is empty"),
        (
            without("dataset"),
            None,
            400,
            "CLIENT_ERROR",
            "dataset is empty",
        ),
        (
            without("datasetConfig"),
            Some(CHANNEL),
            400,
            "CLIENT_ERROR",
            "datasetConfig is empty",
        ),
        (
            {
                let mut b = ok();
                b["request"]["datasetConfig"] = json!({});
                b
            },
            Some(CHANNEL),
            400,
            "CLIENT_ERROR",
            "datasetConfig is empty",
        ),
        (
            json!({}),
            Some(CHANNEL),
            400,
            "CLIENT_ERROR",
            "tag is empty",
        ),
        (
            ok(),
            None,
            403,
            "FORBIDDEN",
            "X-Channel-ID is missing in request header",
        ),
        (
            ok(),
            Some("  "),
            403,
            "FORBIDDEN",
            "X-Channel-ID is missing in request header",
        ),
        (
            {
                let mut b = ok();
                b["request"]["tag"] = json!(12);
                b
            },
            Some(CHANNEL),
            400,
            "CLIENT_ERROR",
            "request.tag must be a string",
        ),
    ];
    for (b, channel, http, code, message) in cases {
        let a = api.submit(channel, &b).await;
        assert_error(&a, http, SUBMIT, code, message);
    }

    let a = api
        .submit_raw(Some(CHANNEL), "{\"request\": {\"tag\": ")
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_envelope(&a, SUBMIT, "CLIENT_ERROR", "failed");
    let msg = a.json["params"]["errmsg"].as_str().expect("message");
    assert!(
        msg.starts_with("the request body is not valid JSON"),
        "{msg}"
    );

    let a = api.read("t", "X", None).await;
    assert_error(
        &a,
        403,
        READ,
        "FORBIDDEN",
        "X-Channel-ID is missing in request header",
    );
    let a = api.list("t", None, None).await;
    assert_error(
        &a,
        403,
        LIST,
        "FORBIDDEN",
        "X-Channel-ID is missing in request header",
    );

    // An unknown request: HTTP 200, params failed, err OK, no result.
    let a = api.read("t", "NOPE", Some(CHANNEL)).await;
    assert_error(
        &a,
        200,
        READ,
        "OK",
        "no job available with the given request_id and tag",
    );
    // A request of another org is unknown too.
    let a = api.submit(Some(CHANNEL), &ok()).await;
    let id = a.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    let a = api.read("t", &id, Some("another-org")).await;
    assert_eq!(
        a.json["params"]["errmsg"],
        "no job available with the given request_id and tag"
    );
    let a = api.read("t", &id, Some(CHANNEL)).await;
    assert_eq!(a.json["result"]["requestId"], id.as_str());
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(validation_and_authorisation, World, errors);

/// Same inputs the same day: the request as it is. FAILED: queued again
/// with its attempts starting again. Another day: a new request.
async fn resubmission(w: World) {
    let t0 = Utc
        .with_ymd_and_hms(2024, 2, 10, 9, 0, 0)
        .single()
        .expect("time");
    w.clock.set(t0);
    let server = w.start(w.config(&conformance())).await;
    let api = Api::new(&server);
    let good = body("t", "u", json!({"batchId": BATCH}), None);
    let first = api.submit(Some(CHANNEL), &good).await;
    let id = first.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    w.clock.advance(ChronoDuration::hours(1));
    let again = api.submit(Some(CHANNEL), &good).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json["result"], {
        let mut r = first.json["result"].clone();
        // Only the links' expiry moves with the clock.
        r["expiresAt"] = again.json["result"]["expiresAt"].clone();
        r
    });
    assert_eq!(
        again.json["result"]["jobStats"]["dtJobSubmitted"],
        t0.timestamp_millis()
    );

    // A request that fails: an unknown batch.
    let bad = body("t2", "u", json!({"batchId": "no-such-batch"}), None);
    let a = api.submit(Some(CHANNEL), &bad).await;
    let bad_id = a.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    let summary = run_worker_once(&w, &server, &conformance()).await;
    assert_eq!((summary.succeeded, summary.failed), (1, 1), "{summary}");
    let a = api.read("t2", &bad_id, Some(CHANNEL)).await;
    let r = &a.json["result"];
    assert_eq!(r["status"], "FAILED", "{}", a.text);
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["statusMessage"], "No data found");
    assert_eq!(r["downloadUrls"], json!([]));
    assert!(r["jobStats"].get("dtJobCompleted").is_some());

    let resubmitted_at = t0 + ChronoDuration::hours(2);
    w.clock.set(resubmitted_at);
    let a = api.submit(Some(CHANNEL), &bad).await;
    let r = &a.json["result"];
    assert_eq!(r["requestId"], bad_id.as_str());
    assert_eq!(r["status"], "SUBMITTED", "{}", a.text);
    assert_eq!(
        r["attempts"], 0,
        "a resubmitted request starts its attempts again"
    );
    assert_eq!(
        r["jobStats"],
        json!({"dtJobSubmitted": resubmitted_at.timestamp_millis()})
    );

    // The next day the same inputs make a new request.
    w.clock.set(t0 + ChronoDuration::days(1));
    let a = api.submit(Some(CHANNEL), &good).await;
    assert_ne!(a.json["result"]["requestId"], id.as_str());
    assert_eq!(a.json["result"]["status"], "SUBMITTED");
    server.shutdown().await.expect("shutdown");
}
on_both_stores!(resubmissions, World, resubmission);

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

// ---------------------------------------------------------------------------
// The whole flow on every cloud store's emulator (`scripts/services`; see
// `exhaust_writer::testing`): submit -> run -> SUCCESS -> read returns
// downloadUrls signed by the store -> GET each -> the bytes are the stored
// zip and its CSV is the expected report. Stored download_urls keep
// Sunbird's relative keys; legacy absolute values still resolve. A store
// that fails sends the request back to SUBMITTED, named, secret-free.

#[cfg(any(feature = "s3", feature = "azure"))]
mod cloud {
    use super::*;
    use exhaust_core::store::RequestStore;
    use exhaust_writer::testing::{CloudSettings, Emulator, unique_prefix};

    const EXPECTED: &str =
        include_str!("../../exhaust-cli/tests/expected/sample-0135742803756164562-seed.csv");

    fn on(w: &World, settings: &CloudSettings) -> ServerConfig {
        let mut c = w.config(&sample());
        c.settings.storage.url = settings.url.clone();
        c.settings.storage.options = settings.options.iter().cloned().collect();
        c
    }

    /// Replaces a request's stored download_urls, as an older job left them.
    async fn store_urls(w: &World, request_id: &str, urls: &[String]) {
        if w.t.url().starts_with("postgres") {
            let mut conn = PgConnection::connect(w.t.url()).await.expect("PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {} SET download_urls = $1 WHERE request_id = $2",
                w.t.table()
            )))
            .bind(urls)
            .bind(request_id)
            .execute(&mut conn)
            .await
            .expect("update");
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", w.t.url()))
                .await
                .expect("SQLite");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {} SET download_urls = ? WHERE request_id = ?",
                w.t.table()
            )))
            .bind(serde_json::to_string(urls).expect("json"))
            .bind(request_id)
            .execute(&mut conn)
            .await
            .expect("update");
        }
    }

    /// GETs the one download URL of a read and checks it against the store.
    async fn download_checks(
        api: &Api,
        server: &Running,
        tag: &str,
        rid: &str,
        key: &str,
        e: Emulator,
    ) {
        let a = api.read(tag, rid, Some(SAMPLE_CHANNEL)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.json["result"]["status"], "SUCCESS", "{}", a.text);
        let urls = a.json["result"]["downloadUrls"].as_array().expect("urls");
        assert_eq!(urls.len(), 1, "{}", a.text);
        let url = urls[0].as_str().expect("url");
        assert!(
            url.starts_with(&e.endpoint()) && !url.starts_with(&server.url()),
            "the store signs the link: {url}"
        );
        let (status, _, bytes) = api.get(url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        let stored = server
            .state()
            .storage()
            .get(key)
            .await
            .expect("storage")
            .expect("stored");
        assert_eq!(bytes, stored, "the link gives the stored zip");
        let (name, csv) = unzip(&bytes);
        assert!(name.starts_with("0135742803756164562_progress_") && name.ends_with(".csv"));
        // The expected file is kept with LF line ends; reports use CRLF.
        assert!(
            csv.ends_with("\r\n") && csv.replace("\r\n", "\n") == EXPECTED,
            "the report inside the zip from {url} is not the expected one"
        );
    }

    async fn flow(e: Emulator, w: World, test: &str) {
        let Some(settings) = e.for_test(test) else {
            return;
        };
        let server = w.start(on(&w, &settings)).await;
        let api = Api::new(&server);
        let tag = unique_prefix(test);
        let a = api
            .submit(
                Some(SAMPLE_CHANNEL),
                &body(&tag, "user-1", json!({"batchId": SAMPLE_BATCH}), None),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let rid = a.json["result"]["requestId"]
            .as_str()
            .expect("id")
            .to_string();
        let summary = run_worker_once(&w, &server, &sample()).await;
        assert_eq!(summary.succeeded, 1, "{summary}");

        // Stored: Sunbird's container-relative key, and the zip under it.
        let rows = server.state().store().by_id(&rid).await.expect("row");
        let key = rows[0].download_urls[0].clone();
        assert!(
            key.starts_with(&format!(
                "progress-exhaust/{rid}/0135742803756164562_progress_"
            )) && key.ends_with(".zip"),
            "{key}"
        );
        download_checks(&api, &server, &tag, &rid, &key, e).await;

        // Legacy absolute values resolve to the same object.
        let bucket = settings.url.split("://").nth(1).expect("bucket");
        for legacy in [
            format!("wasb://{bucket}@account.blob.core.windows.net/{key}"),
            format!("s3n://{bucket}/{key}"),
            format!("https://account.blob.core.windows.net/{bucket}/{key}"),
        ] {
            store_urls(&w, &rid, std::slice::from_ref(&legacy)).await;
            download_checks(&api, &server, &tag, &rid, &key, e).await;
        }
        server.shutdown().await.expect("stops");
    }

    /// A store that refuses (missing bucket, wrong key) or is down: the
    /// request goes back to SUBMITTED with a message naming the store and
    /// the cause and no secret, then succeeds once the store is mended.
    async fn failures(e: Emulator, w: World, test: &str) {
        let Some(good) = e.for_test(test) else {
            return;
        };
        let missing = e.settings_for("exhaust-no-such-bucket");
        let mut wrong_key = good.clone();
        if e.checks_signatures() {
            for (k, v) in wrong_key.options.iter_mut() {
                if k.contains("key") {
                    *v = AZURITE_WRONG.into();
                }
            }
        }
        let mut cases = vec![("missing bucket", missing)];
        if e.checks_signatures() {
            cases.push(("wrong key", wrong_key));
        }
        let tag = unique_prefix(test);
        let mut rid = String::new();
        for (what, settings) in &cases {
            let server = w.start(on(&w, settings)).await;
            let api = Api::new(&server);
            let a = api
                .submit(
                    Some(SAMPLE_CHANNEL),
                    &body(&tag, "user-1", json!({"batchId": SAMPLE_BATCH}), None),
                )
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
            rid = a.json["result"]["requestId"]
                .as_str()
                .expect("id")
                .to_string();
            let summary = run_worker_once(&w, &server, &sample()).await;
            assert_eq!(summary.resubmitted, 1, "{what}: {summary}");
            let row = &server.state().store().by_id(&rid).await.expect("row")[0];
            assert_eq!(row.status.to_string(), "SUBMITTED", "{what}");
            assert_eq!(row.iteration, 0, "{what}: no attempt used");
            let msg = row.err_message.clone().unwrap_or_default();
            assert!(msg.starts_with("will retry: "), "{what}: {msg}");
            assert!(
                msg.contains(&settings.url),
                "{what}: names the store: {msg}"
            );
            for (k, v) in &settings.options {
                if k.contains("secret") || k.contains("key") {
                    assert!(!msg.contains(v.as_str()), "{what}: {k} in {msg}");
                }
            }
            assert!(!logged().contains(AZURITE_WRONG), "no key logged");
            server.shutdown().await.expect("stops");
        }
        // Mended: the same request completes.
        let server = w.start(on(&w, &good)).await;
        let summary = run_worker_once(&w, &server, &sample()).await;
        assert_eq!(summary.succeeded, 1, "{summary}");
        let row = &server.state().store().by_id(&rid).await.expect("row")[0];
        assert_eq!(row.status.to_string(), "SUCCESS");
        server.shutdown().await.expect("stops");
    }

    const AZURITE_WRONG: &str = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5";

    macro_rules! on_store {
        ($feature:literal, $name:ident, $emulator:expr) => {
            #[cfg(feature = $feature)]
            mod $name {
                use super::*;
                #[tokio::test]
                async fn flow_sqlite() {
                    flow(
                        $emulator,
                        World::sqlite().await,
                        concat!(stringify!($name), "-flow-sqlite"),
                    )
                    .await;
                }
                #[tokio::test]
                async fn flow_postgres() {
                    flow(
                        $emulator,
                        World::postgres().await,
                        concat!(stringify!($name), "-flow-pg"),
                    )
                    .await;
                }
                #[tokio::test]
                async fn store_failures() {
                    failures(
                        $emulator,
                        World::sqlite().await,
                        concat!(stringify!($name), "-failures"),
                    )
                    .await;
                }
            }
        };
    }
    on_store!("s3", s3, Emulator::S3);
    on_store!("s3", oci, Emulator::Oci);
    on_store!("azure", azure, Emulator::Azure);
}
