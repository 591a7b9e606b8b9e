//! What one batch costs through the live adapters (BENCHMARKS.md, "The live
//! path"): a generated batch of N enrolments is loaded into the in-process
//! CQL server (kassandra, as the tests run it) and the local Redis (under a
//! fresh key prefix, deleted at the end), the search API is faked, and the
//! report is built through the live adapters once per configuration asked
//! for, printing per run: wall time, queries and round trips, rows and bytes
//! per store, CPU of the client and of the CQL server's thread, and memory.
//!
//! ```sh
//! cargo run --release -p exhaust-sources --example live_bench -- 100000
//! cargo run --release -p exhaust-sources --example live_bench -- 10000 \
//!     --repeat 2 --run base: --run c128:concurrency=128
//! ```
//!
//! Arguments: `N` (enrolments, default 100,000); `--users U` (the user cache,
//! default 5×N, as `benches/e2e.sh`; only the enrolled users are loaded into
//! Redis, the live path reads no other); `--snapshot DIR` (default the
//! snapshot `benches/e2e.sh` uses, `$EXHAUST_BENCH_DIR` or
//! `~/.cache/exhaust-bench`, `nN-uU`, generated there when missing);
//! `--run NAME:KEY=VALUE,...` (a configuration; default one, `base:`, the
//! adapters' defaults), keys: `concurrency`, `page` (Cassandra),
//! `redis_chunk` (users per Redis pipeline), `chunk` (users per report chunk),
//! `layout` (`seed`, `lern`); `--repeat R` (every run R times, interleaved).
//!
//! Not a timed test: nothing here asserts a time. It does assert that every
//! run's CSV is byte-identical to the snapshot reader's report of the same
//! folder (the exit status is non-zero otherwise).

#[allow(dead_code)]
use exhaust_sources::testing::live as support;

use anyhow::{Context, bail};
use exhaust_core::BatchId;
use exhaust_core::layout::Layout;
use exhaust_core::report::{BatchSummary, ReportOptions, build_report};
use exhaust_core::source::{ReadCounter, ReadStats, ReportSource, reads_between};
use exhaust_sources::generate::{GenParams, generate};
use exhaust_sources::{LiveConfig, LiveSources, Snapshot, SnapshotOptions};
use exhaust_writer::CsvSink;
use md5::{Digest, Md5};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::cql_server::CqlServer;
use support::fake_search::FakeSearch;
use support::redis_data::{self, RedisData};
use support::schema;

/// A configuration to run.
#[derive(Debug, Clone)]
struct Run {
    name: String,
    settings: Vec<(String, String)>,
}

struct Args {
    enrolments: usize,
    users: usize,
    snapshot: Option<PathBuf>,
    runs: Vec<Run>,
    repeat: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        enrolments: 100_000,
        users: 0,
        snapshot: None,
        runs: Vec::new(),
        repeat: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().with_context(|| format!("{a} needs {what}"));
        match a.as_str() {
            "--users" => args.users = value("a number")?.parse()?,
            "--snapshot" => args.snapshot = Some(PathBuf::from(value("a folder")?)),
            "--repeat" => args.repeat = value("a number")?.parse()?,
            "--run" => {
                let spec = value("NAME:KEY=VALUE,...")?;
                let (name, rest) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
                let settings = rest
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|kv| {
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .with_context(|| format!("{kv} is not KEY=VALUE"))
                    })
                    .collect::<anyhow::Result<_>>()?;
                args.runs.push(Run {
                    name: name.to_owned(),
                    settings,
                });
            }
            n => args.enrolments = n.parse().with_context(|| format!("unknown argument {n}"))?,
        }
    }
    if args.users == 0 {
        args.users = args.enrolments * 5;
    }
    if args.runs.is_empty() {
        args.runs.push(Run {
            name: "base".into(),
            settings: Vec::new(),
        });
    }
    Ok(args)
}

