//! Sunbird's Cassandra tables through the `scylla` driver: course batches,
//! enrolments, assessment attempts, activity aggregates, hierarchies and the
//! custodian org.
//!
//! Every read is a prepared statement with `?` markers only, paged by hand
//! (one page per request) so that a timeout retries one page, never the
//! rows already delivered. Reads go by partition key, one query per key, run
//! concurrently up to [`CassandraConfig::concurrency`]; `IN` is never used
//! (it fans out on the coordinator and fails as a whole).
//!
//! Rows are decoded by the snapshot reader's row types (`rows.rs`) through
//! serde, each value in the shape `dsbulk unload -c json` gives it, so a
//! value means the same whether it came from a snapshot or from Cassandra;
//! no JSON value is built on the way ([`CqlRow`]).
//!
//! Two lookups need a choice because the table is not keyed for them:
//! - **A batch by id**: `course_batch` is keyed `(courseid, batchid)`. The
//!   adapter scans the table's two key columns once (paged, a few bytes a
//!   batch), remembers each batch's course (a batch never changes course),
//!   then reads the row by its full primary key. A batch missing from the
//!   remembered keys triggers a new key scan, so new batches are found.
//! - **A batch's enrolments**: from a batch-keyed copy
//!   ([`CassandraConfig::enrolment_table`], partition key `batchid`) when one
//!   is configured; otherwise a token-range scan of `user_enrolments` (split
//!   into [`CassandraConfig::scan_splits`] ranges, run concurrently) keeping
//!   the batch's rows, which is what Sunbird's own job reads.

use crate::live::retry::{Counters, Retry};
use crate::rows::{ActivityRow, AttemptRow, BatchRow, EnrolmentRow, RowError};
use exhaust_core::model::{ActivityAggregate, AssessmentAttempt, CourseBatch, EnrolmentRecord};
use exhaust_core::source::{
    ActivitySource, AttemptSource, BatchSource, CollectionBatchSource, CustodianOrgSource,
    EnrolmentSource, HierarchySource, ReadStats, SourceError, SourceResult,
};
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::FallthroughRetryPolicy;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::serialize::row::SerializeRow;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

const SOURCE: &str = "cassandra";

/// The consistency level of reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReadConsistency {
    /// `ONE`.
    One,
    /// `TWO`.
    Two,
    /// `THREE`.
    Three,
    /// `QUORUM`.
    Quorum,
    /// `ALL`.
    All,
    /// `LOCAL_ONE` (the default: reports tolerate a replica a moment behind).
    #[default]
    LocalOne,
    /// `LOCAL_QUORUM`.
    LocalQuorum,
    /// `EACH_QUORUM`.
    EachQuorum,
}

impl From<ReadConsistency> for Consistency {
    fn from(c: ReadConsistency) -> Self {
        match c {
            ReadConsistency::One => Consistency::One,
            ReadConsistency::Two => Consistency::Two,
            ReadConsistency::Three => Consistency::Three,
            ReadConsistency::Quorum => Consistency::Quorum,
            ReadConsistency::All => Consistency::All,
            ReadConsistency::LocalOne => Consistency::LocalOne,
            ReadConsistency::LocalQuorum => Consistency::LocalQuorum,
            ReadConsistency::EachQuorum => Consistency::EachQuorum,
        }
    }
}

