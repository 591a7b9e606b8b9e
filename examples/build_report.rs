//! Embedding the library: build one batch's progress exhaust from a snapshot
//! and write it as CSV to standard output.
//!
//! ```text
//! cargo run -p exhaust-examples --example build_report -- examples/sample-snapshot <batch-id>
//! ```

use exhaust_core::BatchId;
use exhaust_core::report::{ReportOptions, build_report};
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::CsvSink;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(batch)) = (args.next(), args.next()) else {
        return Err("usage: build_report SNAPSHOT_DIR BATCH_ID".into());
    };
    // Any type implementing the source traits works here: the snapshot
    // reader, the live adapters, or your own.
    let sources = Snapshot::open(dir, SnapshotOptions::default())?;
    let mut sink = CsvSink::new(std::io::stdout().lock());
    let summary = build_report(
        &sources,
        &BatchId::new(batch),
        None,
        &ReportOptions::default(),
        &mut sink,
    )
    .await?;
    let (_, stats) = sink.finish()?;
    eprintln!(
        "{} rows, {} bytes; {} users missing from the cache",
        summary.rows, stats.bytes, summary.missing_users
    );
    Ok(())
}
