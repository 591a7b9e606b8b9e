//! The request stores against real databases: SQLite files in temporary
//! folders and the PostgreSQL server on 127.0.0.1:5432 (or
//! `EXHAUST_TEST_PG_URL`), each test in a schema of its own so tests run in
//! parallel. Every behaviour is checked on both stores by the same code: the
//! suite of `exhaust_sources::testing::suite`, plus what only one
//! store has (an older SQLite file, Sunbird's PostgreSQL table).

use chrono::{TimeZone, Utc};
use exhaust_core::request::RequestStatus;
use exhaust_core::store::{RequestStore, Selection, Submission};
use exhaust_sources::requests::{AnyRequestStore, PgRequestStore, SqliteRequestStore};
use sqlx::{Connection, PgConnection};

use exhaust_sources::on_both_stores;
use exhaust_sources::testing::suite::{self, assert_indexes_serve, failed, request};
use exhaust_sources::testing::{StoreWorld, TestStore, fresh_schema, test_pg_url as pg_url};

on_both_stores!(submission, StoreWorld, suite::submission_rules);
on_both_stores!(claiming, StoreWorld, suite::claims_are_exclusive);
on_both_stores!(
    dead_worker,
    StoreWorld,
    suite::a_dead_workers_request_is_taken_again
);
on_both_stores!(selection, StoreWorld, suite::selection_and_listing);
on_both_stores!(indexes, StoreWorld, suite::indexes_serve_read_list_and_poll);
on_both_stores!(
    processed_text,
    StoreWorld,
    suite::processed_batches_keep_sunbird_text
);
on_both_stores!(paging, StoreWorld, suite::candidates_come_in_pages);
on_both_stores!(counts, StoreWorld, suite::counts_by_status);
on_both_stores!(channels, StoreWorld, suite::channel_pages);

/// The whole suite again on tables a DBA made from the shipped SQL
/// (`deploy/sql/`), opened with `manage_schema = false` by a role that may
/// only read and write rows: the store needs no DDL once the SQL is applied.
macro_rules! on_dba_tables {
    ($($name:ident => $body:path),* $(,)?) => {
        mod by_dba {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    $body(StoreWorld::postgres_by_dba().await).await;
                }
            )*
        }
    };
}

on_dba_tables!(
    submission => suite::submission_rules,
    claiming => suite::claims_are_exclusive,
    dead_worker => suite::a_dead_workers_request_is_taken_again,
    selection => suite::selection_and_listing,
    indexes => suite::indexes_serve_read_list_and_poll,
    processed_text => suite::processed_batches_keep_sunbird_text,
    paging => suite::candidates_come_in_pages,
    counts => suite::counts_by_status,
    channels => suite::channel_pages,
);

/// The SQL shipped for a DBA is the DDL the stores run themselves.
#[test]
fn the_shipped_sql_is_what_the_stores_run() {
    let [request, token] = exhaust_sources::requests::schema_scripts("job_request").expect("sql");
    let dir = exhaust_sources::testing::workspace_dir().join("deploy/sql");
    for (file, text) in [
        ("job_request.sql", &request),
        ("exhaust_api_token.sql", &token),
    ] {
        let shipped = std::fs::read_to_string(dir.join(file)).expect("shipped");
        assert_eq!(
            &shipped, text,
            "deploy/sql/{file} differs from the stores' DDL: write it again from \
             `exhaust schema --table job_request`"
        );
    }
}

