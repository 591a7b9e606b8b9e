//! Test support (cargo feature `testing`), for this workspace's tests and
//! embedders': never in a production build.
//!
//! - [`TestStore`]: a request store of a test's own (an SQLite file in a
//!   temporary folder, or a fresh schema on the test PostgreSQL server, so
//!   tests run in parallel on one server and leave each other alone), and
//!   [`suite`], the request-store suite every store's tests run;
//! - [`TestWorld`] and [`on_both_stores!`](crate::on_both_stores): one
//!   scenario, run once on SQLite and once on PostgreSQL;
//! - [`conformance_snapshot`] and [`sample_snapshot`]: the fixtures;
//! - [`live`]: the live stores loaded from a snapshot folder (the CQL server
//!   in process, the local Redis, the search API faked);
//! - [`signals`]: a worker process signalled at random moments.

use crate::requests::db_error;
use exhaust_core::store::StoreResult;
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::path::{Path, PathBuf};
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

/// Sunbird's own test fixture as a snapshot folder
/// (`shared/conformance/sunbird-lern/snapshot`, beside the clone).
pub fn conformance_snapshot() -> PathBuf {
    workspace_dir().join("../shared/conformance/sunbird-lern/snapshot")
}

/// The bundled sample snapshot (`examples/sample-snapshot`).
pub fn sample_snapshot() -> PathBuf {
    workspace_dir().join("examples/sample-snapshot")
}

/// The workspace's folder (this crate's parent).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What a scenario runs in, made once on each store by
/// [`on_both_stores!`](crate::on_both_stores): each test crate's world (a
/// store of its own and whatever else the scenario needs) implements it.
pub trait TestWorld: Sized {
    /// The world over a new SQLite file.
    fn sqlite() -> impl Future<Output = Self>;
    /// The world over a new PostgreSQL schema.
    fn postgres() -> impl Future<Output = Self>;
}

/// A request store of a test's own, opened: the store and the folder that
/// keeps it. The [`suite`]'s scenarios take it.
pub struct StoreWorld {
    /// What keeps the store (its folder, its schema's name).
    pub t: TestStore,
    /// The store.
    pub store: AnyRequestStore,
}

impl TestWorld for StoreWorld {
    async fn sqlite() -> Self {
        let t = TestStore::sqlite();
        let store = t.open().await;
        Self { t, store }
    }

    async fn postgres() -> Self {
        let t = TestStore::postgres("exhaust_t").await;
        let store = t.open().await;
        Self { t, store }
    }
}

impl StoreWorld {
    /// A store on tables made by the shipped SQL, opened by a role without
    /// DDL rights under [`Schema::Check`] ([`TestStore::postgres_by_dba`]).
    pub async fn postgres_by_dba() -> Self {
        let t = TestStore::postgres_by_dba("exhaust_dba").await;
        let store = t.open().await;
        Self { t, store }
    }
}

/// Runs a scenario on both stores: `on_both_stores!(name, World, body)`
/// makes the module `name` with the tests `sqlite` and `postgres`, each
/// calling `body(world)` with a world made by [`TestWorld`].
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident, $world:ty, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let world = <$world as $crate::testing::TestWorld>::sqlite().await;
                ($body)(world).await;
            }
            #[tokio::test]
            async fn postgres() {
                let world = <$world as $crate::testing::TestWorld>::postgres().await;
                ($body)(world).await;
            }
        }
    };
}

pub mod live;
pub mod signals;
pub mod suite;

use crate::requests::{AnyRequestStore, PgRequestStore, Schema, SqliteRequestStore};

/// `url` (`postgres://[user@]host...`) as `user` with `password`.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}")
}

/// A request store of a test's own: an SQLite file in a temporary folder, or
/// a fresh schema on the test PostgreSQL server ([`test_pg_url`]). The
/// folder (also a place for the test's other files) lives as long as this.
#[derive(Debug)]
pub struct TestStore {
    dir: tempfile::TempDir,
    url: String,
    table: String,
    schema: Schema,
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
            schema: Schema::Manage,
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
            schema: Schema::Manage,
        }
    }

    /// A `job_request` table made in a new schema by the shipped SQL
    /// (`deploy/sql/`), as a DBA would, and opened under [`Schema::Check`]
    /// by a role of its own that may read and write the tables and do
    /// nothing else: no DDL can have run. (The role, like the schema, is
    /// left on the test server: names start with `prefix`.)
    pub async fn postgres_by_dba(prefix: &str) -> Self {
        let url = test_pg_url();
        let schema = fresh_schema(&url, prefix)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (set EXHAUST_TEST_PG_URL)");
        let mut conn = PgConnection::connect(&url).await.expect("PostgreSQL");
        let run = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
        run(format!("SET search_path TO {schema}"))
            .execute(&mut conn)
            .await
            .expect("search path");
        for file in ["job_request.sql", "exhaust_api_token.sql"] {
            let path = workspace_dir().join("deploy/sql").join(file);
            let sql = std::fs::read_to_string(&path).expect("the shipped SQL");
            run(sql)
                .execute(&mut conn)
                .await
                .expect("the shipped SQL applies");
        }
        let role = format!("{schema}_dml");
        run(format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'dml';
             GRANT USAGE ON SCHEMA {schema} TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};"
        ))
        .execute(&mut conn)
        .await
        .expect("a role without DDL rights");
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
            url: with_user(&url, &role, "dml"),
            table: format!("{schema}.job_request"),
            schema: Schema::Check,
        }
    }

    /// A store at `url` with `table`, made by the test itself (a table of
    /// Sunbird's own DDL, say).
    pub fn existing(url: &str, table: &str) -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
            url: url.to_string(),
            table: table.to_string(),
            schema: Schema::Manage,
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
                PgRequestStore::connect_with(&self.url, &self.table, self.schema)
                    .await
                    .expect("the PostgreSQL store"),
            )
        } else {
            AnyRequestStore::Sqlite(
                SqliteRequestStore::open_with(&self.url, self.schema)
                    .await
                    .expect("the SQLite store"),
            )
        }
    }
}
