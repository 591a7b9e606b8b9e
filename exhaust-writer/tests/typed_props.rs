//! For arbitrary inputs every format holds the same table: the typed rows
//! render to the CSV's cells; Arrow record batches, and the Parquet and
//! Arrow IPC files read back in Rust, render to the same cells (proptest).
#![cfg(all(feature = "arrow", feature = "parquet"))]

use exhaust_core::testing as common;
mod typed_support;

use common::{block_on, ts};
use exhaust_core::invariants::check_report;
use exhaust_core::report::build_rows;
use exhaust_core::strategies::batch_source;
use exhaust_writer::arrow::{FileKind, RecordBatchSink, TypedFileSink};
use proptest::prelude::*;
use typed_support::*;

fn read_parquet(bytes: Vec<u8>) -> Vec<arrow_array::RecordBatch> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .expect("a Parquet file")
    .build()
    .expect("a reader");
    reader.map(|b| b.expect("a batch")).collect()
}

fn read_ipc(bytes: Vec<u8>) -> Vec<arrow_array::RecordBatch> {
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .expect("an Arrow IPC file");
    reader.map(|b| b.expect("a batch")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_format_holds_the_csv_table(
        data in batch_source(0..20),
        (layout, tz) in layout_and_zone(),
        batch_rows in 1usize..9,
    ) {
        let src = &data.source;
        let opts = opts(layout, tz);
        let built_at = ts("2024-01-15T10:00:00Z");
        let report = block_on(report(src, data.batch_id.as_str(), None, &opts));
        report.assert_csv_is_the_typed_rows();
        // The CSV file itself keeps the report's invariants.
        let table = exhaust_core::invariants::read_csv(&report.csv).map_err(|v| TestCaseError::fail(v.to_string()))?;
        check_report(&table, &report.plan, src).map_err(|v| TestCaseError::fail(v.to_string()))?;
        let expected = report.expected_arrow_text();

        let mut batches = Vec::new();
        let mut sink = RecordBatchSink::new(built_at, |b| {
            batches.push(b);
            Ok(())
        })
        .with_batch_rows(batch_rows);
        block_on(build_rows(src, &report.plan, &opts, &mut sink)).expect("builds");
        let rows = sink.finish().expect("finishes");
        prop_assert_eq!(rows as usize, report.cells.len());
        prop_assert_eq!(&batches_text(&batches, &report.schema), &expected);

        for kind in [FileKind::Parquet, FileKind::ArrowIpc] {
            let mut sink = TypedFileSink::new(kind, Vec::new(), built_at).with_batch_rows(batch_rows);
            block_on(build_rows(src, &report.plan, &opts, &mut sink)).expect("builds");
            let (bytes, stats) = sink.finish().expect("finishes");
            prop_assert_eq!(stats.bytes as usize, bytes.len());
            let back = match kind {
                FileKind::Parquet => read_parquet(bytes),
                FileKind::ArrowIpc => read_ipc(bytes),
            };
            let names: Vec<String> = back
                .first()
                .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
                .unwrap_or_else(|| report.header.clone());
            prop_assert_eq!(&names, &report.header);
            prop_assert_eq!(&batches_text(&back, &report.schema), &expected);
        }
    }
}
