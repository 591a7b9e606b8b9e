//! `exhaust report`: build given batches from a snapshot into CSV (or
//! Parquet, Arrow IPC, Excel) files.

use crate::args::ReportArgs;
use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use exhaust_core::layout::{Layout, parse_column_keys};
use exhaust_core::report::{BatchSummary, ReportOptions, RowSink, build_rows, plan_batch};
use exhaust_core::request::{
    RequestData, RequestError, ResolveError, report_file_name_as, resolve_batches,
};
use exhaust_core::source::{ReadCounter, reads_between};
use exhaust_core::summary::{SummarySink, summary_text};
use exhaust_core::time::{ReportTz, file_date_stamp};
use exhaust_core::typed::{OutputFormat, ReportSchema, Value};
use exhaust_core::values::AttemptChoice;
use exhaust_core::{BatchId, OrgId};
use exhaust_sources::{Snapshot, SnapshotOptions};
use exhaust_writer::{AtomicFile, ReportSink, check_format};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use exhaust_server::app::AnySource;
use exhaust_server::app::Settings;

/// Validated options of a report run.
struct Plan {
    /// An explicit snapshot folder; otherwise the configured source.
    snapshot: Option<PathBuf>,
    /// Its options (`--no-digest`).
    snapshot_options: SnapshotOptions,
    config: Option<PathBuf>,
    batches: Vec<BatchId>,
    search_filter: Option<serde_json::Value>,
    opts: ReportOptions,
    file_tz: ReportTz,
    requested_org: Option<OrgId>,
    out: PathBuf,
    format: OutputFormat,
    /// Print each batch's summary (`--summary`).
    summary: bool,
}

fn validate(args: ReportArgs) -> anyhow::Result<Plan> {
    let layout = Layout::from(args.layout);
    let columns = args
        .columns
        .as_deref()
        .map(parse_column_keys)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let timezone: ReportTz = args.timezone.parse()?;
    let file_tz: ReportTz = args.file_timezone.parse()?;
    let attempt_choice = AttemptChoice::from(args.attempt);
    if args.batch_ids.is_empty() && args.search_filter.is_none() {
        bail!("name at least one batch with --batch-id, or give --search-filter");
    }
    let search_filter = args
        .search_filter
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .context("--search-filter is not JSON")?;
    if args.chunk_size == 0 {
        bail!("--chunk-size must be at least 1");
    }
    let format = OutputFormat::from(args.format);
    check_format(format)?;
    Ok(Plan {
        snapshot: args.snapshot,
        snapshot_options: SnapshotOptions {
            digest: !args.no_digest,
            // Several batches read one snapshot several times: the
            // digests the first writes serve the others.
            digest_on_first_read: args.digest_now
                || args.batch_ids.len() > 1
                || search_filter.is_some(),
            ..SnapshotOptions::default()
        },
        config: args.config,
        batches: args.batch_ids.into_iter().map(BatchId::new).collect(),
        search_filter,
        opts: ReportOptions {
            layout,
            columns,
            timezone,
            attempt_choice,
            chunk_size: args.chunk_size,
            ..ReportOptions::default()
        },
        file_tz,
        requested_org: args.requested_org.map(OrgId::new),
        out: args.out,
        format,
        summary: args.summary,
    })
}

