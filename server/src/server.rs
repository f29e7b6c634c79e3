//! The event loop: one thread, one `mio::Poll`, every connection in one `Slab` keyed by its `Token`.
//!
//! The loop owns all I/O and nothing else: sessions decide, the loop carries out their [`Action`]s and reports
//! back [`Outcome`]s. The rules it keeps (DESIGN.md §3) are each a known failure elsewhere when broken: drain reads
//! to `WouldBlock`; write at once and ask for `WRITABLE` only while bytes remain; move at most `quantum` chunks per
//! transfer per step and keep unfinished work in the `runnable` queue (polling with a zero timeout while it is
//! non-empty, because edge-triggered readiness is not announced twice), at most [`STEPS_PER_TURN`] steps between
//! two polls; remove closed connections only after the
//! batch so no slab key is reused while stale events for it may be buffered; keep every deadline in one ordered
//! set; stop reading from a session whose replies pile up; never panic on the network path.
//!
//! Control connections live in [`control`], data connections and transfers in [`data`]. TLS changes none of the
//! rules: a connection's [`Stream`] reports `WouldBlock` only when its socket did, and asks for `WRITABLE` while
//! ciphertext waits, so handshakes and encrypted chunks interleave like plain ones.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::access::{Access, Anonymous};
use crate::hash::{HashJob, HashStep, HASH_BYTES_PER_TURN};
use crate::session::{canonical, Action, Now, Outcome, ServerStats, Session, SessionConfig};
use crate::stream::Stream;
use crate::tls::TlsConfig;
use crate::transfer::LazyPipe;
use crate::turns::SLOW_TURN;
use crate::verifier::Verifier;

mod conns;
mod control;
mod data;
mod proxied;
mod workers;

use conns::Conns;
use control::Control;
use data::DataConn;
pub use workers::Server;
use workers::{Refusal, Shared};

const LISTENER: Token = Token(usize::MAX);
/// The worker's one waker (mio allows one per poll): the verifier thread has answers, or another thread (the
/// signal watcher, a failing worker) asks this worker to stop.
const WAKE: Token = Token(usize::MAX - 1);
/// The implicit-FTPS listener (`--implicit-tls-port`).
const IMPLICIT_LISTENER: Token = Token(usize::MAX - 3);
/// The poll of the control connections, nested in the worker's poll.
const COMMANDS: Token = Token(usize::MAX - 4);
/// Control connections' events taken per call on the commands poll.
const COMMAND_EVENTS: usize = 256;
/// Calls on the commands poll per turn at most: a turn handles at most 1,024 control connections' events, like a
/// turn of the worker's own poll.
const COMMAND_POLLS_PER_TURN: usize = 4;
/// Connections handed over by other workers that one turn admits at most (the rest wake the next turn).
const ARRIVALS_PER_TURN: usize = 256;
/// Timer key for resuming accepts after descriptor exhaustion (slab keys never get this high).
const ACCEPT_TIMER: usize = usize::MAX;

/// Steps of the runnable queue one turn takes at most. A round of the queue (one step for each connection with
/// work) is spread over as many turns as it needs, and the loop polls between two of them: with a thousand
/// transfers running, a bystander's NOOP waits for at most this many steps, not for a step of every transfer.
/// Between two steps of a round only the commands poll is asked, so the data sockets' readiness (mostly for
/// transfers queued already) is collected once per round, not once per slice of it.
const STEPS_PER_TURN: usize = 128;
/// Bytes read from a control connection per `read` call.
const CONTROL_READ: usize = 4096;
/// Reads per control connection per turn before it yields to others (a flooding client cannot hog the loop).
const CONTROL_READS_PER_TURN: usize = 8;
/// Command lines handled per control connection per turn: a client pipelining thousands of commands has them
/// answered a batch per turn, interleaved with everyone else's, instead of in one long turn.
const CONTROL_LINES_PER_TURN: usize = 64;
/// Unsent reply bytes above which a session's commands are no longer read until the client catches up.
const REPLY_HIGH_WATER: usize = 16 * 1024;
/// How long accepting pauses when the process is out of file descriptors (EMFILE/ENFILE).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Password checks one client address may have waiting at once; more logins from it get 421.
const MAX_VERIFY_PER_IP: usize = 4;
/// Descriptors a session can hold at once beyond its control connection: a passive listener or a data
/// connection, and a file (being transferred or hashed). The default connection limit reserves them.
const FDS_PER_SESSION: usize = 3;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub root: PathBuf,
    pub scheduling: Scheduling,
    pub session: SessionConfig,
    pub anonymous: Anonymous,
    /// No uploads, deletions, renames or new directories for anyone.
    pub read_only: bool,
    /// Accounts (TOML, argon2id hashes); `None`: anonymous access only.
    pub users: Option<PathBuf>,
    /// Control connections held at once; more get 421 and are closed (`None`: from the descriptor limit).
    pub max_connections: Option<usize>,
    /// Control connections per client IP (0: no limit).
    pub max_per_ip: usize,
    /// A transfer that moves no byte for this long is aborted (426).
    pub stall_timeout: Duration,
    /// Passive listeners take a random port from this range.
    pub pasv_ports: Option<(u16, u16)>,
    /// After SIGINT/SIGTERM, how long running transfers may take to finish.
    pub shutdown_grace: Duration,
    /// Whether SIGINT/SIGTERM trigger a graceful shutdown (off for servers embedded in tests).
    pub handle_signals: bool,
    /// Event loops, one thread each (`--workers`).
    pub workers: usize,
    /// Load balancers: connections from these must start with a PROXY header naming the client.
    pub proxy_from: Vec<crate::proxy::Cidr>,
    /// Serve `/metrics` (Prometheus) and `/healthz` on this address.
    pub metrics: Option<SocketAddr>,
    /// Bans and the static allow/deny lists.
    pub bans: crate::bans::Policy,
    /// How SIGHUP gets the new configuration (re-reading the config file); `None`: the same settings, with the
    /// users file re-read.
    pub reload: Option<Reloader>,
    /// Drop to this account once the listening sockets are bound (`--run-as`).
    pub run_as: Option<String>,
    /// The mask for the modes of created files and directories (`--umask`).
    pub umask: Option<u32>,
    /// The command run after each event (`--hook`).
    pub hooks: Option<crate::hooks::HookConfig>,
    /// The wu-ftpd style transfer log (`--xferlog`).
    pub xferlog: Option<PathBuf>,
    /// Bytes per second all downloads, and all uploads, together may move (0: no limit).
    pub download_rate: u64,
    pub upload_rate: u64,
    /// FTPS: the server's certificate, ready for rustls (`None`: no TLS, AUTH gets 502).
    pub tls: Option<TlsConfig>,
    /// Also listen on this port (0: any free one) for implicit FTPS, TLS from the first byte; needs `tls`.
    pub implicit_tls_port: Option<u16>,
    /// Where files live instead of under `root` (`--storage`, an S3 bucket): requests run on a pool of threads.
    pub storage: Option<std::sync::Arc<dyn crate::storage::remote::Backend>>,
}

