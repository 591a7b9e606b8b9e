//! A worker process signalled at random moments: the checks shared by the
//! `exhaust run --watch` tests (exhaust-cli) and the `exhaust-server
//! --worker` tests (exhaust-server, which includes this file by path).
//!
//! Each iteration queues a few requests in the embedded defaults (the
//! SQLite file, the local storage folder, the bundled sample snapshot),
//! starts the worker, waits until the kernel shows SIGINT and SIGTERM
//! caught, sleeps a random time (so the signal lands while starting up,
//! idle, claiming, building or uploading), sends the signal with `kill`,
//! and checks what a signal-initiated stop promises: the process exits by
//! itself, with status 0, no request is left PROCESSING, no temporary or
//! partial file is left anywhere in the folder, every stored zip opens, and
//! every SUCCESS request has its files.
//!
//! Linux only: readiness is read from `/proc/<pid>/status`.

#![allow(dead_code)]

use crate::requests::AnyRequestStore;
use chrono::Utc;
use exhaust_core::request::{NewRequest, RequestStatus};
use exhaust_core::store::RequestStore;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sample snapshot's batches and the channel of their collections.
pub const SAMPLE_BATCHES: [&str; 3] = [
    "0135742803756164562",
    "0126303835330566836",
    "0178931785531734509",
];
/// The channel of the sample's collections.
pub const SAMPLE_CHANNEL: &str = "0166646273726135492";

/// The grace period given to the workers: far above a sample batch's build,
/// so a stop always finishes the batch in hand, and well below the bound
/// the tests wait for.
pub const GRACE_SECONDS: u64 = 10;

/// How long a signalled worker may take to exit before the test kills it
/// and fails: the grace period plus time for start-up and the release.
pub const EXIT_BOUND: Duration = Duration::from_secs(GRACE_SECONDS + 10);

/// A small, seeded random generator (no dependency for it): the seed is
/// printed, so a failing sequence can be replayed with `STOP_TEST_SEED`.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `STOP_TEST_SEED` when set, else the clock; the seed
    /// is printed under `label`, so a failing run can be replayed.
    pub fn from_env_or_clock(label: &str) -> Self {
        let seed = std::env::var("STOP_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    ^ u64::from(std::process::id())
            });
        eprintln!("{label}: STOP_TEST_SEED={seed}");
        Self(seed | 1)
    }

    /// xorshift64*.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A working folder with the defaults, as an operator's would be.
pub struct Bench {
    /// The folder (removed with the bench).
    pub dir: tempfile::TempDir,
    /// Where the signals landed, as the workers' logs tell: (starting up,
    /// with a request in hand, otherwise: idle or between requests).
    pub landed: (usize, usize, usize),
    /// Folders of the test's own (a generated snapshot) that the check of
    /// left-over files skips.
    pub own: Vec<String>,
    rt: tokio::runtime::Runtime,
    submitted: usize,
}

impl Default for Bench {
    fn default() -> Self {
        Self::new()
    }
}

impl Bench {
    /// A new bench in a temporary folder.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tmp")).expect("tmp");
        std::fs::create_dir(dir.path().join("logs")).expect("logs");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Self {
            dir,
            landed: (0, 0, 0),
            own: Vec::new(),
            rt,
            submitted: 0,
        }
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The storage folder (the default `./exhaust-files`).
    pub fn files(&self) -> PathBuf {
        self.path().join("exhaust-files")
    }

    /// The system temporary folder of the workers (`TMPDIR`), where the
    /// runner builds its CSVs and zips.
    pub fn tmp(&self) -> PathBuf {
        self.path().join("tmp")
    }

    fn store(&self) -> AnyRequestStore {
        let url = self.path().join("exhaust.db").display().to_string();
        self.rt
            .block_on(AnyRequestStore::open(&url, "job_request"))
            .expect("store")
    }

    /// Queues `n` requests: alternately one batch, and all three batches
    /// (so that stops also land between the batches of a request).
    pub fn submit(&mut self, n: usize) {
        let store = self.store();
        for _ in 0..n {
            self.submitted += 1;
            let k = self.submitted;
            let config = if k.is_multiple_of(2) {
                serde_json::json!({ "batchFilter": SAMPLE_BATCHES })
            } else {
                serde_json::json!({ "batchId": SAMPLE_BATCHES[k % 3] })
            };
            let request = NewRequest {
                tag: format!("signals-{k}"),
                dataset: "progress-exhaust".into(),
                requested_by: format!("user-{k}"),
                channel: SAMPLE_CHANNEL.into(),
                dataset_config: config,
                encryption_key: None,
            }
            .into_job_request(Utc::now())
            .expect("a valid request");
            self.rt.block_on(store.submit(&request)).expect("submitted");
        }
    }

