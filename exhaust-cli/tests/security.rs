//! The four data security levels end to end through `exhaust run`, with
//! Sunbird's tenant preference and org search services faked by wiremock:
//! each file is opened with the documented key (by `unzip`, by `exhaust
//! decrypt` and independently by the Python script shipped for report
//! readers) and compared byte for byte with the CSV `exhaust report` builds
//! for the same batch. Missing keys and a preference service that is down
//! end in a clear message with nothing lost; keys never reach the output.

mod common;

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BATCH: &str = "0135742803756164562";
const CHANNEL: &str = "0166646273726135492";
/// Sunbird's `sunbird_encryption_key`: its length is the salt of stored keys.
const SUNBIRD_KEY: &str = "SunbirdSalt-1234";
const PLAIN_KEY: &str = "report-Key-42";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../exhaust-writer/tests/fixtures")
        .join(name)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../exhaust-writer/tests/decrypt_envelope.py")
}

fn exhaust(dir: &Path) -> Command {
    let mut cmd = common::exhaust(dir);
    cmd.env("EXHAUST_LOG", "debug");
    cmd
}

/// Everything a command printed, to check that no key is in it.
fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A preference service answering `level` for our channel, and an org
/// search pointing at the test org's public key.
async fn services(level: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/private/v2/org/preferences/read"))
        .and(body_partial_json(serde_json::json!(
            {"request": {"orgId": CHANNEL, "key": "dataSecurityPolicy"}}
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "responseCode": "OK",
            "result": {"response": {"orgId": CHANNEL, "key": "dataSecurityPolicy",
                "data": {"level": "PLAIN_DATASET", "job": {"progress-exhaust": {"level": level}}}}}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/private/v2/org/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "result": {"response": {"count": 1, "content": [{"id": CHANNEL,
                "keys": {"exhaustEncryptionKey": [format!("{}/keys/org.pem", server.uri())]}}]}}
        })))
        .mount(&server)
        .await;
    let pem = std::fs::read_to_string(fixture("test-only-org-public.pem")).expect("pem");
    Mock::given(method("GET"))
        .and(path("/keys/org.pem"))
        .respond_with(ResponseTemplate::new(200).set_body_string(pem))
        .mount(&server)
        .await;
    server
}

fn config(dir: &Path, base: &str) {
    std::fs::write(
        dir.join("exhaust.toml"),
        format!(
            "[security]\nsunbird_encryption_key = \"{SUNBIRD_KEY}\"\n\
             [security.preferences]\n\
             preference_url = \"{base}/private/v2/org/preferences/read\"\n\
             org_search_url = \"{base}/private/v2/org/search\"\n\
             timeout_ms = 2000\nretries = 1\nretry_backoff_ms = 10\n"
        ),
    )
    .expect("config");
}

/// Submits the sample batch (with Sunbird's encrypted form of the key when
/// `with_key`) and runs; returns the request's status row.
fn submit_and_run(dir: &Path, with_key: bool) -> serde_json::Value {
    let mut submit = exhaust(dir);
    submit.args([
        "submit",
        "--batch-id",
        BATCH,
        "--requested-by",
        "u-1",
        "--channel",
        CHANNEL,
    ]);
    if with_key {
        // The course service stores the key encrypted; the run decodes it.
        let stored = exhaust_writer::encode_encryption_key(PLAIN_KEY, SUNBIRD_KEY);
        submit
            .env("STORED_KEY", stored)
            .args(["--encryption-key-env", "STORED_KEY"]);
    }
    let out = submit.output().expect("submit");
    assert!(out.status.success(), "{}", all_output(&out));
    let id = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("id")
        .to_string();
    let run = exhaust(dir).arg("run").output().expect("run");
    let printed = all_output(&run);
    assert!(
        !printed.contains(PLAIN_KEY),
        "the key was printed: {printed}"
    );
    let status = exhaust(dir)
        .args(["status", &id, "--json"])
        .output()
        .expect("status");
    assert!(!all_output(&status).contains(PLAIN_KEY));
    serde_json::from_slice(&status.stdout).expect("json")
}

