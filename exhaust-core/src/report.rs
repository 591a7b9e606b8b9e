//! Building a batch's report: plan (columns known from the hierarchy), then
//! stream rows chunk by chunk into a [`RowSink`].
//!
//! Memory: the only per-learner state held for the whole batch is a compact
//! [`Learner`] (user id, dates, a bit per required leaf completed), so that
//! rows can be sorted by user id; profiles, attempts and aggregates are read
//! for one chunk of users at a time and dropped after it.

use crate::hierarchy::{AssessmentRules, Hierarchy, HierarchyError};
use crate::ids::{BatchId, ContentId, OrgId, UserId};
use crate::layout::{Column, ColumnKey, Layout, ReportColumns};
use crate::model::{
    AssessmentAttempt, CollectionMeta, ContentStatus, CourseBatch, EnrolledOn, EnrolmentRecord,
    UserEntry, UserProfile,
};
use crate::source::{ReportSource, SourceError};
use crate::time::ReportTz;
use crate::typed::{ReportSchema, Value};
use crate::values::{self, AttemptChoice};
use chrono::{DateTime, Utc};
// Keys are our own ids: a fast hash, no protection against chosen collisions needed.
use rustc_hash::FxHashMap as HashMap;
use std::collections::HashSet;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

/// How reports are built.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Value formats and default columns.
    pub layout: Layout,
    /// Static columns by key, replacing the layout's list.
    pub columns: Option<Vec<ColumnKey>>,
    /// The zone dates inside the report render in (default UTC).
    pub timezone: ReportTz,
    /// Which attempt counts.
    pub attempt_choice: AttemptChoice,
    /// Which hierarchy nodes are assessments.
    pub assessment_rules: AssessmentRules,
    /// Users per chunk: per-chunk reads of profiles, attempts and aggregates.
    pub chunk_size: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            layout: Layout::Seed,
            columns: None,
            timezone: ReportTz::utc(),
            attempt_choice: AttemptChoice::BestScore,
            assessment_rules: AssessmentRules::default(),
            // Small chunks keep a chunk's reads and lookups in the cache and
            // cost nothing more now that the next chunk is read while this
            // one is written (BENCHMARKS.md: 250 ran 1.4x faster than
            // 2,000 at 100,000 enrolments, with less memory).
            chunk_size: 250,
        }
    }
}

/// Why a batch's report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No `course_batch` row has this id.
    #[error("unknown batch {0}")]
    UnknownBatch(BatchId),
    /// The content search does not know the batch's collection.
    #[error("collection {collection} of batch {batch} was not found by the content search")]
    CollectionNotFound {
        /// The batch.
        batch: BatchId,
        /// Its collection.
        collection: ContentId,
    },
    /// The batch's collection is retired.
    #[error("collection {collection} of batch {batch} is retired")]
    RetiredCollection {
        /// The batch.
        batch: BatchId,
        /// Its collection.
        collection: ContentId,
    },
    /// No hierarchy is stored for the collection.
    #[error("no hierarchy is stored for collection {0}")]
    HierarchyNotFound(ContentId),
    /// The hierarchy cannot be read.
    #[error(transparent)]
    Hierarchy(#[from] HierarchyError),
    /// A source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The output could not be written.
    #[error("writing the report failed: {0}")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BuildError {
    /// Whether the same build may succeed later (a source was unavailable, or
    /// the output could not be written); otherwise the input is at fault.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Source(e) => e.is_retryable(),
            Self::Sink(_) => true,
            _ => false,
        }
    }
}

/// Where rows go: a CSV writer, a collector in tests, an Arrow builder.
pub trait RowSink {
    /// The sink's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Called once, before any row, with the header and the number of rows
    /// expected (an upper bound: rows may still be dropped by the org filter).
    fn begin(&mut self, header: &[String], expected_rows: usize) -> Result<(), Self::Error>;

    /// Called per row, in report order; `fields` has as many entries as the header.
    fn row(&mut self, fields: &[String]) -> Result<(), Self::Error>;

    /// Called once, before any row, with the typed schema of the report.
    /// The default hands the header to [`begin`](Self::begin).
    fn begin_typed(
        &mut self,
        schema: &ReportSchema,
        expected_rows: usize,
    ) -> Result<(), Self::Error> {
        self.begin(&schema.header, expected_rows)
    }

    /// Whether the sink takes typed rows: then the builder calls
    /// [`typed_row`](Self::typed_row) instead of [`row`](Self::row) and
    /// renders no text. Text sinks (the default) get the text rendered from
    /// the same typed values.
    fn wants_typed_rows(&self) -> bool {
        false
    }

    /// Called per row, in report order, when [`wants_typed_rows`](Self::wants_typed_rows);
    /// `values` has as many entries as the schema has columns. The default
    /// renders the text and hands it to [`row`](Self::row).
    fn typed_row(&mut self, values: &[Value]) -> Result<(), Self::Error> {
        let fields: Vec<String> = values.iter().map(Value::to_text).collect();
        self.row(&fields)
    }
}

