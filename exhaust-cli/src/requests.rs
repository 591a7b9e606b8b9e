//! `exhaust submit`, `exhaust run` and `exhaust status`: the on-demand
//! request flow of SPEC section 6 from the command line. The rules are the
//! core's and the runner's; this module reads arguments and prints.

use crate::args::{RunArgs, StatusArgs, SubmitArgs};
use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use exhaust_core::request::{JobRequest, NewRequest, RequestStatus};
use exhaust_core::store::{RequestStore, Submission};
use exhaust_server::app::Settings;
use exhaust_writer::Shutdown;
use std::ops::ControlFlow;
use std::time::Duration;

/// `exhaust submit`: queues a request; prints its id.
pub async fn submit(args: SubmitArgs, now: DateTime<Utc>) -> anyhow::Result<bool> {
    let settings = Settings::load(args.config.config.as_deref())?;
    let config = if let Some(id) = &args.batch_id {
        serde_json::json!({ "batchId": id })
    } else if !args.batch_filter.is_empty() {
        serde_json::json!({ "batchFilter": args.batch_filter })
    } else if let Some(f) = &args.search_filter {
        let filter: serde_json::Value =
            serde_json::from_str(f).context("--search-filter is not JSON")?;
        serde_json::json!({ "searchFilter": filter })
    } else {
        bail!("name what to report on: --batch-id, --batch-filter or --search-filter");
    };
    let encryption_key = match &args.encryption_key_env {
        None => None,
        Some(var) => Some(std::env::var(var).map_err(|_| {
            anyhow!("environment variable {var} (--encryption-key-env) is not set")
        })?),
    };
    let tag = args
        .tag
        .clone()
        .or_else(|| args.batch_id.clone())
        .unwrap_or_else(|| "progress-exhaust".to_string());
    let request = NewRequest {
        tag,
        dataset: args.dataset,
        requested_by: args.requested_by,
        channel: args.channel,
        dataset_config: config,
        encryption_key,
    }
    .into_job_request(now)
    .map_err(|e| anyhow!(e))?;
    let store = settings.open_store().await?;
    let outcome = store.submit(&request).await.map_err(|e| anyhow!(e))?;
    let (what, row) = match &outcome {
        Submission::Created(r) => ("submitted", r),
        Submission::Resubmitted(r) => ("resubmitted (its attempts start again)", r),
        Submission::Existing(r) => ("already queued; returned as it is", r),
    };
    println!("request {} {what}", printable(&row.request_id));
    println!("  tag {}  status {}", printable(&row.tag), row.status);
    Ok(true)
}

/// `exhaust run`: processes pending requests once, or with `--watch` until
/// `stop` is triggered (SIGINT, SIGTERM: see [`Runner::watch`]).
/// `Ok(false)` when some request failed; a stop is not a failure.
///
/// [`Runner::watch`]: exhaust_core::runner::Runner::watch
pub async fn run(args: RunArgs, stop: Shutdown) -> anyhow::Result<bool> {
    let mut settings = Settings::load(args.config.config.as_deref())?;
    if args.batch_number.is_some() {
        settings.job.batch_number = args.batch_number;
    }
    stop.set_grace(
        args.grace_seconds
            .map_or_else(|| settings.job.grace(), Duration::from_secs),
    );
    // A stop while opening the stores and the source ends here: nothing is
    // claimed yet.
    let open = async { settings.open_runner().await };
    let runner = tokio::select! {
        runner = open => runner?,
        () = stop.triggered() => return Ok(stopped(&stop, 0)),
    };
    if !args.watch {
        let summary = runner
            .run_once_with(&stop)
            .await
            .map_err(|e| anyhow!(e))
            .context("listing pending requests")?;
        println!("{summary}");
        let ok = summary.failed == 0 && summary.store_errors.is_empty();
        return Ok(stopped(&stop, summary.released) && ok);
    }
    let interval = Duration::from_secs(args.interval.unwrap_or(settings.job.poll_seconds).max(1));
    let mut all_ok = true;
    let mut released = 0;
    let mut listing = None;
    runner
        .watch(interval, &stop, |run| match run {
            Ok(summary) => {
                if summary.total > 0 {
                    println!("{summary}");
                }
                all_ok &= summary.failed == 0 && summary.store_errors.is_empty();
                released += summary.released;
                ControlFlow::Continue(())
            }
            Err(e) => {
                listing = Some(e);
                ControlFlow::Break(())
            }
        })
        .await;
    if let Some(e) = listing {
        return Err(anyhow!(e)).context("listing pending requests");
    }
    Ok(stopped(&stop, released) && all_ok)
}

