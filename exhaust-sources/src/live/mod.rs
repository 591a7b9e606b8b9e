//! The live stores together: Cassandra, Redis and the search API behind every
//! source trait, so a report reads Sunbird's own stores.
//!
//! [`LiveSources`] only delegates, each trait to the store that holds its
//! data, and reports each store's read counters, so a run summary can show
//! that a batch read only what it needs.

#[cfg(feature = "cassandra")]
pub mod cassandra;
#[cfg(feature = "search")]
pub mod preferences;
#[cfg(feature = "redis")]
pub mod redis;
pub(crate) mod retry;
#[cfg(feature = "search")]
pub mod search;
#[cfg(any(feature = "cassandra", feature = "redis"))]
pub mod tls;

#[cfg(feature = "live")]
mod sources;
#[cfg(feature = "live")]
pub use sources::{LiveConfig, LiveSources};
