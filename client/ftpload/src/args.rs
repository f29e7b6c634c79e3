//! The command line of `ftpload` and its validation into a [`Plan`].
//!
//! `ftpload [OPTIONS] [HOST] PORT SCENARIO`: options are flat, and [`Plan::from_args`] checks that each one given
//! applies to the chosen scenario, fills in the scenario's defaults and enforces the limits (a run always ends by
//! itself: at most [`HARD_CAP`]). The target must be a loopback address: this tool loads only the machine it runs on.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;
use ftp_client::TlsConfig;

/// Host used when only a port is given.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// No run lasts longer than this, whatever is asked.
pub const HARD_CAP: Duration = Duration::from_secs(3600);
/// Run length when neither `--count` nor `--duration` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Cap on a run with `--count` but no `--duration`.
const DEFAULT_COUNT_CAP: Duration = Duration::from_secs(60);
/// Most sessions of one run.
const MAX_SESSIONS: u64 = 1_000_000;
/// Most connections of a transfer scenario (one thread each).
const MAX_CONNECTIONS: u64 = 10_000;
/// Size of the generated uploads when `--size` is not given.
const DEFAULT_PUT_SIZE: u64 = 1 << 20;
/// Per-session rate of `ramp` when `--rate` is not given.
const DEFAULT_RAMP_RATE: u64 = 64 << 10;
/// Milliseconds between two NOOPs of idle's probe session when `--probe-interval` is not given.
const DEFAULT_PROBE_INTERVAL: u64 = 10;
/// Threads opening idle's sessions when `--threads` is not given.
const DEFAULT_IDLE_THREADS: u64 = 8;
/// Most `--threads` (idle's openers, ramp's event loops).
const MAX_THREADS: u64 = 1024;
/// Most sockets of `loopback` (two threads each).
const MAX_LOOPBACK_SOCKETS: u64 = 1024;
/// Bytes per write() call of `loopback` when `--chunk` is not given: the server's default chunk.
const DEFAULT_LOOPBACK_CHUNK: u64 = 1024;
/// Largest `--chunk` of `loopback`.
const MAX_LOOPBACK_CHUNK: u64 = 16 << 20;

const SCENARIO_HELP: &str = "\
Scenarios:
  idle    open and log in --sessions N and hold them for --duration; a probe session measures NOOP latency
  get     --connections C sessions each download --file repeatedly (--count each, or for --duration); with
          --probe-interval (get, put, small, mixed) a bystander session measures NOOP latency while they transfer
  put     C sessions each upload --size bytes of generated data to unique names (deleted unless --keep)
  small   C sessions each download a small --file --count times: transfers/s and per-transfer latency
  mixed   C sessions cycling through downloads (--file), uploads (--size), small downloads (--small-file) and
          listings, weighted by --mix
  ramp    add a session every --step-interval ms, each downloading --file throttled to --rate; stop when one
          falls below 90% of its rate over the last --window: the result is how many sessions held
  loopback  no FTP and no HOST or PORT (`ftpload loopback`): --sockets TCP connections over 127.0.0.1 between
          threads of this process, each writing --chunk bytes per write() call for --duration while a reader
          drains it: the ceiling of this machine for that write size

Sizes and rates take K, M or G (binary: 4K = 4096). Only loopback targets (127.0.0.0/8, ::1) are accepted.
Exit status: 0 when the run finished without errors, 1 when it finished with errors, 2 when it could not run.";

/// Command-line arguments of `ftpload`.
#[derive(Debug, Parser)]
#[command(
    name = "ftpload",
    version,
    about = "Load-test an FTP server on this machine.",
    override_usage = "ftpload [OPTIONS] [HOST] PORT SCENARIO\n       ftpload [OPTIONS] loopback",
    after_help = SCENARIO_HELP
)]
pub struct Args {
    /// HOST (default 127.0.0.1; a loopback address or a name for one), PORT, and the scenario: idle, get, put,
    /// small, mixed or ramp; or only the scenario loopback.
    #[arg(value_name = "[HOST] PORT SCENARIO", num_args = 1..=3, required = true)]
    pub target: Vec<String>,

