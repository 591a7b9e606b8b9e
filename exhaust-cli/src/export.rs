//! `exhaust snapshot`: copies what one batch's report reads from the
//! configured source (normally Sunbird's live stores) into a snapshot
//! folder, so a support case can be re-run offline with `exhaust report
//! --snapshot DIR`.

use crate::args::SnapshotArgs;
use anyhow::anyhow;
use exhaust_core::BatchId;
use exhaust_server::app::Settings;
use exhaust_sources::{ExportOptions, export_batch};

/// Runs `exhaust snapshot`.
pub async fn run(args: SnapshotArgs) -> anyhow::Result<bool> {
    let settings = Settings::load(args.config.config.as_deref())?;
    let source = settings.open_source().await?;
    let batch = BatchId::new(args.batch_id.as_str());
    let summary = export_batch(&source, &batch, &args.out, &ExportOptions::default())
        .await
        .map_err(|e| anyhow!(e))?;
    println!(
        "batch {} of collection {} from the {} source -> {}",
        summary.batch_id,
        summary.collection_id,
        source.kind(),
        args.out.display()
    );
    println!(
        "  {} enrolments, {} users ({} cached), {} attempts, {} aggregates, {} optional nodes",
        summary.enrolments,
        summary.users,
        summary.users_cached,
        summary.attempts,
        summary.aggregates,
        summary.optional_nodes
    );
    if !summary.collection_found {
        println!(
            "  the content search does not know the collection: a report will fail the same way"
        );
    }
    if !summary.hierarchy_found {
        println!("  no hierarchy is stored for the collection: a report will fail the same way");
    }
    Ok(true)
}
