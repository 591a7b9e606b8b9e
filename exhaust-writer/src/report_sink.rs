//! One sink for any output format: what the command line and the runner
//! build a report file with.

use crate::csv_sink::CsvSink;
use crate::error::WriteError;
use chrono::{DateTime, Utc};
use exhaust_core::report::RowSink;
use exhaust_core::typed::{OutputFormat, ReportSchema, Value};
use std::io::Write;

/// Whether this build can write `format` (the typed formats are cargo
/// features of `exhaust-writer`: `parquet`, `arrow`, `xlsx`).
pub fn format_available(format: OutputFormat) -> bool {
    match format {
        OutputFormat::Csv => true,
        OutputFormat::Parquet => cfg!(feature = "parquet"),
        OutputFormat::Arrow => cfg!(feature = "arrow"),
        OutputFormat::Xlsx => cfg!(feature = "xlsx"),
    }
}

/// Refuses a format this build cannot write, naming the feature to enable.
pub fn check_format(format: OutputFormat) -> Result<(), WriteError> {
    if format_available(format) {
        Ok(())
    } else {
        Err(WriteError::FormatUnavailable(format.as_str()))
    }
}

/// What a finished [`ReportSink`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportStats {
    /// Data rows.
    pub rows: u64,
    /// Bytes of the file: the report's `fileSize`.
    pub bytes: u64,
}

enum Inner<W: Write + Send> {
    Csv(CsvSink<W>),
    #[cfg(feature = "arrow")]
    Typed(crate::arrow::TypedFileSink<W>),
    #[cfg(feature = "xlsx")]
    // Boxed: the workbook is large beside the other sinks.
    Xlsx(Box<crate::xlsx::XlsxSink<W>>),
}

/// A [`RowSink`] writing the report in the chosen [`OutputFormat`].
pub struct ReportSink<W: Write + Send> {
    format: OutputFormat,
    inner: Inner<W>,
}

impl<W: Write + Send> std::fmt::Debug for ReportSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportSink")
            .field("format", &self.format())
            .finish()
    }
}

impl<W: Write + Send> ReportSink<W> {
    /// A sink writing `format` to `writer`; `built_at` goes into the typed
    /// formats' metadata. Fails when this build lacks the format's feature.
    pub fn new(
        format: OutputFormat,
        writer: W,
        built_at: DateTime<Utc>,
    ) -> Result<Self, WriteError> {
        check_format(format)?;
        let _ = built_at;
        let inner = match format {
            #[cfg(feature = "parquet")]
            OutputFormat::Parquet => Inner::Typed(crate::arrow::TypedFileSink::new(
                crate::arrow::FileKind::Parquet,
                writer,
                built_at,
            )),
            #[cfg(feature = "arrow")]
            OutputFormat::Arrow => Inner::Typed(crate::arrow::TypedFileSink::new(
                crate::arrow::FileKind::ArrowIpc,
                writer,
                built_at,
            )),
            #[cfg(feature = "xlsx")]
            OutputFormat::Xlsx => Inner::Xlsx(Box::new(crate::xlsx::XlsxSink::new(writer))),
            // CSV, and (unreachable after the check) formats not built in.
            _ => Inner::Csv(CsvSink::new(writer)),
        };
        Ok(Self { format, inner })
    }

    /// The format written.
    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Data rows written so far.
    pub fn rows_written(&self) -> u64 {
        match &self.inner {
            Inner::Csv(s) => s.rows_written(),
            #[cfg(feature = "arrow")]
            Inner::Typed(s) => s.rows_written(),
            #[cfg(feature = "xlsx")]
            Inner::Xlsx(s) => s.rows_written(),
        }
    }

    /// Completes the file and returns the destination with what was written.
    pub fn finish(self) -> Result<(W, ReportStats), WriteError> {
        match self.inner {
            Inner::Csv(s) => s.finish().map(|(w, st)| {
                (
                    w,
                    ReportStats {
                        rows: st.rows,
                        bytes: st.bytes,
                    },
                )
            }),
            #[cfg(feature = "arrow")]
            Inner::Typed(s) => s.finish().map(|(w, st)| {
                (
                    w,
                    ReportStats {
                        rows: st.rows,
                        bytes: st.bytes,
                    },
                )
            }),
            #[cfg(feature = "xlsx")]
            Inner::Xlsx(s) => (*s).finish().map(|(w, st)| {
                (
                    w,
                    ReportStats {
                        rows: st.rows,
                        bytes: st.bytes,
                    },
                )
            }),
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.inner {
            Inner::Csv($s) => $e,
            #[cfg(feature = "arrow")]
            Inner::Typed($s) => $e,
            #[cfg(feature = "xlsx")]
            Inner::Xlsx($s) => $e,
        }
    };
}

impl<W: Write + Send> RowSink for ReportSink<W> {
    type Error = WriteError;

    fn begin(&mut self, header: &[String], expected_rows: usize) -> Result<(), WriteError> {
        each!(self, s => s.begin(header, expected_rows))
    }

    fn row(&mut self, fields: &[String]) -> Result<(), WriteError> {
        each!(self, s => s.row(fields))
    }

    fn begin_typed(
        &mut self,
        schema: &ReportSchema,
        expected_rows: usize,
    ) -> Result<(), WriteError> {
        each!(self, s => s.begin_typed(schema, expected_rows))
    }

    fn wants_typed_rows(&self) -> bool {
        match &self.inner {
            Inner::Csv(s) => s.wants_typed_rows(),
            #[cfg(feature = "arrow")]
            Inner::Typed(s) => s.wants_typed_rows(),
            #[cfg(feature = "xlsx")]
            Inner::Xlsx(s) => s.wants_typed_rows(),
        }
    }

    fn typed_row(&mut self, values: &[Value]) -> Result<(), WriteError> {
        each!(self, s => s.typed_row(values))
    }
}
