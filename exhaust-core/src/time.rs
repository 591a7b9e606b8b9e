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
    // Almost every stored timestamp has one of two fixed layouts; reading
    // them by position is many times faster than chrono's format parser,
    // which matters at a million enrolments.
    if let Some(t) = parse_fixed_layout(s.as_bytes()) {
        return Some(t);
    }
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

/// `YYYY-MM-DD`, a space or `T`, `HH:MM:SS`, an optional fraction after `.`
/// or `:` (Sunbird's text form), then `Z`, `+HHMM`, `+HH:MM` or nothing (UTC).
fn parse_fixed_layout(b: &[u8]) -> Option<DateTime<Utc>> {
    fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
        let part = b.get(at..at + n)?;
        part.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    }
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let date =
        NaiveDate::from_ymd_opt(digits(b, 0, 4)? as i32, digits(b, 5, 2)?, digits(b, 8, 2)?)?;
    let (h, m, sec) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b':')) {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n.min(9)..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            // Four digits, `:` anywhere among them ignored (`+0530`,
            // `+05:30`), gathered without a buffer: this runs once per
            // attempt, millions of times a report.
            let mut hhmm = [0u8; 4];
            let mut n = 0;
            for &c in rest.iter().filter(|&&c| c != b':') {
                *hhmm.get_mut(n)? = c;
                n += 1;
            }
            if n != 4 {
                return None;
            }
            let v = i64::from(digits(&hhmm, 0, 2)? * 3600 + digits(&hhmm, 2, 2)? * 60);
            if *sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let local = date.and_hms_nano_opt(h, m, sec, nanos)?;
    if offset_secs == 0 {
        // Almost every stored time is in UTC: no arithmetic at all.
        return Some(local.and_utc());
    }
    // Seconds since the epoch, less the offset: chrono's date arithmetic
    // (`NaiveDateTime - Duration`) cost more than all the rest.
    DateTime::from_timestamp(local.and_utc().timestamp() - offset_secs, nanos)
}

fn push_padded(out: &mut String, v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut n = v;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend(buf[..width].iter().map(|&c| c as char));
}

/// Seed layout timestamp: `2020-08-25 13:45:54:150+0000`, Sunbird's own text form.
pub fn format_seed_timestamp(t: DateTime<Utc>, tz: ReportTz, out: &mut String) {
    format_seed_local(tz.localize(t), out);
}

/// [`format_seed_timestamp`] of an instant already in the report's zone.
pub fn format_seed_local(local: DateTime<FixedOffset>, out: &mut String) {
    use chrono::{Datelike, Timelike};
    // Written field by field: chrono's `format` re-parses its pattern per call.
    push_padded(out, local.year().unsigned_abs(), 4);
    out.push('-');
    push_padded(out, local.month(), 2);
    out.push('-');
    push_padded(out, local.day(), 2);
    out.push(' ');
    push_padded(out, local.hour(), 2);
    out.push(':');
    push_padded(out, local.minute(), 2);
    out.push(':');
    push_padded(out, local.second(), 2);
    out.push(':');
    push_padded(out, local.nanosecond() % 1_000_000_000 / 1_000_000, 3);
    let off = local.offset().local_minus_utc();
    out.push(if off < 0 { '-' } else { '+' });
    push_padded(out, off.unsigned_abs() / 3600, 2);
    push_padded(out, off.unsigned_abs() % 3600 / 60, 2);
}

