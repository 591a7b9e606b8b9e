//! `job_request` in PostgreSQL, as Sunbird deploys it.
//!
//! The table is Sunbird's (reference 1.8): created with Sunbird's 17 columns
//! when absent, used as it is when present. Column types vary between
//! Sunbird's own DDLs (`request_data` json or text, `processed_batches` text
//! or json, timestamps with or without time zone), so reads cast to one form
//! and writes cast to the column's declared type. No column of our own is
//! added: claiming uses session advisory locks, keyed by table, tag and
//! request id, held on a connection of the claim's own; PostgreSQL releases
//! them when the connection closes, including when the worker dies.
//!
//! Two indexes are created when absent ([`IndexNames`]: named after the
//! table), so that read, list and the worker's poll read the rows they
//! return rather than the whole table; an index adds nothing Sunbird's API
//! or job would see.

use super::{
    CompletionColumns, IndexNames, PENDING_PG, QueryPlan, REQUEST_COLUMNS, Schema, Statement,
    db_error, quoted_table, schema_gaps,
};
use exhaust_core::request::{JobRequest, ProcessedBatch, RequestStatus, processed_json};
use exhaust_core::store::{
    ChannelQuery, Completion, POLL_PAGE, PollCursor, RequestStore, Selection, StatusCounts,
    StoreError, StoreResult, Submission,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The request store on PostgreSQL.
#[derive(Clone)]
pub struct PgRequestStore {
    pool: PgPool,
    opts: PgConnectOptions,
    sql: Arc<Statements>,
    table: String,
    indexes: IndexNames,
    schema: Schema,
}

// Written by hand: the connect options' own Debug shows the password.
impl std::fmt::Debug for PgRequestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRequestStore")
            .field("host", &self.opts.get_host())
            .field("port", &self.opts.get_port())
            .field("database", &self.opts.get_database())
            .field("username", &self.opts.get_username())
            .field("table", &self.table)
            .field("indexes", &self.indexes)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// A request held by this worker: its own connection, holding the advisory
/// lock. Dropping it closes the connection, which releases the lock.
#[derive(Debug)]
pub struct PgClaim {
    conn: PgConnection,
    key: i64,
    tag: String,
    request_id: String,
}

/// The statements, built once for the table and its column types.
#[derive(Debug)]
struct Statements {
    candidates: String,
    candidates_numbered: String,
    count_by_status: String,
    one: String,
    by_id: String,
    by_tag: String,
    by_channel: String,
    by_channel_tag: String,
    recent: String,
    recent_by_status: String,
    mark_processing: String,
    record: String,
    finish: String,
    insert: String,
    resubmit: String,
}

/// The advisory lock key of a request: 64 bits of an MD5 over the table,
/// tag and id, so different tables (and tests) never share locks.
fn lock_key(table: &str, tag: &str, request_id: &str) -> i64 {
    use md5::{Digest, Md5};
    let d = Md5::digest(format!("exhaust|{table}|{tag}|{request_id}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

const EPOCH_MS: &str = "(EXTRACT(EPOCH FROM {c}) * 1000)::bigint AS {c}";

impl PgRequestStore {
    /// Connects to `url` and prepares `table` (created when absent).
    pub async fn connect(url: &str, table: &str) -> StoreResult<Self> {
        Self::connect_with(url, table, Schema::Manage).await
    }

    /// Connects to `url`; `table` is prepared or checked as `schema` says.
    pub async fn connect_with(url: &str, table: &str, schema: Schema) -> StoreResult<Self> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Refused(format!("PostgreSQL URL: {e}")))?
            // Timestamps are written and read as UTC whatever the server's zone.
            .options([("TimeZone", "UTC")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts.clone())
            .await
            .map_err(|e| db_error("connecting to PostgreSQL", e))?;
        Self::with_pool(pool, opts, table, schema).await
    }

    async fn with_pool(
        pool: PgPool,
        opts: PgConnectOptions,
        table: &str,
        mode: Schema,
    ) -> StoreResult<Self> {
        let (schema, bare, quoted) = quoted_table(table)?;
        let indexes = IndexNames::for_table(&bare);
        match mode {
            Schema::Manage => {
                let ddl = request_table_ddl(table)?;
                run_ddl(&pool, &ddl, "creating the request table and its indexes").await?;
            }
            Schema::Check => {
                let want = [
                    indexes.by_tag.as_str(),
                    indexes.pending.as_str(),
                    indexes.by_channel.as_str(),
                ];
                check_table(
                    &pool,
                    schema.as_deref(),
                    &bare,
                    &REQUEST_COLUMNS,
                    &want,
                    &["request_id", "tag"],
                    &format!(
                        "apply deploy/sql/job_request.sql (`exhaust schema` prints it for \
                         the table {table}), or set [store] manage_schema = true"
                    ),
                )
                .await?;
            }
        }
        let types = column_types(&pool, schema.as_deref(), &bare).await?;
        let sql = Arc::new(Statements::new(&quoted, &types)?);
        Ok(Self {
            pool,
            opts,
            sql,
            table: table.to_string(),
            indexes,
            schema: mode,
        })
    }

    /// Whether this store keeps its tables or only checks them.
    pub fn schema(&self) -> Schema {
        self.schema
    }

    /// The names of the indexes this store keeps on its table.
    pub fn indexes(&self) -> &IndexNames {
        &self.indexes
    }

    /// How PostgreSQL would run one of this store's statements, with
    /// sequential scans priced out (`SET LOCAL enable_seqscan = off`): the
    /// plan then shows which index can serve the statement whatever the
    /// table's size, where a small table would simply be read whole.
    pub async fn explain(&self, statement: &Statement<'_>) -> StoreResult<QueryPlan> {
        let fail = |e| db_error("explaining a statement", e);
        let mut tx = self.pool.begin().await.map_err(fail)?;
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let explain = |sql: &str| format!("EXPLAIN (FORMAT JSON) {sql}");
        let plan: serde_json::Value = match statement {
            Statement::Read { tag, request_id } => {
                sqlx::query_scalar(AssertSqlSafe(explain(&self.sql.one)))
                    .bind(*tag)
                    .bind(*request_id)
                    .fetch_one(&mut *tx)
                    .await
            }
            Statement::List { tag, limit } => {
                sqlx::query_scalar(AssertSqlSafe(explain(&self.sql.by_tag)))
                    .bind(*tag)
                    .bind(limit_of(*limit))
                    .fetch_one(&mut *tx)
                    .await
            }
            Statement::Poll(selection) => {
                let (sql, number) = match selection.batch_number {
                    None => (&self.sql.candidates, 0),
                    Some(n) => (&self.sql.candidates_numbered, n),
                };
                sqlx::query_scalar(AssertSqlSafe(explain(sql)))
                    .bind(&selection.job_id)
                    .bind(number)
                    .bind(false)
                    .bind(None::<i64>)
                    .bind("")
                    .bind(limit_of(POLL_PAGE))
                    .fetch_one(&mut *tx)
                    .await
            }
            Statement::Channel(q) => {
                let sql = self.sql.channel(q.tag.is_some());
                bind_channel(sqlx::query_scalar(AssertSqlSafe(explain(sql))), q)
                    .fetch_one(&mut *tx)
                    .await
            }
        }
        .map_err(fail)?;
        tx.rollback().await.map_err(fail)?;
        Ok(plan_of(&plan))
    }

    /// The table's name as configured.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The connection pool, for callers that share it (tests, the server).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The DDL of the request table `table` (optionally `schema.table`) and
/// its indexes: what the store runs at start under [`Schema::Manage`],
/// every statement `IF NOT EXISTS`, and what `deploy/sql/job_request.sql`
/// ships for a DBA (a test keeps the two the same).
///
/// Sunbird's columns in Sunbird's order (reference 1.8); Sunbird's older
/// DDLs lack two of its own columns, added when absent. The indexes only
/// add to Sunbird's table (reference 1.8 has none beyond the primary key):
/// its API and job read and write it unchanged. Building one locks writes
/// to the table for the time of the build, once; on a large table a DBA
/// can build the same indexes beforehand with `CREATE INDEX CONCURRENTLY`
/// under these names, and they are then used as they are.
pub fn request_table_ddl(table: &str) -> StoreResult<Vec<String>> {
    let (_, bare, quoted) = quoted_table(table)?;
    let names = IndexNames::for_table(&bare);
    Ok(vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {quoted} (
    tag text NOT NULL,
    request_id text NOT NULL,
    job_id text NOT NULL,
    status text NOT NULL,
    request_data json,
    requested_by text,
    requested_channel text,
    dt_job_submitted timestamp,
    download_urls text[],
    dt_file_created timestamp,
    dt_job_completed timestamp,
    execution_time bigint,
    err_message text,
    iteration int,
    encryption_key text,
    batch_number int,
    processed_batches text,
    PRIMARY KEY (tag, request_id))"
        ),
        format!("ALTER TABLE {quoted} ADD COLUMN IF NOT EXISTS batch_number int"),
        format!("ALTER TABLE {quoted} ADD COLUMN IF NOT EXISTS processed_batches text"),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON {quoted}
    (tag, dt_job_submitted DESC NULLS LAST, request_id)",
            names.by_tag
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON {quoted}
    (job_id, dt_job_submitted, request_id)
    WHERE {PENDING_PG}",
            names.pending
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON {quoted}
    (requested_channel, dt_job_submitted DESC NULLS LAST, request_id)",
            names.by_channel
        ),
    ])
}

/// Runs DDL statements in order. Two workers starting at once may both
/// create the same table or index; the loser's error is a unique violation
/// on the catalog, and a retry sees the other's.
pub(crate) async fn run_ddl(pool: &PgPool, statements: &[String], what: &str) -> StoreResult<()> {
    for stmt in statements {
        let mut last = None;
        for _ in 0..3 {
            match sqlx::query(AssertSqlSafe(stmt.clone())).execute(pool).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(db_error(what, e));
        }
    }
    Ok(())
}

/// [`Schema::Check`] of one table: its columns, the primary key over
/// `key` (sorted) and the named indexes, read from the catalog (reads
/// only), every gap named in the error.
pub(crate) async fn check_table(
    pool: &PgPool,
    schema: Option<&str>,
    table: &str,
    columns: &[&str],
    indexes: &[&str],
    key: &[&str],
    fix: &str,
) -> StoreResult<()> {
    let fail = |e| db_error("reading the table's definition", e);
    let have_columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(fail)?;
    let have_indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes
         WHERE schemaname = COALESCE($1, current_schema()) AND tablename = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(fail)?;
    let key_columns: Vec<String> = key.iter().map(|k| k.to_string()).collect();
    let has_key: bool = sqlx::query_scalar(
        "SELECT EXISTS (
            SELECT 1 FROM pg_index i
            JOIN pg_class c ON c.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = COALESCE($1, current_schema()) AND c.relname = $2
              AND i.indisprimary
              AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                   FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey)) = $3)",
    )
    .bind(schema)
    .bind(table)
    .bind(&key_columns)
    .fetch_one(pool)
    .await
    .map_err(fail)?;
    let name = match schema {
        Some(s) => format!("{s}.{table}"),
        None => table.to_string(),
    };
    schema_gaps(
        &name,
        &have_columns,
        columns,
        &have_indexes,
        indexes,
        has_key,
        fix,
    )
}

