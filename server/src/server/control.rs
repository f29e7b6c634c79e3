//! Control connections: flushing replies, reading and feeding command lines, carrying out the session's actions,
//! and keeping interest and timers in step with the session's state (DESIGN.md §3, loop rules 2, 3 and 8).
//!
//! With TLS, the connection's [`Stream`] does the encryption; this module only decides when to switch (after the
//! 234 to AUTH TLS has gone out in plaintext) and makes sure waiting ciphertext, like waiting replies, keeps
//! `WRITABLE` asked for.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftp_common::LineBuffer;
use log::{debug, error, trace, warn};
use mio::{Interest, Token};

use super::{Conn, Worker, CONTROL_LINES_PER_TURN, CONTROL_READS_PER_TURN, MAX_VERIFY_PER_IP, REPLY_HIGH_WATER};
use crate::session::{canonical, Action, Now, Outcome, Session};
use crate::stream::Stream;
use crate::verifier::{Job, SubmitError};

pub(super) struct Control {
    pub(super) stream: Stream,
    pub(super) session: Session,
    pub(super) lines: LineBuffer,
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    pub(super) interest: Interest,
    /// The session's data channel, from its listener or connect to the end of its transfer.
    pub(super) data: Option<super::data::DataId>,
    /// The control socket's local address, as passive listeners bind to it: learned at the first PASV.
    pub(super) local_ip: Option<std::net::IpAddr>,
    /// A HASH being computed for this session.
    pub(super) hash: Option<usize>,
    pub(super) deadline: Option<Instant>,
    pub(super) closing: bool,
    /// Reading stopped for back-pressure (replies piling up, or the session's command queue full); resumes
    /// through the runnable queue once that clears, since no new readiness event may come.
    pub(super) paused: bool,
    /// AUTH TLS was accepted: once the queued replies (the 234) are out in plaintext, the stream switches to TLS
    /// with this configuration. Nothing is read meanwhile: the next bytes are the client's handshake.
    pub(super) start_tls: Option<Arc<rustls::ServerConfig>>,
    /// Set when the session goes away, so the verifier skips a password check nobody waits for any more.
    pub(super) verify_cancel: Option<Arc<AtomicBool>>,
    /// Outcomes for this session in the worker's queue: `take_outcome` looks through the queue only when some are.
    pub(super) queued_outcomes: usize,
}

impl Control {
    /// A fresh control connection for `session`.
    pub(super) fn new(stream: Stream, session: Session) -> Control {
        Control {
            stream,
            session,
            lines: LineBuffer::default(),
            out: Vec::new(),
            out_pos: 0,
            local_ip: None,
            interest: Interest::READABLE,
            data: None,
            hash: None,
            deadline: None,
            closing: false,
            paused: false,
            start_tls: None,
            verify_cancel: None,
            queued_outcomes: 0,
        }
    }

