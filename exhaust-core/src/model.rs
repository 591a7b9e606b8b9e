//! The records the sources deliver, already decoded into domain types.
//!
//! Adapters convert their own row shapes (JSON lines, CQL rows, Redis hashes)
//! into these once, at the edge; the report rules never see a raw row.

use crate::ids::{BatchId, ContentId, OrgId, UserId};
use chrono::{DateTime, Utc};

/// A row of `sunbird_courses.course_batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct CourseBatch {
    /// `batchid`.
    pub batch_id: BatchId,
    /// `courseid`: the collection the batch runs.
    pub course_id: ContentId,
    /// `name`.
    pub name: String,
    /// `status` (0 upcoming, 1 ongoing, 2 ended), when set.
    pub status: Option<i32>,
    /// `start_date`, else `startdate`, as text.
    pub start_date: Option<String>,
    /// `end_date`, else `enddate`, as text.
    pub end_date: Option<String>,
    /// The ids of `cert_templates`; empty when the batch issues no certificate.
    pub cert_template_ids: Vec<String>,
}

/// The enrolment date as stored: the `enrolled_date` timestamp, or failing
/// that the older `enrolleddate` text.
#[derive(Debug, Clone, PartialEq)]
pub enum EnrolledOn {
    /// A timestamp (`enrolled_date`, or `enrolleddate` text that parsed).
    At(DateTime<Utc>),
    /// `enrolleddate` text in a form we do not recognise, kept as it is.
    Text(String),
}

/// `contentstatus`: content ids with their status, in the order read.
///
/// Held as one text buffer and one list of (end, status) rather than a
/// `String` per entry: a batch of 100,000 learners with 80 contents each
/// reads 8 million entries, and two allocations per enrolment instead of
/// one per entry is most of what reading them costs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ContentStatus {
    ids: String,
    /// Per entry: where its id ends in `ids`, and its status.
    entries: Vec<(u32, i32)>,
}

impl ContentStatus {
    /// An empty list with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            ids: String::with_capacity(n * 24),
            entries: Vec::with_capacity(n),
        }
    }

    /// Adds an entry. (Over 4 GiB of ids in one enrolment, which no
    /// platform holds, the id is stored empty rather than wrapping.)
    pub fn push(&mut self, id: &str, status: i32) {
        if self.ids.len() + id.len() <= u32::MAX as usize {
            self.ids.push_str(id);
        }
        self.entries.push((self.ids.len() as u32, status));
    }

    /// The list whose ids are `ids` cut where each entry says its id ends
    /// (a byte offset into `ids`), with the entries' statuses: what pushing
    /// each in turn gives, in one copy of the text and taking `entries`
    /// as they are held (a reader that holds the ids end to end and works
    /// out the ends as it reads, as the snapshot's digest does, builds no
    /// second list). `None` unless the ends never go back, fall on
    /// characters' boundaries, and the last is the end of `ids`.
    pub fn from_ends(ids: &str, entries: Vec<(u32, i32)>) -> Option<Self> {
        let mut before = 0u32;
        for &(end, _) in &entries {
            if end < before || !ids.is_char_boundary(end as usize) {
                return None;
            }
            before = end;
        }
        if before as usize != ids.len() {
            return None;
        }
        Some(Self {
            ids: ids.to_owned(),
            entries,
        })
    }

    /// How many leading entries have the same ids as `other`'s, in one
    /// comparison of their text: all entries up to the first whose id ends
    /// elsewhere when the text before that is the same, else 0 (a lower
    /// bound, never more than the true count). Enrolments read one after
    /// another mostly list the same contents in the same order (a map
    /// column is key-ordered; learners further on list more of them), so a
    /// reader can reuse what it worked out for the ids of the one before.
    pub fn shared_prefix(&self, other: &Self) -> usize {
        let n = self
            .entries
            .iter()
            .zip(&other.entries)
            .take_while(|(a, b)| a.0 == b.0)
            .count();
        let end = match n {
            0 => return 0,
            n => self.entries[n - 1].0 as usize,
        };
        if self.ids.as_bytes().get(..end) == other.ids.as_bytes().get(..end) {
            n
        } else {
            0
        }
    }

    /// The entries, in the order they were added.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, i32)> + '_ {
        self.iter_from(0)
    }

    /// The entries from the `k`th on (none when there are `k` or fewer), as
    /// [`iter`](Self::iter) gives them, without walking the ones before.
    pub fn iter_from(&self, k: usize) -> impl ExactSizeIterator<Item = (&str, i32)> + '_ {
        let mut start = match k.checked_sub(1) {
            None => 0,
            Some(before) => self
                .entries
                .get(before)
                .map_or(self.ids.len(), |e| e.0 as usize),
        };
        let rest = self.entries.get(k..).unwrap_or_default();
        rest.iter().map(move |&(end, status)| {
            let end = end as usize;
            let id = self.ids.get(start..end).unwrap_or_default();
            start = end;
            (id, status)
        })
    }

    /// The statuses, in order, without their ids (cheaper than
    /// [`iter`](Self::iter) when the ids are known already).
    pub fn statuses(&self) -> impl ExactSizeIterator<Item = i32> + '_ {
        self.entries.iter().map(|&(_, status)| status)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::fmt::Debug for ContentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> FromIterator<(S, i32)> for ContentStatus {
    fn from_iter<I: IntoIterator<Item = (S, i32)>>(iter: I) -> Self {
        let mut out = Self::default();
        for (id, status) in iter {
            out.push(id.as_ref(), status);
        }
        out
    }
}