fn apply(run: &Run, cfg: &mut LiveConfig, opts: &mut ReportOptions) -> anyhow::Result<()> {
    for (k, v) in &run.settings {
        let number = || v.parse::<usize>().with_context(|| format!("{k}={v}"));
        match k.as_str() {
            "concurrency" => cfg.cassandra.concurrency = number()?,
            "page" => cfg.cassandra.page_size = i32::try_from(number()?)?,
            "redis_chunk" => cfg.redis.chunk_size = number()?,
            "chunk" => opts.chunk_size = number()?,
            "layout" => {
                opts.layout = match v.as_str() {
                    "seed" => Layout::Seed,
                    "lern" => Layout::Lern,
                    _ => bail!("layout is seed or lern"),
                }
            }
            _ => bail!("unknown setting {k}"),
        }
    }
    Ok(())
}

/// A writer that only hashes: the report's digest without keeping it.
struct Hashing(Md5);

impl std::io::Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Builds the report into a digest: the summary, the CSV's MD5 and size.
async fn report<S: ReportSource>(
    source: &S,
    batch: &BatchId,
    opts: &ReportOptions,
) -> anyhow::Result<(BatchSummary, String, u64)> {
    let mut sink = CsvSink::new(Hashing(Md5::new()));
    let summary = build_report(source, batch, None, opts, &mut sink).await?;
    let bytes = sink.bytes_written();
    let (hashing, _) = sink.finish()?;
    let digest: String = hashing
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((summary, digest, bytes))
}

/// `VmRSS` and `VmHWM` of this process, in MB.
fn memory_mb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets `VmHWM` to the current resident size (Linux 4.0 and later), so
/// the next reading is the peak of what follows.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time of this process's threads: (the CQL server's, everyone else's).
fn cpu() -> (Duration, Duration) {
    // /proc's clock ticks are USER_HZ, 100 on Linux.
    let ticks = |t: u64| Duration::from_millis(t * 10);
    let (mut server, mut client) = (0, 0);
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
        let Ok(task) = task else { continue };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        let used: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        if comm.starts_with("kassandra") {
            server += used;
        } else {
            client += used;
        }
    }
    (ticks(server), ticks(client))
}

