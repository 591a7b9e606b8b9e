//! Authentication and authorisation of the Data Exhaust API (submit, read,
//! list), before any of them touches the request store. Downloads are
//! signed links of their own; health, metrics and the OpenAPI document
//! hold no learner data.
//!
//! Three modes (`[auth] mode`, `EXHAUST_AUTH`):
//! - `none`: the `X-Channel-ID` header is trusted as it comes. Anyone who
//!   reaches the server acts for any channel, so [`Authorizer::new`]
//!   refuses it on any address but loopback.
//! - `token`: every call carries `Authorization: Bearer <token>`, an API
//!   token made by `exhaust token create`, bound to one channel (or
//!   `System`), kept in the request store as a hash. The server's single
//!   configured bearer token (`EXHAUST_BEARER_TOKEN`), when set, is one
//!   more token, bound to `System`.
//! - `sunbird`: Sunbird's rules (reference 1.5). Without a user token, the
//!   pair (`X-Consumer-ID`, `X-Channel-ID`) must have status 1 in Sunbird's
//!   `consumer_channel_mapping`. With `x-authenticated-user-token`, the
//!   token is verified here (RS256 against the deployment's Keycloak public
//!   keys, expiry and issuer), the user named by its subject is read from
//!   Sunbird's user read API, and one of the user's roles must be an
//!   authorised one and the user's root org the channel.
//!
//! Authentication (who calls: 401) runs as middleware before the body is
//! read; authorisation (may this caller act for this channel: 403) runs in
//! the handlers where Sunbird's API runs it, after validation. The rules
//! themselves are `exhaust_core::auth`'s.

use crate::download::Secret;
use axum::http::HeaderMap;
use chrono::Utc;
use exhaust_core::auth::{Caller, Denied, NOT_AUTHORIZED, SYSTEM_CHANNEL, UserGrant, authorize};
use exhaust_sources::requests::AnyRequestStore;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How `exhaust-server` authorises calls (`[auth] mode`, `$EXHAUST_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Trust the headers as they come: allowed only on a loopback address.
    None,
    /// API tokens bound to one channel each (`exhaust token create`).
    Token,
    /// Sunbird's rules: `consumer_channel_mapping`, or a verified user
    /// token with an authorised role in the channel's root org.
    Sunbird,
}

impl AuthMode {
    /// The setting's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Token => "token",
            Self::Sunbird => "sunbird",
        }
    }
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "token" => Ok(Self::Token),
            "sunbird" => Ok(Self::Sunbird),
            _ => Err(format!(
                "authorisation mode {s:?} is not one of none, token, sunbird"
            )),
        }
    }
}

/// `[auth]`: who may call the API for which channel.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `none`, `token` or `sunbird` (`$EXHAUST_AUTH`). Unset: `token` when
    /// the server has a bearer token (`EXHAUST_BEARER_TOKEN`), else `none`
    /// (which the server accepts on a loopback address only).
    pub mode: Option<AuthMode>,
    /// `[auth.sunbird]`: what the `sunbird` mode reads.
    pub sunbird: SunbirdAuthSettings,
}

/// `[auth.sunbird]`: Sunbird's authorisation, as its analytics API does it
/// (reference 1.5), with the user token verified here.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SunbirdAuthSettings {
    /// The folder of Keycloak's RS256 public keys, one file per key named
    /// by its key id (`kid`), PEM or bare base64 as Sunbird's services keep
    /// them (`accesstoken.publickey.basepath`; `$EXHAUST_AUTH_PUBLIC_KEY_DIR`).
    pub public_key_dir: Option<PathBuf>,
    /// The tokens' issuer, `<sso url>/realms/<realm>` (`$EXHAUST_AUTH_ISSUER`).
    pub issuer: Option<String>,
    /// Sunbird's user read API, to which the user id is appended
    /// (`user.profile.url`, e.g.
    /// `http://learner-service:9000/private/user/v1/read/`;
    /// `$EXHAUST_AUTH_USER_READ_URL`).
    pub user_read_url: Option<String>,
    /// The roles that may ask for exhausts (`ondemand.dataexhaust.roles`).
    pub roles: Vec<String>,
    /// Sunbird's consumer table in the request store's database
    /// (`$EXHAUST_AUTH_CONSUMER_TABLE`; deployments use
    /// `<env>_consumer_channel_mapping`).
    pub consumer_table: String,
    /// Seconds a consumer's mapping and a user's roles are remembered.
    pub cache_seconds: u64,
}

