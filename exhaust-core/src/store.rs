//! The request store trait: where `job_request` rows live (PostgreSQL as
//! Sunbird deploys it, or an embedded SQLite file), how a worker claims one,
//! and what the API reads and writes. The rules of what to write are in
//! [`crate::request`]; implementations only store and lock.
//!
//! Claiming contract: [`RequestStore::claim`] returns a claim only when no
//! other worker (thread, process or machine) holds the request, and only
//! while the row is still eligible. The claim is a lock that the store
//! releases when the claim is finished, released or dropped, and also when
//! the worker dies (a PostgreSQL session advisory lock, an OS file lock), so
//! a request left `PROCESSING` by a dead worker can be claimed again.

use crate::request::{JobRequest, ProcessedBatch, RequestOutcome, RequestStatus};
use chrono::{DateTime, Utc};
use std::future::Future;

/// A request store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database is down, timed out or refused: retry later.
    #[error("request store is unavailable: {0}")]
    Unavailable(String),
    /// A stored row cannot be read (a status or JSON Sunbird never writes).
    #[error("request store holds a row that cannot be read: {0}")]
    BadData(String),
    /// The store refused the operation (a schema it cannot use, a claim
    /// that is no longer valid).
    #[error("request store refused: {0}")]
    Refused(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which requests a run takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The job id (`progress-exhaust`).
    pub job_id: String,
    /// Only this `batch_number`, when given.
    pub batch_number: Option<i32>,
}

impl Selection {
    /// Every pending request of the progress exhaust.
    pub fn progress_exhaust() -> Self {
        Self {
            job_id: crate::request::PROGRESS_EXHAUST.to_string(),
            batch_number: None,
        }
    }

    /// Whether a row is one a run may take: status `SUBMITTED` or `FAILED`
    /// with fewer than three attempts, or `PROCESSING` (taken only when its
    /// worker's lock is gone, which the store checks when claiming).
    pub fn eligible(&self, r: &JobRequest) -> bool {
        let status_ok = match r.status {
            RequestStatus::Submitted | RequestStatus::Failed => {
                r.iteration < crate::request::MAX_ITERATIONS
            }
            RequestStatus::Processing => true,
            RequestStatus::Success => false,
        };
        status_ok
            && r.job_id == self.job_id
            && self.batch_number.is_none_or(|n| r.batch_number == Some(n))
    }
}

/// How a request ends a run, as written to its row: the outcome the core
/// decided ([`RequestOutcome`], from [`crate::request::decide`] and its
/// constructors) with when and how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Status, batches, files, message and whether an attempt counts.
    pub outcome: RequestOutcome,
    /// When the run finished with it (written as `dt_job_completed` for
    /// SUCCESS and FAILED).
    pub completed_at: DateTime<Utc>,
    /// Milliseconds spent on it in this run.
    pub execution_time_ms: i64,
}

/// What a [`Completion`] writes into `job_request`, decided here so that
/// every store writes the same: stores only encode these values.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnChanges {
    /// `status`.
    pub status: RequestStatus,
    /// `processed_batches`: `Some` to overwrite (written as
    /// [`processed_json`](crate::request::processed_json) gives it), `None`
    /// to leave as stored (text that is not a list of batches, see
    /// [`ProcessedBatches`](crate::request::ProcessedBatches)).
    pub processed_batches: Option<Vec<ProcessedBatch>>,
    /// `download_urls`: `Some` to overwrite, `None` to leave as stored.
    pub download_urls: Option<Vec<String>>,
    /// `err_message` (`None` clears it).
    pub err_message: Option<String>,
    /// Added to `iteration`: 1 when the run counts as an attempt.
    pub iteration_step: i32,
    /// `dt_job_completed`: `Some` for SUCCESS and FAILED, `None` to leave it.
    pub completed_at: Option<DateTime<Utc>>,
    /// `execution_time`, in milliseconds.
    pub execution_time_ms: i64,
}

impl Completion {
    /// The columns this completion changes. SUCCESS records its zips'
    /// keys; FAILED empties `download_urls` (Sunbird's test expects an empty
    /// list: a failed request has nothing to download); a request going
    /// back to SUBMITTED keeps what is stored. Only SUCCESS and FAILED set
    /// `dt_job_completed`.
    pub fn column_changes(&self) -> ColumnChanges {
        let o = &self.outcome;
        let finished = matches!(o.status, RequestStatus::Success | RequestStatus::Failed);
        ColumnChanges {
            status: o.status,
            processed_batches: o.processed.clone(),
            download_urls: match o.status {
                RequestStatus::Success => Some(o.download_urls.clone()),
                RequestStatus::Failed => Some(Vec::new()),
                _ => None,
            },
            err_message: o.err_message.clone(),
            iteration_step: i32::from(o.count_attempt),
            completed_at: finished.then_some(self.completed_at),
            execution_time_ms: self.execution_time_ms,
        }
    }
}

/// What submitting a request did (Sunbird's resubmission rules).
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    /// A new row, `SUBMITTED`.
    Created(JobRequest),
    /// A `FAILED` row queued again (its attempts start again).
    Resubmitted(JobRequest),
    /// A `SUBMITTED`, `PROCESSING` or `SUCCESS` row, returned as it is.
    Existing(JobRequest),
}