impl<S: AsRef<str>, const N: usize> From<[(S, i32); N]> for ContentStatus {
    fn from(entries: [(S, i32); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<S: AsRef<str>> From<Vec<(S, i32)>> for ContentStatus {
    fn from(entries: Vec<(S, i32)>) -> Self {
        entries.into_iter().collect()
    }
}

/// A row of `user_enrolments` for one user in one batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EnrolmentRecord {
    /// `userid`.
    pub user_id: UserId,
    /// `courseid`.
    pub course_id: ContentId,
    /// `batchid`.
    pub batch_id: BatchId,
    /// `active`; `None` when null.
    pub active: Option<bool>,
    /// `enrolled_date` (timestamp column).
    pub enrolled_date: Option<DateTime<Utc>>,
    /// `enrolleddate` (text column).
    pub enrolleddate: Option<String>,
    /// `completedon`.
    pub completed_on: Option<DateTime<Utc>>,
    /// `status` (2 = completed).
    pub status: Option<i32>,
    /// `contentstatus`: content id and status (2 = completed).
    pub content_status: ContentStatus,
    /// Number of entries in `certificates`.
    pub certificates: usize,
    /// Number of entries in `issued_certificates`.
    pub issued_certificates: usize,
}

impl EnrolmentRecord {
    /// The enrolment date the report uses: `enrolled_date` when set, else the
    /// text `enrolleddate` (parsed when it is a known form).
    pub fn enrolled_on(&self) -> Option<EnrolledOn> {
        if let Some(t) = self.enrolled_date {
            return Some(EnrolledOn::At(t));
        }
        let text = self.enrolleddate.as_deref()?.trim();
        if text.is_empty() {
            return None;
        }
        Some(match crate::time::parse_sunbird_timestamp(text) {
            Some(t) => EnrolledOn::At(t),
            None => EnrolledOn::Text(text.to_owned()),
        })
    }
}

/// The user cache fields the report reads (Redis hash `user:<id>`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserProfile {
    /// `firstname`.
    pub firstname: Option<String>,
    /// `lastname`.
    pub lastname: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `district`.
    pub district: Option<String>,
    /// `orgname`.
    pub orgname: Option<String>,
    /// `schooludisecode`.
    pub schooludisecode: Option<String>,
    /// `schoolname`.
    pub schoolname: Option<String>,
    /// `block`.
    pub block: Option<String>,
    /// `cluster`.
    pub cluster: Option<String>,
    /// `board`, as stored (may be JSON list text).
    pub board: Option<String>,
    /// `usertype`.
    pub usertype: Option<String>,
    /// `usersubtype`.
    pub usersubtype: Option<String>,
    /// `rootorgid`.
    pub rootorgid: Option<String>,
}

impl UserProfile {
    /// The hash field names the report reads, for adapters that fetch fields
    /// by name (`HMGET`).
    pub const FIELDS: [&'static str; 13] = [
        "firstname",
        "lastname",
        "state",
        "district",
        "orgname",
        "schooludisecode",
        "schoolname",
        "block",
        "cluster",
        "board",
        "usertype",
        "usersubtype",
        "rootorgid",
    ];

