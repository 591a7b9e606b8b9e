//! Properties of whole reports over generated inputs (proptest).

mod common;

use common::*;
use exhaust_core::layout::Layout;
use exhaust_core::memory::MemorySource;
use exhaust_core::model::*;
use exhaust_core::report::ReportOptions;
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use proptest::prelude::*;

/// A generated course: units of leaves; every third leaf is a self-assessment.
#[derive(Debug, Clone)]
struct Course {
    units: Vec<usize>,
    optional: Vec<bool>,
}

impl Course {
    fn leaf_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (u, n) in self.units.iter().enumerate() {
            for l in 0..*n {
                out.push(format!("do_u{u}_l{l}"));
            }
        }
        out
    }

    fn json(&self) -> String {
        let units: Vec<serde_json::Value> = self
            .units
            .iter()
            .enumerate()
            .map(|(u, n)| {
                let leaves: Vec<serde_json::Value> = (0..*n)
                    .map(|l| {
                        let ct = if l % 3 == 2 { "SelfAssess" } else { "Resource" };
                        serde_json::json!({"identifier": format!("do_u{u}_l{l}"), "mimeType": "application/pdf", "contentType": ct})
                    })
                    .collect();
                serde_json::json!({"identifier": format!("do_u{u}"), "index": u + 1,
                    "mimeType": "application/vnd.ekstep.content-collection", "children": leaves})
            })
            .collect();
        serde_json::json!({"identifier": "do_C", "children": units}).to_string()
    }
}

#[derive(Debug, Clone)]
struct Learner {
    done: Vec<u8>,
    completed: bool,
    certified: bool,
    scores: Vec<Vec<(u8, u8)>>,
    org: bool,
    cached: bool,
}

fn course() -> impl Strategy<Value = Course> {
    prop::collection::vec(1usize..5, 1..4).prop_flat_map(|units| {
        let total: usize = units.iter().sum();
        prop::collection::vec(prop::bool::weighted(0.2), total).prop_map(move |optional| Course {
            units: units.clone(),
            optional,
        })
    })
}

fn learner(leaves: usize) -> impl Strategy<Value = Learner> {
    (
        prop::collection::vec(0u8..3, leaves),
        prop::bool::weighted(0.2),
        any::<bool>(),
        prop::collection::vec(prop::collection::vec((0u8..=10, 1u8..=10), 0..3), leaves),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(done, completed, certified, scores, org, cached)| Learner {
                done,
                completed,
                certified,
                scores,
                org,
                cached,
            },
        )
}

fn inputs() -> impl Strategy<Value = (Course, Vec<Learner>)> {
    course().prop_flat_map(|c| {
        let n = c.leaf_ids().len();
        (Just(c), prop::collection::vec(learner(n), 0..25))
    })
}

