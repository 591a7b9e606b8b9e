//! The request-store test suite: every behaviour a [`RequestStore`] must
//! have, as functions that each store's tests call on a fresh store of
//! their own (an SQLite file, a PostgreSQL schema: see [`TestStore`]), as
//! `object_store` exposes its backends' suite. A scenario panics on the
//! first difference, naming it.
//!
//! [`TestStore`]: super::TestStore

use super::StoreWorld;
use crate::requests::{AnyClaim, AnyRequestStore, IndexNames, QueryPlan, Statement};
use chrono::{TimeZone, Utc};
use exhaust_core::request::{JobRequest, ProcessedBatch, RequestOutcome, RequestStatus};
use exhaust_core::store::{
    ChannelQuery, Completion, PollCursor, RequestStore, Selection, StatusCounts, Submission,
};
use std::time::Duration;

/// Claims `r` for the progress exhaust, which must be free: the claim and
/// the row as claimed.
pub async fn claim_free(store: &AnyRequestStore, r: &JobRequest) -> (AnyClaim, JobRequest) {
    store
        .claim(&r.tag, &r.request_id, &Selection::progress_exhaust())
        .await
        .expect("claim")
        .expect("free")
}

/// Every pending row for `selection`, read a page of `page` rows at a
/// time as the runner reads them.
pub async fn all_candidates_paged(
    store: &AnyRequestStore,
    selection: &Selection,
    page: usize,
) -> Vec<JobRequest> {
    let mut out: Vec<JobRequest> = Vec::new();
    let mut after: Option<PollCursor> = None;
    loop {
        let rows = store
            .candidates(selection, after.as_ref(), page)
            .await
            .expect("candidates");
        assert!(rows.len() <= page, "a page of {page} held {}", rows.len());
        let Some(last) = rows.last() else {
            return out;
        };
        after = Some(PollCursor::after(last));
        let full = rows.len() == page;
        out.extend(rows);
        if !full {
            return out;
        }
    }
}

/// Every pending row for `selection`, in one page.
pub async fn all_candidates(store: &AnyRequestStore, selection: &Selection) -> Vec<JobRequest> {
    store
        .candidates(selection, None, 100_000)
        .await
        .expect("candidates")
}

/// The poll reads pages in the poll's order (oldest submission first, rows
/// without one last, then by request id) and every pending row comes
/// exactly once, whatever the page size: ties on the submission time and
/// rows without one included.
pub async fn candidates_come_in_pages(w: StoreWorld) {
    // The folder keeps the store until the scenario ends.
    let StoreWorld { t: _kept, store } = w;
    let mut expected = Vec::new();
    for i in 0..12u32 {
        // Minutes 0..=3: three rows share each submission time.
        let mut r = request(
            &format!("R{i:02}"),
            serde_json::json!({"batchId": "b1"}),
            i / 3,
        );
        r.tag = format!("do_{i}_b1:ch1");
        store.submit(&r).await.expect("submit");
        expected.push(r.request_id.clone());
    }
    // Two rows written by another program without a submission time.
    for id in ["N1", "N0"] {
        let r = request(id, serde_json::json!({"batchId": "b1"}), 0);
        store.submit(&r).await.expect("submit");
        clear_submitted(&store, &r).await;
    }
    expected.extend(["N0".to_string(), "N1".to_string()]);
    let sel = Selection::progress_exhaust();
    let whole: Vec<String> = all_candidates(&store, &sel)
        .await
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(whole, expected, "the poll's order");
    for page in [1, 2, 3, 5, 13, 14, 50] {
        let paged: Vec<String> = all_candidates_paged(&store, &sel, page)
            .await
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(paged, expected, "pages of {page}");
    }
}

/// Sets a row's `dt_job_submitted` to null, as rows of other programs may be.
async fn clear_submitted(store: &AnyRequestStore, r: &JobRequest) {
    match store {
        AnyRequestStore::Postgres(s) => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {} SET dt_job_submitted = NULL WHERE tag = $1 AND request_id = $2",
            s.table()
        )))
        .bind(&r.tag)
        .bind(&r.request_id)
        .execute(s.pool())
        .await
        .map(|_| ()),
        AnyRequestStore::Sqlite(s) => sqlx::query(
            "UPDATE job_request SET dt_job_submitted = NULL WHERE tag = ?1 AND request_id = ?2",
        )
        .bind(&r.tag)
        .bind(&r.request_id)
        .execute(s.pool())
        .await
        .map(|_| ()),
    }
    .expect("clear dt_job_submitted");
}