    /// idle: sessions to open and hold [default: 100].
    #[arg(long, value_name = "N")]
    pub sessions: Option<u64>,

    /// get, put, small, mixed: simultaneous sessions [default: 4].
    #[arg(short = 'c', long, value_name = "C")]
    pub connections: Option<u64>,

    /// get, put, small, mixed: transfers per connection [default: as many as fit in --duration].
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,

    /// Seconds to run (idle: to hold the sessions once open) [default: 10, or 60 as a cap with --count; at most
    /// 3600].
    #[arg(short = 'd', long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// get, small, ramp: the remote file to download; mixed: the large one.
    #[arg(long, value_name = "PATH")]
    pub file: Option<String>,

    /// mixed: the small remote file.
    #[arg(long, value_name = "PATH")]
    pub small_file: Option<String>,

    /// put, mixed: bytes per upload [default: 1M]; get, small: the expected size of --file [default: its SIZE].
    #[arg(long, value_name = "BYTES")]
    pub size: Option<String>,

    /// Bytes per second per session (ramp [default: 64K]; a throttle for the other transfer scenarios).
    #[arg(long, value_name = "BYTES")]
    pub rate: Option<String>,

    /// mixed: weights of the operations, e.g. get=1,put=1,small=4,list=1 [default: 1 each].
    #[arg(long, value_name = "OP=W,...")]
    pub mix: Option<String>,

    /// ramp: most sessions to add [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<u64>,

    /// ramp: milliseconds between two added sessions [default: 1000].
    #[arg(long, value_name = "MS")]
    pub step_interval: Option<u64>,

    /// ramp: milliseconds over which each session's rate is judged [default: 1000].
    #[arg(long, value_name = "MS")]
    pub window: Option<u64>,

    /// idle: threads opening the sessions [default: 8]. ramp: event-loop threads the sessions are spread over,
    /// session i on thread i mod N [default: the CPUs available; at most --max-sessions]; not with --tls, whose
    /// sessions have a thread each.
    #[arg(long, value_name = "N")]
    pub threads: Option<u64>,

    /// idle: spread source addresses over 127.0.0.2-254 so ephemeral ports do not run out (auto: with an IPv4
    /// target and more than 1000 sessions).
    #[arg(long, value_name = "auto|on|off")]
    pub spread: Option<Spread>,

    /// idle: milliseconds between two NOOPs of the probe session [default: 10]. get, put, small, mixed: add a
    /// bystander session that sends NOOP this often and reports its round trips while transfers run [default: no
    /// probe].
    #[arg(long, value_name = "MS")]
    pub probe_interval: Option<u64>,

    /// loopback: TCP connections, each with a writer and a reader thread [default: 1].
    #[arg(long, value_name = "N")]
    pub sockets: Option<u64>,

    /// loopback: bytes per write() call [default: 1K].
    #[arg(long, value_name = "BYTES")]
    pub chunk: Option<String>,

    /// put, mixed: keep the uploaded files instead of deleting each one after it is checked.
    #[arg(long)]
    pub keep: bool,

    /// put, mixed: start of the uploaded files' names [default: ftpload-].
    #[arg(long, value_name = "NAME")]
    pub prefix: Option<String>,

    /// User name.
    #[arg(short = 'u', long, default_value = "anonymous")]
    pub user: String,

    /// Password.
    #[arg(short = 'p', long, default_value = "ftpload@")]
    pub pass: String,

    /// Seconds to wait for connecting, for each reply and for each read or write of data.
    #[arg(long, value_name = "SECS", default_value = "10")]
    pub timeout: f64,

    /// Print the results as exactly one JSON line on stdout.
    #[arg(long)]
    pub json: bool,

    /// Explicit FTPS: every session sends AUTH TLS before logging in, and its data connections are TLS too.
    #[arg(long)]
    pub tls: bool,

    /// With --tls: also trust the CA certificates in this PEM file (or a self-signed server certificate).
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca_file: Option<std::path::PathBuf>,

