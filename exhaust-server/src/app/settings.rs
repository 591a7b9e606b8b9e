//! The settings of both frontends (the `exhaust` command and
//! `exhaust-server`) and what they open: the request store, the storage,
//! the report source, the preference source and the request runner, each
//! opened here and nowhere else. Each section's type is the crate's that
//! uses it (`[store]` the request stores', `[storage]` the writer's,
//! `[auth]` the server's); this file reads them from one TOML file and the
//! environment and composes what they open.
//!
//! The settings come from a TOML file (`--config`, else
//! `$EXHAUST_CONFIG`, else `exhaust.toml` in the working folder when it
//! exists), then `EXHAUST_*` environment variables over it. Every setting
//! has a default that works on a fresh clone: the bundled sample snapshot,
//! an SQLite file and a local folder in the working folder.
//!
//! ```toml
//! [store]
//! url = "postgres://analytics@db:5432/analytics"   # or a file path (SQLite)
//! table = "dev_job_request"
//! manage_schema = true     # false: no DDL, only a check (deploy/sql/)
//!
//! [source]
//! snapshot = "/data/snapshot"
//! # or Sunbird's live stores (each table has defaults; see exhaust-sources):
//! # [source.live.cassandra]
//! # contact_points = ["cassandra:9042"]
//! # enrolment_table = "report_user_enrolments"
//! # [source.live.redis]
//! # url = "redis://redis:6379"
//! # [source.live.search]
//! # base_url = "http://search-service:9000"
//!
//! [storage]
//! url = "exhaust-files"      # a folder, or s3://, az://, gs:// with the cargo feature
//!
//! [security]
//! level = "PLAIN_DATASET"    # when no preference service is configured
//! [security.preferences]     # Sunbird's user-org service: the level per org
//! preference_url = "http://learner-service:9000/private/v2/org/preferences/read"
//! org_search_url = "http://learner-service:9000/private/v2/org/search"
//!
//! [job]
//! channel_max_batches = 30
//! grace_seconds = 25        # a stop's grace for the batch in hand
//! ```
//!
//! Secrets (database passwords inside URLs, `sunbird_encryption_key`) are
//! never logged or printed.

use super::{AnyPreferences, AnySource, AppRunner};
use crate::auth::AuthSettings;
use anyhow::{Context, anyhow};
use exhaust_core::layout::{Layout, parse_column_keys};
use exhaust_core::redact::REDACTED;
use exhaust_core::report::ReportOptions;
use exhaust_core::runner::RunnerConfig;
use exhaust_core::security::{FixedLevel, SecurityLevel};
use exhaust_core::store::Selection;
use exhaust_core::time::ReportTz;
use exhaust_core::typed::OutputFormat;
use exhaust_core::values::AttemptChoice;
use exhaust_sources::live::preferences::{HttpPreferences, PreferenceConfig};
use exhaust_sources::requests::{AnyRequestStore, StoreSettings};
use exhaust_sources::{LiveConfig, LiveSources, Snapshot, SnapshotOptions};
use exhaust_writer::{DEFAULT_GRACE, PublishConfig, Storage, StorageSettings, TokioClock};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every setting of the request flow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where `job_request` lives.
    pub store: StoreSettings,
    /// Where report data comes from.
    pub source: SourceSettings,
    /// Where files go.
    pub storage: StorageSettings,
    /// How files are protected.
    pub security: SecuritySettings,
    /// How requests are processed.
    pub job: JobSettings,
    /// Who may call the API (`exhaust-server`) for which channel.
    pub auth: AuthSettings,
}

/// `[source]`: a snapshot folder, or Sunbird's live stores when
/// `[source.live]` is present (`$EXHAUST_SNAPSHOT` forces a snapshot).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSettings {
    /// A snapshot folder (`$EXHAUST_SNAPSHOT`; default the bundled sample).
    pub snapshot: Option<PathBuf>,
    /// Whether the snapshot's large tables get digests beside their
    /// indexes (`$EXHAUST_SNAPSHOT_DIGEST`; default true; see
    /// [`SnapshotOptions::digest`]): off, no digest is written or read,
    /// which saves their disk space (about half the snapshot's size).
    pub digest: Option<bool>,
    /// Cassandra, Redis and the search API (`[source.live.cassandra]`,
    /// `[source.live.redis]`, `[source.live.search]`).
    pub live: Option<LiveConfig>,
}

