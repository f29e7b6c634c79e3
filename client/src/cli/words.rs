//! The `ftpclient` command language: splitting a line into words and turning the words into a [`Cmd`].
//!
//! Words are separated by whitespace; a double-quoted stretch may contain spaces, and `\"` and `\\` stand for a
//! quote and a backslash anywhere (any other backslash is kept as is). A blank line or one starting with `#` is no
//! command. Usage mistakes are reported as a message that shows the right form.

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Get { remote: String, local: Option<String>, force: bool },
    Upload { local: String, remote: Option<String> },
    Ls { path: Option<String> },
    Cd { path: String },
    Pwd,
    Mkdir { path: String },
    Rmdir { path: String },
    Rm { path: String },
    Rename { from: String, to: String },
    Size { path: String },
    Help,
    Quit,
}

/// The command list shown by `help` and `--help`.
pub const HELP: &str = "\
commands:
  get [-f] REMOTE [LOCAL]  download REMOTE to LOCAL (a file or a directory; default: its name here);
                           an existing local file is kept unless -f (or --force) is given
  upload LOCAL [REMOTE]    upload a local file (alias: put)
  ls [PATH]                list a remote directory
  cd PATH                  change the remote directory
  pwd                      print the remote directory
  mkdir PATH               create a remote directory
  rmdir PATH               remove an empty remote directory
  rm PATH                  delete a remote file
  rename FROM TO           rename a remote file or directory
  size PATH                print the size of a remote file
  help                     show this list
  quit                     close the session (also: exit, bye)
Arguments with spaces can be double-quoted: get \"my file.txt\" (\\\" is a quote, \\\\ a backslash).";

/// Splits a command line into words (see the module documentation).
pub fn split_args(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('"' | '\\')) => {
                word.get_or_insert_with(String::new).push(chars.next().unwrap_or(c));
            }
            '"' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".to_string());
    }
    words.extend(word);
    Ok(words)
}

/// Parses one line: `Ok(None)` for a blank line or a `#` comment.
pub fn parse_line(line: &str) -> Result<Option<Cmd>, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    parse_command(&split_args(trimmed)?).map(Some)
}

