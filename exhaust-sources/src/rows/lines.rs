//! The snapshot's rows as written: one type per table, used by both
//! writers, the batch export (`export.rs`) and the generator (`generate/`),
//! so a table's columns, their names and their JSON shapes are stated once,
//! next to the row types that read them back (`rows.rs`).
//!
//! Fields are declared in the tables' column order, which is the order the
//! generator writes them in (the index's key scanner, `jsonscan.rs`, finds
//! the key early on those lines). The export writes the same rows with their
//! keys in name order, as it always has (see `export.rs`).
//!
//! A column the report does not read is an `Option` left out when `None`
//! (`serde_with::skip_serializing_none` on the rows with many of them: an
//! absent column is never written as null):
//! the export leaves them all out (it copies only what the report reads),
//! the generator fills them to look like Sunbird's data. Where the two
//! writers give a column different contents (certificate lists, aggregate
//! maps, template maps) the row is generic over that column's value.

use super::iso_timestamp;
use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, ContentStatus, CourseBatch,
    EnrolmentRecord, UserEntry, UserProfile,
};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// A column that can be left out, be `null`, or hold a value: the three
/// shapes real exports have.
pub(crate) enum Cell<T> {
    Absent,
    // Only the generator writes an explicit null; the export leaves out
    // what it does not know.
    #[cfg_attr(not(feature = "generate"), allow(dead_code))]
    Null,
    Value(T),
}

impl<T> Cell<T> {
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Cell::Absent)
    }
}

impl<T> From<Option<T>> for Cell<T> {
    /// `None` leaves the column out.
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Absent, Cell::Value)
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

/// A one-entry map (`{"completedCount": 3}`), without allocating a map per
/// row.
pub(crate) struct Entry<'a, V>(pub(crate) &'a str, pub(crate) V);

impl<V: Serialize> Serialize for Entry<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, &self.1)?;
        m.end()
    }
}

/// A double column: a JSON number, or its text when it is not finite
/// (JSON has no NaN; the text reads back as the same value).
#[derive(Clone, Copy)]
pub(crate) struct Double(pub(crate) f64);

impl Serialize for Double {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else {
            s.collect_str(&self.0)
        }
    }
}

/// A list of `n` empty maps: a list column of which only the length is
/// read (certificates).
pub(crate) struct Blanks(pub(crate) usize);

impl Serialize for Blanks {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0))?;
        for _ in 0..self.0 {
            seq.serialize_element(&Empty)?;
        }
        seq.end()
    }
}

/// A map of each key to an empty map: a map column of which only the keys
/// are read (certificate templates).
pub(crate) struct BlankValues<'a>(pub(crate) &'a [String]);

impl Serialize for BlankValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|k| (k, Empty)))
    }
}

/// `{}`.
struct Empty;

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

/// `contentstatus` from its decoded pairs: content id to status.
pub(crate) struct Statuses<'a>(pub(crate) &'a ContentStatus);

impl Serialize for Statuses<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

/// `system_settings`.
#[derive(Serialize)]
pub(crate) struct SettingLine<'a> {
    pub(crate) id: &'a str,
    pub(crate) field: &'a str,
    pub(crate) value: &'a str,
}

/// `content`: a search result entry. The report reads the first five.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContentLine<'a> {
    pub(crate) identifier: &'a str,
    pub(crate) name: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user_consent: Option<&'a str>,
    // Flattened: its fields follow as columns of the line.
    #[serde(flatten)]
    pub(crate) more: Option<ContentMore<'a>>,
}

/// The search metadata of a collection that the report does not read (only
/// the generator writes it).
#[cfg_attr(not(feature = "generate"), allow(dead_code))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContentMore<'a> {
    pub(crate) object_type: &'a str,
    pub(crate) primary_category: &'a str,
    pub(crate) content_type: &'a str,
    pub(crate) mime_type: &'a str,
    pub(crate) visibility: &'a str,
    pub(crate) last_published_on: String,
}

impl<'a> ContentLine<'a> {
    /// The metadata the report reads.
    pub(crate) fn of(c: &'a CollectionMeta) -> Self {
        ContentLine {
            identifier: c.identifier.as_str(),
            name: &c.name,
            channel: c.channel.as_str(),
            status: &c.status,
            user_consent: Some(&c.user_consent),
            more: None,
        }
    }
}

