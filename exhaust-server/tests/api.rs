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
