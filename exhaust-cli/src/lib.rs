//! # exhaust-cli (library part)
//!
//! What the `exhaust` command and the `exhaust-server` share: reading the
//! configuration (file and environment) and composing sources, request
//! stores and storage from it. No report logic lives here.

pub mod config;
pub mod source;
