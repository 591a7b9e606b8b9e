//! The report as an Excel workbook (`.xlsx`), with `rust_xlsxwriter`.
//!
//! Ids and every other text are text cells (so a batch id never turns into
//! `1.3E+17`); Progress, unit progress and seed scores are numbers; lern
//! percentages are numbers shown as `70%` (the cell holds 0.7); lern dates
//! are dates (`dd/mm/yyyy`) and seed timestamps date-times in the report's
//! zone (`yyyy-mm-dd hh:mm:ss.000`; Excel has no time zones). Empty fields
//! are blank cells. The header is bold, frozen and filterable; columns get
//! a readable width from their header and type. The XML is UTF-8, so every
//! script shows as it is.
//!
//! Memory: the worksheets are written in `rust_xlsxwriter`'s constant-memory
//! mode, each row going to a temporary file as it is written; only the
//! current row is held. Excel has no shared strings table in this mode
//! (strings are inline), which Excel and openpyxl read alike.
//!
//! A sheet holds at most 1,048,576 rows: a larger report continues on
//! further sheets (`Progress`, `Progress 2`, ...) with the header repeated,
//! never truncated.

use crate::counting::CountingWriter;
use crate::error::WriteError;
use exhaust_core::layout::ColumnKey;
use exhaust_core::report::RowSink;
use exhaust_core::typed::{ColumnKind, ReportSchema, Value, ValueType};
use rust_xlsxwriter::{Format, FormatAlign, Workbook, Worksheet, XlsxError};
use std::io::Write;

/// Excel's row limit per worksheet, the header included.
pub const EXCEL_MAX_ROWS: u32 = 1_048_576;

/// The name of the first sheet; further sheets are `Progress 2`, ...
pub const SHEET_NAME: &str = "Progress";

fn xlsx_error(action: &str, e: XlsxError) -> WriteError {
    WriteError::encode(format!("{action} (xlsx)"), e)
}

struct Formats {
    header: Format,
    date: Format,
    timestamp: Format,
    percent: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: Format::new().set_bold().set_align(FormatAlign::Center),
            date: Format::new().set_num_format("dd/mm/yyyy"),
            timestamp: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss.000"),
            percent: Format::new().set_num_format("0%"),
        }
    }
}

/// A [`RowSink`] writing the report as an Excel workbook to `W`.
///
/// The workbook is assembled from its temporary sheet files and written to
/// the destination by [`finish`](Self::finish).
pub struct XlsxSink<W: Write + Send> {
    writer: Option<W>,
    workbook: Workbook,
    formats: Formats,
    schema: Option<ReportSchema>,
    /// Data rows per sheet (the header row not counted).
    sheet_rows: u32,
    sheets: usize,
    /// Data rows on the current sheet.
    row_in_sheet: u32,
    rows: u64,
}

impl<W: Write + Send> std::fmt::Debug for XlsxSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlsxSink")
            .field("sheets", &self.sheets)
            .field("rows", &self.rows)
            .finish()
    }
}

/// What a finished [`XlsxSink`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XlsxStats {
    /// Data rows, over all sheets.
    pub rows: u64,
    /// Worksheets.
    pub sheets: usize,
    /// Bytes of the workbook.
    pub bytes: u64,
}

impl<W: Write + Send> XlsxSink<W> {
    /// A sink writing the workbook to `writer` on [`finish`](Self::finish).
    pub fn new(writer: W) -> Self {
        Self {
            writer: Some(writer),
            workbook: Workbook::new(),
            formats: Formats::new(),
            schema: None,
            sheet_rows: EXCEL_MAX_ROWS - 1,
            sheets: 0,
            row_in_sheet: 0,
            rows: 0,
        }
    }

    /// At most `rows` data rows per sheet (between 1 and Excel's limit less
    /// the header); for tests of the sheet split.
    pub fn with_sheet_rows(mut self, rows: u32) -> Self {
        self.sheet_rows = rows.clamp(1, EXCEL_MAX_ROWS - 1);
        self
    }

    /// Where the sheets' temporary files go (default: the system's).
    pub fn with_tempdir(mut self, dir: &std::path::Path) -> Result<Self, WriteError> {
        self.workbook
            .set_tempdir(dir)
            .map_err(|e| xlsx_error("setting the temporary folder", e))?;
        Ok(self)
    }

