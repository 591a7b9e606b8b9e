//! One storage conformance suite, run against the local folder and, with the
//! cargo features `s3`, `azure` and `gcs`, against each cloud's emulator on
//! loopback (`scripts/services` starts them; see `exhaust_writer::testing`):
//! S3 (moto), OCI through its S3 settings (moto), Azure Blob (Azurite) and
//! GCS (gcp-storage-emulator). The way `object_store` tests its backends:
//! the same functions, every store.
//!
//! What an emulator cannot check is said where it is skipped: moto accepts
//! any signature and any credentials (tampered and expired URLs, wrong keys:
//! checked on Azurite only). GCS: `object_store` speaks GCS's XML API, and
//! neither emulator that installs here serves it (fake-gcs-server routes an
//! XML `PUT` to its JSON upload and answers `invalid uploadType`;
//! gcp-storage-emulator answers a `PUT` without the `ETag` the client
//! needs, and has no `HEAD`, XML `DELETE` or XML listing). So on GCS this
//! suite checks what needs no server: the configuration a deployer writes
//! builds a store, URLs are signed with the service-account key, and a
//! store that is down fails in bounded time with a named, secret-free
//! message.

use exhaust_writer::storage::SINGLE_PUT_MAX;
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

/// Put (from a file and from a reader), read back whole and streamed,
/// look up, list under a prefix, delete.
async fn put_read_list_delete(s: &Storage, prefix: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = format!("{prefix}/progress-exhaust/R1/b1_progress_20240115.zip");
    let b = format!("{prefix}/progress-exhaust/R1/b2_progress_20240115.zip");
    let other = format!("{prefix}-other/x.zip");
    let bytes_a = pattern(70_000);
    let local = dir.path().join("a.zip");
    std::fs::write(&local, &bytes_a).expect("write");
    assert_eq!(s.put_file(&a, &local).await.expect("put a"), 70_000);
    assert_eq!(s.put_reader(&b, &b"bee"[..]).await.expect("put b"), 3);
    assert_eq!(s.put_reader(&other, &b"o"[..]).await.expect("put other"), 1);

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
    assert_eq!(s.put_reader(&b, &b"second"[..]).await.expect("again"), 6);
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
    put_read_list_delete(&s, "suite").await;
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
    async fn signed_urls(s: &Storage, prefix: &str, e: Emulator) {
        let key = format!("{prefix}/progress-exhaust/R9/b9_progress_20240115.zip");
        let bytes = pattern(5_000);
        s.put_reader(&key, &bytes[..]).await.expect("put");
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

    async fn suite(e: Emulator, test: &str) {
        let Some(settings) = e.for_test(test) else {
            return;
        };
        let s = open(&settings);
        let prefix = unique_prefix(test);
        put_read_list_delete(&s, &prefix).await;
        large_file(&s, &prefix).await;
        interrupted_upload(&s, &prefix, &[0, 10, SINGLE_PUT_MAX + 5]).await;
        signed_urls(&s, &prefix, e).await;
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

    /// GCS without a server (see the module's docs for why): the settings
    /// build a store, URLs are signed with the service-account key for the
    /// configured endpoint, and a store that is down fails as anywhere.
    #[cfg(feature = "gcs")]
    #[tokio::test]
    async fn gcs() {
        let e = Emulator::Gcs;
        let settings = e.settings();
        let s = open(&settings);
        let url = s
            .signed_url(
                "progress-exhaust/R/b_progress_20240115.zip",
                Duration::from_secs(600),
            )
            .await
            .expect("signed offline")
            .expect("GCS signs");
        assert!(
            url.starts_with(&format!(
                "{}/{}/",
                e.endpoint(),
                exhaust_writer::testing::TEST_BUCKET
            )),
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
        store_down(e).await;
        eprintln!(
            "gcs: uploads, reads, listing and deleting NOT CHECKED: no GCS emulator here serves the XML API"
        );
    }
}
