//! Configuration of the request flow, shared by the `exhaust` command and
//! `exhaust-server`, and its composition: what the settings open (the
//! request store, the report source, the preference source) is opened here,
//! once, for both frontends; the storage and the runner's output are
//! `exhaust-writer`'s (`Storage::from_settings`, `Publisher`), handed to
//! [`Settings::runner`].
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

use crate::any::AnySource;
use crate::live::preferences::{HttpPreferences, PreferenceConfig};
use crate::live::retry::{REDACTED, redact_url};
use crate::requests::AnyRequestStore;
use crate::{LiveConfig, LiveSources, Snapshot, SnapshotOptions};
use anyhow::{Context, anyhow};
use exhaust_core::OrgId;
use exhaust_core::layout::{Layout, parse_column_keys};
use exhaust_core::report::ReportOptions;
use exhaust_core::runner::{
    Clock, DEFAULT_GRACE, PublishConfig, ReportOutput, Runner, RunnerConfig,
};
use exhaust_core::security::{FixedLevel, PreferenceSource, SecurityLevel};
use exhaust_core::source::SourceResult;
use exhaust_core::store::Selection;
use exhaust_core::time::ReportTz;
use exhaust_core::typed::OutputFormat;
use exhaust_core::values::AttemptChoice;
use serde::Deserialize;
use std::collections::BTreeMap;
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

/// `[store]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `postgres://...` for PostgreSQL, else the path of an SQLite file
    /// (`$EXHAUST_STORE_URL`; default `exhaust.db`).
    pub url: String,
    /// The table in PostgreSQL (`$EXHAUST_STORE_TABLE`; Sunbird deploys
    /// `<env>_job_request`).
    pub table: String,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "exhaust.db".into(),
            table: crate::requests::DEFAULT_TABLE.into(),
        }
    }
}

// Written by hand: the URL may hold the database's password.
impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &redact_url(&self.url))
            .field("table", &self.table)
            .finish()
    }
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

/// `[storage]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// A folder, or a cloud URL (`$EXHAUST_STORAGE_URL`; default `exhaust-files`).
    pub url: String,
    /// Extra `object_store` options for cloud stores (region, endpoint...).
    pub options: BTreeMap<String, String>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            url: "exhaust-files".into(),
            options: BTreeMap::new(),
        }
    }
}

// Written by hand: options hold credentials (`aws_secret_access_key`,
// `azure_storage_sas_token`, ...). Every option's value is hidden, not only
// those whose names look secret: which options are set is what a reader of
// debug output needs, and no list of secret names can be complete.
impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .keys()
            .map(|k| (k.as_str(), REDACTED))
            .collect();
        f.debug_struct("StorageSettings")
            .field("url", &redact_url(&self.url))
            .field("options", &options)
            .finish()
    }
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

/// How `exhaust-server` authorises calls (`[auth] mode`, `$EXHAUST_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Trust the headers as they come: allowed only on a loopback address.
    None,
    /// API tokens bound to one channel each (`exhaust token create`).
    Token,
    /// Sunbird's rules: `consumer_channel_mapping`, or a verified user
    /// token with an authorised role in the channel's root org.
    Sunbird,
}

impl AuthMode {
    /// The setting's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Token => "token",
            Self::Sunbird => "sunbird",
        }
    }
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "token" => Ok(Self::Token),
            "sunbird" => Ok(Self::Sunbird),
            _ => Err(format!(
                "authorisation mode {s:?} is not one of none, token, sunbird"
            )),
        }
    }
}

/// `[auth]`: who may call the API for which channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `none`, `token` or `sunbird` (`$EXHAUST_AUTH`). Unset: `token` when
    /// the server has a bearer token (`EXHAUST_BEARER_TOKEN`), else `none`
    /// (which the server accepts on a loopback address only).
    #[serde(deserialize_with = "parsed_option")]
    pub mode: Option<AuthMode>,
    /// `[auth.sunbird]`: what the `sunbird` mode reads.
    pub sunbird: SunbirdAuthSettings,
}

