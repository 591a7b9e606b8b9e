//! Stopping the runner (`Shutdown`): a build longer than the grace period
//! is abandoned at the deadline, its request goes back to SUBMITTED with
//! the batches already stored, nothing temporary is left, and the next run
//! resumes; a build that computes on the caller's thread is abandoned too;
//! the polling loop ends on a stop while it waits.

use chrono::Utc;
use exhaust_core::report::ReportOptions;
use exhaust_core::request::{NewRequest, ProcessedBatches, RequestStatus};
use exhaust_core::runner::{Runner, RunnerConfig};
use exhaust_core::security::FixedLevel;
use exhaust_core::source::{ReadCounter, Reclaim};
use exhaust_core::store::RequestStore;
use exhaust_sources::requests::{AnyRequestStore, SqliteRequestStore};
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::{PublishConfig, Publisher, Shutdown, Storage, TokioClock};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SAMPLE_CHANNEL: &str = "0166646273726135492";
const FIRST: &str = "0135742803756164562";
const SECOND: &str = "0126303835330566836";

fn sample() -> Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-snapshot");
    Snapshot::open(dir, SnapshotOptions::default()).expect("snapshot")
}

/// How the wrapped source behaves once its first `allowed` user reads are done.
#[derive(Clone, Copy)]
enum Stall {
    /// Triggers the stop, then never answers (a store that hangs).
    Hang,
    /// Triggers the stop, then answers each read after blocking the thread
    /// for a while (a source computing synchronously, as the snapshot does).
    Block(Duration),
}

/// The sample snapshot, stalling after `allowed` user reads.
struct Stalling {
    inner: Snapshot,
    stop: Shutdown,
    allowed: usize,
    stall: Stall,
    reads: AtomicUsize,
}

impl ReadCounter for Stalling {}
impl Reclaim for Stalling {}

impl Stalling {
    /// Counts a user read; past the allowed ones, triggers the stop and
    /// stalls as told.
    async fn stall_when_due(&self) {
        if self.reads.fetch_add(1, Ordering::SeqCst) >= self.allowed {
            self.stop.trigger();
            match self.stall {
                Stall::Hang => std::future::pending::<()>().await,
                Stall::Block(d) => std::thread::sleep(d),
            }
        }
    }
}

/// User reads may stall ([`Stalling::stall_when_due`]); every read is then
/// the snapshot's.
macro_rules! stall_on_users {
    ($self:ident, users($($arg:expr),*)) => {{
        $self.stall_when_due().await;
        $self.inner.users($($arg),*).await
    }};
    ($self:ident, $method:ident($($arg:expr),*)) => {
        $self.inner.$method($($arg),*).await
    };
}
exhaust_core::forward_report_source!(impl [] for Stalling => stall_on_users);

/// An SQLite store, a storage folder and a work folder in a fresh folder.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("work")).expect("work");
        Self { dir }
    }

    async fn store(&self) -> AnyRequestStore {
        let db = self.dir.path().join("exhaust.db");
        AnyRequestStore::Sqlite(SqliteRequestStore::open(&db).await.expect("db"))
    }

    fn files(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    async fn runner<S: exhaust_core::source::ReportSource>(
        &self,
        source: S,
        chunk_size: usize,
    ) -> Runner<S, AnyRequestStore, FixedLevel, Publisher, TokioClock> {
        let config = RunnerConfig {
            report: ReportOptions {
                chunk_size,
                ..ReportOptions::default()
            },
            ..RunnerConfig::default()
        };
        let storage = Storage::local(self.files()).expect("storage");
        let output = Publisher::new(storage, PublishConfig::in_folder(self.work()));
        Runner::new(
            source,
            self.store().await,
            FixedLevel::default(),
            output,
            TokioClock::system(),
            config,
        )
    }

    /// Queues a request for these batches; returns (tag, id).
    async fn submit(&self, batches: &[&str]) -> (String, String) {
        let r = NewRequest {
            tag: "stop".into(),
            dataset: "progress-exhaust".into(),
            requested_by: "user-1".into(),
            channel: SAMPLE_CHANNEL.into(),
            dataset_config: serde_json::json!({ "batchFilter": batches }),
            encryption_key: None,
        }
        .into_job_request(Utc::now())
        .expect("valid");
        self.store().await.submit(&r).await.expect("submit");
        (r.tag, r.request_id)
    }

    /// The stored zips, and whether anything else is in the storage or the
    /// work folder.
    fn leftovers(&self) -> (Vec<String>, Vec<String>) {
        let mut zips = Vec::new();
        let mut other = Vec::new();
        for root in [self.files(), self.work()] {
            let mut todo = vec![root];
            while let Some(d) = todo.pop() {
                let Ok(entries) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in entries.flatten() {
                    let p = e.path();
                    let name = p.display().to_string();
                    if p.is_dir() {
                        if p.starts_with(self.work()) {
                            other.push(name);
                        }
                        todo.push(p);
                    } else if name.ends_with(".zip") && !name.contains('#') {
                        zips.push(name);
                    } else if name.contains("_summary_")
                        && name.ends_with(".json")
                        && p.starts_with(self.files())
                        && std::path::Path::new(
                            &name
                                .replace("_summary_", "_progress_")
                                .replace(".json", ".zip"),
                        )
                        .is_file()
                    {
                        // A plain file's summary, stored just before its zip.
                    } else {
                        other.push(name);
                    }
                }
            }
        }
        (zips, other)
    }
}

