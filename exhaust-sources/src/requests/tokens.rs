//! What the API's authorisation reads from the request store's database:
//! the API tokens of the `token` mode (a table of our own,
//! `exhaust_api_token`, beside `job_request`, made by
//! [`AnyRequestStore::ensure_token_table`] when that mode is used) and
//! Sunbird's `consumer_channel_mapping` of the `sunbird` mode (read only,
//! as Sunbird's analytics API reads it).
//!
//! A token is kept as its SHA-256 ([`exhaust_core::auth::token_hash`]),
//! never as its text; the rules of who may act for which channel are
//! `exhaust_core::auth`'s.

use super::{AnyRequestStore, Schema, db_error, quoted_table};
use exhaust_core::auth::{IssuedToken, TOKEN_RANDOM_BYTES, TokenRecord};
use exhaust_core::request::MAX_CHANNEL_CHARS;
use exhaust_core::store::{StoreError, StoreResult};
use sqlx::Row;

/// The API token table's name (in the schema of the request table on
/// PostgreSQL).
pub const TOKEN_TABLE: &str = "exhaust_api_token";

/// Sunbird's table of the services its gateway lets call for a channel
/// (deployments prefix it: `<env>_consumer_channel_mapping`).
pub const CONSUMER_TABLE: &str = "consumer_channel_mapping";

const TOKEN_COLUMNS: &str = "id, name, channel, token_hash, created_ms, revoked_ms";

fn record_of<R>(r: &R) -> StoreResult<TokenRecord>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let get = |e: sqlx::Error| StoreError::BadData(format!("API token row: {e}"));
    Ok(TokenRecord {
        id: r.try_get("id").map_err(get)?,
        name: r.try_get("name").map_err(get)?,
        channel: r.try_get("channel").map_err(get)?,
        hash: r.try_get("token_hash").map_err(get)?,
        created_ms: r.try_get("created_ms").map_err(get)?,
        revoked_ms: r.try_get("revoked_ms").map_err(get)?,
    })
}

/// Runs `body` with `pool` bound to the store's connection pool, whichever
/// database it is: one statement text for both (`$1` markers, which SQLite
/// reads as its numbered parameters too), one body, typed per database.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            #[cfg(feature = "postgres")]
            AnyRequestStore::Postgres(s) => {
                let $pool = s.pool();
                $body
            }
            #[cfg(feature = "sqlite")]
            AnyRequestStore::Sqlite(s) => {
                let $pool = s.pool();
                $body
            }
        }
    };
}

/// The API token table's columns.
const TOKEN_TABLE_COLUMNS: [&str; 6] = [
    "id",
    "name",
    "channel",
    "token_hash",
    "created_ms",
    "revoked_ms",
];

/// The API token table's DDL, the table named as SQL (`t`).
fn token_table_ddl_as(t: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (
    id text PRIMARY KEY,
    name text NOT NULL,
    channel text NOT NULL,
    token_hash text NOT NULL,
    created_ms bigint NOT NULL,
    revoked_ms bigint)"
    )
}

/// The API token table's DDL on PostgreSQL, in the schema of the request
/// table `table` (as `deploy/sql/exhaust_api_token.sql` ships it for the
/// default table).
pub fn token_table_ddl(table: &str) -> StoreResult<String> {
    let (schema, _, _) = quoted_table(table)?;
    Ok(token_table_ddl_as(&match schema {
        Some(schema) => format!("\"{schema}\".\"{TOKEN_TABLE}\""),
        None => format!("\"{TOKEN_TABLE}\""),
    }))
}

/// The most characters of a token's name.
pub const MAX_TOKEN_NAME_CHARS: usize = 256;

impl AnyRequestStore {
    /// Makes an API token for `channel` from `random` bytes (drawn from the
    /// OS by the caller) and stores its record, creating the token table
    /// when absent. The returned token's text is shown once and kept
    /// nowhere. A channel that is blank, holds a control character or is
    /// longer than an `X-Channel-ID` may be is refused, as is such a name.
    pub async fn create_token(
        &self,
        channel: &str,
        name: &str,
        now_ms: i64,
        random: &[u8; TOKEN_RANDOM_BYTES],
    ) -> StoreResult<IssuedToken> {
        let bad = |what: &str, max: usize, text: &str| {
            text.chars().any(char::is_control)
                || text.chars().count() > max
                || (what == "channel" && text.trim().is_empty())
        };
        if bad("channel", MAX_CHANNEL_CHARS, channel) || channel.trim() != channel {
            return Err(StoreError::Refused(format!(
                "a token's channel must be an X-Channel-ID value: not blank, no control \
                 characters or surrounding spaces, at most {MAX_CHANNEL_CHARS} characters"
            )));
        }
        if bad("name", MAX_TOKEN_NAME_CHARS, name) {
            return Err(StoreError::Refused(format!(
                "a token's name must have no control characters and at most \
                 {MAX_TOKEN_NAME_CHARS} characters"
            )));
        }
        self.ensure_token_table().await?;
        let token = IssuedToken::from_random(random);
        self.insert_token(&TokenRecord {
            id: token.id.clone(),
            name: name.to_string(),
            channel: channel.to_string(),
            hash: token.hash(),
            created_ms: now_ms,
            revoked_ms: None,
        })
        .await?;
        Ok(token)
    }

