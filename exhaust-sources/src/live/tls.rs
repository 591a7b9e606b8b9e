//! TLS to the live stores (Cassandra and Redis): which certificate
//! authorities to trust, a client certificate for mutual TLS, and, for
//! Cassandra, the name its nodes' certificates carry. One settings type for
//! both (`[source.live.cassandra.tls]`, `[source.live.redis.tls]`), built
//! with rustls on aws-lc-rs like every other TLS client of the workspace.
//!
//! Files are read when a source connects, and a message names the file and
//! what is wrong with it, never its contents (a key is a secret).
//!
//! Why a server name for Cassandra: the driver verifies each node's
//! certificate against the node's IP address (scylla's `connection.rs`
//! connects with `ServerName::IpAddress`), and Cassandra certificates
//! usually name hosts, not addresses. With `server_name` set, every node's
//! certificate is verified, chain and name, against that name instead.
//! Redis verifies the URL's host, so there the name goes in the URL.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// TLS to one store. Default: off (Cassandra), or as the URL says (Redis:
/// `rediss://` is TLS), trusting the system's certificate authorities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// Connect with TLS (Cassandra; for Redis, a `redis://` URL becomes
    /// `rediss://`).
    pub enabled: bool,
    /// PEM file of the certificate authorities to trust instead of the
    /// system's (a private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM file of this client's certificate (chain), for a store that asks
    /// for one (mutual TLS); with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key_file: Option<PathBuf>,
    /// Cassandra: the name every node's certificate must carry (default:
    /// the node's IP address, as the driver checks). Not for Redis, whose
    /// URL's host is the name checked.
    pub server_name: Option<String>,
}

impl TlsSettings {
    /// Whether anything asks for TLS beyond the default.
    pub fn is_configured(&self) -> bool {
        self.enabled
            || self.ca_file.is_some()
            || self.client_cert_file.is_some()
            || self.client_key_file.is_some()
            || self.server_name.is_some()
    }

    /// The client certificate and key files, both or neither.
    fn client_files(&self) -> Result<Option<(&Path, &Path)>, String> {
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(c), Some(k)) => Ok(Some((c, k))),
            (None, None) => Ok(None),
            (Some(_), None) => Err("client_cert_file is set without client_key_file".into()),
            (None, Some(_)) => Err("client_key_file is set without client_cert_file".into()),
        }
    }
}

/// A PEM file's bytes; the message names the file and the setting.
fn read_pem(path: &Path, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {setting} {}: {e}", path.display()))
}

#[cfg(feature = "redis")]
impl TlsSettings {
    /// What the `redis` crate takes: the CA and client files, read.
    pub(crate) fn redis_certificates(&self) -> Result<redis::TlsCertificates, String> {
        if self.server_name.is_some() {
            return Err(
                "server_name is not a Redis setting: the name checked is the URL's host, \
                 so put the name the certificate carries in the URL"
                    .into(),
            );
        }
        let root_cert = match &self.ca_file {
            Some(p) => Some(read_pem(p, "ca_file")?),
            None => None,
        };
        let client_tls = match self.client_files()? {
            Some((cert, key)) => Some(redis::ClientTlsConfig {
                client_cert: read_pem(cert, "client_cert_file")?,
                client_key: read_pem(key, "client_key_file")?,
            }),
            None => None,
        };
        Ok(redis::TlsCertificates {
            client_tls,
            root_cert,
        })
    }
}

#[cfg(feature = "cassandra")]
mod rustls_config {
    use super::{TlsSettings, read_pem};
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
    use std::path::Path;
    use std::sync::Arc;

    fn certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
        let pem = read_pem(path, setting)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{setting} {} is not PEM certificates: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{setting} {} holds no certificate", path.display()));
        }
        Ok(certs)
    }

    fn roots(settings: &TlsSettings) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match &settings.ca_file {
            Some(path) => {
                for cert in certificates(path, "ca_file")? {
                    roots.add(cert).map_err(|e| {
                        format!(
                            "ca_file {} holds an unusable certificate: {e}",
                            path.display()
                        )
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(
                        "the system has no certificate authorities to trust: set ca_file".into(),
                    );
                }
            }
        }
        Ok(roots)
    }

    /// Checks the certificate against one configured name, whatever name
    /// the driver connects with (see the module's docs).
    #[derive(Debug)]
    struct NamedServer {
        inner: Arc<WebPkiServerVerifier>,
        name: ServerName<'static>,
    }

    impl ServerCertVerifier for NamedServer {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            _driver_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            self.inner
                .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    }

    impl TlsSettings {
        /// A rustls client configuration from these settings.
        pub fn rustls_client_config(&self) -> Result<ClientConfig, String> {
            let name = match &self.server_name {
                Some(name) => Some(
                    ServerName::try_from(name.clone())
                        .map_err(|e| format!("server_name {name:?} is not a host name: {e}"))?,
                ),
                None => None,
            };
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let roots = Arc::new(roots(self)?);
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS cannot be set up: {e}"))?;
            let builder = match name {
                None => builder.with_root_certificates(roots),
                Some(name) => {
                    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                        .build()
                        .map_err(|e| format!("TLS cannot be set up: {e}"))?;
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(NamedServer { inner, name }))
                }
            };
            match self.client_files()? {
                None => Ok(builder.with_no_client_auth()),
                Some((cert, key)) => {
                    let chain = certificates(cert, "client_cert_file")?;
                    let key_pem = read_pem(key, "client_key_file")?;
                    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                        format!(
                            "client_key_file {} is not a PEM private key: {e}",
                            key.display()
                        )
                    })?;
                    builder.with_client_auth_cert(chain, key).map_err(|e| {
                        format!("the client certificate and key do not go together: {e}")
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_files_come_in_pairs() {
        let half = TlsSettings {
            client_cert_file: Some("c.pem".into()),
            ..TlsSettings::default()
        };
        assert!(half.client_files().unwrap_err().contains("client_key_file"));
        assert!(half.is_configured());
        assert!(!TlsSettings::default().is_configured());
    }

    #[cfg(feature = "cassandra")]
    #[test]
    fn unreadable_or_wrong_files_are_named_not_shown() {
        let dir = std::env::temp_dir().join(format!("exhaust-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "SECRET-BYTES not a certificate").expect("written");
        let missing = TlsSettings {
            ca_file: Some(dir.join("absent.pem")),
            ..TlsSettings::default()
        };
        let e = missing.rustls_client_config().unwrap_err();
        assert!(
            e.contains("cannot read ca_file") && e.contains("absent.pem"),
            "{e}"
        );
        let wrong = TlsSettings {
            ca_file: Some(junk.clone()),
            ..TlsSettings::default()
        };
        let e = wrong.rustls_client_config().unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        assert!(!e.contains("SECRET-BYTES"), "{e}");
        let bad_name = TlsSettings {
            server_name: Some("not a name!".into()),
            ..TlsSettings::default()
        };
        let e = bad_name.rustls_client_config().unwrap_err();
        assert!(e.contains("server_name"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