impl Default for SunbirdAuthSettings {
    fn default() -> Self {
        Self {
            public_key_dir: None,
            issuer: None,
            user_read_url: None,
            roles: exhaust_core::auth::SUNBIRD_ROLES
                .iter()
                .map(|r| r.to_string())
                .collect(),
            consumer_table: exhaust_sources::requests::CONSUMER_TABLE.into(),
            cache_seconds: 60,
        }
    }
}

impl<'de> serde::Deserialize<'de> for AuthMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The header of Sunbird's user token.
pub const USER_TOKEN_HEADER: &str = "x-authenticated-user-token";
/// The header naming the user, set by Sunbird's gateway.
pub const USER_ID_HEADER: &str = "X-Authenticated-Userid";
/// The header naming the calling service, set by Sunbird's gateway.
pub const CONSUMER_HEADER: &str = "X-Consumer-ID";

/// The id callers see for the configured bearer token.
pub const STATIC_TOKEN_ID: &str = "configured";

/// How long the user read API may take.
const USER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The most entries a cache keeps; past it, the cache starts again empty
/// (a burst of distinct callers never grows memory without bound).
const CACHE_CAP: usize = 10_000;

/// Why a call could not be authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The caller is not known (401) or may not act for the channel (403).
    Denied(Denied),
    /// What authorisation reads did not answer (the request store, the
    /// user read API): 500, try again later. The text is for the log.
    Unavailable(String),
}

impl From<Denied> for AuthFailure {
    fn from(d: Denied) -> Self {
        Self::Denied(d)
    }
}

/// Who is calling, as authentication found out: a caller the rules can
/// judge as it is, or a user whose token is verified and whose record
/// authorisation still has to read.
#[derive(Clone)]
pub enum Identity {
    /// A caller the rules judge as it is.
    Known(Caller),
    /// A user with a verified token (`sunbird` mode).
    User {
        /// The user id of the token's subject.
        user_id: String,
        /// The token, passed on to the user read API.
        token: Secret,
    },
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known(c) => f.debug_tuple("Known").field(c).finish(),
            Self::User { user_id, .. } => f
                .debug_struct("User")
                .field("user_id", user_id)
                .finish_non_exhaustive(),
        }
    }
}

impl Identity {
    /// For logs: the kind of caller and its id (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Self::Known(Caller::Trusted) => "trusted".into(),
            Self::Known(Caller::Token { id, .. }) => format!("token {id}"),
            Self::Known(Caller::Consumer { consumer_id }) => format!("consumer {consumer_id:?}"),
            Self::Known(Caller::User(g)) => format!("user {}", g.user_id),
            Self::User { user_id, .. } => format!("user {user_id}"),
        }
    }
}

/// A map whose entries expire.
struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(v, _)| v.clone())
    }

    fn put(&self, key: K, value: V, ttl: Duration) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_CAP {
                entries.clear();
            }
            entries.insert(key, (value, Instant::now() + ttl));
        }
    }
}

/// One of Keycloak's public keys, named by its key id.
struct PublicKey {
    kid: String,
    key: DecodingKey,
}

/// What the `sunbird` mode needs.
struct Sunbird {
    keys: Vec<PublicKey>,
    validation: Validation,
    user_read_url: String,
    roles: Vec<String>,
    consumer_table: String,
    ttl: Duration,
    http: reqwest::Client,
    consumers: TtlCache<(String, String), Option<i32>>,
    /// User grants by the SHA-256 of the user token.
    users: TtlCache<[u8; 32], UserGrant>,
}

enum Mode {
    None,
    Token { fixed: Option<Secret> },
    Sunbird(Box<Sunbird>),
}

/// Decides who may call the API for which channel.
pub struct Authorizer {
    mode: Mode,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("mode", &self.mode_name())
            .finish_non_exhaustive()
    }
}

/// The claims read from a user token.
#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
}

