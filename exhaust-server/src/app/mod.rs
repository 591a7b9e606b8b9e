//! The composition root: the settings of both frontends
//! ([`Settings`]: a TOML file and the `EXHAUST_*` variables) and everything
//! they open, written once for `exhaust` and `exhaust-server`: the request
//! store, the storage, the report source ([`AnySource`]: a snapshot or the
//! live stores), the preference source ([`AnyPreferences`]) and the request
//! runner ([`Settings::runner`], [`Settings::open_runner`]). Each frontend
//! wires its runner with one call; the adapters below know nothing of one
//! another or of the settings file.
//!
//! It lives in the server crate, the one library above every adapter that
//! both frontends already depend on (ARCHITECTURE.md, *The composition
//! root*).

mod sample;
mod settings;
mod source;

pub use sample::{sample_snapshot, sample_snapshot_under};
pub use settings::*;
pub use source::AnySource;

use exhaust_core::OrgId;
use exhaust_core::security::{FixedLevel, PreferenceSource, SecurityLevel};
use exhaust_core::source::SourceResult;
use exhaust_sources::live::preferences::HttpPreferences;
use exhaust_sources::requests::AnyRequestStore;

/// The runner the frontends compose: the configured source, store and
/// preferences, its output a `Publisher` into the configured storage.
pub type AppRunner = exhaust_writer::AppRunner<AnySource, AnyRequestStore, AnyPreferences>;

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
