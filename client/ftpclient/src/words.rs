//! The `ftpclient` command language: splitting a line into words and turning the words into a [`Cmd`].
//!
//! Words are separated by whitespace; a double-quoted stretch may contain spaces, and `\"` and `\\` stand for a
//! quote and a backslash anywhere (any other backslash is kept as is). A blank line or one starting with `#` is no
//! command. Usage mistakes are reported as a message that shows the right form.

use crate::mirror::MirrorSpec;

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// `mget [-f] [--parallel N] PATTERN...`
    Mget {
        patterns: Vec<String>,
        force: bool,
        parallel: Option<usize>,
    },
    /// `mput [--parallel N] PATTERN...`
    Mput {
        patterns: Vec<String>,
        parallel: Option<usize>,
    },
    /// `mirror`, and `get -r` / `put -r`.
    Mirror(MirrorSpec),
    Get {
        remote: String,
        local: Option<String>,
        force: bool,
        resume: bool,
    },
    Upload {
        local: String,
        remote: Option<String>,
        resume: bool,
    },
    /// `ls` and `ls -l` (long: one line per entry, the same columns on every server), `ls -1` (names only).
    Ls {
        path: Option<String>,
        names_only: bool,
    },
    /// `lcd DIR`, `lls [DIR]`, `lpwd`: the local directory.
    Lcd {
        path: String,
    },
    Lls {
        path: Option<String>,
    },
    Lpwd,
    /// `!COMMAND`: a command for the local shell.
    Local {
        command: String,
    },
    /// `cat REMOTE`: the file's bytes on standard output.
    Cat {
        path: String,
    },
    Cd {
        path: String,
    },
    Pwd,
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Rm {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Size {
        path: String,
    },
    Mdtm {
        path: String,
    },
    Hash {
        path: String,
    },
    Help,
    Quit,
}

/// The command names, for completion at the prompt.
pub const COMMANDS: &[&str] = &[
    "get", "upload", "put", "mget", "mput", "mirror", "cat", "ls", "dir", "cd", "pwd", "mkdir", "rmdir", "rm",
    "rename", "size", "mdtm", "hash", "lcd", "lls", "lpwd", "help", "quit", "exit", "bye",
];

/// The command list shown by `help` and `--help`.
pub const HELP: &str = "\
commands:
  get [-f] [-c] REMOTE [LOCAL]
                           download REMOTE to LOCAL (a file or a directory; default: its name here; - is
                           standard output); an existing local file is kept unless -f (or --force) is given;
                           -c (--continue) resumes LOCAL, or the LOCAL.part an interrupted get kept
  upload [-c] LOCAL [REMOTE]
                           upload a local file (alias: put; - reads standard input, REMOTE required;
                           a REMOTE ending in / is a directory); -c (--continue) resumes from the remote size
  get -r REMOTE [LOCAL]    download a directory tree (mirror REMOTE LOCAL)
  put -r LOCAL [REMOTE]    upload a directory tree (mirror -R LOCAL REMOTE)
  mget [-f] [--parallel N] PATTERN...
                           download the remote files matching each pattern (* ? [a-z]) into this directory
  mput [--parallel N] PATTERN...
                           upload the local files matching each pattern into the remote directory
  mirror [-R] [--parallel N] [--delete] [--newer] [--exclude GLOB]... [--dry-run] SOURCE [TARGET]
                           make TARGET a copy of the directory SOURCE (remote to local; -R: local to remote),
                           copying files whose size or time differs (--newer: only newer ones) and keeping times;
                           --delete removes what SOURCE lacks; --dry-run prints the plan only
  cat REMOTE               print a remote file on standard output
  lcd DIR, lls [DIR], lpwd change, list, print the local directory
  !COMMAND                 run COMMAND in a local shell (! alone: an interactive one)
  ls [-l|-1] [PATH]        list a remote directory, one line per entry (type, size, UTC time, name);
                           -1: names only
  cd PATH                  change the remote directory
  pwd                      print the remote directory
  mkdir PATH               create a remote directory
  rmdir PATH               remove an empty remote directory
  rm PATH                  delete a remote file
  rename FROM TO           rename a remote file or directory
  size PATH                print the size of a remote file
  mdtm PATH                print the modification time of a remote file (UTC)
  hash PATH                print the server's SHA-256 (or other) digest of a remote file
  help                     show this list
  quit                     close the session (also: exit, bye)
