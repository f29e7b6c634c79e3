//! The ramp's plain FTP sessions as non-blocking state machines on a few mio poll loops ("shards"), one thread
//! each, judged from the thread that runs the ramp ([`super::run_loops`]).
//!
//! A thread per session costs the load tool a wake-up and two context switches for every throttled grant (about
//! fifty a second per session), which at a thousand sessions was more CPU than the server used. Here a loop holds
//! many sessions, in the manner of the server's loops: a `Vec` of sessions (none is removed before the ramp ends,
//! since a session that fails ends it), one timer per session in a `BTreeSet` keyed by deadline, and a poll whose
//! timeout is the next timer. No step blocks: connections are opened non-blocking and completed on their first
//! event.
//!
//! One loop was not enough: against a fast server its thread reached a full core at about 2,400 sessions (ftpload
//! used 13-18 CPU-s over a 35-40 s ramp, the server 5-7 s), so the ramp measured the tool, not the server. The
//! sessions are therefore sharded over `--threads` loops (default: the cores available): of `K` loops, loop `s`
//! owns exactly the sessions whose ramp index `i` has `i % K == s`. Each loop is a whole copy of the single loop
//! (its own `Poll`, sessions, timers, buffer and [`Tally`]) and single-threaded as that one was: nothing on the
//! path of a read takes a lock. What crosses threads is small and one-way at a time:
//! - the judge samples each session's byte counter and whether it is streaming from the run's
//!   [`crate::run::Slot`]s, which the owning loop updates with relaxed stores as it counts (one cache line per slot,
//!   so loops writing neighbouring sessions do not share lines);
//! - to add session `i`, the judge's thread sends `i` on loop `i % K`'s channel and wakes it with a mio [`Waker`],
//!   so the session is created and connected in its loop at once;
//! - a loop whose session fails stops, and says so on a channel the judge's thread waits on between its turns, so
//!   the whole ramp ends at once with `session-failed`;
//! - to stop, the judge's thread sets the run's stop flag and wakes every loop; each does what a stopped loop does
//!   ([`Shard::finish`]) and hands its tally back when its thread is joined, to be merged.
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
//! it off.
//!
//! Everything counted is counted as the thread version counts it: login and transfer latencies into the run's
//! recorder (a mutex per recorder shard, taken per login or transfer, not per read), transfers, bytes, byte-count
//! errors and failures into the loop's [`Tally`], and the run's live counters (atomics) for the progress line.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ftp_client::FtpError;
use ftp_common::ReplyParser;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use super::dialogue::{Cmd, Dialogue, Script, Step};
use crate::args::Op;
use crate::control::io_error;
use crate::run::{Run, BUFFER};
use crate::stats::{Metric, Tally};
use crate::throttle::TokenBucket;

/// Events taken from one poll.
const EVENTS: usize = 1024;
/// Bytes read from a control connection at a time: replies are short.
const CONTROL_READ: usize = 4096;
/// Longest a loop's poll waits when no timer is due sooner. Only a backstop: every session has a timer (its
/// `--timeout` at the latest), and a new session or the stop comes with a wake-up.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Which of a session's connections a token names.
const CONTROL: usize = 0;
const DATA: usize = 1;
/// The token of a loop's [`Waker`]. A session's tokens are its place in the loop shifted left by two, and a ramp
/// has at most `--max-sessions` (10,000) sessions, so none comes near it.
const WAKE: Token = Token(usize::MAX);

/// The token of the control or data connection of the session at place `local` of its loop. The data connection's
/// token also carries the parity of its number, so that an event still pending for the previous one (events are
/// gathered before they are handled) is not taken for the new one's.
fn token(local: usize, kind: usize, generation: usize) -> Token {
    Token(local << 2 | (generation & 1) << 1 | kind)
}

/// The ramp's loops, seen from the thread that judges: where each new session goes, and how they all stop.
pub struct Shards {
    run: Arc<Run>,
    handles: Vec<ShardHandle>,
}

