//! One storage conformance suite, run against the local folder and, with the
//! cargo features `s3`, `azure` and `gcs`, against each cloud's emulator on
//! loopback (`scripts/services` starts them; see `exhaust_writer::testing`):
//! S3 (moto), OCI through its S3 settings (moto), Azure Blob (Azurite) and
//! GCS (fake-gcs-server). The way `object_store` tests its backends: the
//! same functions, every store.
//!
//! What an emulator cannot check is said where it is skipped: moto and
//! fake-gcs-server accept any signature and any credentials (tampered and
//! expired URLs, wrong keys: checked on Azurite only).
//!
//! GCS runs everything but `Storage`'s uploads: reads whole and streamed,
//! lookups, listing under a prefix, deleting, replaced files, interrupted
//! uploads that break off before a request, signed URLs fetched by a plain
//! client (and their V4 form), a missing bucket, a store that is down. The
//! files those checks read are put in through GCS's JSON upload API
//! (`Uploads::GcsJson`), because fake-gcs-server takes none of the uploads
//! `object_store` makes; the test checks that it refuses them, with the
//! reason, and that nothing is left under the key. Why, in the code
//! (object_store 0.14.2 as in Cargo.lock, fake-gcs-server v1.54.0 as
//! `scripts/services` installs it):
//!
//! - `object_store` speaks GCS's XML API. `src/gcp/client.rs`,
//!   `GoogleCloudStorageClient::put`: `PUT {base_url}/{bucket}/{object}`
//!   with a bearer token and no query; `multipart_initiate`: `POST
//!   ...?uploads`, then `put_part`: `PUT ...?partNumber=N&uploadId=U` and
//!   `multipart_complete`: `POST ...?uploadId=U` with an XML body.
//! - fake-gcs-server, `fakestorage/server.go`, `buildMuxer`: with
//!   `-public-host` matching the request's `Host`, a path-style `PUT` or
//!   `POST /{bucketName}/{objectName}` reaches only the route commented
//!   "Signed URLs (upload and download)", `s.insertObject`; no route or
//!   handler reads the query parameters `uploads`, `partNumber` or
//!   `uploadId` (nor in v1.55.1, the newest). `fakestorage/upload.go`,
//!   `insertObject`: it switches on the JSON API's `uploadType` query
//!   parameter, and without one stores the body only when the query has
//!   `X-Goog-Algorithm` (a signed URL); anything else gets `400 invalid
//!   uploadType`. So the plain `PUT` and all three multipart calls are
//!   refused.
//! - Even the signed-URL `PUT` it takes would not do: `signedUpload`
//!   answers through `jsonToHTTPHandler` (`fakestorage/json_response.go`),
//!   which sets no `ETag` header, and `object_store`'s `put` reads the
//!   result with `get_put_result` (`src/client/header.rs`), which fails with
//!   `ETag Header missing from response` (`get_etag`).
//!
//! Reads, lookups, listing and deleting do meet: `GET`/`HEAD
//! /{bucket}/{object}` reach `downloadObject` (with `ETag`, `Last-Modified`,
//! ranges), `GET /{bucket}?list-type=2&prefix=...` reaches `xmlListObjects`
//! (a `ListBucketResult` `object_store` parses), `DELETE /{bucket}/{object}`
//! reaches `deleteObject`; the URLs `object_store` signs are path-style
//! `GET`s and so are served the same way. Nothing exhaust configures changes
//! this: the base URL is the only part of the request path an option sets
//! (`object_url`: `{base_url}/{bucket}/{object}`). The server's whole flow
//! (`exhaust-server/tests/cloud.rs`) uploads, so it runs on S3, OCI and
//! Azure only.

use exhaust_writer::storage::SINGLE_PUT_MAX;
#[cfg(feature = "gcs")]
use exhaust_writer::testing::TEST_BUCKET;
use exhaust_writer::{Storage, StorageError};
use std::io::Read;

/// A reader that gives `len` bytes of a pattern, then fails: an upload cut
/// off part-way (the disk failing, the process's input gone).
struct Interrupted {
    left: u64,
}

