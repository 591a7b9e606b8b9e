//! Excel workbooks hold the CSV's table, read back by openpyxl (through
//! `tests/read_typed.py`): ids as text, numbers as numbers, dates as dates,
//! names in Devanagari and Tamil intact, the header frozen and filterable,
//! and a report longer than a sheet continued on further sheets; and, for
//! arbitrary batches from the public strategies, the same table as the CSV.
#![cfg(feature = "xlsx")]

use exhaust_core::testing as common;
mod typed_support;

use exhaust_core::layout::Layout;
use exhaust_core::memory::MemorySource;
use exhaust_core::model::UserEntry;
use exhaust_core::report::{ReportOptions, build_rows};
use exhaust_core::strategies::batch_source;
use exhaust_core::typed::{ReportSchema, ValueType};
use exhaust_core::{BatchId, UserId};
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::AtomicFile;
use exhaust_writer::xlsx::{SHEET_NAME, XlsxSink};
use proptest::prelude::*;
use serde_json::Value as J;
use std::path::Path;
use typed_support::*;

/// A long numeric batch id: what Excel mangles into `1.3E+17` from a CSV.
const NUMERIC_BATCH: &str = "0130934495109529600";

/// The core fixture, its batch `b1` also under a numeric id, and learners
/// named in Devanagari, Tamil and with CSV- and XML-hostile characters.
fn source() -> MemorySource {
    let mut src = common::fixture();
    let mut b = src.batches[&BatchId::new("b1")].clone();
    b.batch_id = BatchId::new(NUMERIC_BATCH);
    src.batches.insert(b.batch_id.clone(), b);
    let copies: Vec<_> = src
        .enrolments
        .iter()
        .filter(|e| e.batch_id.as_str() == "b1")
        .cloned()
        .map(|mut e| {
            e.batch_id = BatchId::new(NUMERIC_BATCH);
            e
        })
        .collect();
    src.enrolments.extend(copies);
    let names = [
        ("अनन्या", "शर्मा"),
        ("தமிழ்செல்வி", "முருகன்"),
        ("Doe, \"Jo\"", "O'Neil"),
        // A line break with a carriage return (escaped in the workbook as
        // `_x000D_`), and that escape as literal text (which must stay text).
        ("Line\r\nBreak", "_x000D_ as typed"),
    ];
    let mut ids: Vec<UserId> = src.users.keys().cloned().collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    for (id, (first, last)) in ids.iter().zip(names.iter().cycle()) {
        if let Some(UserEntry::Profile(p)) = src.users.get_mut(id) {
            p.set("firstname", (*first).into());
            p.set("lastname", (*last).into());
        }
    }
    src
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// An openpyxl cell as the CSV shows it, checking its Excel type.
fn xlsx_cell_text(cell: &J, value_type: ValueType, offset: &str, column: &str) -> String {
    let t = cell["t"].as_str().expect("type");
    let v = &cell["v"];
    match (t, value_type) {
        ("blank", _) => String::new(),
        ("str", _) => v.as_str().expect("text").to_owned(),
        ("number", ValueType::Integer) => {
            format!("{}", v.as_f64().expect("number") as i64)
        }
        ("number", ValueType::Number) => v.as_f64().expect("number").to_string(),
        ("number", ValueType::Percent) => {
            assert_eq!(cell["f"], "0%", "{column}: a percentage is shown as one");
            format!("{}%", (v.as_f64().expect("number") * 100.0).round() as i64)
        }
        ("datetime", ValueType::Date) => {
            assert_eq!(cell["f"], "dd/mm/yyyy", "{column}");
            let s = v.as_str().expect("datetime");
            let d: chrono::NaiveDate = s[..10].parse().expect("date");
            d.format("%d/%m/%Y").to_string()
        }
        ("datetime", ValueType::Timestamp) => {
            // Excel has no zone: the local time, then the CSV's offset.
            let s = v.as_str().expect("datetime");
            format!("{}:{}{offset}", &s[..19], &s[20..23])
        }
        (t, vt) => panic!("{column}: an Excel {t} cell in a {vt:?} column"),
    }
}

fn assert_workbook(dump: &J, report: &Report, sheet_rows: usize) {
    let schema: &ReportSchema = &report.schema;
    let sheets = dump["sheets"].as_array().expect("sheets");
    let expected_sheets = report.cells.len().div_ceil(sheet_rows).max(1);
    assert_eq!(
        sheets.len(),
        expected_sheets,
        "one sheet per {sheet_rows} rows"
    );
    let mut rows = Vec::new();
    for (i, sheet) in sheets.iter().enumerate() {
        let name = if i == 0 {
            SHEET_NAME.to_owned()
        } else {
            format!("{SHEET_NAME} {}", i + 1)
        };
        assert_eq!(sheet["name"], name.as_str());
        assert_eq!(sheet["freeze"], "A2", "the header is frozen");
        let sheet_rows_got = sheet["rows"].as_array().expect("rows");
        let filter = sheet["filter"].as_str().expect("a header filter");
        assert!(
            filter.starts_with("A1:") && filter.ends_with(&sheet_rows_got.len().to_string()),
            "{filter}"
        );
        let header: Vec<&str> = sheet_rows_got[0]
            .as_array()
            .expect("header")
            .iter()
            .map(|c| c["v"].as_str().expect("header text"))
            .collect();
        assert_eq!(header, report.header, "the header on every sheet");
        rows.extend(sheet_rows_got[1..].iter().cloned());
    }
    assert_eq!(rows.len(), report.cells.len(), "no row lost or repeated");
    for (r, (row, want)) in rows.iter().zip(&report.cells).enumerate() {
        let row = row.as_array().expect("row");
        for (c, col) in schema.columns.iter().enumerate() {
            let cell = row
                .get(c)
                .cloned()
                .unwrap_or(serde_json::json!({"t": "blank"}));
            let offset = &want[c].get(want[c].len().saturating_sub(5)..).unwrap_or("");
            let got = xlsx_cell_text(&cell, col.value_type, offset, &col.name);
            assert_eq!(got, want[c], "row {r}, {}", col.name);
            if col.value_type == ValueType::Text && !want[c].is_empty() {
                assert_eq!(cell["t"], "str", "{} is text", col.name);
            }
        }
    }
}

async fn write_xlsx(
    src: &MemorySource,
    report: &Report,
    opts: &ReportOptions,
    path: &Path,
    sheet_rows: u32,
) {
    let file = AtomicFile::create(path).expect("temp");
    let mut sink = XlsxSink::new(file).with_sheet_rows(sheet_rows);
    build_rows(src, &report.plan, opts, &mut sink)
        .await
        .expect("builds");
    let (file, stats) = sink.finish().expect("finishes");
    let path = file.commit().expect("commit");
    assert_eq!(stats.rows as usize, report.cells.len());
    assert_eq!(stats.bytes, std::fs::metadata(path).expect("file").len());
}

#[test]
fn workbooks_hold_the_csv_table_with_ids_as_text_and_every_script() {
    let src = source();
    let dir = tempfile::tempdir().expect("dir");
    rt().block_on(async {
        for layout in [Layout::Seed, Layout::Lern] {
            for tz in ["UTC", "+05:30"] {
                let opts = opts(layout, tz);
                let report = report(&src, NUMERIC_BATCH, None, &opts).await;
                report.assert_csv_is_the_typed_rows();
                let path = dir.path().join(format!("{layout}-{}.xlsx", tz.len()));
                write_xlsx(&src, &report, &opts, &path, 1_048_575).await;
                let dump = python_read("xlsx", &path);
                assert_workbook(&dump, &report, 1_048_575);

                // The numeric batch id is text, the names are intact.
                let text = dump.to_string();
                for name in ["अनन्या शर्मा", "தமிழ்செல்வி முருகன்"]
                {
                    assert!(
                        text.contains(name) || layout == Layout::Lern,
                        "{name} in the seed layout's User Name"
                    );
                }
                let batch_col = report
                    .header
                    .iter()
                    .position(|h| h == "Batch Id")
                    .expect("Batch Id");
                let first = &dump["sheets"][0]["rows"][1][batch_col];
                assert_eq!(first["t"], "str");
                assert!(first["v"].as_str().expect("id").ends_with(NUMERIC_BATCH));
            }
        }
    });
}

#[test]
fn a_report_longer_than_a_sheet_continues_on_further_sheets() {
    let src = source();
    let dir = tempfile::tempdir().expect("dir");
    rt().block_on(async {
        let opts = opts(Layout::Seed, "UTC");
        let report = report(&src, NUMERIC_BATCH, None, &opts).await;
        assert!(report.cells.len() >= 3, "enough rows to split");
        for per_sheet in [1usize, 2] {
            let path = dir.path().join(format!("split-{per_sheet}.xlsx"));
            write_xlsx(&src, &report, &opts, &path, per_sheet as u32).await;
            let dump = python_read("xlsx", &path);
            assert_workbook(&dump, &report, per_sheet);
        }
    });
}

#[test]
fn the_bundled_sample_as_a_workbook() {
    let snap = Snapshot::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-snapshot"),
        SnapshotOptions::default(),
    )
    .expect("sample");
    let dir = tempfile::tempdir().expect("dir");
    rt().block_on(async {
        for layout in [Layout::Seed, Layout::Lern] {
            let opts = opts(layout, "+05:30");
            let report = report(&snap, "0135742803756164562", None, &opts).await;
            let path = dir.path().join(format!("sample-{layout}.xlsx"));
            let file = AtomicFile::create(&path).expect("temp");
            let mut sink = XlsxSink::new(file).with_sheet_rows(7);
            build_rows(&snap, &report.plan, &opts, &mut sink)
                .await
                .expect("builds");
            let (file, _) = sink.finish().expect("finishes");
            file.commit().expect("commit");
            assert_workbook(&python_read("xlsx", &path), &report, 7);
        }
    });
}

proptest! {
    // Each case starts Python to read the workbook: few cases, many shapes.
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Every output format holds the same table (issue #15): the workbook
    /// of any generated batch, in either layout and zone, split at any
    /// sheet size, reads back as the CSV's cells.
    #[test]
    fn every_generated_workbook_holds_the_csv_table(
        data in batch_source(0..15),
        (layout, tz) in layout_and_zone(),
        sheet_rows in 1usize..6,
    ) {
        let opts = opts(layout, tz);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("report.xlsx");
        rt().block_on(async {
            let report = report(&data.source, data.batch_id.as_str(), None, &opts).await;
            report.assert_csv_is_the_typed_rows();
            write_xlsx(&data.source, &report, &opts, &path, sheet_rows as u32).await;
            assert_workbook(&python_read("xlsx", &path), &report, sheet_rows);
        });
    }
}
