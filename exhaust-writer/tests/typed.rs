//! Arrow, Arrow IPC and Parquet hold the CSV's table: record batches
//! rendered back to text, files read back by pyarrow (an independent
//! reader, through `tests/read_typed.py`), schemas and metadata, on the
//! core's fixture, the bundled sample, the Sunbird-Lern conformance fixture
//! and a generated snapshot; the files are written atomically.
#![cfg(all(feature = "arrow", feature = "parquet"))]

use exhaust_core::testing as common;
mod typed_support;

use chrono::{DateTime, Utc};
use exhaust_core::layout::Layout;
use exhaust_core::report::{ReportOptions, RowSink, build_rows};
use exhaust_core::source::ReportSource;
use exhaust_core::typed::{ColumnKind, ValueType};
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::arrow::{FileKind, RecordBatchSink, TypedFileSink, build_record_batches};
use exhaust_writer::{AtomicFile, WriteError};
use std::path::{Path, PathBuf};
use typed_support::*;

const BUILT_AT: &str = "2024-01-15T10:00:00Z";

fn built_at() -> DateTime<Utc> {
    BUILT_AT.parse().expect("time")
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every check of one batch in one layout and zone: record batches (small,
/// so there are several), both files through pyarrow, and the files' names.
async fn check_batch<S: ReportSource>(src: &S, batch: &str, opts: &ReportOptions, dir: &Path) {
    let report = report(src, batch, None, opts).await;
    report.assert_csv_is_the_typed_rows();
    let expected = report.expected_arrow_text();

    // Record batches straight from the library.
    let mut batches = Vec::new();
    let mut sink = RecordBatchSink::new(built_at(), |b| {
        batches.push(b);
        Ok(())
    })
    .with_batch_rows(4);
    build_rows(src, &report.plan, opts, &mut sink)
        .await
        .expect("builds");
    let rows = sink.finish().expect("finishes");
    assert_eq!(rows as usize, report.cells.len());
    assert_eq!(batches.len(), report.cells.len().div_ceil(4).max(1));
    assert!(batches.iter().all(|b| b.num_rows() <= 4));
    assert_eq!(batches_text(&batches, &report.schema), expected);
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, report.header);
    assert_eq!(schema.metadata()["built_at"], BUILT_AT);

    // The convenience function gives the same table.
    let (all, summary) = build_record_batches(src, &report.plan, opts, built_at())
        .await
        .expect("builds");
    assert_eq!(summary.rows, report.cells.len());
    assert_eq!(batches_text(&all, &report.schema), expected);

    // Files, written atomically, read back by pyarrow.
    for (kind, name) in [
        (FileKind::Parquet, "parquet"),
        (FileKind::ArrowIpc, "arrow"),
    ] {
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{batch}-{n}.{name}"));
        let file = AtomicFile::create(&path).expect("temp file");
        let mut sink =
            TypedFileSink::new(kind, std::io::BufWriter::new(file), built_at()).with_batch_rows(5);
        build_rows(src, &report.plan, opts, &mut sink)
            .await
            .expect("builds");
        assert!(!path.exists(), "nothing under the final name before commit");
        let (w, stats) = sink.finish().expect("finishes");
        let file = w.into_inner().map_err(|e| e.into_error()).expect("flush");
        let path = file.commit().expect("commit");
        assert_eq!(stats.rows as usize, report.cells.len());
        assert_eq!(
            stats.bytes,
            std::fs::metadata(&path).expect("file").len(),
            "the counted size is the file's size"
        );
        let dump = python_read(name, &path);
        assert_py_table(&dump, &report, BUILT_AT);
    }
}

#[test]
fn the_core_fixture_in_both_layouts_and_zones() {
    let src = common::fixture();
    let dir = tempfile::tempdir().expect("dir");
    rt().block_on(async {
        for layout in [Layout::Seed, Layout::Lern] {
            for tz in ["UTC", "+05:30", "Asia/Kolkata", "America/New_York"] {
                for batch in ["b1", "b2"] {
                    check_batch(&src, batch, &opts(layout, tz), dir.path()).await;
                }
            }
        }
    });
}

#[test]
fn the_bundled_sample() {
    let snap = Snapshot::open(repo("examples/sample-snapshot"), SnapshotOptions::default())
        .expect("sample");
    let dir = tempfile::tempdir().expect("dir");
    rt().block_on(async {
        for layout in [Layout::Seed, Layout::Lern] {
            check_batch(
                &snap,
                "0135742803756164562",
                &opts(layout, "+05:30"),
                dir.path(),
            )
            .await;
        }
    });
}

#[test]
fn the_sunbird_lern_conformance_fixture() {
    let path = exhaust_sources::testing::conformance_snapshot();
    assert!(path.is_dir(), "{} is missing", path.display());
    let snap = Snapshot::open(&path, SnapshotOptions::default()).expect("fixture");
    let dir = tempfile::tempdir().expect("dir");
    rt().block_on(async {
        for layout in [Layout::Lern, Layout::Seed] {
            check_batch(&snap, "batch-001", &opts(layout, "UTC"), dir.path()).await;
        }
    });
}

#[test]
fn a_generated_snapshot() {
    let dir = tempfile::tempdir().expect("dir");
    let snap_dir = dir.path().join("snap");
    let params = exhaust_sources::generate::GenParams {
        batches: 2,
        enrolments_per_batch: 60,
        users: 90,
        ..Default::default()
    };
    let summary = exhaust_sources::generate::generate(&snap_dir, &params).expect("generates");
    let snap = Snapshot::open(&snap_dir, SnapshotOptions::default()).expect("opens");
    rt().block_on(async {
        for batch in &summary.batch_ids {
            for layout in [Layout::Seed, Layout::Lern] {
                check_batch(&snap, batch, &opts(layout, "Asia/Kolkata"), dir.path()).await;
            }
        }
    });
}

#[test]
fn the_schema_names_kinds_types_and_contents() {
    let src = common::fixture();
    rt().block_on(async {
        let seed = report(&src, "b1", None, &opts(Layout::Seed, "UTC")).await;
        let kinds: Vec<(&str, &str, &str)> = seed
            .schema
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind.as_str(), c.value_type.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Collection Id", "static", "text"),
                ("Collection Name", "static", "text"),
                ("Batch Id", "static", "text"),
                ("Batch Name", "static", "text"),
                ("User UUID", "static", "text"),
                ("User Name", "static", "text"),
                ("State", "static", "text"),
                ("District", "static", "text"),
                ("Enrolment Date", "static", "timestamp"),
                ("Completion Date", "static", "timestamp"),
                ("Progress", "static", "integer"),
                ("Certificate Status", "static", "text"),
                ("Total Score", "static", "number"),
                ("do_U1 - Progress", "unit_progress", "integer"),
                ("do_U2 - Progress", "unit_progress", "integer"),
                ("do_q1 - Score", "assessment_score", "number"),
                ("do_sa1 - Score", "assessment_score", "number"),
            ]
        );
        let unit = &seed.schema.columns[13];
        assert_eq!(unit.content_id.as_ref().map(|c| c.as_str()), Some("do_U1"));
        assert_eq!(unit.content_name.as_deref(), Some("Unit 1"));
        assert!(matches!(seed.schema.columns[0].kind, ColumnKind::Static(_)));

        let lern = report(&src, "b1", None, &opts(Layout::Lern, "UTC")).await;
        let types: Vec<ValueType> = lern
            .schema
            .columns
            .iter()
            .filter(|c| {
                matches!(
                    c.name.as_str(),
                    "Enrolment Date" | "Completion Date" | "Total Score" | "do_q1 - Score"
                )
            })
            .map(|c| c.value_type)
            .collect();
        assert_eq!(
            types,
            [
                ValueType::Date,
                ValueType::Date,
                ValueType::Percent,
                ValueType::Percent
            ]
        );
        let arrow = exhaust_writer::arrow::arrow_schema(&lern.schema, built_at());
        assert_eq!(arrow.metadata()["layout"], "lern");
        assert_eq!(arrow.metadata()["collection_id"], "do_C");
        assert_eq!(arrow.metadata()["batch_id"], "b1");
        assert!(!arrow.field(0).is_nullable(), "text is never null");
        assert!(
            arrow
                .field_with_name("Progress")
                .expect("field")
                .is_nullable()
        );
    });
}

#[test]
fn a_failed_build_leaves_no_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("b_progress_1.parquet");
    let file = AtomicFile::create(&path).expect("temp");
    let mut sink = TypedFileSink::new(FileKind::Parquet, file, built_at());
    // Text rows are refused: a typed sink needs the schema.
    let err = sink.begin(&["a".into()], 0).expect_err("refused");
    assert!(matches!(err, WriteError::NeedsTypedRows(_)), "{err}");
    drop(sink);
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}