    /// The token table's name as SQL: on PostgreSQL in the request table's
    /// schema (quoted), on SQLite plain.
    fn token_table(&self) -> StoreResult<String> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => {
                let (schema, _, _) = quoted_table(s.table())?;
                Ok(match schema {
                    Some(schema) => format!("\"{schema}\".\"{TOKEN_TABLE}\""),
                    None => format!("\"{TOKEN_TABLE}\""),
                })
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Ok(TOKEN_TABLE.to_string()),
        }
    }

    /// Creates the API token table when absent (the `token` mode needs it;
    /// nothing else does, so a deployment that never uses it never gets it).
    /// Under [`Schema::Check`] it is only checked, as the request table is.
    pub async fn ensure_token_table(&self) -> StoreResult<()> {
        let t = self.token_table()?;
        if self.schema() == Schema::Manage {
            let ddl = token_table_ddl_as(&t);
            return on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(ddl))
                .execute(pool)
                .await
                .map(|_| ()))
            .map_err(|e| db_error("creating the API token table", e));
        }
        let fix = "apply deploy/sql/exhaust_api_token.sql (`exhaust schema` prints it), \
                   or set [store] manage_schema = true";
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => {
                let (schema, _, _) = quoted_table(s.table())?;
                super::postgres::check_table(
                    s.pool(),
                    schema.as_deref(),
                    TOKEN_TABLE,
                    &TOKEN_TABLE_COLUMNS,
                    &[],
                    &["id"],
                    fix,
                )
                .await
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => {
                super::sqlite::check_table(
                    s.pool(),
                    TOKEN_TABLE,
                    &TOKEN_TABLE_COLUMNS,
                    &[],
                    &["id"],
                    fix,
                )
                .await
            }
        }
    }

    /// Stores a new token's record (its hash, never the token).
    pub async fn insert_token(&self, record: &TokenRecord) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO {} ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
            self.token_table()?
        );
        on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&record.id)
            .bind(&record.name)
            .bind(&record.channel)
            .bind(&record.hash)
            .bind(record.created_ms)
            .bind(record.revoked_ms)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(|e| db_error("storing an API token", e))
    }

    /// Every token record, oldest first.
    pub async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM {} ORDER BY created_ms, id",
            self.token_table()?
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
                .map_err(|e| db_error("listing API tokens", e))?;
            rows.iter().map(record_of).collect()
        })
    }

    /// The record of token `id`, revoked or not.
    pub async fn token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM {} WHERE id = $1",
            self.token_table()?
        );
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(|e| db_error("reading an API token", e))?;
            row.as_ref().map(record_of).transpose()
        })
    }

    /// Revokes token `id` at `now_ms`: `true` when it was active, `false`
    /// when it is unknown or was revoked before (its first revocation time
    /// is kept).
    pub async fn revoke_token(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE {} SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
            self.token_table()?
        );
        let done = on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(now_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| db_error("revoking an API token", e))?;
        Ok(done > 0)
    }

    /// The `status` of the pair in Sunbird's consumer table (`table`, a
    /// plain or `schema.table` name), `None` when the pair is absent.
    /// Sunbird's API lets a pair with status 1 call for the channel. Older
    /// deployments' tables have no primary key: should the pair be there
    /// twice, the lowest status counts (a null as 0), so a pair that was
    /// ever turned off somewhere stays off.
    pub async fn consumer_status(
        &self,
        table: &str,
        consumer_id: &str,
        channel: &str,
    ) -> StoreResult<Option<i32>> {
        let (_, _, quoted) = quoted_table(table)?;
        let sql = format!(
            "SELECT CAST(MIN(COALESCE(status, 0)) AS bigint) FROM {quoted} \
             WHERE consumer_id = $1 AND channel = $2"
        );
        let status: Option<i64> =
            on_pool!(self, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(consumer_id)
            .bind(channel)
            .fetch_one(pool)
            .await)
            .map_err(|e| db_error("reading the consumer-channel mapping", e))?;
        Ok(status.and_then(|s| i32::try_from(s).ok()))
    }
}
