//! Benchmarks of the hot paths that do not depend on a source: building rows
//! from loaded inputs, and writing them as CSV.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use exhaust_core::memory::MemorySource;
use exhaust_core::model::*;
use exhaust_core::report::{ReportOptions, RowSink, build_report};
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use exhaust_writer::CsvSink;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The in-memory source never waits, so polling once completes it.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

const UNITS: usize = 10;
const LEAVES: usize = 8;
const ASSESSMENTS: usize = 6;

/// Every 13th leaf, up to six, is a self-assessment: spread over the units.
fn is_assessment(i: usize) -> bool {
    i < ASSESSMENTS * 13 && i.is_multiple_of(13)
}

fn leaf(u: usize, l: usize) -> String {
    format!("do_11{u:02}{l:02}000000000000")
}

/// A course of 10 units × 8 leaves, 6 of them assessments; `n` learners with
/// partial progress, 3 attempts per assessment, and a unit aggregate each.
fn source(n: usize) -> MemorySource {
    let mut src = MemorySource::default();
    let units: Vec<serde_json::Value> = (0..UNITS)
        .map(|u| {
            let kids: Vec<serde_json::Value> = (0..LEAVES)
                .map(|l| {
                    let ct = if is_assessment(u * LEAVES + l) { "SelfAssess" } else { "Resource" };
                    serde_json::json!({"identifier": leaf(u, l), "mimeType": "application/pdf", "contentType": ct})
                })
                .collect();
            serde_json::json!({"identifier": format!("do_unit{u}"), "index": u + 1,
                "mimeType": "application/vnd.ekstep.content-collection", "children": kids})
        })
        .collect();
    let course = ContentId::new("do_course");
    src.hierarchies.insert(
        course.clone(),
        serde_json::json!({"identifier": "do_course", "children": units}).to_string(),
    );
    src.collections.push(CollectionMeta {
        identifier: course.clone(),
        name: "Benchmark course".into(),
        channel: OrgId::new("org"),
        status: "Live".into(),
        user_consent: "Yes".into(),
    });
    let batch = BatchId::new("0130000000000000001");
    src.batches.insert(
        batch.clone(),
        CourseBatch {
            batch_id: batch.clone(),
            course_id: course.clone(),
            name: "Batch".into(),
            status: Some(1),
            start_date: None,
            end_date: None,
            cert_template_ids: vec!["t".into()],
        },
    );
    let assessments: Vec<String> = (0..UNITS * LEAVES)
        .filter(|i| is_assessment(*i))
        .map(|i| leaf(i / LEAVES, i % LEAVES))
        .collect();
    let enrolled: chrono::DateTime<chrono::Utc> = "2021-01-01T00:00:00Z".parse().expect("time");
    for i in 0..n {
        let user = UserId::new(format!(
            "{:08x}-user",
            (i as u64).wrapping_mul(2654435761) % (1 << 32)
        ));
        let done = (i * 7) % (UNITS * LEAVES);
        src.enrolments.push(EnrolmentRecord {
            user_id: user.clone(),
            course_id: course.clone(),
            batch_id: batch.clone(),
            active: Some(true),
            enrolled_date: Some(enrolled),
            content_status: (0..done)
                .map(|k| (leaf(k / LEAVES, k % LEAVES), 2))
                .collect(),
            ..EnrolmentRecord::default()
        });
        let mut p = UserProfile::default();
        for f in [
            "firstname",
            "lastname",
            "state",
            "district",
            "orgname",
            "block",
            "cluster",
        ] {
            p.set(f, format!("{f} {}", i % 97));
        }
        p.set("board", "[\"CBSE\"]".into());
        src.users.insert(user.clone(), UserEntry::Profile(p));
        for a in &assessments {
            for t in 0..3 {
                src.add_attempt(AssessmentAttempt {
                    user_id: user.clone(),
                    course_id: course.clone(),
                    batch_id: batch.clone(),
                    content_id: ContentId::new(a),
                    attempt_id: format!("{a}-{t}"),
                    total_score: Some(((i + t) % 11) as f64),
                    total_max_score: Some(10.0),
                    grand_total: Some(format!("{}/10", (i + t) % 11)),
                    last_attempted_on: Some(enrolled + chrono::Duration::days(t as i64)),
                });
            }
        }
        src.add_activity(ActivityAggregate {
            activity_id: ContentId::new("do_unit0"),
            user_id: user,
            context_id: format!("cb:{batch}"),
            aggregates_completed: Some(3.0),
            agg_completed: None,
        });
    }
    src
}

/// Counts rows without storing them: measures the core alone.
#[derive(Default)]
struct Discard(usize);

impl RowSink for Discard {
    type Error = std::convert::Infallible;
    fn begin(&mut self, _: &[String], _: usize) -> Result<(), Self::Error> {
        Ok(())
    }
    fn row(&mut self, fields: &[String]) -> Result<(), Self::Error> {
        self.0 += black_box(fields).len();
        Ok(())
    }
}

fn build_rows(c: &mut Criterion) {
    let mut group = c.benchmark_group("build_rows");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        let src = source(n);
        let batch = BatchId::new("0130000000000000001");
        for layout in [
            exhaust_core::layout::Layout::Seed,
            exhaust_core::layout::Layout::Lern,
        ] {
            let opts = ReportOptions {
                layout,
                ..ReportOptions::default()
            };
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(layout.to_string(), n), &n, |b, _| {
                b.iter(|| {
                    let mut sink = Discard::default();
                    block_on(build_report(&src, &batch, None, &opts, &mut sink)).expect("builds");
                    sink.0
                })
            });
        }
    }
    group.finish();
}

fn write_csv(c: &mut Criterion) {
    let header: Vec<String> = (0..30).map(|i| format!("Column {i}")).collect();
    let row: Vec<String> = (0..30)
        .map(|i| {
            if i % 5 == 0 {
                format!("value, with comma {i}")
            } else {
                format!("value {i}")
            }
        })
        .collect();
    let mut group = c.benchmark_group("write_csv");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10k_rows_30_columns", |b| {
        b.iter(|| {
            let mut sink = CsvSink::new(Vec::with_capacity(4 << 20));
            sink.begin(&header, 10_000).expect("header");
            for _ in 0..10_000 {
                sink.row(&row).expect("row");
            }
            sink.finish().expect("finish").1.bytes
        })
    });
    group.finish();
}

criterion_group!(benches, build_rows, write_csv);
criterion_main!(benches);
