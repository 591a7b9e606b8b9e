//! Where a request's files go: the report's key and name, and the zip's.

use super::*;

/// The key of a batch's CSV: `progress-exhaust/<request_id>/<batchid>_progress_<stamp>.csv`,
/// or without the request folder for a standalone run. `None` when the ids
/// could leave the folder (a `/`, a leading `.`, ...).
pub fn report_key(request_id: Option<&str>, batch: &BatchId, stamp: &str) -> Option<String> {
    report_key_as(request_id, batch, stamp, OutputFormat::Csv)
}

/// `<batchid>_progress_<stamp>.csv`, or `None` when the batch id cannot be
/// part of a file name.
pub fn report_file_name(batch: &BatchId, stamp: &str) -> Option<String> {
    report_file_name_as(batch, stamp, OutputFormat::Csv)
}

/// `<batchid>_progress_<stamp>.<extension>`: Sunbird's name with the
/// format's extension (`.parquet`, `.arrow`, `.xlsx`, `.csv`).
pub fn report_file_name_as(batch: &BatchId, stamp: &str, format: OutputFormat) -> Option<String> {
    safe_segment(batch.as_str()).then(|| format!("{batch}_progress_{stamp}.{}", format.extension()))
}

/// [`report_key`] for a file of `format`.
pub fn report_key_as(
    request_id: Option<&str>,
    batch: &BatchId,
    stamp: &str,
    format: OutputFormat,
) -> Option<String> {
    let name = report_file_name_as(batch, stamp, format)?;
    match request_id {
        Some(rid) if safe_segment(rid) => Some(format!("{PROGRESS_EXHAUST}/{rid}/{name}")),
        Some(_) => None,
        None => Some(format!("{PROGRESS_EXHAUST}/{name}")),
    }
}

fn safe_segment(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\', '\0'])
}

/// The zip key that `download_urls` records for a report's key (its
/// format's extension replaced by `.zip`).
pub fn zip_key(csv_key: &str) -> String {
    let stem = OutputFormat::ALL
        .iter()
        .find_map(|f| csv_key.strip_suffix(&format!(".{}", f.extension())));
    match stem {
        Some(stem) => format!("{stem}.zip"),
        None => format!("{csv_key}.zip"),
    }
}
