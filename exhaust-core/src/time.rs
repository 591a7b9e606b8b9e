//! The time zone that report dates render in, and the two date formats.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use std::fmt;
use std::str::FromStr;

/// A time zone given either as a fixed offset (`+05:30`, `UTC`) or an IANA
/// name (`Asia/Kolkata`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReportTz {
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
    /// A named zone with its daylight-saving rules.
    Named(chrono_tz::Tz),
}

impl ReportTz {
    /// UTC, the default zone for dates inside the report.
    pub fn utc() -> Self {
        Self::Fixed(FixedOffset::east_opt(0).expect("zero offset is valid"))
    }

    /// India Standard Time (+05:30), Sunbird's zone for file names.
    pub fn ist() -> Self {
        Self::Fixed(FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("+05:30 is valid"))
    }

    /// The local date and time of an instant in this zone, with its offset.
    pub fn localize(&self, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        match self {
            Self::Fixed(off) => t.with_timezone(off),
            Self::Named(tz) => {
                let local = t.with_timezone(tz);
                let off = local.offset().fix();
                t.with_timezone(&off)
            }
        }
    }

    /// The calendar date of an instant in this zone.
    pub fn date(&self, t: DateTime<Utc>) -> NaiveDate {
        self.localize(t).date_naive()
    }
}

impl Default for ReportTz {
    fn default() -> Self {
        Self::utc()
    }
}

impl fmt::Debug for ReportTz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ReportTz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(off) => write!(f, "{off}"),
            Self::Named(tz) => write!(f, "{}", tz.name()),
        }
    }
}

/// A time zone text that is neither an offset nor a known IANA name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown time zone {0:?}: give an offset such as +05:30, UTC, or an IANA name such as Asia/Kolkata"
)]
pub struct TzParseError(pub String);

impl FromStr for ReportTz {
    type Err = TzParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("utc")
            || t.eq_ignore_ascii_case("z")
            || t.eq_ignore_ascii_case("gmt")
        {
            return Ok(Self::utc());
        }
        if let Some(off) = parse_offset(t) {
            return Ok(Self::Fixed(off));
        }
        t.parse::<chrono_tz::Tz>()
            .map(Self::Named)
            .map_err(|_| TzParseError(s.to_owned()))
    }
}

/// `+05:30`, `+0530`, `-08`, `+5:30`.
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if !(0..=18).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// Parses Sunbird's text timestamps, as stored in `enrolleddate`:
/// `2019-11-13 05:41:50:382+0000` (milliseconds after a colon), and the usual
/// ISO-8601 forms. `None` when the text is none of them.
pub fn parse_sunbird_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S:%3f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
    ];
    for f in FORMATS {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // Without an offset the text is taken as UTC, as Cassandra stores it.
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Seed layout timestamp: `2020-08-25 13:45:54:150+0000`, Sunbird's own text form.
pub fn format_seed_timestamp(t: DateTime<Utc>, tz: ReportTz, out: &mut String) {
    use std::fmt::Write;
    let local = tz.localize(t);
    let _ = write!(out, "{}", local.format("%Y-%m-%d %H:%M:%S:%3f%z"));
}

/// Lern layout date: `25/08/2020`.
pub fn format_lern_date(d: NaiveDate, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{}", d.format("%d/%m/%Y"));
}

/// The `yyyyMMdd` stamp in report file names.
pub fn file_date_stamp(now: DateTime<Utc>, tz: ReportTz) -> String {
    tz.localize(now).format("%Y%m%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sunbird_text_timestamps() {
        let t = parse_sunbird_timestamp("2019-11-13 05:41:50:382+0000").expect("parses");
        assert_eq!(t.to_rfc3339(), "2019-11-13T05:41:50.382+00:00");
        let t = parse_sunbird_timestamp("2019-11-16T05:41:50.000Z").expect("parses");
        assert_eq!(t.to_rfc3339(), "2019-11-16T05:41:50+00:00");
        let t = parse_sunbird_timestamp("2020-01-20").expect("parses");
        assert_eq!(t.to_rfc3339(), "2020-01-20T00:00:00+00:00");
        assert_eq!(parse_sunbird_timestamp("yesterday"), None);
    }

    #[test]
    fn parses_zones() {
        assert_eq!("+05:30".parse::<ReportTz>(), Ok(ReportTz::ist()));
        assert_eq!("+0530".parse::<ReportTz>(), Ok(ReportTz::ist()));
        assert_eq!("UTC".parse::<ReportTz>(), Ok(ReportTz::utc()));
        assert!(matches!(
            "Asia/Kolkata".parse::<ReportTz>(),
            Ok(ReportTz::Named(_))
        ));
        assert!("Mars/Olympus".parse::<ReportTz>().is_err());
        assert!("+25:00".parse::<ReportTz>().is_err());
    }

    #[test]
    fn formats_in_zone() {
        let t = parse_sunbird_timestamp("2020-08-25 13:45:54:150+0000").expect("parses");
        let mut s = String::new();
        format_seed_timestamp(t, ReportTz::utc(), &mut s);
        assert_eq!(s, "2020-08-25 13:45:54:150+0000");
        s.clear();
        format_seed_timestamp(t, ReportTz::ist(), &mut s);
        assert_eq!(s, "2020-08-25 19:15:54:150+0530");
        // 20:00 UTC is already the next day in India.
        let late = parse_sunbird_timestamp("2020-08-25T20:00:00Z").expect("parses");
        assert_eq!(file_date_stamp(late, ReportTz::ist()), "20200826");
        assert_eq!(file_date_stamp(late, ReportTz::utc()), "20200825");
        let kolkata: ReportTz = "Asia/Kolkata".parse().expect("zone");
        assert_eq!(file_date_stamp(late, kolkata), "20200826");
    }
}
