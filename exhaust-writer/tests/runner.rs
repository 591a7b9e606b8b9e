//! The request runner end to end: requests in a real store (an SQLite file,
//! and a PostgreSQL schema of the test's own on 127.0.0.1:5432 or
//! `EXHAUST_TEST_PG_URL`), reports from snapshot folders, zips in a local
//! storage folder. Every scenario runs on both stores.

use chrono::{NaiveDate, TimeZone, Utc};
use exhaust_core::request::{JobRequest, RequestStatus, request_id};
use exhaust_core::runner::{Runner, RunnerConfig};
use exhaust_core::security::{FixedLevel, SecurityLevel};
use exhaust_core::source::{ReadCounter, Reclaim, SourceError};
use exhaust_core::store::{RequestStore, Submission};
use exhaust_core::time::{ReportTz, file_date_stamp};
use exhaust_sources::on_both_stores;
use exhaust_sources::requests::AnyRequestStore;
use exhaust_sources::testing::{TestStore, TestWorld, suite};
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::{PublishConfig, Publisher, Storage, TokioClock};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

const CHANNEL: &str = "b00bc992ef25f1a9a8d63291e20efc8d";
const SAMPLE_CHANNEL: &str = "0166646273726135492";

use exhaust_sources::testing::{conformance_snapshot as conformance, sample_snapshot as sample};

fn snapshot(dir: &Path) -> Snapshot {
    Snapshot::open(dir, SnapshotOptions::default()).expect("snapshot")
}

/// Where a scenario keeps its requests (the store suite's [`TestStore`])
/// and files (in the store's temporary folder).
struct World {
    t: TestStore,
}

impl exhaust_sources::testing::TestWorld for World {
    async fn sqlite() -> Self {
        Self {
            t: TestStore::sqlite(),
        }
    }

    async fn postgres() -> Self {
        Self {
            t: TestStore::postgres("exhaust_r").await,
        }
    }
}

impl World {
    /// A new handle on the store, as another worker process would open it.
    async fn store(&self) -> AnyRequestStore {
        self.t.open().await
    }

    fn files(&self) -> PathBuf {
        self.t.dir().join("files")
    }

    fn storage(&self) -> Storage {
        Storage::local(self.files()).expect("storage")
    }

    async fn runner<S: exhaust_core::source::ReportSource>(
        &self,
        source: S,
        config: RunnerConfig,
    ) -> TestRunner<S> {
        self.runner_with(source, config, FixedLevel::default())
            .await
    }

    async fn runner_with<S: exhaust_core::source::ReportSource>(
        &self,
        source: S,
        config: RunnerConfig,
        level: FixedLevel,
    ) -> TestRunner<S> {
        let output = Publisher::new(self.storage(), PublishConfig::in_folder(self.t.dir()));
        // The wall clock is pinned, so the date in file names is known.
        let clock = TokioClock::pinned(run_time());
        Runner::new(source, self.store().await, level, output, clock, config)
    }
}

type TestRunner<S> = Runner<S, AnyRequestStore, FixedLevel, Publisher, TokioClock>;

/// The time the runners of these tests read: 20:00 UTC, already the next
/// day in India (the date in file names is India's, as Sunbird's).
fn run_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 9, 20, 0, 0)
        .single()
        .expect("time")
}

fn new_request(tag: &str, by: &str, channel: &str, data: serde_json::Value) -> JobRequest {
    let day = NaiveDate::from_ymd_opt(2024, 1, 15).expect("date");
    JobRequest {
        tag: format!("{tag}:{channel}"),
        request_id: request_id("progress-exhaust", tag, by, channel, day, None),
        job_id: "progress-exhaust".into(),
        status: RequestStatus::Submitted,
        request_data: data,
        requested_by: by.into(),
        requested_channel: channel.into(),
        dt_job_submitted: Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).single(),
        download_urls: vec![],
        dt_file_created: None,
        dt_job_completed: None,
        execution_time: None,
        err_message: None,
        iteration: 0,
        encryption_key: None,
        batch_number: None,
        processed_batches: None,
    }
}