/// `manage_schema = false` runs no DDL: a missing table, column, index or
/// key is named (all of them at once) and left missing.
#[tokio::test]
async fn a_checked_postgres_schema_names_what_is_missing() {
    use exhaust_sources::requests::Schema;
    let url = pg_url();
    let schema = fresh_schema(&url, "exhaust_chk").await.expect("schema");
    let table = format!("{schema}.job_request");
    let err = PgRequestStore::connect_with(&url, &table, Schema::Check)
        .await
        .expect_err("no table");
    assert!(
        err.to_string()
            .contains(&format!("the table {table} does not exist")),
        "{err}"
    );

    let mut conn = PgConnection::connect(&url).await.expect("PostgreSQL");
    let [request, token] = exhaust_sources::requests::schema_scripts(&table).expect("sql");
    sqlx::raw_sql(sqlx::AssertSqlSafe(request))
        .execute(&mut conn)
        .await
        .expect("applies");
    for stmt in [
        format!("DROP INDEX {schema}.job_request_pending_idx"),
        format!("ALTER TABLE {table} DROP COLUMN processed_batches"),
        format!("ALTER TABLE {table} DROP CONSTRAINT job_request_pkey"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut conn)
            .await
            .expect("drop");
    }
    let err = PgRequestStore::connect_with(&url, &table, Schema::Check)
        .await
        .expect_err("gaps");
    let message = err.to_string();
    for named in [
        "column processed_batches",
        "its primary key",
        "index job_request_pending_idx",
        "manage_schema is false",
        "deploy/sql/job_request.sql",
    ] {
        assert!(message.contains(named), "{named} not in {message}");
    }
    // Nothing was added back.
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = $1 AND table_name = 'job_request'",
    )
    .bind(&schema)
    .fetch_all(&mut conn)
    .await
    .expect("columns");
    assert!(!columns.iter().any(|c| c == "processed_batches"));
    let (indexes,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'job_request'",
    )
    .bind(&schema)
    .fetch_one(&mut conn)
    .await
    .expect("indexes");
    assert_eq!(indexes, 2, "the two indexes left, no key, none created");

    // With the table whole again, the token table is checked, not made.
    let mut fixed = String::new();
    fixed.push_str(&format!(
        "ALTER TABLE {table} ADD PRIMARY KEY (tag, request_id);"
    ));
    let [request, _] = exhaust_sources::requests::schema_scripts(&table).expect("sql");
    fixed.push_str(&request);
    sqlx::raw_sql(sqlx::AssertSqlSafe(fixed))
        .execute(&mut conn)
        .await
        .expect("fixed");
    let store = AnyRequestStore::Postgres(
        PgRequestStore::connect_with(&url, &table, Schema::Check)
            .await
            .expect("whole again"),
    );
    let err = store
        .create_token("org", "t", 0, &[7; exhaust_core::auth::TOKEN_RANDOM_BYTES])
        .await
        .expect_err("no token table");
    assert!(
        err.to_string().contains("exhaust_api_token") && err.to_string().contains("does not exist"),
        "{err}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(token))
        .execute(&mut conn)
        .await
        .expect("token table");
    store
        .create_token("org", "t", 0, &[7; exhaust_core::auth::TOKEN_RANDOM_BYTES])
        .await
        .expect("a token once the table is there");
}

/// The same check on SQLite: a missing file is refused (not created), a
/// missing index named and not made.
#[tokio::test]
async fn a_checked_sqlite_file_names_what_is_missing() {
    use exhaust_sources::requests::Schema;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exhaust.db");
    let err = SqliteRequestStore::open_with(&path, Schema::Check)
        .await
        .expect_err("no file");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!path.exists(), "the file was not created");

    let store = SqliteRequestStore::open(&path).await.expect("made");
    sqlx::query("DROP INDEX job_request_channel_submitted_idx")
        .execute(store.pool())
        .await
        .expect("drop");
    drop(store);
    let err = SqliteRequestStore::open_with(&path, Schema::Check)
        .await
        .expect_err("gap");
    assert!(
        err.to_string()
            .contains("lacks index job_request_channel_submitted_idx"),
        "{err}"
    );
    let store = SqliteRequestStore::open(&path)
        .await
        .expect("managed again");
    drop(store);
    SqliteRequestStore::open_with(&path, Schema::Check)
        .await
        .expect("whole");
}

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
    let rows = suite::all_candidates(&store, &Selection::progress_exhaust()).await;
    assert_eq!(rows.len(), 1);
}

/// The permission bits of `path` (without the file type), in octal, as
/// `ls` and `chmod` show them.
fn mode_of(path: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    format!("{:04o}", mode & 0o7777)
}

/// The SQLite file holds keys and requesters: a new file, the `-wal` and
/// `-shm` files SQLite makes beside it, the lock folder and its lock files
/// are the owner's only.
#[tokio::test]
async fn a_new_sqlite_file_is_the_owners_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exhaust.db");
    let store = AnyRequestStore::Sqlite(SqliteRequestStore::open(&path).await.expect("open"));
    let r = request("R1", serde_json::json!({"batchId": "b1"}), 1);
    store.submit(&r).await.expect("submit");
    // A claim makes a lock file; a write in WAL mode makes -wal and -shm.
    let (claim, _) = suite::claim_free(&store, &r).await;
    assert_eq!(mode_of(&path), "0600", "the database file");
    for side in ["exhaust.db-wal", "exhaust.db-shm"] {
        assert_eq!(mode_of(&dir.path().join(side)), "0600", "{side}");
    }
    let locks = dir.path().join("exhaust.db.locks");
    assert_eq!(mode_of(&locks), "0700", "the lock folder");
    let lock_files: Vec<_> = std::fs::read_dir(&locks)
        .expect("lock folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(lock_files.len(), 1, "one claim, one lock file");
    assert_eq!(mode_of(&lock_files[0]), "0600", "a lock file");
    store.release(claim).await.expect("release");
}

