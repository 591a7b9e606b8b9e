//! A deterministic generator of realistic snapshot folders (see
//! `shared/SNAPSHOT.md`), for benchmarks and for the bundled sample.
//!
//! Everything is drawn from ChaCha8 streams seeded by [`GenParams::seed`], and
//! every number is drawn with our own integer helpers rather than `rand`'s
//! distributions, so the same parameters give byte-identical files on every
//! platform and with every future version of the `rand` family. Each concern
//! (structure, users, batches, enrolments) has its own stream, so changing the
//! number of users does not change the course ids, and so on.
//!
//! The data is shaped to exercise every rule of the report: nested courses and
//! course units (some hierarchies in the older `objectType: Content` form,
//! some without `leafNodes`), leaves at depth 3, SelfAssess contents and
//! question sets, optional contents, retired collections, users missing from
//! the cache, inactive enrolments, both enrolment date columns, stale
//! `contentstatus` ids, `completedCount` in `aggregates` or only in the older
//! `agg`, `grand_total` with and without `/`, and completed learners with and
//! without certificates, in batches with and without certificate templates.
//!
//! Rows are streamed through buffered writers: memory is O(users) for the pool
//! of user ids, plus the (small) course structures, whatever the number of
//! enrolments.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use exhaust_sources::generate::{generate, GenParams};
//! let summary = generate(std::path::Path::new("sample"), &GenParams::default())?;
//! println!("{} batches", summary.batch_ids.len());
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// What to generate. Every field is a count except `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenParams {
    /// Number of course batches. Two batches share one course, so there are
    /// `ceil(batches / 2)` courses.
    pub batches: usize,
    /// Enrolments written for every batch (about 3% of them are users missing
    /// from the user cache).
    pub enrolments_per_batch: usize,
    /// Users in the user cache (the pool enrolments are drawn from).
    pub users: usize,
    /// Children of each course root: course units, the last one a nested
    /// course when there are at least two.
    pub units: usize,
    /// Learning resources in each unit.
    pub leaves_per_unit: usize,
    /// Assessments per course, spread over its units, alternating SelfAssess
    /// contents and question sets.
    pub assessments: usize,
    /// Most attempts one learner makes at one assessment (each learner makes
    /// 1 to `attempts`).
    pub attempts: usize,
    /// Seed of every random choice: the same parameters give the same bytes.
    pub seed: u64,
}

impl Default for GenParams {
    /// A small realistic sample: 3 batches of 40 enrolments over 120 users,
    /// 4 units of 3 leaves, 3 assessments, up to 2 attempts, seed 42.
    fn default() -> Self {
        GenParams {
            batches: 3,
            enrolments_per_batch: 40,
            users: 120,
            units: 4,
            leaves_per_unit: 3,
            assessments: 3,
            attempts: 2,
            seed: 42,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSummary {
    /// Every batch id, in the order written to `course_batch.jsonl`.
    pub batch_ids: Vec<String>,
    /// Every course id, in the order written to `content.jsonl`.
    pub course_ids: Vec<String>,
    /// The courses whose search status is `Retired`.
    pub retired_course_ids: Vec<String>,
    /// The org ids that own courses (course `channel`s); the first owns most.
    pub channel_ids: Vec<String>,
    /// The custodian org id written to `system_settings.jsonl`.
    pub custodian_org_id: String,
    /// Each file written, with its number of lines, in the order written.
    pub rows_per_file: Vec<(String, u64)>,
    /// Enrolments whose user is not in the user cache.
    pub enrolled_not_cached: u64,
    /// Enrolments with `active: false`.
    pub inactive_enrolments: u64,
    /// Enrolments with `completedon` set.
    pub completed_enrolments: u64,
    /// Completed enrolments with a non-empty `issued_certificates` or
    /// `certificates` list.
    pub certified_enrolments: u64,
}

/// Writes a snapshot folder for `params` into `dir` (created if missing;
/// files of the same names are replaced) and says what it wrote.
///
/// Fails with [`io::ErrorKind::InvalidInput`] for parameters that cannot be
/// met (more enrolments per batch than users, leaves or assessments without
/// units, assessments without attempts, no batch), before touching `dir`, and
/// with the underlying error when a file cannot be written.
pub fn generate(dir: &Path, params: &GenParams) -> io::Result<GenSummary> {
    validate(params)?;
    std::fs::create_dir_all(dir)?;
    Generator::new(dir, params).run()
}

fn validate(p: &GenParams) -> io::Result<()> {
    let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if p.batches == 0 {
        return invalid("batches must be at least 1".into());
    }
    if p.enrolments_per_batch > p.users {
        return invalid(format!(
            "enrolments_per_batch ({}) cannot exceed users ({}): a batch enrols distinct users",
            p.enrolments_per_batch, p.users
        ));
    }
    if p.users > u32::MAX as usize {
        return invalid(format!("users ({}) must be at most {}", p.users, u32::MAX));
    }
    if p.units == 0 && (p.leaves_per_unit > 0 || p.assessments > 0) {
        return invalid(format!(
            "units is 0 but leaves_per_unit is {} and assessments is {}: leaves need a unit to live in",
            p.leaves_per_unit, p.assessments
        ));
    }
    if p.assessments > 0 && p.attempts == 0 {
        return invalid("attempts must be at least 1 when there are assessments".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Randomness. Own helpers on top of the raw ChaCha8 output, so the meaning of
// a seed never depends on a `rand` version.

/// One independent stream per concern: the same seed, different ChaCha
/// stream numbers.
fn stream(seed: u64, id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(id);
    rng
}

const STREAM_STRUCTURE: u64 = 1;
const STREAM_USERS: u64 = 2;
const STREAM_BATCHES: u64 = 3;
const STREAM_ENROLMENTS: u64 = 4;

/// A uniform integer in `0..n` (Lemire's multiply-and-reject), `n > 0`.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// A uniform index into a non-empty collection of `len` items.
fn index(rng: &mut ChaCha8Rng, len: usize) -> usize {
    below(rng, len as u64) as usize
}

/// True with probability `percent` / 100.
fn chance(rng: &mut ChaCha8Rng, percent: u64) -> bool {
    below(rng, 100) < percent
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[index(rng, items.len())]
}

fn push_digits(rng: &mut ChaCha8Rng, out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(char::from(b'0' + below(rng, 10) as u8));
    }
}

/// A random version-4 UUID in its text form. Random rather than sequential
/// so that sorting by id (as the report does) differs from generation order.
fn uuid(rng: &mut ChaCha8Rng) -> String {
    let hi = rng.next_u64();
    let lo = rng.next_u64();
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// Draws exactly `need` successes out of `left` trials, spread uniformly
/// (selection sampling). Used where a share such as "3% not cached" must
/// really show up even in small samples.
struct Quota {
    need: u64,
    left: u64,
}

impl Quota {
    /// `percent` of `total`, rounded, and at least one once `total` reaches
    /// `min_total_for_one`.
    fn new(total: usize, percent: u64, min_total_for_one: usize) -> Quota {
        let total = total as u64;
        let mut need = (total * percent + 50) / 100;
        if need == 0 && percent > 0 && total >= min_total_for_one as u64 {
            need = 1;
        }
        Quota { need, left: total }
    }

    fn take(&mut self, rng: &mut ChaCha8Rng) -> bool {
        if self.left == 0 {
            return false;
        }
        let hit = self.need > 0 && below(rng, self.left) < self.need;
        self.left -= 1;
        if hit {
            self.need -= 1;
        }
        hit
    }
}

// ---------------------------------------------------------------------------
// Time, without a date crate: milliseconds since the Unix epoch, formatted in
// the forms Sunbird stores.

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

struct Parts {
    y: i64,
    mo: i64,
    d: i64,
    h: i64,
    mi: i64,
    s: i64,
    ms: i64,
}

fn parts(t: i64) -> Parts {
    let (y, mo, d) = civil_from_days(t.div_euclid(DAY_MS));
    let r = t.rem_euclid(DAY_MS);
    Parts {
        y,
        mo,
        d,
        h: r / 3_600_000,
        mi: r / 60_000 % 60,
        s: r / 1000 % 60,
        ms: r % 1000,
    }
}

/// A CQL timestamp as dsbulk writes it: `2019-11-16T05:41:50.382Z`.
fn iso(t: i64) -> String {
    let p = parts(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.y, p.mo, p.d, p.h, p.mi, p.s, p.ms
    )
}

/// The older text form Sunbird kept in text columns:
/// `2019-11-13 05:41:50:382+0000`.
fn sunbird_text(t: i64) -> String {
    let p = parts(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}:{:03}+0000",
        p.y, p.mo, p.d, p.h, p.mi, p.s, p.ms
    )
}

/// A date-only text, as in `course_batch.startdate`: `2020-01-20`.
fn date_text(t: i64) -> String {
    let p = parts(t);
    format!("{:04}-{:02}-{:02}", p.y, p.mo, p.d)
}

/// A score as people write it: `7`, `7.5`.
fn num_text(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

// ---------------------------------------------------------------------------
// Serialization helpers.

/// A column that can be left out, be `null`, or hold a value: the three
/// shapes real exports have.
enum Cell<T> {
    Absent,
    Null,
    Value(T),
}

impl<T> Cell<T> {
    fn is_absent(&self) -> bool {
        matches!(self, Cell::Absent)
    }
}

impl<T: Serialize> Serialize for Cell<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Absent | Cell::Null => s.serialize_none(),
            Cell::Value(v) => v.serialize(s),
        }
    }
}

/// A one-entry map, without allocating a map per row.
struct Entry<'a, V>(&'a str, V);

impl<V: Serialize> Serialize for Entry<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, &self.1)?;
        m.end()
    }
}

