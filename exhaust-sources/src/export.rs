//! Copies what one batch's report reads, from any source, into a snapshot
//! folder (SNAPSHOT.md), for support cases and offline re-runs.
//!
//! The export goes through the same source traits as the report and asks
//! for the same keys, so the folder holds exactly what the report would read:
//! the batch row, its collection's metadata, hierarchy and optional nodes,
//! the batch's enrolment rows, those users' cache entries, their attempts in
//! the collection and their aggregates in the batch, and the custodian org.
//! The report built from the folder is byte for byte the report built from
//! the source. What the report does not read is not copied: certificate
//! details (only their number matters) and the other columns of each table.
//!
//! Data the source does not have (a collection unknown to the search, a
//! missing hierarchy) is left out rather than refused, so the export of a
//! failing batch fails the same way when re-run. Files are written under
//! temporary names and renamed when every one is complete.

use crate::rows::iso_timestamp;
use exhaust_core::hierarchy::{AssessmentRules, Hierarchy};
use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
    UserProfile,
};
use exhaust_core::source::{ReportSource, SourceError};
use exhaust_core::{BatchId, ContentId, UserId};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// How the snapshot is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The user cache key prefix written (`user:`), as the snapshot reader
    /// that opens the export expects.
    pub user_key_prefix: String,
    /// The optional nodes key suffix written (`optionalnodes`).
    pub optional_nodes_suffix: String,
    /// Users read per chunk (profiles, attempts, aggregates).
    pub chunk_size: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            user_key_prefix: "user:".into(),
            optional_nodes_suffix: "optionalnodes".into(),
            chunk_size: 2_000,
        }
    }
}

/// What an export copied: ids and counts only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// The batch.
    pub batch_id: BatchId,
    /// Its collection.
    pub collection_id: ContentId,
    /// Whether the search knew the collection.
    pub collection_found: bool,
    /// Whether a hierarchy is stored for it.
    pub hierarchy_found: bool,
    /// Optional nodes of the collection.
    pub optional_nodes: usize,
    /// Enrolment rows of the batch.
    pub enrolments: usize,
    /// Distinct users of those rows.
    pub users: usize,
    /// Users the cache holds (well-formed or not).
    pub users_cached: usize,
    /// Assessment attempts copied.
    pub attempts: usize,
    /// Activity aggregates copied.
    pub aggregates: usize,
    /// Whether a custodian org is configured.
    pub custodian_org: bool,
    /// The files written, by name.
    pub files: Vec<String>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No `course_batch` row has this id.
    #[error("unknown batch {0}")]
    UnknownBatch(BatchId),
    /// The folder already holds snapshot tables; an export never mixes with them.
    #[error("{} already holds snapshot tables ({})", .dir.display(), .file)]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
        /// One of the tables found.
        file: String,
    },
    /// A source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl ExportError {
    /// Whether the same export may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Source(e) => e.is_retryable(),
            Self::Io { .. } => true,
            Self::UnknownBatch(_) | Self::NotEmpty { .. } => false,
        }
    }
}

const TABLES: [&str; 9] = [
    "course_batch",
    "content",
    "content_hierarchy",
    "relation_cache",
    "user_enrolments",
    "user_cache",
    "assessment_aggregator",
    "user_activity_agg",
    "system_settings",
];