    /// Queues one request for one batch.
    pub fn submit_batch(&mut self, batch: &str) {
        self.submitted += 1;
        let request = NewRequest {
            tag: format!("signals-{}", self.submitted),
            dataset: "progress-exhaust".into(),
            requested_by: format!("user-{}", self.submitted),
            channel: SAMPLE_CHANNEL.into(),
            dataset_config: serde_json::json!({ "batchId": batch }),
            encryption_key: None,
        }
        .into_job_request(Utc::now())
        .expect("a valid request");
        let store = self.store();
        self.rt.block_on(store.submit(&request)).expect("submitted");
    }

    /// Waits until some request is PROCESSING (the worker is building).
    pub fn wait_for_processing(&self, child: &mut Child) {
        let store = self.store();
        let started = Instant::now();
        loop {
            let rows = self
                .rt
                .block_on(store.recent(Some(RequestStatus::Processing), 1))
                .expect("rows");
            if !rows.is_empty() {
                return;
            }
            if let Some(s) = child.try_wait().expect("try_wait") {
                panic!("the worker exited before building: {s}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the worker never got caught in the middle"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `program` in the folder, with none of the developer's settings, the
    /// grace period of the tests and `TMPDIR` inside the folder.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("EXHAUST_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("TMPDIR", self.tmp())
            .env("EXHAUST_GRACE_SECONDS", GRACE_SECONDS.to_string())
            .env("EXHAUST_LOG", "info");
        cmd
    }

    /// Starts `cmd` (stdout and stderr to a log file of the iteration).
    /// The process is killed when the guard is dropped, so a failing
    /// assertion never leaves a worker running behind the test.
    pub fn spawn(&self, mut cmd: Command, iteration: usize) -> Worker {
        let log = self.path().join("logs").join(format!("{iteration}.log"));
        let out = std::fs::File::create(&log).expect("log");
        let err = out.try_clone().expect("log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map(Worker)
            .expect("the worker starts")
    }

    /// The log of the worker of `iteration`.
    pub fn log(&self, iteration: usize) -> String {
        std::fs::read_to_string(self.path().join("logs").join(format!("{iteration}.log")))
            .unwrap_or_default()
    }

    /// One iteration: start, signal at a random moment within `window`,
    /// wait for the exit, check everything.
    pub fn signal_at_random(
        &mut self,
        cmd: Command,
        signal: &str,
        window: Duration,
        rng: &mut Rng,
        iteration: usize,
    ) {
        let mut child = self.spawn(cmd, iteration);
        wait_for_handlers(&mut child, &self.log(iteration));
        // One start in four is hit within its first 20 ms (opening the store
        // and the source), the others anywhere in `window`.
        let window = if rng.below(4) == 0 {
            Duration::from_millis(20)
        } else {
            window
        };
        let delay = Duration::from_millis(rng.below(window.as_millis() as u64 + 1));
        // Not a timing assertion: only where in its life the worker is hit.
        std::thread::sleep(delay);
        send(signal, child.id());
        let status = wait_bounded(&mut child, EXIT_BOUND);
        let log = self.log(iteration);
        let Some(status) = status else {
            panic!(
                "iteration {iteration}: the worker did not exit within {EXIT_BOUND:?} of \
                 {signal} (sent {delay:?} after start-up); it was killed\n{log}"
            );
        };
        assert_eq!(
            status.code(),
            Some(0),
            "iteration {iteration}: {signal} after {delay:?}: {status}\n{log}"
        );
        self.check(&format!(
            "iteration {iteration}: {signal} after {delay:?}\n{log}"
        ));
        match landed(&log) {
            Landed::StartingUp => self.landed.0 += 1,
            Landed::InHand => self.landed.1 += 1,
            Landed::Idle => self.landed.2 += 1,
        }
    }

    /// Says where the signals landed (shown with `--nocapture`).
    pub fn report(&self, label: &str) {
        let (start, busy, idle) = self.landed;
        eprintln!(
            "{label}: signals landed {start} times while starting up, {busy} times with a request in hand \
             (claiming, building, storing), {idle} times idle or between requests"
        );
    }

    /// What a clean stop leaves: no PROCESSING request, no temporary or
    /// partial file, complete zips, SUCCESS requests with their files.
    /// Returns (SUCCESS, SUBMITTED) counts.
    pub fn check(&self, context: &str) -> (usize, usize) {
        let store = self.store();
        let rows = self.rt.block_on(store.recent(None, 10_000)).expect("rows");
        let (mut success, mut submitted) = (0, 0);
        for r in &rows {
            match r.status {
                RequestStatus::Processing => {
                    panic!("{}: left PROCESSING\n{context}", r.request_id)
                }
                RequestStatus::Failed => {
                    panic!("{}: FAILED: {:?}\n{context}", r.request_id, r.err_message)
                }
                RequestStatus::Submitted => submitted += 1,
                RequestStatus::Success => {
                    success += 1;
                    assert!(!r.download_urls.is_empty(), "{}\n{context}", r.request_id);
                    for key in &r.download_urls {
                        let zip = self.files().join(key);
                        assert!(zip.is_file(), "{} missing\n{context}", zip.display());
                    }
                }
            }
        }
        for f in walk(self.path()) {
            let rel = f.strip_prefix(self.path()).expect("inside").to_path_buf();
            let name = rel.to_string_lossy().into_owned();
            let allowed = self.own.iter().any(|o| name.starts_with(&format!("{o}/")))
                || name == "exhaust.db"
                || name == "exhaust.db-wal"
                || name == "exhaust.db-shm"
                || (name.starts_with("exhaust.db.locks/") && name.ends_with(".lock"))
                || (name.starts_with("logs/") && name.ends_with(".log"))
                || (name.starts_with("exhaust-files/progress-exhaust/")
                    && name.ends_with(".zip")
                    && !name.contains('#'))
                // A plain file's summary, stored just before its zip.
                || (name.starts_with("exhaust-files/progress-exhaust/")
                    && name.contains("_summary_")
                    && name.ends_with(".json")
                    && !name.contains('#'));
            assert!(
                allowed,
                "a temporary or partial file was left: {name}\n{context}"
            );
            if name.ends_with(".json") {
                let bytes = std::fs::read(&f).expect("summary");
                assert!(
                    exhaust_core::summary::BatchSummary::from_json(&bytes).is_ok(),
                    "{name} is not a whole summary\n{context}"
                );
            }
            if name.ends_with(".zip") {
                let t = Command::new("unzip")
                    .arg("-tq")
                    .arg(&f)
                    .output()
                    .expect("unzip is installed");
                assert!(
                    t.status.success(),
                    "{name} is not a complete zip\n{context}"
                );
            }
        }
        assert!(
            std::fs::read_dir(self.tmp()).expect("tmp").next().is_none(),
            "the work folder is not empty\n{context}"
        );
        (success, submitted)
    }
}

/// Where in a worker's life its signal landed.
enum Landed {
    StartingUp,
    InHand,
    Idle,
}

/// Reads a worker's log up to its "stopping" line (logged by the signal
/// listener when the signal comes): before "runner ready" it was starting
/// up; between "request claimed" and the request's end it had a request in
/// hand (claiming, building, uploading); otherwise it was idle or between
/// requests.
fn landed(log: &str) -> Landed {
    let mut state = Landed::StartingUp;
    for line in log.lines() {
        if line.contains("stopping") {
            break;
        }
        if line.contains("runner ready") {
            state = Landed::Idle;
        } else if line.contains("request claimed") {
            state = Landed::InHand;
        } else if line.contains("request finished") || line.contains("the run was stopped") {
            state = Landed::Idle;
        }
    }
    state
}

/// Every file under `dir` (folders themselves are not listed).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("readable").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A worker process of a test, killed (SIGKILL) and reaped when dropped
/// if it is still running: on a failed assertion the panic unwinds through
/// it, and no worker outlives its test.
pub struct Worker(pub Child);

impl std::ops::Deref for Worker {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Worker {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Sends `signal` ("INT", "TERM") with the `kill` command.
pub fn send(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(ok.success(), "kill -{signal} {pid}");
}

/// Waits until the process catches SIGINT (2) and SIGTERM (15), as
/// `/proc/<pid>/status` shows (`SigCgt`). Before that moment a signal gets
/// the default action, whatever the program does; the program installs its
/// handlers first thing, and this is the earliest the test can tell.
pub fn wait_for_handlers(child: &mut Child, log: &str) {
    let started = Instant::now();
    let status = format!("/proc/{}/status", child.id());
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            panic!("the worker exited before installing its handlers: {s}\n{log}");
        }
        let caught = std::fs::read_to_string(&status)
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("SigCgt:"))
                    .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            })
            .unwrap_or(0);
        let want = (1u64 << (2 - 1)) | (1u64 << (15 - 1));
        if caught & want == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "SIGINT and SIGTERM were never caught (SigCgt {caught:x})"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Waits for the exit; kills the process and returns `None` past `bound`.
pub fn wait_bounded(child: &mut Child, bound: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
