//! The report as Arrow: the core's typed schema mapped to an Arrow schema,
//! rows gathered into `RecordBatch`es a bounded number of rows at a time,
//! and the two file sinks built on them, Arrow IPC and (feature `parquet`)
//! Parquet with ZSTD.
//!
//! Column types: text → `Utf8` (never null: an empty field is `""`, as in
//! the CSV); Progress and unit progress → `Int64`; seed scores → `Float64`;
//! lern percentages → `Int64` (`70` for `70%`); lern dates → `Date32`; seed
//! timestamps → `Timestamp(Millisecond, <report zone>)`. Numbers, dates and
//! timestamps are null where the CSV field is empty. An enrolment date
//! stored as text we cannot parse (shown as stored in the CSV) is null.
//!
//! Metadata: each field carries `kind` (`static`, `unit_progress`,
//! `assessment_score`), `value_type`, and for static columns `column_key`,
//! for dynamic ones `content_id` and `content_name` (when the hierarchy names
//! it); the schema carries `collection_id`, `batch_id`, `layout`, `timezone`
//! and `built_at` (RFC 3339, passed in by the caller, never read from a
//! clock here).

use crate::counting::CountingWriter;
use crate::error::WriteError;
use arrow_array::builder::{
    Date32Builder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use exhaust_core::layout::ColumnKey;
use exhaust_core::report::{BatchPlan, BatchSummary, BuildError, ReportOptions, RowSink};
use exhaust_core::source::ReportSource;
use exhaust_core::typed::{ColumnKind, ReportSchema, SchemaColumn, Value, ValueType};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

/// Rows per `RecordBatch` unless set otherwise: memory for rows in flight
/// stays bounded by this, whatever the batch's size.
pub const DEFAULT_BATCH_ROWS: usize = 8_192;

/// The Arrow data type of a value type in the report's zone.
pub fn arrow_type(t: ValueType, timezone: &str) -> DataType {
    match t {
        ValueType::Text => DataType::Utf8,
        ValueType::Integer | ValueType::Percent => DataType::Int64,
        ValueType::Number => DataType::Float64,
        ValueType::Date => DataType::Date32,
        ValueType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some(timezone.into())),
    }
}

fn field(c: &SchemaColumn, timezone: &str) -> Field {
    let mut meta = HashMap::new();
    meta.insert("kind".to_owned(), c.kind.as_str().to_owned());
    meta.insert("value_type".to_owned(), c.value_type.as_str().to_owned());
    if let ColumnKind::Static(key) = c.kind {
        meta.insert("column_key".to_owned(), key.key().to_owned());
    }
    if let Some(id) = &c.content_id {
        meta.insert("content_id".to_owned(), id.as_str().to_owned());
    }
    if let Some(name) = &c.content_name {
        meta.insert("content_name".to_owned(), name.clone());
    }
    Field::new(
        c.name.clone(),
        arrow_type(c.value_type, timezone),
        c.value_type != ValueType::Text,
    )
    .with_metadata(meta)
}

