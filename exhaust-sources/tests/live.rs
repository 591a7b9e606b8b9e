//! The live sources against real stores: an in-process CQL server
//! (kassandra), the real Redis at 127.0.0.1:6379 and the search API faked
//! with wiremock, loaded with the same rows as a snapshot folder. The one
//! conformance suite (`support::cases`) must give the same outcome, report
//! bytes included, through the snapshot reader, the live sources, and a
//! snapshot exported from the live sources.

use exhaust_sources::testing::live as support;

use exhaust_core::model::UserEntry;
use exhaust_core::report::{BuildError, ReportOptions, VecSink, build_report};
use exhaust_core::source::{
    ActivitySource, AttemptSource, BatchSource, CollectionBatchSource, CollectionSource,
    CustodianOrgSource, EnrolmentSource, HierarchySource, ReadCounter, SourceError, UserSource,
    reads_between,
};
use exhaust_core::{BatchId, ContentId, UserId};
use exhaust_sources::{
    CassandraConfig, CassandraSource, ExportOptions, LiveSources, RedisConfig, RedisSource,
    SearchConfig, SearchSource, Snapshot, SnapshotOptions, export_batch,
};
use std::path::Path;
use support::{LiveFixture, cases, conformance_dir, run_cases, sample_dir};

fn snapshot(dir: &Path) -> Snapshot {
    Snapshot::open(dir, SnapshotOptions::default()).expect("the snapshot opens")
}

/// The suite on one snapshot folder: snapshot reader, live sources, and the
/// live sources exported batch by batch and read back as snapshots.
async fn conformance(dir: &Path) {
    conformance_on(dir, LiveFixture::load(dir).await).await;
}

/// [`conformance`] on stores already loaded with `dir`'s rows.
async fn conformance_on(dir: &Path, fixture: LiveFixture) {
    let cases = cases(dir);
    let expected = run_cases(&snapshot(dir), &cases).await;
    let built = expected
        .iter()
        .filter(
            |(_, o)| matches!(o, support::Outcome::Built { report, .. } if !report.rows.is_empty()),
        )
        .count();
    assert!(built >= 4, "the fixture builds reports with rows: {built}");

    let live = run_cases(&fixture.live, &cases).await;
    support::assert_same(&expected, &live, "the live sources");

    // The adapter never asks kassandra (or Cassandra) for IN, filtering or
    // a count: one partition per query.
    for stmt in fixture.cql.statements() {
        let upper = stmt.to_ascii_uppercase();
        assert!(
            !upper.contains(" IN ")
                && !upper.contains("ALLOW FILTERING")
                && !upper.contains("COUNT("),
            "{stmt}"
        );
    }

    // Exported from the live sources, each batch re-runs the same.
    let mut batches: Vec<&str> = cases.iter().map(|c| c.batch.as_str()).collect();
    batches.dedup();
    for batch in batches.into_iter().filter(|b| *b != "no-such-batch") {
        let out = tempfile::tempdir().expect("a temp dir");
        export_batch(
            &fixture.live,
            &BatchId::new(batch),
            out.path(),
            &ExportOptions::default(),
        )
        .await
        .expect("the export succeeds");
        let of_batch: Vec<_> = cases.iter().filter(|c| c.batch == batch).cloned().collect();
        let want: Vec<_> = expected
            .iter()
            .filter(|(c, _)| c.batch == batch)
            .cloned()
            .collect();
        let got = run_cases(&snapshot(out.path()), &of_batch).await;
        support::assert_same(&want, &got, &format!("the export of {batch}"));
    }
}

#[tokio::test]
async fn sunbirds_fixture_gives_the_same_reports_live() {
    conformance(&conformance_dir()).await;
}

#[tokio::test]
async fn the_sample_snapshot_gives_the_same_reports_live() {
    conformance(&sample_dir()).await;
}