/// One JSON Lines file, streamed.
struct Jsonl {
    name: &'static str,
    out: BufWriter<File>,
    rows: u64,
}

impl Jsonl {
    fn create(dir: &Path, name: &'static str) -> io::Result<Jsonl> {
        let file = File::create(dir.join(name))?;
        Ok(Jsonl {
            name,
            out: BufWriter::with_capacity(1 << 20, file),
            rows: 0,
        })
    }

    fn row<T: Serialize>(&mut self, row: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, row)?;
        self.out.write_all(b"\n")?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self, summary: &mut GenSummary) -> io::Result<()> {
        self.out.flush()?;
        summary
            .rows_per_file
            .push((self.name.to_string(), self.rows));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Built-in vocabularies. Names and places are common Indian ones; nothing
// looks like real personal data (email and phone are always empty).

const TOPICS: &[&str] = &[
    "Data Basics",
    "Foundational Numeracy",
    "Classroom Management",
    "Digital Literacy",
    "Health, Hygiene and Nutrition",
    "Inclusive Education",
    "Science Through Play",
    "Early Childhood Care",
    "School Safety",
    "Art Integrated Learning",
    "Teaching English",
    "Reading Skills",
    "Assessment for Learning",
    "Environmental Studies",
    "Life Skills",
    "Toy Based Pedagogy",
];

const FIRST_NAMES: &[&str] = &[
    "Aarav", "Aditi", "Akash", "Ananya", "Anil", "Arjun", "Asha", "Deepa", "Divya", "Ganesh",
    "Gita", "Harish", "Isha", "Kavya", "Kiran", "Lakshmi", "Mahesh", "Manju", "Meera", "Mohan",
    "Neha", "Nikhil", "Pooja", "Prakash", "Priya", "Rahul", "Rajesh", "Ramesh", "Revathi", "Rohan",
    "Sanjay", "Shalini", "Sneha", "Sowmya", "Sunil", "Suresh", "Swati", "Uma", "Vijay", "Vikram",
];

const LAST_NAMES: &[&str] = &[
    "Agarwal", "Bhat", "Das", "Desai", "Gupta", "Iyer", "Jain", "Joshi", "Kapoor", "Kulkarni",
    "Kumar", "Menon", "Mishra", "Nair", "Naidu", "Patel", "Pillai", "Rao", "Reddy", "Sharma",
    "Singh", "Verma", "Yadav",
];

const PLACES: &[(&str, &[&str])] = &[
    (
        "Karnataka",
        &["Bengaluru Urban", "Mysuru", "Belagavi", "Kalaburagi"],
    ),
    (
        "Kerala",
        &["Thiruvananthapuram", "Ernakulam", "Thrissur", "Kozhikode"],
    ),
    ("Tamil Nadu", &["Chennai", "Coimbatore", "Madurai", "Salem"]),
    ("Maharashtra", &["Pune", "Nagpur", "Nashik", "Aurangabad"]),
    ("Uttar Pradesh", &["Lucknow", "Varanasi", "Agra", "Jhansi"]),
    ("Rajasthan", &["Jaipur", "Jodhpur", "Udaipur", "Ajmer"]),
    (
        "Andhra Pradesh",
        &["Guntur", "Krishna", "Visakhapatnam", "Chittoor"],
    ),
    ("Gujarat", &["Ahmedabad", "Surat", "Vadodara", "Rajkot"]),
    (
        "Madhya Pradesh",
        &["Bhopal", "Indore", "Gwalior", "Jabalpur"],
    ),
    ("Assam", &["Kamrup", "Dibrugarh", "Jorhat", "Nagaon"]),
];

const BLOCK_SUFFIXES: &[&str] = &["North", "South", "East", "West", "Central", "Rural"];

const BOARDS: &[&str] = &[
    "CBSE",
    "ICSE",
    "State (Karnataka)",
    "State (Kerala)",
    "IGOT-Health",
];

// ---------------------------------------------------------------------------
// Course structures: small, built first and kept in memory.

const COLLECTION_MIME: &str = "application/vnd.ekstep.content-collection";

/// A hierarchy node, with fields in the order the hierarchy store has them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    identifier: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    depth: usize,
    mime_type: &'static str,
    visibility: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'static str>,
    primary_category: &'static str,
    object_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_score: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relational_metadata: Option<RelationalMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leaf_nodes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leaf_nodes_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<Vec<Node>>,
}

#[derive(Serialize)]
struct RelationalMetadata {
    optional: bool,
}

impl Node {
    fn new(identifier: String, name: String, depth: usize) -> Node {
        Node {
            identifier,
            name,
            parent: None,
            index: None,
            depth,
            mime_type: COLLECTION_MIME,
            visibility: "Default",
            content_type: None,
            primary_category: "",
            object_type: "Content",
            channel: None,
            status: "Live",
            max_score: None,
            relational_metadata: None,
            leaf_nodes: None,
            leaf_nodes_count: None,
            children: None,
        }
    }

    /// Appends `child`, giving it its 1-based `index` and its parent.
    fn adopt(&mut self, mut child: Node) {
        let children = self.children.get_or_insert_with(Vec::new);
        child.index = Some(children.len() + 1);
        child.parent = Some(self.identifier.clone());
        children.push(child);
    }
}

/// A leaf of a course: what enrolment generation needs to know about it.
struct Leaf {
    id: String,
    optional: bool,
    /// The assessment's maximum score, for assessments.
    max_score: Option<u32>,
}

/// A collection below the root (unit, nested course, sub-unit) and the
/// indices (into `Course::leaves`) of the leaves under it.
struct Collection {
    id: String,
    leaves: Vec<usize>,
}

struct Course {
    id: String,
    name: String,
    channel: String,
    retired: bool,
    /// Leaves in tree order.
    leaves: Vec<Leaf>,
    /// Leaf indices sorted by id: Cassandra returns map keys sorted.
    by_id: Vec<usize>,
    collections: Vec<Collection>,
    /// Leaf indices of the assessments, in tree order.
    assessments: Vec<usize>,
    /// A content id that was once in the course and was removed: some
    /// learners still have it in `contentstatus`, which must not count.
    removed_id: String,
}

/// Hands out unique Sunbird-like content ids (`do_11` + digits, 19 to 22
/// digits in all).
struct IdMint {
    seen: BTreeSet<String>,
}

impl IdMint {
    fn content(&mut self, rng: &mut ChaCha8Rng) -> String {
        loop {
            let mut id = String::with_capacity(25);
            id.push_str("do_11");
            let n = 17 + index(rng, 4);
            push_digits(rng, &mut id, n);
            if self.seen.insert(id.clone()) {
                return id;
            }
        }
    }

