//! Who may call the Data Exhaust API for which channel: the rules, pure.
//! The server finds out who the caller is (a verified API token, a
//! verified user token and the user's record, or a consumer id the gateway
//! vouches for) and asks these rules whether that caller may act for the
//! `X-Channel-ID` of the call; the stores keep API tokens only as
//! [`token_hash`]es.
//!
//! The channel is what the report is filtered by (SPEC section 3: a
//! request of another org than the collection's keeps only that org's
//! users; `System` keeps everyone), so a caller authorised for a channel
//! sees exactly that channel's learners, and nothing here lets one org's
//! caller act for another.

use sha2::{Digest, Sha256};
use std::fmt;

/// The channel that requests on behalf of the collection's own org: its
/// reports are not filtered.
pub const SYSTEM_CHANNEL: &str = "System";

/// The prefix of every API token, so a leaked one is recognisable (secret
/// scanners, logs).
pub const TOKEN_PREFIX: &str = "exh_";

/// Random bytes an API token is made of: 8 for its id, 32 for its secret.
pub const TOKEN_RANDOM_BYTES: usize = 40;

/// The roles Sunbird's deployment authorises for on-demand exhausts
/// (`ondemand.dataexhaust.roles`, reference 1.5).
pub const SUNBIRD_ROLES: [&str; 6] = [
    "ORG_ADMIN",
    "REPORT_ADMIN",
    "CONTENT_CREATOR",
    "COURSE_MENTOR",
    "PROGRAM_MANAGER",
    "PROGRAM_DESIGNER",
];

/// An API token as handed out once (`exh_<id>_<secret>`): the text is
/// never stored, only its [`token_hash`]. `Debug` shows the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token's public id (16 hex digits): what lists, logs and
    /// revocations name.
    pub id: String,
    /// The whole token, to give to its holder.
    pub text: String,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("text", &"<redacted>")
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

impl IssuedToken {
    /// A token from `random` bytes (the caller draws them from the OS: the
    /// core reads no randomness). The first 8 bytes make the id, the other
    /// 32 (256 bits) the secret.
    pub fn from_random(random: &[u8; TOKEN_RANDOM_BYTES]) -> Self {
        let id = hex(&random[..8]);
        let text = format!("{TOKEN_PREFIX}{id}_{}", hex(&random[8..]));
        Self { id, text }
    }

    /// What a store keeps of it.
    pub fn hash(&self) -> String {
        token_hash(&self.text)
    }
}

/// The id of a presented token (`exh_<16 hex>_<64 hex>`), or `None` when the
/// text cannot be one of ours (then it is refused without a store lookup).
pub fn token_id(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let is_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (is_hex(id, 16) && is_hex(secret, 64)).then_some(id)
}

/// The SHA-256 of a token, in hex: what the stores keep and compare. (A
/// token holds 256 random bits, so a fast hash is enough: no guessing can
/// find a token from its hash.)
pub fn token_hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Whether a presented token matches a stored hash, in time that does not
/// depend on where they differ.
pub fn token_matches(text: &str, stored_hash: &str) -> bool {
    let given = token_hash(text);
    given.len() == stored_hash.len()
        && given
            .bytes()
            .zip(stored_hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// An API token as a store keeps it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its public id.
    pub id: String,
    /// A name its creator gave it (who holds it, what for).
    pub name: String,
    /// The one channel it may act for (`System` included).
    pub channel: String,
    /// [`token_hash`] of the token.
    pub hash: String,
    /// When it was made, epoch ms.
    pub created_ms: i64,
    /// When it was revoked, epoch ms.
    pub revoked_ms: Option<i64>,
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No authentication (mode `none`, a loopback-only server): the
    /// headers are trusted as they come.
    Trusted,
    /// An API token, bound to one channel.
    Token {
        /// The token's id.
        id: String,
        /// Its channel.
        channel: String,
    },
    /// A service behind Sunbird's gateway, without a user token: its
    /// `X-Consumer-ID`, checked against `consumer_channel_mapping`.
    Consumer {
        /// `X-Consumer-ID` (possibly empty).
        consumer_id: String,
    },
    /// A user with a verified token, and what the user read API says of
    /// the user.
    User(UserGrant),
}

/// What Sunbird's user read API says of a user that the rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGrant {
    /// The user's id.
    pub user_id: String,
    /// `rootOrg.id`.
    pub root_org: String,
    /// Every role of the user (`organisations[].roles`, and `roles[].role`
    /// of newer user records).
    pub roles: Vec<String>,
}

