//! The client's error type: what went wrong, in one line a person can act on.
//!
//! Every failure of an [`FtpClient`](crate::FtpClient) call is one [`FtpError`]: a local or network I/O failure
//! (with what was being done when it happened), a reply whose code the command does not accept (with the command
//! and the whole reply), a server that broke the protocol, or a control connection that is gone. Passwords never
//! appear in an error: the PASS command is always recorded as `PASS ****`.

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
}
