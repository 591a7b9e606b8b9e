//! Proptest strategies of valid, realistic Sunbird data (cargo feature
//! `proptest`), for property tests of the library and of the services that
//! embed it.
//!
//! Each strategy produces what a real deployment holds, in the shapes the
//! model types decode: hierarchies ([`course`]) with nested units, nested
//! courses, question sets with questions, optional contents, assessments by
//! content type and by category, and a root `leafNodes`/`leafNodesCount`
//! that may be missing or wrong; batches with and without certificate
//! templates ([`batch`]); enrolments ([`enrolment`]) that are inactive,
//! without dates, completed with and without certificates, and whose
//! `contentstatus` names contents outside the course; attempts
//! ([`attempts`]) with ties, `grand_total` with and without `/`, and zero
//! maximums; profiles ([`profile`]) with boards in every stored shape, names
//! in several scripts, values with commas, quotes and line breaks; unit
//! aggregates in both formats ([`aggregates`]). [`batch_source`] assembles
//! them into a consistent [`MemorySource`] for one batch, with another batch
//! of the same course beside it as noise, and [`shuffled`] delivers the same
//! rows in another order.
//!
//! Strategies are boxed: the value trees of a whole batch, nested, would
//! otherwise be large enough to overflow a test thread's stack in debug
//! builds.
//!
//! "Valid" means what the stores' keys allow: one enrolment per user and
//! batch, one aggregate per unit, user and batch, distinct attempt ids, a
//! user cache entry that is a non-empty hash; so the same data can be
//! written to a snapshot, Cassandra and Redis and read back unchanged.
//!
//! ```
//! use exhaust_core::strategies::batch_source;
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//!
//! let mut runner = TestRunner::deterministic();
//! let data = batch_source(1..5).new_tree(&mut runner).unwrap().current();
//! assert!(data.source.batches.contains_key(&data.batch_id));
//! assert!(!data.source.enrolments.is_empty());
//! ```

use crate::hierarchy::COLLECTION_MIME_TYPE;
use crate::ids::{BatchId, ContentId, OrgId, UserId};
use crate::memory::MemorySource;
use crate::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
    UserProfile,
};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::ops::Range;

/// A generated collection: its hierarchy JSON and what the JSON holds, as
/// the generator built it (so tests can compare the parser against it).
#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    /// The root's identifier.
    pub id: ContentId,
    /// Its name.
    pub name: String,
    /// The hierarchy JSON text, as stored.
    pub hierarchy: String,
    /// The distinct leaves of the tree, in tree order: contents and question
    /// sets, never questions or collections.
    pub leaves: Vec<String>,
    /// The root's `leafNodes` when the JSON has one: the leaves, or a stale
    /// list (one leaf missing, a removed content still named).
    pub leaf_nodes: Option<Vec<String>>,
    /// The root's children that are collections (units and nested courses),
    /// in course order.
    pub units: Vec<String>,
    /// The leaves of each unit (same order as `units`), at any depth.
    pub unit_leaves: Vec<Vec<String>>,
    /// Assessments in tree order: `SelfAssess` contents and practice
    /// question sets.
    pub assessments: Vec<String>,
    /// Optional contents (the relation cache's set).
    pub optional: HashSet<String>,
}

impl Course {
    /// The leaves that count toward progress: the root's (its `leafNodes`
    /// when present) minus the optional contents.
    pub fn required_leaves(&self) -> Vec<&str> {
        self.leaf_nodes
            .as_ref()
            .unwrap_or(&self.leaves)
            .iter()
            .filter(|l| !self.optional.contains(*l))
            .map(String::as_str)
            .collect()
    }
}

/// The kinds of leaf a course holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LeafKind {
    Pdf,
    Video,
    /// An assessment by content type.
    SelfAssess,
    /// An assessment by object type and category, with this many questions.
    PracticeSet(u8),
    /// A question set of another category: a leaf, not an assessment.
    ExamSet(u8),
}

/// The generated tree before ids are given.
#[derive(Debug, Clone)]
enum Shape {
    Leaf(LeafKind),
    Collection { course: bool, children: Vec<Shape> },
}

