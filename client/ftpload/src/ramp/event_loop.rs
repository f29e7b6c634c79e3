//! The ramp's plain FTP sessions as non-blocking state machines on one mio poll loop, in the thread that judges
//! them.
//!
//! A thread per session costs the load tool a wake-up and two context switches for every throttled grant (about
//! fifty a second per session), which at a thousand sessions was more CPU than the server used. Here one thread
//! holds every session, in the manner of the server's loops: a `Vec` of sessions (session `i` is the ramp's `i`th;
//! none is removed before the ramp ends, since a session that fails ends it), one timer per session in a
//! `BTreeSet` keyed by deadline, and a poll whose timeout is the next timer or the judge's next turn, whichever is
//! sooner. No step blocks: connections are opened non-blocking and completed on their first event.
//!
//! Each session owns its control connection, its data connection while a transfer runs, a [`ReplyParser`], its
//! [`Dialogue`] (what to send and what a reply means) and its [`TokenBucket`]. Throttling parks a session: when the
//! bucket has no grant, the session stops reading its data connection and arms its timer for the moment a grant is
//! due. The unread data stays in the kernel's buffers, and the server's sends block against the full window, which
//! is the back-pressure a throttled thread exerted too. mio's readiness is edge-triggered, so a session remembers
//! that its data connection is readable (until a read says `WouldBlock`) and reads again when its timer fires,
//! instead of waiting for an event that will not come; events that arrive while it is parked only set that flag,
//! and come only as fast as the server can add data to a buffer that is not drained, so parked sessions never make
//! the loop spin. The timer is also the session's `--timeout`: when a session is not parked, it fails if nothing
//! has arrived or been sent for that long. Timers are re-armed lazily: one that has moved later fires early, finds
//! nothing due and is armed again, so progress costs no tree operation.
//!
//! The data itself is received with `MSG_TRUNC` ([`discard`]): the kernel drops it instead of copying it out, since
//! nothing here looks at it. With sessions of 1 MiB/s on 2 cores, copying it out was close to half of the loop's CPU,
//! and the ramp stopped at about 1,200 sessions instead of about 1,900: the copy, not the server, was again what
//! was measured. What is left is mostly the kernel's TCP work, which on loopback is charged to whichever side sets
//! it off. One loop thread is enough for the ramp's 2,000 sessions: at about 1,900 it used some two thirds of a
//! core, most of that in the kernel, which more loop threads would only spread over the cores the server needs.
//!
//! Everything counted is counted as the thread version counts it: login and transfer latencies into the run's
//! recorder, transfers, bytes, byte-count errors and failures into one [`Tally`], and the run's live counters for the
//! progress line. Only the judge reads a session's byte counter, in the same thread, so nothing here is atomic but
//! those live counters.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftp_client::FtpError;
use ftp_common::ReplyParser;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use super::dialogue::{Cmd, Dialogue, Script, Step};
use super::{outcome, Judge, Turn};
use crate::args::Op;
use crate::control::io_error;
use crate::progress::Progress;
use crate::run::{Outcome, Run, BUFFER};
use crate::stats::{Metric, Tally};
use crate::throttle::TokenBucket;

/// Events taken from one poll.
const EVENTS: usize = 1024;
/// Bytes read from a control connection at a time: replies are short.
const CONTROL_READ: usize = 4096;

/// Which of a session's connections a token names.
const CONTROL: usize = 0;
const DATA: usize = 1;

/// The token of session `index`'s control or data connection. The data connection's token also carries the parity
/// of its number, so that an event still pending for the previous one (events are gathered before they are handled)
/// is not taken for the new one's.
fn token(index: usize, kind: usize, generation: usize) -> Token {
    Token(index << 2 | (generation & 1) << 1 | kind)
}

/// Runs the ramp with plain FTP sessions on this thread's poll loop.
pub fn run(run: &Run, progress: &mut Progress) -> Outcome {
    let mut judge = Judge::new(&run.plan, Instant::now());
    let mut tally = Tally::default();
    let reason = match Sessions::new(run) {
        Ok(mut sessions) => {
            let reason = sessions.drive(&mut judge, progress);
            sessions.finish(Instant::now());
            tally = sessions.tally;
            reason
        }
        Err(e) => {
            tally.errors.add(&e);
            run.count_error();
            "session-failed"
        }
    };
    outcome(run, tally, judge.result(reason))
}