impl Submission {
    /// The row as it now stands.
    pub fn request(&self) -> &JobRequest {
        match self {
            Self::Created(r) | Self::Resubmitted(r) | Self::Existing(r) => r,
        }
    }
}

/// Where a page of [`RequestStore::candidates`] starts: after the row with
/// this submission time and request id, in the poll's order (oldest
/// submission first, rows without one last, then by request id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollCursor {
    /// The last row's `dt_job_submitted`.
    pub submitted: Option<DateTime<Utc>>,
    /// The last row's request id.
    pub request_id: String,
}

impl PollCursor {
    /// The cursor after `row`.
    pub fn after(row: &JobRequest) -> Self {
        Self {
            submitted: row.dt_job_submitted,
            request_id: row.request_id.clone(),
        }
    }
}

/// How many pending rows a run reads from the store at a time: a run's
/// memory and each poll's work stay bounded whatever the backlog.
pub const POLL_PAGE: usize = 200;

/// Requests in the store by status, as one `COUNT ... GROUP BY` gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// `SUBMITTED`.
    pub submitted: u64,
    /// `PROCESSING`.
    pub processing: u64,
    /// `SUCCESS`.
    pub success: u64,
    /// `FAILED`.
    pub failed: u64,
}

impl StatusCounts {
    /// Adds `n` rows of the status written `status` (other texts, which
    /// Sunbird never writes, are not counted).
    pub fn add(&mut self, status: &str, n: u64) {
        match RequestStatus::parse(status) {
            Some(RequestStatus::Submitted) => self.submitted += n,
            Some(RequestStatus::Processing) => self.processing += n,
            Some(RequestStatus::Success) => self.success += n,
            Some(RequestStatus::Failed) => self.failed += n,
            None => {}
        }
    }

    /// The count of one status.
    pub fn get(&self, status: RequestStatus) -> u64 {
        match status {
            RequestStatus::Submitted => self.submitted,
            RequestStatus::Processing => self.processing,
            RequestStatus::Success => self.success,
            RequestStatus::Failed => self.failed,
        }
    }
}

/// A page of one channel's requests (the console's list): newest
/// submission first (rows without a submission time last, then by request
/// id), optionally of one status and one stored tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelQuery {
    /// The requesting org: only its requests (`requested_channel`).
    pub channel: String,
    /// Only requests in this status.
    pub status: Option<RequestStatus>,
    /// Only requests of this stored tag (`<tag>:<channel>`).
    pub tag: Option<String>,
    /// Rows skipped before the page.
    pub offset: usize,
    /// Most rows returned.
    pub limit: usize,
}

impl ChannelQuery {
    /// The first `limit` requests of `channel`, of any status and tag.
    pub fn new(channel: impl Into<String>, limit: usize) -> Self {
        Self {
            channel: channel.into(),
            status: None,
            tag: None,
            offset: 0,
            limit,
        }
    }
}

/// Where `job_request` rows live.
pub trait RequestStore: Send + Sync {
    /// A held request: the lock, and whatever the store needs to write
    /// through it. Dropping it releases the lock without writing.
    type Claim: Send;

