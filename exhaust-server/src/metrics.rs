//! Prometheus metrics (`GET /metrics`, text format through
//! `prometheus-client`). Counters come from the API (calls by route and
//! code), from the worker's [`RunSummary`]s (requests by outcome, batches
//! built, rows written, build time, store errors) and from health checks
//! (failures by part). Requests by status come from the store, counted when
//! the metrics are scraped.
//!
//! Every metric carries ids of routes, parts and statuses only: never a
//! request's tag, user, channel or key.

use exhaust_core::request::RequestStatus;
use exhaust_core::runner::RunSummary;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of API calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The route template (`/dataset/v1/request/read/{tag}`), never the
    /// actual path.
    pub route: String,
    /// The HTTP status code.
    pub code: u16,
}

/// The label of requests by status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// `SUBMITTED`, `PROCESSING`, `SUCCESS` or `FAILED`.
    pub status: String,
}

/// The label of requests handled by the worker.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `succeeded`, `failed`, `resubmitted`, `duplicate`, `held_elsewhere`, `released`.
    pub outcome: String,
}

/// The label of health failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartLabel {
    /// `store`, `storage` or `source`.
    pub part: String,
}

/// The server's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    api_calls: Family<CallLabels, Counter>,
    requests_by_status: Family<StatusLabel, Gauge>,
    runs: Counter,
    requests_processed: Family<OutcomeLabel, Counter>,
    batches_built: Counter,
    rows_written: Counter,
    bytes_written: Counter,
    build_seconds: Histogram,
    store_errors: Counter,
    source_errors: Counter,
    health_failures: Family<PartLabel, Counter>,
    call_seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    process: ProcessMetrics,
}

/// The label of call latencies.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The route template, never the actual path.
    pub route: String,
}

/// The labels of `exhaust_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The package version.
    pub version: String,
    /// The commit.
    pub git_hash: String,
    /// The formats and cloud stores compiled in.
    pub features: String,
}

