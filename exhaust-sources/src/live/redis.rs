//! Sunbird's Redis caches through the `redis` crate: the user cache (hashes
//! `user:<id>`, DB 12) and the relation cache's optional nodes (sets
//! `<course>:<course>:optionalnodes`, DB 5).
//!
//! Users are read for exactly the ids asked, with `HGETALL` pipelined in
//! chunks (one round trip per chunk), never by scanning the cache. Each
//! database has its own `ConnectionManager`, which reconnects by itself; a
//! chunk that fails on a dropped connection or a timeout is sent again with
//! back-off. Entries are decoded by the snapshot reader's rule (`rows.rs`),
//! so a wrong-shaped entry is the same [`UserEntry::Malformed`] either way.

use crate::live::retry::{Counters, Retry};
use exhaust_core::model::{UserEntry, UserProfile};
use exhaust_core::redact::redact_url;
use exhaust_core::source::{OptionalNodeSource, ReadStats, SourceError, SourceResult, UserSource};
use exhaust_core::{ContentId, UserId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisError, RedisResult, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

const SOURCE: &str = "redis";

/// Where Sunbird's Redis is and how its keys are named.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// The server (default `redis://127.0.0.1:6379`); a password in it is
    /// never logged. Its database number, if any, is replaced by the two
    /// below.
    pub url: String,
    /// The user cache's database (default 12).
    pub user_db: i64,
    /// The relation cache's database (default 5).
    pub relation_db: i64,
    /// Prefix of user cache keys (default `user:`); the user id is the rest.
    pub user_key_prefix: String,
    /// Prefix put before relation cache keys (default empty:
    /// `<course>:<course>:optionalnodes`).
    pub relation_key_prefix: String,
    /// Last part of the optional nodes key (default `optionalnodes`).
    pub optional_nodes_suffix: String,
    /// Users per pipeline (default 500).
    pub chunk_size: usize,
    /// Timeout of one command or pipeline, in milliseconds (default 5000).
    pub timeout_ms: u64,
    /// Timeout of opening a connection, in milliseconds (default 5000).
    pub connect_timeout_ms: u64,
    /// Retries of a command after a dropped connection or a timeout, and of
    /// connecting (default 3).
    pub retries: u32,
    /// The first retry's wait in milliseconds, doubled per retry (default 200).
    pub retry_backoff_ms: u64,
    /// TLS (`[source.live.redis.tls]`): a `rediss://` URL is TLS with the
    /// system's certificate authorities; these settings give a private CA
    /// and a client certificate (and make a `redis://` URL `rediss://`).
    /// The certificate must name the URL's host.
    pub tls: crate::live::tls::TlsSettings,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            user_db: 12,
            relation_db: 5,
            user_key_prefix: "user:".into(),
            relation_key_prefix: String::new(),
            optional_nodes_suffix: "optionalnodes".into(),
            chunk_size: 500,
            timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            retries: 3,
            retry_backoff_ms: 200,
            tls: Default::default(),
        }
    }
}

// Written by hand so that a password in the URL never reaches a log.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("user_db", &self.user_db)
            .field("relation_db", &self.relation_db)
            .field("user_key_prefix", &self.user_key_prefix)
            .field("relation_key_prefix", &self.relation_key_prefix)
            .field("optional_nodes_suffix", &self.optional_nodes_suffix)
            .field("chunk_size", &self.chunk_size)
            .field("timeout_ms", &self.timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("retries", &self.retries)
            .field("retry_backoff_ms", &self.retry_backoff_ms)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RedisConfig {
    /// The user cache key of a user.
    pub fn user_key(&self, user: &UserId) -> String {
        format!("{}{user}", self.user_key_prefix)
    }

    /// The relation cache key of a collection's optional nodes.
    pub fn optional_nodes_key(&self, collection: &ContentId) -> String {
        format!(
            "{}{c}:{c}:{}",
            self.relation_key_prefix,
            self.optional_nodes_suffix,
            c = collection.as_str()
        )
    }
}

/// Sunbird's Redis behind [`UserSource`] and [`OptionalNodeSource`].
#[derive(Clone)]
pub struct RedisSource {
    users: ConnectionManager,
    relations: ConnectionManager,
    cfg: RedisConfig,
    counters: std::sync::Arc<Counters>,
}

impl std::fmt::Debug for RedisSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSource")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Whether sending the same read again may succeed.
fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN")
        )
}

impl RedisSource {
    /// Connects to the user and relation databases.
    pub async fn connect(cfg: &RedisConfig) -> SourceResult<Self> {
        let (users, relations) = tokio::try_join!(
            Self::manager(cfg, cfg.user_db),
            Self::manager(cfg, cfg.relation_db)
        )?;
        tracing::debug!(
            user_db = cfg.user_db,
            relation_db = cfg.relation_db,
            "connected to redis"
        );
        Ok(Self {
            users,
            relations,
            cfg: cfg.clone(),
            counters: Default::default(),
        })
    }

