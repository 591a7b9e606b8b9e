//! The console's session cookie and CSRF tokens.
//!
//! The cookie holds a small signed record ([`Session`]): a random nonce,
//! the chosen channel (mode `none`), the API token's id and channel (mode
//! `token`; never the token itself), and an expiry. It is signed with
//! HMAC-SHA256 under a key derived from the server's download secret
//! ([`Downloads::derive_key`]), so a server whose secret is random (none
//! configured) signs the sessions out on restart, as it does its links.
//! The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/console`, and
//! `Secure` when the public URL is `https://`.
//!
//! Every form carries a CSRF token: the HMAC of the session's nonce under
//! another derived key, compared in constant time. A cross-site form can
//! neither read the token nor (`SameSite=Strict`) send the cookie.

use crate::download::Downloads;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name.
pub const COOKIE: &str = "exhaust_console";

/// How long a session lasts from its start, in seconds (a working day).
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// What the session cookie holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// A random nonce, the seed of the session's CSRF token.
    pub nonce: String,
    /// The channel the pages show (mode `none`: chosen; mode `token`: the
    /// token's; mode `sunbird`: chosen when the gateway sends none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The API token's id (mode `token`), checked against the store on
    /// every page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// When the session ends, epoch seconds.
    pub expires: i64,
}

impl Session {
    /// A new anonymous session from `now`.
    pub fn fresh(now: DateTime<Utc>) -> Self {
        Self {
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            channel: None,
            token_id: None,
            expires: now.timestamp() + SESSION_SECONDS,
        }
    }
}

/// The keys of sessions and CSRF tokens.
#[derive(Clone)]
pub struct Keys {
    session: [u8; 32],
    csrf: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

fn mac(key: &[u8; 32], data: &[u8]) -> HmacSha256 {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    m.update(data);
    m
}

impl Keys {
    /// The keys derived from the server's secret.
    pub fn new(downloads: &Downloads) -> Self {
        Self {
            session: downloads.derive_key("exhaust console session v1"),
            csrf: downloads.derive_key("exhaust console csrf v1"),
        }
    }

    /// The cookie value of `session`: `<base64url(json)>.<base64url(mac)>`.
    pub fn seal(&self, session: &Session) -> String {
        let json = serde_json::to_vec(session).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(&json);
        let sig = mac(&self.session, body.as_bytes()).finalize().into_bytes();
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The session a cookie value holds, when its signature is right and it
    /// has not expired at `now`.
    pub fn open(&self, value: &str, now: DateTime<Utc>) -> Option<Session> {
        let (body, sig) = value.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        // Constant-time comparison.
        mac(&self.session, body.as_bytes())
            .verify_slice(&sig)
            .ok()?;
        let json = URL_SAFE_NO_PAD.decode(body).ok()?;
        let session: Session = serde_json::from_slice(&json).ok()?;
        (session.expires > now.timestamp()).then_some(session)
    }

    /// The CSRF token of a session, for its forms.
    pub fn csrf(&self, session: &Session) -> String {
        URL_SAFE_NO_PAD.encode(
            mac(&self.csrf, session.nonce.as_bytes())
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `given` is the session's CSRF token (constant time).
    pub fn csrf_ok(&self, session: &Session, given: &str) -> bool {
        URL_SAFE_NO_PAD.decode(given).ok().is_some_and(|sig| {
            mac(&self.csrf, session.nonce.as_bytes())
                .verify_slice(&sig)
                .is_ok()
        })
    }
}

/// The session cookie's value in a request, when there is one.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` header for `value` (an empty value and no age: the
/// cookie removed).
pub fn set_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.max(0)
    );
    // Base64url, digits and fixed text: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::Secret;
    use std::time::Duration;

    fn keys(secret: &[u8]) -> Keys {
        Keys::new(&Downloads::new(
            Secret::new(secret.to_vec()),
            "http://h",
            Duration::from_secs(60),
        ))
    }

    #[test]
    fn sessions_open_only_signed_and_unexpired() {
        let k = keys(b"0123456789abcdef0123");
        let now = Utc::now();
        let mut s = Session::fresh(now);
        s.channel = Some("ch1".into());
        s.token_id = Some("0011".into());
        let sealed = k.seal(&s);
        assert_eq!(k.open(&sealed, now), Some(s.clone()));
        // Another secret, another body, expired, junk.
        assert_eq!(
            keys(b"another secret, long enough").open(&sealed, now),
            None
        );
        let (body, sig) = sealed.split_once('.').expect("two parts");
        let mut other = s.clone();
        other.channel = Some("ch2".into());
        let forged = format!("{}.{sig}", k.seal(&other).split_once('.').expect("parts").0);
        assert_eq!(k.open(&forged, now), None);
        assert_eq!(k.open(&format!("{body}.{sig}x"), now), None);
        let later = now + chrono::Duration::seconds(SESSION_SECONDS + 1);
        assert_eq!(k.open(&sealed, later), None);
        assert_eq!(k.open("nothing", now), None);
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let k = keys(b"0123456789abcdef0123");
        let now = Utc::now();
        let a = Session::fresh(now);
        let b = Session::fresh(now);
        let token = k.csrf(&a);
        assert!(k.csrf_ok(&a, &token));
        assert!(!k.csrf_ok(&b, &token));
        assert!(!k.csrf_ok(&a, ""));
        assert!(!k.csrf_ok(&a, "not base64!"));
    }

    #[test]
    fn the_cookie_is_read_among_others_and_set_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; exhaust_console=abc.def; b=2"),
        );
        assert_eq!(cookie_value(&h), Some("abc.def"));
        let set = set_cookie("abc.def", 60, true);
        let text = set.to_str().expect("text");
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/console",
            "Secure",
            "Max-Age=60",
        ] {
            assert!(text.contains(part), "{text}");
        }
        assert!(
            !set_cookie("x", 60, false)
                .to_str()
                .expect("text")
                .contains("Secure")
        );
    }
}
