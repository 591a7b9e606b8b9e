//! The batch at a glance: a [`BatchSummary`] of a report's typed rows
//! (learners by progress band, completion of each unit in course order,
//! the score distribution of each assessment, enrolments and completions
//! over time, certificate status), computed row by row while the report is
//! written ([`SummarySink`] wraps any [`RowSink`]), so no second pass over
//! the sources is needed. It is a pure function of the rows and the
//! [`ReportSchema`]: the same rows give the same summary whatever wrote
//! them ([`BatchSummary::from_rows`]).
//!
//! A summary holds counts only, never a user id, name or any other field
//! of one learner, so it can be stored beside the report
//! ([`summary_key`]), served as JSON and drawn. Its [`Figure`]s (a chart
//! and the data table behind it, [`BatchSummary::figures`]) are what the
//! console draws and what `exhaust report --summary` prints, so both show
//! the same numbers.
//!
//! Memory is bounded by what the counts need, not by the learners: a band
//! per progress range, four counts per unit, a count per distinct score
//! (coarsened past [`MAX_EXACT_SCORES`] distinct values), a count per
//! date, a count per certificate status.

use crate::layout::{ColumnKey, Layout};
use crate::report::RowSink;
use crate::typed::{ColumnKind, ReportSchema, Value};
use chrono::{Datelike, Months, NaiveDate};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The version of the summary's JSON form; a reader refuses another.
pub const SUMMARY_VERSION: u32 = 1;

/// Distinct scores kept exactly per assessment; past it, scores are
/// counted on a coarser grid (doubling its step until they fit), so a
/// summary of any batch stays small.
pub const MAX_EXACT_SCORES: usize = 1024;

/// Distinct scores up to which a distribution shows one bar per score;
/// beyond, ten ranges of equal width from 0 to the highest score.
pub const MAX_SCORE_BARS: usize = 12;

/// Distinct certificate statuses kept (the report has three); others are
/// counted under `other`, so a hand-made row cannot grow the summary.
const MAX_STATUSES: usize = 16;

/// A batch's report summarised: counts only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    /// [`SUMMARY_VERSION`].
    pub version: u32,
    /// The batch.
    pub batch_id: String,
    /// Its collection.
    pub collection_id: String,
    /// The collection's name, when the report has that column.
    pub collection_name: Option<String>,
    /// The batch's name, when the report has that column.
    pub batch_name: Option<String>,
    /// `seed` or `lern`.
    pub layout: String,
    /// The zone of the report's dates (`+05:30`, `UTC`, ...).
    pub timezone: String,
    /// Rows of the report: one per learner.
    pub learners: u64,
    /// Learners by progress band, in band order; `None` when the report
    /// has no Progress column.
    pub progress: Option<Vec<BandCount>>,
    /// Each unit's completion, in course order (the report's columns).
    pub units: Vec<UnitCompletion>,
    /// Each assessment's score distribution, in course order.
    pub assessments: Vec<ScoreDistribution>,
    /// Enrolments and completions over time; `None` when the report has
    /// neither date column.
    pub timeline: Option<Timeline>,
    /// Learners by certificate status; `None` without that column.
    pub certificates: Option<Vec<StatusCount>>,
}

/// Learners whose Progress is in `min..=max`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BandCount {
    /// `Not started (0%)`, `1–24%`, ..., `Completed (100%)`.
    pub label: String,
    /// The band's lowest progress.
    pub min: u8,
    /// Its highest.
    pub max: u8,
    /// Learners in it.
    pub learners: u64,
}

/// The progress bands: (label, min, max).
pub const BANDS: [(&str, u8, u8); 6] = [
    ("Not started (0%)", 0, 0),
    ("1–24%", 1, 24),
    ("25–49%", 25, 49),
    ("50–74%", 50, 74),
    ("75–99%", 75, 99),
    ("Completed (100%)", 100, 100),
];

/// How far learners got in one unit (its `<id> - Progress` column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitCompletion {
    /// The unit's content id.
    pub content_id: String,
    /// Its name in the hierarchy, when given.
    pub name: Option<String>,
    /// Learners at 100.
    pub completed: u64,
    /// Learners from 1 to 99.
    pub in_progress: u64,
    /// Learners at 0.
    pub not_started: u64,
    /// Learners with a blank cell (a unit with no required content).
    pub blank: u64,
}

/// The scores of one assessment (its `<id> - Score` column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreDistribution {
    /// The assessment's content id.
    pub content_id: String,
    /// Its name in the hierarchy, when given.
    pub name: Option<String>,
    /// Whether scores are percentages (the lern layout) or points (seed).
    pub percent: bool,
    /// Learners with a score.
    pub attempted: u64,
    /// Learners without one.
    pub not_attempted: u64,
    /// The lowest score.
    pub min: Option<f64>,
    /// The highest score.
    pub max: Option<f64>,
    /// The mean score of those who have one.
    pub mean: Option<f64>,
    /// Whether `bins` count exact scores (each bin one score: `low ==
    /// high`) or ranges.
    pub exact: bool,
    /// The counts, lowest scores first.
    pub bins: Vec<ScoreBin>,
}

/// Learners with a score in `low..high` (the last bin: `low..=high`; an
/// exact bin: equal to `low`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreBin {
    /// The lowest score counted.
    pub low: f64,
    /// The bin's upper end.
    pub high: f64,
    /// Learners in it.
    pub learners: u64,
}

/// How long a [`Period`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// A day.
    Day,
    /// A week, from Monday.
    Week,
    /// A calendar month.
    Month,
    /// A calendar year.
    Year,
}

impl Granularity {
    /// `day`, `week`, `month`, `year`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    /// The first day of the period holding `d`.
    pub fn start_of(self, d: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => d,
            Self::Week => d - chrono::Days::new(u64::from(d.weekday().num_days_from_monday())),
            Self::Month => d.with_day(1).unwrap_or(d),
            Self::Year => NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d),
        }
    }

    /// The first day of the period after the one starting on `start`.
    fn next(self, start: NaiveDate) -> Option<NaiveDate> {
        match self {
            Self::Day => start.succ_opt(),
            Self::Week => start.checked_add_days(chrono::Days::new(7)),
            Self::Month => start.checked_add_months(Months::new(1)),
            Self::Year => start.checked_add_months(Months::new(12)),
        }
    }
}

