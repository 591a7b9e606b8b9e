//! The in-process worker (`--worker`): the library's polling loop
//! ([`Runner::watch`]), its summaries counted in the metrics and logged
//! with ids and counts. Without `--worker`, `exhaust run --watch` processes
//! elsewhere do this work against the same store.

use crate::app::AppRunner;
use crate::metrics::Metrics;
use exhaust_core::runner::RunSummary;
use exhaust_core::store::StoreError;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The stop signal shared by the HTTP server and the worker (the library's,
/// with its grace period).
pub use exhaust_writer::Shutdown;

/// The runner the server composes from its settings.
pub type ServerRunner = AppRunner;

/// One pass over the pending requests, counted in `metrics` and logged.
pub async fn step(
    runner: &ServerRunner,
    stop: &AtomicBool,
    metrics: &Metrics,
) -> Result<RunSummary, StoreError> {
    let run = runner.run_once_until(stop).await;
    record(&run, metrics);
    run
}

/// Counts a run in the metrics and logs it (ids and counts only).
fn record(run: &Result<RunSummary, StoreError>, metrics: &Metrics) {
    let summary = match run {
        Ok(s) => s,
        Err(e) => {
            metrics.store_error();
            tracing::error!(error = %e, "listing pending requests failed");
            return;
        }
    };
    metrics.record_run(summary);
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
}

/// Runs the pending requests every `poll` until `stop` is triggered
/// ([`Runner::watch`]): a stop during a run lets the batch in hand finish
/// within the grace period, else abandons it and releases its request.
pub async fn run_loop(
    runner: Arc<ServerRunner>,
    metrics: Arc<Metrics>,
    poll: Duration,
    stop: Shutdown,
) {
    tracing::info!(
        poll_seconds = poll.as_secs(),
        grace_seconds = stop.grace().as_secs(),
        "worker started"
    );
    // A failed listing is logged and counted; the next poll retries.
    runner
        .watch(poll, &stop, |run| {
            record(&run, &metrics);
            ControlFlow::Continue(())
        })
        .await;
    tracing::info!("worker stopped");
}