    /// With --tls: do not verify the server's certificate.
    #[arg(long, requires = "tls", conflicts_with = "ca_file")]
    pub insecure: bool,
}

/// Whether idle sessions spread their source addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Spread {
    Auto,
    On,
    Off,
}

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Idle,
    Get,
    Put,
    Small,
    Mixed,
    Ramp,
    /// No server: TCP between threads of this process.
    Loopback,
}

impl Scenario {
    const ALL: [Scenario; 7] = [
        Scenario::Idle,
        Scenario::Get,
        Scenario::Put,
        Scenario::Small,
        Scenario::Mixed,
        Scenario::Ramp,
        Scenario::Loopback,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Get => "get",
            Scenario::Put => "put",
            Scenario::Small => "small",
            Scenario::Mixed => "mixed",
            Scenario::Ramp => "ramp",
            Scenario::Loopback => "loopback",
        }
    }

    fn parse(text: &str) -> Result<Scenario, String> {
        Scenario::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(text)).ok_or_else(|| {
            let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
            format!("unknown scenario {text:?} (one of: {})", names.join(", "))
        })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One kind of operation a session performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// RETR of the large file.
    Get,
    /// STOR of generated data, checked with SIZE, then DELE.
    Put,
    /// RETR of the small file.
    Small,
    /// LIST of the current directory.
    List,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Get, Op::Put, Op::Small, Op::List];

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Small => "small",
            Op::List => "list",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Settings of `ramp`.
#[derive(Debug, Clone, PartialEq)]
pub struct RampPlan {
    pub step: Duration,
    pub window: Duration,
}

/// Settings of `loopback`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopbackPlan {
    pub sockets: usize,
    /// Bytes per write() call.
    pub chunk: usize,
}

/// A validated run: every setting the scenario needs, defaults filled in.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: Scenario,
    pub target: SocketAddr,
    pub user: String,
    pub pass: String,
    pub timeout: Duration,
    /// How long the run goes on (idle: how long the sessions are held); with `count`, a cap.
    pub duration: Duration,
    pub count: Option<u64>,
    /// Sessions (idle), connections (get, put, small, mixed) or most sessions (ramp).
    pub sessions: usize,
    /// idle: threads opening the sessions; ramp: event loops of the plain sessions. Never more than `sessions`.
    pub threads: usize,
    pub file: Option<String>,
    pub small_file: Option<String>,
    /// Expected size of `file` (get, small) or size of each upload (put, mixed).
    pub size: Option<u64>,
    pub rate: Option<u64>,
    /// The operations one session cycles through (mixed); one element otherwise.
    pub cycle: Vec<Op>,
    pub ramp: Option<RampPlan>,
    pub loopback: Option<LoopbackPlan>,
    pub spread: bool,
    /// Time between two NOOPs of the probe session: always for idle, with `--probe-interval` for the
    /// per-connection scenarios, never for ramp and loopback.
    pub probe_interval: Option<Duration>,
    pub keep: bool,
    pub prefix: String,
    pub json: bool,
    /// `--tls`: how to check the server's certificate.
    pub tls: Option<TlsConfig>,
}

