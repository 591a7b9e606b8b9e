//! How a run ends a request: the per-channel budgets of a run, each
//! batch's outcome, and the request's outcome decided from them (SPEC
//! section 6, steps 5 and 6).

use super::*;

/// What one run may still build for one channel (strict limits, as Sunbird:
/// a batch starts only while both counts are below their limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelBudget {
    /// Batches built so far in this run.
    pub batches: usize,
    /// Bytes written so far in this run.
    pub bytes: u64,
    /// The batch limit (default 30).
    pub max_batches: usize,
    /// The byte limit (default 1 GiB).
    pub max_bytes: u64,
}

impl ChannelBudget {
    /// A fresh budget with these limits.
    pub fn new(max_batches: usize, max_bytes: u64) -> Self {
        Self {
            batches: 0,
            bytes: 0,
            max_batches,
            max_bytes,
        }
    }

    /// Whether another batch may start.
    pub fn allows_another(&self) -> bool {
        self.batches < self.max_batches && self.bytes < self.max_bytes
    }

    /// Counts a built batch.
    pub fn spend(&mut self, bytes: u64) {
        self.batches += 1;
        self.bytes += bytes;
    }
}

/// What happened to one batch of a request in this run.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutcome {
    /// Built and stored.
    Built(ProcessedBatch),
    /// Could not be built; the message says why.
    Failed {
        /// The batch.
        batch: BatchId,
        /// Why.
        message: String,
    },
    /// Left for a later run: the channel's limits were reached.
    Deferred(BatchId),
    /// Could not be built for a reason that may pass (a source down, a
    /// storage write failed): left for a later run without counting an
    /// attempt.
    Retry {
        /// The batch.
        batch: BatchId,
        /// Why.
        message: String,
    },
}

/// How a request ends a run: the one outcome type, decided here (by
/// [`decide`] or the constructors below) and written by the stores as
/// [`Completion::column_changes`](crate::store::Completion::column_changes)
/// says.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOutcome {
    /// The new status.
    pub status: RequestStatus,
    /// Every batch built so far, old and new, to write to
    /// `processed_batches`; `None` leaves the stored text as it is (text
    /// that is not a list of batches, see [`ProcessedBatches`]).
    pub processed: Option<Vec<ProcessedBatch>>,
    /// The zips to record in `download_urls` (SUCCESS only).
    pub download_urls: Vec<String>,
    /// Why it failed, at most [`MAX_ERROR_CHARS`] characters.
    pub err_message: Option<String>,
    /// Whether `iteration` goes up (FAILED).
    pub count_attempt: bool,
}

impl RequestOutcome {
    /// A request refused before any batch.
    pub fn refused(e: &RequestError, processed: Vec<ProcessedBatch>) -> Self {
        Self::failed(&e.to_string(), processed)
    }

    /// FAILED with this message (cut to [`MAX_ERROR_CHARS`]), an attempt
    /// counted, the batches built so far kept for the retry.
    pub fn failed(message: &str, processed: Vec<ProcessedBatch>) -> Self {
        Self {
            status: RequestStatus::Failed,
            processed: Some(processed),
            download_urls: Vec::new(),
            err_message: Some(truncate_message(message, MAX_ERROR_CHARS)),
            count_attempt: true,
        }
    }

    /// Back to SUBMITTED without counting an attempt, because something the
    /// request needs is unavailable: `will retry: <message>`.
    pub fn retry(message: &str, processed: Vec<ProcessedBatch>) -> Self {
        Self {
            status: RequestStatus::Submitted,
            processed: Some(processed),
            download_urls: Vec::new(),
            err_message: Some(truncate_message(
                &format!("will retry: {message}"),
                MAX_ERROR_CHARS,
            )),
            count_attempt: false,
        }
    }

    /// FAILED because the stored `processed_batches` is not a list of
    /// batches (`error` says why), an attempt counted, the stored text left
    /// as it is: building again from nothing could redo batches already
    /// stored, and overwriting the text would lose what it recorded.
    pub fn unreadable(error: &RequestError) -> Self {
        Self {
            processed: None,
            ..Self::refused(error, Vec::new())
        }
    }

    /// Back to SUBMITTED because the worker was stopped (a signal, a server
    /// shutting down) before the request was done: no attempt counted, no
    /// message, the batches stored so far kept, so the next run resumes
    /// after them.
    pub fn stopped(processed: Vec<ProcessedBatch>) -> Self {
        Self {
            status: RequestStatus::Submitted,
            processed: Some(processed),
            download_urls: Vec::new(),
            err_message: None,
            count_attempt: false,
        }
    }
}

/// Decides a request's outcome from the batches built before and this run's
/// results: a failed batch fails the request (its built batches are kept for
/// the retry); a deferred batch, or one to retry because a source or the
/// storage was unavailable, sends it back to SUBMITTED with what was built
/// kept and no attempt counted; otherwise it succeeds with every file, old
/// and new. Unlike Sunbird, a request whose batches were all built by an earlier run (a
/// worker that died before recording SUCCESS) succeeds instead of failing
/// with "No data found".
pub fn decide(previous: &[ProcessedBatch], results: &[BatchOutcome]) -> RequestOutcome {
    let mut processed = previous.to_vec();
    let mut failures = Vec::new();
    let mut retries = Vec::new();
    let mut deferred = false;
    for r in results {
        match r {
            BatchOutcome::Built(p) => {
                if !processed.iter().any(|q| q.batch_id == p.batch_id) {
                    processed.push(p.clone());
                }
            }
            BatchOutcome::Failed { batch, message } => failures.push(format!("{batch}: {message}")),
            BatchOutcome::Deferred(_) => deferred = true,
            BatchOutcome::Retry { batch, message } => retries.push(format!("{batch}: {message}")),
        }
    }
    if !failures.is_empty() {
        return RequestOutcome::failed(&failures.join(", "), processed);
    }
    if !retries.is_empty() {
        return RequestOutcome::retry(&retries.join(", "), processed);
    }
    if deferred {
        return RequestOutcome {
            status: RequestStatus::Submitted,
            processed: Some(processed),
            download_urls: Vec::new(),
            err_message: None,
            count_attempt: false,
        };
    }
    if processed.is_empty() {
        return RequestOutcome::refused(&RequestError::NoDataFound, processed);
    }
    let download_urls = processed.iter().map(|p| zip_key(&p.file_path)).collect();
    RequestOutcome {
        status: RequestStatus::Success,
        processed: Some(processed),
        download_urls,
        err_message: None,
        count_attempt: false,
    }
}
