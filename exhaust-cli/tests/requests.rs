//! `exhaust submit`, `run` and `status` end to end, as a user runs them:
//! in a fresh working folder with the defaults (SQLite file, local folder,
//! sample snapshot), and against PostgreSQL through the environment.

mod common;

use common::exhaust;
use exhaust_sources::testing::{fresh_schema, test_pg_url};
use std::path::Path;

const SAMPLE_BATCH: &str = "0135742803756164562";
const SAMPLE_CHANNEL: &str = "0166646273726135492";

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

/// The request id `exhaust submit` printed.
fn submitted_id(out: &str) -> String {
    out.split_whitespace()
        .nth(1)
        .expect("request id")
        .to_string()
}

fn status_json(dir: &Path, env: &[(&str, &str)], id: &str) -> serde_json::Value {
    let a = exhaust(dir)
        .envs(env.iter().copied())
        .args(["status", id, "--json"])
        .assert()
        .success();
    serde_json::from_str(stdout(&a).trim()).expect("one JSON line")
}

fn submit_run_status(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = exhaust(dir.path())
        .envs(env.iter().copied())
        .args(["submit", "--batch-id", SAMPLE_BATCH])
        .args(["--requested-by", "u-1", "--channel", SAMPLE_CHANNEL])
        .assert()
        .success();
    let out = stdout(&a);
    assert!(out.contains("submitted"), "{out}");
    let id = submitted_id(&out);
    assert_eq!(id.len(), 32);
    // The same request the same day is the same request.
    let a = exhaust(dir.path())
        .envs(env.iter().copied())
        .args(["submit", "--batch-id", SAMPLE_BATCH])
        .args(["--requested-by", "u-1", "--channel", SAMPLE_CHANNEL])
        .assert()
        .success();
    assert!(stdout(&a).contains("already queued"), "{}", stdout(&a));
    assert_eq!(status_json(dir.path(), env, &id)["status"], "SUBMITTED");

    let a = exhaust(dir.path())
        .envs(env.iter().copied())
        .arg("run")
        .assert()
        .success();
    let out = stdout(&a);
    assert!(out.contains("1 succeeded"), "{out}");

    let row = status_json(dir.path(), env, &id);
    assert_eq!(row["status"], "SUCCESS");
    assert_eq!(row["attempts"], 0);
    assert!(row.get("encryptionKey").is_none());
    let key = row["downloadUrls"][0].as_str().expect("url").to_string();
    assert!(
        key.starts_with(&format!("progress-exhaust/{id}/{SAMPLE_BATCH}_progress_")),
        "{key}"
    );
    let zip = dir.path().join("exhaust-files").join(&key);
    let listing = std::process::Command::new("unzip")
        .arg("-l")
        .arg(&zip)
        .output()
        .expect("unzip is installed");
    assert!(listing.status.success(), "{}", zip.display());
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains(&format!("{SAMPLE_BATCH}_progress_"))
    );
}

#[test]
fn submit_then_run_on_a_fresh_folder_with_the_defaults() {
    submit_run_status(&[]);
}

/// A PostgreSQL URL and a table in a schema of its own.
fn pg_table() -> (String, String) {
    let url = test_pg_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let schema = rt
        .block_on(fresh_schema(&url, "exhaust_c"))
        .expect("PostgreSQL");
    (url, format!("{schema}.dev_job_request"))
}

#[test]
fn submit_then_run_against_postgres() {
    let (url, table) = pg_table();
    submit_run_status(&[
        ("EXHAUST_STORE_URL", url.as_str()),
        ("EXHAUST_STORE_TABLE", table.as_str()),
    ]);
}

#[test]
fn a_password_protected_request_gives_a_zip_that_opens_with_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("EXHAUST_SECURITY_LEVEL", "PASSWORD_PROTECTED_DATASET")];
    let a = exhaust(dir.path())
        .envs(env)
        .env("MY_KEY", "pa55-word")
        .args([
            "submit",
            "--batch-id",
            SAMPLE_BATCH,
            "--encryption-key-env",
            "MY_KEY",
        ])
        .args(["--requested-by", "u-1", "--channel", SAMPLE_CHANNEL])
        .assert()
        .success();
    let id = submitted_id(&stdout(&a));
    let a = exhaust(dir.path()).envs(env).arg("run").assert().success();
    assert!(
        !stdout(&a).contains("pa55-word"),
        "the key is never printed"
    );
    let row = status_json(dir.path(), &env, &id);
    assert!(!row.to_string().contains("pa55-word"));
    let zip = dir
        .path()
        .join("exhaust-files")
        .join(row["downloadUrls"][0].as_str().expect("url"));
    let open = |pw: &str| {
        std::process::Command::new("unzip")
            .args(["-P", pw, "-p"])
            .arg(&zip)
            .output()
            .expect("unzip")
    };
    let ok = open("pa55-word");
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains(SAMPLE_BATCH));
    assert!(!open("wrong").status.success());
}

#[test]
fn a_failed_request_makes_run_exit_1_with_the_reason_in_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = exhaust(dir.path())
        .args(["submit", "--batch-filter", "nope-1,nope-2"])
        .args(["--requested-by", "u-1", "--channel", SAMPLE_CHANNEL])
        .assert()
        .success();
    let id = submitted_id(&stdout(&a));
    exhaust(dir.path()).arg("run").assert().code(1);
    let row = status_json(dir.path(), &[], &id);
    assert_eq!(row["status"], "FAILED");
    assert_eq!(row["statusMessage"], "No data found");
    assert_eq!(row["attempts"], 1);
}

