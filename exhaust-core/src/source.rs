//! The source traits: what the report reads, and nothing about how.
//!
//! Each trait is small and returns `impl Future + Send`, so this crate needs
//! no runtime and adapters may be async (Cassandra, Redis, HTTP) or not (the
//! snapshot reader). Every method reads only what one batch needs: by batch
//! id, by collection id, or by the user ids of one chunk of the batch.
//!
//! Contracts shared by all methods:
//! - absent data is not an error: `None`, an empty list or a missing entry;
//! - [`SourceError::Unavailable`] means "try again later" (a server down, a
//!   timeout), [`SourceError::BadData`] means the stored data cannot be read
//!   and retrying will not help.

use crate::ids::{BatchId, ContentId, OrgId, UserId};
use crate::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
};
use std::collections::HashSet;
use std::future::Future;

/// A source could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source is down, timed out or refused: the work can be retried.
    #[error("{source_name} is unavailable: {detail}")]
    Unavailable {
        /// Which source (`cassandra`, `redis`, `snapshot`, ...).
        source_name: String,
        /// What went wrong.
        detail: String,
    },
    /// The stored data has a shape the report cannot read.
    #[error("{source_name} holds data that cannot be read: {detail}")]
    BadData {
        /// Which source.
        source_name: String,
        /// What is wrong, naming the table and key.
        detail: String,
    },
}

impl SourceError {
    /// `source_name` is down, timed out or refused: retryable. The one
    /// constructor every adapter uses, so the messages read alike.
    pub fn unavailable(source_name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Unavailable {
            source_name: source_name.into(),
            detail: detail.into(),
        }
    }

