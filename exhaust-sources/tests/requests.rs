//! The request stores against real databases: SQLite files in temporary
//! folders and the PostgreSQL server on 127.0.0.1:5432 (or
//! `EXHAUST_TEST_PG_URL`), each test in a schema of its own so tests run in
//! parallel. Every behaviour is checked on both stores by the same code.

use chrono::{TimeZone, Utc};
use exhaust_core::request::{JobRequest, ProcessedBatch, RequestStatus};
use exhaust_core::store::{Completion, RequestStore, Selection, Submission};
use exhaust_sources::requests::{AnyRequestStore, PgRequestStore, SqliteRequestStore};
use sqlx::{Connection, PgConnection};

use std::time::Duration;

use exhaust_sources::requests::testing::{fresh_schema, test_pg_url as pg_url};

async fn pg_store() -> AnyRequestStore {
    let schema = fresh_schema(&pg_url(), "exhaust_t")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (set EXHAUST_TEST_PG_URL)");
    AnyRequestStore::Postgres(
        PgRequestStore::connect(&pg_url(), &format!("{schema}.job_request"))
            .await
            .expect("pg store"),
    )
}

async fn sqlite_store(dir: &tempfile::TempDir) -> AnyRequestStore {
    AnyRequestStore::Sqlite(
        SqliteRequestStore::open(dir.path().join("exhaust.db"))
            .await
            .expect("sqlite store"),
    )
}

fn request(id: &str, data: serde_json::Value, minute: u32) -> JobRequest {
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

fn failed(msg: &str) -> Completion {
    Completion {
        status: RequestStatus::Failed,
        processed: vec![],
        download_urls: vec![],
        err_message: Some(msg.into()),
        count_attempt: true,
        completed_at: Utc.with_ymd_and_hms(2024, 1, 15, 11, 0, 0).unwrap(),
        execution_time_ms: 5,
    }
}

/// Runs one scenario on a fresh SQLite file and a fresh PostgreSQL schema.
macro_rules! on_both_stores {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().expect("tempdir");
                $body(sqlite_store(&dir).await).await;
            }
            #[tokio::test]
            async fn postgres() {
                $body(pg_store().await).await;
            }
        }
    };
}

async fn submission_rules(store: AnyRequestStore) {
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
    assert!(store.candidates(&sel).await.expect("candidates").is_empty());

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
    assert_eq!(store.candidates(&sel).await.expect("candidates").len(), 1);
}
on_both_stores!(submission, submission_rules);