/// Turns words into a command.
pub fn parse_command(words: &[String]) -> Result<Cmd, String> {
    let Some((verb, args)) = words.split_first() else {
        return Err("empty command".to_string());
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let usage = |form: &str| Err(format!("usage: {form}"));
    let owned = |s: &str| s.to_string();
    let cmd = match (verb.to_ascii_lowercase().as_str(), args.as_slice()) {
        ("get", rest) => {
            let (force, rest) = match rest {
                ["-f", rest @ ..] => (true, rest),
                _ => (false, rest),
            };
            // "--" ends the options, for a remote name that starts with a dash.
            let rest = match rest {
                ["--", rest @ ..] => rest,
                _ => rest,
            };
            match rest {
                [remote] => Cmd::Get { remote: owned(remote), local: None, force },
                [remote, local] => Cmd::Get { remote: owned(remote), local: Some(owned(local)), force },
                _ => return usage("get [-f] REMOTE [LOCAL]"),
            }
        }
        ("upload" | "put", [local]) => Cmd::Upload { local: owned(local), remote: None },
        ("upload" | "put", [local, remote]) => Cmd::Upload { local: owned(local), remote: Some(owned(remote)) },
        ("upload" | "put", _) => return usage("upload LOCAL [REMOTE]"),
        ("ls", []) => Cmd::Ls { path: None },
        ("ls", [path]) => Cmd::Ls { path: Some(owned(path)) },
        ("ls", _) => return usage("ls [PATH]"),
        ("cd", [path]) => Cmd::Cd { path: owned(path) },
        ("cd", _) => return usage("cd PATH"),
        ("pwd", []) => Cmd::Pwd,
        ("pwd", _) => return usage("pwd"),
        ("mkdir", [path]) => Cmd::Mkdir { path: owned(path) },
        ("mkdir", _) => return usage("mkdir PATH"),
        ("rmdir", [path]) => Cmd::Rmdir { path: owned(path) },
        ("rmdir", _) => return usage("rmdir PATH"),
        ("rm", [path]) => Cmd::Rm { path: owned(path) },
        ("rm", _) => return usage("rm PATH"),
        ("rename", [from, to]) => Cmd::Rename { from: owned(from), to: owned(to) },
        ("rename", _) => return usage("rename FROM TO"),
        ("size", [path]) => Cmd::Size { path: owned(path) },
        ("size", _) => return usage("size PATH"),
        ("help" | "?", _) => Cmd::Help,
        ("quit" | "exit" | "bye", []) => Cmd::Quit,
        ("quit" | "exit" | "bye", _) => return usage("quit"),
        _ => return Err(format!("unknown command {verb:?} (try help)")),
    };
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Vec<String> {
        split_args(line).expect("splits")
    }

    fn parse(line: &str) -> Result<Cmd, String> {
        parse_line(line).map(|c| c.expect("a command"))
    }

    #[test]
    fn words_are_separated_by_any_whitespace() {
        assert_eq!(split("  get  a.txt\tb.txt "), ["get", "a.txt", "b.txt"]);
        assert!(split("   ").is_empty());
    }

    #[test]
    fn quotes_group_words() {
        assert_eq!(split("get \"my file.txt\" local"), ["get", "my file.txt", "local"]);
        assert_eq!(split("get \"\""), ["get", ""]);
        assert_eq!(split("get a\"b c\"d"), ["get", "ab cd"]);
    }

    #[test]
    fn escapes_for_quote_and_backslash() {
        assert_eq!(split(r#"get "say \"hi\"" a\\b"#), ["get", "say \"hi\"", "a\\b"]);
        assert_eq!(split(r#"get \"x"#), ["get", "\"x"]);
        // Any other backslash is an ordinary character.
        assert_eq!(split(r"get a\b c\"), ["get", r"a\b", r"c\"]);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert!(split_args("get \"open").is_err());
        assert!(split_args(r#"get "a\""#).is_err());
    }

    #[test]
    fn blank_lines_and_comments_are_no_command() {
        assert_eq!(parse_line(""), Ok(None));
        assert_eq!(parse_line("   "), Ok(None));
        assert_eq!(parse_line("  # get x"), Ok(None));
    }

    #[test]
    fn get_forms() {
        assert_eq!(parse("get a"), Ok(Cmd::Get { remote: "a".into(), local: None, force: false }));
        assert_eq!(parse("GET a b"), Ok(Cmd::Get { remote: "a".into(), local: Some("b".into()), force: false }));
        assert_eq!(parse("get -f a"), Ok(Cmd::Get { remote: "a".into(), local: None, force: true }));
        assert_eq!(parse("get -f -- -f"), Ok(Cmd::Get { remote: "-f".into(), local: None, force: true }));
        assert_eq!(parse("get -- -f"), Ok(Cmd::Get { remote: "-f".into(), local: None, force: false }));
        assert_eq!(parse("get"), Err("usage: get [-f] REMOTE [LOCAL]".into()));
        assert!(parse("get a b c").is_err());
        assert!(parse("get -f").is_err());
    }

    #[test]
    fn upload_and_put_are_the_same() {
        let want = Cmd::Upload { local: "a b".into(), remote: None };
        assert_eq!(parse("upload \"a b\""), Ok(want.clone()));
        assert_eq!(parse("put \"a b\""), Ok(want));
        assert_eq!(parse("put a r"), Ok(Cmd::Upload { local: "a".into(), remote: Some("r".into()) }));
        assert!(parse("upload").is_err());
    }

    #[test]
    fn other_commands() {
        assert_eq!(parse("ls"), Ok(Cmd::Ls { path: None }));
        assert_eq!(parse("ls dir"), Ok(Cmd::Ls { path: Some("dir".into()) }));
        assert_eq!(parse("cd /x"), Ok(Cmd::Cd { path: "/x".into() }));
        assert_eq!(parse("pwd"), Ok(Cmd::Pwd));
        assert_eq!(parse("mkdir d"), Ok(Cmd::Mkdir { path: "d".into() }));
        assert_eq!(parse("rmdir d"), Ok(Cmd::Rmdir { path: "d".into() }));
        assert_eq!(parse("rm f"), Ok(Cmd::Rm { path: "f".into() }));
        assert_eq!(parse("rename a b"), Ok(Cmd::Rename { from: "a".into(), to: "b".into() }));
        assert_eq!(parse("size f"), Ok(Cmd::Size { path: "f".into() }));
        assert_eq!(parse("help"), Ok(Cmd::Help));
        for quit in ["quit", "exit", "bye"] {
            assert_eq!(parse(quit), Ok(Cmd::Quit));
        }
    }

    #[test]
    fn wrong_arity_shows_usage() {
        assert_eq!(parse("cd"), Err("usage: cd PATH".into()));
        assert_eq!(parse("rename a"), Err("usage: rename FROM TO".into()));
        assert_eq!(parse("pwd x"), Err("usage: pwd".into()));
    }

    #[test]
    fn unknown_command() {
        assert_eq!(parse("fetch x"), Err("unknown command \"fetch\" (try help)".into()));
    }
}
