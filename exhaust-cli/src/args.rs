//! Command-line arguments, as parsed: turned into validated options in
//! `report.rs` before anything runs.

use clap::{Args, Parser, Subcommand, ValueEnum};
use exhaust_core::layout::Layout;
use exhaust_core::request::RequestStatus;
use exhaust_core::typed::OutputFormat;
use exhaust_core::values::AttemptChoice;
use std::path::PathBuf;

/// The progress exhaust: per-batch course progress reports, from a snapshot
/// folder or Sunbird's live stores.
#[derive(Debug, Parser)]
#[command(name = "exhaust", version = exhaust_server::version(), about)]
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
    /// Queue a report request in the request store (job_request).
    Submit(SubmitArgs),
    /// Process the pending report requests once (or keep polling with --watch).
    Run(RunArgs),
    /// Show report requests and their outcome.
    Status(StatusArgs),
    /// Copy what one batch's report reads, from the configured source (the
    /// live stores), into a snapshot folder: for support cases and offline re-runs.
    Snapshot(SnapshotArgs),
    /// Decrypt a TEXT_KEY or PUBLIC_KEY encrypted report back to its CSV.
    Decrypt(crate::decrypt::DecryptArgs),
    /// Manage the API tokens of exhaust-server's `[auth] mode = "token"`.
    Token(crate::token::TokenArgs),
    /// Print the PostgreSQL tables' SQL for a DBA to apply (then run with
    /// `[store] manage_schema = false`).
    Schema(crate::schema::SchemaArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or
    /// powershell): e.g. `exhaust completions bash > /etc/bash_completion.d/exhaust`.
    Completions(CompletionsArgs),
}

/// `exhaust completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The configuration file, shared by the request commands.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// A TOML configuration file (default: $EXHAUST_CONFIG, else ./exhaust.toml
    /// when present, else built-in defaults: the sample snapshot, ./exhaust.db,
    /// ./exhaust-files).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

/// `exhaust submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A batch to report on.
    #[arg(long = "batch-id", value_name = "ID", conflicts_with_all = ["batch_filter", "search_filter"])]
    pub batch_id: Option<String>,
    /// Several batches, comma-separated.
    #[arg(
        long,
        value_name = "ID,ID,...",
        value_delimiter = ',',
        conflicts_with = "search_filter"
    )]
    pub batch_filter: Vec<String>,
    /// A content search request body ({"request": {"filters": {...}}}):
    /// every batch of the collections it matches.
    #[arg(long, value_name = "JSON")]
    pub search_filter: Option<String>,
    /// The requesting user.
    #[arg(long)]
    pub requested_by: String,
    /// The requesting org (X-Channel-ID): only its users are reported unless
    /// it is the collection's own channel.
    #[arg(long)]
    pub channel: String,
    /// The request's tag (default: the batch id, or "progress-exhaust").
    #[arg(long)]
    pub tag: Option<String>,
    /// The dataset.
    #[arg(long, default_value = "progress-exhaust")]
    pub dataset: String,
    /// Read the files' encryption key from this environment variable (never
    /// from the command line, where other users could see it).
    #[arg(long, value_name = "VAR")]
    pub encryption_key_env: Option<String>,
}

/// `exhaust run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Keep polling for requests until SIGINT (Ctrl-C) or SIGTERM: the
    /// batch in hand finishes within the grace period, else is abandoned,
    /// and an unfinished request goes back to SUBMITTED; exit status 0.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between polls with --watch (default from the configuration: 30).
    #[arg(long, value_name = "SECONDS")]
    pub interval: Option<u64>,
    /// Seconds a stop leaves the batch in hand to finish (default from the
    /// configuration, [job] grace_seconds or $EXHAUST_GRACE_SECONDS: 25).
    #[arg(long, value_name = "SECONDS")]
    pub grace_seconds: Option<u64>,
    /// Only requests of this batch_number (as Sunbird's partitioning script sets).
    #[arg(long)]
    pub batch_number: Option<i32>,
}