Every get and upload is verified: with the server's SHA-256 (HASH) when it offers one, else by size.
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
    if let Some(command) = trimmed.strip_prefix('!') {
        return Ok(Some(Cmd::Local { command: command.to_string() }));
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
            let (flags, rest) = options(rest, &[&["-f", "--force"], &["-c", "--continue"], &["-r", "--recursive"]])?;
            let (force, resume) = (flags[0], flags[1]);
            if flags[2] {
                return match (rest, resume) {
                    ([remote], false) => Ok(tree_copy(false, remote, None)),
                    ([remote, local], false) => Ok(tree_copy(false, remote, Some(local))),
                    _ => usage("get -r REMOTE [LOCAL]"),
                };
            }
            match rest {
                [remote] => Cmd::Get { remote: owned(remote), local: None, force, resume },
                [remote, local] => Cmd::Get { remote: owned(remote), local: Some(owned(local)), force, resume },
                _ => return usage("get [-f] [-c] REMOTE [LOCAL]"),
            }
        }
        ("upload" | "put", rest) => {
            let (flags, rest) = options(rest, &[&["-c", "--continue"], &["-r", "--recursive"]])?;
            let resume = flags[0];
            if flags[1] {
                return match (rest, resume) {
                    ([local], false) => Ok(tree_copy(true, local, None)),
                    ([local, remote], false) => Ok(tree_copy(true, local, Some(remote))),
                    _ => usage("put -r LOCAL [REMOTE]"),
                };
            }
            match rest {
                [local] => Cmd::Upload { local: owned(local), remote: None, resume },
                [local, remote] => Cmd::Upload { local: owned(local), remote: Some(owned(remote)), resume },
                _ => return usage("upload [-c] LOCAL [REMOTE]"),
            }
        }
        ("ls" | "dir", rest) => {
            let (flags, rest) = options(rest, &[&["-l"], &["-1"]])?;
            let names_only = flags[1];
            if flags[0] && names_only {
                return usage("ls [-l|-1] [PATH]");
            }
            match rest {
                [] => Cmd::Ls { path: None, names_only },
                [path] => Cmd::Ls { path: Some(owned(path)), names_only },
                _ => return usage("ls [-l|-1] [PATH]"),
            }
        }
        ("mget", rest) => {
            let (flags, values, rest) = parse_options(rest, &[&["-f", "--force"]], &["--parallel"])?;
            if rest.is_empty() {
                return usage("mget [-f] [--parallel N] PATTERN...");
            }
            let parallel = parallel_value(&values[0])?;
            Cmd::Mget { patterns: rest.iter().map(|p| owned(p)).collect(), force: flags[0], parallel }
        }
        ("mput", rest) => {
            let (_, values, rest) = parse_options(rest, &[], &["--parallel"])?;
            if rest.is_empty() {
                return usage("mput [--parallel N] PATTERN...");
            }
            Cmd::Mput { patterns: rest.iter().map(|p| owned(p)).collect(), parallel: parallel_value(&values[0])? }
        }
        ("mirror", rest) => {
            let known: [&[&str]; 4] =
                [&["-R", "--reverse"], &["--delete"], &["--newer", "--only-newer"], &["--dry-run"]];
            let (flags, values, rest) = parse_options(rest, &known, &["--parallel", "--exclude"])?;
            let (source, target) = match rest {
                [source] => (owned(source), None),
                [source, target] => (owned(source), Some(owned(target))),
                _ => return usage(
                    "mirror [-R] [--parallel N] [--delete] [--newer] [--exclude GLOB]... [--dry-run] SOURCE [TARGET]",
                ),
            };
            Cmd::Mirror(MirrorSpec {
                reverse: flags[0],
                source,
                target,
                delete: flags[1],
                newer: flags[2],
                exclude: values[1].clone(),
                dry_run: flags[3],
                parallel: parallel_value(&values[0])?,
            })
        }
        ("lcd", [path]) => Cmd::Lcd { path: owned(path) },
        ("lcd", _) => return usage("lcd DIR"),
        ("lls", []) => Cmd::Lls { path: None },
        ("lls", [path]) => Cmd::Lls { path: Some(owned(path)) },
        ("lls", _) => return usage("lls [DIR]"),
        ("lpwd", []) => Cmd::Lpwd,
        ("lpwd", _) => return usage("lpwd"),
        ("cat", [path]) if !path.starts_with('-') => Cmd::Cat { path: owned(path) },
        ("cat", ["--", path]) => Cmd::Cat { path: owned(path) },
        ("cat", _) => return usage("cat REMOTE"),
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
        ("mdtm", [path]) => Cmd::Mdtm { path: owned(path) },
        ("mdtm", _) => return usage("mdtm PATH"),
        ("hash", [path]) => Cmd::Hash { path: owned(path) },
        ("hash", _) => return usage("hash PATH"),
        ("help" | "?", _) => Cmd::Help,
        ("quit" | "exit" | "bye", []) => Cmd::Quit,
        ("quit" | "exit" | "bye", _) => return usage("quit"),
        _ => return Err(format!("unknown command {verb:?} (try help)")),
    };
    Ok(cmd)
}

