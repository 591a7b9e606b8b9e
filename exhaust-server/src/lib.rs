//! # exhaust-server
//!
//! The HTTP service of the progress exhaust. It speaks Sunbird's Data
//! Exhaust API (reference 1 of `sunbird-interfaces.md`), so portals that
//! call Sunbird's analytics service work against it unchanged:
//!
//! | route | what |
//! |---|---|
//! | `POST /dataset/v1/request/submit` | queue a request (Sunbird's body, `X-Channel-ID`) |
//! | `GET /dataset/v1/request/read/{tag}?requestId=` | one request, with signed download links |
//! | `GET /dataset/v1/request/list/{tag}?limit=` | a tag's requests, newest first (default 100) |
//! | `GET /dataset/v1/request/summary/{tag}?requestId=&batchId=` | a built batch at a glance (JSON) |
//! | `GET /console` | the console: pages for people (see [`console`]) |
//! | `GET /dataset/v1/download/{token}` | a file of the local storage, through a signed, expiring link |
//! | `GET /health` | store, storage and source: 200, or 503 when one is down |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /openapi.json` | the OpenAPI document, generated from the handlers |
//!
//! The server has no report or request logic of its own: validation, the
//! request id and the resubmission rules are `exhaust-core`'s and the
//! store's, building is the `exhaust-writer` runner's (in this process with
//! `--worker`, or in `exhaust run --watch` processes elsewhere), files are
//! read and signed through `exhaust-writer`'s `Storage`.
//!
//! Embedding or testing it: bind a listener (port 0 for a random one) and
//! call [`start`]; the returned [`Running`] knows its address and shuts down
//! gracefully.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use exhaust_server::{ServerConfig, start};
//! let settings = exhaust_server::app::Settings::load(None)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let running = start(ServerConfig::new(settings), listener).await?;
//! println!("listening on {}", running.url());
//! running.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod download;
pub mod envelope;
pub mod health;
pub mod metrics;
pub mod ops;
pub mod state;
pub mod summary;
pub mod worker;

pub use config::{Args, ServerConfig};
pub use state::{AppState, Clock, StateConfig};
pub use worker::Shutdown;

use anyhow::Context;
use auth::Authorizer;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router, middleware};
use download::{Downloads, Secret};
use health::{LiveCheck, RunnerSource, SnapshotFolder};
use metrics::Metrics;
use ops::OpenApiJson;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What a build is: its version, the commit it was built from (`git
/// rev-parse` at build time, or `$EXHAUST_GIT_HASH`), and what it can do
/// beyond the CSV and a local folder (the typed formats and cloud stores
/// compiled in). `exhaust --version`, `exhaust-server --version` and the
/// `exhaust_build_info` metric show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// The package version.
    pub version: &'static str,
    /// The commit.
    pub git_hash: &'static str,
    /// The formats and stores compiled in, comma-separated.
    pub features: String,
}

/// This build's [`BuildInfo`].
pub fn build_info() -> BuildInfo {
    let mut features: Vec<&str> = exhaust_core::typed::OutputFormat::ALL
        .iter()
        .filter(|f| exhaust_writer::format_available(**f))
        .map(|f| f.as_str())
        .collect();
    features.extend(exhaust_writer::cloud_stores());
    BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        git_hash: env!("EXHAUST_GIT_HASH"),
        features: features.join(","),
    }
}

/// What `exhaust --version` and `exhaust-server --version` print after the
/// name: [`BuildInfo::version_text`] of this build.
pub fn version() -> &'static str {
    static VERSION: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| build_info().version_text());
    &VERSION
}

impl BuildInfo {
    /// `0.1.0 (commit 1a2b3c4d5e6f; csv,parquet,s3)`: what `--version` prints.
    pub fn version_text(&self) -> String {
        format!(
            "{} (commit {}; {})",
            self.version, self.git_hash, self.features
        )
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "exhaust-server",
        description = "Sunbird's Data Exhaust API for the progress exhaust, with signed downloads, health and metrics."
    ),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        // `[auth]` mode `token`.
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Mode `sunbird`: a user token, or a consumer the gateway names.
        components.add_security_scheme(
            "userToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                "x-authenticated-user-token",
            ))),
        );
        components.add_security_scheme(
            "consumer",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Consumer-ID"))),
        );
    }
}

/// The most bytes of a request body the server reads (a submit body is a
/// few hundred bytes; Sunbird's largest, a search filter, a few KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The server's limits on each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a call may take to answer (408 after): a download's bytes
    /// stream after the answer starts and are not cut.
    pub request_timeout: std::time::Duration,
    /// How many calls may be in flight at once (503 beyond).
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: std::time::Duration::from_secs(30),
            max_in_flight: 256,
        }
    }
}

/// The Data Exhaust routes (behind authentication).
fn exhaust_api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::submit))
        .routes(routes!(api::read))
        .routes(routes!(api::list))
        .routes(routes!(summary::summary))
}

/// The other routes (no learner data: never behind authentication).
fn open_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::download))
        .routes(routes!(ops::livez))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::health))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    open_routes().merge(exhaust_api_routes()).into_openapi()
}

/// The application: every route over `state`, with the default
/// [`Limits`].
pub fn app(state: AppState) -> Router {
    app_with(state, Limits::default())
}