/// `exhaust status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// One request, by id.
    pub request_id: Option<String>,
    /// Only requests with this status.
    #[arg(long, value_enum, ignore_case = true)]
    pub status: Option<StatusArg>,
    /// Most requests shown.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
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
    /// The snapshot folder to read (default: the configured source: the live
    /// stores when the configuration has [source.live], else its snapshot,
    /// else the bundled sample snapshot).
    #[arg(long, env = "EXHAUST_SNAPSHOT")]
    pub snapshot: Option<PathBuf>,

    /// A TOML configuration file (see `exhaust run`).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// A batch to build; repeat for several.
    #[arg(long = "batch-id", value_name = "ID")]
    pub batch_ids: Vec<String>,

    /// Build every batch of the collections this search request matches
    /// (a content search body: {"request": {"filters": {...}}}).
    #[arg(long, value_name = "JSON")]
    pub search_filter: Option<String>,

    /// Value formats and default columns.
    #[arg(long, value_enum, ignore_case = true, default_value_t = LayoutArg::Seed)]
    pub layout: LayoutArg,

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

    /// Which attempt of an assessment counts.
    #[arg(long, value_enum, ignore_case = true, default_value_t = AttemptArg::Best)]
    pub attempt: AttemptArg,

    /// Output folder; files go to OUT/progress-exhaust/.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,

    /// Users per chunk read from the sources.
    #[arg(long, default_value_t = exhaust_core::report::ReportOptions::default().chunk_size)]
    pub chunk_size: usize,

    /// File format. The typed formats need a build with the `typed` (or
    /// `full`) feature; `exhaust --version` lists what a build writes.
    #[arg(long, value_enum, ignore_case = true, default_value_t = FormatArg::Csv)]
    pub format: FormatArg,

    /// Read the --snapshot folder through offset indexes of its JSON lines
    /// only: neither write nor read the digests of its large tables (a
    /// digest makes later runs of the snapshot faster and the run that
    /// writes it slower; BENCHMARKS.md).
    #[arg(long)]
    pub no_digest: bool,

    /// Write the --snapshot folder's digests on this run, even when it is
    /// the snapshot's first: by default a first run of one batch only
    /// indexes (so a one-off report waits for no digest) and the second
    /// writes them; a run of several batches (or a --search-filter), and a
    /// server's or `exhaust run`'s runner, write them at once. For
    /// preparing a snapshot that will be read many times.
    #[arg(long, conflicts_with = "no_digest")]
    pub digest_now: bool,

    /// After each batch, print the batch at a glance (learners by progress
    /// band, each unit's completion, each assessment's scores, enrolments
    /// and completions over time, certificates): the tables the server's
    /// console shows, counted while the report is written.
    #[arg(long)]
    pub summary: bool,
}

/// `exhaust snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The batch whose data is copied.
    #[arg(long = "batch-id", value_name = "ID")]
    pub batch_id: String,
    /// The folder to write (created; must not hold a snapshot already).
    #[arg(long)]
    pub out: PathBuf,
}

// The closed choices as clap value enums, so that `--help` and the shell
// completions list them. They mirror the core's types (which know nothing
// of clap); `the_choices_mirror_the_core` keeps the names in step.

/// `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// Sunbird's Spark job's columns and value formats.
    Seed,
    /// Sunbird-Lern's columns and value formats.
    Lern,
}

impl From<LayoutArg> for Layout {
    fn from(a: LayoutArg) -> Self {
        match a {
            LayoutArg::Seed => Self::Seed,
            LayoutArg::Lern => Self::Lern,
        }
    }
}

/// `--attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttemptArg {
    /// The highest score (ties: the latest).
    Best,
    /// The latest attempt (ties: the highest score).
    Latest,
}

impl From<AttemptArg> for AttemptChoice {
    fn from(a: AttemptArg) -> Self {
        match a {
            AttemptArg::Best => Self::BestScore,
            AttemptArg::Latest => Self::Latest,
        }
    }
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Sunbird's CSV.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// An Arrow IPC file.
    Arrow,
    /// An Excel workbook.
    Xlsx,
}

impl From<FormatArg> for OutputFormat {
    fn from(a: FormatArg) -> Self {
        match a {
            FormatArg::Csv => Self::Csv,
            FormatArg::Parquet => Self::Parquet,
            FormatArg::Arrow => Self::Arrow,
            FormatArg::Xlsx => Self::Xlsx,
        }
    }
}

/// `--status`, spelt as the request store spells it (any case accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusArg {
    /// Waiting for a worker.
    Submitted,
    /// A worker is on it.
    Processing,
    /// Built; the files are listed.
    Success,
    /// Failed (retried while attempts remain).
    Failed,
}

impl From<StatusArg> for RequestStatus {
    fn from(a: StatusArg) -> Self {
        match a {
            StatusArg::Submitted => Self::Submitted,
            StatusArg::Processing => Self::Processing,
            StatusArg::Success => Self::Success,
            StatusArg::Failed => Self::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each choice's name is the core's own spelling of the value it
    /// becomes, and every value of the core's closed types has a choice.
    #[test]
    fn the_choices_mirror_the_core() {
        fn names<T: ValueEnum>() -> Vec<String> {
            T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value())
                .map(|p| p.get_name().to_string())
                .collect()
        }
        let layouts: Vec<String> = LayoutArg::value_variants()
            .iter()
            .map(|v| Layout::from(*v).to_string())
            .collect();
        assert_eq!(names::<LayoutArg>(), layouts);
        for v in AttemptArg::value_variants() {
            let name = v.to_possible_value().expect("named").get_name().to_string();
            assert_eq!(name.parse::<AttemptChoice>(), Ok(AttemptChoice::from(*v)));
        }
        let formats: Vec<String> = OutputFormat::ALL
            .iter()
            .map(|f| f.as_str().into())
            .collect();
        assert_eq!(names::<FormatArg>(), formats);
        for v in FormatArg::value_variants() {
            let name = v.to_possible_value().expect("named").get_name().to_string();
            assert_eq!(OutputFormat::from(*v).as_str(), name);
        }
        for v in StatusArg::value_variants() {
            let name = v.to_possible_value().expect("named").get_name().to_string();
            assert_eq!(RequestStatus::parse(&name), Some(RequestStatus::from(*v)));
        }
        assert_eq!(names::<StatusArg>().len(), 4);
    }
}
