//! What the batch summary costs: one batch of 100,000 enrolments (500,000
//! cached users, 10 units × 8 leaves, 6 assessments, up to 3 attempts:
//! the snapshot `benches/e2e.sh` measures) built from its snapshot into
//! CSV, as `exhaust report` builds it, with and without the summary
//! counted on the way (`SummarySink`). The goal (issue #26): under 5%
//! more. Run with `cargo bench -p exhaust-benches --bench summary`.
//!
//! The snapshot is generated once into `$EXHAUST_BENCH_DIR` (default
//! `~/.cache/exhaust-bench`, shared with `benches/e2e.sh`), and its
//! digests are written by an untimed first build, so every timed build
//! reads them as every later run of a snapshot does.
//! `EXHAUST_SUMMARY_BENCH_N` changes the number of enrolments.

use criterion::{Criterion, criterion_group, criterion_main};
use exhaust_core::BatchId;
use exhaust_core::report::{ReportOptions, build_report};
use exhaust_core::summary::SummarySink;
use exhaust_sources::generate::{GenParams, generate};
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::CsvSink;
use std::path::PathBuf;
use std::time::Duration;

/// The benchmark snapshot of `n` enrolments, generated when missing.
fn snapshot(n: usize) -> (PathBuf, BatchId) {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    let dir = std::env::var("EXHAUST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(home).join(".cache/exhaust-bench"))
        .join(format!("n{n}-u{}", n * 5));
    if !dir.join(".complete").is_file() {
        let _ = std::fs::remove_dir_all(&dir);
        let params = GenParams {
            batches: 1,
            enrolments_per_batch: n,
            users: n * 5,
            units: 10,
            leaves_per_unit: 8,
            assessments: 6,
            attempts: 3,
            seed: 1,
        };
        eprintln!("generating {} (once)", dir.display());
        generate(&dir, &params).expect("the benchmark snapshot");
        std::fs::write(dir.join(".complete"), b"").expect("mark");
    }
    let batches = std::fs::read_to_string(dir.join("course_batch.jsonl")).expect("batches");
    let first: serde_json::Value =
        serde_json::from_str(batches.lines().next().expect("a batch")).expect("json");
    let id = first["batchid"].as_str().expect("batchid").to_string();
    (dir, BatchId::new(id))
}

fn summary(c: &mut Criterion) {
    let n: usize = std::env::var("EXHAUST_SUMMARY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (dir, batch) = snapshot(n);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let source = Snapshot::open(&dir, SnapshotOptions::default()).expect("snapshot");
    let opts = ReportOptions::default();
    let plain = || {
        let mut sink = CsvSink::new(std::io::sink());
        rt.block_on(build_report(&source, &batch, None, &opts, &mut sink))
            .expect("builds");
        sink.finish().expect("csv").1.bytes
    };
    let summarised = || {
        let mut sink = SummarySink::new(CsvSink::new(std::io::sink()));
        rt.block_on(build_report(&source, &batch, None, &opts, &mut sink))
            .expect("builds");
        let (csv, summary) = sink.into_parts();
        assert!(summary.is_some_and(|s| s.learners > 0));
        csv.finish().expect("csv").1.bytes
    };
    // The first build writes the digests: not timed.
    assert_eq!(plain(), summarised(), "the same CSV either way");

    let mut group = c.benchmark_group(format!("report_{n}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("csv", |b| b.iter(plain));
    group.bench_function("csv_and_summary", |b| b.iter(summarised));
    group.finish();
}

criterion_group!(benches, summary);
criterion_main!(benches);
