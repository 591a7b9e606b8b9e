//! Report requests (`job_request`, SPEC section 6): the request model and the
//! rules of its lifecycle, pure. Storing, claiming and running requests are
//! the adapters' and the runner's; every decision they take is made here.

use crate::ids::{BatchId, ContentId};
use crate::model::{CollectionMeta, CourseBatch};
use crate::source::{ReportSource, SourceError};
use crate::typed::{FormatParseError, OutputFormat};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

mod data;
mod files;
mod outcome;
mod submit;

pub use data::*;
pub use files::*;
pub use outcome::*;
pub use submit::*;

/// The job id of the progress exhaust.
pub const PROGRESS_EXHAUST: &str = "progress-exhaust";

/// Requests with this many failed attempts are not taken again.
pub const MAX_ITERATIONS: i32 = 3;

/// `err_message` is cut to this many characters.
pub const MAX_ERROR_CHARS: usize = 300;

/// A request's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestStatus {
    /// Waiting to be processed.
    Submitted,
    /// A worker is on it.
    Processing,
    /// Every batch is built; `download_urls` are set.
    Success,
    /// Some batch failed, or the request is invalid; retried while
    /// `iteration` < 3.
    Failed,
}

impl RequestStatus {
    /// The text stored in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "SUBMITTED",
            Self::Processing => "PROCESSING",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
        }
    }

    /// Reads the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SUBMITTED" => Some(Self::Submitted),
            "PROCESSING" => Some(Self::Processing),
            "SUCCESS" => Some(Self::Success),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row of `job_request`, as Sunbird's API and job read and write it.
/// Its `Debug` never shows the encryption key (only whether there is one).
#[derive(Clone, PartialEq)]
pub struct JobRequest {
    /// `<tag>:<channel>`.
    pub tag: String,
    /// Upper-case hex MD5 (see [`request_id`]).
    pub request_id: String,
    /// `progress-exhaust`.
    pub job_id: String,
    /// The status.
    pub status: RequestStatus,
    /// The `datasetConfig` JSON.
    pub request_data: serde_json::Value,
    /// The requesting user.
    pub requested_by: String,
    /// The requesting org (X-Channel-ID).
    pub requested_channel: String,
    /// When it was (re)submitted.
    pub dt_job_submitted: Option<DateTime<Utc>>,
    /// Container-relative keys of the zips, once SUCCESS.
    pub download_urls: Vec<String>,
    /// Never set by the progress exhaust.
    pub dt_file_created: Option<DateTime<Utc>>,
    /// When it last finished (SUCCESS or FAILED).
    pub dt_job_completed: Option<DateTime<Utc>>,
    /// Milliseconds the last run took.
    pub execution_time: Option<i64>,
    /// Why it failed.
    pub err_message: Option<String>,
    /// Failed attempts so far.
    pub iteration: i32,
    /// The key protecting the files, as stored (encrypted by Sunbird).
    pub encryption_key: Option<String>,
    /// The run group an external script assigned.
    pub batch_number: Option<i32>,
    /// The batches already built, read from the stored JSON text
    /// ([`ProcessedBatches`]); `None` when the column is null.
    pub processed_batches: Option<ProcessedBatches>,
}

impl fmt::Debug for JobRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobRequest")
            .field("tag", &self.tag)
            .field("request_id", &self.request_id)
            .field("job_id", &self.job_id)
            .field("status", &self.status)
            .field("request_data", &self.request_data)
            .field("requested_by", &self.requested_by)
            .field("requested_channel", &self.requested_channel)
            .field("dt_job_submitted", &self.dt_job_submitted)
            .field("download_urls", &self.download_urls)
            .field("dt_file_created", &self.dt_file_created)
            .field("dt_job_completed", &self.dt_job_completed)
            .field("execution_time", &self.execution_time)
            .field("err_message", &self.err_message)
            .field("iteration", &self.iteration)
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "<redacted>"),
            )
            .field("batch_number", &self.batch_number)
            .field("processed_batches", &self.processed_batches)
            .finish()
    }
}

impl JobRequest {
    /// The batches already built: none when `processed_batches` is null,
    /// the reason when its stored text is not a list of batches.
    pub fn processed(&self) -> Result<&[ProcessedBatch], &RequestError> {
        match &self.processed_batches {
            None => Ok(&[]),
            Some(p) => p.batches(),
        }
    }
}