    /// An org or batch id: `01` + 17 digits.
    fn numeric(&mut self, rng: &mut ChaCha8Rng) -> String {
        loop {
            let mut id = String::with_capacity(19);
            id.push_str("01");
            push_digits(rng, &mut id, 17);
            if self.seen.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// Builds course `c` of `n_courses`: its hierarchy node and its model.
fn build_course(
    rng: &mut ChaCha8Rng,
    mint: &mut IdMint,
    p: &GenParams,
    c: usize,
    n_courses: usize,
    channels: &[String],
) -> (Node, Course) {
    let id = mint.content(rng);
    let topic = TOPICS[c % TOPICS.len()];
    let name = format!("Course {}: {}", c + 1, topic);
    // Most courses belong to the main tenant, about one in five to the other.
    let channel = if c % 5 == 4 {
        channels[1].clone()
    } else {
        channels[0].clone()
    };
    // The last course is retired once there are four, so a benchmark-sized
    // run always has one; otherwise about one in ten, never the first.
    let retired = (n_courses >= 4 && c == n_courses - 1) || (c != 0 && chance(rng, 8));
    // Older hierarchies typed collections as Content: the report must go by
    // mimeType. The third course, and some others, are in that form.
    let legacy_types = c == 2 || (c > 2 && chance(rng, 15));
    // The second course has no leafNodes on its root (the report must then
    // compute the leaves); some others too.
    let with_leaf_nodes = !(c == 1 || (c > 1 && chance(rng, 10)));
    // The first course of two or more has no optional content; most others
    // have one.
    let with_optional = !(n_courses >= 2 && c == 0) && (c == 1 || chance(rng, 85));

    let collection_type = if legacy_types {
        "Content"
    } else {
        "Collection"
    };
    let mut root = Node::new(id.clone(), name.clone(), 0);
    root.content_type = Some("Course");
    root.primary_category = "Course";
    root.object_type = "Collection";
    root.channel = Some(channel.clone());

    let mut leaves: Vec<Leaf> = Vec::new();
    let mut collections: Vec<Collection> = Vec::new();
    let mut assessments: Vec<usize> = Vec::new();
    // Resource leaves (not assessments), a candidate for the optional one.
    let mut resources: Vec<usize> = Vec::new();

    for u in 0..p.units {
        let nested = p.units >= 2 && u == p.units - 1;
        let unit_id = mint.content(rng);
        let mut unit = if nested {
            let mut n = Node::new(unit_id.clone(), format!("{topic}: Advanced Module"), 1);
            n.content_type = Some("Course");
            n.primary_category = "Course";
            n
        } else {
            let mut n = Node::new(unit_id.clone(), format!("Unit {}: {}", u + 1, topic), 1);
            n.visibility = "Parent";
            n.content_type = Some("CourseUnit");
            n.primary_category = "Course Unit";
            n
        };
        unit.object_type = collection_type;
        unit.children = Some(Vec::new());
        let unit_slot = collections.len();
        collections.push(Collection {
            id: unit_id.clone(),
            leaves: Vec::new(),
        });

        // Occasionally the last leaves of a unit sit one level deeper, in a
        // sub-unit (always in the first unit of the first course).
        let deeper = if p.leaves_per_unit >= 2 && ((c == 0 && u == 0) || chance(rng, 25)) {
            1 + index(rng, p.leaves_per_unit.min(3) - 1)
        } else {
            0
        };
        let mut sub = None;
        for l in 0..p.leaves_per_unit {
            let in_sub = l >= p.leaves_per_unit - deeper;
            if in_sub && sub.is_none() {
                let sub_id = mint.content(rng);
                let mut s = Node::new(sub_id.clone(), format!("Unit {}.1: Practice", u + 1), 2);
                s.visibility = "Parent";
                s.content_type = Some("CourseUnit");
                s.primary_category = "Course Unit";
                s.object_type = collection_type;
                s.children = Some(Vec::new());
                collections.push(Collection {
                    id: sub_id,
                    leaves: Vec::new(),
                });
                sub = Some((s, collections.len() - 1));
            }
            let leaf_id = mint.content(rng);
            let (mime, category, kind) = *pick(
                rng,
                &[
                    ("application/pdf", "Learning Resource", "Reading"),
                    ("video/mp4", "Explanation Content", "Video"),
                    (
                        "application/vnd.ekstep.ecml-archive",
                        "Learning Resource",
                        "Activity",
                    ),
                ],
            );
            let depth = if in_sub { 3 } else { 2 };
            let mut node = Node::new(
                leaf_id.clone(),
                format!("{kind} {}.{}", u + 1, l + 1),
                depth,
            );
            node.mime_type = mime;
            node.content_type = Some("Resource");
            node.primary_category = category;
            let li = leaves.len();
            leaves.push(Leaf {
                id: leaf_id,
                optional: false,
                max_score: None,
            });
            resources.push(li);
            collections[unit_slot].leaves.push(li);
            match sub.as_mut() {
                Some((s, slot)) if in_sub => {
                    collections[*slot].leaves.push(li);
                    s.adopt(node);
                }
                _ => unit.adopt(node),
            }
        }
        if let Some((s, _)) = sub {
            unit.adopt(s);
        }

        // Assessments a = u, u + units, ... go to this unit, alternating
        // SelfAssess contents (even a) and question sets (odd a).
        let mut a = u;
        while a < p.assessments {
            let aid = mint.content(rng);
            let max = *pick(rng, &[5u32, 10, 10, 20]);
            let mut node;
            if a % 2 == 0 {
                node = Node::new(aid.clone(), format!("Self Assessment {}", a + 1), 2);
                node.mime_type = "application/vnd.ekstep.ecml-archive";
                node.content_type = Some("SelfAssess");
                node.primary_category = "Course Assessment";
            } else {
                node = Node::new(aid.clone(), format!("Practice Set {}", a + 1), 2);
                node.mime_type = "application/vnd.sunbird.questionset";
                node.primary_category = "Practice Question Set";
                node.object_type = "QuestionSet";
                // Its questions are children but not leaves of the course.
                for q in 0..2 + index(rng, 2) {
                    let mut question =
                        Node::new(mint.content(rng), format!("Question {}", q + 1), 3);
                    question.mime_type = "application/vnd.sunbird.question";
                    question.visibility = "Parent";
                    question.primary_category = "Multiple Choice Question";
                    question.object_type = "Question";
                    node.adopt(question);
                }
            }
            node.max_score = Some(max);
            let li = leaves.len();
            leaves.push(Leaf {
                id: aid,
                optional: false,
                max_score: Some(max),
            });
            assessments.push(li);
            collections[unit_slot].leaves.push(li);
            unit.adopt(node);
            a += p.units;
        }

        if nested {
            // Nested courses are published collections of their own and
            // carry their own leafNodes, which the report must not confuse
            // with the root's.
            let ids: Vec<String> = collections[unit_slot]
                .leaves
                .iter()
                .map(|&i| leaves[i].id.clone())
                .collect();
            unit.leaf_nodes_count = Some(ids.len());
            unit.leaf_nodes = Some(ids);
        }
        root.adopt(unit);
    }

    if with_optional && !resources.is_empty() {
        let li = *pick(rng, &resources);
        leaves[li].optional = true;
        mark_optional(&mut root, &leaves[li].id);
    }
    if with_leaf_nodes {
        root.leaf_nodes_count = Some(leaves.len());
        root.leaf_nodes = Some(leaves.iter().map(|l| l.id.clone()).collect());
    }
    // Children of a collection stay in a list even when empty.
    root.children.get_or_insert_with(Vec::new);

    let mut by_id: Vec<usize> = (0..leaves.len()).collect();
    by_id.sort_by(|&a, &b| leaves[a].id.cmp(&leaves[b].id));
    let removed_id = mint.content(rng);
    let course = Course {
        id,
        name,
        channel,
        retired,
        leaves,
        by_id,
        collections,
        assessments,
        removed_id,
    };
    (root, course)
}

fn mark_optional(node: &mut Node, id: &str) -> bool {
    if node.identifier == id {
        node.relational_metadata = Some(RelationalMetadata { optional: true });
        return true;
    }
    node.children
        .iter_mut()
        .flatten()
        .any(|child| mark_optional(child, id))
}

// ---------------------------------------------------------------------------
// Row shapes, one struct per file, fields in a fixed order.

#[derive(Serialize)]
struct SettingRow<'a> {
    id: &'a str,
    field: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContentRow<'a> {
    identifier: &'a str,
    name: &'a str,
    channel: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_consent: Option<&'a str>,
    object_type: &'a str,
    primary_category: &'a str,
    content_type: &'a str,
    mime_type: &'a str,
    visibility: &'a str,
    last_published_on: String,
}

#[derive(Serialize)]
struct HierarchyRow<'a> {
    identifier: &'a str,
    hierarchy: &'a str,
}

#[derive(Serialize)]
struct SetRow<'a> {
    key: String,
    value: Vec<&'a str>,
}

