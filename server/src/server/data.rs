//! Data connections: passive listeners, active connects, and running transfers on them in bounded turns.
//!
//! A session's data channel is one slab entry from the moment its passive listener is bound (or its active connect
//! starts) until its transfer has ended, and its [`Stage`] is the one record of where it is: listening, connecting,
//! idle, running, ending. The control connection knows it by its [`DataId`]; the session keeps only the protocol's
//! facts (which command waits for a connection, which transfer runs) and learns of the channel through outcomes.
//!
//! A transfer on a PROT P session runs over TLS: the data connection's [`Stream`] becomes the TLS server side when
//! the transfer starts, its handshake interleaves with everything else (it is just more reads and writes that may
//! block), and when the transfer ends, close_notify must be on its way before the socket closes and the session
//! answers 226, so a data connection may spend a few turns "ending" while its last ciphertext goes out.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, trace, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::proxied::Purpose;
use super::{Conn, Worker};
use crate::limits::{Rate, UserLimits};
use crate::session::{canonical, Now, Outcome};
use crate::stream::Stream;
use crate::transfer::{scratch_len, Step, Transfer, TransferError};

/// A data channel's name in the loop: the slab key of its one entry (and its mio token) for its whole life. The
/// session's control connection holds it; nothing else does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DataId(pub(super) usize);

/// Where a data channel is in its life. The stage is the channel's only state, and each stage holds exactly what
/// it needs: a transfer without a socket, or a listener with a transfer, cannot be written down.
pub(super) enum Stage {
    /// A passive listener waits for the client's connection; it accepts one and goes.
    Listening(TcpListener),
    /// An active-mode connect is in progress.
    Connecting(Stream),
    /// Connected, no transfer yet. Not read: its bytes belong to the transfer still to come.
    Idle(Stream),
    /// A transfer runs.
    Running(Stream, Box<Transfer>),
    /// The transfer is over and this is its outcome, held back until the TLS close_notify has gone out.
    Ending(Stream, Box<Transfer>, Outcome),
    /// Torn down: the entry is removed at the end of the batch.
    Closed,
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Listening(_) => "listening",
            Stage::Connecting(_) => "connecting",
            Stage::Idle(_) => "idle",
            Stage::Running(..) => "running",
            Stage::Ending(..) => "ending",
            Stage::Closed => "closed",
        }
    }

    /// What the stage's socket is registered for. A listener only accepts; a connection is registered once for
    /// both directions (readiness is edge-triggered, so that costs nothing while it is idle) and keeps its token
    /// from connect to close.
    fn interest(&self) -> Interest {
        match self {
            Stage::Listening(_) => Interest::READABLE,
            _ => Interest::READABLE | Interest::WRITABLE,
        }
    }

    /// The socket the stage polls on.
    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match self {
            Stage::Listening(l) => Some(l),
            Stage::Connecting(s) | Stage::Idle(s) | Stage::Running(s, _) | Stage::Ending(s, _, _) => {
                Some(s.socket_mut())
            }
            Stage::Closed => None,
        }
    }
}

pub(super) struct DataConn {
    pub(super) owner: usize,
    stage: Stage,
    /// When the running transfer last moved a byte.
    last_progress: Instant,
    /// The stall timer's entry, if one is set.
    stall_deadline: Option<Instant>,
    /// The user's rates (shared with its other sessions), if the transfer is of a file.
    limits: Option<Arc<UserLimits>>,
    /// Parked by a rate limit until this instant (a timer is set): not runnable before.
    rate_wait: Option<Instant>,
    /// When the transfer started (for `/sessions`' rate).
    pub(super) started: Instant,
}

impl DataConn {
    fn new(owner: usize, stage: Stage, now: Now) -> DataConn {
        DataConn {
            owner,
            stage,
            last_progress: now.mono,
            stall_deadline: None,
            limits: None,
            rate_wait: None,
            started: now.mono,
        }
    }

