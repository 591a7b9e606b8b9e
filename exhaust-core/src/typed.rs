//! The report as a typed table: each cell a [`Value`], each column described
//! by a [`ReportSchema`] derived from the plan. The CSV text is rendered from
//! these values ([`Value::write_text`]), so every output format (CSV, Arrow,
//! Parquet, Excel) holds the same table; the writer maps the value types to
//! each format's types. Nothing here depends on a file format.

use crate::ids::{BatchId, ContentId};
use crate::layout::{Column, ColumnKey, Layout};
use crate::report::{BatchPlan, ReportOptions};
use crate::time::{ReportTz, format_lern_date, format_seed_local};
use chrono::{DateTime, FixedOffset, NaiveDate};
use std::fmt::{self, Write};
use std::str::FromStr;

/// One cell of a report row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value: an empty CSV field, a null in Arrow and Parquet, a blank
    /// Excel cell.
    Empty,
    /// Text (ids, names, certificate status).
    Text(String),
    /// A whole number (Progress, unit progress).
    Integer(i64),
    /// A seed layout score, already rounded to 6 decimals as the CSV shows
    /// it (and never `-0`).
    Number(f64),
    /// A lern layout percentage (`70` for `70%`).
    Percent(u64),
    /// A calendar date in the report's zone (lern layout dates).
    Date(NaiveDate),
    /// An instant with the report zone's offset at that instant (seed layout
    /// timestamps).
    Timestamp(DateTime<FixedOffset>),
}

impl Value {
    /// Appends the value's CSV text: what the CSV report has always shown.
    pub fn write_text(&self, out: &mut String) {
        match self {
            Self::Empty => {}
            Self::Text(s) => out.push_str(s),
            Self::Integer(i) => out.push_str(itoa::Buffer::new().format(*i)),
            Self::Number(x) => write_number(*x, out),
            Self::Percent(p) => {
                out.push_str(itoa::Buffer::new().format(*p));
                out.push('%');
            }
            Self::Date(d) => format_lern_date(*d, out),
            Self::Timestamp(t) => format_seed_local(*t, out),
        }
    }

    /// The value's CSV text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write_text(&mut s);
        s
    }

    /// A text cell's string, cleared for reuse; makes the cell a text cell
    /// first. Lets row building reuse each column's buffer row after row.
    pub(crate) fn text_buffer(&mut self) -> &mut String {
        if let Self::Text(s) = self {
            s.clear();
        } else {
            *self = Self::Text(String::new());
        }
        match self {
            Self::Text(s) => s,
            _ => unreachable!("the cell was just made a text cell"),
        }
    }
}

/// `x` as `Display` writes it. A whole number (most scores are) is written
/// as the integer it is, which is `Display`'s text for it: digits, no
/// point, no exponent, for every whole `f64` below 2^53 in size (`-0`,
/// which `Display` writes with its sign, never reaches here: scores are
/// stored without it, and it takes the general path anyway).
fn write_number(x: f64, out: &mut String) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && x.abs() < EXACT && !(x == 0.0 && x.is_sign_negative()) {
        out.push_str(itoa::Buffer::new().format(x as i64));
    } else {
        let _ = write!(out, "{x}");
    }
}

/// The type of a column's values. Every cell of the column is of this type
/// or [`Value::Empty`]; the one exception is an enrolment date whose stored
/// text could not be parsed, kept as [`Value::Text`] (the CSV shows it as
/// stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// Text; never empty-as-null: an empty text cell is an empty string.
    Text,
    /// A whole number.
    Integer,
    /// A real number.
    Number,
    /// A whole percentage.
    Percent,
    /// A calendar date.
    Date,
    /// An instant, shown in the report's zone.
    Timestamp,
}

impl ValueType {
    /// A short name: `text`, `integer`, `number`, `percent`, `date`, `timestamp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Percent => "percent",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
        }
    }
}

/// What a column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// A static column, named by its `csvColumns` key.
    Static(ColumnKey),
    /// `<id> - Progress` of a course unit (nested collection).
    UnitProgress,
    /// `<id> - Score` of an assessment.
    AssessmentScore,
}

impl ColumnKind {
    /// `static`, `unit_progress` or `assessment_score`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static(_) => "static",
            Self::UnitProgress => "unit_progress",
            Self::AssessmentScore => "assessment_score",
        }
    }
}

/// One column of the typed report.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaColumn {
    /// The header text (as in the CSV).
    pub name: String,
    /// The column in the plan.
    pub column: Column,
    /// What it is.
    pub kind: ColumnKind,
    /// The type of its values.
    pub value_type: ValueType,
    /// The unit's or assessment's content id (dynamic columns).
    pub content_id: Option<ContentId>,
    /// Its name in the hierarchy, when given (dynamic columns).
    pub content_name: Option<String>,
}

/// The typed report's columns and what the table is, known from the plan
/// before any row.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSchema {
    /// The columns, in report order.
    pub columns: Vec<SchemaColumn>,
    /// The header row (the columns' names).
    pub header: Vec<String>,
    /// The batch's collection.
    pub collection_id: ContentId,
    /// The batch.
    pub batch_id: BatchId,
    /// The layout the values follow.
    pub layout: Layout,
    /// The zone dates and timestamps are shown in.
    pub timezone: ReportTz,
}