/// Where Sunbird's Cassandra is and how to read it.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CassandraConfig {
    /// `host:port` of one or more nodes (default `["127.0.0.1:9042"]`).
    pub contact_points: Vec<String>,
    /// Keyspace of `course_batch`, `user_enrolments`, `assessment_aggregator`
    /// and `user_activity_agg` (default `sunbird_courses`).
    pub courses_keyspace: String,
    /// Keyspace of `content_hierarchy` (default `dev_hierarchy_store`).
    pub hierarchy_keyspace: String,
    /// Keyspace of `system_settings` (default `sunbird`).
    pub sunbird_keyspace: String,
    /// A copy of the enrolments keyed by batch (partition key `batchid`),
    /// e.g. `report_user_enrolments`, in the courses keyspace unless written
    /// `keyspace.table`. `None` (the default): a token-range scan of
    /// `user_enrolments`.
    pub enrolment_table: Option<String>,
    /// Read consistency (default `LOCAL_ONE`).
    pub consistency: ReadConsistency,
    /// The datacenter whose nodes are asked first (the "local" of
    /// `LOCAL_ONE`); `None` (the default): every node alike.
    pub local_datacenter: Option<String>,
    /// User name, when the cluster needs a login.
    pub username: Option<String>,
    /// Password of `username`. Never logged.
    pub password: Option<String>,
    /// Queries in flight at once (default 32).
    pub concurrency: usize,
    /// Rows per page (default 5000).
    pub page_size: i32,
    /// Retries of a query after a timeout or an unavailable node (default 3).
    pub retries: u32,
    /// The first retry's wait in milliseconds, doubled per retry (default 200).
    pub retry_backoff_ms: u64,
    /// Client-side timeout of one request, in milliseconds (default 12000).
    pub request_timeout_ms: u64,
    /// Timeout of opening a connection, in milliseconds (default 5000).
    pub connect_timeout_ms: u64,
    /// Token ranges the `user_enrolments` scan is split into (default 256).
    pub scan_splits: usize,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            contact_points: vec!["127.0.0.1:9042".into()],
            courses_keyspace: "sunbird_courses".into(),
            hierarchy_keyspace: "dev_hierarchy_store".into(),
            sunbird_keyspace: "sunbird".into(),
            enrolment_table: None,
            consistency: ReadConsistency::LocalOne,
            local_datacenter: None,
            username: None,
            password: None,
            concurrency: 32,
            page_size: 5000,
            retries: 3,
            retry_backoff_ms: 200,
            request_timeout_ms: 12_000,
            connect_timeout_ms: 5_000,
            scan_splits: 256,
        }
    }
}

// Written by hand so the password never reaches a log.
impl std::fmt::Debug for CassandraConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraConfig")
            .field("contact_points", &self.contact_points)
            .field("courses_keyspace", &self.courses_keyspace)
            .field("hierarchy_keyspace", &self.hierarchy_keyspace)
            .field("sunbird_keyspace", &self.sunbird_keyspace)
            .field("enrolment_table", &self.enrolment_table)
            .field("consistency", &self.consistency)
            .field("local_datacenter", &self.local_datacenter)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("concurrency", &self.concurrency)
            .field("page_size", &self.page_size)
            .field("retries", &self.retries)
            .field("retry_backoff_ms", &self.retry_backoff_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("scan_splits", &self.scan_splits)
            .finish()
    }
}

impl CassandraConfig {
    fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.courses_keyspace)
    }

    fn enrolment_source(&self) -> Option<String> {
        self.enrolment_table.as_ref().map(|t| {
            if t.contains('.') {
                t.clone()
            } else {
                self.table(t)
            }
        })
    }
}

// The columns each read selects, in order; rows are decoded by these names.
const BATCH_COLUMNS: [&str; 9] = [
    "courseid",
    "batchid",
    "name",
    "status",
    "start_date",
    "startdate",
    "end_date",
    "enddate",
    "cert_templates",
];
const ENROLMENT_COLUMNS: [&str; 11] = [
    "userid",
    "courseid",
    "batchid",
    "active",
    "enrolleddate",
    "enrolled_date",
    "completedon",
    "status",
    "contentstatus",
    "certificates",
    "issued_certificates",
];
/// Position of `batchid` in [`ENROLMENT_COLUMNS`]: the scan filters on it
/// before decoding a row.
const ENROLMENT_BATCH: usize = 2;
const ATTEMPT_COLUMNS: [&str; 9] = [
    "user_id",
    "course_id",
    "batch_id",
    "content_id",
    "attempt_id",
    "grand_total",
    "total_score",
    "total_max_score",
    "last_attempted_on",
];
const ACTIVITY_COLUMNS: [&str; 6] = [
    "activity_type",
    "activity_id",
    "user_id",
    "context_id",
    "agg",
    "aggregates",
];

/// A statement, prepared on first use.
#[derive(Debug)]
struct Stmt {
    cql: String,
    prepared: OnceCell<PreparedStatement>,
}

impl Stmt {
    fn new(cql: String) -> Self {
        Self {
            cql,
            prepared: OnceCell::new(),
        }
    }
}

#[derive(Debug)]
struct Statements {
    batch_keys: Stmt,
    batch: Stmt,
    batches_of: Stmt,
    enrolments_by_batch: Option<Stmt>,
    enrolments_by_token: Stmt,
    attempts: Stmt,
    activity: Stmt,
    hierarchy: Stmt,
    setting: Stmt,
}