impl Read for Interrupted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("the input broke off"));
        }
        let n = buf.len().min(self.left as usize);
        buf[..n].fill(b'z');
        self.left -= n as u64;
        Ok(n)
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// How the suite's files get into the store under test.
enum Uploads {
    /// `Storage::put_file` and `Storage::put_reader`, whose results are
    /// checked: every store whose server takes `object_store`'s uploads.
    Storage,
    /// GCS's JSON upload API (`POST /upload/storage/v1/b/<bucket>/o
    /// ?uploadType=media`) at this endpoint, into [`TEST_BUCKET`]:
    /// fake-gcs-server takes none of the XML-API uploads `object_store`
    /// makes (module docs), so on GCS the suite's files go in this way and
    /// every read, lookup, listing, deletion and signed URL after it is
    /// exhaust's own code.
    #[cfg(feature = "gcs")]
    GcsJson(String),
}

impl Uploads {
    /// Puts the local file at `local` under `key`; returns the size stored.
    async fn put_file(&self, s: &Storage, key: &str, local: &std::path::Path) -> u64 {
        match self {
            Uploads::Storage => s.put_file(key, local).await.expect("put_file"),
            #[cfg(feature = "gcs")]
            Uploads::GcsJson(endpoint) => {
                gcs_json_put(endpoint, key, std::fs::read(local).expect("read")).await
            }
        }
    }

    /// Puts `bytes` under `key`; returns the size stored.
    async fn put(&self, s: &Storage, key: &str, bytes: &[u8]) -> u64 {
        match self {
            Uploads::Storage => s.put_reader(key, bytes).await.expect("put_reader"),
            #[cfg(feature = "gcs")]
            Uploads::GcsJson(endpoint) => gcs_json_put(endpoint, key, bytes.to_vec()).await,
        }
    }
}