    /// Data rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    fn sheet(&mut self) -> Result<&mut Worksheet, WriteError> {
        self.workbook
            .worksheet_from_index(self.sheets.saturating_sub(1))
            .map_err(|e| xlsx_error("finding the current sheet", e))
    }

    /// Ends the current sheet: its filter covers the rows it got.
    fn close_sheet(&mut self) -> Result<(), WriteError> {
        let Some(cols) = self.schema.as_ref().map(|s| s.columns.len()) else {
            return Ok(());
        };
        let last_row = self.row_in_sheet;
        let last_col = col_num(cols.saturating_sub(1))?;
        self.sheet()?
            .autofilter(0, 0, last_row, last_col)
            .map_err(|e| xlsx_error("setting the header filter", e))?;
        Ok(())
    }

    fn open_sheet(&mut self) -> Result<(), WriteError> {
        let Some(schema) = self.schema.as_ref() else {
            return Err(WriteError::NotBegun("an xlsx sheet"));
        };
        let name = match self.sheets {
            0 => SHEET_NAME.to_owned(),
            n => format!("{SHEET_NAME} {}", n + 1),
        };
        let widths: Vec<f64> = schema.columns.iter().map(width).collect();
        let header = schema.header.clone();
        let ws = self
            .workbook
            .add_worksheet_with_constant_memory()
            .map_err(|e| xlsx_error("adding a sheet", e))?;
        self.sheets += 1;
        self.row_in_sheet = 0;
        ws.set_name(name)
            .map_err(|e| xlsx_error("naming a sheet", e))?;
        for (i, w) in widths.into_iter().enumerate() {
            ws.set_column_width(col_num(i)?, w)
                .map_err(|e| xlsx_error("setting a column width", e))?;
        }
        for (i, h) in header.iter().enumerate() {
            ws.write_string_with_format(0, col_num(i)?, h, &self.formats.header)
                .map_err(|e| xlsx_error("writing the header", e))?;
        }
        ws.set_freeze_panes(1, 0)
            .map_err(|e| xlsx_error("freezing the header", e))?;
        Ok(())
    }

    /// Writes the workbook to the destination and returns it with what was
    /// written.
    pub fn finish(mut self) -> Result<(W, XlsxStats), WriteError> {
        if self.schema.is_none() {
            return Err(WriteError::NotBegun("finishing the workbook"));
        }
        self.close_sheet()?;
        let Some(writer) = self.writer.take() else {
            return Err(WriteError::NotBegun("finishing the workbook"));
        };
        let mut out = CountingWriter::new(writer);
        self.workbook
            .save_to_writer(&mut out)
            .map_err(|e| xlsx_error("writing the workbook", e))?;
        out.flush()
            .map_err(|e| WriteError::io("flushing the workbook", e))?;
        let stats = XlsxStats {
            rows: self.rows,
            sheets: self.sheets,
            bytes: out.bytes_written(),
        };
        Ok((out.into_inner(), stats))
    }
}

fn col_num(i: usize) -> Result<u16, WriteError> {
    u16::try_from(i).map_err(|_| WriteError::encode("too many columns", "xlsx allows 16,384"))
}

/// A readable width (in characters) from the header and the column's type.
fn width(c: &exhaust_core::typed::SchemaColumn) -> f64 {
    let by_type = match (c.kind, c.value_type) {
        (ColumnKind::Static(ColumnKey::UserId | ColumnKey::CourseId), _) => 38,
        (_, ValueType::Timestamp) => 24,
        (_, ValueType::Date) => 12,
        (_, ValueType::Text) => 20,
        _ => 10,
    };
    let header = c.name.chars().count() + 2;
    header.max(by_type).min(60) as f64
}

impl<W: Write + Send> RowSink for XlsxSink<W> {
    type Error = WriteError;

    fn begin(&mut self, _header: &[String], _expected_rows: usize) -> Result<(), WriteError> {
        Err(WriteError::NeedsTypedRows("xlsx"))
    }

    fn row(&mut self, _fields: &[String]) -> Result<(), WriteError> {
        Err(WriteError::NeedsTypedRows("xlsx"))
    }

    fn begin_typed(&mut self, schema: &ReportSchema, _expected: usize) -> Result<(), WriteError> {
        if self.schema.is_some() {
            return Err(WriteError::HeaderTwice);
        }
        if schema.columns.is_empty() {
            return Err(WriteError::EmptyHeader);
        }
        col_num(schema.columns.len())?;
        self.schema = Some(schema.clone());
        self.open_sheet()
    }

    fn wants_typed_rows(&self) -> bool {
        true
    }

    fn typed_row(&mut self, values: &[Value]) -> Result<(), WriteError> {
        let Some(expected) = self.schema.as_ref().map(|s| s.columns.len()) else {
            return Err(WriteError::NotBegun("an xlsx row"));
        };
        if values.len() != expected {
            return Err(WriteError::FieldCount {
                row: self.rows + 1,
                expected,
                found: values.len(),
            });
        }
        if self.row_in_sheet >= self.sheet_rows {
            self.close_sheet()?;
            self.open_sheet()?;
        }
        let r = self.row_in_sheet + 1;
        let idx = self.sheets.saturating_sub(1);
        let ws = self
            .workbook
            .worksheet_from_index(idx)
            .map_err(|e| xlsx_error("finding the current sheet", e))?;
        let f = &self.formats;
        for (i, v) in values.iter().enumerate() {
            let c = col_num(i)?;
            let written = match v {
                Value::Empty => continue,
                Value::Text(s) if s.is_empty() => continue,
                Value::Text(s) => ws.write_string(r, c, s.as_str()),
                Value::Integer(n) => ws.write_number(r, c, *n as f64),
                Value::Number(x) => ws.write_number(r, c, *x),
                Value::Percent(p) => {
                    ws.write_number_with_format(r, c, *p as f64 / 100.0, &f.percent)
                }
                Value::Date(d) => ws.write_datetime_with_format(r, c, *d, &f.date),
                Value::Timestamp(t) => {
                    ws.write_datetime_with_format(r, c, t.naive_local(), &f.timestamp)
                }
            };
            written.map_err(|e| xlsx_error("writing a cell", e))?;
        }
        self.row_in_sheet = r;
        self.rows += 1;
        Ok(())
    }
}
