//! One loop per core: the server runs `--workers` identical event loops ([`Worker`]s), each on its own thread
//! with its own poll, slab, timers, runnable queue and passive listeners, exactly the single-threaded design.
//! A session and its data connections live on the worker that accepted it.
//!
//! The control port is bound once per worker with SO_REUSEPORT, and the kernel spreads new connections across
//! the workers' listeners by a hash of the client's address and port: every worker accepts, without a lock. A
//! hash balances thousands of sessions but not a few: 16 sessions landed 11 and 6, or 5 and 12, as often as not,
//! and the worker holding 11 heavy uploads kept its core busy while the other's idled and its sessions got twice
//! the service. So a worker that accepts a connection while it holds more sessions than another worker hands it
//! over to the one holding fewest ([`Lane`]): a queue and a wake-up, only for the connections that even the count
//! out. Sessions are what is counted; their weight is not known at accept.
//!
//! Shared between workers, and only where it must be ([`Shared`]): the connection counts behind
//! `--max-connections` and `--max-per-ip` (an atomic, and a map locked at accept and close only, never on a
//! transfer's path), session numbers, and the shutdown flag with every worker's waker. Each worker has its own
//! copy of the accounts and its own password verifier.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use log::{error, info, warn};

use super::{default_max_connections, raise_fd_limit, sweep_temps_in_background, Config, Worker, FDS_PER_SESSION};
use crate::access::{Access, Anonymous};
use crate::fs::Root;

/// What the workers share.
pub(super) struct Shared {
    /// Control connections held, on all workers together.
    controls: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// `--max-connections` and `--max-per-ip` (0: no limit); SIGHUP may change them.
    max_connections: AtomicUsize,
    max_per_ip: AtomicUsize,
    next_session: AtomicU64,
    /// Set once by SIGINT/SIGTERM; every worker is woken to see it.
    pub(super) shutdown: AtomicBool,
    wakers: Mutex<Vec<Arc<mio::Waker>>>,
    pub(super) workers: usize,
    pub(super) metrics: Arc<crate::metrics::Registry>,
    bans: Mutex<crate::bans::Bans>,
    /// The hook threads' queue (`--hook`).
    pub(super) hooks: Option<crate::hooks::Hooks>,
    /// The transfer log's writer (`--xferlog`).
    pub(super) xferlog: Option<crate::xferlog::Xferlog>,
    /// Every user's rates and session counts, and the server-wide rates.
    pub(super) limits: Arc<crate::limits::Limits>,
    /// `/sessions`: the latest request, and each worker's answer to it (worker, request, lines).
    sessions_request: AtomicU64,
    sessions_reply: Mutex<HashMap<usize, (u64, Vec<String>)>>,
    sessions_answered: std::sync::Condvar,
    /// The configuration in force, and its generation (SIGHUP makes a new one).
    config: Mutex<Arc<Config>>,
    generation: AtomicU64,
    /// Handles on every worker's control listeners, so that shutdown stops them all at once (see
    /// [`Shared::begin_shutdown`]).
    listening: Mutex<Vec<std::net::TcpListener>>,
    /// Each worker's sessions and the connections handed to it, by worker number.
    lanes: Vec<Lane>,
}

/// A worker's side of the balance: how many sessions it holds (counting connections handed to it and not yet
/// taken), and those connections. The queue's lock is taken once per handed-over connection and once per wake-up,
/// never on a transfer's path.
#[derive(Default)]
pub(super) struct Lane {
    held: AtomicUsize,
    arrivals: Mutex<Vec<Arrival>>,
    /// The worker's waker, set when its loop starts: no connection is handed to a worker before.
    waker: OnceLock<Arc<mio::Waker>>,
}

/// A control connection accepted by one worker for another.
pub(super) struct Arrival {
    pub(super) stream: mio::net::TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) implicit: bool,
}

/// Why a connection was refused at accept.
pub(super) enum Refusal {
    TooMany,
    TooManyFromAddress,
    Banned(crate::bans::Refused),
}

