//! The snapshot reader: file forms, indexes and bad data.

use exhaust_core::model::UserEntry;
use exhaust_core::report::{BuildError, ReportOptions, VecSink, build_report};
use exhaust_core::source::{AttemptSource, HierarchySource, Reclaim, UserSource};
use exhaust_core::{BatchId, ContentId, UserId};
use exhaust_sources::{Snapshot, SnapshotOptions};
use std::io::Write;
use std::path::Path;

use exhaust_sources::testing::conformance_snapshot as conformance;

/// Copies the conformance snapshot into a temporary folder, gzipping the
/// tables named in `gzip`.
fn copy_snapshot(gzip: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(conformance()).expect("fixture") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        let bytes = std::fs::read(&path).expect("read");
        let table = name.trim_end_matches(".jsonl");
        if gzip.contains(&table) {
            let out = std::fs::File::create(dir.path().join(format!("{name}.gz"))).expect("create");
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            gz.write_all(&bytes).expect("gzip");
            gz.finish().expect("gzip");
        } else {
            std::fs::write(dir.path().join(&name), bytes).expect("write");
        }
    }
    dir
}

async fn report(dir: &Path, batch: &str) -> Result<VecSink, BuildError> {
    report_with(dir, batch, SnapshotOptions::default())
        .await
        .map(|(sink, _)| sink)
}

/// `batch`'s report from `dir` opened with `opts`, and its summary.
///
/// Every report is also built from a copy of `dir` with each large table
/// digested (`SnapshotOptions::digest`; by default only tables of 16 MiB
/// and more are, for a batch of a quarter of the enrolments), as the run that writes the digests reads them and as a
/// later run reads them back: both must give what the JSON lines give,
/// errors included.
async fn report_with(
    dir: &Path,
    batch: &str,
    opts: SnapshotOptions,
) -> Result<(VecSink, exhaust_core::report::BatchSummary), BuildError> {
    let lines = build(dir, batch, opts.clone()).await;
    let copy = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(dir).expect("snapshot") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, copy.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let digested = SnapshotOptions {
        persist_index_min_bytes: Some(0),
        index_cache_dir: None,
        digest_min_percent: 0,
        ..opts
    };
    let outcome = |r: &Result<(VecSink, exhaust_core::report::BatchSummary), BuildError>| {
        r.as_ref()
            .map(|(sink, summary)| (sink.clone(), summary.clone()))
            .map_err(ToString::to_string)
    };
    for round in ["written", "read back"] {
        let digest = build(copy.path(), batch, digested.clone()).await;
        assert_eq!(outcome(&digest), outcome(&lines), "the digest {round}");
    }
    lines
}

async fn build(
    dir: &Path,
    batch: &str,
    opts: SnapshotOptions,
) -> Result<(VecSink, exhaust_core::report::BatchSummary), BuildError> {
    let snapshot = Snapshot::open(dir, opts).expect("opens");
    let mut sink = VecSink::default();
    let summary = build_report(
        &snapshot,
        &BatchId::new(batch),
        None,
        &ReportOptions::default(),
        &mut sink,
    )
    .await?;
    Ok((sink, summary))
}

#[tokio::test]
async fn gzip_tables_give_the_same_report() {
    let plain = report(&conformance(), "batch-001").await.expect("plain");
    let all = [
        "user_enrolments",
        "user_cache",
        "assessment_aggregator",
        "user_activity_agg",
        "content_hierarchy",
        "course_batch",
        "content",
        "system_settings",
    ];
    let dir = copy_snapshot(&all);
    assert!(dir.path().join("user_cache.jsonl.gz").is_file());
    assert!(!dir.path().join("user_cache.jsonl").exists());
    let gz = report(dir.path(), "batch-001").await.expect("gz");
    assert_eq!(gz, plain);
    assert_eq!(gz.rows.len(), 4);
}

#[tokio::test]
async fn users_are_read_by_key_suffix_and_missing_ones_are_none() {
    let snapshot = Snapshot::open(conformance(), SnapshotOptions::default()).expect("opens");
    let ids = [
        UserId::new("user-001"),
        UserId::new("nobody"),
        UserId::new("user-004"),
    ];
    let users = snapshot.users(&ids).await.expect("reads");
    assert_eq!(users.len(), 3);
    let Some(UserEntry::Profile(p)) = &users[0] else {
        panic!("user-001 is cached: {:?}", users[0])
    };
    assert_eq!(p.cluster.as_deref(), Some("CLUSTER1"));
    assert!(users[1].is_none());
    let Some(UserEntry::Profile(p)) = &users[2] else {
        panic!("user-004 is cached")
    };
    assert_eq!(p.state.as_deref(), Some("Delhi"));
}

