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

use crate::rows::lines::{
    ActivityLine, AttemptLine, BatchLine, CacheLine, CachedUser, ContentLine, EnrolmentLine,
    HierarchyLine, SettingLine,
};
use exhaust_core::hierarchy::{AssessmentRules, Hierarchy};
use exhaust_core::model::CourseBatch;
use exhaust_core::source::{ReportSource, SourceError};
use exhaust_core::{BatchId, ContentId, UserId};
use serde::Serialize;
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

    /// Writes one row. Its keys are written in name order, at every level:
    /// the export's lines have always been written so (through a JSON
    /// object, whose map is sorted), and an export is compared byte for
    /// byte.
    fn line<T: Serialize>(&mut self, table: &'static str, row: &T) -> Result<(), ExportError> {
        let path = self.dir.join(format!(".{table}.jsonl.part"));
        let w = self.writer(table)?;
        serde_json::to_value(row)
            .and_then(|sorted| serde_json::to_writer(&mut *w, &sorted))
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
    files.line("course_batch", &BatchLine::of(&row))?;

    if let Some(meta) = source
        .collections(std::slice::from_ref(&course))
        .await?
        .into_iter()
        .find(|m| m.identifier == course)
    {
        summary.collection_found = true;
        files.line("content", &ContentLine::of(&meta))?;
    }

    // The aggregates the report reads are those of the nested collections;
    // the course's own row is copied too. A hierarchy that does not parse is
    // still copied (it is the support case), with the course row only.
    let mut activities = vec![course.clone()];
    if let Some(h) = source.hierarchy(&course).await? {
        summary.hierarchy_found = true;
        files.line(
            "content_hierarchy",
            &HierarchyLine {
                identifier: course.as_str(),
                hierarchy: &h,
            },
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
        files.line(
            "relation_cache",
            &CacheLine {
                key: &key,
                value: members,
            },
        )?;
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
                &CacheLine {
                    key: &key,
                    value: CachedUser(&entry),
                },
            )?;
        }
        for a in source.attempts(&course, chunk).await? {
            summary.attempts += 1;
            files.line("assessment_aggregator", &AttemptLine::of(&a))?;
        }
        for a in source.activity(batch, &activities, chunk).await? {
            summary.aggregates += 1;
            files.line("user_activity_agg", &ActivityLine::of(&a))?;
        }
    }

    if let Some(org) = source.custodian_org().await? {
        summary.custodian_org = true;
        files.line(
            "system_settings",
            &SettingLine {
                id: "custodianOrgId",
                field: "custodianOrgId",
                value: org.as_str(),
            },
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
                if let Err(err) = files.line("user_enrolments", &EnrolmentLine::of(&e)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use exhaust_core::model::{
        ActivityAggregate, AssessmentAttempt, CollectionMeta, EnrolmentRecord, UserEntry,
        UserProfile,
    };

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
            content_status: [("do_11", 2)].into(),
            certificates: 0,
            issued_certificates: 2,
        };
        let row: crate::rows::EnrolmentRow =
            serde_json::from_value(serde_json::to_value(EnrolmentLine::of(&e)).expect("a value"))
                .expect("a snapshot row");
        assert_eq!(row.into_record().expect("converts"), e);
    }

    /// The exported files, byte for byte, for rows with every optional
    /// column set and left out, odd numbers (a score that is not finite,
    /// fractions) and text that needs escaping: the export's line format is
    /// pinned here, whatever code writes it.
    #[tokio::test]
    async fn the_exported_lines_are_pinned() {
        use exhaust_core::OrgId;
        use exhaust_core::memory::MemorySource;
        let t = |ms| chrono::Utc.timestamp_millis_opt(ms).unwrap();
        let (b1, course) = (BatchId::new("b1"), ContentId::new("do_1"));
        let mut m = MemorySource::default();
        m.batches.insert(
            b1.clone(),
            CourseBatch {
                batch_id: b1.clone(),
                course_id: course.clone(),
                name: "Batch \"one\"".into(),
                status: Some(1),
                start_date: Some("2020-01-20".into()),
                end_date: None,
                cert_template_ids: vec!["t2".into(), "t1".into()],
            },
        );
        m.collections.push(CollectionMeta {
            identifier: course.clone(),
            name: "Course, é".into(),
            channel: OrgId::new("org1"),
            status: "Live".into(),
            user_consent: "No".into(),
        });
        m.hierarchies.insert(
            course.clone(),
            r#"{"identifier":"do_1","children":[{"identifier":"do_2","mimeType":"application/vnd.ekstep.content-collection","children":[]}]}"#.into(),
        );
        m.optional
            .insert(course.clone(), ["do_12".into(), "do_11".into()].into());
        let full = EnrolmentRecord {
            user_id: UserId::new("u1"),
            course_id: course.clone(),
            batch_id: b1.clone(),
            active: Some(false),
            enrolled_date: Some(t(1_573_883_310_382)),
            enrolleddate: Some("2019-11-13 05:41:50:382+0000".into()),
            completed_on: Some(t(1_573_983_310_001)),
            status: Some(2),
            content_status: [("do_12", 2), ("do_11", 1), ("do_12", 1)].into(),
            certificates: 1,
            issued_certificates: 2,
        };
        let bare = EnrolmentRecord {
            user_id: UserId::new("u2"),
            active: None,
            enrolled_date: None,
            enrolleddate: None,
            completed_on: None,
            status: None,
            content_status: Default::default(),
            certificates: 0,
            issued_certificates: 0,
            ..full.clone()
        };
        let lost = EnrolmentRecord {
            user_id: UserId::new("u3"),
            ..bare.clone()
        };
        m.enrolments = vec![full, bare, lost];
        let mut profile = UserProfile::default();
        for (i, f) in UserProfile::FIELDS.iter().enumerate() {
            if i % 3 != 1 {
                profile.set(f, format!("{f} \"{i}\""));
            }
        }
        m.users
            .insert(UserId::new("u1"), UserEntry::Profile(profile));
        m.users.insert(
            UserId::new("u2"),
            UserEntry::Malformed("field board is not a string".into()),
        );
        let attempt = AssessmentAttempt {
            user_id: UserId::new("u1"),
            course_id: course.clone(),
            batch_id: b1.clone(),
            content_id: ContentId::new("do_11"),
            attempt_id: "a1".into(),
            total_score: Some(7.5),
            total_max_score: Some(10.0),
            grand_total: Some("7.5/10".into()),
            last_attempted_on: Some(t(1_573_883_310_382)),
        };
        m.add_attempt(attempt.clone());
        m.add_attempt(AssessmentAttempt {
            attempt_id: "a2".into(),
            total_score: Some(f64::NAN),
            total_max_score: None,
            grand_total: None,
            last_attempted_on: None,
            ..attempt.clone()
        });
        m.add_attempt(AssessmentAttempt {
            user_id: UserId::new("u2"),
            attempt_id: "a3".into(),
            total_score: Some(f64::INFINITY),
            total_max_score: Some(0.1),
            ..attempt
        });
        let aggregate = ActivityAggregate {
            activity_id: course.clone(),
            user_id: UserId::new("u1"),
            context_id: "cb:b1".into(),
            aggregates_completed: Some(3.0),
            agg_completed: Some(3),
        };
        m.add_activity(aggregate.clone());
        m.add_activity(ActivityAggregate {
            activity_id: ContentId::new("do_2"),
            aggregates_completed: Some(2.5),
            agg_completed: None,
            ..aggregate.clone()
        });
        m.add_activity(ActivityAggregate {
            user_id: UserId::new("u2"),
            aggregates_completed: None,
            agg_completed: Some(1),
            ..aggregate
        });
        m.custodian = Some(OrgId::new("org0"));

        let dir = tempfile::tempdir().expect("a folder");
        let summary = export_batch(&m, &b1, dir.path(), &ExportOptions::default())
            .await
            .expect("exports");
        let mut all = String::new();
        for name in &summary.files {
            let text = std::fs::read_to_string(dir.path().join(name)).expect("reads");
            all.push_str(&format!("{name}:\n{text}"));
        }
        expect_test::expect![[r#"
            assessment_aggregator.jsonl:
            {"attempt_id":"a1","batch_id":"b1","content_id":"do_11","course_id":"do_1","grand_total":"7.5/10","last_attempted_on":"2019-11-16T05:48:30.382Z","total_max_score":10.0,"total_score":7.5,"user_id":"u1"}
            {"attempt_id":"a2","batch_id":"b1","content_id":"do_11","course_id":"do_1","total_score":"NaN","user_id":"u1"}
            {"attempt_id":"a3","batch_id":"b1","content_id":"do_11","course_id":"do_1","grand_total":"7.5/10","last_attempted_on":"2019-11-16T05:48:30.382Z","total_max_score":0.1,"total_score":"inf","user_id":"u2"}
            content.jsonl:
            {"channel":"org1","identifier":"do_1","name":"Course, é","status":"Live","userConsent":"No"}
            content_hierarchy.jsonl:
            {"hierarchy":"{\"identifier\":\"do_1\",\"children\":[{\"identifier\":\"do_2\",\"mimeType\":\"application/vnd.ekstep.content-collection\",\"children\":[]}]}","identifier":"do_1"}
            course_batch.jsonl:
            {"batchid":"b1","cert_templates":{"t1":{},"t2":{}},"courseid":"do_1","name":"Batch \"one\"","start_date":"2020-01-20","status":1}
            relation_cache.jsonl:
            {"key":"do_1:do_1:optionalnodes","value":["do_11","do_12"]}
            system_settings.jsonl:
            {"field":"custodianOrgId","id":"custodianOrgId","value":"org0"}
            user_activity_agg.jsonl:
            {"activity_id":"do_1","activity_type":"Course","agg":{"completedCount":3},"aggregates":{"completedCount":3.0},"context_id":"cb:b1","user_id":"u1"}
            {"activity_id":"do_2","activity_type":"Course","aggregates":{"completedCount":2.5},"context_id":"cb:b1","user_id":"u1"}
            {"activity_id":"do_1","activity_type":"Course","agg":{"completedCount":1},"context_id":"cb:b1","user_id":"u2"}
            user_cache.jsonl:
            {"key":"user:u1","value":{"board":"board \"9\"","cluster":"cluster \"8\"","district":"district \"3\"","firstname":"firstname \"0\"","rootorgid":"rootorgid \"12\"","schoolname":"schoolname \"6\"","schooludisecode":"schooludisecode \"5\"","state":"state \"2\"","usersubtype":"usersubtype \"11\""}}
            {"key":"user:u2","value":"field board is not a string"}
            user_enrolments.jsonl:
            {"active":false,"batchid":"b1","certificates":[{}],"completedon":"2019-11-17T09:35:10.001Z","contentstatus":{"do_11":1,"do_12":1},"courseid":"do_1","enrolled_date":"2019-11-16T05:48:30.382Z","enrolleddate":"2019-11-13 05:41:50:382+0000","issued_certificates":[{},{}],"status":2,"userid":"u1"}
            {"batchid":"b1","courseid":"do_1","userid":"u2"}
            {"batchid":"b1","courseid":"do_1","userid":"u3"}
        "#]].assert_eq(&all);
    }
}
