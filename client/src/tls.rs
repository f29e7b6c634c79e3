//! TLS settings for FTPS (RFC 4217): which server certificates to trust, and the server name to check them against.
//!
//! A [`TlsConfig`] holds one rustls `ClientConfig` (with the `ring` crypto provider) behind an `Arc`. Every
//! connection of a session (the control connection and each data connection) is made from that same config, so its
//! in-memory session cache lets each data connection resume the control connection's TLS session, as servers such as
//! FileZilla Server and vsftpd (`require_ssl_reuse`) insist. Certificates are verified by default, against the
//! Mozilla roots of `webpki-roots` plus any CA certificates from a PEM file; [`TlsConfig::insecure`] turns
//! verification off, which is only for testing against a server whose certificate cannot be checked.
//!
//! A certificate from the PEM file that the server presents as its own is trusted as it is (pinned): the usual
//! self-signed certificate made with `openssl req -x509` is marked as a CA and may name the host only in its
//! common name, both of which the standard checks refuse in a server certificate. Only the holder of its private
//! key can complete the handshake with it, so accepting it exactly as given is safe.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use log::debug;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::FtpError;

/// How the client authenticates FTPS servers; cheap to clone (the rustls config is shared).
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ClientConfig>,
    verified: bool,
}

impl TlsConfig {
    /// Verifies server certificates against the Mozilla roots (`webpki-roots`) and, when `ca_file` is given, the
    /// CA certificates in that PEM file as well (for a private CA or a self-signed server certificate).
    pub fn new(ca_file: Option<&Path>) -> Result<TlsConfig, FtpError> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let mut pinned = Vec::new();
        if let Some(path) = ca_file {
            pinned = load_certificates(path)?;
            for cert in &pinned {
                roots
                    .add(cert.clone())
                    .map_err(|e| invalid_input(format!("{}: not a usable CA certificate: {e}", path.display())))?;
            }
        }
        let provider = Arc::new(provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| FtpError::Protocol(format!("setting up TLS: {e}")))?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FtpError::Protocol(format!("setting up TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinningVerifier { webpki, pinned }))
            .with_no_client_auth();
        Ok(TlsConfig { config: Arc::new(config), verified: true })
    }

    /// Accepts any server certificate: the connection is encrypted, but anyone on the path can pretend to be the
    /// server and read everything, password included. Signatures in the handshake are still checked.
    pub fn insecure() -> TlsConfig {
        let provider = Arc::new(provider());
        let verifier = Arc::new(AcceptAnyCertificate { provider: provider.clone() });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        TlsConfig { config: Arc::new(config), verified: false }
    }

    /// A config built by the caller (client certificates, other roots ...). Each session still gets a session
    /// cache of its own, replacing the config's resumption settings, so that its data connections resume its
    /// control connection's TLS session.
    pub fn from_rustls(config: Arc<ClientConfig>) -> TlsConfig {
        TlsConfig { config, verified: true }
    }

    /// The rustls config every connection is made from.
    pub fn rustls_config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// False for [`TlsConfig::insecure`].
    pub fn verifies_certificates(&self) -> bool {
        self.verified
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").field("verified", &self.verified).finish_non_exhaustive()
    }
}

/// The certificates in a PEM file; an error if it cannot be read or holds none.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, FtpError> {
    let bad = |e: rustls::pki_types::pem::Error| match e {
        rustls::pki_types::pem::Error::Io(e) => FtpError::io(format!("reading {}", path.display()), e),
        other => invalid_input(format!("{}: {other}", path.display())),
    };
    let certs = CertificateDer::pem_file_iter(path).map_err(bad)?.collect::<Result<Vec<_>, _>>().map_err(bad)?;
    if certs.is_empty() {
        return Err(invalid_input(format!(
            "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The name a server's certificate must be valid for: `host` as an IP address or a DNS name (brackets around an
/// IPv6 literal are allowed).
pub fn server_name(host: &str) -> Result<ServerName<'static>, FtpError> {
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string())
        .map_err(|_| invalid_input(format!("{host:?} is not a host name a TLS certificate can be checked against")))
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn invalid_input(msg: String) -> FtpError {
    FtpError::Io(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

/// The standard verification (webpki: chain to a trusted root, validity, server name), except that a certificate
/// from the CA file presented as the server's own is accepted as it is.
#[derive(Debug)]
struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(verified) => Ok(verified),
            Err(e) if self.pinned.iter().any(|pin| pin.as_ref() == end_entity.as_ref()) => {
                debug!("the server presented a certificate from the CA file: trusted as given ({e})");
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The verifier behind [`TlsConfig::insecure`]: every certificate passes, handshake signatures are still checked
/// against the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(matches!(server_name("127.0.0.1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("ftp.example.org"), Ok(ServerName::DnsName(_))));
        assert!(server_name("bad name").is_err());
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let err = TlsConfig::new(Some(&missing)).expect_err("missing file");
        assert!(err.to_string().starts_with(&format!("reading {}", missing.display())), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = TlsConfig::new(Some(&empty)).expect_err("no certificate");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").expect("write");
        assert!(TlsConfig::new(Some(&broken)).is_err());
    }

    #[test]
    fn ca_file_with_a_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, cert.cert.pem()).expect("write");
        let config = TlsConfig::new(Some(&path)).expect("config");
        assert!(config.verifies_certificates());
        assert!(!TlsConfig::insecure().verifies_certificates());
        assert!(TlsConfig::new(None).is_ok());
    }
}