impl Shards {
    /// No loops yet: [`Shards::start`] starts them.
    pub fn new(run: &Arc<Run>) -> Shards {
        Shards { run: Arc::clone(run), handles: Vec::with_capacity(run.plan.threads) }
    }

    /// Starts `--threads` loops, each with its own poll and thread; a loop sends its number on `failed` when one of
    /// its sessions fails. On an error, the loops already started stay here to be stopped.
    pub fn start(&mut self, failed: &Sender<usize>) -> Result<(), FtpError> {
        let plan = &self.run.plan;
        let script = Arc::new(Script::new(&plan.user, &plan.pass, plan.file.as_deref().unwrap_or_default())?);
        for number in 0..plan.threads.max(1) {
            let handle = ShardHandle::start(&self.run, &script, number, failed.clone())?;
            self.handles.push(handle);
        }
        Ok(())
    }

    /// Asks the loop that owns session `index` (loop `index % K`) to open it at once; false if that loop has ended
    /// (one of its sessions failed, or its thread panicked).
    pub fn add(&self, index: usize) -> bool {
        let Some(handle) = self.handles.get(index % self.handles.len().max(1)) else { return false };
        if handle.adds.send(index).is_err() {
            return false;
        }
        handle.wake();
        true
    }

    /// Ends the ramp: sets the run's stop flag, wakes every loop, and returns their tallies merged once all have
    /// finished (each within one wake-up: a loop checks the flag every turn).
    pub fn stop(self) -> Tally {
        let Shards { run, handles } = self;
        run.stop.store(true, Ordering::Release);
        for handle in &handles {
            handle.wake();
        }
        let mut tally = Tally::default();
        for handle in handles {
            match handle.thread.join() {
                Ok(t) => tally.merge(&t),
                Err(_) => {
                    tally.errors.add_kind("panic", "a ramp loop thread panicked".into());
                    run.count_error();
                }
            }
        }
        tally
    }
}

/// The judging thread's end of one loop.
struct ShardHandle {
    /// Ramp indices of the sessions the loop is to open.
    adds: Sender<usize>,
    waker: Waker,
    /// Returns the loop's tally when it has finished.
    thread: JoinHandle<Tally>,
}

impl ShardHandle {
    /// Starts loop `number`: its poll and waker here, so that failing to make them is one clear error, and its
    /// thread.
    fn start(run: &Arc<Run>, script: &Arc<Script>, number: usize, failed: Sender<usize>) -> Result<Self, FtpError> {
        let poll = Poll::new().map_err(|e| io_error("creating the poll", e))?;
        let waker = Waker::new(poll.registry(), WAKE).map_err(|e| io_error("creating the poll's waker", e))?;
        let (adds, added) = mpsc::channel();
        let run = Arc::clone(run);
        let script = Arc::clone(script);
        let thread = thread::Builder::new()
            .name(format!("ramp-loop-{number}"))
            .spawn(move || {
                let mut shard = Shard::new(&run, number, poll, added, failed, script);
                shard.drive();
                shard.finish(Instant::now());
                log::debug!("ramp loop {number}: {} sessions", shard.sessions.len());
                shard.tally
            })
            .map_err(|e| io_error("starting a ramp loop thread", e))?;
        Ok(ShardHandle { adds, waker, thread })
    }

    /// Wakes the loop from its poll.
    fn wake(&self) {
        // Writing to an eventfd does not fail in practice; if it did, the loop would still look at its channel and
        // the stop flag within IDLE_WAIT.
        if let Err(e) = self.waker.wake() {
            log::warn!("waking a ramp loop: {e}");
        }
    }
}