#[derive(Serialize)]
struct BatchRow<'a> {
    courseid: &'a str,
    batchid: &'a str,
    name: String,
    description: String,
    status: u8,
    enrollmenttype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    startdate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_date: Option<String>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    enddate: Cell<String>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    end_date: Cell<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollmentenddate: Option<String>,
    createdby: &'a str,
    createddate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_templates: Option<BTreeMap<String, BTreeMap<&'a str, String>>>,
}

#[derive(Serialize)]
struct UserRow<'a> {
    key: String,
    value: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
struct EnrolmentRow<'a> {
    userid: &'a str,
    courseid: &'a str,
    batchid: &'a str,
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrolleddate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrolled_date: Option<String>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    completedon: Cell<String>,
    status: u8,
    progress: u32,
    completionpercentage: u32,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    contentstatus: Cell<ContentStatus<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lastreadcontentid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificates: Option<Vec<OldCertificate>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_certificates: Option<Vec<IssuedCertificate<'a>>>,
}

/// `contentstatus` as Cassandra returns it: keys sorted, untouched leaves
/// left out, plus the removed content for some learners.
struct ContentStatus<'a> {
    course: &'a Course,
    status: &'a [u8],
    with_removed: bool,
}

impl Serialize for ContentStatus<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let mut removed = self.with_removed.then_some(self.course.removed_id.as_str());
        for &i in &self.course.by_id {
            let id = self.course.leaves[i].id.as_str();
            if let Some(r) = removed.filter(|r| *r < id) {
                m.serialize_entry(r, &2u8)?;
                removed = None;
            }
            if self.status[i] != 0 {
                m.serialize_entry(id, &self.status[i])?;
            }
        }
        if let Some(r) = removed {
            m.serialize_entry(r, &2u8)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IssuedCertificate<'a> {
    name: &'a str,
    id: String,
    token: String,
    last_issued_on: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OldCertificate {
    name: String,
    id: String,
    token: String,
    url: String,
    last_issued_on: String,
}

#[derive(Serialize)]
struct AttemptRow<'a> {
    course_id: &'a str,
    batch_id: &'a str,
    user_id: &'a str,
    content_id: &'a str,
    attempt_id: String,
    grand_total: String,
    total_max_score: f64,
    total_score: f64,
    last_attempted_on: String,
    updated_on: String,
}

#[derive(Serialize)]
struct ActivityRow<'a, A: Serialize, G: Serialize> {
    activity_type: &'a str,
    activity_id: &'a str,
    user_id: &'a str,
    context_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agg: Option<Entry<'a, u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aggregates: Option<A>,
    agg_last_updated: G,
}

// ---------------------------------------------------------------------------
// The run.

struct Batch {
    id: String,
    course: usize,
    certified: bool,
    template_name: String,
    start: i64,
}

/// The per-learner files, written together as each enrolment is drawn, and
/// a scratch buffer for one learner's leaf statuses.
struct LearnerFiles {
    enrolments: Jsonl,
    attempts: Jsonl,
    activity: Jsonl,
    status: Vec<u8>,
}

/// How far one learner got.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    NotStarted,
    Partial,
    Complete,
}

struct Generator<'a> {
    dir: &'a Path,
    p: &'a GenParams,
    summary: GenSummary,
    courses: Vec<Course>,
    batches: Vec<Batch>,
    /// The cached users' ids, in generation order.
    pool: Vec<String>,
    attempt_counter: u64,
}

