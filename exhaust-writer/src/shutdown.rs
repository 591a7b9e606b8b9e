//! Stopping a worker: one stop signal shared by whatever asks for the stop
//! (SIGINT or SIGTERM through [`stop_on_signals`], a server shutting down, a
//! test) and the runner that obeys it (`exhaust_core::runner`, through the
//! core's [`StopSignal`] trait), with the grace period after which the build
//! in hand is abandoned.
//!
//! The contract (ARCHITECTURE.md, invariant 13): once triggered, no new
//! request is claimed; the batch in hand may finish until the deadline
//! (trigger time + grace); at the deadline its build is dropped (its work
//! folder goes with it), and the request is written back to `SUBMITTED`
//! with the batches already stored kept in `processed_batches`.

use exhaust_core::runner::StopSignal;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The grace period of a stop when none is configured: time for a typical
/// batch to finish, and short enough that the process is gone before the
/// kill that follows SIGTERM under Kubernetes (30 s by default) and systemd
/// (90 s).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(25);

/// A stop signal with its grace period. Clones share the signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Set once triggered; the runner reads it between requests and batches.
    flag: AtomicBool,
    /// When it was triggered and whether the grace was cut short; waiters
    /// subscribe to it.
    state: watch::Sender<State>,
    /// The grace period in milliseconds (settable after the handlers are
    /// installed, since the configuration is read after them).
    grace_ms: AtomicU64,
    /// What triggered it, for the final message ("SIGTERM").
    reason: OnceLock<&'static str>,
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    triggered_at: Option<Instant>,
    /// A second signal: abandon the build in hand at once.
    abandon_now: bool,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// Not triggered, with the [`DEFAULT_GRACE`].
    pub fn new() -> Self {
        Self::with_grace(DEFAULT_GRACE)
    }

    /// Not triggered, with this grace period.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                flag: AtomicBool::new(false),
                state: watch::Sender::new(State::default()),
                grace_ms: AtomicU64::new(millis(grace)),
                reason: OnceLock::new(),
            }),
        }
    }

    /// Changes the grace period (also after a trigger: the deadline moves).
    pub fn set_grace(&self, grace: Duration) {
        self.inner.grace_ms.store(millis(grace), Ordering::SeqCst);
        // Wake deadline waiters so that they see the new deadline.
        self.inner.state.send_modify(|_| {});
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.inner.grace_ms.load(Ordering::SeqCst))
    }

    /// Asks everything to stop; the grace period starts now (a second call
    /// does not restart it).
    pub fn trigger(&self) {
        self.trigger_by("stop requested");
    }

    /// As [`Shutdown::trigger`], naming the cause (kept from the first call).
    pub fn trigger_by(&self, reason: &'static str) {
        let _ = self.inner.reason.set(reason);
        self.inner.flag.store(true, Ordering::SeqCst);
        self.inner.state.send_if_modified(|s| {
            if s.triggered_at.is_some() {
                return false;
            }
            s.triggered_at = Some(Instant::now());
            true
        });
    }

    /// Triggers and ends the grace period at once: the build in hand is
    /// abandoned at its next yield point.
    pub fn abandon_now(&self) {
        self.trigger_by("stop requested");
        self.inner.state.send_modify(|s| s.abandon_now = true);
    }

    /// Whether it was triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// What triggered it, once triggered.
    pub fn reason(&self) -> Option<&'static str> {
        self.inner.reason.get().copied()
    }

    /// The flag the runner checks between requests and batches.
    pub fn flag(&self) -> &AtomicBool {
        &self.inner.flag
    }

    /// When the build in hand is abandoned: `None` until triggered.
    pub fn deadline(&self) -> Option<Instant> {
        let s = *self.inner.state.borrow();
        let at = s.triggered_at?;
        Some(if s.abandon_now { at } else { at + self.grace() })
    }

    /// Whether the deadline has passed.
    pub fn past_deadline(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Resolves once triggered.
    pub async fn wait(self) {
        self.triggered().await;
    }

    /// Resolves once triggered (borrowing).
    pub async fn triggered(&self) {
        let mut rx = self.inner.state.subscribe();
        // The sender lives in `self`, so the channel cannot close.
        let _ = rx.wait_for(|s| s.triggered_at.is_some()).await;
    }

    /// Resolves at the deadline (never before a trigger).
    ///
    /// Besides the timer, every poll compares the clock with the deadline,
    /// so a caller that is polled again (a build yielding between chunks)
    /// sees the deadline even when the runtime's timer has not fired yet.
    pub async fn deadline_reached(&self) {
        let mut wait = pin!(self.deadline_timer());
        std::future::poll_fn(|cx| {
            if self.past_deadline() {
                return Poll::Ready(());
            }
            wait.as_mut().poll(cx)
        })
        .await;
    }

    async fn deadline_timer(&self) {
        let mut rx = self.inner.state.subscribe();
        loop {
            let Some(deadline) = self.deadline() else {
                // Not triggered yet: wait for a change (the sender lives in
                // `self`, so the channel cannot close).
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => {}
                // The grace changed or a second signal cut it short.
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

impl StopSignal for Shutdown {
    fn is_triggered(&self) -> bool {
        Shutdown::is_triggered(self)
    }

    fn triggered(&self) -> impl Future<Output = ()> + Send {
        Shutdown::triggered(self)
    }

    fn deadline_reached(&self) -> impl Future<Output = ()> + Send {
        Shutdown::deadline_reached(self)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Makes SIGINT and SIGTERM (Ctrl-C only, outside Unix) trigger `stop`; a
/// second signal ends the grace period at once.
///
/// Call it first thing in `main`, inside the runtime (a multi-thread one,
/// so that the listener runs even while the main thread is busy building):
/// the handlers are installed before this returns, so no signal that comes
/// later gets the default action (death on the spot) or is lost, however
/// busy the process is.
pub fn stop_on_signals(stop: &Shutdown) -> std::io::Result<()> {
    let listener = signals()?;
    let stop = stop.clone();
    tokio::spawn(async move {
        let mut listener = listener;
        let mut first = true;
        while let Some(name) = listener.next().await {
            if first {
                first = false;
                tracing::warn!(
                    signal = name,
                    grace_seconds = stop.grace().as_secs_f64(),
                    "stopping: no new request; the batch in hand finishes within the grace \
                     period, else is abandoned and its request released"
                );
                stop.trigger_by(name);
            } else {
                tracing::warn!(
                    signal = name,
                    "stopping now: the batch in hand is abandoned and its request released"
                );
                stop.abandon_now();
            }
        }
    });
    Ok(())
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

/// Installs the handlers now (not at the first poll).
#[cfg(unix)]
fn signals() -> std::io::Result<Signals> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok(Signals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    })
}

#[cfg(unix)]
impl Signals {
    async fn next(&mut self) -> Option<&'static str> {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Some("SIGINT"),
            Some(()) = self.terminate.recv() => Some("SIGTERM"),
            else => None,
        }
    }
}

#[cfg(not(unix))]
struct Signals(tokio::signal::windows::CtrlC);

#[cfg(not(unix))]
fn signals() -> std::io::Result<Signals> {
    tokio::signal::windows::ctrl_c().map(Signals)
}

#[cfg(not(unix))]
impl Signals {
    async fn next(&mut self) -> Option<&'static str> {
        self.0.recv().await.map(|()| "Ctrl-C")
    }
}
