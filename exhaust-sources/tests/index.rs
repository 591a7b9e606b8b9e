//! The snapshot's persisted offset indexes and digests: reused when valid,
//! rebuilt when the table changed or the file is damaged, kept in a cache
//! folder when the snapshot's folder cannot be written, safe with several
//! readers at once. Every case must give the report of a fresh build.

use exhaust_core::BatchId;
use exhaust_core::report::{ReportOptions, VecSink, build_report};
use exhaust_sources::generate::{GenParams, generate};
use exhaust_sources::{IndexStats, Snapshot, SnapshotOptions};
use std::path::{Path, PathBuf};

/// A generated snapshot of two batches and its first batch.
fn snapshot() -> (tempfile::TempDir, BatchId) {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = GenParams {
        batches: 2,
        enrolments_per_batch: 150,
        users: 400,
        ..GenParams::default()
    };
    let summary = generate(dir.path(), &params).expect("generates");
    (dir, BatchId::new(summary.batch_ids[0].clone()))
}

fn options(cache: &Path) -> SnapshotOptions {
    SnapshotOptions {
        // Every table is persisted, however small.
        persist_index_min_bytes: Some(0),
        index_cache_dir: Some(cache.to_path_buf()),
        // These tests are about what a run that writes digests leaves;
        // when digests are written is the subject of
        // `the_first_read_leaves_the_digests_to_the_second`.
        digest_on_first_read: true,
        ..SnapshotOptions::default()
    }
}

async fn report(dir: &Path, opts: SnapshotOptions, batch: &BatchId) -> (VecSink, IndexStats) {
    let snapshot = Snapshot::open(dir, opts).expect("opens");
    let mut sink = VecSink::default();
    build_report(&snapshot, batch, None, &ReportOptions::default(), &mut sink)
        .await
        .expect("builds");
    (sink, snapshot.index_stats())
}

/// The report without any persisted index.
async fn fresh(dir: &Path, batch: &BatchId) -> VecSink {
    let opts = SnapshotOptions {
        persist_index_min_bytes: None,
        ..SnapshotOptions::default()
    };
    report(dir, opts, batch).await.0
}

/// The index (`idx`) and digest (`dig`) files in `dir`.
fn index_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "idx" || e == "dig"));
    files.sort();
    files
}

fn with_extension(files: &[PathBuf], ext: &str) -> usize {
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .count()
}

// The five indexed tables: enrolments, user cache, attempts, aggregates
// (these four digested), hierarchies.
const TABLES: usize = 5;
const DIGESTED: usize = 4;
// What a run that writes digests persists: the five, and the enrolments'
// line index, which told the batch's share of the enrolments (a run that
// finds every digest never reads it).
const WRITTEN: usize = TABLES + 1;

#[tokio::test]
async fn a_second_run_reads_the_persisted_indexes() {
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let expected = fresh(dir.path(), &batch).await;
    let (first, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(first.rows, expected.rows);
    assert_eq!(
        (stats.built, stats.persisted, stats.loaded),
        (WRITTEN, WRITTEN, 0)
    );
    let files = index_files(&dir.path().join(".exhaust-index"));
    assert_eq!(files.len(), WRITTEN);
    assert_eq!(with_extension(&files, "dig"), DIGESTED, "{files:?}");
    let (second, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(second.rows, expected.rows);
    assert_eq!((stats.built, stats.loaded), (0, TABLES));
    // Without digests: every table gets an offset index of its lines, and
    // the report is the same.
    let lines = SnapshotOptions {
        digest: false,
        ..options(cache.path())
    };
    let (third, stats) = report(dir.path(), lines.clone(), &batch).await;
    assert_eq!(third.rows, expected.rows);
    // The enrolments' line index is there already.
    assert_eq!(
        (stats.built, stats.loaded),
        (DIGESTED - 1, TABLES - DIGESTED + 1)
    );
    let files = index_files(&dir.path().join(".exhaust-index"));
    assert_eq!(with_extension(&files, "idx"), TABLES, "{files:?}");
    let (fourth, stats) = report(dir.path(), lines, &batch).await;
    assert_eq!(fourth.rows, expected.rows);
    assert_eq!((stats.built, stats.loaded), (0, TABLES));
}

#[tokio::test]
async fn one_snapshot_indexes_each_table_once_for_several_batches() {
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let snapshot = Snapshot::open(dir.path(), options(cache.path())).expect("opens");
    let summary: Vec<String> = std::fs::read_to_string(dir.path().join("course_batch.jsonl"))
        .expect("batches")
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v["batchid"].as_str()?.to_owned())
        })
        .collect();
    for id in summary.iter().chain([&batch.as_str().to_owned()]) {
        let batch = BatchId::new(id.clone());
        let mut sink = VecSink::default();
        let built = build_report(
            &snapshot,
            &batch,
            None,
            &ReportOptions::default(),
            &mut sink,
        )
        .await;
        // A retired collection's batch is refused; the others build.
        if built.is_ok() {
            assert_eq!(sink.rows, fresh(dir.path(), &batch).await.rows, "{id}");
        }
    }
    let stats = snapshot.index_stats();
    assert_eq!(stats.built + stats.loaded, WRITTEN, "{stats:?}");
}

