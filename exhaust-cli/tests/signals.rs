//! SIGINT and SIGTERM stop `exhaust run --watch` cleanly at any moment:
//! many starts, each signalled at a random moment (starting up, idle,
//! claiming, building, uploading), each checked (support/stop.rs); and a
//! build longer than the grace period is abandoned at the deadline.
#![cfg(target_os = "linux")]

use exhaust_sources::testing::signals as stop;

use std::time::Duration;
use stop::{Bench, Rng, send, wait_bounded, wait_for_handlers};

/// Starts per signal: each start meets a few new requests.
const ITERATIONS: usize = 24;

mod common;
use common::exhaust_bin as exhaust;

fn watch_stops_cleanly(signal: &str) {
    let mut rng = Rng::from_env_or_clock(&format!("exhaust run --watch, SIG{signal}"));
    let mut bench = Bench::new();
    for i in 0..ITERATIONS {
        bench.submit(2);
        let mut cmd = bench.command(&exhaust());
        cmd.args(["run", "--watch", "--interval", "1"]);
        // Within 0.8 s: start-up and the first run take a few hundred
        // milliseconds, then the worker idles until its next poll.
        bench.signal_at_random(cmd, signal, Duration::from_millis(800), &mut rng, i);
    }
    bench.report(&format!("exhaust run --watch, SIG{signal}"));
    // What the stops released is completed by the next runs (a run builds
    // at most 30 batches of a channel).
    for _ in 0..10 {
        let a = bench.command(&exhaust()).arg("run").output().expect("runs");
        assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
        if bench.check("after the last runs").1 == 0 {
            break;
        }
    }
    assert_eq!(bench.check("after the last runs"), (2 * ITERATIONS, 0));
}

#[test]
fn sigint_stops_exhaust_run_watch_cleanly_at_any_moment() {
    watch_stops_cleanly("INT");
}

#[test]
fn sigterm_stops_exhaust_run_watch_cleanly_at_any_moment() {
    watch_stops_cleanly("TERM");
}

/// A build longer than the grace period (here 0 s) is abandoned when the
/// stop comes: the worker exits 0 at once, the request is SUBMITTED again,
/// no file is left, and the next run builds it.
#[test]
fn a_build_longer_than_the_grace_period_is_abandoned_and_released() {
    let mut bench = Bench::new();
    // A batch big enough to be caught in the middle of its build.
    let generated = bench
        .command(&exhaust())
        .args(["gen-snapshot", "--out", "big", "--batches", "1"])
        .args(["--enrolments-per-batch", "20000", "--users", "20000"])
        .output()
        .expect("gen-snapshot");
    assert!(generated.status.success());
    let big = bench.path().join("big");
    bench.own.push("big".into());
    bench.submit_batch(stop::SAMPLE_BATCHES[0]);
    let mut cmd = bench.command(&exhaust());
    cmd.env("EXHAUST_SNAPSHOT", &big).args([
        "run",
        "--watch",
        "--interval",
        "1",
        "--grace-seconds",
        "0",
    ]);
    let mut child = bench.spawn(cmd, 0);
    wait_for_handlers(&mut child, "");
    bench.wait_for_processing(&mut child);
    send("TERM", child.id());
    let status = wait_bounded(&mut child, stop::EXIT_BOUND)
        .unwrap_or_else(|| panic!("not stopped in time\n{}", bench.log(0)));
    assert_eq!(status.code(), Some(0), "{}", bench.log(0));
    let log = bench.log(0);
    assert!(log.contains("build abandoned"), "{log}");
    assert!(log.contains("1 unfinished request(s) released"), "{log}");
    assert_eq!(bench.check(&log), (0, 1), "back to SUBMITTED, no file");
    assert!(!bench.files().join("progress-exhaust").exists());

    let mut cmd = bench.command(&exhaust());
    cmd.env("EXHAUST_SNAPSHOT", &big).arg("run");
    let a = cmd.output().expect("runs");
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(bench.check("the next run"), (1, 0));
}
