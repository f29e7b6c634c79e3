//! The `ftpclient` program: its arguments, where its commands come from, and its exit status.
//!
//! `ftpclient PORT` (on 127.0.0.1), `ftpclient HOST [PORT]`, `ftpclient HOST:PORT`, `ftpclient [V6]:PORT` or
//! `ftpclient ftp://[USER[:PASS]@]HOST[:PORT][/PATH]` connects (port 21 unless given), logs in, then runs commands
//! from `-c` options and a `-b` batch file, or else from standard input (with an `ftp> ` prompt when that is a
//! terminal). A URL naming a file downloads it into the current directory, runs the `-c` and `-b` commands if there
//! are any, and exits; one naming a directory starts the session there. Commands that are not typed at a prompt
//! stop at the first failure unless `--keep-going` is given. The exit status is 0 when every command succeeded, 1
//! when one failed, 2 for a usage error (in the arguments or in a command) or when connecting (including TLS),
//! logging in or entering the URL's directory failed, and 130 when Ctrl-C stopped the commands.
//!
//! FTPS: `--tls` protects the session with AUTH TLS before logging in, `ftps://` URLs use implicit TLS; either
//! way every data connection is TLS as well. The server's certificate is verified (`--ca-file` adds CAs,
//! `--insecure` skips the check); see [`connect`].
//!
//! Credentials, first found wins: `-u`/`-p`, the URL, `$FTP_PASSWORD` (password only), the netrc file
//! ([`netrc`]), then a prompt that does not echo (for a named user, on a terminal), else `anonymous` with the
//! password `anonymous@`. The command language is in [`words`], running commands in [`shell`], transfers and
//! their verification in [`transfer`], local file handling in [`local`].

pub mod connect;
pub mod digest;
pub mod glob;
pub mod hash_ahead;
pub mod jobs;
pub mod listing;
pub mod local;
pub mod mirror;
pub mod netrc;
pub mod progress;
pub mod prompt;
pub mod shell;
pub mod transfer;
pub mod tree;
pub mod url;
/// Server text made safe for the terminal: the library's, so its debug log uses it too.
pub use ftp_client::visible;
pub mod words;

#[cfg(test)]
mod transfer_tests;

use std::io::{self, IsTerminal, Write};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use signal_hook::consts::SIGINT;

use connect::{Login, Security};
use netrc::NetrcEntry;
use shell::{Ending, Flow, Shell};
use transfer::Verify;
use url::{is_url, parse_url};
use words::Cmd;

/// Exit status when every command succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status when at least one command failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for a usage error, or when connecting or logging in failed.
pub const EXIT_USAGE: u8 = 2;
/// Exit status when Ctrl-C stopped the commands (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The FTP port when a target names none.
pub const DEFAULT_PORT: u16 = 21;

/// Host used when only a port is given.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The user logged in when none is given.
pub const ANONYMOUS: &str = "anonymous";

/// The password sent when none is given or found.
pub const ANONYMOUS_PASSWORD: &str = "anonymous@";

/// Command-line arguments of `ftpclient`.
#[derive(Debug, Parser)]
#[command(
    name = "ftpclient",
    version,
    about = "Transfer files with an FTP server.",
    override_usage = "ftpclient [OPTIONS] PORT | HOST [PORT] | HOST:PORT | [IPV6]:PORT\n       ftpclient [OPTIONS] ftp://[USER[:PASS]@]HOST[:PORT][/PATH]\n       \
                      ftpclient [OPTIONS] ftps://[USER[:PASS]@]HOST[:PORT][/PATH]   (implicit TLS, port 990)",
    after_help = words::HELP
)]
pub struct Args {
    /// Server: `PORT` (on 127.0.0.1), `HOST` (port 21), `HOST PORT`, `HOST:PORT`, `[IPV6]:PORT` (HOST a name or an
    /// IPv4 or IPv6 address) or an ftp:// or ftps:// URL. A URL path naming a file downloads it here and exits; one
    /// ending in `/` starts in that directory.
    #[arg(value_name = "HOST PORT | URL", num_args = 1..=2, required = true)]
    pub target: Vec<String>,

    /// Run this command, then exit (repeatable; runs in order).
    #[arg(short = 'c', value_name = "CMD")]
    pub commands: Vec<String>,

    /// Run the commands in FILE, one per line (blank lines and `#` comments are skipped), then exit.
    #[arg(short = 'b', value_name = "FILE")]
    pub batch: Option<PathBuf>,

