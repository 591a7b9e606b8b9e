//! `job_request` in an SQLite file: the embedded default, so that `exhaust
//! submit` and `exhaust run` work on a machine with no database server.
//!
//! The columns are Sunbird's, stored the SQLite way: `request_data`,
//! `download_urls` and `processed_batches` as JSON text, times as epoch
//! milliseconds. Workers claim requests with an OS file lock per request in
//! the folder `<db file>.locks/`; the kernel releases it when the claim is
//! dropped or the process dies, so a request left `PROCESSING` by a dead
//! worker is claimed again. (Lock files are left in place: deleting a lock
//! file that another process has open would let two processes lock two
//! different files for one request.)
//!
//! The same two indexes as on PostgreSQL ([`IndexNames`]) are created when
//! absent, on new files and on files written by earlier versions.
//!
//! The file holds requests' encryption keys and requesters, so only its
//! owner may read it: it is created with mode 0600, and an existing file (or
//! its `-wal`, `-shm` or `-journal` file, left by a crash) loses any group
//! and other bits when the store opens it. SQLite creates its `-wal` and
//! `-shm` files with the main file's permission bits. The lock folder is
//! 0700 and its lock files 0600.

use super::{
    CompletionColumns, DEFAULT_TABLE, IndexNames, PENDING_SQLITE, QueryPlan, REQUEST_COLUMNS,
    Schema, Statement, db_error, schema_gaps,
};
use exhaust_core::request::{JobRequest, ProcessedBatch, RequestStatus, processed_json};
use exhaust_core::store::{
    ChannelQuery, Completion, POLL_PAGE, PollCursor, RequestStore, Selection, StatusCounts,
    StoreError, StoreResult, Submission,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The request store in an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteRequestStore {
    pool: SqlitePool,
    locks: PathBuf,
    indexes: IndexNames,
    schema: Schema,
    /// Taken around every write. SQLite has one writer at a time; without
    /// this, the pool's connections meet on its lock and wait in its busy
    /// handler, which sleeps (1 ms, then longer, up to 100 ms) instead of
    /// queueing, so a burst of submits had long tails. Reads never take it
    /// (WAL: readers run beside the writer). Other processes on the file
    /// still wait in the busy handler.
    writes: Arc<tokio::sync::Mutex<()>>,
}

/// A request held by this worker: the open, locked lock file.
#[derive(Debug)]
pub struct SqliteClaim {
    _lock: File,
    tag: String,
    request_id: String,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS job_request (
    tag TEXT NOT NULL,
    request_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    status TEXT NOT NULL,
    request_data TEXT,
    requested_by TEXT,
    requested_channel TEXT,
    dt_job_submitted INTEGER,
    download_urls TEXT,
    dt_file_created INTEGER,
    dt_job_completed INTEGER,
    execution_time INTEGER,
    err_message TEXT,
    iteration INTEGER NOT NULL DEFAULT 0,
    encryption_key TEXT,
    batch_number INTEGER,
    processed_batches TEXT,
    PRIMARY KEY (tag, request_id))";

const COLUMNS: &str = "SELECT tag, request_id, job_id, status, request_data, requested_by,
    requested_channel, dt_job_submitted, download_urls, dt_file_created, dt_job_completed,
    execution_time, err_message, iteration, encryption_key, batch_number, processed_batches
    FROM job_request";

impl SqliteRequestStore {
    /// Opens (creating when missing) the database file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(path, Schema::Manage).await
    }

    /// Opens the database file at `path`, its table prepared or only
    /// checked as `schema` says (checked: the file must exist).
    pub async fn open_with(path: impl AsRef<Path>, schema: Schema) -> StoreResult<Self> {
        let path = path.as_ref();
        let manage = schema == Schema::Manage;
        if !manage && !path.exists() {
            return Err(StoreError::Refused(format!(
                "the SQLite file {} does not exist and [store] manage_schema is false: \
                 open it once with manage_schema = true",
                path.display()
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        private_database_files(path)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(manage)
            // Several worker processes share the file: readers never block
            // the writer, and a writer waits for another instead of failing.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| db_error(&format!("opening {}", path.display()), e))?;
        let indexes = IndexNames::for_table(DEFAULT_TABLE);
        if manage {
            sqlx::query(SCHEMA)
                .execute(&pool)
                .await
                .map_err(|e| db_error("creating the request table", e))?;
            ensure_indexes(&pool, &indexes).await?;
        } else {
            let want = [
                indexes.by_tag.as_str(),
                indexes.pending.as_str(),
                indexes.by_channel.as_str(),
            ];
            check_table(
                &pool,
                DEFAULT_TABLE,
                &REQUEST_COLUMNS,
                &want,
                &["request_id", "tag"],
                "open it once with [store] manage_schema = true",
            )
            .await?;
        }
        let mut locks = path.as_os_str().to_owned();
        locks.push(".locks");
        let locks = PathBuf::from(locks);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&locks)
            .and_then(|()| owner_only(&locks))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", locks.display()))
            })?;
        Ok(Self {
            pool,
            locks,
            indexes,
            schema,
            writes: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The connection pool, for callers that share it (tests, tools).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The names of the indexes this store keeps on its table.
    pub fn indexes(&self) -> &IndexNames {
        &self.indexes
    }

    /// Whether this store keeps its table or only checks it.
    pub fn schema(&self) -> Schema {
        self.schema
    }

    /// How SQLite would run one of this store's statements
    /// (`EXPLAIN QUERY PLAN`).
    pub async fn explain(&self, statement: &Statement<'_>) -> StoreResult<QueryPlan> {
        let explain = |sql: String| format!("EXPLAIN QUERY PLAN {sql}");
        let rows = match statement {
            Statement::Read { tag, request_id } => {
                sqlx::query(sqlx::AssertSqlSafe(explain(read_sql())))
                    .bind(*tag)
                    .bind(*request_id)
                    .fetch_all(&self.pool)
                    .await
            }
            Statement::List { tag, limit } => {
                sqlx::query(sqlx::AssertSqlSafe(explain(list_sql())))
                    .bind(*tag)
                    .bind(limit_of(*limit))
                    .fetch_all(&self.pool)
                    .await
            }
            Statement::Poll(selection) => {
                sqlx::query(sqlx::AssertSqlSafe(explain(poll_sql())))
                    .bind(&selection.job_id)
                    .bind(selection.batch_number)
                    .bind(0_i64)
                    .bind(None::<i64>)
                    .bind("")
                    .bind(limit_of(POLL_PAGE))
                    .fetch_all(&self.pool)
                    .await
            }
            Statement::Channel(q) => {
                bind_channel(
                    sqlx::query(sqlx::AssertSqlSafe(explain(channel_sql(q.tag.is_some())))),
                    q,
                )
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(|e| db_error("explaining a statement", e))?;
        let mut plan = QueryPlan::default();
        for row in rows {
            let detail: String = row
                .try_get("detail")
                .map_err(|e| db_error("reading a query plan", e))?;
            // SCAN reads a whole table or index; SEARCH reads a range of
            // an index; a temporary B-tree sorts.
            if detail.starts_with("SCAN ") {
                plan.full_scan = true;
            }
            if detail.contains("TEMP B-TREE") {
                plan.sorts = true;
            }
            if let Some(rest) = detail.split(" INDEX ").nth(1) {
                let name = rest.split_whitespace().next().unwrap_or_default();
                plan.indexes.push(name.to_string());
            }
            plan.text.push_str(&detail);
            plan.text.push('\n');
        }
        Ok(plan)
    }

    fn lock_path(&self, tag: &str, request_id: &str) -> PathBuf {
        use md5::{Digest, Md5};
        let d = Md5::digest(format!("{tag}|{request_id}").as_bytes());
        let name: String = d.iter().map(|b| format!("{b:02x}")).collect();
        self.locks.join(format!("{name}.lock"))
    }
}

/// Creates the database file at `path` with mode 0600 when it does not
/// exist, before SQLite opens it (SQLite would create it with 0644 under the
/// usual umask), and takes the group and other bits off the file and its
/// `-wal`, `-shm` and `-journal` files when they exist, as an earlier
/// version or another tool may have left them.
fn private_database_files(path: &Path) -> StoreResult<()> {
    let unavailable =
        |e: std::io::Error| StoreError::Unavailable(format!("cannot open {}: {e}", path.display()));
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            owner_only(path).map_err(unavailable)?
        }
        Err(e) => return Err(unavailable(e)),
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        match owner_only(Path::new(&side)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unavailable(e)),
        }
    }
    Ok(())
}

/// Removes the group and other permission bits of `path` (a file or a
/// folder), when it has any; the owner's bits stay as they are.
fn owner_only(path: &Path) -> std::io::Result<()> {
    // The mode holds the file type too; chmod takes only the permission
    // and special bits.
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))?;
    }
    Ok(())
}

/// [`Schema::Check`] of one table of the file: its columns, the primary
/// key over `key` (sorted) and the named indexes, every gap named.
pub(crate) async fn check_table(
    pool: &SqlitePool,
    table: &str,
    columns: &[&str],
    indexes: &[&str],
    key: &[&str],
    fix: &str,
) -> StoreResult<()> {
    let fail = |e| db_error("reading the table's definition", e);
    let rows = sqlx::query("SELECT name, pk FROM pragma_table_info(?1)")
        .bind(table)
        .fetch_all(pool)
        .await
        .map_err(fail)?;
    let have_columns: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    let mut key_columns: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<i64, _>(1) > 0)
        .map(|r| r.get::<String, _>(0))
        .collect();
    key_columns.sort();
    let have_indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1")
            .bind(table)
            .fetch_all(pool)
            .await
            .map_err(fail)?;
    schema_gaps(
        table,
        &have_columns,
        columns,
        &have_indexes,
        indexes,
        key_columns == key,
        fix,
    )
}