/// A build that never ends is abandoned at the grace deadline, not before;
/// the request goes back to SUBMITTED with its first batch kept, and the
/// next run builds only the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_longer_than_the_grace_period_is_abandoned_at_the_deadline() {
    let w = World::new();
    let grace = Duration::from_millis(400);
    let stop = Shutdown::with_grace(grace);
    let source = Stalling {
        inner: sample(),
        stop: stop.clone(),
        allowed: 1,
        stall: Stall::Hang,
        reads: AtomicUsize::new(0),
    };
    let runner = w.runner(source, 2000).await;
    let (tag, id) = w.submit(&[FIRST, SECOND]).await;

    let started = Instant::now();
    let summary =
        tokio::time::timeout(grace + Duration::from_secs(20), runner.run_once_with(&stop))
            .await
            .expect("the run ends after the deadline")
            .expect("run");
    let triggered = stop.deadline().expect("triggered") - grace;
    assert!(
        Instant::now() >= triggered + grace,
        "abandoned before the deadline"
    );
    assert!(triggered > started);
    assert_eq!(
        (summary.released, summary.succeeded, summary.failed),
        (1, 0, 0),
        "{summary}"
    );
    assert_eq!(summary.batches.len(), 1, "the first batch was stored");

    let row = runner
        .store()
        .get(&tag, &id)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.status, RequestStatus::Submitted);
    assert_eq!(row.iteration, 0, "a stop counts no attempt");
    assert_eq!(row.err_message, None);
    let processed = row.processed().expect("processed");
    assert_eq!(processed.len(), 1);
    assert_eq!(processed[0].batch_id, FIRST);
    let (zips, other) = w.leftovers();
    assert_eq!(zips.len(), 1, "{zips:?}");
    assert!(zips[0].contains(FIRST), "{zips:?}");
    assert!(other.is_empty(), "temporary files left: {other:?}");

    // The next run resumes after the stored batch.
    let runner = w.runner(sample(), 2000).await;
    let summary = runner.run_once().await.expect("run");
    assert_eq!(
        (summary.succeeded, summary.batches.len()),
        (1, 1),
        "{summary}"
    );
    assert_eq!(summary.batches[0].batch_id, SECOND);
    let row = runner
        .store()
        .get(&tag, &id)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.status, RequestStatus::Success);
    assert_eq!(row.download_urls.len(), 2);
    let (zips, other) = w.leftovers();
    assert_eq!(zips.len(), 2);
    assert!(other.is_empty(), "temporary files left: {other:?}");
}

/// A source that blocks the thread (never returns `Pending`) is abandoned
/// too, between two chunks: with a grace of 0 the build stops at the first
/// chunk after the stop instead of running its 38 chunks to the end.
#[tokio::test]
async fn a_build_computing_on_the_caller_s_thread_is_abandoned_between_chunks() {
    let w = World::new();
    let stop = Shutdown::with_grace(Duration::ZERO);
    let source = Stalling {
        inner: sample(),
        stop: stop.clone(),
        allowed: 2,
        stall: Stall::Block(Duration::from_millis(20)),
        reads: AtomicUsize::new(0),
    };
    // One learner per chunk: 38 reads of the users for the sample batch.
    let runner = w.runner(source, 1).await;
    let (tag, id) = w.submit(&[FIRST]).await;
    let summary = runner.run_once_with(&stop).await.expect("run");
    assert_eq!((summary.released, summary.succeeded), (1, 0), "{summary}");
    let reads = runner.sources().reads.load(Ordering::SeqCst);
    assert!(reads < 38, "the build ran to its end ({reads} reads)");
    let row = runner
        .store()
        .get(&tag, &id)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.status, RequestStatus::Submitted);
    assert_eq!(
        row.processed_batches,
        Some(ProcessedBatches::Listed(vec![])),
        "the stop wrote an empty list"
    );
    let (zips, other) = w.leftovers();
    assert!(zips.is_empty() && other.is_empty(), "{zips:?} {other:?}");
}

/// The polling loop ends on a stop that comes while it waits for the next
/// poll (an hour away), and a run is not started after a stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_polling_loop_ends_on_a_stop_while_waiting() {
    let w = World::new();
    let runner = w.runner(sample(), 2000).await;
    w.submit(&[FIRST]).await;
    let stop = Shutdown::new();
    let (ran, mut first_run) = tokio::sync::mpsc::unbounded_channel();
    let trigger = {
        let stop = stop.clone();
        tokio::spawn(async move {
            first_run.recv().await;
            stop.trigger();
        })
    };
    let mut runs = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        runner.watch(Duration::from_secs(3600), &stop, |run| {
            runs.push(run.expect("run"));
            let _ = ran.send(());
            ControlFlow::Continue(())
        }),
    )
    .await
    .expect("the loop ends on the stop, not at the next poll");
    trigger.await.expect("trigger");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].succeeded, 1, "{}", runs[0]);
}
