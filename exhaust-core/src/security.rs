//! Data security levels (SPEC section 7): which protection a request's files
//! get, chosen by the requesting org's tenant preference `dataSecurityPolicy`.
//! The level rules are here; the preference and org services are adapters
//! behind [`PreferenceSource`].

use crate::ids::OrgId;
use crate::source::SourceResult;
use std::fmt;
use std::future::Future;
use std::str::FromStr;

/// How a request's files are protected, in Sunbird's order (each level is
/// stronger than the one before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityLevel {
    /// A zip without password.
    Plain,
    /// A ZipCrypto zip whose password is the request's decoded key.
    PasswordProtected,
    /// The CSV in Sunbird's envelope, its file key wrapped with the request's
    /// decoded key, inside a plain zip.
    TextKeyEncrypted,
    /// The CSV in Sunbird's envelope, its file key wrapped with the org's RSA
    /// public key, inside a plain zip.
    PublicKeyEncrypted,
}

impl SecurityLevel {
    /// Every level, weakest first.
    pub const ALL: [SecurityLevel; 4] = [
        Self::Plain,
        Self::PasswordProtected,
        Self::TextKeyEncrypted,
        Self::PublicKeyEncrypted,
    ];

    /// Sunbird's name of the level (also the envelope's first line).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN_DATASET",
            Self::PasswordProtected => "PASSWORD_PROTECTED_DATASET",
            Self::TextKeyEncrypted => "TEXT_KEY_ENCRYPTED_DATASET",
            Self::PublicKeyEncrypted => "PUBLIC_KEY_ENCRYPTED_DATASET",
        }
    }
}

impl fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is not one of Sunbird's four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown data security level {0:?}: use PLAIN_DATASET, PASSWORD_PROTECTED_DATASET, TEXT_KEY_ENCRYPTED_DATASET or PUBLIC_KEY_ENCRYPTED_DATASET"
)]
pub struct UnknownLevel(pub String);

impl FromStr for SecurityLevel {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s.trim())
            .ok_or_else(|| UnknownLevel(s.to_string()))
    }
}

/// The level a `dataSecurityPolicy` preference gives a job: the job's own
/// level (`job.<job_id>.level`) when set and non-empty, else the tenant's
/// (`level`), as Sunbird's `DataSecurityUtil.getSecurityLevel`. `Ok(None)`
/// when the policy sets neither.
pub fn level_from_policy(
    data: &serde_json::Value,
    job_id: &str,
) -> Result<Option<SecurityLevel>, UnknownLevel> {
    let job_level = data
        .get("job")
        .and_then(|j| j.get(job_id))
        .and_then(|j| j.get("level"))
        .and_then(|l| l.as_str())
        .filter(|l| !l.trim().is_empty());
    let level = job_level.or_else(|| {
        data.get("level")
            .and_then(|l| l.as_str())
            .filter(|l| !l.trim().is_empty())
    });
    level.map(str::parse).transpose()
}

/// Where the security level and the org keys come from: the tenant
/// preference and org search APIs, or configuration.
pub trait PreferenceSource {
    /// The level of this org's files for this job.
    fn security_level(
        &self,
        org: &OrgId,
        job_id: &str,
    ) -> impl Future<Output = SourceResult<SecurityLevel>> + Send;

    /// The org's RSA public key (PEM, SubjectPublicKeyInfo), for
    /// [`SecurityLevel::PublicKeyEncrypted`]; `None` when the org has none.
    fn public_key(&self, org: &OrgId) -> impl Future<Output = SourceResult<Option<String>>> + Send;
}

/// One level for every org, no public keys: what runs when no preference
/// service is configured (default [`SecurityLevel::Plain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedLevel(pub SecurityLevel);

impl Default for FixedLevel {
    fn default() -> Self {
        Self(SecurityLevel::Plain)
    }
}

impl PreferenceSource for FixedLevel {
    fn security_level(
        &self,
        _org: &OrgId,
        _job_id: &str,
    ) -> impl Future<Output = SourceResult<SecurityLevel>> + Send {
        std::future::ready(Ok(self.0))
    }

    fn public_key(
        &self,
        _org: &OrgId,
    ) -> impl Future<Output = SourceResult<Option<String>>> + Send {
        std::future::ready(Ok(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_job_level_wins_over_the_tenant_level() {
        let data = json!({"level": "PLAIN_DATASET",
            "job": {"progress-exhaust": {"level": "TEXT_KEY_ENCRYPTED_DATASET"}}});
        assert_eq!(
            level_from_policy(&data, "progress-exhaust"),
            Ok(Some(SecurityLevel::TextKeyEncrypted))
        );
        // Another job's level does not apply.
        assert_eq!(
            level_from_policy(&data, "response-exhaust"),
            Ok(Some(SecurityLevel::Plain))
        );
    }

    #[test]
    fn an_empty_job_level_falls_back_to_the_tenant_level() {
        let data = json!({"level": "PASSWORD_PROTECTED_DATASET",
            "job": {"progress-exhaust": {"level": ""}}});
        assert_eq!(
            level_from_policy(&data, "progress-exhaust"),
            Ok(Some(SecurityLevel::PasswordProtected))
        );
        assert_eq!(level_from_policy(&json!({}), "progress-exhaust"), Ok(None));
    }

    #[test]
    fn unknown_level_names_are_refused_by_name() {
        let err = level_from_policy(&json!({"level": "TOP_SECRET"}), "progress-exhaust")
            .expect_err("unknown");
        assert!(err.to_string().contains("TOP_SECRET"), "{err}");
        for level in SecurityLevel::ALL {
            assert_eq!(level.as_str().parse::<SecurityLevel>(), Ok(level));
        }
    }
}
