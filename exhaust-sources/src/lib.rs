//! # exhaust-sources
//!
//! Adapters behind `exhaust-core`'s source traits. Today: the snapshot
//! reader ([`snapshot::Snapshot`]), which serves every trait from a folder of
//! JSON Lines files, the generator of realistic snapshots, and the request
//! stores ([`requests`]: `job_request` in PostgreSQL or SQLite).
//!
//! Adapters convert their rows into core types once, at the edge, and compute
//! no report values: the same rows give the same report whichever adapter
//! delivers them.
#![deny(missing_docs)]

pub mod generate;
pub mod preferences;
pub mod requests;
mod rows;
pub mod snapshot;
mod table;

pub use snapshot::{Snapshot, SnapshotOptions};