/// An existing file, its `-wal` and `-shm` files and its lock folder,
/// readable by group and others as an earlier version left them, lose those
/// bits when the store opens the file, and the rows stay.
#[tokio::test]
async fn an_existing_sqlite_file_loses_group_and_other_access() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exhaust.db");
    let r = request("R1", serde_json::json!({"batchId": "b1"}), 1);
    // The first store stays open, so its -wal and -shm files stay too.
    let first = SqliteRequestStore::open(&path).await.expect("open");
    first.submit(&r).await.expect("submit");
    let locks = dir.path().join("exhaust.db.locks");
    let wal = dir.path().join("exhaust.db-wal");
    let shm = dir.path().join("exhaust.db-shm");
    for (file, mode) in [
        (&path, 0o644),
        (&wal, 0o644),
        (&shm, 0o644),
        (&locks, 0o755),
    ] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).expect("chmod");
        assert_eq!(mode_of(file), format!("{mode:04o}"));
    }

    let store = AnyRequestStore::Sqlite(SqliteRequestStore::open(&path).await.expect("reopen"));
    for file in [&path, &wal, &shm] {
        assert_eq!(mode_of(file), "0600", "{}", file.display());
    }
    assert_eq!(mode_of(&locks), "0700", "the lock folder");
    let row = store.get(&r.tag, &r.request_id).await.expect("read");
    assert!(row.is_some(), "the rows stay");
    first.pool().close().await;
}

/// A PostgreSQL store's debug output never shows the password of its URL
/// (the connect options' own `Debug` does), nor does its claim's.
#[tokio::test]
async fn the_postgres_password_is_not_in_debug_output() {
    let url = pg_url();
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (userinfo, host) = rest.split_once('@').expect("a user in the test URL");
    // The test server trusts local connections and ignores a password; one
    // the URL already has is kept, and must not show either.
    let (url, password) = match userinfo.split_once(':') {
        Some((_, password)) => (url.clone(), password.to_string()),
        None => (
            format!("{scheme}://{userinfo}:pw-SECRET-1@{host}"),
            "pw-SECRET-1".to_string(),
        ),
    };
    let schema = fresh_schema(&pg_url(), "exhaust_t").await.expect("schema");
    let table = format!("{schema}.job_request");
    let store = PgRequestStore::connect(&url, &table)
        .await
        .expect("connect");
    let store = AnyRequestStore::Postgres(store);
    let r = request("R1", serde_json::json!({"batchId": "b1"}), 1);
    store.submit(&r).await.expect("submit");
    let (claim, _) = suite::claim_free(&store, &r).await;
    for text in [
        format!("{store:?}"),
        format!("{store:#?}"),
        format!("{claim:?}"),
        format!("{claim:#?}"),
    ] {
        assert!(!text.contains(&password), "the password shows: {text}");
    }
    assert!(format!("{store:?}").contains(&table), "the table shows");
    store.release(claim).await.expect("release");
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

/// Creates `table` with Sunbird's own DDL, as the job's tests create it (no
/// `batch_number`, `processed_batches` as json, timestamps with time zone).
async fn create_sunbird_table(conn: &mut PgConnection, table: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (tag varchar(100), request_id varchar(50), job_id varchar(50),
            status varchar(50), request_data jsonb, requested_by varchar(50),
            requested_channel varchar(50), dt_job_submitted timestamptz, download_urls text[],
            dt_file_created timestamptz, dt_job_completed timestamptz, execution_time integer,
            err_message varchar(300), iteration integer, encryption_key varchar(50),
            processed_batches json, PRIMARY KEY (tag, request_id))"
    )))
    .execute(conn)
    .await
    .expect("create");
}

/// Sunbird's own table, as it stands in a deployment: the store adds its
/// indexes and Sunbird's missing column, nothing else; the columns keep
/// their names and types, and the plans use the indexes.
#[tokio::test]
async fn a_sunbird_table_gets_the_indexes_and_keeps_its_columns() {
    let schema = fresh_schema(&pg_url(), "exhaust_t").await.expect("schema");
    let table = format!("{schema}.dev_job_request");
    let mut conn = PgConnection::connect(&pg_url()).await.expect("connect");
    create_sunbird_table(&mut conn, &table).await;
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
/// the table as it is, adding only Sunbird's missing column, and keeps the
/// text of the json column as Sunbird writes it.
#[tokio::test]
async fn an_existing_sunbird_table_is_used_as_it_is() {
    let schema = fresh_schema(&pg_url(), "exhaust_t").await.expect("schema");
    let table = format!("{schema}.dev_job_request");
    let mut conn = PgConnection::connect(&pg_url()).await.expect("connect");
    create_sunbird_table(&mut conn, &table).await;
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
    let rows = store.candidates(&sel, None, 10).await.expect("candidates");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.request_data, serde_json::json!({"batchFilter": ["b1"]}));
    assert_eq!(
        row.dt_job_submitted,
        Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).single()
    );
    assert_eq!(row.batch_number, None);
    let processed = row.processed().expect("a list").to_vec();
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

    // Its json column keeps Sunbird's processed_batches text byte for byte.
    suite::processed_batches_keep_sunbird_text(StoreWorld {
        t: TestStore::existing(&pg_url(), &table),
        store: AnyRequestStore::Postgres(store),
    })
    .await;
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