/// A sink that keeps everything in memory; for tests and small reports.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VecSink {
    /// The header, once begun.
    pub header: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<String>>,
}

impl RowSink for VecSink {
    type Error = std::convert::Infallible;
    fn begin(&mut self, header: &[String], _expected: usize) -> Result<(), Self::Error> {
        self.header = header.to_vec();
        Ok(())
    }
    fn row(&mut self, fields: &[String]) -> Result<(), Self::Error> {
        self.rows.push(fields.to_vec());
        Ok(())
    }
}

/// What happened while building a batch: for the run summary and logs. It
/// holds ids and counts only, never personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// The batch.
    pub batch_id: BatchId,
    /// Its collection.
    pub collection_id: ContentId,
    /// Rows written.
    pub rows: usize,
    /// Enrolment rows the source delivered for the batch.
    pub enrolments_read: usize,
    /// Enrolments skipped because they are not active.
    pub skipped_inactive: usize,
    /// Active enrolments skipped because they have no enrolment date.
    pub skipped_without_date: usize,
    /// Further enrolment rows of a user already seen (the first one is kept).
    pub duplicate_enrolments: usize,
    /// Rows whose user is missing from the user cache (kept, blank profile).
    pub missing_users: usize,
    /// Rows whose user cache entry has the wrong shape (kept, blank profile).
    pub malformed_users: usize,
    /// A few of those users, with what is wrong.
    pub malformed_examples: Vec<(UserId, String)>,
    /// Learners left out because their root org is not the requesting org.
    pub filtered_by_org: usize,
}

/// Everything known about a batch before any row is read.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// The batch.
    pub batch: CourseBatch,
    /// Its collection's metadata.
    pub collection: CollectionMeta,
    /// Its collection's structure.
    pub hierarchy: Hierarchy,
    /// The report's columns.
    pub columns: ReportColumns,
    /// Only users of this root org are kept (`None`: everyone).
    pub org_filter: Option<OrgId>,
    leaves: LeafIndex,
    /// Assessment id → its index in `hierarchy.assessments`.
    assessment_slots: HashMap<String, usize>,
    /// Nested collection id → its index in `hierarchy.nested`.
    nested_slots: HashMap<String, usize>,
    /// `cb:<batchid>`, the context of this batch's aggregates.
    activity_context: String,
}

impl BatchPlan {
    /// Plans a batch from loaded inputs. `requested_org` is the org asking for
    /// the report: `None` or `System` means the collection's own channel.
    pub fn new(
        batch: CourseBatch,
        collection: CollectionMeta,
        hierarchy_json: &str,
        optional: &HashSet<String>,
        requested_org: Option<&OrgId>,
        opts: &ReportOptions,
    ) -> Result<Self, BuildError> {
        if collection.is_retired() {
            return Err(BuildError::RetiredCollection {
                batch: batch.batch_id,
                collection: collection.identifier,
            });
        }
        let hierarchy = Hierarchy::parse(
            batch.course_id.as_str(),
            hierarchy_json,
            &opts.assessment_rules,
        )?;
        let columns = ReportColumns::new(opts.layout, opts.columns.as_deref(), &hierarchy);
        let leaves = LeafIndex::new(&hierarchy, optional);
        let org_filter = requested_org
            .filter(|org| org.as_str() != "System" && *org != &collection.channel)
            .cloned();
        let assessment_slots = hierarchy
            .assessments
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str().to_owned(), i))
            .collect();
        let nested_slots = hierarchy
            .nested
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str().to_owned(), i))
            .collect();
        let activity_context = format!("cb:{}", batch.batch_id);
        Ok(Self {
            batch,
            collection,
            hierarchy,
            columns,
            org_filter,
            leaves,
            assessment_slots,
            nested_slots,
            activity_context,
        })
    }

    /// The number of required leaves of the collection.
    pub fn required_leaves(&self) -> usize {
        self.leaves.root.count
    }
}

/// Reads what a batch needs before its rows: the batch, its collection's
/// metadata, hierarchy and optional nodes.
pub async fn plan_batch<S: ReportSource>(
    sources: &S,
    batch_id: &BatchId,
    requested_org: Option<&OrgId>,
    opts: &ReportOptions,
) -> Result<BatchPlan, BuildError> {
    let batch = sources
        .course_batch(batch_id)
        .await?
        .ok_or_else(|| BuildError::UnknownBatch(batch_id.clone()))?;
    let collection = sources
        .collections(std::slice::from_ref(&batch.course_id))
        .await?
        .into_iter()
        .find(|c| c.identifier == batch.course_id)
        .ok_or_else(|| BuildError::CollectionNotFound {
            batch: batch.batch_id.clone(),
            collection: batch.course_id.clone(),
        })?;
    plan_collection_batch(sources, batch, collection, requested_org, opts).await
}