/// `content_hierarchy`: the hierarchy as the JSON text stored.
#[derive(Serialize)]
pub(crate) struct HierarchyLine<'a> {
    pub(crate) identifier: &'a str,
    pub(crate) hierarchy: &'a str,
}

/// A Redis entry (`user_cache`, `relation_cache`): the key and the hash or
/// set it holds.
#[derive(Serialize)]
pub(crate) struct CacheLine<'a, V> {
    pub(crate) key: &'a str,
    pub(crate) value: V,
}

/// A user cache value from what the report read: the profile's fields that
/// are set, or, for an entry of the wrong shape, the text saying what was
/// wrong (field names, never values), which reads back as malformed.
pub(crate) struct CachedUser<'a>(pub(crate) &'a UserEntry);

impl Serialize for CachedUser<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            UserEntry::Profile(p) => s.collect_map(
                profile_fields(p)
                    .into_iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v))),
            ),
            UserEntry::Malformed(why) => s.serialize_str(why),
        }
    }
}

/// The profile's fields by hash field name, in [`UserProfile::FIELDS`] order.
fn profile_fields(p: &UserProfile) -> [(&'static str, &Option<String>); 13] {
    [
        ("firstname", &p.firstname),
        ("lastname", &p.lastname),
        ("state", &p.state),
        ("district", &p.district),
        ("orgname", &p.orgname),
        ("schooludisecode", &p.schooludisecode),
        ("schoolname", &p.schoolname),
        ("block", &p.block),
        ("cluster", &p.cluster),
        ("board", &p.board),
        ("usertype", &p.usertype),
        ("usersubtype", &p.usersubtype),
        ("rootorgid", &p.rootorgid),
    ]
}

/// `course_batch`. `T` is the `cert_templates` map's value.
#[serde_with::skip_serializing_none]
#[derive(Serialize)]
pub(crate) struct BatchLine<'a, T> {
    pub(crate) courseid: &'a str,
    pub(crate) batchid: &'a str,
    pub(crate) name: &'a str,
    pub(crate) description: Option<&'a str>,
    pub(crate) status: Option<i32>,
    pub(crate) enrollmenttype: Option<&'a str>,
    pub(crate) startdate: Option<String>,
    pub(crate) start_date: Option<String>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    pub(crate) enddate: Cell<String>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    pub(crate) end_date: Cell<String>,
    pub(crate) enrollmentenddate: Option<String>,
    pub(crate) createdby: Option<&'a str>,
    pub(crate) createddate: Option<String>,
    pub(crate) cert_templates: Option<T>,
}

impl<'a> BatchLine<'a, BlankValues<'a>> {
    /// The columns the report reads (the dates under their timestamp
    /// names, the templates by id only).
    pub(crate) fn of(b: &'a CourseBatch) -> Self {
        BatchLine {
            courseid: b.course_id.as_str(),
            batchid: b.batch_id.as_str(),
            name: &b.name,
            description: None,
            status: b.status,
            enrollmenttype: None,
            startdate: None,
            start_date: b.start_date.clone(),
            enddate: Cell::Absent,
            end_date: b.end_date.clone().into(),
            enrollmentenddate: None,
            createdby: None,
            createddate: None,
            cert_templates: Some(BlankValues(&b.cert_template_ids)),
        }
    }
}

/// `user_enrolments`. `S` is `contentstatus`, `C` and `I` the
/// `certificates` and `issued_certificates` lists.
#[serde_with::skip_serializing_none]
#[derive(Serialize)]
pub(crate) struct EnrolmentLine<'a, S, C, I> {
    pub(crate) userid: &'a str,
    pub(crate) courseid: &'a str,
    pub(crate) batchid: &'a str,
    pub(crate) active: Option<bool>,
    pub(crate) enrolleddate: Option<String>,
    pub(crate) enrolled_date: Option<String>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    pub(crate) completedon: Cell<String>,
    pub(crate) status: Option<i32>,
    pub(crate) progress: Option<u32>,
    pub(crate) completionpercentage: Option<u32>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    pub(crate) contentstatus: Cell<S>,
    pub(crate) lastreadcontentid: Option<&'a str>,
    pub(crate) certificates: Option<C>,
    pub(crate) issued_certificates: Option<I>,
}

