//! Embedding the library: get one batch's progress exhaust as Arrow
//! `RecordBatch`es (typed columns with their metadata), without any file.
//!
//! ```text
//! cargo run -p exhaust-examples --features typed --example arrow_batches -- \
//!     examples/sample-snapshot 0135742803756164562
//! ```

use exhaust_core::BatchId;
use exhaust_core::report::{ReportOptions, build_rows, plan_batch};
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::arrow::RecordBatchSink;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(batch)) = (args.next(), args.next()) else {
        return Err("usage: arrow_batches SNAPSHOT_DIR BATCH_ID".into());
    };
    let sources = Snapshot::open(dir, SnapshotOptions::default())?;
    let opts = ReportOptions::default();
    let plan = plan_batch(&sources, &BatchId::new(batch), None, &opts).await?;

    // Each batch of at most 1,000 rows goes to the callback as it is full,
    // so memory stays bounded however large the course batch is. The build
    // time is ours to give: it goes into the schema's metadata.
    let mut rows = 0;
    let mut sink = RecordBatchSink::new(chrono::Utc::now(), |b| {
        rows += b.num_rows();
        println!("a record batch of {} rows", b.num_rows());
        Ok(())
    })
    .with_batch_rows(1_000);
    build_rows(&sources, &plan, &opts, &mut sink).await?;
    if let Some(schema) = sink.schema() {
        for field in schema.fields() {
            let meta = field.metadata();
            println!(
                "{:<40} {:<32} kind={} content={}",
                field.name(),
                field.data_type().to_string(),
                meta.get("kind").map_or("", String::as_str),
                meta.get("content_name").map_or("", String::as_str),
            );
        }
        println!("table metadata: {:?}", schema.metadata());
    }
    sink.finish()?;
    println!("{rows} rows");
    Ok(())
}
