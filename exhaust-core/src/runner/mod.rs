//! The request flow (SPEC section 6): takes pending `job_request` rows
//! from a [`RequestStore`], builds their batches from a [`ReportSource`],
//! has each report packaged as its request's security level asks and
//! stored by a [`ReportOutput`], and records the outcome.
//!
//! It lives in the core, next to [`build_rows`], because it is the
//! application's orchestration of the core's rules, generic over traits:
//! the command line and the server run the same code against any source,
//! store, preference service and output. Every decision (validation,
//! resolution, duplicates, limits, outcomes, messages) is made by the
//! core's functions; this module sequences them with the I/O that the
//! traits do. It reads no clock and starts no timer itself: time comes
//! from an injected [`Clock`] and the stop from a [`StopSignal`]
//! (`exhaust-writer` provides the tokio clock, the `Shutdown` signal, and
//! the packaging and storage of files).
//!
//! Crash safety: a request is held through a store claim (a lock the
//! database or kernel drops when this process dies), and each built batch
//! is recorded in `processed_batches` as soon as its zip is stored, so a
//! crash neither redoes a stored batch nor loses one.
//!
//! Stopping: a run obeys a [`StopSignal`]. Once it is triggered no request
//! is claimed; the batch in hand may finish until the grace deadline; at
//! the deadline its build is dropped (the source yields between chunks,
//! see [`Cooperative`], so a build computing on this thread is dropped too)
//! and the request goes back to `SUBMITTED` with the batches already
//! stored. [`Runner::watch`] is the one polling loop around single runs.

use crate::OrgId;
use crate::cooperative::Cooperative;
use crate::report::{ReportOptions, RowSink, build_rows, plan_collection_batch};
use crate::request::{
    BatchOutcome, ChannelBudget, JobRequest, ProcessedBatch, RequestData, RequestError,
    RequestOutcome, RequestStatus, ResolveError, ResolvedBatch, decide, duplicate_key,
    report_key_as, requested_format, resolve_batches, zip_key,
};
use crate::security::{PreferenceSource, SecurityLevel};
use crate::source::{ReadStats, ReportSource, reads_between};
use crate::store::{Completion, POLL_PAGE, PollCursor, RequestStore, Selection, StoreError};
use crate::summary::{SummarySink, summary_key};
use crate::time::{ReportTz, file_date_stamp};
use crate::typed::OutputFormat;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

mod config;
mod parts;

pub use config::*;
pub use parts::*;

/// Why a batch was not built, and whether a later run may succeed.
struct BatchError {
    message: String,
    retryable: bool,
    /// A source (or the preference service) failed, as opposed to the
    /// input, the local disk or the storage: counted for the metrics.
    from_source: bool,
}

impl BatchError {
    fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            from_source: false,
        }
    }

    fn source(e: &crate::source::SourceError, context: &str) -> Self {
        Self {
            message: format!("{context}{e}"),
            retryable: e.is_retryable(),
            from_source: true,
        }
    }
}

impl From<crate::report::BuildError> for BatchError {
    fn from(e: crate::report::BuildError) -> Self {
        Self {
            retryable: e.is_retryable(),
            from_source: matches!(e, crate::report::BuildError::Source(_)),
            message: e.to_string(),
        }
    }
}

impl From<OutputError> for BatchError {
    fn from(e: OutputError) -> Self {
        Self {
            message: e.message,
            retryable: e.retryable,
            from_source: false,
        }
    }
}

/// How long a stopped run may still take after the grace deadline to write
/// the request in hand back to `SUBMITTED` (a store write). Past it the run
/// is dropped: the claim's lock dies with the connection or the process,
/// and the next run takes the request up.
pub const RELEASE_TIME: Duration = Duration::from_secs(5);

/// `work`'s output, or `None` when `stop`'s grace deadline came first
/// (then `work` is dropped, with the staged files of a build).
async fn before_deadline<T>(stop: &impl StopSignal, work: impl Future<Output = T>) -> Option<T> {
    match first(work, stop.deadline_reached()).await {
        Either::Left(v) => Some(v),
        Either::Right(()) => None,
    }
}

