//! What the live adapters share: read counters, the one retry loop with its
//! back-off, and which HTTP answers are transient.

// Each live adapter uses its part of these: a build with only some of them
// leaves the rest unused.
#![cfg_attr(not(feature = "live"), allow(dead_code))]

use exhaust_core::source::ReadStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Cumulative read counters of one store, updated from many tasks at once.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    queries: AtomicU64,
    round_trips: AtomicU64,
    rows: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    /// One query, command or request sent (retries count: they are sent).
    pub(crate) fn query(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` queries sent at once (a pipeline of commands: one round trip).
    pub(crate) fn queries(&self, n: usize) {
        self.queries.fetch_add(n as u64, Ordering::Relaxed);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// Pipelines sent (retries count), each one round trip; single queries
    /// ([`Counters::query`]) are not counted here, being one each.
    pub(crate) fn pipelines(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Rows and bytes received.
    pub(crate) fn received(&self, rows: usize, bytes: usize) {
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> ReadStats {
        ReadStats {
            queries: self.queries.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// The wait before retry number `attempt` (1-based): `base` doubled per
/// earlier retry, at most 30 seconds.
pub(crate) fn backoff(base_ms: u64, attempt: u32) -> Duration {
    let factor = 1u64 << attempt.saturating_sub(1).min(16);
    Duration::from_millis(base_ms.saturating_mul(factor).min(30_000))
}

/// `delay` spread over its upper half: `unit` (in `[0, 1)`) picks the point.
/// Workers that met the same outage at the same moment then retry at
/// different moments instead of in lock-step, while each still waits at
/// least half the back-off (a store coming back is not hit at once).
pub(crate) fn jittered(delay: Duration, unit: f64) -> Duration {
    let half = delay / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// How an adapter retries: `retries` more tries after the first, waiting
/// [`backoff`]`(base_ms, n)`, [`jittered`], before retry `n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    /// Tries after the first.
    pub retries: u32,
    /// The first wait, doubled per retry.
    pub base_ms: u64,
}

/// Why [`Retry::run`] gave up: the last error, how many tries were made,
/// and whether that error was transient (so the retries ran out) or final.
#[derive(Debug)]
pub(crate) struct GaveUp<E> {
    pub error: E,
    pub attempts: u32,
    pub transient: bool,
}

impl Retry {
    /// Calls `op` until it succeeds, fails with an error `transient` calls
    /// final, or the retries are spent. `what` names the call in the debug
    /// line logged before each retry (ids, never values).
    pub(crate) async fn run<T, E, F, Fut>(
        self,
        what: &str,
        transient: impl Fn(&E) -> bool,
        mut op: F,
    ) -> Result<T, GaveUp<E>>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) && attempts <= self.retries => {
                    let delay = jittered(backoff(self.base_ms, attempts), rand::random::<f64>());
                    tracing::debug!(what, attempt = attempts, ?delay, error = %e, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    return Err(GaveUp {
                        transient: transient(&e),
                        attempts,
                        error: e,
                    });
                }
            }
        }
    }
}

/// Whether an HTTP answer is worth asking again: the service is failing,
/// timed out or asks callers to slow down (5xx, 408, 429).
#[cfg(feature = "search")]
pub(crate) fn transient_status(status: reqwest::StatusCode) -> bool {
    status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_spread_over_the_upper_half_of_the_back_off() {
        let d = Duration::from_millis(800);
        assert_eq!(jittered(d, 0.0), Duration::from_millis(400));
        assert_eq!(jittered(d, 0.5), Duration::from_millis(600));
        assert_eq!(jittered(d, 1.0), d);
        assert_eq!(jittered(d, 7.0), d, "out of range is clamped");
        // Drawn as the retry loop draws them: within bounds, and not all
        // the same (lock-step is what jitter is for).
        let draws: std::collections::BTreeSet<Duration> = (0..64)
            .map(|_| jittered(d, rand::random::<f64>()))
            .collect();
        assert!(draws.iter().all(|w| *w >= d / 2 && *w <= d), "{draws:?}");
        assert!(draws.len() > 32, "{} distinct waits of 64", draws.len());
    }

    #[tokio::test]
    async fn retries_transient_failures_until_spent() {
        let retry = Retry {
            retries: 2,
            base_ms: 1,
        };
        let calls = std::cell::Cell::new(0);
        // Succeeds on the third try.
        let got = retry
            .run(
                "t",
                |_: &String| true,
                || {
                    calls.set(calls.get() + 1);
                    let n = calls.get();
                    async move {
                        if n < 3 {
                            Err(format!("fail {n}"))
                        } else {
                            Ok(n)
                        }
                    }
                },
            )
            .await;
        assert_eq!(got.ok(), Some(3));
        // Always failing: 1 + 2 tries, then the last error.
        calls.set(0);
        let gave_up = retry
            .run(
                "t",
                |_: &String| true,
                || {
                    calls.set(calls.get() + 1);
                    let n = calls.get();
                    async move { Err::<(), _>(format!("fail {n}")) }
                },
            )
            .await
            .expect_err("spent");
        assert_eq!((gave_up.attempts, gave_up.transient), (3, true));
        assert_eq!(gave_up.error, "fail 3");
        // A final error is not retried.
        calls.set(0);
        let gave_up = retry
            .run(
                "t",
                |e: &String| e != "final",
                || {
                    calls.set(calls.get() + 1);
                    async { Err::<(), _>("final".to_string()) }
                },
            )
            .await
            .expect_err("final");
        assert_eq!(
            (gave_up.attempts, gave_up.transient, calls.get()),
            (1, false, 1)
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(100, 1), Duration::from_millis(100));
        assert_eq!(backoff(100, 3), Duration::from_millis(400));
        assert_eq!(backoff(100, 60), Duration::from_secs(30));
    }
}
