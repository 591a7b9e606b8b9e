//! Cassandra rows decoded by the snapshot's row types (`crate::rows`)
//! through a serde view of the CQL row: values in the shapes `dsbulk
//! unload -c json` gives them, no JSON value built on the way.

use super::*;

/// A CQL row read through serde, as a map of column name to value (null
/// columns left out), so the snapshot's row types (`rows.rs`) decode it
/// directly: no JSON value is built, and text is borrowed from the row.
/// Values take the shapes `dsbulk unload -c json` gives them (SNAPSHOT.md),
/// so a value means the same in a snapshot and in Cassandra: timestamps
/// as ISO-8601 UTC text with milliseconds, maps as maps, lists and sets as
/// sequences, NaN and infinities as their text (which the row types parse
/// back), types the report never reads as text (which the row types refuse
/// where a number or a timestamp is expected).
pub(super) struct CqlRow<'a> {
    pub(super) columns: &'a [&'a str],
    pub(super) row: &'a Row,
}

impl<'de> serde::Deserializer<'de> for CqlRow<'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        let entries = self
            .columns
            .iter()
            .zip(&self.row.columns)
            .filter_map(|(name, value)| value.as_ref().map(|value| (Text(name), Cql(value))));
        v.visit_map(serde::de::value::MapDeserializer::new(entries))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A borrowed text, as a map key.
pub(super) struct Text<'a>(&'a str);

impl<'de> serde::de::IntoDeserializer<'de> for Text<'de> {
    type Deserializer = serde::de::value::BorrowedStrDeserializer<'de, serde::de::value::Error>;
    fn into_deserializer(self) -> Self::Deserializer {
        serde::de::value::BorrowedStrDeserializer::new(self.0)
    }
}

/// One CQL value.
pub(super) struct Cql<'a>(&'a CqlValue);

impl<'de> serde::de::IntoDeserializer<'de> for Cql<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// A map key's text: keys that are not text are written as dsbulk writes
/// them (`5`, `true`, a timestamp's ISO text).
pub(super) fn key_text(k: &CqlValue) -> Result<std::borrow::Cow<'_, str>, serde::de::value::Error> {
    Ok(match k {
        CqlValue::Text(s) | CqlValue::Ascii(s) => std::borrow::Cow::Borrowed(s.as_str()),
        other => {
            let v = <serde_json::Value as Deserialize>::deserialize(Cql(other))?;
            std::borrow::Cow::Owned(match v {
                serde_json::Value::String(s) => s,
                v => v.to_string(),
            })
        }
    })
}

impl<'de> serde::Deserializer<'de> for Cql<'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        use serde::de::value::{MapDeserializer, SeqDeserializer};
        match self.0 {
            CqlValue::Text(s) | CqlValue::Ascii(s) => v.visit_borrowed_str(s),
            CqlValue::Boolean(b) => v.visit_bool(*b),
            CqlValue::Int(i) => v.visit_i64(i64::from(*i)),
            CqlValue::BigInt(i) => v.visit_i64(*i),
            CqlValue::SmallInt(i) => v.visit_i64(i64::from(*i)),
            CqlValue::TinyInt(i) => v.visit_i64(i64::from(*i)),
            CqlValue::Counter(c) => v.visit_i64(c.0),
            CqlValue::Double(f) => float(*f, v),
            CqlValue::Float(f) => float(f64::from(*f), v),
            CqlValue::Timestamp(t) => match crate::rows::iso_millis(t.0) {
                Some(s) => v.visit_string(s),
                None => v.visit_i64(t.0),
            },
            CqlValue::List(items) | CqlValue::Set(items) => {
                v.visit_seq(SeqDeserializer::new(items.iter().map(Cql)))
            }
            CqlValue::Map(pairs) => {
                let entries = pairs
                    .iter()
                    .map(|(k, val)| key_text(k).map(|k| (k, Cql(val))))
                    .collect::<Result<Vec<_>, _>>()?;
                v.visit_map(MapDeserializer::new(
                    entries.into_iter().map(|(k, val)| (CowText(k), val)),
                ))
            }
            CqlValue::Empty => v.visit_unit(),
            CqlValue::Uuid(u) => v.visit_string(u.to_string()),
            CqlValue::Timeuuid(u) => v.visit_string(u.to_string()),
            other => v.visit_string(format!("<{other:?}>")),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            CqlValue::Empty => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A map key, borrowed or made.
pub(super) struct CowText<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::de::IntoDeserializer<'de> for CowText<'de> {
    type Deserializer = CowText<'de>;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for CowText<'de> {
    type Error = serde::de::value::Error;
    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            std::borrow::Cow::Borrowed(s) => v.visit_borrowed_str(s),
            std::borrow::Cow::Owned(s) => v.visit_string(s),
        }
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A double: JSON has no NaN or infinity, so dsbulk writes those as text,
/// and so do we (the row types parse the text back).
pub(super) fn float<'de, V: serde::de::Visitor<'de>>(
    f: f64,
    v: V,
) -> Result<V::Value, serde::de::value::Error> {
    if f.is_finite() {
        v.visit_f64(f)
    } else {
        v.visit_string(f.to_string())
    }
}

/// Decodes a row through one of the snapshot's row types.
pub(super) fn decode<'a, T: Deserialize<'a>>(
    columns: &'a [&'a str],
    row: &'a Row,
) -> Result<T, RowError> {
    T::deserialize(CqlRow { columns, row }).map_err(|e| e.to_string())
}

pub(super) fn decode_batch(columns: &[&str], row: &Row) -> Result<CourseBatch, RowError> {
    decode::<BatchRow>(columns, row)?.into_batch()
}

pub(super) fn decode_enrolment(columns: &[&str], row: &Row) -> Result<EnrolmentRecord, RowError> {
    decode::<EnrolmentRow>(columns, row)?.into_record()
}

pub(super) fn decode_attempt(columns: &[&str], row: &Row) -> Result<AssessmentAttempt, RowError> {
    decode::<AttemptRow>(columns, row)?.into_attempt()
}

pub(super) fn decode_activity(columns: &[&str], row: &Row) -> Result<ActivityAggregate, RowError> {
    decode::<ActivityRow>(columns, row)?.into_aggregate()
}

/// A text column (`None` when null).
pub(super) fn text_column(
    columns: &[&str],
    row: &Row,
    name: &str,
) -> Result<Option<String>, RowError> {
    let value = columns
        .iter()
        .position(|c| *c == name)
        .and_then(|i| row.columns.get(i))
        .and_then(Option::as_ref);
    match value {
        None | Some(CqlValue::Empty) => Ok(None),
        Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name} is not text")),
    }
}