fn source(course: &Course, learners: &[Learner], reverse: bool) -> MemorySource {
    let mut src = MemorySource {
        chunk: Some(7),
        ..MemorySource::default()
    };
    src.hierarchies
        .insert(ContentId::new("do_C"), course.json());
    src.collections.push(CollectionMeta {
        identifier: ContentId::new("do_C"),
        name: "C".into(),
        channel: OrgId::new("org1"),
        status: "Live".into(),
        user_consent: "No".into(),
    });
    src.batches.insert(
        BatchId::new("b1"),
        CourseBatch {
            batch_id: BatchId::new("b1"),
            course_id: ContentId::new("do_C"),
            name: "B".into(),
            status: Some(1),
            start_date: None,
            end_date: None,
            cert_template_ids: vec!["t".into()],
        },
    );
    let ids = course.leaf_ids();
    src.optional.insert(
        ContentId::new("do_C"),
        ids.iter()
            .zip(&course.optional)
            .filter(|(_, o)| **o)
            .map(|(id, _)| id.clone())
            .collect(),
    );
    let mut order: Vec<usize> = (0..learners.len()).collect();
    if reverse {
        order.reverse();
    }
    for &i in &order {
        let l = &learners[i];
        // Ids whose byte order differs from generation order.
        let user = format!("user-{:02x}", (i * 37) % 251);
        src.enrolments.push(EnrolmentRecord {
            user_id: UserId::new(&user),
            course_id: ContentId::new("do_C"),
            batch_id: BatchId::new("b1"),
            active: Some(true),
            enrolled_date: Some(ts("2021-03-04T05:06:07Z")),
            completed_on: l.completed.then(|| ts("2021-05-06T07:08:09Z")),
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
            p.set("firstname", format!("First {i}"));
            p.set(
                "rootorgid",
                if l.org { "org1".into() } else { "org2".into() },
            );
            src.users.insert(UserId::new(&user), UserEntry::Profile(p));
        }
        let mut attempts: Vec<(usize, usize, u8, u8)> = Vec::new();
        for (leaf, tries) in l.scores.iter().enumerate() {
            for (k, (s, m)) in tries.iter().enumerate() {
                attempts.push((leaf, k, (*s).min(*m), *m));
            }
        }
        if reverse {
            attempts.reverse();
        }
        for (leaf, k, s, m) in attempts {
            src.add_attempt(AssessmentAttempt {
                user_id: UserId::new(&user),
                course_id: ContentId::new("do_C"),
                batch_id: BatchId::new("b1"),
                content_id: ContentId::new(&ids[leaf]),
                attempt_id: format!("a{k}"),
                total_score: Some(f64::from(s) / 2.0),
                total_max_score: Some(f64::from(m)),
                grand_total: None,
                last_attempted_on: Some(
                    ts("2021-04-01T00:00:00Z") + chrono::Duration::days(k as i64),
                ),
            });
        }
    }
    src
}

fn percent(text: &str) -> Option<f64> {
    text.trim_end_matches('%').parse().ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn report_invariants((course, learners) in inputs(), lern in any::<bool>(), other_org in any::<bool>()) {
        let opts = ReportOptions {
            layout: if lern { Layout::Lern } else { Layout::Seed },
            chunk_size: 4,
            ..ReportOptions::default()
        };
        let org = other_org.then_some("org2");
        let src = source(&course, &learners, false);
        let (sink, summary) = run(&src, "b1", org, &opts).expect("builds");
        let header = &sink.header;
        let col = |name: &str| header.iter().position(|h| h == name).expect("column");
        let (user_col, progress_col) = (col("User UUID"), col("Progress"));

        // Every row has as many fields as the header.
        for row in &sink.rows {
            prop_assert_eq!(row.len(), header.len());
        }
        // Rows are sorted and unique per user.
        let users: Vec<&str> = sink.rows.iter().map(|r| r[user_col].as_str()).collect();
        prop_assert!(users.windows(2).all(|w| w[0] < w[1]), "{:?}", users);
        prop_assert_eq!(summary.rows, sink.rows.len());
        if !other_org {
            prop_assert_eq!(sink.rows.len(), learners.len());
        }
        for row in &sink.rows {
            // Progress is 0–100, and 100 once completed.
            let p: u32 = row[progress_col].parse().expect("progress is a number");
            prop_assert!(p <= 100);
            if !row[col("Completion Date")].is_empty() {
                prop_assert_eq!(p, 100);
            }
            // Scores are never negative; percentages never above 100.
            for (h, v) in header.iter().zip(row) {
                if (h.ends_with(" - Score") || h == "Total Score") && !v.is_empty() {
                    let x = percent(v).expect("a score is a number");
                    prop_assert!(x >= 0.0, "{} = {}", h, v);
                    if lern {
                        prop_assert!(x <= 100.0, "{} = {}", h, v);
                    }
                }
                if h.ends_with(" - Progress") && !v.is_empty() {
                    let x: u32 = v.parse().expect("unit progress is a number");
                    prop_assert!(x <= 100);
                }
            }
        }
        // The same input gives the same output, whatever order rows arrive in.
        let again = run(&src, "b1", org, &opts).expect("builds").0;
        prop_assert_eq!(&again, &sink);
        let reversed = run(&source(&course, &learners, true), "b1", org, &opts).expect("builds").0;
        prop_assert_eq!(&reversed, &sink);
    }
}
