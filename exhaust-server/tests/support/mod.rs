//! What the server's test files share: the scenario's world (a store of
//! its own, a clock, a snapshot), a client of the API, the envelope
//! checks; `on_both_stores!` (exhaust-sources' test support) runs each
//! scenario on SQLite and on PostgreSQL over this [`World`].
// Each test file uses some of it; the imports are re-exported for them.
#![allow(dead_code, unused_imports)]

pub use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
pub use exhaust_server::app::Settings;
pub use exhaust_server::download::{Downloads, Secret};
pub use exhaust_server::{Clock, Running, ServerConfig, start, worker};
pub use exhaust_sources::testing::{TestStore, test_pg_url as pg_url};
pub use reqwest::StatusCode;
pub use serde_json::{Value, json};
pub use sqlx::{Connection, PgConnection};
pub use std::io::{Read, Write};
pub use std::path::{Path, PathBuf};
pub use std::sync::atomic::AtomicBool;
pub use std::sync::{Arc, Mutex, OnceLock};
pub use std::time::Duration;

pub const CHANNEL: &str = "b00bc992ef25f1a9a8d63291e20efc8d";
pub const BATCH: &str = "batch-001";
pub const SAMPLE_CHANNEL: &str = "0166646273726135492";
pub const SAMPLE_BATCH: &str = "0135742803756164562";

pub use exhaust_sources::testing::{
    conformance_snapshot as conformance, sample_snapshot as sample,
};

// ---------------------------------------------------------------------------
// Log capture: the server's JSON logs go to one buffer for the whole test
// binary, so tests can check what was (and was not) logged.

#[derive(Clone)]
pub struct LogBuffer(pub Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer(Arc::new(Mutex::new(Vec::new())));
        let writer = buffer.clone();
        let subscriber = exhaust_server::log_subscriber(move || writer.clone());
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        buffer
    })
}

pub fn logged() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

// ---------------------------------------------------------------------------
// The world of a scenario.

/// A clock the test moves: `None` is the system clock.
#[derive(Clone, Default)]
pub struct TestClock(pub Arc<Mutex<Option<DateTime<Utc>>>>);

impl TestClock {
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("clock") = Some(t);
    }
    pub fn advance(&self, by: ChronoDuration) {
        let mut t = self.0.lock().expect("clock");
        *t = Some(t.unwrap_or_else(Utc::now) + by);
    }
    pub fn clock(&self) -> Clock {
        let me = self.clone();
        Arc::new(move || me.0.lock().expect("clock").unwrap_or_else(Utc::now))
    }
}

/// A scenario's request store (the store suite's [`TestStore`]: its
/// folder holds the scenario's files too) and clock.
pub struct World {
    pub t: TestStore,
    pub clock: TestClock,
}

impl exhaust_sources::testing::TestWorld for World {
    async fn sqlite() -> Self {
        Self {
            t: TestStore::sqlite(),
            clock: TestClock::default(),
        }
    }

    async fn postgres() -> Self {
        Self {
            t: TestStore::postgres("exhaust_s").await,
            clock: TestClock::default(),
        }
    }
}

impl World {
    pub fn files(&self) -> PathBuf {
        self.t.dir().join("files")
    }

    /// A copy of a snapshot folder that the scenario may delete.
    pub fn snapshot_copy(&self, from: &Path) -> PathBuf {
        let to = self.t.dir().join("snapshot");
        std::fs::create_dir_all(&to).expect("snapshot folder");
        for entry in std::fs::read_dir(from).expect("snapshot") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
            }
        }
        to
    }

    pub fn settings(&self, snapshot: &Path) -> Settings {
        let mut s = Settings::default();
        s.store.url = self.t.url().to_string();
        s.store.table = self.t.table().to_string();
        s.storage.url = self.files().display().to_string();
        s.source.snapshot = Some(snapshot.to_path_buf());
        s.job.work_dir = Some(self.t.dir().to_path_buf());
        s
    }

    pub fn config(&self, snapshot: &Path) -> ServerConfig {
        let mut c = ServerConfig::new(self.settings(snapshot));
        c.clock = self.clock.clock();
        c
    }

    pub async fn start(&self, config: ServerConfig) -> Running {
        logs();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        start(config, listener).await.expect("server starts")
    }
}

/// Runs the library's runner once over the server's store and storage, as
/// a worker process would, counting it in the server's metrics.
pub async fn run_worker_once(
    w: &World,
    server: &Running,
    snapshot: &Path,
) -> exhaust_core::runner::RunSummary {
    let state = server.state();
    let runner = w
        .settings(snapshot)
        .runner(state.store().clone(), state.storage().clone())
        .await
        .expect("runner");
    worker::step(&runner, &AtomicBool::new(false), state.metrics())
        .await
        .expect("run")
}

/// A client of one server.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub bearer: Option<String>,
    /// More headers on every call.
    pub extra: Vec<(String, String)>,
}