/// How children carry `index` (publishing sets it; old data varies).
#[derive(Debug, Clone, Copy, PartialEq)]
enum IndexMode {
    /// `index` 1, 2, ... in array order.
    InOrder,
    /// The array reversed; `index` still gives course order.
    Reversed,
    /// `index` as text (`"1"`), seen in old hierarchies.
    AsText,
    /// No `index`: array order.
    Missing,
}

/// What the root says about its leaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LeafNodesMode {
    Missing,
    Exact,
    Stale,
}

fn leaf_kind() -> BoxedStrategy<LeafKind> {
    prop_oneof![
        3 => Just(LeafKind::Pdf),
        2 => Just(LeafKind::Video),
        2 => Just(LeafKind::SelfAssess),
        2 => (0u8..3).prop_map(LeafKind::PracticeSet),
        1 => (0u8..3).prop_map(LeafKind::ExamSet),
    ]
    .boxed()
}

fn shape() -> BoxedStrategy<Vec<Shape>> {
    // A unit's sub-unit: leaves only, possibly none (an empty unit).
    let inner = prop::collection::vec(leaf_kind().prop_map(Shape::Leaf), 0..4).prop_map(|c| {
        Shape::Collection {
            course: false,
            children: c,
        }
    });
    let unit = (
        prop::bool::weighted(0.25),
        prop::collection::vec(
            prop_oneof![4 => leaf_kind().prop_map(Shape::Leaf), 1 => inner],
            0..5,
        ),
    )
        .prop_map(|(course, children)| Shape::Collection { course, children });
    prop::collection::vec(
        prop_oneof![4 => unit, 1 => leaf_kind().prop_map(Shape::Leaf)],
        1..5,
    )
    .boxed()
}

/// Ids, the JSON and the model of a shape.
struct Builder {
    prefix: String,
    next: usize,
    index: IndexMode,
    names: Vec<String>,
    leaves: Vec<String>,
    assessments: Vec<String>,
}

impl Builder {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("{}{:03}", self.prefix, self.next)
    }

    fn name(&self) -> String {
        self.names[self.next % self.names.len()].clone()
    }

    fn children(&mut self, shapes: &[Shape], out_leaves: &mut Vec<String>) -> Vec<Value> {
        let mut nodes: Vec<Value> = shapes
            .iter()
            .enumerate()
            .map(|(pos, s)| {
                let mut node = self.node(s, out_leaves);
                match self.index {
                    IndexMode::InOrder | IndexMode::Reversed => {
                        node["index"] = json!(pos + 1);
                    }
                    IndexMode::AsText => node["index"] = json!((pos + 1).to_string()),
                    IndexMode::Missing => {}
                }
                node
            })
            .collect();
        if self.index == IndexMode::Reversed {
            nodes.reverse();
        }
        nodes
    }

    fn node(&mut self, shape: &Shape, out_leaves: &mut Vec<String>) -> Value {
        let id = self.id();
        let name = self.name();
        match shape {
            Shape::Leaf(kind) => {
                out_leaves.push(id.clone());
                self.leaves.push(id.clone());
                match kind {
                    LeafKind::Pdf | LeafKind::Video => json!({
                        "identifier": id, "name": name, "objectType": "Content",
                        "contentType": "Resource", "primaryCategory": "Learning Resource",
                        "mimeType": if *kind == LeafKind::Pdf { "application/pdf" } else { "video/mp4" },
                        "visibility": "Default",
                    }),
                    LeafKind::SelfAssess => {
                        self.assessments.push(id.clone());
                        json!({
                            "identifier": id, "name": name, "objectType": "Content",
                            "contentType": "SelfAssess", "primaryCategory": "Course Assessment",
                            "mimeType": "application/vnd.ekstep.ecml-archive", "visibility": "Default",
                        })
                    }
                    LeafKind::PracticeSet(n) | LeafKind::ExamSet(n) => {
                        let category = if matches!(kind, LeafKind::PracticeSet(_)) {
                            self.assessments.push(id.clone());
                            "Practice Question Set"
                        } else {
                            "Exam Question Set"
                        };
                        let questions: Vec<Value> = (0..*n)
                            .map(|q| {
                                json!({"identifier": format!("{id}_q{q}"), "objectType": "Question",
                                       "mimeType": "application/vnd.sunbird.question", "index": q + 1})
                            })
                            .collect();
                        json!({
                            "identifier": id, "name": name, "objectType": "QuestionSet",
                            "primaryCategory": category,
                            "mimeType": "application/vnd.sunbird.questionset",
                            "visibility": "Default", "children": questions,
                        })
                    }
                }
            }
            Shape::Collection { course, children } => {
                let children = self.children(children, out_leaves);
                json!({
                    "identifier": id, "name": name, "objectType": "Collection",
                    "mimeType": COLLECTION_MIME_TYPE,
                    "contentType": if *course { "Course" } else { "CourseUnit" },
                    "primaryCategory": if *course { "Course" } else { "Course Unit" },
                    "visibility": if *course { "Default" } else { "Parent" },
                    "children": children,
                })
            }
        }
    }
}