/// The Arrow schema of a report, with its column and table metadata.
pub fn arrow_schema(schema: &ReportSchema, built_at: DateTime<Utc>) -> Schema {
    let tz = schema.timezone.to_string();
    let fields: Vec<Field> = schema.columns.iter().map(|c| field(c, &tz)).collect();
    let mut meta = HashMap::new();
    meta.insert(
        "collection_id".to_owned(),
        schema.collection_id.as_str().to_owned(),
    );
    meta.insert("batch_id".to_owned(), schema.batch_id.as_str().to_owned());
    meta.insert("layout".to_owned(), schema.layout.to_string());
    meta.insert("timezone".to_owned(), tz);
    meta.insert(
        "built_at".to_owned(),
        built_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    Schema::new_with_metadata(fields, meta)
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");

enum ColumnBuilder {
    Text(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Date(Date32Builder),
    Timestamp(TimestampMillisecondBuilder),
}

impl ColumnBuilder {
    fn new(t: ValueType, tz: &Arc<str>, rows: usize) -> Self {
        match t {
            ValueType::Text => Self::Text(StringBuilder::with_capacity(rows, rows * 16)),
            ValueType::Integer | ValueType::Percent => Self::Int(Int64Builder::with_capacity(rows)),
            ValueType::Number => Self::Float(Float64Builder::with_capacity(rows)),
            ValueType::Date => Self::Date(Date32Builder::with_capacity(rows)),
            ValueType::Timestamp => Self::Timestamp(
                TimestampMillisecondBuilder::with_capacity(rows).with_timezone(tz.clone()),
            ),
        }
    }

    fn push(&mut self, v: &Value) {
        match self {
            Self::Text(b) => match v {
                Value::Text(s) => b.append_value(s),
                Value::Empty => b.append_value(""),
                other => b.append_value(other.to_text()),
            },
            Self::Int(b) => match v {
                Value::Integer(i) => b.append_value(*i),
                Value::Percent(p) => b.append_value(i64::try_from(*p).unwrap_or(i64::MAX)),
                _ => b.append_null(),
            },
            Self::Float(b) => match v {
                Value::Number(x) => b.append_value(*x),
                Value::Integer(i) => b.append_value(*i as f64),
                _ => b.append_null(),
            },
            Self::Date(b) => match v {
                Value::Date(d) => b.append_value((*d - EPOCH).num_days() as i32),
                _ => b.append_null(),
            },
            Self::Timestamp(b) => match v {
                Value::Timestamp(t) => b.append_value(t.timestamp_millis()),
                _ => b.append_null(),
            },
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Text(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
            Self::Float(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            // `finish` keeps the builder's zone.
            Self::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// Gathers typed rows into `RecordBatch`es of the report's Arrow schema.
pub struct RecordBatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl std::fmt::Debug for RecordBatchBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatchBuilder")
            .field("columns", &self.columns.len())
            .field("rows", &self.rows)
            .finish()
    }
}

impl RecordBatchBuilder {
    /// A builder for `schema`, sized for `rows` rows per batch.
    pub fn new(schema: &ReportSchema, built_at: DateTime<Utc>, rows: usize) -> Self {
        let tz: Arc<str> = schema.timezone.to_string().into();
        Self {
            schema: Arc::new(arrow_schema(schema, built_at)),
            columns: schema
                .columns
                .iter()
                .map(|c| ColumnBuilder::new(c.value_type, &tz, rows))
                .collect(),
            rows: 0,
        }
    }

    /// The Arrow schema of the batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows gathered since the last batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was gathered since the last batch.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds a row; `values` has one value per column.
    pub fn push(&mut self, values: &[Value]) -> Result<(), WriteError> {
        if values.len() != self.columns.len() {
            return Err(WriteError::FieldCount {
                row: self.rows as u64 + 1,
                expected: self.columns.len(),
                found: values.len(),
            });
        }
        for (b, v) in self.columns.iter_mut().zip(values) {
            b.push(v);
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows gathered so far as one batch; the builder starts afresh.
    pub fn take(&mut self) -> Result<RecordBatch, WriteError> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| WriteError::encode("building an Arrow record batch", e))
    }
}

/// A [`RowSink`] handing the report to a callback as `RecordBatch`es of at
/// most `batch_rows` rows (the last one may be shorter; a report without
/// rows gives one empty batch, so the schema is always seen).
///
/// ```no_run
/// # async fn demo(source: exhaust_core::memory::MemorySource) -> Result<(), Box<dyn std::error::Error>> {
/// use exhaust_core::report::{ReportOptions, build_report};
/// use exhaust_writer::arrow::RecordBatchSink;
///
/// let mut batches = Vec::new();
/// let built_at = chrono::Utc::now();
/// let mut sink = RecordBatchSink::new(built_at, |b| {
///     batches.push(b);
///     Ok(())
/// });
/// let opts = ReportOptions::default();
/// build_report(&source, &"batch-001".into(), None, &opts, &mut sink).await?;
/// sink.finish()?;
/// # Ok(()) }
/// ```
pub struct RecordBatchSink<F> {
    built_at: DateTime<Utc>,
    batch_rows: usize,
    builder: Option<RecordBatchBuilder>,
    on_batch: F,
    rows: u64,
}

impl<F> std::fmt::Debug for RecordBatchSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatchSink")
            .field("batch_rows", &self.batch_rows)
            .field("rows", &self.rows)
            .finish()
    }
}

impl<F: FnMut(RecordBatch) -> Result<(), WriteError>> RecordBatchSink<F> {
    /// A sink calling `on_batch` with each batch; `built_at` goes into the
    /// schema's metadata.
    pub fn new(built_at: DateTime<Utc>, on_batch: F) -> Self {
        Self {
            built_at,
            batch_rows: DEFAULT_BATCH_ROWS,
            builder: None,
            on_batch,
            rows: 0,
        }
    }

    /// Rows per batch (at least 1).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// The Arrow schema, once begun.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.builder.as_ref().map(RecordBatchBuilder::schema)
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// Hands over the last batch; returns the number of rows.
    pub fn finish(mut self) -> Result<u64, WriteError> {
        let Some(b) = self.builder.as_mut() else {
            return Err(WriteError::NotBegun("finishing the record batches"));
        };
        // A report without rows still yields one (empty) batch.
        if !b.is_empty() || self.rows == 0 {
            let batch = b.take()?;
            (self.on_batch)(batch)?;
        }
        Ok(self.rows)
    }
}

impl<F: FnMut(RecordBatch) -> Result<(), WriteError>> RowSink for RecordBatchSink<F> {
    type Error = WriteError;

    fn begin(&mut self, _header: &[String], _expected_rows: usize) -> Result<(), WriteError> {
        Err(WriteError::NeedsTypedRows("Arrow"))
    }

    fn row(&mut self, _fields: &[String]) -> Result<(), WriteError> {
        Err(WriteError::NeedsTypedRows("Arrow"))
    }

    fn begin_typed(&mut self, schema: &ReportSchema, _expected: usize) -> Result<(), WriteError> {
        if self.builder.is_some() {
            return Err(WriteError::HeaderTwice);
        }
        if schema.columns.is_empty() {
            return Err(WriteError::EmptyHeader);
        }
        self.builder = Some(RecordBatchBuilder::new(
            schema,
            self.built_at,
            self.batch_rows,
        ));
        Ok(())
    }

    fn wants_typed_rows(&self) -> bool {
        true
    }

    fn typed_row(&mut self, values: &[Value]) -> Result<(), WriteError> {
        let Some(b) = self.builder.as_mut() else {
            return Err(WriteError::NotBegun("an Arrow row"));
        };
        b.push(values)?;
        self.rows += 1;
        if b.len() >= self.batch_rows {
            let batch = b.take()?;
            (self.on_batch)(batch)?;
        }
        Ok(())
    }
}

/// Builds a planned batch's report as `RecordBatch`es in memory: the
/// simplest way for an embedder to get the typed table. For large batches
/// prefer a [`RecordBatchSink`] that hands each batch on.
pub async fn build_record_batches<S: ReportSource>(
    sources: &S,
    plan: &BatchPlan,
    opts: &ReportOptions,
    built_at: DateTime<Utc>,
) -> Result<(Vec<RecordBatch>, BatchSummary), BuildError> {
    let mut batches = Vec::new();
    let mut sink = RecordBatchSink::new(built_at, |b| {
        batches.push(b);
        Ok(())
    });
    let summary = exhaust_core::report::build_rows(sources, plan, opts, &mut sink).await?;
    sink.finish().map_err(|e| BuildError::Sink(Box::new(e)))?;
    Ok((batches, summary))
}

/// What a finished typed file sink wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStats {
    /// Data rows.
    pub rows: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

enum Encoder<W: Write + Send> {
    Ipc(arrow_ipc::writer::FileWriter<CountingWriter<W>>),
    #[cfg(feature = "parquet")]
    Parquet(parquet::arrow::ArrowWriter<CountingWriter<W>>),
}

/// Which file format a [`TypedFileSink`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Arrow IPC file format (Feather v2), ZSTD-compressed buffers.
    ArrowIpc,
    /// Parquet, ZSTD, one row group per [`PARQUET_ROW_GROUP_ROWS`] rows.
    #[cfg(feature = "parquet")]
    Parquet,
}

/// Rows per Parquet row group: the writer holds one row group's encoded
/// pages in memory, so this bounds its memory whatever the batch's size.
#[cfg(feature = "parquet")]
pub const PARQUET_ROW_GROUP_ROWS: usize = 65_536;

/// A [`RowSink`] writing the report as an Arrow IPC or Parquet file, one
/// `RecordBatch` at a time, through a byte counter (the file's size is the
/// report's `fileSize`). Give it an [`AtomicFile`](crate::AtomicFile) so the
/// file appears only once complete.
pub struct TypedFileSink<W: Write + Send> {
    kind: FileKind,
    built_at: DateTime<Utc>,
    batch_rows: usize,
    pending: Option<W>,
    builder: Option<RecordBatchBuilder>,
    encoder: Option<Encoder<W>>,
    rows: u64,
}

impl<W: Write + Send> std::fmt::Debug for TypedFileSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedFileSink")
            .field("kind", &self.kind)
            .field("rows", &self.rows)
            .finish()
    }
}

impl<W: Write + Send> TypedFileSink<W> {
    /// A sink writing `kind` to `writer`; nothing is written before the
    /// schema. `built_at` goes into the file's metadata.
    pub fn new(kind: FileKind, writer: W, built_at: DateTime<Utc>) -> Self {
        Self {
            kind,
            built_at,
            batch_rows: DEFAULT_BATCH_ROWS,
            pending: Some(writer),
            builder: None,
            encoder: None,
            rows: 0,
        }
    }

    /// Rows per `RecordBatch` (at least 1).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Data rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    fn name(&self) -> &'static str {
        match self.kind {
            FileKind::ArrowIpc => "Arrow IPC",
            #[cfg(feature = "parquet")]
            FileKind::Parquet => "Parquet",
        }
    }

    fn flush_batch(&mut self) -> Result<(), WriteError> {
        let name = self.name();
        let (Some(b), Some(enc)) = (self.builder.as_mut(), self.encoder.as_mut()) else {
            return Err(WriteError::NotBegun("a typed row"));
        };
        let batch = b.take()?;
        match enc {
            Encoder::Ipc(w) => w.write(&batch).map_err(|e| (name, e.to_string())),
            #[cfg(feature = "parquet")]
            Encoder::Parquet(w) => w.write(&batch).map_err(|e| (name, e.to_string())),
        }
        .map_err(|(name, e)| WriteError::encode(format!("writing the {name} file"), e))
    }

    /// Writes the last rows and the file's footer, flushes, and returns the
    /// destination with what was written.
    pub fn finish(mut self) -> Result<(W, FileStats), WriteError> {
        let name = self.name();
        if self.encoder.is_none() {
            return Err(WriteError::NotBegun("finishing the file"));
        }
        if self.builder.as_ref().is_some_and(|b| !b.is_empty()) {
            self.flush_batch()?;
        }
        let fail = |e: String| WriteError::encode(format!("finishing the {name} file"), e);
        let mut out = match self.encoder.take() {
            Some(Encoder::Ipc(mut w)) => {
                w.finish().map_err(|e| fail(e.to_string()))?;
                w.into_inner().map_err(|e| fail(e.to_string()))?
            }
            #[cfg(feature = "parquet")]
            Some(Encoder::Parquet(w)) => w.into_inner().map_err(|e| fail(e.to_string()))?,
            None => return Err(WriteError::NotBegun("finishing the file")),
        };
        out.flush()
            .map_err(|e| WriteError::io(format!("flushing the {name} file"), e))?;
        let stats = FileStats {
            rows: self.rows,
            bytes: out.bytes_written(),
        };
        Ok((out.into_inner(), stats))
    }
}