impl<'a> EnrolmentLine<'a, Statuses<'a>, Blanks, Blanks> {
    /// The columns the report reads; certificates by number only, and no
    /// empty `contentstatus` or certificate list.
    pub(crate) fn of(e: &'a EnrolmentRecord) -> Self {
        let blanks = |n: usize| (n > 0).then_some(Blanks(n));
        EnrolmentLine {
            userid: e.user_id.as_str(),
            courseid: e.course_id.as_str(),
            batchid: e.batch_id.as_str(),
            active: e.active,
            enrolleddate: e.enrolleddate.clone(),
            enrolled_date: e.enrolled_date.map(iso_timestamp),
            completedon: e.completed_on.map(iso_timestamp).into(),
            status: e.status,
            progress: None,
            completionpercentage: None,
            contentstatus: (!e.content_status.is_empty())
                .then_some(Statuses(&e.content_status))
                .into(),
            lastreadcontentid: None,
            certificates: blanks(e.certificates),
            issued_certificates: blanks(e.issued_certificates),
        }
    }
}

/// `assessment_aggregator` (the `question` column left out).
#[serde_with::skip_serializing_none]
#[derive(Serialize)]
pub(crate) struct AttemptLine<'a> {
    pub(crate) course_id: &'a str,
    pub(crate) batch_id: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) content_id: &'a str,
    pub(crate) attempt_id: &'a str,
    pub(crate) grand_total: Option<&'a str>,
    pub(crate) total_max_score: Option<Double>,
    pub(crate) total_score: Option<Double>,
    pub(crate) last_attempted_on: Option<String>,
    pub(crate) updated_on: Option<String>,
}

impl<'a> AttemptLine<'a> {
    /// The columns the report reads.
    pub(crate) fn of(a: &'a AssessmentAttempt) -> Self {
        AttemptLine {
            course_id: a.course_id.as_str(),
            batch_id: a.batch_id.as_str(),
            user_id: a.user_id.as_str(),
            content_id: a.content_id.as_str(),
            attempt_id: &a.attempt_id,
            grand_total: a.grand_total.as_deref(),
            total_max_score: a.total_max_score.map(Double),
            total_score: a.total_score.map(Double),
            last_attempted_on: a.last_attempted_on.map(iso_timestamp),
            updated_on: None,
        }
    }
}

/// `user_activity_agg`. `A` is the `aggregates` map, `G` the
/// `agg_last_updated` map.
#[serde_with::skip_serializing_none]
#[derive(Serialize)]
pub(crate) struct ActivityLine<'a, A, G> {
    pub(crate) activity_type: &'a str,
    pub(crate) activity_id: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) context_id: &'a str,
    pub(crate) agg: Option<Entry<'a, i64>>,
    pub(crate) aggregates: Option<A>,
    pub(crate) agg_last_updated: Option<G>,
}

/// The completion count's key in the aggregate maps.
pub(crate) const COMPLETED_COUNT: &str = "completedCount";

