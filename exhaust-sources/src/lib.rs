//! # exhaust-sources
//!
//! Adapters behind `exhaust-core`'s source traits:
//! - [`snapshot`]: the snapshot reader ([`Snapshot`]), every trait served
//!   from a folder of JSON Lines files; the embedded default source;
//! - [`cassandra`], [`redis_cache`] and [`search`]: Sunbird's live stores,
//!   each behind the traits whose data it holds, and [`live`], which puts the
//!   three together as one [`LiveSources`];
//! - [`export`]: copies what one batch reads, from any source, into a
//!   snapshot folder, so a report can be re-run offline;
//! - `generate` (cargo feature `generate`): the generator of realistic
//!   snapshots, for benchmarks, tests and the bundled sample;
//! - [`requests`]: the `job_request` stores (PostgreSQL, SQLite);
//! - [`preferences`]: the tenant preference and org search services;
//! - [`settings`]: the request flow's settings (TOML file and `EXHAUST_*`
//!   variables) and what they open: the request store, the report source
//!   ([`AnySource`]: a snapshot or the live stores) and the preference
//!   source ([`settings::AnyPreferences`]), for both frontends.
//!
//! Adapters convert their rows into core types once, at the edge, and compute
//! no report values: the same rows give the same report whichever adapter
//! delivers them. The live adapters go further and decode Cassandra rows
//! through the snapshot reader's own row types, so a value cannot mean one
//! thing in a snapshot and another in Cassandra.
#![deny(missing_docs)]

pub mod export;
#[cfg(feature = "snapshot")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "generate")]
pub mod generate;
#[cfg(any(feature = "cassandra", feature = "redis", feature = "search"))]
pub mod live;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod requests;
mod rows;
#[cfg(feature = "snapshot")]
pub mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;

pub use export::{ExportError, ExportOptions, ExportSummary, export_batch};
#[cfg(feature = "cassandra")]
pub use live::cassandra::{CassandraConfig, CassandraSource, ReadConsistency};
#[cfg(feature = "redis")]
pub use live::redis::{RedisConfig, RedisSource};
#[cfg(feature = "search")]
pub use live::search::{SearchConfig, SearchSource};
#[cfg(feature = "live")]
pub use live::{LiveConfig, LiveSources};
#[cfg(feature = "snapshot")]
pub use snapshot::{IndexStats, Snapshot, SnapshotOptions};
