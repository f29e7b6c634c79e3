//! FTPS setup: the server's certificate and key (PEM) loaded into a rustls [`ServerConfig`], and the self-signed
//! certificate `ftpserver gen-cert` writes for tests and quick starts.
//!
//! Everything here runs before the loop starts; errors are one-line messages naming the file at fault, because a
//! bad certificate is an operator's mistake to be shown at startup, never a failure on the network path.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::{default_provider, Ticketer};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;

/// TLS 1.2 sessions remembered for resumption by session id (TLS 1.3 and ticket-capable 1.2 clients resume from
/// stateless tickets instead, which cost the server no memory). Data connections resume the control connection's
/// session, so one entry per recently active client is what matters.
const SESSION_CACHE: usize = 4096;

/// The names `gen-cert` always certifies: the loopback addresses clients use for a local server.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The server's TLS settings: one rustls configuration for control connections and one for data connections.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub control: Arc<ServerConfig>,
    /// Like `control`, but sending no TLS 1.3 session tickets: a client uploading never reads its data
    /// connection, so tickets would sit unread in its socket and turn its close into a reset, which can destroy
    /// the end of the upload before the server reads it. Data connections resume from the control connection's
    /// tickets (both share the ticketer and the cache), so nothing is lost.
    pub data: Arc<ServerConfig>,
}

/// The configuration for `cert` (a PEM chain, leaf first) and `key` (a PEM private key).
pub fn load_config(cert: &Path, key: &Path) -> Result<TlsConfig, String> {
    let shown = |p: &Path| p.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("TLS certificate {}: {}", shown(cert), pem_error(e)))?;
    if chain.is_empty() {
        return Err(format!("TLS certificate {}: no certificate found", shown(cert)));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {}", shown(key), pem_error(e)))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        // Also checks that the key is the certificate's.
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("TLS certificate {} with key {}: {e}", shown(cert), shown(key)))?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
    let mut data = config.clone();
    data.send_tls13_tickets = 0;
    Ok(TlsConfig { control: Arc::new(config), data: Arc::new(data) })
}

fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::NoItemsFound => "no PEM item of the expected kind found".to_string(),
        pem::Error::Io(e) => e.to_string(),
        other => format!("not valid PEM: {other}"),
    }
}

/// A self-signed certificate for `names` (DNS names or IP addresses) and its key, both PEM.
pub fn generate(names: &[String]) -> Result<(String, String), String> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| format!("generating: {e}"))?;
    Ok((certified.cert.pem(), certified.key_pair.serialize_pem()))
}

/// Writes a fresh self-signed certificate for [`DEFAULT_NAMES`] plus `extra` to `cert` and its key to `key`.
/// Existing files are never replaced; the key is readable by its owner only.
pub fn write_self_signed(cert: &Path, key: &Path, extra: &[String]) -> Result<(), String> {
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|n| n.to_string()).collect();
    names.extend(extra.iter().cloned());
    let (cert_pem, key_pem) = generate(&names)?;
    write_new(key, key_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(cert, cert_pem.as_bytes(), 0o644) {
        // No key without its certificate.
        let _ = fs::remove_file(key);
        return Err(e);
    }
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A generated pair loads; a missing file, a key that is not the certificate's and a non-PEM file are each
    // named in a one-line error.
    #[test]
    fn load_checks_files_and_pairing() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        write_self_signed(&cert, &key, &[]).unwrap();
        assert!(load_config(&cert, &key).is_ok());

        let missing = dir.path().join("missing.pem");
        let e = load_config(&missing, &key).unwrap_err();
        assert!(e.contains("missing.pem") && !e.contains('\n'), "{e}");

        let (other_cert, other_key) = (dir.path().join("c2.pem"), dir.path().join("k2.pem"));
        write_self_signed(&other_cert, &other_key, &[]).unwrap();
        let e = load_config(&cert, &other_key).unwrap_err();
        assert!(e.contains("k2.pem"), "{e}");

        let junk = dir.path().join("junk.pem");
        fs::write(&junk, "not a certificate\n").unwrap();
        assert!(load_config(&junk, &key).unwrap_err().contains("junk.pem"));
        assert!(load_config(&cert, &junk).unwrap_err().contains("junk.pem"));
        // The certificate where the key should be.
        assert!(load_config(&cert, &cert).unwrap_err().contains("cert.pem"));
    }

    // gen-cert never replaces a file, and the key is private to its owner.
    #[test]
    fn self_signed_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        write_self_signed(&cert, &key, &["ftp.example".to_string()]).unwrap();
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(fs::read_to_string(&cert).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
        let e = write_self_signed(&cert, &dir.path().join("k3.pem"), &[]).unwrap_err();
        assert!(e.contains("cert.pem"), "{e}");
        assert!(!dir.path().join("k3.pem").exists());
    }
}