/// The loop and every session on it.
struct Sessions<'a> {
    run: &'a Run,
    poll: Poll,
    sessions: Vec<Session>,
    /// One entry per session at most: `(when, index)`.
    timers: BTreeSet<(Instant, usize)>,
    script: Arc<Script>,
    /// The buffer data receives name; with [`discard`] nothing is written to it. One for every session.
    buf: Vec<u8>,
    tally: Tally,
    /// Set once a session has failed: the ramp ends after the current batch.
    failed: bool,
}

impl<'a> Sessions<'a> {
    fn new(run: &'a Run) -> Result<Sessions<'a>, FtpError> {
        let plan = &run.plan;
        let script = Script::new(&plan.user, &plan.pass, plan.file.as_deref().unwrap_or_default())?;
        let poll = Poll::new().map_err(|e| io_error("creating the poll", e))?;
        Ok(Sessions {
            run,
            poll,
            sessions: Vec::with_capacity(plan.sessions),
            timers: BTreeSet::new(),
            script: Arc::new(script),
            buf: vec![0; BUFFER],
            tally: Tally::default(),
            failed: false,
        })
    }

    /// Turns the loop until the judge stops the ramp or a session fails; returns the stop reason.
    fn drive(&mut self, judge: &mut Judge, progress: &mut Progress) -> &'static str {
        let mut events = Events::with_capacity(EVENTS);
        let mut next_turn = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_turn {
                let sessions = &self.sessions;
                let bytes = |index: usize| sessions.get(index).filter(|s| s.streaming).map(|s| s.bytes);
                match judge.turn(now, self.run.deadline, bytes) {
                    Turn::Stop(reason) => return reason,
                    Turn::Add => {
                        let added = self.add(now);
                        judge.add();
                        if let Err(e) = added {
                            self.record(&e);
                            return "session-failed";
                        }
                    }
                    Turn::Wait => {}
                }
                progress.note = judge.note();
                progress.tick(self.run);
                next_turn = judge.next_turn(now);
            }
            self.fire_timers(now);
            if self.failed {
                return "session-failed";
            }
            let wake = self.timers.first().map_or(next_turn, |(at, _)| next_turn.min(*at));
            match self.poll.poll(&mut events, Some(wake.saturating_duration_since(Instant::now()))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.record(&io_error("waiting for events", e));
                    return "session-failed";
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                self.dispatch(event, now);
            }
            if self.failed {
                return "session-failed";
            }
        }
    }

    /// Opens the next session's control connection.
    fn add(&mut self, now: Instant) -> Result<(), FtpError> {
        let index = self.sessions.len();
        let target = self.run.plan.target;
        let dialogue = Dialogue::new(target, Arc::clone(&self.script));
        let mut control = TcpStream::connect(target).map_err(|e| io_error(dialogue.label(), e))?;
        self.poll
            .registry()
            .register(&mut control, token(index, CONTROL, 0), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| io_error(format!("registering the connection to {target}"), e))?;
        // Replies are small and awaited one at a time; Nagle would only delay commands.
        let _ = control.set_nodelay(true);
        let session = Session {
            index,
            dialogue,
            control,
            control_up: false,
            replies: ReplyParser::default(),
            out: Vec::new(),
            data: None,
            generation: 0,
            bucket: TokenBucket::new(self.run.plan.rate.unwrap_or(1)),
            opened: now,
            started: None,
            transfer_began: now,
            transfer_bytes: 0,
            bytes: 0,
            streaming: false,
            progress_at: now,
            parked: None,
            timer: None,
            ended: false,
        };
        self.sessions.push(session);
        self.arm(index);
        Ok(())
    }

    /// Hands an event to the session whose connection it concerns.
    fn dispatch(&mut self, event: &Event, now: Instant) {
        let raw = event.token().0;
        let (index, kind, generation) = (raw >> 2, raw & 1, (raw >> 1) & 1);
        let Sessions { run, poll, sessions, buf, tally, .. } = self;
        let Some(session) = sessions.get_mut(index).filter(|s| !s.ended) else { return };
        let mut cx = Cx { run, registry: poll.registry(), buf, tally, now };
        let result = if kind == CONTROL {
            session.control_ready(&mut cx)
        } else if generation == session.generation & 1 {
            session.data_ready(&mut cx)
        } else {
            // For the data connection before this one, already closed.
            Ok(())
        };
        self.settle(index, result);
    }

    /// Fires the timers due at `now`. Each fired timer is re-armed strictly later (or its session has ended), so
    /// this ends.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(&(at, index)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Sessions { run, poll, sessions, buf, tally, .. } = self;
            let Some(session) = sessions.get_mut(index) else { continue };
            session.timer = None;
            let mut cx = Cx { run, registry: poll.registry(), buf, tally, now };
            let result = session.on_timer(&mut cx);
            self.settle(index, result);
        }
    }

    /// After session `index` handled something: records its failure, or arms its timer for what it waits for now.
    fn settle(&mut self, index: usize, result: Result<(), FtpError>) {
        if let Err(e) = result {
            self.record(&e);
            self.failed = true;
            if let Some(session) = self.sessions.get_mut(index) {
                session.ended = true;
                if let Some(at) = session.timer.take() {
                    self.timers.remove(&(at, index));
                }
            }
            return;
        }
        self.arm(index);
    }

    /// Makes sure session `index` has a timer no later than what it waits for. A timer already earlier is kept: it
    /// fires, finds nothing due and is armed again.
    fn arm(&mut self, index: usize) {
        let timeout = self.run.plan.timeout;
        let Some(session) = self.sessions.get_mut(index) else { return };
        let due = session.due(timeout);
        match session.timer {
            Some(at) if at <= due => {}
            Some(at) => {
                self.timers.remove(&(at, index));
                self.timers.insert((due, index));
                session.timer = Some(due);
            }
            None => {
                self.timers.insert((due, index));
                session.timer = Some(due);
            }
        }
    }

    /// Counts an error that ends a session.
    fn record(&mut self, e: &FtpError) {
        self.tally.errors.add(e);
        self.run.count_error();
    }

    /// The ramp is over: a transfer under way is cut short, and each session's throughput goes into the tally for
    /// the fairness index. The connections close when the sessions are dropped, without QUIT, as the thread version
    /// leaves them.
    fn finish(&mut self, now: Instant) {
        for session in &self.sessions {
            if !session.ended && session.dialogue.transferring() {
                self.tally.aborted += 1;
            }
            let busy = session.started.map_or(Duration::ZERO, |started| now.saturating_duration_since(started));
            if session.bytes > 0 && !busy.is_zero() {
                self.tally.throughputs.push(session.bytes as f64 / busy.as_secs_f64());
            }
        }
    }
}

