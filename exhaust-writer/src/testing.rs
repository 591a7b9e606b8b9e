//! Test support: the cloud storage emulators that `scripts/services` starts
//! on loopback, and the storage settings that reach each of them the way a
//! deployment reaches the real cloud (a custom endpoint, credentials,
//! options), so that tests take the production code paths.
//!
//! | emulator | speaks | default endpoint | variable |
//! |---|---|---|---|
//! | moto (`moto_server`) | S3 | `http://127.0.0.1:9320` | `EXHAUST_TEST_S3_ENDPOINT` |
//! | moto, OCI-style settings | S3 (OCI's compatibility API) | the same | the same |
//! | Azurite (`azurite-blob`) | Azure Blob | `http://127.0.0.1:10000/devstoreaccount1` | `EXHAUST_TEST_AZURE_ENDPOINT` |
//! | fake-gcs-server | GCS (reads, listing, deleting; no XML-API upload) | `http://127.0.0.1:4443` | `EXHAUST_TEST_GCS_ENDPOINT` |
//!
//! fake-gcs-server answers path-style requests (`/<bucket>/<object>`, the
//! form `object_store` sends to a custom `google_base_url`) only when their
//! `Host` is its `-public-host`, which `scripts/services` sets to
//! `127.0.0.1:4443`; an endpoint elsewhere needs the emulator started with
//! that host and port. It takes none of the uploads `object_store` makes
//! (`exhaust-writer/tests/storage.rs` says why, with the code), so GCS tests
//! put their files in through GCS's JSON upload API and check the rest.
//! Every emulator has the bucket (container) [`TEST_BUCKET`], which
//! `scripts/services` creates; tests keep apart by key prefix. A test asks
//! [`Emulator::for_test`]: when the emulator is down it says `NOT RUN` and
//! the test returns, unless `EXHAUST_TEST_CLOUD=require` (set by
//! `scripts/test` and so in CI), where a missing emulator fails the test.
//!
//! The credentials here are the emulators' own (Azurite's published
//! development key, a service-account key made for these tests): they grant
//! nothing anywhere else.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The bucket (S3) or container (Azure) every emulator has.
pub const TEST_BUCKET: &str = "exhaust-test";

/// Azurite's account and its published development key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development key (not a secret: it is in Azure's docs).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A service-account key made for the GCS emulator tests: object_store signs
/// its requests and URLs with it, as it would with a real one.
const GCS_KEY: &str = include_str!("testing/gcs-emulator-service-account.json");

/// A storage configuration: what `[storage] url` and `[storage.options]`
/// hold in a deployment.
#[derive(Clone, PartialEq, Eq)]
pub struct CloudSettings {
    /// The storage URL (`s3://bucket`, `az://container`, `gs://bucket`).
    pub url: String,
    /// The `object_store` options.
    pub options: Vec<(String, String)>,
}

// Written by hand: the options hold keys (the emulators' well-known ones
// here, but these settings are shaped as a deployment's), so only their
// names show.
impl std::fmt::Debug for CloudSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("CloudSettings")
            .field("url", &self.url)
            .field("options", &names)
            .finish()
    }
}

/// A local emulator of a cloud blob store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulator {
    /// S3 (moto's server mode), path-style, region `us-east-1`.
    S3,
    /// OCI Object Storage through its S3-compatible endpoint: a custom
    /// endpoint, path-style addressing and an OCI region, on the S3
    /// emulator.
    Oci,
    /// Azure Blob (Azurite), reached as a named account at a custom
    /// endpoint with an account key.
    Azure,
    /// Google Cloud Storage (fake-gcs-server), reached with a
    /// service-account key at a custom base URL.
    Gcs,
}

impl Emulator {
    /// Every emulated store.
    pub const ALL: [Emulator; 4] = [Emulator::S3, Emulator::Oci, Emulator::Azure, Emulator::Gcs];

