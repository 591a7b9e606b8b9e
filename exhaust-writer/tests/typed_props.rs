//! For arbitrary inputs every format holds the same table: the typed rows
//! render to the CSV's cells; Arrow record batches, and the Parquet and
//! Arrow IPC files read back in Rust, render to the same cells (proptest).
#![cfg(all(feature = "arrow", feature = "parquet"))]

#[path = "../../exhaust-core/tests/common/mod.rs"]
mod common;
mod typed_support;

use common::{block_on, ts};
use exhaust_core::layout::Layout;
use exhaust_core::memory::MemorySource;
use exhaust_core::model::*;
use exhaust_core::report::build_rows;
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use exhaust_writer::arrow::{FileKind, RecordBatchSink, TypedFileSink};
use proptest::prelude::*;
use typed_support::*;

#[derive(Debug, Clone)]
struct Learner {
    done: Vec<u8>,
    enrolled: Enrolled,
    completed_day: Option<u16>,
    certified: bool,
    scores: Vec<Vec<(u16, u16)>>,
    name: (String, String),
    cached: bool,
}

#[derive(Debug, Clone)]
enum Enrolled {
    /// Seconds and milliseconds after 2021-01-01.
    At(u32, u16),
    /// Sunbird's text timestamp.
    SunbirdText(u32),
    /// Text no parser knows: kept as stored in the CSV.
    Garbage(String),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z ]{0,8}",
        Just("अनन्या".to_owned()),
        Just("தமிழ்".to_owned()),
        Just("Doe, \"Jo\"\r\nX".to_owned()),
        any::<String>(),
    ]
}

fn enrolled() -> impl Strategy<Value = Enrolled> {
    prop_oneof![
        8 => (0u32..100_000_000, 0u16..1000).prop_map(|(s, ms)| Enrolled::At(s, ms)),
        2 => (0u32..100_000_000).prop_map(Enrolled::SunbirdText),
        1 => "[a-z]{1,6}".prop_map(Enrolled::Garbage),
    ]
}

fn learner(leaves: usize) -> impl Strategy<Value = Learner> {
    (
        prop::collection::vec(0u8..3, leaves),
        enrolled(),
        prop::option::weighted(0.3, 0u16..2000),
        any::<bool>(),
        prop::collection::vec(
            prop::collection::vec((0u16..=1000, 0u16..=1000), 0..3),
            leaves,
        ),
        (text(), text()),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(done, enrolled, completed_day, certified, scores, name, cached)| Learner {
                done,
                enrolled,
                completed_day,
                certified,
                scores,
                name,
                cached,
            },
        )
}

fn hierarchy(units: &[usize]) -> (String, Vec<String>) {
    let mut ids = Vec::new();
    let children: Vec<serde_json::Value> = units
        .iter()
        .enumerate()
        .map(|(u, n)| {
            let leaves: Vec<serde_json::Value> = (0..*n)
                .map(|l| {
                    let id = format!("do_u{u}_l{l}");
                    ids.push(id.clone());
                    let ct = if l % 2 == 1 { "SelfAssess" } else { "Resource" };
                    serde_json::json!({"identifier": id, "name": format!("Leaf {u}.{l} — नाम"),
                        "mimeType": "application/pdf", "contentType": ct})
                })
                .collect();
            serde_json::json!({"identifier": format!("do_u{u}"), "name": format!("Unit {u}"),
                "index": u + 1, "mimeType": "application/vnd.ekstep.content-collection",
                "children": leaves})
        })
        .collect();
    let json = serde_json::json!({"identifier": "do_C", "children": children}).to_string();
    (json, ids)
}