/// The parts of PostgreSQL's JSON plan that matter for cost.
fn plan_of(plan: &serde_json::Value) -> QueryPlan {
    fn walk(node: &serde_json::Value, out: &mut QueryPlan) {
        match node.get("Node Type").and_then(|t| t.as_str()) {
            Some("Seq Scan") => out.full_scan = true,
            Some("Sort" | "Incremental Sort") => out.sorts = true,
            _ => {}
        }
        if let Some(name) = node.get("Index Name").and_then(|n| n.as_str()) {
            out.indexes.push(name.to_string());
        }
        for child in node
            .get("Plans")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            walk(child, out);
        }
    }
    let mut out = QueryPlan {
        text: plan.to_string(),
        ..QueryPlan::default()
    };
    // EXPLAIN (FORMAT JSON) answers `[{"Plan": {...}}]`.
    for root in plan.as_array().into_iter().flatten() {
        if let Some(p) = root.get("Plan") {
            walk(p, &mut out);
        }
    }
    out
}

/// Declared types (`udt_name`) of the columns whose casts vary.
#[derive(Debug, Default)]
struct ColumnTypes {
    request_data: String,
    processed_batches: String,
    download_urls: String,
}

async fn column_types(
    pool: &PgPool,
    schema: Option<&str>,
    table: &str,
) -> StoreResult<ColumnTypes> {
    let rows = sqlx::query(
        "SELECT column_name::text, udt_name::text FROM information_schema.columns
         WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(|e| db_error("reading the request table's columns", e))?;
    let mut t = ColumnTypes::default();
    for r in rows {
        let name: String = r.get(0);
        let udt: String = r.get(1);
        match name.as_str() {
            "request_data" => t.request_data = udt,
            "processed_batches" => t.processed_batches = udt,
            "download_urls" => t.download_urls = udt,
            _ => {}
        }
    }
    Ok(t)
}

/// The cast that turns a text parameter into a JSON-ish column's type.
fn json_cast(udt: &str) -> &'static str {
    match udt {
        "json" => "json",
        "jsonb" => "jsonb",
        _ => "text",
    }
}