impl Statements {
    fn new(cfg: &CassandraConfig) -> Self {
        let cols = |c: &[&str]| c.join(", ");
        let batch_table = cfg.table("course_batch");
        Self {
            batch_keys: Stmt::new(format!("SELECT courseid, batchid FROM {batch_table}")),
            batch: Stmt::new(format!(
                "SELECT {} FROM {batch_table} WHERE courseid = ? AND batchid = ?",
                cols(&BATCH_COLUMNS)
            )),
            batches_of: Stmt::new(format!(
                "SELECT {} FROM {batch_table} WHERE courseid = ?",
                cols(&BATCH_COLUMNS)
            )),
            enrolments_by_batch: cfg.enrolment_source().map(|t| {
                Stmt::new(format!(
                    "SELECT {} FROM {t} WHERE batchid = ?",
                    cols(&ENROLMENT_COLUMNS)
                ))
            }),
            // `user_enrolments` is keyed `(userid, courseid, batchid)`:
            // `userid` alone is the partition key.
            enrolments_by_token: Stmt::new(format!(
                "SELECT {} FROM {} WHERE token(userid) > ? AND token(userid) <= ?",
                cols(&ENROLMENT_COLUMNS),
                cfg.table("user_enrolments")
            )),
            attempts: Stmt::new(format!(
                "SELECT {} FROM {} WHERE user_id = ? AND course_id = ?",
                cols(&ATTEMPT_COLUMNS),
                cfg.table("assessment_aggregator")
            )),
            activity: Stmt::new(format!(
                "SELECT {} FROM {} WHERE activity_type = ? AND activity_id = ? AND user_id = ? \
                 AND context_id = ?",
                cols(&ACTIVITY_COLUMNS),
                cfg.table("user_activity_agg")
            )),
            hierarchy: Stmt::new(format!(
                "SELECT identifier, hierarchy FROM {}.content_hierarchy WHERE identifier = ?",
                cfg.hierarchy_keyspace
            )),
            setting: Stmt::new(format!(
                "SELECT id, field, value FROM {}.system_settings WHERE id = ?",
                cfg.sunbird_keyspace
            )),
        }
    }
}

/// Sunbird's Cassandra behind the source traits.
pub struct CassandraSource {
    session: Session,
    cfg: CassandraConfig,
    stmts: Statements,
    counters: Counters,
    /// Batch id → course id, from key scans of `course_batch`.
    batch_courses: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for CassandraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraSource")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// What a query reads, for error messages: the table and the key.
struct Ctx<'a> {
    table: &'a str,
    key: String,
}

impl Ctx<'_> {
    fn bad_data(&self, detail: impl std::fmt::Display) -> SourceError {
        SourceError::bad_data(SOURCE, format!("{} {}: {detail}", self.table, self.key))
    }
}