/// Stored text with terminal escapes (a tag sent to the API can carry any)
/// is printed by `exhaust status` with its control characters escaped;
/// `--json` keeps the text as stored, in JSON.
#[test]
fn status_escapes_control_characters_and_json_keeps_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    // ESC (C0) clears the screen, CSI (C1) sets a colour, DEL, BEL ends a
    // retitling sequence in the batch id.
    let tag = "t\u{1b}[2J\u{9b}31m\u{7f}x";
    let batch = "b\u{1b}]0;owned\u{7}\u{9b}1m";
    let a = exhaust(dir.path())
        .args(["submit", "--batch-id", batch, "--tag", tag])
        .args(["--requested-by", "u-1", "--channel", SAMPLE_CHANNEL])
        .assert()
        .success();
    let out = stdout(&a);
    let id = submitted_id(&out);
    exhaust(dir.path()).arg("run").assert().code(1);

    for args in [vec!["status"], vec!["status", id.as_str()]] {
        let a = exhaust(dir.path()).args(&args).assert().success();
        let human = stdout(&a);
        let controls: Vec<char> = human
            .chars()
            .filter(|c| c.is_control() && *c != '\n')
            .collect();
        assert!(controls.is_empty(), "{controls:?} in {human:?}");
        assert!(human.contains("t\\u{1b}[2J\\u{9b}31m\\u{7f}x"), "{human}");
        // The configuration is JSON text: JSON escapes C0 characters, and
        // the C1 one left is escaped for the terminal.
        assert!(
            human.contains(r#"{"batchId":"b\u001b]0;owned\u0007\u{9b}1m"}"#),
            "{human}"
        );
    }
    // The submit's own lines too.
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");

    let row = status_json(dir.path(), &[], &id);
    assert!(
        row["tag"].as_str().is_some_and(|t| t.starts_with(tag)),
        "{row}"
    );
    assert_eq!(row["datasetConfig"]["batchId"], batch);
}

#[test]
fn bad_usage_and_configuration_are_exit_2_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = exhaust(dir.path())
        .args(["submit", "--requested-by", "u", "--channel", "c"])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("--batch-id, --batch-filter or --search-filter"),
        "{err}"
    );

    std::fs::write(dir.path().join("exhaust.toml"), "[store]\nurll = \"x\"\n").expect("write");
    let a = exhaust(dir.path()).arg("status").assert().code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("exhaust.toml") && err.contains("urll"),
        "{err}"
    );

    let a = exhaust(dir.path())
        .args(["status", "--config", "missing.toml"])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("missing.toml"), "{err}");
}

/// A worker process killed (SIGKILL) in the middle of a request: its lock
/// dies with it, and the next `exhaust run` completes the request.
fn killed_worker(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    // A batch big enough to be caught in the middle of its build.
    exhaust(dir.path())
        .args(["gen-snapshot", "--out", "big", "--batches", "1"])
        .args(["--enrolments-per-batch", "20000", "--users", "20000"])
        .assert()
        .success();
    let snapshot = dir.path().join("big");
    let snapshot = snapshot.to_str().expect("utf-8 path");
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("EXHAUST_SNAPSHOT", snapshot));
    let a = exhaust(dir.path())
        .envs(env.iter().copied())
        .args(["submit", "--batch-id", SAMPLE_BATCH])
        .args(["--requested-by", "u-1", "--channel", SAMPLE_CHANNEL])
        .assert()
        .success();
    let id = submitted_id(&stdout(&a));

    let bin = common::exhaust_bin();
    let mut worker = std::process::Command::new(bin);
    worker.current_dir(dir.path()).arg("run");
    for (k, v) in &env {
        worker.env(k, v);
    }
    // Killed when dropped too, should an assertion below fail first.
    let mut child = exhaust_sources::testing::signals::Worker(
        worker
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("worker"),
    );
    let started = std::time::Instant::now();
    loop {
        let row = status_json(dir.path(), &env, &id);
        if row["status"] == "PROCESSING" {
            break;
        }
        assert!(
            row["status"] == "SUBMITTED" && started.elapsed().as_secs() < 30,
            "the worker never got caught in the middle: {row}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert_eq!(status_json(dir.path(), &env, &id)["status"], "PROCESSING");

    // Another worker takes it up (PostgreSQL may take a moment to notice
    // the dead connection).
    let mut done = false;
    for _ in 0..50 {
        let a = exhaust(dir.path())
            .envs(env.iter().copied())
            .arg("run")
            .assert()
            .success();
        if stdout(&a).contains("1 succeeded") {
            done = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(done, "the request of the killed worker was completed");
    let row = status_json(dir.path(), &env, &id);
    assert_eq!(row["status"], "SUCCESS");
    assert_eq!(row["attempts"], 0);
}

#[test]
fn a_killed_worker_s_request_is_completed_by_the_next_run_on_sqlite() {
    killed_worker(&[]);
}

#[test]
fn a_killed_worker_s_request_is_completed_by_the_next_run_on_postgres() {
    let (url, table) = pg_table();
    killed_worker(&[
        ("EXHAUST_STORE_URL", url.as_str()),
        ("EXHAUST_STORE_TABLE", table.as_str()),
    ]);
}