/// Names and other free text as Sunbird holds them: several scripts,
/// commas, quotes, apostrophes, spaces around, line breaks, empty.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "Asha", "Ravi Kumar", "Meena", "O'Brien", "Zoë", "José",
            "अनन्या", "राहुल शर्मा", "தமிழ்செல்வி", "శ్రీనివాస్", "সুমিত",
            "ಕನ್ನಡ", "عائشہ", "李娜", "Ünal",
        ])
        .prop_map(str::to_owned),
        1 => prop::sample::select(vec![
            "", " Asha ", "Doe, \"Jo\"", "Rao, Asha", "\"quoted\"", "line\nbreak",
            "Doe, \"Jo\"\r\nX", "=SUM(A1)", "tab\there",
        ])
        .prop_map(str::to_owned),
        1 => "[a-zA-Z ,\"']{0,10}",
    ]
    .boxed()
}

/// A collection's hierarchy and optional contents: 1–4 root children
/// (units, nested courses, a few contents directly under the root), units
/// holding contents, question sets and sub-units (some empty), `index` in
/// order, reversed, as text or missing, and `leafNodes`/`leafNodesCount`
/// missing, exact or wrong.
pub fn course() -> BoxedStrategy<Course> {
    (
        shape(),
        10_000_000_000_000u64..99_999_999_999_999,
        prop_oneof![
            3 => Just(IndexMode::InOrder),
            2 => Just(IndexMode::Reversed),
            1 => Just(IndexMode::AsText),
            1 => Just(IndexMode::Missing),
        ],
        prop_oneof![
            2 => Just(LeafNodesMode::Missing),
            2 => Just(LeafNodesMode::Exact),
            1 => Just(LeafNodesMode::Stale),
        ],
        prop::option::of(0usize..3),
        prop::collection::vec(text(), 4),
    )
        .prop_flat_map(|(shape, n, index, leaf_nodes, wrong_count, names)| {
            let mut b = Builder {
                prefix: format!("do_11{n}"),
                next: 0,
                index,
                names: names.into_iter().filter(|s| !s.is_empty()).collect(),
                leaves: Vec::new(),
                assessments: Vec::new(),
            };
            if b.names.is_empty() {
                b.names.push("Unit".into());
            }
            let id = format!("do_11{n}");
            // Root children, with each unit's leaves collected.
            let mut root_leaves = Vec::new();
            let mut units = Vec::new();
            let mut unit_leaves = Vec::new();
            let mut children: Vec<Value> = Vec::new();
            for (pos, s) in shape.iter().enumerate() {
                let mut leaves = Vec::new();
                let mut node = b.node(s, &mut leaves);
                if matches!(s, Shape::Collection { .. }) {
                    units.push(node["identifier"].as_str().unwrap_or_default().to_owned());
                    unit_leaves.push(leaves.clone());
                }
                root_leaves.extend(leaves);
                match index {
                    IndexMode::InOrder | IndexMode::Reversed => node["index"] = json!(pos + 1),
                    IndexMode::AsText => node["index"] = json!((pos + 1).to_string()),
                    IndexMode::Missing => {}
                }
                children.push(node);
            }
            if index == IndexMode::Reversed {
                children.reverse();
            }
            let leaf_nodes = match leaf_nodes {
                LeafNodesMode::Missing => None,
                LeafNodesMode::Exact => Some(root_leaves.clone()),
                LeafNodesMode::Stale => {
                    // Published before the last content was added, and
                    // naming one that was removed since.
                    let mut stale = root_leaves.clone();
                    stale.pop();
                    stale.push(format!("{id}_removed"));
                    Some(stale)
                }
            };
            let name = b.names[0].clone();
            let mut root = json!({
                "identifier": id, "name": name, "objectType": "Collection",
                "mimeType": COLLECTION_MIME_TYPE, "contentType": "Course",
                "primaryCategory": "Course", "visibility": "Default",
                "status": "Live", "children": children,
            });
            if let Some(list) = &leaf_nodes {
                root["leafNodes"] = json!(list);
            }
            // Sunbird reads leafNodesCount; we do not, and it may be absent
            // or disagree with the tree.
            if let Some(extra) = wrong_count {
                root["leafNodesCount"] = json!(root_leaves.len() + extra);
            }
            let course = Course {
                id: ContentId::new(&id),
                name,
                hierarchy: root.to_string(),
                leaves: b.leaves,
                leaf_nodes,
                units,
                unit_leaves,
                assessments: b.assessments,
                optional: HashSet::new(),
            };
            let n = course.leaves.len();
            (
                Just(course),
                prop::collection::vec(prop::bool::weighted(0.15), n),
            )
        })
        .prop_map(|(mut course, optional)| {
            course.optional = course
                .leaves
                .iter()
                .zip(optional)
                .filter(|(_, o)| *o)
                .map(|(l, _)| l.clone())
                .collect();
            course
        })
        .boxed()
}