/// Enrolments and completions over time, every period from the first
/// date to the last (periods without any included, so a line is drawn
/// to scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// How long each period is: days for a span of up to 62 days, weeks up
    /// to two years, then months (years past 50 years).
    pub granularity: Granularity,
    /// The periods, oldest first.
    pub periods: Vec<Period>,
    /// Learners whose enrolment date is blank or text no parser knows.
    pub enrolled_undated: u64,
    /// Learners without a completion date.
    pub not_completed: u64,
}

/// One period of a [`Timeline`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    /// Its first day (in the report's zone), `yyyy-mm-dd`.
    #[serde(with = "iso_date")]
    pub start: NaiveDate,
    /// Learners who enrolled in it.
    pub enrolled: u64,
    /// Learners who completed in it.
    pub completed: u64,
}

/// Learners with one certificate status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCount {
    /// The status as the report writes it (`Issued`, `Failed`, or empty).
    pub status: String,
    /// Learners with it.
    pub learners: u64,
}

/// Dates as `yyyy-mm-dd` in JSON.
mod iso_date {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&d.format("%Y-%m-%d"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let text = String::deserialize(d)?;
        NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(serde::de::Error::custom)
    }
}

/// Why a stored summary cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SummaryReadError {
    /// Not the JSON of a summary.
    #[error("the summary is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
    /// Written by another version.
    #[error("the summary has version {0}, this build reads version {SUMMARY_VERSION}")]
    Version(u32),
}

impl BatchSummary {
    /// The summary of `rows` (typed, in the schema's column order): what
    /// a [`SummarySink`] computes while the same rows are written.
    pub fn from_rows<'a>(
        schema: &ReportSchema,
        rows: impl IntoIterator<Item = &'a [Value]>,
    ) -> Self {
        let mut b = SummaryBuilder::new(schema);
        for row in rows {
            b.observe(row);
        }
        b.finish()
    }

    /// The summary as stored: compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // A summary holds only strings, numbers and lists: it always writes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A stored summary, checked for its version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SummaryReadError> {
        let s: Self = serde_json::from_slice(bytes)?;
        if s.version != SUMMARY_VERSION {
            return Err(SummaryReadError::Version(s.version));
        }
        Ok(s)
    }
}

/// The key of the summary stored beside a report file: the report's key
/// with `_summary_` for the last `_progress_` and `.json` for its extension
/// (`progress-exhaust/R/b_progress_20240115.csv` →
/// `progress-exhaust/R/b_summary_20240115.json`). The zip's key works too.
pub fn summary_key(report_key: &str) -> String {
    let (dir, name) = match report_key.rfind('/') {
        Some(i) => report_key.split_at(i + 1),
        None => ("", report_key),
    };
    let stem = match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    };
    match stem.rfind("_progress_") {
        Some(i) => format!(
            "{dir}{}_summary_{}.json",
            &stem[..i],
            &stem[i + "_progress_".len()..]
        ),
        None => format!("{dir}{stem}.summary.json"),
    }
}

/// Where each summarised column is in a row.
#[derive(Debug, Clone, Default)]
struct Columns {
    progress: Option<usize>,
    enrolled: Option<usize>,
    completed: Option<usize>,
    certificate: Option<usize>,
    collection_name: Option<usize>,
    batch_name: Option<usize>,
    units: Vec<usize>,
    scores: Vec<usize>,
}

/// The counts of one assessment's scores while rows come.
#[derive(Debug, Clone, Default)]
struct ScoreCounts {
    /// Score in millionths (scores are rounded to 6 decimals) divided by
    /// `step` → learners.
    counts: FxHashMap<i64, u64>,
    step: i64,
    attempted: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
}

impl ScoreCounts {
    fn new() -> Self {
        Self {
            step: 1,
            ..Self::default()
        }
    }

    fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.attempted += 1;
        self.sum += x;
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
        let micros = (x * 1e6).round() as i64;
        *self.counts.entry(micros.div_euclid(self.step)).or_insert(0) += 1;
        if self.counts.len() > MAX_EXACT_SCORES {
            // Twice as coarse until it fits; counts stay whole.
            while self.counts.len() > MAX_EXACT_SCORES / 2 {
                self.step *= 2;
                let mut coarser = FxHashMap::default();
                for (k, n) in self.counts.drain() {
                    *coarser.entry(k.div_euclid(2)).or_insert(0) += n;
                }
                self.counts = coarser;
            }
        }
    }

    fn finish(
        self,
        content_id: String,
        name: Option<String>,
        percent: bool,
        rows: u64,
    ) -> ScoreDistribution {
        let exact = self.step == 1 && self.counts.len() <= MAX_SCORE_BARS;
        let mut keys: Vec<(i64, u64)> = self.counts.into_iter().collect();
        keys.sort_unstable();
        let bins = if exact {
            keys.iter()
                .map(|&(k, n)| {
                    let v = k as f64 / 1e6;
                    ScoreBin {
                        low: v,
                        high: v,
                        learners: n,
                    }
                })
                .collect()
        } else {
            // Ten ranges of equal width from 0 (scores are never negative:
            // a negative one starts the first range) to the highest score.
            let low = self.min.unwrap_or(0.0).min(0.0);
            let high = self.max.unwrap_or(0.0);
            let width = (high - low) / 10.0;
            let mut bins: Vec<ScoreBin> = (0..10)
                .map(|i| ScoreBin {
                    low: round6(low + width * f64::from(i)),
                    high: if i == 9 {
                        high
                    } else {
                        round6(low + width * f64::from(i + 1))
                    },
                    learners: 0,
                })
                .collect();
            for (k, n) in keys {
                let v = (k * self.step) as f64 / 1e6;
                // The bin whose range holds v, the last one holding its end.
                let i = bins
                    .iter()
                    .position(|b| v < b.high)
                    .unwrap_or(bins.len() - 1);
                bins[i].learners += n;
            }
            bins
        };
        ScoreDistribution {
            content_id,
            name,
            percent,
            attempted: self.attempted,
            not_attempted: rows.saturating_sub(self.attempted),
            min: self.min,
            max: self.max,
            mean: (self.attempted > 0).then(|| round6(self.sum / self.attempted as f64)),
            exact,
            bins,
        }
    }
}

fn round6(x: f64) -> f64 {
    let r = (x * 1e6).round() / 1e6;
    if r == 0.0 { 0.0 } else { r }
}

