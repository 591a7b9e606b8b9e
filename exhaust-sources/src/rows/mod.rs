//! The snapshot's row shapes (dsbulk JSON of the Cassandra tables, the Redis
//! caches as JSON) and their one-time conversion into core types.

// Every reader shares these rows (the snapshot, Cassandra, the search API,
// the export): a build with only some readers leaves parts of them unused.
#![cfg_attr(
    not(all(feature = "snapshot", feature = "cassandra", feature = "search")),
    allow(dead_code)
)]

use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, ContentStatus, CourseBatch,
    EnrolmentRecord, UserEntry, UserProfile,
};
use exhaust_core::time::parse_sunbird_timestamp;
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The same tables' rows as the export and the generator write them.
pub(crate) mod lines;

/// Why a row could not be converted.
pub(crate) type RowError = String;

/// A field's value as the lenient readers below see it: a scalar read
/// without building a `serde_json::Value` (text borrowed from the line when
/// it has no escapes), and a list or an object kept as a value only to name
/// it in an error.
enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Text(Cow<'a, str>),
    Other(serde_json::Value),
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Number(v.into()))
            }
            // Not finite: null, as a `serde_json::Value` reads it.
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Scalar::Null, Scalar::Number))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                Scalar::deserialize(d)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(Scalar::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for Scalar<'_> {
    /// As the value's JSON (what the error messages have always named).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => write!(f, "{}", serde_json::Value::String(t.to_string())),
            Self::Other(v) => write!(f, "{v}"),
        }
    }
}

/// `true`/`false`, or their text (Sunbird compares `lower(active) == "true"`).
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Scalar>::deserialize(d)? {
        Some(Scalar::Bool(b)) => Some(b),
        Some(Scalar::Text(s)) => Some(s.trim().eq_ignore_ascii_case("true")),
        None | Some(Scalar::Null) => None,
        Some(other) => {
            return Err(de::Error::custom(format!(
                "expected a boolean, found {other}"
            )));
        }
    })
}

/// A number, or a number written as text.
fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Scalar>::deserialize(d)? {
        Some(Scalar::Number(n)) => n.as_f64(),
        Some(Scalar::Text(s)) if s.trim().is_empty() => None,
        Some(Scalar::Text(s)) => Some(
            s.trim()
                .parse()
                .map_err(|_| de::Error::custom(format!("expected a number, found {s:?}")))?,
        ),
        None | Some(Scalar::Null) => None,
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

/// `contentstatus`: a map of content id to status, read straight into the
/// compact list (ids borrowed from the line while read).
fn content_status<'de, D: Deserializer<'de>>(d: D) -> Result<ContentStatus, D::Error> {
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = ContentStatus;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of content id to status, or null")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(ContentStatus::default())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(ContentStatus::default())
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = ContentStatus::with_capacity(map.size_hint().unwrap_or(8));
            while let Some((Name(k), v)) = map.next_entry::<Name<'de>, Option<f64>>()? {
                if let Some(v) = v {
                    out.push(&k, v as i32);
                }
            }
            Ok(out)
        }
    }
    d.deserialize_option(V)
}

fn timestamp(
    field: &str,
    text: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, RowError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => parse_sunbird_timestamp(t)
            .map(Some)
            .ok_or_else(|| format!("{field} {t:?} is not a timestamp")),
    }
}

/// `user_enrolments`.
#[derive(Debug, Deserialize)]
pub(crate) struct EnrolmentRow {
    pub(crate) userid: Option<String>,
    pub(crate) courseid: Option<String>,
    pub(crate) batchid: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub(crate) active: Option<bool>,
    pub(crate) enrolleddate: Option<String>,
    pub(crate) enrolled_date: Option<String>,
    pub(crate) completedon: Option<String>,
    #[serde(default, deserialize_with = "lenient_i32")]
    pub(crate) status: Option<i32>,
    #[serde(default, deserialize_with = "content_status")]
    pub(crate) contentstatus: ContentStatus,
    #[serde(default, deserialize_with = "list_len")]
    pub(crate) certificates: usize,
    #[serde(default, deserialize_with = "list_len")]
    pub(crate) issued_certificates: usize,
}

