//! Command-line arguments of `ftpserver` and their validation into a [`Config`].

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use log::warn;

use crate::access::Anonymous;
use crate::server::Config;
use crate::server::{default_workers, Scheduling, DEFAULT_MIN_SHARE, DEFAULT_QUANTUM, DEFAULT_TURN_BUDGET};
use crate::session::SessionConfig;
use crate::tls;

/// A single-threaded FTP server for many simultaneous clients.
#[derive(Debug, Parser)]
#[command(name = "ftpserver", version, about, args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Tool>,

    /// Port to listen on; 0 picks any free port.
    #[arg(default_value_t = 2121)]
    pub port: u16,

    /// Address to listen on; 0.0.0.0 or :: to serve a network.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Directory served as "/" (default: the current directory).
    #[arg(long)]
    pub root: Option<PathBuf>,

    /// The unit of fairness: transfers progress and are scheduled in chunks of this many bytes.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16 * 1024 * 1024))]
    pub chunk_size: u32,

    /// Most chunks one transfer moves per step, when few transfers share a round's budget.
    #[arg(long, default_value_t = DEFAULT_QUANTUM, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub quantum: u32,

    /// Bytes all transfers together move per round (one step for each transfer with work), shared equally among
    /// them (each moves at least --min-share and at most --quantum chunks). A round of many transfers spans several
    /// loop turns, with control commands handled between them.
    #[arg(long, default_value_t = DEFAULT_TURN_BUDGET, value_parser = clap::value_parser!(u32).range(1..))]
    pub turn_budget: u32,

    /// Fewest bytes a transfer moves per step when many split the round's budget (whole chunks, at least one, at
    /// most the quantum): below about 32 KiB a step's syscalls cost more than its bytes, so past 128 transfers a
    /// round grows beyond --turn-budget instead. --min-share 1024 interleaves thousands 1 KiB at a time.
    #[arg(long, default_value_t = DEFAULT_MIN_SHARE, value_parser = clap::value_parser!(u32).range(1..))]
    pub min_share: u32,

    /// Load balancers: connections from these address blocks (CIDR, comma-separated) must start with a PROXY
    /// header (v1 or v2), and the client address it carries is used for everything.
    #[arg(long, value_delimiter = ',', value_name = "CIDR[,CIDR...]")]
    pub proxy_from: Vec<crate::proxy::Cidr>,

    /// Serve GET /metrics (Prometheus text format) and GET /healthz on this address, e.g. 127.0.0.1:9121.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Ban an address after this many offences (failed logins, bounce attempts, protocol abuse) within
    /// --ban-window; 0 turns bans off.
    #[arg(long, default_value_t = 0)]
    pub ban_after: u32,

    /// The window in which --ban-after offences count, in seconds.
    #[arg(long, default_value_t = 60.0, value_parser = positive_secs)]
    pub ban_window: f64,

    /// How long a first ban lasts, in seconds; each further ban of the same address lasts twice as long.
    #[arg(long, default_value_t = 600.0, value_parser = positive_secs)]
    pub ban_time: f64,

    /// Refuse connections from these address blocks (CIDR, comma-separated) with 421.
    #[arg(long, value_delimiter = ',', value_name = "CIDR[,CIDR...]")]
    pub deny_from: Vec<crate::proxy::Cidr>,

    /// Accept connections only from these address blocks (CIDR, comma-separated); others get 421.
    #[arg(long, value_delimiter = ',', value_name = "CIDR[,CIDR...]")]
    pub allow_from: Vec<crate::proxy::Cidr>,

    /// Event loops, one thread each, sharing the control port (SO_REUSEPORT); a new session goes to the loop holding
    /// fewest [default: the cores available].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,

    /// Control connections held at once; more are refused with 421 [default: from the file-descriptor limit].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// Control connections from one IP address at once; more are refused with 421 (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_per_ip: u32,

    /// Seconds without a command before a session gets 421 and is closed.
    #[arg(long, default_value_t = 300.0, value_parser = positive_secs)]
    pub idle_timeout: f64,

    /// Seconds from connecting to logging in before the session is closed.
    #[arg(long, default_value_t = 60.0, value_parser = positive_secs)]
    pub login_timeout: f64,

    /// Seconds a data connection may take to be established (425 after that).
    #[arg(long, default_value_t = 30.0, value_parser = positive_secs)]
    pub data_timeout: f64,

    /// Seconds a transfer may go without moving a byte before it is aborted with 426.
    #[arg(long, default_value_t = 120.0, value_parser = positive_secs)]
    pub stall_timeout: f64,

    /// Seconds running transfers may take to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 10.0, value_parser = positive_secs)]
    pub shutdown_grace: f64,

    /// Failed logins allowed per connection before 421 and a close.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_login_failures: u32,

    /// Seconds each failed login waits before its 530.
    #[arg(long, default_value_t = 1.0, value_parser = non_negative_secs)]
    pub login_failure_delay: f64,

    /// Anonymous access: off, read or write [default: off with --users; else write on loopback, read otherwise].
    #[arg(long)]
    pub anonymous: Option<Anonymous>,

    /// Refuse every change (uploads, deletions, renames, new directories) for everyone.
    #[arg(long)]
    pub read_only: bool,

    /// Accounts file (TOML) with argon2id password hashes; see the README.
    #[arg(long)]
    pub users: Option<PathBuf>,

    /// Passive data ports are drawn at random from this range, e.g. 50000-50999 [default: the kernel's ephemeral range].
    #[arg(long, value_parser = port_range)]
    pub pasv_ports: Option<(u16, u16)>,

    /// The IPv4 address PASV replies advertise (behind NAT or a load balancer).
    #[arg(long)]
    pub pasv_address: Option<Ipv4Addr>,

    /// Certificate chain (PEM, leaf first) for FTPS: enables AUTH TLS, PBSZ and PROT.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Refuse logins before AUTH TLS (534) and transfers without PROT P (521).
    #[arg(long, requires = "tls_cert")]
    pub require_tls: bool,

    /// Also serve implicit FTPS (TLS from the first byte, as ftps:// URLs expect) on this port; 0 picks any free
    /// port. Its address is printed on a second line after the ready line.
    #[arg(long, requires = "tls_cert")]
    pub implicit_tls_port: Option<u16>,

    /// Keep files in an S3 bucket instead of under --root: s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME.
    /// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, never from the command line; users'
    /// homes are prefixes below it.
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,

    /// A TOML file with the store's credentials (`access_key_id = "..."`, `secret_access_key = "..."`), for
    /// `--storage`, instead of the environment; it must be readable by its owner only.
    #[arg(long, value_name = "FILE", requires = "storage")]
    pub storage_credentials: Option<PathBuf>,

    /// Once the listening sockets are bound, switch to this user (and its group) for good. Required to serve a
    /// network address as root (`--run-as root` insists on staying root).
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,

    /// The octal mask for the modes of files and directories the server creates, e.g. 022.
    #[arg(long, value_parser = crate::privileges::parse_umask, value_name = "MASK")]
    pub umask: Option<u32>,

    /// Run this command (no shell: a program and its arguments, split on spaces) after each upload, download,
    /// delete, rename, mkdir, rmdir, login and logout, with the event in FTP_* environment variables.
    #[arg(long, value_name = "CMD")]
    pub hook: Option<String>,

    /// Bytes per second all downloads together may move, e.g. 100M (K, M, G: powers of 1024); 0: no limit.
    /// Per-user rates go in the users file.
    #[arg(long, default_value = "0", value_parser = crate::limits::parse_rate, value_name = "RATE")]
    pub download_rate: u64,

    /// Bytes per second all uploads together may move; 0: no limit.
    #[arg(long, default_value = "0", value_parser = crate::limits::parse_rate, value_name = "RATE")]
    pub upload_rate: u64,

    /// Hook commands running at once at most.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub hook_jobs: u32,

    /// Seconds a hook command may run before it is killed.
    #[arg(long, default_value_t = 30.0, value_parser = positive_secs)]
    pub hook_timeout: f64,

    /// Also log every finished transfer to FILE in the wu-ftpd xferlog format that log analyzers read.
    #[arg(long, value_name = "FILE")]
    pub xferlog: Option<PathBuf>,

    /// A TOML file of settings whose keys are the long option names (`max-per-ip = 8`, `users = "users.toml"`,
    /// the port as `port`); an option on the command line wins. SIGHUP re-reads it (and the users file).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Why the arguments (with their config file) cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    /// A command-line error: clap prints it (and --help, --version) itself.
    Usage(clap::Error),
    /// The config file is unreadable or wrong.
    File(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Usage(e) => write!(f, "{e}"),
            ConfigError::File(e) => f.write_str(e),
        }
    }
}

