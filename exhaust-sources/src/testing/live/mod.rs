//! Test support for the live sources: real stores loaded from a snapshot
//! folder (kassandra in process, the real Redis, the search API faked with
//! wiremock), and the one conformance suite every source runs.

pub mod cql_server;
pub mod fake_search;
pub mod redis_data;
pub mod schema;
pub mod tls;

use crate::{
    CassandraConfig, CassandraSource, LiveConfig, LiveSources, RedisConfig, RedisSource,
    SearchConfig, SearchSource,
};
use cql_server::CqlServer;
use exhaust_core::layout::Layout;
use exhaust_core::report::{BatchSummary, BuildError, ReportOptions, VecSink, build_report};
use exhaust_core::source::ReportSource;
use exhaust_core::{BatchId, OrgId};
use fake_search::FakeSearch;
use redis_data::RedisData;
use std::path::Path;

pub use super::{conformance_snapshot as conformance_dir, sample_snapshot as sample_dir};

/// A snapshot folder's rows in live stores, and the live sources over them.
pub struct LiveFixture {
    /// The sources under test.
    pub live: LiveSources,
    /// Their configuration.
    pub config: LiveConfig,
    /// The CQL server.
    pub cql: CqlServer,
    /// The Redis keys, deleted when the fixture is dropped.
    pub _redis: RedisData,
    /// The search API, stopped when the fixture is dropped.
    pub _search: FakeSearch,
}

/// The live sources wired to the test stores (the in-process CQL server
/// with the batch-keyed enrolment copy the loader fills, the local Redis
/// under `redis_prefix`, the fake search API), with the adapters' default
/// tuning: what the live benchmark measures.
pub fn wired_config(cql: &str, redis_prefix: &str, search_url: &str) -> LiveConfig {
    LiveConfig {
        cassandra: CassandraConfig {
            contact_points: vec![cql.to_owned()],
            enrolment_table: Some("report_user_enrolments".into()),
            ..CassandraConfig::default()
        },
        redis: RedisConfig {
            url: redis_data::URL.into(),
            user_db: redis_data::USER_DB,
            relation_db: redis_data::RELATION_DB,
            user_key_prefix: format!("{redis_prefix}user:"),
            relation_key_prefix: redis_prefix.to_owned(),
            ..RedisConfig::default()
        },
        search: SearchConfig {
            base_url: search_url.to_owned(),
            ..SearchConfig::default()
        },
    }
}

/// A configuration for the test stores: small pages and chunks, so that
/// paging and chunking are exercised by small fixtures, and quick retries.
pub fn test_config(cql: &str, redis_prefix: &str, search_url: &str) -> LiveConfig {
    let mut c = wired_config(cql, redis_prefix, search_url);
    c.cassandra.page_size = 7;
    c.cassandra.concurrency = 8;
    c.cassandra.retries = 1;
    c.cassandra.retry_backoff_ms = 10;
    c.cassandra.request_timeout_ms = 5_000;
    c.cassandra.connect_timeout_ms = 2_000;
    c.redis.chunk_size = 5;
    c.redis.retries = 1;
    c.redis.retry_backoff_ms = 10;
    c.search.page_limit = 2;
    c.search.retries = 1;
    c.search.retry_backoff_ms = 10;
    c.search.timeout_ms = 5_000;
    c
}

impl LiveFixture {
    /// Loads `dir` into fresh stores and connects the live sources.
    pub async fn load(dir: &Path) -> Self {
        Self::load_with(dir, |_| {}).await
    }

    /// As [`LiveFixture::load`], with the configuration changed by `tweak`
    /// before the sources connect.
    pub async fn load_with(dir: &Path, tweak: impl FnOnce(&mut LiveConfig)) -> Self {
        Self::load_into(dir, RedisData::load(dir).await, tweak).await
    }

    /// As [`LiveFixture::load_with`], with the caches already loaded (on
    /// a Redis of the test's own, say); `tweak` points the sources at it.
    pub async fn load_into(
        dir: &Path,
        redis: RedisData,
        tweak: impl FnOnce(&mut LiveConfig),
    ) -> Self {
        let cql = CqlServer::start();
        let search = FakeSearch::start(dir, 3).await;
        let mut config = test_config(&cql.contact_point(), &redis.prefix, &search.base_url());
        let loader = schema::session(&cql.contact_point()).await;
        schema::create(&loader, &config.cassandra).await;
        schema::load(&loader, &config.cassandra, dir).await;
        tweak(&mut config);
        let live = LiveSources::connect(&config)
            .await
            .expect("the live sources connect");
        Self {
            live,
            config,
            cql,
            _redis: redis,
            _search: search,
        }
    }