impl CassandraSource {
    /// Connects to the cluster. Statements are prepared on first use, so a
    /// table that a run never reads need not exist.
    pub async fn connect(cfg: &CassandraConfig) -> SourceResult<Self> {
        if cfg.contact_points.is_empty() {
            return Err(SourceError::unavailable(
                SOURCE,
                "no contact points are configured",
            ));
        }
        let mut profile = ExecutionProfile::builder();
        if let Some(dc) = &cfg.local_datacenter {
            profile = profile.load_balancing_policy(
                DefaultPolicy::builder()
                    .prefer_datacenter(dc.clone())
                    .token_aware(true)
                    .build(),
            );
        }
        let profile = profile
            .consistency(cfg.consistency.into())
            .request_timeout(Some(Duration::from_millis(cfg.request_timeout_ms.max(1))))
            // Retries are ours (with back-off, page by page); the driver's
            // would multiply them.
            .retry_policy(Arc::new(FallthroughRetryPolicy::new()))
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&cfg.contact_points)
            .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms.max(1)))
            // Table metadata is not needed: statements are prepared, and
            // partition keys come with them.
            .fetch_schema_metadata(false)
            .default_execution_profile_handle(profile.into_handle());
        if let Some(user) = &cfg.username {
            builder = builder.user(user, cfg.password.clone().unwrap_or_default());
        }
        let retry = Retry {
            retries: cfg.retries,
            base_ms: cfg.retry_backoff_ms,
        };
        let session = retry
            .run("cassandra connection", |_| true, || builder.build())
            .await
            .map_err(|g| {
                SourceError::unavailable(
                    SOURCE,
                    format!(
                        "cannot connect to {}: {}",
                        cfg.contact_points.join(", "),
                        g.error
                    ),
                )
            })?;
        tracing::debug!(nodes = cfg.contact_points.len(), "connected to cassandra");
        Ok(Self {
            session,
            stmts: Statements::new(cfg),
            cfg: cfg.clone(),
            counters: Counters::default(),
            batch_courses: Mutex::new(HashMap::new()),
        })
    }

    /// What this source has read since it was connected.
    pub fn read_stats(&self) -> ReadStats {
        self.counters.stats()
    }

    /// The configuration it was connected with.
    pub fn config(&self) -> &CassandraConfig {
        &self.cfg
    }

    async fn prepared<'s>(&'s self, stmt: &'s Stmt) -> SourceResult<&'s PreparedStatement> {
        stmt.prepared
            .get_or_try_init(|| async {
                let mut p = self
                    .retry()
                    .run("cassandra prepare", prepare_is_transient, || {
                        self.session.prepare(stmt.cql.as_str())
                    })
                    .await
                    .map_err(|g| {
                        SourceError::unavailable(
                            SOURCE,
                            format!("cannot prepare `{}`: {}", stmt.cql, g.error),
                        )
                    })?;
                p.set_page_size(self.cfg.page_size.max(1));
                p.set_is_idempotent(true);
                Ok(p)
            })
            .await
    }

    fn retry(&self) -> Retry {
        Retry {
            retries: self.cfg.retries,
            base_ms: self.cfg.retry_backoff_ms,
        }
    }

    /// Runs a statement and hands its rows to `f` page by page. A page that
    /// times out or finds a node unavailable is retried with back-off.
    async fn for_each_page<V>(
        &self,
        stmt: &Stmt,
        values: &V,
        ctx: &Ctx<'_>,
        mut f: impl FnMut(Vec<Row>) -> SourceResult<()>,
    ) -> SourceResult<()>
    where
        V: SerializeRow + Sync,
    {
        let prepared = self.prepared(stmt).await?;
        let mut paging = PagingState::start();
        loop {
            let (result, next) = self
                .retry()
                .run(ctx.table, execution_is_transient, || {
                    self.counters.query();
                    self.session
                        .execute_single_page(prepared, values, paging.clone())
                })
                .await
                .map_err(|g| {
                    let detail = if g.transient {
                        format!(
                            "reading {} {} failed after {} attempts: {}",
                            ctx.table, ctx.key, g.attempts, g.error
                        )
                    } else {
                        format!("reading {} {} failed: {}", ctx.table, ctx.key, g.error)
                    };
                    SourceError::unavailable(SOURCE, detail)
                })?;
            let rows = result
                .into_rows_result()
                .map_err(|e| ctx.bad_data(format!("the result is not rows: {e}")))?;
            let rows_vec: Vec<Row> = rows
                .rows::<Row>()
                .map_err(|e| ctx.bad_data(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| ctx.bad_data(e))?;
            self.counters
                .received(rows_vec.len(), rows.rows_bytes_size());
            f(rows_vec)?;
            match next {
                PagingStateResponse::HasMorePages { state } => paging = state,
                PagingStateResponse::NoMorePages => return Ok(()),
            }
        }
    }

    /// Every row of a query, decoded by `decode`.
    async fn collect<V, T>(
        &self,
        stmt: &Stmt,
        values: &V,
        ctx: &Ctx<'_>,
        columns: &[&str],
        decode: impl Fn(&[&str], &Row) -> Result<T, RowError>,
    ) -> SourceResult<Vec<T>>
    where
        V: SerializeRow + Sync,
    {
        let mut out = Vec::new();
        self.for_each_page(stmt, values, ctx, |rows| {
            for row in rows {
                out.push(decode(columns, &row).map_err(|e| ctx.bad_data(e))?);
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Runs reads `0..n` (one partition each), at most
    /// [`CassandraConfig::concurrency`] at once; their rows in read order.
    ///
    /// Reads finish out of order: each finished read makes room for the
    /// next at once (`buffered` would hold a finished read's slot until
    /// every earlier read had finished, so one slow partition would leave
    /// fewer queries in flight), and the parts are put back in order at the
    /// end.
    async fn concurrently<'a, T: Send + 'a>(
        &'a self,
        n: usize,
        mut read: impl FnMut(usize) -> BoxFuture<'a, SourceResult<Vec<T>>> + Send + 'a,
    ) -> SourceResult<Vec<T>> {
        let mut parts: Vec<(usize, Vec<T>)> = stream::iter(0..n)
            .map(|i| {
                let part = read(i);
                async move { part.await.map(|rows| (i, rows)) }
            })
            .buffer_unordered(self.cfg.concurrency.max(1))
            .try_collect()
            .await?;
        parts.sort_unstable_by_key(|(i, _)| *i);
        Ok(parts.into_iter().flat_map(|(_, rows)| rows).collect())
    }

    /// Scans `course_batch`'s key columns and remembers every batch's course.
    async fn scan_batch_keys(&self) -> SourceResult<()> {
        let table = self.cfg.table("course_batch");
        let ctx = Ctx {
            table: &table,
            key: "(key scan)".into(),
        };
        let mut found = Vec::new();
        self.for_each_page(&self.stmts.batch_keys, &(), &ctx, |rows| {
            for row in rows {
                let mut cols = row.columns.into_iter();
                if let (Some(Some(course)), Some(Some(batch))) = (cols.next(), cols.next()) {
                    match (course, batch) {
                        (CqlValue::Text(c), CqlValue::Text(b))
                        | (CqlValue::Ascii(c), CqlValue::Ascii(b)) => found.push((b, c)),
                        _ => return Err(ctx.bad_data("courseid and batchid are not text")),
                    }
                }
            }
            Ok(())
        })
        .await?;
        let mut map = self
            .batch_courses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.extend(found);
        Ok(())
    }

    fn remembered_course(&self, batch: &BatchId) -> Option<String> {
        self.batch_courses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(batch.as_str())
            .cloned()
    }

    async fn batch_row(&self, course: &str, batch: &BatchId) -> SourceResult<Option<CourseBatch>> {
        let table = self.cfg.table("course_batch");
        let ctx = Ctx {
            table: &table,
            key: format!("(courseid={course}, batchid={batch})"),
        };
        let rows = self
            .collect(
                &self.stmts.batch,
                &(course, batch.as_str()),
                &ctx,
                &BATCH_COLUMNS,
                decode_batch,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn enrolments_by_batch<F>(
        &self,
        stmt: &Stmt,
        batch: &CourseBatch,
        on_chunk: &mut F,
    ) -> SourceResult<()>
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send,
    {
        let table = self.cfg.enrolment_source().unwrap_or_default();
        let ctx = Ctx {
            table: &table,
            key: format!("(batchid={})", batch.batch_id),
        };
        self.for_each_page(stmt, &(batch.batch_id.as_str(),), &ctx, |rows| {
            let mut chunk = Vec::with_capacity(rows.len());
            for row in rows {
                let record =
                    decode_enrolment(&ENROLMENT_COLUMNS, &row).map_err(|e| ctx.bad_data(e))?;
                // The table is keyed by batch; a row of another batch would
                // be a broken copy, and is not the report's.
                if record.batch_id == batch.batch_id {
                    chunk.push(record);
                }
            }
            if !chunk.is_empty() {
                on_chunk(chunk);
            }
            Ok(())
        })
        .await
    }

    async fn enrolments_by_token<F>(
        &self,
        batch: &CourseBatch,
        on_chunk: &mut F,
    ) -> SourceResult<()>
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send,
    {
        let table = self.cfg.table("user_enrolments");
        let ranges = token_ranges(self.cfg.scan_splits);
        tracing::debug!(batch = %batch.batch_id, ranges = ranges.len(), "scanning user_enrolments by token range");
        let wanted = batch.batch_id.as_str();
        let mut results = stream::iter(ranges)
            .map(|(from, to)| {
                let table = table.as_str();
                async move {
                    let ctx = Ctx {
                        table,
                        key: format!("(token range {from}..={to}, batchid={wanted})"),
                    };
                    let mut kept = Vec::new();
                    self.for_each_page(
                        &self.stmts.enrolments_by_token,
                        &(from, to),
                        &ctx,
                        |rows| {
                            for row in rows {
                                let of_batch = matches!(
                                    row.columns.get(ENROLMENT_BATCH),
                                    Some(Some(CqlValue::Text(b) | CqlValue::Ascii(b))) if b == wanted
                                );
                                if of_batch {
                                    kept.push(
                                        decode_enrolment(&ENROLMENT_COLUMNS, &row)
                                            .map_err(|e| ctx.bad_data(e))?,
                                    );
                                }
                            }
                            Ok(())
                        },
                    )
                    .await?;
                    Ok::<_, SourceError>(kept)
                }
            })
            .buffer_unordered(self.cfg.concurrency.max(1));
        while let Some(kept) = results.try_next().await? {
            if !kept.is_empty() {
                on_chunk(kept);
            }
        }
        Ok(())
    }
}

/// The Murmur3 token ring `(i64::MIN, i64::MAX]` cut into `splits` ranges
/// `(from, to]`. No key hashes to `i64::MIN`, so the ranges cover every row
/// exactly once.
fn token_ranges(splits: usize) -> Vec<(i64, i64)> {
    let splits = splits.clamp(1, 1 << 16) as i128;
    let (min, max) = (i128::from(i64::MIN), i128::from(i64::MAX));
    let width = (max - min) / splits;
    (0..splits)
        .map(|i| {
            let from = min + i * width;
            let to = if i == splits - 1 {
                max
            } else {
                min + (i + 1) * width
            };
            // Both ends lie within i64 by construction.
            (from as i64, to as i64)
        })
        .collect()
}

fn execution_is_transient(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::ConnectionPoolError(_)
        | ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan => true,
        ExecutionError::LastAttemptError(a) => attempt_is_transient(a),
        ExecutionError::PrepareError(p) => prepare_is_transient(p),
        _ => false,
    }
}

fn prepare_is_transient(e: &PrepareError) -> bool {
    match e {
        PrepareError::ConnectionPoolError(_) => true,
        PrepareError::AllAttemptsFailed { first_attempt } => attempt_is_transient(first_attempt),
        _ => false,
    }
}

fn attempt_is_transient(e: &RequestAttemptError) -> bool {
    match e {
        RequestAttemptError::UnableToAllocStreamId
        | RequestAttemptError::BrokenConnectionError(_) => true,
        RequestAttemptError::DbError(db, _) => matches!(
            db,
            DbError::Unavailable { .. }
                | DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::ReadTimeout { .. }
                | DbError::ReadFailure { .. }
                | DbError::ServerError
                | DbError::RateLimitReached { .. }
        ),
        _ => false,
    }
}

/// A CQL row read through serde, as a map of column name to value (null
/// columns left out), so the snapshot's row types (`rows.rs`) decode it
/// directly: no JSON value is built, and text is borrowed from the row.
/// Values take the shapes `dsbulk unload -c json` gives them (SNAPSHOT.md),
/// so a value means the same in a snapshot and in Cassandra: timestamps
/// as ISO-8601 UTC text with milliseconds, maps as maps, lists and sets as
/// sequences, NaN and infinities as their text (which the row types parse
/// back), types the report never reads as text (which the row types refuse
/// where a number or a timestamp is expected).
struct CqlRow<'a> {
    columns: &'a [&'a str],
    row: &'a Row,
}

impl<'de> serde::Deserializer<'de> for CqlRow<'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        let entries = self
            .columns
            .iter()
            .zip(&self.row.columns)
            .filter_map(|(name, value)| value.as_ref().map(|value| (Text(name), Cql(value))));
        v.visit_map(serde::de::value::MapDeserializer::new(entries))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A borrowed text, as a map key.
struct Text<'a>(&'a str);

impl<'de> serde::de::IntoDeserializer<'de> for Text<'de> {
    type Deserializer = serde::de::value::BorrowedStrDeserializer<'de, serde::de::value::Error>;
    fn into_deserializer(self) -> Self::Deserializer {
        serde::de::value::BorrowedStrDeserializer::new(self.0)
    }
}

/// One CQL value.
struct Cql<'a>(&'a CqlValue);

