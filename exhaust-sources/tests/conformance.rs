//! Sunbird's own progress exhaust test fixture
//! (`shared/conformance/sunbird-lern`), read through the snapshot reader,
//! checked against what its EXPECTED.md lists.

use exhaust_core::layout::Layout;
use exhaust_core::report::{ReportOptions, VecSink, build_report};
use exhaust_core::{BatchId, OrgId};
use exhaust_sources::{Snapshot, SnapshotOptions};
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    let dir = exhaust_sources::testing::conformance_snapshot();
    assert!(
        dir.is_dir(),
        "the conformance fixture is expected at {} (shared/ beside the repository)",
        dir.display()
    );
    dir
}

async fn lern_report(requested_by: Option<&str>) -> VecSink {
    let snapshot = Snapshot::open(fixture_dir(), SnapshotOptions::default()).expect("opens");
    let opts = ReportOptions {
        layout: Layout::Lern,
        ..ReportOptions::default()
    };
    let mut sink = VecSink::default();
    let org = requested_by.map(OrgId::new);
    build_report(
        &snapshot,
        &BatchId::new("batch-001"),
        org.as_ref(),
        &opts,
        &mut sink,
    )
    .await
    .expect("batch-001 builds");
    sink
}

fn column<'a>(sink: &'a VecSink, name: &str) -> Vec<&'a str> {
    let i = sink
        .header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", sink.header));
    sink.rows.iter().map(|r| r[i].as_str()).collect()
}

#[tokio::test]
async fn batch_001_matches_sunbirds_expectations() {
    // Requested by the collection's own channel: no org filter.
    let sink = lern_report(Some("b00bc992ef25f1a9a8d63291e20efc8d")).await;
    assert_eq!(
        column(&sink, "User UUID"),
        ["user-001", "user-002", "user-003", "user-004"]
    );
    assert_eq!(
        column(&sink, "Collection Id"),
        ["do_1130928636168192001667"; 4]
    );
    assert_eq!(column(&sink, "Collection Name"), ["24 aug course"; 4]);
    assert_eq!(column(&sink, "Batch Id"), ["BatchId_batch-001"; 4]);
    assert_eq!(column(&sink, "Batch Name"), ["Basic Java"; 4]);
    assert_eq!(
        column(&sink, "State"),
        ["Karnataka", "Andhra Pradesh", "Karnataka", "Delhi"]
    );
    assert_eq!(
        column(&sink, "District"),
        ["bengaluru", "bengaluru", "bengaluru", "babarpur"]
    );
    // user-001's enrolled_date wins over its older enrolleddate text.
    assert_eq!(
        column(&sink, "Enrolment Date"),
        ["16/11/2019", "15/11/2019", "15/11/2019", "15/11/2019"]
    );
    assert_eq!(column(&sink, "Completion Date"), [""; 4]);
    assert_eq!(column(&sink, "Cluster Name")[0], "CLUSTER1");
    assert_eq!(column(&sink, "User Type")[0], "administrator");
    assert_eq!(column(&sink, "User Sub Type")[0], "deo");
    // The deliberate difference: the hierarchy has no leaves and nobody
    // completed, so Progress is 0 (Sunbird's test expects 100 because it
    // reads a missing leafNodesCount as 0).
    assert_eq!(column(&sink, "Progress"), ["0"; 4]);
    assert_eq!(
        &sink.header[..20],
        [
            "Collection Id",
            "Collection Name",
            "Batch Id",
            "Batch Name",
            "User UUID",
            "State",
            "District",
            "Org Name",
            "School Id",
            "School Name",
            "Block Name",
            "Cluster Name",
            "User Type",
            "User Sub Type",
            "Declared Board",
            "Enrolment Date",
            "Completion Date",
            "Certificate Status",
            "Progress",
            "Total Score",
        ]
    );
    assert_eq!(column(&sink, "Declared Board")[0], "IGOT-Health");
}

#[tokio::test]
async fn standalone_run_requests_as_the_collections_channel() {
    let by_channel = lern_report(Some("b00bc992ef25f1a9a8d63291e20efc8d")).await;
    assert_eq!(lern_report(None).await, by_channel);
    assert_eq!(lern_report(Some("System")).await, by_channel);
}

#[tokio::test]
async fn another_org_sees_only_its_own_users() {
    // user-001 and user-004 have root org 01250894314817126443.
    let sink = lern_report(Some("01250894314817126443")).await;
    assert_eq!(column(&sink, "User UUID"), ["user-001", "user-004"]);
}