/// Sends the name of the thread it is dropped on.
struct DropReport(std::sync::mpsc::Sender<Option<String>>);

impl Drop for DropReport {
    fn drop(&mut self) {
        let name = std::thread::current().name().map(str::to_owned);
        let _ = self.0.send(name);
    }
}

#[test]
fn data_handed_back_is_dropped_on_a_reader_thread() {
    let snapshot = Snapshot::open(conformance(), SnapshotOptions::default()).expect("opens");
    let (tx, rx) = std::sync::mpsc::channel();
    snapshot.reclaim(Box::new(DropReport(tx)));
    let on = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("dropped");
    // Off the caller's thread (this test's), on the snapshot's pool.
    let on = on.expect("a named thread");
    assert!(on.starts_with("exhaust-snapshot-"), "dropped on {on}");
}

#[tokio::test]
async fn attempts_and_hierarchies_are_read_by_key() {
    let snapshot = Snapshot::open(conformance(), SnapshotOptions::default()).expect("opens");
    let course = ContentId::new("do_1130928636168192001667");
    let attempts = snapshot
        .attempts(
            &course,
            &[
                UserId::new("user-001"),
                UserId::new("user-002"),
                UserId::new("user-008"),
            ],
        )
        .await
        .expect("reads");
    // user-008's attempt is in another course.
    let users: Vec<&str> = attempts.iter().map(|a| a.user_id.as_str()).collect();
    assert_eq!(users, ["user-001", "user-002"]);
    assert_eq!(attempts[0].grand_total.as_deref(), Some("20"));
    let h = snapshot
        .hierarchy(&course)
        .await
        .expect("reads")
        .expect("stored");
    assert!(h.starts_with("{\"identifier\":\"do_1130928636168192001667\""));
    assert_eq!(
        snapshot
            .hierarchy(&ContentId::new("do_none"))
            .await
            .expect("reads"),
        None
    );
}

#[tokio::test]
async fn a_missing_table_is_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = report(dir.path(), "batch-001")
        .await
        .expect_err("no batches");
    assert_eq!(e.to_string(), "unknown batch batch-001");
}