/// What a session needs from the loop while it handles something.
struct Cx<'a, 'r> {
    run: &'r Run,
    registry: &'a Registry,
    buf: &'a mut [u8],
    tally: &'a mut Tally,
    /// The time of the batch being handled: one clock reading for all of it, so a timer armed from it is never
    /// already due when it was set.
    now: Instant,
}

/// A data connection.
struct DataConn {
    stream: TcpStream,
    link: Link,
}

/// Where a data connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Connecting, non-blocking; done at its first event.
    Connecting,
    /// Connected; `readable` until a read says `WouldBlock` (readiness is edge-triggered, so it is remembered).
    Up { readable: bool },
}

/// One session: its connections, its conversation and its counters.
struct Session {
    index: usize,
    dialogue: Dialogue,
    control: TcpStream,
    /// Set once the control connection has been opened.
    control_up: bool,
    replies: ReplyParser,
    /// Command bytes not yet taken by the socket.
    out: Vec<u8>,
    data: Option<DataConn>,
    /// Data connections opened so far (see [`token`]).
    generation: usize,
    bucket: TokenBucket,
    /// When the session started connecting: its login latency runs from here.
    opened: Instant,
    /// When it logged in: the throttle's clock and the session's busy time start here.
    started: Option<Instant>,
    /// When the current transfer began (its EPSV or PASV), and its bytes so far.
    transfer_began: Instant,
    transfer_bytes: u64,
    /// Bytes received over all transfers: the judge's counter.
    bytes: u64,
    /// Set at the first 125/150: from then on the judge samples the session.
    streaming: bool,
    /// Last time anything arrived or was sent (or the session woke from a park): `--timeout` runs from here.
    progress_at: Instant,
    /// When parked by the throttle, the time a grant is due.
    parked: Option<Instant>,
    /// The session's entry in the timer set.
    timer: Option<Instant>,
    ended: bool,
}

impl Session {
    /// When the session next needs its timer: the end of its park, or else the end of its `timeout`.
    fn due(&self, timeout: Duration) -> Instant {
        self.parked.unwrap_or(self.progress_at + timeout)
    }

