//! TLS for the live-source tests: a private certificate authority with a
//! server and a client certificate (rcgen), a real `redis-server` serving
//! TLS with a password and required client certificates, and a TLS front
//! for the in-process CQL server (kassandra speaks plain TCP only, so its
//! TLS is a rustls acceptor forwarding each connection to it: the driver's
//! TLS is real, the server's is ours).

use crate::live::tls::TlsSettings;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A certificate authority and what it signed, as PEM files in a folder of
/// the test's own.
pub struct Pki {
    dir: tempfile::TempDir,
    /// The authority's certificate.
    pub ca: PathBuf,
    /// The server's certificate and key (names: those given to [`Pki::new`]).
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate and key the authority signed.
    pub client_cert: PathBuf,
    /// The client's key.
    pub client_key: PathBuf,
}

impl Pki {
    /// A fresh authority; the server certificate names `dns_names` and,
    /// when `with_loopback_ip`, the address 127.0.0.1.
    pub fn new(dns_names: &[&str], with_loopback_ip: bool) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "exhaust test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let names: Vec<String> = dns_names.iter().map(|n| n.to_string()).collect();
        let mut server = CertificateParams::new(names).expect("server params");
        if with_loopback_ip {
            server
                .subject_alt_names
                .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().expect("a server key");
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .expect("the server certificate");

        let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
        client
            .distinguished_name
            .push(DnType::CommonName, "exhaust test client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().expect("a client key");
        let client_cert = client
            .signed_by(&client_key, &issuer)
            .expect("the client certificate");

        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("a PEM file");
            path
        };
        Self {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert: write("server.pem", server_cert.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.pem", client_cert.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            dir,
        }
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Client settings trusting this authority, with its client
    /// certificate.
    pub fn client_settings(&self) -> TlsSettings {
        TlsSettings {
            enabled: true,
            ca_file: Some(self.ca.clone()),
            client_cert_file: Some(self.client_cert.clone()),
            client_key_file: Some(self.client_key.clone()),
            server_name: None,
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` of the test's own: TLS (server certificate for
/// `localhost`, client certificates required) on one port, plain TCP on
/// another (for loading data), both behind a password. Killed when dropped.
pub struct TlsRedis {
    child: Child,
    /// The certificates it serves and trusts.
    pub pki: Pki,
    /// The password.
    pub password: String,
    /// The TLS port.
    pub tls_port: u16,
    /// The plain port.
    pub plain_port: u16,
}

impl TlsRedis {
    /// Starts the server and waits until it answers.
    pub fn start() -> Self {
        let pki = Pki::new(&["localhost"], false);
        let password = format!("pw-{}", std::process::id());
        let (tls_port, plain_port) = (free_port(), free_port());
        let child = Command::new("redis-server")
            .args(["--port", &plain_port.to_string()])
            .args(["--tls-port", &tls_port.to_string()])
            .args(["--bind", "127.0.0.1", "-::1"])
            .arg("--tls-cert-file")
            .arg(&pki.server_cert)
            .arg("--tls-key-file")
            .arg(&pki.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .args(["--tls-auth-clients", "yes"])
            .args(["--requirepass", &password])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(pki.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/services installs it)");
        let server = Self {
            child,
            pki,
            password,
            tls_port,
            plain_port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", server.plain_port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", server.tls_port)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "redis-server with TLS did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The plain port's URL, password included (no database).
    pub fn plain_url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}", self.password, self.plain_port)
    }

    /// The TLS port's URL, password included, by the name its certificate
    /// carries.
    pub fn tls_url(&self) -> String {
        format!("rediss://:{}@localhost:{}", self.password, self.tls_port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS front for a plain TCP server: each connection is accepted with
/// the given certificate and forwarded to `target`. Stops when dropped.
pub struct TlsFront {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// Serves `pki`'s server certificate on a free loopback port (without
    /// asking for client certificates).
    pub async fn start(pki: &Pki, target: SocketAddr) -> Self {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(&pki.server_cert)
            .expect("the server certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        let key = PrivateKeyDer::from_pem_file(&pki.server_key).expect("the server key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a server configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("an address");
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here.
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