/// Plans a batch whose collection metadata is already known (a request that
/// resolved its collections through the search API).
pub async fn plan_collection_batch<S: ReportSource>(
    sources: &S,
    batch: CourseBatch,
    collection: CollectionMeta,
    requested_org: Option<&OrgId>,
    opts: &ReportOptions,
) -> Result<BatchPlan, BuildError> {
    let json = sources
        .hierarchy(&batch.course_id)
        .await?
        .ok_or_else(|| BuildError::HierarchyNotFound(batch.course_id.clone()))?;
    let optional = sources.optional_nodes(&batch.course_id).await?;
    BatchPlan::new(batch, collection, &json, &optional, requested_org, opts)
}

/// Plans and builds one batch's report into `sink`.
pub async fn build_report<S: ReportSource, K: RowSink>(
    sources: &S,
    batch_id: &BatchId,
    requested_org: Option<&OrgId>,
    opts: &ReportOptions,
    sink: &mut K,
) -> Result<BatchSummary, BuildError> {
    let plan = plan_batch(sources, batch_id, requested_org, opts).await?;
    build_rows(sources, &plan, opts, sink).await
}

/// Builds a planned batch's rows into `sink`, sorted by user id.
pub async fn build_rows<S: ReportSource, K: RowSink>(
    sources: &S,
    plan: &BatchPlan,
    opts: &ReportOptions,
    sink: &mut K,
) -> Result<BatchSummary, BuildError> {
    let mut summary = BatchSummary {
        batch_id: plan.batch.batch_id.clone(),
        collection_id: plan.batch.course_id.clone(),
        ..BatchSummary::default()
    };
    let learners = collect_learners(sources, plan, &mut summary).await?;

    let schema = ReportSchema::new(plan, opts);
    sink.begin_typed(&schema, learners.len())
        .map_err(|e| BuildError::Sink(Box::new(e)))?;
    let typed = sink.wants_typed_rows();

    let activities: Vec<ContentId> = plan.hierarchy.nested.iter().map(|n| n.id.clone()).collect();
    let mut row = RowBuilder::new(plan, opts);
    let chunks: Vec<&[Learner]> = learners.chunks(opts.chunk_size.max(1)).collect();
    let ids_of =
        |chunk: &[Learner]| -> Vec<UserId> { chunk.iter().map(|l| l.user_id.clone()).collect() };
    let Some(first) = chunks.first() else {
        return Ok(summary);
    };
    let mut data = fetch_chunk(sources, plan, &activities, ids_of(first)).await?;
    for (k, chunk) in chunks.iter().enumerate() {
        // The next chunk's reads are issued before this chunk's rows are
        // built, so a source that reads on other threads or waits on a
        // network works while the rows are written (the report's one
        // thread is otherwise idle during reads, and the readers during
        // writing). Rows are still written in order, one chunk at a time;
        // at most two chunks' reads are held at once.
        let next = chunks
            .get(k + 1)
            .map(|c| fetch_chunk(sources, plan, &activities, ids_of(c)));
        let write = async { write_chunk(plan, &mut row, sink, typed, &mut summary, chunk, &data) };
        let (fetched, written) = match next {
            Some(fetch) => {
                let (fetched, written) = join(fetch, write).await;
                (Some(fetched), written)
            }
            None => (None, write.await),
        };
        // A failed write is reported before a failed read of the next chunk:
        // the order the two would have failed in one after the other.
        written?;
        // The written chunk's data goes back to the source to be dropped
        // (on its reader threads, for the snapshot): freeing it is work the
        // report's thread need not do (see `Reclaim`).
        let done = match fetched {
            Some(fetched) => std::mem::replace(&mut data, fetched?),
            None => std::mem::take(&mut data),
        };
        sources.reclaim(Box::new(done));
    }
    Ok(summary)
}

/// One chunk's reads: profiles, attempts and aggregates of its users.
#[derive(Default)]
struct ChunkData {
    users: Vec<Option<UserEntry>>,
    attempts: Vec<AssessmentAttempt>,
    aggregates: Vec<crate::model::ActivityAggregate>,
}

/// Reads one chunk's profiles, attempts and aggregates, the three at once.
async fn fetch_chunk<S: ReportSource>(
    sources: &S,
    plan: &BatchPlan,
    activities: &[ContentId],
    ids: Vec<UserId>,
) -> Result<ChunkData, BuildError> {
    let users = sources.users(&ids);
    let attempts = async {
        if plan.hierarchy.assessments.is_empty() {
            Ok(Vec::new())
        } else {
            sources.attempts(&plan.batch.course_id, &ids).await
        }
    };
    let aggregates = async {
        if activities.is_empty() {
            Ok(Vec::new())
        } else {
            sources
                .activity(&plan.batch.batch_id, activities, &ids)
                .await
        }
    };
    let (users, (attempts, aggregates)) = join(users, join(attempts, aggregates)).await;
    // Reported in the order the reads were made in one after the other.
    let users = users?;
    if users.len() != ids.len() {
        return Err(SourceError::BadData {
            source_name: "user cache".into(),
            detail: format!("asked for {} users, got {} answers", ids.len(), users.len()),
        }
        .into());
    }
    Ok(ChunkData {
        users,
        attempts: attempts?,
        aggregates: aggregates?,
    })
}