/// The snapshot files being written, under temporary names until `finish`.
struct Files {
    dir: PathBuf,
    open: Vec<(&'static str, PathBuf, BufWriter<File>)>,
}

impl Files {
    fn new(dir: &Path) -> Result<Self, ExportError> {
        std::fs::create_dir_all(dir).map_err(|source| ExportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for t in TABLES {
            for name in [format!("{t}.jsonl"), format!("{t}.jsonl.gz")] {
                if dir.join(&name).exists() {
                    return Err(ExportError::NotEmpty {
                        dir: dir.to_path_buf(),
                        file: name,
                    });
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            open: Vec::new(),
        })
    }

    fn writer(&mut self, table: &'static str) -> Result<&mut BufWriter<File>, ExportError> {
        if let Some(i) = self.open.iter().position(|(t, _, _)| *t == table) {
            return Ok(&mut self.open[i].2);
        }
        let path = self.dir.join(format!(".{table}.jsonl.part"));
        let file = File::create(&path).map_err(|source| ExportError::Io {
            path: path.clone(),
            source,
        })?;
        self.open.push((table, path, BufWriter::new(file)));
        let last = self.open.len() - 1;
        Ok(&mut self.open[last].2)
    }

    fn line(&mut self, table: &'static str, row: &Value) -> Result<(), ExportError> {
        let path = self.dir.join(format!(".{table}.jsonl.part"));
        let w = self.writer(table)?;
        serde_json::to_writer(&mut *w, row)
            .map_err(std::io::Error::from)
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|source| ExportError::Io { path, source })
    }

    /// Flushes every file and gives each its final name.
    fn finish(mut self) -> Result<Vec<String>, ExportError> {
        let mut names = Vec::new();
        for (table, part, mut w) in std::mem::take(&mut self.open) {
            w.flush()
                .and_then(|()| w.get_ref().sync_all())
                .map_err(|source| ExportError::Io {
                    path: part.clone(),
                    source,
                })?;
            let name = format!("{table}.jsonl");
            let path = self.dir.join(&name);
            std::fs::rename(&part, &path).map_err(|source| ExportError::Io { path, source })?;
            names.push(name);
        }
        names.sort();
        Ok(names)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        // An export that failed leaves no partial table behind.
        for (_, part, _) in self.open.drain(..) {
            let _ = std::fs::remove_file(part);
        }
    }
}

/// Copies what the report of `batch` reads from `source` into `dir` (created
/// when missing; it must not already hold snapshot tables).
pub async fn export_batch<S: ReportSource>(
    source: &S,
    batch: &BatchId,
    dir: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let row = source
        .course_batch(batch)
        .await?
        .ok_or_else(|| ExportError::UnknownBatch(batch.clone()))?;
    let course = row.course_id.clone();
    let mut files = Files::new(dir)?;
    let mut summary = ExportSummary {
        batch_id: batch.clone(),
        collection_id: course.clone(),
        ..ExportSummary::default()
    };
    files.line("course_batch", &batch_json(&row))?;

    if let Some(meta) = source
        .collections(std::slice::from_ref(&course))
        .await?
        .into_iter()
        .find(|m| m.identifier == course)
    {
        summary.collection_found = true;
        files.line("content", &content_json(&meta))?;
    }

    // The aggregates the report reads are those of the nested collections;
    // the course's own row is copied too. A hierarchy that does not parse is
    // still copied (it is the support case), with the course row only.
    let mut activities = vec![course.clone()];
    if let Some(h) = source.hierarchy(&course).await? {
        summary.hierarchy_found = true;
        files.line(
            "content_hierarchy",
            &json!({"identifier": course.as_str(), "hierarchy": h}),
        )?;
        if let Ok(parsed) = Hierarchy::parse(course.as_str(), &h, &AssessmentRules::default()) {
            activities.extend(parsed.nested.into_iter().map(|n| n.id));
        }
    }
    activities.dedup();

    let optional = source.optional_nodes(&course).await?;
    if !optional.is_empty() {
        summary.optional_nodes = optional.len();
        let members: BTreeSet<&String> = optional.iter().collect();
        let key = format!(
            "{c}:{c}:{}",
            opts.optional_nodes_suffix,
            c = course.as_str()
        );
        files.line("relation_cache", &json!({"key": key, "value": members}))?;
    }

    let users = copy_enrolments(source, &row, &mut files, &mut summary).await?;
    summary.users = users.len();

    for chunk in users.chunks(opts.chunk_size.max(1)) {
        let entries = source.users(chunk).await?;
        for (id, entry) in chunk.iter().zip(entries) {
            let Some(entry) = entry else { continue };
            summary.users_cached += 1;
            let key = format!("{}{id}", opts.user_key_prefix);
            files.line(
                "user_cache",
                &json!({"key": key, "value": user_json(&entry)}),
            )?;
        }
        for a in source.attempts(&course, chunk).await? {
            summary.attempts += 1;
            files.line("assessment_aggregator", &attempt_json(&a))?;
        }
        for a in source.activity(batch, &activities, chunk).await? {
            summary.aggregates += 1;
            files.line("user_activity_agg", &activity_json(&a))?;
        }
    }

    if let Some(org) = source.custodian_org().await? {
        summary.custodian_org = true;
        files.line(
            "system_settings",
            &json!({"id": "custodianOrgId", "field": "custodianOrgId", "value": org.as_str()}),
        )?;
    }
    summary.files = files.finish()?;
    tracing::info!(
        batch = %batch,
        enrolments = summary.enrolments,
        users = summary.users,
        attempts = summary.attempts,
        aggregates = summary.aggregates,
        "exported the batch's sources"
    );
    Ok(summary)
}

/// Streams the batch's enrolment rows into the file; the distinct user ids.
async fn copy_enrolments<S: ReportSource>(
    source: &S,
    batch: &CourseBatch,
    files: &mut Files,
    summary: &mut ExportSummary,
) -> Result<Vec<UserId>, ExportError> {
    let mut users = BTreeSet::new();
    let mut failed: Option<ExportError> = None;
    let mut count = 0usize;
    source
        .enrolments(batch, |chunk| {
            for e in chunk {
                if failed.is_some() {
                    return;
                }
                count += 1;
                users.insert(e.user_id.clone());
                if let Err(err) = files.line("user_enrolments", &enrolment_json(&e)) {
                    failed = Some(err);
                }
            }
        })
        .await?;
    if let Some(err) = failed {
        return Err(err);
    }
    summary.enrolments = count;
    Ok(users.into_iter().collect())
}

fn insert_opt(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(key.to_owned(), v);
    }
}

fn number(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

fn batch_json(b: &CourseBatch) -> Value {
    let mut m = Map::new();
    m.insert("courseid".into(), json!(b.course_id.as_str()));
    m.insert("batchid".into(), json!(b.batch_id.as_str()));
    m.insert("name".into(), json!(b.name));
    insert_opt(&mut m, "status", b.status.map(Value::from));
    insert_opt(&mut m, "start_date", b.start_date.clone().map(Value::from));
    insert_opt(&mut m, "end_date", b.end_date.clone().map(Value::from));
    let templates: Map<String, Value> = b
        .cert_template_ids
        .iter()
        .map(|id| (id.clone(), json!({})))
        .collect();
    m.insert("cert_templates".into(), Value::Object(templates));
    Value::Object(m)
}

fn content_json(c: &CollectionMeta) -> Value {
    json!({
        "identifier": c.identifier.as_str(),
        "name": c.name,
        "channel": c.channel.as_str(),
        "status": c.status,
        "userConsent": c.user_consent,
    })
}

fn enrolment_json(e: &EnrolmentRecord) -> Value {
    let mut m = Map::new();
    m.insert("userid".into(), json!(e.user_id.as_str()));
    m.insert("courseid".into(), json!(e.course_id.as_str()));
    m.insert("batchid".into(), json!(e.batch_id.as_str()));
    insert_opt(&mut m, "active", e.active.map(Value::from));
    insert_opt(
        &mut m,
        "enrolleddate",
        e.enrolleddate.clone().map(Value::from),
    );
    insert_opt(
        &mut m,
        "enrolled_date",
        e.enrolled_date.map(|t| Value::from(iso_timestamp(t))),
    );
    insert_opt(
        &mut m,
        "completedon",
        e.completed_on.map(|t| Value::from(iso_timestamp(t))),
    );
    insert_opt(&mut m, "status", e.status.map(Value::from));
    if !e.content_status.is_empty() {
        let statuses: Map<String, Value> = e
            .content_status
            .iter()
            .map(|(id, s)| (id.clone(), Value::from(*s)))
            .collect();
        m.insert("contentstatus".into(), Value::Object(statuses));
    }
    // Only the number of certificates matters to the report.
    for (key, n) in [
        ("certificates", e.certificates),
        ("issued_certificates", e.issued_certificates),
    ] {
        if n > 0 {
            m.insert(key.into(), Value::Array(vec![json!({}); n]));
        }
    }
    Value::Object(m)
}

fn user_json(entry: &UserEntry) -> Value {
    match entry {
        UserEntry::Profile(p) => {
            let fields: Map<String, Value> = profile_fields(p)
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), json!(v))))
                .collect();
            Value::Object(fields)
        }
        // The snapshot reader reads a value that is not a hash as malformed;
        // the text says what was wrong (field names, never values).
        UserEntry::Malformed(why) => json!(why),
    }
}

