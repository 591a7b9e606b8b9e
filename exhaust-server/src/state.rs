//! What every handler shares: the request store, the storage, the source
//! check, the download signer, the authoriser, the metrics and the clock.

use crate::auth::Authorizer;
use crate::download::Downloads;
use crate::health::SourceCheck;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use exhaust_sources::requests::AnyRequestStore;
use exhaust_writer::Storage;
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
    /// Who may call the API for which channel.
    pub auth: Arc<Authorizer>,
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
            .field("auth", &self.inner.auth.mode_name())
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

    /// The authoriser.
    pub fn auth(&self) -> &Authorizer {
        &self.inner.auth
    }
}