    /// User name [default: from the URL, else from the netrc file, else anonymous].
    #[arg(short = 'u', value_name = "USER")]
    pub user: Option<String>,

    /// The password; where it comes from otherwise is in the help text.
    #[arg(
        short = 'p',
        value_name = "PASS",
        help = "Password [default: from the URL, else $FTP_PASSWORD, else from the netrc file ($NETRC, else \
                ~/.netrc), else asked for on a terminal, else anonymous@]"
    )]
    pub pass: Option<String>,

    /// Run the remaining commands of a batch after one fails (the exit status still says it failed).
    #[arg(long)]
    pub keep_going: bool,

    /// Most bytes per second for each transfer; K, M and G multiply by 1024 (`20M`).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit_rate: Option<u64>,

    /// How each transfer is checked: auto takes the cheapest digest the server offers for HASH (CRC32, then
    /// SHA-256), else compares sizes; sha256 or crc32 asks for that digest only (else sizes); size compares sizes.
    #[arg(long, value_name = "HOW", value_enum, default_value_t = Verify::Auto)]
    pub verify: Verify,

    /// Connections for mget, mput, mirror, get -r and put -r (each command's --parallel overrides it).
    #[arg(long, value_name = "N", default_value = "1", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    /// Report each command as one JSON object per line on standard output (command, ok, code, bytes, seconds,
    /// paths, output, message, error); errors still go to standard error too.
    #[arg(long)]
    pub json: bool,

    /// Try a transfer again up to N times when the connection drops (or the server ends it with 421): reconnect,
    /// log in, return to the directory and resume (REST), waiting 1, 2, 4 ... seconds in between.
    #[arg(long, value_name = "N", default_value = "0")]
    pub retries: u32,

    /// Allow `get` to overwrite existing local files.
    #[arg(short = 'f', long)]
    pub force: bool,

    /// With a URL naming a file: continue a partial local copy (like `get -c`).
    #[arg(long = "continue")]
    pub resume: bool,

    /// Active data connections: the server connects to this client (PORT, or EPRT for IPv6).
    #[arg(long)]
    pub active: bool,

    /// Print only what was asked for (listings, paths, sizes) and errors; no confirmations, no progress bars.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Seconds to wait for connecting, for each reply and for each read or write of data.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Explicit FTPS: AUTH TLS before logging in, then TLS on every data connection; fails if the server refuses.
    /// (An ftps:// URL is implicit TLS.)
    #[arg(long)]
    pub tls: bool,

    /// Also trust the CA certificates in this PEM file (or a self-signed server certificate) with --tls or ftps://.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// DANGEROUS: do not verify the server's TLS certificate; anyone on the path can pose as the server.
    #[arg(long, conflicts_with = "ca_file")]
    pub insecure: bool,
}

/// The whole program; returns the exit status.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // --help and --version are not errors.
            let status = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(status);
        }
    };
    ExitCode::from(run(&args))
}

