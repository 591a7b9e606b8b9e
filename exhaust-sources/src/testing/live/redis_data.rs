//! A snapshot's caches loaded into the real Redis at 127.0.0.1:6379, under a
//! key prefix of the test's own, in the production databases (users 12,
//! relations 5). Tests run in parallel against one Redis, so nothing is ever
//! flushed: each test deletes exactly the keys it wrote (when dropped), and
//! every key also expires after 15 minutes in case a test process dies.

use super::schema::{snapshot_lines, snapshot_rows};
use redis::Value as RedisValue;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The Redis every test uses.
pub const URL: &str = "redis://127.0.0.1:6379";
/// Sunbird's user cache database.
pub const USER_DB: i64 = 12;
/// Sunbird's relation cache database.
pub const RELATION_DB: i64 = 5;

/// A prefix no other test (or test process) uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "exhaust-test:{}:{}:{nanos}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Keys written by one test; deleted when dropped.
pub struct RedisData {
    /// The prefix of every key.
    pub prefix: String,
    /// The server's URL, without a database ([`URL`] unless made with
    /// [`RedisData::load_at`]).
    base: String,
    keys: Vec<(i64, String)>,
    connections: Vec<(i64, redis::aio::MultiplexedConnection)>,
}

impl Default for RedisData {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisData {
    /// An empty set of keys under a fresh prefix.
    pub fn new() -> Self {
        Self::new_at(URL)
    }

    /// An empty set of keys under a fresh prefix, on the server at `base`
    /// (a URL without a database).
    pub fn new_at(base: &str) -> Self {
        Self {
            prefix: unique_prefix(),
            base: base.to_owned(),
            keys: Vec::new(),
            connections: Vec::new(),
        }
    }

    /// Loads `user_cache.jsonl` (hashes, keys prefixed) and
    /// `relation_cache.jsonl` (sets, keys prefixed) of a snapshot folder.
    pub async fn load(dir: &Path) -> Self {
        Self::load_at(URL, dir).await
    }

    /// As [`RedisData::load`], on the server at `base`.
    pub async fn load_at(base: &str, dir: &Path) -> Self {
        let mut data = Self::new_at(base);
        for row in snapshot_rows(dir, "user_cache") {
            let key = row["key"].as_str().expect("a key").to_owned();
            data.user_value(&key, &row["value"]).await;
        }
        data.load_relations(dir).await;
        data
    }

    /// Loads the hashes of `user_cache.jsonl` whose snapshot key `keep`
    /// accepts, and `relation_cache.jsonl`, as [`RedisData::load`] does but
    /// reading the files line by line and writing `per_pipeline` entries
    /// per round trip: what a benchmark loads, a large snapshot quickly.
    /// Entries that are not hashes of scalars are left out.
    #[allow(dead_code)] // The live benchmark's, not every test's.
    pub async fn load_bulk(dir: &Path, per_pipeline: usize, keep: impl Fn(&str) -> bool) -> Self {
        let mut data = Self::new();
        let mut con = redis::Client::open(data.url(USER_DB))
            .expect("a redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("the test Redis at 127.0.0.1:6379 is running");
        let mut pipe = redis::pipe();
        let mut queued = 0;
        for row in snapshot_lines(dir, "user_cache") {
            let Some(snapshot_key) = row.get("key").and_then(Value::as_str) else {
                continue;
            };
            if !keep(snapshot_key) {
                continue;
            }
            let Some(fields) = row.get("value").and_then(hash_fields) else {
                continue;
            };
            if fields.is_empty() {
                continue;
            }
            let key = format!("{}{snapshot_key}", data.prefix);
            pipe.cmd("HSET").arg(&key).arg(fields).ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(900).ignore();
            data.keys.push((USER_DB, key));
            queued += 1;
            if queued >= per_pipeline.max(1) {
                let () = pipe.query_async(&mut con).await.expect("writes");
                pipe = redis::pipe();
                queued = 0;
            }
        }
        if queued > 0 {
            let () = pipe.query_async(&mut con).await.expect("writes");
        }
        data.load_relations(dir).await;
        data
    }

    /// Loads `relation_cache.jsonl` (sets, keys prefixed).
    async fn load_relations(&mut self, dir: &Path) {
        for row in snapshot_rows(dir, "relation_cache") {
            let key = format!("{}{}", self.prefix, row["key"].as_str().expect("a key"));
            let members: Vec<String> = row["value"]
                .as_array()
                .expect("a list of members")
                .iter()
                .map(|m| m.as_str().expect("text").to_owned())
                .collect();
            if !members.is_empty() {
                self.send(RELATION_DB, &key, redis::cmd("SADD").arg(&key).arg(members))
                    .await;
            }
        }
    }

    /// Writes a user cache entry as the snapshot holds it: a hash of its
    /// fields, or, when the value is not a hash of strings, a string key
    /// (a key of the wrong type).
    pub async fn user_value(&mut self, snapshot_key: &str, value: &Value) {
        let key = format!("{}{snapshot_key}", self.prefix);
        match hash_fields(value) {
            Some(f) if !f.is_empty() => {
                self.send(USER_DB, &key, redis::cmd("HSET").arg(&key).arg(f))
                    .await;
            }
            Some(_) => {}
            None => {
                self.send(
                    USER_DB,
                    &key,
                    redis::cmd("SET").arg(&key).arg(value.to_string()),
                )
                .await;
            }
        }
    }

    /// How many keys were written.
    #[allow(dead_code)] // The live benchmark's, not every test's.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing was loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn url(&self, db: i64) -> String {
        format!("{}/{db}", self.base)
    }

    async fn send(&mut self, db: i64, key: &str, cmd: &mut redis::Cmd) {
        let mut con = match self.connections.iter().find(|(d, _)| *d == db) {
            Some((_, c)) => c.clone(),
            None => {
                let c = redis::Client::open(self.url(db))
                    .expect("a redis URL")
                    .get_multiplexed_async_connection()
                    .await
                    .expect("the test Redis at 127.0.0.1:6379 is running");
                self.connections.push((db, c.clone()));
                c
            }
        };
        let _: RedisValue = cmd.query_async(&mut con).await.expect("a write");
        let _: RedisValue = redis::cmd("EXPIRE")
            .arg(key)
            .arg(900)
            .query_async(&mut con)
            .await
            .expect("an expiry");
        self.keys.push((db, key.to_owned()));
    }
}

/// A cache value as the fields of a hash: `None` when it is not an object
/// of scalars (null fields left out).
fn hash_fields(value: &Value) -> Option<Vec<(String, String)>> {
    value.as_object().and_then(|m| {
        m.iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Number(n) => Some((k.clone(), n.to_string())),
                Value::Bool(b) => Some((k.clone(), b.to_string())),
                _ => None,
            })
            .collect()
    })
}

impl Drop for RedisData {
    fn drop(&mut self) {
        for db in [USER_DB, RELATION_DB] {
            let keys: Vec<&String> = self
                .keys
                .iter()
                .filter(|(d, _)| *d == db)
                .map(|(_, k)| k)
                .collect();
            if keys.is_empty() {
                continue;
            }
            if let Ok(mut con) = redis::Client::open(self.url(db)).and_then(|c| c.get_connection())
            {
                for part in keys.chunks(500) {
                    let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(part).query(&mut con);
                }
            }
        }
    }
}