#[tokio::test]
async fn wrong_shaped_cache_entries_match_the_snapshot() {
    // The conformance fixture with user-002's entry a list (a Redis key of
    // another type) and user-003's with a field that is not text.
    let dir = tempfile::tempdir().expect("a temp dir");
    for entry in std::fs::read_dir(conformance_dir()).expect("the fixture") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().expect("a name").to_owned();
        let text = std::fs::read_to_string(&path).expect("readable");
        let text = if name == "user_cache.jsonl" {
            text.lines()
                .map(|l| {
                    let mut row: serde_json::Value = serde_json::from_str(l).expect("JSON");
                    match row["key"].as_str() {
                        Some("user:user-002") => {
                            row["value"] = serde_json::json!(["not", "a hash"])
                        }
                        Some("user:user-003") => {
                            row["value"]["board"] = serde_json::json!({"x": 1})
                        }
                        _ => {}
                    }
                    row.to_string() + "\n"
                })
                .collect()
        } else {
            text
        };
        std::fs::write(dir.path().join(name), text).expect("written");
    }
    let cases: Vec<_> = cases(dir.path())
        .into_iter()
        .filter(|c| c.batch == "batch-001")
        .collect();
    let expected = run_cases(&snapshot(dir.path()), &cases).await;
    let support::Outcome::Built { summary, .. } = &expected[0].1 else {
        panic!("batch-001 builds: {:?}", expected[0]);
    };
    assert_eq!(summary.malformed_users, 2);
    let fixture = LiveFixture::load(dir.path()).await;
    let live = run_cases(&fixture.live, &cases).await;
    support::assert_same(&expected, &live, "the live sources");
    let users = fixture
        .live
        .users(&[
            UserId::new("user-002"),
            UserId::new("user-001"),
            UserId::new("nobody"),
        ])
        .await
        .expect("reads");
    assert!(matches!(users[0], Some(UserEntry::Malformed(_))));
    assert!(matches!(users[1], Some(UserEntry::Profile(_))));
    assert_eq!(users[2], None);
}

#[tokio::test]
async fn the_snapshots_export_reopens_to_the_same_report() {
    for dir in [conformance_dir(), sample_dir()] {
        let source = snapshot(&dir);
        let cases = cases(&dir);
        let expected = run_cases(&source, &cases).await;
        let mut batches: Vec<&str> = cases.iter().map(|c| c.batch.as_str()).collect();
        batches.dedup();
        for batch in batches {
            let out = tempfile::tempdir().expect("a temp dir");
            let exported = export_batch(
                &source,
                &BatchId::new(batch),
                out.path(),
                &ExportOptions::default(),
            )
            .await;
            if batch == "no-such-batch" {
                assert!(matches!(
                    exported,
                    Err(exhaust_sources::ExportError::UnknownBatch(_))
                ));
                continue;
            }
            let summary = exported.expect("the export succeeds");
            assert_eq!(summary.batch_id.as_str(), batch);
            assert!(summary.files.contains(&"course_batch.jsonl".to_owned()));
            let of_batch: Vec<_> = cases.iter().filter(|c| c.batch == batch).cloned().collect();
            let want: Vec<_> = expected
                .iter()
                .filter(|(c, _)| c.batch == batch)
                .cloned()
                .collect();
            let got = run_cases(&snapshot(out.path()), &of_batch).await;
            support::assert_same(&want, &got, &format!("the export of {batch}"));
            // Nothing is half-written, and a second export never mixes in.
            assert!(std::fs::read_dir(out.path()).expect("listable").all(|e| {
                !e.expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".part")
            }));
            let again = export_batch(
                &source,
                &BatchId::new(batch),
                out.path(),
                &ExportOptions::default(),
            )
            .await;
            assert!(matches!(
                again,
                Err(exhaust_sources::ExportError::NotEmpty { .. })
            ));
        }
    }
}

