//! The report source chosen by configuration: a snapshot folder (the
//! default) or Sunbird's live stores. One type for both, so the runner, the
//! report command and the server are not generic over the choice.

use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
};
use exhaust_core::source::{
    ActivitySource, AttemptSource, BatchSource, CollectionBatchSource, CollectionSource,
    CustodianOrgSource, EnrolmentSource, HierarchySource, OptionalNodeSource, ReadCounter,
    ReadStats, SourceResult, UserSource,
};
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use exhaust_sources::{LiveSources, Snapshot};
use std::collections::HashSet;

/// A snapshot folder or the live stores.
#[derive(Debug)]
// One source per process: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnySource {
    /// A snapshot folder.
    Snapshot(Snapshot),
    /// Cassandra, Redis and the search API.
    Live(LiveSources),
}

impl AnySource {
    /// What the source is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Snapshot(_) => "snapshot",
            Self::Live(_) => "live",
        }
    }
}

/// Calls the same method on whichever source this is.
macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnySource::Snapshot($s) => $call,
            AnySource::Live($s) => $call,
        }
    };
}

impl ReadCounter for AnySource {
    fn read_counts(&self) -> Vec<(&'static str, ReadStats)> {
        delegate!(self, s => s.read_counts())
    }
}

impl BatchSource for AnySource {
    async fn course_batch(&self, id: &BatchId) -> SourceResult<Option<CourseBatch>> {
        delegate!(self, s => s.course_batch(id).await)
    }
}

impl CollectionBatchSource for AnySource {
    async fn batches_of(&self, collections: &[ContentId]) -> SourceResult<Vec<CourseBatch>> {
        delegate!(self, s => s.batches_of(collections).await)
    }
}

impl EnrolmentSource for AnySource {
    async fn enrolments<F>(&self, batch: &CourseBatch, on_chunk: F) -> SourceResult<()>
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send,
    {
        delegate!(self, s => s.enrolments(batch, on_chunk).await)
    }
}

impl UserSource for AnySource {
    async fn users(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        delegate!(self, s => s.users(ids).await)
    }
}

impl OptionalNodeSource for AnySource {
    async fn optional_nodes(&self, collection: &ContentId) -> SourceResult<HashSet<String>> {
        delegate!(self, s => s.optional_nodes(collection).await)
    }
}

impl AttemptSource for AnySource {
    async fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> SourceResult<Vec<AssessmentAttempt>> {
        delegate!(self, s => s.attempts(collection, users).await)
    }
}

impl ActivitySource for AnySource {
    async fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        delegate!(self, s => s.activity(batch, activities, users).await)
    }
}

impl HierarchySource for AnySource {
    async fn hierarchy(&self, collection: &ContentId) -> SourceResult<Option<String>> {
        delegate!(self, s => s.hierarchy(collection).await)
    }
}

impl CollectionSource for AnySource {
    async fn collections(&self, ids: &[ContentId]) -> SourceResult<Vec<CollectionMeta>> {
        delegate!(self, s => s.collections(ids).await)
    }

    async fn search(&self, body: &serde_json::Value) -> SourceResult<Vec<CollectionMeta>> {
        delegate!(self, s => s.search(body).await)
    }
}

impl CustodianOrgSource for AnySource {
    async fn custodian_org(&self) -> SourceResult<Option<OrgId>> {
        delegate!(self, s => s.custodian_org().await)
    }
}
