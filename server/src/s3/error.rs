//! What can go wrong talking to the store, in the few kinds a caller acts on differently.
//!
//! | store says / network does                                        | [`Error`]        | FTP reply (suggested) |
//! |------------------------------------------------------------------|------------------|-----------------------|
//! | 404 (`NoSuchKey`, `NoSuchUpload`), HEAD 404                      | `NotFound`       | 550                   |
//! | 404 `NoSuchBucket`                                               | `Other`          | 451 (misconfigured)   |
//! | 401, 403 (`AccessDenied`, `SignatureDoesNotMatch`, ...)          | `Denied`         | 550                   |
//! | 416 on a ranged GET past the end                                 | `InvalidRange`   | 554 (RFC 3659 REST)   |
//! | 408, 429, 5xx, 400 `BadDigest` (a body damaged on the way);      | `Transient`      | 451 (try again)       |
//! | connection refused/reset/aborted, broken pipe,                   |                  |                       |
//! | a timeout, a response cut short, an HTTP protocol error          |                  |                       |
//! | a key that could leave the prefix                                | `InvalidKey`     | 553                   |
//! | anything else (other 4xx, 3xx, bad XML, DNS failure, TLS)        | `Other`          | 451                   |
//!
//! `Transient` is the only kind retried (see `Client`), and only for requests that are safe to repeat.

use std::fmt;
use std::io;

/// One failed store operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The object, or the multipart upload, does not exist.
    NotFound,
    /// Worth trying again later: the store is overloaded, a node is down, the network failed or timed out.
    Transient(String),
    /// The credentials are refused or lack the permission.
    Denied(String),
    /// A read from `offset` of an object of `size` bytes: the offset is past the end.
    InvalidRange { offset: u64, size: u64 },
    /// A key the client refuses to send (see the `key` module for the rules).
    InvalidKey(String),
    /// Anything else, described.
    Other(String),
}

impl Error {
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transient(_))
    }

    /// The error a response with this status and S3 error body stands for. `code` and `message` come from the
    /// `<Error>` document when there is one (HEAD responses have none).
    pub(super) fn from_status(status: u16, code: &str, message: &str) -> Error {
        let detail = || {
            let mut s = format!("HTTP {status}");
            if !code.is_empty() {
                s.push(' ');
                s.push_str(code);
            }
            if !message.is_empty() {
                s.push_str(": ");
                s.push_str(message);
            }
            s
        };
        match status {
            404 if code == "NoSuchBucket" => Error::Other(format!("the bucket does not exist ({})", detail())),
            404 => Error::NotFound,
            // The body arrived damaged (its Content-MD5 did not match): sending it again may well succeed.
            400 if code == "BadDigest" => Error::Transient(detail()),
            401 | 403 => Error::Denied(detail()),
            408 | 429 | 500..=599 => Error::Transient(detail()),
            300..=399 => Error::Other(format!("{}; is the endpoint or region wrong?", detail())),
            _ => Error::Other(detail()),
        }
    }

    /// The error a failed HTTP exchange stands for.
    pub(super) fn from_http(e: &ureq::Error) -> Error {
        match e {
            ureq::Error::Io(io) => Error::from_io(io),
            ureq::Error::Timeout(which) => Error::Transient(format!("timed out ({which})")),
            ureq::Error::ConnectionFailed | ureq::Error::BodyStalled | ureq::Error::Protocol(_) => {
                Error::Transient(e.to_string())
            }
            other => Error::Other(other.to_string()),
        }
    }

    /// The error a failed read of a response body stands for: ureq reports its own errors wrapped in `io::Error`.
    pub(super) fn from_io(e: &io::Error) -> Error {
        if let Some(inner) = e.get_ref().and_then(|r| r.downcast_ref::<ureq::Error>()) {
            return Error::from_http(inner);
        }
        use io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::WouldBlock
            | K::Interrupted
            | K::UnexpectedEof => Error::Transient(e.to_string()),
            _ => Error::Other(e.to_string()),
        }
    }
}