/// Creates the store's indexes when absent, on a new file and on one an
/// earlier version wrote.
async fn ensure_indexes(pool: &SqlitePool, names: &IndexNames) -> StoreResult<()> {
    for stmt in [
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON job_request
                (tag, dt_job_submitted DESC, request_id)",
            names.by_tag
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON job_request
                (job_id, dt_job_submitted, request_id) WHERE {PENDING_SQLITE}",
            names.pending
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON job_request
                (requested_channel, dt_job_submitted DESC, request_id)",
            names.by_channel
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(pool)
            .await
            .map_err(|e| db_error("creating the request table's indexes", e))?;
    }
    Ok(())
}

fn read_sql() -> String {
    format!("{COLUMNS} WHERE tag = ?1 AND request_id = ?2")
}

/// Newest first; SQLite sorts nulls first, so DESC puts them last, as on
/// PostgreSQL. The by-tag index has this order.
fn list_sql() -> String {
    format!("{COLUMNS} WHERE tag = ?1 ORDER BY dt_job_submitted DESC, request_id LIMIT ?2")
}

/// A page of a channel's requests, newest first (nulls last, as list);
/// with a tag, the tag's index serves it (its rows are few), else the
/// channel's. `?1` channel, `?2` status or null, `?3` the stored tag (only
/// in the statement with a tag), `?4` limit, `?5` offset.
fn channel_sql(with_tag: bool) -> String {
    // With a tag, `+requested_channel` keeps the channel's index out of the
    // planner's choice (SQLite's idiom), so the tag's index reads the
    // tag's rows only, however many the channel holds.
    let (channel, tag) = if with_tag {
        ("+requested_channel", "AND tag = ?3")
    } else {
        ("requested_channel", "AND ?3 IS NULL")
    };
    format!(
        "{COLUMNS} WHERE {channel} = ?1 AND (?2 IS NULL OR status = ?2) {tag}
         ORDER BY dt_job_submitted DESC, request_id LIMIT ?4 OFFSET ?5"
    )
}

