//! The content search a snapshot can answer: exact matches of the search
//! API's filters against the content table's fields.

use super::*;

/// The subset of the search API's filters a snapshot can answer: each filter
/// is a value or a list of values, matched exactly against the field.
pub(super) fn matches_filters(
    row: &serde_json::Map<String, serde_json::Value>,
    filters: &serde_json::Map<String, serde_json::Value>,
) -> SourceResult<bool> {
    for (name, wanted) in filters {
        let actual = row.get(name);
        let hit = match wanted {
            serde_json::Value::Array(values) => values.iter().any(|v| Some(v) == actual),
            serde_json::Value::Object(_) => {
                return Err(SourceError::bad_data(
                    SOURCE,
                    format!(
                        "the snapshot's search supports only exact-value filters; {name} has an operator"
                    ),
                ));
            }
            v => Some(v) == actual,
        };
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}
