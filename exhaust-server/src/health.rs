//! `GET /health`: whether the request store, the storage and the report
//! source answer. 200 when all do, 503 when any part is down, with the
//! status of each part.
//!
//! The route is open, so its body names no host, bucket or path: each part
//! is named by its kind (`postgres`, `sqlite`, `local folder`, `S3`,
//! `snapshot`, `live`, ...) and a part that is down by a generic reason
//! ([`CheckError::public`], a `&'static str`, so no text of a driver's
//! error can reach it). The full error, which often names a host or a path,
//! goes to the log.

use crate::app::{AnySource, Settings};
use crate::worker::ServerRunner;
use exhaust_core::ContentId;
use exhaust_core::source::{CollectionSource, CustodianOrgSource, OptionalNodeSource};
use exhaust_sources::LiveSources;
use serde::Serialize;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// How long one part may take to answer.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a part is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    /// What the health body says: generic ("unreachable", "timed out",
    /// "not found", ...), never a host, bucket or path.
    pub public: &'static str,
    /// The full error, for the log (it may name a host or a path, never a
    /// password: the stores mask those out of their messages).
    pub detail: String,
}

impl CheckError {
    /// A reason for the body and the error behind it for the log.
    pub fn new(public: &'static str, detail: impl std::fmt::Display) -> Self {
        Self {
            public,
            detail: detail.to_string(),
        }
    }
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.public, self.detail)
    }
}

/// What the body says of a source error: unreachable, or answering but
/// not as expected.
fn source_error(e: exhaust_core::source::SourceError) -> CheckError {
    let public = if e.is_retryable() {
        "unreachable"
    } else {
        "unexpected answer"
    };
    CheckError::new(public, e)
}

/// A boxed future of a check.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CheckError>> + Send + 'a>>;

/// Whether the report source can be read. The server holds one behind a
/// trait object, so the API does not depend on which source the worker
/// reads.
pub trait SourceCheck: Send + Sync + 'static {
    /// What the source is, for the health document (never credentials).
    fn describe(&self) -> String;
    /// `Ok` when the source answers, else why not.
    fn check(&self) -> CheckFuture<'_>;
}

/// A snapshot folder is reachable when it can be listed. (The snapshot
/// reader caches what it has read, so asking it would report a folder that
/// has gone as healthy.)
#[derive(Debug, Clone)]
pub struct SnapshotFolder(pub PathBuf);

impl SourceCheck for SnapshotFolder {
    fn describe(&self) -> String {
        "snapshot".into()
    }

    fn check(&self) -> CheckFuture<'_> {
        let dir = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                std::fs::read_dir(&dir).map(|_| ()).map_err(|e| {
                    let public = match e.kind() {
                        std::io::ErrorKind::NotFound => "not found",
                        std::io::ErrorKind::NotADirectory => "not a folder",
                        std::io::ErrorKind::PermissionDenied => "permission denied",
                        _ => "cannot be read",
                    };
                    CheckError::new(
                        public,
                        format!("snapshot folder {} cannot be read: {e}", dir.display()),
                    )
                })
            })
            .await
            .map_err(|e| CheckError::new("check failed", format!("check did not finish: {e}")))?
        })
    }
}

/// Sunbird's live stores answer when one cheap read by key succeeds on each:
/// the custodian org (Cassandra), an optional-nodes set (Redis) and a
/// collection lookup (search).
pub async fn probe_live(s: &LiveSources) -> Result<(), CheckError> {
    s.custodian_org().await.map_err(source_error)?;
    let probe = ContentId::new("exhaust-health-probe");
    s.optional_nodes(&probe).await.map_err(source_error)?;
    s.collections(std::slice::from_ref(&probe))
        .await
        .map_err(source_error)?;
    Ok(())
}

/// Whether an opened source answers: live stores by [`probe_live`] over
/// its own connections, a snapshot by listing its folder (as
/// [`SnapshotFolder`] does).
fn check_opened(source: &AnySource) -> CheckFuture<'_> {
    match source {
        AnySource::Live(live) => Box::pin(probe_live(live)),
        AnySource::Snapshot(snapshot) => {
            let folder = SnapshotFolder(snapshot.dir().to_path_buf());
            Box::pin(async move { folder.check().await })
        }
    }
}

/// The live stores of a server without a worker. Such a server holds no
/// source at all (its API reads only the request store and the storage),
/// so this check opens one at the first check and keeps it, through the
/// runner's own composition ([`Settings::open_source`]), so the stores are
/// reached as the worker reaches them. With `--worker`, [`RunnerSource`]
/// asks the worker's source instead: there is never a second connection.
pub struct LiveCheck {
    settings: Settings,
    source: tokio::sync::OnceCell<AnySource>,
}