    /// `source_name` holds data the report cannot read; `detail` names the
    /// table and key.
    pub fn bad_data(source_name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadData {
            source_name: source_name.into(),
            detail: detail.into(),
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Result of a source call.
pub type SourceResult<T> = Result<T, SourceError>;

/// Course batches (`course_batch`).
pub trait BatchSource {
    /// The batch with this id, or `None`.
    fn course_batch(
        &self,
        id: &BatchId,
    ) -> impl Future<Output = SourceResult<Option<CourseBatch>>> + Send;
}

/// Enrolments of a batch (`user_enrolments` or a batch-keyed copy).
pub trait EnrolmentSource {
    /// Calls `on_chunk` with the batch's enrolment rows, a chunk at a time, in
    /// any order, so that a batch of any size streams. Rows of other batches
    /// must not be delivered; inactive rows may be (the report drops them).
    fn enrolments<F>(
        &self,
        batch: &CourseBatch,
        on_chunk: F,
    ) -> impl Future<Output = SourceResult<()>> + Send
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send;
}

/// The user cache (`user:<id>` hashes).
pub trait UserSource {
    /// The entries of these users, aligned with `ids`; `None` for a user the
    /// cache does not hold.
    fn users(
        &self,
        ids: &[UserId],
    ) -> impl Future<Output = SourceResult<Vec<Option<UserEntry>>>> + Send;
}

/// The relation cache's optional nodes (`<course>:<course>:optionalnodes`).
pub trait OptionalNodeSource {
    /// The ids of the collection's optional contents; empty when none.
    fn optional_nodes(
        &self,
        collection: &ContentId,
    ) -> impl Future<Output = SourceResult<HashSet<String>>> + Send;
}

/// Assessment attempts (`assessment_aggregator`, partition `(user_id, course_id)`).
pub trait AttemptSource {
    /// Every attempt of these users in this collection, any batch, any order.
    fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> impl Future<Output = SourceResult<Vec<AssessmentAttempt>>> + Send;
}

/// Activity aggregates (`user_activity_agg`, partition `(activity_type, activity_id, user_id)`).
pub trait ActivitySource {
    /// The `Course` rows of these activities (collection and unit ids) for
    /// these users in context `cb:<batch>`.
    fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> impl Future<Output = SourceResult<Vec<ActivityAggregate>>> + Send;
}

/// Collection hierarchies (`content_hierarchy`).
pub trait HierarchySource {
    /// The hierarchy JSON text of the collection, exactly as stored.
    fn hierarchy(
        &self,
        collection: &ContentId,
    ) -> impl Future<Output = SourceResult<Option<String>>> + Send;
}

/// Collection metadata (the content search API).
pub trait CollectionSource {
    /// The metadata of these collections, whatever their status (Live,
    /// Unlisted, Retired); collections the source does not know are left out.
    fn collections(
        &self,
        ids: &[ContentId],
    ) -> impl Future<Output = SourceResult<Vec<CollectionMeta>>> + Send;

    /// The collections matched by a search request body (`{"request": ...}`),
    /// posted as it is.
    fn search(
        &self,
        body: &serde_json::Value,
    ) -> impl Future<Output = SourceResult<Vec<CollectionMeta>>> + Send;
}

/// Course batches by collection, for requests that name collections.
pub trait CollectionBatchSource {
    /// Every batch of these collections, in any order (the one caller that
    /// needs an order, `request::resolve_batches`, sorts them and drops
    /// repeats, so no adapter has to).
    fn batches_of(
        &self,
        collections: &[ContentId],
    ) -> impl Future<Output = SourceResult<Vec<CourseBatch>>> + Send;
}

/// The platform's custodian org (`system_settings`, id `custodianOrgId`).
pub trait CustodianOrgSource {
    /// The custodian org id, when configured.
    fn custodian_org(&self) -> impl Future<Output = SourceResult<Option<OrgId>>> + Send;
}

/// What one source has read since it was created: cumulative counters, so a
/// caller diffs two readings ([`ReadStats::since`]) to see what one batch read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Queries, commands or requests sent.
    pub queries: u64,
    /// Rows, hash entries or documents received.
    pub rows: u64,
    /// Bytes received (payload, as the adapter measures it).
    pub bytes: u64,
}

impl ReadStats {
    /// What was read between `earlier` and `self`.
    pub fn since(&self, earlier: &ReadStats) -> ReadStats {
        ReadStats {
            queries: self.queries.saturating_sub(earlier.queries),
            rows: self.rows.saturating_sub(earlier.rows),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

/// Read counters of a source, by store (`cassandra`, `redis`, `search`,
/// `snapshot`), so that a run summary shows that a batch read only what it
/// needs. A source that does not count reports nothing.
pub trait ReadCounter {
    /// The cumulative counters, one entry per store.
    fn read_counts(&self) -> Vec<(&'static str, ReadStats)> {
        Vec::new()
    }
}

/// Where a report leaves the data it read and is done with (one chunk's
/// profiles, attempts and aggregates, after its rows are written).
///
/// By default the data is dropped there and then, on the report's thread.
/// A source that reads on threads of its own drops it on them instead:
/// freeing a chunk's many small allocations is work on the report's one
/// thread, the critical path of a run whose reads are fast (BENCHMARKS.md,
/// issue #27), while the reader threads wait for the next chunk. Nothing
/// may be read from `done`: it is only dropped.
pub trait Reclaim {
    /// Drops `done`, here or on a thread of the source's.
    fn reclaim(&self, done: Box<dyn std::any::Any + Send>) {
        drop(done);
    }
}

/// The difference of two [`ReadCounter::read_counts`] readings, store by store.
pub fn reads_between(
    before: &[(&'static str, ReadStats)],
    after: &[(&'static str, ReadStats)],
) -> Vec<(&'static str, ReadStats)> {
    after
        .iter()
        .map(|(name, now)| {
            let earlier = before
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            (*name, now.since(&earlier))
        })
        .collect()
}

/// Everything a report reads: implemented for any type that implements every
/// source trait (the snapshot reader, the live sources, a test double).
pub trait ReportSource:
    BatchSource
    + EnrolmentSource
    + UserSource
    + OptionalNodeSource
    + AttemptSource
    + ActivitySource
    + HierarchySource
    + CollectionSource
    + CollectionBatchSource
    + CustodianOrgSource
    + ReadCounter
    + Reclaim
    + Sync
{
}

impl<T> ReportSource for T where
    T: BatchSource
        + EnrolmentSource
        + UserSource
        + OptionalNodeSource
        + AttemptSource
        + ActivitySource
        + HierarchySource
        + CollectionSource
        + CollectionBatchSource
        + CustodianOrgSource
        + ReadCounter
        + Reclaim
        + Sync
{
}

/// Implements every source trait but [`ReadCounter`] and [`Reclaim`] for a
/// wrapper type by forwarding each call through `$via`, a macro of the caller's that gets
/// `(self, method(args))` and returns the awaited result: written once here
/// for the wrappers that forward (`AnySource` picks a variant, `LiveSources`
/// picks a store, [`Cooperative`](crate::cooperative::Cooperative) yields
/// first), so a new trait method is forwarded in one place. A wrapper that
/// changes one read (a test double whose users are down, or that stalls)
/// gives `$via` an arm for that method's name before the general one.
///
/// ```
/// use exhaust_core::memory::MemorySource;
/// use exhaust_core::source::{ReadCounter, Reclaim};
///
/// /// A source that forwards every read to the one it wraps.
/// struct Wrapper(MemorySource);
///
/// macro_rules! to_inner {
///     ($self:ident, $method:ident($($arg:expr),*)) => {
///         $self.0.$method($($arg),*).await
///     };
/// }
/// exhaust_core::forward_report_source!(impl [] for Wrapper => to_inner);
/// impl ReadCounter for Wrapper {}
/// impl Reclaim for Wrapper {}
///
/// fn is_a_source<S: exhaust_core::source::ReportSource>(_: &S) {}
/// is_a_source(&Wrapper(MemorySource::default()));
/// ```
#[macro_export]
macro_rules! forward_report_source {
    (impl [$($generics:tt)*] for $ty:ty => $via:ident) => {
        impl<$($generics)*> $crate::source::BatchSource for $ty {
            async fn course_batch(
                &self,
                id: &$crate::BatchId,
            ) -> $crate::source::SourceResult<Option<$crate::model::CourseBatch>> {
                $via!(self, course_batch(id))
            }
        }

        impl<$($generics)*> $crate::source::CollectionBatchSource for $ty {
            async fn batches_of(
                &self,
                collections: &[$crate::ContentId],
            ) -> $crate::source::SourceResult<Vec<$crate::model::CourseBatch>> {
                $via!(self, batches_of(collections))
            }
        }

        impl<$($generics)*> $crate::source::EnrolmentSource for $ty {
            async fn enrolments<F>(
                &self,
                batch: &$crate::model::CourseBatch,
                on_chunk: F,
            ) -> $crate::source::SourceResult<()>
            where
                F: FnMut(Vec<$crate::model::EnrolmentRecord>) + Send,
            {
                $via!(self, enrolments(batch, on_chunk))
            }
        }

        impl<$($generics)*> $crate::source::UserSource for $ty {
            async fn users(
                &self,
                ids: &[$crate::UserId],
            ) -> $crate::source::SourceResult<Vec<Option<$crate::model::UserEntry>>> {
                $via!(self, users(ids))
            }
        }

        impl<$($generics)*> $crate::source::OptionalNodeSource for $ty {
            async fn optional_nodes(
                &self,
                collection: &$crate::ContentId,
            ) -> $crate::source::SourceResult<std::collections::HashSet<String>> {
                $via!(self, optional_nodes(collection))
            }
        }

        impl<$($generics)*> $crate::source::AttemptSource for $ty {
            async fn attempts(
                &self,
                collection: &$crate::ContentId,
                users: &[$crate::UserId],
            ) -> $crate::source::SourceResult<Vec<$crate::model::AssessmentAttempt>> {
                $via!(self, attempts(collection, users))
            }
        }

        impl<$($generics)*> $crate::source::ActivitySource for $ty {
            async fn activity(
                &self,
                batch: &$crate::BatchId,
                activities: &[$crate::ContentId],
                users: &[$crate::UserId],
            ) -> $crate::source::SourceResult<Vec<$crate::model::ActivityAggregate>> {
                $via!(self, activity(batch, activities, users))
            }
        }

        impl<$($generics)*> $crate::source::HierarchySource for $ty {
            async fn hierarchy(
                &self,
                collection: &$crate::ContentId,
            ) -> $crate::source::SourceResult<Option<String>> {
                $via!(self, hierarchy(collection))
            }
        }

        impl<$($generics)*> $crate::source::CollectionSource for $ty {
            async fn collections(
                &self,
                ids: &[$crate::ContentId],
            ) -> $crate::source::SourceResult<Vec<$crate::model::CollectionMeta>> {
                $via!(self, collections(ids))
            }

            async fn search(
                &self,
                body: &serde_json::Value,
            ) -> $crate::source::SourceResult<Vec<$crate::model::CollectionMeta>> {
                $via!(self, search(body))
            }
        }

        impl<$($generics)*> $crate::source::CustodianOrgSource for $ty {
            async fn custodian_org(&self) -> $crate::source::SourceResult<Option<$crate::OrgId>> {
                $via!(self, custodian_org())
            }
        }
    };
}