    /// Sets a field by its hash field name; unknown names are ignored.
    pub fn set(&mut self, field: &str, value: String) {
        let slot = match field {
            "firstname" => &mut self.firstname,
            "lastname" => &mut self.lastname,
            "state" => &mut self.state,
            "district" => &mut self.district,
            "orgname" => &mut self.orgname,
            "schooludisecode" => &mut self.schooludisecode,
            "schoolname" => &mut self.schoolname,
            "block" => &mut self.block,
            "cluster" => &mut self.cluster,
            "board" => &mut self.board,
            "usertype" => &mut self.usertype,
            "usersubtype" => &mut self.usersubtype,
            "rootorgid" => &mut self.rootorgid,
            _ => return,
        };
        *slot = Some(value);
    }
}

/// What the user cache holds for one user id.
// The profile is the common case; boxing it would cost an allocation per user
// to make the rare malformed case smaller.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum UserEntry {
    /// A well-formed profile.
    Profile(UserProfile),
    /// An entry whose value has the wrong shape (not a hash of strings). The
    /// row is kept with blank profile columns; the text says what was wrong.
    Malformed(String),
}

/// One attempt of an assessment (`assessment_aggregator` row).
#[derive(Debug, Clone, PartialEq)]
pub struct AssessmentAttempt {
    /// `user_id`.
    pub user_id: UserId,
    /// `course_id`.
    pub course_id: ContentId,
    /// `batch_id`.
    pub batch_id: BatchId,
    /// `content_id`: the assessment.
    pub content_id: ContentId,
    /// `attempt_id`.
    pub attempt_id: String,
    /// `total_score`.
    pub total_score: Option<f64>,
    /// `total_max_score`.
    pub total_max_score: Option<f64>,
    /// `grand_total`, text such as `7/10`.
    pub grand_total: Option<String>,
    /// `last_attempted_on`.
    pub last_attempted_on: Option<DateTime<Utc>>,
}

/// A `user_activity_agg` row of a collection (course or unit) for one user.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityAggregate {
    /// `activity_id`: the course or unit id.
    pub activity_id: ContentId,
    /// `user_id`.
    pub user_id: UserId,
    /// `context_id`, `cb:<batchid>`.
    pub context_id: String,
    /// `aggregates.completedCount`, when present.
    pub aggregates_completed: Option<f64>,
    /// `agg.completedCount` (older rows), when present.
    pub agg_completed: Option<i64>,
}

impl ActivityAggregate {
    /// The completed count: `aggregates` first, then the older `agg`.
    pub fn completed_count(&self) -> Option<f64> {
        self.aggregates_completed
            .or(self.agg_completed.map(|c| c as f64))
    }
}

/// Collection metadata from the content search API.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionMeta {
    /// `identifier`.
    pub identifier: ContentId,
    /// `name`.
    pub name: String,
    /// `channel`: the collection's org.
    pub channel: OrgId,
    /// `status`: Live, Unlisted, Retired, ...
    pub status: String,
    /// `userConsent` (defaults to "No" as in Sunbird).
    pub user_consent: String,
}

impl CollectionMeta {
    /// Whether the collection is retired (its batches are not reported).
    pub fn is_retired(&self) -> bool {
        self.status.eq_ignore_ascii_case("Retired")
    }
}

#[cfg(test)]
mod content_status_tests {
    use super::ContentStatus;

    #[test]
    fn entries_read_back_in_order_with_their_ids() {
        let mut c = ContentStatus::with_capacity(1);
        assert!(c.is_empty());
        c.push("do_1", 2);
        c.push("", 1);
        c.push("dö_ü", 0);
        c.push("do_1", 1);
        let got: Vec<(&str, i32)> = c.iter().collect();
        assert_eq!(got, [("do_1", 2), ("", 1), ("dö_ü", 0), ("do_1", 1)]);
        assert_eq!(c.len(), 4);
        assert_eq!(c, ContentStatus::from(got.clone()));
        assert_ne!(c, ContentStatus::from([("do_1", 2)]));
        assert_eq!(
            format!("{c:?}"),
            r#"{"do_1": 2, "": 1, "dö_ü": 0, "do_1": 1}"#
        );
    }