/// The application with these limits: authentication on the Data Exhaust
/// routes, a body limit of [`MAX_BODY_BYTES`], a timeout and a limit of
/// calls in flight on every route, all answered in Sunbird's envelope.
pub fn app_with(state: AppState, limits: Limits) -> Router {
    let (router, api) = open_routes()
        .merge(
            exhaust_api_routes().route_layer(middleware::from_fn_with_state(
                state.clone(),
                ops::authenticate,
            )),
        )
        .split_for_parts();
    // The console's pages authenticate themselves, as the API does.
    let router = router.merge(console::routes());
    let doc = api.to_pretty_json().unwrap_or_else(|e| {
        format!("{{\"error\": \"the OpenAPI document could not be written: {e}\"}}")
    });
    router
        .fallback(ops::no_route)
        .layer(Extension(OpenApiJson(Arc::new(doc))))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            // Outermost first: errors of the limits become envelopes; a call
            // beyond the limit in flight is refused at once (not queued);
            // the timeout counts the handler's time only.
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(ops::limit_reached))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(
                    limits.max_in_flight.max(1),
                ))
                .timeout(limits.request_timeout),
        )
        .layer(middleware::from_fn_with_state(state.clone(), ops::observe))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and lets calls in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A started server (and worker).
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    state: AppState,
    stop: Shutdown,
    server: JoinHandle<std::io::Result<()>>,
    worker: Option<JoinHandle<()>>,
}

impl Running {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<bound address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The handlers' state (store, storage, metrics, ...).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The stop signal (also triggered by [`Running::shutdown`]).
    pub fn stop_signal(&self) -> &Shutdown {
        &self.stop
    }

    /// Stops accepting, lets calls in flight finish, lets the worker finish
    /// or release the request in hand, and waits for both.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.trigger();
        self.wait().await
    }

    /// Waits until the server and worker have stopped (after
    /// [`Shutdown::trigger`]). The worker ends within the grace period (see
    /// [`Shutdown`]); calls still in flight at the grace deadline (a long
    /// download) are cut then.
    pub async fn wait(self) -> anyhow::Result<()> {
        let Self {
            stop,
            mut server,
            worker,
            ..
        } = self;
        let served = tokio::select! {
            served = &mut server => served.context("the HTTP server task failed")?,
            () = stop.deadline_reached() => {
                tracing::warn!("calls still in flight at the grace deadline are cut");
                server.abort();
                Ok(())
            }
        };
        if let Some(worker) = worker {
            worker.await.context("the worker task failed")?;
        }
        served.context("the HTTP server failed")?;
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Opens the store and storage of `config`, starts the worker when asked,
/// and serves on `listener`, until [`Running::shutdown`].
pub async fn start(config: ServerConfig, listener: TcpListener) -> anyhow::Result<Running> {
    let stop = Shutdown::with_grace(config.grace);
    start_with(config, listener, stop).await
}

/// As [`start`], stopping when `stop` is triggered (by [`Running::shutdown`]
/// or by whoever else holds it: `main` gives the one its signal handlers
/// trigger). The worker's grace period is `stop`'s.
pub async fn start_with(
    config: ServerConfig,
    listener: TcpListener,
    stop: Shutdown,
) -> anyhow::Result<Running> {
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let settings = &config.settings;
    let store = settings.open_store().await?;
    // Before anything is served: a server that may not start (no
    // authorisation off loopback) opens nothing more.
    let auth = Authorizer::new(&settings.auth, config.bearer_token.clone(), addr, &store)
        .await
        .context("authorisation")?;
    let storage = settings.open_storage()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let random_secret = config.download_secret.is_none();
    let secret = config
        .download_secret
        .clone()
        .unwrap_or_else(Secret::random);
    let metrics = Arc::new(Metrics::new());
    // The worker's runner holds the source; /health asks it rather than
    // opening a second connection to the live stores.
    let runner = if config.worker {
        Some(Arc::new(
            settings.runner(store.clone(), storage.clone()).await?,
        ))
    } else {
        None
    };
    let source: Arc<dyn health::SourceCheck> = match (&runner, &settings.source.live) {
        (Some(r), _) => Arc::new(RunnerSource::new(r.clone())),
        // Without a worker the server holds no source: the check opens
        // its own (see `LiveCheck`).
        (None, Some(_)) => Arc::new(LiveCheck::new(settings.clone())),
        (None, None) => Arc::new(SnapshotFolder(settings.snapshot_dir()?)),
    };
    let state = AppState::new(StateConfig {
        store: store.clone(),
        storage: storage.clone(),
        source,
        downloads: Downloads::new(secret, &public_url, config.url_expiry),
        auth: Arc::new(auth),
        metrics: metrics.clone(),
        clock: config.clock.clone(),
    });
    let worker = runner
        .map(|runner| tokio::spawn(worker::run_loop(runner, metrics, config.poll, stop.clone())));
    let server = tokio::spawn(serve(
        listener,
        app_with(state.clone(), config.limits),
        stop.clone().wait(),
    ));
    tracing::info!(
        addr = %addr,
        store = store.kind(),
        storage = storage.describe(),
        worker = config.worker,
        auth = state.auth().mode_name(),
        random_download_secret = random_secret,
        url_expiry_minutes = config.url_expiry.as_secs() / 60,
        "server listening"
    );
    Ok(Running {
        addr,
        state,
        stop,
        server,
        worker,
    })
}

/// Structured JSON logs (one object per line) to `writer`, filtered by
/// `$EXHAUST_LOG` (default `info`).
pub fn log_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXHAUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_writer(writer)
        .finish()
}
