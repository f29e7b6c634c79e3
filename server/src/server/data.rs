//! Data connections: passive listeners, active connects, and running transfers on them in bounded turns.
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
use mio::{Interest, Token};

use super::proxied::Purpose;
use super::{Conn, Worker};
use crate::limits::{Rate, UserLimits};
use crate::session::{canonical, Now, Outcome};
use crate::stream::Stream;
use crate::transfer::{scratch_len, Step, Transfer, TransferError};

pub(super) struct DataConn {
    pub(super) owner: usize,
    /// `None` once the transfer ended: the socket is closed at once so the client sees EOF before the 226.
    pub(super) stream: Option<Stream>,
    pub(super) transfer: Option<Box<Transfer>>,
    /// An active-mode connect still in progress.
    pub(super) connecting: bool,
    /// When the running transfer last moved a byte.
    pub(super) last_progress: Instant,
    /// The stall timer's entry, if one is set.
    pub(super) stall_deadline: Option<Instant>,
    /// The transfer is over and this is its outcome, held back until the TLS close_notify has gone out.
    pub(super) ending: Option<Outcome>,
    /// The user's rates (shared with its other sessions), if the transfer is of a file.
    pub(super) limits: Option<Arc<UserLimits>>,
    /// Parked by a rate limit until this instant (a timer is set): not runnable before.
    pub(super) rate_wait: Option<Instant>,
    /// When the transfer started (for `/sessions`' rate).
    pub(super) started: Instant,
}

impl DataConn {
    fn new(owner: usize, stream: TcpStream, connecting: bool, now: Now) -> DataConn {
        DataConn {
            owner,
            stream: Some(Stream::plain(stream)),
            transfer: None,
            connecting,
            last_progress: now.mono,
            stall_deadline: None,
            ending: None,
            limits: None,
            rate_wait: None,
            started: now.mono,
        }
    }
}

impl Worker {
    pub(super) fn listen_passive(&mut self, owner: usize) {
        let Some(Conn::Control(c)) = self.conns.get(owner) else { return };
        // On a dual-stack listener an IPv4 client's local address is IPv4-mapped; listen on the plain IPv4 form.
        let ip = match c.stream.socket().local_addr() {
            Ok(a) => canonical(a.ip()),
            Err(e) => return self.tell(owner, Outcome::PassiveFailed(e)),
        };
        let mut listener = match self.bind_passive(ip) {
            Ok(l) => l,
            Err(e) => return self.tell(owner, Outcome::PassiveFailed(e)),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => return self.tell(owner, Outcome::PassiveFailed(e)),
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(&mut listener, Token(key), Interest::READABLE) {
            return self.tell(owner, Outcome::PassiveFailed(e));
        }
        entry.insert(Conn::Passive { owner, listener: Some(listener) });
        self.mark_open(key);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            c.passive = Some(key);
        }
        trace!("session {owner}: passive listener {addr} (key {key})");
        self.tell(owner, Outcome::PassiveReady(addr));
    }

    /// A passive listener on `ip`, on a random free port of `--pasv-ports` (by default the kernel's ephemeral
    /// range). Random, so the next data port cannot be guessed; chosen here rather than by binding port 0, because
    /// the kernel's own search for a free port checks candidate after candidate against every socket bound there,
    /// and with thousands of data connections in TIME_WAIT that search was the main cost of small transfers.
    fn bind_passive(&self, ip: IpAddr) -> io::Result<TcpListener> {
        let (lo, hi) = self.pasv_ports;
        let span = u64::from(hi - lo) + 1;
        let start = std::collections::hash_map::RandomState::new().build_hasher().finish() % span;
        // Walk the whole range once from a random start: every free port is found, none is tried twice.
        let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free passive port");
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Accepts the client's data connection on a passive listener; only the control connection's peer may connect
    /// (behind a balancer: a connection from it whose PROXY header names that peer).
    pub(super) fn accept_data(&mut self, key: usize, now: Now) {
        let Some(Conn::Passive { owner, listener: Some(listener) }) = self.conns.get(key) else { return };
        let owner = *owner;
        let Some(Conn::Control(c)) = self.conns.get(owner) else { return };
        let expected = canonical(c.session.peer().ip());
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
            self.await_proxy_header(stream, from, Purpose::Data { owner, listener: key }, now);
        }
        if let Some(stream) = direct {
            self.adopt_data(owner, key, stream, now);
        }
    }

