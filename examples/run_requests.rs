//! Embedding the request flow: queue a request in an SQLite request store,
//! run the library's runner once over a snapshot, and print the outcome.
//! The same code runs against PostgreSQL (`PgRequestStore`) and the live
//! sources (`LiveSources`): the runner is generic over the core's traits.
//!
//! ```text
//! cargo run -p exhaust-examples --example run_requests -- examples/sample-snapshot WORK_DIR
//! ```

use chrono::Utc;
use exhaust_core::request::NewRequest;
use exhaust_core::runner::RunnerConfig;
use exhaust_core::security::FixedLevel;
use exhaust_core::store::RequestStore;
use exhaust_sources::requests::SqliteRequestStore;
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::{PublishConfig, Storage, TokioClock, publishing_runner};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(snapshot), Some(work)) = (args.next(), args.next()) else {
        return Err("usage: run_requests SNAPSHOT_DIR WORK_DIR".into());
    };
    let work = std::path::PathBuf::from(work);
    let store = SqliteRequestStore::open(work.join("exhaust.db")).await?;

    // What the Data Exhaust API receives from a portal.
    let request = NewRequest {
        tag: "do_111619594813120048361_0135742803756164562".into(),
        dataset: "progress-exhaust".into(),
        requested_by: "u-001".into(),
        channel: "0166646273726135492".into(),
        dataset_config: serde_json::json!({"batchId": "0135742803756164562"}),
        encryption_key: None,
    }
    .into_job_request(Utc::now())?;
    let submitted = store.submit(&request).await?;
    println!("queued {}", submitted.request().request_id);

    // Reports are built in WORK_DIR, then stored as zips in WORK_DIR/files.
    let runner = publishing_runner(
        Snapshot::open(snapshot, SnapshotOptions::default())?,
        store,
        FixedLevel::default(),
        Storage::local(work.join("files"))?,
        PublishConfig::in_folder(work.clone()),
        TokioClock::system(),
        RunnerConfig::default(),
    );
    let summary = runner.run_once().await?;
    println!("{summary}");
    let row = runner
        .store()
        .get(&request.tag, &request.request_id)
        .await?
        .ok_or("the request is gone")?;
    println!("{} {:?}", row.status, row.download_urls);
    Ok(())
}