/// Uploads through GCS's JSON API ([`Uploads::GcsJson`]); returns the size
/// the server says it stored.
#[cfg(feature = "gcs")]
async fn gcs_json_put(endpoint: &str, key: &str, bytes: Vec<u8>) -> u64 {
    // The object name is a query value: everything but unreserved
    // characters is escaped (`/` too).
    let name: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let url =
        format!("{endpoint}/upload/storage/v1/b/{TEST_BUCKET}/o?uploadType=media&name={name}");
    let resp = reqwest::Client::new()
        .post(&url)
        .body(bytes)
        .send()
        .await
        .expect("the GCS emulator's JSON upload");
    assert_eq!(resp.status(), 200, "{url}");
    let object: serde_json::Value = resp.json().await.expect("an object resource");
    assert_eq!(object["name"], key, "{object}");
    object["size"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("the object's size")
}

/// Put (from a file and from a reader), read back whole and streamed,
/// look up, list under a prefix, delete.
async fn put_read_list_delete(s: &Storage, prefix: &str, up: &Uploads) {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = format!("{prefix}/progress-exhaust/R1/b1_progress_20240115.zip");
    let b = format!("{prefix}/progress-exhaust/R1/b2_progress_20240115.zip");
    let other = format!("{prefix}-other/x.zip");
    let bytes_a = pattern(70_000);
    let local = dir.path().join("a.zip");
    std::fs::write(&local, &bytes_a).expect("write");
    assert_eq!(up.put_file(s, &a, &local).await, 70_000);
    assert_eq!(up.put(s, &b, b"bee").await, 3);
    assert_eq!(up.put(s, &other, b"o").await, 1);

    assert_eq!(
        s.get(&a).await.expect("get a").as_deref(),
        Some(&bytes_a[..])
    );
    let opened = s.open(&b).await.expect("open b").expect("b is there");
    assert_eq!(opened.size, 3);
    use futures_util::TryStreamExt;
    let chunks: Vec<bytes::Bytes> = opened.chunks.try_collect().await.expect("stream");
    assert_eq!(chunks.concat(), b"bee");
    assert!(s.exists(&a).await.expect("head"));
    assert!(!s.exists(&format!("{prefix}/none.zip")).await.expect("head"));
    assert_eq!(
        s.get(&format!("{prefix}/none.zip")).await.expect("get"),
        None
    );

    let listed = s.list(Some(prefix)).await.expect("list");
    let keys: Vec<(&str, u64)> = listed.iter().map(|o| (o.key.as_str(), o.size)).collect();
    assert_eq!(
        keys,
        vec![(a.as_str(), 70_000), (b.as_str(), 3)],
        "only the prefix's folder, sorted, with sizes"
    );

    // Replacing a file replaces it whole.
    assert_eq!(up.put(s, &b, b"second").await, 6);
    assert_eq!(
        s.get(&b).await.expect("get").as_deref(),
        Some(&b"second"[..])
    );

    for key in [&a, &b, &other] {
        s.delete(key).await.expect("delete");
        assert!(!s.exists(key).await.expect("head"), "{key} deleted");
    }
    s.delete(&a).await.expect("deleting nothing is no error");
    assert!(s.list(Some(prefix)).await.expect("list").is_empty());
    s.ping().await.expect("ping");
}

/// A file larger than one request goes up in parts and comes back whole.
async fn large_file(s: &Storage, prefix: &str) {
    let key = format!("{prefix}/large.zip");
    let bytes = pattern(SINGLE_PUT_MAX as usize + 300_000);
    let n = s
        .put_reader(&key, &bytes[..])
        .await
        .expect("multipart upload");
    assert_eq!(n, bytes.len() as u64);
    assert_eq!(s.get(&key).await.expect("get").as_deref(), Some(&bytes[..]));
    s.delete(&key).await.expect("delete");
}

/// An upload that breaks off leaves nothing under its key: not a prefix of
/// the file, not an empty object. `sizes` are where the input breaks.
async fn interrupted_upload(s: &Storage, prefix: &str, sizes: &[u64]) {
    for &len in sizes {
        let key = format!("{prefix}/cut-{len}.zip");
        let err = s
            .put_reader(&key, Interrupted { left: len })
            .await
            .expect_err("the input broke off");
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
        assert!(err.to_string().contains("the input broke off"), "{err}");
        assert!(!s.exists(&key).await.expect("head"), "nothing under {key}");
        assert_eq!(s.get(&key).await.expect("get"), None);
    }
    assert!(
        s.list(Some(prefix)).await.expect("list").is_empty(),
        "no object at all under {prefix}"
    );
}

#[tokio::test]
async fn local_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Storage::local(dir.path().join("store")).expect("store");
    put_read_list_delete(&s, "suite", &Uploads::Storage).await;
    large_file(&s, "suite").await;
    interrupted_upload(&s, "suite", &[0, 10, SINGLE_PUT_MAX + 5]).await;
    // No staging file is left behind either.
    let mut left = Vec::new();
    let mut stack = vec![dir.path().join("store")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                left.push(e.path());
            }
        }
    }
    assert!(left.is_empty(), "{left:?}");
}

#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
mod cloud {
    use super::*;
    use exhaust_writer::testing::{CloudSettings, Emulator, unique_prefix};
    use std::time::Duration;

    fn open(settings: &CloudSettings) -> Storage {
        Storage::from_url(&settings.url, &settings.options).expect("the settings build a store")
    }