    async fn manager(cfg: &RedisConfig, db: i64) -> SourceResult<ConnectionManager> {
        let tls = cfg.tls.is_configured() || cfg.url.starts_with("rediss://");
        let url = match cfg.url.strip_prefix("redis://") {
            Some(rest) if tls => format!("rediss://{rest}"),
            _ => cfg.url.clone(),
        };
        let shown = redact_url(&url);
        let info = url.as_str().into_connection_info().map_err(|e| {
            SourceError::unavailable(SOURCE, format!("the redis URL {shown} is not valid: {e}"))
        })?;
        let settings = info.redis_settings().clone().set_db(db);
        let info = info.set_redis_settings(settings);
        let client = if tls {
            // The redis crate builds its rustls configuration with the
            // process's default provider: make it the workspace's one
            // (a no-op when one is installed already).
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let certificates = cfg.tls.redis_certificates().map_err(|e| {
                SourceError::unavailable(SOURCE, format!("cannot set up TLS to {shown}: {e}"))
            })?;
            redis::Client::build_with_tls(info, certificates)
        } else {
            redis::Client::open(info)
        }
        .map_err(|e| {
            SourceError::unavailable(SOURCE, format!("cannot use redis at {shown}: {e}"))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms.max(1))))
            .set_response_timeout(Some(Duration::from_millis(cfg.timeout_ms.max(1))))
            .set_number_of_retries(cfg.retries as usize)
            .set_min_delay(Duration::from_millis(cfg.retry_backoff_ms.max(1)));
        ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| {
                SourceError::unavailable(
                    SOURCE,
                    format!("cannot connect to {shown} (db {db}): {e}"),
                )
            })
    }

    /// What this source has read since it was connected.
    pub fn read_stats(&self) -> ReadStats {
        self.counters.stats()
    }

    /// Round trips to Redis since it was connected: each pipeline is one,
    /// however many commands it holds (those are [`ReadStats::queries`]).
    pub fn round_trips(&self) -> u64 {
        self.counters.pipelines()
    }

    /// The configuration it was connected with.
    pub fn config(&self) -> &RedisConfig {
        &self.cfg
    }

    /// Sends `build`'s commands as one pipeline, again after a transient
    /// failure. `what` names the read in messages (keys, never values).
    async fn pipeline<T: redis::FromRedisValue>(
        &self,
        con: ConnectionManager,
        pipe: &redis::Pipeline,
        commands: usize,
        what: &str,
    ) -> SourceResult<T> {
        let retry = Retry {
            retries: self.cfg.retries,
            base_ms: self.cfg.retry_backoff_ms,
        };
        retry
            .run("redis read", is_transient, || {
                self.counters.queries(commands);
                // A clone of the manager shares its connection.
                let mut con = con.clone();
                async move { pipe.query_async::<T>(&mut con).await }
            })
            .await
            .map_err(|g| {
                SourceError::unavailable(
                    SOURCE,
                    format!(
                        "reading {what} failed after {} attempts: {}",
                        g.attempts, g.error
                    ),
                )
            })
    }

    async fn users_chunk(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        let mut pipe = redis::pipe();
        // One command's error (a key of the wrong type) must not fail the others.
        pipe.ignore_errors();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.cfg.user_key(id));
        }
        let what = format!("{} user cache entries", ids.len());
        let replies: Vec<RedisResult<Value>> = self
            .pipeline(self.users.clone(), &pipe, ids.len(), &what)
            .await?;
        if replies.len() != ids.len() {
            return Err(SourceError::bad_data(
                SOURCE,
                format!(
                    "asked for {} user cache entries, got {} replies",
                    ids.len(),
                    replies.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(ids.len());
        let (mut found, mut bytes) = (0, 0);
        for (id, reply) in ids.iter().zip(replies) {
            let entry = match reply {
                Ok(value) => hash_entry(value, &mut bytes),
                Err(e) if e.code() == Some("WRONGTYPE") => Some(UserEntry::Malformed(
                    "the cache value is not a hash of fields".into(),
                )),
                Err(e) if is_transient(&e) => {
                    return Err(SourceError::unavailable(
                        SOURCE,
                        format!(
                            "reading user cache entry {} failed: {e}",
                            self.cfg.user_key(id)
                        ),
                    ));
                }
                Err(e) => {
                    return Err(SourceError::bad_data(
                        SOURCE,
                        format!(
                            "user cache entry {} cannot be read: {e}",
                            self.cfg.user_key(id)
                        ),
                    ));
                }
            };
            found += usize::from(entry.is_some());
            out.push(entry);
        }
        self.counters.received(found, bytes);
        Ok(out)
    }
}

/// A `HGETALL` reply as a user entry: `None` for a missing key (Redis
/// deletes empty hashes, so an empty reply is a missing key).
fn hash_entry(value: Value, bytes: &mut usize) -> Option<UserEntry> {
    let pairs: Vec<(Value, Value)> = match value {
        Value::Map(pairs) => pairs,
        Value::Array(items) => {
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        Value::Nil => Vec::new(),
        _ => {
            return Some(UserEntry::Malformed(
                "the cache value is not a hash of fields".into(),
            ));
        }
    };
    if pairs.is_empty() {
        return None;
    }
    // Straight into the profile (a hash holds only strings, so no field
    // can have the wrong shape): what `rows::user_entry` makes of the same
    // hash, without building a JSON value first.
    let mut profile = UserProfile::default();
    for (k, v) in pairs {
        let (Some(k), Some(v)) = (text(&k), text(&v)) else {
            return Some(UserEntry::Malformed(
                "a field or value is not UTF-8 text".into(),
            ));
        };
        *bytes += k.len() + v.len();
        profile.set(&k, v);
    }
    Some(UserEntry::Profile(profile))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

impl UserSource for RedisSource {
    async fn users(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.cfg.chunk_size.max(1)) {
            out.extend(self.users_chunk(chunk).await?);
        }
        Ok(out)
    }
}

impl OptionalNodeSource for RedisSource {
    async fn optional_nodes(&self, collection: &ContentId) -> SourceResult<HashSet<String>> {
        let key = self.cfg.optional_nodes_key(collection);
        let mut pipe = redis::pipe();
        pipe.cmd("SMEMBERS").arg(&key);
        let replies: Vec<RedisResult<Value>> = {
            pipe.ignore_errors();
            self.pipeline(self.relations.clone(), &pipe, 1, &key)
                .await?
        };
        let reply = replies
            .into_iter()
            .next()
            .ok_or_else(|| SourceError::bad_data(SOURCE, format!("no reply to SMEMBERS {key}")))?;
        let members = match reply {
            Ok(Value::Set(items) | Value::Array(items)) => items,
            Ok(Value::Nil) => Vec::new(),
            Ok(_) => {
                return Err(SourceError::bad_data(
                    SOURCE,
                    format!("{key} is not a set of content ids"),
                ));
            }
            Err(e) if e.code() == Some("WRONGTYPE") => {
                return Err(SourceError::bad_data(
                    SOURCE,
                    format!("{key} is not a set of content ids"),
                ));
            }
            Err(e) => {
                return Err(SourceError::unavailable(
                    SOURCE,
                    format!("reading {key} failed: {e}"),
                ));
            }
        };
        let mut out = HashSet::with_capacity(members.len());
        let mut bytes = 0;
        for m in members {
            let id = text(&m).ok_or_else(|| {
                SourceError::bad_data(SOURCE, format!("{key} holds a member that is not text"))
            })?;
            bytes += id.len();
            out.insert(id);
        }
        self.counters.received(out.len(), bytes);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_configuration() {
        let cfg = RedisConfig {
            user_key_prefix: "t1:user:".into(),
            relation_key_prefix: "t1:".into(),
            ..RedisConfig::default()
        };
        assert_eq!(cfg.user_key(&UserId::new("u1")), "t1:user:u1");
        assert_eq!(
            cfg.optional_nodes_key(&ContentId::new("do_1")),
            "t1:do_1:do_1:optionalnodes"
        );
        let default = RedisConfig::default();
        assert_eq!(
            default.optional_nodes_key(&ContentId::new("do_1")),
            "do_1:do_1:optionalnodes"
        );
    }

    #[test]
    fn hash_replies_decode_as_the_snapshot_does() {
        let mut bytes = 0;
        let reply = Value::Array(vec![
            Value::BulkString(b"state".to_vec()),
            Value::BulkString(b"Kerala".to_vec()),
            Value::BulkString(b"email".to_vec()),
            Value::BulkString(b"x".to_vec()),
        ]);
        let Some(UserEntry::Profile(p)) = hash_entry(reply, &mut bytes) else {
            panic!("a hash is a profile");
        };
        assert_eq!(p.state.as_deref(), Some("Kerala"));
        assert_eq!(bytes, 5 + 6 + 5 + 1);
        assert_eq!(hash_entry(Value::Array(vec![]), &mut bytes), None);
        assert!(matches!(
            hash_entry(
                Value::Array(vec![
                    Value::BulkString(b"state".to_vec()),
                    Value::BulkString(vec![0xff])
                ]),
                &mut bytes
            ),
            Some(UserEntry::Malformed(_))
        ));
    }

    #[test]
    fn the_url_password_is_not_in_debug_output() {
        let cfg = RedisConfig {
            url: "redis://:hunter2@cache:6379".into(),
            ..RedisConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
