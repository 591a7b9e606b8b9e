//! The server's configuration: the request flow's [`Settings`] (`--config`
//! file and `EXHAUST_*` variables, as for the `exhaust` command) plus the
//! server's own flags, each with an environment variable. Secrets come from
//! environment variables only, named by flags, and are never logged.

use crate::app::{Settings, variable};
use crate::download::{MIN_SECRET_BYTES, Secret};
use crate::state::{Clock, system_clock};
use anyhow::{Context, bail};
use clap::Parser;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The variable read for the download secret when `--download-secret-env`
/// is not given.
pub const DEFAULT_DOWNLOAD_SECRET_ENV: &str = "EXHAUST_DOWNLOAD_SECRET";

/// The variable read for the bearer token when `--bearer-token-env` is not
/// given.
pub const DEFAULT_BEARER_TOKEN_ENV: &str = "EXHAUST_BEARER_TOKEN";

/// `exhaust-server`'s command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "exhaust-server",
    version = crate::version(),
    about = "Sunbird's Data Exhaust API for the progress exhaust: submit, read, list, download; health, metrics, OpenAPI."
)]
pub struct Args {
    /// The request flow's TOML configuration (store, storage, source,
    /// security, job); else `$EXHAUST_CONFIG`, else `./exhaust.toml`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "EXHAUST_SERVER_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Base URL of this server's download links as clients reach it
    /// (default `http://<bind address>`).
    #[arg(long, env = "EXHAUST_SERVER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Environment variable holding the secret that signs local download
    /// links (at least 16 bytes). Default: `EXHAUST_DOWNLOAD_SECRET` when
    /// set, else a random secret per start (old links die on restart).
    #[arg(long, value_name = "VAR")]
    pub download_secret_env: Option<String>,
    /// Minutes a download link stays valid.
    #[arg(long, env = "EXHAUST_SERVER_URL_EXPIRY_MINUTES", default_value_t = 30)]
    pub url_expiry_minutes: u64,
    /// Environment variable holding a bearer token accepted in `[auth]`
    /// mode `token` as a token for the channel `System` (beside the tokens
    /// of `exhaust token create`); setting one makes `token` the default
    /// mode. Default: `EXHAUST_BEARER_TOKEN` when set, else none.
    #[arg(long, value_name = "VAR")]
    pub bearer_token_env: Option<String>,
    /// Seconds a call may take to answer before it is cut with 408.
    #[arg(
        long,
        env = "EXHAUST_SERVER_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub request_timeout_seconds: u64,
    /// Calls in flight at once; more are refused with 503.
    #[arg(long, env = "EXHAUST_SERVER_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,
    /// Process requests in this process too (else leave them to
    /// `exhaust run --watch` elsewhere).
    #[arg(long, env = "EXHAUST_SERVER_WORKER")]
    pub worker: bool,
    /// Seconds between the worker's polls (default `[job] poll_seconds`, 30).
    #[arg(long, env = "EXHAUST_SERVER_POLL_SECONDS")]
    pub poll_seconds: Option<u64>,
    /// Seconds a stop (SIGINT, SIGTERM) leaves the batch in hand to finish
    /// before it is abandoned and its request released (default `[job]
    /// grace_seconds` or `$EXHAUST_GRACE_SECONDS`, 25).
    #[arg(long, value_name = "SECONDS")]
    pub grace_seconds: Option<u64>,
}

