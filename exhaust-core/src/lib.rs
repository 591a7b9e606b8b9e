//! # exhaust-core
//!
//! The progress exhaust's report model and rules, with no runtime and no I/O:
//! the hierarchy rules ([`hierarchy`]), the value and score rules
//! ([`values`]), the layouts and column transposition ([`layout`]), the source
//! traits ([`source`]) and the build of a batch's rows from those sources
//! ([`report`]), the request lifecycle ([`request`]) and its store trait
//! ([`store`]), the data security levels ([`security`]), and the request
//! flow itself ([`runner`]), and who may call the API for which channel
//! ([`auth`]): the generic orchestration that claims requests,
//! builds their batches and records outcomes over traits (sources, store,
//! preferences, output, clock, stop signal) that the other crates implement.
//! The report's invariants are checks a test can run on any built report
//! ([`invariants`]); with the cargo feature `proptest`, `strategies` makes
//! valid Sunbird data for property tests.
//!
//! Everything that touches a database, a file or a clock lives in the other
//! crates: `exhaust-sources` implements the traits, `exhaust-writer` writes
//! what [`report::RowSink`] receives and packages and stores reports
//! ([`runner::ReportOutput`]), and the frontends pass the time in (an
//! argument, or a [`runner::Clock`]).
//!
//! ```
//! use exhaust_core::hierarchy::{AssessmentRules, Hierarchy};
//! use exhaust_core::layout::{Layout, ReportColumns};
//!
//! let json = r#"{"identifier":"do_C","children":[
//!   {"identifier":"do_U1","index":1,"mimeType":"application/vnd.ekstep.content-collection",
//!    "children":[{"identifier":"do_r1","mimeType":"application/pdf"},
//!                {"identifier":"do_a1","contentType":"SelfAssess"}]}]}"#;
//! let h = Hierarchy::parse("do_C", json, &AssessmentRules::default()).unwrap();
//! let cols = ReportColumns::new(Layout::Seed, None, &h);
//! // The dynamic columns are known before any row is read.
//! assert_eq!(&cols.header[13..], ["do_U1 - Progress", "do_a1 - Score"]);
//! ```
#![deny(missing_docs)]

pub mod auth;
pub mod cooperative;
pub mod hierarchy;
pub mod ids;
pub mod invariants;
pub mod layout;
pub mod memory;
pub mod model;
pub mod redact;
pub mod report;
pub mod request;
pub mod runner;
pub mod security;
pub mod source;
pub mod store;
#[cfg(feature = "proptest")]
pub mod strategies;
pub mod summary;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod typed;
pub mod values;

pub use ids::{BatchId, ContentId, OrgId, UserId};