impl Plan {
    /// Checks `args` and fills in the scenario's defaults; the error is one line for the user.
    pub fn from_args(args: Args) -> Result<Plan, String> {
        let (host, port, scenario) = match args.target.as_slice() {
            [scenario] => (DEFAULT_HOST, None, scenario),
            [port, scenario] => (DEFAULT_HOST, Some(port), scenario),
            [host, port, scenario] => (host.as_str(), Some(port), scenario),
            _ => return Err("expected [HOST] PORT SCENARIO".into()),
        };
        let scenario = Scenario::parse(scenario)?;
        let port = match (scenario, port) {
            // It connects to itself, on a port the system picks.
            (Scenario::Loopback, None) => 0,
            (Scenario::Loopback, Some(_)) => return Err("loopback takes no HOST or PORT: ftpload loopback".into()),
            (_, None) => return Err("expected [HOST] PORT SCENARIO".into()),
            (_, Some(port)) => match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("{port:?} is not a port (1-65535)")),
            },
        };
        check_applies(&args, scenario)?;
        let target = resolve_loopback(host, port)?;
        let timeout = seconds("--timeout", args.timeout)?;
        let count = match args.count {
            Some(0) => return Err("--count must be at least 1".into()),
            other => other,
        };
        let duration = match args.duration {
            Some(secs) => seconds("--duration", secs)?,
            None if count.is_some() || scenario == Scenario::Ramp => DEFAULT_COUNT_CAP,
            None => DEFAULT_DURATION,
        };
        if duration > HARD_CAP {
            return Err(format!("--duration may be at most {} seconds", HARD_CAP.as_secs()));
        }
        let sessions = match scenario {
            Scenario::Idle => bounded("--sessions", args.sessions.unwrap_or(100), MAX_SESSIONS)?,
            Scenario::Ramp => bounded("--max-sessions", args.max_sessions.unwrap_or(1000), MAX_CONNECTIONS)?,
            Scenario::Loopback => bounded("--sockets", args.sockets.unwrap_or(1), MAX_LOOPBACK_SOCKETS)?,
            _ => bounded("--connections", args.connections.unwrap_or(4), MAX_CONNECTIONS)?,
        };
        let threads = match (scenario, args.threads) {
            (Scenario::Ramp, Some(_)) if args.tls => {
                return Err("--threads does not apply to ramp with --tls (each FTPS session has a thread)".into())
            }
            (_, Some(n)) => n,
            // One event loop per CPU this process may use: the loops are what the ramp spends its CPU on.
            (Scenario::Ramp, None) => {
                std::thread::available_parallelism().map_or(1, |n| u64::try_from(n.get()).unwrap_or(1)).min(MAX_THREADS)
            }
            (_, None) => DEFAULT_IDLE_THREADS,
        };
        let threads = bounded("--threads", threads, MAX_THREADS)?.min(sessions);
        let size = args.size.as_deref().map(|s| parse_bytes("--size", s)).transpose()?;
        let size = match scenario {
            Scenario::Put | Scenario::Mixed => Some(size.unwrap_or(DEFAULT_PUT_SIZE)),
            _ => size,
        };
        let rate = args.rate.as_deref().map(|s| parse_bytes("--rate", s)).transpose()?;
        if rate == Some(0) {
            return Err("--rate must be at least 1 byte per second".into());
        }
        let rate = if scenario == Scenario::Ramp { Some(rate.unwrap_or(DEFAULT_RAMP_RATE)) } else { rate };
        let cycle = match scenario {
            Scenario::Mixed => mix_cycle(&parse_mix(args.mix.as_deref().unwrap_or("get=1,put=1,small=1,list=1"))?),
            Scenario::Get | Scenario::Ramp => vec![Op::Get],
            Scenario::Put => vec![Op::Put],
            Scenario::Small => vec![Op::Small],
            Scenario::Idle | Scenario::Loopback => Vec::new(),
        };
        let file = args.file.filter(|f| !f.is_empty());
        let small_file = args.small_file.filter(|f| !f.is_empty());
        if cycle.iter().any(|op| matches!(op, Op::Get | Op::Small)) && file.is_none() && scenario != Scenario::Mixed {
            return Err(format!("the {scenario} scenario needs --file PATH (a remote file)"));
        }
        if scenario == Scenario::Mixed {
            if cycle.contains(&Op::Get) && file.is_none() {
                return Err("mixed: get in --mix needs --file PATH (a remote file)".into());
            }
            if cycle.contains(&Op::Small) && small_file.is_none() {
                return Err("mixed: small in --mix needs --small-file PATH (a remote file)".into());
            }
        }
        let ramp = match scenario {
            Scenario::Ramp => {
                let step = Duration::from_millis(args.step_interval.unwrap_or(1000));
                let window = Duration::from_millis(args.window.unwrap_or(1000));
                if step < Duration::from_millis(10) {
                    return Err("--step-interval must be at least 10 ms".into());
                }
                if window < Duration::from_millis(100) {
                    return Err("--window must be at least 100 ms".into());
                }
                Some(RampPlan { step, window })
            }
            _ => None,
        };
        let loopback = match scenario {
            Scenario::Loopback => {
                let chunk = args.chunk.as_deref().map(|c| parse_bytes("--chunk", c)).transpose()?;
                let chunk = chunk.unwrap_or(DEFAULT_LOOPBACK_CHUNK);
                Some(LoopbackPlan { sockets: sessions, chunk: bounded("--chunk", chunk, MAX_LOOPBACK_CHUNK)? })
            }
            _ => None,
        };
        let spread = match args.spread.unwrap_or(Spread::Auto) {
            Spread::On => true,
            Spread::Off => false,
            Spread::Auto => sessions > 1000 && target.is_ipv4(),
        };
        if spread && !target.is_ipv4() {
            return Err("--spread needs an IPv4 loopback target (127.0.0.0/8)".into());
        }
        let prefix = args.prefix.unwrap_or_else(|| "ftpload-".into());
        if prefix.is_empty() || prefix.contains(['\r', '\n', '/']) {
            return Err("--prefix must be a non-empty name without '/' or line breaks".into());
        }
        let tls = match (args.tls, args.insecure) {
            (false, _) => None,
            (true, true) => Some(TlsConfig::insecure()),
            (true, false) => Some(TlsConfig::new(args.ca_file.as_deref()).map_err(|e| format!("--ca-file: {e}"))?),
        };
        Ok(Plan {
            tls,
            scenario,
            target,
            user: args.user,
            pass: args.pass,
            timeout,
            duration,
            count,
            sessions,
            threads,
            file,
            small_file,
            size,
            rate,
            cycle,
            ramp,
            loopback,
            spread: spread && scenario == Scenario::Idle,
            probe_interval: match scenario {
                Scenario::Idle => Some(args.probe_interval.unwrap_or(DEFAULT_PROBE_INTERVAL)),
                _ => args.probe_interval,
            }
            .map(Duration::from_millis),
            keep: args.keep,
            prefix,
            json: args.json,
        })
    }
}

