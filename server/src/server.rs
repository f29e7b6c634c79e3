//! The event loop: one thread, one `mio::Poll`, every connection in one `Slab` keyed by its `Token`.
//!
//! The loop owns all I/O and nothing else: sessions decide, the loop carries out their [`Action`]s and reports
//! back [`Outcome`]s. The rules it keeps (DESIGN.md §3) are each a known failure elsewhere when broken: drain reads
//! to `WouldBlock`; write at once and ask for `WRITABLE` only while bytes remain; move at most `quantum` chunks per
//! transfer per turn and keep unfinished work in the `runnable` queue (polling with a zero timeout while it is
//! non-empty, because edge-triggered readiness is not announced twice); remove closed connections only after the
//! batch so no slab key is reused while stale events for it may be buffered; keep every deadline in one ordered
//! set; stop reading from a session whose replies pile up; never panic on the network path.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ftp_common::LineBuffer;
use log::{debug, error, info, trace, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::access::{Access, Anonymous};
use crate::fs::Root;
use crate::hash::{HashJob, HashStep, HASH_BYTES_PER_TURN};
use crate::session::{canonical, Action, Now, Outcome, ServerStats, Session, SessionConfig};
use crate::transfer::{Step, Transfer, TransferError};
use crate::verifier::Verifier;

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const VERIFIER: Token = Token(usize::MAX - 2);
/// Timer key for resuming accepts after descriptor exhaustion (slab keys never get this high).
const ACCEPT_TIMER: usize = usize::MAX;

/// Bytes read from a control connection per `read` call.
const CONTROL_READ: usize = 4096;
/// Reads per control connection per turn before it yields to others (a flooding client cannot hog the loop).
const CONTROL_READS_PER_TURN: usize = 8;
/// Unsent reply bytes above which a session's commands are no longer read until the client catches up.
const REPLY_HIGH_WATER: usize = 16 * 1024;
/// How long accepting pauses when the process is out of file descriptors (EMFILE/ENFILE).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub root: PathBuf,
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
}

struct Control {
    stream: TcpStream,
    session: Session,
    lines: LineBuffer,
    out: Vec<u8>,
    out_pos: usize,
    interest: Interest,
    passive: Option<usize>,
    data: Option<usize>,
    /// A HASH being computed for this session.
    hash: Option<usize>,
    deadline: Option<Instant>,
    closing: bool,
    /// Reading stopped for back-pressure (replies piling up, or the session's command queue full); resumes
    /// through the runnable queue once that clears, since no new readiness event may come.
    paused: bool,
}

impl Control {
    fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Writes queued reply bytes until done or `WouldBlock`.
    fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out_pos = 0;
        // An idle session holds no buffer: the next reply allocates a fresh one.
        self.out = Vec::new();
        Ok(())
    }

    /// Readiness follows state: always readable, writable only while replies wait to be sent.
    fn wanted_interest(&self) -> Interest {
        if self.pending_out() > 0 {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }
}

struct DataConn {
    owner: usize,
    /// `None` once the transfer ended: the socket is closed at once so the client sees EOF before the 226.
    stream: Option<TcpStream>,
    transfer: Option<Box<Transfer>>,
    /// An active-mode connect still in progress.
    connecting: bool,
    /// When the running transfer last moved a byte.
    last_progress: Instant,
    /// The stall timer's entry, if one is set.
    stall_deadline: Option<Instant>,
}

enum Conn {
    Control(Box<Control>),
    /// `listener` is `None` once closed: the port is released at once, not at the end of the turn.
    Passive {
        owner: usize,
        listener: Option<TcpListener>,
    },
    Data(DataConn),
    /// A HASH job: no socket, it only runs from the runnable queue.
    Hash {
        owner: usize,
        job: Box<HashJob>,
    },
}