/// `[auth.sunbird]`: Sunbird's authorisation, as its analytics API does it
/// (reference 1.5), with the user token verified here.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SunbirdAuthSettings {
    /// The folder of Keycloak's RS256 public keys, one file per key named
    /// by its key id (`kid`), PEM or bare base64 as Sunbird's services keep
    /// them (`accesstoken.publickey.basepath`; `$EXHAUST_AUTH_PUBLIC_KEY_DIR`).
    pub public_key_dir: Option<PathBuf>,
    /// The tokens' issuer, `<sso url>/realms/<realm>` (`$EXHAUST_AUTH_ISSUER`).
    pub issuer: Option<String>,
    /// Sunbird's user read API, to which the user id is appended
    /// (`user.profile.url`, e.g.
    /// `http://learner-service:9000/private/user/v1/read/`;
    /// `$EXHAUST_AUTH_USER_READ_URL`).
    pub user_read_url: Option<String>,
    /// The roles that may ask for exhausts (`ondemand.dataexhaust.roles`).
    pub roles: Vec<String>,
    /// Sunbird's consumer table in the request store's database
    /// (`$EXHAUST_AUTH_CONSUMER_TABLE`; deployments use
    /// `<env>_consumer_channel_mapping`).
    pub consumer_table: String,
    /// Seconds a consumer's mapping and a user's roles are remembered.
    pub cache_seconds: u64,
}

impl Default for SunbirdAuthSettings {
    fn default() -> Self {
        Self {
            public_key_dir: None,
            issuer: None,
            user_read_url: None,
            roles: exhaust_core::auth::SUNBIRD_ROLES
                .iter()
                .map(|r| r.to_string())
                .collect(),
            consumer_table: crate::requests::CONSUMER_TABLE.into(),
            cache_seconds: 60,
        }
    }
}

/// Where security levels come from: configuration or the services.
#[derive(Debug)]
// One per process: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnyPreferences {
    /// One level for every org.
    Fixed(FixedLevel),
    /// The tenant preference and org search services.
    Http(HttpPreferences),
}

impl PreferenceSource for AnyPreferences {
    async fn security_level(&self, org: &OrgId, job_id: &str) -> SourceResult<SecurityLevel> {
        match self {
            Self::Fixed(f) => f.security_level(org, job_id).await,
            Self::Http(h) => h.security_level(org, job_id).await,
        }
    }

    async fn public_key(&self, org: &OrgId) -> SourceResult<Option<String>> {
        match self {
            Self::Fixed(f) => f.public_key(org).await,
            Self::Http(h) => h.public_key(org).await,
        }
    }
}

