//! FTP replies: encoding for the server, incremental parsing for the client (RFC 959 §4.2).
//!
//! A reply is a three-digit code and one or more lines of text. Multi-line replies start with `ddd-` and end with a
//! line starting `ddd ` (same code); an inner line that itself starts with three digits is indented on encoding so it
//! can never end the reply early. The parser caps the size of one reply so a hostile server cannot make a client
//! hold unbounded memory.

use std::fmt;

use crate::linebuf::{Line, LineBuffer};

/// Reply codes, named by the situation they report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplyCode {
    RestartMarker = 110,
    DataConnectionAlreadyOpen = 125,
    FileStatusOk = 150,
    CommandOk = 200,
    CommandSuperfluous = 202,
    SystemStatus = 211,
    DirectoryStatus = 212,
    FileStatus = 213,
    HelpMessage = 214,
    SystemType = 215,
    ServiceReady = 220,
    ClosingControlConnection = 221,
    DataConnectionOpenNoTransfer = 225,
    ClosingDataConnection = 226,
    EnteringPassiveMode = 227,
    EnteringExtendedPassiveMode = 229,
    UserLoggedIn = 230,
    AuthOk = 234,
    FileActionOk = 250,
    PathCreated = 257,
    NeedPassword = 331,
    NeedAccount = 332,
    FileActionPending = 350,
    ServiceNotAvailable = 421,
    CantOpenDataConnection = 425,
    TransferAborted = 426,
    FileBusy = 450,
    LocalError = 451,
    InsufficientStorage = 452,
    SyntaxError = 500,
    ArgumentSyntaxError = 501,
    CommandNotImplemented = 502,
    BadSequence = 503,
    ParameterNotImplemented = 504,
    NetworkProtocolNotSupported = 522,
    NotLoggedIn = 530,
    FileUnavailable = 550,
    ExceededStorage = 552,
    FileNameNotAllowed = 553,
    /// RFC 3659 §5.4: a REST offset the next transfer cannot use.
    InvalidRestart = 554,
}

impl ReplyCode {
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

/// A reply: a code and at least one line of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply.
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Reply {
        Reply { code: code.as_u16(), lines: vec![text.into()] }
    }

    /// A multi-line reply; the last line closes it.
    pub fn multi(code: ReplyCode, lines: Vec<String>) -> Reply {
        let lines = if lines.is_empty() { vec![String::new()] } else { lines };
        Reply { code: code.as_u16(), lines }
    }