/// How transfers share the loop (DESIGN.md §3, rule 4).
#[derive(Debug, Clone, Copy)]
pub struct Scheduling {
    /// The unit of fairness (`--chunk-size`): a share is a whole number of chunks, at least one.
    pub chunk: usize,
    /// Most chunks one transfer moves per step (`--quantum`).
    pub quantum: usize,
    /// Bytes all transfers together move per round of the runnable queue, one step each (`--turn-budget`).
    pub turn_budget: usize,
    /// Fewest bytes a share may be (`--min-share`), rounded down to whole chunks, between one chunk and the quantum.
    pub min_share: usize,
}

/// Default `--quantum`: with 1 KiB chunks, a lone transfer moves 256 KiB per turn in one syscall, the largest
/// write the loopback reference in `bench/compare.sh` measures. The README's Performance table was measured at
/// these defaults; other values were not compared.
pub const DEFAULT_QUANTUM: u32 = 256;
/// Default `--min-share`: 32 KiB. Measured with 1,000 clients downloading 8 MiB files for 10 s (ftpload get, 2
/// cores, both workers), at least two runs each:
///
/// | least share | MiB/s | server CPU-s per GiB | Jain | bystander NOOP p99, ms |
/// |---|---:|---:|---:|---:|
/// | 1 KiB (4 KiB: the 4 MiB budget split 1,000 ways) | 1,478-1,706 | 0.52-0.60 | 0.958-0.999 | 6.0-11.4 |
/// | 16 KiB | 2,463-2,636 | 0.33-0.35 | 0.992-0.993 | 11.5-11.9 |
/// | 32 KiB | 3,863-4,219 | 0.19-0.21 | 0.994-1.0 | 10.4-17.3 |
/// | 64 KiB | 5,138-5,326 | 0.14-0.15 | 0.980-0.997 | 13.4-22.3 |
///
/// Below it a step's syscalls cost more than its bytes; 64 KiB missed the 20 ms bystander bound once and Jain 0.99
/// once. Up to 128 transfers it changes nothing: the budget gives each at least this much (64 downloads: 5,456-6,222
/// MiB/s with and without it).
pub const DEFAULT_MIN_SHARE: u32 = 32 * 1024;
/// Default `--turn-budget`: 4 MiB per round, so 16 transfers still move their full quantum each while a round
/// stays a few megabytes of copying.
pub const DEFAULT_TURN_BUDGET: u32 = 4 << 20;

impl Scheduling {
    /// Each runnable transfer's share of a round when `runnable` transfers have work: the budget split equally,
    /// rounded down to whole chunks, between the least share and the quantum.
    pub fn share(&self, runnable: usize) -> usize {
        let chunk = self.chunk.max(1);
        let most = chunk.saturating_mul(self.quantum.max(1));
        let least = (self.min_share / chunk * chunk).clamp(chunk, most);
        let equal = self.turn_budget / runnable.max(1) / chunk * chunk;
        equal.clamp(least, most)
    }

    /// The largest share there can be.
    pub fn max_share(&self) -> usize {
        self.chunk.max(1).saturating_mul(self.quantum.max(1))
    }
}

impl Default for Scheduling {
    fn default() -> Scheduling {
        Scheduling {
            chunk: 1024,
            quantum: DEFAULT_QUANTUM as usize,
            turn_budget: DEFAULT_TURN_BUDGET as usize,
            min_share: DEFAULT_MIN_SHARE as usize,
        }
    }
}

/// A round of the runnable queue, taken in slices of at most [`STEPS_PER_TURN`] steps, one slice per turn.
#[derive(Debug, Default)]
struct Round {
    /// Entries at the front of the queue that the round has still to step.
    left: usize,
}

impl Round {
    fn under_way(&self) -> bool {
        self.left > 0
    }

    /// The steps of this turn's slice, with `queued` entries in the queue now: a new round, if none is under
    /// way, takes every one of them.
    fn slice(&mut self, queued: usize) -> usize {
        if self.left == 0 {
            self.left = queued;
        }
        let steps = self.left.min(STEPS_PER_TURN);
        self.left -= steps;
        steps
    }
}

