//! Differential properties over arbitrary batches (the public strategies
//! of `exhaust_core::strategies`): the in-memory source, the snapshot
//! reader over the folder the export code writes from it (through its
//! JSON lines, and through the digests it persists and reads back), and the live
//! adapters over real stores loaded from that folder (kassandra in process,
//! a fresh server per case; the real Redis under a key prefix of the
//! case's own; the search API faked) give the same report and summary, in
//! both layouts, with and without an org filter, and every report keeps the
//! invariants of `exhaust_core::invariants`.

// Only the live fixture is used here.
#[allow(dead_code)]
use exhaust_sources::testing::live as support;

use exhaust_core::OrgId;
use exhaust_core::invariants::{check_identical, check_report};
use exhaust_core::layout::Layout;
use exhaust_core::report::{BatchSummary, ReportOptions, VecSink, build_report, plan_batch};
use exhaust_core::source::ReportSource;
use exhaust_core::strategies::{BatchData, batch_source};
use exhaust_sources::{ExportOptions, Snapshot, SnapshotOptions, export_batch};
use proptest::prelude::*;
use std::path::Path;
use support::LiveFixture;

/// The builds compared: both layouts, small and large chunks, and each
/// org a request may come from.
fn cases(data: &BatchData) -> Vec<(ReportOptions, Option<OrgId>)> {
    let opts = |layout, chunk_size| ReportOptions {
        layout,
        chunk_size,
        ..ReportOptions::default()
    };
    vec![
        (opts(Layout::Seed, 2_000), None),
        (opts(Layout::Lern, 3), Some(data.channel.clone())),
        (opts(Layout::Seed, 2), Some(data.other_org.clone())),
    ]
}

/// A source's report of each case, with its summary (the malformed
/// entries' texts cleared: each store words them its own way).
async fn reports<S: ReportSource>(
    source: &S,
    data: &BatchData,
) -> Result<Vec<(VecSink, BatchSummary)>, TestCaseError> {
    let mut out = Vec::new();
    for (opts, org) in cases(data) {
        let plan = plan_batch(source, &data.batch_id, org.as_ref(), &opts)
            .await
            .map_err(|e| TestCaseError::fail(format!("plans: {e}")))?;
        let mut sink = VecSink::default();
        let mut summary = build_report(source, &data.batch_id, org.as_ref(), &opts, &mut sink)
            .await
            .map_err(|e| TestCaseError::fail(format!("builds: {e}")))?;
        check_report(&sink, &plan, &data.source).map_err(|v| TestCaseError::fail(v.to_string()))?;
        for (_, why) in &mut summary.malformed_examples {
            why.clear();
        }
        out.push((sink, summary));
    }
    Ok(out)
}

fn same(
    want: &[(VecSink, BatchSummary)],
    got: &[(VecSink, BatchSummary)],
    what: &str,
) -> Result<(), TestCaseError> {
    for (i, ((w, ws), (g, gs))) in want.iter().zip(got).enumerate() {
        check_identical(w, g).map_err(|v| TestCaseError::fail(format!("{what}, case {i}: {v}")))?;
        prop_assert_eq!(ws, gs, "{}, case {}: the summaries differ", what, i);
    }
    Ok(())
}

async fn export(data: &BatchData, dir: &Path) -> Result<Snapshot, TestCaseError> {
    export_batch(&data.source, &data.batch_id, dir, &ExportOptions::default())
        .await
        .map_err(|e| TestCaseError::fail(format!("exports: {e}")))?;
    open(dir, SnapshotOptions::default())
}

fn open(dir: &Path, opts: SnapshotOptions) -> Result<Snapshot, TestCaseError> {
    Snapshot::open(dir, opts).map_err(|e| TestCaseError::fail(format!("the export opens: {e}")))
}

/// Every large table digested, however small (the default digests only
/// tables of 16 MiB and more, for a batch of a quarter of the enrolments).
fn digested() -> SnapshotOptions {
    SnapshotOptions {
        persist_index_min_bytes: Some(0),
        index_cache_dir: None,
        digest_min_percent: 0,
        ..SnapshotOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Memory and the snapshot exported from it.
    #[test]
    fn the_exported_snapshot_gives_the_memory_sources_reports(data in batch_source(0..20)) {
        runtime().block_on(async {
            let want = reports(&data.source, &data).await?;
            let dir = tempfile::tempdir().expect("a temp dir");
            let snapshot = export(&data, dir.path()).await?;
            same(&want, &reports(&snapshot, &data).await?, "the snapshot")?;
            // The digests, as the run that writes them reads them and as a
            // later run reads them back.
            let writes = open(dir.path(), digested())?;
            same(&want, &reports(&writes, &data).await?, "the digest written")?;
            let stats = writes.index_stats();
            prop_assert_eq!(stats.persisted, stats.built, "{:?}", stats);
            let reads = open(dir.path(), digested())?;
            same(&want, &reports(&reads, &data).await?, "the digest read back")?;
            prop_assert_eq!(reads.index_stats().built, 0, "{:?}", reads.index_stats());
            Ok(())
        })?;
    }
}

proptest! {
    // Each case starts a CQL server and loads every store: few cases.
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Memory, the exported snapshot and the live stores loaded from it.
    #[test]
    fn the_live_sources_give_the_memory_sources_reports(data in batch_source(0..12)) {
        runtime().block_on(async {
            let want = reports(&data.source, &data).await?;
            let dir = tempfile::tempdir().expect("a temp dir");
            let snapshot = export(&data, dir.path()).await?;
            same(&want, &reports(&snapshot, &data).await?, "the snapshot")?;
            let live = LiveFixture::load(dir.path()).await;
            same(&want, &reports(&live.live, &data).await?, "the live sources")
        })?;
    }
}
