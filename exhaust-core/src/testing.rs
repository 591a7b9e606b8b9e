//! Test support (cargo feature `testing`): the hand-checked fixture of the
//! core's tests (a small course with nested units, assessments and
//! learners whose report was worked out by hand) in a [`MemorySource`], a
//! runner over it, and a `block_on` that needs no runtime. The core's own
//! tests and the writer's use it.
#![allow(missing_docs, clippy::too_many_arguments, clippy::vec_init_then_push)]

use crate::memory::MemorySource;
use crate::model::*;
use crate::report::{BatchSummary, BuildError, ReportOptions, VecSink, build_report};
use crate::{BatchId, ContentId, OrgId, UserId};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Drives a future that never waits (the in-memory source's are always ready).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("future did not complete: the in-memory source should never wait");
}

pub fn ts(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().expect("test timestamp")
}

pub fn run(
    src: &MemorySource,
    batch: &str,
    org: Option<&str>,
    opts: &ReportOptions,
) -> Result<(VecSink, BatchSummary), BuildError> {
    let mut sink = VecSink::default();
    let org = org.map(OrgId::new);
    let summary = block_on(build_report(
        src,
        &BatchId::new(batch),
        org.as_ref(),
        opts,
        &mut sink,
    ))?;
    Ok((sink, summary))
}

/// Rows as text lines (fixtures have no commas to quote).
pub fn render(sink: &VecSink) -> String {
    let mut out = sink.header.join(",");
    out.push('\n');
    for r in &sink.rows {
        out.push_str(&r.join(","));
        out.push('\n');
    }
    out
}

pub const HIERARCHY: &str = r#"{"identifier":"do_C","name":"Data Basics","mimeType":"application/vnd.ekstep.content-collection",
 "contentType":"Course","objectType":"Collection","children":[
  {"identifier":"do_U2","name":"Nested course","index":2,"mimeType":"application/vnd.ekstep.content-collection",
   "contentType":"Course","visibility":"Default","children":[
     {"identifier":"do_r3","mimeType":"video/mp4","objectType":"Content"},
     {"identifier":"do_sa1","mimeType":"application/vnd.ekstep.ecml-archive","contentType":"SelfAssess","objectType":"Content"},
     {"identifier":"do_r4","mimeType":"application/pdf","objectType":"Content"}]},
  {"identifier":"do_U1","name":"Unit 1","index":1,"mimeType":"application/vnd.ekstep.content-collection",
   "contentType":"CourseUnit","visibility":"Parent","children":[
     {"identifier":"do_r1","mimeType":"application/pdf","objectType":"Content"},
     {"identifier":"do_r2","mimeType":"video/mp4","objectType":"Content"},
     {"identifier":"do_q1","mimeType":"application/vnd.sunbird.questionset","objectType":"QuestionSet",
      "primaryCategory":"Practice Question Set","children":[
        {"identifier":"do_qq1","objectType":"Question"},{"identifier":"do_qq2","objectType":"Question"}]}]}]}"#;

fn enrol(user: &str, batch: &str) -> EnrolmentRecord {
    EnrolmentRecord {
        user_id: UserId::new(user),
        course_id: ContentId::new("do_C"),
        batch_id: BatchId::new(batch),
        active: Some(true),
        ..EnrolmentRecord::default()
    }
}

fn statuses(pairs: &[(&str, i32)]) -> ContentStatus {
    pairs.iter().map(|&(id, s)| (id, s)).collect()
}

pub fn attempt(
    user: &str,
    batch: &str,
    content: &str,
    id: &str,
    score: f64,
    max: f64,
    gt: Option<&str>,
    at: &str,
) -> AssessmentAttempt {
    AssessmentAttempt {
        user_id: UserId::new(user),
        course_id: ContentId::new("do_C"),
        batch_id: BatchId::new(batch),
        content_id: ContentId::new(content),
        attempt_id: id.into(),
        total_score: Some(score),
        total_max_score: Some(max),
        grand_total: gt.map(Into::into),
        last_attempted_on: Some(ts(at)),
    }
}

fn agg(user: &str, unit: &str, aggregates: Option<f64>, old: Option<i64>) -> ActivityAggregate {
    ActivityAggregate {
        activity_id: ContentId::new(unit),
        user_id: UserId::new(user),
        context_id: "cb:b1".into(),
        aggregates_completed: aggregates,
        agg_completed: old,
    }
}

fn profile(fields: &[(&str, &str)]) -> UserEntry {
    let mut p = UserProfile::default();
    for (k, v) in fields {
        p.set(k, v.to_string());
    }
    UserEntry::Profile(p)
}