    /// 1xx: the command started; another reply follows.
    pub fn is_preliminary(&self) -> bool {
        (100..200).contains(&self.code)
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx: more information is needed (PASS after USER, RNTO after RNFR).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// The text of all lines joined by newlines.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let code = self.code.min(999);
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            // A line end inside the text would let text forge a reply line; it becomes a space.
            let clean = line.replace(['\r', '\n'], " ");
            if i == last {
                out.extend_from_slice(format!("{code:03} {clean}\r\n").as_bytes());
            } else if i == 0 {
                out.extend_from_slice(format!("{code:03}-{clean}\r\n").as_bytes());
            } else if clean.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                // RFC 959 §4.2: an inner line starting with digits is padded so it cannot end the reply.
                out.extend_from_slice(format!(" {clean}\r\n").as_bytes());
            } else {
                out.extend_from_slice(clean.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// Why bytes from a server are not a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line that should start a reply does not begin with a three-digit code.
    Malformed(String),
    /// The reply exceeded the size cap.
    TooLarge,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Malformed(line) => write!(f, "malformed reply line: {line:?}"),
            ReplyError::TooLarge => write!(f, "reply too large"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Default cap on one reply, in bytes: a STAT listing may be long, but not endless.
pub const MAX_REPLY: usize = 1 << 20;

/// Assembles replies from bytes read off a control connection.
#[derive(Debug)]
pub struct ReplyParser {
    lines: LineBuffer,
    partial: Option<(u16, Vec<String>, usize)>,
    max: usize,
}

impl Default for ReplyParser {
    fn default() -> Self {
        Self::new(MAX_REPLY)
    }
}

impl ReplyParser {
    /// A parser that refuses replies longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        ReplyParser { lines: LineBuffer::new(8192), partial: None, max }
    }

    /// Feeds bytes read from the server.
    pub fn push(&mut self, data: &[u8]) {
        self.lines.push(data);
    }

    /// The next complete reply, if one has arrived.
    pub fn pop(&mut self) -> Option<Result<Reply, ReplyError>> {
        loop {
            let line = match self.lines.pop()? {
                Line::Text(t) => String::from_utf8_lossy(&t).into_owned(),
                Line::TooLong => {
                    self.partial = None;
                    return Some(Err(ReplyError::TooLarge));
                }
            };
            if let Some(done) = self.take_line(line) {
                return Some(done);
            }
        }
    }

    fn take_line(&mut self, line: String) -> Option<Result<Reply, ReplyError>> {
        match self.partial.take() {
            None => {
                let Some((code, sep)) = split_code(&line) else {
                    return Some(Err(ReplyError::Malformed(line)));
                };
                let text = line.get(4..).unwrap_or_default().to_string();
                if sep == Some('-') {
                    let size = line.len();
                    self.partial = Some((code, vec![text], size));
                    None
                } else {
                    Some(Ok(Reply { code, lines: vec![text] }))
                }
            }
            Some((code, mut lines, size)) => {
                let size = size + line.len();
                if size > self.max {
                    return Some(Err(ReplyError::TooLarge));
                }
                // The reply ends at "ddd " (or a bare "ddd") with the code it started with.
                match split_code(&line) {
                    Some((c, sep)) if c == code && sep != Some('-') => {
                        lines.push(line.get(4..).unwrap_or_default().to_string());
                        Some(Ok(Reply { code, lines }))
                    }
                    _ => {
                        // Inner lines are kept as sent, padding included: FEAT lines start with a space too.
                        lines.push(line);
                        self.partial = Some((code, lines, size));
                        None
                    }
                }
            }
        }
    }
}

/// `Some((code, separator))` if `line` starts with a reply code followed by a space, a dash or nothing.
fn split_code(line: &str) -> Option<(u16, Option<char>)> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !(b'1'..=b'5').contains(&b[0]) {
        return None;
    }
    let code = line[..3].parse().ok()?;
    match b.get(3) {
        None => Some((code, None)),
        Some(b' ') => Some((code, Some(' '))),
        Some(b'-') => Some((code, Some('-'))),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(bytes: &[u8]) -> Vec<Result<Reply, ReplyError>> {
        let mut p = ReplyParser::default();
        p.push(bytes);
        std::iter::from_fn(|| p.pop()).collect()
    }

    // RFC 959 §4.2: a single-line reply is "ddd text" CRLF.
    #[test]
    fn single_line_encoding() {
        assert_eq!(Reply::new(ReplyCode::CommandOk, "OK").to_bytes(), b"200 OK\r\n");
    }

    // RFC 959 §4.2: a multi-line reply is "ddd-first", inner lines, then "ddd last".
    #[test]
    fn multi_line_encoding() {
        let r = Reply::multi(ReplyCode::SystemStatus, vec!["Features:".into(), " UTF8".into(), "End".into()]);
        assert_eq!(r.to_bytes(), b"211-Features:\r\n UTF8\r\n211 End\r\n");
    }

    // RFC 959 §4.2: an inner line beginning with digits must be padded so it cannot end the reply early.
    #[test]
    fn inner_line_starting_with_code_is_padded() {
        let r = Reply::multi(ReplyCode::HelpMessage, vec!["a".into(), "214 not the end".into(), "end".into()]);
        let bytes = r.to_bytes();
        assert_eq!(bytes, b"214-a\r\n 214 not the end\r\n214 end\r\n");
        let parsed = parse_all(&bytes);
        assert_eq!(parsed[0].as_ref().map(|r| r.lines.len()), Ok(3));
    }

    // Text can never inject a line end into the reply stream.
    #[test]
    fn line_ends_in_text_are_neutralised() {
        assert_eq!(Reply::new(ReplyCode::FileUnavailable, "a\r\n230 b").to_bytes(), b"550 a  230 b\r\n");
    }

    // A multi-line reply ends only at the same code followed by a space.
    #[test]
    fn parse_multi_line() {
        let got = parse_all(b"230-Welcome\r\n230-still going\r\n200 other code\r\n230 done\r\n");
        assert_eq!(
            got,
            vec![Ok(Reply {
                code: 230,
                lines: vec!["Welcome".into(), "230-still going".into(), "200 other code".into(), "done".into()]
            })]
        );
    }

    // A bare code with no text is a valid reply.
    #[test]
    fn parse_bare_code() {
        assert_eq!(parse_all(b"200\r\n"), vec![Ok(Reply { code: 200, lines: vec![String::new()] })]);
    }

    // Garbage where a reply should start is reported, not guessed at.
    #[test]
    fn parse_malformed() {
        assert!(matches!(parse_all(b"hello\r\n")[0], Err(ReplyError::Malformed(_))));
        assert!(matches!(parse_all(b"20x ok\r\n")[0], Err(ReplyError::Malformed(_))));
    }

    // A reply larger than the cap is refused.
    #[test]
    fn parse_cap() {
        let mut p = ReplyParser::new(100);
        p.push(b"211-start\r\n");
        for _ in 0..20 {
            p.push(b"0123456789\r\n");
        }
        assert_eq!(p.pop(), Some(Err(ReplyError::TooLarge)));
    }

    proptest! {
        // Every reply we encode parses back to itself.
        #[test]
        fn replies_round_trip(code in 100u16..600, lines in proptest::collection::vec("[ -~]{0,30}", 1..6)) {
            let lines: Vec<String> = lines;
            let r = Reply { code, lines };
            let got = parse_all(&r.to_bytes());
            // The parser keeps inner lines as sent, so the expected form carries the encoder's padding.
            let last = r.lines.len() - 1;
            let expected: Vec<String> = r.lines.iter().enumerate().map(|(i, l)| {
                if i > 0 && i < last && l.as_bytes().first().is_some_and(u8::is_ascii_digit) { format!(" {l}") } else { l.clone() }
            }).collect();
            prop_assert_eq!(got, vec![Ok(Reply { code, lines: expected })]);
        }

        // The parser never panics on arbitrary bytes.
        #[test]
        fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..500)) {
            let _ = parse_all(&data);
        }
    }
}
