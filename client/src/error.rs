//! The client's error type: what went wrong, in one line a person can act on.
//!
//! Every failure of an [`FtpClient`](crate::FtpClient) call is one [`FtpError`]: a local or network I/O failure
//! (with what was being done when it happened), a reply whose code the command does not accept (with the command
//! and the whole reply), a server that broke the protocol, or a control connection that is gone. Passwords never
//! appear in an error: the PASS command is always recorded as `PASS ****`. A TLS failure is an I/O failure that
//! keeps the TLS error behind it, so that a certificate the client does not trust can be told apart
//! ([`FtpError::is_certificate_error`]).

use std::fmt;
use std::io;

use ftp_common::Reply;

/// Why an FTP operation failed.
#[derive(Debug)]
pub enum FtpError {
    /// An I/O failure; the message says what was being done (`connecting to 127.0.0.1:21: Connection refused`).
    /// The kind of the original error is kept, so a timeout is still `ErrorKind::TimedOut` or `WouldBlock`.
    Io(io::Error),
    /// The server answered `command` with a code the command does not accept.
    Unexpected { command: String, reply: Reply },
    /// The server sent something that is not valid FTP (a malformed or oversized reply, an unparsable address),
    /// or the caller asked for something that cannot be sent (a line break inside an argument).
    Protocol(String),
    /// The control connection is closed: the server closed it, or an earlier failure left it unusable.
    Closed,
}

impl FtpError {
    /// An I/O error whose message is prefixed by what was being done; the error kind is kept.
    pub(crate) fn io(context: impl fmt::Display, err: io::Error) -> FtpError {
        FtpError::Io(io::Error::new(err.kind(), format!("{context}: {err}")))
    }

    /// An I/O error of a TLS connection, prefixed by what was being done; the TLS error behind it (a rustls error
    /// inside the `io::Error`, as rustls reports them) is kept for [`FtpError::is_certificate_error`].
    pub(crate) fn tls(context: impl fmt::Display, err: io::Error) -> FtpError {
        match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => {
                let failure = TlsFailure { message: format!("{context}: {}", describe_tls(tls)), tls: tls.clone() };
                FtpError::Io(io::Error::new(err.kind(), failure))
            }
            None => FtpError::io(context, err),
        }
    }

    /// True when the server's certificate was refused: not signed by a trusted CA, expired, not valid for the
    /// server's name ...
    pub fn is_certificate_error(&self) -> bool {
        let FtpError::Io(e) = self else { return false };
        let failure = e.get_ref().and_then(|inner| inner.downcast_ref::<TlsFailure>());
        failure.is_some_and(|f| {
            matches!(
                f.tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            )
        })
    }

    /// The reply that caused the error, when the server refused.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            FtpError::Unexpected { reply, .. } => Some(reply),
            _ => None,
        }
    }

    /// The message without the FTP command it concerns, when the error is a refused command
    /// (`server replied 550 No such file`); the full message otherwise.
    pub fn reason(&self) -> String {
        match self {
            FtpError::Unexpected { reply, .. } => format!("server replied {reply}"),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for FtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FtpError::Io(e) => write!(f, "{e}"),
            FtpError::Unexpected { command, reply } => write!(f, "{command}: server replied {reply}"),
            FtpError::Protocol(msg) => write!(f, "protocol error: {msg}"),
            FtpError::Closed => write!(f, "the control connection is closed"),
        }
    }
}

impl std::error::Error for FtpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FtpError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// rustls's description of `err`, with the plain meaning of the certificate errors a user meets most.
fn describe_tls(err: &rustls::Error) -> String {
    use rustls::CertificateError;
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("{err} (not signed by a trusted certificate authority)")
        }
        rustls::Error::InvalidCertificate(CertificateError::Other(other))
            if other.to_string().contains("CaUsedAsEndEntity") =>
        {
            "invalid peer certificate: CaUsedAsEndEntity (a CA certificate, such as a self-signed one made as a CA, \
             presented as the server's own)"
                .to_string()
        }
        other => other.to_string(),
    }
}

/// The message of a failed TLS operation and the TLS error behind it.
#[derive(Debug)]
struct TlsFailure {
    message: String,
    tls: rustls::Error,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsFailure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_reply_is_one_line_with_command_and_reply() {
        let e = FtpError::Unexpected {
            command: "RETR x".into(),
            reply: Reply { code: 550, lines: vec!["No such file".into()] },
        };
        assert_eq!(e.to_string(), "RETR x: server replied 550 No such file");
        assert_eq!(e.reason(), "server replied 550 No such file");
        assert_eq!(e.reply().map(|r| r.code), Some(550));
    }

    #[test]
    fn multi_line_reply_stays_on_one_line() {
        let reply = Reply { code: 530, lines: vec!["Login".into(), "incorrect".into()] };
        let e = FtpError::Unexpected { command: "PASS ****".into(), reply };
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn io_context_keeps_the_kind() {
        let e = FtpError::io("reading reply to NOOP", io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        match &e {
            FtpError::Io(inner) => assert_eq!(inner.kind(), io::ErrorKind::TimedOut),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(e.to_string(), "reading reply to NOOP: timed out");
    }

    #[test]
    fn certificate_errors_are_recognised() {
        let bad_cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = FtpError::tls("TLS handshake", io::Error::new(io::ErrorKind::InvalidData, bad_cert));
        assert!(e.is_certificate_error());
        assert_eq!(
            e.to_string(),
            "TLS handshake: invalid peer certificate: UnknownIssuer (not signed by a trusted certificate authority)"
        );
        match &e {
            FtpError::Io(inner) => assert_eq!(inner.kind(), io::ErrorKind::InvalidData),
            other => panic!("unexpected {other:?}"),
        }
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert!(!FtpError::tls("x", io::Error::new(io::ErrorKind::InvalidData, alert)).is_certificate_error());
        assert!(!FtpError::tls("x", io::Error::new(io::ErrorKind::TimedOut, "slow")).is_certificate_error());
        assert!(!FtpError::Closed.is_certificate_error());
    }
}