/// A day in 2020–2022 as Sunbird's batch date text (`2021-03-04`).
fn day_text() -> BoxedStrategy<String> {
    (0i64..1000)
        .prop_map(|d| (base() + Duration::days(d)).format("%Y-%m-%d").to_string())
        .boxed()
}

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_577_836_800, 0).unwrap_or_default() // 2020-01-01
}

/// An instant in 2020–2022, at millisecond precision (Cassandra's).
pub fn instant() -> BoxedStrategy<DateTime<Utc>> {
    (0i64..94_608_000_000)
        .prop_map(|ms| base() + Duration::milliseconds(ms))
        .boxed()
}

/// A batch of `course`: a 19-digit id, a name, a status, dates as text,
/// with certificate templates or without.
pub fn batch(course: &ContentId) -> BoxedStrategy<CourseBatch> {
    let course = course.clone();
    (
        100_000_000_000_000_000u64..999_999_999_999_999_999,
        text(),
        prop::option::of(0i32..3),
        prop::option::of(day_text()),
        prop::option::of(day_text()),
        prop::collection::vec("cert_tmpl_[0-9]{4}", 0..3),
    )
        .prop_map(
            move |(n, name, status, start, end, templates)| CourseBatch {
                batch_id: BatchId::new(format!("0{n}")),
                course_id: course.clone(),
                name,
                status,
                start_date: start,
                end_date: end,
                cert_template_ids: templates,
            },
        )
        .boxed()
}

/// The collection's search metadata: Live or Unlisted (a retired one has
/// no report), owned by `channel`.
pub fn collection_meta(course: &Course, channel: &OrgId) -> BoxedStrategy<CollectionMeta> {
    let (id, name, channel) = (course.id.clone(), course.name.clone(), channel.clone());
    (
        prop_oneof![4 => Just("Live"), 1 => Just("Unlisted")],
        prop_oneof![Just("Yes"), Just("No")],
    )
        .prop_map(move |(status, consent)| CollectionMeta {
            identifier: id.clone(),
            name: name.clone(),
            channel: channel.clone(),
            status: status.into(),
            user_consent: consent.into(),
        })
        .boxed()
}

#[derive(Debug, Clone)]
enum Enrolled {
    At(DateTime<Utc>),
    /// Both columns, as rows migrated by Sunbird hold them.
    Both(DateTime<Utc>),
    /// Only the older text column, in Sunbird's format.
    Text(DateTime<Utc>),
    /// Text in no known format (shown as stored).
    Unparseable(String),
    None,
}