/// Which of two futures finished first.
enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls `a`, then `b`, until one is ready (`a` wins a tie): a biased
/// `select!` without a runtime.
async fn first<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// A batch built and packaged, not yet stored.
struct Built<T> {
    /// Its files; removed when dropped.
    staged: T,
    /// Its summary's key and JSON, stored before the zip (plain files only).
    summary: Option<(String, Vec<u8>)>,
    built: BuiltBatch,
    entry: ProcessedBatch,
    started: Instant,
}

/// What happened to one claimed request.
enum Handled {
    /// Written with this completion.
    Finished(Completion),
    /// Released unfinished (the run was stopped).
    Released,
}

/// The runner: a source, a request store, a preference service, an output
/// and a clock, with their configuration.
#[derive(Debug)]
pub struct Runner<S, R, P, O, C> {
    sources: S,
    store: R,
    prefs: P,
    output: O,
    clock: C,
    config: RunnerConfig,
}

impl<S, R, P, O, C> Runner<S, R, P, O, C>
where
    S: ReportSource,
    R: RequestStore,
    P: PreferenceSource + Sync,
    O: ReportOutput,
    C: Clock,
{
    /// A runner over these parts.
    pub fn new(sources: S, store: R, prefs: P, output: O, clock: C, config: RunnerConfig) -> Self {
        Self {
            sources,
            store,
            prefs,
            output,
            clock,
            config,
        }
    }

    /// The request store.
    pub fn store(&self) -> &R {
        &self.store
    }

    /// The sources.
    pub fn sources(&self) -> &S {
        &self.sources
    }

    /// The output.
    pub fn output(&self) -> &O {
        &self.output
    }

    /// The configuration.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Processes the pending requests once. Only a failure to list the
    /// requests fails the run; any other failure is recorded on its request
    /// (or, for a store failure, left for the next run) and the run goes on.
    pub async fn run_once(&self) -> Result<RunSummary, StoreError> {
        self.run_once_until(&AtomicBool::new(false)).await
    }

    /// As [`Runner::run_once`], stopping when `stop` is set: no new request
    /// is started, and the request in hand is released between two batches
    /// (its built batches are recorded, it goes back to `SUBMITTED`; the
    /// next run takes it up again). A batch in hand always finishes.
    pub async fn run_once_until(&self, stop: &AtomicBool) -> Result<RunSummary, StoreError> {
        self.run_once_with(stop).await
    }

    /// As [`Runner::run_once_until`] with a [`StopSignal`] that has a grace
    /// deadline (`exhaust-writer`'s `Shutdown`): besides, the batch in hand
    /// is abandoned at the deadline (its staged files removed) and its
    /// request released as above. Past the deadline plus [`RELEASE_TIME`]
    /// the run is dropped altogether (a store that does not answer), which
    /// ends in a store error.
    pub async fn run_once_with(&self, stop: &impl StopSignal) -> Result<RunSummary, StoreError> {
        let release = async {
            stop.deadline_reached().await;
            self.clock.sleep(RELEASE_TIME).await;
        };
        match first(self.run(stop), release).await {
            Either::Left(run) => run,
            Either::Right(()) => Err(StoreError::Unavailable(format!(
                "stopped: the request store did not answer within {} s of the grace deadline",
                RELEASE_TIME.as_secs()
            ))),
        }
    }

    /// The polling loop of `exhaust run --watch` and `exhaust-server
    /// --worker`: a run every `poll` until `stop` is triggered. Each run's
    /// result goes to `each`, which may end the loop early
    /// ([`ControlFlow::Break`]). A stop while waiting ends the wait at once;
    /// a stop during a run acts as in [`Runner::run_once_with`], so the loop
    /// ends within the grace period (plus [`RELEASE_TIME`]) of the stop.
    pub async fn watch<F>(&self, poll: Duration, stop: &impl StopSignal, mut each: F)
    where
        F: FnMut(Result<RunSummary, StoreError>) -> ControlFlow<()>,
    {
        while !stop.is_triggered() {
            let run = self.run_once_with(stop).await;
            if each(run).is_break() || stop.is_triggered() {
                break;
            }
            // Whichever comes first: the next poll, or a stop.
            first(self.clock.sleep(poll), stop.triggered()).await;
        }
    }

    async fn run(&self, stop: &impl StopSignal) -> Result<RunSummary, StoreError> {
        let started = self.clock.instant();
        let mut summary = RunSummary::default();
        let mut budgets: HashMap<String, ChannelBudget> = HashMap::new();
        // The pending rows, a page at a time (oldest first), so that a run's
        // memory and a poll's work stay bounded whatever the backlog. A row
        // handled on one page has moved on (or is held) by the next, and the
        // cursor never goes back, so no row is taken twice in a run.
        let mut after: Option<PollCursor> = None;
        let page_size = self.config.poll_page.max(1);
        loop {
            if stop.is_triggered() {
                break;
            }
            let page = match self
                .store
                .candidates(&self.config.selection, after.as_ref(), page_size)
                .await
            {
                Ok(p) => p,
                // Only a failure to list the first page fails the run; a
                // later one leaves the rest for the next run.
                Err(e) if after.is_none() => return Err(e),
                Err(e) => {
                    summary
                        .store_errors
                        .push(format!("listing pending requests: {e}"));
                    break;
                }
            };
            let Some(last) = page.last() else {
                break;
            };
            let next = PollCursor::after(last);
            let full = page.len() >= page_size;
            summary.total += page.len();
            for group in duplicate_groups(page) {
                if stop.is_triggered() {
                    break;
                }
                self.handle_group(group, &mut budgets, &mut summary, stop)
                    .await;
            }
            if !full {
                break;
            }
            after = Some(next);
        }
        summary.elapsed = self.clock.instant().duration_since(started);
        Ok(summary)
    }

    /// Processes a group of duplicates (SPEC section 6, step 1): the first
    /// request of the group that this worker can claim is processed; the
    /// others get its outcome.
    async fn handle_group(
        &self,
        group: Vec<JobRequest>,
        budgets: &mut HashMap<String, ChannelBudget>,
        summary: &mut RunSummary,
        stop: &impl StopSignal,
    ) {
        let mut rest = group.into_iter();
        let mut primary = None;
        for r in rest.by_ref() {
            match self
                .store
                .claim(&r.tag, &r.request_id, &self.config.selection)
                .await
            {
                Ok(Some(claimed)) => {
                    primary = Some(claimed);
                    break;
                }
                Ok(None) => summary.skipped += 1,
                Err(e) => summary.store_errors.push(format!("{}: {e}", r.request_id)),
            }
        }
        let Some((claim, row)) = primary else {
            return;
        };
        let request_id = row.request_id.clone();
        // Boxed: the request's future (build, sources, output) is deep,
        // and a caller's future holding it inline would be deeper still
        // than the compiler's layout limit.
        let handled = Box::pin(self.handle(claim, row, budgets, summary, stop));
        let completion = match handled.await {
            Ok(Handled::Finished(c)) => c,
            Ok(Handled::Released) => {
                summary.released += 1;
                return;
            }
            Err(e) => {
                summary.store_errors.push(format!("{request_id}: {e}"));
                return;
            }
        };
        count(summary, completion.outcome.status);
        for d in rest {
            match self
                .store
                .claim(&d.tag, &d.request_id, &self.config.selection)
                .await
            {
                Ok(Some((dc, _))) => match self.store.finish(dc, &completion).await {
                    Ok(()) => {
                        summary.duplicates += 1;
                        tracing::info!(
                            request_id = %d.request_id,
                            of = %request_id,
                            "duplicate request given its original's outcome"
                        );
                    }
                    Err(e) => summary.store_errors.push(format!("{}: {e}", d.request_id)),
                },
                Ok(None) => summary.skipped += 1,
                Err(e) => summary.store_errors.push(format!("{}: {e}", d.request_id)),
            }
        }
    }

    /// Processes one claimed request to its outcome.
    async fn handle(
        &self,
        mut claim: R::Claim,
        row: JobRequest,
        budgets: &mut HashMap<String, ChannelBudget>,
        summary: &mut RunSummary,
        stop: &impl StopSignal,
    ) -> Result<Handled, StoreError> {
        let started = self.clock.instant();
        let completion = |outcome: RequestOutcome| Completion {
            outcome,
            completed_at: self.clock.now(),
            execution_time_ms: i64::try_from(
                self.clock.instant().duration_since(started).as_millis(),
            )
            .unwrap_or(i64::MAX),
        };
        let rid = row.request_id.clone();
        tracing::info!(request_id = %rid, status = %row.status, attempts = row.iteration, "request claimed");

        // A request whose stored batches cannot be read fails with the
        // reason, the stored text left as it is (see `ProcessedBatches`).
        let previous = match row.processed() {
            Ok(p) => p.to_vec(),
            Err(e) => {
                let c = completion(RequestOutcome::unreadable(e));
                return self.finish(claim, c).await;
            }
        };
        let refuse = |e: &RequestError| completion(RequestOutcome::refused(e, previous.clone()));
        let data = match RequestData::parse(&row.request_data, self.config.batch_limit_per_request)
        {
            Ok(d) => d,
            Err(e) => return self.finish(claim, refuse(&e)).await,
        };

        // This run has already used the channel's limits: back to SUBMITTED
        // with what was built kept (Sunbird erases it; we do not).
        let channel = row.requested_channel.clone();
        if !self.budget(budgets, &channel).allows_another() {
            let c = completion(decide(
                &previous,
                &[BatchOutcome::Deferred(Default::default())],
            ));
            return self.finish(claim, c).await;
        }

        // A request another worker left PROCESSING (it died) is written back
        // to SUBMITTED if this run is stopped; a SUBMITTED one is just let go.
        let mut marked = row.status == RequestStatus::Processing;
        let protection = match before_deadline(stop, self.protection(&row)).await {
            None => {
                let c = marked.then(|| completion(RequestOutcome::stopped(previous)));
                return self.stopped(claim, &rid, c).await;
            }
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                summary.source_errors += usize::from(e.from_source);
                let c = completion(if e.retryable {
                    RequestOutcome::retry(&e.message, previous)
                } else {
                    RequestOutcome::failed(&e.message, previous)
                });
                return self.finish(claim, c).await;
            }
        };

        let resolved = before_deadline(
            stop,
            resolve_batches(&self.cooperative(), &data, self.config.search_max_batches),
        )
        .await;
        let batches = match resolved {
            None => {
                let c = marked.then(|| completion(RequestOutcome::stopped(previous)));
                return self.stopped(claim, &rid, c).await;
            }
            Some(Ok(b)) => b,
            Some(Err(ResolveError::Request(e))) => return self.finish(claim, refuse(&e)).await,
            Some(Err(ResolveError::Source(e))) => {
                summary.source_errors += 1;
                let c = completion(if e.is_retryable() {
                    RequestOutcome::retry(&e.to_string(), previous)
                } else {
                    RequestOutcome::failed(&e.to_string(), previous)
                });
                return self.finish(claim, c).await;
            }
        };

        self.store.mark_processing(&mut claim).await?;
        marked = true;
        let stamp = file_date_stamp(self.clock.now(), self.config.file_tz);
        let mut processed = previous.clone();
        let mut results = Vec::new();
        for rb in &batches {
            let id = rb.batch.batch_id.clone();
            if processed.iter().any(|p| p.batch_id == id.as_str()) {
                continue;
            }
            if stop.is_triggered() {
                // Everything built so far is recorded; the next run resumes.
                let c = marked.then(|| completion(RequestOutcome::stopped(processed)));
                return self.stopped(claim, &rid, c).await;
            }
            let budget = self.budget(budgets, &channel);
            if !budget.allows_another() {
                results.push(BatchOutcome::Deferred(id));
                continue;
            }
            // Building may be abandoned at the deadline; storing may not: an
            // upload cut short could leave the store's partial object behind.
            let build = Box::pin(self.build_batch(&row, rb, &protection, &stamp));
            let packaged = before_deadline(stop, build).await;
            let Some(packaged) = packaged else {
                tracing::info!(
                    request_id = %rid, batch = %id,
                    "build abandoned: the grace period after the stop ran out"
                );
                let c = marked.then(|| completion(RequestOutcome::stopped(processed)));
                return self.stopped(claim, &rid, c).await;
            };
            let stored = match packaged {
                Ok(p) => self.store_batch(p).await,
                Err(e) => Err(e),
            };
            match stored {
                Ok((built, entry)) => {
                    budget.spend(built.csv_bytes);
                    processed.push(entry.clone());
                    self.store.record_processed(&mut claim, &processed).await?;
                    tracing::info!(
                        request_id = %rid, batch = %id, rows = built.rows,
                        bytes = built.csv_bytes, "batch stored"
                    );
                    summary.batches.push(built);
                    results.push(BatchOutcome::Built(entry));
                }
                Err(e) => {
                    summary.source_errors += usize::from(e.from_source);
                    tracing::warn!(
                        request_id = %rid, batch = %id, retryable = e.retryable,
                        "batch not built: {}", e.message
                    );
                    results.push(if e.retryable {
                        BatchOutcome::Retry {
                            batch: id,
                            message: e.message,
                        }
                    } else {
                        BatchOutcome::Failed {
                            batch: id,
                            message: e.message,
                        }
                    });
                }
            }
        }
        let c = completion(decide(&previous, &results));
        self.finish(claim, c).await
    }

    /// Lets go of a request because the run was stopped: written back with
    /// `reset` (SUBMITTED, the stored batches kept) when it shows PROCESSING,
    /// else just unlocked.
    async fn stopped(
        &self,
        claim: R::Claim,
        request_id: &str,
        reset: Option<Completion>,
    ) -> Result<Handled, StoreError> {
        match reset {
            Some(c) => self.store.finish(claim, &c).await?,
            None => self.store.release(claim).await?,
        }
        tracing::info!(request_id = %request_id, "request released: the run was stopped");
        Ok(Handled::Released)
    }

    async fn finish(&self, claim: R::Claim, c: Completion) -> Result<Handled, StoreError> {
        self.store.finish(claim, &c).await?;
        tracing::info!(
            status = %c.outcome.status,
            batches = c.outcome.processed.as_ref().map_or(0, Vec::len),
            "request finished"
        );
        Ok(Handled::Finished(c))
    }

    /// What this run may still build for a channel.
    fn budget<'b>(
        &self,
        budgets: &'b mut HashMap<String, ChannelBudget>,
        channel: &str,
    ) -> &'b mut ChannelBudget {
        budgets.entry(channel.to_string()).or_insert_with(|| {
            ChannelBudget::new(
                self.config.channel_max_batches,
                self.config.channel_max_bytes,
            )
        })
    }

    /// The request's security level and the key material it needs.
    async fn protection(&self, row: &JobRequest) -> Result<Protection, BatchError> {
        let org = OrgId::new(row.requested_channel.as_str());
        let level = self
            .prefs
            .security_level(&org, &row.job_id)
            .await
            .map_err(|e| BatchError::source(&e, "reading the data security level: "))?;
        // Stored as the request holds it; the output decodes it.
        let key = row
            .encryption_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        let protection = match level {
            SecurityLevel::Plain => Ok(Protection::Plain),
            // A deliberate difference from Sunbird, whose job zips without a
            // password when the request has no key (ARCHITECTURE.md).
            SecurityLevel::PasswordProtected => key.map(Protection::Password).ok_or_else(|| {
                BatchError::fatal(
                    "the request has no encryption key, which PASSWORD_PROTECTED_DATASET needs",
                )
            }),
            SecurityLevel::TextKeyEncrypted => key.map(Protection::TextKey).ok_or_else(|| {
                BatchError::fatal(
                    "the request has no encryption key, which TEXT_KEY_ENCRYPTED_DATASET needs",
                )
            }),
            SecurityLevel::PublicKeyEncrypted => match self.prefs.public_key(&org).await {
                Ok(Some(pem)) => Ok(Protection::PublicKey(pem)),
                Ok(None) => Err(BatchError::fatal(format!(
                    "org {org} has no public key (exhaustEncryptionKey), which \
                     PUBLIC_KEY_ENCRYPTED_DATASET needs"
                ))),
                Err(e) => Err(BatchError::source(&e, "reading the org's public key: ")),
            },
        }?;
        // The key is checked before anything is built: a key that cannot
        // be used fails the request now, counting an attempt, instead of
        // after the build (or, were the error taken for a passing one, in
        // every run for ever).
        self.output
            .check_protection(&protection)
            .map_err(BatchError::from)?;
        Ok(protection)
    }

    /// Builds and packages a batch in a temporary folder of its own.
    async fn build_batch(
        &self,
        row: &JobRequest,
        rb: &ResolvedBatch,
        protection: &Protection,
        stamp: &str,
    ) -> Result<Built<O::Staged>, BatchError> {
        let started = self.clock.instant();
        // Reads yield between chunks, so that a stop deadline is seen.
        let sources = self.cooperative();
        let before = self.sources.read_counts();
        let id = &rb.batch.batch_id;
        let format = requested_format(&row.request_data)
            .map_err(|e| BatchError::fatal(e.to_string()))?
            .unwrap_or(self.config.format);
        self.output.check_format(format)?;
        let csv_key = report_key_as(Some(&row.request_id), id, stamp, format).ok_or_else(|| {
            BatchError::fatal(format!(
                "batch id {:?} or request id {:?} cannot be used in a file name",
                id.as_str(),
                row.request_id
            ))
        })?;
        let collection = rb.collection.clone().ok_or_else(|| {
            BatchError::from(crate::report::BuildError::CollectionNotFound {
                batch: id.clone(),
                collection: rb.batch.course_id.clone(),
            })
        })?;
        // Sunbird: "System" asks on behalf of the collection's own org.
        let org = (row.requested_channel != "System" && !row.requested_channel.is_empty())
            .then(|| OrgId::new(row.requested_channel.as_str()));
        let plan = plan_collection_batch(
            &sources,
            rb.batch.clone(),
            collection,
            org.as_ref(),
            &self.config.report,
        )
        .await?;

        let csv_name = csv_key.rsplit('/').next().unwrap_or(&csv_key).to_string();
        let (mut staged, sink) = self.output.begin(&csv_name, format, self.clock.now())?;
        // The summary is counted while the rows are written. Only beside a
        // plain file: a summary is stored as it is, and an org whose files
        // are protected gets none of its learners' figures in the clear.
        let mut sink = if matches!(protection, Protection::Plain) {
            SummarySink::new(sink)
        } else {
            SummarySink::disabled(sink)
        };
        let report = build_rows(&sources, &plan, &self.config.report, &mut sink).await?;
        let (sink, summary) = sink.into_parts();
        let summary = summary.map(|s| (summary_key(&csv_key), s.to_json()));
        let key = zip_key(&csv_key);
        let zip_name = key.rsplit('/').next().unwrap_or(&key);
        let sizes = self
            .output
            .package(&mut staged, sink, zip_name, protection)?;
        let reads = reads_between(&before, &self.sources.read_counts());

        let built = BuiltBatch {
            request_id: row.request_id.clone(),
            batch_id: id.as_str().to_string(),
            rows: report.rows,
            csv_bytes: sizes.file_bytes,
            key,
            zip_bytes: sizes.zip_bytes,
            reads,
            elapsed: self.clock.instant().duration_since(started),
        };
        // Sunbird records the CSV's key and size; `download_urls` get the zip's.
        let entry = ProcessedBatch {
            channel: Some(row.requested_channel.clone()),
            batch_id: id.as_str().to_string(),
            file_path: csv_key,
            file_size: sizes.file_bytes,
        };
        Ok(Built {
            staged,
            summary,
            built,
            entry,
            started,
        })
    }

    /// Stores a packaged batch's zip; its staged files go afterwards.
    async fn store_batch(
        &self,
        b: Built<O::Staged>,
    ) -> Result<(BuiltBatch, ProcessedBatch), BatchError> {
        let Built {
            staged,
            summary,
            mut built,
            entry,
            started,
        } = b;
        // The summary first: a stored (and recorded) zip has its summary.
        if let Some((key, json)) = summary {
            self.output.store_summary(&key, json).await?;
        }
        self.output.store(staged, &built.key).await?;
        built.elapsed = self.clock.instant().duration_since(started);
        Ok((built, entry))
    }

    /// The sources, yielding to the runtime before each read.
    fn cooperative(&self) -> Cooperative<'_, S, C> {
        Cooperative {
            source: &self.sources,
            clock: &self.clock,
        }
    }
}

/// The rows of a page grouped by [`duplicate_key`] (a hash map, so a page
/// groups in linear time), groups in the order of their first row and rows
/// in page order within each.
fn duplicate_groups(page: Vec<JobRequest>) -> Vec<Vec<JobRequest>> {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(page.len());
    let mut groups: Vec<Vec<JobRequest>> = Vec::new();
    for r in page {
        match index.entry(duplicate_key(&r)) {
            std::collections::hash_map::Entry::Occupied(e) => groups[*e.get()].push(r),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(groups.len());
                groups.push(vec![r]);
            }
        }
    }
    groups
}

fn count(summary: &mut RunSummary, status: RequestStatus) {
    match status {
        RequestStatus::Success => summary.succeeded += 1,
        RequestStatus::Failed => summary.failed += 1,
        RequestStatus::Submitted | RequestStatus::Processing => summary.resubmitted += 1,
    }
}