/// Builds the configuration anew, for SIGHUP.
#[derive(Clone)]
pub struct Reloader(pub Arc<dyn Fn() -> Result<Config, String> + Send + Sync>);

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloader")
    }
}

enum Conn {
    Control(Box<Control>),
    /// A session's data channel, from its passive listener or active connect to the end of its transfer.
    Data(DataConn),
    /// A connection from a load balancer whose PROXY header has not been read yet.
    Proxy(Box<proxied::Pending>),
    /// A HASH job: no socket, it only runs from the runnable queue.
    Hash {
        owner: usize,
        job: Box<HashJob>,
    },
}

/// One event loop: its own poll, slab, timers, runnable queue and passive listeners, on one thread. The
/// [`Server`] runs `--workers` of them.
pub(crate) struct Worker {
    /// The worker's number, as STAT and the log show it.
    id: usize,
    shared: Arc<Shared>,
    /// This worker's counters (the metrics endpoint reads them).
    metrics: Arc<crate::metrics::WorkerMetrics>,
    /// Load balancers (`--proxy-from`): their connections start with a PROXY header.
    proxy_from: Vec<crate::proxy::Cidr>,
    poll: Poll,
    /// The control connections' own poll, registered in `poll` under [`COMMANDS`]: while a round of the runnable
    /// queue is under way, the loop asks only it, and a command is answered within [`STEPS_PER_TURN`] steps.
    commands: Poll,
    /// The commands poll may have more events than the last turn took.
    commands_left: bool,
    listener: Option<TcpListener>,
    /// The implicit-FTPS listener.
    implicit: Option<TcpListener>,
    tls: Option<TlsConfig>,
    conns: Conns,
    /// Keys closed during this batch; removed from the slab after it.
    closed: Vec<usize>,
    /// Connections with work left that readiness will not announce again.
    runnable: VecDeque<usize>,
    timers: BTreeSet<(Instant, usize)>,
    access: Rc<Access>,
    verifier: Verifier,
    session_config: Rc<SessionConfig>,
    /// Password checks queued per client address.
    verifying_per_ip: HashMap<IpAddr, usize>,
    stall_timeout: Duration,
    pasv_ports: (u16, u16),
    /// Control connections on this worker.
    controls: usize,
    /// The configuration generation this worker runs (SIGHUP makes a new one).
    generation: u64,
    /// The last `/sessions` request this worker answered.
    sessions_answered: u64,
    accept_paused: bool,
    shutdown_grace: Duration,
    shutdown_deadline: Option<Instant>,
    read_buf: Vec<u8>,
    scheduling: Scheduling,
    /// The one buffer every transfer's step uses (see [`crate::transfer::scratch_len`]); allocated on first use.
    scratch: Vec<u8>,
    /// The one pipe every spliced upload passes through (see [`crate::transfer::SplicePipe`]); made on first use.
    splice_pipe: LazyPipe,
    /// Data transfers in the runnable queue, counted as a round starts: they split the round's budget.
    runnable_transfers: usize,
    /// Where the current round of the runnable queue is.
    round: Round,
    /// Outcomes for sessions (slab key, session number), handed over by [`Worker::deliver`].
    outcomes: VecDeque<(usize, u64, Outcome)>,
    /// Threads for the requests of a storage back-end (`--storage`); their answers come through the waker.
    storage: Option<crate::storage::remote::Pool>,
    stats: Rc<ServerStats>,
}

