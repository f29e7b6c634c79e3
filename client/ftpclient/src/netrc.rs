//! `~/.netrc`: the login and password every FTP tool finds for a host when none are given.
//!
//! The file is read from `$NETRC` when that is set, else from `$HOME/.netrc`. It is a stream of whitespace-separated
//! tokens: `machine NAME` starts the entry for a host and `default` the entry for every other host; within an entry
//! `login NAME`, `password PASS` and `account ACCT` (ignored) follow. `macdef NAME` defines a macro (ignored) that
//! runs to the next empty line. As in curl and Python's `netrc`, a token may be double-quoted (with `\` escaping the
//! next character) and `#` at the start of a token comments out the rest of the line.

use std::path::PathBuf;

/// One `machine` (or the `default`) entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetrcEntry {
    /// The host, or `None` for the `default` entry.
    pub machine: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
}

/// Parses the text of a netrc file.
pub fn parse_netrc(text: &str) -> Result<Vec<NetrcEntry>, String> {
    let mut tokens = Tokens { text, pos: 0 };
    let mut entries: Vec<NetrcEntry> = Vec::new();
    while let Some(token) = tokens.next_token()? {
        let mut value =
            |what: &str| tokens.next_token()?.ok_or_else(|| format!("{what} at the end of the file has no value"));
        match token.as_str() {
            "machine" => entries.push(NetrcEntry { machine: Some(value("machine")?), ..NetrcEntry::default() }),
            "default" => entries.push(NetrcEntry::default()),
            "login" | "password" | "account" => {
                let v = value(&token)?;
                let entry = entries.last_mut().ok_or_else(|| format!("{token} before any machine"))?;
                match token.as_str() {
                    "login" => entry.login = Some(v),
                    "password" => entry.password = Some(v),
                    _ => {}
                }
            }
            "macdef" => {
                value("macdef")?;
                tokens.skip_macro();
            }
            other => return Err(format!("unknown token {other:?}")),
        }
    }
    Ok(entries)
}

/// The entry for `host`: the first `machine` entry naming it (case-insensitively), else the `default` entry. When
/// `user` is given, only entries without a login or with that login qualify.
pub fn lookup<'a>(entries: &'a [NetrcEntry], host: &str, user: Option<&str>) -> Option<&'a NetrcEntry> {
    let fits = |e: &&NetrcEntry| match (user, &e.login) {
        (Some(user), Some(login)) => user == login,
        _ => true,
    };
    let named = entries.iter().filter(|e| e.machine.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(host)));
    named.clone().find(fits).or_else(|| entries.iter().filter(|e| e.machine.is_none()).find(fits))
}

/// Where the netrc file is: `$NETRC`, else `$HOME/.netrc`.
pub fn netrc_path() -> Option<PathBuf> {
    match std::env::var_os("NETRC") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|home| PathBuf::from(home).join(".netrc")),
    }
}

/// The entries of the netrc file: none when there is no file; an error (to warn about) when it cannot be read
/// or parsed.
pub fn load_netrc() -> Result<Vec<NetrcEntry>, String> {
    let Some(path) = netrc_path() else {
        return Ok(Vec::new());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_netrc(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

struct Tokens<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// The next token, skipping whitespace and comments.
    fn next_token(&mut self) -> Result<Option<String>, String> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with('#') {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
                continue;
            }
            if trimmed.is_empty() {
                return Ok(None);
            }
            break;
        }
        let mut token = String::new();
        let mut chars = self.rest().char_indices();
        let quoted = self.rest().starts_with('"');
        if quoted {
            chars.next();
        }
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' if quoted => {
                    end = Some(i + 1);
                    break;
                }
                '\\' if quoted => {
                    let (_, escaped) = chars.next().ok_or("unterminated quote")?;
                    token.push(escaped);
                }
                c if c.is_whitespace() && !quoted => {
                    end = Some(i);
                    break;
                }
                c => token.push(c),
            }
        }
        let end = match end {
            Some(end) => end,
            None if quoted => return Err("unterminated quote".to_string()),
            None => self.rest().len(),
        };
        self.pos += end;
        Ok(Some(token))
    }

    /// Skips a macro definition: the rest of its line, then every line up to and including an empty one.
    fn skip_macro(&mut self) {
        match self.rest().find("\n\n") {
            Some(i) => self.pos += i + 2,
            None => self.pos = self.text.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(machine: Option<&str>, login: Option<&str>, password: Option<&str>) -> NetrcEntry {
        let own = |s: Option<&str>| s.map(str::to_string);
        NetrcEntry { machine: own(machine), login: own(login), password: own(password) }
    }

    #[test]
    fn entries_on_one_or_many_lines() {
        let text = "machine ftp.example.org login bob password s3cret\n\
                    machine other\n\tlogin alice\n\tpassword \"two words\"\n\taccount x\n\
                    default login anonymous password me@example.org\n";
        assert_eq!(
            parse_netrc(text),
            Ok(vec![
                entry(Some("ftp.example.org"), Some("bob"), Some("s3cret")),
                entry(Some("other"), Some("alice"), Some("two words")),
                entry(None, Some("anonymous"), Some("me@example.org")),
            ])
        );
    }

    #[test]
    fn comments_quotes_and_macros() {
        let text = "# my hosts\nmachine a login u # trailing comment\n password \"q\\\"uote\\\\\"\n\
                    macdef init\ncd /pub\nbinary\n\nmachine b password p#not-a-comment\n";
        assert_eq!(
            parse_netrc(text),
            Ok(vec![entry(Some("a"), Some("u"), Some("q\"uote\\")), entry(Some("b"), None, Some("p#not-a-comment"))])
        );
        assert_eq!(parse_netrc(""), Ok(vec![]));
        assert_eq!(parse_netrc("  # nothing\n"), Ok(vec![]));
    }

    #[test]
    fn malformed_files() {
        assert!(parse_netrc("machine").is_err());
        assert!(parse_netrc("login bob").is_err());
        assert!(parse_netrc("machine a password \"open").is_err());
        assert!(parse_netrc("machine a colour blue").is_err());
    }

    #[test]
    fn lookup_rules() {
        let entries = vec![
            entry(Some("host"), Some("bob"), Some("b")),
            entry(Some("HOST"), Some("alice"), Some("a")),
            entry(Some("bare"), None, Some("x")),
            entry(None, Some("anonymous"), Some("me@")),
        ];
        assert_eq!(lookup(&entries, "Host", None), Some(&entries[0]));
        assert_eq!(lookup(&entries, "host", Some("alice")), Some(&entries[1]));
        // A machine entry with another login does not fit; the default entry does only for its own login.
        assert_eq!(lookup(&entries, "host", Some("carol")), None);
        assert_eq!(lookup(&entries, "host", Some("anonymous")), Some(&entries[3]));
        assert_eq!(lookup(&entries, "bare", Some("anyone")), Some(&entries[2]));
        assert_eq!(lookup(&entries, "elsewhere", None), Some(&entries[3]));
        assert_eq!(lookup(&[], "host", None), None);
    }
}