/// Requests by status come from one count per status, every job's.
pub async fn counts_by_status(w: StoreWorld) {
    // The folder keeps the store until the scenario ends.
    let StoreWorld { t: _kept, store } = w;
    assert_eq!(
        store.count_by_status().await.expect("count"),
        StatusCounts::default()
    );
    for i in 0..5 {
        let mut r = request(&format!("R{i}"), serde_json::json!({"batchId": "b1"}), i);
        if i == 4 {
            r.job_id = "response-exhaust".into();
        }
        store.submit(&r).await.expect("submit");
    }
    let r0 = request("R0", serde_json::json!({"batchId": "b1"}), 0);
    let (claim, _) = claim_free(&store, &r0).await;
    store.finish(claim, &failed("boom")).await.expect("finish");
    let r1 = request("R1", serde_json::json!({"batchId": "b1"}), 1);
    let (mut claim, _) = claim_free(&store, &r1).await;
    store.mark_processing(&mut claim).await.expect("processing");
    let counts = store.count_by_status().await.expect("count");
    assert_eq!(
        counts,
        StatusCounts {
            submitted: 3,
            processing: 1,
            success: 0,
            failed: 1,
        }
    );
    assert_eq!(counts.get(RequestStatus::Submitted), 3);
    store.release(claim).await.expect("release");
}

/// A `progress-exhaust` request of tag `do_1_b1:ch1`, submitted at
/// 10:`minute` on 15 January 2024.
pub fn request(id: &str, data: serde_json::Value, minute: u32) -> JobRequest {
    JobRequest {
        tag: "do_1_b1:ch1".into(),
        request_id: id.into(),
        job_id: "progress-exhaust".into(),
        status: RequestStatus::Submitted,
        request_data: data,
        requested_by: "u-1".into(),
        requested_channel: "ch1".into(),
        dt_job_submitted: Utc.with_ymd_and_hms(2024, 1, 15, 10, minute, 0).single(),
        download_urls: vec![],
        dt_file_created: None,
        dt_job_completed: None,
        execution_time: None,
        err_message: None,
        iteration: 0,
        encryption_key: Some("k".into()),
        batch_number: None,
        processed_batches: None,
    }
}

/// A FAILED completion with this message, an attempt counted.
pub fn failed(msg: &str) -> Completion {
    Completion {
        outcome: RequestOutcome {
            status: RequestStatus::Failed,
            processed: Some(vec![]),
            download_urls: vec![],
            err_message: Some(msg.into()),
            count_attempt: true,
        },
        completed_at: Utc
            .with_ymd_and_hms(2024, 1, 15, 11, 0, 0)
            .single()
            .expect("time"),
        execution_time_ms: 5,
    }
}

