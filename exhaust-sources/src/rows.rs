//! The snapshot's row shapes (dsbulk JSON of the Cassandra tables, the Redis
//! caches as JSON) and their one-time conversion into core types.

use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
    UserProfile,
};
use exhaust_core::time::parse_sunbird_timestamp;
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Why a row could not be converted.
pub(crate) type RowError = String;

/// `true`/`false`, or their text (Sunbird compares `lower(active) == "true"`).
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Bool(b)) => Some(b),
        Some(serde_json::Value::String(s)) => Some(s.trim().eq_ignore_ascii_case("true")),
        None | Some(serde_json::Value::Null) => None,
        Some(other) => {
            return Err(de::Error::custom(format!(
                "expected a boolean, found {other}"
            )));
        }
    })
}

/// A number, or a number written as text.
fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(
            s.trim()
                .parse()
                .map_err(|_| de::Error::custom(format!("expected a number, found {s:?}")))?,
        ),
        None | Some(serde_json::Value::Null) => None,
        Some(other) => {
            return Err(de::Error::custom(format!(
                "expected a number, found {other}"
            )));
        }
    })
}

fn lenient_i32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    lenient_f64(d).map(|v| v.map(|x| x as i32))
}

/// A list whose elements are only counted; null counts as empty.
fn list_len<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(Option::<Vec<IgnoredAny>>::deserialize(d)?.map_or(0, |v| v.len()))
}

/// `contentstatus`: a map of content id to status, read straight into pairs.
fn content_status<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, i32)>, D::Error> {
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = Vec<(String, i32)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of content id to status, or null")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some((k, v)) = map.next_entry::<String, Option<f64>>()? {
                if let Some(v) = v {
                    out.push((k, v as i32));
                }
            }
            Ok(out)
        }
    }
    d.deserialize_option(V)
}

fn timestamp(
    field: &str,
    text: Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, RowError> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => parse_sunbird_timestamp(t)
            .map(Some)
            .ok_or_else(|| format!("{field} {t:?} is not a timestamp")),
    }
}

/// `user_enrolments`.
#[derive(Debug, Deserialize)]
pub(crate) struct EnrolmentRow {
    userid: Option<String>,
    courseid: Option<String>,
    pub(crate) batchid: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    active: Option<bool>,
    enrolleddate: Option<String>,
    enrolled_date: Option<String>,
    completedon: Option<String>,
    #[serde(default, deserialize_with = "lenient_i32")]
    status: Option<i32>,
    #[serde(default, deserialize_with = "content_status")]
    contentstatus: Vec<(String, i32)>,
    #[serde(default, deserialize_with = "list_len")]
    certificates: usize,
    #[serde(default, deserialize_with = "list_len")]
    issued_certificates: usize,
}

impl EnrolmentRow {
    pub(crate) fn into_record(self) -> Result<EnrolmentRecord, RowError> {
        Ok(EnrolmentRecord {
            user_id: UserId::new(self.userid.ok_or("userid is missing")?),
            course_id: ContentId::new(self.courseid.unwrap_or_default()),
            batch_id: BatchId::new(self.batchid.ok_or("batchid is missing")?),
            active: self.active,
            enrolled_date: timestamp("enrolled_date", self.enrolled_date)?,
            enrolleddate: self.enrolleddate,
            completed_on: timestamp("completedon", self.completedon)?,
            status: self.status,
            content_status: self.contentstatus,
            certificates: self.certificates,
            issued_certificates: self.issued_certificates,
        })
    }
}

/// `course_batch`.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchRow {
    batchid: Option<String>,
    courseid: Option<String>,
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_i32")]
    status: Option<i32>,
    start_date: Option<String>,
    startdate: Option<String>,
    end_date: Option<String>,
    enddate: Option<String>,
    cert_templates: Option<BTreeMap<String, IgnoredAny>>,
}

impl BatchRow {
    pub(crate) fn into_batch(self) -> Result<CourseBatch, RowError> {
        Ok(CourseBatch {
            batch_id: BatchId::new(self.batchid.ok_or("batchid is missing")?),
            course_id: ContentId::new(self.courseid.ok_or("courseid is missing")?),
            name: self.name.unwrap_or_default(),
            status: self.status,
            start_date: self.start_date.or(self.startdate),
            end_date: self.end_date.or(self.enddate),
            cert_template_ids: self
                .cert_templates
                .map(|m| m.into_keys().collect())
                .unwrap_or_default(),
        })
    }
}

