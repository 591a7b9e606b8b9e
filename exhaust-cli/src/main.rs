//! # exhaust
//!
//! The command-line frontend: parses arguments, wires the sources and
//! writers, and maps the outcome to an exit status (0 all built, 1 some
//! batch failed, 2 bad usage). It holds no report logic of its own.

mod args;
mod decrypt;
mod export;
mod generate;
mod report;
mod requests;
mod schema;
mod token;

use clap::{CommandFactory, Parser};
use std::process::ExitCode;

// Reports parse and drop millions of small strings; mimalloc handles that
// churn markedly faster than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A multi-thread runtime: reports compute on the main thread (the
    // snapshot reader reads synchronously), and the signal listener and the
    // timers must keep running on the worker threads meanwhile. With a
    // current-thread runtime they ran only when the main thread was free.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let cli = args::Cli::parse();
    // `exhaust run` stops cleanly on SIGINT and SIGTERM. The handlers go in
    // before anything else (configuration, stores), so that no signal finds
    // the default action or is lost. Other commands keep the default action
    // (Ctrl-C ends them; their output files are complete or absent).
    let stop = exhaust_writer::Shutdown::new();
    if matches!(cli.command, args::Command::Run(_))
        && let Err(e) = exhaust_writer::stop_on_signals(&stop)
    {
        eprintln!("error: cannot install the signal handlers: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EXHAUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let now = chrono::Utc::now();
    let outcome = match cli.command {
        args::Command::Report(a) => report::run(a, now).await,
        args::Command::GenSnapshot(a) => generate::run(a),
        args::Command::Submit(a) => requests::submit(a, now).await,
        args::Command::Run(a) => requests::run(a, stop).await,
        args::Command::Status(a) => requests::status(a).await,
        args::Command::Snapshot(a) => export::run(a).await,
        args::Command::Decrypt(a) => decrypt::run(a),
        args::Command::Token(a) => token::run(a, now).await,
        args::Command::Schema(a) => schema::run(a),
        args::Command::Completions(a) => {
            completions(a.shell);
            Ok(true)
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `exhaust completions SHELL`: the script on standard output.
fn completions(shell: clap_complete::Shell) {
    let mut command = args::Cli::command();
    clap_complete::generate(shell, &mut command, "exhaust", &mut std::io::stdout());
}