/// Sunbird's submission rules: a new request is created, a repeat is
/// returned as it is, a FAILED one is queued again with its attempts reset.
pub async fn submission_rules(w: StoreWorld) {
    // The folder keeps the store until the scenario ends.
    let StoreWorld { t: _kept, store } = w;
    let r = request("R1", serde_json::json!({"batchId": "b1"}), 0);
    let created = store.submit(&r).await.expect("submit");
    let Submission::Created(row) = created else {
        panic!("expected Created, got {created:?}")
    };
    assert_eq!(row.status, RequestStatus::Submitted);
    assert_eq!(row.iteration, 0);
    assert_eq!(row.request_data, serde_json::json!({"batchId": "b1"}));
    assert_eq!(row.dt_job_submitted, r.dt_job_submitted);
    assert_eq!(row.encryption_key.as_deref(), Some("k"));

    // A SUBMITTED request is returned as it is.
    let again = store.submit(&r).await.expect("submit again");
    assert!(matches!(again, Submission::Existing(_)), "{again:?}");

    // FAILED three times: resubmitting queues it again with attempts reset.
    let sel = Selection::progress_exhaust();
    for n in 0..3 {
        let (claim, _) = store
            .claim(&r.tag, &r.request_id, &sel)
            .await
            .expect("claim")
            .expect("free");
        store
            .finish(claim, &failed(&format!("boom {n}")))
            .await
            .expect("finish");
    }
    let row = store
        .get(&r.tag, &r.request_id)
        .await
        .expect("get")
        .expect("row");
    assert_eq!((row.status, row.iteration), (RequestStatus::Failed, 3));
    assert_eq!(row.err_message.as_deref(), Some("boom 2"));
    assert!(all_candidates(&store, &sel).await.is_empty());

    let mut newer = r.clone();
    newer.request_data = serde_json::json!({"batchId": "b2"});
    newer.dt_job_submitted = Utc.with_ymd_and_hms(2024, 1, 16, 9, 0, 0).single();
    let re = store.submit(&newer).await.expect("resubmit");
    let Submission::Resubmitted(row) = re else {
        panic!("expected Resubmitted, got {re:?}")
    };
    assert_eq!((row.status, row.iteration), (RequestStatus::Submitted, 0));
    assert_eq!(row.request_data, serde_json::json!({"batchId": "b2"}));
    assert_eq!(row.dt_job_submitted, newer.dt_job_submitted);
    assert_eq!(row.err_message, None);
    assert_eq!(all_candidates(&store, &sel).await.len(), 1);
}

/// A claim excludes every other worker until it is finished or released,
/// and a finished request is written as the core's completion says.
pub async fn claims_are_exclusive(w: StoreWorld) {
    // The folder keeps the store until the scenario ends.
    let StoreWorld { t: _kept, store } = w;
    let r = request("R1", serde_json::json!({"batchId": "b1"}), 0);
    store.submit(&r).await.expect("submit");
    let sel = Selection::progress_exhaust();
    let (mut first, row) = claim_free(&store, &r).await;
    assert_eq!(row.request_id, "R1");
    assert!(
        store
            .claim(&r.tag, &r.request_id, &sel)
            .await
            .expect("claim")
            .is_none(),
        "a held request cannot be claimed twice"
    );
    store.mark_processing(&mut first).await.expect("processing");
    let built = ProcessedBatch {
        channel: Some("ch1".into()),
        batch_id: "b1".into(),
        file_path: "progress-exhaust/R1/b1_progress_20240115.csv".into(),
        file_size: 10,
    };
    store
        .record_processed(&mut first, std::slice::from_ref(&built))
        .await
        .expect("record");
    // Released without an outcome (a shutdown): PROCESSING, claimable again,
    // with the recorded batch kept.
    store.release(first).await.expect("release");
    let (second, row) = store
        .claim(&r.tag, &r.request_id, &sel)
        .await
        .expect("claim")
        .expect("free again");
    assert_eq!(row.status, RequestStatus::Processing);
    assert_eq!(
        row.processed().expect("a list"),
        std::slice::from_ref(&built)
    );
    store
        .finish(
            second,
            &Completion {
                outcome: RequestOutcome {
                    status: RequestStatus::Success,
                    processed: Some(vec![built]),
                    download_urls: vec!["progress-exhaust/R1/b1_progress_20240115.zip".into()],
                    err_message: None,
                    count_attempt: false,
                },
                completed_at: Utc
                    .with_ymd_and_hms(2024, 1, 15, 11, 0, 0)
                    .single()
                    .expect("time"),
                execution_time_ms: 42,
            },
        )
        .await
        .expect("finish");
    let row = store
        .get(&r.tag, &r.request_id)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.status, RequestStatus::Success);
    assert_eq!(
        row.download_urls,
        ["progress-exhaust/R1/b1_progress_20240115.zip"]
    );
    assert_eq!(row.execution_time, Some(42));
    assert_eq!(row.iteration, 0);
    assert_eq!(
        row.dt_job_completed,
        Utc.with_ymd_and_hms(2024, 1, 15, 11, 0, 0).single()
    );
    // A finished request is no longer eligible, even though its lock is free.
    assert!(
        store
            .claim(&r.tag, &r.request_id, &sel)
            .await
            .expect("claim")
            .is_none()
    );
    // A SUCCESS request is returned as it is on resubmission.
    let again = store.submit(&r).await.expect("submit");
    assert!(matches!(again, Submission::Existing(ref x) if x.status == RequestStatus::Success));
}