impl Worker {
    /// A worker serving on `control` (and `implicit`, for implicit FTPS): listeners bound by [`Server::bind`].
    fn new(
        config: &Config,
        id: usize,
        control: std::net::TcpListener,
        implicit: Option<std::net::TcpListener>,
        shared: Arc<Shared>,
    ) -> io::Result<Worker> {
        let access = workers::load_access(config)?.with_limits(shared.limits.clone());
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE)?);
        let commands = Poll::new()?;
        let commands_fd = std::os::fd::AsRawFd::as_raw_fd(&commands);
        poll.registry().register(&mut mio::unix::SourceFd(&commands_fd), COMMANDS, Interest::READABLE)?;
        let verifier = Verifier::spawn(waker.clone())?;
        let storage = match &config.storage {
            None => None,
            Some(_) => {
                let waker = waker.clone();
                let wake = Arc::new(move || {
                    let _ = waker.wake();
                });
                Some(crate::storage::remote::Pool::start(crate::storage::remote::THREADS, wake)?)
            }
        };
        shared.add_waker(id, waker);
        let mut listener = TcpListener::from_std(control);
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let implicit = match implicit {
            None => None,
            Some(l) => {
                let mut l = TcpListener::from_std(l);
                poll.registry().register(&mut l, IMPLICIT_LISTENER, Interest::READABLE)?;
                Some(l)
            }
        };
        let generation = shared.generation();
        let metrics = Arc::new(crate::metrics::WorkerMetrics::new(id));
        shared.metrics.add(metrics.clone());
        let stats =
            ServerStats { worker: id, workers: shared.workers, metrics: metrics.clone(), ..ServerStats::default() };
        Ok(Worker {
            id,
            shared,
            metrics,
            proxy_from: config.proxy_from.clone(),
            poll,
            commands,
            commands_left: false,
            listener: Some(listener),
            implicit,
            tls: config.tls.clone(),
            conns: Conns::default(),
            closed: Vec::new(),
            runnable: VecDeque::new(),
            timers: BTreeSet::new(),
            access: Rc::new(access),
            verifier,
            session_config: Rc::new(config.session.clone()),
            verifying_per_ip: HashMap::new(),
            stall_timeout: config.stall_timeout,
            pasv_ports: config.pasv_ports.unwrap_or_else(ephemeral_ports),
            controls: 0,
            generation,
            sessions_answered: 0,
            accept_paused: false,
            shutdown_grace: config.shutdown_grace,
            shutdown_deadline: None,
            read_buf: vec![0; CONTROL_READ],
            scheduling: config.scheduling,
            scratch: Vec::new(),
            splice_pipe: LazyPipe::default(),
            runnable_transfers: 0,
            round: Round::default(),
            outcomes: VecDeque::new(),
            storage,
            stats: Rc::new(stats),
        })
    }

    /// Serves until a shutdown signal has been handled and every session has ended.
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut commands = Events::with_capacity(COMMAND_EVENTS);
        if self.shared.shutdown.load(Ordering::Acquire) {
            self.begin_shutdown(Now::from_system());
        }
        loop {
            if self.round.under_way() {
                // Mid-round: the data sockets are asked again once the round is over; commands are, below.
                events.clear();
            } else {
                let timeout = self.poll_timeout(Instant::now());
                if let Err(e) = self.poll.poll(&mut events, timeout) {
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
            }
            let now = Now::from_system();
            self.turn(&events, &mut commands, now);
            if let Some(deadline) = self.shutdown_deadline {
                if self.controls == 0 {
                    info!("worker {}: shutdown complete", self.id);
                    return Ok(());
                }
                if now.mono >= deadline {
                    self.shutdown_expired(now);
                    return Ok(());
                }
            }
        }
    }

    /// One turn of the loop: the events of one poll, the control connections' events, a slice of the runnable
    /// queue, the timers. Each turn is timed: every client waits for the whole of it, so its length is the loop's
    /// health.
    fn turn(&mut self, events: &Events, commands: &mut Events, now: Now) {
        for event in events.iter() {
            match event.token() {
                // Drained below, every turn.
                COMMANDS => {}
                LISTENER => self.accept_all(false, now),
                IMPLICIT_LISTENER => self.accept_all(true, now),
                WAKE => {
                    self.take_arrivals(now);
                    self.verifier_done();
                    self.storage_answers();
                    self.adopt_reloaded_config();
                    self.answer_session_list(now);
                    if self.shared.shutdown.load(Ordering::Acquire) && self.shutdown_deadline.is_none() {
                        self.begin_shutdown(now);
                    }
                }
                Token(k) => self.ready(k, now),
            }
        }
        self.commands_ready(commands, now);
        self.deliver(now);
        self.run_runnable(now);
        self.deliver(now);
        self.fire_timers(now);
        self.deliver(now);
        self.remove_closed();
        let took = now.mono.elapsed();
        self.metrics.turn(took);
        if took > SLOW_TURN {
            let n = events.iter().count();
            warn!("slow loop turn: {:.1} ms ({n} events, {} sessions)", took.as_secs_f64() * 1e3, self.controls);
        }
    }

    /// Takes the events the commands poll has. Edge-triggered readiness of the nested poll is announced to the
    /// worker's poll when an event arrives; asking it every turn, and polling the worker's without waiting while
    /// it may have more, keeps none waiting behind an announcement already taken.
    fn commands_ready(&mut self, commands: &mut Events, now: Now) {
        self.commands_left = false;
        for _ in 0..COMMAND_POLLS_PER_TURN {
            match self.commands.poll(commands, Some(Duration::ZERO)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!("worker {}: polling the control connections: {e}", self.id);
                    return;
                }
            }
            let mut n = 0;
            for event in commands.iter() {
                n += 1;
                self.ready(event.token().0, now);
            }
            if n < COMMAND_EVENTS {
                return;
            }
        }
        self.commands_left = true;
    }

    /// `/sessions` asked: one line per session of this worker (number, worker, user, client, what it does).
    fn answer_session_list(&mut self, now: Now) {
        let Some(request) = self.shared.sessions_wanted(self.sessions_answered) else { return };
        self.sessions_answered = request;
        let mut lines = Vec::new();
        for (_, conn) in self.conns.iter() {
            let Conn::Control(c) = conn else { continue };
            let mut state = c.session.activity(now);
            if let Some(Conn::Data(d)) = c.data.and_then(|id| self.conns.get(id.0)) {
                if let Some(t) = d.transfer() {
                    let secs = now.mono.saturating_duration_since(d.started).as_secs_f64().max(1e-3);
                    let rate = t.bytes() as f64 / secs / f64::from(1 << 20);
                    state.push_str(&format!(", {} bytes, {rate:.2} MiB/s", t.bytes()));
                }
            }
            lines.push(format!(
                "{}\t{}\t{:?}\t{}\t{state}",
                c.session.id(),
                self.id,
                c.session.user_name(),
                c.session.peer()
            ));
        }
        self.shared.answer_sessions(self.id, request, lines);
    }

    /// After SIGHUP: new sessions get the new accounts and settings; sessions already running keep theirs.
    fn adopt_reloaded_config(&mut self) {
        let generation = self.shared.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let config = self.shared.config();
        match workers::load_access(&config) {
            Ok(access) => {
                let access = access.with_limits(self.shared.limits.clone());
                self.access = Rc::new(access);
                self.session_config = Rc::new(config.session.clone());
                self.stall_timeout = config.stall_timeout;
                info!("worker {}: configuration {generation} in force for new sessions", self.id);
            }
            // The signal thread checked it already; the file may have changed again since.
            Err(e) => error!("worker {}: configuration {generation} refused, keeping the old one: {e}", self.id),
        }
    }

    /// The shutdown grace period is over: last words to every session, then everything is closed.
    fn shutdown_expired(&mut self, now: Now) {
        warn!("shutdown grace period over; closing {} sessions", self.controls);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for &k in &keys {
            // Last words, best effort: 426 for the cut transfer, 421 for the session.
            if let Some(Conn::Control(c)) = self.conns.get_mut(k) {
                c.session.handle_shutdown_expired(now);
            }
            self.apply(k, now);
        }
        for k in keys {
            self.close(k);
        }
        self.remove_closed();
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.runnable.is_empty() || self.commands_left {
            return Some(Duration::ZERO);
        }
        let next = self.timers.first().map(|(at, _)| *at);
        let next = match (next, self.shutdown_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Rounded up to the millisecond so a timer is never polled for a zero-length sleep repeatedly.
        next.map(|at| at.saturating_duration_since(now) + Duration::from_millis(1))
    }

    // ---- accepting -----------------------------------------------------------------------------------------

    /// Accepts from the plain listener or, with `implicit`, the implicit-FTPS one.
    fn accept_all(&mut self, implicit: bool, now: Now) {
        // Bounded: errors that concern one connection each are skipped, but never more than this many a turn.
        let mut errors = 0;
        while !self.accept_paused && errors < 64 {
            let listener = if implicit { &self.implicit } else { &self.listener };
            let Some(listener) = listener else { return };
            match listener.accept() {
                Ok((stream, peer)) => match self.shared.lighter_than(self.id) {
                    Some(to) => self.shared.hand_over(to, workers::Arrival { stream, peer, implicit }),
                    None => self.arrive(stream, peer, implicit, now),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                    // EMFILE/ENFILE: the connection stays in the backlog; retrying now would spin the CPU.
                    warn!("accept: {e}; pausing accepts for {ACCEPT_BACKOFF:?}");
                    self.accept_paused = true;
                    self.timers.insert((now.mono + ACCEPT_BACKOFF, ACCEPT_TIMER));
                }
                // EINVAL: the listener was stopped (shutdown began); the worker drops it when it sees that.
                Err(e) if e.raw_os_error() == Some(22) => return,
                Err(e) => {
                    // ECONNABORTED and friends concern one connection, not the server.
                    debug!("accept: {e}");
                    errors += 1;
                }
            }
        }
    }

    /// The control connections other workers accepted and handed to this one (see [`workers::Lane`]), admitted as
    /// if accepted here; while shutting down they are closed, as the listener would have been.
    fn take_arrivals(&mut self, now: Now) {
        for a in self.shared.arrivals(self.id, ARRIVALS_PER_TURN) {
            if self.shutdown_deadline.is_none() {
                self.arrive(a.stream, a.peer, a.implicit, now);
            }
            // The count the handing worker added: an admitted session is counted again by admit.
            self.shared.hold(self.id, false);
        }
    }

    /// A new control connection; with `implicit`, TLS from its first byte (the greeting waits for the handshake).
    fn arrive(&mut self, stream: TcpStream, peer: SocketAddr, implicit: bool, now: Now) {
        if crate::proxy::trusted(&self.proxy_from, peer.ip()) {
            return self.await_proxy_header(stream, peer, proxied::Purpose::Control { implicit }, now);
        }
        self.arrive_as(stream, peer, implicit, now);
    }

    /// Admits a control connection from `peer` (the client: behind a balancer, the address its header named).
    fn arrive_as(&mut self, mut stream: TcpStream, peer: SocketAddr, implicit: bool, now: Now) {
        let ip = canonical(peer.ip());
        if let Err(refusal) = self.shared.admit(ip, now.mono) {
            let text: &[u8] = match refusal {
                Refusal::TooMany => {
                    self.metrics.refused_max_connections.fetch_add(1, Ordering::Relaxed);
                    b"421 Too many connections, try again later.\r\n"
                }
                Refusal::TooManyFromAddress => {
                    self.metrics.refused_per_ip.fetch_add(1, Ordering::Relaxed);
                    b"421 Too many connections from your address.\r\n"
                }
                Refusal::Banned(crate::bans::Refused::Denied) => {
                    self.metrics.refused_denied.fetch_add(1, Ordering::Relaxed);
                    debug!("{peer}: refused: --deny-from/--allow-from");
                    b"421 Not accepting connections from your address.\r\n"
                }
                Refusal::Banned(crate::bans::Refused::Banned { left }) => {
                    self.metrics.refused_banned.fetch_add(1, Ordering::Relaxed);
                    debug!("{peer}: refused: banned for {left:?} more");
                    b"421 Your address is banned for now; try again later.\r\n"
                }
            };
            // Best effort: a full socket buffer on a fresh connection is unlikely, and the close follows anyway.
            // A TLS client could not read a plaintext reply; it only sees the close.
            if !implicit {
                let _ = stream.write(text);
            }
            debug!("{peer}: refused, {} sessions", self.shared.sessions());
            return;
        }
        if !self.admit(stream, peer, implicit, now) {
            self.shared.release(ip);
        }
    }

    /// Sets up an admitted control connection; false if it could not be (the caller releases its admission).
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, implicit: bool, now: Now) -> bool {
        // Without TCP_NODELAY every 226 waits ~40 ms for the client's delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            debug!("{peer}: TCP_NODELAY: {e}");
        }
        // Python's ftplib sends ABOR as urgent data; inline it so its last byte is not lost out of band.
        if let Err(e) = socket2::SockRef::from(&stream).set_out_of_band_inline(true) {
            debug!("{peer}: SO_OOBINLINE: {e}");
        }
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                debug!("{peer}: local_addr: {e}");
                return false;
            }
        };
        let mut stream = Stream::plain(stream);
        if implicit {
            let started = match &self.tls {
                Some(tls) => stream.start_tls(tls.control.clone()),
                None => Err(io::Error::other("no certificate")),
            };
            if let Err(e) = started {
                warn!("{peer}: TLS: {e}");
                return false;
            }
        }
        let key = self.conns.next_key();
        if let Err(e) = self.commands.registry().register(stream.socket_mut(), Token(key), Interest::READABLE) {
            warn!("{peer}: register: {e}");
            return false;
        }
        let id = self.shared.next_session();
        let mut session = Session::new(id, peer, local, self.access.clone(), self.session_config.clone(), now);
        session.set_stats(self.stats.clone());
        if implicit {
            session.start_implicit_tls();
        }
        self.conns.insert(Conn::Control(Box::new(Control::new(stream, session))));
        self.controls += 1;
        self.shared.hold(self.id, true);
        debug!("session {id} from {peer} on worker {} (key {key}); sessions: {}", self.id, self.shared.sessions());
        self.apply(key, now);
        true
    }

    /// Delivers the verifier thread's answers to the sessions still waiting for them.
    fn verifier_done(&mut self) {
        while let Some(done) = self.verifier.poll() {
            if let Some(n) = self.verifying_per_ip.get_mut(&done.ip) {
                *n -= 1;
                if *n == 0 {
                    self.verifying_per_ip.remove(&done.ip);
                }
            }
            // The key may have been reused by a later connection: the session number tells.
            let waiting = matches!(self.conns.get(done.key), Some(Conn::Control(c)) if c.session.id() == done.session);
            if waiting {
                if let Some(Conn::Control(c)) = self.conns.get_mut(done.key) {
                    c.verify_cancel = None;
                }
                self.tell(done.key, Outcome::Verified(done.ok));
            }
        }
    }

    /// Stops accepting, tells idle sessions, and lets running transfers finish within the grace period.
    fn begin_shutdown(&mut self, now: Now) {
        self.shutdown_deadline = Some(now.mono + self.shutdown_grace);
        for mut l in [self.listener.take(), self.implicit.take()].into_iter().flatten() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let keys: Vec<usize> =
            self.conns.iter().filter(|(_, c)| matches!(c, Conn::Control(_))).map(|(k, _)| k).collect();
        for k in keys {
            if let Some(Conn::Control(c)) = self.conns.get_mut(k) {
                c.session.handle_shutdown(now);
            }
            self.apply(k, now);
        }
    }

    // ---- readiness -----------------------------------------------------------------------------------------

    fn ready(&mut self, key: usize, now: Now) {
        // A closed connection is not there: the event is a stale one for a connection closed in this batch.
        match self.conns.get(key) {
            Some(Conn::Control(_)) => self.pump_control(key, now),
            Some(Conn::Data(_)) => self.data_ready(key, now),
            Some(Conn::Proxy(_)) => self.read_proxy_header(key, now),
            Some(Conn::Hash { .. }) | None => {}
        }
    }

    // ---- scheduling ----------------------------------------------------------------------------------------

    /// Answers from the storage pool: each to its session, if it is still there; an upload opened for one that
    /// has gone is discarded on the store.
    fn storage_answers(&mut self) {
        let Some(pool) = &self.storage else { return };
        let answers: Vec<_> = pool.answers().collect();
        for a in answers {
            let alive = self.session_id(a.key) == a.session;
            if alive {
                self.queue_outcome(a.key, a.session, Outcome::Storage(a.done));
            } else if let (Some(temp), Some(pool)) = (a.done.into_temp(), &self.storage) {
                let op = crate::storage::Op::Discard(temp);
                let _ =
                    pool.submit(crate::storage::remote::Job { key: a.key, session: a.session, backend: a.backend, op });
            }
        }
    }

    /// Queues an I/O outcome for its session; [`Worker::deliver`] hands it over within the same turn.
    fn tell(&mut self, owner: usize, outcome: Outcome) {
        let session = self.session_id(owner);
        self.queue_outcome(owner, session, outcome);
    }

    /// Queues `outcome` for session number `session` at `key`, counting it on the session's control connection.
    fn queue_outcome(&mut self, key: usize, session: u64, outcome: Outcome) {
        if let Some(Conn::Control(c)) = self.conns.get_mut(key) {
            if c.session.id() == session {
                c.queued_outcomes += 1;
            }
        }
        self.outcomes.push_back((key, session, outcome));
    }

    /// The control connection of session number `session` at `key`, with one queued outcome of it taken off its
    /// count; `None` (and nothing counted) if the session is gone or has none queued.
    fn unqueue_outcome(&mut self, key: usize, session: u64) -> Option<&mut Control> {
        match self.conns.get_mut(key) {
            Some(Conn::Control(c)) if c.session.id() == session && c.queued_outcomes > 0 => {
                c.queued_outcomes -= 1;
                Some(c)
            }
            _ => None,
        }
    }

    /// The first queued outcome for session number `session` at `key`, taken out of the queue (in order: its
    /// outcomes reach it as they were told). Called at the end of every apply: the queue is searched only when the
    /// session has something in it.
    fn take_outcome(&mut self, key: usize, session: u64) -> Option<Outcome> {
        match self.conns.get(key) {
            Some(Conn::Control(c)) if c.queued_outcomes > 0 => {}
            _ => return None,
        }
        let at = self.outcomes.iter().position(|(owner, id, _)| *owner == key && *id == session)?;
        self.unqueue_outcome(key, session);
        self.outcomes.remove(at).map(|(_, _, outcome)| outcome)
    }

    /// Hands every queued outcome to its session and carries out what the session asks next; what that tells
    /// is queued behind and handed over in this same call. An outcome whose session has ended (or whose slab
    /// key now holds another) is dropped.
    fn deliver(&mut self, now: Now) {
        while let Some((owner, session, outcome)) = self.outcomes.pop_front() {
            if let Some(c) = self.unqueue_outcome(owner, session) {
                c.session.handle_outcome(now, outcome);
                self.apply(owner, now);
            }
        }
    }

    /// One turn of a HASH job.
    fn step_hash(&mut self, key: usize) {
        let Some(Conn::Hash { owner, job }) = self.conns.get_mut(key) else { return };
        let owner = *owner;
        let outcome = match job.step(HASH_BYTES_PER_TURN) {
            HashStep::More => {
                self.enqueue(key);
                return;
            }
            HashStep::Done { hex, size } => Outcome::HashDone { hex, size },
            HashStep::Failed(e) => Outcome::HashFailed(e),
        };
        self.close(key);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            c.hash = None;
        }
        self.tell(owner, outcome);
    }

    fn enqueue(&mut self, key: usize) {
        if self.conns.queue(key) {
            self.runnable.push_back(key);
        }
    }

    /// Steps the connections that had work left, in order, each within its share: the next [`STEPS_PER_TURN`] of
    /// the current round. A round gives one step to every connection queued when it started; what a step queues
    /// again waits for the next round.
    fn run_runnable(&mut self, now: Now) {
        if !self.round.under_way() {
            self.runnable_transfers =
                self.runnable.iter().filter(|&&k| matches!(self.conns.get(k), Some(Conn::Data(_)))).count();
        }
        for _ in 0..self.round.slice(self.runnable.len()) {
            let Some(key) = self.runnable.pop_front() else { break };
            if !self.conns.dequeue(key) {
                continue;
            }
            match self.conns.get(key) {
                Some(Conn::Data(_)) => self.step_transfer(key, now),
                Some(Conn::Hash { .. }) => self.step_hash(key),
                Some(Conn::Control(_)) => self.pump_control(key, now),
                _ => {}
            }
        }
    }

    /// Fires the timers due at `now`. They are taken out first and fired after: a timer re-armed while firing
    /// (even, by some bug, in the past) waits for the next turn instead of keeping this one from ever ending.
    fn fire_timers(&mut self, now: Now) {
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.timers.first() {
            if at > now.mono {
                break;
            }
            self.timers.pop_first();
            due.push(key);
        }
        for key in due {
            if key == ACCEPT_TIMER {
                self.accept_paused = false;
                self.accept_all(false, now);
                self.accept_all(true, now);
                continue;
            }
            match self.conns.get_mut(key) {
                Some(Conn::Control(c)) => {
                    c.deadline = None;
                    c.session.handle_timeout(now);
                    self.apply(key, now);
                }
                Some(Conn::Data(_)) => self.data_timer(key, now),
                Some(Conn::Proxy(p)) => {
                    warn!("{}: no PROXY header within {:?}; closed", p.peer, proxied::PROXY_HEADER_TIMEOUT);
                    self.metrics.refused_proxy.fetch_add(1, Ordering::Relaxed);
                    self.close(key);
                }
                _ => {}
            }
        }
    }

    // ---- closing -------------------------------------------------------------------------------------------

    /// Closes a connection now (deregistered, never touched again) and frees its slab key after the batch.
    fn close(&mut self, key: usize) {
        let Some(conn) = self.conns.close(key) else { return };
        self.closed.push(key);
        let registry = self.poll.registry();
        let mut children = [None, None];
        match conn {
            Conn::Control(c) => {
                let _ = self.commands.registry().deregister(c.stream.socket_mut());
                c.session.handle_disconnect();
                c.cancel_verify();
                // The session's last words to the hooks (its logout) still go out, and the temporaries of the
                // uploads it cut short are removed; nothing else it asks for can be done.
                while let Some(action) = c.session.poll_action() {
                    match action {
                        Action::Event(event) => {
                            if let Some(hooks) = &self.shared.hooks {
                                hooks.submit(*event);
                            }
                        }
                        Action::Storage(
                            request @ crate::storage::Request { op: crate::storage::Op::Discard(_), .. },
                        ) => {
                            crate::storage::dispatch(self.storage.as_ref(), key, 0, request);
                        }
                        _ => {}
                    }
                }
                if let Some(at) = c.deadline.take() {
                    self.timers.remove(&(at, key));
                }
                children = [c.data.take().map(|id| id.0), c.hash.take()];
                self.controls -= 1;
                self.shared.hold(self.id, false);
                self.shared.release(canonical(c.session.peer().ip()));
                debug!("closed session at key {key}; connections: {}", self.controls);
            }
            Conn::Data(d) => {
                for at in d.tear_down(registry).into_iter().flatten() {
                    self.timers.remove(&(at, key));
                }
            }
            Conn::Proxy(p) => {
                if let Some(mut s) = p.stream.take() {
                    let _ = registry.deregister(&mut s);
                }
                self.timers.remove(&(p.deadline, key));
            }
            Conn::Hash { .. } => {}
        }
        for child in children.into_iter().flatten() {
            self.close(child);
        }
    }

    fn remove_closed(&mut self) {
        for key in self.closed.drain(..) {
            if !self.conns.remove(key) {
                error!("closed key {key} was not in the slab");
            }
        }
        self.stats.sessions.set(self.shared.sessions());
        self.metrics.sessions.store(self.controls, Ordering::Relaxed);
        self.stats.connections.set(self.conns.len());
        self.conns.shrink_if_empty();
    }

    /// The number log lines give the session at slab key `owner` (0 if it is gone).
    fn session_id(&self, owner: usize) -> u64 {
        match self.conns.get(owner) {
            Some(Conn::Control(c)) => c.session.id(),
            _ => 0,
        }
    }
}