impl EnrolmentRow {
    pub(crate) fn into_record(self) -> Result<EnrolmentRecord, RowError> {
        Ok(EnrolmentRecord {
            user_id: UserId::new(self.userid.ok_or("userid is missing")?),
            course_id: ContentId::new(self.courseid.unwrap_or_default()),
            batch_id: BatchId::new(self.batchid.ok_or("batchid is missing")?),
            active: self.active,
            enrolled_date: timestamp("enrolled_date", self.enrolled_date.as_deref())?,
            enrolleddate: self.enrolleddate,
            completed_on: timestamp("completedon", self.completedon.as_deref())?,
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
    pub(crate) batchid: Option<String>,
    pub(crate) courseid: Option<String>,
    pub(crate) name: Option<String>,
    #[serde(default, deserialize_with = "lenient_i32")]
    pub(crate) status: Option<i32>,
    pub(crate) start_date: Option<String>,
    pub(crate) startdate: Option<String>,
    pub(crate) end_date: Option<String>,
    pub(crate) enddate: Option<String>,
    pub(crate) cert_templates: Option<BTreeMap<String, IgnoredAny>>,
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

/// `assessment_aggregator`. Text columns are borrowed from the line (or
/// the value) they are read from, and copied only for the rows kept.
#[derive(Debug, Deserialize)]
pub(crate) struct AttemptRow<'a> {
    #[serde(borrow)]
    pub(crate) user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) course_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) batch_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) content_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) attempt_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub(crate) total_score: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub(crate) total_max_score: Option<f64>,
    pub(crate) grand_total: Option<serde_json::Value>,
    #[serde(borrow)]
    pub(crate) last_attempted_on: Option<Cow<'a, str>>,
}

impl AttemptRow<'_> {
    pub(crate) fn into_attempt(self) -> Result<AssessmentAttempt, RowError> {
        Ok(AssessmentAttempt {
            user_id: UserId::new(self.user_id.ok_or("user_id is missing")?),
            course_id: ContentId::new(self.course_id.ok_or("course_id is missing")?),
            batch_id: BatchId::new(self.batch_id.unwrap_or_default()),
            content_id: ContentId::new(self.content_id.ok_or("content_id is missing")?),
            attempt_id: self.attempt_id.unwrap_or_default().into_owned(),
            total_score: self.total_score,
            total_max_score: self.total_max_score,
            grand_total: match self.grand_total {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s),
                Some(other) => Some(other.to_string()),
            },
            last_attempted_on: timestamp("last_attempted_on", self.last_attempted_on.as_deref())?,
        })
    }
}

/// `user_activity_agg`. Of the two count maps only `completedCount` is
/// kept (the other entries are checked to be numbers, as before, but not
/// stored).
#[derive(Debug, Deserialize)]
pub(crate) struct ActivityRow<'a> {
    #[serde(borrow)]
    pub(crate) activity_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) activity_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) context_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "completed_count")]
    pub(crate) agg: Option<f64>,
    #[serde(default, deserialize_with = "completed_count")]
    pub(crate) aggregates: Option<f64>,
}

/// `completedCount` of a map of text to numbers (null: none); the last one
/// when repeated.
fn completed_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of text to numbers, or null")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut count = None;
            while let Some(Name(k)) = map.next_key::<Name<'de>>()? {
                let v = map.next_value::<Option<f64>>()?;
                if k == "completedCount" {
                    count = v;
                }
            }
            Ok(count)
        }
    }
    d.deserialize_option(V)
}