/// A request whose worker died (its claim dropped without a word) is
/// claimed again.
pub async fn a_dead_workers_request_is_taken_again(w: StoreWorld) {
    // The folder keeps the store until the scenario ends.
    let StoreWorld { t: _kept, store } = w;
    let r = request("R1", serde_json::json!({"batchId": "b1"}), 0);
    store.submit(&r).await.expect("submit");
    let sel = Selection::progress_exhaust();
    let (mut claim, _) = claim_free(&store, &r).await;
    store.mark_processing(&mut claim).await.expect("processing");
    // The worker dies: its connection or file handle goes without a word.
    drop(claim);
    // PostgreSQL notices the closed connection asynchronously.
    let mut taken = None;
    for _ in 0..100 {
        taken = store
            .claim(&r.tag, &r.request_id, &sel)
            .await
            .expect("claim");
        if taken.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, row) = taken.expect("the request is claimable once its worker is gone");
    assert_eq!(row.status, RequestStatus::Processing);
}

/// Which rows a run takes, and the API's read, list and recent.
pub async fn selection_and_listing(w: StoreWorld) {
    // The folder keeps the store until the scenario ends.
    let StoreWorld { t: _kept, store } = w;
    let mut a = request("A", serde_json::json!({"batchId": "b1"}), 5);
    a.batch_number = Some(1);
    let mut b = request("B", serde_json::json!({"batchId": "b2"}), 1);
    b.batch_number = Some(2);
    let mut other = request("C", serde_json::json!({"batchId": "b3"}), 3);
    other.job_id = "response-exhaust".into();
    for r in [&a, &b, &other] {
        store.submit(r).await.expect("submit");
    }
    let all = all_candidates(&store, &Selection::progress_exhaust()).await;
    // Oldest first; other jobs' requests are not ours.
    let ids: Vec<&str> = all.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["B", "A"]);
    let numbered = all_candidates(
        &store,
        &Selection {
            batch_number: Some(1),
            ..Selection::progress_exhaust()
        },
    )
    .await;
    assert_eq!(numbered.len(), 1);
    assert_eq!(numbered[0].request_id, "A");

    // List: newest first, limited.
    let listed = store.list("do_1_b1:ch1", 2).await.expect("list");
    let ids: Vec<&str> = listed.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["A", "C"]);
    assert!(store.list("other:ch1", 10).await.expect("list").is_empty());
    assert!(
        store
            .get("do_1_b1:ch1", "nope")
            .await
            .expect("get")
            .is_none()
    );
    let recent = store
        .recent(Some(RequestStatus::Submitted), 10)
        .await
        .expect("recent");
    assert_eq!(recent.len(), 3);
    store.ping().await.expect("ping");
}

/// The names of the indexes on the store's table, as the database lists
/// them.
pub async fn index_names_in_db(store: &AnyRequestStore) -> Vec<String> {
    match store {
        AnyRequestStore::Postgres(s) => {
            let (schema, table) = s.table().split_once('.').expect("schema.table");
            sqlx::query_scalar(
                "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
            )
            .bind(schema)
            .bind(table)
            .fetch_all(s.pool())
            .await
            .expect("pg_indexes")
        }
        AnyRequestStore::Sqlite(s) => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job_request'",
        )
        .fetch_all(s.pool())
        .await
        .expect("sqlite_master"),
    }
}