    /// An event on the control connection: it may have finished connecting, taken queued command bytes, or brought
    /// replies.
    fn control_ready(&mut self, cx: &mut Cx) -> Result<(), FtpError> {
        if !self.control_up {
            match connect_state(&self.control) {
                Ok(true) => {
                    self.control_up = true;
                    self.dialogue.connected();
                    self.progress_at = cx.now;
                }
                // A spurious event: still connecting.
                Ok(false) => return Ok(()),
                Err(e) => return Err(self.dialogue.control_failed(e)),
            }
        }
        self.flush(cx)?;
        let mut buf = [0u8; CONTROL_READ];
        loop {
            match self.control.read(&mut buf) {
                Ok(0) => return Err(self.dialogue.closed()),
                Ok(n) => {
                    self.progress_at = cx.now;
                    self.replies.push(&buf[..n]);
                    while let Some(reply) = self.replies.pop() {
                        let reply = reply.map_err(|e| self.dialogue.malformed(e))?;
                        let step = self.dialogue.handle_reply(reply)?;
                        self.apply(step, cx)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.dialogue.control_failed(e)),
            }
        }
    }

    /// An event on the current data connection: it may have finished connecting, or have data.
    fn data_ready(&mut self, cx: &mut Cx) -> Result<(), FtpError> {
        let Some(data) = &mut self.data else { return Ok(()) };
        match data.link {
            Link::Connecting => match connect_state(&data.stream) {
                Ok(true) => {
                    // Nothing can have arrived before RETR; the first read will say.
                    data.link = Link::Up { readable: true };
                    self.progress_at = cx.now;
                    let step = self.dialogue.data_connected();
                    self.apply(step, cx)
                }
                Ok(false) => Ok(()),
                Err(e) => {
                    self.close_data(cx);
                    let err = io_error(self.dialogue.label(), e);
                    let step = self.dialogue.data_failed(err)?;
                    self.apply(step, cx)
                }
            },
            Link::Up { .. } => {
                data.link = Link::Up { readable: true };
                self.drain(cx)
            }
        }
    }

    /// The session's timer: the end of a park (read again), or of its `--timeout` (fail), or neither yet (a timer
    /// that was left earlier than needed; the caller arms it again).
    fn on_timer(&mut self, cx: &mut Cx) -> Result<(), FtpError> {
        if let Some(wake) = self.parked {
            if wake <= cx.now {
                self.parked = None;
                // Parked time is not time without progress.
                self.progress_at = cx.now;
                return self.drain(cx);
            }
            return Ok(());
        }
        let timeout = cx.run.plan.timeout;
        if cx.now >= self.progress_at + timeout {
            return Err(self.dialogue.timed_out());
        }
        Ok(())
    }

    /// Reads the data connection as far as the throttle allows: until it would block, ends, or the bucket is empty
    /// (then the session parks until a grant is due). At most the bucket's capacity moves per call.
    fn drain(&mut self, cx: &mut Cx) -> Result<(), FtpError> {
        loop {
            if self.parked.is_some() || !self.dialogue.receiving() {
                return Ok(());
            }
            let Some(data) = &mut self.data else { return Ok(()) };
            let Link::Up { readable: true } = data.link else { return Ok(()) };
            let clock = cx.now.saturating_duration_since(self.started.unwrap_or(cx.now));
            let want = match self.bucket.allowance(clock, cx.buf.len()) {
                Ok(n) => n.min(cx.buf.len()),
                Err(wait) => {
                    self.parked = Some(cx.now + wait);
                    return Ok(());
                }
            };
            match discard(&data.stream, &mut cx.buf[..want]) {
                Ok(0) => {
                    self.close_data(cx);
                    self.progress_at = cx.now;
                    let step = self.dialogue.data_ended();
                    return self.apply(step, cx);
                }
                Ok(n) => {
                    self.bucket.consume(n);
                    self.count(n, cx);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    data.link = Link::Up { readable: false };
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_data(cx);
                    let err = io_error(format!("{}: receiving data", self.dialogue.line(Cmd::Retr)), e);
                    let step = self.dialogue.data_failed(err)?;
                    return self.apply(step, cx);
                }
            }
        }
    }

    /// Carries out what the dialogue decided.
    fn apply(&mut self, step: Step, cx: &mut Cx) -> Result<(), FtpError> {
        match step {
            Step::Wait => Ok(()),
            Step::Send(cmd) => self.send(cmd, cx),
            Step::Connect(addr) => {
                let mut stream = TcpStream::connect(addr).map_err(|e| io_error(self.dialogue.label(), e))?;
                self.generation = self.generation.wrapping_add(1);
                let token = token(self.index, DATA, self.generation);
                cx.registry
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| io_error(format!("registering the data connection to {addr}"), e))?;
                self.data = Some(DataConn { stream, link: Link::Connecting });
                self.progress_at = cx.now;
                Ok(())
            }
            Step::Started => {
                self.streaming = true;
                Ok(())
            }
            Step::LoggedIn(cmd) => {
                cx.run.recorder.record(self.index, Metric::Login, cx.now.saturating_duration_since(self.opened));
                cx.tally.sessions_established += 1;
                cx.run.sessions.fetch_add(1, Ordering::Relaxed);
                // The throttle's clock starts now, with the bucket's first quantum, as a session thread's does.
                self.started = Some(cx.now);
                self.bucket = TokenBucket::new(cx.run.plan.rate.unwrap_or(1));
                self.begin_transfer(cmd, cx)
            }
            Step::Finished(cmd) => {
                self.count_transfer(cx);
                self.begin_transfer(cmd, cx)
            }
        }
    }

