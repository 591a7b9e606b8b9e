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

mod config;
mod decode;
mod statements;

pub use config::*;
use decode::*;
use statements::*;

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
        if cfg.tls.is_configured() {
            let tls = cfg.tls.rustls_client_config().map_err(|e| {
                SourceError::unavailable(SOURCE, format!("cannot set up TLS to the nodes: {e}"))
            })?;
            builder = builder.tls_context(Some(Arc::new(tls)));
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
        self.concurrently(collections.len(), |i| {
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
        .await
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