/// The FTP server: bind with [`Server::bind`], then [`Server::run`].
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    conns: Slab<Conn>,
    /// Keys closed during this batch; removed from the slab after it.
    closed: Vec<usize>,
    is_closed: Vec<bool>,
    /// Connections with work left that readiness will not announce again.
    runnable: VecDeque<usize>,
    queued: Vec<bool>,
    timers: BTreeSet<(Instant, usize)>,
    root: Rc<Root>,
    access: Rc<Access>,
    verifier: Verifier,
    session_config: Rc<SessionConfig>,
    max_connections: usize,
    max_per_ip: usize,
    per_ip: HashMap<IpAddr, usize>,
    stall_timeout: Duration,
    pasv_ports: Option<(u16, u16)>,
    controls: usize,
    next_session: u64,
    accept_paused: bool,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    shutdown_grace: Duration,
    shutdown_deadline: Option<Instant>,
    read_buf: Vec<u8>,
    stats: Rc<ServerStats>,
}

impl Server {
    /// Opens the root and binds the listening socket.
    pub fn bind(config: Config) -> io::Result<Server> {
        let root = Root::open(&config.root)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open root {}: {e}", config.root.display())))?;
        let root = Rc::new(root);
        let access = match &config.users {
            None => Access::anonymous_only(root.clone(), config.anonymous, config.read_only),
            Some(file) => Access::load(&config.root, root.clone(), config.anonymous, config.read_only, file)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
        };
        let poll = Poll::new()?;
        let verifier = Verifier::spawn(mio::Waker::new(poll.registry(), VERIFIER)?)?;
        let addr = SocketAddr::new(config.bind, config.port);
        let mut listener =
            TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let local_addr = listener.local_addr()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let signals = if config.handle_signals {
            let mut s =
                signal_hook_mio::v1_0::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
            poll.registry().register(&mut s, SIGNALS, Interest::READABLE)?;
            Some(s)
        } else {
            None
        };
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            conns: Slab::new(),
            closed: Vec::new(),
            is_closed: Vec::new(),
            runnable: VecDeque::new(),
            queued: Vec::new(),
            timers: BTreeSet::new(),
            root,
            access: Rc::new(access),
            verifier,
            session_config: Rc::new(config.session),
            max_connections: config.max_connections.unwrap_or_else(default_max_connections),
            max_per_ip: config.max_per_ip,
            per_ip: HashMap::new(),
            stall_timeout: config.stall_timeout,
            pasv_ports: config.pasv_ports,
            controls: 0,
            next_session: 1,
            accept_paused: false,
            signals,
            shutdown_grace: config.shutdown_grace,
            shutdown_deadline: None,
            read_buf: vec![0; CONTROL_READ],
            stats: Rc::new(ServerStats::default()),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn root_path(&self) -> &std::path::Path {
        self.root.host_path()
    }

    /// Serves until a shutdown signal has been handled and every session has ended.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Now::from_system();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(now),
                    SIGNALS => self.handle_signals(now),
                    VERIFIER => self.verifier_done(now),
                    Token(k) => self.ready(k, now),
                }
            }
            self.run_runnable(now);
            self.fire_timers(now);
            self.remove_closed();
            if let Some(deadline) = self.shutdown_deadline {
                if self.controls == 0 {
                    info!("shutdown complete");
                    return Ok(());
                }
                if now.mono >= deadline {
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
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.runnable.is_empty() {
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

    fn accept_all(&mut self, now: Now) {
        while !self.accept_paused {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                    // EMFILE/ENFILE: the connection stays in the backlog; retrying now would spin the CPU.
                    warn!("accept: {e}; pausing accepts for {ACCEPT_BACKOFF:?}");
                    self.accept_paused = true;
                    self.timers.insert((now.mono + ACCEPT_BACKOFF, ACCEPT_TIMER));
                }
                Err(e) => {
                    // ECONNABORTED and friends concern one connection, not the server.
                    debug!("accept: {e}");
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Now) {
        let ip = canonical(peer.ip());
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        let refusal: Option<&[u8]> = if self.controls >= self.max_connections {
            Some(b"421 Too many connections, try again later.\r\n")
        } else if self.max_per_ip > 0 && from_ip >= self.max_per_ip {
            Some(b"421 Too many connections from your address.\r\n")
        } else {
            None
        };
        if let Some(text) = refusal {
            // Best effort: a full socket buffer on a fresh connection is unlikely, and the close follows anyway.
            let _ = stream.write(text);
            debug!("{peer}: refused, {} connections, {from_ip} from this address", self.controls);
            return;
        }
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
                return;
            }
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(key), Interest::READABLE) {
            warn!("{peer}: register: {e}");
            return;
        }
        let id = self.next_session;
        self.next_session += 1;
        let mut session = Session::new(id, peer, local, self.access.clone(), self.session_config.clone(), now);
        session.set_stats(self.stats.clone());
        entry.insert(Conn::Control(Box::new(Control {
            stream,
            session,
            lines: LineBuffer::default(),
            out: Vec::new(),
            out_pos: 0,
            interest: Interest::READABLE,
            passive: None,
            data: None,
            hash: None,
            deadline: None,
            closing: false,
            paused: false,
        })));
        self.mark_open(key);
        self.controls += 1;
        *self.per_ip.entry(ip).or_insert(0) += 1;
        debug!("session {id} from {peer} (key {key}); connections: {}", self.controls);
        self.apply(key, now);
    }

    /// Delivers the verifier thread's answers to the sessions still waiting for them.
    fn verifier_done(&mut self, now: Now) {
        while let Some(done) = self.verifier.poll() {
            // The key may have been reused by a later connection: the session number tells.
            let waiting = matches!(self.conns.get(done.key), Some(Conn::Control(c)) if c.session.id() == done.session);
            if waiting && !self.is_closed[done.key] {
                self.tell(done.key, Outcome::Verified(done.ok), now);
            }
        }
    }

    fn handle_signals(&mut self, now: Now) {
        let Some(signals) = &mut self.signals else { return };
        let got: Vec<i32> = signals.pending().collect();
        if !got.is_empty() && self.shutdown_deadline.is_none() {
            info!("signal {:?}: shutting down, {} sessions", got, self.controls);
            self.begin_shutdown(now);
        }
    }

    /// Stops accepting, tells idle sessions, and lets running transfers finish within the grace period.
    pub fn begin_shutdown(&mut self, now: Now) {
        self.shutdown_deadline = Some(now.mono + self.shutdown_grace);
        if let Some(mut l) = self.listener.take() {
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
        if self.is_closed.get(key).copied().unwrap_or(true) {
            return; // A stale event for a connection closed earlier in this batch.
        }
        match self.conns.get(key) {
            Some(Conn::Control(_)) => self.pump_control(key, now),
            Some(Conn::Passive { .. }) => self.accept_data(key, now),
            Some(Conn::Data(d)) if d.connecting => self.check_connect(key, now),
            Some(Conn::Data(d)) if d.transfer.is_some() => self.enqueue(key),
            // An idle data connection is not read early: its bytes belong to the transfer still to come.
            Some(Conn::Data(_) | Conn::Hash { .. }) | None => {}
        }
    }

    /// Flushes replies, then reads and handles commands until the socket is drained, the session wants no more
    /// input, replies pile up, or this connection's per-turn budget is spent.
    fn pump_control(&mut self, key: usize, now: Now) {
        let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
        if let Err(e) = c.flush() {
            debug!("connection {key}: write: {e}");
            self.close(key);
            return;
        }
        let mut reads = 0;
        loop {
            // Handle complete lines first, each followed by whatever it made the session ask for.
            loop {
                let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
                if c.closing || !c.session.wants_input() || c.pending_out() > REPLY_HIGH_WATER {
                    break;
                }
                let Some(line) = c.lines.pop() else { break };
                c.session.handle_line(now, line);
                self.apply(key, now);
                if self.is_closed[key] {
                    return;
                }
            }
            let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
            if c.closing || !c.session.wants_input() || c.pending_out() > REPLY_HIGH_WATER || c.lines.ready_lines() > 0
            {
                break;
            }
            if reads == CONTROL_READS_PER_TURN {
                self.enqueue(key);
                break;
            }
            reads += 1;
            match c.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    debug!("connection {key}: client closed the control connection");
                    self.close(key);
                    return;
                }
                Ok(n) => c.lines.push(&self.read_buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("connection {key}: read: {e}");
                    self.close(key);
                    return;
                }
            }
        }
        self.update_control(key);
    }

    /// Carries out everything the session asked for, queues its replies and resyncs its timer.
    fn apply(&mut self, key: usize, now: Now) {
        loop {
            let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
            while let Some(reply) = c.session.poll_reply() {
                trace!("session {} -> {reply}", c.session.id());
                reply.encode(&mut c.out);
            }
            let Some(action) = c.session.poll_action() else { break };
            trace!("session {}: action {action:?}", c.session.id());
            match action {
                Action::ListenPassive => self.listen_passive(key, now),
                Action::ConnectActive(addr) => self.connect_active(key, addr, now),
                Action::VerifyPassword { hash, password } => {
                    let id = c.session.id();
                    if let Err(e) = self.verifier.submit(key, id, hash, password) {
                        error!("password verifier gone: {e}");
                        self.tell(key, Outcome::Verified(false), now);
                    }
                }
                Action::StartTransfer(t) => self.start_transfer(key, t, now),
                Action::CloseData => self.close_data(key),
                Action::StartHash(job) => {
                    let hkey = self.conns.insert(Conn::Hash { owner: key, job });
                    self.mark_open(hkey);
                    if let Some(Conn::Control(c)) = self.conns.get_mut(key) {
                        c.hash = Some(hkey);
                    }
                    self.enqueue(hkey);
                }
                Action::Close => {
                    c.closing = true;
                }
            }
        }
        self.update_control(key);
    }

    /// Flushes, closes a finished session, syncs interest and timer with the session's state.
    fn update_control(&mut self, key: usize) {
        if self.is_closed.get(key).copied().unwrap_or(true) {
            return;
        }
        let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
        if let Err(e) = c.flush() {
            debug!("connection {key}: write: {e}");
            self.close(key);
            return;
        }
        if c.closing && c.pending_out() == 0 {
            self.close(key);
            return;
        }
        if c.paused && c.session.wants_input() && c.pending_out() <= REPLY_HIGH_WATER {
            c.paused = false;
            self.enqueue(key);
        }
        let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
        let wanted = c.wanted_interest();
        if wanted != c.interest {
            if let Err(e) = self.poll.registry().reregister(&mut c.stream, Token(key), wanted) {
                debug!("connection {key}: reregister: {e}");
                self.close(key);
                return;
            }
            c.interest = wanted;
        }
        let deadline = c.session.poll_timeout();
        if deadline != c.deadline {
            if let Some(old) = c.deadline {
                self.timers.remove(&(old, key));
            }
            if let Some(new) = deadline {
                self.timers.insert((new, key));
            }
            c.deadline = deadline;
        }
    }

    // ---- data connections ----------------------------------------------------------------------------------

    fn listen_passive(&mut self, owner: usize, now: Now) {
        let Some(Conn::Control(c)) = self.conns.get(owner) else { return };
        // On a dual-stack listener an IPv4 client's local address is IPv4-mapped; listen on the plain IPv4 form.
        let ip = match c.stream.local_addr() {
            Ok(a) => canonical(a.ip()),
            Err(e) => return self.tell(owner, Outcome::PassiveFailed(e), now),
        };
        let mut listener = match self.bind_passive(ip) {
            Ok(l) => l,
            Err(e) => return self.tell(owner, Outcome::PassiveFailed(e), now),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => return self.tell(owner, Outcome::PassiveFailed(e), now),
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(&mut listener, Token(key), Interest::READABLE) {
            return self.tell(owner, Outcome::PassiveFailed(e), now);
        }
        entry.insert(Conn::Passive { owner, listener: Some(listener) });
        self.mark_open(key);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            c.passive = Some(key);
        }
        trace!("session {owner}: passive listener {addr} (key {key})");
        self.tell(owner, Outcome::PassiveReady(addr), now);
    }

    /// A passive listener on `ip`: any free port, or a random free one from `--pasv-ports` (random, so the next
    /// data port cannot be guessed and hijacked).
    fn bind_passive(&self, ip: IpAddr) -> io::Result<TcpListener> {
        let Some((lo, hi)) = self.pasv_ports else { return TcpListener::bind(SocketAddr::new(ip, 0)) };
        let span = u64::from(hi - lo) + 1;
        let start = std::collections::hash_map::RandomState::new().build_hasher().finish() % span;
        // Walk the whole range once from a random start: every free port is found, none is tried twice.
        let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free port in --pasv-ports");
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Accepts the client's data connection on a passive listener; only the control connection's peer may connect.
    fn accept_data(&mut self, key: usize, now: Now) {
        let Some(Conn::Passive { owner, listener: Some(listener) }) = self.conns.get(key) else { return };
        let owner = *owner;
        let Some(Conn::Control(c)) = self.conns.get(owner) else { return };
        let expected = canonical(c.session.peer().ip());
        let stream = loop {
            match listener.accept() {
                Ok((stream, from)) if canonical(from.ip()) == expected => break stream,
                Ok((_, from)) => warn!("session {owner}: refused data connection from {from} (expected {expected})"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("session {owner}: data accept: {e}");
                    return;
                }
            }
        };
        // One data connection per PASV: the listener goes now.
        self.close(key);
        let mut stream = stream;
        let entry = self.conns.vacant_entry();
        let dkey = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(dkey), Interest::READABLE | Interest::WRITABLE)
        {
            debug!("session {owner}: register data: {e}");
            return;
        }
        entry.insert(Conn::Data(DataConn {
            owner,
            stream: Some(stream),
            transfer: None,
            connecting: false,
            last_progress: now.mono,
            stall_deadline: None,
        }));
        self.mark_open(dkey);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            c.passive = None;
            c.data = Some(dkey);
        }
        self.tell(owner, Outcome::DataConnected, now);
    }

    /// Starts a non-blocking connect to a PORT/EPRT address, from the control connection's local address.
    fn connect_active(&mut self, owner: usize, addr: SocketAddr, now: Now) {
        let Some(Conn::Control(c)) = self.conns.get(owner) else { return };
        let local = c.stream.local_addr().map(|a| SocketAddr::new(canonical(a.ip()), 0));
        let stream = local.and_then(|local| {
            let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            socket.bind(&local.into())?;
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {} // EINPROGRESS
                Err(e) => return Err(e),
            }
            Ok(TcpStream::from_std(socket.into()))
        });
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return self.tell(owner, Outcome::ActiveFailed(e), now),
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
        {
            return self.tell(owner, Outcome::ActiveFailed(e), now);
        }
        entry.insert(Conn::Data(DataConn {
            owner,
            stream: Some(stream),
            transfer: None,
            connecting: true,
            last_progress: now.mono,
            stall_deadline: None,
        }));
        self.mark_open(key);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            c.data = Some(key);
        }
        trace!("session {owner}: connecting to {addr} (key {key})");
    }

    /// A readiness event on a connecting socket: connected, failed, or (spuriously) neither yet.
    fn check_connect(&mut self, key: usize, now: Now) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let Some(stream) = &d.stream else { return };
        let owner = d.owner;
        let result = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => {
                d.connecting = false;
                self.tell(owner, Outcome::DataConnected, now);
            }
            Err(e) => {
                self.close(key);
                if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
                    c.data = None;
                }
                self.tell(owner, Outcome::ActiveFailed(e), now);
            }
        }
    }

    fn start_transfer(&mut self, owner: usize, transfer: Box<Transfer>, now: Now) {
        let dkey = match self.conns.get(owner) {
            Some(Conn::Control(c)) => c.data,
            _ => None,
        };
        match dkey.and_then(|k| self.conns.get_mut(k)) {
            Some(Conn::Data(d)) if d.stream.is_some() => {
                d.transfer = Some(transfer);
                d.last_progress = now.mono;
                let deadline = now.mono + self.stall_timeout;
                d.stall_deadline = Some(deadline);
                if let Some(k) = dkey {
                    self.timers.insert((deadline, k));
                }
                // The socket may already be ready, and edge-triggered readiness will not say so again.
                if let Some(k) = dkey {
                    self.enqueue(k);
                }
            }
            _ => {
                let error = TransferError::Network(io::Error::new(io::ErrorKind::NotConnected, "no data connection"));
                self.tell(owner, Outcome::TransferFailed { bytes: 0, error }, now);
            }
        }
    }

    /// One turn of one transfer.
    fn step_transfer(&mut self, key: usize, now: Now) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let (Some(stream), Some(transfer)) = (d.stream.as_mut(), d.transfer.as_mut()) else { return };
        let before = transfer.bytes();
        let step = transfer.step(stream);
        if transfer.bytes() != before {
            d.last_progress = now.mono;
        }
        let outcome = match step {
            Step::Yield => {
                self.enqueue(key);
                return;
            }
            Step::Blocked => return,
            Step::Done => Outcome::TransferDone { bytes: transfer.bytes() },
            Step::Failed(error) => Outcome::TransferFailed { bytes: transfer.bytes(), error },
        };
        self.end_transfer(key, outcome, now);
    }

    /// Aborts a running transfer from the loop's side (it stalled).
    fn fail_transfer(&mut self, key: usize, e: io::Error, now: Now) {
        let Some(Conn::Data(d)) = self.conns.get(key) else { return };
        let bytes = d.transfer.as_ref().map_or(0, |t| t.bytes());
        self.end_transfer(key, Outcome::TransferFailed { bytes, error: TransferError::Network(e) }, now);
    }

    /// Closes a data connection whose transfer ended, then tells the session how it ended.
    fn end_transfer(&mut self, key: usize, outcome: Outcome, now: Now) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let owner = d.owner;
        // Close the socket before the session answers, so the client sees EOF no later than the 226.
        if let Some(mut s) = d.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        d.transfer = None;
        self.close(key);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            if c.data == Some(key) {
                c.data = None;
            }
        }
        self.tell(owner, outcome, now);
    }

    /// One turn of a HASH job.
    fn step_hash(&mut self, key: usize, now: Now) {
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
        self.tell(owner, outcome, now);
    }

    /// Drops a session's passive listener and data connection (and any transfer on it).
    fn close_data(&mut self, owner: usize) {
        let Some(Conn::Control(c)) = self.conns.get_mut(owner) else { return };
        let keys = [c.passive.take(), c.data.take(), c.hash.take()];
        for k in keys.into_iter().flatten() {
            self.close(k);
        }
    }

    fn tell(&mut self, owner: usize, outcome: Outcome, now: Now) {
        if self.is_closed.get(owner).copied().unwrap_or(true) {
            return;
        }
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            c.session.handle_outcome(now, outcome);
            self.apply(owner, now);
        }
    }

    // ---- scheduling ----------------------------------------------------------------------------------------

    fn enqueue(&mut self, key: usize) {
        if !self.queued[key] {
            self.queued[key] = true;
            self.runnable.push_back(key);
        }
    }

    /// Gives every connection that had work left one more turn, in order, each within its budget.
    fn run_runnable(&mut self, now: Now) {
        for _ in 0..self.runnable.len() {
            let Some(key) = self.runnable.pop_front() else { break };
            self.queued[key] = false;
            if self.is_closed[key] {
                continue;
            }
            match self.conns.get(key) {
                Some(Conn::Data(_)) => self.step_transfer(key, now),
                Some(Conn::Hash { .. }) => self.step_hash(key, now),
                Some(Conn::Control(_)) => self.pump_control(key, now),
                _ => {}
            }
        }
    }

    fn fire_timers(&mut self, now: Now) {
        while let Some(&(at, key)) = self.timers.first() {
            if at > now.mono {
                break;
            }
            self.timers.pop_first();
            if key == ACCEPT_TIMER {
                self.accept_paused = false;
                self.accept_all(now);
                continue;
            }
            if self.is_closed.get(key).copied().unwrap_or(true) {
                continue;
            }
            match self.conns.get_mut(key) {
                Some(Conn::Control(c)) => {
                    c.deadline = None;
                    c.session.handle_timeout(now);
                    self.apply(key, now);
                }
                Some(Conn::Data(d)) => {
                    d.stall_deadline = None;
                    if d.transfer.is_none() {
                        continue;
                    }
                    let due = d.last_progress + self.stall_timeout;
                    if due > now.mono {
                        // It moved since the timer was set: look again when it could next be stalled.
                        d.stall_deadline = Some(due);
                        self.timers.insert((due, key));
                    } else {
                        self.fail_transfer(key, io::Error::new(io::ErrorKind::TimedOut, "transfer stalled"), now);
                    }
                }
                _ => {}
            }
        }
    }

    // ---- closing -------------------------------------------------------------------------------------------

    fn mark_open(&mut self, key: usize) {
        if self.is_closed.len() <= key {
            self.is_closed.resize(key + 1, true);
            self.queued.resize(key + 1, false);
        }
        self.is_closed[key] = false;
        self.queued[key] = false;
    }

    /// Closes a connection now (deregistered, never touched again) and frees its slab key after the batch.
    fn close(&mut self, key: usize) {
        if self.is_closed.get(key).copied().unwrap_or(true) {
            return;
        }
        self.is_closed[key] = true;
        self.closed.push(key);
        let registry = self.poll.registry();
        let mut children = [None, None, None];
        match self.conns.get_mut(key) {
            Some(Conn::Control(c)) => {
                let _ = registry.deregister(&mut c.stream);
                c.session.handle_disconnect();
                if let Some(at) = c.deadline.take() {
                    self.timers.remove(&(at, key));
                }
                children = [c.passive.take(), c.data.take(), c.hash.take()];
                self.controls -= 1;
                let ip = canonical(c.session.peer().ip());
                if let Some(n) = self.per_ip.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_ip.remove(&ip);
                    }
                }
                debug!("closed session at key {key}; connections: {}", self.controls);
            }
            Some(Conn::Passive { listener, .. }) => {
                if let Some(mut l) = listener.take() {
                    let _ = registry.deregister(&mut l);
                }
            }
            Some(Conn::Data(d)) => {
                if let Some(mut s) = d.stream.take() {
                    let _ = registry.deregister(&mut s);
                }
                d.transfer = None;
                if let Some(at) = d.stall_deadline.take() {
                    self.timers.remove(&(at, key));
                }
            }
            Some(Conn::Hash { .. }) | None => {}
        }
        for child in children.into_iter().flatten() {
            self.close(child);
        }
    }

    fn remove_closed(&mut self) {
        for key in self.closed.drain(..) {
            if self.conns.try_remove(key).is_none() {
                error!("closed key {key} was not in the slab");
            }
        }
        self.stats.sessions.set(self.controls);
        self.stats.connections.set(self.conns.len());
        if self.conns.is_empty() && self.conns.capacity() > 1024 {
            // After a burst, give the memory back.
            self.conns.shrink_to_fit();
        }
    }

    /// Live connections of every kind (control, passive listener, data); for tests and diagnostics.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }
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

/// Sessions the descriptor limit allows: the limit less a reserve for data connections, listeners and files.
fn default_max_connections() -> usize {
    let fds = usize::try_from(raise_fd_limit()).unwrap_or(usize::MAX);
    let reserve = (fds / 20).max(64);
    fds.saturating_sub(reserve).max(1)
}
