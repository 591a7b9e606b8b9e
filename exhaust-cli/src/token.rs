//! `exhaust token create|list|revoke`: the API tokens of exhaust-server's
//! `[auth] mode = "token"`. A token acts for one channel (or `System`); the
//! request store keeps its SHA-256, never the token, so `create` prints it
//! once and nothing can print it again. The rules are
//! `exhaust_core::auth`'s; the table is the request store's.

use crate::args::ConfigArg;
use anyhow::anyhow;
use chrono::{DateTime, TimeZone, Utc};
use clap::{Args, Subcommand};
use exhaust_core::auth::TOKEN_RANDOM_BYTES;
use exhaust_server::app::Settings;

/// `exhaust token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(subcommand)]
    pub action: TokenAction,
}

/// What to do with tokens.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token for one channel and print it once, as the last line of
    /// standard output (store it now: it is kept only as a hash).
    Create {
        /// The channel (X-Channel-ID) the token acts for; `System` for the
        /// unfiltered reports of every org.
        #[arg(long)]
        channel: String,
        /// Who holds it or what it is for, shown by `list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List the tokens: id, channel, name, created, revoked (never a token).
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id: calls with it are refused at once.
    Revoke {
        /// The token's id (as `list` shows it).
        id: String,
    },
}

fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Runs `exhaust token ...`; `Ok(false)` (exit 1) when a revoke found no
/// active token of that id.
pub async fn run(args: TokenArgs, now: DateTime<Utc>) -> anyhow::Result<bool> {
    let settings = Settings::load(args.config.config.as_deref())?;
    let store = settings.open_store().await?;
    match args.action {
        TokenAction::Create { channel, name } => {
            let mut random = [0u8; TOKEN_RANDOM_BYTES];
            rand::fill(&mut random);
            let token = store
                .create_token(&channel, &name, now.timestamp_millis(), &random)
                .await
                .map_err(|e| anyhow!(e))?;
            println!("token {} for channel {channel}", token.id);
            println!("store it now: it is kept only as a hash and cannot be shown again");
            println!("{}", token.text);
            Ok(true)
        }
        TokenAction::List { json } => {
            store.ensure_token_table().await.map_err(|e| anyhow!(e))?;
            let tokens = store.tokens().await.map_err(|e| anyhow!(e))?;
            if json {
                for t in &tokens {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": t.id, "channel": t.channel, "name": t.name,
                            "created": time(t.created_ms),
                            "revoked": t.revoked_ms.map(time),
                        })
                    );
                }
            } else {
                println!(
                    "{:<16}  {:<24}  {:<20}  {:<20}  name",
                    "id", "channel", "created", "revoked"
                );
                for t in &tokens {
                    println!(
                        "{:<16}  {:<24}  {:<20}  {:<20}  {}",
                        t.id,
                        t.channel,
                        time(t.created_ms),
                        t.revoked_ms.map(time).unwrap_or_else(|| "-".into()),
                        t.name
                    );
                }
            }
            Ok(true)
        }
        TokenAction::Revoke { id } => {
            store.ensure_token_table().await.map_err(|e| anyhow!(e))?;
            if store
                .revoke_token(&id, now.timestamp_millis())
                .await
                .map_err(|e| anyhow!(e))?
            {
                println!("token {id} revoked");
                Ok(true)
            } else {
                eprintln!("no active token {id}: unknown, or revoked before");
                Ok(false)
            }
        }
    }
}
