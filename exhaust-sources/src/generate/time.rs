//! Time: milliseconds since the Unix epoch, formatted in the forms Sunbird
//! stores, through `chrono`.

use chrono::{DateTime, NaiveDate, Utc};

pub(super) const MINUTE_MS: i64 = 60_000;
pub(super) const DAY_MS: i64 = 86_400_000;

/// Midnight UTC of a calendar date, in milliseconds since the epoch (the
/// dates are the generator's own constants, all valid).
pub(super) fn midnight_ms(y: i32, m: u32, d: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A CQL timestamp as dsbulk writes it: `2019-11-16T05:41:50.382Z`.
pub(super) fn iso(t: i64) -> String {
    crate::rows::iso_timestamp(at(t))
}

/// The older text form Sunbird kept in text columns:
/// `2019-11-13 05:41:50:382+0000`.
pub(super) fn sunbird_text(t: i64) -> String {
    let t = at(t);
    format!(
        "{}:{:03}+0000",
        t.format("%Y-%m-%d %H:%M:%S"),
        t.timestamp_subsec_millis()
    )
}

/// A date-only text, as in `course_batch.startdate`: `2020-01-20`.
pub(super) fn date_text(t: i64) -> String {
    at(t).format("%Y-%m-%d").to_string()
}

/// A score as people write it: `7`, `7.5`.
pub(super) fn num_text(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}