/// Runs the program for parsed arguments; returns the exit status.
pub fn run(args: &Args) -> u8 {
    let target = match parse_target(&args.target) {
        Ok(target) => target,
        Err(msg) => return usage_error(&msg),
    };
    let mut lines = args.commands.clone();
    if let Some(batch) = &args.batch {
        match std::fs::read_to_string(batch) {
            Ok(text) => lines.extend(text.lines().map(str::to_string)),
            Err(e) => return usage_error(&format!("cannot read batch file {}: {e}", batch.display())),
        }
    }
    if args.resume && target.file.is_none() {
        return usage_error("--continue needs a URL naming a file (in a session: get -c)");
    }
    let download =
        target.file.clone().map(|remote| Cmd::Get { remote, local: None, force: args.force, resume: args.resume });
    let scripted = !args.commands.is_empty() || args.batch.is_some() || download.is_some();
    let security = match connect::security(target.implicit_tls, args.tls, args.insecure, args.ca_file.as_deref()) {
        Ok(security) => security,
        Err(msg) => return usage_error(&msg),
    };
    let tls = match security {
        Security::Plain => None,
        Security::Explicit | Security::Implicit => match connect::tls_config(args.insecure, args.ca_file.as_deref()) {
            Ok(tls) => Some(tls),
            Err(msg) => return usage_error(&msg),
        },
    };
    if args.insecure {
        eprintln!("{}", connect::INSECURE_WARNING);
    }

    let mut client = match connect::connect(&target.host, target.port, args.timeout, security, tls.as_ref()) {
        Ok(client) => client,
        Err(msg) => return usage_error(&msg),
    };
    let netrc = match netrc::load_netrc() {
        Ok(entries) => entries,
        Err(msg) => {
            eprintln!("warning: ignoring the netrc file: {msg}");
            Vec::new()
        }
    };
    let given = Given {
        user: args.user.clone().or_else(|| target.user.clone()),
        pass: args.pass.clone().or_else(|| target.pass.clone()),
        env_pass: std::env::var("FTP_PASSWORD").ok(),
    };
    let (user, pass) = match credentials(&given, &netrc, &target.host) {
        (user, Some(pass)) => (user, pass),
        (user, None) => match ask_password(&user, &target.host) {
            Ok(pass) => (user, pass),
            Err(msg) => return usage_error(&msg),
        },
    };
    if let Err(e) = client.login(&user, &pass) {
        return usage_error(&format!("login as {user}: {e}"));
    }
    client.set_active(args.active);
    if let Some(dir) = &target.directory {
        if let Err(e) = client.cwd(dir) {
            return usage_error(&format!("cd {dir}: {}", transfer::why(&e, "CWD")));
        }
    }

    let interactive = !scripted && io::stdin().is_terminal();
    // Ctrl-C aborts the transfer in progress instead of the program; a second one while the first is still being
    // handled ends the program, for a server that does not answer the abort.
    let interrupt = Arc::new(AtomicBool::new(false));
    let registered =
        signal_hook::flag::register_conditional_shutdown(SIGINT, i32::from(EXIT_INTERRUPTED), Arc::clone(&interrupt))
            .and_then(|_| signal_hook::flag::register(SIGINT, Arc::clone(&interrupt)));
    if let Err(e) = registered {
        eprintln!("warning: Ctrl-C will end the program: {e}");
    }
    let stdout = io::stdout();
    let stderr = io::stderr();
    let progress = !args.quiet && stderr.is_terminal();
    // Not locked for the whole session: the threads of parallel transfers log and draw progress on stderr too.
    let (mut out, mut err) = (stdout, stderr);
    if interactive && !args.quiet {
        let tls = client.tls_summary().map(|tls| format!(" ({tls})")).unwrap_or_default();
        let greeting = client.greeting().to_string();
        let _ = writeln!(out, "connected to {}{tls}: {}", client.peer_addr(), visible::visible(&greeting));
    }
    let mut shell = Shell::new(client, args.force, args.quiet, &mut out, &mut err);
    shell.set_progress(progress);
    shell.set_keep_going(args.keep_going);
    shell.set_interactive(interactive);
    shell.set_stdin_is_commands(!scripted);
    shell.set_limit_rate(args.limit_rate);
    shell.set_verify(args.verify);
    let login = Login {
        host: target.host.clone(),
        port: target.port,
        timeout: args.timeout,
        security,
        tls,
        user,
        pass,
        active: args.active,
    };
    shell.set_parallel(usize::from(args.parallel), Some(login));
    shell.set_retries(args.retries);
    shell.set_json(args.json);
    shell.remember_cwd();
    shell.set_interrupt(interrupt);
    if scripted {
        let mut flow = Flow::Continue;
        if let Some(cmd @ Cmd::Get { remote, .. }) = &download {
            flow = shell.run_command(&format!("get {remote}"), cmd);
        }
        for line in &lines {
            if flow == Flow::Stop {
                break;
            }
            flow = shell.run_line(line);
        }
    } else if interactive {
        prompt::run_interactive(&mut shell);
    } else {
        shell.run_reader(&mut io::stdin().lock(), false);
    }
    let ending = shell.ending();
    shell.finish();
    match ending {
        Ending::Ok => EXIT_OK,
        Ending::Failed => EXIT_FAILED,
        Ending::Usage => EXIT_USAGE,
        Ending::Interrupted => EXIT_INTERRUPTED,
    }
}

/// Credentials given on the command line, in the URL or in the environment.
#[derive(Debug, Default)]
pub struct Given {
    /// `-u`, else the URL's user.
    pub user: Option<String>,
    /// `-p`, else the URL's password.
    pub pass: Option<String>,
    /// `$FTP_PASSWORD`.
    pub env_pass: Option<String>,
}