impl ActivityRow<'_> {
    pub(crate) fn into_aggregate(self) -> Result<ActivityAggregate, RowError> {
        Ok(ActivityAggregate {
            aggregates_completed: self.aggregates,
            agg_completed: self.agg.map(|c| c as i64),
            activity_id: ContentId::new(self.activity_id.ok_or("activity_id is missing")?),
            user_id: UserId::new(self.user_id.ok_or("user_id is missing")?),
            context_id: self.context_id.unwrap_or_default().into_owned(),
        })
    }
}

/// `content.jsonl`: one search result entry.
#[derive(Debug, Deserialize)]
pub(crate) struct ContentRow {
    pub(crate) identifier: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) channel: Option<String>,
    pub(crate) status: Option<String>,
    #[serde(rename = "userConsent")]
    pub(crate) user_consent: Option<String>,
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

/// A `user_cache` line, decoded straight into the entry: only the fields
/// the report reads are kept (the others, names of no interest and
/// personal data alike, are skipped unread), and field names are borrowed
/// from the line. Gives what [`user_entry`] gives for the same value.
#[derive(Debug, Deserialize)]
pub(crate) struct UserCacheRow<'a> {
    #[serde(borrow)]
    pub(crate) key: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) value: UserHash,
}

/// A user hash read as [`user_entry`] reads it (see there).
#[derive(Debug)]
pub(crate) struct UserHash(pub(crate) UserEntry);

impl Default for UserHash {
    fn default() -> Self {
        Self(UserEntry::Malformed(NOT_A_HASH.into()))
    }
}

const NOT_A_HASH: &str = "the cache value is not a hash of fields";

/// A field name, borrowed from the input when it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One hash field's value: its text, null, or the wrong shape.
enum FieldText {
    Text(String),
    Null,
    Wrong,
}

impl<'de> Deserialize<'de> for FieldText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Numbers and booleans as their JSON text (serde_json's `Number`
        // prints them), as before; a list or an object is the wrong shape.
        Ok(match Scalar::deserialize(d)? {
            Scalar::Text(t) => FieldText::Text(t.into_owned()),
            Scalar::Null => FieldText::Null,
            Scalar::Bool(b) => FieldText::Text(b.to_string()),
            Scalar::Number(n) => FieldText::Text(n.to_string()),
            Scalar::Other(_) => FieldText::Wrong,
        })
    }
}