/// Refuses options that the scenario would ignore, so a mistyped run is not silently a different one.
fn check_applies(args: &Args, scenario: Scenario) -> Result<(), String> {
    use Scenario::*;
    let given: [(&str, bool, &[Scenario]); 18] = [
        ("--sessions", args.sessions.is_some(), &[Idle]),
        ("--connections", args.connections.is_some(), &[Get, Put, Small, Mixed]),
        ("--count", args.count.is_some(), &[Get, Put, Small, Mixed]),
        ("--file", args.file.is_some(), &[Get, Small, Mixed, Ramp]),
        ("--small-file", args.small_file.is_some(), &[Mixed]),
        ("--size", args.size.is_some(), &[Get, Put, Small, Mixed]),
        ("--rate", args.rate.is_some(), &[Get, Put, Small, Mixed, Ramp]),
        ("--mix", args.mix.is_some(), &[Mixed]),
        ("--max-sessions", args.max_sessions.is_some(), &[Ramp]),
        ("--step-interval", args.step_interval.is_some(), &[Ramp]),
        ("--window", args.window.is_some(), &[Ramp]),
        ("--threads", args.threads.is_some(), &[Idle, Ramp]),
        ("--spread", args.spread.is_some(), &[Idle]),
        ("--probe-interval", args.probe_interval.is_some(), &[Idle, Get, Put, Small, Mixed]),
        ("--keep", args.keep, &[Put, Mixed]),
        ("--prefix", args.prefix.is_some(), &[Put, Mixed]),
        ("--sockets", args.sockets.is_some(), &[Loopback]),
        ("--chunk", args.chunk.is_some(), &[Loopback]),
    ];
    for (name, present, scenarios) in given {
        if present && !scenarios.contains(&scenario) {
            let names: Vec<&str> = scenarios.iter().map(|s| s.name()).collect();
            return Err(format!("{name} does not apply to {scenario} (only to {})", names.join(", ")));
        }
    }
    Ok(())
}