/// The tag stored for a request: `<tag>:<channel>`.
pub fn stored_tag(tag: &str, channel: &str) -> String {
    format!("{tag}:{channel}")
}

/// Requests with the same key in one run are duplicates: the first is
/// processed and the others get its outcome, its files included. The key
/// covers the job, the requesting channel, `request_data` (in a canonical
/// form, so key order and spacing do not matter), the encryption key and
/// the requester (SPEC section 6, step 1, plus the channel and the job).
///
/// The channel is what keeps one org's file from another: a report of
/// another org's request holds that org's learners (or, for `System`,
/// everyone's), so requests of two channels are never duplicates. The
/// security level is the requesting channel's (one preference per org), so
/// equal channels also mean equal levels within a run.
///
/// The key is the fields' JSON text itself, not a digest of it: it is only
/// compared within one run, and no crafted `request_data` can collide with
/// another request's key.
pub fn duplicate_key(r: &JobRequest) -> String {
    // serde_json's map is ordered by key, so this text is canonical; each
    // field is a JSON value of its own, so no field can run into the next.
    serde_json::json!([
        r.job_id,
        r.requested_channel,
        r.request_data,
        r.encryption_key,
        r.requested_by,
    ])
    .to_string()
}

/// Cuts a message to `max` characters, ending in `...` when cut.
pub fn truncate_message(msg: &str, max: usize) -> String {
    if msg.chars().count() <= max {
        return msg.to_owned();
    }
    let mut out: String = msg.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// A batch already built for a request (an element of `processed_batches`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessedBatch {
    /// The requesting org; older rows may lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The batch.
    pub batch_id: String,
    /// The CSV's key, as Sunbird records it (`...csv`).
    pub file_path: String,
    /// The CSV's size in bytes.
    pub file_size: u64,
}

/// `processed_batches` as stored (SPEC section 6, reference 1.8: JSON text
/// `[{"channel","batchId","filePath","fileSize"}]`), read once where the row
/// is read.
///
/// Stored text that is not such a list is kept as it was read, with why
/// ([`ProcessedBatches::Unreadable`]), rather than refused by the store:
/// the request stays readable (status, API, listing), and its run fails
/// with that reason while leaving the text as stored
/// ([`RequestOutcome::unreadable`]), so nothing is lost and whoever mends it
/// has the original. Sunbird never writes such text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessedBatches {
    /// The batches built so far, in the order they were built (empty or
    /// `null` text reads as an empty list).
    Listed(Vec<ProcessedBatch>),
    /// Text that is not a list of batches.
    Unreadable {
        /// The text as stored.
        text: String,
        /// Why it is not a list of batches.
        error: RequestError,
    },
}

impl ProcessedBatches {
    /// Reads the stored text.
    pub fn read(text: String) -> Self {
        match parse_processed(Some(&text)) {
            Ok(batches) => Self::Listed(batches),
            Err(error) => Self::Unreadable { text, error },
        }
    }

    /// The batches, or why the stored text is not a list of them.
    pub fn batches(&self) -> Result<&[ProcessedBatch], &RequestError> {
        match self {
            Self::Listed(b) => Ok(b),
            Self::Unreadable { error, .. } => Err(error),
        }
    }

    /// The text to store: a list as Sunbird writes it ([`processed_json`],
    /// so Sunbird's text reads and writes back byte for byte), unreadable
    /// text as it was read.
    pub fn to_text(&self) -> String {
        match self {
            Self::Listed(b) => processed_json(b),
            Self::Unreadable { text, .. } => text.clone(),
        }
    }
}

impl From<Vec<ProcessedBatch>> for ProcessedBatches {
    fn from(batches: Vec<ProcessedBatch>) -> Self {
        Self::Listed(batches)
    }
}

/// Reads `processed_batches`; empty or null text is an empty list.
pub fn parse_processed(text: Option<&str>) -> Result<Vec<ProcessedBatch>, RequestError> {
    match text.map(str::trim) {
        None | Some("") | Some("null") => Ok(Vec::new()),
        Some(t) => serde_json::from_str(t).map_err(|e| {
            RequestError::Malformed(format!("processed_batches is not a list of batches: {e}"))
        }),
    }
}