async fn submit(store: &AnyRequestStore, r: &JobRequest) {
    let s = store.submit(r).await.expect("submit");
    assert!(matches!(s, Submission::Created(_)), "{s:?}");
}

async fn reread(store: &AnyRequestStore, r: &JobRequest) -> JobRequest {
    store
        .get(&r.tag, &r.request_id)
        .await
        .expect("get")
        .expect("row")
}

fn stamp() -> String {
    file_date_stamp(run_time(), ReportTz::ist())
}

/// The one CSV inside a stored zip.
fn unzip(path: &Path, password: Option<&str>) -> (String, String) {
    let file = std::fs::File::open(path).expect("zip");
    let mut zip = zip::ZipArchive::new(file).expect("archive");
    assert_eq!(zip.len(), 1, "one CSV per zip");
    let name = zip
        .name_for_index(0)
        .expect("name")
        .expect("name")
        .to_string();
    let mut entry = match password {
        None => zip.by_index(0).expect("entry"),
        Some(p) => zip.by_name_decrypt(&name, p.as_bytes()).expect("decrypt"),
    };
    let mut csv = String::new();
    entry.read_to_string(&mut csv).expect("read");
    (name, csv)
}

/// Sunbird's own test: EXPECTED.md's request-level expectations.
async fn sunbird_request_expectations(w: World) {
    let runner = w
        .runner(snapshot(&conformance()), RunnerConfig::default())
        .await;
    let store = runner.store();
    let one = new_request(
        "do_1130928636168192001667_batch-001",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchId": "batch-001"}),
    );
    let filtered = new_request(
        "filtered",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchFilter": ["batch-01", "batch-001", "batch-001"]}),
    );
    let unknown = new_request(
        "unknown",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchFilter": ["batch-01", "batch-02"]}),
    );
    for r in [&one, &filtered, &unknown] {
        submit(store, r).await;
    }
    let summary = runner.run_once().await.expect("run");
    assert_eq!(
        (summary.total, summary.succeeded, summary.failed),
        (3, 2, 1),
        "{summary}"
    );

    for r in [&one, &filtered] {
        let row = reread(store, r).await;
        assert_eq!(row.status, RequestStatus::Success, "{:?}", row.err_message);
        assert_eq!(row.err_message, None);
        assert_eq!(row.iteration, 0);
        // The date of the run in India: the runner's pinned 20:00 UTC is
        // already 10 March there.
        let day = stamp();
        assert_eq!(day, "20240310");
        let key = format!(
            "progress-exhaust/{}/batch-001_progress_{day}.zip",
            r.request_id
        );
        assert_eq!(row.download_urls, std::slice::from_ref(&key));
        assert!(row.dt_job_completed.is_some());
        assert!(row.execution_time.is_some());
        let processed = row.processed().expect("processed");
        assert_eq!(processed.len(), 1);
        assert_eq!(processed[0].file_path, key.replace(".zip", ".csv"));
        assert_eq!(processed[0].channel.as_deref(), Some(CHANNEL));

        let (name, csv) = unzip(&w.files().join(&key), None);
        assert_eq!(name, format!("batch-001_progress_{day}.csv"));
        assert_eq!(processed[0].file_size, csv.len() as u64);
        let users: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(4).unwrap_or_default())
            .collect();
        assert_eq!(users, ["user-001", "user-002", "user-003", "user-004"]);
    }

    let row = reread(store, &unknown).await;
    assert_eq!(row.status, RequestStatus::Failed);
    assert_eq!(row.err_message.as_deref(), Some("No data found"));
    assert_eq!(row.iteration, 1);
    assert!(row.download_urls.is_empty());
}
on_both_stores!(sunbird_expectations, World, sunbird_request_expectations);