/// Helper commands.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Read a password from stdin and print its argon2id hash for the users file.
    HashPassword,
    /// Write a self-signed certificate and key for localhost, 127.0.0.1 and ::1 (tests and quick starts).
    GenCert(GenCert),
}

/// Where `gen-cert` writes: `--out DIR` (DIR/cert.pem and DIR/key.pem) or `--cert FILE --key FILE`.
#[derive(Debug, clap::Args)]
pub struct GenCert {
    /// Folder for cert.pem and key.pem (created if missing).
    #[arg(long, required_unless_present = "cert", conflicts_with_all = ["cert", "key"])]
    pub out: Option<PathBuf>,

    /// Certificate file to write.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,

    /// Key file to write (readable by its owner only).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,

    /// Another name the certificate is for, a DNS name or an IP address (repeatable).
    #[arg(long = "name")]
    pub names: Vec<String>,
}

impl GenCert {
    /// The certificate and key paths, creating `--out` if needed.
    pub fn paths(&self) -> Result<(PathBuf, PathBuf), String> {
        match (&self.out, &self.cert, &self.key) {
            (Some(dir), _, _) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                Ok((dir.join("cert.pem"), dir.join("key.pem")))
            }
            (None, Some(cert), Some(key)) => Ok((cert.clone(), key.clone())),
            _ => Err("give --out DIR, or --cert FILE and --key FILE".to_string()),
        }
    }
}

