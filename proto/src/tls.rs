//! TLS as members and clients speak it: rustls with the ring provider, HTTP/2 by ALPN.
//! One place builds the server and client configurations, so the server's client
//! port, its peer port (mutual TLS both ways) and every SDK (through the core client)
//! agree on versions, ALPN and how a certificate is checked.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A TLS setting that cannot be used: what is wrong, in words for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn err(msg: impl Into<String>) -> TlsError {
    TlsError(msg.into())
}

/// The one crypto provider: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM document (`what` names it in errors).
pub fn certificates(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("{what}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(err(format!("{what}: no certificate in it")));
    }
    Ok(certs)
}

/// The private key of a PEM document (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(what: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| err(format!("{what}: no usable PEM private key: {e}")))
}

fn roots(what: &str, pem: &[u8]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certificates(what, pem)? {
        store
            .add(c)
            .map_err(|e| err(format!("{what}: not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

/// A server's TLS configuration from PEM: its certificate chain and key, and the CA
/// client certificates must chain to (when given, a client without one is refused).
pub fn server_config(cert_pem: &[u8], key_pem: &[u8], client_ca_pem: Option<&[u8]>) -> Result<ServerConfig, TlsError> {
    let certs = certificates("certificate", cert_pem)?;
    let key = private_key("key", key_pem)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots("client CA", ca)?, provider())
                .build()
                .map_err(|e| err(format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| err(format!("certificate and key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// How a client decides to trust a server's certificate.
#[derive(Clone, Debug, Default)]
pub enum ServerTrust {
    /// The system's trusted roots.
    #[default]
    System,
    /// Only certificates chaining to these PEM CA certificates.
    Ca(Vec<u8>),
    /// Only a server certificate whose SHA-256 (of its DER) is one of these, whatever
    /// signed it (as kahuna-ts's `trustedServerCertificateThumbprints`).
    Pinned(Vec<[u8; 32]>),
    /// Any certificate: encryption without authentication, for development only.
    InsecureAnyCertificate,
}

/// A client's TLS settings.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    pub trust: ServerTrust,
    /// A client certificate chain and key (PEM), for servers that require one.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Parses a SHA-256 pin: 64 hex digits, optionally separated by `:` (as
/// `openssl x509 -fingerprint -sha256` prints it).
pub fn parse_pin(text: &str) -> Result<[u8; 32], TlsError> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let bad = || {
        err(format!(
            "certificate pin {text:?} is not a SHA-256 fingerprint (64 hex digits)"
        ))
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut pin = [0u8; 32];
    for (i, b) in pin.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(pin)
}

/// The SHA-256 of a certificate's DER: what a pin names.
pub fn fingerprint(cert: &CertificateDer<'_>) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl ClientTls {
    /// The settings an SDK's plain options describe (the CLI's flags, the C#, Python
    /// and Node option fields), checked once here: at most one of `ca_pem`, `pins` and
    /// `insecure`; a client certificate and its key together or not at all. `None`
    /// when nothing is set (an `https://` endpoint then trusts the system's roots).
    pub fn from_parts(
        ca_pem: Option<Vec<u8>>,
        pins: &[String],
        insecure: bool,
        cert_pem: Option<Vec<u8>>,
        key_pem: Option<Vec<u8>>,
    ) -> Result<Option<ClientTls>, TlsError> {
        let ca_pem = ca_pem.filter(|p| !p.is_empty());
        let chosen = usize::from(ca_pem.is_some()) + usize::from(!pins.is_empty()) + usize::from(insecure);
        if chosen > 1 {
            return Err(err(
                "give one way to trust the server: a CA certificate, certificate pins, or insecure (not several)",
            ));
        }
        let identity = match (cert_pem.filter(|p| !p.is_empty()), key_pem.filter(|p| !p.is_empty())) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(err(
                    "a client certificate needs its private key, and a key its certificate",
                ))
            }
        };
        let trust = if insecure {
            ServerTrust::InsecureAnyCertificate
        } else if !pins.is_empty() {
            ServerTrust::Pinned(pins.iter().map(|p| parse_pin(p)).collect::<Result<_, _>>()?)
        } else if let Some(ca) = ca_pem {
            ServerTrust::Ca(ca)
        } else if identity.is_some() {
            ServerTrust::System
        } else {
            return Ok(None);
        };
        let tls = ClientTls { trust, identity };
        // Bad PEM is reported now, where the options are given, not at the first call.
        tls.config()?;
        Ok(Some(tls))
    }

    /// The rustls configuration these settings make.
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.to_string()))?;
        let builder = match &self.trust {
            ServerTrust::System => {
                let found = rustls_native_certs::load_native_certs();
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(err(
                        "no trusted CA certificate found on this system; give the server's CA certificate",
                    ));
                }
                builder.with_root_certificates(store)
            }
            ServerTrust::Ca(pem) => builder.with_root_certificates(roots("CA certificate", pem)?),
            ServerTrust::Pinned(pins) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified {
                    pins: Some(pins.clone()),
                })),
            ServerTrust::InsecureAnyCertificate => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified { pins: None })),
        };
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    certificates("client certificate", cert)?,
                    private_key("client key", key)?,
                )
                .map_err(|e| err(format!("client certificate and key do not go together: {e}")))?,
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A verifier that skips the chain and name checks: with `pins`, the certificate must
/// be one of them; without, any certificate is accepted. The handshake signature is
/// still verified, so the server holds the key of the certificate it shows.
#[derive(Debug)]
struct Unverified {
    pins: Option<Vec<[u8; 32]>>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pins {
            Some(pins) if !pins.contains(&fingerprint(end_entity)) => Err(rustls::Error::General(
                "the server's certificate matches no pinned SHA-256 fingerprint".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

/// A connector for tonic's `Endpoint::connect_with_connector`: TCP (no delay) then
/// TLS, checking the certificate against the URI's host.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
}

impl TlsConnector {
    pub fn new(config: Arc<ClientConfig>, connect_timeout: Duration) -> Self {
        Self {
            config,
            connect_timeout,
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.config.clone();
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
            let host = uri.host().ok_or_else(|| invalid(format!("{uri}: no host")))?.to_owned();
            let port = uri.port_u16().ok_or_else(|| invalid(format!("{uri}: no port")))?;
            let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let name = ServerName::try_from(bare.clone()).map_err(|e| invalid(format!("{host}: {e}")))?;
            let handshake = async {
                let tcp = TcpStream::connect((bare.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
            };
            let tls = tokio::time::timeout(timeout, handshake).await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TLS connect to {host}:{port} timed out"),
                )
            })??;
            Ok(TokioIo::new(tls))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_with_or_without_colons() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_pin(&hex), Ok([0xab; 32]));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&colons), Ok([0xab; 32]));
        assert!(parse_pin("abcd").is_err());
        assert!(parse_pin(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn bad_pem_is_a_clear_error() {
        let e = certificates("certificate", b"not pem").unwrap_err();
        assert!(e.0.contains("certificate"), "{e}");
        assert!(private_key("key", b"").is_err());
    }
}