/// Everything the server needs, resolved.
#[derive(Clone)]
pub struct ServerConfig {
    /// The request flow's settings.
    pub settings: Settings,
    /// Where to listen (used by `main`; tests bring their own listener).
    pub bind: SocketAddr,
    /// The download links' base URL (`None`: `http://<bound address>`).
    pub public_url: Option<String>,
    /// The download secret (`None`: random per start).
    pub download_secret: Option<Secret>,
    /// How long links stay valid.
    pub url_expiry: Duration,
    /// The configured bearer token (a `System` token of the `token` mode).
    pub bearer_token: Option<Secret>,
    /// The limits on each call.
    pub limits: crate::Limits,
    /// Whether to run the worker in this process.
    pub worker: bool,
    /// The worker's poll interval.
    pub poll: Duration,
    /// How long a stop leaves the batch in hand to finish.
    pub grace: Duration,
    /// The clock of the API.
    pub clock: Clock,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("download_secret", &self.download_secret.is_some())
            .field("url_expiry", &self.url_expiry)
            .field("bearer_token", &self.bearer_token.is_some())
            .field("limits", &self.limits)
            .field("worker", &self.worker)
            .field("poll", &self.poll)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// A configuration over `settings` with the defaults: 127.0.0.1:8080,
    /// random download secret, 30-minute links, no bearer token, no worker.
    pub fn new(settings: Settings) -> Self {
        let poll = Duration::from_secs(settings.job.poll_seconds.max(1));
        let grace = settings.job.grace();
        Self {
            settings,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            download_secret: None,
            url_expiry: Duration::from_secs(30 * 60),
            bearer_token: None,
            limits: crate::Limits::default(),
            worker: false,
            poll,
            grace,
            clock: system_clock(),
        }
    }

    /// Resolves the command line and the environment.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        Self::from_args_with(args, |name| std::env::var(name).ok())
    }

    /// As [`ServerConfig::from_args`], reading variables through `env`.
    pub fn from_args_with(
        args: Args,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let settings = Settings::load(args.config.as_deref())?;
        let mut config = Self::new(settings);
        config.bind = args.bind;
        config.public_url = args
            .public_url
            .map(|u| u.trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty());
        if let Some(u) = &config.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            bail!("--public-url must start with http:// or https://");
        }
        if args.url_expiry_minutes == 0 {
            bail!("--url-expiry-minutes must be at least 1");
        }
        config.url_expiry = Duration::from_secs(args.url_expiry_minutes * 60);
        config.download_secret = secret_from_env(
            &env,
            args.download_secret_env.as_deref(),
            DEFAULT_DOWNLOAD_SECRET_ENV,
            "--download-secret-env",
        )?;
        if let Some(s) = &config.download_secret
            && s.expose().len() < MIN_SECRET_BYTES
        {
            bail!("the download secret must be at least {MIN_SECRET_BYTES} bytes long");
        }
        config.bearer_token = secret_from_env(
            &env,
            args.bearer_token_env.as_deref(),
            DEFAULT_BEARER_TOKEN_ENV,
            "--bearer-token-env",
        )?;
        if args.request_timeout_seconds == 0 {
            bail!("--request-timeout-seconds must be at least 1");
        }
        if args.max_in_flight == 0 {
            bail!("--max-in-flight must be at least 1");
        }
        config.limits = crate::Limits {
            request_timeout: Duration::from_secs(args.request_timeout_seconds),
            max_in_flight: args.max_in_flight,
        };
        config.worker = args.worker;
        if let Some(p) = args.poll_seconds {
            if p == 0 {
                bail!("--poll-seconds must be at least 1");
            }
            config.poll = Duration::from_secs(p);
        }
        if let Some(g) = args.grace_seconds {
            config.grace = Duration::from_secs(g);
        }
        Ok(config)
    }
}