/// The CSV `exhaust report` writes for the batch: what every level must give back.
fn expected_csv(dir: &Path) -> Vec<u8> {
    let out = dir.join("expected");
    exhaust(dir)
        .args(["report", "--batch-id", BATCH, "--out"])
        .arg(&out)
        .assert()
        .success();
    let folder = out.join("progress-exhaust");
    let file = std::fs::read_dir(&folder)
        .expect("report folder")
        .next()
        .expect("one report")
        .expect("entry")
        .path();
    std::fs::read(file).expect("csv")
}

fn stored_zip(dir: &Path, row: &serde_json::Value) -> PathBuf {
    assert_eq!(row["status"], "SUCCESS", "{row}");
    dir.join("exhaust-files")
        .join(row["downloadUrls"][0].as_str().expect("url"))
}

fn unzip(zip: &Path, password: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new("unzip");
    if let Some(p) = password {
        cmd.args(["-P", p]);
    }
    cmd.arg("-p").arg(zip).output().expect("unzip is installed")
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_dataset_is_a_zip_without_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = services("PLAIN_DATASET").await;
    config(dir.path(), &server.uri());
    let row = submit_and_run(dir.path(), false);
    let out = unzip(&stored_zip(dir.path(), &row), None);
    assert!(out.status.success());
    assert_eq!(out.stdout, expected_csv(dir.path()));
}

#[tokio::test(flavor = "multi_thread")]
async fn password_protected_dataset_opens_with_the_decoded_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = services("PASSWORD_PROTECTED_DATASET").await;
    config(dir.path(), &server.uri());
    let row = submit_and_run(dir.path(), true);
    let zip = stored_zip(dir.path(), &row);
    let out = unzip(&zip, Some(PLAIN_KEY));
    assert!(out.status.success());
    assert_eq!(out.stdout, expected_csv(dir.path()));
    assert!(!unzip(&zip, Some("wrong-key")).status.success());
}

