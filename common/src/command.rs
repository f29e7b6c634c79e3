//! FTP commands: one enum variant per verb the protocol surface knows, parsed from one control line.
//!
//! [`VERBS`] is the single table that says, for each verb, whether it needs a login and whether its argument is
//! required, optional or forbidden; the generic 500/501/530 answers are derived from it before any handler runs.
//! Parsing never panics and never guesses: a NUL byte or invalid UTF-8 in an argument is an error value, never a
//! silently shortened name.

use std::fmt;
use std::net::SocketAddr;

use crate::hostport;

/// Whether a verb takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgRule {
    Required,
    Optional,
    Forbidden,
}

/// What the protocol says about one verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerbInfo {
    /// Upper-case verb as sent on the wire.
    pub name: &'static str,
    /// Whether the verb may only be used after a successful login.
    pub needs_login: bool,
    pub arg: ArgRule,
}

const fn verb(name: &'static str, needs_login: bool, arg: ArgRule) -> VerbInfo {
    VerbInfo { name, needs_login, arg }
}

use ArgRule::{Forbidden as NO, Optional as OPT, Required as REQ};

/// Every verb we parse. Verbs that work before login: those a client sends while it finds out what the server
/// offers (FEAT, OPTS, SYST, HELP), keep-alives (NOOP, STAT) and the ones that carry the login itself.
pub const VERBS: &[VerbInfo] = &[
    verb("USER", false, REQ),
    verb("PASS", false, OPT),
    verb("ACCT", false, REQ),
    verb("QUIT", false, NO),
    verb("NOOP", false, NO),
    verb("SYST", false, NO),
    verb("FEAT", false, NO),
    verb("OPTS", false, REQ),
    verb("HELP", false, OPT),
    verb("STAT", false, OPT),
    verb("ALLO", true, REQ),
    verb("REIN", false, NO),
    verb("PWD", true, NO),
    verb("XPWD", true, NO),
    verb("CWD", true, REQ),
    verb("XCWD", true, REQ),
    verb("CDUP", true, NO),
    verb("XCUP", true, NO),
    verb("TYPE", true, REQ),
    verb("MODE", true, REQ),
    verb("STRU", true, REQ),
    verb("PASV", true, NO),
    verb("EPSV", true, OPT),
    verb("PORT", true, REQ),
    verb("EPRT", true, REQ),
    verb("REST", true, REQ),
    verb("RETR", true, REQ),
    verb("STOR", true, REQ),
    verb("APPE", true, REQ),
    verb("STOU", true, OPT),
    verb("LIST", true, OPT),
    verb("NLST", true, OPT),
    verb("MLSD", true, OPT),
    verb("MLST", true, OPT),
    verb("SIZE", true, REQ),
    verb("MDTM", true, REQ),
    verb("HASH", true, REQ),
    verb("DELE", true, REQ),
    verb("MKD", true, REQ),
    verb("XMKD", true, REQ),
    verb("RMD", true, REQ),
    verb("XRMD", true, REQ),
    verb("RNFR", true, REQ),
    verb("RNTO", true, REQ),
    verb("MFMT", true, REQ),
    verb("ABOR", true, NO),
    verb("AUTH", false, REQ),
    verb("PBSZ", false, REQ),
    verb("PROT", false, REQ),
];

/// Looks a verb up in [`VERBS`], case-insensitively.
pub fn verb_info(name: &str) -> Option<&'static VerbInfo> {
    VERBS.iter().find(|v| v.name.eq_ignore_ascii_case(name))
}

/// Representation type (RFC 959 §3.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferType {
    /// `TYPE A` (optionally `A N`): line ends become CRLF on the wire.
    Ascii,
    /// `TYPE I` or `TYPE L 8`: bytes move unchanged.
    Image,
    /// Anything else (EBCDIC, other byte sizes, unknown format controls); answered 504.
    Unsupported(String),
}

/// The argument of EPSV (RFC 2428 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// `EPSV ALL`: from now on only EPSV is used for data connections.
    All,
    /// `EPSV 1` (IPv4) or `EPSV 2` (IPv6), or another network protocol number.
    Protocol(u16),
}