#[tokio::test]
async fn a_batch_reads_only_its_own_users() {
    let dir = sample_dir();
    // Pages as large as a partition, so that a query is one request.
    let fixture = LiveFixture::load_with(&dir, |c| c.cassandra.page_size = 5000).await;
    let batch = BatchId::new("0135742803756164562");
    let before = fixture.live.read_counts();
    let mut sink = VecSink::default();
    let summary = build_report(
        &fixture.live,
        &batch,
        None,
        &ReportOptions::default(),
        &mut sink,
    )
    .await
    .expect("builds");
    let reads = reads_between(&before, &fixture.live.read_counts());
    let of = |name: &str| reads.iter().find(|(n, _)| *n == name).expect("counted").1;
    let learners = summary.rows as u64;
    assert_eq!(learners, 38, "40 enrolments, 2 inactive");
    // One HGETALL per learner, one SMEMBERS for the optional nodes: the
    // other 82 users of the cache are never read.
    assert_eq!(of("redis").queries, learners + 1);
    assert!(of("redis").rows <= learners + 1);
    assert!(of("redis").bytes > 0);
    assert_eq!(of("search").queries, 1);
    assert!(of("cassandra").queries > 0 && of("cassandra").bytes > 0);

    // Attempts: one query per user (partition), whatever the chunking;
    // aggregates: one per user and nested collection.
    let users: Vec<UserId> = sink
        .rows
        .iter()
        .map(|r| UserId::new(r[4].clone()))
        .collect();
    let course = ContentId::new("do_111619594813120048361");
    let before = fixture.live.read_counts();
    let attempts = fixture.live.attempts(&course, &users).await.expect("reads");
    let reads = reads_between(&before, &fixture.live.read_counts());
    let cassandra = reads
        .iter()
        .find(|(n, _)| *n == "cassandra")
        .expect("counted")
        .1;
    assert_eq!(cassandra.queries, users.len() as u64);
    assert_eq!(cassandra.rows, attempts.len() as u64);
    let units = [
        ContentId::new("do_11888558147024626606"),
        ContentId::new("do_11361880683008369748"),
    ];
    let before = fixture.live.read_counts();
    let aggs = fixture
        .live
        .activity(&batch, &units, &users[..5])
        .await
        .expect("reads");
    let reads = reads_between(&before, &fixture.live.read_counts());
    let cassandra = reads
        .iter()
        .find(|(n, _)| *n == "cassandra")
        .expect("counted")
        .1;
    assert_eq!(cassandra.queries, 10);
    assert_eq!(cassandra.rows, aggs.len() as u64);
    assert!(
        aggs.iter()
            .all(|a| a.context_id == "cb:0135742803756164562")
    );
}

#[tokio::test]
async fn batches_hierarchies_and_settings_are_read_by_key() {
    let dir = conformance_dir();
    let fixture = LiveFixture::load(&dir).await;
    let reference = snapshot(&dir);
    let courses = [
        ContentId::new("do_1130928636168192001667"),
        ContentId::new("do_112835334818643968148"),
        ContentId::new("do_unknown"),
    ];
    // In any order: the core sorts them.
    let sorted = |mut b: Vec<exhaust_core::model::CourseBatch>| {
        b.sort_by(|x, y| x.batch_id.cmp(&y.batch_id));
        b
    };
    assert_eq!(
        sorted(fixture.live.batches_of(&courses).await.expect("reads")),
        sorted(reference.batches_of(&courses).await.expect("reads"))
    );
    assert_eq!(
        fixture.live.custodian_org().await.expect("reads"),
        reference.custodian_org().await.expect("reads")
    );
    for c in &courses {
        assert_eq!(
            fixture.live.hierarchy(c).await.expect("reads"),
            reference.hierarchy(c).await.expect("reads")
        );
    }
    let batch = fixture
        .live
        .course_batch(&BatchId::new("batch-004"))
        .await
        .expect("reads")
        .expect("known");
    assert_eq!(
        Some(&batch),
        reference
            .course_batch(&BatchId::new("batch-004"))
            .await
            .expect("reads")
            .as_ref()
    );
    // The batch's course was remembered by the key scan: a second read goes
    // to the row by its primary key only.
    let before = fixture.live.read_counts();
    fixture
        .live
        .course_batch(&BatchId::new("batch-001"))
        .await
        .expect("reads");
    let reads = reads_between(&before, &fixture.live.read_counts());
    assert_eq!(reads[0].1.queries, 1);
    assert_eq!(
        fixture
            .live
            .course_batch(&BatchId::new("nope"))
            .await
            .expect("reads"),
        None
    );
    let mut chunks = Vec::new();
    fixture
        .live
        .enrolments(&batch, |c| chunks.push(c.len()))
        .await
        .expect("reads");
    assert_eq!(chunks.iter().sum::<usize>(), 1);
}