fn bind_channel<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    query: &'q ChannelQuery,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    q.bind(&query.channel)
        .bind(query.status.map(RequestStatus::as_str))
        .bind(query.tag.as_deref())
        .bind(limit_of(query.limit))
        .bind(limit_of(query.offset))
}

/// A page of the pending rows of a job (and batch number, when given),
/// oldest first, rows without a submission time last; the predicate is the
/// pending index's, word for word. `?3` is 0 for the first page; else the
/// page starts after the row whose submission time (epoch ms, or null) is
/// `?4` and request id `?5`. `?6` is the page's size.
fn poll_sql() -> String {
    format!(
        "{COLUMNS} WHERE job_id = ?1 AND {PENDING_SQLITE}
           AND (?2 IS NULL OR batch_number = ?2)
           AND (?3 = 0
                OR (?4 IS NOT NULL AND (dt_job_submitted > ?4
                    OR (dt_job_submitted = ?4 AND request_id > ?5)
                    OR dt_job_submitted IS NULL))
                OR (?4 IS NULL AND dt_job_submitted IS NULL AND request_id > ?5))
         ORDER BY dt_job_submitted IS NULL, dt_job_submitted, request_id
         LIMIT ?6"
    )
}

fn row_to_request(r: &SqliteRow) -> StoreResult<JobRequest> {
    let urls: Option<String> = r
        .try_get("download_urls")
        .map_err(|e| StoreError::BadData(format!("job_request row: {e}")))?;
    let download_urls = match urls.as_deref() {
        None | Some("") => Vec::new(),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| StoreError::BadData(format!("download_urls {t:?}: {e}")))?,
    };
    super::row_to_request(r, download_urls)
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn urls_json(urls: &[String]) -> String {
    serde_json::to_string(urls).unwrap_or_else(|_| "[]".into())
}