impl ReportSchema {
    /// The schema of a planned batch built with `opts`.
    pub fn new(plan: &BatchPlan, opts: &ReportOptions) -> Self {
        let lern = opts.layout == Layout::Lern;
        let h = &plan.hierarchy;
        let columns: Vec<SchemaColumn> = plan
            .columns
            .columns
            .iter()
            .zip(&plan.columns.header)
            .map(|(&column, name)| {
                let (kind, value_type, content_id, content_name) = match column {
                    Column::Static(key) => {
                        (ColumnKind::Static(key), static_type(key, lern), None, None)
                    }
                    Column::NestedProgress(i) => (
                        ColumnKind::UnitProgress,
                        ValueType::Integer,
                        Some(h.nested[i].id.clone()),
                        h.nested[i].name.clone(),
                    ),
                    Column::AssessmentScore(i) => (
                        ColumnKind::AssessmentScore,
                        score_type(lern),
                        Some(h.assessments[i].clone()),
                        h.assessment_names.get(i).cloned().flatten(),
                    ),
                };
                SchemaColumn {
                    name: name.clone(),
                    column,
                    kind,
                    value_type,
                    content_id,
                    content_name,
                }
            })
            .collect();
        Self {
            header: plan.columns.header.clone(),
            columns,
            collection_id: plan.batch.course_id.clone(),
            batch_id: plan.batch.batch_id.clone(),
            layout: opts.layout,
            timezone: opts.timezone,
        }
    }
}

fn score_type(lern: bool) -> ValueType {
    if lern {
        ValueType::Percent
    } else {
        ValueType::Number
    }
}

/// The type of a static column in a layout.
pub fn static_type(key: ColumnKey, lern: bool) -> ValueType {
    match key {
        ColumnKey::EnrolledDate | ColumnKey::CompletedOn if lern => ValueType::Date,
        ColumnKey::EnrolledDate | ColumnKey::CompletedOn => ValueType::Timestamp,
        ColumnKey::Progress => ValueType::Integer,
        ColumnKey::TotalScore => score_type(lern),
        _ => ValueType::Text,
    }
}

/// The file formats a report can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputFormat {
    /// Sunbird's CSV (the default).
    #[default]
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC file.
    Arrow,
    /// Excel workbook.
    Xlsx,
}

impl OutputFormat {
    /// Every format.
    pub const ALL: &'static [OutputFormat] = &[Self::Csv, Self::Parquet, Self::Arrow, Self::Xlsx];

    /// Its name, as given on the command line, in configuration and in a
    /// request's `outputFormat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Arrow => "arrow",
            Self::Xlsx => "xlsx",
        }
    }

    /// Its file extension, without the dot.
    pub fn extension(self) -> &'static str {
        self.as_str()
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An output format name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format {0:?}: use csv, parquet, arrow or xlsx")]
pub struct FormatParseError(pub String);

impl FromStr for OutputFormat {
    type Err = FormatParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|f| f.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| FormatParseError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    proptest! {
        /// Numbers and integers are written as `Display` writes them,
        /// whichever path writes them.
        #[test]
        fn numbers_are_written_as_display_writes_them(
            x in prop_oneof![
                proptest::num::f64::ANY,
                (-1e16f64..1e16).prop_map(f64::trunc),
                Just(-0.0),
                Just(9_007_199_254_740_992.0),
                Just(9_007_199_254_740_993.0),
                Just(-9_007_199_254_740_991.0),
                Just(f64::INFINITY),
                Just(f64::NAN),
            ],
            i in any::<i64>(),
            p in any::<u64>(),
        ) {
            prop_assert_eq!(Value::Number(x).to_text(), format!("{x}"));
            prop_assert_eq!(Value::Integer(i).to_text(), format!("{i}"));
            prop_assert_eq!(Value::Percent(p).to_text(), format!("{p}%"));
        }
    }

    #[test]
    fn values_render_as_the_csv_shows_them() {
        let off = FixedOffset::east_opt(5 * 3600 + 1800).expect("offset");
        let t = off
            .with_ymd_and_hms(2024, 1, 15, 10, 5, 7)
            .single()
            .expect("time");
        let d = NaiveDate::from_ymd_opt(2024, 1, 5).expect("date");
        let cases = [
            (Value::Empty, ""),
            (Value::Text("a, b".into()), "a, b"),
            (Value::Integer(67), "67"),
            (Value::Number(7.5), "7.5"),
            (Value::Number(7.0), "7"),
            (Value::Percent(70), "70%"),
            (Value::Date(d), "05/01/2024"),
            (Value::Timestamp(t), "2024-01-15 10:05:07:000+0530"),
        ];
        for (v, text) in cases {
            assert_eq!(v.to_text(), text, "{v:?}");
        }
    }

    #[test]
    fn formats_parse_and_name_themselves() {
        for f in OutputFormat::ALL {
            assert_eq!(f.as_str().parse::<OutputFormat>(), Ok(*f));
        }
        assert_eq!(" Parquet ".parse(), Ok(OutputFormat::Parquet));
        let err = "pdf".parse::<OutputFormat>().unwrap_err().to_string();
        assert!(err.contains("\"pdf\"") && err.contains("xlsx"), "{err}");
        assert_eq!(OutputFormat::default(), OutputFormat::Csv);
    }

    #[test]
    fn static_types_follow_the_layout() {
        assert_eq!(static_type(ColumnKey::EnrolledDate, true), ValueType::Date);
        assert_eq!(
            static_type(ColumnKey::CompletedOn, false),
            ValueType::Timestamp
        );
        assert_eq!(static_type(ColumnKey::TotalScore, true), ValueType::Percent);
        assert_eq!(static_type(ColumnKey::TotalScore, false), ValueType::Number);
        assert_eq!(static_type(ColumnKey::BatchId, false), ValueType::Text);
        assert_eq!(static_type(ColumnKey::Progress, true), ValueType::Integer);
    }
}
