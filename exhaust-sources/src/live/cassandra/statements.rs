//! The statements the adapter prepares (the columns each read selects,
//! `?` markers only), the token ranges of a scan, and which driver errors
//! are worth a retry.

use super::*;

// The columns each read selects, in order; rows are decoded by these names.
pub(super) const BATCH_COLUMNS: [&str; 9] = [
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
pub(super) const ENROLMENT_COLUMNS: [&str; 11] = [
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
pub(super) const ENROLMENT_BATCH: usize = 2;
pub(super) const ATTEMPT_COLUMNS: [&str; 9] = [
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
pub(super) const ACTIVITY_COLUMNS: [&str; 6] = [
    "activity_type",
    "activity_id",
    "user_id",
    "context_id",
    "agg",
    "aggregates",
];

/// A statement, prepared on first use.
#[derive(Debug)]
pub(super) struct Stmt {
    pub(super) cql: String,
    pub(super) prepared: OnceCell<PreparedStatement>,
}

impl Stmt {
    pub(super) fn new(cql: String) -> Self {
        Self {
            cql,
            prepared: OnceCell::new(),
        }
    }
}

#[derive(Debug)]
pub(super) struct Statements {
    pub(super) batch_keys: Stmt,
    pub(super) batch: Stmt,
    pub(super) batches_of: Stmt,
    pub(super) enrolments_by_batch: Option<Stmt>,
    pub(super) enrolments_by_token: Stmt,
    pub(super) attempts: Stmt,
    pub(super) activity: Stmt,
    pub(super) hierarchy: Stmt,
    pub(super) setting: Stmt,
}

impl Statements {
    pub(super) fn new(cfg: &CassandraConfig) -> Self {
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

/// The Murmur3 token ring `(i64::MIN, i64::MAX]` cut into `splits` ranges
/// `(from, to]`. No key hashes to `i64::MIN`, so the ranges cover every row
/// exactly once.
pub(super) fn token_ranges(splits: usize) -> Vec<(i64, i64)> {
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

pub(super) fn execution_is_transient(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::ConnectionPoolError(_)
        | ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan => true,
        ExecutionError::LastAttemptError(a) => attempt_is_transient(a),
        ExecutionError::PrepareError(p) => prepare_is_transient(p),
        _ => false,
    }
}

pub(super) fn prepare_is_transient(e: &PrepareError) -> bool {
    match e {
        PrepareError::ConnectionPoolError(_) => true,
        PrepareError::AllAttemptsFailed { first_attempt } => attempt_is_transient(first_attempt),
        _ => false,
    }
}

pub(super) fn attempt_is_transient(e: &RequestAttemptError) -> bool {
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
