//! How the runner works (`RunnerConfig`, Sunbird's deployed defaults) and
//! what a run did (`RunSummary`, `BuiltBatch`): counts and ids only.

use super::*;

/// The default of [`RunnerConfig::search_max_batches`].
pub const DEFAULT_SEARCH_MAX_BATCHES: usize = 100;

/// How the runner works; the defaults are Sunbird's deployed values.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Which requests a run takes.
    pub selection: Selection,
    /// How reports are built.
    pub report: ReportOptions,
    /// The zone of the date in file names (Sunbird: +05:30).
    pub file_tz: ReportTz,
    /// Most batches one request may name (`data_exhaust.batch.limit.per.request`).
    pub batch_limit_per_request: usize,
    /// Most batches built per channel in one run.
    pub channel_max_batches: usize,
    /// Most CSV bytes built per channel in one run.
    pub channel_max_bytes: u64,
    /// The file format of requests that name none (`[job] format`); a
    /// request's `outputFormat` wins.
    pub format: OutputFormat,
    /// Most batches a `searchFilter` may resolve to (and most collections
    /// it may match): a broader search fails with a message instead of
    /// building every batch of the platform.
    pub search_max_batches: usize,
    /// How many pending rows a run reads from the store at a time
    /// ([`POLL_PAGE`] by default).
    pub poll_page: usize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            selection: Selection::progress_exhaust(),
            report: ReportOptions::default(),
            file_tz: ReportTz::ist(),
            batch_limit_per_request: 20,
            channel_max_batches: 30,
            channel_max_bytes: 1 << 30,
            format: OutputFormat::Csv,
            search_max_batches: DEFAULT_SEARCH_MAX_BATCHES,
            poll_page: POLL_PAGE,
        }
    }
}

/// One batch built and stored in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltBatch {
    /// The request.
    pub request_id: String,
    /// The batch.
    pub batch_id: String,
    /// Rows in the CSV.
    pub rows: usize,
    /// The CSV's size (the `fileSize` recorded and counted against limits).
    pub csv_bytes: u64,
    /// The stored zip's key.
    pub key: String,
    /// The zip's size.
    pub zip_bytes: u64,
    /// What each source read for this batch.
    pub reads: Vec<(&'static str, ReadStats)>,
    /// Time taken.
    pub elapsed: Duration,
}

/// What a run did: counts and ids only, never personal data or keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Requests this run looked at.
    pub total: usize,
    /// Requests that ended SUCCESS.
    pub succeeded: usize,
    /// Requests that ended FAILED.
    pub failed: usize,
    /// Requests sent back to SUBMITTED (limits reached, or a source or the
    /// storage unavailable).
    pub resubmitted: usize,
    /// Requests that took another request's outcome.
    pub duplicates: usize,
    /// Requests held by another worker.
    pub skipped: usize,
    /// Requests released unfinished because the run was stopped.
    pub released: usize,
    /// Requests left as they were because the store failed (retried by a
    /// later run), with the store's message.
    pub store_errors: Vec<String>,
    /// Source failures met (a store of the report's data or the preference
    /// service down, timing out or holding bad data), one per batch or
    /// request they stopped.
    pub source_errors: usize,
    /// The batches built.
    pub batches: Vec<BuiltBatch>,
    /// Time taken.
    pub elapsed: Duration,
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.batches {
            write!(
                f,
                "request {} batch {}: {} rows, {} bytes, {:.2}s -> {}",
                b.request_id,
                b.batch_id,
                b.rows,
                b.csv_bytes,
                b.elapsed.as_secs_f64(),
                b.key
            )?;
            for (name, r) in &b.reads {
                write!(
                    f,
                    "; {name} {} queries {} rows {} bytes",
                    r.queries, r.rows, r.bytes
                )?;
            }
            writeln!(f)?;
        }
        for e in &self.store_errors {
            writeln!(f, "store error: {e}")?;
        }
        write!(
            f,
            "requests: {} total, {} succeeded, {} failed, {} resubmitted, {} duplicates, {} held elsewhere, {} released, {} source errors; {:.2}s",
            self.total,
            self.succeeded,
            self.failed,
            self.resubmitted,
            self.duplicates,
            self.skipped,
            self.released,
            self.source_errors,
            self.elapsed.as_secs_f64()
        )
    }
}