/// One worker per core available to the process.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Raises the open-file limit to its hard maximum and returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum {
        if lim.current != Some(max) {
            if let Err(e) = setrlimit(Resource::Nofile, Rlimit { current: Some(max), maximum: Some(max) }) {
                warn!("cannot raise the open-file limit to {max}: {e}");
            }
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(1 << 20)
}

/// Sessions the descriptor limit allows when every one of them is busy: each may hold its control connection
/// and [`FDS_PER_SESSION`] more, and a reserve stays for the listeners, the poll and the log. Reserving only for
/// control connections would let one client's many idle sessions, each opening a passive listener, make every
/// other session's PASV and file opens fail with EMFILE.
fn default_max_connections() -> usize {
    max_connections_for(usize::try_from(raise_fd_limit()).unwrap_or(usize::MAX))
}

fn max_connections_for(fds: usize) -> usize {
    let reserve = (fds / 50).max(64);
    (fds.saturating_sub(reserve) / (FDS_PER_SESSION + 1)).max(1)
}

/// Removes upload temporaries left by a crash, on a thread of its own: the tree may be large.
fn sweep_temps_in_background(root: &std::path::Path, older_than: Duration) {
    let root = root.to_path_buf();
    let spawned =
        std::thread::Builder::new().name("temp-sweep".into()).spawn(move || {
            match crate::fs::sweep_stale_temps(&root, older_than) {
                Ok(0) => {}
                Ok(n) => info!("removed {n} stale upload temporaries under {}", root.display()),
                Err(e) => warn!("sweeping stale upload temporaries under {}: {e}", root.display()),
            }
        });
    if let Err(e) = spawned {
        warn!("cannot start the temporary sweep: {e}");
    }
}