impl<'de> serde::de::IntoDeserializer<'de> for Cql<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// A map key's text: keys that are not text are written as dsbulk writes
/// them (`5`, `true`, a timestamp's ISO text).
fn key_text(k: &CqlValue) -> Result<std::borrow::Cow<'_, str>, serde::de::value::Error> {
    Ok(match k {
        CqlValue::Text(s) | CqlValue::Ascii(s) => std::borrow::Cow::Borrowed(s.as_str()),
        other => {
            let v = <serde_json::Value as Deserialize>::deserialize(Cql(other))?;
            std::borrow::Cow::Owned(match v {
                serde_json::Value::String(s) => s,
                v => v.to_string(),
            })
        }
    })
}

impl<'de> serde::Deserializer<'de> for Cql<'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        use serde::de::value::{MapDeserializer, SeqDeserializer};
        match self.0 {
            CqlValue::Text(s) | CqlValue::Ascii(s) => v.visit_borrowed_str(s),
            CqlValue::Boolean(b) => v.visit_bool(*b),
            CqlValue::Int(i) => v.visit_i64(i64::from(*i)),
            CqlValue::BigInt(i) => v.visit_i64(*i),
            CqlValue::SmallInt(i) => v.visit_i64(i64::from(*i)),
            CqlValue::TinyInt(i) => v.visit_i64(i64::from(*i)),
            CqlValue::Counter(c) => v.visit_i64(c.0),
            CqlValue::Double(f) => float(*f, v),
            CqlValue::Float(f) => float(f64::from(*f), v),
            CqlValue::Timestamp(t) => match crate::rows::iso_millis(t.0) {
                Some(s) => v.visit_string(s),
                None => v.visit_i64(t.0),
            },
            CqlValue::List(items) | CqlValue::Set(items) => {
                v.visit_seq(SeqDeserializer::new(items.iter().map(Cql)))
            }
            CqlValue::Map(pairs) => {
                let entries = pairs
                    .iter()
                    .map(|(k, val)| key_text(k).map(|k| (k, Cql(val))))
                    .collect::<Result<Vec<_>, _>>()?;
                v.visit_map(MapDeserializer::new(
                    entries.into_iter().map(|(k, val)| (CowText(k), val)),
                ))
            }
            CqlValue::Empty => v.visit_unit(),
            CqlValue::Uuid(u) => v.visit_string(u.to_string()),
            CqlValue::Timeuuid(u) => v.visit_string(u.to_string()),
            other => v.visit_string(format!("<{other:?}>")),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            CqlValue::Empty => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A map key, borrowed or made.
struct CowText<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::de::IntoDeserializer<'de> for CowText<'de> {
    type Deserializer = CowText<'de>;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for CowText<'de> {
    type Error = serde::de::value::Error;
    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            std::borrow::Cow::Borrowed(s) => v.visit_borrowed_str(s),
            std::borrow::Cow::Owned(s) => v.visit_string(s),
        }
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A double: JSON has no NaN or infinity, so dsbulk writes those as text,
/// and so do we (the row types parse the text back).
fn float<'de, V: serde::de::Visitor<'de>>(
    f: f64,
    v: V,
) -> Result<V::Value, serde::de::value::Error> {
    if f.is_finite() {
        v.visit_f64(f)
    } else {
        v.visit_string(f.to_string())
    }
}

/// Decodes a row through one of the snapshot's row types.
fn decode<'a, T: Deserialize<'a>>(columns: &'a [&'a str], row: &'a Row) -> Result<T, RowError> {
    T::deserialize(CqlRow { columns, row }).map_err(|e| e.to_string())
}

fn decode_batch(columns: &[&str], row: &Row) -> Result<CourseBatch, RowError> {
    decode::<BatchRow>(columns, row)?.into_batch()
}

fn decode_enrolment(columns: &[&str], row: &Row) -> Result<EnrolmentRecord, RowError> {
    decode::<EnrolmentRow>(columns, row)?.into_record()
}

fn decode_attempt(columns: &[&str], row: &Row) -> Result<AssessmentAttempt, RowError> {
    decode::<AttemptRow>(columns, row)?.into_attempt()
}

fn decode_activity(columns: &[&str], row: &Row) -> Result<ActivityAggregate, RowError> {
    decode::<ActivityRow>(columns, row)?.into_aggregate()
}

/// A text column (`None` when null).
fn text_column(columns: &[&str], row: &Row, name: &str) -> Result<Option<String>, RowError> {
    let value = columns
        .iter()
        .position(|c| *c == name)
        .and_then(|i| row.columns.get(i))
        .and_then(Option::as_ref);
    match value {
        None | Some(CqlValue::Empty) => Ok(None),
        Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name} is not text")),
    }
}

