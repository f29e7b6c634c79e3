//! The `ftpclient` program: its arguments, where its commands come from, and its exit status.
//!
//! `ftpclient [HOST] PORT` connects (HOST defaults to 127.0.0.1), logs in, then runs commands from `-c` options and
//! a `-b` batch file, or else from standard input (with an `ftp> ` prompt when that is a terminal). The exit status
//! is 0 when every command succeeded, 1 when any failed, and 2 for a usage error or when connecting or logging in
//! failed. The command language is in [`words`], running commands in [`shell`], local file handling in [`local`].

pub mod local;
pub mod shell;
pub mod words;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::FtpClient;
use shell::{Flow, Shell};

/// Exit status when every command succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status when at least one command failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for a usage error, or when connecting or logging in failed.
pub const EXIT_USAGE: u8 = 2;

/// Host used when only a port is given.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// Command-line arguments of `ftpclient`.
#[derive(Debug, Parser)]
#[command(
    name = "ftpclient",
    version,
    about = "Transfer files with an FTP server.",
    override_usage = "ftpclient [OPTIONS] [HOST] PORT",
    after_help = words::HELP
)]
pub struct Args {
    /// Server: `PORT` (on 127.0.0.1) or `HOST PORT`; HOST may be a name or an IPv4 or IPv6 address.
    #[arg(value_name = "HOST PORT", num_args = 1..=2, required = true)]
    pub target: Vec<String>,

    /// Run this command, then exit (repeatable; runs in order).
    #[arg(short = 'c', value_name = "CMD")]
    pub commands: Vec<String>,

    /// Run the commands in FILE, one per line (blank lines and `#` comments are skipped), then exit.
    #[arg(short = 'b', value_name = "FILE")]
    pub batch: Option<PathBuf>,

    /// User name.
    #[arg(short = 'u', value_name = "USER", default_value = "anonymous")]
    pub user: String,

    /// Password [default: $FTP_PASSWORD, else anonymous@].
    #[arg(short = 'p', value_name = "PASS")]
    pub pass: Option<String>,

    /// Allow `get` to overwrite existing local files.
    #[arg(short = 'f', long)]
    pub force: bool,

    /// Print only what was asked for (listings, paths, sizes) and errors; no confirmations.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Seconds to wait for connecting, for each reply and for each read or write of data.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    pub timeout: Duration,
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
    let (host, port) = match parse_target(&args.target) {
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
    let scripted = !args.commands.is_empty() || args.batch.is_some();
    let pass =
        args.pass.clone().or_else(|| std::env::var("FTP_PASSWORD").ok()).unwrap_or_else(|| "anonymous@".to_string());

    let mut client = match FtpClient::connect(&host, port, args.timeout) {
        Ok(client) => client,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = client.login(&args.user, &pass) {
        return usage_error(&format!("login as {}: {e}", args.user));
    }

    let interactive = !scripted && io::stdin().is_terminal();
    let stdout = io::stdout();
    let stderr = io::stderr();
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    if interactive && !args.quiet {
        let _ = writeln!(out, "connected to {}: {}", client.peer_addr(), client.greeting());
    }
    let mut shell = Shell::new(client, args.force, args.quiet, &mut out, &mut err);
    if scripted {
        for line in &lines {
            if shell.run_line(line) == Flow::Stop {
                break;
            }
        }
    } else {
        shell.run_reader(&mut io::stdin().lock(), interactive);
    }
    let failed = shell.failures() > 0;
    shell.finish();
    if failed {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn usage_error(msg: &str) -> u8 {
    eprintln!("error: {msg}");
    EXIT_USAGE
}

/// `[PORT]` or `[HOST, PORT]` to a host and a port.
pub fn parse_target(target: &[String]) -> Result<(String, u16), String> {
    let (host, port) = match target {
        [port] => (DEFAULT_HOST, port),
        [host, port] => (host.as_str(), port),
        _ => return Err("expected [HOST] PORT".to_string()),
    };
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok((host.to_string(), port)),
        _ => Err(format!("invalid port {port:?} (expected 1-65535)")),
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

    #[test]
    fn port_alone_means_localhost() {
        assert_eq!(parse_target(&strings(&["5106"])), Ok(("127.0.0.1".to_string(), 5106)));
        assert_eq!(parse_target(&strings(&["::1", "21"])), Ok(("::1".to_string(), 21)));
        assert_eq!(parse_target(&strings(&["example.org", "2121"])), Ok(("example.org".to_string(), 2121)));
    }

    #[test]
    fn bad_ports_are_usage_errors() {
        for port in ["0", "65536", "x", "-1"] {
            assert!(parse_target(&strings(&[port])).is_err(), "{port}");
        }
    }

    #[test]
    fn options() {
        let args = parse(&["-c", "ls", "-c", "pwd", "-u", "bob", "-p", "pw", "-f", "-q", "--timeout", "2.5", "5106"])
            .expect("parses");
        assert_eq!(args.target, ["5106"]);
        assert_eq!(args.commands, ["ls", "pwd"]);
        assert_eq!((args.user.as_str(), args.pass.as_deref()), ("bob", Some("pw")));
        assert!(args.force && args.quiet);
        assert_eq!(args.timeout, Duration::from_millis(2500));
        let args = parse(&["::1", "21", "-b", "cmds.txt", "--force"]).expect("parses");
        assert_eq!(args.target, ["::1", "21"]);
        assert_eq!(args.batch, Some(PathBuf::from("cmds.txt")));
        assert_eq!(args.user, "anonymous");
        assert_eq!(args.timeout, Duration::from_secs(30));
        assert!(args.force && !args.quiet);
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