/// The hand-checked fixture: a course with a unit (3 leaves, one a question
/// set) and a nested course (3 leaves, one optional, one self-assessment).
pub fn fixture() -> MemorySource {
    let mut src = MemorySource::default();
    src.hierarchies
        .insert(ContentId::new("do_C"), HIERARCHY.into());
    src.collections.push(CollectionMeta {
        identifier: ContentId::new("do_C"),
        name: "Data Basics".into(),
        channel: OrgId::new("org1"),
        status: "Live".into(),
        user_consent: "Yes".into(),
    });
    src.optional
        .insert(ContentId::new("do_C"), ["do_r4".to_string()].into());
    for (id, templates) in [("b1", vec!["tmpl1".to_string()]), ("b2", vec![])] {
        src.batches.insert(
            BatchId::new(id),
            CourseBatch {
                batch_id: BatchId::new(id),
                course_id: ContentId::new("do_C"),
                name: if id == "b1" {
                    "Morning".into()
                } else {
                    "Evening".into()
                },
                status: Some(1),
                start_date: None,
                end_date: None,
                cert_template_ids: templates,
            },
        );
    }
    let mut e = Vec::new();
    // Partial progress; an optional leaf and a foreign id do not count.
    e.push(EnrolmentRecord {
        enrolled_date: Some(ts("2020-08-25T13:45:54.150Z")),
        content_status: statuses(&[
            ("do_r1", 2),
            ("do_r2", 2),
            ("do_q1", 1),
            ("do_r4", 2),
            ("do_other", 2),
        ]),
        ..enrol("u3", "b1")
    });
    // Completed with a certificate.
    e.push(EnrolmentRecord {
        enrolled_date: Some(ts("2020-08-01T08:00:00Z")),
        completed_on: Some(ts("2020-09-01T10:00:00Z")),
        status: Some(2),
        content_status: statuses(&[
            ("do_r1", 2),
            ("do_r2", 2),
            ("do_q1", 2),
            ("do_r3", 2),
            ("do_sa1", 2),
        ]),
        issued_certificates: 1,
        ..enrol("u1", "b1")
    });
    // Status 2 but no certificate, only the older text date, not in the cache.
    e.push(EnrolmentRecord {
        enrolleddate: Some("2020-08-20 09:00:00:000+0000".into()),
        status: Some(2),
        content_status: statuses(&[("do_r1", 2)]),
        ..enrol("u2", "b1")
    });
    e.push(EnrolmentRecord {
        active: Some(false),
        enrolled_date: Some(ts("2020-08-01T08:00:00Z")),
        ..enrol("u4", "b1")
    });
    e.push(enrol("u5", "b1")); // no enrolment date
    e.push(EnrolmentRecord {
        enrolled_date: Some(ts("2020-08-26T00:00:00Z")),
        content_status: statuses(&[("do_r1", 2), ("do_r2", 2), ("do_q1", 2)]),
        ..enrol("u6", "b1")
    });
    e.push(EnrolmentRecord {
        enrolled_date: Some(ts("2020-08-26T00:00:00Z")),
        ..enrol("u0", "b2")
    });
    src.enrolments = e;

    src.users.insert(
        UserId::new("u1"),
        profile(&[
            ("firstname", "Asha"),
            ("lastname", "Rao"),
            ("state", "Kerala"),
            ("district", "Thrissur"),
            ("orgname", "Org One"),
            ("schooludisecode", "123"),
            ("schoolname", "GHS"),
            ("block", "B1"),
            ("cluster", "C1"),
            ("board", "State (Kerala)"),
            ("usertype", "student"),
            ("usersubtype", ""),
            ("rootorgid", "org1"),
        ]),
    );
    src.users.insert(
        UserId::new("u3"),
        profile(&[
            ("firstname", "Ravi"),
            ("state", "Karnataka"),
            ("district", "Mysuru"),
            ("board", r#"["CBSE","ICSE"]"#),
            ("rootorgid", "org1"),
        ]),
    );
    src.users.insert(
        UserId::new("u6"),
        profile(&[
            ("firstname", "Meena"),
            ("lastname", "Iyer"),
            ("state", "Tamil Nadu"),
            ("district", "Chennai"),
            ("board", r#"["CBSE"]"#),
            ("rootorgid", "org2"),
        ]),
    );

    src.add_attempt(attempt(
        "u3",
        "b1",
        "do_q1",
        "a1",
        3.0,
        5.0,
        Some("3/5"),
        "2021-01-01T00:00:00Z",
    ));
    src.add_attempt(attempt(
        "u3",
        "b1",
        "do_q1",
        "a2",
        4.0,
        5.0,
        Some("4/5"),
        "2021-01-02T00:00:00Z",
    ));
    src.add_attempt(attempt(
        "u3",
        "b1",
        "do_sa1",
        "a3",
        7.5,
        10.0,
        Some("7.5/10"),
        "2021-01-03T00:00:00Z",
    ));
    // Another batch's attempt never counts.
    src.add_attempt(attempt(
        "u3",
        "b2",
        "do_sa1",
        "a4",
        10.0,
        10.0,
        Some("10/10"),
        "2021-01-04T00:00:00Z",
    ));
    src.add_attempt(attempt(
        "u1",
        "b1",
        "do_q1",
        "a5",
        5.0,
        5.0,
        Some("5/5"),
        "2021-01-05T00:00:00Z",
    ));

    src.add_activity(agg("u3", "do_U1", Some(2.0), None));
    src.add_activity(agg("u1", "do_U1", None, Some(3)));
    src.add_activity(agg("u1", "do_U2", Some(2.0), None));
    src
}
