//! `ftp://` and `ftps://` URLs as the target of `ftpclient` (RFC 1738 §3.2, RFC 3986 for the authority).
//!
//! `ftp://[USER[:PASS]@]HOST[:PORT][/PATH]`: HOST is a name, an IPv4 address or a bracketed IPv6 address; PORT
//! defaults to 21. `ftps://` is the same with implicit TLS (TLS from the first byte, as curl means it), PORT
//! defaulting to 990. USER, PASS and PATH are percent-decoded (`%40` is `@`, `%2F` is `/`). As in RFC 1738 and curl,
//! PATH is relative to the directory the server puts the user in: `ftp://host/pub/a.txt` is `pub/a.txt` there and
//! `ftp://host/%2Fetc/motd` is `/etc/motd`. A PATH ending in `/` (or none) names a directory, anything else a file.

/// The FTP port when an `ftp://` URL names none.
pub const DEFAULT_PORT: u16 = 21;

/// The implicit-TLS FTP port when an `ftps://` URL names none.
pub const DEFAULT_FTPS_PORT: u16 = 990;

/// The parts of an `ftp://` or `ftps://` URL, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpUrl {
    /// `ftps://`: TLS from the first byte.
    pub implicit_tls: bool,
    pub user: Option<String>,
    pub pass: Option<String>,
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// The decoded path without the `/` that separates it from the host; empty for none.
    pub path: String,
}

impl FtpUrl {
    /// The file the URL names, if it names one (its path does not end in `/`).
    pub fn file(&self) -> Option<&str> {
        (!self.path.is_empty() && !self.path.ends_with('/')).then_some(self.path.as_str())
    }

    /// The directory the URL names, if it names one other than the login directory (`ftp://host//` names `/`).
    pub fn directory(&self) -> Option<&str> {
        let dir = self.path.strip_suffix('/')?;
        Some(if dir.is_empty() { "/" } else { dir })
    }
}