/// Accumulates a [`BatchSummary`] one typed row at a time.
#[derive(Debug, Clone)]
pub struct SummaryBuilder {
    cols: Columns,
    batch_id: String,
    collection_id: String,
    collection_name: Option<String>,
    batch_name: Option<String>,
    layout: Layout,
    timezone: String,
    unit_meta: Vec<(String, Option<String>)>,
    score_meta: Vec<(String, Option<String>)>,
    rows: u64,
    bands: [u64; 6],
    /// Per unit: completed, in progress, not started, blank.
    units: Vec<[u64; 4]>,
    scores: Vec<ScoreCounts>,
    /// Days since 0001-01-01 → (enrolled, completed).
    days: FxHashMap<i32, [u64; 2]>,
    enrolled_undated: u64,
    not_completed: u64,
    statuses: Vec<(String, u64)>,
}

impl SummaryBuilder {
    /// A builder for rows of `schema`.
    pub fn new(schema: &ReportSchema) -> Self {
        let mut cols = Columns::default();
        let mut unit_meta = Vec::new();
        let mut score_meta = Vec::new();
        for (i, c) in schema.columns.iter().enumerate() {
            match c.kind {
                ColumnKind::Static(ColumnKey::Progress) => cols.progress = Some(i),
                ColumnKind::Static(ColumnKey::EnrolledDate) => cols.enrolled = Some(i),
                ColumnKind::Static(ColumnKey::CompletedOn) => cols.completed = Some(i),
                ColumnKind::Static(ColumnKey::CertificateStatus) => cols.certificate = Some(i),
                ColumnKind::Static(ColumnKey::CollectionName) => cols.collection_name = Some(i),
                ColumnKind::Static(ColumnKey::BatchName) => cols.batch_name = Some(i),
                ColumnKind::Static(_) => {}
                ColumnKind::UnitProgress => {
                    cols.units.push(i);
                    unit_meta.push(meta(c));
                }
                ColumnKind::AssessmentScore => {
                    cols.scores.push(i);
                    score_meta.push(meta(c));
                }
            }
        }
        let units = vec![[0; 4]; cols.units.len()];
        let scores = vec![ScoreCounts::new(); cols.scores.len()];
        Self {
            cols,
            batch_id: schema.batch_id.as_str().to_owned(),
            collection_id: schema.collection_id.as_str().to_owned(),
            collection_name: None,
            batch_name: None,
            layout: schema.layout,
            timezone: schema.timezone.to_string(),
            unit_meta,
            score_meta,
            rows: 0,
            bands: [0; 6],
            units,
            scores,
            days: FxHashMap::default(),
            enrolled_undated: 0,
            not_completed: 0,
            statuses: Vec::new(),
        }
    }

    /// Counts one row (values in the schema's column order).
    pub fn observe(&mut self, row: &[Value]) {
        let cell = |i: Option<usize>| i.and_then(|i| row.get(i));
        if self.rows == 0 {
            // The same on every row of a batch: the first row names them.
            let text = |v: Option<&Value>| match v {
                Some(Value::Text(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            };
            self.collection_name = text(cell(self.cols.collection_name));
            self.batch_name = text(cell(self.cols.batch_name));
        }
        self.rows += 1;
        if let Some(v) = cell(self.cols.progress) {
            let p = integer(v).unwrap_or(0).clamp(0, 100);
            let band = match p {
                0 => 0,
                1..=24 => 1,
                25..=49 => 2,
                50..=74 => 3,
                75..=99 => 4,
                _ => 5,
            };
            self.bands[band] += 1;
        }
        for (counts, &i) in self.units.iter_mut().zip(&self.cols.units) {
            let slot = match row.get(i).and_then(integer) {
                Some(p) if p >= 100 => 0,
                Some(p) if p > 0 => 1,
                Some(_) => 2,
                None => 3,
            };
            counts[slot] += 1;
        }
        for (counts, &i) in self.scores.iter_mut().zip(&self.cols.scores) {
            match row.get(i) {
                Some(Value::Number(x)) => counts.add(*x),
                Some(Value::Percent(p)) => counts.add(*p as f64),
                Some(Value::Integer(n)) => counts.add(*n as f64),
                _ => {}
            }
        }
        if self.cols.enrolled.is_some() {
            match cell(self.cols.enrolled).and_then(date_of) {
                Some(d) => self.days.entry(d.num_days_from_ce()).or_insert([0, 0])[0] += 1,
                None => self.enrolled_undated += 1,
            }
        }
        if self.cols.completed.is_some() {
            match cell(self.cols.completed).and_then(date_of) {
                Some(d) => self.days.entry(d.num_days_from_ce()).or_insert([0, 0])[1] += 1,
                None => self.not_completed += 1,
            }
        }
        if let Some(v) = cell(self.cols.certificate) {
            let text = match v {
                Value::Text(s) => s.as_str(),
                _ => "",
            };
            let full = self.statuses.len() >= MAX_STATUSES;
            let key = if full && !self.statuses.iter().any(|(s, _)| s == text) {
                "other"
            } else {
                text
            };
            match self.statuses.iter_mut().find(|(s, _)| s == key) {
                Some((_, n)) => *n += 1,
                None => self.statuses.push((key.to_owned(), 1)),
            }
        }
    }

    /// The summary of the rows seen.
    pub fn finish(self) -> BatchSummary {
        let rows = self.rows;
        let progress = self.cols.progress.map(|_| {
            BANDS
                .iter()
                .zip(self.bands)
                .map(|(&(label, min, max), learners)| BandCount {
                    label: label.to_owned(),
                    min,
                    max,
                    learners,
                })
                .collect()
        });
        let units = self
            .unit_meta
            .into_iter()
            .zip(self.units)
            .map(
                |((content_id, name), [completed, in_progress, not_started, blank])| {
                    UnitCompletion {
                        content_id,
                        name,
                        completed,
                        in_progress,
                        not_started,
                        blank,
                    }
                },
            )
            .collect();
        let percent = self.layout == Layout::Lern;
        let assessments = self
            .score_meta
            .into_iter()
            .zip(self.scores)
            .map(|((id, name), counts)| counts.finish(id, name, percent, rows))
            .collect();
        let timeline = (self.cols.enrolled.is_some() || self.cols.completed.is_some())
            .then(|| timeline(self.days, self.enrolled_undated, self.not_completed));
        let certificates = self.cols.certificate.map(|_| {
            let mut s: Vec<StatusCount> = self
                .statuses
                .into_iter()
                .map(|(status, learners)| StatusCount { status, learners })
                .collect();
            // The report's order: issued, failed, blank, then any other.
            let rank = |s: &str| match s {
                "Issued" => 0,
                "Failed" => 1,
                "" => 2,
                _ => 3,
            };
            s.sort_by(|a, b| {
                rank(&a.status)
                    .cmp(&rank(&b.status))
                    .then(a.status.cmp(&b.status))
            });
            s
        });
        BatchSummary {
            version: SUMMARY_VERSION,
            batch_id: self.batch_id,
            collection_id: self.collection_id,
            collection_name: self.collection_name,
            batch_name: self.batch_name,
            layout: self.layout.to_string(),
            timezone: self.timezone,
            learners: rows,
            progress,
            units,
            assessments,
            timeline,
            certificates,
        }
    }
}

fn meta(c: &crate::typed::SchemaColumn) -> (String, Option<String>) {
    (
        c.content_id
            .as_ref()
            .map_or_else(|| c.name.clone(), |id| id.as_str().to_owned()),
        c.content_name.clone(),
    )
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(n) => Some(*n),
        Value::Percent(p) => i64::try_from(*p).ok(),
        Value::Number(x) if x.is_finite() => Some(x.round() as i64),
        _ => None,
    }
}

/// The calendar day of a date cell in the report's zone (a timestamp
/// carries the zone's offset); text (a date no parser knew) has none.
fn date_of(v: &Value) -> Option<NaiveDate> {
    match v {
        Value::Timestamp(t) => Some(t.date_naive()),
        Value::Date(d) => Some(*d),
        _ => None,
    }
}

/// Every period from the first date to the last, at the granularity the
/// span calls for.
fn timeline(days: FxHashMap<i32, [u64; 2]>, enrolled_undated: u64, not_completed: u64) -> Timeline {
    let mut dated: Vec<(NaiveDate, [u64; 2])> = days
        .into_iter()
        .filter_map(|(n, c)| NaiveDate::from_num_days_from_ce_opt(n).map(|d| (d, c)))
        .collect();
    dated.sort_unstable_by_key(|(d, _)| *d);
    let (Some(&(first, _)), Some(&(last, _))) = (dated.first(), dated.last()) else {
        return Timeline {
            granularity: Granularity::Day,
            periods: Vec::new(),
            enrolled_undated,
            not_completed,
        };
    };
    let span = (last - first).num_days();
    let granularity = if span <= 62 {
        Granularity::Day
    } else if span <= 731 {
        Granularity::Week
    } else if span <= 50 * 366 {
        Granularity::Month
    } else {
        Granularity::Year
    };
    let mut periods: Vec<Period> = Vec::new();
    let mut start = granularity.start_of(first);
    let end = granularity.start_of(last);
    loop {
        periods.push(Period {
            start,
            enrolled: 0,
            completed: 0,
        });
        match granularity.next(start) {
            Some(n) if n <= end => start = n,
            _ => break,
        }
    }
    // Periods are in order and every date falls in one of them.
    let mut k = 0;
    for (d, [e, c]) in dated {
        let s = granularity.start_of(d);
        while periods[k].start < s {
            k += 1;
        }
        periods[k].enrolled += e;
        periods[k].completed += c;
    }
    Timeline {
        granularity,
        periods,
        enrolled_undated,
        not_completed,
    }
}

/// A [`RowSink`] that summarises every typed row on its way to `inner`:
/// the report and its summary from one pass. It asks the builder for typed
/// rows and renders the text for an inner sink that wants text, as the
/// builder would have, so the inner sink gets the same rows either way.
/// Disabled ([`SummarySink::disabled`]), it passes everything through.
#[derive(Debug)]
pub struct SummarySink<K> {
    inner: K,
    enabled: bool,
    builder: Option<SummaryBuilder>,
    inner_typed: bool,
    fields: Vec<String>,
}

impl<K: RowSink> SummarySink<K> {
    /// Summarises what goes to `inner`.
    pub fn new(inner: K) -> Self {
        Self {
            inner,
            enabled: true,
            builder: None,
            inner_typed: false,
            fields: Vec::new(),
        }
    }