/// Takes the leading options of a command: `flags[i]` says whether any spelling in `known[i]` was given. They
/// end at the first word that does not start with a dash (`-` alone is a name: standard input or output); `--`
/// ends them too, for a name that starts with a dash. Any other dashed word is an unknown option: a usage error,
/// never a file name.
fn options<'a, 'w>(words: &'a [&'w str], known: &[&[&str]]) -> Result<(Vec<bool>, &'a [&'w str]), String> {
    parse_options(words, known, &[]).map(|(flags, _, rest)| (flags, rest))
}

/// The options of a command taken as in [`options`], and also those taking a value, `valued[i]` (`--opt VALUE`
/// or `--opt=VALUE`, repeatable): `values[i]` holds what each was given, in order.
#[allow(clippy::type_complexity)]
fn parse_options<'a, 'w>(
    words: &'a [&'w str],
    known: &[&[&str]],
    valued: &[&str],
) -> Result<(Vec<bool>, Vec<Vec<String>>, &'a [&'w str]), String> {
    let mut flags = vec![false; known.len()];
    let mut values = vec![Vec::new(); valued.len()];
    let mut rest = words;
    while let Some((first, mut tail)) = rest.split_first() {
        if *first == "--" {
            return Ok((flags, values, tail));
        }
        if !first.starts_with('-') || *first == "-" {
            break;
        }
        let (name, inline) = match first.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (*first, None),
        };
        if let Some(i) = valued.iter().position(|v| *v == name) {
            let value = match inline {
                Some(value) => value,
                None => {
                    let (value, after) = tail.split_first().ok_or_else(|| format!("option {name} needs a value"))?;
                    tail = after;
                    value
                }
            };
            values[i].push(value.to_string());
        } else {
            match known.iter().position(|spellings| spellings.contains(first)) {
                Some(i) => flags[i] = true,
                None => return Err(format!("unknown option {first} (a name starting with - goes after --)")),
            }
        }
        rest = tail;
    }
    Ok((flags, values, rest))
}