/// The address to load: `host` (an IP literal, bracketed or not, or a name) must be or resolve only to loopback
/// addresses, so this tool never loads another machine.
pub fn resolve_loopback(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (bare, port).to_socket_addrs().map_err(|e| format!("cannot resolve {bare}: {e}"))?.collect(),
    };
    if let Some(foreign) = addrs.iter().find(|a| !is_loopback(a.ip())) {
        let named = if bare.parse::<IpAddr>().is_ok() { String::new() } else { format!(" ({})", foreign.ip()) };
        return Err(format!(
            "refusing to load {host}{named}: ftpload only targets loopback addresses (127.0.0.0/8, ::1)"
        ));
    }
    let first = addrs.first().ok_or_else(|| format!("{bare} resolves to no address"))?;
    Ok(SocketAddr::new(first.ip().to_canonical(), port))
}

/// 127.0.0.0/8, ::1, or an IPv4-mapped 127.x address.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn seconds(name: &str, secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs > 0.0 && secs <= HARD_CAP.as_secs_f64() {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("{name} must be more than 0 and at most {} seconds", HARD_CAP.as_secs()))
    }
}

fn bounded(name: &str, value: u64, max: u64) -> Result<usize, String> {
    if (1..=max).contains(&value) {
        usize::try_from(value).map_err(|_| format!("{name} is too large"))
    } else {
        Err(format!("{name} must be between 1 and {max}"))
    }
}

