//! An in-memory source: every trait served from plain collections. For
//! tests, benchmarks and embedders who already hold the rows; its futures
//! are always ready.

use crate::ids::{BatchId, ContentId, OrgId, UserId};
use crate::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
};
use crate::source::{
    ActivitySource, AttemptSource, BatchSource, CollectionBatchSource, CollectionSource,
    CustodianOrgSource, EnrolmentSource, HierarchySource, OptionalNodeSource, ReadCounter, Reclaim,
    SourceResult, UserSource,
};
use std::collections::{HashMap, HashSet};

/// Rows held in memory, keyed as the live stores key them.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    /// Course batches by id.
    pub batches: HashMap<BatchId, CourseBatch>,
    /// Enrolment rows, any batch, any order.
    pub enrolments: Vec<EnrolmentRecord>,
    /// The user cache.
    pub users: HashMap<UserId, UserEntry>,
    /// Optional nodes by collection.
    pub optional: HashMap<ContentId, HashSet<String>>,
    /// Attempts by user.
    pub attempts: HashMap<UserId, Vec<AssessmentAttempt>>,
    /// Activity aggregates by user.
    pub activity: HashMap<UserId, Vec<ActivityAggregate>>,
    /// Hierarchy JSON by collection.
    pub hierarchies: HashMap<ContentId, String>,
    /// Collection metadata.
    pub collections: Vec<CollectionMeta>,
    /// The custodian org.
    pub custodian: Option<OrgId>,
    /// Enrolment rows per chunk delivered to the report (default 1000).
    pub chunk: Option<usize>,
}

impl MemorySource {
    /// Adds an attempt under its user.
    pub fn add_attempt(&mut self, a: AssessmentAttempt) {
        self.attempts.entry(a.user_id.clone()).or_default().push(a);
    }

    /// Adds an aggregate under its user.
    pub fn add_activity(&mut self, a: ActivityAggregate) {
        self.activity.entry(a.user_id.clone()).or_default().push(a);
    }
}

// Memory reads cost nothing worth counting.
impl ReadCounter for MemorySource {}
impl Reclaim for MemorySource {}

impl BatchSource for MemorySource {
    async fn course_batch(&self, id: &BatchId) -> SourceResult<Option<CourseBatch>> {
        Ok(self.batches.get(id).cloned())
    }
}

impl CollectionBatchSource for MemorySource {
    async fn batches_of(&self, collections: &[ContentId]) -> SourceResult<Vec<CourseBatch>> {
        Ok(self
            .batches
            .values()
            .filter(|b| collections.contains(&b.course_id))
            .cloned()
            .collect())
    }
}

impl EnrolmentSource for MemorySource {
    async fn enrolments<F>(&self, batch: &CourseBatch, mut on_chunk: F) -> SourceResult<()>
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send,
    {
        let rows: Vec<_> = self
            .enrolments
            .iter()
            .filter(|e| e.batch_id == batch.batch_id)
            .cloned()
            .collect();
        for chunk in rows.chunks(self.chunk.unwrap_or(1000).max(1)) {
            on_chunk(chunk.to_vec());
        }
        Ok(())
    }
}

impl UserSource for MemorySource {
    async fn users(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        Ok(ids.iter().map(|id| self.users.get(id).cloned()).collect())
    }
}

impl OptionalNodeSource for MemorySource {
    async fn optional_nodes(&self, collection: &ContentId) -> SourceResult<HashSet<String>> {
        Ok(self.optional.get(collection).cloned().unwrap_or_default())
    }
}

impl AttemptSource for MemorySource {
    async fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> SourceResult<Vec<AssessmentAttempt>> {
        Ok(users
            .iter()
            .filter_map(|u| self.attempts.get(u))
            .flatten()
            .filter(|a| &a.course_id == collection)
            .cloned()
            .collect())
    }
}

impl ActivitySource for MemorySource {
    async fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        let context = format!("cb:{batch}");
        Ok(users
            .iter()
            .filter_map(|u| self.activity.get(u))
            .flatten()
            .filter(|a| a.context_id == context && activities.contains(&a.activity_id))
            .cloned()
            .collect())
    }
}

impl HierarchySource for MemorySource {
    async fn hierarchy(&self, collection: &ContentId) -> SourceResult<Option<String>> {
        Ok(self.hierarchies.get(collection).cloned())
    }
}

impl CollectionSource for MemorySource {
    async fn collections(&self, ids: &[ContentId]) -> SourceResult<Vec<CollectionMeta>> {
        Ok(self
            .collections
            .iter()
            .filter(|c| ids.contains(&c.identifier))
            .cloned()
            .collect())
    }

    async fn search(&self, body: &serde_json::Value) -> SourceResult<Vec<CollectionMeta>> {
        // Only identifier filters: enough for tests of search-driven runs.
        let ids: Vec<&str> = body
            .pointer("/request/filters/identifier")
            .and_then(serde_json::Value::as_array)
            .map(|v| v.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        Ok(self
            .collections
            .iter()
            .filter(|c| ids.contains(&c.identifier.as_str()))
            .cloned()
            .collect())
    }
}

impl CustodianOrgSource for MemorySource {
    async fn custodian_org(&self) -> SourceResult<Option<OrgId>> {
        Ok(self.custodian.clone())
    }
}