async fn claims_are_exclusive(store: AnyRequestStore) {
    let r = request("R1", serde_json::json!({"batchId": "b1"}), 0);
    store.submit(&r).await.expect("submit");
    let sel = Selection::progress_exhaust();
    let (mut first, row) = store
        .claim(&r.tag, &r.request_id, &sel)
        .await
        .expect("claim")
        .expect("free");
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
        exhaust_core::request::parse_processed(row.processed_batches.as_deref()).expect("json"),
        vec![built.clone()]
    );
    store
        .finish(
            second,
            &Completion {
                status: RequestStatus::Success,
                processed: vec![built],
                download_urls: vec!["progress-exhaust/R1/b1_progress_20240115.zip".into()],
                err_message: None,
                count_attempt: false,
                completed_at: Utc.with_ymd_and_hms(2024, 1, 15, 11, 0, 0).unwrap(),
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
on_both_stores!(claiming, claims_are_exclusive);

async fn a_dead_workers_request_is_taken_again(store: AnyRequestStore) {
    let r = request("R1", serde_json::json!({"batchId": "b1"}), 0);
    store.submit(&r).await.expect("submit");
    let sel = Selection::progress_exhaust();
    let (mut claim, _) = store
        .claim(&r.tag, &r.request_id, &sel)
        .await
        .expect("claim")
        .expect("free");
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
on_both_stores!(dead_worker, a_dead_workers_request_is_taken_again);

async fn selection_and_listing(store: AnyRequestStore) {
    let mut a = request("A", serde_json::json!({"batchId": "b1"}), 5);
    a.batch_number = Some(1);
    let mut b = request("B", serde_json::json!({"batchId": "b2"}), 1);
    b.batch_number = Some(2);
    let mut other = request("C", serde_json::json!({"batchId": "b3"}), 3);
    other.job_id = "response-exhaust".into();
    for r in [&a, &b, &other] {
        store.submit(r).await.expect("submit");
    }
    let all = store
        .candidates(&Selection::progress_exhaust())
        .await
        .expect("candidates");
    // Oldest first; other jobs' requests are not ours.
    let ids: Vec<&str> = all.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["B", "A"]);
    let numbered = store
        .candidates(&Selection {
            batch_number: Some(1),
            ..Selection::progress_exhaust()
        })
        .await
        .expect("candidates");
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
on_both_stores!(selection, selection_and_listing);

/// Sunbird's own DDL, as the job's tests create it (no `batch_number`,
/// `processed_batches` as json, timestamps with time zone): the store uses
/// the table as it is, adding only Sunbird's missing column.
#[tokio::test]
async fn an_existing_sunbird_table_is_used_as_it_is() {
    let schema = fresh_schema(&pg_url(), "exhaust_t").await.expect("schema");
    let table = format!("{schema}.dev_job_request");
    let mut conn = PgConnection::connect(&pg_url()).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (tag varchar(100), request_id varchar(50), job_id varchar(50),
            status varchar(50), request_data jsonb, requested_by varchar(50),
            requested_channel varchar(50), dt_job_submitted timestamptz, download_urls text[],
            dt_file_created timestamptz, dt_job_completed timestamptz, execution_time integer,
            err_message varchar(300), iteration integer, encryption_key varchar(50),
            processed_batches json, PRIMARY KEY (tag, request_id))"
    )))
    .execute(&mut conn)
    .await
    .expect("create");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (tag, request_id, job_id, status, request_data, requested_by,
            requested_channel, dt_job_submitted, iteration, processed_batches)
         VALUES ('t:c', 'OLD', 'progress-exhaust', 'FAILED', '{{\"batchFilter\":[\"b1\"]}}', 'u',
            'c', '2024-01-15 10:00:00+00', 1,
            '[{{\"batchId\":\"b1\",\"filePath\":\"progress-exhaust/OLD/b1_progress_20240115.csv\",\"fileSize\":9}}]')"
    )))
    .execute(&mut conn)
    .await
    .expect("insert");

    let store = PgRequestStore::connect(&pg_url(), &table)
        .await
        .expect("store");
    let sel = Selection::progress_exhaust();
    let rows = store.candidates(&sel).await.expect("candidates");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.request_data, serde_json::json!({"batchFilter": ["b1"]}));
    assert_eq!(
        row.dt_job_submitted,
        Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).single()
    );
    assert_eq!(row.batch_number, None);
    let processed =
        exhaust_core::request::parse_processed(row.processed_batches.as_deref()).expect("json");
    assert_eq!(processed[0].channel, None);
    assert_eq!(processed[0].file_size, 9);

    let (mut claim, _) = store
        .claim("t:c", "OLD", &sel)
        .await
        .expect("claim")
        .expect("free");
    store.mark_processing(&mut claim).await.expect("processing");
    store
        .record_processed(&mut claim, &processed)
        .await
        .expect("record");
    store.finish(claim, &failed("x")).await.expect("finish");
    let row = store.get("t:c", "OLD").await.expect("get").expect("row");
    assert_eq!((row.status, row.iteration), (RequestStatus::Failed, 2));

    let mut fresh = request("NEW", serde_json::json!({"batchId": "b9"}), 0);
    fresh.tag = "t:c".into();
    assert!(matches!(
        store.submit(&fresh).await.expect("submit"),
        Submission::Created(_)
    ));
}

#[tokio::test]
async fn a_table_name_that_is_not_an_identifier_is_refused() {
    let err = PgRequestStore::connect(&pg_url(), "job_request; DROP TABLE x")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("not a plain identifier"), "{err}");
}

#[tokio::test]
async fn an_unreachable_postgres_is_unavailable_not_a_panic() {
    let err = PgRequestStore::connect("postgres://postgres@127.0.0.1:1/postgres", "job_request")
        .await
        .expect_err("down");
    assert!(
        matches!(err, exhaust_core::store::StoreError::Unavailable(_)),
        "{err}"
    );
}