impl UserGrant {
    /// Reads the `result.response` of a user read answer (Sunbird's
    /// `APIValidator`: roles of `organisations[].roles`, `rootOrg.id`). A
    /// field of another shape counts as absent.
    pub fn from_user_read(user_id: &str, response: &serde_json::Value) -> Self {
        let mut roles: Vec<String> = Vec::new();
        let mut push = |r: &str| {
            if !roles.iter().any(|x| x == r) {
                roles.push(r.to_string());
            }
        };
        if let Some(orgs) = response
            .get("organisations")
            .and_then(serde_json::Value::as_array)
        {
            for org in orgs {
                for r in org
                    .get("roles")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(r) = r.as_str() {
                        push(r);
                    }
                }
            }
        }
        // Newer user records list `roles: [{"role": "ORG_ADMIN", "scope": [..]}]`.
        for r in response
            .get("roles")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            match r {
                serde_json::Value::String(s) => push(s),
                other => {
                    if let Some(s) = other.get("role").and_then(serde_json::Value::as_str) {
                        push(s);
                    }
                }
            }
        }
        let root_org = response
            .get("rootOrg")
            .and_then(|o| o.get("id"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        Self {
            user_id: user_id.to_string(),
            root_org,
            roles,
        }
    }
}

/// Why a call is refused: 401 when the caller is not known, 403 when a
/// known caller may not act for the channel. The messages name no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No valid credentials (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Credentials that do not allow this channel (403).
    #[error("{0}")]
    Forbidden(String),
}

/// Sunbird's message for a consumer and channel that are not mapped.
pub fn consumer_message(consumer_id: &str, channel: &str) -> String {
    format!("Given X-Consumer-ID='{consumer_id}' and X-Channel-ID='{channel}' are not authorized")
}

/// Sunbird's message for a user who may not act for the channel.
pub const NOT_AUTHORIZED: &str = "You are not authorized.";

