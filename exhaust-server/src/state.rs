//! What every handler shares: the request store, the storage, the source
//! check, the download signer, the optional bearer token, the metrics and
//! the clock.

use crate::download::{Downloads, Secret};
use crate::health::SourceCheck;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use exhaust_sources::requests::AnyRequestStore;
use exhaust_writer::Storage;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// Where handlers get the time: the system clock in production, a fixed or
/// settable one in tests (Sunbird's request id holds the submission date).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// The parts of an [`AppState`].
pub struct StateConfig {
    /// The request store.
    pub store: AnyRequestStore,
    /// Where the files are.
    pub storage: Storage,
    /// Whether the report source answers.
    pub source: Arc<dyn SourceCheck>,
    /// Signs and checks download links.
    pub downloads: Downloads,
    /// When set, the API routes require `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// The metrics (shared with the worker).
    pub metrics: Arc<Metrics>,
    /// The clock.
    pub clock: Clock,
}

/// The handlers' shared state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateConfig>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.inner.store.kind())
            .field("storage", &self.inner.storage.describe())
            .field("public_url", &self.inner.downloads.public_url())
            .field("bearer_token", &self.inner.bearer_token.is_some())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state over these parts.
    pub fn new(config: StateConfig) -> Self {
        Self {
            inner: Arc::new(config),
        }
    }

    /// The time now, from the configured clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// The request store.
    pub fn store(&self) -> &AnyRequestStore {
        &self.inner.store
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The source check.
    pub fn source(&self) -> &dyn SourceCheck {
        self.inner.source.as_ref()
    }

    /// The download signer.
    pub fn downloads(&self) -> &Downloads {
        &self.inner.downloads
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Whether API routes require a bearer token.
    pub fn requires_bearer(&self) -> bool {
        self.inner.bearer_token.is_some()
    }

    /// Whether `given` is the configured bearer token (true when none is
    /// configured). Compared in constant time, through SHA-256 digests so
    /// lengths do not leak either.
    pub fn bearer_matches(&self, given: Option<&str>) -> bool {
        let Some(expected) = &self.inner.bearer_token else {
            return true;
        };
        let Some(given) = given else {
            return false;
        };
        let a = Sha256::digest(given.as_bytes());
        let b = Sha256::digest(expected.expose());
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}