/// A byte count: digits with an optional binary suffix K, M or G (also KiB, MiB, GiB), case-insensitive.
pub fn parse_bytes(name: &str, text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits);
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(format!("{name}: {text:?} is not a byte count (digits with an optional K, M or G)")),
    };
    let n: u64 = number.parse().map_err(|_| format!("{name}: {text:?} is not a byte count"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{name}: {text:?} is too large"))
}

/// `get=1,put=2,...` into a weight per operation; operations not named weigh 0.
pub fn parse_mix(text: &str) -> Result<[u32; 4], String> {
    let mut weights = [0u32; 4];
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').ok_or_else(|| format!("--mix: {part:?} is not OP=WEIGHT"))?;
        let op = Op::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| format!("--mix: unknown operation {name:?} (get, put, small, list)"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .ok()
            .filter(|w| *w <= 100)
            .ok_or_else(|| format!("--mix: weight {weight:?} must be 0 to 100"))?;
        weights[op.index()] = weight;
    }
    if weights.iter().all(|w| *w == 0) {
        return Err("--mix: at least one operation needs a weight above 0".into());
    }
    Ok(weights)
}

/// One cycle of operations in which each appears as often as its weight, spread out evenly (smooth weighted
/// round robin), so a session's run of `--count` operations is an exact mix when it is a multiple of the cycle.
pub fn mix_cycle(weights: &[u32; 4]) -> Vec<Op> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = [0i64; 4];
    let mut cycle = Vec::new();
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(weights) {
            *c += i64::from(*w);
        }
        let (best, _) = current.iter().enumerate().max_by_key(|(i, c)| (**c, -(*i as i64))).unwrap_or((0, &0));
        current[best] -= total;
        cycle.push(Op::ALL[best]);
    }
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let args =
            Args::try_parse_from(std::iter::once("ftpload").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        Plan::from_args(args)
    }

    #[test]
    fn host_defaults_to_loopback() {
        let p = plan(&["2121", "get", "--file", "f"]).expect("plan");
        assert_eq!(p.target, "127.0.0.1:2121".parse().expect("addr"));
        assert_eq!(p.scenario, Scenario::Get);
        assert_eq!(p.sessions, 4);
        assert_eq!(p.duration, DEFAULT_DURATION);
        let p = plan(&["::1", "21", "idle"]).expect("plan");
        assert_eq!(p.target, "[::1]:21".parse().expect("addr"));
        assert_eq!(p.sessions, 100);
    }

    #[test]
    fn only_loopback_targets() {
        for ok in ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "::ffff:127.0.0.1", "localhost"] {
            assert!(resolve_loopback(ok, 21).is_ok(), "{ok}");
        }
        for bad in ["10.0.0.1", "192.168.1.1", "8.8.8.8", "0.0.0.0", "::", "2001:db8::1", "::ffff:10.0.0.1"] {
            let err = resolve_loopback(bad, 21).expect_err(bad);
            assert!(err.contains("only targets loopback"), "{err}");
        }
        assert!(plan(&["10.1.2.3", "21", "idle"]).expect_err("foreign").contains("refusing"));
    }

    #[test]
    fn scenario_and_port_are_checked() {
        assert!(plan(&["21", "nope"]).expect_err("scenario").contains("unknown scenario"));
        assert!(plan(&["0", "idle"]).expect_err("port").contains("not a port"));
        assert!(plan(&["x", "idle"]).expect_err("port").contains("not a port"));
        assert!(plan(&["21"]).is_err());
    }

    #[test]
    fn options_must_apply_to_the_scenario() {
        let err = plan(&["21", "get", "--file", "f", "--sessions", "5"]).expect_err("sessions");
        assert!(err.contains("--sessions does not apply to get"), "{err}");
        assert!(plan(&["21", "idle", "--count", "3"]).is_err());
        assert!(plan(&["21", "small", "--file", "f", "--keep"]).is_err());
        assert!(plan(&["21", "put", "--keep", "--count", "2"]).is_ok());
    }

    #[test]
    fn limits_and_defaults() {
        assert!(plan(&["21", "get"]).expect_err("file").contains("--file"));
        assert!(plan(&["21", "idle", "--duration", "3601"]).is_err());
        assert!(plan(&["21", "idle", "--duration", "0"]).is_err());
        assert!(plan(&["21", "idle", "--sessions", "0"]).is_err());
        assert!(plan(&["21", "get", "--file", "f", "--count", "0"]).is_err());
        assert!(plan(&["21", "get", "--file", "f", "--rate", "0"]).is_err());
        let p = plan(&["21", "get", "--file", "f", "--count", "3"]).expect("plan");
        assert_eq!(p.duration, DEFAULT_COUNT_CAP);
        let p = plan(&["21", "put"]).expect("plan");
        assert_eq!(p.size, Some(DEFAULT_PUT_SIZE));
        let p = plan(&["21", "ramp", "--file", "f"]).expect("plan");
        assert_eq!(p.rate, Some(DEFAULT_RAMP_RATE));
        assert_eq!(p.ramp, Some(RampPlan { step: Duration::from_secs(1), window: Duration::from_secs(1) }));
        assert!(plan(&["21", "ramp", "--file", "f", "--window", "10"]).is_err());
        let p = plan(&["21", "idle", "--sessions", "5000"]).expect("plan");
        assert!(p.spread);
        assert!(!plan(&["21", "idle", "--sessions", "5000", "--spread", "off"]).expect("plan").spread);
        assert!(plan(&["::1", "21", "idle", "--spread", "on"]).is_err());
        assert!(!plan(&["::1", "21", "idle", "--sessions", "5000"]).expect("plan").spread);
    }

    #[test]
    fn probe_only_where_asked() {
        assert_eq!(plan(&["21", "idle"]).expect("plan").probe_interval, Some(Duration::from_millis(10)));
        assert_eq!(plan(&["21", "get", "--file", "f"]).expect("plan").probe_interval, None);
        let p = plan(&["21", "get", "--file", "f", "--probe-interval", "5"]).expect("plan");
        assert_eq!(p.probe_interval, Some(Duration::from_millis(5)));
        assert!(plan(&["21", "put", "--probe-interval", "5"]).is_ok());
        assert!(plan(&["21", "ramp", "--file", "f", "--probe-interval", "5"]).is_err());
    }

    // --threads is ramp's number of event loops: by default one per CPU, never more than the sessions, and not
    // with --tls, whose sessions are threads.
    #[test]
    fn ramp_threads_are_its_event_loops() {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let p = plan(&["21", "ramp", "--file", "f"]).expect("plan");
        assert_eq!(p.threads, cpus.min(1000));
        assert_eq!(plan(&["21", "ramp", "--file", "f", "--max-sessions", "1"]).expect("plan").threads, 1);
        let p = plan(&["21", "ramp", "--file", "f", "--threads", "3"]).expect("plan");
        assert_eq!(p.threads, 3);
        let p = plan(&["21", "ramp", "--file", "f", "--threads", "8", "--max-sessions", "5"]).expect("plan");
        assert_eq!(p.threads, 5);
        assert!(plan(&["21", "ramp", "--file", "f", "--threads", "0"]).is_err());
        let err = plan(&["21", "ramp", "--file", "f", "--threads", "2", "--tls", "--insecure"]).expect_err("tls");
        assert!(err.contains("--threads does not apply to ramp with --tls"), "{err}");
        assert!(plan(&["21", "ramp", "--file", "f", "--tls", "--insecure"]).is_ok());
        assert_eq!(plan(&["21", "idle"]).expect("plan").threads, 8);
        let err = plan(&["21", "get", "--file", "f", "--threads", "2"]).expect_err("get");
        assert!(err.contains("only to idle, ramp"), "{err}");
    }

    #[test]
    fn mixed_needs_the_files_its_mix_uses() {
        assert!(plan(&["21", "mixed", "--file", "big"]).expect_err("small").contains("--small-file"));
        let p = plan(&["21", "mixed", "--mix", "put=1,list=1"]).expect("plan");
        assert_eq!(p.cycle, vec![Op::Put, Op::List]);
    }

    #[test]
    fn loopback_needs_no_server() {
        let p = plan(&["loopback"]).expect("plan");
        assert_eq!(p.scenario, Scenario::Loopback);
        assert_eq!(p.loopback, Some(LoopbackPlan { sockets: 1, chunk: 1024 }));
        let p = plan(&["loopback", "--sockets", "64", "--chunk", "256K", "--duration", "2"]).expect("plan");
        assert_eq!(p.loopback, Some(LoopbackPlan { sockets: 64, chunk: 256 * 1024 }));
        assert_eq!(p.duration, Duration::from_secs(2));
        assert!(plan(&["21", "loopback"]).expect_err("port").contains("no HOST or PORT"));
        assert!(plan(&["loopback", "--chunk", "0"]).is_err());
        assert!(plan(&["loopback", "--sockets", "5000"]).is_err());
        assert!(plan(&["loopback", "--connections", "2"]).is_err());
        assert!(plan(&["21", "get", "--file", "f", "--chunk", "1K"]).is_err());
        assert!(plan(&["get"]).expect_err("port").contains("PORT"));
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("x", "4096"), Ok(4096));
        assert_eq!(parse_bytes("x", "4K"), Ok(4096));
        assert_eq!(parse_bytes("x", "200kib"), Ok(200 * 1024));
        assert_eq!(parse_bytes("x", "1M"), Ok(1 << 20));
        assert_eq!(parse_bytes("x", "2GiB"), Ok(2 << 30));
        assert!(parse_bytes("x", "1.5M").is_err());
        assert!(parse_bytes("x", "M").is_err());
        assert!(parse_bytes("x", "12 bytes").is_err());
        assert!(parse_bytes("x", "99999999999999999999G").is_err());
    }

    #[test]
    fn mix_weights_and_cycle() {
        assert_eq!(parse_mix("get=1,put=1,small=1,list=1"), Ok([1, 1, 1, 1]));
        assert_eq!(parse_mix("small=4, list=1"), Ok([0, 0, 4, 1]));
        assert!(parse_mix("get=0").is_err());
        assert!(parse_mix("fly=1").is_err());
        assert!(parse_mix("get").is_err());
        assert_eq!(mix_cycle(&[1, 1, 1, 1]), vec![Op::Get, Op::Put, Op::Small, Op::List]);
        let cycle = mix_cycle(&[1, 0, 4, 1]);
        assert_eq!(cycle.len(), 6);
        assert_eq!(cycle.iter().filter(|op| **op == Op::Small).count(), 4);
        // Spread out: the heavy operation never runs more than twice in a row.
        assert!(!cycle.windows(3).any(|w| w.iter().all(|op| *op == Op::Small)));
    }
}
