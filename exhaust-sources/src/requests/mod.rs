//! Request stores: where `job_request` rows live, behind
//! [`exhaust_core::store::RequestStore`].
//!
//! - [`PgRequestStore`]: Sunbird's own table in PostgreSQL (name configurable,
//!   created when absent, used as it is when present). Workers on many
//!   machines claim requests with session advisory locks, which PostgreSQL
//!   drops when a worker's connection dies.
//! - [`SqliteRequestStore`]: the embedded default, a file in the working
//!   folder, so the flow runs on a machine with no server. Workers on one
//!   machine claim requests with OS file locks, which the kernel drops when a
//!   worker dies.
//! - [`AnyRequestStore`]: either, chosen by URL at run time.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod tokens;

#[cfg(feature = "postgres")]
pub use postgres::{PgClaim, PgRequestStore, request_table_ddl};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteClaim, SqliteRequestStore};
pub use tokens::{CONSUMER_TABLE, TOKEN_TABLE, token_table_ddl};

use chrono::{DateTime, TimeZone, Utc};
use exhaust_core::request::{JobRequest, ProcessedBatch, ProcessedBatches, RequestStatus};
use exhaust_core::store::{
    ChannelQuery, Completion, PollCursor, RequestStore, Selection, StatusCounts, StoreError,
    StoreResult, Submission,
};

/// The table name Sunbird's test setups use; deployments use `<env>_job_request`.
pub const DEFAULT_TABLE: &str = "job_request";

/// The rows the worker's poll may take (SPEC section 6) on PostgreSQL,
/// where Sunbird's `iteration` may be null. The same text is the predicate
/// of the poll's partial index, so the planner matches the two.
#[cfg(feature = "postgres")]
pub(crate) const PENDING_PG: &str =
    "((status IN ('SUBMITTED', 'FAILED') AND COALESCE(iteration, 0) < 3) OR status = 'PROCESSING')";

/// [`PENDING_PG`] on SQLite, whose `iteration` is never null. SQLite uses a
/// partial index only when the query holds the index's predicate as one of
/// its terms, so the poll's query is built from this text too.
#[cfg(feature = "sqlite")]
pub(crate) const PENDING_SQLITE: &str =
    "((status IN ('SUBMITTED', 'FAILED') AND iteration < 3) OR status = 'PROCESSING')";

/// `[store]`: where `job_request` lives.
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `postgres://...` for PostgreSQL, else the path of an SQLite file
    /// (`$EXHAUST_STORE_URL`; default `exhaust.db`).
    pub url: String,
    /// The table in PostgreSQL (`$EXHAUST_STORE_TABLE`; Sunbird deploys
    /// `<env>_job_request`).
    pub table: String,
    /// Whether the store creates and extends its tables and indexes
    /// (default) or only checks them, naming what is missing, with no DDL
    /// at all: for a database whose schema a DBA owns (they apply
    /// `deploy/sql/`, or `exhaust schema`'s output).
    /// `$EXHAUST_STORE_MANAGE_SCHEMA`.
    pub manage_schema: bool,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "exhaust.db".into(),
            table: DEFAULT_TABLE.into(),
            manage_schema: true,
        }
    }
}

// Written by hand: the URL may hold the database's password.
impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &exhaust_core::redact::redact_url(&self.url))
            .field("table", &self.table)
            .field("manage_schema", &self.manage_schema)
            .finish()
    }
}

impl StoreSettings {
    /// Opens the store these settings name ([`AnyRequestStore::open`]).
    pub async fn open(&self) -> StoreResult<AnyRequestStore> {
        let schema = if self.manage_schema {
            Schema::Manage
        } else {
            Schema::Check
        };
        AnyRequestStore::open_with(&self.url, &self.table, schema).await
    }
}