impl<'a> Generator<'a> {
    fn new(dir: &'a Path, p: &'a GenParams) -> Generator<'a> {
        Generator {
            dir,
            p,
            summary: GenSummary {
                batch_ids: Vec::new(),
                course_ids: Vec::new(),
                retired_course_ids: Vec::new(),
                channel_ids: Vec::new(),
                custodian_org_id: String::new(),
                rows_per_file: Vec::new(),
                enrolled_not_cached: 0,
                inactive_enrolments: 0,
                completed_enrolments: 0,
                certified_enrolments: 0,
            },
            courses: Vec::new(),
            batches: Vec::new(),
            pool: Vec::new(),
            attempt_counter: 0,
        }
    }

    fn run(mut self) -> io::Result<GenSummary> {
        self.structure()?;
        self.write_batches()?;
        self.write_users()?;
        self.write_enrolments()?;
        Ok(self.summary)
    }

    /// Orgs, courses, hierarchies, optional contents, search metadata.
    fn structure(&mut self) -> io::Result<()> {
        let p = self.p;
        let mut rng = stream(p.seed, STREAM_STRUCTURE);
        let mut mint = IdMint {
            seen: BTreeSet::new(),
        };
        let custodian = mint.numeric(&mut rng);
        let channels = vec![mint.numeric(&mut rng), mint.numeric(&mut rng)];

        let mut settings = Jsonl::create(self.dir, "system_settings.jsonl")?;
        settings.row(&SettingRow {
            id: "custodianOrgId",
            field: "custodianOrgId",
            value: &custodian,
        })?;
        settings.finish(&mut self.summary)?;

        let mut content = Jsonl::create(self.dir, "content.jsonl")?;
        let mut hierarchy = Jsonl::create(self.dir, "content_hierarchy.jsonl")?;
        let mut relation = Jsonl::create(self.dir, "relation_cache.jsonl")?;
        let n_courses = p.batches.div_ceil(2);
        for c in 0..n_courses {
            let (root, course) = build_course(&mut rng, &mut mint, p, c, n_courses, &channels);
            let text = serde_json::to_string(&root)?;
            hierarchy.row(&HierarchyRow {
                identifier: &course.id,
                hierarchy: &text,
            })?;
            let published = days_from_civil(2019, 6, 1) * DAY_MS
                + below(&mut rng, 200) as i64 * DAY_MS
                + below(&mut rng, DAY_MS as u64) as i64;
            let consent = match below(&mut rng, 10) {
                0..=5 => Some("Yes"),
                6..=8 => Some("No"),
                // The search API leaves the field out when it was never set.
                _ => None,
            };
            content.row(&ContentRow {
                identifier: &course.id,
                name: &course.name,
                channel: &course.channel,
                status: if course.retired { "Retired" } else { "Live" },
                user_consent: consent,
                object_type: "Collection",
                primary_category: "Course",
                content_type: "Course",
                mime_type: COLLECTION_MIME,
                visibility: "Default",
                last_published_on: iso(published),
            })?;
            let optional: Vec<&str> = course
                .leaves
                .iter()
                .filter(|l| l.optional)
                .map(|l| l.id.as_str())
                .collect();
            // A Redis set cannot be empty: no optional content, no key.
            if !optional.is_empty() {
                relation.row(&SetRow {
                    key: format!("{0}:{0}:optionalnodes", course.id),
                    value: optional,
                })?;
            }
            self.summary.course_ids.push(course.id.clone());
            if course.retired {
                self.summary.retired_course_ids.push(course.id.clone());
            }
            self.courses.push(course);
        }
        content.finish(&mut self.summary)?;
        hierarchy.finish(&mut self.summary)?;
        relation.finish(&mut self.summary)?;
        self.summary.custodian_org_id = custodian;
        self.summary.channel_ids = channels;
        Ok(())
    }

    fn write_batches(&mut self) -> io::Result<()> {
        let p = self.p;
        let mut rng = stream(p.seed, STREAM_BATCHES);
        let mut mint = IdMint {
            seen: BTreeSet::new(),
        };
        let mut out = Jsonl::create(self.dir, "course_batch.jsonl")?;
        let base = days_from_civil(2020, 1, 1);
        for b in 0..p.batches {
            let course = &self.courses[b / 2];
            let id = mint.numeric(&mut rng);
            let topic = course.name.split_once(": ").map_or("", |(_, t)| t);
            let start = (base + below(&mut rng, 1100) as i64) * DAY_MS;
            let end = start + (30 + below(&mut rng, 150) as i64) * DAY_MS;
            let created = start - (1 + below(&mut rng, 30) as i64) * DAY_MS
                + below(&mut rng, DAY_MS as u64) as i64;
            // The first batch has certificate templates and the second has
            // none; the rest about half and half.
            let certified = b == 0 || (b != 1 && chance(&mut rng, 50));
            let template_name = format!("{topic} completion certificate");
            let cert_templates = if certified {
                let tid = format!("template_{:02}_{}", b + 1, below(&mut rng, 10_000));
                let mut t = BTreeMap::new();
                t.insert("identifier", tid.clone());
                t.insert("name", template_name.clone());
                t.insert("criteria", r#"{"enrollment":{"status":2}}"#.to_string());
                t.insert(
                    "issuer",
                    r#"{"name":"Sample Issuer","url":"https://example.invalid/issuer"}"#
                        .to_string(),
                );
                t.insert(
                    "signatoryList",
                    r#"[{"name":"Director","id":"Director/Director","designation":"Director","image":"https://example.invalid/sign.png"}]"#
                        .to_string(),
                );
                t.insert(
                    "previewUrl",
                    format!("https://example.invalid/certs/{tid}.svg"),
                );
                Some(BTreeMap::from([(tid, t)]))
            } else if chance(&mut rng, 50) {
                // An emptied template map, as left when templates are removed.
                Some(BTreeMap::new())
            } else {
                None
            };
            // Old batches have only the text dates, new ones only the
            // timestamps, most both.
            let form = below(&mut rng, 10);
            let (old, new) = (form != 0, form != 1 && form != 2);
            let open_ended = chance(&mut rng, 15);
            let batch_status = if end < days_from_civil(2022, 6, 1) * DAY_MS {
                2
            } else {
                1
            };
            out.row(&BatchRow {
                courseid: &course.id,
                batchid: &id,
                name: format!("{topic} - Batch {}", b % 2 + 1),
                description: format!("Batch {} of {}", b % 2 + 1, course.name),
                status: batch_status,
                enrollmenttype: "open",
                startdate: old.then(|| date_text(start)),
                start_date: new.then(|| iso(start)),
                enddate: match (open_ended, old) {
                    (_, false) => Cell::Absent,
                    (true, true) => Cell::Null,
                    (false, true) => Cell::Value(date_text(end)),
                },
                end_date: match (open_ended, new) {
                    (_, false) => Cell::Absent,
                    (true, true) => Cell::Null,
                    (false, true) => Cell::Value(iso(end)),
                },
                enrollmentenddate: (!open_ended).then(|| date_text(end - 7 * DAY_MS)),
                createdby: "5a587cc1-e018-4859-a0a8-e842650b9d64",
                createddate: sunbird_text(created),
                cert_templates,
            })?;
            self.summary.batch_ids.push(id.clone());
            self.batches.push(Batch {
                id,
                course: b / 2,
                certified,
                template_name,
                start,
            });
        }
        out.finish(&mut self.summary)
    }

    fn write_users(&mut self) -> io::Result<()> {
        let p = self.p;
        let mut rng = stream(p.seed, STREAM_USERS);
        let mut out = Jsonl::create(self.dir, "user_cache.jsonl")?;
        let main_org = self.summary.channel_ids[0].clone();
        let other_org = self.summary.channel_ids[1].clone();
        let custodian = self.summary.custodian_org_id.clone();
        self.pool.reserve_exact(p.users);
        for _ in 0..p.users {
            let id = uuid(&mut rng);
            let mut v: BTreeMap<&str, String> = BTreeMap::new();
            v.insert("userid", id.clone());
            v.insert("firstname", pick(&mut rng, FIRST_NAMES).to_string());
            // Many Sunbird profiles have no last name.
            let last = if chance(&mut rng, 12) {
                ""
            } else {
                pick(&mut rng, LAST_NAMES)
            };
            v.insert("lastname", last.to_string());
            let (state, districts) = *pick(&mut rng, PLACES);
            let district = *pick(&mut rng, districts);
            v.insert("state", state.to_string());
            v.insert("district", district.to_string());
            let (org, orgname) = match below(&mut rng, 20) {
                0..=14 => (main_org.as_str(), "Ministry of Education"),
                15..=17 => (custodian.as_str(), "Sunbird"),
                _ => (
                    other_org.as_str(),
                    "State Council of Educational Research and Training, Kerala",
                ),
            };
            v.insert("rootorgid", org.to_string());
            v.insert("orgname", orgname.to_string());
            v.insert(
                "usersignintype",
                if org == custodian {
                    "Self-Signed-In"
                } else {
                    "Validated"
                }
                .to_string(),
            );
            let (usertype, subtypes): (&str, &[&str]) = match below(&mut rng, 20) {
                0..=11 => ("teacher", &["", "", "hm"]),
                12..=13 => ("administrator", &["deo", "beo", "crp", "hm,crp"]),
                14..=18 => ("student", &[""]),
                _ => ("parent", &[""]),
            };
            v.insert("usertype", usertype.to_string());
            v.insert("usersubtype", pick(&mut rng, subtypes).to_string());
            // The cache writer removes location fields a profile no longer
            // has: about one user in ten has none below district.
            if !chance(&mut rng, 10) {
                v.insert(
                    "block",
                    format!("{district} {}", pick(&mut rng, BLOCK_SUFFIXES)),
                );
                v.insert("cluster", format!("Cluster {}", 1 + below(&mut rng, 40)));
                // Commas and quotes in school names exercise CSV quoting.
                let school = match below(&mut rng, 6) {
                    0 => format!("Govt. Higher Primary School, {district}"),
                    1 => format!("Kendriya Vidyalaya No. {}", 1 + below(&mut rng, 5)),
                    2 => format!("Zilla Parishad School {}", 1 + below(&mut rng, 90)),
                    3 => "St. Mary's High School".to_string(),
                    4 => "Govt. \"Model\" School".to_string(),
                    _ => format!("Adarsh Vidyalaya, {state}"),
                };
                v.insert("schoolname", school);
                let mut code = String::with_capacity(11);
                code.push_str("29");
                push_digits(&mut rng, &mut code, 9);
                v.insert("schooludisecode", code);
            }
            // board: JSON list text from one writer, plain text from the
            // other, sometimes empty or missing.
            let board = *pick(&mut rng, BOARDS);
            match below(&mut rng, 20) {
                0..=12 => {
                    v.insert("board", format!("[\"{board}\"]"));
                }
                13 => {
                    v.insert("board", format!("[\"{board}\",\"ICSE\"]"));
                }
                14..=17 => {
                    v.insert("board", board.to_string());
                }
                18 => {
                    v.insert("board", String::new());
                }
                _ => {}
            }
            v.insert("language", "[\"English\"]".to_string());
            v.insert("email", String::new());
            v.insert("phone", String::new());
            out.row(&UserRow {
                key: format!("user:{id}"),
                value: v,
            })?;
            self.pool.push(id);
        }
        out.finish(&mut self.summary)
    }

    fn write_enrolments(&mut self) -> io::Result<()> {
        let p = self.p;
        let mut rng = stream(p.seed, STREAM_ENROLMENTS);
        let mut out = LearnerFiles {
            enrolments: Jsonl::create(self.dir, "user_enrolments.jsonl")?,
            attempts: Jsonl::create(self.dir, "assessment_aggregator.jsonl")?,
            activity: Jsonl::create(self.dir, "user_activity_agg.jsonl")?,
            status: Vec::new(),
        };
        // A permutation of the pool, partially shuffled per batch: the first
        // k entries after k Fisher-Yates steps are a uniform k-subset, and the
        // permutation need not be reset between batches.
        let mut order: Vec<u32> = (0..p.users as u32).collect();

        for b in 0..self.batches.len() {
            let k = p.enrolments_per_batch;
            let mut not_cached = Quota::new(k, 3, 10);
            let mut inactive = Quota::new(k, 4, 10);
            let mut drawn = 0usize;
            let mut completed_here = 0u64;
            for _ in 0..k {
                let user = if not_cached.take(&mut rng) {
                    self.summary.enrolled_not_cached += 1;
                    uuid(&mut rng)
                } else {
                    let j = drawn + index(&mut rng, order.len() - drawn);
                    order.swap(drawn, j);
                    drawn += 1;
                    self.pool[order[drawn - 1] as usize].clone()
                };
                let active = !inactive.take(&mut rng);
                if !active {
                    self.summary.inactive_enrolments += 1;
                }
                self.enrolment(&mut rng, &mut out, b, &user, active, &mut completed_here)?;
            }
        }
        out.enrolments.finish(&mut self.summary)?;
        out.attempts.finish(&mut self.summary)?;
        out.activity.finish(&mut self.summary)
    }

    /// One enrolment row, with its attempts and activity aggregates.
    fn enrolment(
        &mut self,
        rng: &mut ChaCha8Rng,
        out: &mut LearnerFiles,
        b: usize,
        user: &str,
        active: bool,
        completed_here: &mut u64,
    ) -> io::Result<()> {
        let LearnerFiles {
            enrolments,
            attempts,
            activity,
            status,
        } = out;
        let batch = &self.batches[b];
        let course = &self.courses[batch.course];
        let n = course.leaves.len();
        let enrolled =
            batch.start + below(rng, 60) as i64 * DAY_MS + below(rng, DAY_MS as u64) as i64;

        let reach = if n == 0 {
            Reach::NotStarted
        } else {
            match below(rng, 100) {
                0..=24 => Reach::NotStarted,
                25..=69 => Reach::Partial,
                _ => Reach::Complete,
            }
        };
        fill_status(rng, course, reach, status);
        let done_all = status.iter().filter(|&&s| s == 2).count();
        let done_required = course
            .leaves
            .iter()
            .zip(status.iter())
            .filter(|(l, s)| !l.optional && **s == 2)
            .count();
        // Learners finish within three months of enrolling.
        let last_activity = enrolled + (1 + below(rng, 90) as i64) * DAY_MS;
        let with_removed = reach != Reach::NotStarted && chance(rng, 3);

        // Certificates: in a batch with templates most who completed have
        // one (the first always, the second never, so both cases show up in
        // small samples); elsewhere none.
        let mut certificates = None;
        let mut issued = None;
        if reach == Reach::Complete {
            *completed_here += 1;
            self.summary.completed_enrolments += 1;
            if batch.certified {
                let roll = match *completed_here {
                    1 => 0,
                    2 => 99,
                    _ => below(rng, 100),
                };
                let issued_on = iso(last_activity + below(rng, 2 * DAY_MS as u64) as i64);
                match roll {
                    0..=79 => {
                        issued = Some(vec![IssuedCertificate {
                            name: &batch.template_name,
                            id: uuid(rng),
                            token: token(rng),
                            last_issued_on: issued_on,
                        }]);
                    }
                    80..=84 => {
                        let id = uuid(rng);
                        certificates = Some(vec![OldCertificate {
                            name: batch.template_name.clone(),
                            url: format!("https://example.invalid/certs/{id}.pdf"),
                            id,
                            token: token(rng),
                            last_issued_on: issued_on,
                        }]);
                    }
                    // An empty list is no certificate.
                    85..=92 => issued = Some(Vec::new()),
                    _ => {}
                }
                if issued.as_ref().is_some_and(|v| !v.is_empty()) || certificates.is_some() {
                    self.summary.certified_enrolments += 1;
                }
            }
        }

        // Assessment attempts, for the assessments the learner reached.
        // Remember each one's best attempt for the course aggregate row.
        let mut best: Vec<(usize, f64, f64, u32)> = Vec::new();
        for &a in &course.assessments {
            if status[a] == 0 {
                continue;
            }
            let max = course.leaves[a].max_score.unwrap_or(10);
            let tries = 1 + index(rng, self.p.attempts);
            // Attempts fall between enrolment and the learner's last activity.
            let span = (last_activity - enrolled) as u64;
            let step = span / (2 * tries as u64) + 1;
            let mut t = enrolled + below(rng, span / 2 + 1) as i64;
            let mut top = (f64::MIN, 0.0);
            for _ in 0..tries {
                let score = draw_score(rng, max, status[a] == 2);
                let max_f = f64::from(max);
                self.attempt_counter += 1;
                // Almost always "a/b"; a few plain numbers, as some clients
                // sent (the second attempt of every run is one).
                let plain = self.attempt_counter == 2 || chance(rng, 3);
                let grand_total = if plain {
                    num_text(score)
                } else {
                    format!("{}/{}", num_text(score), max)
                };
                attempts.row(&AttemptRow {
                    course_id: &course.id,
                    batch_id: &batch.id,
                    user_id: user,
                    content_id: &course.leaves[a].id,
                    attempt_id: attempt_id(rng, self.attempt_counter),
                    grand_total,
                    total_max_score: max_f,
                    total_score: score,
                    last_attempted_on: iso(t),
                    updated_on: iso(t + below(rng, 10 * MINUTE_MS as u64) as i64),
                })?;
                if score >= top.0 {
                    top = (score, max_f);
                }
                // Strictly later, so "latest attempt" is never a tie.
                t += MINUTE_MS + below(rng, step) as i64;
            }
            best.push((a, top.0, top.1, tries as u32));
        }

        // Activity aggregates: a course row and one per collection touched,
        // unless the aggregator never ran for this learner (a few).
        if reach != Reach::NotStarted && !chance(rng, 4) {
            let context = format!("cb:{}", batch.id);
            let updated = iso(last_activity);
            let legacy = chance(rng, 15);
            let mut aggregates: BTreeMap<String, f64> = BTreeMap::new();
            for &(a, score, max, tries) in &best {
                let id = &course.leaves[a].id;
                aggregates.insert(format!("score:{id}"), score);
                aggregates.insert(format!("max_score:{id}"), max);
                aggregates.insert(format!("attempts_count:{id}"), f64::from(tries));
            }
            let count = skew(rng, done_required);
            if !legacy {
                aggregates.insert("completedCount".to_string(), count as f64);
            }
            activity.row(&ActivityRow {
                activity_type: "Course",
                activity_id: &course.id,
                user_id: user,
                context_id: &context,
                agg: legacy.then_some(Entry("completedCount", count as u32)),
                aggregates: (!aggregates.is_empty()).then_some(&aggregates),
                agg_last_updated: Entry("completedCount", &updated),
            })?;
            for coll in &course.collections {
                if coll.leaves.iter().all(|&i| status[i] == 0) {
                    continue;
                }
                let done = coll
                    .leaves
                    .iter()
                    .filter(|&&i| !course.leaves[i].optional && status[i] == 2)
                    .count();
                let count = skew(rng, done) as u32;
                let legacy = chance(rng, 15);
                activity.row(&ActivityRow {
                    activity_type: "Course",
                    activity_id: &coll.id,
                    user_id: user,
                    context_id: &context,
                    agg: legacy.then_some(Entry("completedCount", count)),
                    aggregates: (!legacy).then_some(Entry("completedCount", f64::from(count))),
                    agg_last_updated: Entry("completedCount", &updated),
                })?;
            }
        }

        // Enrolment dates: most rows have the timestamp only, some only the
        // older text column, some both, and a very few neither (the report
        // skips those).
        let (text, stamp) = match below(rng, 1000) {
            0..=2 => (false, false),
            3..=122 => (true, false),
            123..=202 => (true, true),
            _ => (false, true),
        };
        // What the course service stores: completed leaves (optional ones
        // too) over all leaves, rounded; 100 once completed.
        let percentage = match reach {
            Reach::Complete => 100,
            _ => (done_all * 100 + n / 2)
                .checked_div(n)
                .map_or(0, |x| x.min(100)) as u32,
        };
        let contentstatus = match reach {
            Reach::NotStarted => match below(rng, 10) {
                0..=5 => Cell::Absent,
                6..=8 => Cell::Value(ContentStatus {
                    course,
                    status,
                    with_removed: false,
                }),
                _ => Cell::Null,
            },
            _ => Cell::Value(ContentStatus {
                course,
                status,
                with_removed,
            }),
        };
        let lastread = course
            .leaves
            .iter()
            .zip(status.iter())
            .rev()
            .find(|(_, s)| **s != 0)
            .map(|(l, _)| l.id.as_str());
        let row = EnrolmentRow {
            userid: user,
            courseid: &course.id,
            batchid: &batch.id,
            active,
            enrolleddate: text.then(|| sunbird_text(enrolled)),
            enrolled_date: stamp.then(|| iso(enrolled)),
            completedon: match reach {
                Reach::Complete => Cell::Value(iso(last_activity)),
                _ if chance(rng, 30) => Cell::Null,
                _ => Cell::Absent,
            },
            status: match reach {
                Reach::NotStarted => 0,
                Reach::Partial => 1,
                Reach::Complete => 2,
            },
            progress: done_all as u32,
            completionpercentage: percentage,
            contentstatus,
            lastreadcontentid: lastread,
            certificates,
            issued_certificates: issued,
        };
        enrolments.row(&row)
    }
}