/// The store's credentials from `--storage-credentials`: a TOML file only its owner may read.
fn read_credentials(file: &std::path::Path) -> Result<crate::s3::Credentials, String> {
    use std::os::unix::fs::PermissionsExt;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        access_key_id: String,
        secret_access_key: String,
    }
    let bad = |why: String| format!("--storage-credentials {}: {why}", file.display());
    let meta = std::fs::metadata(file).map_err(|e| bad(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(bad("readable by others than its owner; chmod 600 it".into()));
    }
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let parsed: File = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    Ok(crate::s3::Credentials::new(parsed.access_key_id, parsed.secret_access_key))
}

fn positive_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v > 0.0 && v < 1e9 {
        Ok(v)
    } else {
        Err("must be more than 0 seconds".into())
    }
}

fn non_negative_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if (0.0..1e9).contains(&v) {
        Ok(v)
    } else {
        Err("must be 0 seconds or more".into())
    }
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s.split_once('-').ok_or("expected LO-HI, e.g. 50000-50999")?;
    let lo: u16 = lo.trim().parse().map_err(|_| format!("bad port {lo:?}"))?;
    let hi: u16 = hi.trim().parse().map_err(|_| format!("bad port {hi:?}"))?;
    if lo == 0 || lo > hi {
        return Err("expected 1 <= LO <= HI".into());
    }
    Ok((lo, hi))
}