/// Read, list and the poll are served by indexes: the store's indexes
/// exist, no plan reads the whole table, list takes its order from its
/// index (no sort: with a limit it stops after the rows it returns), and
/// the poll reads the pending index.
pub async fn assert_indexes_serve(store: &AnyRequestStore, tag: &str) {
    let names: IndexNames = store.indexes().clone();
    let present = index_names_in_db(store).await;
    for name in [&names.by_tag, &names.pending, &names.by_channel] {
        assert!(present.contains(name), "{name} missing from {present:?}");
    }
    let plan = |p: &QueryPlan| p.text.clone();

    let read = store
        .explain(&Statement::Read {
            tag,
            request_id: "R0007",
        })
        .await
        .expect("explain read");
    assert!(!read.full_scan, "read scans the table:\n{}", plan(&read));
    assert!(
        !read.indexes.is_empty(),
        "read uses no index:\n{}",
        plan(&read)
    );

    let list = store
        .explain(&Statement::List { tag, limit: 10 })
        .await
        .expect("explain list");
    assert_eq!(
        list.indexes,
        std::slice::from_ref(&names.by_tag),
        "{}",
        plan(&list)
    );
    assert!(!list.full_scan, "list scans the table:\n{}", plan(&list));
    assert!(!list.sorts, "list sorts the tag's rows:\n{}", plan(&list));

    for batch_number in [None, Some(1)] {
        let selection = Selection {
            batch_number,
            ..Selection::progress_exhaust()
        };
        let poll = store
            .explain(&Statement::Poll(&selection))
            .await
            .expect("explain poll");
        assert_eq!(
            poll.indexes,
            std::slice::from_ref(&names.pending),
            "{}",
            plan(&poll)
        );
        assert!(
            !poll.full_scan,
            "the poll scans the table:\n{}",
            plan(&poll)
        );
    }

    // A channel's page (the console) reads the channel's index in order.
    let channel = tag.rsplit(':').next().unwrap_or(tag);
    let page = ChannelQuery::new(channel, 25);
    let listed = store
        .explain(&Statement::Channel(&page))
        .await
        .expect("explain a channel's page");
    assert_eq!(
        listed.indexes,
        std::slice::from_ref(&names.by_channel),
        "{}",
        plan(&listed)
    );
    assert!(
        !listed.full_scan && !listed.sorts,
        "a channel's page scans or sorts:\n{}",
        plan(&listed)
    );
    // With a tag, the tag's index.
    let tagged = ChannelQuery {
        tag: Some(tag.to_string()),
        ..page
    };
    let listed = store
        .explain(&Statement::Channel(&tagged))
        .await
        .expect("explain a tag's page");
    assert_eq!(
        listed.indexes,
        std::slice::from_ref(&names.by_tag),
        "{}",
        plan(&listed)
    );
    assert!(
        !listed.full_scan && !listed.sorts,
        "a tag's page scans or sorts:\n{}",
        plan(&listed)
    );
}

/// A channel's requests a page at a time, newest first, by status and by
/// tag, and never another channel's (the console's list).
pub async fn channel_pages(w: StoreWorld) {
    // The folder keeps the store until the scenario ends.
    let StoreWorld { t: _kept, store } = w;
    let mut expected = Vec::new();
    for i in 0..9u32 {
        let mut r = request(&format!("R{i}"), serde_json::json!({"batchId": "b1"}), i);
        r.tag = format!("do_{}_b1:ch1", i % 2);
        store.submit(&r).await.expect("submit");
        expected.push(r);
    }
    // Another channel's rows, one of them under a tag text that names ch1.
    for i in 0..3u32 {
        let mut r = request(
            &format!("X{i}"),
            serde_json::json!({"batchId": "b1"}),
            30 + i,
        );
        r.requested_channel = "ch2".into();
        r.tag = if i == 0 {
            "do_0_b1:ch1".into()
        } else {
            format!("do_{i}_b1:ch2")
        };
        if i == 0 {
            // The same stored tag as ch1's rows, a different request id.
            r.request_id = "X0".into();
        }
        store.submit(&r).await.expect("submit");
    }
    // R3 failed.
    let (claim, _) = claim_free(&store, &expected[3]).await;
    store.finish(claim, &failed("boom")).await.expect("finish");

    let ids = |rows: &[JobRequest]| {
        rows.iter()
            .map(|r| r.request_id.clone())
            .collect::<Vec<_>>()
    };
    let all = store
        .list_channel(&ChannelQuery::new("ch1", 100))
        .await
        .expect("a channel's requests");
    assert_eq!(
        ids(&all),
        ["R8", "R7", "R6", "R5", "R4", "R3", "R2", "R1", "R0"],
        "newest first, only ch1's"
    );
    // Pages of 4.
    let mut paged = Vec::new();
    for page in 0..3 {
        let rows = store
            .list_channel(&ChannelQuery {
                offset: page * 4,
                ..ChannelQuery::new("ch1", 4)
            })
            .await
            .expect("a page");
        assert!(rows.len() <= 4);
        paged.extend(ids(&rows));
    }
    assert_eq!(paged, ids(&all));
    let failed_only = store
        .list_channel(&ChannelQuery {
            status: Some(RequestStatus::Failed),
            ..ChannelQuery::new("ch1", 100)
        })
        .await
        .expect("by status");
    assert_eq!(ids(&failed_only), ["R3"]);
    let tagged = store
        .list_channel(&ChannelQuery {
            tag: Some("do_0_b1:ch1".into()),
            ..ChannelQuery::new("ch1", 100)
        })
        .await
        .expect("by tag");
    assert_eq!(
        ids(&tagged),
        ["R8", "R6", "R4", "R2", "R0"],
        "the tag's rows of ch1 only: ch2's row under that tag text stays out"
    );
    let theirs = store
        .list_channel(&ChannelQuery::new("ch2", 100))
        .await
        .expect("ch2");
    assert_eq!(ids(&theirs), ["X2", "X1", "X0"]);
    assert!(
        store
            .list_channel(&ChannelQuery::new("ch3", 100))
            .await
            .expect("none")
            .is_empty()
    );
}