    /// The store's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Emulator::S3 => "S3 (moto)",
            Emulator::Oci => "OCI via S3 settings (moto)",
            Emulator::Azure => "Azure Blob (Azurite)",
            Emulator::Gcs => "GCS (fake-gcs-server)",
        }
    }

    /// The cargo feature of `exhaust-writer` that carries this store.
    pub fn feature(self) -> &'static str {
        match self {
            Emulator::S3 | Emulator::Oci => "s3",
            Emulator::Azure => "azure",
            Emulator::Gcs => "gcs",
        }
    }

    /// Whether the emulator checks request and URL signatures (and so
    /// refuses a tampered or expired signed URL, or a wrong key). moto and
    /// fake-gcs-server accept any signature and credentials; Azurite checks
    /// them.
    pub fn checks_signatures(self) -> bool {
        matches!(self, Emulator::Azure)
    }

    /// Where the emulator listens (its variable, else the default).
    pub fn endpoint(self) -> String {
        let (var, default) = match self {
            Emulator::S3 | Emulator::Oci => ("EXHAUST_TEST_S3_ENDPOINT", "http://127.0.0.1:9320"),
            Emulator::Azure => (
                "EXHAUST_TEST_AZURE_ENDPOINT",
                "http://127.0.0.1:10000/devstoreaccount1",
            ),
            Emulator::Gcs => ("EXHAUST_TEST_GCS_ENDPOINT", "http://127.0.0.1:4443"),
        };
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
            .trim_end_matches('/')
            .to_string()
    }

    /// The settings for [`TEST_BUCKET`].
    pub fn settings(self) -> CloudSettings {
        self.settings_for(TEST_BUCKET)
    }

    /// The settings for `bucket`, as a deployment would write them.
    pub fn settings_for(self, bucket: &str) -> CloudSettings {
        let endpoint = self.endpoint();
        let o = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        match self {
            Emulator::S3 => CloudSettings {
                url: format!("s3://{bucket}"),
                options: o(&[
                    ("aws_endpoint", &endpoint),
                    ("aws_region", "us-east-1"),
                    ("aws_access_key_id", "exhaust-test-key-id"),
                    ("aws_secret_access_key", "exhaust-test-secret-key"),
                    ("aws_virtual_hosted_style_request", "false"),
                    ("allow_http", "true"),
                ]),
            },
            // OCI: https://<namespace>.compat.objectstorage.<region>.oraclecloud.com,
            // path-style, the OCI region, a customer secret key.
            Emulator::Oci => CloudSettings {
                url: format!("s3://{bucket}"),
                options: o(&[
                    ("aws_endpoint", &endpoint),
                    ("aws_region", "ap-mumbai-1"),
                    ("aws_access_key_id", "exhaust-test-oci-key-id"),
                    ("aws_secret_access_key", "exhaust-test-oci-secret-key"),
                    ("aws_virtual_hosted_style_request", "false"),
                    ("allow_http", "true"),
                ]),
            },
            Emulator::Azure => CloudSettings {
                url: format!("az://{bucket}"),
                options: o(&[
                    ("azure_storage_account_name", AZURITE_ACCOUNT),
                    ("azure_storage_account_key", AZURITE_KEY),
                    ("azure_storage_endpoint", &endpoint),
                    ("allow_http", "true"),
                ]),
            },
            Emulator::Gcs => CloudSettings {
                url: format!("gs://{bucket}"),
                options: o(&[
                    ("google_service_account_key", GCS_KEY),
                    ("google_base_url", &endpoint),
                ]),
            },
        }
    }

    /// Whether something accepts connections at the endpoint.
    pub fn is_up(self) -> bool {
        let endpoint = self.endpoint();
        let host_port = endpoint
            .split("://")
            .nth(1)
            .unwrap_or(&endpoint)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        host_port
            .to_socket_addrs()
            .map(|mut addrs| {
                addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
            })
            .unwrap_or(false)
    }

    /// The settings for a test named `test`, when the emulator is up. When
    /// it is down: `None` after a `NOT RUN` line, or a panic when
    /// `EXHAUST_TEST_CLOUD=require`.
    pub fn for_test(self, test: &str) -> Option<CloudSettings> {
        if self.is_up() {
            return Some(self.settings());
        }
        let msg = format!(
            "{test}: NOT RUN on {}: nothing answers at {} (start it with scripts/services)",
            self.name(),
            self.endpoint()
        );
        if required() {
            panic!("{msg}; EXHAUST_TEST_CLOUD=require");
        }
        eprintln!("{msg}");
        None
    }
}

/// Whether cloud tests must fail when an emulator is down
/// (`EXHAUST_TEST_CLOUD=require`).
pub fn required() -> bool {
    std::env::var("EXHAUST_TEST_CLOUD").is_ok_and(|v| v == "require")
}

/// A key prefix no other test or run shares: `<test>-<pid>-<nanos>`.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{test}-{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gcs_key_is_a_service_account_key() {
        let key: serde_json::Value = serde_json::from_str(GCS_KEY).expect("json");
        assert_eq!(key["type"], "service_account");
        assert!(
            key["private_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("-----BEGIN PRIVATE KEY-----"))
        );
    }

    #[test]
    fn settings_name_the_bucket_and_endpoint() {
        for e in Emulator::ALL {
            let s = e.settings_for("b-1");
            assert!(s.url.ends_with("://b-1"), "{e:?}: {}", s.url);
            assert!(
                s.options.iter().any(|(_, v)| *v == e.endpoint()),
                "{e:?}: the endpoint is configured"
            );
        }
    }

    #[test]
    fn debug_output_shows_option_names_not_values() {
        for e in Emulator::ALL {
            let s = e.settings_for("b-1");
            for text in [format!("{s:?}"), format!("{s:#?}")] {
                for (name, value) in &s.options {
                    assert!(text.contains(name.as_str()), "{e:?}: {name} in {text}");
                    // Short values ("true") are words of any text.
                    if value.len() > 8 {
                        assert!(
                            !text.contains(value.as_str()),
                            "{e:?}: {name}'s value shows"
                        );
                    }
                }
            }
        }
    }
}