impl Statements {
    fn new(t: &str, types: &ColumnTypes) -> StoreResult<Self> {
        if !matches!(types.download_urls.as_str(), "_text" | "_varchar") {
            return Err(StoreError::Refused(format!(
                "download_urls of {t} has type {:?}; Sunbird's table has text[]",
                types.download_urls
            )));
        }
        let rd = json_cast(&types.request_data);
        let pb = json_cast(&types.processed_batches);
        let ms = |c: &str| EPOCH_MS.replace("{c}", c);
        let select = format!(
            "SELECT tag, request_id, job_id, status, request_data::text AS request_data,
                requested_by, requested_channel, {}, download_urls::text[] AS download_urls,
                {}, {}, execution_time::bigint AS execution_time, err_message,
                COALESCE(iteration, 0)::int AS iteration, encryption_key,
                batch_number::int AS batch_number, processed_batches::text AS processed_batches
             FROM {t}",
            ms("dt_job_submitted"),
            ms("dt_file_created"),
            ms("dt_job_completed"),
        );
        let pending = format!("job_id = $1 AND {PENDING_PG}");
        // The table's column, not the select's epoch-ms alias of the same
        // name: only the column's order is the indexes' order.
        let order_old = format!("ORDER BY {t}.dt_job_submitted ASC NULLS LAST, {t}.request_id");
        let order_new = format!("ORDER BY {t}.dt_job_submitted DESC NULLS LAST, {t}.request_id");
        // A page starts after the cursor's row in the poll's order: $3 is
        // false for the first page; else the cursor's submission time (epoch
        // ms, compared as the select writes it, so a row is never on two
        // pages) is $4, null for rows without one, and its request id $5.
        let epoch = format!("(EXTRACT(EPOCH FROM {t}.dt_job_submitted) * 1000)::bigint");
        let after = format!(
            "AND ($3::boolean IS FALSE
                  OR ($4::bigint IS NOT NULL AND ({epoch} > $4
                      OR ({epoch} = $4 AND {t}.request_id > $5)
                      OR {t}.dt_job_submitted IS NULL))
                  OR ($4::bigint IS NULL AND {t}.dt_job_submitted IS NULL AND {t}.request_id > $5))"
        );
        Ok(Self {
            candidates: format!("{select} WHERE {pending} {after} {order_old} LIMIT $6"),
            candidates_numbered: format!(
                "{select} WHERE {pending} AND batch_number = $2 {after} {order_old} LIMIT $6"
            ),
            count_by_status: format!("SELECT status, COUNT(*) FROM {t} GROUP BY status"),
            one: format!("{select} WHERE tag = $1 AND request_id = $2"),
            by_id: format!("{select} WHERE request_id = $1 {order_new}"),
            by_tag: format!("{select} WHERE tag = $1 {order_new} LIMIT $2"),
            // A channel's page: with a tag the tag's index serves it (its
            // rows are few), else the channel's. $3 is bound in both. With
            // a tag the channel is compared as an expression, which no
            // index serves, so the planner reads the tag's index whatever
            // its statistics say.
            by_channel: format!(
                "{select} WHERE requested_channel = $1 AND ($2::text IS NULL OR status = $2)
                 AND $3::text IS NULL {order_new} LIMIT $4 OFFSET $5"
            ),
            by_channel_tag: format!(
                "{select} WHERE (requested_channel || '') = $1
                 AND ($2::text IS NULL OR status = $2)
                 AND tag = $3 {order_new} LIMIT $4 OFFSET $5"
            ),
            recent: format!("{select} {order_new} LIMIT $1"),
            recent_by_status: format!("{select} WHERE status = $1 {order_new} LIMIT $2"),
            mark_processing: format!(
                "UPDATE {t} SET status = 'PROCESSING' WHERE tag = $1 AND request_id = $2"
            ),
            record: format!(
                "UPDATE {t} SET processed_batches = CAST($3::text AS {pb})
                 WHERE tag = $1 AND request_id = $2"
            ),
            finish: format!(
                "UPDATE {t} SET status = $3,
                    processed_batches = COALESCE(CAST($4::text AS {pb}), processed_batches),
                    download_urls = CASE WHEN $5 THEN $6::text[] ELSE download_urls END,
                    err_message = $7, iteration = COALESCE(iteration, 0) + $8,
                    dt_job_completed = COALESCE($9::timestamptz, dt_job_completed),
                    execution_time = $10
                 WHERE tag = $1 AND request_id = $2"
            ),
            insert: format!(
                "INSERT INTO {t} (tag, request_id, job_id, status, request_data, requested_by,
                    requested_channel, dt_job_submitted, download_urls, iteration, encryption_key,
                    batch_number, processed_batches)
                 VALUES ($1, $2, $3, 'SUBMITTED', CAST($4::text AS {rd}), $5, $6, $7::timestamptz,
                    '{{}}', 0, $8, $9, NULL)
                 ON CONFLICT (tag, request_id) DO NOTHING"
            ),
            // Sunbird's API leaves `iteration` as it was; we start the
            // attempts again (SPEC section 9) and clear the old message.
            resubmit: format!(
                "UPDATE {t} SET status = 'SUBMITTED', dt_job_submitted = $3::timestamptz, job_id = $4,
                    request_data = CAST($5::text AS {rd}), requested_by = $6, requested_channel = $7,
                    encryption_key = $8, iteration = 0, err_message = NULL
                 WHERE tag = $1 AND request_id = $2 AND status = 'FAILED'"
            ),
        })
    }
}