impl Authorizer {
    /// The authoriser of `settings` for a server bound to `bind`, with the
    /// configured bearer token when there is one. Refuses `none` off
    /// loopback, and a `sunbird` mode without its keys, issuer or user
    /// read URL, naming the setting. In `token` mode the token table is
    /// made when absent.
    pub async fn new(
        settings: &AuthSettings,
        bearer_token: Option<Secret>,
        bind: SocketAddr,
        store: &AnyRequestStore,
    ) -> anyhow::Result<Self> {
        let mode = settings.mode.unwrap_or(if bearer_token.is_some() {
            AuthMode::Token
        } else {
            AuthMode::None
        });
        let mode = match mode {
            AuthMode::None => {
                if !bind.ip().is_loopback() {
                    anyhow::bail!(
                        "[auth] mode is none (the default), which trusts every call's X-Channel-ID \
                         header, so the server listens only on a loopback address, and {bind} is \
                         not one: set [auth] mode (EXHAUST_AUTH) to token or sunbird, or bind to \
                         127.0.0.1"
                    );
                }
                if bearer_token.is_some() {
                    anyhow::bail!(
                        "a bearer token is configured, but [auth] mode (EXHAUST_AUTH) is none: \
                         set it to token, or unset the bearer token"
                    );
                }
                Mode::None
            }
            AuthMode::Token => {
                store
                    .ensure_token_table()
                    .await
                    .map_err(|e| anyhow::anyhow!("[auth] mode token: {e}"))?;
                Mode::Token {
                    fixed: bearer_token,
                }
            }
            AuthMode::Sunbird => {
                if bearer_token.is_some() {
                    anyhow::bail!(
                        "a bearer token is configured, but [auth] mode (EXHAUST_AUTH) is sunbird, \
                         which does not use it: unset it, or use mode token"
                    );
                }
                Mode::Sunbird(Box::new(Sunbird::new(settings)?))
            }
        };
        Ok(Self { mode })
    }

    /// An authoriser that trusts the headers (mode `none`), whatever the
    /// address: for tests and embedders that authorise before the server.
    pub fn trusting() -> Self {
        Self { mode: Mode::None }
    }

    /// `none`, `token` or `sunbird`.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::None => "none",
            Mode::Token { .. } => "token",
            Mode::Sunbird(_) => "sunbird",
        }
    }

    /// Whether calls must carry `Authorization: Bearer` (the `token` mode).
    pub fn uses_bearer(&self) -> bool {
        matches!(self.mode, Mode::Token { .. })
    }

    /// Whether the API token `id`, bound to `channel`, is still one the
    /// server accepts (`token` mode): known, not revoked, of that channel;
    /// the configured bearer token while it is configured. The console
    /// checks its sessions with it on every page, so a revoked token's
    /// session stops at once.
    pub async fn token_still_valid(
        &self,
        store: &AnyRequestStore,
        id: &str,
        channel: &str,
    ) -> Result<bool, AuthFailure> {
        let Mode::Token { fixed } = &self.mode else {
            return Ok(false);
        };
        if id == STATIC_TOKEN_ID {
            return Ok(fixed.is_some() && channel == SYSTEM_CHANNEL);
        }
        let record = store
            .token(id)
            .await
            .map_err(|e| AuthFailure::Unavailable(format!("reading an API token: {e}")))?;
        Ok(record.is_some_and(|r| r.revoked_ms.is_none() && r.channel == channel))
    }

    /// Who is calling, from the headers: 401 (`Denied::Unauthenticated`)
    /// when the mode's credentials are missing or not valid. No network
    /// call: in `token` mode one read of the token's row.
    pub async fn authenticate(
        &self,
        store: &AnyRequestStore,
        headers: &HeaderMap,
    ) -> Result<Identity, AuthFailure> {
        match &self.mode {
            Mode::None => Ok(Identity::Known(Caller::Trusted)),
            Mode::Token { fixed } => authenticate_token(fixed.as_ref(), store, headers)
                .await
                .map(Identity::Known),
            Mode::Sunbird(s) => s.authenticate(headers),
        }
    }

    /// Whether the caller may act for `channel`: 403 (`Denied::Forbidden`)
    /// with Sunbird's message otherwise. In `sunbird` mode this reads the
    /// consumer table or the user read API (each remembered for
    /// `cache_seconds`).
    pub async fn authorize(
        &self,
        store: &AnyRequestStore,
        identity: &Identity,
        channel: &str,
    ) -> Result<(), AuthFailure> {
        let roles: &[String] = match &self.mode {
            Mode::Sunbird(s) => &s.roles,
            _ => &[],
        };
        match (&self.mode, identity) {
            (Mode::Sunbird(s), Identity::Known(caller @ Caller::Consumer { consumer_id })) => {
                let status = s.consumer_status(store, consumer_id, channel).await?;
                Ok(authorize(caller, channel, status, roles)?)
            }
            (Mode::Sunbird(s), Identity::User { user_id, token }) => {
                let grant = s.grant(user_id, token).await?;
                Ok(authorize(&Caller::User(grant), channel, None, roles)?)
            }
            (_, Identity::Known(caller)) => Ok(authorize(caller, channel, None, roles)?),
            // A user identity comes only from the `sunbird` mode.
            (_, Identity::User { .. }) => Err(Denied::Forbidden(NOT_AUTHORIZED.into()).into()),
        }
    }
}