    /// The transfer running (or ending) on the channel.
    pub(super) fn transfer(&self) -> Option<&Transfer> {
        match &self.stage {
            Stage::Running(_, t) | Stage::Ending(_, t, _) => Some(t),
            _ => None,
        }
    }

    /// Closes the channel's socket (and a transfer's pipe) now; returns the timers it had set.
    pub(super) fn tear_down(&mut self, registry: &Registry) -> [Option<Instant>; 2] {
        let stage = std::mem::replace(&mut self.stage, Stage::Closed);
        discard(stage, registry, self.limits.as_deref());
        [self.stall_deadline.take(), self.rate_wait.take()]
    }
}

/// Deregisters what `stage` holds and drops it (a socket closes now, not at the end of the turn); an upload's
/// bytes stop counting as in flight. Returns the outcome an ending transfer held.
fn discard(mut stage: Stage, registry: &Registry, limits: Option<&UserLimits>) -> Option<Outcome> {
    if let Some(source) = stage.source() {
        let _ = registry.deregister(source);
    }
    match stage {
        Stage::Running(_, transfer) => {
            release(&transfer, registry, limits);
            None
        }
        Stage::Ending(_, transfer, outcome) => {
            release(&transfer, registry, limits);
            Some(outcome)
        }
        _ => None,
    }
}

/// A transfer is over (done, failed or cut short): its pipe leaves the poll, and an upload's bytes stop counting
/// as in flight (the session counts what was published as usage).
fn release(transfer: &Transfer, registry: &Registry, limits: Option<&UserLimits>) {
    if let Some((fd, _)) = transfer.pipe() {
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let _ = registry.deregister(&mut mio::unix::SourceFd(&raw));
    }
    if let Some(l) = limits {
        if transfer.is_upload() && l.has_byte_quota() {
            l.written(transfer.bytes());
        }
    }
}

impl Worker {
    /// The key of the data channel of the session at `owner`, if it has one.
    fn data_of(&self, owner: usize) -> Option<usize> {
        match self.conns.get(owner) {
            Some(Conn::Control(c)) => c.data.map(|id| id.0),
            _ => None,
        }
    }