/// The SQL scripts a DBA applies on PostgreSQL for the request table
/// `table` (optionally `schema.table`) before running with
/// `[store] manage_schema = false`: the request table with its indexes,
/// and the API token table (`[auth] mode = "token"` only). The same
/// statements the stores run under [`Schema::Manage`]; for the default
/// table they are `deploy/sql/job_request.sql` and
/// `deploy/sql/exhaust_api_token.sql` (a test keeps them the same), and
/// `exhaust schema` prints them for a configured table.
#[cfg(feature = "postgres")]
pub fn schema_scripts(table: &str) -> StoreResult<[String; 2]> {
    let script = |head: &str, statements: &[String]| {
        let mut out = String::from(head);
        for stmt in statements {
            out.push('\n');
            out.push_str(stmt);
            out.push_str(";\n");
        }
        out
    };
    Ok([
        script(
            &format!(
                "-- exhaust's request table {table} and its indexes (PostgreSQL).\n\
                 -- Sunbird's job_request columns; the indexes serve read, list, the\n\
                 -- worker's poll and the console's list. Every statement is IF NOT\n\
                 -- EXISTS: safe on Sunbird's existing table. Apply as its owner, then\n\
                 -- run exhaust with [store] manage_schema = false.\n"
            ),
            &request_table_ddl(table)?,
        ),
        script(
            &format!(
                "-- exhaust's API token table beside {table} (PostgreSQL), needed only\n\
                 -- by exhaust-server's [auth] mode = \"token\". Tokens are kept as\n\
                 -- SHA-256 hashes.\n"
            ),
            &[token_table_ddl(table)?],
        ),
    ])
}

/// Who keeps the stores' tables and indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schema {
    /// The store creates what is absent at start (`CREATE TABLE`, `ALTER
    /// TABLE ... ADD COLUMN`, `CREATE INDEX`, all `IF NOT EXISTS`).
    #[default]
    Manage,
    /// A DBA does: the store runs no DDL and refuses to start, naming
    /// every missing column and index, when the tables are not complete.
    Check,
}

/// The request table's columns, Sunbird's, in Sunbird's order.
pub const REQUEST_COLUMNS: [&str; 17] = [
    "tag",
    "request_id",
    "job_id",
    "status",
    "request_data",
    "requested_by",
    "requested_channel",
    "dt_job_submitted",
    "download_urls",
    "dt_file_created",
    "dt_job_completed",
    "execution_time",
    "err_message",
    "iteration",
    "encryption_key",
    "batch_number",
    "processed_batches",
];

/// What a [`Schema::Check`] found missing from a table, or `Ok` when
/// nothing is: `have_*` are what the database lists, `key` whether the
/// primary key on `(tag, request_id)` (or the token id) is there.
pub(crate) fn schema_gaps(
    table: &str,
    have_columns: &[String],
    want_columns: &[&str],
    have_indexes: &[String],
    want_indexes: &[&str],
    key: bool,
    fix: &str,
) -> StoreResult<()> {
    if have_columns.is_empty() {
        return Err(StoreError::Refused(format!(
            "the table {table} does not exist and [store] manage_schema is false: \
             {fix}"
        )));
    }
    let mut missing: Vec<String> = want_columns
        .iter()
        .filter(|c| !have_columns.iter().any(|h| h == *c))
        .map(|c| format!("column {c}"))
        .collect();
    if !key {
        missing.push("its primary key".into());
    }
    missing.extend(
        want_indexes
            .iter()
            .filter(|i| !have_indexes.iter().any(|h| h == *i))
            .map(|i| format!("index {i}")),
    );
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "the table {table} lacks {} and [store] manage_schema is false: {fix}",
            missing.join(", ")
        )))
    }
}