impl<'a> ActivityLine<'a, Entry<'a, Double>, ()> {
    /// The columns the report reads: a course aggregate with its completion
    /// counts only.
    pub(crate) fn of(a: &'a ActivityAggregate) -> Self {
        ActivityLine {
            activity_type: "Course",
            activity_id: a.activity_id.as_str(),
            user_id: a.user_id.as_str(),
            context_id: &a.context_id,
            agg: a.agg_completed.map(|c| Entry(COMPLETED_COUNT, c)),
            aggregates: a
                .aggregates_completed
                .map(|c| Entry(COMPLETED_COUNT, Double(c))),
            agg_last_updated: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ActivityRow, AttemptRow, BatchRow, ContentRow, EnrolmentRow, UserCacheRow};
    use super::*;
    use chrono::TimeZone;
    use exhaust_core::{BatchId, ContentId, OrgId, UserId};

    fn line<T: Serialize>(row: &T) -> String {
        serde_json::to_string(row).expect("serialises")
    }

    #[test]
    fn written_rows_read_back_as_the_records_they_were_written_from() {
        let t = |ms| chrono::Utc.timestamp_millis_opt(ms).unwrap();
        let e = EnrolmentRecord {
            user_id: UserId::new("u1"),
            course_id: ContentId::new("do_1"),
            batch_id: BatchId::new("b1"),
            active: Some(true),
            enrolled_date: Some(t(1_573_883_310_382)),
            enrolleddate: Some("2019-11-13 05:41:50:382+0000".into()),
            completed_on: Some(t(1_573_883_310_383)),
            status: Some(2),
            content_status: [("do_11", 2), ("do_12", 1)].into(),
            certificates: 1,
            issued_certificates: 2,
        };
        let read: EnrolmentRow =
            serde_json::from_str(&line(&EnrolmentLine::of(&e))).expect("reads");
        assert_eq!(read.into_record().expect("converts"), e);

        let b = CourseBatch {
            batch_id: BatchId::new("b1"),
            course_id: ContentId::new("do_1"),
            name: "Batch \"1\"".into(),
            status: Some(1),
            start_date: Some("2020-01-20".into()),
            end_date: None,
            cert_template_ids: vec!["t1".into(), "t2".into()],
        };
        let read: BatchRow = serde_json::from_str(&line(&BatchLine::of(&b))).expect("reads");
        assert_eq!(read.into_batch().expect("converts"), b);

        let a = AssessmentAttempt {
            user_id: UserId::new("u1"),
            course_id: ContentId::new("do_1"),
            batch_id: BatchId::new("b1"),
            content_id: ContentId::new("do_11"),
            attempt_id: "a1".into(),
            total_score: Some(7.5),
            total_max_score: Some(f64::INFINITY),
            grand_total: Some("7.5/10".into()),
            last_attempted_on: Some(t(1_573_883_310_382)),
        };
        let text = line(&AttemptLine::of(&a));
        let read: AttemptRow = serde_json::from_str(&text).expect("reads");
        assert_eq!(read.into_attempt().expect("converts"), a);

        let g = ActivityAggregate {
            activity_id: ContentId::new("do_1"),
            user_id: UserId::new("u1"),
            context_id: "cb:b1".into(),
            aggregates_completed: Some(2.5),
            agg_completed: Some(3),
        };
        let text = line(&ActivityLine::of(&g));
        let read: ActivityRow = serde_json::from_str(&text).expect("reads");
        assert_eq!(read.into_aggregate().expect("converts"), g);

        let c = CollectionMeta {
            identifier: ContentId::new("do_1"),
            name: "Course".into(),
            channel: OrgId::new("org1"),
            status: "Retired".into(),
            user_consent: "Yes".into(),
        };
        let read: ContentRow = serde_json::from_str(&line(&ContentLine::of(&c))).expect("reads");
        assert_eq!(read.into_meta().expect("converts"), c);

        let mut p = UserProfile::default();
        for f in UserProfile::FIELDS.iter().step_by(2) {
            p.set(f, format!("{f} \"x\""));
        }
        for entry in [
            UserEntry::Profile(p),
            UserEntry::Malformed("the cache value is not a hash of fields".into()),
        ] {
            let text = line(&CacheLine {
                key: "user:u1",
                value: CachedUser(&entry),
            });
            let read: UserCacheRow = serde_json::from_str(&text).expect("reads");
            assert_eq!(read.value.0, entry, "{text}");
        }
    }

    #[test]
    fn columns_are_written_in_column_order_and_left_out_when_unknown() {
        let a = AssessmentAttempt {
            user_id: UserId::new("u1"),
            course_id: ContentId::new("do_1"),
            batch_id: BatchId::new("b1"),
            content_id: ContentId::new("do_11"),
            attempt_id: "a1".into(),
            total_score: Some(f64::NAN),
            total_max_score: None,
            grand_total: None,
            last_attempted_on: None,
        };
        assert_eq!(
            line(&AttemptLine::of(&a)),
            r#"{"course_id":"do_1","batch_id":"b1","user_id":"u1","content_id":"do_11","attempt_id":"a1","total_score":"NaN"}"#
        );
        let row = EnrolmentLine::<(), (), ()> {
            userid: "u1",
            courseid: "do_1",
            batchid: "b1",
            active: None,
            enrolleddate: None,
            enrolled_date: None,
            completedon: Cell::Null,
            status: None,
            progress: None,
            completionpercentage: None,
            contentstatus: Cell::Absent,
            lastreadcontentid: None,
            certificates: None,
            issued_certificates: None,
        };
        assert_eq!(
            line(&row),
            r#"{"userid":"u1","courseid":"do_1","batchid":"b1","completedon":null}"#
        );
    }
}