/// `[security]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// The level used when no preference service is configured
    /// (`$EXHAUST_SECURITY_LEVEL`; default `PLAIN_DATASET`).
    #[serde(deserialize_with = "parsed")]
    pub level: SecurityLevel,
    /// Sunbird's `sunbird_encryption_key`, whose length is the salt of
    /// stored encryption keys (`$EXHAUST_SUNBIRD_ENCRYPTION_KEY`).
    pub sunbird_encryption_key: String,
    /// The tenant preference and org search services (`[security.preferences]`);
    /// when set, each org's level comes from its `dataSecurityPolicy` and
    /// `level` above is not used.
    pub preferences: Option<PreferenceConfig>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            level: SecurityLevel::Plain,
            sunbird_encryption_key: String::new(),
            preferences: None,
        }
    }
}

// Written by hand: Sunbird's key is a secret; only whether it is set shows.
impl std::fmt::Debug for SecuritySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = if self.sunbird_encryption_key.is_empty() {
            ""
        } else {
            REDACTED
        };
        f.debug_struct("SecuritySettings")
            .field("level", &self.level)
            .field("sunbird_encryption_key", &key)
            .field("preferences", &self.preferences)
            .finish()
    }
}

/// `[job]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// The job id of the requests taken.
    pub job_id: String,
    /// Only requests of this `batch_number`.
    pub batch_number: Option<i32>,
    /// Most batches per request.
    pub batch_limit_per_request: usize,
    /// Most batches per channel in one run.
    pub channel_max_batches: usize,
    /// Most CSV bytes per channel in one run.
    pub channel_max_bytes: u64,
    /// Most batches (and collections) a request's `searchFilter` may match.
    pub search_max_batches: usize,
    /// `seed` or `lern`.
    #[serde(deserialize_with = "parsed")]
    pub layout: Layout,
    /// Static columns by key, comma-separated.
    pub columns: Option<String>,
    /// Zone of dates inside reports.
    #[serde(deserialize_with = "parsed")]
    pub timezone: ReportTz,
    /// Zone of the date in file names.
    #[serde(deserialize_with = "parsed")]
    pub file_timezone: ReportTz,
    /// `best` or `latest`.
    #[serde(deserialize_with = "parsed")]
    pub attempt: AttemptChoice,
    /// Users per chunk read from the sources.
    pub chunk_size: usize,
    /// Where files are built before they are stored (default: the system's
    /// temporary folder).
    pub work_dir: Option<PathBuf>,
    /// Seconds between polls of `exhaust run --watch`.
    pub poll_seconds: u64,
    /// File format of requests that name none: csv (default), parquet,
    /// arrow or xlsx; a request's `outputFormat` wins. (Whether this build
    /// writes it is the output's to say: [`Settings::runner`] asks it.)
    #[serde(deserialize_with = "parsed")]
    pub format: OutputFormat,
    /// Seconds a stop (SIGINT, SIGTERM) leaves the batch in hand of `exhaust
    /// run` and the server's worker to finish; then it is abandoned and its
    /// request released (`$EXHAUST_GRACE_SECONDS`; default 25, below
    /// Kubernetes' 30 s between SIGTERM and SIGKILL).
    pub grace_seconds: u64,
}

impl JobSettings {
    /// The grace period of a stop.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_seconds)
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        let r = RunnerConfig::default();
        Self {
            job_id: r.selection.job_id,
            batch_number: None,
            batch_limit_per_request: r.batch_limit_per_request,
            channel_max_batches: r.channel_max_batches,
            channel_max_bytes: r.channel_max_bytes,
            search_max_batches: r.search_max_batches,
            layout: Layout::Seed,
            columns: None,
            // The texts the defaults were always written as.
            timezone: "UTC".parse().unwrap_or_else(|_| ReportTz::utc()),
            file_timezone: "+05:30".parse().unwrap_or_else(|_| ReportTz::ist()),
            attempt: AttemptChoice::BestScore,
            chunk_size: ReportOptions::default().chunk_size,
            work_dir: None,
            poll_seconds: 30,
            grace_seconds: DEFAULT_GRACE.as_secs(),
            format: OutputFormat::Csv,
        }
    }
}