#[derive(Debug, Clone, Copy)]
enum Completion {
    No,
    /// `completedon` set, status 2, with this many certificates (in
    /// `issued_certificates`, or the older `certificates` when odd).
    Completed(u8, bool),
    /// Status 2 without `completedon`.
    StatusOnly(u8),
}

/// An enrolment of `user` in `batch`: active mostly (sometimes inactive or
/// null), with an enrolment date as a timestamp, as Sunbird's text or
/// both (sometimes text no parser knows, sometimes none), a completion
/// with or without certificates, and a `contentstatus` over the course's
/// leaves plus contents outside the course.
pub fn enrolment(
    course: &Course,
    batch: &CourseBatch,
    user: UserId,
) -> BoxedStrategy<EnrolmentRecord> {
    let leaves = course.leaves.clone();
    let (course_id, batch_id) = (batch.course_id.clone(), batch.batch_id.clone());
    (
        prop_oneof![17 => Just(Some(true)), 2 => Just(Some(false)), 1 => Just(None)],
        prop_oneof![
            8 => instant().prop_map(Enrolled::At),
            2 => instant().prop_map(Enrolled::Both),
            2 => instant().prop_map(Enrolled::Text),
            1 => "[a-z]{1,8}".prop_map(Enrolled::Unparseable),
            1 => Just(Enrolled::None),
        ],
        prop_oneof![
            6 => Just(Completion::No),
            3 => (0u8..3, any::<bool>()).prop_map(|(c, old)| Completion::Completed(c, old)),
            1 => (0u8..2).prop_map(Completion::StatusOnly),
        ],
        0i64..400,
        prop::collection::vec(prop::option::of(0i32..3), leaves.len()),
        prop::collection::vec(("do_outside_[0-9]{3}", 0i32..3), 0..3),
    )
        .prop_map(
            move |(active, enrolled, completion, days, statuses, foreign)| {
                let mut e = EnrolmentRecord {
                    user_id: user.clone(),
                    course_id: course_id.clone(),
                    batch_id: batch_id.clone(),
                    active,
                    ..EnrolmentRecord::default()
                };
                let sunbird_text =
                    |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S:%3f+0000").to_string();
                let start = match enrolled {
                    Enrolled::At(t) => {
                        e.enrolled_date = Some(t);
                        t
                    }
                    Enrolled::Both(t) => {
                        e.enrolled_date = Some(t);
                        e.enrolleddate = Some(sunbird_text(t - Duration::days(2)));
                        t
                    }
                    Enrolled::Text(t) => {
                        e.enrolleddate = Some(sunbird_text(t));
                        t
                    }
                    Enrolled::Unparseable(s) => {
                        e.enrolleddate = Some(s);
                        base()
                    }
                    Enrolled::None => base(),
                };
                // A map in Cassandra: one status per content.
                let mut seen = HashSet::new();
                e.content_status = leaves
                    .iter()
                    .zip(statuses)
                    .filter_map(|(id, s)| s.map(|s| (id.clone(), s)))
                    .chain(foreign)
                    .filter(|(id, _)| seen.insert(id.clone()))
                    .collect();
                e.status = Some(if e.content_status.is_empty() { 0 } else { 1 });
                match completion {
                    Completion::No => {}
                    Completion::Completed(certs, old) => {
                        e.status = Some(2);
                        e.completed_on = Some(start + Duration::hours(days * 5));
                        if old {
                            e.certificates = usize::from(certs);
                        } else {
                            e.issued_certificates = usize::from(certs);
                        }
                    }
                    Completion::StatusOnly(certs) => {
                        e.status = Some(2);
                        e.issued_certificates = usize::from(certs);
                    }
                }
                e
            },
        )
        .boxed()
}