/// Writes `processed_batches` as Sunbird's job does (Jackson's compact
/// text, keys in the order of [`ProcessedBatch`]'s fields: `channel`,
/// `batchId`, `filePath`, `fileSize`).
pub fn processed_json(batches: &[ProcessedBatch]) -> String {
    serde_json::to_string(batches).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_id_matches_the_reference_example() {
        // reference 1.3: progress-exhaust|do_123_0123|u-001|0126796199493140480|2024-01-15
        let date = NaiveDate::from_ymd_opt(2024, 1, 15).expect("date");
        assert_eq!(
            request_id(
                PROGRESS_EXHAUST,
                "do_123_0123",
                "u-001",
                "0126796199493140480",
                date,
                None
            ),
            "65D9E6F1BF0B4DBCD0C86AAA410662B3"
        );
        let typed = request_id(
            PROGRESS_EXHAUST,
            "do_123_0123",
            "u-001",
            "0126796199493140480",
            date,
            Some("x"),
        );
        assert_ne!(typed, "65D9E6F1BF0B4DBCD0C86AAA410662B3");
        assert_eq!(typed.len(), 32);
        assert_eq!(stored_tag("do_123_0123", "ch"), "do_123_0123:ch");
    }

    #[test]
    fn request_data_forms_and_messages() {
        assert_eq!(
            RequestData::parse(&json!({"batchId": "b1"}), 20),
            Ok(RequestData::Batches(vec![BatchId::new("b1")]))
        );
        // Repeats dropped, order kept.
        assert_eq!(
            RequestData::parse(
                &json!({"batchFilter": ["batch-01", "batch-001", "batch-001"]}),
                20
            ),
            Ok(RequestData::Batches(vec![
                BatchId::new("batch-01"),
                BatchId::new("batch-001")
            ]))
        );
        let search = json!({"searchFilter": {"request": {"filters": {"identifier": ["do_1"]}}}});
        assert!(matches!(
            RequestData::parse(&search, 20),
            Ok(RequestData::Search(_))
        ));
        let e = RequestData::parse(&json!({"encryptionKey": "k"}), 20).expect_err("nothing asked");
        assert_eq!(
            e.to_string(),
            "Request should have either of batchId, batchFilter, searchFilter or encrption key"
        );
        let e =
            RequestData::parse(&json!({"batchFilter": ["a", "b", "c"]}), 2).expect_err("too many");
        assert_eq!(
            e.to_string(),
            "Number of batches in request exceeded. It should be within 2"
        );
        for bad in [
            json!([1]),
            json!({"batchId": 7}),
            json!({"batchFilter": "b1"}),
            json!({"searchFilter": {"filters": {}}}),
        ] {
            let e = RequestData::parse(&bad, 20).expect_err("malformed");
            assert!(matches!(e, RequestError::Malformed(_)), "{bad}: {e}");
        }
    }

    fn request(data: serde_json::Value, key: Option<&str>, by: &str) -> JobRequest {
        JobRequest {
            tag: "t:c".into(),
            request_id: "R".into(),
            job_id: PROGRESS_EXHAUST.into(),
            status: RequestStatus::Submitted,
            request_data: data,
            requested_by: by.into(),
            requested_channel: "c".into(),
            dt_job_submitted: None,
            download_urls: vec![],
            dt_file_created: None,
            dt_job_completed: None,
            execution_time: None,
            err_message: None,
            iteration: 0,
            encryption_key: key.map(Into::into),
            batch_number: None,
            processed_batches: None,
        }
    }

    #[test]
    fn duplicates_share_data_key_and_requester() {
        let a = request(
            serde_json::from_str(r#"{"batchId":"b1","x":1}"#).expect("json"),
            Some("k"),
            "u",
        );
        let b = request(
            serde_json::from_str(r#"{ "x": 1, "batchId": "b1" }"#).expect("json"),
            Some("k"),
            "u",
        );
        assert_eq!(duplicate_key(&a), duplicate_key(&b));
        assert_ne!(
            duplicate_key(&a),
            duplicate_key(&request(a.request_data.clone(), None, "u"))
        );
        assert_ne!(
            duplicate_key(&a),
            duplicate_key(&request(a.request_data.clone(), Some("k"), "v"))
        );
        // Another channel's request is never a duplicate: its file would
        // hold the other org's learners.
        let mut other_org = b.clone();
        other_org.requested_channel = "System".into();
        assert_ne!(duplicate_key(&a), duplicate_key(&other_org));
        let mut other_job = b.clone();
        other_job.job_id = "response-exhaust".into();
        assert_ne!(duplicate_key(&a), duplicate_key(&other_job));
        // Fields cannot run into each other.
        let k1 = request(a.request_data.clone(), Some("k|u"), "");
        let k2 = request(a.request_data.clone(), Some("k"), "u|");
        assert_ne!(duplicate_key(&k1), duplicate_key(&k2));
    }

    fn submission(config: serde_json::Value) -> NewRequest {
        NewRequest {
            tag: "do_1_b1".into(),
            dataset: PROGRESS_EXHAUST.into(),
            requested_by: "u-1".into(),
            channel: "org-1".into(),
            dataset_config: config,
            encryption_key: None,
        }
    }

    #[test]
    fn submissions_are_bounded_and_refuse_nul() {
        let ok = submission(json!({"batchId": "b1"}));
        assert_eq!(ok.validate(), Ok(()));
        let long = |n: usize| "x".repeat(n);
        let mut r = ok.clone();
        r.tag = long(MAX_TAG_CHARS + 1);
        assert_eq!(
            r.validate().expect_err("long tag").to_string(),
            format!("tag is longer than {MAX_TAG_CHARS} characters")
        );
        r.tag = long(MAX_TAG_CHARS);
        assert_eq!(r.validate(), Ok(()), "at the cap");
        let mut r = ok.clone();
        r.requested_by = long(MAX_REQUESTED_BY_CHARS + 1);
        assert!(matches!(
            r.validate(),
            Err(SubmitError::TooLong {
                field: "requestedBy",
                ..
            })
        ));
        let mut r = ok.clone();
        r.encryption_key = Some(long(MAX_KEY_CHARS + 1));
        assert!(matches!(
            r.validate(),
            Err(SubmitError::TooLong {
                field: "encryptionKey",
                ..
            })
        ));
        let mut r = ok.clone();
        r.channel = long(MAX_CHANNEL_CHARS + 1);
        assert!(matches!(
            r.validate(),
            Err(SubmitError::TooLong {
                field: "X-Channel-ID",
                ..
            })
        ));
        // Sunbird's own checks still come first.
        let mut r = ok.clone();
        r.tag = String::new();
        r.requested_by = long(10_000);
        assert_eq!(r.validate(), Err(SubmitError::EmptyTag));

        let mut r = ok.clone();
        r.tag = "a\0b".into();
        assert_eq!(
            r.validate().expect_err("nul").to_string(),
            "tag must not contain a NUL character"
        );
        let mut r = ok.clone();
        r.encryption_key = Some("k\0".into());
        assert_eq!(
            r.validate(),
            Err(SubmitError::Nul {
                field: "encryptionKey"
            })
        );
        assert_eq!(
            submission(json!({"batchId": "b\0"})).validate(),
            Err(SubmitError::Nul {
                field: "datasetConfig.batchId"
            })
        );
        assert_eq!(
            submission(json!({"batchFilter": ["b1", "b\0"]})).validate(),
            Err(SubmitError::Nul {
                field: "datasetConfig.batchFilter"
            })
        );
        // Elsewhere in the config a NUL is JSON text's escape, kept as sent.
        for config in [
            json!({"searchFilter": {"request": {"filters": {"name": ["x\0"]}}}}),
            json!({"batchId": "b1", "k\0": 1}),
        ] {
            assert_eq!(submission(config.clone()).validate(), Ok(()), "{config}");
        }
        assert!(matches!(
            submission(json!({"batchId": long(MAX_BATCH_ID_CHARS + 1)})).validate(),
            Err(SubmitError::TooLong {
                field: "datasetConfig.batchId",
                ..
            })
        ));
        let many: Vec<String> = (0..=MAX_BATCH_FILTER_IDS)
            .map(|i| format!("b{i}"))
            .collect();
        assert_eq!(
            submission(json!({ "batchFilter": many })).validate(),
            Err(SubmitError::TooManyIds(MAX_BATCH_FILTER_IDS))
        );
    }

    #[test]
    fn debug_never_shows_the_encryption_key() {
        let mut r = submission(json!({"batchId": "b1"}));
        r.encryption_key = Some("hunter2-secret-key".into());
        let shown = format!("{r:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let at = DateTime::from_timestamp(1_705_312_800, 0).expect("time");
        let row = r.into_job_request(at).expect("valid");
        let shown = format!("{row:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("request_id"), "{shown}");
    }

    #[test]
    fn messages_are_cut_to_300_characters() {
        assert_eq!(truncate_message("short", 300), "short");
        let long = "é".repeat(400);
        let cut = truncate_message(&long, 300);
        assert_eq!(cut.chars().count(), 300);
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn keys_and_names() {
        let b = BatchId::new("batch-001");
        assert_eq!(
            report_key(Some("RID"), &b, "20240115").as_deref(),
            Some("progress-exhaust/RID/batch-001_progress_20240115.csv")
        );
        assert_eq!(
            report_key(None, &b, "20240115").as_deref(),
            Some("progress-exhaust/batch-001_progress_20240115.csv")
        );
        assert_eq!(report_key(Some("../x"), &b, "1"), None);
        assert_eq!(report_key(None, &BatchId::new("../../etc"), "1"), None);
        assert_eq!(
            zip_key("progress-exhaust/RID/b_progress_1.csv"),
            "progress-exhaust/RID/b_progress_1.zip"
        );
        assert_eq!(
            zip_key("progress-exhaust/RID/b_progress_1.parquet"),
            "progress-exhaust/RID/b_progress_1.zip"
        );
        assert_eq!(
            report_key_as(
                Some("RID"),
                &BatchId::new("batch-001"),
                "20240115",
                OutputFormat::Xlsx
            )
            .as_deref(),
            Some("progress-exhaust/RID/batch-001_progress_20240115.xlsx")
        );
    }

    #[test]
    fn processed_batches_round_trip_and_accept_missing_channel() {
        let parsed = parse_processed(Some(
            r#"[{"batchId":"b1","filePath":"p.csv","fileSize":12}]"#,
        ))
        .expect("parses");
        assert_eq!(parsed[0].channel, None);
        assert_eq!(parsed[0].file_size, 12);
        assert_eq!(parse_processed(Some("")).expect("empty"), vec![]);
        assert_eq!(parse_processed(None).expect("null"), vec![]);
        let json = processed_json(&parsed);
        assert_eq!(
            json,
            r#"[{"batchId":"b1","filePath":"p.csv","fileSize":12}]"#
        );
        assert!(parse_processed(Some("{oops")).is_err());
    }

    /// Sunbird's job writes the list with Jackson: compact, keys in the
    /// order of its `ProcessedRequest` (reference 1.8). Read into typed
    /// values and written back, the text is the same, byte for byte.
    #[test]
    fn sunbird_processed_text_reads_typed_and_writes_back_identically() {
        let sunbird = concat!(
            r#"[{"channel":"0126","batchId":"0123","filePath":"progress-exhaust/RID/0123_progress_20240115.csv","fileSize":1234},"#,
            r#"{"batchId":"0456","filePath":"progress-exhaust/RID/0456_progress_20240115.csv","fileSize":0}]"#
        );
        let read = ProcessedBatches::read(sunbird.to_owned());
        let batches = read.batches().expect("a list");
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].channel.as_deref(), Some("0126"));
        assert_eq!(batches[0].batch_id, "0123");
        assert_eq!(batches[0].file_size, 1234);
        assert_eq!(batches[1].channel, None);
        assert_eq!(read.to_text(), sunbird);
        assert_eq!(processed_json(batches), sunbird);
        assert_eq!(ProcessedBatches::read("[]".into()).to_text(), "[]");
        // Null and empty text are no batch yet.
        for empty in ["", " ", "null"] {
            assert_eq!(
                ProcessedBatches::read(empty.into()),
                ProcessedBatches::Listed(vec![])
            );
        }
    }

    /// Text that is not a list of batches is kept as stored, with the
    /// reason; the request stays readable and its outcome leaves the text.
    #[test]
    fn unreadable_processed_text_is_kept_with_its_reason() {
        for bad in ["{oops", r#"{"batchId":"b1"}"#, r#"[{"batchId":1}]"#] {
            let read = ProcessedBatches::read(bad.into());
            let ProcessedBatches::Unreadable { text, error } = &read else {
                panic!("{bad:?} read as {read:?}")
            };
            assert_eq!(text, bad);
            assert!(
                error
                    .to_string()
                    .contains("processed_batches is not a list of batches"),
                "{error}"
            );
            assert_eq!(read.to_text(), bad);
            assert_eq!(read.batches(), Err(error));
            let mut row = JobRequest {
                processed_batches: Some(read.clone()),
                ..request(serde_json::json!({"batchId": "b1"}), None, "u")
            };
            assert_eq!(row.processed(), Err(error));
            let o = RequestOutcome::unreadable(error);
            assert_eq!(o.status, RequestStatus::Failed);
            assert_eq!(o.processed, None, "the stored text is left as it is");
            assert!(o.count_attempt);
            assert_eq!(o.err_message, Some(error.to_string()));
            row.processed_batches = None;
            assert_eq!(row.processed(), Ok(&[][..]));
        }
    }

    #[test]
    fn budgets_are_strict() {
        let mut b = ChannelBudget::new(2, 100);
        assert!(b.allows_another());
        b.spend(10);
        assert!(b.allows_another());
        b.spend(10);
        assert!(!b.allows_another(), "two batches reached the limit of 2");
        let mut b = ChannelBudget::new(30, 100);
        b.spend(100);
        assert!(!b.allows_another(), "100 bytes reached the limit of 100");
    }

    fn built(id: &str) -> ProcessedBatch {
        ProcessedBatch {
            channel: Some("c".into()),
            batch_id: id.into(),
            file_path: format!("progress-exhaust/R/{id}_progress_1.csv"),
            file_size: 5,
        }
    }

    #[test]
    fn outcomes() {
        // All built: SUCCESS with every file, old and new.
        let o = decide(&[built("b1")], &[BatchOutcome::Built(built("b2"))]);
        assert_eq!(o.status, RequestStatus::Success);
        assert_eq!(
            o.download_urls,
            [
                "progress-exhaust/R/b1_progress_1.zip",
                "progress-exhaust/R/b2_progress_1.zip"
            ]
        );
        assert!(!o.count_attempt);
        // A failure fails the request and keeps what was built.
        let o = decide(
            &[],
            &[
                BatchOutcome::Built(built("b1")),
                BatchOutcome::Failed {
                    batch: BatchId::new("b2"),
                    message: "unknown batch b2".into(),
                },
            ],
        );
        assert_eq!(o.status, RequestStatus::Failed);
        assert_eq!(o.err_message.as_deref(), Some("b2: unknown batch b2"));
        assert_eq!(o.processed.as_ref().map(Vec::len), Some(1));
        assert!(o.count_attempt);
        // Limits reached: back to SUBMITTED, nothing lost.
        let o = decide(
            &[built("b1")],
            &[BatchOutcome::Deferred(BatchId::new("b2"))],
        );
        assert_eq!(o.status, RequestStatus::Submitted);
        assert_eq!(o.processed, Some(vec![built("b1")]));
        assert!(!o.count_attempt);
        // A source down: back to SUBMITTED, no attempt counted, the reason kept.
        let o = decide(
            &[],
            &[
                BatchOutcome::Built(built("b1")),
                BatchOutcome::Retry {
                    batch: BatchId::new("b2"),
                    message: "redis is unavailable: refused".into(),
                },
            ],
        );
        assert_eq!(o.status, RequestStatus::Submitted);
        assert_eq!(o.processed, Some(vec![built("b1")]));
        assert!(!o.count_attempt);
        assert_eq!(
            o.err_message.as_deref(),
            Some("will retry: b2: redis is unavailable: refused")
        );
        // A stopped worker: back to SUBMITTED with what was stored, nothing
        // counted, no message.
        let o = RequestOutcome::stopped(vec![built("b1")]);
        assert_eq!(o.status, RequestStatus::Submitted);
        assert_eq!(o.processed, Some(vec![built("b1")]));
        assert!(!o.count_attempt && o.err_message.is_none() && o.download_urls.is_empty());
        // Nothing at all.
        let o = decide(&[], &[]);
        assert_eq!(
            (o.status, o.err_message.as_deref()),
            (RequestStatus::Failed, Some("No data found"))
        );
        // Everything built by an earlier run: SUCCESS, not "No data found".
        let o = decide(&[built("b1")], &[]);
        assert_eq!(o.status, RequestStatus::Success);
    }

    #[test]
    fn submissions_are_checked_in_sunbirds_order_and_keyed_by_day() {
        let ok = NewRequest {
            tag: "do_123_0123".into(),
            dataset: PROGRESS_EXHAUST.into(),
            requested_by: "u-001".into(),
            channel: "0126796199493140480".into(),
            dataset_config: json!({"batchId": "0123"}),
            encryption_key: Some(String::new()),
        };
        let at = chrono::DateTime::parse_from_rfc3339("2024-01-15T23:59:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let row = ok.clone().into_job_request(at).expect("valid");
        assert_eq!(row.request_id, "65D9E6F1BF0B4DBCD0C86AAA410662B3");
        assert_eq!(row.tag, "do_123_0123:0126796199493140480");
        assert_eq!(row.job_id, PROGRESS_EXHAUST);
        assert_eq!(row.status, RequestStatus::Submitted);
        assert_eq!(row.encryption_key, None, "an empty key is no key");
        // datasetConfig.type joins the id.
        let mut typed = ok.clone();
        typed.dataset_config = json!({"batchId": "0123", "type": "progress-exhaust"});
        assert_ne!(
            typed.into_job_request(at).expect("valid").request_id,
            row.request_id
        );
        let cases = [
            (
                NewRequest {
                    tag: " ".into(),
                    dataset: String::new(),
                    ..ok.clone()
                },
                "tag is empty",
            ),
            (
                NewRequest {
                    dataset: String::new(),
                    ..ok.clone()
                },
                "dataset is empty",
            ),
            (
                NewRequest {
                    dataset_config: json!({}),
                    ..ok.clone()
                },
                "datasetConfig is empty",
            ),
            (
                NewRequest {
                    dataset_config: serde_json::Value::Null,
                    ..ok.clone()
                },
                "datasetConfig is empty",
            ),
            (
                NewRequest {
                    channel: String::new(),
                    ..ok.clone()
                },
                "X-Channel-ID is missing in request header",
            ),
        ];
        for (req, message) in cases {
            assert_eq!(req.validate().expect_err(message).to_string(), message);
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            RequestStatus::Submitted,
            RequestStatus::Processing,
            RequestStatus::Success,
            RequestStatus::Failed,
        ] {
            assert_eq!(RequestStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RequestStatus::parse("DONE"), None);
    }

    #[test]
    fn output_format_lives_in_request_data_only_when_not_csv() {
        let config = serde_json::json!({"batchId": "b1"});
        let csv = with_output_format(config.clone(), OutputFormat::Csv);
        assert_eq!(csv, config);
        assert_eq!(requested_format(&csv), Ok(None));
        let pq = with_output_format(config, OutputFormat::Parquet);
        assert_eq!(pq["outputFormat"], "parquet");
        assert_eq!(requested_format(&pq), Ok(Some(OutputFormat::Parquet)));
        let bad = serde_json::json!({"batchId": "b1", "outputFormat": "pdf"});
        assert!(requested_format(&bad).is_err());
        let bad = serde_json::json!({"batchId": "b1", "outputFormat": 3});
        assert!(requested_format(&bad).is_err());

        // CSV keeps Sunbird's request id; another format has its own.
        let new = |config: serde_json::Value| NewRequest {
            tag: "t".into(),
            dataset: "progress-exhaust".into(),
            requested_by: "u".into(),
            channel: "c".into(),
            dataset_config: config,
            encryption_key: None,
        };
        let now: DateTime<Utc> = "2024-01-15T10:00:00Z".parse().expect("time");
        let plain = new(serde_json::json!({"batchId": "b1"}));
        let id = |n: NewRequest| n.into_job_request(now).expect("valid").request_id;
        let sunbird = request_id("progress-exhaust", "t", "u", "c", now.date_naive(), None);
        assert_eq!(id(plain.clone()), sunbird);
        let parquet = new(with_output_format(
            serde_json::json!({"batchId": "b1"}),
            OutputFormat::Parquet,
        ));
        assert_ne!(id(parquet), sunbird);
    }
}