/// An on/off variable's value: true, false, 1, 0, yes, no, on or off (any
/// case); anything else is refused, naming the variable.
fn switch(name: &str, value: &str) -> anyhow::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(anyhow!("{name} must be true or false, not {value:?}")),
    }
}

/// The value of variable `name` in `vars`, or, when unset, the content of
/// the file named by `<name>_FILE` (as Kubernetes mounts Secrets; one
/// trailing line end removed). Both set: refused, so a value is never
/// silently ignored. An empty value counts as unset.
pub fn variable(
    vars: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let direct = vars(name).filter(|v| !v.is_empty());
    let file_var = format!("{name}_FILE");
    let Some(path) = vars(&file_var).filter(|v| !v.is_empty()) else {
        return Ok(direct);
    };
    if direct.is_some() {
        anyhow::bail!("{name} and {file_var} are both set: set one");
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{file_var} names a file that cannot be read"))?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(Some(text.to_string()).filter(|v| !v.is_empty()))
}

/// The process's environment, as [`variable`] reads it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn env(name: &str) -> Option<String> {
    process_env(name).filter(|v| !v.is_empty())
}

impl Settings {
    /// Reads the file (when given or found) and applies the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| env("EXHAUST_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let p = PathBuf::from("exhaust.toml");
                p.is_file().then_some(p)
            });
        let mut s = match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read the configuration {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("configuration {} is not valid", p.display()))?
            }
            None => Settings::default(),
        };
        s.apply_env_with(&process_env)?;
        // A number, so read here where a bad value can be refused.
        if let Some(v) = env("EXHAUST_GRACE_SECONDS") {
            s.job.grace_seconds = v.trim().parse().map_err(|_| {
                anyhow!("EXHAUST_GRACE_SECONDS must be a whole number of seconds, not {v:?}")
            })?;
        }
        Ok(s)
    }

    /// Applies the `EXHAUST_*` variables over the file's values; a value
    /// that does not parse is refused, naming the variable. Every variable
    /// can also be given as `<NAME>_FILE`, a file holding the value
    /// ([`variable`]): that is how secrets are best given.
    pub fn apply_env(&mut self) -> anyhow::Result<()> {
        self.apply_env_with(&process_env)
    }

    /// [`Settings::apply_env`] over the variables `vars` gives.
    pub fn apply_env_with(&mut self, vars: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let var = |name: &str| variable(vars, name);
        if let Some(v) = var("EXHAUST_STORE_URL")? {
            self.store.url = v;
        }
        if let Some(v) = var("EXHAUST_STORE_TABLE")? {
            self.store.table = v;
        }
        if let Some(v) = var("EXHAUST_STORE_MANAGE_SCHEMA")? {
            self.store.manage_schema = switch("EXHAUST_STORE_MANAGE_SCHEMA", &v)?;
        }
        if let Some(v) = var("EXHAUST_SNAPSHOT")? {
            self.source.snapshot = Some(v.into());
            self.source.live = None;
        }
        if let Some(v) = var("EXHAUST_SNAPSHOT_DIGEST")? {
            self.source.digest = Some(switch("EXHAUST_SNAPSHOT_DIGEST", &v)?);
        }
        if let Some(live) = &mut self.source.live {
            if let Some(v) = var("EXHAUST_CASSANDRA_USERNAME")? {
                live.cassandra.username = Some(v);
            }
            if let Some(v) = var("EXHAUST_CASSANDRA_PASSWORD")? {
                live.cassandra.password = Some(v);
            }
            if let Some(v) = var("EXHAUST_REDIS_URL")? {
                live.redis.url = v;
            }
        }
        if let Some(v) = var("EXHAUST_STORAGE_URL")? {
            self.storage.url = v;
        }
        // Any storage option (`aws_secret_access_key`, ...) as
        // EXHAUST_STORAGE_OPTION_<NAME>, the name in capitals.
        for (key, _) in std::env::vars() {
            if let Some(name) = key
                .strip_prefix("EXHAUST_STORAGE_OPTION_")
                .map(|n| n.strip_suffix("_FILE").unwrap_or(n))
                && !name.is_empty()
                && let Some(v) = var(&format!("EXHAUST_STORAGE_OPTION_{name}"))?
            {
                self.storage.options.insert(name.to_ascii_lowercase(), v);
            }
        }
        if let Some(v) = var("EXHAUST_SECURITY_LEVEL")? {
            self.security.level = v
                .parse()
                .map_err(|e| anyhow!("EXHAUST_SECURITY_LEVEL: {e}"))?;
        }
        if let Some(v) = var("EXHAUST_SUNBIRD_ENCRYPTION_KEY")? {
            self.security.sunbird_encryption_key = v;
        }
        if let Some(v) = var("EXHAUST_AUTH")? {
            self.auth.mode = Some(v.parse().map_err(|e| anyhow!("EXHAUST_AUTH: {e}"))?);
        }
        let sunbird = &mut self.auth.sunbird;
        if let Some(v) = var("EXHAUST_AUTH_PUBLIC_KEY_DIR")? {
            sunbird.public_key_dir = Some(v.into());
        }
        if let Some(v) = var("EXHAUST_AUTH_ISSUER")? {
            sunbird.issuer = Some(v);
        }
        if let Some(v) = var("EXHAUST_AUTH_USER_READ_URL")? {
            sunbird.user_read_url = Some(v);
        }
        if let Some(v) = var("EXHAUST_AUTH_CONSUMER_TABLE")? {
            sunbird.consumer_table = v;
        }
        Ok(())
    }

    /// Opens the request store (creating the table or file when absent).
    pub async fn open_store(&self) -> anyhow::Result<AnyRequestStore> {
        self.store
            .open()
            .await
            .map_err(|e| anyhow!(e))
            .context("opening the request store")
    }

    /// Opens the storage of `[storage]`.
    pub fn open_storage(&self) -> anyhow::Result<Storage> {
        let storage = self
            .storage
            .open()
            .map_err(|e| anyhow!(e))
            .context("opening the storage")?;
        // What workers killed during an upload left behind.
        storage.remove_stale_staging(std::time::SystemTime::now());
        Ok(storage)
    }

    /// The snapshot folder the reports read: the configured one, else the
    /// bundled sample, which the binary carries (written to the user's
    /// cache at the first use; [`super::sample_snapshot`]).
    pub fn snapshot_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.source.snapshot {
            Some(dir) => Ok(dir.clone()),
            None => super::sample_snapshot(),
        }
    }

    /// Opens the configured source: the live stores when `[source.live]` is
    /// set, else the snapshot.
    pub async fn open_source(&self) -> anyhow::Result<AnySource> {
        self.open_source_with(self.snapshot_options()).await
    }

    async fn open_source_with(&self, options: SnapshotOptions) -> anyhow::Result<AnySource> {
        match &self.source.live {
            Some(live) => LiveSources::connect(live)
                .await
                .map(AnySource::Live)
                .map_err(|e| anyhow!(e))
                .context("connecting to the live sources"),
            None => self.open_snapshot_with(options).map(AnySource::Snapshot),
        }
    }

    /// The request runner over the configured source, preferences and job
    /// settings, with this store and storage (the server shares both with
    /// its API): what `exhaust run` and `exhaust-server --worker` run.
    /// Refuses a `[job] format` this build cannot write.
    pub async fn runner(
        &self,
        store: AnyRequestStore,
        storage: Storage,
    ) -> anyhow::Result<AppRunner> {
        let prefs = self.preferences()?;
        let config = self.runner_config()?;
        exhaust_writer::check_format(config.format).map_err(|e| anyhow!("[job] format: {e}"))?;
        // A runner serves request after request from one snapshot: its
        // first batch writes the digests that every later one reads
        // (a one-off `exhaust report` leaves them to the snapshot's second
        // run; SnapshotOptions::digest_on_first_read).
        let options = SnapshotOptions {
            digest_on_first_read: true,
            ..self.snapshot_options()
        };
        let source = self.open_source_with(options).await?;
        tracing::info!(store = store.kind(), source = source.kind(), "runner ready");
        Ok(exhaust_writer::publishing_runner(
            source,
            store,
            prefs,
            storage,
            self.publish_config(),
            TokioClock::system(),
            config,
        ))
    }

    /// [`Settings::runner`] over a store and a storage of its own: what
    /// `exhaust run` runs.
    pub async fn open_runner(&self) -> anyhow::Result<AppRunner> {
        let store = self.open_store().await?;
        let storage = self.open_storage()?;
        self.runner(store, storage).await
    }

    /// Opens the snapshot.
    pub fn open_snapshot(&self) -> anyhow::Result<Snapshot> {
        self.open_snapshot_with(self.snapshot_options())
    }

    fn open_snapshot_with(&self, options: SnapshotOptions) -> anyhow::Result<Snapshot> {
        let dir = self.snapshot_dir()?;
        if !dir.is_dir() {
            anyhow::bail!(
                "snapshot folder {} not found: set [source] snapshot or EXHAUST_SNAPSHOT",
                dir.display()
            );
        }
        Snapshot::open(&dir, options).map_err(|e| anyhow!(e))
    }

    /// The snapshot's options: the defaults, with `[source] digest`.
    pub fn snapshot_options(&self) -> SnapshotOptions {
        SnapshotOptions {
            digest: self.source.digest.unwrap_or(true),
            ..SnapshotOptions::default()
        }
    }

    /// The preference source: the preference services when configured,
    /// else the configured level for every org.
    pub fn preferences(&self) -> anyhow::Result<AnyPreferences> {
        if let Some(p) = &self.security.preferences {
            let http = HttpPreferences::new(p.clone())
                .map_err(|e| anyhow!(e))
                .context("[security.preferences]")?;
            return Ok(AnyPreferences::Http(http));
        }
        Ok(AnyPreferences::Fixed(FixedLevel(self.security.level)))
    }

    /// How reports are built.
    pub fn report_options(&self) -> anyhow::Result<ReportOptions> {
        let j = &self.job;
        let columns = j
            .columns
            .as_deref()
            .map(parse_column_keys)
            .transpose()
            .map_err(|e| anyhow!(e))?;
        if j.chunk_size == 0 {
            anyhow::bail!("[job] chunk_size must be at least 1");
        }
        Ok(ReportOptions {
            layout: j.layout,
            columns,
            timezone: j.timezone,
            attempt_choice: j.attempt,
            chunk_size: j.chunk_size,
            ..ReportOptions::default()
        })
    }

    /// The runner's configuration.
    pub fn runner_config(&self) -> anyhow::Result<RunnerConfig> {
        let j = &self.job;
        Ok(RunnerConfig {
            selection: Selection {
                job_id: j.job_id.clone(),
                batch_number: j.batch_number,
            },
            report: self.report_options()?,
            file_tz: j.file_timezone,
            batch_limit_per_request: j.batch_limit_per_request,
            channel_max_batches: j.channel_max_batches,
            channel_max_bytes: j.channel_max_bytes,
            format: j.format,
            search_max_batches: j.search_max_batches,
            ..RunnerConfig::default()
        })
    }

    /// Where reports are built before they are stored (default: the
    /// system's temporary folder).
    pub fn work_dir(&self) -> PathBuf {
        self.job.work_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// The output's configuration (`[job] work_dir`, `[security]
    /// sunbird_encryption_key`).
    pub fn publish_config(&self) -> PublishConfig {
        PublishConfig {
            work_dir: self.work_dir(),
            sunbird_encryption_key: self.security.sunbird_encryption_key.clone(),
        }
    }
}