/// The user and, when known, the password to log in to `host` with: what was given, else what the netrc file says
/// for `host`, else `anonymous` with `anonymous@`. `None` for the password means a named user has none: ask.
pub fn credentials(given: &Given, netrc: &[NetrcEntry], host: &str) -> (String, Option<String>) {
    let entry = netrc::lookup(netrc, host, given.user.as_deref());
    let user =
        given.user.clone().or_else(|| entry.and_then(|e| e.login.clone())).unwrap_or_else(|| ANONYMOUS.to_string());
    let pass = given.pass.clone().or_else(|| given.env_pass.clone()).or_else(|| {
        // A netrc password belongs to the login it is written with.
        entry.filter(|e| e.login.as_deref().is_none_or(|login| login == user)).and_then(|e| e.password.clone())
    });
    let anonymous = user.eq_ignore_ascii_case(ANONYMOUS) || user.eq_ignore_ascii_case("ftp");
    match pass {
        None if anonymous => (user, Some(ANONYMOUS_PASSWORD.to_string())),
        pass => (user, pass),
    }
}

/// Asks for the password on the terminal without echoing it; without a terminal `anonymous@` is sent, as always.
fn ask_password(user: &str, host: &str) -> Result<String, String> {
    if !io::stdin().is_terminal() {
        return Ok(ANONYMOUS_PASSWORD.to_string());
    }
    rpassword::prompt_password(format!("Password for {user}@{host}: "))
        .map_err(|e| format!("reading the password: {e}"))
}

fn usage_error(msg: &str) -> u8 {
    eprintln!("error: {}", visible::visible(msg));
    EXIT_USAGE
}

/// Where to connect and what the target says beyond that.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// From a URL.
    pub user: Option<String>,
    /// From a URL.
    pub pass: Option<String>,
    /// The file a URL names: download it.
    pub file: Option<String>,
    /// The directory a URL names: start there.
    pub directory: Option<String>,
    /// An ftps:// URL: TLS from the first byte.
    pub implicit_tls: bool,
}

/// `[PORT]`, `[HOST]`, `[HOST:PORT]`, `[[V6]:PORT]`, `[HOST, PORT]` or `[URL]` to a [`Target`]. A lone number is a
/// port on 127.0.0.1, as the first `ftpclient 5106` had it; a lone IPv6 address needs no brackets without a port.
pub fn parse_target(target: &[String]) -> Result<Target, String> {
    if let [one] = target {
        if is_url(one) {
            let url = parse_url(one)?;
            let (file, directory) = (url.file().map(str::to_string), url.directory().map(str::to_string));
            let (user, pass, implicit_tls) = (url.user, url.pass, url.implicit_tls);
            return Ok(Target { host: url.host, port: url.port, user, pass, file, directory, implicit_tls });
        }
    }
    let (host, port) = match target {
        [one] if !one.is_empty() && one.bytes().all(|b| b.is_ascii_digit()) => (DEFAULT_HOST, one.as_str()),
        [one] => return split_host_port(one),
        [host, port] if is_url(host) => return Err(format!("a URL takes no separate port: {host} {port}")),
        [host, port] => (host.as_str(), port.as_str()),
        _ => return Err("expected PORT, HOST [PORT], HOST:PORT or an ftp:// or ftps:// URL".to_string()),
    };
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Ok(Target { host: host.to_string(), port: parse_port(port)?, ..Target::default() })
}

/// `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 address; port 21 unless given.
fn split_host_port(text: &str) -> Result<Target, String> {
    let bad = || format!("invalid server {text:?} (expected HOST, HOST:PORT or [IPV6]:PORT)");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if text.parse::<Ipv6Addr>().is_ok() {
        (text, None)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty()
        || host.starts_with('-')
        || host.contains(['/', ' ', '@'])
        || (text.starts_with('[') && host.parse::<Ipv6Addr>().is_err())
    {
        return Err(bad());
    }
    let port = port.map_or(Ok(DEFAULT_PORT), parse_port)?;
    Ok(Target { host: host.to_string(), port, ..Target::default() })
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!("invalid port {port:?} (expected 1-65535)")),
    }
}

/// `--limit-rate`: a positive number of bytes per second, with an optional K, M or G (powers of 1024).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a rate (bytes per second, e.g. 500K or 20M)");
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let scale: u64 = match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => return Err(bad()),
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(scale)) {
        Some(rate) if rate > 0 => Ok(rate),
        _ => Err(bad()),
    }
}