/// Checks a table name (optionally `schema.table`) and quotes it; names are
/// configuration, but they go into SQL text, so only plain identifiers pass.
pub(crate) fn quoted_table(name: &str) -> StoreResult<(Option<String>, String, String)> {
    let parts: Vec<&str> = name.split('.').collect();
    let plain = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match parts.as_slice() {
        [t] if plain(t) => Ok((None, t.to_string(), format!("\"{t}\""))),
        [s, t] if plain(s) && plain(t) => Ok((
            Some(s.to_string()),
            t.to_string(),
            format!("\"{s}\".\"{t}\""),
        )),
        _ => Err(StoreError::Refused(format!(
            "table name {name:?} is not a plain identifier (letters, digits, _; optionally schema.table)"
        ))),
    }
}

/// PostgreSQL cuts identifiers at 63 bytes: two index names cut to the
/// same text would make the second `CREATE INDEX IF NOT EXISTS` a no-op.
const MAX_IDENTIFIER: usize = 63;

/// The name of one of the stores' indexes on `table` (the table's own name,
/// without its schema): `<table>_<what>_idx`, or, when that is longer than
/// PostgreSQL keeps, the table's name cut and followed by 8 hex digits of
/// its MD5, so names stay distinct per table.
pub fn index_name(table: &str, what: &str) -> String {
    let name = format!("{table}_{what}_idx");
    if name.len() <= MAX_IDENTIFIER {
        return name;
    }
    use md5::{Digest, Md5};
    let hash: String = Md5::digest(table.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = MAX_IDENTIFIER - (what.len() + hash.len() + 6);
    // Table names are ASCII identifiers (checked before), so any cut is on
    // a character boundary.
    format!("{}_{hash}_{what}_idx", &table[..keep.min(table.len())])
}

/// The indexes a store keeps on its request table, created when absent.
/// They only add to Sunbird's table: no column is added or renamed, so
/// Sunbird's API and job keep reading and writing it as they always did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexNames {
    /// `(tag, dt_job_submitted DESC, request_id)`: list (a tag's requests,
    /// newest first, limited) reads only the rows it returns, in order.
    /// Read (tag and request id) uses the primary key.
    pub by_tag: String,
    /// `(job_id, dt_job_submitted, request_id)` over pending rows only
    /// ([`PENDING_PG`]): the worker's poll reads pending rows, not the
    /// history of finished ones.
    pub pending: String,
    /// `(requested_channel, dt_job_submitted DESC, request_id)`: the
    /// console's list of a channel's requests, newest first, a page at a
    /// time, reads the channel's rows in order and nothing else.
    pub by_channel: String,
}

impl IndexNames {
    /// The names for `table` (without its schema).
    pub fn for_table(table: &str) -> Self {
        Self {
            by_tag: index_name(table, "tag_submitted"),
            pending: index_name(table, "pending"),
            by_channel: index_name(table, "channel_submitted"),
        }
    }
}

/// One of a store's own statements, to ask the database how it would run
/// it (`PgRequestStore::explain`, `SqliteRequestStore::explain`): which
/// indexes serve read, list and the worker's poll.
#[derive(Debug, Clone)]
pub enum Statement<'a> {
    /// [`RequestStore::get`].
    Read {
        /// The stored tag.
        tag: &'a str,
        /// The request id.
        request_id: &'a str,
    },
    /// [`RequestStore::list`].
    List {
        /// The stored tag.
        tag: &'a str,
        /// Most rows.
        limit: usize,
    },
    /// [`RequestStore::candidates`].
    Poll(&'a Selection),
    /// [`RequestStore::list_channel`].
    Channel(&'a ChannelQuery),
}

/// What a database plans for a [`Statement`], reduced to what matters for
/// cost: which indexes it reads, whether it reads a whole table or index,
/// whether it sorts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryPlan {
    /// The indexes read, by name.
    pub indexes: Vec<String>,
    /// Whether a whole table (or a whole index) is read.
    pub full_scan: bool,
    /// Whether rows are sorted after reading (the order does not come from
    /// an index).
    pub sorts: bool,
    /// The plan as the database wrote it, for messages.
    pub text: String,
}

