//! `scorer healthcheck`: a probe for container HEALTHCHECKs that needs no curl and speaks to the
//! sidecar as the same configuration serves it: over TLS when `--http-tls-cert` is set, and with
//! a bearer token when `--http-auth-health` protects `/healthz`.
//!
//! Over TLS it trusts exactly the certificate in `--http-tls-cert`, not a CA: the probe runs
//! beside the server it checks and reads the same file, so pinning needs no CA bundle in the
//! image and still refuses to hand a token to anything else listening on the port. The server
//! must prove it holds the key (the handshake's signature is verified as usual).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use thiserror::Error;

use crate::config::{Config, ConfigError};
use crate::http::auth::{self, BearerToken};

/// Why the probe failed; each message says what to check.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// The configuration it shares with the scorer is not valid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The token file cannot give a token.
    #[error(transparent)]
    TokenFile(#[from] auth::TokenFileError),
    /// The certificate to pin cannot be read.
    #[error("--http-tls-cert {path}: {detail}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// Nothing accepts connections there.
    #[error("cannot connect to {addr}: {source} (is the scorer running with this --http-addr?)")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The exchange failed (over TLS this includes a handshake refused either way).
    #[error("GET /healthz on {addr}{over}: {detail}")]
    Exchange {
        /// The address.
        addr: SocketAddr,
        /// " over TLS" or "".
        over: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The sidecar answered, but not 200.
    #[error("GET /healthz answered {status}{hint}")]
    Status {
        /// The status code as sent.
        status: String,
        /// What it likely means.
        hint: &'static str,
    },
}

/// Where and how to ask.
#[derive(Debug)]
pub struct Probe {
    addr: SocketAddr,
    /// The certificate the sidecar must present, if it serves TLS.
    pinned: Option<CertificateDer<'static>>,
    token: Option<BearerToken>,
}

impl Probe {
    /// The probe `config` calls for: its `--http-addr` (an unspecified address means loopback),
    /// TLS if it serves TLS, a token if `/healthz` needs one.
    ///
    /// # Errors
    /// [`ProbeError::Config`], [`ProbeError::TokenFile`] or [`ProbeError::Certificate`].
    pub fn from_config(config: &Config) -> Result<Self, ProbeError> {
        let security = config.http_security()?;
        let mut addr = config.http_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let pinned = security
            .tls
            .map(|tls| leaf_certificate(&tls.cert))
            .transpose()?;
        let token = match security.auth {
            Some(auth) if auth.health => match auth.tokens.into_iter().next() {
                Some(token) => Some(token),
                None => auth
                    .token_file
                    .as_deref()
                    .map(auth::first_token_in_file)
                    .transpose()?,
            },
            _ => None,
        };
        Ok(Self {
            addr,
            pinned,
            token,
        })
    }

    /// Asks once, each step bounded by `timeout`.
    ///
    /// # Errors
    /// [`ProbeError::Connect`], [`ProbeError::Exchange`] or [`ProbeError::Status`].
    pub fn run(&self, timeout: Duration) -> Result<(), ProbeError> {
        let stream = TcpStream::connect_timeout(&self.addr, timeout).map_err(|source| {
            ProbeError::Connect {
                addr: self.addr,
                source,
            }
        })?;
        let over = if self.pinned.is_some() {
            " over TLS"
        } else {
            ""
        };
        let exchange = |detail: String| ProbeError::Exchange {
            addr: self.addr,
            over,
            detail,
        };
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| exchange(e.to_string()))?;
        let auth = self.token.as_ref().map_or_else(String::new, |t| {
            format!("Authorization: Bearer {}\r\n", t.expose())
        });
        let request =
            format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
        let head = match &self.pinned {
            None => exchange_head(stream, request.as_bytes()),
            Some(leaf) => {
                // The name is not checked (the certificate is pinned); an IP sends no SNI.
                let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
                let connection = tls_config(leaf)
                    .and_then(|config| ClientConnection::new(config, name))
                    .map_err(|e| exchange(e.to_string()))?;
                exchange_head(StreamOwned::new(connection, stream), request.as_bytes())
            }
        }
        .map_err(exchange)?;
        let status = String::from_utf8_lossy(&head[9..12]).into_owned();
        let hint = match status.as_str() {
            "200" => return Ok(()),
            "401" => {
                ": /healthz needs a bearer token (--http-auth-health) and none was sent; give the scorer's own --http-auth-token-file or SCORER_HTTP_AUTH_TOKENS"
            }
            "403" => {
                ": the bearer token sent is not accepted; the probe sends the first token of the scorer's own configuration"
            }
            _ => "",
        };
        Err(ProbeError::Status { status, hint })
    }
}

/// Sends `request` and reads the status line's first 12 bytes (`HTTP/1.1 200`).
fn exchange_head(mut stream: impl Read + Write, request: &[u8]) -> Result<[u8; 12], String> {
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("no HTTP response: {e}"))?;
    if !head.starts_with(b"HTTP/1.") {
        return Err(format!(
            "not an HTTP response: {:?} (TLS on one side only?)",
            String::from_utf8_lossy(&head)
        ));
    }
    Ok(head)
}

fn leaf_certificate(path: &Path) -> Result<CertificateDer<'static>, ProbeError> {
    let error = |detail: String| ProbeError::Certificate {
        path: path.to_owned(),
        detail,
    };
    CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .next()
        .ok_or_else(|| error("no certificate in it".to_owned()))?
        .map_err(|e| error(e.to_string()))
}

fn tls_config(leaf: &CertificateDer<'static>) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pinned = Pinned {
        leaf: leaf.clone(),
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(pinned))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts exactly one end-entity certificate, whatever its names and dates: the one the probe
/// read from the file the server serves.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the sidecar presents a certificate other than the one in --http-tls-cert (if it was just rotated, the next probe sees the reloaded one)".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