/// Fills `status` (one entry per leaf in tree order; 0 = not in
/// `contentstatus`) for a learner who got as far as `reach`.
fn fill_status(rng: &mut ChaCha8Rng, course: &Course, reach: Reach, status: &mut Vec<u8>) {
    let n = course.leaves.len();
    status.clear();
    status.resize(n, 0);
    match reach {
        Reach::NotStarted => {}
        Reach::Partial => {
            // Learners mostly go in course order, skipping a few, and leave
            // some contents half done.
            let touched = 1 + index(rng, n);
            for s in status.iter_mut().take(touched) {
                *s = match below(rng, 100) {
                    0..=7 => 0,
                    8..=22 => 1,
                    _ => 2,
                };
            }
            if status[0] == 0 {
                status[0] = 1;
            }
            // Partial means some required content is still not completed.
            let undone = course
                .leaves
                .iter()
                .zip(status.iter())
                .any(|(l, s)| !l.optional && *s != 2);
            if !undone && let Some(i) = (0..n).rev().find(|&i| !course.leaves[i].optional) {
                status[i] = 1;
            }
        }
        Reach::Complete => {
            for (s, leaf) in status.iter_mut().zip(&course.leaves) {
                *s = if !leaf.optional || chance(rng, 60) {
                    2
                } else {
                    0
                };
            }
        }
    }
}

