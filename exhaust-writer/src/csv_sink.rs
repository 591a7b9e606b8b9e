//! The report's CSV: a [`RowSink`] writing RFC 4180 through a byte counter.

use crate::counting::CountingWriter;
use crate::error::WriteError;
use exhaust_core::report::RowSink;
use std::io::{self, BufWriter, Write};

/// What a finished [`CsvSink`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvStats {
    /// Data rows, the header not counted.
    pub rows: u64,
    /// Bytes written, header included: the size of the CSV file.
    pub bytes: u64,
}

type Out<W> = CountingWriter<BufWriter<W>>;

/// Lets the CSV encoder drain its buffer after every record without each
/// record also forcing a write to the destination (a system call per row
/// for a file).
#[derive(Debug)]
struct SoftFlush<W>(W);

impl<W: Write> Write for SoftFlush<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the report as RFC 4180 CSV: comma separated, CRLF terminated,
/// fields quoted only when they hold a comma, quote, CR or LF (quotes
/// doubled), UTF-8 without BOM, header first.
///
/// The encoder is drained after every record, so
/// [`bytes_written`](Self::bytes_written) is exact after every row (the
/// per-channel byte limit is checked between rows) instead of lagging behind
/// by the encoder's buffer. The output is buffered internally; there is no
/// need to pass a `BufWriter`.
///
/// After an error the output may end in a partial record; drop the sink (and
/// its file) rather than continuing.
#[derive(Debug)]
pub struct CsvSink<W: Write> {
    // Exactly one of these is set: `pending` until the header is written,
    // then `csv`, which is only built then because a header starting with a
    // BOM needs different quoting from the rest of the file.
    pending: Option<Out<W>>,
    csv: Option<csv::Writer<SoftFlush<Out<W>>>>,
    columns: usize,
    rows: u64,
}

fn builder(quote: csv::QuoteStyle) -> csv::WriterBuilder {
    let mut b = csv::WriterBuilder::new();
    b.delimiter(b',')
        .terminator(csv::Terminator::CRLF)
        .quote_style(quote)
        .double_quote(true)
        .has_headers(false);
    b
}

fn csv_error(what: &str, source: csv::Error) -> WriteError {
    WriteError::Csv {
        action: format!("encoding {what}"),
        source,
    }
}

impl<W: Write> CsvSink<W> {
    /// A sink writing to `writer`; nothing is written until [`RowSink::begin`].
    pub fn new(writer: W) -> Self {
        Self {
            pending: Some(CountingWriter::new(BufWriter::new(writer))),
            csv: None,
            columns: 0,
            rows: 0,
        }
    }

    /// Data rows written so far (the header not counted).
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// Bytes of all complete records so far, header included. The
    /// destination holds exactly this many bytes once
    /// [`finish`](Self::finish) has returned.
    pub fn bytes_written(&self) -> u64 {
        match (&self.csv, &self.pending) {
            (Some(csv), _) => csv.get_ref().0.bytes_written(),
            (None, Some(out)) => out.bytes_written(),
            (None, None) => 0,
        }
    }

    /// Flushes everything to the destination (including the destination's
    /// own buffers) and returns it with what was written.
    pub fn finish(self) -> Result<(W, CsvStats), WriteError> {
        let rows = self.rows;
        let Some(csv) = self.csv else {
            return Err(WriteError::NotBegun("finishing the CSV"));
        };
        let mut out = csv
            .into_inner()
            .map_err(|e| WriteError::io("flushing the CSV", e.into_error()))?
            .0;
        out.flush()
            .map_err(|e| WriteError::io("flushing the CSV", e))?;
        let stats = CsvStats {
            rows,
            bytes: out.bytes_written(),
        };
        let writer = out
            .into_inner()
            .into_inner()
            .map_err(|e| WriteError::io("flushing the CSV", e.into_error()))?;
        Ok((writer, stats))
    }
}

impl<W: Write> RowSink for CsvSink<W> {
    type Error = WriteError;

    fn begin(&mut self, header: &[String], _expected_rows: usize) -> Result<(), WriteError> {
        let Some(mut out) = self.pending.take() else {
            return Err(WriteError::HeaderTwice);
        };
        if header.is_empty() {
            self.pending = Some(out);
            return Err(WriteError::EmptyHeader);
        }
        // Unquoted, a leading U+FEFF would be a byte order mark at the start
        // of the file, which readers strip along with the cell's character.
        let quote = if header[0].starts_with('\u{FEFF}') {
            csv::QuoteStyle::Always
        } else {
            csv::QuoteStyle::Necessary
        };
        let mut enc = builder(quote).from_writer(Vec::new());
        let encoded = enc
            .write_record(header)
            .and_then(|()| enc.into_inner().map_err(|e| e.into_error().into()))
            .map_err(|e| csv_error("the CSV header", e));
        let written = encoded.and_then(|bytes| {
            out.write_all(&bytes)
                .map_err(|e| WriteError::io("writing the CSV header", e))
        });
        if let Err(e) = written {
            self.pending = Some(out);
            return Err(e);
        }
        self.columns = header.len();
        self.csv = Some(builder(csv::QuoteStyle::Necessary).from_writer(SoftFlush(out)));
        Ok(())
    }

    fn row(&mut self, fields: &[String]) -> Result<(), WriteError> {
        let Some(csv) = self.csv.as_mut() else {
            return Err(WriteError::NotBegun("a CSV row"));
        };
        let row = self.rows + 1;
        if fields.len() != self.columns {
            return Err(WriteError::FieldCount {
                row,
                expected: self.columns,
                found: fields.len(),
            });
        }
        csv.write_record(fields)
            .map_err(|e| csv_error(&format!("CSV row {row}"), e))?;
        csv.flush()
            .map_err(|e| WriteError::io(format!("writing CSV row {row}"), e))?;
        self.rows = row;
        Ok(())
    }
}