impl LiveCheck {
    /// A check of the source of `settings` (given `[source.live]`).
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            source: tokio::sync::OnceCell::new(),
        }
    }
}

// By hand: the settings hold secrets (`sunbird_encryption_key`).
impl std::fmt::Debug for LiveCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCheck")
            .field("opened", &self.source.initialized())
            .finish_non_exhaustive()
    }
}

impl SourceCheck for LiveCheck {
    fn describe(&self) -> String {
        "live".into()
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let source = self
                .source
                .get_or_try_init(|| self.settings.open_source())
                .await
                .map_err(|e| CheckError::new("unreachable", format!("{e:#}")))?;
            check_opened(source).await
        })
    }
}

/// The source the worker's runner reads: its live stores are probed over
/// the runner's own connections (no second connection); a snapshot folder
/// is listed, as [`SnapshotFolder`] does.
#[derive(Debug)]
pub struct RunnerSource {
    runner: Arc<ServerRunner>,
}

impl RunnerSource {
    /// A check of `runner`'s source.
    pub fn new(runner: Arc<ServerRunner>) -> Self {
        Self { runner }
    }
}

impl SourceCheck for RunnerSource {
    fn describe(&self) -> String {
        self.runner.sources().kind().into()
    }

    fn check(&self) -> CheckFuture<'_> {
        check_opened(self.runner.sources())
    }
}

/// The state of one part.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Part {
    /// `up` or `down`.
    pub status: String,
    /// What the part is (`postgres`, `sqlite`, `local folder`, `S3`, `Azure`, `GCS`, `snapshot`,
    /// `live`).
    pub kind: String,
    /// Why it is down, in general terms (`unreachable`, `timed out`, `not
    /// found`, ...): never a host, bucket or path. The log has the details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The health document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every part is up, else `down`.
    pub status: String,
    /// The request store.
    pub store: Part,
    /// The file storage.
    pub storage: Part,
    /// The report source.
    pub source: Part,
}

impl Health {
    /// Whether every part is up.
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Runs the check of the part `name` (`store`, `storage`, `source`) with
/// [`CHECK_TIMEOUT`] and describes its outcome; a failure's full error is
/// logged, the part says only [`CheckError::public`].
pub async fn part<F>(name: &'static str, kind: String, check: F) -> Part
where
    F: Future<Output = Result<(), CheckError>>,
{
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(r) => r,
        Err(_) => Err(CheckError::new(
            "timed out",
            format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
        )),
    };
    match outcome {
        Ok(()) => Part {
            status: "up".into(),
            kind,
            error: None,
        },
        Err(e) => {
            tracing::warn!(part = name, kind = %kind, error = %e.detail, "health check failed");
            Part {
                status: "down".into(),
                kind,
                error: Some(e.public.to_string()),
            }
        }
    }
}

/// The document from the three parts.
pub fn summarise(store: Part, storage: Part, source: Part) -> Health {
    let all_up = [&store, &storage, &source].iter().all(|p| p.status == "up");
    Health {
        status: if all_up { "ok" } else { "down" }.into(),
        store,
        storage,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn live_stores_that_are_down_are_reported_down_with_the_reason() {
        let config: exhaust_sources::LiveConfig = toml::from_str(
            "[cassandra]\ncontact_points = [\"127.0.0.1:1\"]\nconnect_timeout_ms = 300\n\
             [redis]\nurl = \"redis://127.0.0.1:1\"\n",
        )
        .expect("config");
        let mut settings = Settings::default();
        settings.source.live = Some(config);
        let check = LiveCheck::new(settings);
        assert_eq!(check.describe(), "live");
        let err = check.check().await.expect_err("down");
        assert_eq!(err.public, "unreachable");
        assert!(err.detail.contains("unavailable"), "{err}");
    }

    #[tokio::test]
    async fn a_part_says_only_its_kind_and_a_generic_reason() {
        let p = part("storage", "local folder".into(), async {
            Err(CheckError::new(
                "unreachable",
                "cannot list /srv/secret-place",
            ))
        })
        .await;
        assert_eq!(p.status, "down");
        assert_eq!(p.kind, "local folder");
        assert_eq!(p.error.as_deref(), Some("unreachable"));
        let missing = SnapshotFolder(PathBuf::from("/no/such/exhaust-snapshot"));
        let err = missing.check().await.expect_err("missing");
        assert_eq!(err.public, "not found");
        assert!(err.detail.contains("/no/such/exhaust-snapshot"), "{err}");
    }
}