impl Statements {
    /// The statement of a channel's page, with or without a tag.
    fn channel(&self, with_tag: bool) -> &str {
        if with_tag {
            &self.by_channel_tag
        } else {
            &self.by_channel
        }
    }
}

/// Binds a [`ChannelQuery`] to the channel statements' parameters.
fn bind_channel<'q, O>(
    q: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    query: &'q ChannelQuery,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(&query.channel)
        .bind(query.status.map(RequestStatus::as_str))
        .bind(query.tag.as_deref())
        .bind(limit_of(query.limit))
        .bind(limit_of(query.offset))
}

fn row_to_request(r: &PgRow) -> StoreResult<JobRequest> {
    let urls: Option<Vec<String>> = r
        .try_get("download_urls")
        .map_err(|e| StoreError::BadData(format!("job_request row: {e}")))?;
    super::row_to_request(r, urls.unwrap_or_default())
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl PgRequestStore {
    async fn fetch_one_on(
        &self,
        conn: &mut PgConnection,
        tag: &str,
        request_id: &str,
    ) -> StoreResult<Option<JobRequest>> {
        let row = sqlx::query(AssertSqlSafe(self.sql.one.clone()))
            .bind(tag)
            .bind(request_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a request", e))?;
        row.as_ref().map(row_to_request).transpose()
    }
}

impl RequestStore for PgRequestStore {
    type Claim = PgClaim;

    async fn candidates(
        &self,
        selection: &Selection,
        after: Option<&PollCursor>,
        limit: usize,
    ) -> StoreResult<Vec<JobRequest>> {
        let (sql, number) = match selection.batch_number {
            None => (&self.sql.candidates, 0),
            Some(n) => (&self.sql.candidates_numbered, n),
        };
        // $2 is bound in both statements (unused in the first), so the
        // parameters keep their places.
        let rows = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(&selection.job_id)
            .bind(number)
            .bind(after.is_some())
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
            sqlx::query_as(AssertSqlSafe(self.sql.count_by_status.clone()))
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
    ) -> StoreResult<Option<(PgClaim, JobRequest)>> {
        // A connection of the claim's own: the lock lives as long as it does.
        let mut conn = PgConnection::connect_with(&self.opts)
            .await
            .map_err(|e| db_error("connecting to PostgreSQL", e))?;
        let key = lock_key(&self.table, tag, request_id);
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_error("locking a request", e))?;
        if !locked {
            let _ = conn.close().await;
            return Ok(None);
        }
        // Read again under the lock: another worker may have finished it
        // between the listing and now.
        let row = self.fetch_one_on(&mut conn, tag, request_id).await?;
        match row {
            Some(r) if selection.eligible(&r) => Ok(Some((
                PgClaim {
                    conn,
                    key,
                    tag: tag.to_string(),
                    request_id: request_id.to_string(),
                },
                r,
            ))),
            _ => {
                let _ = conn.close().await;
                Ok(None)
            }
        }
    }

    async fn mark_processing(&self, claim: &mut PgClaim) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(self.sql.mark_processing.clone()))
            .bind(&claim.tag)
            .bind(&claim.request_id)
            .execute(&mut claim.conn)
            .await
            .map_err(|e| db_error("marking a request PROCESSING", e))?;
        Ok(())
    }

    async fn record_processed(
        &self,
        claim: &mut PgClaim,
        processed: &[ProcessedBatch],
    ) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(self.sql.record.clone()))
            .bind(&claim.tag)
            .bind(&claim.request_id)
            .bind(processed_json(processed))
            .execute(&mut claim.conn)
            .await
            .map_err(|e| db_error("recording processed batches", e))?;
        Ok(())
    }

    async fn finish(&self, mut claim: PgClaim, completion: &Completion) -> StoreResult<()> {
        let c = CompletionColumns::new(completion);
        sqlx::query(AssertSqlSafe(self.sql.finish.clone()))
            .bind(&claim.tag)
            .bind(&claim.request_id)
            .bind(c.status)
            .bind(&c.processed)
            .bind(c.download_urls.is_some())
            .bind(c.download_urls.unwrap_or_default())
            .bind(&c.err_message)
            .bind(c.iteration_step)
            .bind(c.completed_at)
            .bind(c.execution_time)
            .execute(&mut claim.conn)
            .await
            .map_err(|e| db_error("writing a request's outcome", e))?;
        self.release(claim).await
    }

    async fn release(&self, mut claim: PgClaim) -> StoreResult<()> {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(claim.key)
            .execute(&mut claim.conn)
            .await;
        // Closing the connection releases the lock in any case.
        let _ = claim.conn.close().await;
        unlocked
            .map(|_| ())
            .map_err(|e| db_error("unlocking a request", e))
    }

    async fn submit(&self, request: &JobRequest) -> StoreResult<Submission> {
        let data = request.request_data.to_string();
        let inserted = sqlx::query(AssertSqlSafe(self.sql.insert.clone()))
            .bind(&request.tag)
            .bind(&request.request_id)
            .bind(&request.job_id)
            .bind(&data)
            .bind(&request.requested_by)
            .bind(&request.requested_channel)
            .bind(request.dt_job_submitted)
            .bind(&request.encryption_key)
            .bind(request.batch_number)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("submitting a request", e))?
            .rows_affected();
        let read = |s: &Self| {
            let tag = request.tag.clone();
            let id = request.request_id.clone();
            let store = s.clone();
            async move {
                store.get(&tag, &id).await?.ok_or_else(|| {
                    StoreError::Refused("the request vanished while it was submitted".into())
                })
            }
        };
        if inserted == 1 {
            return Ok(Submission::Created(read(self).await?));
        }
        // Only a FAILED row changes; the condition is in the statement, so
        // two submissions racing cannot both resubmit.
        let resubmitted = sqlx::query(AssertSqlSafe(self.sql.resubmit.clone()))
            .bind(&request.tag)
            .bind(&request.request_id)
            .bind(request.dt_job_submitted)
            .bind(&request.job_id)
            .bind(&data)
            .bind(&request.requested_by)
            .bind(&request.requested_channel)
            .bind(&request.encryption_key)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("resubmitting a request", e))?
            .rows_affected();
        let row = read(self).await?;
        Ok(if resubmitted == 1 {
            Submission::Resubmitted(row)
        } else {
            Submission::Existing(row)
        })
    }

    async fn get(&self, tag: &str, request_id: &str) -> StoreResult<Option<JobRequest>> {
        let row = sqlx::query(AssertSqlSafe(self.sql.one.clone()))
            .bind(tag)
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("reading a request", e))?;
        row.as_ref().map(row_to_request).transpose()
    }

    async fn by_id(&self, request_id: &str) -> StoreResult<Vec<JobRequest>> {
        let rows = sqlx::query(AssertSqlSafe(self.sql.by_id.clone()))
            .bind(request_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("reading a request", e))?;
        rows.iter().map(row_to_request).collect()
    }

    async fn list(&self, tag: &str, limit: usize) -> StoreResult<Vec<JobRequest>> {
        let rows = sqlx::query(AssertSqlSafe(self.sql.by_tag.clone()))
            .bind(tag)
            .bind(limit_of(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("listing requests", e))?;
        rows.iter().map(row_to_request).collect()
    }

    async fn list_channel(&self, query: &ChannelQuery) -> StoreResult<Vec<JobRequest>> {
        let rows = sqlx::query(AssertSqlSafe(
            self.sql.channel(query.tag.is_some()).to_owned(),
        ))
        .bind(&query.channel)
        .bind(query.status.map(RequestStatus::as_str))
        .bind(query.tag.as_deref())
        .bind(limit_of(query.limit))
        .bind(limit_of(query.offset))
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
        let rows = match status {
            None => {
                sqlx::query(AssertSqlSafe(self.sql.recent.clone()))
                    .bind(limit_of(limit))
                    .fetch_all(&self.pool)
                    .await
            }
            Some(s) => {
                sqlx::query(AssertSqlSafe(self.sql.recent_by_status.clone()))
                    .bind(s.as_str())
                    .bind(limit_of(limit))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(|e| db_error("listing requests", e))?;
        rows.iter().map(row_to_request).collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| db_error("pinging PostgreSQL", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(quoted_table("job_request").is_ok());
        assert_eq!(
            quoted_table("dev.dev_job_request").map(|t| t.2),
            Ok("\"dev\".\"dev_job_request\"".to_string())
        );
        for bad in ["", "a;drop", "a.b.c", "1abc", "a b", "\"x\""] {
            assert!(quoted_table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_keys_differ_by_table_tag_and_id() {
        let k = lock_key("t", "tag", "id");
        assert_eq!(k, lock_key("t", "tag", "id"));
        assert_ne!(k, lock_key("t2", "tag", "id"));
        assert_ne!(k, lock_key("t", "tag2", "id"));
        assert_ne!(k, lock_key("t", "tag", "id2"));
    }
}