#[tokio::test]
async fn search_pages_past_the_services_limit() {
    // Seven collections; the service answers at most 3 per request.
    let dir = tempfile::tempdir().expect("a temp dir");
    let lines: String = (1..=7)
        .map(|i| {
            format!(
                "{{\"identifier\":\"do_{i}\",\"name\":\"Course {i}\",\"channel\":\"ch\",\
                 \"status\":\"{}\",\"primaryCategory\":\"Course\"}}\n",
                if i == 7 { "Retired" } else { "Live" }
            )
        })
        .collect();
    std::fs::write(dir.path().join("content.jsonl"), lines).expect("written");
    let fake = support::fake_search::FakeSearch::start(dir.path(), 3).await;
    let search = SearchSource::new(&SearchConfig {
        base_url: fake.base_url(),
        page_limit: 5,
        ..SearchConfig::default()
    })
    .expect("a client");
    let body = serde_json::json!({"request": {"filters": {"primaryCategory": "Course"}}});
    let found = search.search(&body).await.expect("searches");
    assert_eq!(found.len(), 7, "no collection is lost");
    let sent = fake.bodies().await;
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2]["request"]["offset"], 6);
    assert_eq!(sent[0]["request"]["filters"], body["request"]["filters"]);

    // By id: Sunbird's request shape, retired collections included.
    let ids: Vec<ContentId> = ["do_7", "do_2", "do_missing"].map(ContentId::new).to_vec();
    let metas = search.collections(&ids).await.expect("reads");
    let mut got: Vec<(&str, &str)> = metas
        .iter()
        .map(|m| (m.identifier.as_str(), m.status.as_str()))
        .collect();
    got.sort_unstable();
    assert_eq!(got, [("do_2", "Live"), ("do_7", "Retired")]);
    let last = fake.bodies().await.pop().expect("a request");
    assert_eq!(
        last["request"]["filters"]["status"],
        serde_json::json!(["Live", "Unlisted", "Retired"])
    );
    assert_eq!(
        last["request"]["fields"],
        serde_json::json!(["channel", "identifier", "name", "userConsent", "status"])
    );
    // A body with its own window is posted as it is, once.
    let windowed = serde_json::json!({"request": {"filters": {}, "limit": 2, "offset": 1}});
    assert_eq!(search.search(&windowed).await.expect("searches").len(), 2);
    assert_eq!(fake.bodies().await.pop(), Some(windowed));
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    l.local_addr().expect("an address").port()
}

fn assert_unavailable(e: &SourceError, source: &str) {
    assert!(e.is_retryable(), "{e}");
    let SourceError::Unavailable { source_name, .. } = e else {
        panic!("expected unavailable: {e}");
    };
    assert_eq!(source_name, source, "{e}");
}

#[tokio::test]
async fn a_store_that_is_down_is_unavailable_not_a_panic() {
    let redis = RedisSource::connect(&RedisConfig {
        url: format!("redis://127.0.0.1:{}", closed_port()),
        retries: 1,
        retry_backoff_ms: 10,
        connect_timeout_ms: 500,
        ..RedisConfig::default()
    })
    .await
    .expect_err("nothing listens");
    assert_unavailable(&redis, "redis");

    let cassandra = CassandraSource::connect(&CassandraConfig {
        contact_points: vec![format!("127.0.0.1:{}", closed_port())],
        retries: 1,
        retry_backoff_ms: 10,
        connect_timeout_ms: 500,
        ..CassandraConfig::default()
    })
    .await
    .expect_err("nothing listens");
    assert_unavailable(&cassandra, "cassandra");
    assert!(
        cassandra.to_string().contains("cannot connect"),
        "{cassandra}"
    );

    let mut config = support::test_config(
        &format!("127.0.0.1:{}", closed_port()),
        "unused:",
        "http://127.0.0.1:1",
    );
    config.cassandra.retries = 0;
    config.cassandra.connect_timeout_ms = 500;
    let e = LiveSources::connect(&config)
        .await
        .expect_err("cassandra is down");
    assert_unavailable(&e, "cassandra");
}

