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

use clap::Parser;
use std::process::ExitCode;

// Reports parse and drop millions of small strings; mimalloc handles that
// churn markedly faster than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EXHAUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = args::Cli::parse();
    let now = chrono::Utc::now();
    let outcome = match cli.command {
        args::Command::Report(a) => report::run(a, now).await,
        args::Command::GenSnapshot(a) => generate::run(a),
        args::Command::Submit(a) => requests::submit(a, now).await,
        args::Command::Run(a) => requests::run(a).await,
        args::Command::Status(a) => requests::status(a).await,
        args::Command::Snapshot(a) => export::run(a).await,
        args::Command::Decrypt(a) => decrypt::run(a),
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
