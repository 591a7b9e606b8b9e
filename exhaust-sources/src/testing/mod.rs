//! PostgreSQL for tests, this workspace's and embedders': every call gets a
//! schema no other test uses, so tests run in parallel on one server and
//! leave each other alone.

use crate::requests::db_error;
use exhaust_core::store::StoreResult;
use sqlx::{Connection, PgConnection};
use std::sync::atomic::{AtomicU32, Ordering};

/// The server tests use: `$EXHAUST_TEST_PG_URL`, else the standard local
/// one (`postgres://postgres@127.0.0.1:5432/postgres`).
pub fn test_pg_url() -> String {
    std::env::var("EXHAUST_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Creates a new schema on `url` named `<prefix>_<process>_<micros>_<n>` and
/// returns its name; `prefix` must be a plain identifier.
pub async fn fresh_schema(url: &str, prefix: &str) -> StoreResult<String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    let name = format!(
        "{prefix}_{}_{micros}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| db_error("connecting to PostgreSQL", e))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&mut conn)
        .await
        .map_err(|e| db_error("creating a test schema", e))?;
    Ok(name)
}

pub mod suite;

use crate::requests::{AnyRequestStore, PgRequestStore, SqliteRequestStore};

/// A request store of a test's own: an SQLite file in a temporary folder, or
/// a fresh schema on the test PostgreSQL server ([`test_pg_url`]). The
/// folder (also a place for the test's other files) lives as long as this.
#[derive(Debug)]
pub struct TestStore {
    dir: tempfile::TempDir,
    url: String,
    table: String,
}

impl TestStore {
    /// An SQLite file, `exhaust.db` in a new temporary folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let url = dir.path().join("exhaust.db").display().to_string();
        Self {
            dir,
            url,
            table: crate::requests::DEFAULT_TABLE.into(),
        }
    }

    /// A `job_request` table in a new schema named after `prefix` on the
    /// test PostgreSQL server.
    pub async fn postgres(prefix: &str) -> Self {
        let url = test_pg_url();
        let schema = fresh_schema(&url, prefix)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (set EXHAUST_TEST_PG_URL)");
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
            url,
            table: format!("{schema}.job_request"),
        }
    }

    /// The store's URL: `postgres://...` or the SQLite file's path.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The table (schema-qualified on PostgreSQL).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The test's temporary folder.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A new handle on the store, as another worker process would open it.
    pub async fn open(&self) -> AnyRequestStore {
        if self.url.starts_with("postgres") {
            AnyRequestStore::Postgres(
                PgRequestStore::connect(&self.url, &self.table)
                    .await
                    .expect("the PostgreSQL store"),
            )
        } else {
            AnyRequestStore::Sqlite(
                SqliteRequestStore::open(&self.url)
                    .await
                    .expect("the SQLite store"),
            )
        }
    }
}
