//! The state of one run that every thread shares, and the scenarios in which each connection is a session thread
//! (get, put, small, mixed).
//!
//! [`Run`] holds the plan, the clock (start and deadline), the stop flag, live counters for the progress line and
//! the latency recorder. Before any load, [`preflight`] connects and logs in once and asks SIZE of the files to
//! download, so an unreachable server or a missing file is one clear error instead of thousands. Sessions report
//! their [`Tally`] over a channel when they end; the main thread merges them while drawing progress. A bystander
//! probe ([`crate::probe`]) may run beside them.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ftp_client::{FtpClient, FtpError};

use crate::args::{Op, Plan, Scenario};
use crate::probe::Bystander;
use crate::progress::Progress;
use crate::stats::{Latencies, Recorder, Tally};
use crate::worker;

/// How often the main thread wakes to draw progress and check the clock.
pub const TICK: Duration = Duration::from_millis(250);
/// Stack of a session thread: it keeps its buffers on the heap.
const STACK: usize = 256 * 1024;
/// Bytes of the generated upload pattern and of each session's transfer buffer.
pub const BUFFER: usize = 64 * 1024;

/// Live counters of one session, read by `ramp` to judge its rate. Each has a cache line of its own: ramp's loop
/// threads write the slots of neighbouring sessions (session `i` runs on loop `i % threads`) at every read, and
/// slots sharing a line would bounce it between the cores.
#[derive(Default)]
#[repr(align(64))]
pub struct Slot {
    pub bytes: AtomicU64,
    /// When the session's first transfer started, in nanoseconds since the run began, plus one (0: not yet).
    pub streaming_since: AtomicU64,
}

impl Slot {
    /// The session's first transfer has started, now (a run that began at `origin`).
    pub fn mark_streaming(&self, origin: Instant) {
        let since = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        self.streaming_since.store(since, Ordering::Relaxed);
    }

    /// The bytes the session has received, once it is streaming: what the ramp's judge samples.
    pub fn sampled(&self) -> Option<u64> {
        (self.streaming_since.load(Ordering::Relaxed) > 0).then(|| self.bytes.load(Ordering::Relaxed))
    }
}

/// Expected sizes of the files downloaded, from `--size` or SIZE.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizes {
    pub file: Option<u64>,
    pub small_file: Option<u64>,
}

/// What every thread of a run shares.
pub struct Run {
    pub plan: Plan,
    pub origin: Instant,
    pub deadline: Instant,
    pub stop: AtomicBool,
    pub sessions: AtomicU64,
    pub transfers: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Transfers under way now (from the server's 1xx to the transfer's final reply or failure), for the bystander
    /// probe.
    pub in_flight: AtomicU64,
    pub recorder: Recorder,
    pub sizes: Sizes,
    pub slots: Vec<Slot>,
    /// Data uploads are made of.
    pub pattern: Vec<u8>,
}

impl Run {
    pub fn new(plan: Plan, sizes: Sizes) -> Run {
        let origin = Instant::now();
        let slots = if plan.scenario == Scenario::Idle {
            Vec::new()
        } else {
            (0..plan.sessions).map(|_| Slot::default()).collect()
        };
        Run {
            deadline: origin + plan.duration,
            plan,
            origin,
            stop: AtomicBool::new(false),
            sessions: AtomicU64::new(0),
            transfers: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            recorder: Recorder::default(),
            sizes,
            slots,
            pattern: pattern(BUFFER),
        }
    }

