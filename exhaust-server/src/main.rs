//! `exhaust-server`: parses the command line, installs the JSON log
//! subscriber, starts the server and stops it gracefully on SIGINT or
//! SIGTERM. Everything else is the library's.

use clap::Parser;
use exhaust_server::{Args, ServerConfig, start};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Args::parse();
    if tracing::subscriber::set_global_default(exhaust_server::log_subscriber(std::io::stderr))
        .is_err()
    {
        eprintln!("exhaust-server: a log subscriber was already installed");
    }
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
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exhaust-server failed");
            eprintln!("exhaust-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = ServerConfig::from_args(args)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let running = start(config, listener).await?;
    shutdown_signal().await;
    tracing::info!("stopping: no new calls; the worker finishes or releases its request");
    running.shutdown().await
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
