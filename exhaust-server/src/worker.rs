//! The in-process worker (`--worker`): the library's [`Runner`] in a loop,
//! polling for pending requests, its summaries counted in the metrics and
//! logged with ids and counts. Without `--worker`, `exhaust run --watch`
//! processes elsewhere do this work against the same store.

use crate::metrics::Metrics;
use exhaust_cli::config::AnyPreferences;
use exhaust_cli::source::AnySource;
use exhaust_core::security::PreferenceSource;
use exhaust_core::source::ReportSource;
use exhaust_core::store::{RequestStore, StoreError};
use exhaust_sources::requests::AnyRequestStore;
use exhaust_writer::{RunSummary, Runner};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// The runner the server composes from its settings
/// ([`exhaust_cli::config::Settings::runner`], as `exhaust run` does).
pub type ServerRunner = Runner<AnySource, AnyRequestStore, AnyPreferences>;

/// A stop signal shared by the HTTP server and the worker: a flag the
/// runner checks between batches, and a channel the loops wait on.
#[derive(Debug, Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// Not triggered yet.
    pub fn new() -> Self {
        Self {
            flag: Arc::new(AtomicBool::new(false)),
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Asks everything to stop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.tx.send_replace(true);
    }

    /// Whether it was triggered.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag the runner checks.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// Resolves once triggered.
    pub async fn wait(self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// One pass over the pending requests, counted in `metrics` and logged.
pub async fn step<S, R, P>(
    runner: &Runner<S, R, P>,
    stop: &AtomicBool,
    metrics: &Metrics,
) -> Result<RunSummary, StoreError>
where
    S: ReportSource,
    R: RequestStore,
    P: PreferenceSource + Sync,
{
    let summary = match runner.run_once_until(stop).await {
        Ok(s) => s,
        Err(e) => {
            metrics.store_error();
            tracing::error!(error = %e, "listing pending requests failed");
            return Err(e);
        }
    };
    metrics.record_run(&summary);
    for b in &summary.batches {
        tracing::info!(
            request_id = %b.request_id,
            batch_id = %b.batch_id,
            rows = b.rows,
            csv_bytes = b.csv_bytes,
            zip_bytes = b.zip_bytes,
            ms = b.elapsed.as_millis() as u64,
            "batch built"
        );
    }
    if !summary.store_errors.is_empty() {
        tracing::warn!(
            count = summary.store_errors.len(),
            "requests left for a later run: the store failed"
        );
    }
    if summary.total > 0 {
        tracing::info!(
            total = summary.total,
            succeeded = summary.succeeded,
            failed = summary.failed,
            resubmitted = summary.resubmitted,
            duplicates = summary.duplicates,
            held_elsewhere = summary.skipped,
            released = summary.released,
            batches = summary.batches.len(),
            ms = summary.elapsed.as_millis() as u64,
            "worker run"
        );
    }
    Ok(summary)
}

/// Runs [`step`] every `poll` until `stop` is triggered. A stop during a
/// run lets the runner finish or release the request in hand.
pub async fn run_loop<S, R, P>(
    runner: Runner<S, R, P>,
    metrics: Arc<Metrics>,
    poll: Duration,
    stop: Shutdown,
) where
    S: ReportSource,
    R: RequestStore,
    P: PreferenceSource + Sync,
{
    tracing::info!(poll_seconds = poll.as_secs(), "worker started");
    while !stop.is_triggered() {
        // A failed listing is logged and counted; the next poll retries.
        let _ = step(&runner, stop.flag(), &metrics).await;
        if stop.is_triggered() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.clone().wait() => {}
        }
    }
    tracing::info!("worker stopped");
}