    /// The signed URL `read` hands out, fetched by a plain HTTP client,
    /// gives the stored bytes; where the emulator checks signatures, a
    /// tampered or expired one is refused.
    async fn signed_urls(s: &Storage, prefix: &str, e: Emulator, up: &Uploads) {
        let key = format!("{prefix}/progress-exhaust/R9/b9_progress_20240115.zip");
        let bytes = pattern(5_000);
        assert_eq!(up.put(s, &key, &bytes).await, 5_000);
        let url = s
            .signed_url(&key, Duration::from_secs(600))
            .await
            .expect("sign")
            .expect("cloud stores sign");
        let client = reqwest::Client::new();
        let got = client.get(&url).send().await.expect("GET the signed URL");
        assert_eq!(got.status(), 200, "{url}");
        assert_eq!(got.bytes().await.expect("body").as_ref(), &bytes[..]);

        if !e.checks_signatures() {
            eprintln!(
                "signed_urls: NOT CHECKED on {}: the emulator accepts tampered and expired signatures",
                e.name()
            );
            return;
        }
        // One character of the signature changed.
        let tampered = {
            let at = url.find("sig=").expect("a SAS signature") + 4;
            let mut t = url.clone().into_bytes();
            t[at] = if t[at] == b'A' { b'B' } else { b'A' };
            String::from_utf8(t).expect("ascii")
        };
        let refused = client.get(&tampered).send().await.expect("GET");
        assert_eq!(refused.status(), 403, "a tampered URL is refused");
        // A URL whose time is up.
        let short = s
            .signed_url(&key, Duration::from_secs(1))
            .await
            .expect("sign")
            .expect("signed");
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let expired = client.get(&short).send().await.expect("GET");
        assert_eq!(expired.status(), 403, "an expired URL is refused");
        s.delete(&key).await.expect("delete");
    }