impl BatchSource for CassandraSource {
    async fn course_batch(&self, id: &BatchId) -> SourceResult<Option<CourseBatch>> {
        let course = match self.remembered_course(id) {
            Some(c) => c,
            None => {
                self.scan_batch_keys().await?;
                match self.remembered_course(id) {
                    Some(c) => c,
                    None => return Ok(None),
                }
            }
        };
        self.batch_row(&course, id).await
    }
}

impl CollectionBatchSource for CassandraSource {
    async fn batches_of(&self, collections: &[ContentId]) -> SourceResult<Vec<CourseBatch>> {
        let table = self.cfg.table("course_batch");
        let mut out = self
            .concurrently(collections.len(), |i| {
                let (course, table) = (&collections[i], table.as_str());
                Box::pin(async move {
                    let ctx = Ctx {
                        table,
                        key: format!("(courseid={course})"),
                    };
                    self.collect(
                        &self.stmts.batches_of,
                        &(course.as_str(),),
                        &ctx,
                        &BATCH_COLUMNS,
                        decode_batch,
                    )
                    .await
                })
            })
            .await?;
        out.sort_by(|a, b| a.batch_id.cmp(&b.batch_id));
        out.dedup_by(|a, b| a.batch_id == b.batch_id);
        Ok(out)
    }
}

