//! Command-line arguments, as parsed: turned into validated options in
//! `report.rs` before anything runs.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The progress exhaust: per-batch course progress reports, from a snapshot
/// folder or Sunbird's live stores.
#[derive(Debug, Parser)]
#[command(name = "exhaust", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the progress exhaust CSV of given batches (a standalone run).
    Report(ReportArgs),
    /// Generate a realistic snapshot folder (deterministic from --seed).
    GenSnapshot(GenArgs),
    /// Decrypt a TEXT_KEY or PUBLIC_KEY encrypted report back to its CSV.
    Decrypt(crate::decrypt::DecryptArgs),
}

/// `exhaust gen-snapshot`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// The folder to write (created when missing; its tables are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Course batches (two batches share a course).
    #[arg(long, default_value_t = 3)]
    pub batches: usize,
    /// Enrolments per batch.
    #[arg(long, default_value_t = 40)]
    pub enrolments_per_batch: usize,
    /// Users in the user cache.
    #[arg(long, default_value_t = 120)]
    pub users: usize,
    /// Units per course (the last one a nested course).
    #[arg(long, default_value_t = 4)]
    pub units: usize,
    /// Leaves per unit.
    #[arg(long, default_value_t = 3)]
    pub leaves_per_unit: usize,
    /// Assessments per course.
    #[arg(long, default_value_t = 3)]
    pub assessments: usize,
    /// Most attempts per learner and assessment.
    #[arg(long, default_value_t = 2)]
    pub attempts: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `exhaust report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The snapshot folder to read (default: the bundled sample snapshot).
    #[arg(long, env = "EXHAUST_SNAPSHOT")]
    pub snapshot: Option<PathBuf>,

    /// A batch to build; repeat for several.
    #[arg(long = "batch-id", value_name = "ID")]
    pub batch_ids: Vec<String>,

    /// Build every batch of the collections this search request matches
    /// (a content search body: {"request": {"filters": {...}}}).
    #[arg(long, value_name = "JSON")]
    pub search_filter: Option<String>,

    /// Value formats and default columns: seed or lern.
    #[arg(long, default_value = "seed")]
    pub layout: String,

    /// Static columns by Sunbird csvColumns keys, comma-separated
    /// (replaces the layout's list; dynamic columns still follow).
    #[arg(long, value_name = "KEY,KEY,...")]
    pub columns: Option<String>,

    /// Time zone of the dates inside the report: an offset (+05:30), UTC, or
    /// an IANA name (Asia/Kolkata).
    #[arg(long, default_value = "UTC")]
    pub timezone: String,

    /// Time zone of the date in file names (Sunbird uses +05:30).
    #[arg(long, default_value = "+05:30")]
    pub file_timezone: String,

    /// The org asking for the report; when it is not the collection's
    /// channel, only its own users are kept (default: the collection's channel).
    #[arg(long, value_name = "ORG_ID")]
    pub requested_org: Option<String>,

    /// Which attempt of an assessment counts: best (highest score) or latest.
    #[arg(long, default_value = "best")]
    pub attempt: String,

    /// Output folder; files go to OUT/progress-exhaust/.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,

    /// Users per chunk read from the sources.
    #[arg(long, default_value_t = 2000)]
    pub chunk_size: usize,
}
