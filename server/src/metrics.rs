//! What an operator monitors a node by: counters every worker bumps as it goes (plain atomics, no lock and no
//! allocation on the loop's path), and a small HTTP endpoint (`--metrics ADDR:PORT`) on a thread of its own that
//! serves them in the Prometheus text format at `GET /metrics`, and `GET /healthz`: 200 while the node accepts
//! sessions, 503 once it is shutting down, so a balancer drains it first.
//!
//! The endpoint answers one request per connection, one connection at a time, with short timeouts and a bounded
//! request: a slow or hostile scraper delays only other scrapers, never an FTP client. The text format is a few
//! lines per metric, written here directly; a registry crate would add a lookup (and a lock) per label set to
//! the loop's path for nothing we need.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{debug, info, warn};

use crate::turns::BUCKETS;

/// One worker's counters.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub worker: usize,
    pub sessions: AtomicUsize,
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    /// Refused before the password was checked: too many checks waiting.
    pub logins_refused: AtomicU64,
    /// `transfers[direction][result]`: see [`Direction`] and [`Outcome`].
    pub transfers: [[AtomicU64; 3]; 3],
    pub bytes: [AtomicU64; 3],
    pub refused_max_connections: AtomicU64,
    pub refused_per_ip: AtomicU64,
    /// Connections from a `--proxy-from` address with a bad, oversized or late PROXY header.
    pub refused_proxy: AtomicU64,
    /// Connections from a banned address, and from one `--deny-from`/`--allow-from` turn away.
    pub refused_banned: AtomicU64,
    pub refused_denied: AtomicU64,
    /// Bans imposed.
    pub bans: AtomicU64,
    /// Turns by duration, in the buckets of [`BUCKETS`] (the last: longer than all), and their sum.
    pub turn_buckets: [AtomicU64; BUCKETS.len() + 1],
    pub turn_micros: AtomicU64,
    pub turn_longest_micros: AtomicU64,
}

/// Which way a transfer went.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Upload = 0,
    Download = 1,
    Listing = 2,
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Ok = 0,
    /// The client went away or aborted (ABOR, a broken data connection, a stall).
    Aborted = 1,
    /// The server could not do it (disk full, a read error).
    Failed = 2,
}

impl WorkerMetrics {
    pub fn new(worker: usize) -> WorkerMetrics {
        WorkerMetrics { worker, ..WorkerMetrics::default() }
    }

    pub fn transfer(&self, direction: Direction, outcome: Outcome, bytes: u64) {
        self.transfers[direction as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.bytes[direction as usize].fetch_add(bytes, Ordering::Relaxed);
    }

    /// STAT's line about this worker's turns.
    pub fn turn_summary(&self) -> String {
        let counts = std::array::from_fn(|i| self.turn_buckets[i].load(Ordering::Relaxed));
        crate::turns::summary(&counts, Duration::from_micros(self.turn_longest_micros.load(Ordering::Relaxed)))
    }

    pub fn turn(&self, took: Duration) {
        let i = crate::turns::bucket(took);
        self.turn_buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.turn_micros.fetch_add(micros, Ordering::Relaxed);
        self.turn_longest_micros.fetch_max(micros, Ordering::Relaxed);
    }
}

/// Every worker's counters, and the hook threads' (run, dropped).
#[derive(Debug, Default)]
pub struct Registry {
    workers: Mutex<Vec<Arc<WorkerMetrics>>>,
    hooks: Mutex<Option<(Arc<AtomicU64>, Arc<AtomicU64>)>>,
}

impl Registry {
    /// Adds a worker's counters (once, when the worker starts).
    pub fn add(&self, m: Arc<WorkerMetrics>) {
        self.workers.lock().unwrap_or_else(|p| p.into_inner()).push(m);
    }

    /// The hook threads' counters: commands run, and events dropped because the queue was full.
    pub fn set_hooks(&self, run: Arc<AtomicU64>, dropped: Arc<AtomicU64>) {
        *self.hooks.lock().unwrap_or_else(|p| p.into_inner()) = Some((run, dropped));
    }

