//! SIGINT and SIGTERM stop `exhaust-server --worker` cleanly at any moment:
//! many starts, each signalled at a random moment (starting up, idle,
//! claiming, building, uploading), each checked by the checks shared with
//! `exhaust run --watch` (`exhaust_sources::testing::signals`). The last
//! check runs the library's runner over what the stops released.
#![cfg(target_os = "linux")]

use exhaust_sources::testing::signals as stop;

use exhaust_server::app::Settings;
use std::path::PathBuf;
use std::time::Duration;
use stop::{Bench, Rng};

/// Starts per signal: each start meets a few new requests.
const ITERATIONS: usize = 24;

fn server() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_exhaust-server"))
}

fn server_stops_cleanly(signal: &str, worker: bool) {
    let mut rng = Rng::from_env_or_clock(&format!("exhaust-server, SIG{signal}"));
    let mut bench = Bench::new();
    for i in 0..ITERATIONS {
        if worker {
            bench.submit(2);
        }
        let mut cmd = bench.command(&server());
        cmd.args(["--bind", "127.0.0.1:0", "--poll-seconds", "1"]);
        if worker {
            cmd.arg("--worker");
        }
        bench.signal_at_random(cmd, signal, Duration::from_millis(800), &mut rng, i);
    }
    if !worker {
        return;
    }
    bench.report(&format!("exhaust-server --worker, SIG{signal}"));
    // What the stops released is completed by the library's runner.
    let mut settings = Settings::default();
    settings.store.url = bench.path().join("exhaust.db").display().to_string();
    settings.storage.url = bench.files().display().to_string();
    settings.job.work_dir = Some(bench.tmp());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let runner = settings.open_runner().await.expect("runner");
        for _ in 0..10 {
            let s = runner.run_once().await.expect("run");
            if s.total == 0 {
                break;
            }
        }
    });
    assert_eq!(bench.check("after the last runs"), (2 * ITERATIONS, 0));
}

#[test]
fn sigint_stops_the_server_and_its_worker_cleanly_at_any_moment() {
    server_stops_cleanly("INT", true);
}

#[test]
fn sigterm_stops_the_server_and_its_worker_cleanly_at_any_moment() {
    server_stops_cleanly("TERM", true);
}

#[test]
fn sigterm_stops_the_server_without_a_worker() {
    server_stops_cleanly("TERM", false);
}
