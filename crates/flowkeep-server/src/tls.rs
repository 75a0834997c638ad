//! TLS for both listeners: the certificate and key (PEM files from the configuration, or a development
//! certificate generated on first use), the rustls server configuration (the `ring` provider), and an
//! accepting listener that lets axum serve HTTP and WebSocket over TLS.
//!
//! When TLS is configured, each listener speaks TLS only: a plain-text client gets a failed handshake.

use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// A TLS setup that could not be loaded or made.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// Which file (`tls_cert_file`, `tls_key_file`, the development certificate).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{what} {path}: {message}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificate and key (for instance, the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The development certificate could not be generated.
    #[error("generating the development certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate chain and its private key, both PEM, with the files they came from.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The certificate chain (PEM).
    pub cert_pem: Vec<u8>,
    /// The private key (PEM).
    pub key_pem: Vec<u8>,
    /// Where the certificate was read from.
    pub cert_path: PathBuf,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").field("cert_path", &self.cert_path).finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Reads and checks a certificate chain and key (PEM).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<TlsMaterial, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Io { what, path: path.to_path_buf(), source })
        };
        let material = TlsMaterial {
            cert_pem: read("tls_cert_file", cert_file)?,
            key_pem: read("tls_key_file", key_file)?,
            cert_path: cert_file.to_path_buf(),
        };
        // Parse now, so a bad file stops the server at start with the file named.
        material.certificates(cert_file)?;
        material.private_key(key_file)?;
        Ok(material)
    }

    fn certificates(&self, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let pem_error = |message: String| TlsError::Pem { what: "tls_cert_file", path: path.to_path_buf(), message };
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(format!("not a PEM certificate chain ({e})")))?;
        if certs.is_empty() {
            return Err(pem_error("holds no certificate".into()));
        }
        Ok(certs)
    }

    fn private_key(&self, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| TlsError::Pem {
            what: "tls_key_file",
            path: path.to_path_buf(),
            message: format!("holds no usable private key ({e})"),
        })
    }

    /// The rustls server configuration (ring provider, TLS 1.2 and 1.3) offering `alpn` protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs = self.certificates(&self.cert_path)?;
        let key = self.private_key(&self.cert_path)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// The folder of the development certificate inside `data_dir`.
pub fn dev_tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-tls")
}

/// The development certificate: `<data_dir>/dev-tls/{cert,key}.pem`, self-signed for `localhost` and
/// `127.0.0.1`, generated when missing (the key file is owner-only) and reused afterwards.
pub fn dev_certificate(data_dir: &Path) -> Result<TlsMaterial, TlsError> {
    let dir = dev_tls_dir(data_dir);
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { what: "development certificate", path, source }
    };
    if !(cert_path.is_file() && key_path.is_file()) {
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        write_private(&key_path, generated.signing_key.serialize_pem().as_bytes()).map_err(io_error(&key_path))?;
        std::fs::write(&cert_path, generated.cert.pem()).map_err(io_error(&cert_path))?;
        tracing::warn!(
            cert = %cert_path.display(),
            "generated a self-signed development TLS certificate for localhost/127.0.0.1; clients must trust it"
        );
    } else {
        tracing::info!(cert = %cert_path.display(), "using the development TLS certificate");
    }
    TlsMaterial::load(&cert_path, &key_path)
}

/// Writes a file readable by its owner only (created with mode 0600 on Unix).
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes finished but not yet taken by the server.
const ACCEPT_QUEUE: usize = 64;

/// An axum [`Listener`] that accepts TCP connections and completes TLS handshakes concurrently (a slow
/// or silent client never holds up the others); only finished handshakes are handed to the server.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (tcp, remote) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a TLS connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let ready_tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready_tx.send((tls, remote)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { ready, local, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends when this listener is dropped; never return from here then.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
