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
use exhaust_core::report::{ReportOptions, RowSink, build_report};
use exhaust_core::summary::{SummaryBuilder, SummarySink};
use exhaust_core::typed::{ReportSchema, Value};
use exhaust_sources::generate::{GenParams, generate};
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::CsvSink;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

    // Both builds in turn (ABBA, so neither always comes first), so that
    // the load of a shared machine falls on both alike: the medians of
    // the wall time and of the process's CPU time (its reader threads
    // included), which scheduling delays disturb less.
    let mut wall: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..10 {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let (t, c0) = (Instant::now(), cpu_seconds());
            if which == 0 {
                black_box(plain());
            } else {
                black_box(summarised());
            }
            wall[which].push(t.elapsed().as_secs_f64());
            cpu[which].push(cpu_seconds() - c0);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    for (what, times) in [("wall", &mut wall), ("cpu", &mut cpu)] {
        let (a, b) = (median(&mut times[0]), median(&mut times[1]));
        eprintln!(
            "interleaved, 10 each, {what}: csv {a:.3} s, csv and summary {b:.3} s (medians): {:+.1}%",
            (b / a - 1.0) * 100.0
        );
    }

    let mut group = c.benchmark_group(format!("report_{n}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("csv", |b| b.iter(plain));
    group.bench_function("csv_and_summary", |b| b.iter(summarised));
    group.finish();

    // The summary's own work: counting the batch's typed rows, already built.
    let mut rows = Collect::default();
    rt.block_on(build_report(&source, &batch, None, &opts, &mut rows))
        .expect("builds");
    let schema = rows.schema.take().expect("schema");
    let mut group = c.benchmark_group(format!("summary_{n}"));
    group.sample_size(20);
    group.bench_function("count_typed_rows", |b| {
        b.iter(|| {
            let mut s = SummaryBuilder::new(&schema);
            for r in &rows.rows {
                s.observe(r);
            }
            black_box(s.finish())
        })
    });
    group.finish();
}

/// User and system CPU seconds of this process so far, every thread's
/// (`/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line, the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).copied().unwrap_or(0.0) + fields.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Keeps the typed rows (for the counting alone).
#[derive(Default)]
struct Collect {
    schema: Option<ReportSchema>,
    rows: Vec<Vec<Value>>,
}

impl RowSink for Collect {
    type Error = std::convert::Infallible;
    fn begin(&mut self, _: &[String], _: usize) -> Result<(), Self::Error> {
        Ok(())
    }
    fn row(&mut self, _: &[String]) -> Result<(), Self::Error> {
        Ok(())
    }
    fn begin_typed(&mut self, schema: &ReportSchema, _: usize) -> Result<(), Self::Error> {
        self.schema = Some(schema.clone());
        Ok(())
    }
    fn wants_typed_rows(&self) -> bool {
        true
    }
    fn typed_row(&mut self, values: &[Value]) -> Result<(), Self::Error> {
        self.rows.push(values.to_vec());
        Ok(())
    }
}

criterion_group!(benches, summary);
criterion_main!(benches);