/// Whether `caller` may act for `channel` (the call's `X-Channel-ID`,
/// present and not blank).
///
/// - [`Caller::Trusted`]: yes (the deployment chose to trust the headers).
/// - [`Caller::Token`]: only its own channel, compared exactly; a `System`
///   token acts for `System` only, and no other token for `System`.
/// - [`Caller::Consumer`]: when `consumer_status` (the mapping's `status`
///   for the pair, looked up by the caller) is 1, as Sunbird's API.
/// - [`Caller::User`]: when one of the user's roles is in `roles` and the
///   user's root org is the channel (case-insensitive, as Sunbird
///   compares them).
pub fn authorize(
    caller: &Caller,
    channel: &str,
    consumer_status: Option<i32>,
    roles: &[String],
) -> Result<(), Denied> {
    match caller {
        Caller::Trusted => Ok(()),
        Caller::Token { channel: own, .. } if own == channel => Ok(()),
        Caller::Token { .. } => Err(Denied::Forbidden(format!(
            "this API token is not authorized for X-Channel-ID='{channel}'"
        ))),
        Caller::Consumer { consumer_id } => match consumer_status {
            Some(1) => Ok(()),
            _ => Err(Denied::Forbidden(consumer_message(consumer_id, channel))),
        },
        Caller::User(user) => {
            let has_role = user.roles.iter().any(|r| roles.iter().any(|a| a == r));
            if has_role && user.root_org.eq_ignore_ascii_case(channel) && !channel.is_empty() {
                Ok(())
            } else {
                Err(Denied::Forbidden(NOT_AUTHORIZED.into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_are_made_of_random_bytes_and_stored_as_hashes() {
        let mut random = [0u8; TOKEN_RANDOM_BYTES];
        for (i, b) in random.iter_mut().enumerate() {
            *b = u8::try_from(i * 7 % 256).unwrap_or(0);
        }
        let t = IssuedToken::from_random(&random);
        assert_eq!(t.id, "00070e151c232a31");
        assert!(t.text.starts_with("exh_00070e151c232a31_"), "{}", t.text);
        assert_eq!(t.text.len(), 4 + 16 + 1 + 64);
        assert_eq!(token_id(&t.text), Some(t.id.as_str()));
        assert!(token_matches(&t.text, &t.hash()));
        assert_eq!(t.hash().len(), 64);
        assert!(!t.hash().contains(&t.text[21..]));
        let mut other = t.text.clone();
        other.pop();
        other.push('x');
        assert!(!token_matches(&other, &t.hash()));
        assert!(!token_matches(&t.text, ""));
        // Known answer: SHA-256 of "abc".
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let shown = format!("{t:?}");
        assert!(!shown.contains(&t.text), "{shown}");
    }

    #[test]
    fn only_our_token_shape_has_an_id() {
        let good = format!("exh_{}_{}", "a".repeat(16), "0".repeat(64));
        assert!(token_id(&good).is_some());
        for bad in [
            "",
            "exh_",
            "Bearer x",
            &format!("exh_{}_{}", "A".repeat(16), "0".repeat(64)),
            &format!("exh_{}_{}", "a".repeat(15), "0".repeat(64)),
            &format!("exh_{}_{}x", "a".repeat(16), "0".repeat(64)),
            &format!("xyz_{}_{}", "a".repeat(16), "0".repeat(64)),
        ] {
            assert_eq!(token_id(bad), None, "{bad}");
        }
    }

    fn roles() -> Vec<String> {
        SUNBIRD_ROLES.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn a_token_acts_for_its_own_channel_only() {
        let org = Caller::Token {
            id: "t1".into(),
            channel: "org-a".into(),
        };
        assert_eq!(authorize(&org, "org-a", None, &roles()), Ok(()));
        for other in ["System", "org-b", "ORG-A", ""] {
            assert!(
                matches!(
                    authorize(&org, other, None, &roles()),
                    Err(Denied::Forbidden(_))
                ),
                "{other}"
            );
        }
        let system = Caller::Token {
            id: "t2".into(),
            channel: SYSTEM_CHANNEL.into(),
        };
        assert_eq!(authorize(&system, "System", None, &roles()), Ok(()));
        assert!(authorize(&system, "org-a", None, &roles()).is_err());
        assert_eq!(authorize(&Caller::Trusted, "anything", None, &[]), Ok(()));
    }

    #[test]
    fn consumers_need_an_active_mapping() {
        let c = Caller::Consumer {
            consumer_id: "portal".into(),
        };
        assert_eq!(authorize(&c, "org-a", Some(1), &roles()), Ok(()));
        for status in [None, Some(0), Some(2)] {
            assert_eq!(
                authorize(&c, "org-a", status, &roles()),
                Err(Denied::Forbidden(
                    "Given X-Consumer-ID='portal' and X-Channel-ID='org-a' are not authorized"
                        .into()
                ))
            );
        }
    }

    #[test]
    fn users_need_a_role_and_the_channel_as_root_org() {
        let response = json!({
            "rootOrg": {"id": "0126796199493140480", "slug": "tn"},
            "organisations": [
                {"organisationId": "x", "roles": ["PUBLIC"]},
                {"organisationId": "y", "roles": ["COURSE_MENTOR", 7]}
            ],
            "roles": [{"role": "BOOK_REVIEWER", "scope": []}, "REPORT_VIEWER"]
        });
        let grant = UserGrant::from_user_read("u-1", &response);
        assert_eq!(grant.root_org, "0126796199493140480");
        assert_eq!(
            grant.roles,
            ["PUBLIC", "COURSE_MENTOR", "BOOK_REVIEWER", "REPORT_VIEWER"]
        );
        let user = Caller::User(grant.clone());
        assert_eq!(
            authorize(&user, "0126796199493140480", None, &roles()),
            Ok(())
        );
        let denied = Err(Denied::Forbidden(NOT_AUTHORIZED.into()));
        assert_eq!(authorize(&user, "System", None, &roles()), denied);
        assert_eq!(authorize(&user, "other-org", None, &roles()), denied);
        // A role outside the authorised list is not enough.
        let mut public = grant.clone();
        public.roles = vec!["PUBLIC".into()];
        assert_eq!(
            authorize(&Caller::User(public), "0126796199493140480", None, &roles()),
            denied
        );
        // Roles of the newer form count too.
        let newer = UserGrant::from_user_read(
            "u-2",
            &json!({"rootOrg": {"id": "o"}, "roles": [{"role": "ORG_ADMIN"}]}),
        );
        assert_eq!(authorize(&Caller::User(newer), "O", None, &roles()), Ok(()));
        // A record without a root org is never authorised.
        let orphan = UserGrant::from_user_read("u-3", &json!({"roles": ["ORG_ADMIN"]}));
        assert_eq!(authorize(&Caller::User(orphan), "", None, &roles()), denied);
    }
}