/// Every refusal of SPEC section 6 steps 2 and 3, with Sunbird's messages.
async fn refusals(w: World) {
    // A copy of the conformance snapshot whose collection is retired.
    let retired = w.t.dir().join("retired");
    std::fs::create_dir_all(&retired).expect("dir");
    for f in std::fs::read_dir(conformance()).expect("ls") {
        let f = f.expect("entry").path();
        let text = std::fs::read_to_string(&f).expect("read");
        let text = if f.ends_with("content.jsonl") {
            text.replace("\"Live\"", "\"Retired\"")
        } else {
            text
        };
        std::fs::write(retired.join(f.file_name().expect("name")), text).expect("write");
    }
    let config = RunnerConfig {
        batch_limit_per_request: 2,
        ..RunnerConfig::default()
    };
    let runner = w.runner(snapshot(&retired), config).await;
    let store = runner.store();
    let cases = [
        (
            serde_json::json!({"encryptionKey": "x"}),
            "Request should have either of batchId, batchFilter, searchFilter or encrption key",
        ),
        (
            serde_json::json!({"batchFilter": ["a", "b", "c"]}),
            "Number of batches in request exceeded. It should be within 2",
        ),
        (
            serde_json::json!({"batchId": "batch-001"}),
            "The request is made for retired collection",
        ),
        (
            serde_json::json!({"searchFilter": {"request": {"filters": {"status": ["Live"]}}}}),
            "No data found",
        ),
        (
            serde_json::json!({"batchId": 42}),
            "request_data is malformed: batchId must be a non-empty string, found 42",
        ),
    ];
    let mut requests = Vec::new();
    for (i, (data, _)) in cases.iter().enumerate() {
        let r = new_request(&format!("t{i}"), &format!("u{i}"), CHANNEL, data.clone());
        submit(store, &r).await;
        requests.push(r);
    }
    let summary = runner.run_once().await.expect("run");
    assert_eq!(summary.failed, cases.len(), "{summary}");
    for (r, (_, message)) in requests.iter().zip(cases) {
        let row = reread(store, r).await;
        assert_eq!(row.status, RequestStatus::Failed);
        assert_eq!(row.err_message.as_deref(), Some(message));
        assert_eq!(row.iteration, 1);
        assert!(row.download_urls.is_empty());
    }
    assert!(
        !w.files().join("progress-exhaust").exists(),
        "no file for a refused request"
    );
}
on_both_stores!(refused, World, refusals);

/// Duplicates: the first is processed, the other gets its outcome.
async fn duplicates(w: World) {
    let runner = w
        .runner(snapshot(&conformance()), RunnerConfig::default())
        .await;
    let store = runner.store();
    let data = serde_json::json!({"batchId": "batch-001"});
    let first = new_request("tag-a", "user-002", CHANNEL, data.clone());
    let mut second = new_request("tag-b", "user-002", CHANNEL, data);
    second.dt_job_submitted = Utc.with_ymd_and_hms(2024, 1, 15, 10, 5, 0).single();
    // Same data from someone else is not a duplicate.
    let other = new_request("tag-c", "user-003", CHANNEL, first.request_data.clone());
    for r in [&first, &second, &other] {
        submit(store, r).await;
    }
    let summary = runner.run_once().await.expect("run");
    assert_eq!(summary.duplicates, 1, "{summary}");
    assert_eq!(summary.batches.len(), 2, "{summary}");
    let a = reread(store, &first).await;
    let b = reread(store, &second).await;
    assert_eq!(b.status, RequestStatus::Success);
    assert_eq!(a.download_urls, b.download_urls);
    assert!(a.download_urls[0].contains(&first.request_id));
    assert_eq!(reread(store, &other).await.status, RequestStatus::Success);
}
on_both_stores!(duplicate_requests, World, duplicates);