impl Shared {
    /// Counts a new control connection from `ip` against both limits, or says which one it would break.
    pub(super) fn admit(&self, ip: IpAddr, now: std::time::Instant) -> Result<(), Refusal> {
        self.bans.lock().unwrap_or_else(|p| p.into_inner()).check(ip, now).map_err(Refusal::Banned)?;
        if self.controls.fetch_add(1, Ordering::AcqRel) >= self.max_connections.load(Ordering::Relaxed) {
            self.controls.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::TooMany);
        }
        // Counted even without a limit, so one set by SIGHUP holds from then on.
        let max_per_ip = self.max_per_ip.load(Ordering::Relaxed);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = per_ip.entry(ip).or_insert(0);
        if max_per_ip > 0 && *n >= max_per_ip {
            drop(per_ip);
            self.controls.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::TooManyFromAddress);
        }
        *n += 1;
        Ok(())
    }

    /// Counts an offence against `ip`; returns the ban it earned, if it earned one.
    pub(super) fn offend(&self, ip: IpAddr, now: std::time::Instant) -> Option<std::time::Duration> {
        self.bans.lock().unwrap_or_else(|p| p.into_inner()).offend(ip, now)
    }

    /// A control connection admitted by [`Shared::admit`] has closed.
    pub(super) fn release(&self, ip: IpAddr) {
        self.controls.fetch_sub(1, Ordering::AcqRel);
        {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }

    /// Control connections held on all workers.
    pub(super) fn sessions(&self) -> usize {
        self.controls.load(Ordering::Acquire)
    }

    pub(super) fn next_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds worker `id`'s waker, so a shutdown and the connections handed to it reach it.
    pub(super) fn add_waker(&self, id: usize, waker: Arc<mio::Waker>) {
        if let Some(lane) = self.lanes.get(id) {
            let _ = lane.waker.set(waker.clone());
        }
        self.wakers.lock().unwrap_or_else(|p| p.into_inner()).push(waker);
    }

    /// Worker `id` took on a session (`true`) or let one go.
    pub(super) fn hold(&self, id: usize, more: bool) {
        if let Some(lane) = self.lanes.get(id) {
            if more {
                lane.held.fetch_add(1, Ordering::Relaxed);
            } else {
                lane.held.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Where a connection worker `me` has just accepted should go: the worker holding fewest sessions, if that is
    /// fewer than `me` holds (ties stay). `None`: keep it. The counts are read without a lock, so two workers
    /// accepting at once may both keep theirs; the next connections even that out.
    pub(super) fn lighter_than(&self, me: usize) -> Option<usize> {
        if self.shutdown.load(Ordering::Acquire) {
            return None;
        }
        let mine = self.lanes.get(me)?.held.load(Ordering::Relaxed);
        let (to, least) = self
            .lanes
            .iter()
            .enumerate()
            .filter(|(_, lane)| lane.waker.get().is_some())
            .map(|(w, lane)| (w, lane.held.load(Ordering::Relaxed)))
            .min_by_key(|&(w, n)| (n, w != me))?;
        (least < mine).then_some(to)
    }

    /// Queues `arrival` for worker `to` and wakes it; counted as held by `to` from now on.
    pub(super) fn hand_over(&self, to: usize, arrival: Arrival) {
        let Some(lane) = self.lanes.get(to) else { return };
        lane.held.fetch_add(1, Ordering::Relaxed);
        let was_empty = {
            let mut queue = lane.arrivals.lock().unwrap_or_else(|p| p.into_inner());
            queue.push(arrival);
            queue.len() == 1
        };
        // A queue already holding connections has a wake-up on its way: this one's, or the one the worker sends
        // itself when a turn leaves some (see `arrivals`).
        if was_empty {
            if let Some(waker) = lane.waker.get() {
                let _ = waker.wake();
            }
        }
    }

    /// Up to `most` of the connections handed to worker `id`, oldest first; if more wait, the worker is woken
    /// again, so a flood is admitted over several turns instead of one that grows with it. Each is still counted
    /// as held by the worker, which lets go of that count once it has admitted or refused the connection (see
    /// [`Shared::hold`]).
    pub(super) fn arrivals(&self, id: usize, most: usize) -> Vec<Arrival> {
        let Some(lane) = self.lanes.get(id) else { return Vec::new() };
        let mut queue = lane.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        let n = most.min(queue.len());
        let taken: Vec<Arrival> = queue.drain(..n).collect();
        if !queue.is_empty() {
            // hand_over wakes only an empty queue's worker: the rest would otherwise wait for the next hand-over.
            if let Some(waker) = lane.waker.get() {
                let _ = waker.wake();
            }
        }
        taken
    }

    /// The live sessions of every worker, one line each, for `GET /sessions`. Each worker writes its own list
    /// in its next turn; this waits for them (a second at most) without touching any loop's data itself.
    pub(super) fn session_list(&self) -> String {
        let request = self.sessions_request.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake_all();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut replies = self.sessions_reply.lock().unwrap_or_else(|p| p.into_inner());
        let answered = |r: &HashMap<usize, (u64, Vec<String>)>| r.values().filter(|(n, _)| *n >= request).count();
        // Woken by each worker's answer; a worker that does not answer within the second is named as missing.
        while answered(&replies) < self.workers {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            replies = self.sessions_answered.wait_timeout(replies, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        let mut out = String::from("session\tworker\tuser\tclient\tstate\n");
        let mut workers: Vec<_> = replies.iter().filter(|(_, (r, _))| *r >= request).collect();
        workers.sort_by_key(|(w, _)| **w);
        for (_, (_, lines)) in workers {
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        let n = answered(&replies);
        if n < self.workers {
            out.push_str(&format!("# {n} of {} workers answered in time\n", self.workers));
        }
        out
    }

    /// The `/sessions` request a worker should answer, if newer than `answered`.
    pub(super) fn sessions_wanted(&self, answered: u64) -> Option<u64> {
        let want = self.sessions_request.load(Ordering::Acquire);
        (want > answered).then_some(want)
    }

    pub(super) fn answer_sessions(&self, worker: usize, request: u64, lines: Vec<String>) {
        self.sessions_reply.lock().unwrap_or_else(|p| p.into_inner()).insert(worker, (request, lines));
        self.sessions_answered.notify_all();
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn config(&self) -> Arc<Config> {
        self.config.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGHUP: builds the new configuration, checks it (the config file parses, the users file loads), keeps
    /// what cannot change while running, and hands it to every worker for their new sessions. A broken file is
    /// refused with one log line and the running configuration stays.
    pub(super) fn reload(&self) {
        let old = self.config();
        let fresh = match &old.reload {
            Some(reload) => (reload.0)(),
            None => Ok((*old).clone()),
        };
        let mut new = match fresh.and_then(|c| load_access(&c).map(|_| c).map_err(|e| e.to_string())) {
            Ok(c) => c,
            Err(e) => {
                error!("SIGHUP: new configuration refused, the running one stays: {e}");
                return;
            }
        };
        let fixed = [
            ("bind", old.bind != new.bind),
            ("port", old.port != new.port),
            ("root", old.root != new.root),
            ("workers", old.workers != new.workers),
            ("implicit-tls-port", old.implicit_tls_port != new.implicit_tls_port),
            ("metrics", old.metrics != new.metrics),
            ("tls-cert/tls-key", old.tls.is_some() != new.tls.is_some()),
        ];
        for (name, changed) in fixed {
            if changed {
                warn!("SIGHUP: {name} changes only with a restart; keeping the running value");
            }
        }
        new.bind = old.bind;
        new.port = old.port;
        new.root = old.root.clone();
        new.workers = old.workers;
        new.implicit_tls_port = old.implicit_tls_port;
        new.metrics = old.metrics;
        new.tls = old.tls.clone();
        new.session.tls = old.session.tls;
        new.reload = old.reload.clone();
        self.bans.lock().unwrap_or_else(|p| p.into_inner()).set_policy(new.bans.clone());
        self.limits.set_global(new.download_rate, new.upload_rate);
        self.max_connections.store(new.max_connections.unwrap_or_else(default_max_connections), Ordering::Relaxed);
        self.max_per_ip.store(new.max_per_ip, Ordering::Relaxed);
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        info!("SIGHUP: configuration {generation} loaded (accounts and settings for new sessions)");
        self.wake_all();
    }

    fn wake_all(&self) {
        for w in self.wakers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            // A failed wake can only mean the worker is gone already.
            let _ = w.wake();
        }
    }

    /// Starts the shutdown on every worker. The listeners stop first, here: a worker that wakes a moment after
    /// another must not accept a connection after the first has told its clients the server is going away.
    pub(super) fn begin_shutdown(&self) {
        for l in self.listening.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            // shutdown(2) on a listening socket stops it listening (new connections are refused) while the
            // worker still holds its handle; the worker closes that when it sees the shutdown.
            let _ = socket2::SockRef::from(&l).shutdown(std::net::Shutdown::Read);
        }
        self.shutdown.store(true, Ordering::Release);
        self.wake_all();
    }
}

/// The FTP server: [`Server::bind`] checks the configuration and binds every worker's listeners; [`Server::run`]
/// runs the workers until a shutdown signal has been handled and every session has ended.
pub struct Server {
    config: Config,
    listeners: Vec<(std::net::TcpListener, Option<std::net::TcpListener>)>,
    local_addr: SocketAddr,
    implicit_addr: Option<SocketAddr>,
    anonymous: Anonymous,
    shared: Arc<Shared>,
    metrics: Option<std::net::TcpListener>,
}

impl Server {
    /// Opens the root, loads the accounts (to refuse a broken users file now), and binds the listening sockets.
    pub fn bind(mut config: Config) -> io::Result<Server> {
        if config.tls.is_none() && (config.session.require_tls || config.implicit_tls_port.is_some()) {
            let e = "--require-tls and --implicit-tls-port need --tls-cert and --tls-key";
            return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
        }
        config.session.tls = config.tls.is_some();
        config.workers = config.workers.max(1);
        // Each worker loads its own copy when it starts; this one only checks.
        load_access(&config)?;
        let fds = raise_fd_limit();
        if let Some(max) = config.max_connections {
            let needed = max.saturating_mul(FDS_PER_SESSION + 1) as u64;
            if needed > fds {
                warn!(
                    "--max-connections {max}: busy sessions may need {needed} descriptors, the limit is {fds}; \
                     data connections and file opens may fail with 425/451 when all are busy"
                );
            }
        }
        let addr = SocketAddr::new(config.bind, config.port);
        let control =
            bind_all(addr, config.workers).map_err(|e| with_context(e, format!("cannot listen on {addr}")))?;
        let local_addr = control[0].local_addr()?;
        let implicit = match config.implicit_tls_port {
            None => None,
            Some(port) => {
                let addr = SocketAddr::new(config.bind, port);
                let what = format!("cannot listen on {addr} (implicit TLS)");
                Some(bind_all(addr, config.workers).map_err(|e| with_context(e, what))?)
            }
        };
        let implicit_addr = implicit.as_ref().map(|l| l[0].local_addr()).transpose()?;
        let listening =
            control.iter().chain(implicit.iter().flatten()).map(|l| l.try_clone()).collect::<io::Result<_>>()?;
        let mut implicit = implicit.map(Vec::into_iter);
        let listeners = control.into_iter().map(|l| (l, implicit.as_mut().and_then(Iterator::next))).collect();
        let metrics = match config.metrics {
            None => None,
            Some(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .map_err(|e| with_context(e, format!("cannot listen on {addr} (metrics)")))?,
            ),
        };
        // Opened before root is dropped, like any log a root-started daemon writes.
        let xferlog = match &config.xferlog {
            None => None,
            Some(path) => Some(
                crate::xferlog::Xferlog::open(path)
                    .map_err(|e| with_context(e, format!("cannot open the xferlog {}", path.display())))?,
            ),
        };
        if let Some(mask) = config.umask {
            crate::privileges::set_umask(mask);
        }
        match config.run_as.as_deref() {
            Some(user) => {
                let a = crate::privileges::run_as(user)
                    .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.0))?;
                info!("running as {user} (uid {}, gid {})", a.uid, a.gid);
            }
            // Root serving a network is one bug away from giving it the machine: insist on an explicit choice.
            None if crate::privileges::is_root() && !config.bind.is_loopback() => {
                let e = format!(
                    "refusing to serve {} as root: give --run-as USER to drop root once the port is bound",
                    config.bind
                );
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, e));
            }
            None => {}
        }
        // After dropping root: the sweep and the hooks run as the serving user.
        sweep_temps_in_background(&config.root, 2 * config.stall_timeout);
        let hooks = config.hooks.clone().map(crate::hooks::Hooks::start).transpose()?;
        let registry = Arc::new(crate::metrics::Registry::default());
        if let Some(h) = &hooks {
            registry.set_hooks(h.run.clone(), h.dropped.clone());
        }
        let shared = Arc::new(Shared {
            controls: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            max_connections: AtomicUsize::new(config.max_connections.unwrap_or_else(default_max_connections)),
            max_per_ip: AtomicUsize::new(config.max_per_ip),
            next_session: AtomicU64::new(1),
            shutdown: AtomicBool::new(false),
            wakers: Mutex::new(Vec::new()),
            workers: config.workers,
            metrics: registry,
            hooks,
            xferlog,
            limits: Arc::new(crate::limits::Limits::new(config.download_rate, config.upload_rate)),
            bans: Mutex::new(crate::bans::Bans::new(config.bans.clone())),
            config: Mutex::new(Arc::new(config.clone())),
            generation: AtomicU64::new(1),
            sessions_request: AtomicU64::new(0),
            sessions_reply: Mutex::new(HashMap::new()),
            sessions_answered: std::sync::Condvar::new(),
            listening: Mutex::new(listening),
            lanes: (0..config.workers).map(|_| Lane::default()).collect(),
        });
        let anonymous = match config.anonymous {
            Anonymous::Write if config.read_only => Anonymous::Read,
            a => a,
        };
        Ok(Server { config, listeners, local_addr, implicit_addr, anonymous, shared, metrics })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where implicit-FTPS clients connect, if `--implicit-tls-port` was given.
    pub fn implicit_tls_addr(&self) -> Option<SocketAddr> {
        self.implicit_addr
    }

    pub fn root_path(&self) -> &std::path::Path {
        &self.config.root
    }

    /// What anonymous users may do (the ready line says it, so nobody serves a writable tree unawares).
    pub fn anonymous(&self) -> Anonymous {
        self.anonymous
    }

    /// Where `/metrics` and `/healthz` are served, if `--metrics` was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// How many event loops serve.
    pub fn workers(&self) -> usize {
        self.config.workers
    }

    /// Runs every worker on a thread of its own (`worker-N`) until shutdown has completed on all of them.
    pub fn run(self) -> io::Result<()> {
        let Server { config, listeners, shared, metrics, .. } = self;
        if config.handle_signals {
            watch_signals(shared.clone())?;
        }
        if let Some(listener) = metrics {
            let mine = shared.clone();
            let lister = shared.clone();
            crate::metrics::serve(
                listener,
                shared.metrics.clone(),
                move || mine.shutdown.load(Ordering::Acquire),
                move || lister.session_list(),
            )?;
        }
        let mut threads = Vec::new();
        for (id, (control, implicit)) in listeners.into_iter().enumerate() {
            let (config, mine) = (config.clone(), shared.clone());
            let spawned = thread::Builder::new().name(format!("worker-{id}")).spawn(move || {
                Worker::new(&config, id, control, implicit, mine.clone())
                    .and_then(|mut w| w.run())
                    .inspect_err(|_| mine.begin_shutdown())
            });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shared.begin_shutdown();
                    return Err(e);
                }
            }
        }
        let mut result = Ok(());
        for t in threads {
            let r = t.join().unwrap_or_else(|_| Err(io::Error::other("a worker panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// The accounts as a worker needs them (each worker has its own: they are not shared across threads).
pub(super) fn load_access(config: &Config) -> io::Result<Access> {
    let root = Root::open(&config.root)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open root {}: {e}", config.root.display())))?;
    let root = std::rc::Rc::new(root);
    let access = match &config.users {
        None => Access::anonymous_only(root.clone(), config.anonymous, config.read_only),
        Some(file) => {
            Access::load(&config.root, root.clone(), config.anonymous, config.read_only, file, config.storage.is_some())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
        }
    };
    Ok(match &config.storage {
        Some(backend) => access.with_backend(backend.clone()),
        None => access,
    })
}

/// `n` listeners on `addr`, all with SO_REUSEPORT so the kernel spreads connections across them; with port 0 the
/// first one picks the port and the others take the same.
fn bind_all(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let first = reuseport_listener(addr)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..n {
        all.push(reuseport_listener(addr)?);
    }
    Ok(all)
}

fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // `--bind ::` serves IPv4 clients too (IPv4-mapped), as std's listener does by default on Linux.
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn with_context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// SIGINT and SIGTERM start the shutdown on every worker; SIGHUP reloads the configuration and the users file.
/// From a thread of their own.
fn watch_signals(shared: Arc<Shared>) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            if sig == SIGHUP {
                shared.reload();
                continue;
            }
            if !shared.shutdown.load(Ordering::Acquire) {
                info!("signal {sig}: shutting down, {} sessions", shared.sessions());
                shared.begin_shutdown();
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(max: usize, per_ip: usize) -> Shared {
        Shared {
            controls: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            max_connections: AtomicUsize::new(max),
            max_per_ip: AtomicUsize::new(per_ip),
            next_session: AtomicU64::new(1),
            shutdown: AtomicBool::new(false),
            wakers: Mutex::new(Vec::new()),
            workers: 2,
            metrics: Arc::new(crate::metrics::Registry::default()),
            hooks: None,
            xferlog: None,
            limits: Arc::new(crate::limits::Limits::new(0, 0)),
            bans: Mutex::new(crate::bans::Bans::default()),
            config: Mutex::new(Arc::new(test_config())),
            generation: AtomicU64::new(1),
            sessions_request: AtomicU64::new(0),
            sessions_reply: Mutex::new(HashMap::new()),
            sessions_answered: std::sync::Condvar::new(),
            listening: Mutex::new(Vec::new()),
            lanes: (0..3).map(|_| Lane::default()).collect(),
        }
    }

    // The balance: a connection goes to the worker holding fewest when that is fewer than its acceptor holds (ties
    // stay); a handed-over connection counts for its new worker at once and wakes it; a worker whose loop has not
    // started gets none; shutdown hands nothing over.
    #[test]
    fn connections_go_to_the_worker_holding_fewest() {
        let s = shared(100, 0);
        let polls: Vec<mio::Poll> = (0..2).map(|_| mio::Poll::new().unwrap()).collect();
        for (id, poll) in polls.iter().enumerate() {
            s.add_waker(id, Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap()));
        }
        // Worker 2 has no waker: its loop has not started.
        assert_eq!(s.lighter_than(0), None, "all equal");
        s.hold(0, true);
        assert_eq!(s.lighter_than(0), Some(1));
        assert_eq!(s.lighter_than(1), None);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        s.hand_over(1, Arrival { stream: mio::net::TcpStream::from_std(stream), peer, implicit: false });
        assert_eq!(s.lighter_than(0), None, "1 and 1");
        let mut events = mio::Events::with_capacity(4);
        let mut polls = polls;
        polls[1].poll(&mut events, Some(std::time::Duration::from_secs(5))).unwrap();
        assert_eq!(events.iter().map(|e| e.token()).collect::<Vec<_>>(), [mio::Token(7)], "worker 1 woken");
        let arrivals = s.arrivals(1, 8);
        assert_eq!(arrivals.len(), 1);
        assert_eq!(arrivals[0].peer, client.local_addr().unwrap());
        assert!(s.arrivals(1, 8).is_empty(), "taken once");
        s.hold(1, true);
        s.hold(1, false);
        s.hold(0, true);
        assert_eq!(s.lighter_than(0), Some(1), "2 against 1");
        // A turn takes at most `most`; what is left wakes the worker again (hand_over would not: not empty).
        let clients: Vec<std::net::TcpStream> =
            (0..3).map(|_| std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap()).collect();
        for _ in &clients {
            let (stream, peer) = listener.accept().unwrap();
            s.hand_over(1, Arrival { stream: mio::net::TcpStream::from_std(stream), peer, implicit: false });
        }
        polls[1].poll(&mut events, Some(std::time::Duration::from_secs(5))).unwrap();
        assert_eq!(s.arrivals(1, 2).len(), 2);
        polls[1].poll(&mut events, Some(std::time::Duration::from_secs(5))).unwrap();
        assert_eq!(events.iter().count(), 1, "woken again for the one left");
        assert_eq!(s.arrivals(1, 2).len(), 1);
        s.shutdown.store(true, Ordering::Release);
        assert_eq!(s.lighter_than(0), None, "shutting down");
    }

    fn test_config() -> Config {
        use clap::Parser;
        let root = std::env::temp_dir();
        let args = ["ftpserver", "--root", root.to_str().unwrap()];
        crate::cli::Args::try_parse_from(args).unwrap().into_config().unwrap()
    }

    // The limits hold across workers: admissions from many threads never exceed them, and releases free them.
    #[test]
    fn limits_hold_across_threads() {
        let s = Arc::new(shared(50, 7));
        let ips: Vec<IpAddr> = (1..=10).map(|i| IpAddr::from([127, 0, 0, i])).collect();
        let admitted: Vec<Vec<IpAddr>> = (0..4)
            .map(|_| {
                let (s, ips) = (s.clone(), ips.clone());
                let now = std::time::Instant::now();
                thread::spawn(move || {
                    ips.iter().cycle().take(100).filter(|ip| s.admit(**ip, now).is_ok()).copied().collect()
                })
            })
            .map(|t| t.join().unwrap())
            .collect();
        let all: Vec<IpAddr> = admitted.into_iter().flatten().collect();
        assert_eq!(all.len(), 50);
        assert_eq!(s.sessions(), 50);
        for ip in &ips {
            assert!(all.iter().filter(|a| *a == ip).count() <= 7);
        }
        for ip in all {
            s.release(ip);
        }
        assert_eq!(s.sessions(), 0);
        assert!(s.per_ip.lock().unwrap().is_empty());
    }
}
