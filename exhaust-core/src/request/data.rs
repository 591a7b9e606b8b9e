//! What a request asks for (`request_data`: `batchId`, `batchFilter` or
//! `searchFilter`), the reasons it is refused before any batch is built,
//! and its resolution into batches (SPEC section 6, step 3).

use super::*;

/// What a request asks for, from `request_data`.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestData {
    /// Given batches (`batchId`, or `batchFilter` without repeats, in order).
    Batches(Vec<BatchId>),
    /// A content search request body (`searchFilter`), posted as it is.
    Search(serde_json::Value),
}

/// Why a request is refused before any batch is built. The texts are
/// Sunbird's, so portals show what they always showed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// None of `batchId`, `batchFilter`, `searchFilter`.
    // Sunbird's text, typo included.
    #[error("Request should have either of batchId, batchFilter, searchFilter or encrption key")]
    NothingRequested,
    /// More batches than the per-request limit.
    #[error("Number of batches in request exceeded. It should be within {0}")]
    TooManyBatches(usize),
    /// `request_data` has the wrong shape.
    #[error("request_data is malformed: {0}")]
    Malformed(String),
    /// No batch matched.
    #[error("No data found")]
    NoDataFound,
    /// Every collection asked for is retired.
    #[error("The request is made for retired collection")]
    RetiredCollection,
    /// A search filter matching more than a request may build.
    #[error(
        "The search filter matches {found} {what}, more than the {max} one request may build \
         (search_max_batches): narrow the filter"
    )]
    SearchTooBroad {
        /// How many matched (at least).
        found: usize,
        /// `collections` or `batches`.
        what: &'static str,
        /// The limit.
        max: usize,
    },
}

impl RequestData {
    /// Reads `request_data`: `batchId` first, then `batchFilter`, then
    /// `searchFilter`, as Sunbird's job does. `limit` is the most batches a
    /// request may name (default 20); repeats are dropped before counting.
    pub fn parse(value: &serde_json::Value, limit: usize) -> Result<Self, RequestError> {
        let obj = value.as_object().ok_or_else(|| {
            RequestError::Malformed(format!("expected a JSON object, found {value}"))
        })?;
        let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
        if present("batchId") {
            return match &obj["batchId"] {
                serde_json::Value::String(s) if !s.trim().is_empty() => {
                    Ok(Self::Batches(vec![BatchId::new(s.trim())]))
                }
                other => Err(RequestError::Malformed(format!(
                    "batchId must be a non-empty string, found {other}"
                ))),
            };
        }
        if present("batchFilter") {
            let list = obj["batchFilter"].as_array().ok_or_else(|| {
                RequestError::Malformed("batchFilter must be a list of batch ids".into())
            })?;
            let mut ids: Vec<BatchId> = Vec::new();
            for v in list {
                let id = v.as_str().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                    RequestError::Malformed(format!("batchFilter holds {v}, not a batch id"))
                })?;
                let id = BatchId::new(id.trim());
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            if ids.is_empty() {
                return Err(RequestError::NothingRequested);
            }
            if ids.len() > limit {
                return Err(RequestError::TooManyBatches(limit));
            }
            return Ok(Self::Batches(ids));
        }
        if present("searchFilter") {
            let filter = &obj["searchFilter"];
            if !filter
                .get("request")
                .is_some_and(serde_json::Value::is_object)
            {
                return Err(RequestError::Malformed(
                    "searchFilter must be a search request body: {\"request\": {...}}".into(),
                ));
            }
            return Ok(Self::Search(filter.clone()));
        }
        Err(RequestError::NothingRequested)
    }
}

/// A batch a request resolved to, with its collection's metadata when the
/// content search knows the collection (when it does not, building the batch
/// fails with a message naming the collection).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedBatch {
    /// The batch.
    pub batch: CourseBatch,
    /// Its collection, from the content search.
    pub collection: Option<CollectionMeta>,
}

/// Why a request's batches could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The request is refused (no data, only retired collections).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A source failed; the request can be retried.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Resolves what a request asks for into batches (SPEC section 6 step 3):
/// unknown batch ids are dropped, collections are checked with the content
/// search and batches of retired collections are dropped. Nothing left:
/// [`RequestError::NoDataFound`]; only retired collections:
/// [`RequestError::RetiredCollection`]. Named batches keep the request's
/// order; batches found by a search filter come sorted by id. A search
/// filter matching more than `search_max` collections (checked before any
/// batch is read) or batches fails with [`RequestError::SearchTooBroad`].
pub async fn resolve_batches<S: ReportSource>(
    sources: &S,
    data: &RequestData,
    search_max: usize,
) -> Result<Vec<ResolvedBatch>, ResolveError> {
    let (batches, collections) = match data {
        RequestData::Batches(ids) => {
            let mut batches = Vec::new();
            for id in ids {
                if let Some(b) = sources.course_batch(id).await? {
                    batches.push(b);
                }
            }
            let mut course_ids: Vec<ContentId> = Vec::new();
            for b in &batches {
                if !course_ids.contains(&b.course_id) {
                    course_ids.push(b.course_id.clone());
                }
            }
            let collections = if course_ids.is_empty() {
                Vec::new()
            } else {
                sources.collections(&course_ids).await?
            };
            (batches, collections)
        }
        RequestData::Search(body) => {
            let collections = sources.search(body).await?;
            // Each matched collection costs a read of its batches: a filter
            // of `{}` matches every collection of the platform.
            if collections.len() > search_max {
                return Err(RequestError::SearchTooBroad {
                    found: collections.len(),
                    what: "collections",
                    max: search_max,
                }
                .into());
            }
            let ids: Vec<ContentId> = collections.iter().map(|c| c.identifier.clone()).collect();
            let mut batches = if ids.is_empty() {
                Vec::new()
            } else {
                sources.batches_of(&ids).await?
            };
            batches.sort_by(|a, b| a.batch_id.cmp(&b.batch_id));
            batches.dedup_by(|a, b| a.batch_id == b.batch_id);
            if batches.len() > search_max {
                return Err(RequestError::SearchTooBroad {
                    found: batches.len(),
                    what: "batches",
                    max: search_max,
                }
                .into());
            }
            (batches, collections)
        }
    };
    if batches.is_empty() {
        return Err(RequestError::NoDataFound.into());
    }
    let resolved: Vec<ResolvedBatch> = batches
        .into_iter()
        .map(|batch| {
            let collection = collections
                .iter()
                .find(|c| c.identifier == batch.course_id)
                .cloned();
            ResolvedBatch { batch, collection }
        })
        .collect();
    let live: Vec<ResolvedBatch> = resolved
        .into_iter()
        .filter(|r| {
            !r.collection
                .as_ref()
                .is_some_and(CollectionMeta::is_retired)
        })
        .collect();
    if live.is_empty() {
        return Err(RequestError::RetiredCollection.into());
    }
    Ok(live)
}