impl<W: Write + Send> RowSink for TypedFileSink<W> {
    type Error = WriteError;

    fn begin(&mut self, _header: &[String], _expected_rows: usize) -> Result<(), WriteError> {
        Err(WriteError::NeedsTypedRows(self.name()))
    }

    fn row(&mut self, _fields: &[String]) -> Result<(), WriteError> {
        Err(WriteError::NeedsTypedRows(self.name()))
    }

    fn begin_typed(&mut self, schema: &ReportSchema, _expected: usize) -> Result<(), WriteError> {
        let name = self.name();
        let Some(writer) = self.pending.take() else {
            return Err(WriteError::HeaderTwice);
        };
        if schema.columns.is_empty() {
            return Err(WriteError::EmptyHeader);
        }
        let builder = RecordBatchBuilder::new(schema, self.built_at, self.batch_rows);
        let out = CountingWriter::new(writer);
        let fail = |e: String| WriteError::encode(format!("starting the {name} file"), e);
        let encoder = match self.kind {
            FileKind::ArrowIpc => {
                let options = arrow_ipc::writer::IpcWriteOptions::default()
                    .try_with_compression(Some(arrow_ipc::CompressionType::ZSTD))
                    .map_err(|e| fail(e.to_string()))?;
                Encoder::Ipc(
                    arrow_ipc::writer::FileWriter::try_new_with_options(
                        out,
                        builder.schema(),
                        options,
                    )
                    .map_err(|e| fail(e.to_string()))?,
                )
            }
            #[cfg(feature = "parquet")]
            FileKind::Parquet => {
                use parquet::basic::{Compression, ZstdLevel};
                use parquet::file::properties::WriterProperties;
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
                    .set_created_by(concat!("exhaust ", env!("CARGO_PKG_VERSION")).to_owned())
                    .build();
                Encoder::Parquet(
                    parquet::arrow::ArrowWriter::try_new(
                        out,
                        builder.schema().clone(),
                        Some(props),
                    )
                    .map_err(|e| fail(e.to_string()))?,
                )
            }
        };
        self.builder = Some(builder);
        self.encoder = Some(encoder);
        Ok(())
    }

    fn wants_typed_rows(&self) -> bool {
        true
    }

    fn typed_row(&mut self, values: &[Value]) -> Result<(), WriteError> {
        let Some(b) = self.builder.as_mut() else {
            return Err(WriteError::NotBegun("a typed row"));
        };
        b.push(values)?;
        self.rows += 1;
        if b.len() >= self.batch_rows {
            self.flush_batch()?;
        }
        Ok(())
    }
}

/// The static column key of a field, from its metadata.
pub fn column_key(field: &Field) -> Option<ColumnKey> {
    field.metadata().get("column_key")?.parse().ok()
}