    /// Passes rows to `inner` without summarising them.
    pub fn disabled(inner: K) -> Self {
        Self {
            enabled: false,
            ..Self::new(inner)
        }
    }

    /// The inner sink, and the summary of the rows it got (`None` when
    /// disabled, or when no typed schema began the report).
    pub fn into_parts(self) -> (K, Option<BatchSummary>) {
        (self.inner, self.builder.map(SummaryBuilder::finish))
    }
}

impl<K: RowSink> RowSink for SummarySink<K> {
    type Error = K::Error;

    fn begin(&mut self, header: &[String], expected_rows: usize) -> Result<(), Self::Error> {
        self.inner.begin(header, expected_rows)
    }

    fn row(&mut self, fields: &[String]) -> Result<(), Self::Error> {
        self.inner.row(fields)
    }

    fn begin_typed(
        &mut self,
        schema: &ReportSchema,
        expected_rows: usize,
    ) -> Result<(), Self::Error> {
        if self.enabled {
            self.builder = Some(SummaryBuilder::new(schema));
            self.fields = vec![String::new(); schema.columns.len()];
        }
        self.inner_typed = self.inner.wants_typed_rows();
        self.inner.begin_typed(schema, expected_rows)
    }

    fn wants_typed_rows(&self) -> bool {
        self.enabled || self.inner.wants_typed_rows()
    }

    fn typed_row(&mut self, values: &[Value]) -> Result<(), Self::Error> {
        if let Some(b) = &mut self.builder {
            b.observe(values);
        }
        if self.inner_typed {
            return self.inner.typed_row(values);
        }
        if self.fields.len() != values.len() {
            self.fields.resize(values.len(), String::new());
        }
        for (out, v) in self.fields.iter_mut().zip(values) {
            out.clear();
            v.write_text(out);
        }
        self.inner.row(&self.fields)
    }
}

// ---------------------------------------------------------------------------
// Figures: each picture's chart and the table of its numbers.

/// A table of numbers behind a picture: shown beside it, downloadable as
/// CSV, printed by `exhaust report --summary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTable {
    /// The column headers.
    pub columns: Vec<String>,
    /// Which columns hold numbers (aligned right, never neutralised).
    pub numeric: Vec<bool>,
    /// The rows, as text.
    pub rows: Vec<Vec<String>>,
}

/// What a picture draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// One bar per category.
    Bars {
        /// The categories, in order.
        categories: Vec<String>,
        /// A value per category.
        values: Vec<u64>,
    },
    /// One bar per category, split into `series` segments.
    Stacked {
        /// The categories (units), in order.
        categories: Vec<String>,
        /// The segments, in order.
        series: Vec<String>,
        /// Per category, a value per series.
        values: Vec<Vec<u64>>,
    },
    /// Lines over periods.
    Lines {
        /// The periods' labels, in order.
        periods: Vec<String>,
        /// The lines.
        series: Vec<String>,
        /// Per series, a value per period.
        values: Vec<Vec<u64>>,
    },
}