/// A user cache entry: a hash with `firstname` always set (Redis holds no
/// empty hash), other fields present or not, boards in every stored shape,
/// the root org one of `orgs` (or missing); now and then a value of the
/// wrong shape.
pub fn profile(orgs: Vec<OrgId>) -> BoxedStrategy<UserEntry> {
    let board = prop_oneof![
        Just(r#"["CBSE"]"#),
        Just(r#"["CBSE","ICSE"]"#),
        Just(r#"["IGOT-Health"]"#),
        Just("[]"),
        Just("[null]"),
        Just("[1]"),
        Just("State (Kerala)"),
        Just("[not json"),
        Just(""),
    ];
    let opt = || prop::option::weighted(0.7, text());
    let well_formed = (
        text(),
        opt(),
        [opt(), opt(), opt(), opt(), opt(), opt(), opt()],
        prop::option::weighted(0.8, board),
        prop::option::weighted(
            0.6,
            prop::sample::select(vec!["student", "teacher", "administrator"]),
        ),
        prop::option::weighted(0.3, prop::sample::select(vec!["", "deo", "hm"])),
        prop::option::weighted(0.9, prop::sample::select(orgs)),
    )
        .prop_map(|(first, last, places, board, usertype, subtype, org)| {
            let mut p = UserProfile {
                firstname: Some(first),
                lastname: last,
                board: board.map(str::to_owned),
                usertype: usertype.map(str::to_owned),
                usersubtype: subtype.map(str::to_owned),
                rootorgid: org.map(OrgId::into_string),
                ..UserProfile::default()
            };
            let [state, district, orgname, udise, school, block, cluster] = places;
            (p.state, p.district, p.orgname) = (state, district, orgname);
            (p.schooludisecode, p.schoolname) = (udise, school);
            (p.block, p.cluster) = (block, cluster);
            UserEntry::Profile(p)
        });
    prop_oneof![
        30 => well_formed,
        1 => Just(UserEntry::Malformed("the value is not a hash".into())),
    ]
    .boxed()
}

/// The attempts of `user` in `batch` at each of the course's assessments:
/// none to three each, scores in quarters or thirds of maximums that are
/// sometimes 0, `grand_total` as `a/b`, as a bare number or missing, from a
/// few days and scores so that ties happen; plus an attempt at a content
/// outside the course.
pub fn attempts(
    course: &Course,
    batch: &CourseBatch,
    user: UserId,
) -> BoxedStrategy<Vec<AssessmentAttempt>> {
    let (course_id, batch_id) = (batch.course_id.clone(), batch.batch_id.clone());
    let mut contents = course.assessments.clone();
    contents.push(format!("{}_outside", course.id));
    let one = (
        prop_oneof![1 => Just(0u32), 6 => prop::sample::select(vec![1u32, 5, 10, 20])],
        0u32..=80,
        prop_oneof![Just(4.0), Just(3.0)],
        prop_oneof![3 => Just(Some(true)), 1 => Just(Some(false)), 1 => Just(None)],
        prop::option::weighted(0.95, 0i64..4),
        any::<u32>(),
        prop::bool::weighted(0.05),
    );
    let per_content = prop::collection::vec(prop::collection::vec(one, 0..3), contents.len());
    per_content
        .prop_map(move |per| {
            let mut out = Vec::new();
            for (content, tries) in contents.iter().zip(per) {
                for (k, (max, units, step, slash, day, id, no_score)) in
                    tries.into_iter().enumerate()
                {
                    let max_f = f64::from(max);
                    let score = (f64::from(units) / step).min(max_f);
                    let text_num = |x: f64| crate::values::round_number(x).to_string();
                    let grand_total = slash.map(|slash| {
                        if slash {
                            format!("{}/{}", text_num(score), max)
                        } else {
                            text_num(score)
                        }
                    });
                    out.push(AssessmentAttempt {
                        user_id: user.clone(),
                        course_id: course_id.clone(),
                        batch_id: batch_id.clone(),
                        content_id: ContentId::new(content),
                        // Distinct per user and content, as the key requires.
                        attempt_id: format!("{id:08x}-{k}"),
                        total_score: (!no_score).then_some(score),
                        total_max_score: Some(max_f),
                        grand_total,
                        last_attempted_on: day.map(|d| base() + Duration::days(d)),
                    });
                }
            }
            out
        })
        .boxed()
}

/// The `user_activity_agg` rows of `user` in `batch`: for some units, the
/// completed count in `aggregates` (newer rows), in `agg` (older rows) or
/// both.
pub fn aggregates(
    course: &Course,
    batch: &CourseBatch,
    user: UserId,
) -> BoxedStrategy<Vec<ActivityAggregate>> {
    let units = course.units.clone();
    let context = format!("cb:{}", batch.batch_id);
    let count = || 0u8..6;
    let one = prop_oneof![
        2 => Just(None),
        2 => count().prop_map(|c| Some((Some(f64::from(c)), None))),
        1 => count().prop_map(|c| Some((None, Some(i64::from(c))))),
        1 => (count(), count()).prop_map(|(a, b)| Some((Some(f64::from(a)), Some(i64::from(b))))),
    ];
    prop::collection::vec(one, units.len())
        .prop_map(move |per| {
            units
                .iter()
                .zip(per)
                .filter_map(|(unit, counts)| {
                    let (new, old) = counts?;
                    Some(ActivityAggregate {
                        activity_id: ContentId::new(unit),
                        user_id: user.clone(),
                        context_id: context.clone(),
                        aggregates_completed: new,
                        agg_completed: old,
                    })
                })
                .collect()
        })
        .boxed()
}

/// One learner's rows in every table.
#[derive(Debug, Clone)]
pub struct LearnerRows {
    /// The user.
    pub user_id: UserId,
    /// The enrolment in the batch.
    pub enrolment: EnrolmentRecord,
    /// An enrolment in the other batch of the course, if any.
    pub other_enrolment: Option<EnrolmentRecord>,
    /// The cache entry; `None`: missing from the cache.
    pub profile: Option<UserEntry>,
    /// Attempts in the batch, and in the other batch.
    pub attempts: Vec<AssessmentAttempt>,
    /// Aggregates in the batch, and in the other batch.
    pub aggregates: Vec<ActivityAggregate>,
}

/// Every row of one learner: enrolled in `batch` (and perhaps in `other`,
/// with attempts and aggregates there too), cached or not.
pub fn learner(
    course: &Course,
    batch: &CourseBatch,
    other: &CourseBatch,
    user: UserId,
    orgs: Vec<OrgId>,
) -> BoxedStrategy<LearnerRows> {
    (
        enrolment(course, batch, user.clone()),
        prop::option::weighted(0.2, enrolment(course, other, user.clone())),
        prop::option::weighted(0.9, profile(orgs)),
        attempts(course, batch, user.clone()),
        prop::option::weighted(0.2, attempts(course, other, user.clone())),
        aggregates(course, batch, user.clone()),
        prop::option::weighted(0.2, aggregates(course, other, user.clone())),
    )
        .prop_map(
            move |(enrolment, other_enrolment, profile, mut att, other_att, mut agg, other_agg)| {
                att.extend(other_att.into_iter().flatten());
                agg.extend(other_agg.into_iter().flatten());
                LearnerRows {
                    user_id: user.clone(),
                    enrolment,
                    other_enrolment,
                    profile,
                    attempts: att,
                    aggregates: agg,
                }
            },
        )
        .boxed()
}

/// A batch's data, consistent across every table, in a [`MemorySource`].
#[derive(Debug, Clone)]
pub struct BatchData {
    /// Every row.
    pub source: MemorySource,
    /// The batch to report.
    pub batch_id: BatchId,
    /// Another batch of the same course (its rows must never show).
    pub other_batch_id: BatchId,
    /// The course as generated.
    pub course: Course,
    /// The collection's channel (a request from it sees every learner).
    pub channel: OrgId,
    /// Another org some learners belong to (a request from it sees only those).
    pub other_org: OrgId,
    /// The learners, in generation order.
    pub learners: Vec<LearnerRows>,
}

/// Sunbird-like user ids (UUIDs), distinct, whose byte order is not the
/// order they were generated in.
pub fn user_ids(count: Range<usize>) -> BoxedStrategy<Vec<UserId>> {
    prop::collection::vec((any::<u32>(), any::<u16>()), count)
        .prop_map(|seeds| {
            seeds
                .into_iter()
                .enumerate()
                .map(|(i, (a, b))| {
                    UserId::new(format!("{a:08x}-{b:04x}-4{i:03x}-8000-{:012x}", i * 7919))
                })
                .collect()
        })
        .boxed()
}

/// A course, a batch of it and `learners` learners (as a range), with
/// every row they have in every table, assembled into a [`MemorySource`]:
/// the course's hierarchy, metadata and optional nodes, the batch and
/// another batch of the same course, enrolments, profiles, attempts and
/// aggregates. Chunks of 1–8 enrolments, so chunk boundaries are crossed.
pub fn batch_source(learners: Range<usize>) -> BoxedStrategy<BatchData> {
    (course(), 100_000_000_000u64..999_999_999_999)
        .prop_flat_map(move |(course, org)| {
            let channel = OrgId::new(format!("01{org}"));
            let other_org = OrgId::new(format!("02{org}"));
            (
                batch(&course.id),
                batch(&course.id),
                collection_meta(&course, &channel),
                user_ids(learners.clone()),
                Just((course, channel, other_org)),
            )
                .prop_flat_map(
                    |(b, mut other, meta, users, (course, channel, other_org))| {
                        if other.batch_id == b.batch_id {
                            other.batch_id = BatchId::new(format!("{}1", b.batch_id));
                        }
                        let orgs = vec![channel.clone(), other_org.clone()];
                        let rows: Vec<_> = users
                            .into_iter()
                            .map(|u| learner(&course, &b, &other, u, orgs.clone()))
                            .collect();
                        (
                            rows,
                            1usize..9,
                            Just((course, b, other, meta, channel, other_org)),
                        )
                    },
                )
                .prop_map(
                    |(learners, chunk, (course, b, other, meta, channel, other_org))| {
                        let mut src = MemorySource {
                            chunk: Some(chunk),
                            ..MemorySource::default()
                        };
                        src.hierarchies
                            .insert(course.id.clone(), course.hierarchy.clone());
                        src.collections.push(meta);
                        if !course.optional.is_empty() {
                            src.optional
                                .insert(course.id.clone(), course.optional.clone());
                        }
                        for l in &learners {
                            src.enrolments.push(l.enrolment.clone());
                            src.enrolments.extend(l.other_enrolment.clone());
                            if let Some(p) = &l.profile {
                                src.users.insert(l.user_id.clone(), p.clone());
                            }
                            for a in &l.attempts {
                                src.add_attempt(a.clone());
                            }
                            for a in &l.aggregates {
                                src.add_activity(a.clone());
                            }
                        }
                        let (batch_id, other_batch_id) =
                            (b.batch_id.clone(), other.batch_id.clone());
                        src.batches.insert(b.batch_id.clone(), b);
                        src.batches.insert(other.batch_id.clone(), other);
                        BatchData {
                            source: src,
                            batch_id,
                            other_batch_id,
                            course,
                            channel,
                            other_org,
                            learners,
                        }
                    },
                )
        })
        .boxed()
}

/// The same rows as `source`, delivered in another order: enrolments,
/// attempts and aggregates shuffled, and another chunk size. A report must
/// not change (ARCHITECTURE invariant 4).
pub fn shuffled(source: &MemorySource) -> BoxedStrategy<MemorySource> {
    let key = |u: &UserId, s: &str| (u.as_str().to_owned(), s.to_owned());
    let mut attempts: Vec<AssessmentAttempt> =
        source.attempts.values().flatten().cloned().collect();
    // A fixed starting order, so a failing case replays from its seed.
    attempts.sort_by_key(|a| key(&a.user_id, &format!("{}{}", a.content_id, a.attempt_id)));
    let mut activity: Vec<ActivityAggregate> =
        source.activity.values().flatten().cloned().collect();
    activity.sort_by_key(|a| key(&a.user_id, &format!("{}{}", a.activity_id, a.context_id)));
    let mut base = source.clone();
    base.attempts.clear();
    base.activity.clear();
    (
        Just(source.enrolments.clone()).prop_shuffle(),
        Just(attempts).prop_shuffle(),
        Just(activity).prop_shuffle(),
        1usize..20,
    )
        .prop_map(move |(enrolments, attempts, activity, chunk)| {
            let mut out = base.clone();
            out.enrolments = enrolments;
            out.chunk = Some(chunk);
            for a in attempts {
                out.add_attempt(a);
            }
            for a in activity {
                out.add_activity(a);
            }
            out
        })
        .boxed()
}