    /// True once the run is over: stopped, or past its deadline.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    /// True while at least one transfer is under way.
    pub fn transferring(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    pub fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a run ended and everything it measured.
pub struct Outcome {
    pub tally: Tally,
    pub latencies: Latencies,
    /// From the start of the load to the end of the last session.
    pub elapsed: Duration,
    pub stopped_by: &'static str,
    /// idle: how long all sessions were held.
    pub held: Option<Duration>,
    pub ramp: Option<crate::ramp::RampResult>,
}

/// Connects and logs in once before the load, and learns the sizes of the files to download. Any failure here
/// means the run cannot work, and is returned as one error.
pub fn preflight(plan: &Plan) -> Result<(FtpClient, Sizes), FtpError> {
    let mut client = connect(plan)?;
    // In get and small, --size is what the one file should measure; in mixed it is the size of the uploads.
    let given = if matches!(plan.scenario, Scenario::Get | Scenario::Small) { plan.size } else { None };
    let mut size_of = |file: &Option<String>| -> Result<Option<u64>, FtpError> {
        match (file, given) {
            (None, _) => Ok(None),
            (Some(_), Some(size)) => Ok(Some(size)),
            (Some(file), None) => client.size(file).map(Some),
        }
    };
    let mut sizes = Sizes::default();
    if plan.cycle.contains(&Op::Get) {
        sizes.file = size_of(&plan.file)?;
    }
    if plan.cycle.contains(&Op::Small) {
        sizes.small_file = size_of(if plan.scenario == Scenario::Small { &plan.file } else { &plan.small_file })?;
    }
    Ok((client, sizes))
}

/// A logged-in session.
pub fn connect(plan: &Plan) -> Result<FtpClient, FtpError> {
    let mut client = FtpClient::connect(&plan.target.ip().to_string(), plan.target.port(), plan.timeout)?;
    if let Some(tls) = &plan.tls {
        client.auth_tls(tls)?;
    }
    client.login(&plan.user, &plan.pass)?;
    Ok(client)
}

/// get, put, small, mixed: one thread per connection, all started at once; with a probe interval, `client` (the
/// preflight's session) becomes the bystander probe, otherwise it is closed.
pub fn run_sessions(run: Arc<Run>, client: FtpClient, progress: &mut Progress) -> Outcome {
    let bystander = match run.plan.probe_interval {
        Some(interval) => Some(Bystander::start(&run, client, interval)),
        None => {
            let _ = client.quit();
            None
        }
    };
    let (tx, rx) = mpsc::channel();
    let mut tally = Tally::default();
    let mut spawned = 0;
    for index in 0..run.plan.sessions {
        match spawn_session(&run, index, tx.clone()) {
            Ok(()) => spawned += 1,
            Err(e) => {
                tally.errors.add(&crate::control::io_error("starting a session thread", e));
                run.count_error();
            }
        }
    }
    drop(tx);
    let stopped_by = match collect(&run, &rx, spawned, &mut tally, progress) {
        Ending::AllDone if run.plan.count.is_some() => "count",
        Ending::AllDone => "errors",
        Ending::Deadline => "duration",
        Ending::Abandoned => "unfinished",
    };
    if let Some(bystander) = bystander {
        tally.merge(&bystander.finish(run.plan.timeout + TICK));
    }
    Outcome {
        latencies: run.recorder.merged(),
        elapsed: run.origin.elapsed(),
        tally,
        stopped_by,
        held: None,
        ramp: None,
    }
}

/// Starts the thread of session `index`, which sends its tally on `tx` when it ends.
pub fn spawn_session(run: &Arc<Run>, index: usize, tx: mpsc::Sender<Tally>) -> io::Result<()> {
    let run = Arc::clone(run);
    thread::Builder::new().name(format!("session-{index}")).stack_size(STACK).spawn(move || {
        let tally = worker::session(&run, index);
        // The receiver only goes away when the run is being abandoned.
        let _ = tx.send(tally);
    })?;
    Ok(())
}

/// How the sessions of a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// All ended before the deadline.
    AllDone,
    /// The deadline stopped them.
    Deadline,
    /// Some were still running well after the deadline and were given up on.
    Abandoned,
}

/// Merges the tallies of `expected` sessions as they end, drawing progress and stopping the run at its deadline.
/// Sessions still running a while after the deadline (a server that stopped answering; each of their waits is
/// bounded by the timeout) are given up on and counted as errors.
pub fn collect(run: &Run, rx: &Receiver<Tally>, expected: usize, tally: &mut Tally, progress: &mut Progress) -> Ending {
    let give_up = run.deadline + run.plan.timeout * 2 + Duration::from_secs(5);
    let mut done = 0;
    let mut ending = Ending::AllDone;
    while done < expected {
        match rx.recv_timeout(TICK) {
            Ok(t) => {
                tally.merge(&t);
                done += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now >= run.deadline || run.stop.load(Ordering::Relaxed) {
            run.stop.store(true, Ordering::Relaxed);
            ending = Ending::Deadline;
        }
        if now >= give_up {
            for _ in done..expected {
                tally.errors.add_kind("unfinished", "a session did not finish within the timeout after the end".into());
            }
            return Ending::Abandoned;
        }
        progress.tick(run);
    }
    ending
}

/// `len` bytes of a deterministic pattern with no short period (xorshift).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