impl<'de> Deserialize<'de> for UserHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = UserHash;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a user hash")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // The last value of a repeated field counts, and the first
                // wrong field in name order is the one named: what reading
                // the object into a (sorted) map and then the hash gave.
                let mut slots: [Option<FieldText>; 13] = Default::default();
                while let Some(Name(field)) = map.next_key::<Name<'de>>()? {
                    match UserProfile::FIELDS.iter().position(|f| *f == field) {
                        Some(i) => slots[i] = Some(map.next_value::<FieldText>()?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let wrong = UserProfile::FIELDS
                    .iter()
                    .zip(&slots)
                    .filter(|(_, v)| matches!(v, Some(FieldText::Wrong)))
                    .map(|(f, _)| *f)
                    .min();
                if let Some(field) = wrong {
                    return Ok(UserHash(UserEntry::Malformed(format!(
                        "field {field} is not a string"
                    ))));
                }
                let mut p = UserProfile::default();
                for (field, v) in UserProfile::FIELDS.iter().zip(slots) {
                    if let Some(FieldText::Text(t)) = v {
                        p.set(field, t);
                    }
                }
                Ok(UserHash(UserEntry::Profile(p)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(UserHash::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(UserHash::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(UserHash::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(UserHash::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(UserHash::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(UserHash::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(UserHash::default())
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(UserHash::default())
            }
        }
        d.deserialize_any(V)
    }
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
#[cfg(feature = "cassandra")]
pub(crate) fn iso_millis(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(iso_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lenient readers as they were written over `serde_json::Value`:
    /// the reference the `Scalar` readers must match, errors included.
    fn value_f64(v: Option<serde_json::Value>) -> Result<Option<f64>, String> {
        Ok(match v {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
            Some(serde_json::Value::String(s)) => Some(
                s.trim()
                    .parse()
                    .map_err(|_| format!("expected a number, found {s:?}"))?,
            ),
            None | Some(serde_json::Value::Null) => None,
            Some(other) => return Err(format!("expected a number, found {other}")),
        })
    }

    fn value_bool(v: Option<serde_json::Value>) -> Result<Option<bool>, String> {
        Ok(match v {
            Some(serde_json::Value::Bool(b)) => Some(b),
            Some(serde_json::Value::String(s)) => Some(s.trim().eq_ignore_ascii_case("true")),
            None | Some(serde_json::Value::Null) => None,
            Some(other) => return Err(format!("expected a boolean, found {other}")),
        })
    }

    #[test]
    fn lenient_fields_read_as_the_json_value_path_did() {
        #[derive(Deserialize)]
        struct Row {
            #[serde(default, deserialize_with = "lenient_f64")]
            n: Option<f64>,
        }
        #[derive(Deserialize)]
        struct Flag {
            #[serde(default, deserialize_with = "lenient_bool")]
            b: Option<bool>,
        }
        for value in [
            "1",
            "-2",
            "2.5",
            "1e300",
            "18446744073709551615",
            "-0.0",
            "null",
            "true",
            "false",
            r#""""#,
            r#"" 7 ""#,
            r#""x""#,
            r#""TRUE ""#,
            r#""tr\u0075e""#,
            r#""1\n""#,
            "[]",
            "[1, \"a\"]",
            r#"{"a": [null]}"#,
            "{}",
        ] {
            let line = format!(r#"{{"n": {value}, "b": {value}}}"#);
            let v: serde_json::Value = serde_json::from_str(value).expect("json");
            let got = serde_json::from_str::<Row>(&line)
                .map(|r| r.n)
                .map_err(|e| e.to_string());
            match value_f64(Some(v.clone())) {
                Ok(n) => assert_eq!(
                    got.expect("reads").map(f64::to_bits),
                    n.map(f64::to_bits),
                    "{value}"
                ),
                Err(e) => assert!(got.expect_err("fails").starts_with(&e), "{value}"),
            }
            let got = serde_json::from_str::<Flag>(&line)
                .map(|r| r.b)
                .map_err(|e| e.to_string());
            match value_bool(Some(v)) {
                Ok(b) => assert_eq!(got.expect("reads"), b, "{value}"),
                Err(e) => assert!(got.expect_err("fails").starts_with(&e), "{value}"),
            }
        }
        let absent: Row = serde_json::from_str("{}").expect("reads");
        assert_eq!(absent.n, None);
    }

    #[test]
    fn user_lines_decode_as_the_json_value_path_does() {
        for value in [
            r#"{"firstname": "A", "email": "x@y", "state": null, "lastname": 12, "board": true}"#,
            r#"{"cluster": 1.5e3, "block": -0.0, "rootorgid": 18446744073709551615}"#,
            r#"{"usertype": ["a"], "board": {"b": 1}, "language": ["en"]}"#,
            r#"{"state": "a", "state": "b", "district": [1], "district": "ok"}"#,
            r#"{"firstname": "Esc\u00e9 \"q\""}"#,
            r#"["user"]"#,
            r#""text""#,
            "null",
            "{}",
        ] {
            let line = format!(r#"{{"key": "user:u1", "value": {value}}}"#);
            let row: UserCacheRow = serde_json::from_str(&line).expect("decodes");
            let v: serde_json::Value = serde_json::from_str(value).expect("json");
            assert_eq!(row.value.0, user_entry(v), "{value}");
            assert_eq!(row.key.as_deref(), Some("user:u1"));
        }
        let row: UserCacheRow = serde_json::from_str(r#"{"key": "user:u1"}"#).expect("decodes");
        assert_eq!(row.value.0, user_entry(serde_json::Value::Null));
    }
}
