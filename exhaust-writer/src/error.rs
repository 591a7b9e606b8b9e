//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Why writing a report's CSV, zip or final file failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// An I/O operation failed; `action` says which one and on what.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, e.g. "renaming /a/.x.part to /a/x.csv".
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The CSV encoder rejected a record.
    #[error("{action}: {source}")]
    Csv {
        /// What was being written.
        action: String,
        /// The underlying error.
        #[source]
        source: csv::Error,
    },
    /// The zip library failed.
    #[error("{action}: {source}")]
    Zip {
        /// What was being done.
        action: String,
        /// The underlying error.
        #[source]
        source: zip::result::ZipError,
    },
    /// A row does not have as many fields as the header.
    #[error("row {row} has {found} fields but the header has {expected}")]
    FieldCount {
        /// 1-based index of the offending data row (the header not counted).
        row: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// The header has no columns: the CSV would have no readable records.
    #[error("the CSV header has no columns")]
    EmptyHeader,
    /// `begin` was called a second time.
    #[error("the CSV header was already written")]
    HeaderTwice,
    /// A row was written, or the sink finished, before the header.
    #[error("{0} before the CSV header was written")]
    NotBegun(&'static str),
    /// `Some("")` was given as a zip password. An empty password is a caller
    /// bug (a missing setting read as ""), not a request for no encryption,
    /// so it is refused rather than silently writing an unencrypted zip.
    #[error("empty zip password: pass no password to write an unencrypted zip")]
    EmptyPassword,
    /// The zip entry name is empty.
    #[error("empty zip entry name")]
    EmptyEntryName,
    /// A zip that should hold one file holds this many.
    #[error("the zip holds {0} files, not one")]
    NotSingleEntry(usize),
    /// The destination path has no file name (e.g. `/` or `..`).
    #[error("destination {0} does not name a file")]
    InvalidDestination(PathBuf),
    /// A typed format's encoder (Arrow, Parquet, Excel) failed.
    #[error("{action}: {detail}")]
    Encode {
        /// What was being written, naming the format.
        action: String,
        /// The encoder's message.
        detail: String,
    },
    /// A typed sink was begun without the report's schema (`begin` instead
    /// of `begin_typed`), or given text rows.
    #[error("the {0} sink needs typed rows: build it with exhaust_core::report::build_rows")]
    NeedsTypedRows(&'static str),
    /// The output format is not built into this binary.
    #[error(
        "the {0} format is not built in: build with the exhaust-writer feature `{0}` (or `typed` for every format)"
    )]
    FormatUnavailable(&'static str),
}

impl WriteError {
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }

    #[allow(dead_code)] // used by the typed formats' features only
    pub(crate) fn encode(action: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self::Encode {
            action: action.into(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn zip(action: impl Into<String>, source: zip::result::ZipError) -> Self {
        Self::Zip {
            action: action.into(),
            source,
        }
    }
}