async fn build_with_search(fixture: &LiveFixture, search: SearchConfig) -> BuildError {
    let live = fixture.reconnect(|c| c.search = search).await;
    let mut sink = VecSink::default();
    build_report(
        &live,
        &BatchId::new("batch-001"),
        None,
        &ReportOptions::default(),
        &mut sink,
    )
    .await
    .expect_err("the search fails")
}

#[tokio::test]
async fn a_search_api_that_fails_or_is_slow_fails_the_build_retryably() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let fixture = LiveFixture::load(&conformance_dir()).await;

    let failing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream down"))
        .mount(&failing)
        .await;
    let e = build_with_search(
        &fixture,
        SearchConfig {
            base_url: failing.uri(),
            retries: 2,
            retry_backoff_ms: 10,
            ..SearchConfig::default()
        },
    )
    .await;
    assert!(e.is_retryable(), "{e}");
    let BuildError::Source(s) = &e else {
        panic!("a source error: {e}")
    };
    assert_unavailable(s, "search");
    assert!(e.to_string().contains("503"), "{e}");
    let sent = failing.received_requests().await.expect("recorded").len();
    assert_eq!(sent, 3, "the first request and two retries");

    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"result": {"count": 0}}))
                .set_delay(std::time::Duration::from_secs(3)),
        )
        .mount(&slow)
        .await;
    let e = build_with_search(
        &fixture,
        SearchConfig {
            base_url: slow.uri(),
            timeout_ms: 200,
            retries: 1,
            retry_backoff_ms: 10,
            ..SearchConfig::default()
        },
    )
    .await;
    let BuildError::Source(s) = &e else {
        panic!("a source error: {e}")
    };
    assert_unavailable(s, "search");
    assert!(
        e.to_string().contains("did not answer within 200 ms"),
        "{e}"
    );

    let garbled = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
        .mount(&garbled)
        .await;
    let e = build_with_search(
        &fixture,
        SearchConfig {
            base_url: garbled.uri(),
            ..SearchConfig::default()
        },
    )
    .await;
    assert!(!e.is_retryable(), "malformed JSON is bad data: {e}");
}

#[tokio::test]
async fn unexpected_cql_shapes_are_bad_data_naming_table_and_key() {
    // A deployment whose assessment_aggregator has total_score as text.
    let cql = support::cql_server::CqlServer::start();
    let loader = support::schema::session(&cql.contact_point()).await;
    for stmt in [
        "CREATE KEYSPACE odd WITH REPLICATION = {'class': 'SimpleStrategy', 'replication_factor': 1}",
        "CREATE TABLE odd.assessment_aggregator (user_id text, course_id text, batch_id text, \
         content_id text, attempt_id text, grand_total text, last_attempted_on timestamp, \
         total_max_score double, total_score text, \
         PRIMARY KEY ((user_id, course_id), batch_id, content_id, attempt_id))",
        "INSERT INTO odd.assessment_aggregator (user_id, course_id, batch_id, content_id, \
         attempt_id, total_score) VALUES ('u1', 'do_1', 'b1', 'do_a', 'a1', 'seven')",
    ] {
        loader.query_unpaged(stmt, &()).await.expect(stmt);
    }
    let source = CassandraSource::connect(&CassandraConfig {
        contact_points: vec![cql.contact_point()],
        courses_keyspace: "odd".into(),
        ..CassandraConfig::default()
    })
    .await
    .expect("connects");
    let e = source
        .attempts(&ContentId::new("do_1"), &[UserId::new("u1")])
        .await
        .expect_err("seven is not a number");
    assert!(!e.is_retryable(), "{e}");
    let text = e.to_string();
    assert!(text.contains("odd.assessment_aggregator"), "{text}");
    assert!(text.contains("user_id=u1, course_id=do_1"), "{text}");

    // A table that does not exist is a configuration problem, not bad data.
    let e = source
        .hierarchy(&ContentId::new("do_1"))
        .await
        .expect_err("no such keyspace");
    assert!(e.is_retryable(), "{e}");
}

