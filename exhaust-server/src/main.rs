//! `exhaust-server`: installs the SIGINT and SIGTERM handlers first, parses
//! the command line, installs the JSON log subscriber, starts the server
//! and stops it gracefully on either signal (the worker finishes or
//! releases its request within the grace period). Exit status 0 after a
//! signal. Everything else is the library's.

use clap::Parser;
use exhaust_server::{Args, ServerConfig, Shutdown, start_with};
use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("exhaust-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Before anything else, so that no signal finds the default action
        // (death on the spot, the request in hand left PROCESSING) or is lost.
        let stop = Shutdown::new();
        if let Err(e) = exhaust_writer::stop_on_signals(&stop) {
            eprintln!("exhaust-server: cannot install the signal handlers: {e}");
            return ExitCode::FAILURE;
        }
        let args = Args::parse();
        if tracing::subscriber::set_global_default(exhaust_server::log_subscriber(std::io::stderr))
            .is_err()
        {
            eprintln!("exhaust-server: a log subscriber was already installed");
        }
        match run(args, stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "exhaust-server failed");
                eprintln!("exhaust-server: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(args: Args, stop: Shutdown) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = ServerConfig::from_args(args)?;
    stop.set_grace(config.grace);
    let starting = async {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        start_with(config, listener, stop.clone()).await
    };
    // A signal while starting: nothing is claimed or served yet.
    let running = tokio::select! {
        running = starting => running?,
        () = stop.triggered() => {
            tracing::info!("stopped while starting");
            return Ok(());
        }
    };
    stop.triggered().await;
    tracing::info!("stopping: no new calls; the worker finishes or releases its request");
    running.wait().await
}
