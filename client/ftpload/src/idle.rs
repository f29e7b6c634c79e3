//! The `idle` scenario: open and log in many sessions, hold them, and measure how a busy server answers an active
//! one meanwhile.
//!
//! A pool of `--threads` threads opens the sessions (thread t opens sessions t, t + threads, ...), optionally each
//! from its own source address, and keeps them: a held session is just a blocking socket that nobody reads. Opening
//! is capped at the longer of `--duration` and a minute. Once every thread is done opening, the hold of
//! `--duration` starts, during which the probe session (the preflight's; see [`crate::probe`]) sends NOOP every
//! `--probe-interval` and records the round trips. At the end every held session is asked NOOP, pipelined: all are
//! sent first, then the replies are read against one deadline, and the sessions that answer 200 count as alive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use ftp_client::{FtpClient, FtpError};

use crate::control::{io_error, open_session, spread_source};
use crate::probe::probe_loop;
use crate::progress::Progress;
use crate::run::{Outcome, Run, TICK};
use crate::stats::{Metric, Tally};

/// Least time allowed for opening the sessions.
const MIN_OPENING: Duration = Duration::from_secs(60);
/// Stack of an opening thread.
const STACK: usize = 256 * 1024;

/// What the threads of an idle run tell the main thread.
enum Msg {
    /// A pool thread has opened its share.
    Opened,
    /// A thread has finished (after the final check) with its tally.
    Done(Tally),
}

/// The phases the main thread moves the others through.
struct Phases {
    /// No more sessions may be opened.
    opening_over: AtomicBool,
    /// The hold is on: the probe's latencies count.
    holding: AtomicBool,
    /// The hold is over: check the sessions and finish.
    over: Mutex<bool>,
    changed: Condvar,
}

impl Phases {
    fn end(&self) {
        *self.over.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_all();
    }