/// The sample's batch and the org of six of its learners.
const SAMPLE_BATCH: &str = "0135742803756164562";
const OTHER_ORG: &str = "0171480710251966797";

/// The users of a report CSV (the seed layout's fifth column).
fn users_of(csv: &str) -> Vec<String> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap_or_default().to_string())
        .collect()
}

/// Each user's `rootorgid` in the sample's user cache.
fn sample_root_orgs() -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(sample().join("user_cache.jsonl")).expect("user cache");
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .map(|v| {
            let value = &v["value"];
            (
                value["userid"].as_str().unwrap_or_default().to_string(),
                value["rootorgid"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Two orgs asking for the same batch, with the same data and requester,
/// are not duplicates: each gets a file of its own, System's with every
/// learner and the other org's with only its own (no file crosses orgs).
async fn duplicates_stay_within_a_channel(w: World) {
    let runner = w.runner(snapshot(&sample()), RunnerConfig::default()).await;
    let store = runner.store();
    let data = serde_json::json!({ "batchId": SAMPLE_BATCH });
    let system = new_request("t", "u-1", "System", data.clone());
    let org = new_request("t", "u-1", OTHER_ORG, data);
    for r in [&system, &org] {
        submit(store, r).await;
    }
    let summary = runner.run_once().await.expect("run");
    assert_eq!(
        (summary.succeeded, summary.duplicates, summary.batches.len()),
        (2, 0, 2),
        "{summary}"
    );
    let system_row = reread(store, &system).await;
    let org_row = reread(store, &org).await;
    assert_ne!(system_row.download_urls, org_row.download_urls);
    assert!(org_row.download_urls[0].contains(&org.request_id));
    let (_, all) = unzip(&w.files().join(&system_row.download_urls[0]), None);
    let (_, own) = unzip(&w.files().join(&org_row.download_urls[0]), None);
    let all = users_of(&all);
    let own = users_of(&own);
    assert_eq!(all.len(), 38, "System gets every learner");
    let orgs = sample_root_orgs();
    let expected: Vec<&String> = all
        .iter()
        .filter(|u| orgs.get(*u).map(String::as_str) == Some(OTHER_ORG))
        .collect();
    assert!(!expected.is_empty() && expected.len() < all.len());
    assert_eq!(
        own.iter().collect::<Vec<_>>(),
        expected,
        "only the org's own learners"
    );
}
on_both_stores!(
    no_file_crosses_channels,
    World,
    duplicates_stay_within_a_channel
);

/// A key that decodes to an empty password fails the request at once,
/// counting an attempt, before anything is built; so does password
/// protection without a key.
async fn unusable_keys_fail(w: World) {
    let salt = "a-deployment-salt";
    let storage = w.storage();
    let output = Publisher::new(
        storage,
        PublishConfig {
            sunbird_encryption_key: salt.into(),
            ..PublishConfig::in_folder(w.t.dir())
        },
    );
    let runner = Runner::new(
        snapshot(&sample()),
        w.store().await,
        FixedLevel(SecurityLevel::PasswordProtected),
        output,
        TokioClock::pinned(run_time()),
        RunnerConfig::default(),
    );
    let store = runner.store();
    let data = serde_json::json!({ "batchId": SAMPLE_BATCH });
    let mut empty = new_request("empty", "u-1", SAMPLE_CHANNEL, data.clone());
    empty.encryption_key = Some(exhaust_writer::encode_encryption_key("", salt));
    let mut blank = new_request("blank", "u-1", SAMPLE_CHANNEL, data.clone());
    blank.encryption_key = Some(exhaust_writer::encode_encryption_key("   ", salt));
    let none = new_request("none", "u-1", SAMPLE_CHANNEL, data.clone());
    let mut good = new_request("good", "u-1", SAMPLE_CHANNEL, data);
    good.encryption_key = Some(exhaust_writer::encode_encryption_key("pw-1", salt));
    for r in [&empty, &blank, &none, &good] {
        submit(store, r).await;
    }
    let summary = runner.run_once().await.expect("run");
    assert_eq!((summary.failed, summary.succeeded), (3, 1), "{summary}");
    assert_eq!(summary.batches.len(), 1, "nothing built for a bad key");
    for (r, needle) in [
        (&empty, "empty or blank key"),
        (&blank, "empty or blank key"),
        (
            &none,
            "no encryption key, which PASSWORD_PROTECTED_DATASET needs",
        ),
    ] {
        let row = reread(store, r).await;
        assert_eq!(row.status, RequestStatus::Failed, "{:?}", row.err_message);
        assert_eq!(row.iteration, 1, "one attempt counted");
        let msg = row.err_message.unwrap_or_default();
        assert!(msg.contains(needle), "{msg}");
    }
    // A later run does not take them again and again: three attempts end it.
    for _ in 0..3 {
        runner.run_once().await.expect("run");
    }
    let row = reread(store, &empty).await;
    assert_eq!((row.status, row.iteration), (RequestStatus::Failed, 3));
    assert!(runner.run_once().await.expect("run").total == 0);
    let row = reread(store, &good).await;
    let (_, csv) = unzip(&w.files().join(&row.download_urls[0]), Some("pw-1"));
    assert_eq!(users_of(&csv).len(), 38);
}
on_both_stores!(unusable_keys, World, unusable_keys_fail);

/// A backlog larger than a page is read page by page, and every request is
/// handled once in the run.
async fn backlog_in_pages(w: World) {
    let config = RunnerConfig {
        poll_page: 5,
        ..RunnerConfig::default()
    };
    let runner = w.runner(snapshot(&conformance()), config).await;
    let store = runner.store();
    let n = 5 * 3 + 2;
    for i in 0..n {
        // Malformed data fails at once, without reading a source.
        // Each from its own user: not duplicates of each other.
        let mut r = new_request(
            &format!("t{i}"),
            &format!("user-{i}"),
            CHANNEL,
            serde_json::json!({ "batchId": 7 }),
        );
        r.dt_job_submitted = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).single();
        submit(store, &r).await;
    }
    let summary = runner.run_once().await.expect("run");
    assert_eq!((summary.total, summary.failed), (n, n), "{summary}");
    let counts = store.count_by_status().await.expect("count");
    assert_eq!(counts.failed, n as u64);
}
on_both_stores!(backlog_pages, World, backlog_in_pages);

/// A search filter that matches more than `search_max_batches` fails with
/// a message naming the setting; within it, it builds.
async fn broad_searches_fail(w: World) {
    let config = RunnerConfig {
        search_max_batches: 0,
        ..RunnerConfig::default()
    };
    let runner = w.runner(snapshot(&sample()), config).await;
    let store = runner.store();
    let r = new_request(
        "search",
        "u-1",
        SAMPLE_CHANNEL,
        serde_json::json!({"searchFilter": {"request": {"filters": {}}}}),
    );
    submit(store, &r).await;
    let summary = runner.run_once().await.expect("run");
    assert_eq!(summary.failed, 1, "{summary}");
    let row = reread(store, &r).await;
    let msg = row.err_message.unwrap_or_default();
    assert!(
        msg.starts_with("The search filter matches") && msg.contains("search_max_batches"),
        "{msg}"
    );
    assert!(summary.batches.is_empty());
}
on_both_stores!(broad_searches, World, broad_searches_fail);

/// A channel limit reached: back to SUBMITTED with the built batch kept;
/// the next run builds only what is left.
async fn limits_then_resume(w: World) {
    let config = RunnerConfig {
        channel_max_batches: 1,
        ..RunnerConfig::default()
    };
    let runner = w.runner(snapshot(&sample()), config).await;
    let store = runner.store();
    let r = new_request(
        "two",
        "u1",
        SAMPLE_CHANNEL,
        serde_json::json!({"batchFilter": ["0135742803756164562", "0126303835330566836"]}),
    );
    submit(store, &r).await;
    let first = runner.run_once().await.expect("run");
    assert_eq!(first.resubmitted, 1, "{first}");
    let row = reread(store, &r).await;
    assert_eq!(row.status, RequestStatus::Submitted);
    assert_eq!(row.iteration, 0);
    let processed = row.processed().expect("processed");
    assert_eq!(processed.len(), 1);
    assert_eq!(processed[0].batch_id, "0135742803756164562");
    let first_zip = w.files().join(first.batches[0].key.clone());
    let modified = std::fs::metadata(&first_zip)
        .expect("zip")
        .modified()
        .expect("mtime");

    let second = runner.run_once().await.expect("run");
    assert_eq!(second.succeeded, 1, "{second}");
    let built: Vec<&str> = second.batches.iter().map(|b| b.batch_id.as_str()).collect();
    assert_eq!(
        built,
        ["0126303835330566836"],
        "the finished batch is not rebuilt"
    );
    let row = reread(store, &r).await;
    assert_eq!(row.status, RequestStatus::Success);
    assert_eq!(row.download_urls.len(), 2);
    assert_eq!(
        std::fs::metadata(&first_zip)
            .expect("zip")
            .modified()
            .expect("mtime"),
        modified
    );
    for key in &row.download_urls {
        assert!(w.files().join(key).is_file(), "{key}");
    }
}
on_both_stores!(channel_limits, World, limits_then_resume);

/// Two workers race for the same requests: each is processed once.
async fn two_workers(w: World) {
    let a = w.runner(snapshot(&sample()), RunnerConfig::default()).await;
    let b = w.runner(snapshot(&sample()), RunnerConfig::default()).await;
    let batches = [
        "0135742803756164562",
        "0126303835330566836",
        "0178931785531734509",
    ];
    let mut requests = Vec::new();
    for i in 0..6 {
        let r = new_request(
            &format!("race-{i}"),
            &format!("u{i}"),
            SAMPLE_CHANNEL,
            serde_json::json!({"batchId": batches[i % 3]}),
        );
        submit(a.store(), &r).await;
        requests.push(r);
    }
    let (sa, sb) = tokio::join!(a.run_once(), b.run_once());
    let (sa, sb) = (sa.expect("a"), sb.expect("b"));
    assert_eq!(sa.succeeded + sb.succeeded, 6, "{sa}\n{sb}");
    assert_eq!(
        sa.batches.len() + sb.batches.len(),
        6,
        "each request built once"
    );
    for r in &requests {
        assert_eq!(reread(a.store(), r).await.status, RequestStatus::Success);
    }
}
on_both_stores!(racing_workers, World, two_workers);

/// A worker dies holding a request: another completes it.
async fn dead_worker(w: World) {
    let runner = w
        .runner(snapshot(&conformance()), RunnerConfig::default())
        .await;
    let r = new_request(
        "t",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchId": "batch-001"}),
    );
    submit(runner.store(), &r).await;
    {
        let other = w.store().await;
        let (mut claim, _) = suite::claim_free(&other, &r).await;
        other.mark_processing(&mut claim).await.expect("processing");
        // While the worker lives, nobody else takes it.
        let busy = runner.run_once().await.expect("run");
        assert_eq!(busy.skipped, 1, "{busy}");
        assert_eq!(
            reread(runner.store(), &r).await.status,
            RequestStatus::Processing
        );
        // The worker dies without a word.
        drop(claim);
        drop(other);
    }
    let mut done = None;
    for _ in 0..100 {
        let s = runner.run_once().await.expect("run");
        if s.succeeded == 1 {
            done = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(done.is_some(), "the request was taken up again");
    assert_eq!(
        reread(runner.store(), &r).await.status,
        RequestStatus::Success
    );
}
on_both_stores!(dead_workers, World, dead_worker);

/// PASSWORD_PROTECTED_DATASET: a ZipCrypto zip that opens with the key.
async fn password_zip(w: World) {
    let runner = w
        .runner_with(
            snapshot(&conformance()),
            RunnerConfig::default(),
            FixedLevel(SecurityLevel::PasswordProtected),
        )
        .await;
    let mut r = new_request(
        "t",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchId": "batch-001"}),
    );
    r.encryption_key = Some("s3cret-Key".into());
    submit(runner.store(), &r).await;
    runner.run_once().await.expect("run");
    let row = reread(runner.store(), &r).await;
    assert_eq!(row.status, RequestStatus::Success, "{:?}", row.err_message);
    let path = w.files().join(&row.download_urls[0]);
    let (_, csv) = unzip(&path, Some("s3cret-Key"));
    assert!(csv.contains("user-004"));
    // The desktop tool opens it with the password, and not without.
    let out = std::process::Command::new("unzip")
        .arg("-P")
        .arg("wrong")
        .arg("-p")
        .arg(&path)
        .output()
        .expect("unzip is installed");
    assert!(!out.status.success() || out.stdout != csv.as_bytes());
    let out = std::process::Command::new("unzip")
        .arg("-P")
        .arg("s3cret-Key")
        .arg("-p")
        .arg(&path)
        .output()
        .expect("unzip is installed");
    assert!(out.status.success());
    assert_eq!(out.stdout, csv.as_bytes());
}
on_both_stores!(password_protected, World, password_zip);

/// A storage write that fails leaves the request retryable, and the next
/// run completes it.
async fn storage_failure(w: World) {
    let runner = w
        .runner(snapshot(&conformance()), RunnerConfig::default())
        .await;
    let r = new_request(
        "t",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchId": "batch-001"}),
    );
    submit(runner.store(), &r).await;
    let blocker = w.files().join("progress-exhaust");
    std::fs::write(&blocker, b"in the way").expect("block");
    let s = runner.run_once().await.expect("run");
    assert_eq!(s.resubmitted, 1, "{s}");
    let row = reread(runner.store(), &r).await;
    assert_eq!(row.status, RequestStatus::Submitted);
    assert_eq!(
        row.iteration, 0,
        "a storage failure does not use an attempt"
    );
    assert!(row.processed().expect("json").is_empty());
    let msg = row.err_message.unwrap_or_default();
    assert!(msg.starts_with("will retry: batch-001: storage"), "{msg}");

    std::fs::remove_file(&blocker).expect("unblock");
    let s = runner.run_once().await.expect("run");
    assert_eq!(s.succeeded, 1, "{s}");
    let row = reread(runner.store(), &r).await;
    assert_eq!(row.status, RequestStatus::Success);
    assert_eq!(row.err_message, None);
}
on_both_stores!(storage_failures, World, storage_failure);

/// A source that is down for the users: the request goes back to SUBMITTED
/// without using an attempt, and other requests go on.
struct UsersDown(Snapshot);

impl ReadCounter for UsersDown {}
impl Reclaim for UsersDown {}

/// `users` fails as a Redis that refuses connections would; every other
/// read is the snapshot's.
macro_rules! users_down {
    ($self:ident, users($($arg:expr),*)) => {{
        let _ = ($($arg,)*);
        Err(SourceError::Unavailable {
            source_name: "redis".into(),
            detail: "connection refused".into(),
        })
    }};
    ($self:ident, $method:ident($($arg:expr),*)) => {
        $self.0.$method($($arg),*).await
    };
}
exhaust_core::forward_report_source!(impl [] for UsersDown => users_down);

async fn source_down(w: World) {
    let runner = w
        .runner(UsersDown(snapshot(&conformance())), RunnerConfig::default())
        .await;
    let r = new_request(
        "t",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchId": "batch-001"}),
    );
    let refused = new_request(
        "u",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchId": "nope"}),
    );
    submit(runner.store(), &r).await;
    submit(runner.store(), &refused).await;
    let s = runner.run_once().await.expect("run");
    assert_eq!((s.resubmitted, s.failed), (1, 1), "{s}");
    assert_eq!(s.source_errors, 1, "{s}");
    let row = reread(runner.store(), &r).await;
    assert_eq!((row.status, row.iteration), (RequestStatus::Submitted, 0));
    let msg = row.err_message.unwrap_or_default();
    assert!(msg.contains("redis is unavailable"), "{msg}");
    assert!(!w.files().join("progress-exhaust").exists());
}
on_both_stores!(sources_down, World, source_down);

/// A stopped run starts nothing new.
#[tokio::test]
async fn a_stopped_run_starts_no_request() {
    let w = World::sqlite().await;
    let runner = w
        .runner(snapshot(&conformance()), RunnerConfig::default())
        .await;
    let r = new_request(
        "t",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchId": "batch-001"}),
    );
    submit(runner.store(), &r).await;
    let s = runner
        .run_once_until(&AtomicBool::new(true))
        .await
        .expect("run");
    assert_eq!(s.succeeded + s.failed + s.resubmitted, 0, "{s}");
    assert_eq!(
        reread(runner.store(), &r).await.status,
        RequestStatus::Submitted
    );
}

/// A plain file's summary is stored beside its zip, counted from the rows
/// the zip holds; a protected file gets none.
async fn summaries_beside_plain_files(w: World) {
    use exhaust_core::summary::{BatchSummary, summary_key};
    let runner = w
        .runner(snapshot(&conformance()), RunnerConfig::default())
        .await;
    let r = new_request(
        "t",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchId": "batch-001"}),
    );
    submit(runner.store(), &r).await;
    runner.run_once().await.expect("run");
    let row = reread(runner.store(), &r).await;
    assert_eq!(row.status, RequestStatus::Success, "{:?}", row.err_message);
    let zip = &row.download_urls[0];
    let key = summary_key(zip);
    assert_eq!(
        key,
        format!(
            "progress-exhaust/{}/batch-001_summary_{}.json",
            r.request_id,
            stamp()
        )
    );
    let bytes = std::fs::read(w.files().join(&key)).expect("the summary is stored");
    let summary = BatchSummary::from_json(&bytes).expect("a summary");
    let (_, csv) = unzip(&w.files().join(zip), None);
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let i = header
        .iter()
        .position(|h| *h == "Progress")
        .expect("Progress");
    let progress: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(i).expect("cell").parse().expect("number"))
        .collect();
    assert_eq!(summary.learners, progress.len() as u64);
    assert_eq!(summary.batch_id, "batch-001");
    let bands = summary.progress.expect("bands");
    for b in &bands {
        let n = progress
            .iter()
            .filter(|p| (u64::from(b.min)..=u64::from(b.max)).contains(p))
            .count() as u64;
        assert_eq!(b.learners, n, "{}", b.label);
    }

    // A protected file: its zip is stored, no summary beside it.
    let protected = w
        .runner_with(
            snapshot(&conformance()),
            RunnerConfig::default(),
            FixedLevel(SecurityLevel::PasswordProtected),
        )
        .await;
    let mut p = new_request(
        "p",
        "user-002",
        CHANNEL,
        serde_json::json!({"batchId": "batch-001"}),
    );
    p.encryption_key = Some("s3cret-Key".into());
    submit(protected.store(), &p).await;
    protected.run_once().await.expect("run");
    let row = reread(protected.store(), &p).await;
    assert_eq!(row.status, RequestStatus::Success, "{:?}", row.err_message);
    assert!(w.files().join(&row.download_urls[0]).is_file());
    assert!(!w.files().join(summary_key(&row.download_urls[0])).exists());
}
on_both_stores!(summaries, World, summaries_beside_plain_files);