impl EnrolmentSource for CassandraSource {
    async fn enrolments<F>(&self, batch: &CourseBatch, mut on_chunk: F) -> SourceResult<()>
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send,
    {
        match &self.stmts.enrolments_by_batch {
            Some(stmt) => self.enrolments_by_batch(stmt, batch, &mut on_chunk).await,
            None => self.enrolments_by_token(batch, &mut on_chunk).await,
        }
    }
}

impl AttemptSource for CassandraSource {
    async fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> SourceResult<Vec<AssessmentAttempt>> {
        let table = self.cfg.table("assessment_aggregator");
        self.concurrently(users.len(), |i| {
            let (user, table) = (&users[i], table.as_str());
            Box::pin(async move {
                let ctx = Ctx {
                    table,
                    key: format!("(user_id={user}, course_id={collection})"),
                };
                self.collect(
                    &self.stmts.attempts,
                    &(user.as_str(), collection.as_str()),
                    &ctx,
                    &ATTEMPT_COLUMNS,
                    decode_attempt,
                )
                .await
            })
        })
        .await
    }
}

impl ActivitySource for CassandraSource {
    async fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        let table = self.cfg.table("user_activity_agg");
        let context = format!("cb:{batch}");
        let per_user = activities.len();
        if per_user == 0 {
            return Ok(Vec::new());
        }
        self.concurrently(users.len() * per_user, |i| {
            let (user, activity) = (&users[i / per_user], &activities[i % per_user]);
            let (table, context) = (table.as_str(), context.as_str());
            Box::pin(async move {
                let ctx = Ctx {
                    table,
                    key: format!(
                        "(activity_type=Course, activity_id={activity}, user_id={user}, \
                         context_id={context})"
                    ),
                };
                self.collect(
                    &self.stmts.activity,
                    &("Course", activity.as_str(), user.as_str(), context),
                    &ctx,
                    &ACTIVITY_COLUMNS,
                    decode_activity,
                )
                .await
            })
        })
        .await
    }
}