    /// The Prometheus text format of every counter.
    pub fn render(&self, shutting_down: bool) -> String {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in rows {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        };
        let w = |m: &WorkerMetrics| format!("worker=\"{}\"", m.worker);
        family(
            "ftpserver_shutting_down",
            "gauge",
            "1 once the node is shutting down (it accepts no new sessions).",
            &mut std::iter::once((String::new(), u8::from(shutting_down).to_string())),
        );
        family(
            "ftpserver_sessions",
            "gauge",
            "Control connections held.",
            &mut workers.iter().map(|m| (w(m), m.sessions.load(Ordering::Relaxed).to_string())),
        );
        family(
            "ftpserver_logins_total",
            "counter",
            "Logins by result.",
            &mut workers.iter().flat_map(|m| {
                [("ok", &m.logins_ok), ("failed", &m.logins_failed), ("refused", &m.logins_refused)]
                    .map(|(r, a)| (format!("{},result=\"{r}\"", w(m)), load(a).to_string()))
            }),
        );
        const DIRECTIONS: [&str; 3] = ["upload", "download", "listing"];
        const RESULTS: [&str; 3] = ["ok", "aborted", "failed"];
        family(
            "ftpserver_transfers_total",
            "counter",
            "Transfers by direction and result.",
            &mut workers.iter().flat_map(|m| {
                let mut rows = Vec::new();
                for (d, dn) in DIRECTIONS.iter().enumerate() {
                    for (r, rn) in RESULTS.iter().enumerate() {
                        let labels = format!("{},direction=\"{dn}\",result=\"{rn}\"", w(m));
                        rows.push((labels, load(&m.transfers[d][r]).to_string()));
                    }
                }
                rows
            }),
        );
        family(
            "ftpserver_bytes_total",
            "counter",
            "Bytes moved on data connections, by direction.",
            &mut workers.iter().flat_map(|m| {
                DIRECTIONS
                    .iter()
                    .enumerate()
                    .map(|(d, dn)| (format!("{},direction=\"{dn}\"", w(m)), load(&m.bytes[d]).to_string()))
                    .collect::<Vec<_>>()
            }),
        );
        family(
            "ftpserver_connections_refused_total",
            "counter",
            "Connections refused at accept, by reason.",
            &mut workers.iter().flat_map(|m| {
                [
                    ("max_connections", &m.refused_max_connections),
                    ("max_per_ip", &m.refused_per_ip),
                    ("proxy_header", &m.refused_proxy),
                    ("banned", &m.refused_banned),
                    ("denied", &m.refused_denied),
                ]
                .map(|(r, a)| (format!("{},reason=\"{r}\"", w(m)), load(a).to_string()))
            }),
        );
        family(
            "ftpserver_bans_total",
            "counter",
            "Addresses banned (--ban-after offences within --ban-window).",
            &mut workers.iter().map(|m| (w(m), load(&m.bans).to_string())),
        );
        family(
            "ftpserver_loop_turn_longest_seconds",
            "gauge",
            "The longest loop turn so far.",
            &mut workers.iter().map(|m| (w(m), seconds(load(&m.turn_longest_micros)))),
        );
        if let Some((run, dropped)) = self.hooks.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            family(
                "ftpserver_hooks_total",
                "counter",
                "Hook commands run, and events dropped because the hook queue was full.",
                &mut [("run", run), ("dropped", dropped)]
                    .into_iter()
                    .map(|(r, a)| (format!("result=\"{r}\""), load(&a).to_string())),
            );
        }
        let name = "ftpserver_loop_turn_seconds";
        let _ = writeln!(out, "# HELP {name} How long the event loop's turns take.\n# TYPE {name} histogram");
        for m in &workers {
            let mut cumulative = 0;
            for (i, b) in m.turn_buckets.iter().enumerate() {
                cumulative += load(b);
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), |d| format!("{}", d.as_secs_f64()));
                let _ = writeln!(out, "{name}_bucket{{{},le=\"{le}\"}} {cumulative}", w(m));
            }
            let _ = writeln!(out, "{name}_sum{{{}}} {}", w(m), seconds(load(&m.turn_micros)));
            let _ = writeln!(out, "{name}_count{{{}}} {cumulative}", w(m));
        }
        out
    }
}

fn seconds(micros: u64) -> String {
    format!("{}", micros as f64 / 1e6)
}

/// Bytes of a request read at most: a request line and a few headers.
const MAX_REQUEST: usize = 4096;
/// A scraper gets this long to send its request and take the answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves the endpoint on `listener` (bound at startup, so a bad address is refused then), on a thread of its own.
pub fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutting_down: impl Fn() -> bool + Send + 'static,
    sessions: impl Fn() -> String + Send + 'static,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        info!("metrics on http://{local}/metrics");
        for conn in listener.incoming() {
            match conn {
                Ok(s) => {
                    if let Err(e) = answer(s, &registry, shutting_down(), &sessions) {
                        debug!("metrics request: {e}");
                    }
                }
                Err(e) => {
                    warn!("metrics accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })?;
    Ok(())
}

fn answer(mut s: TcpStream, registry: &Registry, shutting_down: bool, sessions: &dyn Fn() -> String) -> io::Result<()> {
    s.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    s.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut buf)?;
        if n == 0 || req.len() + n > MAX_REQUEST {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let (status, kind, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", "text/plain; version=0.0.4", registry.render(shutting_down)),
        (b"GET", b"/healthz") if shutting_down => ("503 Service Unavailable", "text/plain", "shutting down\n".into()),
        (b"GET", b"/healthz") => ("200 OK", "text/plain", "ok\n".into()),
        (b"GET", b"/sessions") => ("200 OK", "text/plain", sessions()),
        (b"GET", _) => ("404 Not Found", "text/plain", "not found\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The text format: one HELP and TYPE per family, a worker label on every row, cumulative histogram buckets.
    #[test]
    fn renders_the_prometheus_text_format() {
        let r = Registry::default();
        let m = Arc::new(WorkerMetrics::new(1));
        m.logins_ok.fetch_add(2, Ordering::Relaxed);
        m.transfer(Direction::Upload, Outcome::Ok, 1000);
        m.transfer(Direction::Download, Outcome::Aborted, 7);
        m.turn(Duration::from_micros(50));
        m.turn(Duration::from_millis(3));
        m.sessions.store(4, Ordering::Relaxed);
        r.add(m);
        let text = r.render(false);
        for line in [
            "ftpserver_sessions{worker=\"1\"} 4",
            "ftpserver_logins_total{worker=\"1\",result=\"ok\"} 2",
            "ftpserver_transfers_total{worker=\"1\",direction=\"upload\",result=\"ok\"} 1",
            "ftpserver_transfers_total{worker=\"1\",direction=\"download\",result=\"aborted\"} 1",
            "ftpserver_bytes_total{worker=\"1\",direction=\"upload\"} 1000",
            "ftpserver_loop_turn_seconds_bucket{worker=\"1\",le=\"0.0001\"} 1",
            "ftpserver_loop_turn_seconds_bucket{worker=\"1\",le=\"0.005\"} 2",
            "ftpserver_loop_turn_seconds_bucket{worker=\"1\",le=\"+Inf\"} 2",
            "ftpserver_loop_turn_seconds_count{worker=\"1\"} 2",
            "# TYPE ftpserver_connections_refused_total counter",
            "ftpserver_shutting_down 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(r.render(true).contains("ftpserver_shutting_down 1"));
    }
}