/// Lern layout date: `25/08/2020`.
pub fn format_lern_date(d: NaiveDate, out: &mut String) {
    use chrono::Datelike;
    push_padded(out, d.day(), 2);
    out.push('/');
    push_padded(out, d.month(), 2);
    out.push('/');
    push_padded(out, d.year().unsigned_abs(), 4);
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
    fn the_fast_layouts_agree_with_chrono() {
        for text in [
            "2019-11-13 05:41:50:382+0000",
            "2019-11-13 05:41:50:38+0530",
            "2019-11-16T05:41:50.000Z",
            "2019-11-16T05:41:50Z",
            "2019-11-16T05:41:50.123456789+05:30",
            "2019-11-16T05:41:50-0800",
            "2019-11-16 05:41:50",
        ] {
            let fast = parse_fixed_layout(text.as_bytes()).expect(text);
            // chrono's own parsers, after turning Sunbird's `:` before the
            // milliseconds into the usual `.`.
            let slow =
                DateTime::parse_from_str(&text.replace("50:3", "50.3"), "%Y-%m-%d %H:%M:%S%.f%z")
                    .or_else(|_| DateTime::parse_from_rfc3339(text))
                    .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z"))
                    .map(|t| t.with_timezone(&Utc))
                    .or_else(|_| {
                        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                            .map(|t| Utc.from_utc_datetime(&t))
                    })
                    .expect(text);
            assert_eq!(fast, slow, "{text}");
        }
        for bad in [
            "2019-13-01 00:00:00",
            "2019-11-16T05:41:50.Z",
            "2019-11-16T05:41:50+5",
            "2019/11/16 05:41:50",
        ] {
            assert_eq!(parse_fixed_layout(bad.as_bytes()), None, "{bad}");
        }
    }

    /// `parse_fixed_layout` as it was before its offset was read without a
    /// buffer and its instant computed from epoch seconds: the reference
    /// the faster one must match on every input.
    fn fixed_layout_before(b: &[u8]) -> Option<DateTime<Utc>> {
        fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
            let part = b.get(at..at + n)?;
            part.iter().try_fold(0u32, |acc, c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        }
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b' ' | b'T')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let date =
            NaiveDate::from_ymd_opt(digits(b, 0, 4)? as i32, digits(b, 5, 2)?, digits(b, 8, 2)?)?;
        let (h, m, sec) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
        let mut i = 19;
        let mut nanos = 0u32;
        if matches!(b.get(i), Some(b'.' | b':')) {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    nanos = nanos * 10 + u32::from(b[i] - b'0');
                }
                i += 1;
            }
            let n = i - start;
            if n == 0 {
                return None;
            }
            for _ in n.min(9)..9 {
                nanos *= 10;
            }
        }
        let offset_secs: i32 = match &b[i..] {
            [] | [b'Z'] | [b'z'] => 0,
            [sign @ (b'+' | b'-'), rest @ ..] => {
                let rest: Vec<u8> = rest.iter().copied().filter(|c| *c != b':').collect();
                if rest.len() != 4 {
                    return None;
                }
                let hh = digits(&rest, 0, 2)? as i32;
                let mm = digits(&rest, 2, 2)? as i32;
                let v = hh * 3600 + mm * 60;
                if *sign == b'-' { -v } else { v }
            }
            _ => return None,
        };
        let local = date.and_hms_nano_opt(h, m, sec, nanos)?;
        let utc = local - chrono::Duration::seconds(i64::from(offset_secs));
        Some(Utc.from_utc_datetime(&utc))
    }

    proptest::proptest! {
        /// The same instant (or none) as before, for texts near the layout:
        /// every date and time field, fractions of any length, offsets with
        /// colons anywhere, and stray characters.
        #[test]
        fn the_fixed_layout_parses_as_before(
            text in "[0-9]{4}-[01][0-9]-[0-3][0-9][ T][0-2][0-9]:[0-6][0-9]:[0-6][0-9]\
                     ([.:][0-9]{0,12})?(Z|z|[+-][0-9:]{0,7}|[+-][0-9]{2}:?[0-9]{2}|x|)",
        ) {
            proptest::prop_assert_eq!(
                parse_fixed_layout(text.as_bytes()),
                fixed_layout_before(text.as_bytes())
            );
        }

        #[test]
        fn any_text_parses_as_before(text in "[0-9:+\\-TZ .]{0,32}") {
            proptest::prop_assert_eq!(
                parse_fixed_layout(text.as_bytes()),
                fixed_layout_before(text.as_bytes())
            );
        }
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