/// A secret from the variable a flag names (which must then be set), else
/// from the default variable when it is set.
fn secret_from_env(
    env: &impl Fn(&str) -> Option<String>,
    named: Option<&str>,
    default_var: &str,
    flag: &str,
) -> anyhow::Result<Option<Secret>> {
    // Either variable may also be given as a file, `<VAR>_FILE`.
    let value = match named {
        Some(var) => Some(variable(env, var)?.with_context(|| {
            format!("environment variable {var} or {var}_FILE ({flag}) is not set")
        })?),
        None => variable(env, default_var)?,
    };
    Ok(value.map(|v| Secret::new(v.into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["exhaust-server"];
        argv.extend_from_slice(extra);
        Args::parse_from(argv)
    }

    #[test]
    fn defaults_and_secrets_from_named_variables() {
        let c = ServerConfig::from_args_with(args(&[]), |_| None).expect("config");
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.url_expiry, Duration::from_secs(1800));
        assert!(c.download_secret.is_none() && c.bearer_token.is_none() && !c.worker);
        assert_eq!(c.grace, exhaust_writer::DEFAULT_GRACE);

        let env = |name: &str| match name {
            "MY_SECRET" => Some("0123456789abcdef-long-enough".to_string()),
            "EXHAUST_BEARER_TOKEN" => Some("tok".to_string()),
            _ => None,
        };
        let c = ServerConfig::from_args_with(
            args(&[
                "--download-secret-env",
                "MY_SECRET",
                "--worker",
                "--poll-seconds",
                "2",
                "--grace-seconds",
                "0",
            ]),
            env,
        )
        .expect("config");
        assert!(c.download_secret.is_some());
        assert!(c.bearer_token.is_some(), "the default variable is read");
        assert!(c.worker);
        assert_eq!(c.poll, Duration::from_secs(2));
        assert_eq!(c.grace, Duration::ZERO);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("0123456789abcdef") && !shown.contains("tok\""),
            "{shown}"
        );
    }

    #[test]
    fn secrets_come_from_files_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("download-secret");
        std::fs::write(&secret, "0123456789abcdef-from-a-file\n").expect("write");
        let token = dir.path().join("token");
        std::fs::write(&token, "tok-from-file").expect("write");
        let (secret, token) = (secret.display().to_string(), token.display().to_string());
        let env = |name: &str| match name {
            "EXHAUST_DOWNLOAD_SECRET_FILE" => Some(secret.clone()),
            "EXHAUST_BEARER_TOKEN_FILE" => Some(token.clone()),
            _ => None,
        };
        let c = ServerConfig::from_args_with(args(&[]), env).expect("config");
        // The file's trailing line end is not part of the secret.
        assert_eq!(
            c.download_secret.as_ref().map(|s| s.expose().to_vec()),
            Some(b"0123456789abcdef-from-a-file".to_vec())
        );
        assert_eq!(
            c.bearer_token.as_ref().map(|s| s.expose().to_vec()),
            Some(b"tok-from-file".to_vec())
        );
        // Both forms at once are refused, naming them.
        let both = |name: &str| match name {
            "EXHAUST_BEARER_TOKEN" | "EXHAUST_BEARER_TOKEN_FILE" => Some("x".to_string()),
            _ => None,
        };
        let e = ServerConfig::from_args_with(args(&[]), both).expect_err("both");
        assert!(e.to_string().contains("EXHAUST_BEARER_TOKEN_FILE"), "{e}");
        // A file that cannot be read is named by its variable, not its path.
        let missing = |name: &str| {
            (name == "EXHAUST_DOWNLOAD_SECRET_FILE").then(|| "/nonexistent/secret".to_string())
        };
        let e = ServerConfig::from_args_with(args(&[]), missing).expect_err("missing");
        assert!(
            format!("{e:#}").contains("EXHAUST_DOWNLOAD_SECRET_FILE"),
            "{e:#}"
        );
    }

    #[test]
    fn a_named_variable_must_be_set_and_secrets_long_enough() {
        let e = ServerConfig::from_args_with(args(&["--bearer-token-env", "NOPE"]), |_| None)
            .expect_err("unset");
        assert!(e.to_string().contains("NOPE"), "{e}");
        let e = ServerConfig::from_args_with(args(&[]), |name| {
            (name == DEFAULT_DOWNLOAD_SECRET_ENV).then(|| "short".to_string())
        })
        .expect_err("short");
        assert!(e.to_string().contains("16 bytes"), "{e}");
        let e = ServerConfig::from_args_with(args(&["--public-url", "ftp://x"]), |_| None)
            .expect_err("scheme");
        assert!(e.to_string().contains("http"), "{e}");
    }
}