    /// A missing bucket: a retryable failure naming the store and the
    /// cause, never a credential.
    async fn missing_bucket(e: Emulator) {
        let settings = e.settings_for("exhaust-no-such-bucket");
        let s = open(&settings);
        let err = s
            .put_reader("progress-exhaust/R/b.zip", &b"x"[..])
            .await
            .expect_err("no bucket");
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("exhaust-no-such-bucket"),
            "names the store: {msg}"
        );
        assert_no_secret(&msg, &settings);
        assert!(s.ping().await.is_err(), "health sees it too");
    }

    /// Nothing listening: retryable, named, fails within the bounded retries.
    async fn store_down(e: Emulator) {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut settings = e.settings();
        let endpoint = e.endpoint();
        let down = format!("http://127.0.0.1:{port}");
        for (_, v) in settings.options.iter_mut() {
            if *v == endpoint {
                *v = endpoint.replacen(
                    endpoint
                        .split('/')
                        .take(3)
                        .collect::<Vec<_>>()
                        .join("/")
                        .as_str(),
                    &down,
                    1,
                );
            }
        }
        let s = open(&settings);
        let started = std::time::Instant::now();
        let err = s
            .put_reader("progress-exhaust/R/b.zip", &b"x"[..])
            .await
            .expect_err("down");
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("127.0.0.1:{port}")),
            "names where: {msg}"
        );
        assert_no_secret(&msg, &settings);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "bounded retries, not object_store's three minutes"
        );
    }

    /// Wrong credentials (where the emulator checks them): refused, named,
    /// and the wrong key is nowhere in the message.
    async fn bad_credentials(e: Emulator) {
        if !e.checks_signatures() {
            eprintln!(
                "bad_credentials: NOT CHECKED on {}: the emulator accepts any credentials",
                e.name()
            );
            return;
        }
        let mut settings = e.settings();
        let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
        for (k, v) in settings.options.iter_mut() {
            if k.contains("key") {
                *v = wrong.to_string();
            }
        }
        let s = open(&settings);
        let err = s
            .put_reader("progress-exhaust/R/b.zip", &b"x"[..])
            .await
            .expect_err("wrong key");
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&settings.url), "names the store: {msg}");
        assert!(
            msg.contains("403") || msg.to_ascii_lowercase().contains("auth"),
            "says why: {msg}"
        );
        assert_no_secret(&msg, &settings);
    }

    fn assert_no_secret(msg: &str, settings: &CloudSettings) {
        for (k, v) in &settings.options {
            let k = k.to_ascii_lowercase();
            if k.contains("secret") || k.contains("key") {
                assert!(!msg.contains(v.as_str()), "{k} shows in: {msg}");
            }
        }
    }

    /// The whole suite, for the emulators that take `object_store`'s uploads.
    #[cfg(any(feature = "s3", feature = "azure"))]
    async fn suite(e: Emulator, test: &str) {
        let Some(settings) = e.for_test(test) else {
            return;
        };
        let s = open(&settings);
        let prefix = unique_prefix(test);
        put_read_list_delete(&s, &prefix, &Uploads::Storage).await;
        large_file(&s, &prefix).await;
        interrupted_upload(&s, &prefix, &[0, 10, SINGLE_PUT_MAX + 5]).await;
        signed_urls(&s, &prefix, e, &Uploads::Storage).await;
        missing_bucket(e).await;
        store_down(e).await;
        bad_credentials(e).await;
    }

    #[cfg(feature = "s3")]
    #[tokio::test]
    async fn s3() {
        suite(Emulator::S3, "s3").await;
    }

    #[cfg(feature = "s3")]
    #[tokio::test]
    async fn oci_through_s3_settings() {
        suite(Emulator::Oci, "oci").await;
    }

    #[cfg(feature = "azure")]
    #[tokio::test]
    async fn azure() {
        suite(Emulator::Azure, "azure").await;
    }

    /// fake-gcs-server refuses every upload `object_store` makes (module
    /// docs), one request (`PUT`) or in parts (`POST ?uploads`): exhaust
    /// reports a retryable failure that names the store and gives the
    /// emulator's reason, and nothing is under the key after it. When this
    /// fails because an upload went through, the emulator has learned the
    /// XML API: give GCS the whole suite.
    #[cfg(feature = "gcs")]
    async fn gcs_uploads_refused(s: &Storage, prefix: &str) {
        for (len, action) in [
            (10, "uploading"),
            (SINGLE_PUT_MAX as usize + 5, "starting the upload of"),
        ] {
            let key = format!("{prefix}/refused-{len}.zip");
            let err = s
                .put_reader(&key, &pattern(len)[..])
                .await
                .expect_err("fake-gcs-server takes no XML-API upload");
            assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("{action} {key}")), "says what: {msg}");
            assert!(msg.contains("GCS gs://"), "names the store: {msg}");
            assert!(msg.contains("invalid uploadType"), "says why: {msg}");
            assert!(!s.exists(&key).await.expect("head"), "nothing under {key}");
        }
    }

    /// GCS on fake-gcs-server: everything but `Storage`'s uploads, whose
    /// refusal is checked instead (see the module's docs for why).
    #[cfg(feature = "gcs")]
    #[tokio::test]
    async fn gcs() {
        let e = Emulator::Gcs;
        let Some(settings) = e.for_test("gcs") else {
            return;
        };
        let s = open(&settings);
        let prefix = unique_prefix("gcs");
        let seeded = Uploads::GcsJson(e.endpoint());
        put_read_list_delete(&s, &prefix, &seeded).await;
        // These inputs break off before any request is made.
        interrupted_upload(&s, &prefix, &[0, 10]).await;
        gcs_uploads_refused(&s, &prefix).await;

        // A V4 URL signed with the service-account key, offline, for the
        // configured endpoint; fetched by `signed_urls` below.
        let url = s
            .signed_url(
                "progress-exhaust/R/b_progress_20240115.zip",
                Duration::from_secs(600),
            )
            .await
            .expect("signed offline")
            .expect("GCS signs");
        assert!(
            url.starts_with(&format!("{}/{TEST_BUCKET}/", e.endpoint())),
            "{url}"
        );
        for part in [
            "X-Goog-Algorithm=GOOG4-RSA-SHA256",
            "X-Goog-Credential=exhaust-test%40exhaust-test.iam.gserviceaccount.com",
            "X-Goog-Expires=600",
            "X-Goog-Signature=",
        ] {
            assert!(url.contains(part), "{part} in {url}");
        }
        signed_urls(&s, &prefix, e, &seeded).await;
        missing_bucket(e).await;
        store_down(e).await;
        bad_credentials(e).await;
        eprintln!(
            "gcs: Storage's uploads NOT CHECKED on {}: it takes no XML-API upload (checked: it refuses them)",
            e.name()
        );
    }
}