impl HierarchySource for CassandraSource {
    async fn hierarchy(&self, collection: &ContentId) -> SourceResult<Option<String>> {
        let table = format!("{}.content_hierarchy", self.cfg.hierarchy_keyspace);
        let ctx = Ctx {
            table: &table,
            key: format!("(identifier={collection})"),
        };
        let found = self
            .collect(
                &self.stmts.hierarchy,
                &(collection.as_str(),),
                &ctx,
                &["identifier", "hierarchy"],
                |columns, row| text_column(columns, row, "hierarchy"),
            )
            .await?;
        Ok(found.into_iter().flatten().next())
    }
}

impl CustodianOrgSource for CassandraSource {
    async fn custodian_org(&self) -> SourceResult<Option<OrgId>> {
        let table = format!("{}.system_settings", self.cfg.sunbird_keyspace);
        let ctx = Ctx {
            table: &table,
            key: "(id=custodianOrgId)".into(),
        };
        let found = self
            .collect(
                &self.stmts.setting,
                &("custodianOrgId",),
                &ctx,
                &["id", "field", "value"],
                |columns, row| text_column(columns, row, "value"),
            )
            .await?;
        Ok(found.into_iter().flatten().next().map(OrgId::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ranges_cover_the_ring_once() {
        for splits in [1, 2, 3, 256] {
            let r = token_ranges(splits);
            assert_eq!(r.len(), splits);
            assert_eq!(r[0].0, i64::MIN);
            assert_eq!(r[splits - 1].1, i64::MAX);
            for w in r.windows(2) {
                assert_eq!(w[0].1, w[1].0, "ranges are contiguous");
                assert!(w[0].0 < w[0].1);
            }
        }
    }

    #[test]
    fn cql_values_become_dsbulk_json() {
        let row = Row {
            columns: vec![
                Some(CqlValue::Text("u1".into())),
                None,
                Some(CqlValue::Timestamp(scylla::value::CqlTimestamp(
                    1_573_883_310_382,
                ))),
                Some(CqlValue::Map(vec![(
                    CqlValue::Text("do_1".into()),
                    CqlValue::Int(2),
                )])),
                Some(CqlValue::List(vec![CqlValue::Map(vec![])])),
                Some(CqlValue::Double(f64::NAN)),
            ],
        };
        let json: serde_json::Value =
            decode(&["a", "b", "c", "d", "e", "f"], &row).expect("decodes");
        assert_eq!(
            json.to_string(),
            r#"{"a":"u1","c":"2019-11-16T05:48:30.382Z","d":{"do_1":2},"e":[{}],"f":"NaN"}"#
        );
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let cfg = CassandraConfig {
            username: Some("reporter".into()),
            password: Some("hunter2".into()),
            ..CassandraConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(shown.contains("reporter"));
        assert!(!shown.contains("hunter2"));
    }
}
