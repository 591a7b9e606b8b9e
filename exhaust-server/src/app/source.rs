//! The report source chosen by configuration: a snapshot folder (the
//! default) or Sunbird's live stores. One type for both, so the runner, the
//! report command and the server are not generic over the choice.

use exhaust_core::source::{ReadCounter, ReadStats, Reclaim};
use exhaust_sources::{LiveSources, Snapshot};

/// A snapshot folder or the live stores.
#[derive(Debug)]
// One source per process: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnySource {
    /// A snapshot folder.
    Snapshot(Snapshot),
    /// Cassandra, Redis and the search API.
    Live(LiveSources),
}

impl AnySource {
    /// What the source is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Snapshot(_) => "snapshot",
            Self::Live(_) => "live",
        }
    }
}

/// Calls the same method on whichever source this is.
macro_rules! either_source {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match $self {
            AnySource::Snapshot(s) => s.$method($($arg),*).await,
            AnySource::Live(s) => s.$method($($arg),*).await,
        }
    };
}

exhaust_core::forward_report_source!(impl [] for AnySource => either_source);

impl Reclaim for AnySource {
    fn reclaim(&self, done: Box<dyn std::any::Any + Send>) {
        match self {
            Self::Snapshot(s) => s.reclaim(done),
            Self::Live(s) => s.reclaim(done),
        }
    }
}

impl ReadCounter for AnySource {
    fn read_counts(&self) -> Vec<(&'static str, ReadStats)> {
        match self {
            Self::Snapshot(s) => s.read_counts(),
            Self::Live(s) => s.read_counts(),
        }
    }
}