    #[test]
    fn joined_ids_cut_inside_a_character_or_short_of_the_text_are_refused() {
        assert_eq!(ContentStatus::from_ends("dö", vec![(2, 1)]), None);
        assert_eq!(ContentStatus::from_ends("do_1", vec![(3, 1)]), None);
        assert_eq!(ContentStatus::from_ends("do", vec![(1, 1), (3, 1)]), None);
        assert_eq!(
            ContentStatus::from_ends("", Vec::new()),
            Some(ContentStatus::default())
        );
        // Ends that go back, run past the text or stop short of it.
        assert_eq!(ContentStatus::from_ends("do", vec![(2, 1), (1, 1)]), None);
        assert_eq!(ContentStatus::from_ends("do", vec![(3, 1)]), None);
        assert_eq!(ContentStatus::from_ends("do", vec![(1, 1)]), None);
        assert_eq!(ContentStatus::from_ends("dö", vec![(2, 1), (3, 1)]), None);
        assert_eq!(
            ContentStatus::from_ends("dödo", vec![(3, 1), (3, 2), (5, 0)]),
            Some(ContentStatus::from([("dö", 1), ("", 2), ("do", 0)]))
        );
    }

    fn list(entries: &[(String, i32)]) -> ContentStatus {
        entries.iter().map(|(id, s)| (id.as_str(), *s)).collect()
    }

    proptest::proptest! {
        /// The same list as pushing each entry in turn.
        #[test]
        fn joined_ids_give_the_list_pushed_one_by_one(
            entries in proptest::collection::vec(("[a-cé]{0,3}", -1..3i32), 0..12)
        ) {
            let joined: String = entries.iter().map(|(id, _)| id.as_str()).collect();
            let mut end = 0u32;
            let ends = entries.iter().map(|(id, s)| { end += id.len() as u32; (end, *s) }).collect();
            proptest::prop_assert_eq!(ContentStatus::from_ends(&joined, ends), Some(list(&entries)));
        }

        /// `iter_from(k)` is `iter().skip(k)`, and `statuses()` the
        /// statuses `iter()` gives, for every `k` up to past the end.
        #[test]
        fn iter_from_and_statuses_are_iter_in_part(
            entries in proptest::collection::vec(("[a-cé]{0,3}", -1..3i32), 0..12),
            k in 0usize..14,
        ) {
            let list = list(&entries);
            let from: Vec<(&str, i32)> = list.iter_from(k).collect();
            let skipped: Vec<(&str, i32)> = list.iter().skip(k).collect();
            proptest::prop_assert_eq!(from, skipped);
            let statuses: Vec<i32> = list.statuses().collect();
            let of_iter: Vec<i32> = list.iter().map(|(_, s)| s).collect();
            proptest::prop_assert_eq!(statuses, of_iter);
        }

        /// Never more leading entries than the lists truly share, and all of
        /// them when one's ids start the other's.
        #[test]
        fn a_shared_prefix_is_one_the_lists_share(
            a in proptest::collection::vec(("[ab]{0,2}", 0..3i32), 0..8),
            b in proptest::collection::vec(("[ab]{0,2}", 0..3i32), 0..8),
            extend in proptest::bool::ANY,
        ) {
            let b: Vec<(String, i32)> = if extend {
                a.iter().cloned().chain(b).collect()
            } else {
                b
            };
            let (x, y) = (list(&a), list(&b));
            let truly = x.iter().zip(y.iter()).take_while(|(p, q)| p.0 == q.0).count();
            let shared = x.shared_prefix(&y);
            proptest::prop_assert!(shared <= truly);
            proptest::prop_assert_eq!(shared, y.shared_prefix(&x));
            if extend {
                proptest::prop_assert_eq!(shared, a.len());
            }
        }
    }
}
