//! The request runner (SPEC section 6): takes pending `job_request` rows
//! from a [`RequestStore`], builds their batches from a [`ReportSource`],
//! packages each CSV as its request's security level asks, stores the zip
//! in [`Storage`], and records the outcome.
//!
//! It is generic over the core's traits, so the command line and the
//! server run the same code against any source, store and preference
//! service. Every decision (validation, resolution, duplicates, limits,
//! outcomes, messages) is made by `exhaust-core`; this module sequences
//! those rules with the I/O.
//!
//! Crash safety: a request is held through a store claim (a lock the
//! database or kernel drops when this process dies), and each built batch
//! is recorded in `processed_batches` as soon as its zip is stored, so a
//! crash neither redoes a stored batch nor loses one.
//!
//! Stopping: a run obeys a [`Shutdown`]. Once it is triggered no request is
//! claimed; the batch in hand may finish until the grace deadline; at the
//! deadline its build is dropped (the source yields between chunks, see
//! `cooperative.rs`, so a build computing on this thread is dropped too) and
//! the request goes back to `SUBMITTED` with the batches already stored.
//! [`Runner::watch`] is the polling loop around single runs.

use crate::WriteError;
use crate::archive::zip_file;
use crate::cooperative::Cooperative;
use crate::envelope;
use crate::key::decode_encryption_key;
use crate::report_sink::{ReportSink, check_format};
use crate::shutdown::Shutdown;
use crate::storage::{Storage, StorageError};
use chrono::Utc;
use exhaust_core::OrgId;
use exhaust_core::report::{ReportOptions, build_rows, plan_collection_batch};
use exhaust_core::request::{
    BatchOutcome, ChannelBudget, JobRequest, ProcessedBatch, RequestData, RequestError,
    RequestOutcome, RequestStatus, ResolveError, ResolvedBatch, decide, duplicate_key,
    parse_processed, report_key_as, requested_format, resolve_batches, zip_key,
};
use exhaust_core::security::{PreferenceSource, SecurityLevel};
use exhaust_core::source::{ReadStats, ReportSource, reads_between};
use exhaust_core::store::{Completion, RequestStore, Selection, StoreError};
use exhaust_core::time::{ReportTz, file_date_stamp};
use exhaust_core::typed::OutputFormat;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::BufWriter;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// Sunbird's `sunbird_encryption_key`: its length is the salt prefix
    /// removed when decoding a request's `encryption_key`.
    pub sunbird_encryption_key: String,
    /// Where CSVs and zips are written before they are stored.
    pub work_dir: PathBuf,
    /// The file format of requests that name none (`[job] format`); a
    /// request's `outputFormat` wins.
    pub format: OutputFormat,
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
            sunbird_encryption_key: String::new(),
            work_dir: std::env::temp_dir(),
            format: OutputFormat::Csv,
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

/// How a request's files are protected, with the key material it needs.
enum Protection {
    Plain,
    /// ZipCrypto with this password; `None` (no key on the request) gives a
    /// zip without password, as Sunbird's job does.
    Password(Option<String>),
    /// Sunbird's envelope, the file key wrapped with this (decoded) text key.
    TextKey(String),
    /// Sunbird's envelope, the file key wrapped with this RSA public key (PEM).
    PublicKey(String),
}

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

    fn source(e: &exhaust_core::source::SourceError, context: &str) -> Self {
        Self {
            message: format!("{context}{e}"),
            retryable: e.is_retryable(),
            from_source: true,
        }
    }
}

impl From<exhaust_core::report::BuildError> for BatchError {
    fn from(e: exhaust_core::report::BuildError) -> Self {
        Self {
            retryable: e.is_retryable(),
            from_source: matches!(e, exhaust_core::report::BuildError::Source(_)),
            message: e.to_string(),
        }
    }
}

impl From<WriteError> for BatchError {
    fn from(e: WriteError) -> Self {
        // Local disk trouble (full, gone) may pass.
        Self {
            message: e.to_string(),
            retryable: true,
            from_source: false,
        }
    }
}

impl From<StorageError> for BatchError {
    fn from(e: StorageError) -> Self {
        Self {
            retryable: matches!(e, StorageError::Unavailable { .. }),
            from_source: false,
            message: e.to_string(),
        }
    }
}