fn source(units: &[usize], learners: &[Learner]) -> MemorySource {
    let mut src = MemorySource {
        chunk: Some(5),
        ..MemorySource::default()
    };
    let (json, ids) = hierarchy(units);
    src.hierarchies.insert(ContentId::new("do_C"), json);
    src.collections.push(CollectionMeta {
        identifier: ContentId::new("do_C"),
        name: "Cours, \"é\"".into(),
        channel: OrgId::new("org1"),
        status: "Live".into(),
        user_consent: "No".into(),
    });
    src.batches.insert(
        BatchId::new("0130934495109529600"),
        CourseBatch {
            batch_id: BatchId::new("0130934495109529600"),
            course_id: ContentId::new("do_C"),
            name: "B".into(),
            status: Some(1),
            start_date: None,
            end_date: None,
            cert_template_ids: vec!["t".into()],
        },
    );
    let base = ts("2021-01-01T00:00:00Z");
    for (i, l) in learners.iter().enumerate() {
        let user = format!("user-{:03}", (i * 37) % 251);
        let (enrolled_date, enrolleddate) = match &l.enrolled {
            Enrolled::At(s, ms) => (
                Some(
                    base + chrono::Duration::seconds(i64::from(*s))
                        + chrono::Duration::milliseconds(i64::from(*ms)),
                ),
                None,
            ),
            Enrolled::SunbirdText(s) => {
                let t = base + chrono::Duration::seconds(i64::from(*s));
                (
                    None,
                    Some(t.format("%Y-%m-%d %H:%M:%S:%3f+0000").to_string()),
                )
            }
            Enrolled::Garbage(g) => (None, Some(g.clone())),
        };
        src.enrolments.push(EnrolmentRecord {
            user_id: UserId::new(&user),
            course_id: ContentId::new("do_C"),
            batch_id: BatchId::new("0130934495109529600"),
            active: Some(true),
            enrolled_date,
            enrolleddate,
            completed_on: l
                .completed_day
                .map(|d| base + chrono::Duration::hours(i64::from(d) * 7)),
            content_status: ids
                .iter()
                .cloned()
                .zip(l.done.iter().map(|d| i32::from(*d)))
                .collect(),
            issued_certificates: usize::from(l.certified),
            ..EnrolmentRecord::default()
        });
        if l.cached {
            let mut p = UserProfile::default();
            p.set("firstname", l.name.0.clone());
            p.set("lastname", l.name.1.clone());
            p.set("state", l.name.1.clone());
            src.users.insert(UserId::new(&user), UserEntry::Profile(p));
        }
        for (leaf, tries) in l.scores.iter().enumerate() {
            for (k, (s, m)) in tries.iter().enumerate() {
                src.add_attempt(AssessmentAttempt {
                    user_id: UserId::new(&user),
                    course_id: ContentId::new("do_C"),
                    batch_id: BatchId::new("0130934495109529600"),
                    content_id: ContentId::new(&ids[leaf]),
                    attempt_id: format!("a{k}"),
                    // Fractions that print with several decimals.
                    total_score: Some(f64::from(*s) / 7.0),
                    total_max_score: Some(f64::from(*m) / 3.0),
                    grand_total: (k % 2 == 1).then(|| format!("{s}/{m}")),
                    last_attempted_on: Some(base + chrono::Duration::days(k as i64)),
                });
            }
        }
    }
    src
}

fn inputs() -> impl Strategy<Value = (Vec<usize>, Vec<Learner>)> {
    prop::collection::vec(1usize..4, 1..4).prop_flat_map(|units| {
        let n: usize = units.iter().sum();
        (Just(units), prop::collection::vec(learner(n), 0..20))
    })
}

fn layout_and_zone() -> impl Strategy<Value = (Layout, &'static str)> {
    (
        prop_oneof![Just(Layout::Seed), Just(Layout::Lern)],
        prop_oneof![
            Just("UTC"),
            Just("+05:30"),
            Just("-03:00"),
            Just("Asia/Kolkata"),
            Just("America/New_York")
        ],
    )
}

fn read_parquet(bytes: Vec<u8>) -> Vec<arrow_array::RecordBatch> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .expect("a Parquet file")
    .build()
    .expect("a reader");
    reader.map(|b| b.expect("a batch")).collect()
}

fn read_ipc(bytes: Vec<u8>) -> Vec<arrow_array::RecordBatch> {
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .expect("an Arrow IPC file");
    reader.map(|b| b.expect("a batch")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_format_holds_the_csv_table(
        (units, learners) in inputs(),
        (layout, tz) in layout_and_zone(),
        batch_rows in 1usize..9,
    ) {
        let src = source(&units, &learners);
        let opts = opts(layout, tz);
        let built_at = ts("2024-01-15T10:00:00Z");
        let report = block_on(report(&src, "0130934495109529600", None, &opts));
        report.assert_csv_is_the_typed_rows();
        let expected = report.expected_arrow_text();

        let mut batches = Vec::new();
        let mut sink = RecordBatchSink::new(built_at, |b| {
            batches.push(b);
            Ok(())
        })
        .with_batch_rows(batch_rows);
        block_on(build_rows(&src, &report.plan, &opts, &mut sink)).expect("builds");
        let rows = sink.finish().expect("finishes");
        prop_assert_eq!(rows as usize, report.cells.len());
        prop_assert_eq!(&batches_text(&batches, &report.schema), &expected);

        for kind in [FileKind::Parquet, FileKind::ArrowIpc] {
            let mut sink = TypedFileSink::new(kind, Vec::new(), built_at).with_batch_rows(batch_rows);
            block_on(build_rows(&src, &report.plan, &opts, &mut sink)).expect("builds");
            let (bytes, stats) = sink.finish().expect("finishes");
            prop_assert_eq!(stats.bytes as usize, bytes.len());
            let back = match kind {
                FileKind::Parquet => read_parquet(bytes),
                FileKind::ArrowIpc => read_ipc(bytes),
            };
            let names: Vec<String> = back
                .first()
                .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
                .unwrap_or_else(|| report.header.clone());
            prop_assert_eq!(&names, &report.header);
            prop_assert_eq!(&batches_text(&back, &report.schema), &expected);
        }
    }
}
