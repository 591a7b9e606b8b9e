//! The three live stores together: every source trait over Cassandra,
//! Redis and the content search API, with their read counters.

use super::cassandra::{CassandraConfig, CassandraSource};
use super::redis::{RedisConfig, RedisSource};
use super::search::{SearchConfig, SearchSource};
use exhaust_core::source::{ReadCounter, ReadStats, Reclaim, SourceResult};
use serde::{Deserialize, Serialize};

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

/// The live stores' data is dropped where the report is done with it: their
/// reads run on the report's runtime, which has no threads of its own to
/// spare for it.
impl Reclaim for LiveSources {}

impl ReadCounter for LiveSources {
    fn read_counts(&self) -> Vec<(&'static str, ReadStats)> {
        vec![
            ("cassandra", self.cassandra.read_stats()),
            ("redis", self.redis.read_stats()),
            ("search", self.search.read_stats()),
        ]
    }
}

/// Sends each call to the store that holds its data: the user cache and
/// optional nodes to Redis, collection metadata to the search API, the rest
/// to Cassandra.
macro_rules! to_store {
    ($self:ident, users($($arg:expr),*)) => {
        $self.redis.users($($arg),*).await
    };
    ($self:ident, optional_nodes($($arg:expr),*)) => {
        $self.redis.optional_nodes($($arg),*).await
    };
    ($self:ident, collections($($arg:expr),*)) => {
        $self.search.collections($($arg),*).await
    };
    ($self:ident, search($($arg:expr),*)) => {
        $self.search.search($($arg),*).await
    };
    ($self:ident, $method:ident($($arg:expr),*)) => {
        $self.cassandra.$method($($arg),*).await
    };
}

exhaust_core::forward_report_source!(impl [] for LiveSources => to_store);

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
            crate::live::cassandra::ReadConsistency::LocalQuorum
        );
        assert_eq!(cfg.cassandra.page_size, 5000);
        assert_eq!(cfg.redis.url, "redis://cache:6379");
        assert_eq!(cfg.redis.user_db, 12);
        assert!(serde_json::from_str::<LiveConfig>(r#"{"cassandra": {"hosts": []}}"#).is_err());
    }
}