/// One picture of the batch: a chart, what it says, and its numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// A short id for links and file names (`progress`, `units`,
    /// `scores-1`, `timeline`, `certificates`).
    pub id: String,
    /// The title.
    pub title: String,
    /// What it shows, in a sentence or two, with its main numbers.
    pub description: String,
    /// The chart.
    pub chart: Chart,
    /// Its numbers.
    pub table: DataTable,
}

/// A number as the tables write it: whole numbers without a point, others
/// with up to 6 decimals.
pub fn number_text(x: f64) -> String {
    let r = round6(x);
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        let mut s = format!("{r:.6}");
        while s.ends_with('0') {
            s.pop();
        }
        s
    }
}

/// `n` of `total` as a whole percentage (`0%` of nothing).
pub fn share(n: u64, total: u64) -> String {
    if total == 0 {
        "0%".into()
    } else {
        format!("{}%", (n as f64 * 100.0 / total as f64).round() as u64)
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl ScoreDistribution {
    /// The label of a bin: the score, or its range.
    pub fn bin_label(&self, b: &ScoreBin) -> String {
        let unit = if self.percent { "%" } else { "" };
        if self.exact {
            format!("{}{unit}", number_text(b.low))
        } else {
            format!("{}–{}{unit}", number_text(b.low), number_text(b.high))
        }
    }
}

impl UnitCompletion {
    /// Its name, else its content id.
    pub fn label(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(&self.content_id)
    }
}

impl ScoreDistribution {
    /// Its name, else its content id.
    pub fn label(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(&self.content_id)
    }
}

impl Timeline {
    /// A period's label: `2024-01-15`, `week of 2024-01-15`, `2024-01`, `2024`.
    pub fn period_label(&self, p: &Period) -> String {
        match self.granularity {
            Granularity::Day => p.start.format("%Y-%m-%d").to_string(),
            Granularity::Week => format!("week of {}", p.start.format("%Y-%m-%d")),
            Granularity::Month => p.start.format("%Y-%m").to_string(),
            Granularity::Year => p.start.format("%Y").to_string(),
        }
    }
}

impl BatchSummary {
    /// The pictures of the batch, in page order: progress bands, units,
    /// one per assessment, the timeline, certificates. A part the report
    /// has no column for is left out; a part with no data is kept (its
    /// table empty, its description saying so).
    pub fn figures(&self) -> Vec<Figure> {
        let mut out = Vec::new();
        let n = self.learners;
        if let Some(bands) = &self.progress {
            let done = bands.last().map_or(0, |b| b.learners);
            let none = bands.first().map_or(0, |b| b.learners);
            out.push(Figure {
                id: "progress".into(),
                title: "Learners by progress".into(),
                description: format!(
                    "{} in the batch: {} ({}) completed the course, {} ({}) have not started.",
                    plural(n, "learner", "learners"),
                    done,
                    share(done, n),
                    none,
                    share(none, n)
                ),
                chart: Chart::Bars {
                    categories: bands.iter().map(|b| b.label.clone()).collect(),
                    values: bands.iter().map(|b| b.learners).collect(),
                },
                table: DataTable {
                    columns: vec![
                        "Progress".into(),
                        "From %".into(),
                        "To %".into(),
                        "Learners".into(),
                        "Share".into(),
                    ],
                    numeric: vec![false, true, true, true, true],
                    rows: bands
                        .iter()
                        .map(|b| {
                            vec![
                                b.label.clone(),
                                b.min.to_string(),
                                b.max.to_string(),
                                b.learners.to_string(),
                                share(b.learners, n),
                            ]
                        })
                        .collect(),
                },
            });
        }
        {
            let series = ["Completed", "In progress", "Not started"];
            let description = if self.units.is_empty() {
                "The course has no units.".to_string()
            } else {
                let lowest = self
                    .units
                    .iter()
                    .min_by_key(|u| u.completed)
                    .map(|u| {
                        format!(
                            " The unit fewest completed: {} ({} of {}).",
                            u.label(),
                            u.completed,
                            n
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "How many of the {} learners completed, started or did not start each of the {} units, in course order.{lowest}",
                    n,
                    self.units.len()
                )
            };
            out.push(Figure {
                id: "units".into(),
                title: "Completion of each unit".into(),
                description,
                chart: Chart::Stacked {
                    categories: self.units.iter().map(|u| u.label().to_owned()).collect(),
                    series: series.iter().map(|s| s.to_string()).collect(),
                    values: self
                        .units
                        .iter()
                        .map(|u| vec![u.completed, u.in_progress, u.not_started])
                        .collect(),
                },
                table: DataTable {
                    columns: [
                        "#",
                        "Unit",
                        "Content id",
                        "Completed",
                        "In progress",
                        "Not started",
                        "Blank",
                        "Share completed",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                    numeric: vec![true, false, false, true, true, true, true, true],
                    rows: self
                        .units
                        .iter()
                        .enumerate()
                        .map(|(i, u)| {
                            vec![
                                (i + 1).to_string(),
                                u.label().to_owned(),
                                u.content_id.clone(),
                                u.completed.to_string(),
                                u.in_progress.to_string(),
                                u.not_started.to_string(),
                                u.blank.to_string(),
                                share(u.completed, n),
                            ]
                        })
                        .collect(),
                },
            });
        }
        for (k, a) in self.assessments.iter().enumerate() {
            let unit = if a.percent { "%" } else { "" };
            let stats = match (a.mean, a.min, a.max) {
                (Some(mean), Some(min), Some(max)) => format!(
                    " Mean {}{unit}, lowest {}{unit}, highest {}{unit}.",
                    number_text(mean),
                    number_text(min),
                    number_text(max)
                ),
                _ => String::new(),
            };
            out.push(Figure {
                id: format!("scores-{}", k + 1),
                title: format!("Scores in {}", a.label()),
                description: format!(
                    "{} of {} learners have a score{}.{stats}",
                    a.attempted,
                    n,
                    if a.percent { " (percent)" } else { " (points)" }
                ),
                chart: Chart::Bars {
                    categories: a.bins.iter().map(|b| a.bin_label(b)).collect(),
                    values: a.bins.iter().map(|b| b.learners).collect(),
                },
                table: DataTable {
                    columns: vec![
                        "Score".into(),
                        "From".into(),
                        "To".into(),
                        "Learners".into(),
                    ],
                    numeric: vec![false, true, true, true],
                    rows: a
                        .bins
                        .iter()
                        .map(|b| {
                            vec![
                                a.bin_label(b),
                                number_text(b.low),
                                number_text(b.high),
                                b.learners.to_string(),
                            ]
                        })
                        .chain(std::iter::once(vec![
                            "No score".into(),
                            String::new(),
                            String::new(),
                            a.not_attempted.to_string(),
                        ]))
                        .collect(),
                },
            });
        }
        if let Some(t) = &self.timeline {
            let mut enrolled = 0u64;
            let mut completed = 0u64;
            let mut rows = Vec::new();
            let mut totals = (Vec::new(), Vec::new());
            for p in &t.periods {
                enrolled += p.enrolled;
                completed += p.completed;
                totals.0.push(enrolled);
                totals.1.push(completed);
                rows.push(vec![
                    t.period_label(p),
                    p.enrolled.to_string(),
                    p.completed.to_string(),
                    enrolled.to_string(),
                    completed.to_string(),
                ]);
            }
            let span = match (t.periods.first(), t.periods.last()) {
                (Some(a), Some(b)) => format!(
                    " from {} to {}, by {}",
                    t.period_label(a),
                    t.period_label(b),
                    t.granularity.as_str()
                ),
                _ => String::new(),
            };
            let undated = if t.enrolled_undated > 0 {
                format!(" {} without a readable enrolment date.", t.enrolled_undated)
            } else {
                String::new()
            };
            out.push(Figure {
                id: "timeline".into(),
                title: "Enrolments and completions over time".into(),
                description: format!(
                    "Learners enrolled and completed so far{span}: {enrolled} enrolled, {completed} completed.{undated}"
                ),
                chart: Chart::Lines {
                    periods: t.periods.iter().map(|p| t.period_label(p)).collect(),
                    series: vec!["Enrolled so far".into(), "Completed so far".into()],
                    values: vec![totals.0, totals.1],
                },
                table: DataTable {
                    columns: ["Period", "Enrolled", "Completed", "Enrolled so far", "Completed so far"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    numeric: vec![false, true, true, true, true],
                    rows,
                },
            });
        }
        if let Some(statuses) = &self.certificates {
            let label = |s: &str| {
                if s.is_empty() {
                    "None".to_string()
                } else {
                    s.to_string()
                }
            };
            let issued = statuses
                .iter()
                .find(|s| s.status == "Issued")
                .map_or(0, |s| s.learners);
            out.push(Figure {
                id: "certificates".into(),
                title: "Certificate status".into(),
                description: format!(
                    "{issued} of {n} learners ({}) have a certificate issued.",
                    share(issued, n)
                ),
                chart: Chart::Bars {
                    categories: statuses.iter().map(|s| label(&s.status)).collect(),
                    values: statuses.iter().map(|s| s.learners).collect(),
                },
                table: DataTable {
                    columns: vec![
                        "Certificate status".into(),
                        "Learners".into(),
                        "Share".into(),
                    ],
                    numeric: vec![false, true, true],
                    rows: statuses
                        .iter()
                        .map(|s| {
                            vec![
                                label(&s.status),
                                s.learners.to_string(),
                                share(s.learners, n),
                            ]
                        })
                        .collect(),
                },
            });
        }
        out
    }
}

impl DataTable {
    /// RFC 4180 CSV (CRLF line ends). A text cell starting with `=`, `+`,
    /// `-` or `@` (names come from course authors) gets a leading `'`, so a
    /// spreadsheet shows it as text instead of running it as a formula.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut line = |cells: &[String], numeric: &[bool]| {
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let guarded;
                let c = if !numeric.get(i).copied().unwrap_or(false)
                    && c.starts_with(['=', '+', '-', '@'])
                {
                    guarded = format!("'{c}");
                    &guarded
                } else {
                    c
                };
                if c.contains([',', '"', '\r', '\n']) {
                    out.push('"');
                    out.push_str(&c.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(c);
                }
            }
            out.push_str("\r\n");
        };
        line(&self.columns, &[]);
        for r in &self.rows {
            line(r, &self.numeric);
        }
        out
    }

    /// The table for a terminal: columns padded, numbers aligned right.
    pub fn to_text(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| width(c)).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(width(c));
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut l = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    l.push_str("  ");
                }
                let pad = w - width(c);
                if self.numeric.get(i).copied().unwrap_or(false) {
                    l.extend(std::iter::repeat_n(' ', pad));
                    l.push_str(c);
                } else {
                    l.push_str(c);
                    l.extend(std::iter::repeat_n(' ', pad));
                }
            }
            let _ = writeln!(out, "{}", l.trim_end());
        };
        line(&self.columns);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule);
        for r in &self.rows {
            line(r);
        }
        out
    }
}