/// A positive number of seconds, fractions allowed.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 1e9 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("ftpclient").chain(args.iter().copied()))
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn host_port(host: &str, port: u16) -> Result<Target, String> {
        Ok(Target { host: host.to_string(), port, ..Target::default() })
    }

    #[test]
    fn port_alone_means_localhost() {
        assert_eq!(parse_target(&strings(&["5106"])), host_port("127.0.0.1", 5106));
        assert_eq!(parse_target(&strings(&["::1", "21"])), host_port("::1", 21));
        assert_eq!(parse_target(&strings(&["example.org", "2121"])), host_port("example.org", 2121));
    }

    #[test]
    fn url_targets() {
        assert_eq!(parse_target(&strings(&["ftp://127.0.0.1:2121/"])), host_port("127.0.0.1", 2121));
        let t = parse_target(&strings(&["ftp://bob:pw@[::1]:2121/dir/file.bin"])).expect("url");
        assert_eq!((t.host.as_str(), t.port), ("::1", 2121));
        assert_eq!((t.user.as_deref(), t.pass.as_deref()), (Some("bob"), Some("pw")));
        assert_eq!((t.file.as_deref(), t.directory), (Some("dir/file.bin"), None));
        let t = parse_target(&strings(&["ftp://host/pub/"])).expect("url");
        assert_eq!((t.port, t.file, t.directory.as_deref()), (21, None, Some("pub")));
        assert!(parse_target(&strings(&["ftp://host/", "21"])).is_err());
        assert!(parse_target(&strings(&["http://host/"])).is_err());
        assert!(!parse_target(&strings(&["ftp://host/"])).expect("url").implicit_tls);
        assert!(!parse_target(&strings(&["host", "990"])).expect("host port").implicit_tls);
    }

    #[test]
    fn ftps_url_targets() {
        let t = parse_target(&strings(&["ftps://bob@host/dir/"])).expect("url");
        assert!(t.implicit_tls);
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_deref(), t.directory.as_deref()),
            ("host", 990, Some("bob"), Some("dir"))
        );
        let t = parse_target(&strings(&["ftps://[::1]:2990/f.bin"])).expect("url");
        assert!(t.implicit_tls);
        assert_eq!((t.host.as_str(), t.port, t.file.as_deref()), ("::1", 2990, Some("f.bin")));
        assert!(parse_target(&strings(&["ftps://host/", "990"])).is_err());
    }

    #[test]
    fn tls_options() {
        let args = parse(&["5106"]).expect("parses");
        assert!(!args.tls && !args.insecure && args.ca_file.is_none());
        let args = parse(&["--tls", "--ca-file", "ca.pem", "host", "21"]).expect("parses");
        assert!(args.tls && !args.insecure);
        assert_eq!(args.ca_file, Some(PathBuf::from("ca.pem")));
        let args = parse(&["--tls", "--insecure", "ftps://host/"]).expect("parses");
        assert!(args.tls && args.insecure);
        // Trusting a CA and trusting everything do not go together.
        assert!(parse(&["--tls", "--insecure", "--ca-file", "ca.pem", "21"]).is_err());
    }

    // TLS options without TLS, and an unreadable CA file, are refused before connecting (port 1: nothing listens).
    #[test]
    fn tls_usage_errors() {
        for args in [
            &["--insecure", "1"][..],
            &["--ca-file", "ca.pem", "1"],
            &["--insecure", "ftp://127.0.0.1:1/"],
            &["--tls", "--ca-file", "/nonexistent/ca.pem", "1"],
            &["--ca-file", "/nonexistent/ca.pem", "ftps://127.0.0.1:1/"],
        ] {
            let parsed = parse(args).expect("parses");
            assert_eq!(run(&parsed), EXIT_USAGE, "{args:?}");
        }
    }

    fn entry(machine: Option<&str>, login: Option<&str>, password: Option<&str>) -> NetrcEntry {
        let own = |s: Option<&str>| s.map(str::to_string);
        NetrcEntry { machine: own(machine), login: own(login), password: own(password) }
    }

    fn login(given: &Given, netrc: &[NetrcEntry]) -> (String, Option<String>) {
        credentials(given, netrc, "host")
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn credentials_in_order() {
        let netrc = vec![entry(Some("host"), Some("bob"), Some("from-netrc")), entry(None, None, Some("default-pw"))];
        let none = Given::default();
        // Nothing given: the netrc entry for the host.
        assert_eq!(login(&none, &netrc), ("bob".into(), some("from-netrc")));
        // Nothing anywhere: anonymous.
        assert_eq!(login(&none, &[]), ("anonymous".into(), some("anonymous@")));
        // A given password wins over the environment, which wins over the netrc file.
        let given = Given { user: None, pass: some("given"), env_pass: some("env") };
        assert_eq!(login(&given, &netrc), ("bob".into(), some("given")));
        let given = Given { user: None, pass: None, env_pass: some("env") };
        assert_eq!(login(&given, &netrc), ("bob".into(), some("env")));
        // A named user that the host entry is not for gets the default entry's password.
        let given = Given { user: some("carol"), ..Given::default() };
        assert_eq!(login(&given, &netrc), ("carol".into(), some("default-pw")));
        // ... and without one nothing: the password must be asked for.
        assert_eq!(login(&given, &netrc[..1]), ("carol".into(), None));
        // A named anonymous user needs no password.
        let given = Given { user: some("ftp"), ..Given::default() };
        assert_eq!(login(&given, &[]), ("ftp".into(), some("anonymous@")));
    }

    #[test]
    fn bad_ports_are_usage_errors() {
        for port in ["0", "65536", "-1", "h:0", "h:x", "[::1]:", "[::1", "[x]:21", "", ":21", "[::1]x"] {
            assert!(parse_target(&strings(&[port])).is_err(), "{port}");
        }
        assert!(parse_target(&strings(&["h", "x"])).is_err());
    }

    // Regression: `ftpclient localhost` and `ftpclient 127.0.0.1:2121` were refused.
    #[test]
    fn host_and_host_port_forms() {
        assert_eq!(parse_target(&strings(&["localhost"])), host_port("localhost", 21));
        assert_eq!(parse_target(&strings(&["127.0.0.1:2121"])), host_port("127.0.0.1", 2121));
        assert_eq!(parse_target(&strings(&["[::1]:2121"])), host_port("::1", 2121));
        assert_eq!(parse_target(&strings(&["[::1]"])), host_port("::1", 21));
        assert_eq!(parse_target(&strings(&["::1"])), host_port("::1", 21));
        assert_eq!(parse_target(&strings(&["[::1]", "2121"])), host_port("::1", 2121));
        assert_eq!(parse_target(&strings(&["ftp.example.org:21"])), host_port("ftp.example.org", 21));
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100"), Ok(100));
        assert_eq!(parse_rate("20M"), Ok(20 << 20));
        assert_eq!(parse_rate("500k"), Ok(500 << 10));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        for bad in ["", "0", "K", "1X", "-5", "1.5M", "99999999999999999G"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options() {
        let args = parse(&["-c", "ls", "-c", "pwd", "-u", "bob", "-p", "pw", "-f", "-q", "--timeout", "2.5", "5106"])
            .expect("parses");
        assert_eq!(args.target, ["5106"]);
        assert_eq!(args.commands, ["ls", "pwd"]);
        assert_eq!((args.user.as_deref(), args.pass.as_deref()), (Some("bob"), Some("pw")));
        assert!(args.force && args.quiet);
        assert_eq!(args.timeout, Duration::from_millis(2500));
        let args = parse(&["::1", "21", "-b", "cmds.txt", "--force"]).expect("parses");
        assert_eq!(args.target, ["::1", "21"]);
        assert_eq!(args.batch, Some(PathBuf::from("cmds.txt")));
        assert_eq!(args.user, None);
        assert!(!args.active && !args.resume);
        assert_eq!(args.timeout, Duration::from_secs(30));
        assert!(args.force && !args.quiet);
        let args = parse(&["--active", "--continue", "ftp://h/f"]).expect("parses");
        assert!(args.active && args.resume);
        assert_eq!(args.target, ["ftp://h/f"]);
    }

    // --continue is for a URL naming a file; anything else is refused before connecting.
    #[test]
    fn continue_needs_a_file_url() {
        let args = parse(&["--continue", "ftp://127.0.0.1:1/dir/"]).expect("parses");
        assert_eq!(run(&args), EXIT_USAGE);
        let args = parse(&["--continue", "1"]).expect("parses");
        assert_eq!(run(&args), EXIT_USAGE);
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["a", "b", "c"]).is_err());
        assert!(parse(&["--timeout", "0", "21"]).is_err());
        assert!(parse(&["--timeout", "nan", "21"]).is_err());
        assert!(parse(&["--bogus", "21"]).is_err());
    }
}