/// The bearer token of `Authorization: Bearer <token>` (the scheme in any
/// case), when present.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The message of a missing or refused API token.
pub const BEARER_REQUIRED: &str = "a valid Authorization: Bearer token is required";

async fn authenticate_token(
    fixed: Option<&Secret>,
    store: &AnyRequestStore,
    headers: &HeaderMap,
) -> Result<Caller, AuthFailure> {
    let refused = || AuthFailure::Denied(Denied::Unauthenticated(BEARER_REQUIRED.into()));
    let Some(given) = bearer(headers) else {
        return Err(refused());
    };
    if let Some(fixed) = fixed
        && same_secret(given.as_bytes(), fixed.expose())
    {
        return Ok(Caller::Token {
            id: STATIC_TOKEN_ID.into(),
            channel: SYSTEM_CHANNEL.into(),
        });
    }
    // A text that cannot be one of our tokens is refused without a read.
    let Some(id) = exhaust_core::auth::token_id(given) else {
        return Err(refused());
    };
    let record = store
        .token(id)
        .await
        .map_err(|e| AuthFailure::Unavailable(format!("reading an API token: {e}")))?;
    match record {
        Some(r) if r.revoked_ms.is_none() && exhaust_core::auth::token_matches(given, &r.hash) => {
            Ok(Caller::Token {
                id: r.id,
                channel: r.channel,
            })
        }
        _ => {
            tracing::info!(
                token_id = id,
                "API token refused: unknown, revoked or wrong"
            );
            Err(refused())
        }
    }
}

/// Compares two secrets in time that does not depend on their content or
/// length (through their SHA-256 digests).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl Sunbird {
    fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let s = &settings.sunbird;
        let missing = |what: &str, env: &str| {
            anyhow::anyhow!(
                "[auth] mode sunbird needs [auth.sunbird] {what} (or {env}) to verify user tokens"
            )
        };
        let dir = s
            .public_key_dir
            .as_deref()
            .ok_or_else(|| missing("public_key_dir", "EXHAUST_AUTH_PUBLIC_KEY_DIR"))?;
        let issuer = s
            .issuer
            .clone()
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| missing("issuer", "EXHAUST_AUTH_ISSUER"))?;
        let user_read_url = s
            .user_read_url
            .clone()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or_else(|| {
                missing(
                    "user_read_url (an http:// or https:// URL)",
                    "EXHAUST_AUTH_USER_READ_URL",
                )
            })?;
        if s.roles.is_empty() {
            anyhow::bail!("[auth.sunbird] roles is empty: no user could ever be authorised");
        }
        let keys = load_keys(dir)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Keycloak's audience is the client, which this server is not.
        validation.validate_aud = false;
        let http = reqwest::Client::builder()
            .timeout(USER_READ_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("the user read API's HTTP client: {e}"))?;
        Ok(Self {
            keys,
            validation,
            user_read_url,
            roles: s.roles.clone(),
            consumer_table: s.consumer_table.clone(),
            ttl: Duration::from_secs(s.cache_seconds),
            http,
            consumers: TtlCache::new(),
            users: TtlCache::new(),
        })
    }

    /// Without a user token, the consumer the gateway names; with one, the
    /// token verified (signature, expiry, issuer) and the user it names,
    /// whose record [`Sunbird::grant`] reads. The gateway's
    /// `X-Authenticated-Userid`, when present, must be that user: a valid
    /// token never speaks for another user.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthFailure> {
        let Some(token) = header(headers, USER_TOKEN_HEADER) else {
            return Ok(Identity::Known(Caller::Consumer {
                consumer_id: header(headers, CONSUMER_HEADER)
                    .unwrap_or_default()
                    .to_string(),
            }));
        };
        let refused = || AuthFailure::Denied(Denied::Unauthenticated(NOT_AUTHORIZED.into()));
        let claims = self.verify(token).ok_or_else(refused)?;
        // Keycloak's subject is `f:<realm id>:<user id>` in Sunbird.
        let user_id = claims.sub.rsplit(':').next().unwrap_or_default();
        if user_id.is_empty() {
            return Err(refused());
        }
        if let Some(named) = header(headers, USER_ID_HEADER)
            && named != user_id
        {
            tracing::info!("user token refused: X-Authenticated-Userid names another user");
            return Err(refused());
        }
        Ok(Identity::User {
            user_id: user_id.to_string(),
            token: Secret::new(token.as_bytes().to_vec()),
        })
    }

    fn verify(&self, token: &str) -> Option<Claims> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid;
        let candidates: Vec<&PublicKey> = match &kid {
            Some(kid) => self.keys.iter().filter(|k| &k.kid == kid).collect(),
            None => self.keys.iter().collect(),
        };
        for k in candidates {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &self.validation) {
                Ok(data) => return Some(data.claims),
                Err(e) => tracing::info!(kid = %k.kid, reason = %e, "user token not verified"),
            }
        }
        None
    }

    async fn consumer_status(
        &self,
        store: &AnyRequestStore,
        consumer_id: &str,
        channel: &str,
    ) -> Result<Option<i32>, AuthFailure> {
        let key = (consumer_id.to_string(), channel.to_string());
        if let Some(status) = self.consumers.get(&key) {
            return Ok(status);
        }
        let status = store
            .consumer_status(&self.consumer_table, consumer_id, channel)
            .await
            .map_err(|e| {
                AuthFailure::Unavailable(format!("reading the consumer-channel mapping: {e}"))
            })?;
        self.consumers.put(key, status, self.ttl);
        Ok(status)
    }

    /// The user's roles and root org from Sunbird's user read API (the
    /// user token passed on, as Sunbird's API does), remembered for the
    /// cache time by the token's digest.
    async fn grant(&self, user_id: &str, token: &Secret) -> Result<UserGrant, AuthFailure> {
        let digest: [u8; 32] = Sha256::digest(token.expose()).into();
        if let Some(g) = self.users.get(&digest) {
            return Ok(g);
        }
        let url = format!(
            "{}{}",
            self.user_read_url,
            utf8_percent_encode_segment(user_id)
        );
        let unavailable = |e: String| AuthFailure::Unavailable(format!("the user read API: {e}"));
        let answer = self
            .http
            .get(&url)
            .header(USER_TOKEN_HEADER, token.expose())
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = answer.status();
        let body: serde_json::Value = answer
            .json()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let code = body
            .get("responseCode")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if !code.eq_ignore_ascii_case("ok") {
            if status.is_server_error() {
                return Err(unavailable(format!("status {status}")));
            }
            // Sunbird answers with the user read's own message.
            let message = body
                .pointer("/params/errmsg")
                .and_then(serde_json::Value::as_str)
                .filter(|m| !m.is_empty())
                .unwrap_or(NOT_AUTHORIZED);
            return Err(Denied::Forbidden(message.to_string()).into());
        }
        let response = body
            .pointer("/result/response")
            .cloned()
            .unwrap_or_default();
        let grant = UserGrant::from_user_read(user_id, &response);
        self.users.put(digest, grant.clone(), self.ttl);
        Ok(grant)
    }
}