/// A response: status, JSON body (Null when not JSON), raw text.
pub struct Answer {
    pub status: StatusCode,
    pub json: Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Api {
    pub fn new(server: &Running) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.url(),
            bearer: None,
            extra: Vec::new(),
        }
    }

    /// A client that sends this header on every call too.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.into());
        self
    }

    pub async fn send(&self, mut req: reqwest::RequestBuilder, channel: Option<&str>) -> Answer {
        if let Some(c) = channel {
            req = req.header("X-Channel-ID", c);
        }
        if let Some(t) = &self.bearer {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        for (name, value) in &self.extra {
            req = req.header(name.as_str(), value.as_str());
        }
        let res = req.send().await.expect("response");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            json,
            text,
            headers,
        }
    }

    pub async fn submit_raw(&self, channel: Option<&str>, body: &str) -> Answer {
        let req = self
            .http
            .post(format!("{}/dataset/v1/request/submit", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        self.send(req, channel).await
    }

    pub async fn submit(&self, channel: Option<&str>, body: &Value) -> Answer {
        self.submit_raw(channel, &body.to_string()).await
    }

    pub async fn read(&self, tag: &str, request_id: &str, channel: Option<&str>) -> Answer {
        let req = self.http.get(format!(
            "{}/dataset/v1/request/read/{tag}?requestId={request_id}",
            self.base
        ));
        self.send(req, channel).await
    }

    pub async fn list(&self, tag: &str, limit: Option<&str>, channel: Option<&str>) -> Answer {
        let query = limit.map(|l| format!("?limit={l}")).unwrap_or_default();
        let req = self.http.get(format!(
            "{}/dataset/v1/request/list/{tag}{query}",
            self.base
        ));
        self.send(req, channel).await
    }

    pub async fn get(&self, url: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let res = self.http.get(url).send().await.expect("response");
        let status = res.status();
        let headers = res.headers().clone();
        (status, headers, res.bytes().await.expect("bytes").to_vec())
    }
}

pub fn body(tag: &str, by: &str, config: Value, key: Option<&str>) -> Value {
    let mut request = json!({
        "tag": tag,
        "requestedBy": by,
        "dataset": "progress-exhaust",
        "datasetConfig": config,
        "outputFormat": "csv",
    });
    if let Some(k) = key {
        request["encryptionKey"] = json!(k);
    }
    json!({
        "id": "ekstep.analytics.dataset.request.submit",
        "ver": "1.0",
        "ts": "2024-01-15T10:00:00.000+00:00",
        "params": {"msgid": "4406df37-cd54-4d8a-ab8d-3939e0223580"},
        "request": request,
    })
}

/// The one CSV inside zip bytes: (name, text).
pub fn unzip(bytes: &[u8]) -> (String, String) {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("archive");
    assert_eq!(zip.len(), 1, "one CSV per zip");
    let mut entry = zip.by_index(0).expect("entry");
    let name = entry.name().expect("name").to_string();
    let mut csv = String::new();
    entry.read_to_string(&mut csv).expect("read");
    (name, csv)
}

/// The values of one column of a CSV without quoted commas.
pub fn column(csv: &str, header: &str) -> Vec<String> {
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().expect("header").split(',').collect();
    let i = head
        .iter()
        .position(|h| *h == header)
        .unwrap_or_else(|| panic!("no column {header} in {head:?}"));
    lines
        .map(|l| l.split(',').nth(i).unwrap_or_default().to_string())
        .collect()
}

/// Checks Sunbird's envelope around any response.
pub fn assert_envelope(a: &Answer, id: &str, code: &str, status: &str) {
    let j = &a.json;
    assert_eq!(j["id"], id, "{}", a.text);
    assert_eq!(j["ver"], "1.0");
    let ts = j["ts"].as_str().expect("ts");
    assert!(
        DateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.3f%:z").is_ok() && ts.ends_with("+00:00"),
        "ts {ts}"
    );
    let resmsgid = j["params"]["resmsgid"].as_str().expect("resmsgid");
    assert_eq!(
        uuid::Uuid::parse_str(resmsgid)
            .expect("uuid")
            .get_version_num(),
        4
    );
    assert!(j["params"].get("msgid").is_none(), "null msgid is left out");
    assert_eq!(j["params"]["status"], status);
    assert_eq!(j["responseCode"], code);
}

pub fn assert_error(a: &Answer, http: u16, id: &str, code: &str, message: &str) {
    assert_eq!(a.status.as_u16(), http, "{}", a.text);
    assert_envelope(a, id, code, "failed");
    assert_eq!(a.json["params"]["err"], code);
    assert_eq!(a.json["params"]["errmsg"], message);
    assert!(a.json.get("result").is_none(), "{}", a.text);
}

pub const SUBMIT: &str = "ekstep.analytics.dataset.request.submit";
pub const READ: &str = "ekstep.analytics.dataset.request.info";
pub const LIST: &str = "ekstep.analytics.dataset.request.list";

pub use exhaust_sources::on_both_stores;
pub use exhaust_sources::testing::TestWorld;