/// Writes one chunk's rows.
fn write_chunk<K: RowSink>(
    plan: &BatchPlan,
    row: &mut RowBuilder<'_>,
    sink: &mut K,
    typed: bool,
    summary: &mut BatchSummary,
    chunk: &[Learner],
    data: &ChunkData,
) -> Result<(), BuildError> {
    let facts = ChunkFacts::new(
        plan,
        row.opts.attempt_choice,
        chunk,
        &data.attempts,
        &data.aggregates,
    );
    for (k, (learner, entry)) in chunk.iter().zip(&data.users).enumerate() {
        let profile = match entry {
            Some(UserEntry::Profile(p)) => Some(p),
            Some(UserEntry::Malformed(why)) => {
                summary.malformed_users += 1;
                if summary.malformed_examples.len() < 5 {
                    summary
                        .malformed_examples
                        .push((learner.user_id.clone(), why.clone()));
                }
                None
            }
            None => {
                summary.missing_users += 1;
                None
            }
        };
        if let Some(org) = &plan.org_filter {
            // Without a profile the user's org is unknown, so the user
            // cannot be shown to another org.
            if profile.and_then(|p| p.rootorgid.as_deref()) != Some(org.as_str()) {
                summary.filtered_by_org += 1;
                continue;
            }
        }
        row.fill(
            learner,
            profile,
            facts.attempts_of(k),
            facts.completed_of(k),
        );
        let written = if typed {
            sink.typed_row(&row.values)
        } else {
            sink.row(row.render())
        };
        written.map_err(|e| BuildError::Sink(Box::new(e)))?;
        summary.rows += 1;
    }
    Ok(())
}

/// Polls two futures until both are done, `a` first: its reads start
/// before `b`'s work runs. (The core has no runtime to spawn on; this is
/// `futures::join!` for two, without the dependency.)
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut out_a = None;
    let mut out_b = None;
    poll_fn(|cx| {
        if out_a.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            out_a = Some(v);
        }
        if out_b.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            out_b = Some(v);
        }
        match (out_a.take(), out_b.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                out_a = a;
                out_b = b;
                Poll::Pending
            }
        }
    })
    .await
}

/// Reads the batch's enrolments into compact, sorted, de-duplicated learners.
async fn collect_learners<S: ReportSource>(
    sources: &S,
    plan: &BatchPlan,
    summary: &mut BatchSummary,
) -> Result<Vec<Learner>, BuildError> {
    let mut learners = Vec::new();
    let mut counts = (0usize, 0usize, 0usize);
    let batch_id = &plan.batch.batch_id;
    let leaves = &plan.leaves;
    let mut memo = LeafMemo::default();
    sources
        .enrolments(&plan.batch, |chunk| {
            for record in chunk {
                if &record.batch_id != batch_id {
                    continue;
                }
                counts.0 += 1;
                if record.active != Some(true) {
                    counts.1 += 1;
                    continue;
                }
                match Learner::new(record, leaves, &mut memo) {
                    Some(l) => learners.push(l),
                    None => counts.2 += 1,
                }
            }
        })
        .await?;
    summary.enrolments_read = counts.0;
    summary.skipped_inactive = counts.1;
    summary.skipped_without_date = counts.2;
    // Stable: among rows of one user, the first delivered is kept.
    sort_by_user(&mut learners);
    let before = learners.len();
    learners.dedup_by(|a, b| a.user_id == b.user_id);
    summary.duplicate_enrolments = before - learners.len();
    Ok(learners)
}

/// Sorts learners by user id ([`values::user_order`]), learners of one id
/// in the order given (a stable sort).
///
/// Sorted as (first eight bytes of the id, place) pairs, the ids compared
/// whole only when their first bytes tie, then moved into place along the
/// permutation's cycles: a million learners sort without following two
/// pointers to scattered id strings per comparison (most of what the
/// stable sort of the learners themselves cost, and more, relatively,
/// the more learners there are) and without a second vector of them.
fn sort_by_user(learners: &mut [Learner]) {
    if u32::try_from(learners.len()).is_err() {
        // More learners than places numbered by `u32`: the plain sort.
        learners.sort_by(|a, b| values::user_order(a.user_id.as_str(), b.user_id.as_str()));
        return;
    }
    let id = |i: u32| learners[i as usize].user_id.as_str();
    let mut order: Vec<(u64, u32)> = learners
        .iter()
        .zip(0u32..)
        .map(|(l, i)| (id_prefix(l.user_id.as_str()), i))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| values::user_order(id(a.1), id(b.1)))
            .then(a.1.cmp(&b.1))
    });
    // `perm[k]`: the place of the learner that goes to place `k`; `DONE`
    // once place `k` holds it.
    const DONE: u32 = u32::MAX;
    let mut perm: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
    for start in 0..perm.len() {
        let mut k = start;
        while perm[k] != DONE {
            let from = perm[k] as usize;
            perm[k] = DONE;
            if from == start {
                break;
            }
            // Place `k` takes its learner; the cycle's first learner moves
            // on to `from`, the place that just gave its own up.
            learners.swap(k, from);
            k = from;
        }
    }
}

