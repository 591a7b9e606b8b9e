//! `exhaust snapshot` and the choice of source by configuration.

mod common;

use common::exhaust;
use std::path::Path;

const BATCH: &str = "0135742803756164562";

fn report_bytes(dir: &Path, out: &str, extra: &[&str]) -> Vec<u8> {
    exhaust(dir)
        .args(["report", "--batch-id", BATCH, "--out", out])
        .args(extra)
        .assert()
        .success();
    let folder = dir.join(out).join("progress-exhaust");
    let file = std::fs::read_dir(&folder)
        .expect("folder")
        .next()
        .expect("a report")
        .expect("entry")
        .path();
    std::fs::read(file).expect("csv")
}

#[test]
fn a_batch_copied_into_a_snapshot_gives_the_same_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = exhaust(dir.path())
        .args(["snapshot", "--batch-id", BATCH, "--out", "copy"])
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("from the snapshot source"), "{out}");
    assert!(out.contains("40 enrolments, 40 users"), "{out}");
    let original = report_bytes(dir.path(), "a", &[]);
    let copy = report_bytes(dir.path(), "b", &["--snapshot", "copy"]);
    assert_eq!(original, copy);
    // The copy holds this batch only.
    let batches =
        std::fs::read_to_string(dir.path().join("copy/course_batch.jsonl")).expect("read");
    assert_eq!(batches.lines().count(), 1);
    // A second copy into the same folder is refused, the first untouched.
    exhaust(dir.path())
        .args(["snapshot", "--batch-id", BATCH, "--out", "copy"])
        .assert()
        .code(2);
    assert_eq!(
        report_bytes(dir.path(), "c", &["--snapshot", "copy"]),
        original
    );
}

#[test]
fn live_sources_that_are_down_give_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("exhaust.toml"),
        "[source.live.cassandra]\ncontact_points = [\"127.0.0.1:1\"]\nconnect_timeout_ms = 500\n\
         [source.live.redis]\nurl = \"redis://127.0.0.1:1\"\n",
    )
    .expect("config");
    let a = exhaust(dir.path())
        .args(["report", "--batch-id", BATCH, "--out", "o"])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("connecting to the live sources"), "{err}");
    assert!(err.contains("unavailable"), "{err}");
    assert!(!dir.path().join("o/progress-exhaust").exists());
}
