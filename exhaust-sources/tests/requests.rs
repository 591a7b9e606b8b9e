//! The request stores against real databases: SQLite files in temporary
//! folders and the PostgreSQL server on 127.0.0.1:5432 (or
//! `EXHAUST_TEST_PG_URL`), each test in a schema of its own so tests run in
//! parallel. Every behaviour is checked on both stores by the same code.

use chrono::{TimeZone, Utc};
use exhaust_core::request::{JobRequest, ProcessedBatch, RequestOutcome, RequestStatus};
use exhaust_core::store::{Completion, RequestStore, Selection, Submission};
use exhaust_sources::requests::{
    AnyRequestStore, IndexNames, PgRequestStore, QueryPlan, SqliteRequestStore, Statement,
};
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
        outcome: RequestOutcome {
            status: RequestStatus::Failed,
            processed: vec![],
            download_urls: vec![],
            err_message: Some(msg.into()),
            count_attempt: true,
        },
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
                outcome: RequestOutcome {
                    status: RequestStatus::Success,
                    processed: vec![built],
                    download_urls: vec!["progress-exhaust/R1/b1_progress_20240115.zip".into()],
                    err_message: None,
                    count_attempt: false,
                },
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

/// The names of the indexes on the store's table, as the database lists
/// them.
async fn index_names_in_db(store: &AnyRequestStore) -> Vec<String> {
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
async fn assert_indexes_serve(store: &AnyRequestStore, tag: &str) {
    let names: IndexNames = store.indexes().clone();
    let present = index_names_in_db(store).await;
    for name in [&names.by_tag, &names.pending] {
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
}

/// Rows over many tags, most of them finished, then the plans.
async fn indexes_serve_read_list_and_poll(store: AnyRequestStore) {
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
    let pending = store
        .candidates(&Selection::progress_exhaust())
        .await
        .expect("candidates");
    assert_eq!(pending.len(), 150);
}
on_both_stores!(indexes, indexes_serve_read_list_and_poll);

/// An SQLite file written before the indexes existed gets them when opened.
#[tokio::test]
async fn an_older_sqlite_file_gets_the_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exhaust.db");
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .expect("sqlite");
        // The table as the first version of the store created it.
        sqlx::query(
            "CREATE TABLE job_request (tag TEXT NOT NULL, request_id TEXT NOT NULL,
                job_id TEXT NOT NULL, status TEXT NOT NULL, request_data TEXT, requested_by TEXT,
                requested_channel TEXT, dt_job_submitted INTEGER, download_urls TEXT,
                dt_file_created INTEGER, dt_job_completed INTEGER, execution_time INTEGER,
                err_message TEXT, iteration INTEGER NOT NULL DEFAULT 0, encryption_key TEXT,
                batch_number INTEGER, processed_batches TEXT, PRIMARY KEY (tag, request_id))",
        )
        .execute(&mut conn)
        .await
        .expect("create");
        sqlx::query(
            "INSERT INTO job_request (tag, request_id, job_id, status, request_data,
                dt_job_submitted, iteration)
             VALUES ('t:c', 'OLD', 'progress-exhaust', 'SUBMITTED', '{\"batchId\":\"b1\"}', 1, 0)",
        )
        .execute(&mut conn)
        .await
        .expect("insert");
    }
    let store = AnyRequestStore::Sqlite(SqliteRequestStore::open(&path).await.expect("open"));
    assert_indexes_serve(&store, "t:c").await;
    let rows = store
        .candidates(&Selection::progress_exhaust())
        .await
        .expect("candidates");
    assert_eq!(rows.len(), 1);
}

/// The columns of `<schema>.dev_job_request`: names and types, in order.
async fn sunbird_columns(conn: &mut PgConnection, schema: &str) -> Vec<(String, String)> {
    sqlx::query_as::<_, (String, String)>(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = $1 AND table_name = 'dev_job_request' ORDER BY ordinal_position",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .expect("columns")
}

/// Sunbird's own table, as it stands in a deployment: the store adds its
/// indexes and Sunbird's missing column, nothing else; the columns keep
/// their names and types, and the plans use the indexes.
#[tokio::test]
async fn a_sunbird_table_gets_the_indexes_and_keeps_its_columns() {
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
    let before = sunbird_columns(&mut conn, &schema).await;
    // Sunbird's API and job write rows the way they do, before and after.
    let sunbird_insert = |id: &str, minute: u32| {
        format!(
            "INSERT INTO {table} (tag, request_id, job_id, status, request_data, requested_by,
                requested_channel, dt_job_submitted, download_urls, iteration, encryption_key)
             VALUES ('t:c', '{id}', 'progress-exhaust', 'SUBMITTED', '{{\"batchId\":\"b1\"}}',
                'u', 'c', '2024-01-15 10:{minute:02}:00+00', '{{}}', 0, NULL)"
        )
    };
    for i in 0..20 {
        sqlx::query(sqlx::AssertSqlSafe(sunbird_insert(&format!("R{i:04}"), i)))
            .execute(&mut conn)
            .await
            .expect("Sunbird's insert");
    }

    let store = AnyRequestStore::Postgres(
        PgRequestStore::connect(&pg_url(), &table)
            .await
            .expect("store"),
    );
    let after = sunbird_columns(&mut conn, &schema).await;
    let mut expected = before.clone();
    expected.push(("batch_number".into(), "integer".into()));
    assert_eq!(after, expected, "only Sunbird's own batch_number is added");
    assert_indexes_serve(&store, "t:c").await;

    // Sunbird's own statements still work on the indexed table.
    sqlx::query(sqlx::AssertSqlSafe(sunbird_insert("R0099", 59)))
        .execute(&mut conn)
        .await
        .expect("Sunbird's insert after");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET status = 'SUCCESS', download_urls = '{{progress-exhaust/R0099/b1_progress_20240115.zip}}',
            dt_job_completed = now(), execution_time = 5, processed_batches = '[]'::json
         WHERE tag = 't:c' AND request_id = 'R0099'"
    )))
    .execute(&mut conn)
    .await
    .expect("Sunbird's job update");
    let listed = store.list("t:c", 2).await.expect("list");
    let ids: Vec<&str> = listed.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["R0099", "R0019"]);
}

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