/// Rows over many tags, most of them finished, then the plans.
pub async fn indexes_serve_read_list_and_poll(w: StoreWorld) {
    // The folder keeps the store until the scenario ends.
    let StoreWorld { t: _kept, store } = w;
    for t in 0..6 {
        for i in 0..25 {
            let mut r = request(
                &format!("R{:04}", t * 100 + i),
                serde_json::json!({"batchId": "b1"}),
                i,
            );
            r.tag = format!("do_{t}_b1:ch1");
            store.submit(&r).await.expect("submit");
        }
    }
    assert_indexes_serve(&store, "do_3_b1:ch1").await;
    // The answers are those of the indexed statements.
    let listed = store.list("do_3_b1:ch1", 3).await.expect("list");
    let ids: Vec<&str> = listed.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["R0324", "R0323", "R0322"]);
    let pending = all_candidates_paged(&store, &Selection::progress_exhaust(), 40).await;
    assert_eq!(pending.len(), 150);
}

/// `processed_batches` as Sunbird's job writes it (reference 1.8: Jackson's
/// compact text, keys `channel`, `batchId`, `filePath`, `fileSize`; older
/// elements without `channel`).
pub const SUNBIRD_PROCESSED: &str = concat!(
    r#"[{"channel":"ch1","batchId":"b1","filePath":"progress-exhaust/R1/b1_progress_20240115.csv","fileSize":1234},"#,
    r#"{"batchId":"b2","filePath":"progress-exhaust/R1/b2_progress_20240115.csv","fileSize":0}]"#
);

/// The text of `processed_batches` as the database holds it.
pub async fn stored_processed(store: &AnyRequestStore, r: &JobRequest) -> Option<String> {
    processed_text(store, r, None).await
}

/// Writes `text` into `processed_batches` as another program would (an
/// untyped literal, so a json column takes it as a text column does), and
/// reads the row back through the store.
pub async fn store_processed_text(
    store: &AnyRequestStore,
    r: &JobRequest,
    text: &str,
) -> JobRequest {
    let written = processed_text(store, r, Some(text)).await;
    assert_eq!(written.as_deref(), Some(text));
    store
        .get(&r.tag, &r.request_id)
        .await
        .expect("the row is read")
        .expect("row")
}

/// Claims `r`, records `record` when given and finishes with `outcome`, as
/// a run does; the stored `processed_batches` after each write.
async fn run_to(
    store: &AnyRequestStore,
    r: &JobRequest,
    record: Option<&[ProcessedBatch]>,
    outcome: RequestOutcome,
) -> Vec<Option<String>> {
    let (mut claim, _) = claim_free(store, r).await;
    let mut stored = Vec::new();
    if let Some(batches) = record {
        store
            .record_processed(&mut claim, batches)
            .await
            .expect("record");
        stored.push(stored_processed(store, r).await);
    }
    let completion = Completion {
        outcome,
        completed_at: Utc
            .with_ymd_and_hms(2024, 1, 15, 11, 0, 0)
            .single()
            .expect("time"),
        execution_time_ms: 5,
    };
    store.finish(claim, &completion).await.expect("finish");
    stored.push(stored_processed(store, r).await);
    stored
}