/// The bundled sample snapshot, found from the source tree so that `cargo
/// run` works from anywhere inside the repository.
pub fn default_snapshot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-snapshot")
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

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
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
        s.apply_env()?;
        // A number, so read here where a bad value can be refused.
        if let Some(v) = env("EXHAUST_GRACE_SECONDS") {
            s.job.grace_seconds = v.trim().parse().map_err(|_| {
                anyhow!("EXHAUST_GRACE_SECONDS must be a whole number of seconds, not {v:?}")
            })?;
        }
        Ok(s)
    }

    /// Applies the `EXHAUST_*` variables over the file's values; a value
    /// that does not parse is refused, naming the variable.
    pub fn apply_env(&mut self) -> anyhow::Result<()> {
        if let Some(v) = env("EXHAUST_STORE_URL") {
            self.store.url = v;
        }
        if let Some(v) = env("EXHAUST_STORE_TABLE") {
            self.store.table = v;
        }
        if let Some(v) = env("EXHAUST_SNAPSHOT") {
            self.source.snapshot = Some(v.into());
            self.source.live = None;
        }
        if let Some(v) = env("EXHAUST_SNAPSHOT_DIGEST") {
            self.source.digest = Some(switch("EXHAUST_SNAPSHOT_DIGEST", &v)?);
        }
        if let Some(v) = env("EXHAUST_STORAGE_URL") {
            self.storage.url = v;
        }
        if let Some(v) = env("EXHAUST_SECURITY_LEVEL") {
            self.security.level = v
                .parse()
                .map_err(|e| anyhow!("EXHAUST_SECURITY_LEVEL: {e}"))?;
        }
        if let Some(v) = env("EXHAUST_SUNBIRD_ENCRYPTION_KEY") {
            self.security.sunbird_encryption_key = v;
        }
        if let Some(v) = env("EXHAUST_AUTH") {
            self.auth.mode = Some(v.parse().map_err(|e| anyhow!("EXHAUST_AUTH: {e}"))?);
        }
        let sunbird = &mut self.auth.sunbird;
        if let Some(v) = env("EXHAUST_AUTH_PUBLIC_KEY_DIR") {
            sunbird.public_key_dir = Some(v.into());
        }
        if let Some(v) = env("EXHAUST_AUTH_ISSUER") {
            sunbird.issuer = Some(v);
        }
        if let Some(v) = env("EXHAUST_AUTH_USER_READ_URL") {
            sunbird.user_read_url = Some(v);
        }
        if let Some(v) = env("EXHAUST_AUTH_CONSUMER_TABLE") {
            sunbird.consumer_table = v;
        }
        Ok(())
    }

    /// Opens the request store (creating the table or file when absent).
    pub async fn open_store(&self) -> anyhow::Result<AnyRequestStore> {
        AnyRequestStore::open(&self.store.url, &self.store.table)
            .await
            .map_err(|e| anyhow!(e))
            .context("opening the request store")
    }

    /// The snapshot folder the reports read.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.source
            .snapshot
            .clone()
            .unwrap_or_else(default_snapshot)
    }

    /// Opens the configured source: the live stores when `[source.live]` is
    /// set, else the snapshot.
    pub async fn open_source(&self) -> anyhow::Result<AnySource> {
        match &self.source.live {
            Some(live) => LiveSources::connect(live)
                .await
                .map(AnySource::Live)
                .map_err(|e| anyhow!(e))
                .context("connecting to the live sources"),
            None => self.open_snapshot().map(AnySource::Snapshot),
        }
    }

    /// The request runner over the configured source, preferences and job
    /// settings, with this store, output and clock: what `exhaust run` and
    /// `exhaust-server --worker` run (the server shares the store and the
    /// output's storage with its API). Refuses a `[job] format` the output
    /// cannot write.
    pub async fn runner<O: ReportOutput, C: Clock>(
        &self,
        store: AnyRequestStore,
        output: O,
        clock: C,
    ) -> anyhow::Result<Runner<AnySource, AnyRequestStore, AnyPreferences, O, C>> {
        let prefs = self.preferences()?;
        let config = self.runner_config()?;
        output
            .check_format(config.format)
            .map_err(|e| anyhow!("[job] format: {e}"))?;
        let source = self.open_source().await?;
        tracing::info!(store = store.kind(), source = source.kind(), "runner ready");
        Ok(Runner::new(source, store, prefs, output, clock, config))
    }

    /// Opens the snapshot.
    pub fn open_snapshot(&self) -> anyhow::Result<Snapshot> {
        let dir = self.snapshot_dir();
        if !dir.is_dir() {
            anyhow::bail!(
                "snapshot folder {} not found: set [source] snapshot or EXHAUST_SNAPSHOT",
                dir.display()
            );
        }
        Snapshot::open(&dir, self.snapshot_options()).map_err(|e| anyhow!(e))
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
    /// sunbird_encryption_key`): what a frontend gives
    /// `exhaust_writer::Publisher` beside the storage.
    pub fn publish_config(&self) -> PublishConfig {
        PublishConfig {
            work_dir: self.work_dir(),
            sunbird_encryption_key: self.security.sunbird_encryption_key.clone(),
        }
    }
}

/// An optional setting written as text, parsed as [`parsed`] does.
fn parsed_option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    parsed(d).map(Some)
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
        let search = crate::SearchSource::new(&live.search).expect("search");
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