/// The stored `completedCount`: the true count for most rows, one off for a
/// few (the aggregator lags or double counts), which the report takes as
/// stored.
fn skew(rng: &mut ChaCha8Rng, count: usize) -> usize {
    match below(rng, 100) {
        0..=1 => count.saturating_sub(1),
        2..=3 => count + 1,
        _ => count,
    }
}

/// A score out of `max`, sometimes with a half point; learners who
/// completed the assessment tend to score higher.
fn draw_score(rng: &mut ChaCha8Rng, max: u32, completed: bool) -> f64 {
    let halves = u64::from(max) * 2;
    let draw = |rng: &mut ChaCha8Rng| {
        if chance(rng, 25) {
            below(rng, halves + 1) as f64 / 2.0
        } else {
            below(rng, u64::from(max) + 1) as f64
        }
    };
    let first = draw(rng);
    if completed {
        first.max(draw(rng))
    } else {
        first
    }
}

/// A 32-hex-digit attempt id like the MD5 hashes Sunbird uses. Its low half
/// is the run's attempt counter through the SplitMix64 finaliser, a
/// bijection, so ids look random and are still unique.
fn attempt_id(rng: &mut ChaCha8Rng, counter: u64) -> String {
    let mut z = counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("{:016x}{z:016x}", rng.next_u64())
}

