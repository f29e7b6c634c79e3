//! Opening the session `ftpclient` works in: plain FTP, explicit FTPS (`--tls`: AUTH TLS before logging in) or
//! implicit FTPS (an `ftps://` URL), with the server's certificate checked unless `--insecure` says otherwise.
//!
//! Every failure here is one line for the user, and ends the program with the usage status (2): a certificate the
//! client does not trust says how to trust it, a server that refuses AUTH TLS says so rather than going on in the
//! clear.

use std::path::Path;
use std::time::Duration;

use ftp_client::{FtpClient, FtpError, TlsConfig};

/// Whether and how the session uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// Plain FTP.
    #[default]
    Plain,
    /// `--tls`: AUTH TLS on a plain connection (RFC 4217).
    Explicit,
    /// `ftps://`: TLS from the first byte.
    Implicit,
}

/// The one-line warning `--insecure` prints on standard error.
pub const INSECURE_WARNING: &str = "warning: --insecure: the server's certificate is not checked; anyone on the \
    network path can pose as the server and read the password and the files";

/// How the session is secured: `ftps://` is implicit TLS (with or without `--tls`), `--tls` explicit. The
/// certificate options without TLS are a mistake, refused before anything is sent.
pub fn security(implicit_tls: bool, tls: bool, insecure: bool, ca_file: Option<&Path>) -> Result<Security, String> {
    let security = match (implicit_tls, tls) {
        (true, _) => Security::Implicit,
        (false, true) => Security::Explicit,
        (false, false) => Security::Plain,
    };
    if security == Security::Plain {
        if insecure {
            return Err("--insecure applies only with --tls or an ftps:// URL".to_string());
        }
        if ca_file.is_some() {
            return Err("--ca-file applies only with --tls or an ftps:// URL".to_string());
        }
    }
    Ok(security)
}

/// The TLS settings for `--insecure` or `--ca-file FILE` (verification against the usual roots otherwise).
pub fn tls_config(insecure: bool, ca_file: Option<&Path>) -> Result<TlsConfig, String> {
    if insecure {
        return Ok(TlsConfig::insecure());
    }
    TlsConfig::new(ca_file).map_err(|e| format!("--ca-file: {e}"))
}

/// Connects to `host:port` and greets the server, with TLS as `security` says (`tls` is needed unless plain).
pub fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
    security: Security,
    tls: Option<&TlsConfig>,
) -> Result<FtpClient, String> {
    let tls = match (security, tls) {
        (Security::Plain, _) => return FtpClient::connect(host, port, timeout).map_err(|e| e.to_string()),
        (_, Some(tls)) => tls,
        (_, None) => return Err("TLS was asked for without TLS settings".to_string()),
    };
    if security == Security::Implicit {
        return FtpClient::connect_implicit_tls(host, port, timeout, tls).map_err(|e| explain(&e));
    }
    let mut client = FtpClient::connect(host, port, timeout).map_err(|e| e.to_string())?;
    match client.auth_tls(tls) {
        Ok(()) => Ok(client),
        Err(e @ FtpError::Unexpected { .. }) => Err(format!("--tls: the server refused TLS: {e}")),
        Err(e) => Err(explain(&e)),
    }
}

/// Everything needed to open another session like the first one and log in: the extra connections of parallel
/// transfers.
#[derive(Clone)]
pub struct Login {
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
    pub security: Security,
    pub tls: Option<TlsConfig>,
    pub user: String,
    pub pass: String,
    pub active: bool,
}

impl Login {
    /// Connects, logs in and sets the data connection mode.
    pub fn open(&self) -> Result<FtpClient, String> {
        let mut client = connect(&self.host, self.port, self.timeout, self.security, self.tls.as_ref())?;
        client.login(&self.user, &self.pass).map_err(|e| format!("login as {}: {e}", self.user))?;
        client.set_active(self.active);
        Ok(client)
    }
}

/// The error, with what to do about it when the server's certificate is not trusted.
pub fn explain(err: &FtpError) -> String {
    if err.is_certificate_error() {
        format!(
            "{err} (the server's certificate is not trusted: give the certificate of its CA, or its own if \
             self-signed, with --ca-file FILE, or skip the check with --insecure)"
        )
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn security_from_options() {
        assert_eq!(security(false, false, false, None), Ok(Security::Plain));
        assert_eq!(security(false, true, false, None), Ok(Security::Explicit));
        assert_eq!(security(true, false, false, None), Ok(Security::Implicit));
        assert_eq!(security(true, true, false, None), Ok(Security::Implicit));
        let ca = PathBuf::from("ca.pem");
        assert_eq!(security(false, true, true, None), Ok(Security::Explicit));
        assert_eq!(security(true, false, false, Some(&ca)), Ok(Security::Implicit));
        assert!(security(false, false, true, None).expect_err("plain").contains("--insecure applies only"));
        assert!(security(false, false, false, Some(&ca)).expect_err("plain").contains("--ca-file applies only"));
    }

    #[test]
    fn bad_ca_file_is_named() {
        let err = tls_config(false, Some(Path::new("/nonexistent/ca.pem"))).expect_err("missing");
        assert!(err.starts_with("--ca-file: reading /nonexistent/ca.pem: "), "{err}");
        assert!(tls_config(true, None).is_ok_and(|c| !c.verifies_certificates()));
    }

    #[test]
    fn insecure_warning_is_one_line() {
        assert!(!INSECURE_WARNING.contains('\n'));
        assert!(INSECURE_WARNING.starts_with("warning: --insecure: "));
    }
}
