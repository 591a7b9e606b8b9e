//! The report reads the next chunk while it writes this one: the order of
//! reads, rows and chunks handed back to the source, and which failure is
//! reported when both a read and a write fail.

use exhaust_core::BatchId;
use exhaust_core::UserId;
use exhaust_core::memory::MemorySource;
use exhaust_core::report::{BuildError, ReportOptions, RowSink, build_report};
use exhaust_core::source::{ReadCounter, Reclaim, SourceError};
use exhaust_core::testing::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// What happened, in order: `users u1`, `row u1`, ...
type Log = Arc<Mutex<Vec<String>>>;

/// Returns `Pending` once, as a read that waits on a network or a thread.
#[derive(Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// The fixture, logging each chunk read (by its first user) when it
/// starts, and waiting once before answering; `users` fails for a chunk
/// that starts with `fail_users_of`.
struct Logged {
    inner: MemorySource,
    log: Log,
    fail_users_of: Option<&'static str>,
}

impl Logged {
    fn note(&self, what: &str, users: &[UserId]) {
        let first = users.first().map_or("-", UserId::as_str);
        self.log
            .lock()
            .expect("log")
            .push(format!("{what} {first}"));
    }
}

impl ReadCounter for Logged {}
/// Logs each chunk's data handed back, then drops it.
impl Reclaim for Logged {
    fn reclaim(&self, done: Box<dyn std::any::Any + Send>) {
        self.log.lock().expect("log").push("reclaim".into());
        drop(done);
    }
}

macro_rules! logged {
    ($self:ident, users($ids:expr)) => {{
        let ids = $ids;
        $self.note("users", ids);
        YieldOnce::default().await;
        if ids.first().map(UserId::as_str) == $self.fail_users_of {
            return Err(SourceError::unavailable("redis", "connection refused"));
        }
        $self.inner.users(ids).await
    }};
    ($self:ident, attempts($c:expr, $ids:expr)) => {{
        let ids = $ids;
        $self.note("attempts", ids);
        YieldOnce::default().await;
        $self.inner.attempts($c, ids).await
    }};
    ($self:ident, activity($b:expr, $a:expr, $ids:expr)) => {{
        let ids = $ids;
        $self.note("activity", ids);
        YieldOnce::default().await;
        $self.inner.activity($b, $a, ids).await
    }};
    ($self:ident, $method:ident($($arg:expr),*)) => {
        $self.inner.$method($($arg),*).await
    };
}
exhaust_core::forward_report_source!(impl [] for Logged => logged);

/// Logs each row; fails on the row of `fail_on`.
struct LoggedSink {
    log: Log,
    fail_on: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
struct DiskFull;

impl RowSink for LoggedSink {
    type Error = DiskFull;
    fn begin(&mut self, _: &[String], _: usize) -> Result<(), DiskFull> {
        Ok(())
    }
    fn row(&mut self, fields: &[String]) -> Result<(), DiskFull> {
        let user = fields[4].clone();
        if Some(user.as_str()) == self.fail_on {
            return Err(DiskFull);
        }
        self.log.lock().expect("log").push(format!("row {user}"));
        Ok(())
    }
}

fn build(
    fail_users_of: Option<&'static str>,
    fail_on: Option<&'static str>,
) -> (Result<usize, BuildError>, Vec<String>) {
    let log = Log::default();
    let src = Logged {
        inner: fixture(),
        log: log.clone(),
        fail_users_of,
    };
    let mut sink = LoggedSink {
        log: log.clone(),
        fail_on,
    };
    // One user per chunk: the fixture's four rows are four chunks.
    let opts = ReportOptions {
        chunk_size: 1,
        ..ReportOptions::default()
    };
    let built = block_on(build_report(
        &src,
        &BatchId::new("b1"),
        None,
        &opts,
        &mut sink,
    ))
    .map(|s| s.rows);
    let log = log.lock().expect("log").clone();
    (built, log)
}

#[test]
fn the_next_chunk_is_read_before_this_chunks_rows_are_written() {
    let (built, log) = build(None, None);
    assert_eq!(built.expect("builds"), 4);
    let expected: Vec<String> = [
        // The first chunk is read alone: there is nothing to write yet.
        "users u1",
        "attempts u1",
        "activity u1",
        // Then each chunk's three reads start before the rows before it.
        "users u2",
        "attempts u2",
        "activity u2",
        "row u1",
        // Each chunk's data goes back to the source once its rows are
        // written (and the next chunk is read), the last one's too.
        "reclaim",
        "users u3",
        "attempts u3",
        "activity u3",
        "row u2",
        "reclaim",
        "users u6",
        "attempts u6",
        "activity u6",
        "row u3",
        "reclaim",
        "row u6",
        "reclaim",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(log, expected);
    // The rows are the ones the fixture gives without the pipeline.
    let (plain, _) = run(&fixture(), "b1", None, &ReportOptions::default()).expect("builds");
    let users: Vec<&str> = plain.rows.iter().map(|r| r[4].as_str()).collect();
    assert_eq!(users, ["u1", "u2", "u3", "u6"]);
}

#[test]
fn a_failed_write_is_reported_before_a_failed_read_of_the_next_chunk() {
    // u2's row cannot be written while u3's chunk cannot be read: the
    // write failed first in report order, so it is the one reported.
    let (built, log) = build(Some("u3"), Some("u2"));
    let err = built.expect_err("fails");
    assert!(matches!(err, BuildError::Sink(_)), "{err}");
    assert!(log.contains(&"row u1".to_string()), "{log:?}");
    assert!(
        !log.iter().any(|e| e == "row u2" || e == "row u3"),
        "{log:?}"
    );
}

#[test]
fn a_failed_read_stops_the_report_after_the_rows_before_it() {
    let (built, log) = build(Some("u3"), None);
    let err = built.expect_err("fails");
    assert!(
        matches!(&err, BuildError::Source(SourceError::Unavailable { .. })),
        "{err}"
    );
    assert!(err.is_retryable());
    let rows: Vec<&String> = log.iter().filter(|e| e.starts_with("row")).collect();
    assert_eq!(rows, ["row u1", "row u2"]);
}

#[test]
fn a_failed_first_read_writes_no_row() {
    let (built, log) = build(Some("u1"), None);
    assert!(built.is_err());
    assert!(!log.iter().any(|e| e.starts_with("row")), "{log:?}");
}