/// A user id as one path segment: every byte but unreserved characters
/// percent-encoded, so an id never changes the URL's path or query.
fn utf8_percent_encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keycloak's public keys from `dir`: each file one key, named by its key
/// id, PEM (`-----BEGIN PUBLIC KEY-----`) or the bare base64 of the key
/// that Sunbird's services keep.
fn load_keys(dir: &Path) -> anyhow::Result<Vec<PublicKey>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        anyhow::anyhow!("[auth.sunbird] public_key_dir cannot be read: {}", e.kind())
    })?;
    let mut keys = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let kid = entry.file_name().to_string_lossy().into_owned();
        if kid.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("public key {kid}: {}", e.kind()))?;
        let pem = if text.contains("-----BEGIN") {
            text
        } else {
            let body: String = text.split_whitespace().collect();
            format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
        };
        let key = DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("public key {kid} is not an RSA public key: {e}"))?;
        keys.push(PublicKey { kid, key });
    }
    if keys.is_empty() {
        anyhow::bail!("[auth.sunbird] public_key_dir holds no public key");
    }
    keys.sort_by(|a, b| a.kid.cmp(&b.kid));
    tracing::info!(keys = keys.len(), "user token public keys loaded");
    Ok(keys)
}

/// Now in epoch ms, for token records.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_tokens_are_read_in_any_case() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", HeaderValue::from_static("Bearer  abc "));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert("authorization", HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn user_ids_stay_one_path_segment() {
        assert_eq!(utf8_percent_encode_segment("u-1_a.b~c"), "u-1_a.b~c");
        assert_eq!(
            utf8_percent_encode_segment("../x?y=1#z é"),
            "..%2Fx%3Fy%3D1%23z%20%C3%A9"
        );
    }

    #[test]
    fn caches_forget_after_their_time() {
        let c: TtlCache<&str, i32> = TtlCache::new();
        c.put("a", 1, Duration::from_secs(60));
        c.put("b", 2, Duration::ZERO);
        assert_eq!(c.get(&"a"), Some(1));
        assert_eq!(c.get(&"b"), None);
        assert_eq!(c.get(&"c"), None);
    }
}
