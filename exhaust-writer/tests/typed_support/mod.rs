//! Shared helpers of the typed-output tests: the report of a batch as CSV
//! cells and as typed values, Arrow batches rendered back to CSV text, and
//! the independent Python reader.
#![allow(dead_code, missing_docs)]

use exhaust_core::layout::Layout;
use exhaust_core::report::{BatchPlan, ReportOptions, RowSink, build_rows, plan_batch};
use exhaust_core::source::ReportSource;
use exhaust_core::time::{ReportTz, format_lern_date, format_seed_timestamp};
use exhaust_core::typed::{ReportSchema, Value, ValueType};
use exhaust_core::{BatchId, OrgId};
use exhaust_writer::CsvSink;
use proptest::prelude::*;
use std::convert::Infallible;
use std::path::Path;
use std::process::Command;

/// Either layout, with report zones of both signs, named and fixed.
pub fn layout_and_zone() -> impl Strategy<Value = (Layout, &'static str)> {
    (
        prop_oneof![Just(Layout::Seed), Just(Layout::Lern)],
        prop_oneof![
            Just("UTC"),
            Just("+05:30"),
            Just("-03:00"),
            Just("Asia/Kolkata"),
            Just("America/New_York")
        ],
    )
}

/// Collects the typed rows and the schema.
#[derive(Debug, Default)]
pub struct TypedCollector {
    pub schema: Option<ReportSchema>,
    pub rows: Vec<Vec<Value>>,
}

impl RowSink for TypedCollector {
    type Error = Infallible;
    fn begin(&mut self, _h: &[String], _n: usize) -> Result<(), Infallible> {
        unreachable!("typed sinks are begun with the schema")
    }
    fn row(&mut self, _f: &[String]) -> Result<(), Infallible> {
        unreachable!("typed sinks get typed rows")
    }
    fn begin_typed(&mut self, schema: &ReportSchema, _n: usize) -> Result<(), Infallible> {
        self.schema = Some(schema.clone());
        Ok(())
    }
    fn wants_typed_rows(&self) -> bool {
        true
    }
    fn typed_row(&mut self, values: &[Value]) -> Result<(), Infallible> {
        self.rows.push(values.to_vec());
        Ok(())
    }
}

/// A batch's report: the CSV's bytes and cells, the typed rows, the plan.
pub struct Report {
    pub csv: Vec<u8>,
    pub header: Vec<String>,
    pub cells: Vec<Vec<String>>,
    pub schema: ReportSchema,
    pub typed: Vec<Vec<Value>>,
    pub plan: BatchPlan,
}

pub fn opts(layout: Layout, tz: &str) -> ReportOptions {
    ReportOptions {
        layout,
        timezone: tz.parse().expect("zone"),
        chunk_size: 3,
        ..ReportOptions::default()
    }
}

/// Builds the CSV (through the real CSV sink) and the typed rows of a batch.
pub async fn report<S: ReportSource>(
    src: &S,
    batch: &str,
    org: Option<&str>,
    opts: &ReportOptions,
) -> Report {
    let org = org.map(OrgId::new);
    let plan = plan_batch(src, &BatchId::new(batch), org.as_ref(), opts)
        .await
        .expect("plans");
    let mut csv = CsvSink::new(Vec::new());
    build_rows(src, &plan, opts, &mut csv).await.expect("CSV");
    let (csv, _) = csv.finish().expect("finishes");
    let mut typed = TypedCollector::default();
    build_rows(src, &plan, opts, &mut typed)
        .await
        .expect("typed");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_slice());
    let mut records = reader
        .records()
        .map(|r| r.expect("CSV record").iter().map(str::to_owned).collect());
    let header: Vec<String> = records.next().expect("header");
    let cells: Vec<Vec<String>> = records.collect();
    Report {
        csv,
        header,
        cells,
        schema: typed.schema.expect("schema"),
        typed: typed.rows,
        plan,
    }
}

impl Report {
    /// The CSV cell a typed format holds, as CSV text: the CSV's own cell,
    /// except that a date column's unparseable text (kept in the CSV as
    /// stored) is null, so empty, in Arrow and Parquet.
    pub fn expected_arrow_text(&self) -> Vec<Vec<String>> {
        self.cells
            .iter()
            .zip(&self.typed)
            .map(|(row, values)| {
                row.iter()
                    .zip(values)
                    .zip(&self.schema.columns)
                    .map(|((cell, v), c)| match v {
                        Value::Text(_) if c.value_type != ValueType::Text => String::new(),
                        _ => cell.clone(),
                    })
                    .collect()
            })
            .collect()
    }

    /// Checks the typed rows render to exactly the CSV cells.
    pub fn assert_csv_is_the_typed_rows(&self) {
        assert_eq!(self.header, self.schema.header);
        assert_eq!(self.cells.len(), self.typed.len());
        for (row, values) in self.cells.iter().zip(&self.typed) {
            let text: Vec<String> = values.iter().map(Value::to_text).collect();
            assert_eq!(row, &text);
        }
    }
}

