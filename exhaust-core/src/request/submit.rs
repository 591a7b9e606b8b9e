//! A submission as Sunbird's API takes it: validation in Sunbird's order,
//! the caps of every field, Sunbird's request id, the stored tag and the
//! output format a request names.

use super::*;

fn md5_upper_hex(text: &str) -> String {
    use md5::{Digest, Md5};
    use std::fmt::Write;
    let digest = Md5::digest(text.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest.iter() {
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// Sunbird's request id: the upper-case hex MD5 of
/// `dataset|tag|requestedBy|channel|yyyy-MM-dd`, with `|<type>` appended
/// when `datasetConfig.type` is set. `tag` is the raw tag, without `:channel`.
pub fn request_id(
    dataset: &str,
    tag: &str,
    requested_by: &str,
    channel: &str,
    submitted_on: NaiveDate,
    dataset_type: Option<&str>,
) -> String {
    let mut text = format!(
        "{dataset}|{tag}|{requested_by}|{channel}|{}",
        submitted_on.format("%Y-%m-%d")
    );
    if let Some(t) = dataset_type {
        text.push('|');
        text.push_str(t);
    }
    md5_upper_hex(&text)
}

/// A request as a client submits it (Sunbird's Data Exhaust API body, plus
/// the `X-Channel-ID` header). Its `Debug` never shows the encryption key.
#[derive(Clone, PartialEq)]
pub struct NewRequest {
    /// The client's tag (stored as `<tag>:<channel>`).
    pub tag: String,
    /// The dataset (`progress-exhaust`), stored as `job_id`.
    pub dataset: String,
    /// The requesting user.
    pub requested_by: String,
    /// The requesting org (`X-Channel-ID`).
    pub channel: String,
    /// What to build (`datasetConfig`): `batchId`, `batchFilter` or `searchFilter`.
    pub dataset_config: serde_json::Value,
    /// The key protecting the files, as given (Sunbird's course service
    /// sends it encrypted).
    pub encryption_key: Option<String>,
}

impl fmt::Debug for NewRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewRequest")
            .field("tag", &self.tag)
            .field("dataset", &self.dataset)
            .field("requested_by", &self.requested_by)
            .field("channel", &self.channel)
            .field("dataset_config", &self.dataset_config)
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The most characters of a submitted `tag` (Sunbird's tags are
/// `<courseId>_<batchId>`, about 40).
pub const MAX_TAG_CHARS: usize = 256;
/// The most characters of `requestedBy` (a user id).
pub const MAX_REQUESTED_BY_CHARS: usize = 256;
/// The most characters of `dataset`.
pub const MAX_DATASET_CHARS: usize = 64;
/// The most characters of `X-Channel-ID` (an org id).
pub const MAX_CHANNEL_CHARS: usize = 256;
/// The most characters of `encryptionKey` (Sunbird's course service sends
/// the key encrypted and base64-encoded three times: a 32-character key
/// becomes about 200).
pub const MAX_KEY_CHARS: usize = 1024;
/// The most characters of a batch id in `datasetConfig`.
pub const MAX_BATCH_ID_CHARS: usize = 256;
/// The most batch ids `batchFilter` may list at submission (the job's own
/// per-request limit, 20 by default, still applies when it is built).
pub const MAX_BATCH_FILTER_IDS: usize = 1000;

/// Why a submission is refused, with Sunbird's messages, in Sunbird's order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// No tag.
    #[error("tag is empty")]
    EmptyTag,
    /// No dataset.
    #[error("dataset is empty")]
    EmptyDataset,
    /// No `datasetConfig`.
    #[error("datasetConfig is empty")]
    EmptyDatasetConfig,
    /// No `X-Channel-ID`.
    #[error("X-Channel-ID is missing in request header")]
    MissingChannel,
    /// A field longer than its cap (checked after Sunbird's three checks).
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field, as the body names it.
        field: &'static str,
        /// Its cap.
        max: usize,
    },
    /// A text holding a NUL character, which no store keeps as sent
    /// (PostgreSQL refuses it in text and JSON).
    #[error("{field} must not contain a NUL character")]
    Nul {
        /// The field, as the body names it.
        field: &'static str,
    },
    /// `batchFilter` names more batches than may be submitted.
    #[error("datasetConfig.batchFilter lists more than {0} batch ids")]
    TooManyIds(usize),
}

/// A text field checked for its cap and for NUL.
fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), SubmitError> {
    if text.contains('\0') {
        return Err(SubmitError::Nul { field });
    }
    if text.chars().count() > max {
        return Err(SubmitError::TooLong { field, max });
    }
    Ok(())
}

/// The caps of `datasetConfig`'s batch ids: a `batchId` string or a
/// `batchFilter` list's strings of at most [`MAX_BATCH_ID_CHARS`] and no
/// NUL, at most [`MAX_BATCH_FILTER_IDS`] of them. Values of other types are
/// left for the job to refuse, as Sunbird does; the rest of the config is
/// stored as JSON text, where a NUL is an escape (`\u0000`) that the
/// `json` and `text` columns keep as sent.
fn check_dataset_config(config: &serde_json::Value) -> Result<(), SubmitError> {
    if let Some(id) = config.get("batchId").and_then(serde_json::Value::as_str) {
        check_text("datasetConfig.batchId", id, MAX_BATCH_ID_CHARS)?;
    }
    if let Some(list) = config
        .get("batchFilter")
        .and_then(serde_json::Value::as_array)
    {
        if list.len() > MAX_BATCH_FILTER_IDS {
            return Err(SubmitError::TooManyIds(MAX_BATCH_FILTER_IDS));
        }
        for id in list.iter().filter_map(serde_json::Value::as_str) {
            check_text("datasetConfig.batchFilter", id, MAX_BATCH_ID_CHARS)?;
        }
    }
    Ok(())
}

impl NewRequest {
    /// Checks the request as Sunbird's API does: tag, dataset, datasetConfig,
    /// then the channel header.
    pub fn validate(&self) -> Result<(), SubmitError> {
        if self.tag.trim().is_empty() {
            return Err(SubmitError::EmptyTag);
        }
        if self.dataset.trim().is_empty() {
            return Err(SubmitError::EmptyDataset);
        }
        let empty_config = match &self.dataset_config {
            serde_json::Value::Null => true,
            serde_json::Value::Object(m) => m.is_empty(),
            _ => false,
        };
        if empty_config {
            return Err(SubmitError::EmptyDatasetConfig);
        }
        if self.channel.trim().is_empty() {
            return Err(SubmitError::MissingChannel);
        }
        self.check_bounds()
    }

    /// The caps of every field, and no NUL in any: what a store can keep
    /// as sent, checked before anything is stored. (Sunbird's three checks
    /// and the channel come first, in [`NewRequest::validate`].)
    pub fn check_bounds(&self) -> Result<(), SubmitError> {
        check_text("tag", &self.tag, MAX_TAG_CHARS)?;
        check_text("dataset", &self.dataset, MAX_DATASET_CHARS)?;
        check_text("requestedBy", &self.requested_by, MAX_REQUESTED_BY_CHARS)?;
        check_text("X-Channel-ID", &self.channel, MAX_CHANNEL_CHARS)?;
        if let Some(key) = &self.encryption_key {
            check_text("encryptionKey", key, MAX_KEY_CHARS)?;
        }
        check_dataset_config(&self.dataset_config)
    }

    /// The `job_request` row for this submission at `now`: request id from
    /// the raw tag and the date of `now` in UTC (plus `datasetConfig.type`
    /// when set, and the output format when not CSV), stored tag `<tag>:<channel>`, `SUBMITTED`, no attempts.
    pub fn into_job_request(self, now: DateTime<Utc>) -> Result<JobRequest, SubmitError> {
        self.validate()?;
        let mut dataset_type = self
            .dataset_config
            .get("type")
            .and_then(|t| t.as_str())
            .map(str::to_owned);
        // A format other than CSV (which Sunbird never asks for) is part of
        // the id, so the same batch can be asked for as CSV and as Parquet
        // on one day without the second submission returning the first.
        if let Ok(Some(format)) = requested_format(&self.dataset_config) {
            dataset_type = Some(match dataset_type {
                Some(t) => format!("{t}|{format}"),
                None => format.to_string(),
            });
        }
        let request_id = request_id(
            &self.dataset,
            &self.tag,
            &self.requested_by,
            &self.channel,
            now.date_naive(),
            dataset_type.as_deref(),
        );
        Ok(JobRequest {
            tag: stored_tag(&self.tag, &self.channel),
            request_id,
            job_id: self.dataset,
            status: RequestStatus::Submitted,
            request_data: self.dataset_config,
            requested_by: self.requested_by,
            requested_channel: self.channel,
            dt_job_submitted: Some(now),
            download_urls: Vec::new(),
            dt_file_created: None,
            dt_job_completed: None,
            execution_time: None,
            err_message: None,
            iteration: 0,
            encryption_key: self.encryption_key.filter(|k| !k.is_empty()),
            batch_number: None,
            processed_batches: None,
        })
    }
}

/// The key of `request_data` holding a request's output format when it is
/// not CSV (the submit body's `outputFormat`).
pub const OUTPUT_FORMAT_KEY: &str = "outputFormat";

/// The `request_data` of a submission asking for `format`: CSV leaves the
/// `datasetConfig` exactly as Sunbird stores it; another format is recorded
/// under [`OUTPUT_FORMAT_KEY`] (so two requests differing only by format
/// are not duplicates). A `datasetConfig` that is not an object is kept.
pub fn with_output_format(
    dataset_config: serde_json::Value,
    format: OutputFormat,
) -> serde_json::Value {
    match (dataset_config, format) {
        (serde_json::Value::Object(mut m), f) if f != OutputFormat::Csv => {
            m.insert(OUTPUT_FORMAT_KEY.into(), f.as_str().into());
            serde_json::Value::Object(m)
        }
        (config, _) => config,
    }
}

/// The output format a request's `request_data` names; `None` when it
/// names none (then the job's configured format applies).
pub fn requested_format(
    request_data: &serde_json::Value,
) -> Result<Option<OutputFormat>, FormatParseError> {
    match request_data.get(OUTPUT_FORMAT_KEY) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => s.parse().map(Some),
        Some(other) => Err(FormatParseError(other.to_string())),
    }
}