/// Says why a run stopped early, if it did; always `true` (a stop is not a
/// failure).
fn stopped(stop: &Shutdown, released: usize) -> bool {
    if let Some(reason) = stop.reason() {
        eprintln!("stopped ({reason}): {released} unfinished request(s) released for a later run");
    }
    true
}

/// `exhaust status`: the requests and their outcome; never the key.
pub async fn status(args: StatusArgs) -> anyhow::Result<bool> {
    let settings = Settings::load(args.config.config.as_deref())?;
    let store = settings.open_store().await?;
    let status = args.status.map(RequestStatus::from);
    let rows = match &args.request_id {
        Some(id) => {
            let rows = store.by_id(id).await.map_err(|e| anyhow!(e))?;
            if rows.is_empty() {
                bail!("no request {} in {}", printable(id), store.kind());
            }
            rows
        }
        None => store
            .recent(status, args.limit)
            .await
            .map_err(|e| anyhow!(e))?,
    };
    for r in &rows {
        if args.json {
            println!("{}", public_json(r));
        } else {
            print_request(r);
        }
    }
    if rows.is_empty() && !args.json {
        println!("no requests");
    }
    Ok(true)
}

/// A request as JSON, without its encryption key.
fn public_json(r: &JobRequest) -> serde_json::Value {
    serde_json::json!({
        "requestId": r.request_id,
        "tag": r.tag,
        "dataset": r.job_id,
        "status": r.status.as_str(),
        "requestedBy": r.requested_by,
        "requestedChannel": r.requested_channel,
        "datasetConfig": r.request_data,
        "attempts": r.iteration,
        "submitted": r.dt_job_submitted.map(|t| t.to_rfc3339()),
        "completed": r.dt_job_completed.map(|t| t.to_rfc3339()),
        "executionTime": r.execution_time,
        "downloadUrls": r.download_urls,
        "statusMessage": r.err_message.clone().unwrap_or_default(),
        "processedBatches": r.processed().ok(),
    })
}

/// `text` with its control characters (C0, DEL, C1) written as Rust
/// escapes (`\u{1b}`, `\n`), so that a stored field (a tag or a dataset
/// configuration sent to the API) cannot move the cursor, clear the screen
/// or retitle the terminal of whoever runs `exhaust status`. Other text,
/// backslashes included, is printed as it is.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn print_request(r: &JobRequest) {
    println!(
        "{}  {}  attempts {}  tag {}",
        printable(&r.request_id),
        r.status,
        r.iteration,
        printable(&r.tag)
    );
    // JSON text escapes C0 controls but not DEL or C1 ones.
    println!("  asks for {}", printable(&r.request_data.to_string()));
    if let Some(t) = r.dt_job_submitted {
        print!("  submitted {}", t.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    if let Some(t) = r.dt_job_completed {
        print!("  completed {}", t.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    if let Some(ms) = r.execution_time {
        print!("  in {ms} ms");
    }
    println!();
    if let Some(m) = r.err_message.as_deref().filter(|m| !m.is_empty()) {
        println!("  message: {}", printable(m));
    }
    for u in &r.download_urls {
        println!("  file: {}", printable(u));
    }
}
