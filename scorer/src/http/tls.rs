//! TLS for the sidecar (rustls, ring provider): the certificate and key from PEM files, swapped
//! in when the files change (see [`super::reload`]), and a listener that hands axum finished
//! TLS connections.
//!
//! The listener's accept loop only accepts: each handshake runs in a task of its own, bounded
//! by [`HANDSHAKE_TIMEOUT`], so a slow or silent client holds up nobody else.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::serve::Listener;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::reload::Contents;
use crate::metrics::Metrics;

/// Longest a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; beyond it the accept loop waits (new connections queue in
/// the kernel's backlog).
const MAX_HANDSHAKES: usize = 256;

/// `--http-tls-cert` and `--http-tls-key` (checked by `Config::validate`: both or neither).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key of that certificate.
    pub key: PathBuf,
}

impl TlsSettings {
    /// The certificate and key files, in the order [`Tls`] takes their contents.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        vec![self.cert.clone(), self.key.clone()]
    }
}

/// The certificate or key cannot be used. Each message names the file and what to fix.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{0} (see --http-tls-cert and --http-tls-key)")]
    Read(String),
    /// The certificate file holds no certificate.
    #[error(
        "--http-tls-cert {path}: no certificate in it; expected PEM `-----BEGIN CERTIFICATE-----` blocks, the server's certificate first"
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The certificate file is not valid PEM, or its first certificate is not valid X.509.
    #[error("--http-tls-cert {path}: not a valid PEM certificate chain: {detail}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// The key file holds no usable private key.
    #[error(
        "--http-tls-key {path}: no usable private key: {detail}; expected an unencrypted PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block"
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// The key does not belong to the certificate.
    #[error(
        "--http-tls-key {key} is not the private key of the certificate in --http-tls-cert {cert}: give the pair issued together (a cert-manager Secret's tls.key and tls.crt)"
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Setup(#[from] rustls::Error),
}

/// The served certificate and key, replaced whole when the files change.
#[derive(Debug)]
struct Certificates {
    current: RwLock<Arc<CertifiedKey>>,
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// Parses a certificate chain and its key, and checks that they belong together.
fn certified_key(
    settings: &TlsSettings,
    provider: &CryptoProvider,
    contents: Contents,
) -> Result<CertifiedKey, TlsError> {
    let files = contents.map_err(TlsError::Read)?;
    let (cert_pem, key_pem) = match files.as_slice() {
        [cert, key] => (cert, key),
        _ => return Err(TlsError::Read("expected two files".into())),
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            path: settings.cert.clone(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: settings.cert.clone(),
        });
    }
    let key_error = |detail: String| TlsError::Key {
        path: settings.key.clone(),
        detail,
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| key_error(e.to_string()))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(e.to_string()))?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        // A key type whose public half rustls cannot derive: the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: settings.cert.clone(),
            key: settings.key.clone(),
        }),
        Err(e) => Err(TlsError::Certificate {
            path: settings.cert.clone(),
            detail: e.to_string(),
        }),
    }
}

/// The sidecar's TLS: what is served, and the acceptor that serves it.
#[derive(Debug, Clone)]
pub struct Tls {
    certificates: Arc<Certificates>,
    config: Arc<ServerConfig>,
}

impl Tls {
    /// Checks the certificate and key in `contents` (read from [`TlsSettings::paths`]).
    ///
    /// # Errors
    /// [`TlsError`] naming the file and what to fix.
    pub(crate) fn new(settings: &TlsSettings, contents: Contents) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = certified_key(settings, &provider, contents)?;
        let certificates = Arc::new(Certificates {
            current: RwLock::new(Arc::new(current)),
            settings: settings.clone(),
            provider: Arc::clone(&provider),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certificates) as Arc<dyn ResolvesServerCert>);
        // The sidecar speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            certificates,
            config: Arc::new(config),
        })
    }

    /// Serves the pair in `contents` from the next handshake on, or keeps the current one if
    /// the pair cannot be used.
    pub(crate) fn reload(&self, contents: Contents) -> Result<(), TlsError> {
        let c = &self.certificates;
        let next = certified_key(&c.settings, &c.provider, contents)?;
        *c.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(())
    }

    /// A listener that accepts on `tcp` and yields connections whose handshake has completed.
    ///
    /// # Errors
    /// The socket's local address cannot be read.
    pub(crate) fn listener(&self, tcp: TcpListener, metrics: Metrics) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (ready, rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            tcp,
            TlsAcceptor::from(Arc::clone(&self.config)),
            ready,
            stop.clone(),
            metrics,
        ));
        Ok(TlsListener {
            ready: rx,
            local,
            _stop: stop.drop_guard(),
        })
    }
}

/// What axum serves from with TLS on: connections whose handshake is done.
#[derive(Debug)]
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    /// Stops the accept loop when axum drops the listener (at graceful shutdown).
    _stop: DropGuard,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop ends only when this listener is dropped; until then nothing
            // more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
    metrics: Metrics,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = Arc::clone(&handshakes).acquire_owned() => permit,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { return };
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let (acceptor, ready, metrics) = (acceptor.clone(), ready.clone(), metrics.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let outcome =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        // Fails only when the server is shutting down: the connection is dropped.
                        let _ = ready.send((tls, peer)).await;
                        "ok"
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(peer = %peer, error = %error, "tls handshake failed");
                        "failed"
                    }
                    Err(_) => {
                        tracing::debug!(peer = %peer, "tls handshake timed out");
                        "timeout"
                    }
                };
            metrics
                .http_tls_handshakes
                .with_label_values(&[outcome])
                .inc();
        });
    }
}

/// As axum's own listener: a connection that failed before it was accepted is the client's
/// problem; anything else (out of file descriptors) is logged and retried after a pause.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "http accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TlsSettings {
        TlsSettings {
            cert: "/tls/tls.crt".into(),
            key: "/tls/tls.key".into(),
        }
    }

    fn load(cert: &str, key: &str) -> Result<Tls, TlsError> {
        Tls::new(&settings(), Ok(vec![cert.into(), key.into()]))
    }

    /// Well-formed PEM around bytes that are no certificate: enough to get past the PEM parser.
    const NOT_X509: &str = "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n";

    #[test]
    fn each_unusable_file_is_named_with_what_to_fix() {
        let err = load("", "").unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("--http-tls-cert /tls/tls.crt: no certificate")
        );

        let err = load(NOT_X509, "not a key").unwrap_err();
        assert!(matches!(err, TlsError::Key { .. }), "{err}");
        assert!(
            err.to_string().contains("--http-tls-key /tls/tls.key"),
            "{err}"
        );

        let key = "-----BEGIN PRIVATE KEY-----\nAAECAw==\n-----END PRIVATE KEY-----\n";
        let err = load(NOT_X509, key).unwrap_err();
        assert!(matches!(err, TlsError::Key { .. }), "{err}");

        let unreadable = Tls::new(&settings(), Err("cannot read /tls/tls.crt: gone".into()));
        let err = unreadable.unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot read /tls/tls.crt: gone (see --http-tls-cert and --http-tls-key)"
        );
    }
}