/// Reads `processed_batches` of `r`'s row, after writing `new` when given.
/// Values are SQL literals (quotes doubled): this is test data, and one
/// statement text then serves both databases.
async fn processed_text(
    store: &AnyRequestStore,
    r: &JobRequest,
    new: Option<&str>,
) -> Option<String> {
    let literal = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let (table, column) = match store {
        AnyRequestStore::Postgres(s) => (s.table(), "processed_batches::text"),
        AnyRequestStore::Sqlite(_) => ("job_request", "processed_batches"),
    };
    let key = format!(
        "tag = {} AND request_id = {}",
        literal(&r.tag),
        literal(&r.request_id)
    );
    let sql = sqlx::AssertSqlSafe(match new {
        None => format!("SELECT {column} FROM {table} WHERE {key}"),
        Some(text) => format!(
            "UPDATE {table} SET processed_batches = {} WHERE {key} RETURNING {column}",
            literal(text)
        ),
    });
    let read = match store {
        AnyRequestStore::Postgres(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
        AnyRequestStore::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
    };
    read.expect("processed_batches")
}

/// Sunbird's `processed_batches` text reads as typed batches and is written
/// back byte for byte (by a recorded batch and by a completion); text that
/// is not a list of batches keeps the row readable, with the reason, and a
/// completion that leaves it (the core's `RequestOutcome::unreadable`)
/// leaves the text exactly as stored.
pub async fn processed_batches_keep_sunbird_text(w: StoreWorld) {
    // The folder keeps the store until the scenario ends.
    let StoreWorld { t: _kept, store } = w;
    let r = request("R1", serde_json::json!({"batchFilter": ["b1", "b2"]}), 0);
    store.submit(&r).await.expect("submit");
    assert_eq!(stored_processed(&store, &r).await, None);
    let row = store_processed_text(&store, &r, SUNBIRD_PROCESSED).await;
    let batches = row.processed().expect("Sunbird's text is a list").to_vec();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].channel.as_deref(), Some("ch1"));
    assert_eq!(batches[0].batch_id, "b1");
    assert_eq!(batches[0].file_size, 1234);
    assert_eq!(batches[1].channel, None);
    assert_eq!(
        row.processed_batches
            .as_ref()
            .map(exhaust_core::request::ProcessedBatches::to_text)
            .as_deref(),
        Some(SUNBIRD_PROCESSED)
    );

    // Written back as the runner writes it (a recorded batch, then a
    // completion), the text is Sunbird's.
    let sunbird = Some(SUNBIRD_PROCESSED.to_owned());
    let retry = RequestOutcome::retry("redis down", batches.clone());
    assert_eq!(
        run_to(&store, &r, Some(&batches), retry).await,
        [sunbird.clone(), sunbird]
    );

    // Text that is not a list of batches: the row is read and listed as
    // any other; failing it leaves the text as it is.
    let not_a_list = r#"{"batchId":"b1"}"#;
    let row = store_processed_text(&store, &r, not_a_list).await;
    let Some(exhaust_core::request::ProcessedBatches::Unreadable { text, error }) =
        &row.processed_batches
    else {
        panic!("read as {:?}", row.processed_batches)
    };
    assert_eq!(text, not_a_list);
    assert_eq!(store.list(&r.tag, 10).await.expect("list").len(), 1);
    assert_eq!(
        run_to(&store, &r, None, RequestOutcome::unreadable(error)).await,
        [Some(not_a_list.to_owned())]
    );
    let row = store
        .get(&r.tag, &r.request_id)
        .await
        .expect("get")
        .expect("row");
    assert_eq!((row.status, row.iteration), (RequestStatus::Failed, 1));
    let msg = row.err_message.unwrap_or_default();
    assert!(
        msg.contains("processed_batches is not a list of batches"),
        "{msg}"
    );
}