/// One parsed control-connection command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(String),
    Acct(String),
    Quit,
    Noop,
    Syst,
    Feat,
    Opts(String),
    Help(Option<String>),
    Stat(Option<String>),
    Allo(String),
    Rein,
    /// PWD and XPWD.
    Pwd,
    /// CWD and XCWD.
    Cwd(String),
    /// CDUP and XCUP.
    Cdup,
    Type(TransferType),
    Mode(String),
    Stru(String),
    Pasv,
    Epsv(Option<EpsvArg>),
    Port(SocketAddr),
    Eprt(SocketAddr),
    Rest(u64),
    Retr(String),
    Stor(String),
    Appe(String),
    Stou(Option<String>),
    List(Option<String>),
    Nlst(Option<String>),
    Mlsd(Option<String>),
    Mlst(Option<String>),
    Size(String),
    Mdtm(String),
    Hash(String),
    Dele(String),
    /// MKD and XMKD.
    Mkd(String),
    /// RMD and XRMD.
    Rmd(String),
    Rnfr(String),
    Rnto(String),
    /// `MFMT YYYYMMDDHHMMSS path` (draft-somers-ftp-mfxx).
    Mfmt {
        time: String,
        path: String,
    },
    Abor,
    Auth(String),
    Pbsz(String),
    Prot(String),
    /// A verb not in [`VERBS`], upper-cased.
    Unknown(String),
}