    /// Makes `stage` the data channel of the session at `owner`, under a key of its own; a channel it had before
    /// is closed (a session has one at most).
    fn open_channel(&mut self, owner: usize, mut stage: Stage, now: Now) -> io::Result<DataId> {
        self.close_data(owner);
        let key = self.conns.next_key();
        let interest = stage.interest();
        if let Some(source) = stage.source() {
            self.poll.registry().register(source, Token(key), interest)?;
        }
        trace!("session {}: data channel {key} {}", self.session_id(owner), stage.name());
        self.conns.insert(Conn::Data(DataConn::new(owner, stage, now)));
        let id = DataId(key);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            c.data = Some(id);
        }
        Ok(id)
    }

    /// Closes the data channel at `key` and forgets it on its session's side.
    fn close_channel(&mut self, key: usize) {
        let Some(Conn::Data(d)) = self.conns.get(key) else { return };
        let owner = d.owner;
        self.close(key);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            if c.data == Some(DataId(key)) {
                c.data = None;
            }
        }
    }

    /// Readiness on a data channel: its stage says what it means.
    pub(super) fn data_ready(&mut self, key: usize, now: Now) {
        let Some(Conn::Data(d)) = self.conns.get(key) else { return };
        match d.stage {
            Stage::Listening(_) => self.accept_data(key, now),
            Stage::Connecting(_) => self.check_connect(key),
            Stage::Running(..) | Stage::Ending(..) => self.enqueue(key),
            Stage::Idle(_) | Stage::Closed => {}
        }
    }

    pub(super) fn listen_passive(&mut self, owner: usize, now: Now) {
        let Some(Conn::Control(c)) = self.conns.get_mut(owner) else { return };
        let ip = match c.local_ip {
            Some(ip) => ip,
            // On a dual-stack listener an IPv4 client's local address is IPv4-mapped; listen on the plain IPv4 form.
            None => match c.stream.socket().local_addr() {
                Ok(a) => *c.local_ip.insert(canonical(a.ip())),
                Err(e) => return self.tell(owner, Outcome::PassiveFailed(e)),
            },
        };
        let (listener, addr) = match self.bind_passive(ip) {
            Ok(bound) => bound,
            Err(e) => return self.tell(owner, Outcome::PassiveFailed(e)),
        };
        match self.open_channel(owner, Stage::Listening(listener), now) {
            Ok(_) => self.tell(owner, Outcome::PassiveReady(addr)),
            Err(e) => self.tell(owner, Outcome::PassiveFailed(e)),
        }
    }

    /// A passive listener on `ip`, on a random free port of `--pasv-ports` (by default the kernel's ephemeral
    /// range). Random, so the next data port cannot be guessed; chosen here rather than by binding port 0, because
    /// the kernel's own search for a free port checks candidate after candidate against every socket bound there,
    /// and with thousands of data connections in TIME_WAIT that search was the main cost of small transfers.
    /// Returns the listener and its address.
    fn bind_passive(&self, ip: IpAddr) -> io::Result<(TcpListener, SocketAddr)> {
        let (lo, hi) = self.pasv_ports;
        let span = u64::from(hi - lo) + 1;
        let start = std::collections::hash_map::RandomState::new().build_hasher().finish() % span;
        // Walk the whole range once from a random start: every free port is found, none is tried twice.
        let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free passive port");
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            let addr = SocketAddr::new(ip, port);
            match TcpListener::bind(addr) {
                // Port 0 (a range of `0-N`) is the kernel's choice, to be asked for.
                Ok(l) if port == 0 => return l.local_addr().map(|addr| (l, addr)),
                Ok(l) => return Ok((l, addr)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Accepts the client's data connection on a passive listener; only the control connection's peer may connect
    /// (behind a balancer: a connection from it whose PROXY header names that peer).
    fn accept_data(&mut self, key: usize, now: Now) {
        let Some(Conn::Data(DataConn { owner, stage: Stage::Listening(listener), .. })) = self.conns.get(key) else {
            return;
        };
        let owner = *owner;
        let Some(Conn::Control(c)) = self.conns.get(owner) else { return };
        let expected = canonical(c.session.peer().ip());
        let session = c.session.id();
        let mut direct = None;
        let mut proxied = Vec::new();
        loop {
            match listener.accept() {
                Ok((stream, from)) if crate::proxy::trusted(&self.proxy_from, from.ip()) => {
                    proxied.push((stream, from))
                }
                Ok((stream, from)) if canonical(from.ip()) == expected => {
                    direct = Some(stream);
                    break;
                }
                Ok((_, from)) => warn!("session {owner}: refused data connection from {from} (expected {expected})"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("session {owner}: data accept: {e}");
                    break;
                }
            }
        }
        for (stream, from) in proxied {
            let purpose = Purpose::Data { owner, session, channel: DataId(key) };
            self.await_proxy_header(stream, from, purpose, now);
        }
        if let Some(stream) = direct {
            self.adopt_data(owner, session, DataId(key), stream);
        }
    }

    /// Makes `stream` the data connection of the channel `id`, if that is still the listening channel of session
    /// number `session` at `owner`. One data connection per PASV: the listener goes now, and the connection keeps
    /// the channel's key.
    pub(super) fn adopt_data(&mut self, owner: usize, session: u64, id: DataId, stream: TcpStream) {
        if self.session_id(owner) != session || self.data_of(owner) != Some(id.0) {
            return;
        }
        let Some(Conn::Data(d)) = self.conns.get_mut(id.0) else { return };
        if !matches!(d.stage, Stage::Listening(_)) {
            return;
        }
        let registry = self.poll.registry();
        discard(std::mem::replace(&mut d.stage, Stage::Closed), registry, None);
        let mut stage = Stage::Idle(Stream::plain(stream));
        let interest = stage.interest();
        let registered = stage.source().map_or(Ok(()), |s| registry.register(s, Token(id.0), interest));
        if let Err(e) = registered {
            debug!("session {owner}: register data: {e}");
            return self.close_channel(id.0);
        }
        d.stage = stage;
        self.tell(owner, Outcome::DataConnected);
    }

    /// Starts a non-blocking connect to a PORT/EPRT address, from the control connection's local address.
    pub(super) fn connect_active(&mut self, owner: usize, addr: SocketAddr, now: Now) {
        let Some(Conn::Control(c)) = self.conns.get(owner) else { return };
        let local = c.stream.socket().local_addr().map(|a| SocketAddr::new(canonical(a.ip()), 0));
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
        let opened = stream.and_then(|s| self.open_channel(owner, Stage::Connecting(Stream::plain(s)), now));
        if let Err(e) = opened {
            self.tell(owner, Outcome::ActiveFailed(e));
        }
    }

    /// A readiness event on a connecting socket: connected, failed, or (spuriously) neither yet.
    fn check_connect(&mut self, key: usize) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let Stage::Connecting(stream) = &d.stage else { return };
        let owner = d.owner;
        let result = match stream.socket().take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.socket().peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => {
                if let Stage::Connecting(stream) = std::mem::replace(&mut d.stage, Stage::Closed) {
                    d.stage = Stage::Idle(stream);
                }
                self.tell(owner, Outcome::DataConnected);
            }
            Err(e) => {
                self.close_channel(key);
                self.tell(owner, Outcome::ActiveFailed(e));
            }
        }
    }

    pub(super) fn start_transfer(&mut self, owner: usize, transfer: Box<Transfer>, tls: bool, now: Now) {
        let limits = match self.conns.get(owner) {
            Some(Conn::Control(c)) if !transfer.is_listing() => c.session.limits().cloned(),
            _ => None,
        };
        let idle = |d: &DataConn| matches!(d.stage, Stage::Idle(_));
        let channel = self.data_of(owner).filter(|&k| matches!(self.conns.get(k), Some(Conn::Data(d)) if idle(d)));
        let Some(k) = channel else {
            let error = TransferError::Network(io::Error::new(io::ErrorKind::NotConnected, "no data connection"));
            return self.tell(owner, Outcome::TransferFailed { bytes: 0, error });
        };
        let Some(Conn::Data(d)) = self.conns.get_mut(k) else { return };
        let Stage::Idle(mut stream) = std::mem::replace(&mut d.stage, Stage::Closed) else { return };
        d.limits = limits;
        d.started = now.mono;
        d.last_progress = now.mono;
        // PROT P: the data connection is a TLS server from its first byte; the client starts the handshake.
        let started = match (&self.tls, tls) {
            (_, false) => Ok(()),
            (Some(config), true) => stream.start_tls(config.data.clone()),
            (None, true) => Err(io::Error::other("TLS asked for without a certificate")),
        };
        // A transfer fed or drained by a storage thread waits on its pipe as on its socket: both wake it.
        let piped = match transfer.pipe() {
            Some((fd, upload)) => {
                let interest = if upload { Interest::WRITABLE } else { Interest::READABLE };
                let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
                self.poll.registry().register(&mut mio::unix::SourceFd(&raw), Token(k), interest)
            }
            None => Ok(()),
        };
        d.stage = Stage::Running(stream, transfer);
        let deadline = now.mono + self.stall_timeout;
        d.stall_deadline = Some(deadline);
        self.timers.insert((deadline, k));
        if let Err(e) = started.and(piped) {
            return self.fail_transfer(k, TransferError::Network(e));
        }
        // The first share moves at once, as a reply is written at once: the socket is usually ready (the client is
        // waiting for the data), and a small file is then sent, closed and answered in this same turn, so the
        // client finds 150, the data and 226 waiting instead of being woken for each. The rest waits its turn.
        self.step_transfer(k, now);
    }

    /// One turn of one transfer (or of its ending, while close_notify goes out).
    pub(super) fn step_transfer(&mut self, key: usize, now: Now) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let DataConn { owner, stage, limits, last_progress, rate_wait, .. } = d;
        let (stream, transfer) = match stage {
            Stage::Running(stream, transfer) => (stream, transfer),
            Stage::Ending(..) => return self.finish_ending(key),
            _ => return,
        };
        let before = transfer.bytes();
        let share = self.scheduling.share(self.runnable_transfers);
        // Rates: the user's (shared by all its sessions on every worker) and the server's. Granted nothing, the
        // transfer is parked on a timer until it would be granted a chunk: it costs the loop nothing meanwhile.
        let rates: [Option<&Rate>; 2] = match (&*limits, transfer.is_upload()) {
            (Some(u), true) => [Some(&u.upload), Some(&self.shared.limits.upload)],
            (Some(u), false) => [Some(&u.download), Some(&self.shared.limits.download)],
            (None, _) => [None, None],
        };
        let share = grant(&rates, share, now.mono);
        if share == 0 {
            let wait = rates.iter().flatten().map(|r| r.wait(self.scheduling.chunk, now.mono)).max();
            let at = now.mono + wait.unwrap_or(Duration::from_millis(1));
            if let Some(old) = rate_wait.replace(at) {
                self.timers.remove(&(old, key));
            }
            self.timers.insert((at, key));
            return;
        }
        // sendfile works on plain sockets only; over TLS the same transfer takes the buffered path, whose single
        // write of the whole share becomes full-sized TLS records.
        // Likewise splice(2) carries a binary upload from a plain socket into a local file.
        let step = if transfer.can_zero_copy() && !stream.is_tls() {
            transfer.step_zero_copy(stream.socket(), share)
        } else {
            let max_share = self.scheduling.max_share();
            if self.scratch.is_empty() {
                self.scratch = vec![0; scratch_len(max_share)];
            }
            let splice = transfer.can_splice() && !stream.is_tls();
            match splice.then(|| self.splice_pipe.get(max_share)).flatten() {
                Some(pipe) => transfer.step_splice(stream.socket(), share, pipe, &mut self.scratch),
                None => transfer.step(stream, share, &mut self.scratch),
            }
        };
        let bytes = transfer.bytes();
        if bytes != before {
            *last_progress = now.mono;
        }
        // What was granted and not moved goes back.
        let unused = share.saturating_sub(usize::try_from(bytes - before).unwrap_or(usize::MAX));
        for rate in rates.into_iter().flatten() {
            rate.refund(unused);
        }
        // An upload that would take its user over quota_bytes stops here, and an upload in place is undone.
        if transfer.is_upload() && limits.as_ref().is_some_and(|l| l.has_byte_quota() && !l.write(bytes - before)) {
            if let Err(e) = transfer.roll_back() {
                warn!("data channel {key} of connection {owner}: undoing an upload over quota: {e}");
            }
            let e = io::Error::other(crate::limits::OverQuota);
            return self.fail_transfer(key, TransferError::Local(e));
        }
        if let Some(summary) = stream.take_handshake_summary() {
            let owner = *owner;
            debug!("session {}: data connection TLS {summary}", self.session_id(owner));
        }
        let outcome = match step {
            Step::Yield => {
                self.enqueue(key);
                return;
            }
            Step::Blocked => return,
            Step::Done => Outcome::TransferDone { bytes },
            Step::Failed(error) => Outcome::TransferFailed { bytes, error },
        };
        self.end_transfer(key, outcome);
    }

    /// A timer of a data channel: a rate-limited transfer may move again, or a transfer may have stalled.
    pub(super) fn data_timer(&mut self, key: usize, now: Now) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        if d.rate_wait.is_some_and(|at| at <= now.mono) {
            // A rate-limited transfer may move again (its stall deadline, if also due, is looked at just below all
            // the same).
            d.rate_wait = None;
            self.enqueue(key);
        }
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        if d.stall_deadline.is_none_or(|at| at > now.mono) {
            return;
        }
        d.stall_deadline = None;
        if d.transfer().is_none() {
            return;
        }
        let due = d.last_progress + self.stall_timeout;
        if due > now.mono {
            // It moved since the timer was set: look again when it could next be stalled.
            d.stall_deadline = Some(due);
            self.timers.insert((due, key));
        } else {
            let e = io::Error::new(io::ErrorKind::TimedOut, "transfer stalled");
            self.fail_transfer(key, TransferError::Network(e));
        }
    }

    /// Ends a running transfer from the loop's side: for a reason of the server's (`TransferError::Local`: 451,
    /// 452 or 552 to the client), or because it stalled or TLS could not start (`Network`). The connection is cut
    /// without close_notify, so the client cannot take what it got for a complete file.
    fn fail_transfer(&mut self, key: usize, error: TransferError) {
        let Some(Conn::Data(d)) = self.conns.get(key) else { return };
        let bytes = d.transfer().map_or(0, |t| t.bytes());
        self.close_ended(key, Outcome::TransferFailed { bytes, error });
    }

    /// A transfer ended. A TLS transfer that succeeded first sends close_notify: the client's proof that it has
    /// every byte. A failed one is cut without it, so no client mistakes a partial file for a whole one.
    fn end_transfer(&mut self, key: usize, outcome: Outcome) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let tls = matches!(&d.stage, Stage::Running(s, _) if s.is_tls());
        if tls && matches!(outcome, Outcome::TransferDone { .. }) {
            if let Stage::Running(stream, transfer) = std::mem::replace(&mut d.stage, Stage::Closed) {
                d.stage = Stage::Ending(stream, transfer, outcome);
            }
            return self.finish_ending(key);
        }
        self.close_ended(key, outcome)
    }

    /// Finishes the handshake (an empty download never wrote) and sends close_notify; once it is out (or failed),
    /// closes and tells the session.
    fn finish_ending(&mut self, key: usize) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let Stage::Ending(stream, transfer, _) = &mut d.stage else { return };
        let upload = transfer.is_upload();
        let sent = stream.complete_handshake().and_then(|done| Ok(done && stream.close_notify()?));
        if matches!(sent, Ok(false)) {
            // Back on the next readiness event (data_ready queues an ending channel).
            return;
        }
        let stage = std::mem::replace(&mut d.stage, Stage::Closed);
        let Some(outcome) = discard(stage, self.poll.registry(), d.limits.as_deref()) else { return };
        let outcome = match (sent, outcome) {
            // The end of a download may not have reached the client; an upload is complete all the same.
            (Err(e), Outcome::TransferDone { bytes }) if !upload => {
                Outcome::TransferFailed { bytes, error: TransferError::Network(e) }
            }
            (_, outcome) => outcome,
        };
        self.close_ended(key, outcome)
    }

    /// Closes a data channel whose transfer ended (the client sees EOF no later than the 226), then tells the
    /// session how it ended.
    fn close_ended(&mut self, key: usize, outcome: Outcome) {
        let Some(Conn::Data(d)) = self.conns.get(key) else { return };
        let owner = d.owner;
        self.close_channel(key);
        self.tell(owner, outcome);
    }

    /// Drops a session's data channel (listener, connection, and any transfer on it). A HASH job is not the data
    /// channel's: it ends on its own or by [`crate::session::Action::StopHash`].
    pub(super) fn close_data(&mut self, owner: usize) {
        let Some(Conn::Control(c)) = self.conns.get_mut(owner) else { return };
        if let Some(id) = c.data.take() {
            self.close(id.0);
        }
    }
}

/// Bytes of `share` every rate lets through now (the least of them); what one rate granted beyond that goes
/// back to it.
fn grant(rates: &[Option<&Rate>; 2], share: usize, now: Instant) -> usize {
    let mut granted = share;
    let mut taken = [0usize; 2];
    for (i, rate) in rates.iter().enumerate() {
        if let Some(r) = rate {
            granted = r.grant(granted, now);
            taken[i] = granted;
        }
    }
    for (i, rate) in rates.iter().enumerate() {
        if let Some(r) = rate {
            r.refund(taken[i] - granted);
        }
    }
    granted
}