/// The token-range scan of `user_enrolments` (no batch-keyed copy) needs a
/// real Cassandra or Scylla: kassandra cannot run `token()` ranges. Set
/// `EXHAUST_TEST_CASSANDRA=host:port` to run it; this is the one test that
/// depends on the environment.
#[tokio::test]
async fn the_token_range_scan_against_a_real_cassandra() {
    let Ok(contact) = std::env::var("EXHAUST_TEST_CASSANDRA") else {
        println!(
            "NOT RUN against a real Cassandra: EXHAUST_TEST_CASSANDRA is not set, so the \
             token-range scan of user_enrolments was not tested (kassandra cannot run it)"
        );
        return;
    };
    let dir = sample_dir();
    let suffix = support::redis_data::unique_prefix()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let ks = |name: &str| {
        let mut k = format!("{name}_{suffix}");
        k.truncate(48);
        k
    };
    let cassandra = CassandraConfig {
        contact_points: vec![contact.clone()],
        courses_keyspace: ks("courses"),
        hierarchy_keyspace: ks("hierarchy"),
        sunbird_keyspace: ks("sunbird"),
        enrolment_table: None,
        scan_splits: 16,
        page_size: 7,
        ..CassandraConfig::default()
    };
    let loader = support::schema::session(&contact).await;
    support::schema::create(&loader, &cassandra).await;
    support::schema::load(&loader, &cassandra, &dir).await;
    let redis = support::redis_data::RedisData::load(&dir).await;
    let search = support::fake_search::FakeSearch::start(&dir, 3).await;
    let mut config = support::test_config(&contact, &redis.prefix, &search.base_url());
    config.cassandra = cassandra.clone();
    let live = LiveSources::connect(&config).await.expect("connects");
    let cases = cases(&dir);
    let expected = run_cases(&snapshot(&dir), &cases).await;
    let got = run_cases(&live, &cases).await;
    for k in [
        &cassandra.courses_keyspace,
        &cassandra.hierarchy_keyspace,
        &cassandra.sunbird_keyspace,
    ] {
        let _ = loader
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {k}"), &())
            .await;
    }
    support::assert_same(&expected, &got, "the token-range scan");
    println!("ran against the real Cassandra at {contact}");
}

/// TLS to the stores: Redis is a real `redis-server` serving TLS with a
/// password and required client certificates; kassandra has no TLS, so
/// Cassandra's TLS is tested through a rustls front forwarding to it (the
/// driver's handshake and certificate checks are real; a real Cassandra's
/// `client_encryption_options` are not exercised here).
mod tls {
    use super::*;
    use exhaust_sources::live::tls::TlsSettings;
    use support::redis_data::RedisData;
    use support::tls::{Pki, TlsFront, TlsRedis};

    #[tokio::test]
    async fn redis_over_tls_with_a_password_passes_the_suite() {
        let server = TlsRedis::start();
        let dir = conformance_dir();
        let redis = RedisData::load_at(&server.plain_url(), &dir).await;
        let (url, tls) = (server.tls_url(), server.pki.client_settings());
        let fixture = LiveFixture::load_into(&dir, redis, |c| {
            c.redis.url = url;
            c.redis.tls = tls;
        })
        .await;
        conformance_on(&dir, fixture).await;
    }

    async fn redis_error(config: RedisConfig) -> String {
        match RedisSource::connect(&config).await {
            Ok(_) => panic!("connected with {config:?}"),
            Err(e) => {
                assert_unavailable(&e, "redis");
                e.to_string()
            }
        }
    }