/// The summary as text for a terminal: each figure's title, description
/// and table.
pub fn summary_text(summary: &BatchSummary) -> String {
    let mut out = String::new();
    for f in summary.figures() {
        let _ = writeln!(out, "{}\n{}\n", f.title, f.description);
        out.push_str(&f.table.to_text());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BatchId, ContentId};
    use crate::layout::Column;
    use crate::time::ReportTz;
    use crate::typed::SchemaColumn;
    use chrono::{FixedOffset, TimeZone};

    /// A schema of: Collection Name, Progress, Enrolment Date, Completion
    /// Date, Certificate Status, two units, two assessments.
    fn schema(layout: Layout) -> ReportSchema {
        let stat = |key: ColumnKey, name: &str| SchemaColumn {
            name: name.into(),
            column: Column::Static(key),
            kind: ColumnKind::Static(key),
            value_type: crate::typed::static_type(key, layout == Layout::Lern),
            content_id: None,
            content_name: None,
        };
        let dynamic = |kind, i: usize, id: &str, name: Option<&str>| SchemaColumn {
            name: format!("{id} - x"),
            column: if kind == ColumnKind::UnitProgress {
                Column::NestedProgress(i)
            } else {
                Column::AssessmentScore(i)
            },
            kind,
            value_type: crate::typed::ValueType::Integer,
            content_id: Some(ContentId::new(id)),
            content_name: name.map(str::to_owned),
        };
        let columns = vec![
            stat(ColumnKey::CollectionName, "Collection Name"),
            stat(ColumnKey::Progress, "Progress"),
            stat(ColumnKey::EnrolledDate, "Enrolment Date"),
            stat(ColumnKey::CompletedOn, "Completion Date"),
            stat(ColumnKey::CertificateStatus, "Certificate Status"),
            dynamic(ColumnKind::UnitProgress, 0, "do_u1", Some("Unit one")),
            dynamic(ColumnKind::UnitProgress, 1, "do_u2", None),
            dynamic(ColumnKind::AssessmentScore, 0, "do_a1", Some("Quiz")),
            dynamic(ColumnKind::AssessmentScore, 1, "do_a2", None),
        ];
        ReportSchema {
            header: columns.iter().map(|c| c.name.clone()).collect(),
            columns,
            collection_id: ContentId::new("do_course"),
            batch_id: BatchId::new("b1"),
            layout,
            timezone: ReportTz::utc(),
        }
    }

    fn ts(y: i32, m: u32, d: u32, h: u32) -> Value {
        // +05:30: the calendar day is the zone's, not UTC's.
        let off = FixedOffset::east_opt(19_800).expect("offset");
        Value::Timestamp(
            off.with_ymd_and_hms(y, m, d, h, 0, 0)
                .single()
                .expect("time"),
        )
    }

    fn row(
        progress: i64,
        enrolled: Value,
        completed: Value,
        cert: &str,
        units: [Value; 2],
        scores: [Value; 2],
    ) -> Vec<Value> {
        let [u1, u2] = units;
        let [s1, s2] = scores;
        vec![
            Value::Text("Course A".into()),
            Value::Integer(progress),
            enrolled,
            completed,
            Value::Text(cert.into()),
            u1,
            u2,
            s1,
            s2,
        ]
    }

    fn rows() -> Vec<Vec<Value>> {
        use Value::{Empty, Integer as I, Number as N};
        vec![
            row(
                0,
                ts(2024, 1, 1, 10),
                Empty,
                "",
                [I(0), Empty],
                [Empty, Empty],
            ),
            row(
                10,
                ts(2024, 1, 1, 23),
                Empty,
                "",
                [I(50), Empty],
                [N(3.0), Empty],
            ),
            row(
                49,
                ts(2024, 1, 3, 1),
                Empty,
                "",
                [I(100), Empty],
                [N(7.5), N(1.0)],
            ),
            row(
                75,
                Value::Text("15-13-2024".into()),
                Empty,
                "",
                [I(100), Empty],
                [N(7.5), Empty],
            ),
            row(
                100,
                ts(2024, 1, 2, 9),
                ts(2024, 1, 10, 9),
                "Issued",
                [I(100), Empty],
                [N(10.0), N(2.0)],
            ),
            row(
                100,
                ts(2024, 1, 2, 9),
                ts(2024, 1, 3, 9),
                "Failed",
                [I(100), Empty],
                [N(10.0), Empty],
            ),
        ]
    }

    fn summary() -> BatchSummary {
        let rows = rows();
        BatchSummary::from_rows(&schema(Layout::Seed), rows.iter().map(Vec::as_slice))
    }

    #[test]
    fn bands_units_and_certificates_count_the_rows() {
        let s = summary();
        assert_eq!(s.learners, 6);
        assert_eq!(s.collection_name.as_deref(), Some("Course A"));
        assert_eq!(s.batch_name, None, "no Batch Name column");
        let bands: Vec<u64> = s
            .progress
            .as_ref()
            .expect("bands")
            .iter()
            .map(|b| b.learners)
            .collect();
        assert_eq!(bands, [1, 1, 1, 0, 1, 2]);
        assert_eq!(
            s.units[0],
            UnitCompletion {
                content_id: "do_u1".into(),
                name: Some("Unit one".into()),
                completed: 4,
                in_progress: 1,
                not_started: 1,
                blank: 0,
            }
        );
        assert_eq!((s.units[1].blank, s.units[1].label()), (6, "do_u2"));
        let certs: Vec<(&str, u64)> = s
            .certificates
            .as_ref()
            .expect("certificates")
            .iter()
            .map(|c| (c.status.as_str(), c.learners))
            .collect();
        assert_eq!(certs, [("Issued", 1), ("Failed", 1), ("", 4)]);
    }

    #[test]
    fn few_scores_are_counted_exactly_with_their_mean() {
        let s = summary();
        let a = &s.assessments[0];
        assert_eq!((a.attempted, a.not_attempted, a.exact), (5, 1, true));
        let bins: Vec<(f64, u64)> = a.bins.iter().map(|b| (b.low, b.learners)).collect();
        assert_eq!(bins, [(3.0, 1), (7.5, 2), (10.0, 2)]);
        assert_eq!((a.min, a.max, a.mean), (Some(3.0), Some(10.0), Some(7.6)));
        assert_eq!(a.bin_label(&a.bins[1]), "7.5");
        assert_eq!(s.assessments[1].attempted, 2);
    }

    #[test]
    fn many_scores_fall_into_ten_ranges_from_zero() {
        let schema = schema(Layout::Lern);
        let rows: Vec<Vec<Value>> = (0..=100u64)
            .map(|p| {
                row(
                    0,
                    Value::Empty,
                    Value::Empty,
                    "",
                    [Value::Empty, Value::Empty],
                    [Value::Percent(p), Value::Empty],
                )
            })
            .collect();
        let s = BatchSummary::from_rows(&schema, rows.iter().map(Vec::as_slice));
        let a = &s.assessments[0];
        assert!(!a.exact && a.percent);
        assert_eq!(a.bins.len(), 10);
        let counts: Vec<u64> = a.bins.iter().map(|b| b.learners).collect();
        // 0–9, 10–19, ..., 90–100 (the last range holds its end).
        assert_eq!(counts, [10, 10, 10, 10, 10, 10, 10, 10, 10, 11]);
        assert_eq!(a.bin_label(&a.bins[9]), "90–100%");
        assert_eq!(counts.iter().sum::<u64>(), a.attempted);
    }

    #[test]
    fn thousands_of_distinct_scores_stay_bounded_and_counted() {
        let mut c = ScoreCounts::new();
        for i in 0..5_000u32 {
            c.add(f64::from(i) / 7.0);
        }
        assert!(c.counts.len() <= MAX_EXACT_SCORES);
        let d = c.finish("a".into(), None, false, 5_000);
        assert_eq!(d.bins.iter().map(|b| b.learners).sum::<u64>(), 5_000);
        assert!(!d.exact);
    }

    #[test]
    fn the_timeline_counts_days_in_the_reports_zone() {
        let s = summary();
        let t = s.timeline.as_ref().expect("timeline");
        assert_eq!(t.granularity, Granularity::Day);
        let days: Vec<(String, u64, u64)> = t
            .periods
            .iter()
            .map(|p| (p.start.to_string(), p.enrolled, p.completed))
            .collect();
        assert_eq!(days[0], ("2024-01-01".to_string(), 2, 0));
        assert_eq!(days[1], ("2024-01-02".to_string(), 2, 0));
        assert_eq!(days[2], ("2024-01-03".to_string(), 1, 1));
        assert_eq!(days.len(), 10, "every day from the first to the last");
        assert_eq!(days[9], ("2024-01-10".to_string(), 0, 1));
        assert_eq!((t.enrolled_undated, t.not_completed), (1, 4));
    }

    #[test]
    fn long_spans_are_counted_by_week_month_or_year() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        let mut days = FxHashMap::default();
        days.insert(d(2024, 1, 3).num_days_from_ce(), [1, 0]);
        days.insert(d(2024, 6, 30).num_days_from_ce(), [1, 1]);
        let t = timeline(days.clone(), 0, 0);
        assert_eq!(t.granularity, Granularity::Week);
        assert_eq!(t.periods[0].start, d(2024, 1, 1), "weeks start on Monday");
        assert_eq!(t.periods.iter().map(|p| p.enrolled).sum::<u64>(), 2);
        days.insert(d(2027, 2, 1).num_days_from_ce(), [0, 1]);
        let t = timeline(days.clone(), 0, 0);
        assert_eq!(t.granularity, Granularity::Month);
        assert_eq!(t.periods.len(), 3 * 12 + 2);
        days.insert(d(1900, 2, 1).num_days_from_ce(), [1, 0]);
        let t = timeline(days, 0, 0);
        assert_eq!(t.granularity, Granularity::Year);
        assert_eq!(t.periods.len(), 128);
    }

    #[test]
    fn the_sink_summarises_what_it_passes_on_as_the_builder_would() {
        let schema = schema(Layout::Seed);
        let rows = rows();
        let mut sink = SummarySink::new(crate::report::VecSink::default());
        assert!(sink.wants_typed_rows());
        sink.begin_typed(&schema, rows.len()).expect("begin");
        for r in &rows {
            sink.typed_row(r).expect("row");
        }
        let (inner, summary) = sink.into_parts();
        assert_eq!(
            summary,
            Some(BatchSummary::from_rows(
                &schema,
                rows.iter().map(Vec::as_slice)
            ))
        );
        // The text sink got each value's text.
        assert_eq!(inner.rows.len(), rows.len());
        assert_eq!(inner.rows[2][7], "7.5");
        assert_eq!(inner.rows[4][2], "2024-01-02 09:00:00:000+0530");
        // Disabled, it only passes rows on.
        let mut off = SummarySink::disabled(crate::report::VecSink::default());
        assert!(!off.wants_typed_rows());
        off.begin_typed(&schema, 0).expect("begin");
        assert_eq!(off.into_parts().1, None);
    }

    #[test]
    fn summaries_round_trip_through_json_and_refuse_other_versions() {
        let s = summary();
        let back = BatchSummary::from_json(&s.to_json()).expect("reads");
        assert_eq!(back, s);
        let json = String::from_utf8(s.to_json()).expect("utf-8");
        assert!(json.contains("\"start\":\"2024-01-01\""), "{json}");
        let other = json.replacen("\"version\":1", "\"version\":2", 1);
        assert!(matches!(
            BatchSummary::from_json(other.as_bytes()),
            Err(SummaryReadError::Version(2))
        ));
    }

    #[test]
    fn summary_keys_sit_beside_the_report() {
        assert_eq!(
            summary_key("progress-exhaust/R/b_progress_20240115.csv"),
            "progress-exhaust/R/b_summary_20240115.json"
        );
        assert_eq!(
            summary_key("progress-exhaust/R/b_progress_x_progress_20240115.zip"),
            "progress-exhaust/R/b_progress_x_summary_20240115.json"
        );
        assert_eq!(summary_key("r.csv"), "r.summary.json");
    }

    #[test]
    fn figures_hold_the_summarys_numbers_in_their_tables() {
        let s = summary();
        let figures = s.figures();
        let ids: Vec<&str> = figures.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "progress",
                "units",
                "scores-1",
                "scores-2",
                "timeline",
                "certificates"
            ]
        );
        let progress = &figures[0];
        assert_eq!(
            progress.table.rows[5],
            ["Completed (100%)", "100", "100", "2", "33%"]
        );
        let Chart::Bars { values, .. } = &progress.chart else {
            panic!("bars")
        };
        assert_eq!(values, &[1, 1, 1, 0, 1, 2]);
        assert!(
            progress.description.contains("6 learners"),
            "{}",
            progress.description
        );
        let units = &figures[1];
        assert_eq!(
            units.table.rows[0],
            ["1", "Unit one", "do_u1", "4", "1", "1", "0", "67%"]
        );
        let scores = &figures[2];
        assert_eq!(scores.title, "Scores in Quiz");
        assert_eq!(
            scores.table.rows.last().expect("no score row"),
            &["No score", "", "", "1"]
        );
        let timeline = &figures[4];
        assert_eq!(timeline.table.rows[2], ["2024-01-03", "1", "1", "5", "1"]);
        let Chart::Lines { values, .. } = &timeline.chart else {
            panic!("lines")
        };
        assert_eq!(values[0].last(), Some(&5));
        let certs = &figures[5];
        assert_eq!(certs.table.rows[2], ["None", "4", "67%"]);
    }

    #[test]
    fn tables_write_csv_and_terminal_text() {
        let t = DataTable {
            columns: vec!["Unit".into(), "Learners".into()],
            numeric: vec![false, true],
            rows: vec![
                vec!["=cmd()".into(), "12".into()],
                vec!["a, \"b\"".into(), "3".into()],
            ],
        };
        assert_eq!(
            t.to_csv(),
            "Unit,Learners\r\n'=cmd(),12\r\n\"a, \"\"b\"\"\",3\r\n"
        );
        assert_eq!(
            t.to_text(),
            "Unit    Learners\n------  --------\n=cmd()        12\na, \"b\"         3\n"
        );
        assert_eq!(number_text(7.25), "7.25");
        assert_eq!(number_text(10.0), "10");
        assert_eq!(share(1, 3), "33%");
        assert_eq!(share(0, 0), "0%");
    }
}