    /// A page of the rows a run may take, eligible by
    /// [`Selection::eligible`], in the poll's order (oldest submission
    /// first, rows without a submission time last, then by request id):
    /// at most `limit` rows, those after `after` when given. Rows another
    /// worker holds may be listed; claiming them fails.
    fn candidates(
        &self,
        selection: &Selection,
        after: Option<&PollCursor>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<JobRequest>>> + Send;

    /// The number of requests in each status, every job id included.
    fn count_by_status(&self) -> impl Future<Output = StoreResult<StatusCounts>> + Send;

    /// Takes a request if no other worker holds it and it is still eligible
    /// for `selection`; returns the claim and the row as read under it.
    /// `Ok(None)` when it is held elsewhere or no longer eligible.
    fn claim(
        &self,
        tag: &str,
        request_id: &str,
        selection: &Selection,
    ) -> impl Future<Output = StoreResult<Option<(Self::Claim, JobRequest)>>> + Send;

    /// Writes `PROCESSING` on a claimed request.
    fn mark_processing(
        &self,
        claim: &mut Self::Claim,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Records the batches built so far, at once, so that a crash neither
    /// redoes nor loses them.
    fn record_processed(
        &self,
        claim: &mut Self::Claim,
        processed: &[ProcessedBatch],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Writes the outcome and releases the request.
    fn finish(
        &self,
        claim: Self::Claim,
        completion: &Completion,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Releases the request without writing (shutdown): it is claimed again
    /// by the next run.
    fn release(&self, claim: Self::Claim) -> impl Future<Output = StoreResult<()>> + Send;

    /// Queues a request under Sunbird's rules: a new `(tag, request_id)` is
    /// inserted `SUBMITTED` with `iteration` 0; a `FAILED` one is queued again
    /// with its new `request_data`, requester, channel and key, and its
    /// attempts start again (a deliberate fix, SPEC section 9); any other is
    /// returned as it is. `request.dt_job_submitted` is the submission time.
    fn submit(&self, request: &JobRequest) -> impl Future<Output = StoreResult<Submission>> + Send;

    /// The request with this stored tag and id.
    fn get(
        &self,
        tag: &str,
        request_id: &str,
    ) -> impl Future<Output = StoreResult<Option<JobRequest>>> + Send;

    /// The requests with this id, whatever their tag (normally one).
    fn by_id(&self, request_id: &str) -> impl Future<Output = StoreResult<Vec<JobRequest>>> + Send;

    /// The requests of a stored tag, newest submission first, at most `limit`.
    fn list(
        &self,
        tag: &str,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<JobRequest>>> + Send;

    /// A page of one channel's requests ([`ChannelQuery`]): never a row
    /// of another channel, whatever the tag asked for.
    fn list_channel(
        &self,
        query: &ChannelQuery,
    ) -> impl Future<Output = StoreResult<Vec<JobRequest>>> + Send;

    /// Requests by status, for `exhaust status` and metrics: every request
    /// when `status` is `None`, newest submission first, at most `limit`.
    fn recent(
        &self,
        status: Option<RequestStatus>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<JobRequest>>> + Send;

    /// Whether the store answers (for health checks).
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: RequestStatus, iteration: i32, batch_number: Option<i32>) -> JobRequest {
        JobRequest {
            tag: "t:c".into(),
            request_id: "R".into(),
            job_id: "progress-exhaust".into(),
            status,
            request_data: serde_json::json!({"batchId": "b"}),
            requested_by: "u".into(),
            requested_channel: "c".into(),
            dt_job_submitted: None,
            download_urls: vec![],
            dt_file_created: None,
            dt_job_completed: None,
            execution_time: None,
            err_message: None,
            iteration,
            encryption_key: None,
            batch_number,
            processed_batches: None,
        }
    }

    #[test]
    fn a_run_takes_pending_and_failed_requests_below_three_attempts() {
        let s = Selection::progress_exhaust();
        assert!(s.eligible(&row(RequestStatus::Submitted, 0, None)));
        assert!(s.eligible(&row(RequestStatus::Failed, 2, None)));
        assert!(!s.eligible(&row(RequestStatus::Failed, 3, None)));
        assert!(!s.eligible(&row(RequestStatus::Submitted, 3, None)));
        assert!(!s.eligible(&row(RequestStatus::Success, 0, None)));
        // PROCESSING rows are candidates; the store's lock decides.
        assert!(s.eligible(&row(RequestStatus::Processing, 0, None)));
        let mut other_job = row(RequestStatus::Submitted, 0, None);
        other_job.job_id = "response-exhaust".into();
        assert!(!s.eligible(&other_job));
    }

    #[test]
    fn a_batch_number_narrows_the_selection() {
        let s = Selection {
            batch_number: Some(2),
            ..Selection::progress_exhaust()
        };
        assert!(s.eligible(&row(RequestStatus::Submitted, 0, Some(2))));
        assert!(!s.eligible(&row(RequestStatus::Submitted, 0, Some(1))));
        assert!(!s.eligible(&row(RequestStatus::Submitted, 0, None)));
    }

    #[test]
    fn a_completion_changes_the_columns_its_status_calls_for() {
        let at = chrono::TimeZone::timestamp_millis_opt(&Utc, 1_705_312_800_000)
            .single()
            .expect("time");
        let completion = |status, count_attempt| Completion {
            outcome: RequestOutcome {
                status,
                processed: Some(Vec::new()),
                download_urls: vec!["progress-exhaust/R/b.zip".into()],
                err_message: None,
                count_attempt,
            },
            completed_at: at,
            execution_time_ms: 42,
        };
        let success = completion(RequestStatus::Success, false).column_changes();
        assert_eq!(
            success.download_urls.as_deref(),
            Some(&["progress-exhaust/R/b.zip".to_string()][..])
        );
        assert_eq!(
            (success.completed_at, success.iteration_step),
            (Some(at), 0)
        );
        let failed = completion(RequestStatus::Failed, true).column_changes();
        assert_eq!(
            failed.download_urls,
            Some(Vec::new()),
            "a failure has nothing to download"
        );
        assert_eq!((failed.completed_at, failed.iteration_step), (Some(at), 1));
        let back = completion(RequestStatus::Submitted, false).column_changes();
        assert_eq!(back.download_urls, None, "stored links are kept");
        assert_eq!(back.completed_at, None);
        assert_eq!(back.execution_time_ms, 42);
        assert_eq!(back.processed_batches, Some(vec![]), "the list is written");
        // Stored text that is not a list of batches is left as it is.
        let unreadable = Completion {
            outcome: RequestOutcome::unreadable(&crate::request::RequestError::Malformed(
                "processed_batches is not a list of batches: x".into(),
            )),
            completed_at: at,
            execution_time_ms: 1,
        }
        .column_changes();
        assert_eq!(unreadable.status, RequestStatus::Failed);
        assert_eq!(unreadable.processed_batches, None);
        assert_eq!(unreadable.iteration_step, 1);
    }
}
