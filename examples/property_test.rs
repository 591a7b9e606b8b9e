//! A property test an embedder would write: its own code (here a sink that
//! writes each row as a JSON object, as a service might feed a search
//! index) checked against the library's on arbitrary, valid Sunbird data.
//!
//! The data comes from `exhaust_core::strategies` (cargo feature
//! `proptest`: `exhaust-core = { ..., features = ["proptest"] }` among the
//! dev-dependencies); the report's invariants from
//! `exhaust_core::invariants`.
//!
//! ```text
//! cargo test -p exhaust-examples --example property_test   # as a test
//! cargo run -p exhaust-examples --example property_test    # the same, 64 cases
//! ```

use exhaust_core::invariants::{check_identical, check_report, read_csv};
use exhaust_core::layout::Layout;
use exhaust_core::memory::MemorySource;
use exhaust_core::report::{ReportOptions, RowSink, VecSink, build_rows, plan_batch};
use exhaust_core::strategies::{BatchData, batch_source, shuffled};
use exhaust_writer::CsvSink;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The embedder's code under test: one JSON object per row, keyed by header.
#[derive(Default)]
struct JsonRows {
    header: Vec<String>,
    lines: Vec<String>,
}

impl RowSink for JsonRows {
    type Error = std::convert::Infallible;
    fn begin(&mut self, header: &[String], _expected: usize) -> Result<(), Self::Error> {
        self.header = header.to_vec();
        Ok(())
    }
    fn row(&mut self, fields: &[String]) -> Result<(), Self::Error> {
        let object: serde_json::Map<String, serde_json::Value> = self
            .header
            .iter()
            .cloned()
            .zip(fields.iter().map(|f| serde_json::Value::from(f.as_str())))
            .collect();
        self.lines
            .push(serde_json::Value::Object(object).to_string());
        Ok(())
    }
}

/// The in-memory source's futures are always ready: no runtime needed.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// The report of the batch as CSV bytes, and through the embedder's sink.
fn build(
    src: &MemorySource,
    data: &BatchData,
    opts: &ReportOptions,
) -> Result<(Vec<u8>, JsonRows, exhaust_core::report::BatchPlan), TestCaseError> {
    let plan = block_on(plan_batch(src, &data.batch_id, None, opts)).map_err(fail)?;
    let mut csv = CsvSink::new(Vec::new());
    block_on(build_rows(src, &plan, opts, &mut csv)).map_err(fail)?;
    let (bytes, _) = csv.finish().map_err(fail)?;
    let mut json = JsonRows::default();
    block_on(build_rows(src, &plan, opts, &mut json)).map_err(fail)?;
    Ok((bytes, json, plan))
}

/// The property: the CSV keeps the report's invariants, the same rows in
/// another order give the same bytes, and the JSON rows hold the CSV's
/// table.
fn property(data: BatchData, reordered: MemorySource, lern: bool) -> Result<(), TestCaseError> {
    let opts = ReportOptions {
        layout: if lern { Layout::Lern } else { Layout::Seed },
        ..ReportOptions::default()
    };
    let (bytes, json, plan) = build(&data.source, &data, &opts)?;
    let table = read_csv(&bytes).map_err(fail)?;
    check_report(&table, &plan, &data.source).map_err(fail)?;

    let (again, _, _) = build(&reordered, &data, &opts)?;
    check_identical(&table, &read_csv(&again).map_err(fail)?).map_err(fail)?;
    prop_assert!(
        again == bytes,
        "the same rows in another order gave other bytes"
    );

    let from_json = VecSink {
        header: json.header.clone(),
        rows: json
            .lines
            .iter()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).expect("our own JSON");
                json.header
                    .iter()
                    .map(|h| v[h].as_str().unwrap_or("<missing>").to_owned())
                    .collect()
            })
            .collect(),
    };
    check_identical(&table, &from_json).map_err(fail)
}

fn inputs() -> impl Strategy<Value = (BatchData, MemorySource, bool)> {
    batch_source(0..20).prop_flat_map(|d| {
        let s = shuffled(&d.source);
        (Just(d), s, any::<bool>())
    })
}

proptest! {
    #![proptest_config(Config::with_cases(32))]

    #[test]
    fn json_rows_hold_the_report((data, reordered, lern) in inputs()) {
        property(data, reordered, lern)?;
    }
}

// Under `cargo test` the harness runs the property above instead.
#[cfg_attr(test, allow(dead_code))]
fn main() {
    // Outside the test harness there is no source file to note failing
    // seeds beside.
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(64)
    });
    match runner.run(&inputs(), |(d, r, lern)| property(d, r, lern)) {
        Ok(()) => println!("64 generated batches: every property held"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