/// Why a line is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The line is empty or blank.
    Empty,
    /// The verb is not made of ASCII letters.
    BadVerb,
    /// The argument is not valid UTF-8.
    InvalidUtf8(&'static VerbInfo),
    /// The argument contains a NUL byte, which no path or name may contain.
    NulByte(&'static VerbInfo),
    MissingArgument(&'static VerbInfo),
    UnexpectedArgument(&'static VerbInfo),
    /// The argument is present but malformed (a PORT address, a REST offset, ...).
    BadArgument(&'static VerbInfo, &'static str),
    /// EPRT names a network protocol other than 1 (IPv4) or 2 (IPv6): RFC 2428 §2 answers 522, not 501.
    UnsupportedProtocol(&'static VerbInfo),
}

impl ParseError {
    /// The verb the error is about, when it was recognised.
    pub fn verb(&self) -> Option<&'static VerbInfo> {
        match self {
            ParseError::Empty | ParseError::BadVerb => None,
            ParseError::InvalidUtf8(v)
            | ParseError::NulByte(v)
            | ParseError::MissingArgument(v)
            | ParseError::UnexpectedArgument(v)
            | ParseError::BadArgument(v, _)
            | ParseError::UnsupportedProtocol(v) => Some(v),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "empty command"),
            ParseError::BadVerb => write!(f, "syntax error, command unrecognized"),
            ParseError::InvalidUtf8(v) => write!(f, "{} argument is not valid UTF-8", v.name),
            ParseError::NulByte(v) => write!(f, "{} argument contains a NUL byte", v.name),
            ParseError::MissingArgument(v) => write!(f, "{} needs an argument", v.name),
            ParseError::UnexpectedArgument(v) => write!(f, "{} takes no argument", v.name),
            ParseError::BadArgument(v, why) => write!(f, "{} argument invalid: {why}", v.name),
            ParseError::UnsupportedProtocol(_) => write!(f, "Network protocol not supported, use (1,2)"),
        }
    }
}

impl std::error::Error for ParseError {}

impl Command {
    /// Parses one line (without its line end).
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        // RFC 959 §5.3: the verb is separated from its argument by one space. Leading spaces are a client bug we
        // forgive; spaces inside the argument are significant (file names may contain them).
        let start = line.iter().position(|&b| b != b' ').ok_or(ParseError::Empty)?;
        let line = &line[start..];
        let (verb, raw_arg) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        if verb.is_empty() || verb.len() > 16 || !verb.iter().all(u8::is_ascii_alphabetic) {
            return Err(ParseError::BadVerb);
        }
        // Checked above: the verb is ASCII letters only.
        let verb = String::from_utf8_lossy(verb).to_ascii_uppercase();
        let Some(info) = verb_info(&verb) else {
            return Ok(Command::Unknown(verb));
        };
        let arg = match raw_arg {
            Some(raw) => {
                if raw.contains(&0) {
                    return Err(ParseError::NulByte(info));
                }
                let text = std::str::from_utf8(raw).map_err(|_| ParseError::InvalidUtf8(info))?;
                // Trailing CR/LF never reach here; surrounding blanks are meaningless for verbs without paths.
                if text.trim().is_empty() {
                    None
                } else {
                    Some(text)
                }
            }
            None => None,
        };
        let arg = match (info.arg, arg) {
            (ArgRule::Required, None) => return Err(ParseError::MissingArgument(info)),
            (ArgRule::Forbidden, Some(_)) => return Err(ParseError::UnexpectedArgument(info)),
            (_, arg) => arg,
        };
        Self::build(info, arg)
    }

    fn build(info: &'static VerbInfo, arg: Option<&str>) -> Result<Command, ParseError> {
        let req = || arg.unwrap_or_default().to_string();
        let opt = || arg.map(str::to_string);
        let bad = |why| ParseError::BadArgument(info, why);
        Ok(match info.name {
            "USER" => Command::User(req()),
            "PASS" => Command::Pass(arg.unwrap_or_default().to_string()),
            "ACCT" => Command::Acct(req()),
            "QUIT" => Command::Quit,
            "NOOP" => Command::Noop,
            "SYST" => Command::Syst,
            "FEAT" => Command::Feat,
            "OPTS" => Command::Opts(req()),
            "HELP" => Command::Help(opt()),
            "STAT" => Command::Stat(opt()),
            "ALLO" => Command::Allo(req()),
            "REIN" => Command::Rein,
            "PWD" | "XPWD" => Command::Pwd,
            "CWD" | "XCWD" => Command::Cwd(req()),
            "CDUP" | "XCUP" => Command::Cdup,
            "TYPE" => Command::Type(parse_type(arg.unwrap_or_default())),
            "MODE" => Command::Mode(req().trim().to_string()),
            "STRU" => Command::Stru(req().trim().to_string()),
            "PASV" => Command::Pasv,
            "EPSV" => Command::Epsv(match arg.map(str::trim) {
                None => None,
                Some(a) if a.eq_ignore_ascii_case("ALL") => Some(EpsvArg::All),
                Some(a) => Some(EpsvArg::Protocol(a.parse().map_err(|_| bad("expected ALL or a protocol number"))?)),
            }),
            "PORT" => Command::Port(SocketAddr::V4(
                hostport::parse_port_arg(arg.unwrap_or_default()).ok_or(bad("expected h1,h2,h3,h4,p1,p2"))?,
            )),
            "EPRT" => {
                let arg = arg.unwrap_or_default();
                match hostport::parse_eprt_arg(arg) {
                    Some(addr) => Command::Eprt(addr),
                    None if hostport::eprt_unknown_protocol(arg) => return Err(ParseError::UnsupportedProtocol(info)),
                    None => return Err(bad("expected |af|addr|port|")),
                }
            }
            "REST" => Command::Rest(arg.unwrap_or_default().trim().parse().map_err(|_| bad("expected a byte offset"))?),
            "RETR" => Command::Retr(req()),
            "STOR" => Command::Stor(req()),
            "APPE" => Command::Appe(req()),
            "STOU" => Command::Stou(opt()),
            "LIST" => Command::List(opt()),
            "NLST" => Command::Nlst(opt()),
            "MLSD" => Command::Mlsd(opt()),
            "MLST" => Command::Mlst(opt()),
            "SIZE" => Command::Size(req()),
            "MDTM" => Command::Mdtm(req()),
            "HASH" => Command::Hash(req()),
            "DELE" => Command::Dele(req()),
            "MKD" | "XMKD" => Command::Mkd(req()),
            "RMD" | "XRMD" => Command::Rmd(req()),
            "RNFR" => Command::Rnfr(req()),
            "RNTO" => Command::Rnto(req()),
            "MFMT" => {
                let a = arg.unwrap_or_default();
                let (time, path) = a.split_once(' ').ok_or(bad("expected YYYYMMDDHHMMSS and a path"))?;
                if time.len() != 14 || !time.bytes().all(|b| b.is_ascii_digit()) || path.is_empty() {
                    return Err(bad("expected YYYYMMDDHHMMSS and a path"));
                }
                Command::Mfmt { time: time.to_string(), path: path.to_string() }
            }
            "ABOR" => Command::Abor,
            "AUTH" => Command::Auth(req()),
            "PBSZ" => Command::Pbsz(req()),
            "PROT" => Command::Prot(req()),
            // Every name in VERBS has an arm above; a new verb without one is reported, not a panic.
            _ => Command::Unknown(info.name.to_string()),
        })
    }

    /// The canonical verb of this command (aliases such as XPWD map to PWD).
    pub fn verb(&self) -> &str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct(_) => "ACCT",
            Command::Quit => "QUIT",
            Command::Noop => "NOOP",
            Command::Syst => "SYST",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Help(_) => "HELP",
            Command::Stat(_) => "STAT",
            Command::Allo(_) => "ALLO",
            Command::Rein => "REIN",
            Command::Pwd => "PWD",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Type(_) => "TYPE",
            Command::Mode(_) => "MODE",
            Command::Stru(_) => "STRU",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::Rest(_) => "REST",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Appe(_) => "APPE",
            Command::Stou(_) => "STOU",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlsd(_) => "MLSD",
            Command::Mlst(_) => "MLST",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Hash(_) => "HASH",
            Command::Dele(_) => "DELE",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Mfmt { .. } => "MFMT",
            Command::Abor => "ABOR",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Unknown(v) => v,
        }
    }

    /// The table entry for this command, `None` for [`Command::Unknown`].
    pub fn info(&self) -> Option<&'static VerbInfo> {
        match self {
            Command::Unknown(_) => None,
            other => verb_info(other.verb()),
        }
    }
}

