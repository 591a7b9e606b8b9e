//! A source that yields to the runtime before each read, so that a build
//! over a source that computes on the caller's thread (the snapshot reader
//! reads files synchronously) still has a point between two chunks where
//! the runner sees its stop deadline: a future that never returns `Pending`
//! cannot be abandoned by `select!`. Reads are per chunk of users, so the
//! cost is one yield per chunk.

use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
};
use exhaust_core::source::{
    ActivitySource, AttemptSource, BatchSource, CollectionBatchSource, CollectionSource,
    CustodianOrgSource, EnrolmentSource, HierarchySource, OptionalNodeSource, ReadCounter,
    ReadStats, SourceResult, UserSource,
};
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use std::collections::HashSet;

/// `S`, yielding once before each read.
#[derive(Debug)]
pub(crate) struct Cooperative<'a, S>(pub &'a S);

impl<S: ReadCounter> ReadCounter for Cooperative<'_, S> {
    fn read_counts(&self) -> Vec<(&'static str, ReadStats)> {
        self.0.read_counts()
    }
}

impl<S: BatchSource + Sync> BatchSource for Cooperative<'_, S> {
    async fn course_batch(&self, id: &BatchId) -> SourceResult<Option<CourseBatch>> {
        tokio::task::yield_now().await;
        self.0.course_batch(id).await
    }
}

impl<S: CollectionBatchSource + Sync> CollectionBatchSource for Cooperative<'_, S> {
    async fn batches_of(&self, collections: &[ContentId]) -> SourceResult<Vec<CourseBatch>> {
        tokio::task::yield_now().await;
        self.0.batches_of(collections).await
    }
}

impl<S: EnrolmentSource + Sync> EnrolmentSource for Cooperative<'_, S> {
    async fn enrolments<F>(&self, batch: &CourseBatch, on_chunk: F) -> SourceResult<()>
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send,
    {
        tokio::task::yield_now().await;
        self.0.enrolments(batch, on_chunk).await
    }
}

impl<S: UserSource + Sync> UserSource for Cooperative<'_, S> {
    async fn users(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        tokio::task::yield_now().await;
        self.0.users(ids).await
    }
}

impl<S: OptionalNodeSource + Sync> OptionalNodeSource for Cooperative<'_, S> {
    async fn optional_nodes(&self, collection: &ContentId) -> SourceResult<HashSet<String>> {
        tokio::task::yield_now().await;
        self.0.optional_nodes(collection).await
    }
}

impl<S: AttemptSource + Sync> AttemptSource for Cooperative<'_, S> {
    async fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> SourceResult<Vec<AssessmentAttempt>> {
        tokio::task::yield_now().await;
        self.0.attempts(collection, users).await
    }
}

impl<S: ActivitySource + Sync> ActivitySource for Cooperative<'_, S> {
    async fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        tokio::task::yield_now().await;
        self.0.activity(batch, activities, users).await
    }
}

impl<S: HierarchySource + Sync> HierarchySource for Cooperative<'_, S> {
    async fn hierarchy(&self, collection: &ContentId) -> SourceResult<Option<String>> {
        tokio::task::yield_now().await;
        self.0.hierarchy(collection).await
    }
}

impl<S: CollectionSource + Sync> CollectionSource for Cooperative<'_, S> {
    async fn collections(&self, ids: &[ContentId]) -> SourceResult<Vec<CollectionMeta>> {
        tokio::task::yield_now().await;
        self.0.collections(ids).await
    }

    async fn search(&self, body: &serde_json::Value) -> SourceResult<Vec<CollectionMeta>> {
        tokio::task::yield_now().await;
        self.0.search(body).await
    }
}

impl<S: CustodianOrgSource + Sync> CustodianOrgSource for Cooperative<'_, S> {
    async fn custodian_org(&self) -> SourceResult<Option<OrgId>> {
        tokio::task::yield_now().await;
        self.0.custodian_org().await
    }
}