/// The kernel's ephemeral port range, where passive ports go when `--pasv-ports` is not given.
fn ephemeral_ports() -> (u16, u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok().and_then(|text| {
        let mut nums = text.split_whitespace().map(|n| n.parse::<u16>().ok());
        let (lo, hi) = (nums.next()??, nums.next()??);
        (lo >= 1024 && lo <= hi).then_some((lo, hi))
    });
    // The Linux default when the range cannot be read.
    range.unwrap_or((32768, 60999))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The turn's budget is split equally among the runnable transfers, in whole chunks, between the least share
    // and the quantum: few transfers move their quantum, thousands the least share (one chunk with
    // --min-share 1024).
    #[test]
    fn shares_split_the_budget_in_whole_chunks() {
        let s = Scheduling { chunk: 1024, quantum: 256, turn_budget: 4 << 20, min_share: 1024 };
        assert_eq!(s.share(0), 256 * 1024);
        assert_eq!(s.share(1), 256 * 1024);
        assert_eq!(s.share(16), 256 * 1024);
        assert_eq!(s.share(64), 64 * 1024);
        assert_eq!(s.share(1000), 4 * 1024);
        assert_eq!(s.share(5000), 1024);
        assert_eq!(s.share(100_000), 1024);
        let odd = Scheduling { chunk: 1000, quantum: 3, turn_budget: 7_500, min_share: 1 };
        assert_eq!(odd.share(2), 3000);
        assert_eq!(odd.share(3), 2000);
        assert_eq!(odd.share(10), 1000);
    }

    // The default least share: up to 128 transfers the budget decides, past that each moves 32 KiB; it is whole
    // chunks and never more than the quantum (--quantum 1 still moves one chunk).
    #[test]
    fn shares_have_a_floor() {
        let s = Scheduling::default();
        assert_eq!(s.share(64), 64 * 1024);
        assert_eq!(s.share(128), 32 * 1024);
        assert_eq!(s.share(256), 32 * 1024);
        assert_eq!(s.share(1000), 32 * 1024);
        assert_eq!(s.share(100_000), 32 * 1024);
        assert_eq!(Scheduling { quantum: 1, ..s }.share(1000), 1024);
        assert_eq!(Scheduling { quantum: 8, ..s }.share(1000), 8 * 1024);
        assert_eq!(Scheduling { chunk: 10_000, ..s }.share(1000), 30_000);
        assert_eq!(Scheduling { min_share: 40_000, chunk: 10_000, ..s }.share(1000), 40_000);
    }

    // A round takes the entries queued when it starts, a slice per turn; what is queued meanwhile waits for the
    // next round.
    #[test]
    fn rounds_are_taken_in_slices() {
        let mut round = Round::default();
        assert!(!round.under_way());
        assert_eq!(round.slice(0), 0);
        assert_eq!(round.slice(5), 5);
        assert!(!round.under_way());
        let n = 2 * STEPS_PER_TURN + 44;
        assert_eq!(round.slice(n), STEPS_PER_TURN);
        assert!(round.under_way());
        // Re-queued and newly queued entries (the queue grew to n + 500) are not part of this round.
        assert_eq!(round.slice(n + 500), STEPS_PER_TURN);
        assert_eq!(round.slice(n + 500), 44);
        assert!(!round.under_way());
        assert_eq!(round.slice(7), 7);
    }

    // Finding 16: the default limit leaves room for every admitted session to be busy at once (control,
    // listener or data connection, file), plus a reserve for the server's own descriptors.
    #[test]
    fn finding_16_default_limit_reserves_for_busy_sessions() {
        for fds in [1024, 20_000, 1 << 20] {
            let max = max_connections_for(fds);
            assert!(max * (FDS_PER_SESSION + 1) + 64 <= fds, "{fds} descriptors, {max} sessions");
            assert!(max * (FDS_PER_SESSION + 1) * 10 >= fds * 9, "not needlessly low: {fds} -> {max}");
        }
    }
}