/// The process's own figures, read from `/proc` when metrics are scraped.
#[derive(Debug, Default)]
struct ProcessMetrics {
    resident_bytes: Gauge,
    virtual_bytes: Gauge,
    open_fds: Gauge,
    threads: Gauge,
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    start_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

fn call_histogram() -> Histogram {
    // 1 ms to about 65 s: an API call, a download's start, a health check.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("exhaust");
        let api_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "api_calls",
            "HTTP calls by route template and status code",
            api_calls.clone(),
        );
        let requests_by_status = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "requests",
            "Requests in the store by status (counted on scrape)",
            requests_by_status.clone(),
        );
        let runs = Counter::default();
        registry.register("worker_runs", "Runs of the in-process worker", runs.clone());
        let requests_processed = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "requests_processed",
            "Requests handled by the in-process worker, by outcome",
            requests_processed.clone(),
        );
        let batches_built = Counter::default();
        registry.register(
            "batches_built",
            "Batches built and stored",
            batches_built.clone(),
        );
        let rows_written = Counter::default();
        registry.register("rows_written", "Report rows written", rows_written.clone());
        let bytes_written = Counter::default();
        registry.register(
            "csv_bytes_written",
            "CSV bytes written",
            bytes_written.clone(),
        );
        let build_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "batch_build_seconds",
            "Time to build, package and store one batch",
            build_seconds.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Request store failures seen by the API and the worker",
            store_errors.clone(),
        );
        let source_errors = Counter::default();
        registry.register(
            "source_errors",
            "Source failures met by the worker (report data stores, preference service), one per batch or request they stopped",
            source_errors.clone(),
        );
        let health_failures = Family::<PartLabel, Counter>::default();
        registry.register(
            "health_failures",
            "Health checks that found a part down (store, storage, source)",
            health_failures.clone(),
        );
        let call_seconds: Family<RouteLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(call_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP call, by route template (a download's bytes stream after)",
            call_seconds.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        let info = crate::build_info();
        build
            .get_or_create(&BuildLabels {
                version: info.version.into(),
                git_hash: info.git_hash.into(),
                features: info.features,
            })
            .set(1);
        registry.register(
            "build_info",
            "The build: version, commit, formats and stores compiled in (always 1)",
            build,
        );
        let process = ProcessMetrics::default();
        for (name, help, gauge) in [
            (
                "process_resident_memory_bytes",
                "Resident memory",
                &process.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory",
                &process.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                &process.open_fds,
            ),
            ("process_threads", "Threads", &process.threads),
        ] {
            // `exhaust_process_*`: Prometheus' process collectors' names,
            // under this registry's prefix.
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time",
            process.cpu_seconds.clone(),
        );
        registry.register(
            "process_start_time_seconds",
            "When the process started, seconds since the epoch",
            process.start_seconds.clone(),
        );
        Self {
            registry,
            call_seconds,
            process,
            api_calls,
            requests_by_status,
            runs,
            requests_processed,
            batches_built,
            rows_written,
            bytes_written,
            build_seconds,
            store_errors,
            source_errors,
            health_failures,
        }
    }

    /// Counts an API call.
    pub fn api_call(&self, route: &str, code: u16) {
        self.api_calls
            .get_or_create(&CallLabels {
                route: route.into(),
                code,
            })
            .inc();
    }

    /// Records how long a call to `route` took.
    pub fn call_duration(&self, route: &str, seconds: f64) {
        self.call_seconds
            .get_or_create(&RouteLabel {
                route: route.into(),
            })
            .observe(seconds);
    }

    /// Reads the process's figures from `/proc` (Linux; elsewhere they stay
    /// 0): called before each scrape.
    pub fn refresh_process(&self) {
        let p = &self.process;
        let page = 4096_i64;
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let mut fields = statm
                .split_whitespace()
                .map(|f| f.parse::<i64>().unwrap_or(0));
            p.virtual_bytes.set(fields.next().unwrap_or(0) * page);
            p.resident_bytes.set(fields.next().unwrap_or(0) * page);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            p.open_fds
                .set(i64::try_from(fds.count()).unwrap_or(i64::MAX));
        }
        if let Some(stat) = read_stat() {
            p.threads.set(stat.threads);
            p.cpu_seconds.set(stat.cpu_seconds);
            p.start_seconds.set(stat.start_seconds);
        }
    }

    /// Counts a store failure.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// Counts a part found down by a health check.
    pub fn health_failure(&self, part: &str) {
        self.health_failures
            .get_or_create(&PartLabel { part: part.into() })
            .inc();
    }

    /// Sets the number of requests in one status.
    pub fn set_status_count(&self, status: RequestStatus, count: u64) {
        self.requests_by_status
            .get_or_create(&StatusLabel {
                status: status.as_str().into(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Adds what a worker run did.
    pub fn record_run(&self, s: &RunSummary) {
        self.runs.inc();
        for (outcome, n) in [
            ("succeeded", s.succeeded),
            ("failed", s.failed),
            ("resubmitted", s.resubmitted),
            ("duplicate", s.duplicates),
            ("held_elsewhere", s.skipped),
            ("released", s.released),
        ] {
            if n > 0 {
                self.requests_processed
                    .get_or_create(&OutcomeLabel {
                        outcome: outcome.into(),
                    })
                    .inc_by(n as u64);
            }
        }
        for b in &s.batches {
            self.batches_built.inc();
            self.rows_written.inc_by(b.rows as u64);
            self.bytes_written.inc_by(b.csv_bytes);
            self.build_seconds.observe(b.elapsed.as_secs_f64());
        }
        self.store_errors.inc_by(s.store_errors.len() as u64);
        self.source_errors.inc_by(s.source_errors as u64);
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What `/proc/self/stat` tells: threads, CPU time, start time.
struct Stat {
    threads: i64,
    cpu_seconds: f64,
    start_seconds: f64,
}

/// Reads `/proc/self/stat` (fields after the command's closing parenthesis:
/// 14 utime, 15 stime, 20 num_threads, 22 starttime, in clock ticks of 100
/// per second, as Linux reports them to user space) and the boot time from
/// `/proc/stat`.
fn read_stat() -> Option<Stat> {
    const TICKS: f64 = 100.0;
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    // `rest` starts at field 3 (state).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    Some(Stat {
        threads: field(20)? as i64,
        cpu_seconds: (field(14)? + field(15)?) / TICKS,
        start_seconds: boot + field(22)? / TICKS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use exhaust_core::runner::BuiltBatch;
    use std::time::Duration;

    #[test]
    fn latencies_build_and_process_are_reported() {
        let m = Metrics::new();
        m.call_duration("/health", 0.003);
        m.refresh_process();
        let text = m.encode();
        assert!(
            text.contains("exhaust_http_request_duration_seconds_count{route=\"/health\"} 1"),
            "{text}"
        );
        let info = crate::build_info();
        assert!(
            text.contains(&format!(
                "exhaust_build_info{{version=\"{}\",git_hash=\"{}\",features=\"{}\"}} 1",
                info.version, info.git_hash, info.features
            )),
            "{text}"
        );
        assert!(!info.git_hash.is_empty() && info.features.starts_with("csv"));
        let resident: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("exhaust_process_resident_memory_bytes "))
            .and_then(|v| v.parse().ok())
            .expect("resident memory");
        assert!(resident > 1 << 20, "{resident}");
        assert!(
            text.contains("exhaust_process_start_time_seconds "),
            "{text}"
        );
    }

    #[test]
    fn a_run_summary_moves_the_counters() {
        let m = Metrics::new();
        m.record_run(&RunSummary {
            total: 2,
            succeeded: 1,
            failed: 1,
            batches: vec![BuiltBatch {
                request_id: "R".into(),
                batch_id: "b".into(),
                rows: 4,
                csv_bytes: 100,
                key: "k".into(),
                zip_bytes: 50,
                reads: vec![],
                elapsed: Duration::from_millis(300),
            }],
            store_errors: vec!["x".into()],
            source_errors: 2,
            ..RunSummary::default()
        });
        m.api_call("/health", 200);
        m.set_status_count(RequestStatus::Success, 3);
        let text = m.encode();
        for line in [
            "exhaust_rows_written_total 4",
            "exhaust_batches_built_total 1",
            "exhaust_store_errors_total 1",
            "exhaust_source_errors_total 2",
            "exhaust_requests_processed_total{outcome=\"succeeded\"} 1",
            "exhaust_requests{status=\"SUCCESS\"} 3",
            "exhaust_api_calls_total{route=\"/health\",code=\"200\"} 1",
            "exhaust_batch_build_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