/// Extracts the envelope from the stored zip.
fn envelope_of(dir: &Path, zip: &Path) -> PathBuf {
    let out = unzip(zip, None);
    assert!(out.status.success(), "the envelope is in a plain zip");
    let level = String::from_utf8_lossy(&out.stdout[..40.min(out.stdout.len())]).into_owned();
    assert!(level.contains("_ENCRYPTED_DATASET\n"), "{level:?}");
    let path = dir.join("envelope.csv");
    std::fs::write(&path, &out.stdout).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn text_key_dataset_decrypts_with_the_key_by_exhaust_and_by_python() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = services("TEXT_KEY_ENCRYPTED_DATASET").await;
    config(dir.path(), &server.uri());
    let row = submit_and_run(dir.path(), true);
    let zip = stored_zip(dir.path(), &row);
    let envelope = envelope_of(dir.path(), &zip);
    assert!(
        std::fs::read(&envelope)
            .expect("read")
            .starts_with(b"TEXT_KEY_ENCRYPTED_DATASET\n")
    );
    let expected = expected_csv(dir.path());

    // Our decrypt, straight from the stored zip.
    let ours = exhaust(dir.path())
        .env("REPORT_KEY", PLAIN_KEY)
        .args(["decrypt", "--key-env", "REPORT_KEY"])
        .arg(&zip)
        .output()
        .expect("decrypt");
    assert!(ours.status.success(), "{}", all_output(&ours));
    assert_eq!(ours.stdout, expected);

    // An independent reader.
    let theirs = std::process::Command::new("python3")
        .arg(script())
        .arg(&envelope)
        .args(["--key-env", "REPORT_KEY"])
        .env("REPORT_KEY", PLAIN_KEY)
        .output()
        .expect("python3 with the cryptography package");
    assert!(theirs.status.success(), "{}", all_output(&theirs));
    assert_eq!(theirs.stdout, expected);

    // The wrong key opens nothing.
    let wrong = exhaust(dir.path())
        .env("REPORT_KEY", "not-the-key")
        .args(["decrypt", "--key-env", "REPORT_KEY"])
        .arg(&zip)
        .output()
        .expect("decrypt");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(wrong.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn public_key_dataset_decrypts_with_the_orgs_private_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = services("PUBLIC_KEY_ENCRYPTED_DATASET").await;
    config(dir.path(), &server.uri());
    let row = submit_and_run(dir.path(), false);
    let zip = stored_zip(dir.path(), &row);
    let envelope = envelope_of(dir.path(), &zip);
    assert!(
        std::fs::read(&envelope)
            .expect("read")
            .starts_with(b"PUBLIC_KEY_ENCRYPTED_DATASET\n")
    );
    let expected = expected_csv(dir.path());
    let ours = exhaust(dir.path())
        .args(["decrypt", "--private-key"])
        .arg(fixture("test-only-org-private.pem"))
        .arg(&zip)
        .output()
        .expect("decrypt");
    assert!(ours.status.success(), "{}", all_output(&ours));
    assert_eq!(ours.stdout, expected);
    let theirs = std::process::Command::new("python3")
        .arg(script())
        .arg(&envelope)
        .arg("--private-key")
        .arg(fixture("test-only-org-private.pem"))
        .output()
        .expect("python3 with the cryptography package");
    assert!(theirs.status.success(), "{}", all_output(&theirs));
    assert_eq!(theirs.stdout, expected);
    let other = exhaust(dir.path())
        .args(["decrypt", "--private-key"])
        .arg(fixture("test-only-other-org-private.pem"))
        .arg(&zip)
        .output()
        .expect("decrypt");
    assert_eq!(other.status.code(), Some(1), "another org's key is refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_key_level_without_a_key_fails_clearly_with_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = services("TEXT_KEY_ENCRYPTED_DATASET").await;
    config(dir.path(), &server.uri());
    let row = submit_and_run(dir.path(), false);
    assert_eq!(row["status"], "FAILED");
    assert_eq!(
        row["statusMessage"],
        "the request has no encryption key, which TEXT_KEY_ENCRYPTED_DATASET needs"
    );
    assert!(!dir.path().join("exhaust-files/progress-exhaust").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_org_without_a_public_key_fails_clearly_with_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/private/v2/org/preferences/read"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "result": {"response": {"data": {"level": "PUBLIC_KEY_ENCRYPTED_DATASET"}}}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/private/v2/org/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "result": {"response": {"count": 1, "content": [{"id": CHANNEL, "keys": {}}]}}
        })))
        .mount(&server)
        .await;
    config(dir.path(), &server.uri());
    let row = submit_and_run(dir.path(), false);
    assert_eq!(row["status"], "FAILED");
    let msg = row["statusMessage"].as_str().expect("message");
    assert!(msg.contains("has no public key"), "{msg}");
    assert!(!dir.path().join("exhaust-files/progress-exhaust").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preference_service_that_is_down_leaves_the_request_retryable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    config(dir.path(), &server.uri());
    let row = submit_and_run(dir.path(), true);
    assert_eq!(row["status"], "SUBMITTED");
    assert_eq!(row["attempts"], 0);
    let msg = row["statusMessage"].as_str().expect("message");
    assert!(
        msg.starts_with("will retry: reading the data security level"),
        "{msg}"
    );
    assert!(!dir.path().join("exhaust-files/progress-exhaust").exists());

    // The service comes back: the next run completes the request.
    server.reset().await;
    let back = services("PASSWORD_PROTECTED_DATASET").await;
    config(dir.path(), &back.uri());
    let run = exhaust(dir.path()).arg("run").output().expect("run");
    assert!(run.status.success(), "{}", all_output(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("1 succeeded"));
}