impl Args {
    /// Parses the command line, then fills in from `--config FILE` every option the command line did not give.
    pub fn parse_with_config(argv: &[OsString]) -> Result<Args, ConfigError> {
        use clap::parser::ValueSource;
        use clap::{CommandFactory, FromArgMatches};
        let matches = Args::command().try_get_matches_from(argv).map_err(ConfigError::Usage)?;
        let args = Args::from_arg_matches(&matches).map_err(ConfigError::Usage)?;
        let Some(file) = args.config.clone() else { return Ok(args) };
        let bad = |why: String| ConfigError::File(format!("config {}: {why}", file.display()));
        let text = std::fs::read_to_string(&file).map_err(|e| bad(e.to_string()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut options: Vec<OsString> = Vec::new();
        let mut port = None;
        for (key, value) in table {
            let id = key.replace('-', "_");
            if id == "config" || id == "command" {
                return Err(bad(format!("{key:?} cannot be set in a config file")));
            }
            if matches.try_get_raw(&id).is_err() {
                return Err(bad(format!("unknown setting {key:?} (keys are the long option names)")));
            }
            if matches.value_source(&id) == Some(ValueSource::CommandLine) {
                continue; // The command line wins.
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(true) if id == "verbose" => "1".into(),
                toml::Value::Boolean(b) => {
                    if b {
                        options.push(format!("--{key}").into());
                    }
                    continue;
                }
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
                other => return Err(bad(format!("{key:?}: {other} is not a value an option takes"))),
            };
            match id.as_str() {
                "port" => port = Some(text),
                "verbose" => {
                    let n: usize = text.parse().map_err(|_| bad(format!("verbose: {text:?} is not a count")))?;
                    options.extend((0..n).map(|_| OsString::from("-v")));
                }
                _ => options.extend([format!("--{key}").into(), text.into()]),
            }
        }
        let mut full: Vec<OsString> = argv.iter().take(1).cloned().collect();
        full.extend(options);
        full.extend(argv.iter().skip(1).cloned());
        if let Some(p) = port {
            full.push(p.into());
        }
        Args::try_parse_from(full).map_err(|e| bad(e.to_string().trim().to_string()))
    }

    /// The validated configuration; the root must be an existing directory.
    pub fn into_config(self) -> Result<Config, String> {
        let storage = self.storage_backend()?;
        let root = match self.root {
            Some(r) => r,
            None => std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?,
        };
        let root = root.canonicalize().map_err(|e| format!("root {}: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!("root {} is not a directory", root.display()));
        }
        let anonymous = match self.anonymous {
            Some(Anonymous::Write) if !self.bind.is_loopback() => {
                warn!("anonymous users may write on {}, which is reachable from the network", self.bind);
                Anonymous::Write
            }
            Some(a) => a,
            // With accounts configured, anonymous access is something to ask for, never a default: it would reach
            // every account's files.
            None if self.users.is_some() => Anonymous::Off,
            // Serving a network, anonymous users only read unless write is asked for explicitly.
            None if self.bind.is_loopback() => Anonymous::Write,
            None => Anonymous::Read,
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(tls::load_config(cert, key)?),
            _ => None,
        };
        let secs = Duration::from_secs_f64;
        Ok(Config {
            bind: self.bind,
            port: self.port,
            root,
            scheduling: Scheduling {
                chunk: self.chunk_size as usize,
                quantum: self.quantum as usize,
                turn_budget: self.turn_budget as usize,
                min_share: self.min_share as usize,
            },
            session: SessionConfig {
                idle_timeout: secs(self.idle_timeout),
                data_timeout: secs(self.data_timeout),
                login_timeout: secs(self.login_timeout),
                max_login_failures: self.max_login_failures,
                login_failure_delay: secs(self.login_failure_delay),
                pasv_address: self.pasv_address,
                tls: tls.is_some(),
                require_tls: self.require_tls,
                events: self.hook.is_some() || self.xferlog.is_some(),
            },
            anonymous,
            read_only: self.read_only,
            users: self.users,
            max_connections: self.max_connections.map(|n| n as usize),
            max_per_ip: self.max_per_ip as usize,
            stall_timeout: secs(self.stall_timeout),
            pasv_ports: self.pasv_ports,
            shutdown_grace: secs(self.shutdown_grace),
            handle_signals: true,
            workers: self.workers.map_or_else(default_workers, |n| n as usize),
            proxy_from: self.proxy_from,
            metrics: self.metrics,
            bans: crate::bans::Policy {
                after: self.ban_after as usize,
                window: secs(self.ban_window),
                time: secs(self.ban_time),
                deny: self.deny_from,
                allow: self.allow_from,
            },
            reload: None,
            run_as: self.run_as,
            umask: self.umask,
            xferlog: self.xferlog,
            download_rate: self.download_rate,
            upload_rate: self.upload_rate,
            hooks: self.hook.map(|cmd| crate::hooks::HookConfig {
                command: cmd.split_whitespace().map(str::to_string).collect(),
                jobs: self.hook_jobs as usize,
                timeout: secs(self.hook_timeout),
            }),
            tls,
            implicit_tls_port: self.implicit_tls_port,
            storage,
        })
    }

    /// The storage back-end `--storage` names, with its credentials from the environment.
    fn storage_backend(&self) -> Result<Option<std::sync::Arc<dyn crate::storage::remote::Backend>>, String> {
        let Some(url) = &self.storage else { return Ok(None) };
        let location: crate::s3::Location = url.parse().map_err(|e| format!("--storage: {e}"))?;
        let credentials = match &self.storage_credentials {
            Some(file) => read_credentials(file)?,
            None => crate::s3::Credentials::from_env().map_err(|e| format!("--storage: {e}"))?,
        };
        let config = crate::s3::ClientConfig {
            idle_connections: crate::storage::remote::THREADS * self.workers.unwrap_or(1).max(1) as usize,
            ..crate::s3::ClientConfig::default()
        };
        let client = crate::s3::Client::new(&location, &credentials, config).map_err(|e| format!("--storage: {e}"))?;
        let label = format!("s3://{}/{}", location.bucket(), location.prefix());
        Ok(Some(std::sync::Arc::new(crate::storage::s3::S3::new(client, label))))
    }

    /// The log filter implied by `-v` when RUST_LOG is not set.
    pub fn log_level(&self) -> &'static str {
        match self.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    // The seed's `ftpserver 5106` still works: the port is positional.
    #[test]
    fn positional_port() {
        let a = Args::try_parse_from(["ftpserver", "5106"]).unwrap();
        assert_eq!(a.port, 5106);
        assert_eq!(a.bind.to_string(), "127.0.0.1");
        assert_eq!(a.chunk_size, 1024);
        assert!(a.command.is_none());
    }

    #[test]
    fn defaults_and_bounds() {
        let a = Args::try_parse_from(["ftpserver"]).unwrap();
        assert_eq!(a.port, 2121);
        assert!(Args::try_parse_from(["ftpserver", "--chunk-size", "0"]).is_err());
        assert!(Args::try_parse_from(["ftpserver", "70000"]).is_err());
        assert!(Args::try_parse_from(["ftpserver", "--idle-timeout", "0"]).is_err());
        assert!(Args::try_parse_from(["ftpserver", "--pasv-ports", "5000-4000"]).is_err());
        let a = Args::try_parse_from(["ftpserver", "--pasv-ports", "50000-50999", "--idle-timeout", "0.5"]).unwrap();
        assert_eq!(a.pasv_ports, Some((50000, 50999)));
    }

    #[test]
    fn hash_password_subcommand() {
        let a = Args::try_parse_from(["ftpserver", "hash-password"]).unwrap();
        assert!(matches!(a.command, Some(Tool::HashPassword)));
    }

    // A config file fills in what the command line does not give; the command line wins; unknown keys, a
    // broken file and values of the wrong kind are refused with the file's name.
    #[test]
    fn config_file_fills_in_and_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let file = dir.path().join("ftpserver.toml");
        let text = format!(
            "port = 2999\nroot = \"{root}\"\nmax-per-ip = 3\nidle-timeout = 45.5\nread-only = true\n\
             proxy-from = [\"10.0.0.0/8\", \"127.0.0.1\"]\nanonymous = \"read\"\n"
        );
        std::fs::write(&file, text).unwrap();
        let argv = |extra: &[&str]| -> Vec<OsString> {
            let mut v: Vec<OsString> = vec!["ftpserver".into(), "--config".into(), file.clone().into()];
            v.extend(extra.iter().map(OsString::from));
            v
        };
        let a = Args::parse_with_config(&argv(&[])).unwrap();
        assert_eq!((a.port, a.max_per_ip, a.idle_timeout, a.read_only), (2999, 3, 45.5, true));
        assert_eq!(a.proxy_from.len(), 2);
        assert_eq!(a.anonymous, Some(Anonymous::Read));
        let a = Args::parse_with_config(&argv(&["--max-per-ip", "9", "4000"])).unwrap();
        assert_eq!((a.port, a.max_per_ip), (4000, 9));
        std::fs::write(&file, "max-per-ipp = 3\n").unwrap();
        let e = Args::parse_with_config(&argv(&[])).unwrap_err().to_string();
        assert!(e.contains("ftpserver.toml") && e.contains("max-per-ipp"), "{e}");
        std::fs::write(&file, "max-per-ip = [\n").unwrap();
        assert!(Args::parse_with_config(&argv(&[])).unwrap_err().to_string().contains("ftpserver.toml"));
        std::fs::write(&file, "max-per-ip = \"many\"\n").unwrap();
        assert!(Args::parse_with_config(&argv(&[])).unwrap_err().to_string().contains("ftpserver.toml"));
    }

    // Finding 10: with accounts configured, anonymous access is off unless asked for.
    #[test]
    fn finding_10_anonymous_is_off_with_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let users = dir.path().join("users.toml");
        let users = users.to_str().unwrap();
        let c = Args::try_parse_from(["ftpserver", "--root", root, "--users", users]).unwrap().into_config().unwrap();
        assert_eq!(c.anonymous, Anonymous::Off);
        let args = ["ftpserver", "--root", root, "--users", users, "--anonymous", "read"];
        assert_eq!(Args::try_parse_from(args).unwrap().into_config().unwrap().anonymous, Anonymous::Read);
    }

    // Bound to a network address, anonymous users only read unless write is given explicitly.
    #[test]
    fn anonymous_default_depends_on_bind() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_str().unwrap();
        let c = Args::try_parse_from(["ftpserver", "--root", root]).unwrap().into_config().unwrap();
        assert_eq!(c.anonymous, Anonymous::Write);
        let c =
            Args::try_parse_from(["ftpserver", "--root", root, "--bind", "0.0.0.0"]).unwrap().into_config().unwrap();
        assert_eq!(c.anonymous, Anonymous::Read);
        let args = ["ftpserver", "--root", root, "--bind", "::", "--anonymous", "write"];
        assert_eq!(Args::try_parse_from(args).unwrap().into_config().unwrap().anonymous, Anonymous::Write);
        assert!(Args::try_parse_from(["ftpserver", "--anonymous", "maybe"]).is_err());
    }