#[tokio::test]
async fn bad_rows_name_the_file_and_line() {
    let dir = copy_snapshot(&[]);
    let path = dir.path().join("user_enrolments.jsonl");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str(
        "\n{\"userid\": \"user-009\", \"batchid\": \"batch-001\", \"contentstatus\": [1, 2]}\n",
    );
    std::fs::write(&path, text).expect("write");
    let e = report(dir.path(), "batch-001").await.expect_err("bad row");
    let msg = e.to_string();
    assert!(msg.contains("user_enrolments.jsonl line 17"), "{msg}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn an_enrolment_line_without_a_readable_batch_fails_only_its_batch() {
    // Not an object, and a batch id that is not text: the index cannot
    // file them under a batch. The second mentions batch-006 only.
    let dir = copy_snapshot(&[]);
    let path = dir.path().join("user_enrolments.jsonl");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("[\"user-030\", \"batch-001\"]\n{\"userid\": \"user-031\", \"batchid\": 6, \"note\": \"batch-006\"}\n");
    std::fs::write(&path, text).expect("write");
    let e = report(dir.path(), "batch-001").await.expect_err("bad row");
    assert!(
        e.to_string().contains("user_enrolments.jsonl line 16"),
        "{e}"
    );
    assert!(!e.is_retryable());
    let e = report(dir.path(), "batch-006").await.expect_err("bad row");
    assert!(
        e.to_string().contains("user_enrolments.jsonl line 17"),
        "{e}"
    );
    // A batch that neither line mentions builds.
    let plain = report(&conformance(), "batch-002").await;
    let with_bad_lines = report(dir.path(), "batch-002").await;
    assert_eq!(
        plain.map(|s| s.rows).map_err(|e| e.to_string()),
        with_bad_lines.map(|s| s.rows).map_err(|e| e.to_string())
    );
}

#[tokio::test]
async fn enrolment_rows_with_nulls_are_read() {
    let dir = copy_snapshot(&[]);
    let path = dir.path().join("user_enrolments.jsonl");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str(concat!(
        "{\"userid\": \"user-020\", \"courseid\": \"do_1130928636168192001667\", \"batchid\": \"batch-001\", ",
        "\"active\": true, \"enrolled_date\": \"2020-01-01T00:00:00.000Z\", \"contentstatus\": null, ",
        "\"completedon\": null, \"status\": null, \"certificates\": null, \"issued_certificates\": null}\n",
        "{\"userid\": \"user-021\", \"courseid\": \"do_1130928636168192001667\", \"batchid\": \"batch-001\", ",
        "\"active\": null, \"enrolled_date\": \"2020-01-01T00:00:00.000Z\"}\n",
    ));
    std::fs::write(&path, text).expect("write");
    let sink = report(dir.path(), "batch-001").await.expect("builds");
    let users: Vec<&str> = sink.rows.iter().map(|r| r[4].as_str()).collect();
    // user-020 is kept (not in the cache: blank profile); user-021 is not active.
    assert_eq!(
        users,
        ["user-001", "user-002", "user-003", "user-004", "user-020"]
    );
}

#[tokio::test]
async fn wrong_shaped_cache_values_keep_the_row() {
    let dir = copy_snapshot(&[]);
    let path = dir.path().join("user_cache.jsonl");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text = text.replace(
        r#"{"key": "user:user-004", "value": {"firstname": "Utkarsha","#,
        r#"{"key": "user:user-004", "value": {"board": ["CBSE"], "firstname": "Utkarsha","#,
    );
    assert!(
        text.contains(r#""board": ["CBSE"]"#),
        "fixture text changed"
    );
    std::fs::write(&path, text).expect("write");
    let snapshot = Snapshot::open(dir.path(), SnapshotOptions::default()).expect("opens");
    let users = snapshot
        .users(&[UserId::new("user-004")])
        .await
        .expect("reads");
    assert_eq!(
        users[0],
        Some(UserEntry::Malformed("field board is not a string".into()))
    );
    let sink = report(dir.path(), "batch-001").await.expect("builds");
    assert_eq!(sink.rows.len(), 4);
}

#[tokio::test]
async fn a_corrupt_gzip_file_is_a_clear_error() {
    let dir = copy_snapshot(&[]);
    std::fs::remove_file(dir.path().join("course_batch.jsonl")).expect("remove");
    std::fs::write(dir.path().join("course_batch.jsonl.gz"), b"not gzip at all").expect("write");
    let e = report(dir.path(), "batch-001").await.expect_err("corrupt");
    assert!(
        e.to_string()
            .contains("course_batch.jsonl.gz is not a readable gzip file"),
        "{e}"
    );
}

#[tokio::test]
async fn one_snapshot_serves_several_batches() {
    // Each batch scans the enrolments again; a scan must not depend on an
    // earlier one (batch-001 has 4 learners, batch-006 has 3).
    let snapshot = Snapshot::open(conformance(), SnapshotOptions::default()).expect("opens");
    for (batch, rows) in [("batch-001", 4), ("batch-006", 3), ("batch-001", 4)] {
        let mut sink = VecSink::default();
        build_report(
            &snapshot,
            &BatchId::new(batch),
            None,
            &ReportOptions::default(),
            &mut sink,
        )
        .await
        .expect("builds");
        assert_eq!(sink.rows.len(), rows, "{batch}");
    }
}

#[tokio::test]
async fn parallel_reads_give_the_same_report_as_one_thread() {
    use exhaust_core::layout::Layout;
    use exhaust_sources::generate::{GenParams, generate};
    let dir = tempfile::tempdir().expect("tempdir");
    let params = GenParams {
        batches: 1,
        enrolments_per_batch: 700,
        users: 900,
        ..GenParams::default()
    };
    let summary = generate(dir.path(), &params).expect("generates");
    let batch = BatchId::new(summary.batch_ids[0].clone());
    let mut reports = Vec::new();
    for threads in [1, 2, 3] {
        let snapshot = Snapshot::open(
            dir.path(),
            SnapshotOptions {
                threads,
                enrolment_chunk: 97,
                ..SnapshotOptions::default()
            },
        )
        .expect("opens");
        let opts = ReportOptions {
            layout: Layout::Lern,
            ..ReportOptions::default()
        };
        let mut sink = VecSink::default();
        build_report(&snapshot, &batch, None, &opts, &mut sink)
            .await
            .expect("builds");
        assert!(sink.rows.len() > 600, "{} rows", sink.rows.len());
        reports.push(sink);
    }
    assert_eq!(reports[0], reports[1]);
    assert_eq!(reports[0], reports[2]);
}

/// Opens `dir` with `threads` reader threads and builds `batch`'s report.
async fn report_with_threads(
    dir: &Path,
    batch: &str,
    threads: usize,
) -> Result<(VecSink, exhaust_core::report::BatchSummary), BuildError> {
    let opts = SnapshotOptions {
        threads,
        enrolment_chunk: 2,
        ..SnapshotOptions::default()
    };
    report_with(dir, batch, opts).await
}

/// The conformance snapshot with each `batch-001` enrolment line followed
/// by a line of another batch, so every line of the batch is a run of its
/// own, and `extra` lines at the end.
fn interleaved(extra: &[&str]) -> tempfile::TempDir {
    let dir = copy_snapshot(&[]);
    let path = dir.path().join("user_enrolments.jsonl");
    let text = std::fs::read_to_string(&path).expect("read");
    let mut out = String::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        out.push_str(line);
        out.push('\n');
        out.push_str(&format!(
            "{{\"userid\": \"other-{i}\", \"courseid\": \"do_x\", \"batchid\": \"batch-other\", \"active\": true}}\n"
        ));
    }
    for line in extra {
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(&path, out).expect("write");
    dir
}

#[tokio::test]
async fn a_batch_in_many_runs_is_read_in_file_order_on_any_number_of_threads() {
    let (plain, _) = report_with_threads(&conformance(), "batch-001", 1)
        .await
        .expect("plain");
    // user-001 again, later in the file, with another enrolment date: the
    // first line of a user is the one kept, so the report must not change.
    let dir = interleaved(&[
        r#"{"userid": "user-001", "courseid": "do_1130928636168192001667", "batchid": "batch-001", "active": true, "status": 1, "enrolled_date": "2021-01-01T00:00:00.000Z"}"#,
    ]);
    for threads in [1, 2, 3, 8] {
        let (sink, summary) = report_with_threads(dir.path(), "batch-001", threads)
            .await
            .expect("builds");
        assert_eq!(sink, plain, "{threads} threads");
        assert_eq!(summary.duplicate_enrolments, 1, "{threads} threads");
    }
}

#[tokio::test]
async fn the_first_bad_line_of_a_batch_in_file_order_is_the_one_reported() {
    let bad = |user: &str| {
        format!(
            r#"{{"userid": "{user}", "courseid": "do_1130928636168192001667", "batchid": "batch-001", "active": true, "enrolled_date": "not a date"}}"#
        )
    };
    let (first, second) = (bad("bad-1"), bad("bad-2"));
    let dir = interleaved(&[&first, "", &second]);
    let lines = std::fs::read_to_string(dir.path().join("user_enrolments.jsonl"))
        .expect("read")
        .lines()
        .count();
    // `first` is the third line from the end (a blank line lies between).
    let expected = format!("user_enrolments.jsonl line {}:", lines - 2);
    for threads in [1, 2, 3] {
        let err = report_with_threads(dir.path(), "batch-001", threads)
            .await
            .expect_err("a bad line fails the batch");
        assert!(err.to_string().contains(&expected), "{threads}: {err}");
    }
}

/// A digest is read in file order, a part's keys at once (the user tables'
/// digests are in key order): the error is still that of the first key
/// asked for whose line is bad, as when each key is looked up in turn.
#[tokio::test]
async fn the_first_key_asked_for_names_the_error_in_every_form() {
    let dir = copy_snapshot(&[]);
    let path = dir.path().join("user_cache.jsonl");
    let mut text = std::fs::read_to_string(&path).expect("read");
    // Two users whose lines do not parse (their keys can be read): in the
    // file "user-zz" before "user-aa", in key order the other way round.
    text.push_str("\n{\"key\":\"user:user-zz\",\"value\":{\"a\": }}\n");
    text.push_str("{\"key\":\"user:user-aa\",\"value\":[}\n");
    std::fs::write(&path, &text).expect("write");
    let line_of = |user: &str| {
        1 + text
            .lines()
            .position(|l| l.contains(user))
            .expect("written")
    };
    let (zz, aa) = (UserId::new("user-zz"), UserId::new("user-aa"));
    let ok = UserId::new("user-001");
    for digest in [false, true] {
        let opts = SnapshotOptions {
            persist_index_min_bytes: Some(0),
            index_cache_dir: None,
            digest_min_percent: 0,
            digest,
            ..SnapshotOptions::default()
        };
        // The first open writes the index or digest, the second reads it.
        for round in ["written", "read back"] {
            let snapshot = Snapshot::open(dir.path(), opts.clone()).expect("opens");
            for (ids, bad) in [
                ([ok.clone(), zz.clone(), aa.clone()], "user-zz"),
                ([ok.clone(), aa.clone(), zz.clone()], "user-aa"),
            ] {
                let e = snapshot.users(&ids).await.expect_err("a bad line");
                let want = format!("user_cache.jsonl line {}", line_of(bad));
                assert!(
                    e.to_string().contains(&want),
                    "digest {digest}, {round}: {e} should name {want}"
                );
            }
            assert!(
                snapshot
                    .users(std::slice::from_ref(&ok))
                    .await
                    .expect("reads")[0]
                    .is_some()
            );
        }
    }
}
