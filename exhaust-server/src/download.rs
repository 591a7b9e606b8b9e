//! Download links (reference 1.7). Cloud stores sign their own URLs
//! ([`Storage::signed_url`]); files in a local folder are handed out by this
//! server at `GET /dataset/v1/download/{token}`, where the token carries the
//! object key and an expiry, signed with HMAC-SHA256:
//!
//! ```text
//! <base64url(key)>.<expiry, epoch seconds>.<base64url(HMAC-SHA256(secret, key "\n" expiry))>
//! ```
//!
//! The secret is configured, or drawn at random when the server starts; a
//! random secret makes every link handed out before a restart invalid.
//! Tokens are checked in constant time, and the key inside a valid token is
//! still parsed by [`Storage`], so no token can reach outside the store.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use exhaust_writer::{Storage, StorageError};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// The shortest configured download secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The route of signed local downloads, without the token.
pub const DOWNLOAD_PREFIX: &str = "/dataset/v1/download/";

/// A secret that never shows in logs or debug output.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// 32 random bytes (from the operating system's generator, through
    /// two v4 UUIDs: 244 random bits).
    pub fn random() -> Self {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(bytes)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a download token is refused (all answered with 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token this server writes.
    #[error("the download link is not valid")]
    Malformed,
    /// The signature does not match (tampered, or signed with another secret,
    /// e.g. before a restart with a random secret).
    #[error("the download link is not valid")]
    BadSignature,
    /// Past its expiry.
    #[error("the download link has expired")]
    Expired,
}

/// Signs and checks download links.
#[derive(Debug, Clone)]
pub struct Downloads {
    secret: Secret,
    public_url: String,
    expiry: Duration,
}

impl Downloads {
    /// Links under `public_url` (e.g. `https://reports.example.org`), valid
    /// for `expiry`.
    pub fn new(secret: Secret, public_url: &str, expiry: Duration) -> Self {
        Self {
            secret,
            public_url: public_url.trim_end_matches('/').to_string(),
            expiry,
        }
    }

    /// How long links stay valid.
    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    /// The base URL of the links.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// A key of its own for another use of the server's secret (the
    /// console's sessions): HMAC-SHA256 of `purpose` under the secret, so
    /// neither key tells anything of the other or of the secret.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.secret.expose())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, key: &str, expires: i64) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.secret.expose())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The token for `key`, valid until `expires` (epoch seconds).
    pub fn token(&self, key: &str, expires: i64) -> String {
        let sig = self.mac(key, expires).finalize().into_bytes();
        format!(
            "{}.{expires}.{}",
            URL_SAFE_NO_PAD.encode(key.as_bytes()),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The link for `key`, valid from `now` for the configured expiry.
    pub fn url(&self, key: &str, now: DateTime<Utc>) -> String {
        let expires = now.timestamp() + self.expiry.as_secs() as i64;
        format!(
            "{}{DOWNLOAD_PREFIX}{}",
            self.public_url,
            self.token(key, expires)
        )
    }

    /// The key a token grants at `now`, once its signature and expiry hold.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<String, TokenError> {
        let mut parts = token.split('.');
        let (Some(key), Some(expires), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let key = URL_SAFE_NO_PAD
            .decode(key)
            .ok()
            .and_then(|k| String::from_utf8(k).ok())
            .ok_or(TokenError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        // Constant-time comparison.
        self.mac(&key, expires)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        if now.timestamp() > expires {
            return Err(TokenError::Expired);
        }
        Ok(key)
    }

    /// A download URL for a stored file: the store's own signed URL when it
    /// signs (cloud stores), else a link to this server.
    pub async fn link(
        &self,
        storage: &Storage,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<String, StorageError> {
        match storage.signed_url(key, self.expiry).await? {
            Some(url) => Ok(url),
            None => Ok(self.url(key, now)),
        }
    }
}

/// The object key of a stored `download_urls` entry. The Lern job stores
/// container-relative keys, used as they are; older jobs stored absolute
/// URLs, from which Sunbird's API drops the scheme, host and container
/// (4 `/`-parts for `http(s)://host/container/key`, 3 for
/// `wasb://container@host/key`). Only entries with a `://` are treated as
/// URLs, so a relative key is never cut.
pub fn object_key(stored: &str) -> String {
    if !stored.contains("://") {
        return stored.to_string();
    }
    let skip = if stored.starts_with("http") { 4 } else { 3 };
    stored.split('/').skip(skip).collect::<Vec<_>>().join("/")
}

/// The file name to offer for a key: its last segment, with anything that
/// could break the `Content-Disposition` header replaced.
pub fn file_name(key: &str) -> String {
    let last = key.rsplit('/').next().unwrap_or(key);
    last.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn downloads() -> Downloads {
        Downloads::new(
            Secret::new(b"0123456789abcdef0123".to_vec()),
            "http://h:1/",
            Duration::from_secs(1800),
        )
    }

    #[test]
    fn a_token_grants_its_key_until_it_expires() {
        let d = downloads();
        let now = Utc::now();
        let url = d.url("progress-exhaust/R/b_progress_1.zip", now);
        let token = url
            .strip_prefix("http://h:1/dataset/v1/download/")
            .expect("prefix");
        assert_eq!(
            d.verify(token, now).as_deref(),
            Ok("progress-exhaust/R/b_progress_1.zip")
        );
        let later = now + chrono::Duration::seconds(1801);
        assert_eq!(d.verify(token, later), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let d = downloads();
        let now = Utc::now();
        let token = d.token("progress-exhaust/R/b.zip", now.timestamp() + 60);
        let parts: Vec<&str> = token.split('.').collect();
        // Another key with the same signature.
        let other = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("progress-exhaust/S/b.zip"),
            parts[1],
            parts[2]
        );
        assert_eq!(d.verify(&other, now), Err(TokenError::BadSignature));
        // A later expiry with the same signature.
        let longer = format!("{}.{}.{}", parts[0], now.timestamp() + 99_999, parts[2]);
        assert_eq!(d.verify(&longer, now), Err(TokenError::BadSignature));
        // Another secret.
        let foreign = Downloads::new(Secret::random(), "http://h:1", Duration::from_secs(60));
        assert_eq!(foreign.verify(&token, now), Err(TokenError::BadSignature));
        for junk in ["", "a.b", "a.b.c.d", "!!.1.AAAA", "YQ.x.AAAA"] {
            assert_eq!(d.verify(junk, now), Err(TokenError::Malformed), "{junk}");
        }
    }

    #[test]
    fn stored_urls_become_keys_as_sunbird_cuts_them() {
        assert_eq!(
            object_key("progress-exhaust/R/b.zip"),
            "progress-exhaust/R/b.zip"
        );
        assert_eq!(
            object_key("https://acct.blob.core.windows.net/reports/progress-exhaust/R/b.zip"),
            "progress-exhaust/R/b.zip"
        );
        assert_eq!(
            object_key("wasb://reports@acct.blob.core.windows.net/progress-exhaust/R/b.zip"),
            "progress-exhaust/R/b.zip"
        );
        // A relative key that happens to contain "http" is kept whole.
        assert_eq!(
            object_key("progress-exhaust/http-batch/b.zip"),
            "progress-exhaust/http-batch/b.zip"
        );
        assert_eq!(file_name("a/b/x \"y\".zip"), "x__y_.zip");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let d = downloads();
        assert!(!format!("{d:?}").contains("0123456789abcdef"));
    }
}