/// Renders one cell of an Arrow column as the CSV shows it.
pub fn arrow_cell_text(
    array: &dyn arrow_array::Array,
    row: usize,
    value_type: ValueType,
    tz: ReportTz,
) -> String {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMillisecondType};
    if array.is_null(row) {
        return String::new();
    }
    let mut out = String::new();
    match value_type {
        ValueType::Text => out.push_str(array.as_string::<i32>().value(row)),
        ValueType::Integer => out = array.as_primitive::<Int64Type>().value(row).to_string(),
        ValueType::Percent => {
            out = format!("{}%", array.as_primitive::<Int64Type>().value(row));
        }
        ValueType::Number => out = array.as_primitive::<Float64Type>().value(row).to_string(),
        ValueType::Date => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                + chrono::Duration::days(i64::from(days));
            format_lern_date(d, &mut out);
        }
        ValueType::Timestamp => {
            let ms = array.as_primitive::<TimestampMillisecondType>().value(row);
            let t = chrono::DateTime::from_timestamp_millis(ms).expect("instant");
            format_seed_timestamp(t, tz, &mut out);
        }
    }
    out
}

/// Record batches rendered back to CSV text, row by row.
pub fn batches_text(
    batches: &[arrow_array::RecordBatch],
    schema: &ReportSchema,
) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in batches {
        assert_eq!(b.num_columns(), schema.columns.len());
        for r in 0..b.num_rows() {
            rows.push(
                schema
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| arrow_cell_text(b.column(i), r, c.value_type, schema.timezone))
                    .collect(),
            );
        }
    }
    rows
}

/// Runs the independent reader on a file; fails (never skips) when Python
/// or its packages are missing.
pub fn python_read(kind: &str, file: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_typed.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(kind)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 cannot run ({e}): install Python 3 with pyarrow and openpyxl")
        });
    assert!(
        out.status.success(),
        "the Python reader failed on {} (CI needs `pip install pyarrow openpyxl`): {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the reader prints JSON")
}

/// A JSON cell from pyarrow rendered as the CSV shows it.
pub fn py_cell_text(v: &serde_json::Value, value_type: ValueType, tz: ReportTz) -> String {
    use serde_json::Value as J;
    let mut out = String::new();
    match (v, value_type) {
        (J::Null, _) => {}
        (J::String(s), ValueType::Text) => out.push_str(s),
        (J::Number(n), ValueType::Integer) => out = n.as_i64().expect("integer").to_string(),
        (J::Number(n), ValueType::Percent) => out = format!("{}%", n.as_i64().expect("integer")),
        (J::Number(n), ValueType::Number) => out = n.as_f64().expect("number").to_string(),
        (J::String(s), ValueType::Date) => {
            let d: chrono::NaiveDate = s.parse().expect("ISO date");
            format_lern_date(d, &mut out);
        }
        (J::Number(n), ValueType::Timestamp) => {
            let t =
                chrono::DateTime::from_timestamp_millis(n.as_i64().expect("ms")).expect("instant");
            format_seed_timestamp(t, tz, &mut out);
        }
        (other, t) => panic!("a {t:?} column holds {other}"),
    }
    out
}

/// The expected pyarrow type of a value type.
pub fn py_type(t: ValueType, tz: ReportTz) -> String {
    match t {
        ValueType::Text => "string".into(),
        ValueType::Integer | ValueType::Percent => "int64".into(),
        ValueType::Number => "double".into(),
        ValueType::Date => "date32[day]".into(),
        ValueType::Timestamp => format!("timestamp[ms, tz={tz}]"),
    }
}

/// Checks a pyarrow dump against the report: schema, metadata and every cell.
pub fn assert_py_table(dump: &serde_json::Value, report: &Report, built_at: &str) {
    let schema = &report.schema;
    let meta = &dump["schema"]["metadata"];
    assert_eq!(meta["collection_id"], schema.collection_id.as_str());
    assert_eq!(meta["batch_id"], schema.batch_id.as_str());
    assert_eq!(meta["layout"], schema.layout.to_string());
    assert_eq!(meta["built_at"], built_at);
    assert_eq!(meta["timezone"], schema.timezone.to_string());
    let fields = dump["schema"]["fields"].as_array().expect("fields");
    assert_eq!(fields.len(), schema.columns.len());
    for (f, c) in fields.iter().zip(&schema.columns) {
        assert_eq!(f["name"], c.name.as_str());
        assert_eq!(
            f["type"],
            py_type(c.value_type, schema.timezone),
            "{}",
            c.name
        );
        assert_eq!(f["metadata"]["kind"], c.kind.as_str());
        assert_eq!(f["metadata"]["value_type"], c.value_type.as_str());
        match &c.content_id {
            Some(id) => assert_eq!(f["metadata"]["content_id"], id.as_str()),
            None => assert!(f["metadata"].get("content_id").is_none()),
        }
        match &c.content_name {
            Some(n) => assert_eq!(f["metadata"]["content_name"], n.as_str()),
            None => assert!(f["metadata"].get("content_name").is_none()),
        }
    }
    let rows = dump["rows"].as_array().expect("rows");
    let expected = report.expected_arrow_text();
    assert_eq!(rows.len(), expected.len());
    for (i, (row, want)) in rows.iter().zip(&expected).enumerate() {
        let got: Vec<String> = row
            .as_array()
            .expect("row")
            .iter()
            .zip(&schema.columns)
            .map(|(v, c)| py_cell_text(v, c.value_type, schema.timezone))
            .collect();
        assert_eq!(&got, want, "row {i}");
    }
}