fn profile_fields(p: &UserProfile) -> [(&'static str, &Option<String>); 13] {
    [
        ("firstname", &p.firstname),
        ("lastname", &p.lastname),
        ("state", &p.state),
        ("district", &p.district),
        ("orgname", &p.orgname),
        ("schooludisecode", &p.schooludisecode),
        ("schoolname", &p.schoolname),
        ("block", &p.block),
        ("cluster", &p.cluster),
        ("board", &p.board),
        ("usertype", &p.usertype),
        ("usersubtype", &p.usersubtype),
        ("rootorgid", &p.rootorgid),
    ]
}

fn attempt_json(a: &AssessmentAttempt) -> Value {
    let mut m = Map::new();
    m.insert("user_id".into(), json!(a.user_id.as_str()));
    m.insert("course_id".into(), json!(a.course_id.as_str()));
    m.insert("batch_id".into(), json!(a.batch_id.as_str()));
    m.insert("content_id".into(), json!(a.content_id.as_str()));
    m.insert("attempt_id".into(), json!(a.attempt_id));
    insert_opt(
        &mut m,
        "grand_total",
        a.grand_total.clone().map(Value::from),
    );
    insert_opt(&mut m, "total_score", a.total_score.map(number));
    insert_opt(&mut m, "total_max_score", a.total_max_score.map(number));
    insert_opt(
        &mut m,
        "last_attempted_on",
        a.last_attempted_on.map(|t| Value::from(iso_timestamp(t))),
    );
    Value::Object(m)
}

fn activity_json(a: &ActivityAggregate) -> Value {
    let mut m = Map::new();
    m.insert("activity_type".into(), json!("Course"));
    m.insert("activity_id".into(), json!(a.activity_id.as_str()));
    m.insert("user_id".into(), json!(a.user_id.as_str()));
    m.insert("context_id".into(), json!(a.context_id));
    insert_opt(
        &mut m,
        "aggregates",
        a.aggregates_completed
            .map(|c| json!({"completedCount": number(c)})),
    );
    insert_opt(
        &mut m,
        "agg",
        a.agg_completed.map(|c| json!({"completedCount": c})),
    );
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn enrolment_rows_round_trip_through_the_snapshot_row() {
        let e = EnrolmentRecord {
            user_id: UserId::new("u1"),
            course_id: ContentId::new("do_1"),
            batch_id: BatchId::new("b1"),
            active: Some(true),
            enrolled_date: Some(chrono::Utc.timestamp_millis_opt(1_573_883_310_382).unwrap()),
            enrolleddate: Some("2019-11-13 05:41:50:382+0000".into()),
            completed_on: None,
            status: Some(1),
            content_status: vec![("do_11".into(), 2)],
            certificates: 0,
            issued_certificates: 2,
        };
        let row: crate::rows::EnrolmentRow =
            serde_json::from_value(enrolment_json(&e)).expect("a snapshot row");
        assert_eq!(row.into_record().expect("converts"), e);
    }
}