/// How long a stopped run may still take after the grace deadline to write
/// the request in hand back to `SUBMITTED` (a store write). Past it the run
/// is dropped: the claim's lock dies with the connection or the process,
/// and the next run takes the request up.
pub const RELEASE_TIME: Duration = Duration::from_secs(5);

/// What stops a run.
#[derive(Clone, Copy)]
enum Halt<'a> {
    /// A flag: stop between requests and batches; a build is never abandoned.
    Flag(&'a AtomicBool),
    /// As the flag, and the build in hand is abandoned at the grace deadline.
    Shutdown(&'a Shutdown),
}

impl Halt<'_> {
    fn stopping(&self) -> bool {
        match self {
            Halt::Flag(f) => f.load(Ordering::SeqCst),
            Halt::Shutdown(s) => s.is_triggered(),
        }
    }

    /// `work`'s output, or `None` when the grace deadline came first (then
    /// `work` is dropped, with the temporary folder of a build).
    async fn before_deadline<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        match self {
            Halt::Flag(_) => Some(work.await),
            Halt::Shutdown(stop) => tokio::select! {
                biased;
                v = work => Some(v),
                () = stop.deadline_reached() => None,
            },
        }
    }
}

/// A batch built and packaged, not yet stored: its zip lives in `work`.
struct Packaged {
    /// Removed (with the CSV and zip) when dropped.
    work: tempfile::TempDir,
    zip_path: PathBuf,
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

/// The runner: a source, a request store, a preference service and a
/// storage, with their configuration.
#[derive(Debug)]
pub struct Runner<S, R, P> {
    sources: S,
    store: R,
    prefs: P,
    storage: Storage,
    config: RunnerConfig,
}

impl<S, R, P> Runner<S, R, P>
where
    S: ReportSource,
    R: RequestStore,
    P: PreferenceSource + Sync,
{
    /// A runner over these parts.
    pub fn new(sources: S, store: R, prefs: P, storage: Storage, config: RunnerConfig) -> Self {
        Self {
            sources,
            store,
            prefs,
            storage,
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

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
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
        self.run(Halt::Flag(stop)).await
    }

    /// As [`Runner::run_once_until`] with a [`Shutdown`]: besides, the batch
    /// in hand is abandoned at the grace deadline (its temporary files
    /// removed) and its request released as above. Past the deadline plus
    /// [`RELEASE_TIME`] the run is dropped altogether (a store that does not
    /// answer), which ends in a store error.
    pub async fn run_once_with(&self, stop: &Shutdown) -> Result<RunSummary, StoreError> {
        tokio::select! {
            biased;
            run = self.run(Halt::Shutdown(stop)) => run,
            () = async {
                stop.deadline_reached().await;
                tokio::time::sleep(RELEASE_TIME).await;
            } => Err(StoreError::Unavailable(format!(
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
    pub async fn watch<F>(&self, poll: Duration, stop: &Shutdown, mut each: F)
    where
        F: FnMut(Result<RunSummary, StoreError>) -> ControlFlow<()>,
    {
        while !stop.is_triggered() {
            let run = self.run_once_with(stop).await;
            if each(run).is_break() || stop.is_triggered() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = stop.triggered() => {}
            }
        }
    }

    async fn run(&self, stop: Halt<'_>) -> Result<RunSummary, StoreError> {
        let started = Instant::now();
        let mut summary = RunSummary::default();
        let candidates = self.store.candidates(&self.config.selection).await?;
        summary.total = candidates.len();
        let mut budgets: HashMap<String, ChannelBudget> = HashMap::new();

        // Duplicates: same request_data, key and requester. The first
        // request of a group that this worker can claim is processed; the
        // others get its outcome.
        let mut groups: Vec<(String, Vec<JobRequest>)> = Vec::new();
        for r in candidates {
            let key = duplicate_key(&r);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(r),
                None => groups.push((key, vec![r])),
            }
        }

        for (_, group) in groups {
            if stop.stopping() {
                break;
            }
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
                continue;
            };
            let request_id = row.request_id.clone();
            let completion = match self
                .handle(claim, row, &mut budgets, &mut summary, stop)
                .await
            {
                Ok(Handled::Finished(c)) => c,
                Ok(Handled::Released) => {
                    summary.released += 1;
                    continue;
                }
                Err(e) => {
                    summary.store_errors.push(format!("{request_id}: {e}"));
                    continue;
                }
            };
            count(&mut summary, completion.status);
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
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// Processes one claimed request to its outcome.
    async fn handle(
        &self,
        mut claim: R::Claim,
        row: JobRequest,
        budgets: &mut HashMap<String, ChannelBudget>,
        summary: &mut RunSummary,
        stop: Halt<'_>,
    ) -> Result<Handled, StoreError> {
        let started = Instant::now();
        let completion = |o: RequestOutcome| Completion {
            status: o.status,
            processed: o.processed,
            download_urls: o.download_urls,
            err_message: o.err_message,
            count_attempt: o.count_attempt,
            completed_at: Utc::now(),
            execution_time_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        };
        let rid = row.request_id.clone();
        tracing::info!(request_id = %rid, status = %row.status, attempts = row.iteration, "request claimed");

        // A request whose stored state cannot be read fails with the reason.
        let previous = match parse_processed(row.processed_batches.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                let c = completion(RequestOutcome::refused(&e, Vec::new()));
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
        let protection = match stop.before_deadline(self.protection(&row)).await {
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

        let resolved = stop
            .before_deadline(resolve_batches(&Cooperative(&self.sources), &data))
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
        let stamp = file_date_stamp(Utc::now(), self.config.file_tz);
        let mut processed = previous.clone();
        let mut results = Vec::new();
        for rb in &batches {
            let id = rb.batch.batch_id.clone();
            if processed.iter().any(|p| p.batch_id == id.as_str()) {
                continue;
            }
            if stop.stopping() {
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
            let packaged = stop
                .before_deadline(self.build_batch(&row, rb, &protection, &stamp))
                .await;
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
            status = %c.status,
            batches = c.processed.len(),
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
        let key = row
            .encryption_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| self.decode_key(k));
        match level {
            SecurityLevel::Plain => Ok(Protection::Plain),
            SecurityLevel::PasswordProtected => Ok(Protection::Password(key)),
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
        }
    }

    /// Sunbird stores the key encrypted; a key that does not decode is used
    /// as it is (reference 3.5).
    fn decode_key(&self, stored: &str) -> String {
        decode_encryption_key(stored, &self.config.sunbird_encryption_key)
    }

    /// Builds and packages a batch in a temporary folder of its own.
    async fn build_batch(
        &self,
        row: &JobRequest,
        rb: &ResolvedBatch,
        protection: &Protection,
        stamp: &str,
    ) -> Result<Packaged, BatchError> {
        let started = Instant::now();
        // Reads yield between chunks, so that a stop deadline is seen.
        let sources = Cooperative(&self.sources);
        let before = self.sources.read_counts();
        let id = &rb.batch.batch_id;
        let format = requested_format(&row.request_data)
            .map_err(|e| BatchError::fatal(e.to_string()))?
            .unwrap_or(self.config.format);
        check_format(format).map_err(|e| BatchError::fatal(e.to_string()))?;
        let csv_key = report_key_as(Some(&row.request_id), id, stamp, format).ok_or_else(|| {
            BatchError::fatal(format!(
                "batch id {:?} or request id {:?} cannot be used in a file name",
                id.as_str(),
                row.request_id
            ))
        })?;
        let collection = rb.collection.clone().ok_or_else(|| {
            BatchError::from(exhaust_core::report::BuildError::CollectionNotFound {
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

        let work = tempfile::Builder::new()
            .prefix("exhaust-")
            .tempdir_in(&self.config.work_dir)
            .map_err(|e| {
                WriteError::io(
                    format!("creating a folder in {}", self.config.work_dir.display()),
                    e,
                )
            })?;
        let csv_name = csv_key.rsplit('/').next().unwrap_or(&csv_key).to_string();
        let csv_path = work.path().join(&csv_name);
        let file = std::fs::File::create(&csv_path)
            .map_err(|e| WriteError::io(format!("creating {}", csv_path.display()), e))?;
        let mut sink =
            ReportSink::new(format, BufWriter::with_capacity(1 << 20, file), Utc::now())?;
        let report = build_rows(&sources, &plan, &self.config.report, &mut sink).await?;
        let (writer, stats) = sink.finish()?;
        writer
            .into_inner()
            .map_err(|e| WriteError::io("flushing the report", e.into_error()))?;
        let reads = reads_between(&before, &self.sources.read_counts());

        let key = zip_key(&csv_key);
        let zip_path = work.path().join(key.rsplit('/').next().unwrap_or(&key));
        let zip_bytes = package(&csv_path, &zip_path, &csv_name, protection)?;
        let built = BuiltBatch {
            request_id: row.request_id.clone(),
            batch_id: id.as_str().to_string(),
            rows: report.rows,
            csv_bytes: stats.bytes,
            key,
            zip_bytes,
            reads,
            elapsed: started.elapsed(),
        };
        // Sunbird records the CSV's key and size; `download_urls` get the zip's.
        let entry = ProcessedBatch {
            channel: Some(row.requested_channel.clone()),
            batch_id: id.as_str().to_string(),
            file_path: csv_key,
            file_size: stats.bytes,
        };
        Ok(Packaged {
            work,
            zip_path,
            built,
            entry,
            started,
        })
    }

    /// Stores a packaged batch's zip; its temporary folder goes afterwards.
    async fn store_batch(&self, p: Packaged) -> Result<(BuiltBatch, ProcessedBatch), BatchError> {
        let Packaged {
            work,
            zip_path,
            mut built,
            entry,
            started,
        } = p;
        self.storage.put_file(&built.key, &zip_path).await?;
        drop(work);
        built.elapsed = started.elapsed();
        Ok((built, entry))
    }
}

/// Zips the CSV as the protection asks; returns the zip's size.
fn package(
    csv: &Path,
    zip: &Path,
    entry: &str,
    protection: &Protection,
) -> Result<u64, BatchError> {
    Ok(match protection {
        Protection::Plain => zip_file(csv, zip, entry, None)?,
        Protection::Password(key) => zip_file(csv, zip, entry, key.as_deref())?,
        Protection::TextKey(key) => seal(csv, zip, entry, |i, o| {
            envelope::encrypt_text_key(i, o, key)
        })?,
        Protection::PublicKey(pem) => seal(csv, zip, entry, |i, o| {
            envelope::encrypt_public_key(i, o, pem)
        })?,
    })
}

/// Encrypts the CSV into Sunbird's envelope and puts it in a plain zip under
/// the CSV's name, as Sunbird's stage A then stage B do.
fn seal<F>(csv: &Path, zip: &Path, entry: &str, encrypt: F) -> Result<u64, BatchError>
where
    F: FnOnce(
        std::io::BufReader<std::fs::File>,
        &mut BufWriter<std::fs::File>,
    ) -> Result<u64, envelope::EnvelopeError>,
{
    let sealed = csv.with_extension("sealed");
    let input = std::fs::File::open(csv)
        .map_err(|e| WriteError::io(format!("opening {}", csv.display()), e))?;
    let output = std::fs::File::create(&sealed)
        .map_err(|e| WriteError::io(format!("creating {}", sealed.display()), e))?;
    let mut output = BufWriter::with_capacity(1 << 20, output);
    // A key that cannot be used is the request's fault; disk trouble may pass.
    encrypt(std::io::BufReader::new(input), &mut output).map_err(|e| BatchError {
        retryable: matches!(e, envelope::EnvelopeError::Io { .. }),
        from_source: false,
        message: format!("encrypting the report: {e}"),
    })?;
    output
        .into_inner()
        .map_err(|e| WriteError::io("flushing the encrypted report", e.into_error()))?;
    Ok(zip_file(&sealed, zip, entry, None)?)
}

fn count(summary: &mut RunSummary, status: RequestStatus) {
    match status {
        RequestStatus::Success => summary.succeeded += 1,
        RequestStatus::Failed => summary.failed += 1,
        RequestStatus::Submitted | RequestStatus::Processing => summary.resubmitted += 1,
    }
}