/// An id's first eight bytes as a big-endian number (zero-padded), which
/// orders ids as their bytes do wherever it differs.
fn id_prefix(id: &str) -> u64 {
    let mut first = [0u8; 8];
    let n = id.len().min(8);
    first[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(first)
}

/// A bit set over the collection's required leaves.
type Bits = Box<[u64]>;

fn popcount_and(a: &[u64], b: &[u64]) -> usize {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x & y).count_ones() as usize)
        .sum()
}

#[derive(Debug, Clone)]
struct LeafMask {
    bits: Bits,
    count: usize,
}

/// Numbers the required leaves, so an enrolment's completed contents become
/// a few machine words instead of a map of strings.
#[derive(Debug, Clone)]
struct LeafIndex {
    slots: HashMap<String, u32>,
    words: usize,
    root: LeafMask,
    nested: Vec<LeafMask>,
}

impl LeafIndex {
    fn new(h: &Hierarchy, optional: &HashSet<String>) -> Self {
        let required = |ids: &[ContentId]| -> Vec<String> {
            ids.iter()
                .filter(|id| !optional.contains(id.as_str()))
                .map(|id| id.as_str().to_owned())
                .collect()
        };
        let root_ids = required(&h.leaves);
        let nested_ids: Vec<Vec<String>> = h.nested.iter().map(|n| required(&n.leaves)).collect();
        let mut slots = HashMap::default();
        for id in root_ids.iter().chain(nested_ids.iter().flatten()) {
            let next = slots.len() as u32;
            slots.entry(id.clone()).or_insert(next);
        }
        let words = slots.len().div_ceil(64).max(1);
        let mask = |ids: &[String]| {
            let mut bits = vec![0u64; words].into_boxed_slice();
            for id in ids {
                let s = slots[id] as usize;
                bits[s / 64] |= 1 << (s % 64);
            }
            LeafMask {
                bits,
                count: ids.len(),
            }
        };
        let root = mask(&root_ids);
        let nested = nested_ids.iter().map(|ids| mask(ids)).collect();
        Self {
            slots,
            words,
            root,
            nested,
        }
    }

    /// The required leaves `content_status` marks completed (status 2),
    /// reusing the slots `memo` worked out for the ids of an earlier list
    /// that this one starts with (one comparison of their text instead of a
    /// hash lookup per id: 8 million lookups for a batch of 100,000
    /// learners with 80 contents each); `memo` then keeps the longer list.
    fn completed(&self, content_status: ContentStatus, memo: &mut LeafMemo) -> Bits {
        let mut bits = vec![0u64; self.words].into_boxed_slice();
        let mut mark = |status: i32, slot: Option<u32>| {
            if status == 2
                && let Some(s) = slot
            {
                bits[s as usize / 64] |= 1 << (s % 64);
            }
        };
        let shared = content_status.shared_prefix(&memo.ids);
        // The shared ids' slots are known: only their statuses are read
        // (cutting each id out of the text was most of this loop's cost).
        for (status, &slot) in content_status.statuses().zip(&memo.slots[..shared]) {
            mark(status, slot);
        }
        if content_status.len() > shared {
            memo.slots.truncate(shared);
            for (id, status) in content_status.iter_from(shared) {
                let slot = self.slots.get(id).copied();
                memo.slots.push(slot);
                mark(status, slot);
            }
            memo.ids = content_status;
        }
        bits
    }
}

/// The last longest content list [`LeafIndex::completed`] saw, with
/// each of its ids' slot (`None`: not a required leaf).
#[derive(Debug, Default)]
struct LeafMemo {
    ids: ContentStatus,
    slots: Vec<Option<u32>>,
}

/// What is kept per enrolment until its row is written.
#[derive(Debug, Clone)]
struct Learner {
    user_id: UserId,
    enrolled: EnrolledOn,
    completed_on: Option<DateTime<Utc>>,
    status_completed: bool,
    has_certificate: bool,
    done: Bits,
}

impl Learner {
    fn new(mut r: EnrolmentRecord, leaves: &LeafIndex, memo: &mut LeafMemo) -> Option<Self> {
        let enrolled = r.enrolled_on()?;
        Some(Self {
            done: leaves.completed(std::mem::take(&mut r.content_status), memo),
            enrolled,
            completed_on: r.completed_on,
            status_completed: r.status == Some(2),
            has_certificate: r.certificates > 0 || r.issued_certificates > 0,
            user_id: r.user_id,
        })
    }
}

/// One chunk's attempts and aggregates, indexed for row building: by the
/// learner's place in the chunk, so a row reads its facts from two slices
/// instead of a hash lookup of its user id per assessment and activity.
struct ChunkFacts<'a> {
    /// Per learner, per assessment: the attempt of the batch that counts.
    attempts: Vec<Option<&'a AssessmentAttempt>>,
    /// Per learner, per nested collection: completedCount.
    completed: Vec<Option<f64>>,
    assessments: usize,
    nested: usize,
}