    #[tokio::test]
    async fn redis_tls_refuses_a_wrong_ca_a_missing_client_certificate_or_password() {
        let server = TlsRedis::start();
        let good = RedisConfig {
            url: server.tls_url(),
            tls: server.pki.client_settings(),
            retries: 0,
            connect_timeout_ms: 2_000,
            ..RedisConfig::default()
        };
        RedisSource::connect(&good)
            .await
            .expect("the good settings connect");

        // The password is never in a message.
        let other = Pki::new(&["localhost"], false);
        let e = redis_error(RedisConfig {
            tls: TlsSettings {
                ca_file: Some(other.ca.clone()),
                ..server.pki.client_settings()
            },
            ..good.clone()
        })
        .await;
        assert!(!e.contains(&server.password), "{e}");
        let e = redis_error(RedisConfig {
            tls: TlsSettings {
                client_cert_file: None,
                client_key_file: None,
                ..server.pki.client_settings()
            },
            ..good.clone()
        })
        .await;
        assert!(!e.contains(&server.password), "{e}");
        let e = redis_error(RedisConfig {
            url: format!("rediss://localhost:{}", server.tls_port),
            ..good.clone()
        })
        .await;
        assert!(e.contains("Authentication required"), "{e}");
        // A name the certificate does not carry.
        redis_error(RedisConfig {
            url: format!(
                "rediss://:{}@127.0.0.1:{}",
                server.password, server.tls_port
            ),
            ..good.clone()
        })
        .await;
        // server_name is Cassandra's: said, not ignored.
        let e = redis_error(RedisConfig {
            tls: TlsSettings {
                server_name: Some("localhost".into()),
                ..server.pki.client_settings()
            },
            ..good.clone()
        })
        .await;
        assert!(e.contains("server_name is not a Redis setting"), "{e}");
        // TLS settings turn a redis:// URL into rediss://.
        RedisSource::connect(&RedisConfig {
            url: format!("redis://:{}@localhost:{}", server.password, server.tls_port),
            ..good.clone()
        })
        .await
        .expect("TLS settings make the URL rediss://");
    }

    #[tokio::test]
    async fn cassandra_over_tls_passes_the_suite_with_the_server_name() {
        let pki = Pki::new(&["cassandra.test"], false);
        let dir = conformance_dir();
        let fixture = LiveFixture::load(&dir).await;
        let front = TlsFront::start(&pki, fixture.cql.addr).await;
        let live = fixture
            .reconnect(|c| {
                c.cassandra.contact_points = vec![front.addr.to_string()];
                c.cassandra.tls = TlsSettings {
                    ca_file: Some(pki.ca.clone()),
                    server_name: Some("cassandra.test".into()),
                    ..TlsSettings::default()
                };
            })
            .await;
        let cases = cases(&dir);
        let expected = run_cases(&snapshot(&dir), &cases).await;
        let got = run_cases(&live, &cases).await;
        support::assert_same(&expected, &got, "Cassandra over TLS");
    }

    #[tokio::test]
    async fn cassandra_tls_checks_the_certificate() {
        let pki = Pki::new(&["cassandra.test"], false);
        let cql = support::cql_server::CqlServer::start();
        let front = TlsFront::start(&pki, cql.addr).await;
        let config = |tls: TlsSettings| CassandraConfig {
            contact_points: vec![front.addr.to_string()],
            retries: 0,
            connect_timeout_ms: 2_000,
            tls,
            ..CassandraConfig::default()
        };
        let refused = |tls: TlsSettings| async move {
            match CassandraSource::connect(&config(tls)).await {
                Ok(_) => panic!("connected"),
                Err(e) => assert_unavailable(&e, "cassandra"),
            }
        };
        // The driver checks the node's IP, which this certificate lacks.
        refused(TlsSettings {
            ca_file: Some(pki.ca.clone()),
            ..TlsSettings::default()
        })
        .await;
        // Another authority, or another name.
        let other = Pki::new(&["cassandra.test"], true);
        refused(TlsSettings {
            ca_file: Some(other.ca.clone()),
            server_name: Some("cassandra.test".into()),
            ..TlsSettings::default()
        })
        .await;
        refused(TlsSettings {
            ca_file: Some(pki.ca.clone()),
            server_name: Some("elsewhere.test".into()),
            ..TlsSettings::default()
        })
        .await;
        // Plain TCP to a TLS port fails too.
        refused(TlsSettings::default()).await;
        CassandraSource::connect(&config(TlsSettings {
            ca_file: Some(pki.ca.clone()),
            server_name: Some("cassandra.test".into()),
            ..TlsSettings::default()
        }))
        .await
        .expect("the right authority and name connect");
    }
}