impl RequestStore for SqliteRequestStore {
    type Claim = SqliteClaim;

    async fn candidates(
        &self,
        selection: &Selection,
        after: Option<&PollCursor>,
        limit: usize,
    ) -> StoreResult<Vec<JobRequest>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(poll_sql()))
            .bind(&selection.job_id)
            .bind(selection.batch_number)
            .bind(i64::from(after.is_some()))
            .bind(
                after
                    .and_then(|c| c.submitted)
                    .map(|t| t.timestamp_millis()),
            )
            .bind(after.map_or("", |c| c.request_id.as_str()))
            .bind(limit_of(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("listing pending requests", e))?;
        rows.iter().map(row_to_request).collect()
    }

    async fn count_by_status(&self) -> StoreResult<StatusCounts> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM job_request GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| db_error("counting requests", e))?;
        Ok(super::status_counts(rows))
    }

    async fn claim(
        &self,
        tag: &str,
        request_id: &str,
        selection: &Selection,
    ) -> StoreResult<Option<(SqliteClaim, JobRequest)>> {
        let path = self.lock_path(tag, request_id);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open lock {}: {e}", path.display()))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        // Read again under the lock: another worker may have finished it.
        match self.get(tag, request_id).await? {
            Some(r) if selection.eligible(&r) => Ok(Some((
                SqliteClaim {
                    _lock: file,
                    tag: tag.to_string(),
                    request_id: request_id.to_string(),
                },
                r,
            ))),
            _ => Ok(None),
        }
    }

    async fn mark_processing(&self, claim: &mut SqliteClaim) -> StoreResult<()> {
        let _writing = self.writes.lock().await;
        sqlx::query(
            "UPDATE job_request SET status = 'PROCESSING' WHERE tag = ?1 AND request_id = ?2",
        )
        .bind(&claim.tag)
        .bind(&claim.request_id)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("marking a request PROCESSING", e))?;
        Ok(())
    }

    async fn record_processed(
        &self,
        claim: &mut SqliteClaim,
        processed: &[ProcessedBatch],
    ) -> StoreResult<()> {
        let _writing = self.writes.lock().await;
        sqlx::query(
            "UPDATE job_request SET processed_batches = ?3 WHERE tag = ?1 AND request_id = ?2",
        )
        .bind(&claim.tag)
        .bind(&claim.request_id)
        .bind(processed_json(processed))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("recording processed batches", e))?;
        Ok(())
    }

    async fn finish(&self, claim: SqliteClaim, completion: &Completion) -> StoreResult<()> {
        let c = CompletionColumns::new(completion);
        let writing = self.writes.lock().await;
        sqlx::query(
            "UPDATE job_request SET status = ?3,
                processed_batches = COALESCE(?4, processed_batches),
                download_urls = COALESCE(?5, download_urls), err_message = ?6,
                iteration = iteration + ?7,
                dt_job_completed = COALESCE(?8, dt_job_completed), execution_time = ?9
             WHERE tag = ?1 AND request_id = ?2",
        )
        .bind(&claim.tag)
        .bind(&claim.request_id)
        .bind(c.status)
        .bind(&c.processed)
        .bind(c.download_urls.as_deref().map(urls_json))
        .bind(&c.err_message)
        .bind(c.iteration_step)
        .bind(c.completed_at.map(|t| t.timestamp_millis()))
        .bind(c.execution_time)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("writing a request's outcome", e))?;
        drop(writing);
        // The row is written; dropping the claim unlocks.
        drop(claim);
        Ok(())
    }

    async fn release(&self, claim: SqliteClaim) -> StoreResult<()> {
        drop(claim);
        Ok(())
    }

    async fn submit(&self, request: &JobRequest) -> StoreResult<Submission> {
        let data = request.request_data.to_string();
        let submitted = request.dt_job_submitted.map(|t| t.timestamp_millis());
        let writing = self.writes.lock().await;
        let inserted = sqlx::query(
            "INSERT INTO job_request (tag, request_id, job_id, status, request_data, requested_by,
                requested_channel, dt_job_submitted, download_urls, iteration, encryption_key,
                batch_number, processed_batches)
             VALUES (?1, ?2, ?3, 'SUBMITTED', ?4, ?5, ?6, ?7, '[]', 0, ?8, ?9, NULL)
             ON CONFLICT (tag, request_id) DO NOTHING",
        )
        .bind(&request.tag)
        .bind(&request.request_id)
        .bind(&request.job_id)
        .bind(&data)
        .bind(&request.requested_by)
        .bind(&request.requested_channel)
        .bind(submitted)
        .bind(&request.encryption_key)
        .bind(request.batch_number)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("submitting a request", e))?
        .rows_affected();
        let resubmitted = if inserted == 1 {
            0
        } else {
            // Attempts start again and the old message goes (SPEC section 9).
            sqlx::query(
                "UPDATE job_request SET status = 'SUBMITTED', dt_job_submitted = ?3, job_id = ?4,
                    request_data = ?5, requested_by = ?6, requested_channel = ?7,
                    encryption_key = ?8, iteration = 0, err_message = NULL
                 WHERE tag = ?1 AND request_id = ?2 AND status = 'FAILED'",
            )
            .bind(&request.tag)
            .bind(&request.request_id)
            .bind(submitted)
            .bind(&request.job_id)
            .bind(&data)
            .bind(&request.requested_by)
            .bind(&request.requested_channel)
            .bind(&request.encryption_key)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("resubmitting a request", e))?
            .rows_affected()
        };
        drop(writing);
        let row = self
            .get(&request.tag, &request.request_id)
            .await?
            .ok_or_else(|| {
                StoreError::Refused("the request vanished while it was submitted".into())
            })?;
        Ok(if inserted == 1 {
            Submission::Created(row)
        } else if resubmitted == 1 {
            Submission::Resubmitted(row)
        } else {
            Submission::Existing(row)
        })
    }

    async fn get(&self, tag: &str, request_id: &str) -> StoreResult<Option<JobRequest>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(read_sql()))
            .bind(tag)
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("reading a request", e))?;
        row.as_ref().map(row_to_request).transpose()
    }

    async fn by_id(&self, request_id: &str) -> StoreResult<Vec<JobRequest>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COLUMNS} WHERE request_id = ?1 ORDER BY dt_job_submitted DESC, tag"
        )))
        .bind(request_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("reading a request", e))?;
        rows.iter().map(row_to_request).collect()
    }

    async fn list(&self, tag: &str, limit: usize) -> StoreResult<Vec<JobRequest>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(list_sql()))
            .bind(tag)
            .bind(limit_of(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("listing requests", e))?;
        rows.iter().map(row_to_request).collect()
    }

    async fn list_channel(&self, query: &ChannelQuery) -> StoreResult<Vec<JobRequest>> {
        let rows = bind_channel(
            sqlx::query(sqlx::AssertSqlSafe(channel_sql(query.tag.is_some()))),
            query,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("listing a channel's requests", e))?;
        rows.iter().map(row_to_request).collect()
    }

    async fn recent(
        &self,
        status: Option<RequestStatus>,
        limit: usize,
    ) -> StoreResult<Vec<JobRequest>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COLUMNS} WHERE (?1 IS NULL OR status = ?1)
             ORDER BY dt_job_submitted DESC, request_id LIMIT ?2"
        )))
        .bind(status.map(RequestStatus::as_str))
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("listing requests", e))?;
        rows.iter().map(row_to_request).collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| db_error("reading the SQLite file", e))
    }
}