impl<'a> ChunkFacts<'a> {
    fn new(
        plan: &BatchPlan,
        choice: AttemptChoice,
        chunk: &[Learner],
        attempts: &'a [AssessmentAttempt],
        aggregates: &'a [crate::model::ActivityAggregate],
    ) -> Self {
        let assessments = plan.hierarchy.assessments.len();
        let nested = plan.hierarchy.nested.len();
        let mut place = Places::new(chunk);
        // The attempt that counts is chosen as the attempts arrive, the one
        // kept so far against the next, in the source's order: what
        // `choose_attempt` over all of them gives (a maximum, the later one
        // on a tie), without a list per user and assessment (a chunk's
        // thousands of small allocations, on the report's thread).
        let mut chosen: Vec<Option<&AssessmentAttempt>> = vec![None; chunk.len() * assessments];
        for a in attempts {
            if a.batch_id != plan.batch.batch_id || a.course_id != plan.batch.course_id {
                continue;
            }
            if let (Some(&i), Some(k)) = (
                plan.assessment_slots.get(a.content_id.as_str()),
                place.of(a.user_id.as_str()),
            ) {
                let kept = &mut chosen[k * assessments + i];
                *kept = Some(match *kept {
                    Some(before) => values::choose_attempt([before, a], choice).unwrap_or(a),
                    None => a,
                });
            }
        }
        let mut completed = vec![None; chunk.len() * nested];
        for agg in aggregates {
            if agg.context_id != plan.activity_context {
                continue;
            }
            if let (Some(&i), Some(k), Some(c)) = (
                plan.nested_slots.get(agg.activity_id.as_str()),
                place.of(agg.user_id.as_str()),
                agg.completed_count(),
            ) {
                // The last aggregate of a user and activity counts, as
                // when they were kept in a map.
                completed[k * nested + i] = Some(c);
            }
        }
        Self {
            attempts: chosen,
            completed,
            assessments,
            nested,
        }
    }

    /// The chosen attempt per assessment of the chunk's `k`th learner.
    fn attempts_of(&self, k: usize) -> &[Option<&'a AssessmentAttempt>] {
        &self.attempts[k * self.assessments..(k + 1) * self.assessments]
    }

    /// completedCount per nested collection of the chunk's `k`th learner.
    fn completed_of(&self, k: usize) -> &[Option<f64>] {
        &self.completed[k * self.nested..(k + 1) * self.nested]
    }
}

/// Where a user is in a chunk. Sources hand a chunk's attempts and
/// aggregates over user by user, in the chunk's order (the snapshot and the
/// live stores read them learner by learner), so a record's learner is
/// nearly always the last one found or one a few places on: those are
/// compared first, and the chunk's ids are hashed into a map only when a
/// record's user is not among them (any order still finds every learner).
struct Places<'c> {
    chunk: &'c [Learner],
    /// Where the last record's learner was.
    at: usize,
    /// Every learner's place, made on the first miss.
    map: Option<HashMap<&'c str, usize>>,
}

impl<'c> Places<'c> {
    /// How many places on from the last are compared before the map.
    const AHEAD: usize = 8;

    fn new(chunk: &'c [Learner]) -> Self {
        Self {
            chunk,
            at: 0,
            map: None,
        }
    }

    /// The place of `user`'s learner in the chunk (learners are distinct
    /// users: `collect_learners`).
    fn of(&mut self, user: &str) -> Option<usize> {
        let near = self.chunk.get(self.at..).unwrap_or_default();
        if let Some(k) = near
            .iter()
            .take(Self::AHEAD)
            .position(|l| l.user_id.as_str() == user)
        {
            self.at += k;
            return Some(self.at);
        }
        let chunk = self.chunk;
        let map = self.map.get_or_insert_with(|| {
            chunk
                .iter()
                .enumerate()
                .map(|(k, l)| (l.user_id.as_str(), k))
                .collect()
        });
        let k = map.get(user).copied()?;
        self.at = k;
        Some(k)
    }
}

/// Fills one reusable row of typed values per learner (and, for text
/// sinks, its rendering), so rows cost no allocation once the buffers have
/// grown.
struct RowBuilder<'p> {
    plan: &'p BatchPlan,
    opts: &'p ReportOptions,
    values: Vec<Value>,
    fields: Vec<String>,
}

impl<'p> RowBuilder<'p> {
    fn new(plan: &'p BatchPlan, opts: &'p ReportOptions) -> Self {
        let n = plan.columns.columns.len();
        Self {
            plan,
            opts,
            values: vec![Value::Empty; n],
            fields: vec![String::new(); n],
        }
    }

    /// The CSV text of the row last filled: each value's text.
    fn render(&mut self) -> &[String] {
        for (out, v) in self.fields.iter_mut().zip(&self.values) {
            out.clear();
            v.write_text(out);
        }
        &self.fields
    }