/// The last `--parallel N` given (1 to 64 connections).
fn parallel_value(values: &[String]) -> Result<Option<usize>, String> {
    let Some(last) = values.last() else { return Ok(None) };
    match last.parse::<usize>() {
        Ok(n @ 1..=64) => Ok(Some(n)),
        _ => Err(format!("usage: --parallel N takes 1 to 64 connections, not {last:?}")),
    }
}

/// `get -r` and `put -r`: a mirror without deletions.
fn tree_copy(reverse: bool, source: &str, target: Option<&str>) -> Cmd {
    Cmd::Mirror(MirrorSpec {
        reverse,
        source: source.to_string(),
        target: target.map(str::to_string),
        ..MirrorSpec::default()
    })
}

/// True when a parse error is a usage mistake (unknown option, wrong arguments) rather than a malformed line.
pub fn is_usage_error(msg: &str) -> bool {
    msg.starts_with("usage: ") || msg.starts_with("unknown ") || msg.starts_with("option ")
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

    fn get(remote: &str, local: Option<&str>, force: bool, resume: bool) -> Result<Cmd, String> {
        Ok(Cmd::Get { remote: remote.into(), local: local.map(str::to_string), force, resume })
    }

    #[test]
    fn get_forms() {
        assert_eq!(parse("get a"), get("a", None, false, false));
        assert_eq!(parse("GET a b"), get("a", Some("b"), false, false));
        assert_eq!(parse("get -f a"), get("a", None, true, false));
        assert_eq!(parse("get --force a"), get("a", None, true, false));
        assert_eq!(parse("get -f -- -f"), get("-f", None, true, false));
        assert_eq!(parse("get -- -f"), get("-f", None, false, false));
        assert_eq!(parse("get"), Err("usage: get [-f] [-c] REMOTE [LOCAL]".into()));
        assert!(parse("get a b c").is_err());
        assert!(parse("get -f").is_err());
    }

    #[test]
    fn get_continue() {
        assert_eq!(parse("get -c a"), get("a", None, false, true));
        assert_eq!(parse("get --continue a b"), get("a", Some("b"), false, true));
        assert_eq!(parse("get -c -f a"), get("a", None, true, true));
        assert_eq!(parse("get -f -c -- -c"), get("-c", None, true, true));
        // Options come first: a later "-c" is a name.
        assert_eq!(parse("get a -c"), get("a", Some("-c"), false, false));
        assert!(parse("get -c").is_err());
    }

    #[test]
    fn many_file_commands() {
        let mirror = |spec: MirrorSpec| Ok(Cmd::Mirror(spec));
        let base = MirrorSpec { source: "pub".into(), ..MirrorSpec::default() };
        assert_eq!(parse("get -r pub"), mirror(base.clone()));
        assert_eq!(parse("get -r pub dl"), mirror(MirrorSpec { target: Some("dl".into()), ..base.clone() }));
        assert_eq!(parse("put -r pub"), mirror(MirrorSpec { reverse: true, ..base.clone() }));
        assert!(parse("get -r -c pub").is_err());
        assert_eq!(
            parse("mirror -R --parallel 4 --delete --newer --exclude *.o --exclude=.git --dry-run pub up"),
            mirror(MirrorSpec {
                reverse: true,
                target: Some("up".into()),
                delete: true,
                newer: true,
                exclude: vec!["*.o".into(), ".git".into()],
                dry_run: true,
                parallel: Some(4),
                ..base.clone()
            })
        );
        assert!(parse("mirror --parallel 0 pub").is_err());
        assert!(parse("mirror --parallel").is_err());
        assert!(parse("mirror").is_err());
        assert_eq!(
            parse("mget -f --parallel=3 *.txt a"),
            Ok(Cmd::Mget { patterns: vec!["*.txt".into(), "a".into()], force: true, parallel: Some(3) })
        );
        assert_eq!(parse("mput *.bin"), Ok(Cmd::Mput { patterns: vec!["*.bin".into()], parallel: None }));
        assert!(parse("mput").is_err());
    }

    // Regression: `get -r pub` asked the server for a file named "-r".
    #[test]
    fn unknown_options_are_usage_errors() {
        let err = parse("get -x pub").expect_err("unknown option");
        assert_eq!(err, "unknown option -x (a name starting with - goes after --)");
        assert!(is_usage_error(&err));
        assert!(parse("put --bogus a").is_err());
        assert!(parse("ls -a").is_err());
        assert!(is_usage_error(&parse("cd").expect_err("usage")));
        assert!(!is_usage_error("unterminated quote"));
    }

    // `-` alone names standard input or output, not an option.
    #[test]
    fn dash_is_a_name() {
        assert_eq!(parse("get a -"), get("a", Some("-"), false, false));
        assert_eq!(parse("put - r"), Ok(Cmd::Upload { local: "-".into(), remote: Some("r".into()), resume: false }));
    }

    #[test]
    fn upload_and_put_are_the_same() {
        let want = Cmd::Upload { local: "a b".into(), remote: None, resume: false };
        assert_eq!(parse("upload \"a b\""), Ok(want.clone()));
        assert_eq!(parse("put \"a b\""), Ok(want));
        assert_eq!(parse("put a r"), Ok(Cmd::Upload { local: "a".into(), remote: Some("r".into()), resume: false }));
        assert_eq!(parse("upload -c a"), Ok(Cmd::Upload { local: "a".into(), remote: None, resume: true }));
        assert_eq!(parse("put --continue -- -a"), Ok(Cmd::Upload { local: "-a".into(), remote: None, resume: true }));
        assert_eq!(parse("upload"), Err("usage: upload [-c] LOCAL [REMOTE]".into()));
        assert!(parse("upload -c").is_err());
        assert!(parse("upload a b c").is_err());
    }

    #[test]
    fn other_commands() {
        assert_eq!(parse("ls"), Ok(Cmd::Ls { path: None, names_only: false }));
        assert_eq!(parse("ls dir"), Ok(Cmd::Ls { path: Some("dir".into()), names_only: false }));
        assert_eq!(parse("ls -l"), Ok(Cmd::Ls { path: None, names_only: false }));
        assert_eq!(parse("ls -1 dir"), Ok(Cmd::Ls { path: Some("dir".into()), names_only: true }));
        assert_eq!(parse("ls -- -l"), Ok(Cmd::Ls { path: Some("-l".into()), names_only: false }));
        assert_eq!(parse("ls -l a b"), Err("usage: ls [-l|-1] [PATH]".into()));
        assert_eq!(parse("ls -l -1"), Err("usage: ls [-l|-1] [PATH]".into()));
        assert_eq!(parse("cat a"), Ok(Cmd::Cat { path: "a".into() }));
        assert_eq!(parse("lcd /tmp"), Ok(Cmd::Lcd { path: "/tmp".into() }));
        assert_eq!(parse("lls"), Ok(Cmd::Lls { path: None }));
        assert_eq!(parse("lpwd"), Ok(Cmd::Lpwd));
        assert_eq!(parse(" !ls -l | wc"), Ok(Cmd::Local { command: "ls -l | wc".into() }));
        assert_eq!(parse("!"), Ok(Cmd::Local { command: String::new() }));
        assert_eq!(parse("cat -- -a"), Ok(Cmd::Cat { path: "-a".into() }));
        assert!(parse("cat -x").is_err());
        assert_eq!(parse("mdtm f"), Ok(Cmd::Mdtm { path: "f".into() }));
        assert_eq!(parse("hash \"a b\""), Ok(Cmd::Hash { path: "a b".into() }));
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
        assert_eq!(parse("mdtm"), Err("usage: mdtm PATH".into()));
        assert_eq!(parse("hash a b"), Err("usage: hash PATH".into()));
    }

    #[test]
    fn unknown_command() {
        assert_eq!(parse("fetch x"), Err("unknown command \"fetch\" (try help)".into()));
    }
}