    /// Starts the next transfer with `cmd` (EPSV or PASV): its latency runs from here.
    fn begin_transfer(&mut self, cmd: Cmd, cx: &mut Cx) -> Result<(), FtpError> {
        self.transfer_began = cx.now;
        self.transfer_bytes = 0;
        self.send(cmd, cx)
    }

    /// Queues `cmd` and writes what the socket takes.
    fn send(&mut self, cmd: Cmd, cx: &mut Cx) -> Result<(), FtpError> {
        self.out.extend_from_slice(self.dialogue.line(cmd).as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.progress_at = cx.now;
        self.flush(cx)
    }

    /// Writes queued command bytes until none are left or the socket is full (its next writable event resumes).
    fn flush(&mut self, cx: &mut Cx) -> Result<(), FtpError> {
        while !self.out.is_empty() {
            match self.control.write(&self.out) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "the connection took no bytes");
                    return Err(io_error(format!("sending {}", self.dialogue.label()), e));
                }
                Ok(n) => {
                    self.out.drain(..n);
                    self.progress_at = cx.now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(format!("sending {}", self.dialogue.label()), e)),
            }
        }
        Ok(())
    }

    /// Counts `n` bytes received.
    fn count(&mut self, n: usize, cx: &mut Cx) {
        let n = n as u64;
        self.bytes += n;
        self.transfer_bytes += n;
        self.progress_at = cx.now;
        cx.tally.bytes += n;
        cx.run.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a finished transfer, checking its size against the file's.
    fn count_transfer(&mut self, cx: &mut Cx) {
        let bytes = self.transfer_bytes;
        match cx.run.sizes.file {
            Some(expected) if expected != bytes => {
                let line = self.dialogue.line(Cmd::Retr);
                cx.tally.errors.add_kind("byte-count", format!("{line}: received {bytes} bytes, expected {expected}"));
                cx.run.count_error();
            }
            _ => {
                let get = &mut cx.tally.ops[Op::Get.index()];
                get.transfers += 1;
                get.bytes += bytes;
                cx.run.transfers.fetch_add(1, Ordering::Relaxed);
                let elapsed = cx.now.saturating_duration_since(self.transfer_began);
                cx.run.recorder.record(self.index, Metric::Transfer(Op::Get), elapsed);
            }
        }
    }

    /// Closes the data connection.
    fn close_data(&mut self, cx: &mut Cx) {
        if let Some(mut data) = self.data.take() {
            // Closing removes it from the poll anyway; failing to say so first changes nothing.
            let _ = cx.registry.deregister(&mut data.stream);
        }
    }
}

/// Whether a non-blocking connect has finished (mio's recipe: a pending error means it failed; a peer address
/// means it succeeded; `NotConnected` means it is still under way and the event was spurious).
fn connect_state(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Receives up to `buf.len()` bytes from a TCP connection and drops them. With `MSG_TRUNC` the kernel discards TCP
/// data instead of copying it out (tcp(7)), and nothing here looks at the data: copying it would cost the load tool
/// a memory copy per byte (the bulk of its CPU at a thousand sessions), charged on loopback to the same cores the
/// server runs on, and the server's work is the same either way. `buf` is only the length; it is not written.
fn discard(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let (n, _) = rustix::net::recv(stream, buf, rustix::net::RecvFlags::TRUNC)?;
    Ok(n)
}
