//! The Cassandra adapter's configuration: contact points, keyspaces and
//! tables, consistency, timeouts, concurrency, credentials (never shown).

use super::*;

/// The consistency level of reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReadConsistency {
    /// `ONE`.
    One,
    /// `TWO`.
    Two,
    /// `THREE`.
    Three,
    /// `QUORUM`.
    Quorum,
    /// `ALL`.
    All,
    /// `LOCAL_ONE` (the default: reports tolerate a replica a moment behind).
    #[default]
    LocalOne,
    /// `LOCAL_QUORUM`.
    LocalQuorum,
    /// `EACH_QUORUM`.
    EachQuorum,
}

impl From<ReadConsistency> for Consistency {
    fn from(c: ReadConsistency) -> Self {
        match c {
            ReadConsistency::One => Consistency::One,
            ReadConsistency::Two => Consistency::Two,
            ReadConsistency::Three => Consistency::Three,
            ReadConsistency::Quorum => Consistency::Quorum,
            ReadConsistency::All => Consistency::All,
            ReadConsistency::LocalOne => Consistency::LocalOne,
            ReadConsistency::LocalQuorum => Consistency::LocalQuorum,
            ReadConsistency::EachQuorum => Consistency::EachQuorum,
        }
    }
}

/// Where Sunbird's Cassandra is and how to read it.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CassandraConfig {
    /// `host:port` of one or more nodes (default `["127.0.0.1:9042"]`).
    pub contact_points: Vec<String>,
    /// Keyspace of `course_batch`, `user_enrolments`, `assessment_aggregator`
    /// and `user_activity_agg` (default `sunbird_courses`).
    pub courses_keyspace: String,
    /// Keyspace of `content_hierarchy` (default `dev_hierarchy_store`).
    pub hierarchy_keyspace: String,
    /// Keyspace of `system_settings` (default `sunbird`).
    pub sunbird_keyspace: String,
    /// A copy of the enrolments keyed by batch (partition key `batchid`),
    /// e.g. `report_user_enrolments`, in the courses keyspace unless written
    /// `keyspace.table`. `None` (the default): a token-range scan of
    /// `user_enrolments`.
    pub enrolment_table: Option<String>,
    /// Read consistency (default `LOCAL_ONE`).
    pub consistency: ReadConsistency,
    /// The datacenter whose nodes are asked first (the "local" of
    /// `LOCAL_ONE`); `None` (the default): every node alike.
    pub local_datacenter: Option<String>,
    /// User name, when the cluster needs a login.
    pub username: Option<String>,
    /// Password of `username`. Never logged.
    pub password: Option<String>,
    /// Queries in flight at once (default 32).
    pub concurrency: usize,
    /// Rows per page (default 5000).
    pub page_size: i32,
    /// Retries of a query after a timeout or an unavailable node (default 3).
    pub retries: u32,
    /// The first retry's wait in milliseconds, doubled per retry (default 200).
    pub retry_backoff_ms: u64,
    /// Client-side timeout of one request, in milliseconds (default 12000).
    pub request_timeout_ms: u64,
    /// Timeout of opening a connection, in milliseconds (default 5000).
    pub connect_timeout_ms: u64,
    /// Token ranges the `user_enrolments` scan is split into (default 256).
    pub scan_splits: usize,
    /// TLS to the nodes (`[source.live.cassandra.tls]`; default off). On
    /// when `enabled` or any of its files or `server_name` is set.
    pub tls: crate::live::tls::TlsSettings,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            contact_points: vec!["127.0.0.1:9042".into()],
            courses_keyspace: "sunbird_courses".into(),
            hierarchy_keyspace: "dev_hierarchy_store".into(),
            sunbird_keyspace: "sunbird".into(),
            enrolment_table: None,
            consistency: ReadConsistency::LocalOne,
            local_datacenter: None,
            username: None,
            password: None,
            concurrency: 32,
            page_size: 5000,
            retries: 3,
            retry_backoff_ms: 200,
            request_timeout_ms: 12_000,
            connect_timeout_ms: 5_000,
            scan_splits: 256,
            tls: Default::default(),
        }
    }
}

// Written by hand so the password never reaches a log.
impl std::fmt::Debug for CassandraConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraConfig")
            .field("contact_points", &self.contact_points)
            .field("courses_keyspace", &self.courses_keyspace)
            .field("hierarchy_keyspace", &self.hierarchy_keyspace)
            .field("sunbird_keyspace", &self.sunbird_keyspace)
            .field("enrolment_table", &self.enrolment_table)
            .field("consistency", &self.consistency)
            .field("local_datacenter", &self.local_datacenter)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("concurrency", &self.concurrency)
            .field("page_size", &self.page_size)
            .field("retries", &self.retries)
            .field("retry_backoff_ms", &self.retry_backoff_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("scan_splits", &self.scan_splits)
            .field("tls", &self.tls)
            .finish()
    }
}

impl CassandraConfig {
    pub(super) fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.courses_keyspace)
    }

    pub(super) fn enrolment_source(&self) -> Option<String> {
        self.enrolment_table.as_ref().map(|t| {
            if t.contains('.') {
                t.clone()
            } else {
                self.table(t)
            }
        })
    }
}