    /// Makes `stream` the session's data connection, if the passive listener at `listener` is still the one it
    /// waits on. One data connection per PASV: the listener goes now.
    pub(super) fn adopt_data(&mut self, owner: usize, listener: usize, mut stream: TcpStream, now: Now) {
        match self.conns.get(owner) {
            Some(Conn::Control(c)) if c.passive == Some(listener) && !self.is_closed[listener] => {}
            _ => return,
        }
        self.close(listener);
        let entry = self.conns.vacant_entry();
        let dkey = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(dkey), Interest::READABLE | Interest::WRITABLE)
        {
            debug!("session {owner}: register data: {e}");
            return;
        }
        entry.insert(Conn::Data(DataConn::new(owner, stream, false, now)));
        self.mark_open(dkey);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            c.passive = None;
            c.data = Some(dkey);
        }
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
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return self.tell(owner, Outcome::ActiveFailed(e)),
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
        {
            return self.tell(owner, Outcome::ActiveFailed(e));
        }
        entry.insert(Conn::Data(DataConn::new(owner, stream, true, now)));
        self.mark_open(key);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            c.data = Some(key);
        }
        trace!("session {owner}: connecting to {addr} (key {key})");
    }

    /// A readiness event on a connecting socket: connected, failed, or (spuriously) neither yet.
    pub(super) fn check_connect(&mut self, key: usize) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let Some(stream) = &d.stream else { return };
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
                d.connecting = false;
                self.tell(owner, Outcome::DataConnected);
            }
            Err(e) => {
                self.close(key);
                if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
                    c.data = None;
                }
                self.tell(owner, Outcome::ActiveFailed(e));
            }
        }
    }

    pub(super) fn start_transfer(&mut self, owner: usize, transfer: Box<Transfer>, tls: bool, now: Now) {
        let dkey = match self.conns.get(owner) {
            Some(Conn::Control(c)) => c.data,
            _ => None,
        };
        let connected = |k: &usize| matches!(self.conns.get(*k), Some(Conn::Data(d)) if d.stream.is_some());
        let Some(k) = dkey.filter(connected) else {
            let error = TransferError::Network(io::Error::new(io::ErrorKind::NotConnected, "no data connection"));
            return self.tell(owner, Outcome::TransferFailed { bytes: 0, error });
        };
        let limits = match self.conns.get(owner) {
            Some(Conn::Control(c)) if !transfer.is_listing() => c.session.limits().cloned(),
            _ => None,
        };
        let Some(Conn::Data(d)) = self.conns.get_mut(k) else { return };
        d.limits = limits;
        d.started = now.mono;
        let Some(stream) = d.stream.as_mut() else { return };
        // PROT P: the data connection is a TLS server from its first byte; the client starts the handshake.
        let started = match (&self.tls, tls) {
            (_, false) => Ok(()),
            (Some(config), true) => stream.start_tls(config.data.clone()),
            (None, true) => Err(io::Error::other("TLS asked for without a certificate")),
        };
        // A transfer fed or drained by a storage thread waits on its pipe as on its socket: both wake it.
        if let Some((fd, upload)) = transfer.pipe() {
            let interest = if upload { Interest::WRITABLE } else { Interest::READABLE };
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            if let Err(e) = self.poll.registry().register(&mut mio::unix::SourceFd(&raw), Token(k), interest) {
                d.transfer = Some(transfer);
                return self.fail_transfer(k, e);
            }
        }
        d.transfer = Some(transfer);
        d.last_progress = now.mono;
        let deadline = now.mono + self.stall_timeout;
        d.stall_deadline = Some(deadline);
        self.timers.insert((deadline, k));
        if let Err(e) = started {
            return self.fail_transfer(k, e);
        }
        // The socket may already be ready, and edge-triggered readiness will not say so again.
        self.enqueue(k);
    }

    /// One turn of one transfer (or of its ending, while close_notify goes out).
    pub(super) fn step_transfer(&mut self, key: usize, now: Now) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        if d.ending.is_some() {
            return self.finish_ending(key);
        }
        let (Some(stream), Some(transfer)) = (d.stream.as_mut(), d.transfer.as_mut()) else { return };
        let before = transfer.bytes();
        let share = self.scheduling.share(self.runnable_transfers);
        // Rates: the user's (shared by all its sessions on every worker) and the server's. Granted nothing, the
        // transfer is parked on a timer until it would be granted a chunk: it costs the loop nothing meanwhile.
        let rates: [Option<&Rate>; 2] = match (&d.limits, transfer.is_upload()) {
            (Some(u), true) => [Some(&u.upload), Some(&self.shared.limits.upload)],
            (Some(u), false) => [Some(&u.download), Some(&self.shared.limits.download)],
            (None, _) => [None, None],
        };
        let share = grant(&rates, share, now.mono);
        if share == 0 {
            let wait = rates.iter().flatten().map(|r| r.wait(self.scheduling.chunk, now.mono)).max();
            let at = now.mono + wait.unwrap_or(Duration::from_millis(1));
            if let Some(old) = d.rate_wait.replace(at) {
                self.timers.remove(&(old, key));
            }
            self.timers.insert((at, key));
            return;
        }
        // sendfile works on plain sockets only; over TLS the same transfer takes the buffered path, whose single
        // write of the whole share becomes full-sized TLS records.
        let step = if transfer.can_zero_copy() && !stream.is_tls() {
            transfer.step_zero_copy(stream.socket(), share)
        } else {
            if self.scratch.is_empty() {
                self.scratch = vec![0; scratch_len(self.scheduling.max_share())];
            }
            transfer.step(stream, share, &mut self.scratch)
        };
        let bytes = transfer.bytes();
        if bytes != before {
            d.last_progress = now.mono;
        }
        // What was granted and not moved goes back.
        let unused = share.saturating_sub(usize::try_from(bytes - before).unwrap_or(usize::MAX));
        for rate in rates.into_iter().flatten() {
            rate.refund(unused);
        }
        // An upload that would take its user over quota_bytes stops here, and an upload in place is undone.
        if transfer.is_upload() && d.limits.as_ref().is_some_and(|l| l.has_byte_quota() && !l.write(bytes - before)) {
            if let Err(e) = transfer.roll_back() {
                warn!("session {}: undoing an upload over quota: {e}", d.owner);
            }
            let e = io::Error::other(crate::limits::OverQuota);
            return self.fail_transfer_local(key, e);
        }
        if let Some(summary) = stream.take_handshake_summary() {
            let owner = d.owner;
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

    /// Ends a running transfer from the loop's side for a reason of the server's (451/452/552 to the client).
    fn fail_transfer_local(&mut self, key: usize, e: io::Error) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        d.ending = None;
        let bytes = d.transfer.as_ref().map_or(0, |t| t.bytes());
        self.close_ended(key, Outcome::TransferFailed { bytes, error: TransferError::Local(e) });
    }

    /// Aborts a running transfer from the loop's side (it stalled, or TLS could not start): the connection is cut,
    /// without close_notify, so the client cannot take what it got for a complete file.
    pub(super) fn fail_transfer(&mut self, key: usize, e: io::Error) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        d.ending = None;
        let bytes = d.transfer.as_ref().map_or(0, |t| t.bytes());
        self.close_ended(key, Outcome::TransferFailed { bytes, error: TransferError::Network(e) });
    }

    /// A transfer ended. A TLS transfer that succeeded first sends close_notify: the client's proof that it has
    /// every byte. A failed one is cut without it, so no client mistakes a partial file for a whole one.
    fn end_transfer(&mut self, key: usize, outcome: Outcome) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let tls = d.stream.as_ref().is_some_and(Stream::is_tls);
        if tls && matches!(outcome, Outcome::TransferDone { .. }) {
            d.ending = Some(outcome);
            return self.finish_ending(key);
        }
        self.close_ended(key, outcome)
    }

    /// Finishes the handshake (an empty download never wrote) and sends close_notify; once it is out (or failed),
    /// closes and tells the session.
    fn finish_ending(&mut self, key: usize) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let Some(outcome) = d.ending.take() else { return };
        let upload = d.transfer.as_ref().is_some_and(|t| t.is_upload());
        let sent = d.stream.as_mut().map_or(Ok(true), |s| Ok(s.complete_handshake()? && s.close_notify()?));
        let outcome = match sent {
            Ok(true) => outcome,
            Ok(false) => {
                // Back on the next readiness event (ready() queues a data connection with a transfer).
                d.ending = Some(outcome);
                return;
            }
            // The end of a download may not have reached the client; an upload is complete all the same.
            Err(e) => match outcome {
                Outcome::TransferDone { bytes } if !upload => {
                    Outcome::TransferFailed { bytes, error: TransferError::Network(e) }
                }
                other => other,
            },
        };
        self.close_ended(key, outcome)
    }

    /// Closes a data connection whose transfer ended, then tells the session how it ended.
    fn close_ended(&mut self, key: usize, outcome: Outcome) {
        let Some(Conn::Data(d)) = self.conns.get_mut(key) else { return };
        let owner = d.owner;
        // An upload's bytes stop counting as in flight (the session counts what was published as usage).
        if let (Some(t), Some(l)) = (&d.transfer, &d.limits) {
            if t.is_upload() && l.has_byte_quota() {
                l.written(t.bytes());
            }
        }
        // Close the socket before the session answers, so the client sees EOF no later than the 226.
        if let Some(mut s) = d.stream.take() {
            let _ = self.poll.registry().deregister(s.socket_mut());
        }
        d.transfer = None;
        self.close(key);
        if let Some(Conn::Control(c)) = self.conns.get_mut(owner) {
            if c.data == Some(key) {
                c.data = None;
            }
        }
        self.tell(owner, outcome);
    }

    /// Drops a session's passive listener and data connection (and any transfer on it). A HASH job is not the
    /// data channel's: it ends on its own or by [`crate::session::Action::StopHash`].
    pub(super) fn close_data(&mut self, owner: usize) {
        let Some(Conn::Control(c)) = self.conns.get_mut(owner) else { return };
        let keys = [c.passive.take(), c.data.take()];
        for k in keys.into_iter().flatten() {
            self.close(k);
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
