//! The live stores together: Cassandra, Redis and the search API behind every
//! source trait, so a report reads Sunbird's own stores.
//!
//! [`LiveSources`] only delegates, each trait to the store that holds its
//! data, and reports each store's read counters, so a run summary can show
//! that a batch read only what it needs.

use crate::cassandra::{CassandraConfig, CassandraSource};
use crate::redis_cache::{RedisConfig, RedisSource};
use crate::search::{SearchConfig, SearchSource};
use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
};
use exhaust_core::source::{
    ActivitySource, AttemptSource, BatchSource, CollectionBatchSource, CollectionSource,
    CustodianOrgSource, EnrolmentSource, HierarchySource, OptionalNodeSource, ReadCounter,
    ReadStats, SourceResult, UserSource,
};
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The three stores' configurations; each part defaults to Sunbird's names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Cassandra.
    pub cassandra: CassandraConfig,
    /// Redis.
    pub redis: RedisConfig,
    /// The content search API.
    pub search: SearchConfig,
}

/// Every source trait over Sunbird's live stores.
#[derive(Debug)]
pub struct LiveSources {
    /// Batches, enrolments, attempts, aggregates, hierarchies, settings.
    pub cassandra: CassandraSource,
    /// The user cache and optional nodes.
    pub redis: RedisSource,
    /// Collection metadata.
    pub search: SearchSource,
}

impl LiveSources {
    /// Connects to Cassandra and Redis (at once) and prepares the search
    /// client. A store that cannot be reached is
    /// [`SourceError::Unavailable`](exhaust_core::source::SourceError).
    pub async fn connect(cfg: &LiveConfig) -> SourceResult<Self> {
        let search = SearchSource::new(&cfg.search)?;
        let (cassandra, redis) = tokio::try_join!(
            CassandraSource::connect(&cfg.cassandra),
            RedisSource::connect(&cfg.redis)
        )?;
        Ok(Self::from_parts(cassandra, redis, search))
    }

    /// Assembles stores connected separately.
    pub fn from_parts(
        cassandra: CassandraSource,
        redis: RedisSource,
        search: SearchSource,
    ) -> Self {
        Self {
            cassandra,
            redis,
            search,
        }
    }
}

impl ReadCounter for LiveSources {
    fn read_counts(&self) -> Vec<(&'static str, ReadStats)> {
        vec![
            ("cassandra", self.cassandra.read_stats()),
            ("redis", self.redis.read_stats()),
            ("search", self.search.read_stats()),
        ]
    }
}

impl BatchSource for LiveSources {
    async fn course_batch(&self, id: &BatchId) -> SourceResult<Option<CourseBatch>> {
        self.cassandra.course_batch(id).await
    }
}

impl CollectionBatchSource for LiveSources {
    async fn batches_of(&self, collections: &[ContentId]) -> SourceResult<Vec<CourseBatch>> {
        self.cassandra.batches_of(collections).await
    }
}

impl EnrolmentSource for LiveSources {
    async fn enrolments<F>(&self, batch: &CourseBatch, on_chunk: F) -> SourceResult<()>
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send,
    {
        self.cassandra.enrolments(batch, on_chunk).await
    }
}

impl UserSource for LiveSources {
    async fn users(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        self.redis.users(ids).await
    }
}

impl OptionalNodeSource for LiveSources {
    async fn optional_nodes(&self, collection: &ContentId) -> SourceResult<HashSet<String>> {
        self.redis.optional_nodes(collection).await
    }
}

impl AttemptSource for LiveSources {
    async fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> SourceResult<Vec<AssessmentAttempt>> {
        self.cassandra.attempts(collection, users).await
    }
}

impl ActivitySource for LiveSources {
    async fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        self.cassandra.activity(batch, activities, users).await
    }
}

impl HierarchySource for LiveSources {
    async fn hierarchy(&self, collection: &ContentId) -> SourceResult<Option<String>> {
        self.cassandra.hierarchy(collection).await
    }
}

impl CollectionSource for LiveSources {
    async fn collections(&self, ids: &[ContentId]) -> SourceResult<Vec<CollectionMeta>> {
        self.search.collections(ids).await
    }

    async fn search(&self, body: &serde_json::Value) -> SourceResult<Vec<CollectionMeta>> {
        self.search.search(body).await
    }
}

impl CustodianOrgSource for LiveSources {
    async fn custodian_org(&self) -> SourceResult<Option<OrgId>> {
        self.cassandra.custodian_org().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_config_means_sunbirds_defaults() {
        let cfg: LiveConfig = serde_json::from_str("{}").expect("parses");
        assert_eq!(cfg, LiveConfig::default());
        assert_eq!(cfg.cassandra.contact_points, ["127.0.0.1:9042"]);
        assert_eq!(cfg.cassandra.courses_keyspace, "sunbird_courses");
        assert_eq!(cfg.cassandra.hierarchy_keyspace, "dev_hierarchy_store");
        assert_eq!(cfg.cassandra.sunbird_keyspace, "sunbird");
        assert_eq!(cfg.cassandra.enrolment_table, None);
        assert_eq!((cfg.redis.user_db, cfg.redis.relation_db), (12, 5));
        assert_eq!(cfg.redis.user_key_prefix, "user:");
        assert_eq!(cfg.search.path, "/v3/search");
    }

    #[test]
    fn a_partial_config_keeps_the_other_defaults() {
        let cfg: LiveConfig = serde_json::from_str(
            r#"{"cassandra": {"enrolment_table": "report_user_enrolments",
                              "consistency": "LOCAL_QUORUM"},
                "redis": {"url": "redis://cache:6379"}}"#,
        )
        .expect("parses");
        assert_eq!(
            cfg.cassandra.enrolment_table.as_deref(),
            Some("report_user_enrolments")
        );
        assert_eq!(
            cfg.cassandra.consistency,
            crate::cassandra::ReadConsistency::LocalQuorum
        );
        assert_eq!(cfg.cassandra.page_size, 5000);
        assert_eq!(cfg.redis.url, "redis://cache:6379");
        assert_eq!(cfg.redis.user_db, 12);
        assert!(serde_json::from_str::<LiveConfig>(r#"{"cassandra": {"hosts": []}}"#).is_err());
    }
}