    /// Live sources over the same stores with another configuration.
    pub async fn reconnect(&self, tweak: impl FnOnce(&mut LiveConfig)) -> LiveSources {
        let mut config = self.config.clone();
        tweak(&mut config);
        LiveSources::from_parts(
            CassandraSource::connect(&config.cassandra)
                .await
                .expect("cassandra connects"),
            RedisSource::connect(&config.redis)
                .await
                .expect("redis connects"),
            SearchSource::new(&config.search).expect("a search client"),
        )
    }
}

/// One report build of the conformance suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The batch.
    pub batch: String,
    /// The layout.
    pub layout: Layout,
    /// The requesting org.
    pub org: Option<String>,
    /// Users per chunk.
    pub chunk: usize,
}

/// The cases of a snapshot folder: every batch of its `course_batch` (and
/// one unknown batch), in both layouts, without and with an org filter (an
/// org some of its users belong to, and `System`), with large and tiny
/// chunks.
pub fn cases(dir: &Path) -> Vec<Case> {
    let mut batches: Vec<String> = schema::snapshot_rows(dir, "course_batch")
        .iter()
        .map(|r| r["batchid"].as_str().expect("a batch id").to_owned())
        .collect();
    batches.push("no-such-batch".into());
    let some_org = schema::snapshot_rows(dir, "user_cache")
        .iter()
        .find_map(|r| r["value"]["rootorgid"].as_str().map(str::to_owned));
    let mut out = Vec::new();
    for batch in batches {
        for (layout, org, chunk) in [
            (Layout::Seed, None, 2_000),
            (Layout::Lern, None, 3),
            (Layout::Lern, some_org.clone(), 2_000),
            (Layout::Seed, Some("System".to_owned()), 3),
        ] {
            out.push(Case {
                batch: batch.clone(),
                layout,
                org,
                chunk,
            });
        }
    }
    out
}

/// What one case gives: the report and its summary, or why it failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The rows (header first) and the summary's counts.
    Built {
        /// Header and rows exactly as the sink received them.
        report: VecSink,
        /// The summary.
        summary: BatchSummary,
    },
    /// The build failed: the error with the source's name left out (each
    /// source names itself), and whether it is retryable.
    Failed {
        /// The error.
        error: String,
        /// Whether a retry may help.
        retryable: bool,
    },
}

fn failure(e: &BuildError) -> Outcome {
    let error = match e {
        BuildError::Source(s) => match s {
            exhaust_core::source::SourceError::BadData { .. } => "bad data".to_owned(),
            exhaust_core::source::SourceError::Unavailable { .. } => "unavailable".to_owned(),
        },
        other => other.to_string(),
    };
    Outcome::Failed {
        error,
        retryable: e.is_retryable(),
    }
}

/// Runs the conformance suite's cases against a source.
pub async fn run_cases<S: ReportSource>(source: &S, cases: &[Case]) -> Vec<(Case, Outcome)> {
    let mut out = Vec::new();
    for case in cases {
        let opts = ReportOptions {
            layout: case.layout,
            chunk_size: case.chunk,
            ..ReportOptions::default()
        };
        let org = case.org.clone().map(OrgId::new);
        let mut sink = VecSink::default();
        let outcome = match build_report(
            source,
            &BatchId::new(case.batch.clone()),
            org.as_ref(),
            &opts,
            &mut sink,
        )
        .await
        {
            Ok(mut summary) => {
                // Malformed entries keep their row; the texts describing
                // them differ by store (a Redis key of the wrong type, a
                // JSON value that is not a hash), the users do not.
                for (_, why) in &mut summary.malformed_examples {
                    why.clear();
                }
                Outcome::Built {
                    report: sink,
                    summary,
                }
            }
            Err(e) => failure(&e),
        };
        out.push((case.clone(), outcome));
    }
    out
}

/// Asserts two sources give the same outcome for every case, naming the
/// first case that differs.
pub fn assert_same(expected: &[(Case, Outcome)], actual: &[(Case, Outcome)], what: &str) {
    assert_eq!(expected.len(), actual.len());
    for ((case, want), (_, got)) in expected.iter().zip(actual) {
        assert_eq!(got, want, "{what} differs from the snapshot for {case:?}");
    }
}