/// Whether a failed exchange surely never reached the store, so that even a request that is not safe to repeat
/// may be sent again: the connection was never made.
pub(super) fn never_sent(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => true,
        ureq::Error::Io(io) => io.kind() == io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("no such object"),
            Error::Transient(why) => write!(f, "store temporarily unavailable: {why}"),
            Error::Denied(why) => write!(f, "store refused access: {why}"),
            Error::InvalidRange { offset, size } => write!(f, "offset {offset} is past the end ({size} bytes)"),
            Error::InvalidKey(why) => write!(f, "invalid key: {why}"),
            Error::Other(why) => write!(f, "store error: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    /// For readers: the kind says what happened, the message says why.
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::NotFound => io::ErrorKind::NotFound,
            Error::Transient(_) => io::ErrorKind::TimedOut,
            Error::Denied(_) => io::ErrorKind::PermissionDenied,
            Error::InvalidRange { .. } | Error::InvalidKey(_) => io::ErrorKind::InvalidInput,
            Error::Other(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// `Code` and `Message` of an S3 `<Error>` document; empty strings where absent. A flat scan is enough: the
/// document is small, flat and only read for the message.
pub(super) fn error_fields(body: &str) -> (String, String) {
    fn field(body: &str, name: &str) -> String {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        body.find(&open)
            .and_then(|start| {
                let rest = &body[start + open.len()..];
                rest.find(&close).map(|end| rest[..end].trim().to_string())
            })
            .unwrap_or_default()
    }
    (field(body, "Code"), field(body, "Message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(Error::from_status(404, "NoSuchKey", "gone"), Error::NotFound);
        assert_eq!(Error::from_status(404, "", ""), Error::NotFound);
        assert!(matches!(Error::from_status(404, "NoSuchBucket", "x"), Error::Other(_)));
        assert!(matches!(Error::from_status(403, "AccessDenied", ""), Error::Denied(_)));
        assert!(matches!(Error::from_status(401, "", ""), Error::Denied(_)));
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(Error::from_status(s, "", "").is_transient(), "{s}");
        }
        assert!(matches!(Error::from_status(400, "InvalidRequest", ""), Error::Other(_)));
        assert!(Error::from_status(400, "BadDigest", "").is_transient());
        assert!(matches!(Error::from_status(301, "PermanentRedirect", ""), Error::Other(_)));
    }

    #[test]
    fn detail_carries_code_and_message() {
        let e = Error::from_status(403, "SignatureDoesNotMatch", "check your key");
        assert_eq!(e.to_string(), "store refused access: HTTP 403 SignatureDoesNotMatch: check your key");
    }

    #[test]
    fn network_failures_are_transient() {
        for kind in [io::ErrorKind::ConnectionRefused, io::ErrorKind::ConnectionReset, io::ErrorKind::TimedOut] {
            assert!(Error::from_io(&io::Error::from(kind)).is_transient(), "{kind:?}");
        }
        assert!(!Error::from_io(&io::Error::from(io::ErrorKind::PermissionDenied)).is_transient());
        assert!(Error::from_http(&ureq::Error::Timeout(ureq::Timeout::RecvResponse)).is_transient());
        assert!(Error::from_http(&ureq::Error::ConnectionFailed).is_transient());
        assert!(!Error::from_http(&ureq::Error::HostNotFound).is_transient());
    }

    #[test]
    fn a_wrapped_ureq_error_is_seen_through() {
        let wrapped = io::Error::other(ureq::Error::Timeout(ureq::Timeout::PerRead));
        assert!(Error::from_io(&wrapped).is_transient());
    }

    #[test]
    fn only_failed_connections_count_as_never_sent() {
        assert!(never_sent(&ureq::Error::ConnectionFailed));
        assert!(never_sent(&ureq::Error::Io(io::ErrorKind::ConnectionRefused.into())));
        assert!(!never_sent(&ureq::Error::Io(io::ErrorKind::ConnectionReset.into())));
        assert!(!never_sent(&ureq::Error::Timeout(ureq::Timeout::RecvResponse)));
    }

    #[test]
    fn error_document_fields() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>Key not found</Message>\
                    <Resource>/b/k</Resource></Error>";
        assert_eq!(error_fields(body), ("NoSuchKey".into(), "Key not found".into()));
        assert_eq!(error_fields("garbage"), (String::new(), String::new()));
        assert_eq!(error_fields("<Code>unterminated"), (String::new(), String::new()));
    }
}