/// Either store, chosen by URL: `postgres://` or `postgresql://` for
/// PostgreSQL, `sqlite://<path>` or a plain path for SQLite.
#[derive(Debug, Clone)]
// One store per process: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnyRequestStore {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PgRequestStore),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteRequestStore),
}

/// A claim of an [`AnyRequestStore`].
#[derive(Debug)]
pub enum AnyClaim {
    /// On PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PgClaim),
    /// On SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteClaim),
}

impl AnyRequestStore {
    /// Opens the store at `url` with this table name (PostgreSQL only; the
    /// SQLite file always uses `job_request`).
    pub async fn open(url: &str, table: &str) -> StoreResult<Self> {
        Self::open_with(url, table, Schema::Manage).await
    }

    /// [`AnyRequestStore::open`], with the tables kept as `schema` says.
    pub async fn open_with(url: &str, table: &str, schema: Schema) -> StoreResult<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Self::Postgres(
                PgRequestStore::connect_with(url, table, schema).await?,
            ));
            #[cfg(not(feature = "postgres"))]
            return Err(StoreError::Refused(
                "a PostgreSQL store needs a build with the cargo feature postgres".into(),
            ));
        }
        let _ = (table, schema);
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        #[cfg(feature = "sqlite")]
        return Ok(Self::Sqlite(
            SqliteRequestStore::open_with(path, schema).await?,
        ));
        #[cfg(not(feature = "sqlite"))]
        return Err(StoreError::Refused(format!(
            "{path:?} names an SQLite file, which needs a build with the cargo feature sqlite"
        )));
    }

    /// Whether the store keeps its tables or only checks them.
    pub fn schema(&self) -> Schema {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.schema(),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.schema(),
        }
    }

    /// Which kind of store, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "postgres",
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => "sqlite",
        }
    }

    /// The names of the indexes the store keeps on its table.
    pub fn indexes(&self) -> &IndexNames {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.indexes(),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.indexes(),
        }
    }

    /// How the database would run one of the store's statements
    /// ([`PgRequestStore::explain`], [`SqliteRequestStore::explain`]).
    pub async fn explain(&self, statement: &Statement<'_>) -> StoreResult<QueryPlan> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.explain(statement).await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.explain(statement).await,
        }
    }
}

fn wrong_claim() -> StoreError {
    StoreError::Refused("a claim of one store was given to another".into())
}

impl RequestStore for AnyRequestStore {
    type Claim = AnyClaim;