/// A certificate verification token: six upper-case letters and digits.
fn token(rng: &mut ChaCha8Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..6)
        .map(|_| char::from(ALPHABET[index(rng, ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashSet;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const FILES: [&str; 9] = [
        "course_batch.jsonl",
        "user_enrolments.jsonl",
        "assessment_aggregator.jsonl",
        "user_activity_agg.jsonl",
        "content_hierarchy.jsonl",
        "system_settings.jsonl",
        "user_cache.jsonl",
        "relation_cache.jsonl",
        "content.jsonl",
    ];

    fn small(seed: u64) -> GenParams {
        GenParams {
            batches: 8,
            enrolments_per_batch: 30,
            users: 100,
            units: 3,
            leaves_per_unit: 3,
            assessments: 3,
            attempts: 2,
            seed,
        }
    }

    fn rows(dir: &Path, name: &str) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let text = std::fs::read_to_string(dir.join(name))?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| format!("{name} line {}: {e}: {line}", i + 1))?;
            assert!(v.is_object(), "{name} line {} is not an object", i + 1);
            out.push(v);
        }
        Ok(out)
    }

    fn s(v: &Value, key: &str) -> String {
        v[key].as_str().unwrap_or_default().to_string()
    }

    #[test]
    fn same_params_give_identical_bytes() -> TestResult {
        let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let sa = generate(a.path(), &small(7))?;
        let sb = generate(b.path(), &small(7))?;
        assert_eq!(sa, sb);
        for f in FILES {
            let (x, y) = (
                std::fs::read(a.path().join(f))?,
                std::fs::read(b.path().join(f))?,
            );
            assert!(!x.is_empty() || f == "relation_cache.jsonl", "{f} is empty");
            assert!(x == y, "{f} differs between two runs");
        }
        Ok(())
    }

    #[test]
    fn another_seed_gives_other_data() -> TestResult {
        let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        generate(a.path(), &small(1))?;
        generate(b.path(), &small(2))?;
        for f in [
            "user_enrolments.jsonl",
            "user_cache.jsonl",
            "content_hierarchy.jsonl",
        ] {
            let (x, y) = (
                std::fs::read(a.path().join(f))?,
                std::fs::read(b.path().join(f))?,
            );
            assert!(x != y, "{f} is the same for two seeds");
        }
        Ok(())
    }

    #[test]
    fn every_file_is_json_lines_with_the_expected_counts() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = small(3);
        let summary = generate(dir.path(), &p)?;
        for f in FILES {
            let n = rows(dir.path(), f)?.len() as u64;
            let reported = summary.rows_per_file.iter().find(|(name, _)| name == f);
            assert_eq!(reported.map(|r| r.1), Some(n), "{f}");
        }
        assert_eq!(rows(dir.path(), "user_cache.jsonl")?.len(), p.users);
        assert_eq!(
            rows(dir.path(), "user_enrolments.jsonl")?.len(),
            p.batches * p.enrolments_per_batch
        );
        assert_eq!(rows(dir.path(), "course_batch.jsonl")?.len(), p.batches);
        assert_eq!(
            rows(dir.path(), "content.jsonl")?.len(),
            p.batches.div_ceil(2)
        );
        assert_eq!(summary.batch_ids.len(), p.batches);
        let settings = rows(dir.path(), "system_settings.jsonl")?;
        assert_eq!(s(&settings[0], "id"), "custodianOrgId");
        assert_eq!(s(&settings[0], "value"), summary.custodian_org_id);
        Ok(())
    }

    #[test]
    fn the_default_sample_is_consistent() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = GenParams::default();
        let summary = generate(dir.path(), &p)?;
        assert_eq!(summary.course_ids.len(), 2);
        assert_eq!(rows(dir.path(), "user_enrolments.jsonl")?.len(), 120);
        assert!(summary.enrolled_not_cached > 0 && summary.inactive_enrolments > 0);
        assert!(summary.completed_enrolments > summary.certified_enrolments);
        assert!(summary.certified_enrolments > 0);
        Ok(())
    }

    #[test]
    fn references_between_files_hold() -> TestResult {
        let dir = tempfile::tempdir()?;
        let summary = generate(dir.path(), &small(11))?;
        let batches: BTreeMap<String, String> = rows(dir.path(), "course_batch.jsonl")?
            .iter()
            .map(|b| (s(b, "batchid"), s(b, "courseid")))
            .collect();
        let hierarchies: BTreeMap<String, Value> = rows(dir.path(), "content_hierarchy.jsonl")?
            .iter()
            .map(|h| -> Result<(String, Value), serde_json::Error> {
                Ok((
                    s(h, "identifier"),
                    serde_json::from_str(h["hierarchy"].as_str().unwrap_or(""))?,
                ))
            })
            .collect::<Result<_, _>>()?;
        let contents: HashSet<String> = rows(dir.path(), "content.jsonl")?
            .iter()
            .map(|c| s(c, "identifier"))
            .collect();
        let enrolments = rows(dir.path(), "user_enrolments.jsonl")?;
        for e in &enrolments {
            let course = batches
                .get(&s(e, "batchid"))
                .ok_or("enrolment in unknown batch")?;
            assert_eq!(course, &s(e, "courseid"));
            assert!(
                hierarchies.contains_key(course),
                "no hierarchy for {course}"
            );
            assert!(contents.contains(course), "no content row for {course}");
        }
        // Attempt ids are unique and attempts belong to enrolled users.
        let enrolled: HashSet<(String, String)> = enrolments
            .iter()
            .map(|e| (s(e, "userid"), s(e, "batchid")))
            .collect();
        let mut ids = HashSet::new();
        for a in rows(dir.path(), "assessment_aggregator.jsonl")? {
            assert!(ids.insert(s(&a, "attempt_id")), "duplicate attempt id");
            assert!(enrolled.contains(&(s(&a, "user_id"), s(&a, "batch_id"))));
            let (score, max) = (a["total_score"].as_f64(), a["total_max_score"].as_f64());
            assert!(matches!((score, max), (Some(x), Some(m)) if x >= 0.0 && x <= m));
        }
        // Every content id in the hierarchies is a Sunbird-like id.
        for (id, h) in &hierarchies {
            assert_eq!(&s(h, "identifier"), id);
            let digits = &id[3..];
            assert!(id.starts_with("do_") && (19..=22).contains(&digits.len()));
            assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(summary.course_ids.len(), hierarchies.len());
        Ok(())
    }

    /// The leaves of a hierarchy node as SPEC section 2 defines them.
    fn leaves(node: &Value, out: &mut Vec<String>) {
        match node["children"].as_array() {
            Some(children) if !children.is_empty() && node["objectType"] != "QuestionSet" => {
                for c in children {
                    leaves(c, out);
                }
            }
            _ => {
                if node["mimeType"] != COLLECTION_MIME && node["objectType"] != "Question" {
                    out.push(s(node, "identifier"));
                }
            }
        }
    }

    #[test]
    fn hierarchies_have_the_sunbird_shape() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = small(5);
        generate(dir.path(), &p)?;
        let mut without_leaf_nodes = 0;
        let mut legacy = 0;
        for row in rows(dir.path(), "content_hierarchy.jsonl")? {
            let root: Value = serde_json::from_str(row["hierarchy"].as_str().unwrap_or(""))?;
            assert_eq!(root["mimeType"], COLLECTION_MIME);
            assert_eq!(root["contentType"], "Course");
            let units = root["children"].as_array().ok_or("no children")?;
            assert_eq!(units.len(), p.units);
            for (i, u) in units.iter().enumerate() {
                assert_eq!(u["index"].as_u64(), Some(i as u64 + 1));
                let nested = i == p.units - 1;
                assert_eq!(
                    u["contentType"],
                    if nested { "Course" } else { "CourseUnit" }
                );
                assert_eq!(u["visibility"], if nested { "Default" } else { "Parent" });
                legacy += usize::from(u["objectType"] == "Content");
            }
            let mut computed = Vec::new();
            leaves(&root, &mut computed);
            assert_eq!(computed.len(), p.units * p.leaves_per_unit + p.assessments);
            match root["leafNodes"].as_array() {
                Some(ids) => {
                    let ids: Vec<String> = ids
                        .iter()
                        .map(|v| v.as_str().unwrap_or("").to_string())
                        .collect();
                    assert_eq!(ids, computed);
                    assert_eq!(root["leafNodesCount"].as_u64(), Some(computed.len() as u64));
                }
                None => without_leaf_nodes += 1,
            }
        }
        assert!(without_leaf_nodes >= 1);
        assert!(legacy >= 1);
        Ok(())
    }

    #[test]
    fn data_covers_the_report_rules() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = small(9);
        let summary = generate(dir.path(), &p)?;

        let cached: HashSet<String> = rows(dir.path(), "user_cache.jsonl")?
            .iter()
            .map(|u| s(u, "key").trim_start_matches("user:").to_string())
            .collect();
        let certified: HashSet<String> = rows(dir.path(), "course_batch.jsonl")?
            .iter()
            .filter(|b| {
                b["cert_templates"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty())
            })
            .map(|b| s(b, "batchid"))
            .collect();
        let (mut missing, mut inactive, mut text_only) = (0, 0, 0);
        let (mut done_with, mut done_without) = (0, 0);
        for e in rows(dir.path(), "user_enrolments.jsonl")? {
            missing += usize::from(!cached.contains(&s(&e, "userid")));
            inactive += usize::from(e["active"] == false);
            text_only += usize::from(e["enrolled_date"].is_null() && e["enrolleddate"].is_string());
            if e["completedon"].is_string() && certified.contains(&s(&e, "batchid")) {
                let has = |k: &str| e[k].as_array().is_some_and(|l| !l.is_empty());
                if has("issued_certificates") || has("certificates") {
                    done_with += 1;
                } else {
                    done_without += 1;
                }
            }
        }
        assert!(missing > 0 && missing as u64 == summary.enrolled_not_cached);
        assert!(inactive > 0 && inactive as u64 == summary.inactive_enrolments);
        assert!(text_only > 0);
        assert!(done_with > 0 && done_without > 0);

        assert!(!summary.retired_course_ids.is_empty());
        let retired = rows(dir.path(), "content.jsonl")?
            .iter()
            .filter(|c| c["status"] == "Retired")
            .count();
        assert_eq!(retired, summary.retired_course_ids.len());

        let attempts = rows(dir.path(), "assessment_aggregator.jsonl")?;
        assert!(attempts.iter().any(|a| s(a, "grand_total").contains('/')));
        assert!(attempts.iter().any(|a| !s(a, "grand_total").contains('/')));
        assert!(
            attempts
                .iter()
                .any(|a| a["total_score"].as_f64().is_some_and(|x| x.fract() != 0.0))
        );

        let activity = rows(dir.path(), "user_activity_agg.jsonl")?;
        assert!(
            activity
                .iter()
                .all(|a| s(a, "context_id").starts_with("cb:"))
        );
        assert!(
            activity
                .iter()
                .any(|a| a["aggregates"]["completedCount"].is_number())
        );
        assert!(
            activity
                .iter()
                .any(|a| a["agg"]["completedCount"].is_number())
        );

        let optional = rows(dir.path(), "relation_cache.jsonl")?;
        assert!(!optional.is_empty() && optional.len() < summary.course_ids.len());
        for o in optional {
            assert!(s(&o, "key").ends_with(":optionalnodes"));
        }
        Ok(())
    }

    #[test]
    fn impossible_params_are_invalid_input() -> TestResult {
        let dir = tempfile::tempdir()?;
        let base = GenParams::default();
        for bad in [
            GenParams {
                enrolments_per_batch: 121,
                ..base
            },
            GenParams { units: 0, ..base },
            GenParams {
                units: 0,
                leaves_per_unit: 0,
                ..base
            },
            GenParams {
                attempts: 0,
                ..base
            },
            GenParams { batches: 0, ..base },
        ] {
            let err = generate(&dir.path().join("x"), &bad)
                .err()
                .ok_or("accepted")?;
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(!err.to_string().is_empty());
        }
        // Nothing was written for refused parameters.
        assert!(!dir.path().join("x").exists());
        // No leaves at all is possible: a course nobody can progress in.
        let empty = GenParams {
            units: 0,
            leaves_per_unit: 0,
            assessments: 0,
            ..base
        };
        generate(dir.path(), &empty)?;
        Ok(())
    }

    #[test]
    fn dates_format_like_sunbird() {
        let t = days_from_civil(2019, 11, 13) * DAY_MS + 5 * 3_600_000 + 41 * 60_000 + 50_382;
        assert_eq!(iso(t), "2019-11-13T05:41:50.382Z");
        assert_eq!(sunbird_text(t), "2019-11-13 05:41:50:382+0000");
        assert_eq!(date_text(t), "2019-11-13");
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(num_text(7.0), "7");
        assert_eq!(num_text(7.5), "7.5");
    }
}
