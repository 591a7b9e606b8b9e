//! Output of the progress exhaust: the report's CSV, its zip, and the files
//! they go into.
//!
//! - [`CsvSink`] is the [`RowSink`](exhaust_core::report::RowSink) the
//!   report builder streams rows into. It writes RFC 4180 CSV (CRLF, quoting
//!   only where needed, UTF-8 without BOM) and counts the bytes exactly,
//!   because that count is the report's `fileSize` and is checked against
//!   the per-channel size limit.
//! - [`write_zip`] and [`zip_file`] zip one CSV, with an optional ZipCrypto
//!   password as Sunbird does, streaming rather than buffering the report.
//! - [`AtomicFile`] writes under a temporary name and renames on commit, so
//!   a report's final name never refers to a partial file.
//! - [`envelope`] writes and opens Sunbird's encrypted envelope (the text-key
//!   and public-key security levels); [`decode_encryption_key`] turns a
//!   request's stored `encryption_key` into the key itself.
//! - The runtime side of the request flow, whose orchestration is
//!   `exhaust_core::runner`: [`Publisher`] builds, packages and stores a
//!   request's reports (the core's `ReportOutput`), [`TokioClock`] is the
//!   core's `Clock`, and [`Shutdown`] its `StopSignal` with a grace period,
//!   which [`stop_on_signals`] triggers on SIGINT and SIGTERM.
//!
//! ```
//! use exhaust_core::report::RowSink;
//! use exhaust_writer::CsvSink;
//!
//! let mut sink = CsvSink::new(Vec::new());
//! sink.begin(&["User ID".into(), "Name".into()], 1)?;
//! sink.row(&["u1".into(), "Doe, Jane".into()])?;
//! let (bytes, stats) = sink.finish()?;
//! assert_eq!(bytes, b"User ID,Name\r\nu1,\"Doe, Jane\"\r\n");
//! assert_eq!(stats.rows, 1);
//! assert_eq!(stats.bytes, bytes.len() as u64);
//! # Ok::<(), exhaust_writer::WriteError>(())
//! ```

#![deny(missing_docs)]

mod archive;
#[cfg(feature = "arrow")]
pub mod arrow;
mod atomic;
mod counting;
mod csv_sink;
pub mod envelope;
mod error;
mod key;
pub mod publish;
mod report_sink;
pub mod shutdown;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "xlsx")]
pub mod xlsx;

pub use archive::{read_single_entry, write_zip, zip_file};
pub use atomic::{AtomicFile, TEMP_PREFIX, TEMP_SUFFIX};
pub use counting::CountingWriter;
pub use csv_sink::{CsvSink, CsvStats};
pub use envelope::{EnvelopeError, Secret};
pub use error::WriteError;
pub use key::{decode_encryption_key, encode_encryption_key};
pub use publish::{
    AppRunner, FileSink, PublishConfig, Publisher, Staged, TokioClock, publishing_runner,
};
pub use report_sink::{ReportSink, ReportStats, check_format, format_available};
pub use shutdown::{DEFAULT_GRACE, Shutdown, stop_on_signals};
pub use storage::{Storage, StorageError, StorageSettings, StoredFile, StoredObject, cloud_stores};
