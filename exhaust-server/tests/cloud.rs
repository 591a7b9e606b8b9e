//! The whole flow on every cloud store's emulator (`scripts/services`; see
//! `exhaust_writer::testing`): submit -> run -> SUCCESS -> read returns
//! downloadUrls signed by the store -> GET each -> the bytes are the stored
//! zip and its CSV is the expected report. Stored download_urls keep
//! Sunbird's relative keys; legacy absolute values still resolve. A store
//! that fails sends the request back to SUBMITTED, named, secret-free.
//! Every scenario runs on both stores.
#![cfg(any(feature = "s3", feature = "azure"))]

mod support;

use exhaust_core::store::RequestStore;
use exhaust_writer::testing::{CloudSettings, Emulator, unique_prefix};
use support::*;

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