    /// Fills the row of `l`, given its chosen attempt per assessment (shared
    /// by the score and total columns) and completedCount per nested
    /// collection.
    fn fill(
        &mut self,
        l: &Learner,
        profile: Option<&UserProfile>,
        chosen: &[Option<&AssessmentAttempt>],
        completed: &[Option<f64>],
    ) {
        let plan = self.plan;
        let lern = self.opts.layout == Layout::Lern;
        let tz = self.opts.timezone;
        let user = l.user_id.as_str();

        let text = |f: fn(&UserProfile) -> &Option<String>| {
            profile.and_then(|p| f(p).as_deref()).unwrap_or("")
        };
        let instant = |t: DateTime<Utc>| {
            if lern {
                Value::Date(tz.date(t))
            } else {
                Value::Timestamp(tz.localize(t))
            }
        };
        for (cell, col) in self.values.iter_mut().zip(&plan.columns.columns) {
            match *col {
                Column::Static(key) => match key {
                    ColumnKey::CourseId => {
                        cell.text_buffer().push_str(plan.batch.course_id.as_str())
                    }
                    ColumnKey::CollectionName => cell.text_buffer().push_str(&plan.collection.name),
                    ColumnKey::BatchId => {
                        let out = cell.text_buffer();
                        if lern {
                            out.push_str("BatchId_");
                        }
                        out.push_str(plan.batch.batch_id.as_str());
                    }
                    ColumnKey::BatchName => cell.text_buffer().push_str(&plan.batch.name),
                    ColumnKey::UserId => cell.text_buffer().push_str(user),
                    ColumnKey::UserName => values::user_name(
                        profile.and_then(|p| p.firstname.as_deref()),
                        profile.and_then(|p| p.lastname.as_deref()),
                        cell.text_buffer(),
                    ),
                    ColumnKey::State => cell.text_buffer().push_str(text(|p| &p.state)),
                    ColumnKey::District => cell.text_buffer().push_str(text(|p| &p.district)),
                    ColumnKey::OrgName => cell.text_buffer().push_str(text(|p| &p.orgname)),
                    ColumnKey::SchoolId => {
                        cell.text_buffer().push_str(text(|p| &p.schooludisecode))
                    }
                    ColumnKey::SchoolName => cell.text_buffer().push_str(text(|p| &p.schoolname)),
                    ColumnKey::Block => cell.text_buffer().push_str(text(|p| &p.block)),
                    ColumnKey::Cluster => cell.text_buffer().push_str(text(|p| &p.cluster)),
                    ColumnKey::UserType => cell.text_buffer().push_str(text(|p| &p.usertype)),
                    ColumnKey::UserSubType => cell.text_buffer().push_str(text(|p| &p.usersubtype)),
                    ColumnKey::Board => cell
                        .text_buffer()
                        .push_str(&values::board(text(|p| &p.board))),
                    ColumnKey::EnrolledDate => match &l.enrolled {
                        EnrolledOn::At(t) => *cell = instant(*t),
                        // Shown as stored: the one text value of a date column.
                        EnrolledOn::Text(s) => cell.text_buffer().push_str(s),
                    },
                    ColumnKey::CompletedOn => {
                        *cell = l.completed_on.map_or(Value::Empty, instant);
                    }
                    ColumnKey::Progress => {
                        let done = popcount_and(&l.done, &plan.leaves.root.bits);
                        let p = values::progress(
                            done,
                            plan.leaves.root.count,
                            l.completed_on.is_some(),
                        );
                        *cell = Value::Integer(i64::from(p));
                    }
                    ColumnKey::CertificateStatus => {
                        let s = values::certificate_status(
                            l.has_certificate,
                            l.completed_on.is_some() || l.status_completed,
                            !plan.batch.cert_template_ids.is_empty(),
                            !lern,
                        );
                        cell.text_buffer().push_str(s.as_str());
                    }
                    ColumnKey::TotalScore => *cell = total(chosen, lern),
                },
                Column::NestedProgress(i) => {
                    let mask = &plan.leaves.nested[i];
                    let count =
                        completed[i].unwrap_or_else(|| popcount_and(&l.done, &mask.bits) as f64);
                    *cell = values::nested_progress(count, mask.count)
                        .map_or(Value::Empty, |p| Value::Integer(i64::from(p)));
                }
                Column::AssessmentScore(i) => {
                    *cell = match chosen[i] {
                        Some(a) if lern => {
                            values::lern_score(a).map_or(Value::Empty, Value::Percent)
                        }
                        Some(a) => values::seed_score(a)
                            .map_or(Value::Empty, |s| Value::Number(values::round_number(s))),
                        None => Value::Empty,
                    };
                }
            }
        }
    }
}

