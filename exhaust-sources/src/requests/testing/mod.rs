//! PostgreSQL for tests, this workspace's and embedders': every call gets a
//! schema no other test uses, so tests run in parallel on one server and
//! leave each other alone.

use super::db_error;
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