/// Redis's `INFO commandstats` calls of one command, over every client.
async fn redis_calls(con: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .unwrap_or_default();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// The folder of the batch: the benchmark scripts' snapshot of these sizes,
/// generated when missing.
fn snapshot_dir(args: &Args) -> anyhow::Result<PathBuf> {
    let dir = match &args.snapshot {
        Some(d) => d.clone(),
        None => {
            let root = std::env::var_os("EXHAUST_BENCH_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/exhaust-bench"))
                })
                .context("no EXHAUST_BENCH_DIR or HOME")?;
            root.join(format!("n{}-u{}", args.enrolments, args.users))
        }
    };
    if !dir.join(".complete").exists() {
        let started = Instant::now();
        // benches/snapshot.sh's parameters.
        let params = GenParams {
            batches: 1,
            enrolments_per_batch: args.enrolments,
            users: args.users,
            units: 10,
            leaves_per_unit: 8,
            assessments: 6,
            attempts: 3,
            seed: 1,
        };
        generate(&dir, &params)?;
        std::fs::write(dir.join(".complete"), "")?;
        println!(
            "generated {} in {} s",
            dir.display(),
            secs(started.elapsed())
        );
    }
    Ok(dir)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = snapshot_dir(&args)?;
    let batch = schema::snapshot_lines(&dir, "course_batch")
        .find_map(|r| r.get("batchid").and_then(|b| b.as_str()).map(BatchId::new))
        .context("the snapshot has a batch")?;
    let enrolled: HashSet<String> = schema::snapshot_lines(&dir, "user_enrolments")
        .filter(|r| r.get("batchid").and_then(|b| b.as_str()) == Some(batch.as_str()))
        .filter_map(|r| r.get("userid").and_then(|u| u.as_str()).map(str::to_owned))
        .collect();
    println!(
        "batch {batch}: {} enrolled users, snapshot {}",
        enrolled.len(),
        dir.display()
    );

    // The reference: the snapshot reader's report of the same folder.
    let reference_opts = ReportOptions::default();
    let started = Instant::now();
    let snapshot = Snapshot::open(&dir, SnapshotOptions::default())?;
    let (want_summary, want_digest, want_bytes) =
        report(&snapshot, &batch, &reference_opts).await?;
    drop(snapshot);
    println!(
        "snapshot reader: {} rows, {want_bytes} bytes, md5 {want_digest}, {} s",
        want_summary.rows,
        secs(started.elapsed())
    );

    // Load the stores.
    let cql = CqlServer::start();
    let search = FakeSearch::start(&dir, 10_000).await;
    let loader = schema::session(&cql.contact_point()).await;
    let started = Instant::now();
    let (inserted, cassandra_load, redis, redis_load) = {
        let dummy = support::wired_config(&cql.contact_point(), "", &search.base_url());
        schema::create(&loader, &dummy.cassandra).await;
        let cassandra = async {
            let t = Instant::now();
            // The token-range scan's table is not read with a batch-keyed copy.
            let n = schema::load_tables(&loader, &dummy.cassandra, &dir, 96, |t| {
                t != "user_enrolments"
            })
            .await;
            (n, t.elapsed())
        };
        let redis = async {
            let t = Instant::now();
            let data = RedisData::load_bulk(&dir, 1_000, |key| {
                key.strip_prefix("user:")
                    .is_some_and(|id| enrolled.contains(id))
            })
            .await;
            (data, t.elapsed())
        };
        let ((n, c), (r, rt)) = tokio::join!(cassandra, redis);
        (n, c, r, rt)
    };
    let (rss, _) = memory_mb();
    println!(
        "loaded {inserted} CQL rows in {} s and {} Redis hashes in {} s \
         ({} s wall, both at once); resident {rss} MB",
        secs(cassandra_load),
        redis.len(),
        secs(redis_load),
        secs(started.elapsed()),
    );

    let mut info = redis::Client::open(redis_data::URL)?
        .get_multiplexed_async_connection()
        .await?;
    println!(
        "\n| run | wall (s) | CPU client (s) | CPU CQL server (s) | RSS growth / peak (MB) | \
         CQL requests | Redis HGETALL (cmdstats) | per store: queries / round trips / rows / bytes |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    let mut failed = false;
    for _ in 0..args.repeat.max(1) {
        for run in &args.runs {
            let mut cfg =
                support::wired_config(&cql.contact_point(), &redis.prefix, &search.base_url());
            let mut opts = ReportOptions::default();
            apply(run, &mut cfg, &mut opts)?;
            let live = LiveSources::connect(&cfg).await?;
            let before = live.read_counts();
            let redis_trips = live.redis.round_trips();
            let requests = cql.requests();
            let hgetall = redis_calls(&mut info, "hgetall").await;
            let (rss_before, _) = memory_mb();
            reset_peak();
            let (server_cpu, client_cpu) = cpu();
            let started = Instant::now();
            let (summary, digest, _) = report(&live, &batch, &opts).await?;
            let wall = started.elapsed();
            let (server_after, client_after) = cpu();
            let (_, peak) = memory_mb();
            let reads = reads_between(&before, &live.read_counts());
            let per_store: Vec<String> = reads
                .iter()
                .map(|(name, s): &(&str, ReadStats)| {
                    let trips = if *name == "redis" {
                        live.redis.round_trips() - redis_trips
                    } else {
                        s.queries
                    };
                    format!("{name} {} / {trips} / {} / {}", s.queries, s.rows, s.bytes)
                })
                .collect();
            let same = digest == want_digest && summary.rows == want_summary.rows;
            failed |= !same;
            println!(
                "| {}{} | {} | {} | {} | {} / {peak} | {} | {} | {} |",
                run.name,
                if same { "" } else { " (OUTPUT DIFFERS)" },
                secs(wall),
                secs(client_after.saturating_sub(client_cpu)),
                secs(server_after.saturating_sub(server_cpu)),
                peak.saturating_sub(rss_before),
                cql.requests() - requests,
                redis_calls(&mut info, "hgetall").await - hgetall,
                per_store.join("; "),
            );
        }
    }
    if failed {
        bail!("a live report differs from the snapshot reader's");
    }
    println!("every live report is byte-identical to the snapshot reader's ({want_digest})");
    Ok(())
}