    async fn candidates(
        &self,
        selection: &Selection,
        after: Option<&PollCursor>,
        limit: usize,
    ) -> StoreResult<Vec<JobRequest>> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.candidates(selection, after, limit).await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.candidates(selection, after, limit).await,
        }
    }

    async fn count_by_status(&self) -> StoreResult<StatusCounts> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.count_by_status().await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.count_by_status().await,
        }
    }

    async fn claim(
        &self,
        tag: &str,
        request_id: &str,
        selection: &Selection,
    ) -> StoreResult<Option<(AnyClaim, JobRequest)>> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s
                .claim(tag, request_id, selection)
                .await?
                .map(|(c, r)| (AnyClaim::Postgres(c), r)),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s
                .claim(tag, request_id, selection)
                .await?
                .map(|(c, r)| (AnyClaim::Sqlite(c), r)),
        })
    }

    async fn mark_processing(&self, claim: &mut AnyClaim) -> StoreResult<()> {
        match (self, claim) {
            #[cfg(feature = "postgres")]
            (Self::Postgres(s), AnyClaim::Postgres(c)) => s.mark_processing(c).await,
            #[cfg(feature = "sqlite")]
            (Self::Sqlite(s), AnyClaim::Sqlite(c)) => s.mark_processing(c).await,
            #[allow(unreachable_patterns)]
            _ => Err(wrong_claim()),
        }
    }

    async fn record_processed(
        &self,
        claim: &mut AnyClaim,
        processed: &[ProcessedBatch],
    ) -> StoreResult<()> {
        match (self, claim) {
            #[cfg(feature = "postgres")]
            (Self::Postgres(s), AnyClaim::Postgres(c)) => s.record_processed(c, processed).await,
            #[cfg(feature = "sqlite")]
            (Self::Sqlite(s), AnyClaim::Sqlite(c)) => s.record_processed(c, processed).await,
            #[allow(unreachable_patterns)]
            _ => Err(wrong_claim()),
        }
    }

    async fn finish(&self, claim: AnyClaim, completion: &Completion) -> StoreResult<()> {
        match (self, claim) {
            #[cfg(feature = "postgres")]
            (Self::Postgres(s), AnyClaim::Postgres(c)) => s.finish(c, completion).await,
            #[cfg(feature = "sqlite")]
            (Self::Sqlite(s), AnyClaim::Sqlite(c)) => s.finish(c, completion).await,
            #[allow(unreachable_patterns)]
            _ => Err(wrong_claim()),
        }
    }

    async fn release(&self, claim: AnyClaim) -> StoreResult<()> {
        match (self, claim) {
            #[cfg(feature = "postgres")]
            (Self::Postgres(s), AnyClaim::Postgres(c)) => s.release(c).await,
            #[cfg(feature = "sqlite")]
            (Self::Sqlite(s), AnyClaim::Sqlite(c)) => s.release(c).await,
            #[allow(unreachable_patterns)]
            _ => Err(wrong_claim()),
        }
    }

    async fn submit(&self, request: &JobRequest) -> StoreResult<Submission> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.submit(request).await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.submit(request).await,
        }
    }

    async fn get(&self, tag: &str, request_id: &str) -> StoreResult<Option<JobRequest>> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.get(tag, request_id).await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.get(tag, request_id).await,
        }
    }

    async fn by_id(&self, request_id: &str) -> StoreResult<Vec<JobRequest>> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.by_id(request_id).await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.by_id(request_id).await,
        }
    }

    async fn list(&self, tag: &str, limit: usize) -> StoreResult<Vec<JobRequest>> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.list(tag, limit).await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.list(tag, limit).await,
        }
    }

    async fn list_channel(&self, query: &ChannelQuery) -> StoreResult<Vec<JobRequest>> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.list_channel(query).await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.list_channel(query).await,
        }
    }

    async fn recent(
        &self,
        status: Option<RequestStatus>,
        limit: usize,
    ) -> StoreResult<Vec<JobRequest>> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.recent(status, limit).await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.recent(status, limit).await,
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.ping().await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.ping().await,
        }
    }
}

/// What a `SELECT status, COUNT(*) ... GROUP BY status` gives.
pub(crate) fn status_counts(rows: Vec<(String, i64)>) -> StatusCounts {
    let mut counts = StatusCounts::default();
    for (status, n) in rows {
        counts.add(&status, u64::try_from(n).unwrap_or(0));
    }
    counts
}

/// Maps a driver error: connection-level failures are retryable, the rest
/// is a refusal that names the operation.
pub(crate) fn db_error(what: &str, e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(format!("{what}: {e}")),
        sqlx::Error::Database(ref d) if d.message().contains("database is locked") => {
            StoreError::Unavailable(format!("{what}: {e}"))
        }
        other => StoreError::Refused(format!("{what}: {other}")),
    }
}