#[tokio::test]
async fn a_damaged_index_is_rebuilt_not_trusted() {
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let expected = fresh(dir.path(), &batch).await;
    report(dir.path(), options(cache.path()), &batch).await;
    let files = index_files(&dir.path().join(".exhaust-index"));
    assert_eq!(files.len(), WRITTEN);
    // Truncated, emptied, one byte flipped in the run index or the
    // trailer (what loading checks whole; a digest's records are checked
    // run by run when read, below), a byte added.
    for (i, f) in files.iter().enumerate() {
        let mut bytes = std::fs::read(f).expect("read");
        match i % 4 {
            0 => bytes.truncate(bytes.len() / 2),
            1 => bytes.clear(),
            2 => {
                let at = bytes.len() - 20;
                bytes[at] ^= 0x40;
            }
            _ => bytes.push(0),
        }
        std::fs::write(f, bytes).expect("write");
    }
    let (rebuilt, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(rebuilt.rows, expected.rows);
    assert_eq!(
        (stats.built, stats.loaded, stats.persisted),
        (WRITTEN, 0, WRITTEN)
    );
    // ... and the rewritten files are good again.
    let (_, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(stats.loaded, TABLES);
}

#[tokio::test]
async fn a_table_changed_after_indexing_is_indexed_again() {
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    report(dir.path(), options(cache.path()), &batch).await;
    // The same bytes in another order: the same size, so only the stamp's
    // time and inode tell; a stale index would point into the middle of
    // lines.
    for table in ["user_cache", "assessment_aggregator", "user_enrolments"] {
        let path = dir.path().join(format!("{table}.jsonl"));
        let text = std::fs::read_to_string(&path).expect("read");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.reverse();
        let reversed = lines.join("\n") + "\n";
        assert_eq!(reversed.len(), text.len());
        // Rewritten in place (same inode): the modification time differs.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, reversed).expect("write");
    }
    let expected = fresh(dir.path(), &batch).await;
    let (after, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(after.rows, expected.rows);
    // The three, and the enrolments' line index (their share is asked).
    assert_eq!((stats.built, stats.loaded), (4, TABLES - 3), "{stats:?}");
}

#[tokio::test]
async fn an_unwritable_snapshot_folder_keeps_its_indexes_in_the_cache() {
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let expected = fresh(dir.path(), &batch).await;
    // A file where the index folder would go: the folder cannot be made,
    // as in a read-only snapshot (which a test running as root cannot have).
    std::fs::write(dir.path().join(".exhaust-index"), b"not a folder").expect("write");
    let (first, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(first.rows, expected.rows);
    assert_eq!(stats.persisted, WRITTEN);
    let cached: Vec<PathBuf> = std::fs::read_dir(cache.path())
        .expect("cache folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(cached.len(), 1, "one folder per snapshot");
    assert_eq!(index_files(&cached[0]).len(), WRITTEN);
    let (second, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(second.rows, expected.rows);
    assert_eq!(stats.loaded, TABLES);
    // Nowhere to write at all: the indexes live in memory, the report is
    // the same.
    let nowhere = SnapshotOptions {
        index_cache_dir: Some(dir.path().join(".exhaust-index").join("sub")),
        ..options(cache.path())
    };
    let (third, stats) = report(dir.path(), nowhere, &batch).await;
    assert_eq!(third.rows, expected.rows);
    assert_eq!((stats.built, stats.persisted), (TABLES, 0));
}

#[tokio::test]
async fn readers_building_at_once_agree() {
    // Four readers (as four processes would: nothing shared but the files)
    // build and persist the same indexes at the same time, then read them.
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let expected = fresh(dir.path(), &batch).await;
    for _ in 0..2 {
        let results: Vec<Vec<Vec<String>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .build()
                            .expect("runtime");
                        rt.block_on(report(dir.path(), options(cache.path()), &batch))
                            .0
                            .rows
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("reader"))
                .collect()
        });
        for rows in results {
            assert_eq!(rows, expected.rows);
        }
    }
    // No temporary file is left behind.
    let left: Vec<PathBuf> = std::fs::read_dir(dir.path().join(".exhaust-index"))
        .expect("index folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn gzip_tables_are_indexed_by_the_compressed_file() {
    use std::io::Write;
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let expected = fresh(dir.path(), &batch).await;
    for table in ["user_cache", "user_activity_agg"] {
        let plain = dir.path().join(format!("{table}.jsonl"));
        let bytes = std::fs::read(&plain).expect("read");
        let out = std::fs::File::create(dir.path().join(format!("{table}.jsonl.gz"))).expect("gz");
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        gz.write_all(&bytes).expect("gzip");
        gz.finish().expect("gzip");
        std::fs::remove_file(plain).expect("remove");
    }
    let (first, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(first.rows, expected.rows);
    assert_eq!(stats.decompressed, 2, "{stats:?}");
    let (second, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(second.rows, expected.rows);
    assert_eq!(stats.loaded, TABLES);
    // Both are read through their digests: neither is decompressed.
    assert_eq!(stats.decompressed, 0, "{stats:?}");
    // Without digests, their lines are read: both are.
    let lines = SnapshotOptions {
        digest: false,
        ..options(cache.path())
    };
    let (third, stats) = report(dir.path(), lines, &batch).await;
    assert_eq!(third.rows, expected.rows);
    assert_eq!(stats.decompressed, 2, "{stats:?}");
}

/// Flips bytes all through the records of `table`'s digest (between its
/// header and its run index), where only the runs' own checksums can see
/// it; the damaged file's path.
fn damage_records(dir: &Path, table: &str) -> PathBuf {
    let prefix = format!("{table}.jsonl.");
    let path = index_files(&dir.join(".exhaust-index"))
        .into_iter()
        .find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(&prefix) && name.ends_with(".dig")
        })
        .expect("the table's digest");
    let mut bytes = std::fs::read(&path).expect("read");
    // The trailer: the run count, then a checksum; before it, 16 bytes a run.
    let mut count = [0u8; 8];
    count.copy_from_slice(&bytes[bytes.len() - 16..bytes.len() - 8]);
    let runs_start = bytes.len() - 16 - 16 * u64::from_le_bytes(count) as usize;
    // The header (format, stamp, what was indexed) is under 200 bytes.
    for at in (200..runs_start).step_by(16) {
        bytes[at] ^= 0x55;
    }
    std::fs::write(&path, bytes).expect("write");
    path
}

#[tokio::test]
async fn a_damaged_digest_run_is_read_from_the_lines_and_the_digest_rebuilt() {
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let expected = fresh(dir.path(), &batch).await;
    report(dir.path(), options(cache.path()), &batch).await;
    let damaged = damage_records(dir.path(), "user_cache");
    // A profile's lines are one run: none of it was handed on when the
    // damage is found, so the lookup reads the table's lines instead, and
    // so does every later lookup of the table.
    let (rows, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(rows.rows, expected.rows);
    assert!(!damaged.exists(), "the damaged digest is removed");
    // The lines' index (built once found damaged) is the one extra build.
    assert_eq!((stats.loaded, stats.built), (TABLES, 1), "{stats:?}");
    // The next run writes the digest again, and reads it back after.
    let (rows, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(rows.rows, expected.rows);
    assert_eq!((stats.built, stats.persisted), (1, 1), "{stats:?}");
    assert!(damaged.exists());
    let (_, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(stats.loaded, TABLES);
}

#[tokio::test]
async fn a_damaged_run_of_a_batch_fails_the_read_and_the_next_one_succeeds() {
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let expected = fresh(dir.path(), &batch).await;
    report(dir.path(), options(cache.path()), &batch).await;
    let damaged = damage_records(dir.path(), "user_enrolments");
    let snapshot = Snapshot::open(dir.path(), options(cache.path())).expect("opens");
    let build = || async {
        let mut sink = VecSink::default();
        build_report(
            &snapshot,
            &batch,
            None,
            &ReportOptions::default(),
            &mut sink,
        )
        .await
        .map(|_| sink)
    };
    // A batch's enrolments are handed on run by run, so a damaged run
    // fails the read rather than give part of the batch twice; the error
    // says to read again, and says why.
    let e = build().await.expect_err("a damaged run");
    assert!(e.is_retryable(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("user_enrolments.jsonl") && msg.contains("damaged"),
        "{msg}"
    );
    assert!(msg.contains("run the read again"), "{msg}");
    assert!(!damaged.exists(), "the damaged digest is removed");
    // The same snapshot now reads the table's lines...
    assert_eq!(build().await.expect("builds").rows, expected.rows);
    // ... and the next run rebuilds the digest.
    let (rows, stats) = report(dir.path(), options(cache.path()), &batch).await;
    assert_eq!(rows.rows, expected.rows);
    assert_eq!(stats.built, 1, "{stats:?}");
    assert!(damaged.exists());
}

#[tokio::test]
async fn only_a_batch_with_its_share_of_the_enrolments_writes_digests() {
    // Two batches of 150 enrolments: each holds about half the table.
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let expected = fresh(dir.path(), &batch).await;
    let needing = |percent| SnapshotOptions {
        digest_min_percent: percent,
        ..options(cache.path())
    };
    // Asked for more than its share: offset indexes only.
    let (rows, _) = report(dir.path(), needing(60), &batch).await;
    assert_eq!(rows.rows, expected.rows);
    let files = index_files(&dir.path().join(".exhaust-index"));
    assert_eq!(
        (with_extension(&files, "idx"), with_extension(&files, "dig")),
        (TABLES, 0),
        "{files:?}"
    );
    // Within its share: the digests are written...
    let (rows, stats) = report(dir.path(), needing(40), &batch).await;
    assert_eq!(rows.rows, expected.rows);
    assert_eq!(stats.built, DIGESTED, "{stats:?}");
    // ... and read by every later run, whatever its batch.
    let (rows, stats) = report(dir.path(), needing(100), &batch).await;
    assert_eq!(rows.rows, expected.rows);
    assert_eq!((stats.built, stats.loaded), (0, TABLES), "{stats:?}");
}

#[tokio::test]
async fn the_first_read_leaves_the_digests_to_the_second() {
    let (dir, batch) = snapshot();
    let cache = tempfile::tempdir().expect("cache");
    let expected = fresh(dir.path(), &batch).await;
    let opts = SnapshotOptions {
        digest_on_first_read: false,
        ..options(cache.path())
    };
    assert!(!SnapshotOptions::default().digest_on_first_read);
    let at = dir.path().join(".exhaust-index");
    // The first read indexes only: a one-off report waits for no digest.
    let (rows, stats) = report(dir.path(), opts.clone(), &batch).await;
    assert_eq!(rows.rows, expected.rows);
    assert_eq!(stats.loaded, 0, "{stats:?}");
    let files = index_files(&at);
    assert_eq!(
        (with_extension(&files, "idx"), with_extension(&files, "dig")),
        (TABLES, 0),
        "{files:?}"
    );
    // The second finds the snapshot indexed, and writes the digests...
    let (rows, stats) = report(dir.path(), opts.clone(), &batch).await;
    assert_eq!(rows.rows, expected.rows);
    assert_eq!(stats.built, DIGESTED, "{stats:?}");
    assert_eq!(with_extension(&index_files(&at), "dig"), DIGESTED);
    // ... which every later read uses.
    let (rows, stats) = report(dir.path(), opts, &batch).await;
    assert_eq!(rows.rows, expected.rows);
    assert_eq!((stats.built, stats.loaded), (0, TABLES), "{stats:?}");
}