/// Total Score: the sum of the chosen attempts' scores (seed), or the
/// percentage of their summed scores over their summed maxima (lern).
fn total(chosen: &[Option<&AssessmentAttempt>], lern: bool) -> Value {
    // Summed in the assessments' order, as before (a float sum's result
    // depends on its order).
    let attempted = || chosen.iter().flatten().copied();
    if lern {
        let clean = |x: Option<f64>| x.filter(|v| v.is_finite()).map_or(0.0, |v| v.max(0.0));
        let score: f64 = attempted().map(|a| clean(a.total_score)).sum();
        let max: f64 = attempted().map(|a| clean(a.total_max_score)).sum();
        values::ceil_percent(score, max).map_or(Value::Empty, Value::Percent)
    } else {
        let mut scores = attempted().filter_map(values::seed_score).peekable();
        if scores.peek().is_none() {
            Value::Empty
        } else {
            Value::Number(values::round_number(scores.sum()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn learner(id: &str, place: u64) -> Learner {
        Learner {
            user_id: UserId::new(id),
            enrolled: EnrolledOn::Text(String::new()),
            completed_on: None,
            status_completed: false,
            has_certificate: false,
            // Where it was given, to check the sort is stable.
            done: vec![place].into_boxed_slice(),
        }
    }

    /// A leaf index over `required` (slots in that order), without masks.
    fn leaf_index(required: &[&str]) -> LeafIndex {
        let slots: HashMap<String, u32> = required
            .iter()
            .zip(0u32..)
            .map(|(id, s)| ((*id).to_owned(), s))
            .collect();
        let words = slots.len().div_ceil(64).max(1);
        let empty = LeafMask {
            bits: vec![0; words].into_boxed_slice(),
            count: 0,
        };
        LeafIndex {
            slots,
            words,
            root: empty,
            nested: Vec::new(),
        }
    }

    proptest! {
        /// Reusing the slots of earlier lists gives the leaves each list
        /// marks completed, as looking every id up does: lists that extend,
        /// cut short or differ from the one before, ids that are not
        /// leaves, statuses other than 2, ids sharing their first bytes.
        #[test]
        fn completed_leaves_with_a_memo_are_those_looked_up_one_by_one(
            lists in proptest::collection::vec(
                (
                    0..6usize,
                    proptest::collection::vec(
                        (prop_oneof!["c[0-9]", "c1[0-9]?", "é"], 0..3i32),
                        0..6,
                    ),
                ),
                0..12,
            )
        ) {
            let required = ["c0", "c1", "c10", "c11", "c5", "é"];
            let leaves = leaf_index(&required);
            let mut memo = LeafMemo::default();
            let mut before: Vec<(String, i32)> = Vec::new();
            for (keep, tail) in lists {
                // A list that starts as the one before did, then goes its own way.
                let entries: Vec<(String, i32)> = before
                    .iter()
                    .take(keep)
                    .cloned()
                    .chain(tail)
                    .collect();
                let mut expected = vec![0u64; leaves.words];
                for (id, status) in &entries {
                    if let Some(s) = required.iter().position(|r| r == id)
                        && *status == 2
                    {
                        expected[s / 64] |= 1 << (s % 64);
                    }
                }
                let list: ContentStatus =
                    entries.iter().map(|(id, s)| (id.as_str(), *s)).collect();
                let got = leaves.completed(list, &mut memo);
                prop_assert_eq!(&got[..], &expected[..]);
                before = entries;
            }
        }

        /// The same order as the stable sort by `user_order`: ids sharing
        /// their first eight bytes or more, ids that are prefixes of
        /// others, repeated ids, bytes above ASCII.
        #[test]
        fn places_are_found_whatever_order_users_are_asked_in(
            n in 0usize..40,
            asked in proptest::collection::vec(0usize..50, 0..120),
            runs in proptest::collection::vec(0usize..40, 0..40),
        ) {
            // A chunk of distinct users, asked for at random, and in runs
            // of consecutive learners (the order sources give), with users
            // that are not in the chunk among them.
            let chunk: Vec<Learner> = (0..n).map(|k| learner(&format!("u{k}"), k as u64)).collect();
            let mut order: Vec<usize> = runs.iter().flat_map(|&r| r..(r + 3)).collect();
            order.extend(&asked);
            let mut places = Places::new(&chunk);
            for k in order {
                let expected = (k < n).then_some(k);
                prop_assert_eq!(places.of(&format!("u{k}")), expected);
            }
        }

        #[test]
        fn learners_sort_as_the_stable_sort_by_user_order(
            ids in proptest::collection::vec(
                prop_oneof![
                    "[ab]{0,3}",
                    "user-000[ab]{0,3}",
                    "user-0001\\x00?[ab]?",
                    "é[ab]{0,9}",
                ],
                0..60,
            )
        ) {
            let mut ours: Vec<Learner> = ids.iter().zip(0..).map(|(id, i)| learner(id, i)).collect();
            let mut stable = ours.clone();
            sort_by_user(&mut ours);
            stable.sort_by(|a, b| values::user_order(a.user_id.as_str(), b.user_id.as_str()));
            let key = |l: &Learner| (l.user_id.as_str().to_owned(), l.done[0]);
            prop_assert_eq!(
                ours.iter().map(key).collect::<Vec<_>>(),
                stable.iter().map(key).collect::<Vec<_>>()
            );
        }
    }
}