/// `assessment_aggregator`.
#[derive(Debug, Deserialize)]
pub(crate) struct AttemptRow {
    user_id: Option<String>,
    course_id: Option<String>,
    batch_id: Option<String>,
    content_id: Option<String>,
    attempt_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_f64")]
    total_score: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    total_max_score: Option<f64>,
    grand_total: Option<serde_json::Value>,
    last_attempted_on: Option<String>,
}

impl AttemptRow {
    pub(crate) fn into_attempt(self) -> Result<AssessmentAttempt, RowError> {
        Ok(AssessmentAttempt {
            user_id: UserId::new(self.user_id.ok_or("user_id is missing")?),
            course_id: ContentId::new(self.course_id.ok_or("course_id is missing")?),
            batch_id: BatchId::new(self.batch_id.unwrap_or_default()),
            content_id: ContentId::new(self.content_id.ok_or("content_id is missing")?),
            attempt_id: self.attempt_id.unwrap_or_default(),
            total_score: self.total_score,
            total_max_score: self.total_max_score,
            grand_total: match self.grand_total {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s),
                Some(other) => Some(other.to_string()),
            },
            last_attempted_on: timestamp("last_attempted_on", self.last_attempted_on)?,
        })
    }
}

/// `user_activity_agg`.
#[derive(Debug, Deserialize)]
pub(crate) struct ActivityRow {
    pub(crate) activity_type: Option<String>,
    pub(crate) activity_id: Option<String>,
    user_id: Option<String>,
    pub(crate) context_id: Option<String>,
    agg: Option<BTreeMap<String, Option<f64>>>,
    aggregates: Option<BTreeMap<String, Option<f64>>>,
}

impl ActivityRow {
    pub(crate) fn into_aggregate(self) -> Result<ActivityAggregate, RowError> {
        let count = |m: &Option<BTreeMap<String, Option<f64>>>| {
            m.as_ref()
                .and_then(|m| m.get("completedCount").copied().flatten())
        };
        Ok(ActivityAggregate {
            aggregates_completed: count(&self.aggregates),
            agg_completed: count(&self.agg).map(|c| c as i64),
            activity_id: ContentId::new(self.activity_id.ok_or("activity_id is missing")?),
            user_id: UserId::new(self.user_id.ok_or("user_id is missing")?),
            context_id: self.context_id.unwrap_or_default(),
        })
    }
}

/// `content.jsonl`: one search result entry.
#[derive(Debug, Deserialize)]
pub(crate) struct ContentRow {
    identifier: Option<String>,
    name: Option<String>,
    channel: Option<String>,
    status: Option<String>,
    #[serde(rename = "userConsent")]
    user_consent: Option<String>,
}

impl ContentRow {
    pub(crate) fn into_meta(self) -> Result<CollectionMeta, RowError> {
        Ok(CollectionMeta {
            identifier: ContentId::new(self.identifier.ok_or("identifier is missing")?),
            name: self.name.unwrap_or_default(),
            channel: OrgId::new(self.channel.unwrap_or_default()),
            status: self.status.unwrap_or_default(),
            user_consent: self.user_consent.unwrap_or_else(|| "No".into()),
        })
    }
}

/// A `content_hierarchy` row: the collection and its hierarchy, stored as
/// JSON text or (in some exports) as the object itself.
#[derive(Deserialize)]
pub(crate) struct HierarchyRow {
    pub identifier: Option<String>,
    pub hierarchy: Option<serde_json::Value>,
}

/// A Redis entry: `{"key": ..., "value": ...}`.
#[derive(Debug, Deserialize)]
pub(crate) struct CacheRow {
    pub(crate) key: Option<String>,
    #[serde(default)]
    pub(crate) value: serde_json::Value,
}

/// Reads a user hash. Redis holds only strings, so anything else is the
/// wrong shape; numbers and booleans are taken as their text.
pub(crate) fn user_entry(value: serde_json::Value) -> UserEntry {
    let serde_json::Value::Object(map) = value else {
        return UserEntry::Malformed("the cache value is not a hash of fields".into());
    };
    let mut p = UserProfile::default();
    for (field, v) in map {
        if !UserProfile::FIELDS.contains(&field.as_str()) {
            continue;
        }
        let text = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => continue,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return UserEntry::Malformed(format!("field {field} is not a string")),
        };
        p.set(&field, text);
    }
    UserEntry::Profile(p)
}

/// A timestamp as dsbulk writes it: ISO-8601 in UTC with milliseconds
/// (`2019-11-16T05:41:50.382Z`); finer precision, which Cassandra never
/// holds but a hand-made snapshot may, is kept.
pub(crate) fn iso_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    } else {
        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

/// [`iso_timestamp`] of a CQL timestamp (milliseconds since the epoch);
/// `None` when it is out of chrono's range.
pub(crate) fn iso_millis(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(iso_timestamp)
}