/// A setting written as text, parsed at load by its type's own `FromStr`,
/// so a bad value is refused once, with that type's one message.
fn parsed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sets_what_it_names_and_defaults_fill_the_rest() {
        let s: Settings = toml::from_str(
            r#"
            [store]
            url = "postgres://x@h/db"
            table = "dev_job_request"
            [job]
            channel_max_batches = 3
            layout = "lern"
            "#,
        )
        .expect("valid");
        assert_eq!(s.store.table, "dev_job_request");
        assert_eq!(s.job.channel_max_batches, 3);
        assert_eq!(s.job.channel_max_bytes, 1 << 30);
        assert_eq!(s.storage.url, "exhaust-files");
        let r = s.runner_config().expect("config");
        assert_eq!(r.channel_max_batches, 3);
        assert_eq!(r.report.layout, Layout::Lern);
        assert_eq!(r.selection.job_id, "progress-exhaust");
        assert_eq!(s.job.grace(), DEFAULT_GRACE);
        let s: Settings = toml::from_str("[job]\ngrace_seconds = 3").expect("valid");
        assert_eq!(s.job.grace(), Duration::from_secs(3));
    }

    #[test]
    fn the_publish_config_is_the_work_folder_and_sunbirds_key() {
        let s: Settings = toml::from_str(
            "[job]\nwork_dir = \"/srv/exhaust-work\"\n\
             [security]\nsunbird_encryption_key = \"salt\"\n",
        )
        .expect("valid");
        assert_eq!(
            s.publish_config(),
            PublishConfig {
                work_dir: PathBuf::from("/srv/exhaust-work"),
                sunbird_encryption_key: "salt".into(),
            }
        );
        let s = Settings::default();
        assert_eq!(s.publish_config().work_dir, s.work_dir());
        assert_eq!(s.publish_config().sunbird_encryption_key, "");
    }

    #[test]
    fn snapshot_digests_are_on_unless_turned_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().display();
        let s: Settings =
            toml::from_str(&format!("[source]\nsnapshot = \"{folder}\"")).expect("valid");
        assert_eq!(s.source.digest, None);
        assert!(s.snapshot_options().digest);
        let s: Settings = toml::from_str(&format!(
            "[source]\nsnapshot = \"{folder}\"\ndigest = false"
        ))
        .expect("valid");
        assert!(!s.snapshot_options().digest);
        s.open_snapshot().expect("opens");
        for (value, on) in [
            ("true", true),
            ("OFF", false),
            (" 0 ", false),
            ("yes", true),
        ] {
            assert_eq!(switch("V", value).expect(value), on, "{value}");
        }
        let err = switch("EXHAUST_SNAPSHOT_DIGEST", "maybe").expect_err("refused");
        assert!(err.to_string().contains("EXHAUST_SNAPSHOT_DIGEST"), "{err}");
    }

    #[test]
    fn variables_come_from_files_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = dir.path().join("store-url");
        std::fs::write(&url, "postgres://app:pw@db/analytics\r\n").expect("write");
        let password = dir.path().join("cassandra-password");
        std::fs::write(&password, "cass-pw").expect("write");
        let (url, password) = (url.display().to_string(), password.display().to_string());
        let vars = |name: &str| match name {
            "EXHAUST_STORE_URL_FILE" => Some(url.clone()),
            "EXHAUST_CASSANDRA_PASSWORD_FILE" => Some(password.clone()),
            "EXHAUST_SUNBIRD_ENCRYPTION_KEY" => Some("salt".to_string()),
            _ => None,
        };
        let mut s: Settings =
            toml::from_str("[source.live.cassandra]\nusername = \"u\"").expect("valid");
        s.apply_env_with(&vars).expect("applies");
        assert_eq!(s.store.url, "postgres://app:pw@db/analytics");
        let live = s.source.live.as_ref().expect("live");
        assert_eq!(live.cassandra.password.as_deref(), Some("cass-pw"));
        assert_eq!(s.security.sunbird_encryption_key, "salt");
        let both = |name: &str| match name {
            "EXHAUST_STORE_URL" | "EXHAUST_STORE_URL_FILE" => Some("x".to_string()),
            _ => None,
        };
        let e = Settings::default().apply_env_with(&both).expect_err("both");
        assert!(e.to_string().contains("set one"), "{e}");
    }

    /// The ConfigMap's exhaust.toml of the Kubernetes base is one these
    /// settings read, and the Secret's files, named by the `*_FILE`
    /// variables the Deployments set, fill in what it leaves out.
    #[test]
    fn the_kubernetes_example_configuration_is_valid() {
        let text = include_str!("../../../deploy/kubernetes/exhaust.toml");
        let mut s: Settings = toml::from_str(text).expect("deploy/kubernetes/exhaust.toml");
        assert!(!s.store.manage_schema, "the base expects a DBA's schema");
        assert!(s.source.live.is_some(), "the base reads the live stores");
        assert!(s.storage.url.starts_with("s3://"), "{}", s.storage.url);
        assert_eq!(s.auth.mode, Some(crate::auth::AuthMode::Token));
        assert_eq!(
            s.job.grace(),
            DEFAULT_GRACE,
            "the Deployments' grace periods assume it"
        );
        assert_eq!(s.work_dir(), PathBuf::from("/var/lib/exhaust"));
        s.runner_config().expect("[job]");
        s.preferences().expect("[security.preferences]");

        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str, value: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{value}\n")).expect("write");
            path.display().to_string()
        };
        let files = [
            (
                "EXHAUST_STORE_URL_FILE",
                file(
                    "store-url",
                    "postgres://analytics:pw@postgres:5432/analytics",
                ),
            ),
            (
                "EXHAUST_CASSANDRA_PASSWORD_FILE",
                file("cassandra-password", "cass-pw"),
            ),
            (
                "EXHAUST_REDIS_URL_FILE",
                file("redis-url", "redis://:redis-pw@redis:6379"),
            ),
            (
                "EXHAUST_SUNBIRD_ENCRYPTION_KEY_FILE",
                file("sunbird-encryption-key", "salt"),
            ),
        ];
        s.apply_env_with(&|name: &str| {
            files
                .iter()
                .find(|(var, _)| *var == name)
                .map(|(_, path)| path.clone())
        })
        .expect("applies");
        assert_eq!(
            s.store.url,
            "postgres://analytics:pw@postgres:5432/analytics"
        );
        let live = s.source.live.as_ref().expect("live");
        assert_eq!(live.cassandra.password.as_deref(), Some("cass-pw"));
        assert_eq!(live.redis.url, "redis://:redis-pw@redis:6379");
        assert_eq!(s.security.sunbird_encryption_key, "salt");
    }

    #[test]
    fn the_schema_is_managed_unless_a_dba_keeps_it() {
        assert!(Settings::default().store.manage_schema);
        let s: Settings = toml::from_str("[store]\nmanage_schema = false").expect("valid");
        assert!(!s.store.manage_schema);
        let mut s = Settings::default();
        s.apply_env_with(&|name: &str| {
            (name == "EXHAUST_STORE_MANAGE_SCHEMA").then(|| "off".to_string())
        })
        .expect("applies");
        assert!(!s.store.manage_schema);
        let e = Settings::default()
            .apply_env_with(&|name: &str| {
                (name == "EXHAUST_STORE_MANAGE_SCHEMA").then(|| "maybe".to_string())
            })
            .expect_err("not a switch");
        assert!(e.to_string().contains("EXHAUST_STORE_MANAGE_SCHEMA"), "{e}");
    }

    #[test]
    fn the_stores_tls_is_read_from_its_sections() {
        let s: Settings = toml::from_str(
            r#"
            [source.live.cassandra.tls]
            ca_file = "/etc/exhaust/tls/ca.pem"
            server_name = "cassandra.sunbird"
            [source.live.redis]
            url = "rediss://redis:6380"
            [source.live.redis.tls]
            client_cert_file = "/etc/exhaust/tls/client.pem"
            client_key_file = "/etc/exhaust/tls/client.key"
            "#,
        )
        .expect("valid");
        let live = s.source.live.expect("live");
        assert!(live.cassandra.tls.is_configured());
        assert_eq!(
            live.cassandra.tls.server_name.as_deref(),
            Some("cassandra.sunbird")
        );
        assert_eq!(
            live.redis.tls.client_key_file.as_deref(),
            Some(Path::new("/etc/exhaust/tls/client.key"))
        );
        let err = toml::from_str::<Settings>(
            "[source.live.redis.tls]
ca = \"x\"",
        )
        .expect_err("typo");
        assert!(err.to_string().contains("ca"), "{err}");
    }

    #[test]
    fn unknown_settings_and_bad_values_are_refused_by_name() {
        let err = toml::from_str::<Settings>("[store]\nurll = \"x\"").expect_err("typo");
        assert!(err.to_string().contains("urll"), "{err}");
        // Typed values are refused at load, naming the value.
        let err =
            toml::from_str::<Settings>("[security]\nlevel = \"SECRET\"").expect_err("bad level");
        assert!(err.to_string().contains("SECRET"), "{err}");
        assert!(toml::from_str::<Settings>("[job]\nattempt = \"worst\"").is_err());
        let err =
            toml::from_str::<Settings>("[job]\nformat = \"pdf\"").expect_err("unknown format");
        assert!(err.to_string().contains("pdf"), "{err}");
    }

    /// Settings with a distinct secret in every field that can hold one.
    const SECRETS_TOML: &str = r#"
        [store]
        url = "postgres://app:pw-SECRET-1@db:5432/analytics?password=pw-SECRET-2"
        table = "dev_job_request"
        [source.live.cassandra]
        username = "cass"
        password = "pw-SECRET-3"
        [source.live.redis]
        url = "redis://app:pw-SECRET-4@cache:6379?pass=pw-SECRET-5"
        [source.live.search]
        base_url = "http://search:pw-SECRET-6@search:9000/search?token=pw-SECRET-7"
        [storage]
        url = "s3://key:pw-SECRET-8@bucket"
        [storage.options]
        aws_secret_access_key = "pw-SECRET-9"
        azure_storage_sas_token = "pw-SECRET-10"
        [security]
        sunbird_encryption_key = "pw-SECRET-11"
        [security.preferences]
        preference_url = "http://u:pw-SECRET-12@learner:9000/read?sig=pw-SECRET-13"
        org_search_url = "https://u:pw-SECRET-14@learner/search#pw-SECRET-15"
    "#;

    /// Asserts that neither `{:?}` nor `{:#?}` of `value` shows a secret of
    /// [`SECRETS_TOML`], and returns the `{:?}` text.
    fn debug_without_secrets(what: &str, value: &impl std::fmt::Debug) -> String {
        let plain = format!("{value:?}");
        let pretty = format!("{value:#?}");
        for text in [&plain, &pretty] {
            assert!(!text.contains("pw-SECRET"), "{what} shows a secret: {text}");
        }
        plain
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let s: Settings = toml::from_str(SECRETS_TOML).expect("valid");
        // Each secret was read into the settings.
        for n in 1..=15 {
            let secret = format!("pw-SECRET-{n}");
            let held = [
                &s.store.url,
                &s.storage.url,
                &s.security.sunbird_encryption_key,
            ]
            .iter()
            .any(|v| v.contains(&secret))
                || s.storage.options.values().any(|v| *v == secret)
                || s.source.live.as_ref().is_some_and(|l| {
                    l.cassandra.password.as_deref() == Some(secret.as_str())
                        || l.redis.url.contains(&secret)
                        || l.search.base_url.contains(&secret)
                })
                || s.security.preferences.as_ref().is_some_and(|p| {
                    p.preference_url.contains(&secret) || p.org_search_url.contains(&secret)
                });
            assert!(held, "{secret} is in the settings");
        }
        let shown = debug_without_secrets("Settings", &s);
        // What is not secret still shows.
        for visible in [
            "postgres://app:***@db:5432/analytics",
            "dev_job_request",
            "redis://app:***@cache:6379",
            "http://search:***@search:9000/search",
            "aws_secret_access_key",
            "learner:9000/read",
        ] {
            assert!(shown.contains(visible), "{visible} missing from {shown}");
        }

        // What the settings open shows none either.
        debug_without_secrets("preferences", &s.preferences().expect("preferences"));
        let live = s.source.live.as_ref().expect("live");
        let search = exhaust_sources::SearchSource::new(&live.search).expect("search");
        debug_without_secrets("SearchSource", &search);
        let bad = PreferenceConfig {
            preference_url: "ftp://u:pw-SECRET-16@learner/read?sig=pw-SECRET-17".into(),
            ..PreferenceConfig::default()
        };
        let err = HttpPreferences::new(bad).expect_err("not http");
        debug_without_secrets("PreferenceConfigError", &err);
        assert!(!err.to_string().contains("pw-SECRET"), "{err}");
    }

    #[test]
    fn the_job_format_defaults_to_csv_and_is_read() {
        use exhaust_core::typed::OutputFormat;
        let s: Settings = toml::from_str("").expect("parses");
        assert_eq!(s.runner_config().expect("config").format, OutputFormat::Csv);
        let s: Settings = toml::from_str("[job]\nformat = \"xlsx\"").expect("parses");
        // Parsed here; whether this build writes it is the writer's check.
        let checked = s.runner_config().and_then(|r| {
            exhaust_writer::check_format(r.format)
                .map(|()| r)
                .map_err(|e| anyhow!("[job] format: {e}"))
        });
        match checked {
            Ok(r) => assert_eq!(r.format, OutputFormat::Xlsx),
            // A build without the feature names it.
            Err(e) => assert!(
                !exhaust_writer::format_available(OutputFormat::Xlsx)
                    && e.to_string().contains("feature"),
                "{e}"
            ),
        }
    }
}