    /// Tells the verifier thread that a queued check is no longer wanted.
    pub(super) fn cancel_verify(&mut self) {
        if let Some(flag) = self.verify_cancel.take() {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

impl Control {
    fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Writes queued reply bytes until done or `WouldBlock`, switches to TLS if that was waiting for them, and
    /// pushes out ciphertext an earlier write left behind.
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
        if let Some(config) = self.start_tls.take() {
            self.stream.start_tls(config)?;
        }
        self.stream.send_pending().map(|_| ())
    }

    /// Whether reading must stop for now: closing, back-pressure, or a TLS switch waiting for its 234 to go out.
    fn holds_input(&self) -> bool {
        self.closing || !self.session.wants_input() || self.pending_out() > REPLY_HIGH_WATER || self.start_tls.is_some()
    }

    /// Readiness follows state: always readable, writable only while replies or ciphertext wait to be sent.
    fn wanted_interest(&self) -> Interest {
        if self.pending_out() > 0 || self.stream.wants_write() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }
}

impl Worker {
    /// Flushes replies, then reads and handles commands until the socket is drained, the session wants no more
    /// input, replies pile up, or this connection's per-turn budget is spent.
    pub(super) fn pump_control(&mut self, key: usize, now: Now) {
        let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
        if let Err(e) = c.flush() {
            debug!("connection {key}: write: {e}");
            self.close(key);
            return;
        }
        let mut reads = 0;
        let mut handled = 0;
        loop {
            // Handle complete lines first, each followed by whatever it made the session ask for.
            loop {
                let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
                if c.holds_input() {
                    break;
                }
                if handled == CONTROL_LINES_PER_TURN {
                    // A pipelining client gets its next lines handled next turn, after everyone else's.
                    self.enqueue(key);
                    self.update_control(key, now);
                    return;
                }
                if c.lines.ready_lines() == 0 {
                    break;
                }
                if !self.outcomes.is_empty() {
                    // What the loop's I/O achieved so far reaches every session before its next line does (a data
                    // connection accepted earlier in this turn must not land after the next PASV).
                    self.deliver(now);
                    if !self.conns.is_open(key) {
                        return;
                    }
                    continue;
                }
                let Some(line) = c.lines.pop() else { break };
                handled += 1;
                c.session.handle_line(now, line);
                self.apply(key, now);
                if !self.conns.is_open(key) {
                    return;
                }
            }
            let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
            if c.holds_input() {
                // Bytes may be left in the socket or in TLS buffers, and no readiness event will say so again:
                // update_control puts the connection back in the runnable queue once reading may resume.
                c.paused = !c.closing;
                break;
            }
            if c.lines.ready_lines() > 0 {
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
        self.update_control(key, now);
    }

    /// Carries out everything the session asked for, queues its replies and resyncs its timer.
    pub(super) fn apply(&mut self, key: usize, now: Now) {
        loop {
            let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
            while let Some(reply) = c.session.poll_reply() {
                trace!("session {} -> {reply}", c.session.id());
                reply.encode(&mut c.out);
            }
            let Some(action) = c.session.poll_action() else {
                // What this session's actions achieved at once (a passive listener, a transfer that ended in its
                // first step) reaches it now, like the local disk's answers below: its replies then leave in one
                // write with those before (150 and 226 together), instead of one write per outcome.
                let id = c.session.id();
                let Some(outcome) = self.take_outcome(key, id) else { break };
                if let Some(Conn::Control(c)) = self.conns.get_mut(key) {
                    c.session.handle_outcome(now, outcome);
                }
                continue;
            };
            trace!("session {}: action {action:?}", c.session.id());
            match action {
                Action::ListenPassive => self.listen_passive(key, now),
                Action::ConnectActive(addr) => self.connect_active(key, addr, now),
                Action::VerifyPassword { hash, password } => self.verify_password(key, hash, password),
                Action::StartTransfer { transfer, tls } => self.start_transfer(key, transfer, tls, now),
                Action::StartTls => match &self.tls {
                    Some(config) => {
                        c.start_tls = Some(config.control.clone());
                        // Whatever followed the AUTH line came in plaintext; executing it would let an attacker
                        // inject commands into the protected session.
                        c.lines = LineBuffer::default();
                    }
                    None => {
                        error!("session {}: AUTH TLS accepted without a certificate", c.session.id());
                        c.closing = true;
                    }
                },
                Action::CloseData => self.close_data(key),
                Action::StopHash => {
                    if let Some(h) = c.hash.take() {
                        self.close(h);
                    }
                }
                Action::StartHash(job) => {
                    let hkey = self.conns.insert(Conn::Hash { owner: key, job });
                    if let Some(Conn::Control(c)) = self.conns.get_mut(key) {
                        c.hash = Some(hkey);
                    }
                    self.enqueue(hkey);
                }
                // A second Close is the session's grace period running out: the client is not reading what is left.
                Action::Close if c.closing => {
                    self.close(key);
                    return;
                }
                Action::Close => {
                    c.closing = true;
                }
                Action::Event(event) => {
                    if let (Some(xferlog), "upload" | "download") = (&self.shared.xferlog, event.kind) {
                        xferlog.record(&crate::xferlog::Entry {
                            when: now.wall,
                            seconds: event.seconds,
                            host: canonical(c.session.peer().ip()).to_string(),
                            bytes: event.bytes,
                            file: event.file.display().to_string(),
                            ascii: event.ascii,
                            upload: event.kind == "upload",
                            anonymous: event.anonymous,
                            user: event.user.clone(),
                            complete: event.result == "ok",
                        });
                    }
                    if let Some(hooks) = &self.shared.hooks {
                        hooks.submit(*event);
                    }
                }
                // The local disk answers at once; the answer is the session's next input, and what it asks for
                // next is carried out by this same loop.
                // A back-end's request goes to the pool; its answer comes through the waker.
                Action::Storage(request) => {
                    if let Some(done) = crate::storage::dispatch(self.storage.as_ref(), key, c.session.id(), request) {
                        c.session.handle_outcome(now, Outcome::Storage(done));
                    }
                }
                Action::Offence(offence) => {
                    let ip = canonical(c.session.peer().ip());
                    if let Some(ban) = self.shared.offend(ip, now.mono) {
                        warn!("{ip} banned for {ban:?} (the last straw: a {offence})");
                        self.metrics.bans.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        self.update_control(key, now);
    }

    /// Queues a password check, unless too many are waiting already, server-wide or from this client's address:
    /// then the login is refused (421) instead of queued behind work that would take seconds.
    fn verify_password(&mut self, key: usize, hash: String, password: String) {
        let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
        let ip = canonical(c.session.peer().ip());
        let id = c.session.id();
        let waiting = self.verifying_per_ip.get(&ip).copied().unwrap_or(0);
        if waiting >= MAX_VERIFY_PER_IP {
            warn!("session {id}: {waiting} password checks from {ip} waiting; login refused");
            return self.tell(key, Outcome::VerifierBusy);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        match self.verifier.submit(Job { key, session: id, ip, hash, password, cancelled: cancel.clone() }) {
            Ok(()) => {
                c.verify_cancel = Some(cancel);
                *self.verifying_per_ip.entry(ip).or_insert(0) += 1;
            }
            Err(SubmitError::Full) => {
                warn!("session {id}: password check queue full; login from {ip} refused");
                self.tell(key, Outcome::VerifierBusy);
            }
            Err(SubmitError::Stopped) => {
                error!("password verifier gone");
                self.tell(key, Outcome::Verified(false));
            }
        }
    }

    /// Flushes, closes a finished session, syncs interest and timer with the session's state.
    pub(super) fn update_control(&mut self, key: usize, now: Now) {
        let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
        if let Err(e) = c.flush() {
            debug!("connection {key}: write: {e}");
            self.close(key);
            return;
        }
        if let Some(summary) = c.stream.take_handshake_summary() {
            debug!("session {}: TLS {summary}", c.session.id());
        }
        if c.closing && c.pending_out() == 0 {
            // With TLS, close_notify goes first so the client can tell our close from a cut connection.
            match c.stream.close_notify() {
                Ok(false) => {}
                Ok(true) | Err(_) => {
                    self.close(key);
                    return;
                }
            }
        }
        if c.paused && !c.holds_input() {
            c.paused = false;
            self.enqueue(key);
        }
        let Some(Conn::Control(c)) = self.conns.get_mut(key) else { return };
        let wanted = c.wanted_interest();
        if wanted != c.interest {
            if let Err(e) = self.commands.registry().reregister(c.stream.socket_mut(), Token(key), wanted) {
                debug!("connection {key}: reregister: {e}");
                self.close(key);
                return;
            }
            c.interest = wanted;
        }
        let mut deadline = c.session.poll_timeout();
        if let Some(at) = deadline.filter(|at| *at <= now.mono) {
            // The session acts on every deadline it offers, so this cannot happen; if it ever did, re-arming a past
            // deadline would make the loop fire it again and again without polling (a livelock of the whole
            // server). The timer is pushed into the future instead, and the bug is logged.
            error!("session {}: deadline {:?} in the past re-armed; deferred", c.session.id(), now.mono - at);
            deadline = Some(now.mono + Duration::from_millis(1));
        }
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
}