/// True when `text` looks like a URL (it has a scheme), so it is not to be taken as a host name.
pub fn is_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Parses an `ftp://` or `ftps://` URL.
pub fn parse_url(text: &str) -> Result<FtpUrl, String> {
    let (scheme, rest) = text.split_once("://").ok_or_else(|| format!("{text:?} is not a URL"))?;
    let (implicit_tls, default_port) = if scheme.eq_ignore_ascii_case("ftp") {
        (false, DEFAULT_PORT)
    } else if scheme.eq_ignore_ascii_case("ftps") {
        (true, DEFAULT_FTPS_PORT)
    } else {
        return Err(format!("unsupported URL scheme {scheme:?} (only ftp:// and ftps:// are supported)"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    // RFC 1738 §3.2.2: ";type=a|i|d" may follow the path; transfers here are always binary, so it is dropped.
    let path = match path.rfind(";type=") {
        Some(i) if path.len() == i + 7 => &path[..i],
        _ => path,
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (user, pass) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((user, pass)) => (Some(percent_decode(user)?), Some(percent_decode(pass)?)),
            None => (Some(percent_decode(info)?), None),
        },
    };
    let (host, port) = split_host_port(hostport, default_port)?;
    if host.is_empty() {
        return Err(format!("no host in {text:?}"));
    }
    let path = percent_decode(path)?;
    if path.contains(['\r', '\n']) || user.iter().chain(pass.iter()).any(|s| s.contains(['\r', '\n'])) {
        return Err(format!("line breaks are not allowed in {text:?}"));
    }
    Ok(FtpUrl { implicit_tls, user: user.filter(|u| !u.is_empty()), pass, host, port, path })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; `default_port` when none is given.
fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("unterminated '[' in {text:?}"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(|| format!("unexpected {after:?} after ']'"))?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(format!("invalid port {p:?} (expected 1-65535)")),
        },
    };
    Ok((host.to_string(), port))
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {text:?}"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> FtpUrl {
        parse_url(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn host_and_port() {
        let u = url("ftp://127.0.0.1:2121/");
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 2121, ""));
        assert_eq!((u.user.as_deref(), u.pass.as_deref(), u.file(), u.directory()), (None, None, None, None));
        let u = url("FTP://ftp.example.org");
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("ftp.example.org", 21, ""));
        let u = url("ftp://[::1]:2121/x");
        assert_eq!((u.host.as_str(), u.port, u.file()), ("::1", 2121, Some("x")));
        assert_eq!(url("ftp://[fe80::1]").host, "fe80::1");
        assert_eq!(url("ftp://h:/").port, 21);
        assert!(!url("ftp://h/").implicit_tls);
    }

    #[test]
    fn ftps_is_implicit_tls_on_port_990() {
        let u = url("ftps://bob:pw@ftp.example.org/pub/file.bin");
        assert!(u.implicit_tls);
        assert_eq!((u.host.as_str(), u.port, u.file()), ("ftp.example.org", 990, Some("pub/file.bin")));
        assert_eq!((u.user.as_deref(), u.pass.as_deref()), (Some("bob"), Some("pw")));
        let u = url("FTPS://[::1]:2990/");
        assert!(u.implicit_tls);
        assert_eq!((u.host.as_str(), u.port, u.directory()), ("::1", 2990, None));
        assert_eq!(url("ftps://h:/x/").port, 990);
        assert!(parse_url("ftps://h:0/").is_err());
        assert!(parse_url("ftpes://h/").expect_err("scheme").contains("only ftp:// and ftps://"));
    }

    #[test]
    fn credentials_are_decoded() {
        let u = url("ftp://bob:p%40ss%3Aw0rd@host/");
        assert_eq!((u.user.as_deref(), u.pass.as_deref()), (Some("bob"), Some("p@ss:w0rd")));
        let u = url("ftp://me%40example.org@host:21/");
        assert_eq!((u.user.as_deref(), u.pass), (Some("me@example.org"), None));
        // The last '@' ends the user information.
        let u = url("ftp://a@b:c@host/");
        assert_eq!((u.user.as_deref(), u.pass.as_deref(), u.host.as_str()), (Some("a@b"), Some("c"), "host"));
        assert_eq!(url("ftp://:x@host/").user, None);
        assert_eq!(url("ftp://bob:@host/").pass.as_deref(), Some(""));
    }

    #[test]
    fn paths() {
        let u = url("ftp://host:2121/dir/file%20name.bin");
        assert_eq!((u.file(), u.directory()), (Some("dir/file name.bin"), None));
        assert_eq!(url("ftp://host/pub/sub/").directory(), Some("pub/sub"));
        assert_eq!(url("ftp://host//").directory(), Some("/"));
        assert_eq!(url("ftp://host/%2Fpub/").directory(), Some("/pub"));
        assert_eq!(url("ftp://host/%2Fetc/motd").file(), Some("/etc/motd"));
        assert_eq!(url("ftp://host/a.txt;type=i").file(), Some("a.txt"));
        assert_eq!(url("ftp://host/%E2%82%AC").file(), Some("€"));
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "http://host/",
            "ftp://",
            "ftp:///path",
            "ftp://host:0/",
            "ftp://host:65536/",
            "ftp://host:x/",
            "ftp://[::1/",
            "ftp://[nope]/",
            "ftp://[::1]x/",
            "ftp://host/%zz",
            "ftp://host/%4",
            "ftp://host/%ff",
            "ftp://host/a%0D%0ADELE%20b",
            "ftp://u%0A@host/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url("sftp://host/").expect_err("scheme").contains("only ftp://"));
    }

    #[test]
    fn what_is_a_url() {
        assert!(is_url("ftp://host"));
        assert!(is_url("sftp://host"));
        assert!(!is_url("127.0.0.1"));
        assert!(!is_url("::1"));
        assert!(!is_url("://x"));
        assert!(!is_url("a b://x"));
    }
}