    // TLS options need a certificate; gen-cert takes a folder or two files.
    #[test]
    fn tls_options() {
        assert!(Args::try_parse_from(["ftpserver", "--tls-cert", "c.pem"]).is_err());
        assert!(Args::try_parse_from(["ftpserver", "--require-tls"]).is_err());
        assert!(Args::try_parse_from(["ftpserver", "--implicit-tls-port", "0"]).is_err());
        let a = Args::try_parse_from(["ftpserver", "--tls-cert", "c", "--tls-key", "k", "--implicit-tls-port", "0"]);
        assert_eq!(a.unwrap().implicit_tls_port, Some(0));
        assert!(Args::try_parse_from(["ftpserver", "gen-cert"]).is_err());
        assert!(Args::try_parse_from(["ftpserver", "gen-cert", "--out", "d", "--cert", "c", "--key", "k"]).is_err());
        assert!(Args::try_parse_from(["ftpserver", "gen-cert", "--cert", "c"]).is_err());
        let a = Args::try_parse_from(["ftpserver", "gen-cert", "--cert", "c", "--key", "k"]).unwrap();
        assert!(matches!(a.command, Some(Tool::GenCert(g)) if g.paths().unwrap().1 == Path::new("k")));
    }

    // A certificate that cannot be loaded is a configuration error naming the file.
    #[test]
    fn bad_certificate_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_str().unwrap();
        let cert = tmp.path().join("cert.pem");
        std::fs::write(&cert, "garbage").unwrap();
        let cert = cert.to_str().unwrap();
        let a = Args::try_parse_from(["ftpserver", "--root", root, "--tls-cert", cert, "--tls-key", cert]).unwrap();
        assert!(a.into_config().unwrap_err().contains("cert.pem"));
    }

    #[test]
    fn missing_root_is_an_error() {
        let a = Args::try_parse_from(["ftpserver", "--root", "/nonexistent/dir/for/test"]).unwrap();
        assert!(a.into_config().unwrap_err().contains("/nonexistent/dir/for/test"));
    }

    // S3 credentials come from a file only its owner reads (or the environment), never from the command line.
    #[test]
    fn storage_credentials_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3.toml");
        std::fs::write(&file, "access_key_id = \"GKexample\"\nsecret_access_key = \"s3cr3t\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let creds = read_credentials(&file).unwrap();
        assert_eq!(creds.key_id(), "GKexample");
        assert!(!format!("{creds:?}").contains("s3cr3t"), "the secret is never printed");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_credentials(&file).unwrap_err().contains("readable by others"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&file, "access_key_id = \"x\"\n").unwrap();
        assert!(read_credentials(&file).unwrap_err().contains("secret_access_key"));
        // The option needs --storage; a URL with credentials in it is refused.
        assert!(Args::try_parse_from(["ftpserver", "--storage-credentials", "f"]).is_err());
        let a = Args::try_parse_from(["ftpserver", "--storage", "s3://k:s@b?endpoint=http://127.0.0.1:1"]).unwrap();
        assert!(a.into_config().unwrap_err().contains("credentials"));
    }
}