/// One loop and the sessions on it.
struct Shard<'a> {
    run: &'a Run,
    /// Its place among the loops.
    number: usize,
    poll: Poll,
    /// Ramp indices of the sessions to open, from the judging thread.
    adds: Receiver<usize>,
    /// Where to say that one of this loop's sessions failed (the ramp ends).
    failures: Sender<usize>,
    /// The loop's sessions in the order they were added: a session's place here (`local`) is in its tokens.
    sessions: Vec<Session>,
    /// One entry per session at most: `(when, local)`.
    timers: BTreeSet<(Instant, usize)>,
    script: Arc<Script>,
    /// The buffer data receives name; with [`discard`] nothing is written to it. One for every session.
    buf: Vec<u8>,
    tally: Tally,
    /// How much of `tally.bytes` the run's shared counter has been told.
    published: u64,
    /// Set once a session has failed: the loop ends after the current batch.
    failed: bool,
}

impl<'a> Shard<'a> {
    fn new(
        run: &'a Run,
        number: usize,
        poll: Poll,
        adds: Receiver<usize>,
        failures: Sender<usize>,
        script: Arc<Script>,
    ) -> Shard<'a> {
        // Its share of the sessions, rounded up.
        let share = run.plan.sessions.div_ceil(run.plan.threads.max(1));
        Shard {
            run,
            number,
            poll,
            adds,
            failures,
            sessions: Vec::with_capacity(share),
            timers: BTreeSet::new(),
            script,
            buf: vec![0; BUFFER],
            tally: Tally::default(),
            published: 0,
            failed: false,
        }
    }

    /// Turns the loop until the ramp stops or one of its sessions fails; then says so, which ends the ramp.
    fn drive(&mut self) {
        let mut events = Events::with_capacity(EVENTS);
        while !self.failed && !self.run.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            self.take_adds(now);
            self.fire_timers(now);
            if self.failed {
                break;
            }
            self.publish();
            let wake = self.timers.first().map_or(now + IDLE_WAIT, |(at, _)| (*at).min(now + IDLE_WAIT));
            match self.poll.poll(&mut events, Some(wake.saturating_duration_since(Instant::now()))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.record(&io_error("waiting for events", e));
                    self.failed = true;
                    break;
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                // The waker's event only ends the wait: new sessions and the stop flag are looked at every turn.
                if event.token() != WAKE {
                    self.dispatch(event, now);
                }
            }
        }
        self.publish();
        if self.failed {
            log::debug!("ramp loop {}: a session failed", self.number);
            // The judging thread keeps its receiver until the ramp is over; after that nobody needs to know.
            let _ = self.failures.send(self.number);
        }
    }

    /// Adds the bytes received since the last call to the run's counter (the progress line's), once a turn rather
    /// than once a read: the counter is shared by every loop, and an atomic add on it from each would bounce its
    /// cache line between their cores.
    fn publish(&mut self) {
        let fresh = self.tally.bytes - self.published;
        if fresh > 0 {
            self.run.bytes.fetch_add(fresh, Ordering::Relaxed);
            self.published = self.tally.bytes;
        }
    }

    /// Opens the sessions the judging thread has asked for since the last turn.
    fn take_adds(&mut self, now: Instant) {
        while let Ok(index) = self.adds.try_recv() {
            if let Err(e) = self.add(index, now) {
                self.record(&e);
                self.failed = true;
                return;
            }
        }
    }

    /// Opens the control connection of the ramp's session `index`.
    fn add(&mut self, index: usize, now: Instant) -> Result<(), FtpError> {
        let local = self.sessions.len();
        let target = self.run.plan.target;
        let dialogue = Dialogue::new(target, Arc::clone(&self.script));
        let mut control = TcpStream::connect(target).map_err(|e| io_error(dialogue.label(), e))?;
        self.poll
            .registry()
            .register(&mut control, token(local, CONTROL, 0), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| io_error(format!("registering the connection to {target}"), e))?;
        // Replies are small and awaited one at a time; Nagle would only delay commands.
        let _ = control.set_nodelay(true);
        let session = Session {
            index,
            local,
            dialogue,
            control,
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
        self.arm(local);
        Ok(())
    }

    /// Hands an event to the session whose connection it concerns.
    fn dispatch(&mut self, event: &Event, now: Instant) {
        let raw = event.token().0;
        let (local, kind, generation) = (raw >> 2, raw & 1, (raw >> 1) & 1);
        let Shard { run, poll, sessions, buf, tally, .. } = self;
        let Some(session) = sessions.get_mut(local).filter(|s| !s.ended) else { return };
        let mut cx = Cx { run, registry: poll.registry(), buf, tally, now };
        let result = if kind == CONTROL {
            session.control_ready(&mut cx)
        } else if generation == session.generation & 1 {
            session.data_ready(&mut cx)
        } else {
            // For the data connection before this one, already closed.
            Ok(())
        };
        self.settle(local, result);
    }

    /// Fires the timers due at `now`. Each fired timer is re-armed strictly later (or its session has ended), so
    /// this ends.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(&(at, local)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Shard { run, poll, sessions, buf, tally, .. } = self;
            let Some(session) = sessions.get_mut(local) else { continue };
            session.timer = None;
            let mut cx = Cx { run, registry: poll.registry(), buf, tally, now };
            let result = session.on_timer(&mut cx);
            self.settle(local, result);
        }
    }

    /// After the session at `local` handled something: records its failure, or arms its timer for what it waits
    /// for now.
    fn settle(&mut self, local: usize, result: Result<(), FtpError>) {
        if let Err(e) = result {
            self.record(&e);
            self.failed = true;
            if let Some(session) = self.sessions.get_mut(local) {
                session.ended = true;
                if let Some(at) = session.timer.take() {
                    self.timers.remove(&(at, local));
                }
            }
            return;
        }
        self.arm(local);
    }

    /// Makes sure the session at `local` has a timer no later than what it waits for. A timer already earlier is
    /// kept: it fires, finds nothing due and is armed again.
    fn arm(&mut self, local: usize) {
        let timeout = self.run.plan.timeout;
        let Some(session) = self.sessions.get_mut(local) else { return };
        let due = session.due(timeout);
        match session.timer {
            Some(at) if at <= due => {}
            Some(at) => {
                self.timers.remove(&(at, local));
                self.timers.insert((due, local));
                session.timer = Some(due);
            }
            None => {
                self.timers.insert((due, local));
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
    /// Its number in the ramp: its [`crate::run::Slot`] of live counters and its latency shard.
    index: usize,
    /// Its place in its loop's `Vec`, which its tokens and its timer carry.
    local: usize,
    dialogue: Dialogue,
    control: TcpStream,
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
    /// Bytes received over all transfers: the judge's counter, copied to the session's slot as it grows.
    bytes: u64,
    /// Set at the first 125/150, and marked in the session's slot: from then on the judge samples the session.
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
        if self.dialogue.connecting() {
            match connect_state(&self.control) {
                Ok(true) => {
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
                let token = token(self.local, DATA, self.generation);
                cx.registry
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| io_error(format!("registering the data connection to {addr}"), e))?;
                self.data = Some(DataConn { stream, link: Link::Connecting });
                self.progress_at = cx.now;
                Ok(())
            }
            Step::Started => {
                if !self.streaming {
                    self.streaming = true;
                    if let Some(slot) = cx.run.slots.get(self.index) {
                        slot.mark_streaming(cx.run.origin);
                    }
                }
                Ok(())
            }
            Step::LoggedIn(cmd) => {
                cx.run.recorder.record(self.index, Metric::Login, cx.now.saturating_duration_since(self.opened));
                cx.tally.sessions_established += 1;
                cx.run.sessions.fetch_add(1, Ordering::Relaxed);
                // The throttle's clock starts now, with the bucket's first quantum (untouched until now), as a
                // session thread's does.
                self.started = Some(cx.now);
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
        // The run-wide counter, shared by every loop, gets this loop's new bytes once a turn (see `publish`).
        cx.tally.bytes += n;
        // This loop is the slot's only writer, so a store (no read-modify-write) is enough for the judge to sample.
        if let Some(slot) = cx.run.slots.get(self.index) {
            slot.bytes.store(self.bytes, Ordering::Relaxed);
        }
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