    fn is_over(&self) -> bool {
        *self.over.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the end of the hold, at most until `limit`.
    fn wait_for_end(&self, limit: Instant) {
        let mut over = self.over.lock().unwrap_or_else(PoisonError::into_inner);
        while !*over {
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            over = self.changed.wait_timeout(over, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// Runs the idle scenario with `probe` as the probe session.
/// Waits at most `wait` for one report from the pool: `Opened` counts into `opened`, `Done` merges its tally and
/// counts `pending` down. False once every sender is gone.
fn receive(
    rx: &mpsc::Receiver<Msg>,
    wait: Duration,
    opened: &mut usize,
    pending: &mut usize,
    tally: &mut Tally,
) -> bool {
    match rx.recv_timeout(wait) {
        Ok(Msg::Opened) => *opened += 1,
        Ok(Msg::Done(t)) => {
            tally.merge(&t);
            *pending -= 1;
        }
        Err(RecvTimeoutError::Timeout) => {}
        Err(RecvTimeoutError::Disconnected) => return false,
    }
    true
}

pub fn run_idle(run: Arc<Run>, probe: FtpClient, progress: &mut Progress) -> Outcome {
    let plan = &run.plan;
    let phases = Arc::new(Phases {
        opening_over: AtomicBool::new(false),
        holding: AtomicBool::new(false),
        over: Mutex::new(false),
        changed: Condvar::new(),
    });
    let opening_cap = plan.duration.max(MIN_OPENING);
    // Every thread's own waits are bounded by this, whatever the main thread does.
    let last_resort = run.origin + opening_cap + plan.duration + plan.timeout * 4 + Duration::from_secs(30);
    let (tx, rx) = mpsc::channel();
    let mut tally = Tally::default();
    let mut threads = 0;
    for t in 0..plan.threads {
        let (shared, phases, tx) = (Arc::clone(&run), Arc::clone(&phases), tx.clone());
        let spawned = thread::Builder::new()
            .name(format!("idle-{t}"))
            .stack_size(STACK)
            .spawn(move || hold_share(&shared, &phases, t, &tx, last_resort));
        match spawned {
            Ok(_) => threads += 1,
            Err(e) => {
                tally.errors.add(&io_error("starting an opening thread", e));
                run.count_error();
            }
        }
    }
    let probing = {
        let (shared, phases, tx) = (Arc::clone(&run), Arc::clone(&phases), tx.clone());
        let interval = plan.probe_interval.unwrap_or_default();
        thread::Builder::new()
            .name("probe".into())
            .spawn(move || {
                let holding = || phases.holding.load(Ordering::Relaxed);
                let tally = probe_loop(&shared, probe, interval, holding, || phases.is_over());
                let _ = tx.send(Msg::Done(tally));
            })
            .is_ok()
    };
    drop(tx);
    let mut pending = threads + usize::from(probing);

    // Opening: until every pool thread has its share, or the cap.
    progress.note = "  (opening)".into();
    let mut opened = 0;
    let open_limit = run.origin + opening_cap;
    let open_give_up = open_limit + plan.timeout + Duration::from_secs(5);
    while opened < threads && Instant::now() < open_give_up {
        if Instant::now() >= open_limit {
            phases.opening_over.store(true, Ordering::Relaxed);
        }
        if !receive(&rx, TICK, &mut opened, &mut pending, &mut tally) {
            break;
        }
        progress.tick(&run);
    }
    phases.opening_over.store(true, Ordering::Relaxed);

    // Holding.
    let hold_start = Instant::now();
    let hold_end = hold_start + plan.duration;
    phases.holding.store(true, Ordering::Relaxed);
    progress.note = "  (holding)".into();
    while Instant::now() < hold_end {
        let left = hold_end.saturating_duration_since(Instant::now()).min(TICK);
        if !receive(&rx, left, &mut opened, &mut pending, &mut tally) {
            break;
        }
        progress.tick(&run);
    }
    let held = hold_start.elapsed();
    phases.holding.store(false, Ordering::Relaxed);
    phases.end();
    run.stop.store(true, Ordering::Relaxed);

    // Checking: every thread asks its sessions NOOP and reports.
    progress.note = "  (checking)".into();
    let give_up = Instant::now() + plan.timeout * 2 + Duration::from_secs(5);
    while pending > 0 && Instant::now() < give_up {
        if !receive(&rx, TICK, &mut opened, &mut pending, &mut tally) {
            break;
        }
        progress.tick(&run);
    }
    for _ in 0..pending {
        tally.errors.add_kind("unfinished", "a thread did not finish its final check in time".into());
    }
    Outcome {
        latencies: run.recorder.merged(),
        elapsed: run.origin.elapsed(),
        tally,
        stopped_by: "duration",
        held: Some(held),
        ramp: None,
    }
}

/// One pool thread: opens sessions `first`, `first + threads` ..., holds them until the hold is over, then checks
/// them and reports.
fn hold_share(run: &Run, phases: &Phases, first: usize, tx: &Sender<Msg>, last_resort: Instant) {
    let plan = &run.plan;
    let mut tally = Tally::default();
    let mut held = Vec::new();
    for index in (first..plan.sessions).step_by(plan.threads) {
        if phases.opening_over.load(Ordering::Relaxed) || phases.is_over() {
            break;
        }
        let source = plan.spread.then(|| spread_source(index));
        let begin = Instant::now();
        match open_session(plan.target, source, &plan.user, &plan.pass, plan.timeout, plan.tls.as_ref()) {
            Ok(control) => {
                run.recorder.record(index, Metric::Login, begin.elapsed());
                run.sessions.fetch_add(1, Ordering::Relaxed);
                tally.sessions_established += 1;
                held.push(control);
            }
            Err(e) => {
                tally.errors.add(&e);
                run.count_error();
            }
        }
    }
    // The receiver is gone only when the run is being abandoned.
    let _ = tx.send(Msg::Opened);
    phases.wait_for_end(last_resort);
    let deadline = Instant::now() + plan.timeout;
    let mut asked = Vec::with_capacity(held.len());
    for mut control in held {
        match control.send_command("NOOP") {
            Ok(()) => asked.push(control),
            Err(e) => {
                tally.errors.add(&e);
                run.count_error();
            }
        }
    }
    for control in &mut asked {
        let result = control.read_reply_by(deadline).and_then(|reply| match reply.code {
            200 => Ok(()),
            _ => Err(FtpError::Unexpected { command: "NOOP".into(), reply }),
        });
        match result {
            Ok(()) => tally.sessions_alive += 1,
            Err(e) => {
                tally.errors.add(&e);
                run.count_error();
            }
        }
    }
    let _ = tx.send(Msg::Done(tally));
}