fn parse_type(arg: &str) -> TransferType {
    let words: Vec<String> = arg.split_whitespace().map(str::to_ascii_uppercase).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        // RFC 959 §3.1.1.5: the second parameter of A is the format control; only Non-print is supported.
        ["A"] | ["A", "N"] => TransferType::Ascii,
        ["I"] | ["L", "8"] => TransferType::Image,
        _ => TransferType::Unsupported(arg.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Command, ParseError> {
        Command::parse(s.as_bytes())
    }

    // RFC 959 §5.3: "The command codes themselves are alphabetic characters ... upper or lower case".
    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(parse("noop"), Ok(Command::Noop));
        assert_eq!(parse("NoOp"), Ok(Command::Noop));
        assert_eq!(parse("retr a.txt"), Ok(Command::Retr("a.txt".into())));
    }

    // Arguments keep their inner and trailing spaces: "my file .txt" is a legal name.
    #[test]
    fn argument_spaces_are_kept() {
        assert_eq!(parse("STOR my  file .txt"), Ok(Command::Stor("my  file .txt".into())));
        assert_eq!(parse("RETR  lead"), Ok(Command::Retr(" lead".into())));
    }

    // Unknown verbs are values, not errors: the server answers 500 naming them.
    #[test]
    fn unknown_verb_is_kept_uppercased() {
        assert_eq!(parse("xyzzy plugh"), Ok(Command::Unknown("XYZZY".into())));
    }

    // A verb must be letters only; "12 34" is a syntax error.
    #[test]
    fn non_alphabetic_verb_is_a_syntax_error() {
        assert_eq!(parse("12 34"), Err(ParseError::BadVerb));
        assert_eq!(parse("RE\u{e9}TR x"), Err(ParseError::BadVerb));
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("   "), Err(ParseError::Empty));
    }

    // The verb table decides: RETR without a path is a 501, not a crash or an empty name.
    #[test]
    fn required_argument_missing() {
        let err = parse("RETR").unwrap_err();
        assert!(matches!(err, ParseError::MissingArgument(v) if v.name == "RETR"));
        assert!(matches!(parse("RETR   "), Err(ParseError::MissingArgument(_))));
    }

    // PWD takes no argument; a trailing blank (some clients send one) is not an argument.
    #[test]
    fn forbidden_argument() {
        assert!(matches!(parse("PWD /x"), Err(ParseError::UnexpectedArgument(_))));
        assert_eq!(parse("PWD "), Ok(Command::Pwd));
    }

    // A NUL byte in a name is refused outright; it must never truncate the name silently.
    #[test]
    fn nul_in_argument_is_an_error() {
        assert!(matches!(Command::parse(b"DELE a\0b"), Err(ParseError::NulByte(v)) if v.name == "DELE"));
    }

    // Names are UTF-8 (RFC 2640); other bytes are refused rather than guessed at.
    #[test]
    fn invalid_utf8_in_argument_is_an_error() {
        assert!(matches!(Command::parse(b"RETR \xff\xfe"), Err(ParseError::InvalidUtf8(_))));
        assert_eq!(parse("RETR caf\u{e9} \u{1f600}.txt"), Ok(Command::Retr("caf\u{e9} \u{1f600}.txt".into())));
    }

    // The X-variants of RFC 775 are aliases.
    #[test]
    fn x_aliases() {
        assert_eq!(parse("XPWD"), Ok(Command::Pwd));
        assert_eq!(parse("XCWD d"), Ok(Command::Cwd("d".into())));
        assert_eq!(parse("XCUP"), Ok(Command::Cdup));
        assert_eq!(parse("XMKD d"), Ok(Command::Mkd("d".into())));
        assert_eq!(parse("XRMD d"), Ok(Command::Rmd("d".into())));
    }

    // RFC 959 §3.1.1: TYPE A [N], TYPE I and TYPE L 8 are the types we move; others are "not implemented for
    // that parameter".
    #[test]
    fn type_arguments() {
        assert_eq!(parse("TYPE A"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("type a n"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("TYPE I"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(parse("TYPE L 8"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(parse("TYPE E"), Ok(Command::Type(TransferType::Unsupported("E".into()))));
    }

    // RFC 959 PORT: six decimal numbers; anything else is a 501.
    #[test]
    fn port_argument() {
        assert_eq!(parse("PORT 127,0,0,1,4,1"), Ok(Command::Port("127.0.0.1:1025".parse().unwrap())));
        assert!(matches!(parse("PORT 127,0,0,1,4"), Err(ParseError::BadArgument(..))));
        assert!(matches!(parse("PORT 256,0,0,1,4,1"), Err(ParseError::BadArgument(..))));
    }

    // RFC 2428: EPRT carries IPv4 or IPv6; EPSV takes ALL or a protocol number.
    #[test]
    fn extended_arguments() {
        assert_eq!(parse("EPRT |2|::1|5000|"), Ok(Command::Eprt("[::1]:5000".parse().unwrap())));
        // RFC 2428 §2: an unknown network protocol is its own error (522 naming the supported ones), while a
        // malformed argument stays a 501.
        assert!(matches!(parse("EPRT |3|1.2.3.4|5000|"), Err(ParseError::UnsupportedProtocol(_))));
        assert!(matches!(parse("EPRT |7|x|y|"), Err(ParseError::UnsupportedProtocol(_))));
        assert!(matches!(parse("EPRT |1|1.2.3.4|"), Err(ParseError::BadArgument(..))));
        assert!(matches!(parse("EPRT ||1.2.3.4|5000|"), Err(ParseError::BadArgument(..))));
        assert_eq!(parse("EPSV"), Ok(Command::Epsv(None)));
        assert_eq!(parse("EPSV all"), Ok(Command::Epsv(Some(EpsvArg::All))));
        assert_eq!(parse("EPSV 2"), Ok(Command::Epsv(Some(EpsvArg::Protocol(2)))));
        assert!(matches!(parse("EPSV x"), Err(ParseError::BadArgument(..))));
    }

    // RFC 3659 §5: REST takes a decimal byte offset.
    #[test]
    fn rest_argument() {
        assert_eq!(parse("REST 100"), Ok(Command::Rest(100)));
        assert!(matches!(parse("REST -1"), Err(ParseError::BadArgument(..))));
    }

    // MFMT: a 14-digit time, a space, then the path (which may contain spaces).
    #[test]
    fn mfmt_argument() {
        assert_eq!(
            parse("MFMT 20240102030405 a b.txt"),
            Ok(Command::Mfmt { time: "20240102030405".into(), path: "a b.txt".into() })
        );
        assert!(matches!(parse("MFMT 2024 x"), Err(ParseError::BadArgument(..))));
    }

    // PASS may be empty: some clients send "PASS" alone for anonymous logins.
    #[test]
    fn empty_password() {
        assert_eq!(parse("PASS"), Ok(Command::Pass(String::new())));
    }

    // Every verb in the table parses to a variant whose verb() maps back to a table entry.
    #[test]
    fn table_is_complete() {
        for v in VERBS {
            let line = match v.arg {
                ArgRule::Forbidden => v.name.to_string(),
                _ => match v.name {
                    "PORT" => "PORT 127,0,0,1,0,80".into(),
                    "EPRT" => "EPRT |1|127.0.0.1|80|".into(),
                    "REST" => "REST 0".into(),
                    "EPSV" => "EPSV ALL".into(),
                    "MFMT" => "MFMT 20240101000000 f".into(),
                    n => format!("{n} arg"),
                },
            };
            let cmd = parse(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(!matches!(cmd, Command::Unknown(_)), "{line}");
            assert!(cmd.info().is_some(), "{line}");
        }
    }

    proptest! {
        // Parsing arbitrary bytes never panics, and errors are values.
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Command::parse(&data);
        }

        // Arbitrary arguments to every known verb never panic either.
        #[test]
        fn parse_known_verbs_never_panics(i in 0..VERBS.len(), arg in ".{0,40}") {
            let _ = Command::parse(format!("{} {}", VERBS[i].name, arg).as_bytes());
        }
    }
}
