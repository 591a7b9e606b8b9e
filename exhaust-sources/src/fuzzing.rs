//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): the snapshot
//! reader's decoding of one line, through the same row types and
//! conversions. Not a stable API.

use crate::rows::{
    self, ActivityRow, AttemptRow, BatchRow, CacheRow, ContentRow, EnrolmentRow, HierarchyRow,
};

/// The snapshot's tables, in the order [`decode_line`] numbers them.
pub const TABLES: [&str; 8] = [
    "course_batch",
    "user_enrolments",
    "assessment_aggregator",
    "user_activity_agg",
    "content",
    "content_hierarchy",
    "relation_cache",
    "user_cache",
];

/// Decodes one line of `table` as the snapshot reader does: the key the
/// offset index takes from it, then the row and its conversion to the core
/// type. `Err` carries the reader's message; it never panics.
pub fn decode_line(table: &str, line: &[u8]) -> Result<(), String> {
    let e = |e: serde_json::Error| e.to_string();
    let key = |field: &str| {
        crate::jsonscan::top_level_str(line, field)
            .map(|_| ())
            .map_err(|e| e.0)
    };
    match table {
        "course_batch" => {
            serde_json::from_slice::<BatchRow>(line)
                .map_err(e)?
                .into_batch()?;
        }
        "user_enrolments" => {
            key("batchid")?;
            serde_json::from_slice::<EnrolmentRow>(line)
                .map_err(e)?
                .into_record()?;
        }
        "assessment_aggregator" => {
            key("user_id")?;
            serde_json::from_slice::<AttemptRow>(line)
                .map_err(e)?
                .into_attempt()?;
        }
        "user_activity_agg" => {
            key("user_id")?;
            serde_json::from_slice::<ActivityRow>(line)
                .map_err(e)?
                .into_aggregate()?;
        }
        "content" => {
            let raw: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(line).map_err(e)?;
            serde_json::from_value::<ContentRow>(serde_json::Value::Object(raw))
                .map_err(e)?
                .into_meta()?;
        }
        "content_hierarchy" => {
            key("identifier")?;
            let _ = serde_json::from_slice::<HierarchyRow>(line).map_err(e)?;
        }
        "relation_cache" => {
            let row: CacheRow = serde_json::from_slice(line).map_err(e)?;
            let _: Vec<String> = serde_json::from_value(row.value).map_err(e)?;
        }
        "user_cache" => {
            key("key")?;
            let row: CacheRow = serde_json::from_slice(line).map_err(e)?;
            let _ = rows::user_entry(row.value);
        }
        other => return Err(format!("no table {other}")),
    }
    Ok(())
}

/// Reads a user cache value (a Redis hash as JSON) as both the snapshot
/// reader and the Redis adapter do.
pub fn user_entry(value: serde_json::Value) -> exhaust_core::model::UserEntry {
    rows::user_entry(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_sample_lines_and_refuses_garbage() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sample-snapshot");
        for table in TABLES {
            let text = std::fs::read_to_string(format!("{sample}/{table}.jsonl")).expect("table");
            let line = text.lines().next().expect("a line");
            assert_eq!(decode_line(table, line.as_bytes()), Ok(()), "{table}");
            assert!(decode_line(table, b"{\"").is_err(), "{table}");
        }
        assert!(decode_line("nothing", b"{}").is_err());
    }
}