/// A `job_request` row as the core's [`JobRequest`], for either database;
/// `download_urls` is decoded by the caller (a text array in PostgreSQL, JSON
/// text in SQLite).
pub(crate) fn row_to_request<R>(r: &R, download_urls: Vec<String>) -> StoreResult<JobRequest>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let get = |e: sqlx::Error| StoreError::BadData(format!("job_request row: {e}"));
    let text = |c: &str| r.try_get::<Option<String>, _>(c).map_err(get);
    let number = |c: &str| r.try_get::<Option<i64>, _>(c).map_err(get);
    let required = |c: &str| {
        text(c)?.ok_or_else(|| StoreError::BadData(format!("job_request row without {c}")))
    };
    Ok(JobRequest {
        tag: required("tag")?,
        request_id: required("request_id")?,
        job_id: required("job_id")?,
        status: status_of(&required("status")?)?,
        request_data: request_data_of(text("request_data")?),
        requested_by: text("requested_by")?.unwrap_or_default(),
        requested_channel: text("requested_channel")?.unwrap_or_default(),
        dt_job_submitted: time_of(number("dt_job_submitted")?),
        download_urls,
        dt_file_created: time_of(number("dt_file_created")?),
        dt_job_completed: time_of(number("dt_job_completed")?),
        execution_time: number("execution_time")?,
        err_message: text("err_message")?,
        iteration: r
            .try_get::<Option<i32>, _>("iteration")
            .map_err(get)?
            .unwrap_or(0),
        encryption_key: text("encryption_key")?,
        batch_number: r.try_get::<Option<i32>, _>("batch_number").map_err(get)?,
        // Text that is not a list of batches is kept with the reason, so
        // the row stays readable (see `ProcessedBatches`).
        processed_batches: text("processed_batches")?.map(ProcessedBatches::read),
    })
}

pub(crate) fn status_of(text: &str) -> StoreResult<RequestStatus> {
    RequestStatus::parse(text)
        .ok_or_else(|| StoreError::BadData(format!("unknown request status {text:?}")))
}

/// `request_data` as stored; text that is not JSON is kept as a string, so
/// the request fails with a message instead of blocking the run.
pub(crate) fn request_data_of(text: Option<String>) -> serde_json::Value {
    match text {
        None => serde_json::Value::Null,
        Some(t) => serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)),
    }
}

pub(crate) fn time_of(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

/// The columns of `job_request` after a completion, as the stores bind
/// them (which columns change is the core's rule, `Completion::column_changes`).
pub(crate) struct CompletionColumns {
    pub status: &'static str,
    /// `Some` to overwrite `processed_batches`, `None` to leave it.
    pub processed: Option<String>,
    /// `Some` to overwrite `download_urls`, `None` to leave them.
    pub download_urls: Option<Vec<String>>,
    pub err_message: Option<String>,
    pub iteration_step: i32,
    /// `Some` for SUCCESS and FAILED.
    pub completed_at: Option<DateTime<Utc>>,
    pub execution_time: i64,
}

impl CompletionColumns {
    /// The core's column changes, encoded for the stores.
    pub fn new(c: &Completion) -> Self {
        let changes = c.column_changes();
        Self {
            status: changes.status.as_str(),
            processed: changes
                .processed_batches
                .as_deref()
                .map(exhaust_core::request::processed_json),
            download_urls: changes.download_urls,
            err_message: changes.err_message,
            iteration_step: changes.iteration_step,
            completed_at: changes.completed_at,
            execution_time: changes.execution_time_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_the_table_and_stay_distinct_when_cut() {
        assert_eq!(
            IndexNames::for_table("dev_job_request"),
            IndexNames {
                by_tag: "dev_job_request_tag_submitted_idx".into(),
                pending: "dev_job_request_pending_idx".into(),
                by_channel: "dev_job_request_channel_submitted_idx".into(),
            }
        );
        let long_a = format!("{}a", "t".repeat(62));
        let long_b = format!("{}b", "t".repeat(62));
        let a = IndexNames::for_table(&long_a);
        let b = IndexNames::for_table(&long_b);
        for name in [&a.by_tag, &a.pending, &b.by_tag, &b.pending] {
            assert!(name.len() <= MAX_IDENTIFIER, "{name}");
        }
        assert_ne!(a.by_tag, b.by_tag);
        assert_ne!(a.pending, b.pending);
        assert_ne!(a.by_tag, a.pending);
        assert!(a.pending.ends_with("_pending_idx"), "{}", a.pending);
    }
}