/// Runs `exhaust report`; `Ok(false)` when some batch failed.
pub async fn run(args: ReportArgs, now: DateTime<Utc>) -> anyhow::Result<bool> {
    let plan = validate(args)?;
    let snapshot = match &plan.snapshot {
        Some(dir) => {
            if !dir.is_dir() {
                bail!(
                    "snapshot folder {} not found: pass --snapshot DIR (or set EXHAUST_SNAPSHOT)",
                    dir.display()
                );
            }
            AnySource::Snapshot(Snapshot::open(dir, plan.snapshot_options.clone())?)
        }
        // The configured source: the live stores when [source.live] is set,
        // else the configured (or bundled sample) snapshot.
        None => {
            Settings::load(plan.config.as_deref())?
                .open_source()
                .await?
        }
    };
    let mut batches = plan.batches.clone();
    if let Some(filter) = &plan.search_filter {
        batches.extend(batches_from_search(&snapshot, filter).await?);
    }
    // The same batch named twice is built once.
    let mut seen = std::collections::HashSet::new();
    batches.retain(|b| seen.insert(b.clone()));

    let dir = plan.out.join("progress-exhaust");
    let stamp = file_date_stamp(now, plan.file_tz);
    let mut failed = 0;
    for batch in &batches {
        let started = Instant::now();
        let before = snapshot.read_counts();
        match build_one(&snapshot, &plan, batch, &dir, &stamp, now).await {
            Ok((summary, glance, path, bytes)) => {
                print_summary(&summary, &path, bytes, started);
                if let Some(glance) = glance {
                    println!();
                    print!("{}", summary_text(&glance));
                }
                // What each live store read for this batch (none for a snapshot).
                for (store, r) in reads_between(&before, &snapshot.read_counts()) {
                    println!(
                        "  {store}: {} queries, {} rows, {} bytes",
                        r.queries, r.rows, r.bytes
                    );
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: batch {batch}: {e:#}");
            }
        }
    }
    println!(
        "{} of {} batches built, {} failed",
        batches.len() - failed,
        batches.len(),
        failed
    );
    Ok(failed == 0)
}

/// The batches a search filter matches, by the request flow's rule
/// (`request::resolve_batches`), so that `exhaust report` and a request with
/// the same `searchFilter` build the same batches: sorted by id, without
/// repeats, without the batches of retired collections.
async fn batches_from_search(
    source: &AnySource,
    filter: &serde_json::Value,
) -> anyhow::Result<Vec<BatchId>> {
    // A standalone run is the operator's own: no cap on what a search
    // matches (the request flow's is `[job] search_max_batches`).
    let resolved = resolve_batches(source, &RequestData::Search(filter.clone()), usize::MAX)
        .await
        .map_err(|e| match e {
            ResolveError::Request(RequestError::NoDataFound) => {
                anyhow!("the search filter matched no batch")
            }
            ResolveError::Request(RequestError::RetiredCollection) => {
                anyhow!("the search filter matched only batches of retired collections")
            }
            other => anyhow!("the search filter: {other}"),
        })?;
    Ok(resolved.into_iter().map(|r| r.batch.batch_id).collect())
}

async fn build_one(
    snapshot: &AnySource,
    plan: &Plan,
    batch: &BatchId,
    dir: &Path,
    stamp: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<(
    BatchSummary,
    Option<exhaust_core::summary::BatchSummary>,
    PathBuf,
    u64,
)> {
    // A batch id goes into a file name, so it must not be able to leave the
    // output folder.
    let name = report_file_name_as(batch, stamp, plan.format).ok_or_else(|| {
        anyhow!(
            "batch id {:?} cannot be used in a file name",
            batch.as_str()
        )
    })?;
    let batch_plan = plan_batch(snapshot, batch, plan.requested_org.as_ref(), &plan.opts).await?;
    let path = dir.join(name);
    let file =
        AtomicFile::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let inner = ReportSink::new(plan.format, BufWriter::with_capacity(1 << 20, file), now)?;
    // The summary is counted from the rows as they are written.
    let inner = if plan.summary {
        SummarySink::new(inner)
    } else {
        SummarySink::disabled(inner)
    };
    let mut sink = ProgressSink {
        inner,
        bar: progress_bar(batch),
    };
    // On any error the temporary file is dropped, so no partial report is
    // left under the final name.
    let summary = build_rows(snapshot, &batch_plan, &plan.opts, &mut sink).await?;
    sink.bar.finish_and_clear();
    let (inner, glance) = sink.inner.into_parts();
    let (writer, stats) = inner.finish()?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    let path = file.commit()?;
    Ok((summary, glance, path, stats.bytes))
}

fn progress_bar(batch: &BatchId) -> ProgressBar {
    let bar = ProgressBar::new(0);
    // A bar only on a terminal: indicatif hides itself otherwise.
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("batch {batch}"));
    bar
}

/// Counts rows into the progress bar on their way to the CSV.
struct ProgressSink<K> {
    inner: K,
    bar: ProgressBar,
}

impl<K: RowSink> RowSink for ProgressSink<K> {
    type Error = K::Error;
    fn begin(&mut self, header: &[String], expected_rows: usize) -> Result<(), Self::Error> {
        self.bar.set_length(expected_rows as u64);
        self.inner.begin(header, expected_rows)
    }
    fn row(&mut self, fields: &[String]) -> Result<(), Self::Error> {
        self.bar.inc(1);
        self.inner.row(fields)
    }
    // The typed calls go straight through, so the inner sink sees the
    // schema and typed rows when it wants them.
    fn begin_typed(
        &mut self,
        schema: &ReportSchema,
        expected_rows: usize,
    ) -> Result<(), Self::Error> {
        self.bar.set_length(expected_rows as u64);
        self.inner.begin_typed(schema, expected_rows)
    }
    fn wants_typed_rows(&self) -> bool {
        self.inner.wants_typed_rows()
    }
    fn typed_row(&mut self, values: &[Value]) -> Result<(), Self::Error> {
        self.bar.inc(1);
        self.inner.typed_row(values)
    }
}

fn print_summary(s: &BatchSummary, path: &Path, bytes: u64, started: Instant) {
    println!(
        "batch {}: {} rows, {} bytes, {:.2}s -> {}",
        s.batch_id,
        s.rows,
        bytes,
        started.elapsed().as_secs_f64(),
        path.display()
    );
    let mut notes = Vec::new();
    if s.missing_users > 0 {
        notes.push(format!(
            "{} users missing from the user cache (rows kept, profile blank)",
            s.missing_users
        ));
    }
    if s.malformed_users > 0 {
        let ids: Vec<&str> = s
            .malformed_examples
            .iter()
            .map(|(u, _)| u.as_str())
            .collect();
        notes.push(format!(
            "{} user cache entries of the wrong shape (rows kept, profile blank; e.g. {})",
            s.malformed_users,
            ids.join(", ")
        ));
    }
    if s.filtered_by_org > 0 {
        notes.push(format!(
            "{} users of other orgs left out",
            s.filtered_by_org
        ));
    }
    if s.skipped_inactive + s.skipped_without_date > 0 {
        notes.push(format!(
            "{} inactive enrolments and {} without an enrolment date skipped",
            s.skipped_inactive, s.skipped_without_date
        ));
    }
    if s.duplicate_enrolments > 0 {
        notes.push(format!(
            "{} duplicate enrolment rows ignored",
            s.duplicate_enrolments
        ));
    }
    for n in notes {
        println!("  {n}");
    }
}
