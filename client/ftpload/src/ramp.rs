//! The `ramp` scenario (after dkftpbench): how many sessions, each downloading at a fixed rate, can the server
//! sustain?
//!
//! Every `--step-interval` the sessions running so far are judged, then one is added. Each session downloads
//! `--file` over and over, throttled to `--rate`. Every session's byte counter is sampled about ten times a second;
//! a session is judged once it has been transferring for a whole `--window`, by its rate over the last window. If
//! every judged session kept at least [`THRESHOLD`] of its rate, the number judged is a count the server held; if
//! one fell short (or a session failed), the ramp stops. It also stops once all `--max-sessions` have been judged
//! and held, or at `--duration`. The result is the largest count held.
//!
//! The clock and these rules are [`Judge`], the same whatever runs the sessions; it runs in this thread, which
//! also draws the progress line, and samples every session through the run's shared [`crate::run::Slot`] counters.
//! Plain FTP sessions run in [`event_loop`]: non-blocking state machines ([`dialogue`]) on `--threads` mio poll
//! loops, session `i` on loop `i % threads` ([`run_loops`]), because with a thread per session the load tool's own
//! wake-ups (each session wakes about fifty times a second to take its next throttled grant) became what the ramp
//! measured: at about 1,100 sessions ftpload used six times the server's CPU; and one loop thread was in turn
//! saturated at about 2,400. FTPS sessions (`--tls`) still run one thread each ([`crate::worker`]): TLS on a
//! non-blocking loop is not worth its code for a scenario that measures how many plain transfers a server holds.

mod dialogue;
mod event_loop;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::Plan;
use crate::control::io_error;
use crate::progress::Progress;
use crate::run::{collect, spawn_session, Outcome, Run, Slot};
use crate::stats::Tally;
use crate::throttle::rate_ratio;

/// Fraction of its rate a session must keep over the window.
pub const THRESHOLD: f64 = 0.9;
/// Time between two samples of the sessions' counters.
const SAMPLE: Duration = Duration::from_millis(100);

/// What the ramp found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RampResult {
    /// Bytes per second each session was asked to keep.
    pub rate: u64,
    pub step_interval_ms: u64,
    pub window_ms: u64,
    pub max_sessions: usize,
    pub sessions_added: usize,
    /// The most sessions that all kept their rate over a whole window.
    pub sessions_held: usize,
    /// The lowest rate ratio at the last judgement.
    pub worst_ratio: Option<f64>,
    /// `rate-missed`, `session-failed`, `max-sessions` or `duration`.
    pub stop_reason: &'static str,
}

/// The judgement of the sessions at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Sessions with a whole window of history.
    pub judged: usize,
    /// The lowest ratio of achieved to asked rate among them.
    pub worst: Option<f64>,
}

impl Verdict {
    pub fn held(&self) -> bool {
        self.worst.is_none_or(|w| w >= THRESHOLD)
    }
}

/// Judges sessions by the bytes they moved over their windows: `(bytes, elapsed)` for each judged session.
pub fn judge(windows: impl IntoIterator<Item = (u64, Duration)>, rate: u64) -> Verdict {
    let mut judged = 0;
    let mut worst: Option<f64> = None;
    for (bytes, elapsed) in windows {
        judged += 1;
        let ratio = rate_ratio(bytes, elapsed, rate);
        worst = Some(worst.map_or(ratio, |w| w.min(ratio)));
    }
    Verdict { judged, worst }
}

/// Samples of one session's byte counter: the oldest kept is the newest one at least a window old.
#[derive(Default, Clone)]
struct History {
    samples: VecDeque<(Instant, u64)>,
}

impl History {
    fn push(&mut self, now: Instant, bytes: u64, window: Duration) {
        self.samples.push_back((now, bytes));
        let start = now.checked_sub(window);
        while let (Some(start), Some((second, _))) = (start, self.samples.get(1)) {
            if *second > start {
                break;
            }
            self.samples.pop_front();
        }
    }

    /// Bytes moved and time taken since the sample a whole window ago, if there is one.
    fn window(&self, window: Duration) -> Option<(u64, Duration)> {
        let (first_at, first) = self.samples.front()?;
        let (last_at, last) = self.samples.back()?;
        let span = last_at.duration_since(*first_at);
        (span >= window).then(|| (last - first, span))
    }
}

/// What one turn of the ramp decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Nothing to do before the next turn.
    Wait,
    /// Add the next session (number [`Judge::added`]), then report it with [`Judge::add`].
    Add,
    /// The ramp is over, for this reason.
    Stop(&'static str),
}

/// The ramp's clock and stop rules: when to sample, judge and add a session, and what it found. It reads the
/// sessions' counters through a closure, so it does not care whether they are threads or state machines.
pub struct Judge {
    step: Duration,
    window: Duration,
    rate: u64,
    max: usize,
    histories: Vec<History>,
    added: usize,
    held: usize,
    worst: Option<f64>,
    next_step: Instant,
}

impl Judge {
    /// The ramp of `plan`, whose first step is due at `now`.
    pub fn new(plan: &Plan, now: Instant) -> Judge {
        let (step, window) = match &plan.ramp {
            Some(r) => (r.step, r.window),
            None => (Duration::from_secs(1), Duration::from_secs(1)),
        };
        Judge {
            step,
            window,
            rate: plan.rate.unwrap_or(1),
            max: plan.sessions,
            histories: vec![History::default(); plan.sessions],
            added: 0,
            held: 0,
            worst: None,
            next_step: now,
        }
    }

    /// One turn at `now`: the end of the run at `deadline`, a sample of every session's counter (`bytes(i)`: the
    /// bytes session `i` has received, once it is streaming), and, when a step is due, the judgement.
    pub fn turn(&mut self, now: Instant, deadline: Instant, mut bytes: impl FnMut(usize) -> Option<u64>) -> Turn {
        if now >= deadline {
            return Turn::Stop("duration");
        }
        for (index, history) in self.histories.iter_mut().enumerate().take(self.added) {
            if let Some(bytes) = bytes(index) {
                history.push(now, bytes, self.window);
            }
        }
        if now >= self.next_step {
            self.next_step += self.step;
            let verdict =
                judge(self.histories.iter().take(self.added).filter_map(|h| h.window(self.window)), self.rate);
            if verdict.judged > 0 {
                self.worst = verdict.worst;
            }
            if !verdict.held() {
                return Turn::Stop("rate-missed");
            }
            self.held = self.held.max(verdict.judged);
            log::debug!(
                "ramp step: {} added, {} judged, {} held, worst {:?}",
                self.added,
                verdict.judged,
                self.held,
                self.worst
            );
            if self.held == self.max {
                return Turn::Stop("max-sessions");
            }
            if self.added < self.max {
                return Turn::Add;
            }
        }
        Turn::Wait
    }

    /// The session asked for by [`Turn::Add`] exists (it may fail at once; it counts as added).
    pub fn add(&mut self) {
        self.added += 1;
    }

    /// Sessions added so far.
    pub fn added(&self) -> usize {
        self.added
    }

    /// When the next turn is due, after one at `now`: a sample later, or at the next step if that is sooner.
    pub fn next_turn(&self, now: Instant) -> Instant {
        (now + SAMPLE).min(self.next_step)
    }

    /// The ramp's part of the progress line.
    pub fn note(&self) -> String {
        format!("  ramp: {} added, {} held", self.added, self.held)
    }

    /// What the ramp found, stopped for `reason`.
    pub fn result(&self, reason: &'static str) -> RampResult {
        RampResult {
            rate: self.rate,
            step_interval_ms: u64::try_from(self.step.as_millis()).unwrap_or(u64::MAX),
            window_ms: u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX),
            max_sessions: self.max,
            sessions_added: self.added,
            sessions_held: self.held,
            worst_ratio: self.worst,
            stop_reason: reason,
        }
    }
}

/// Runs the ramp: plain sessions on event loops, FTPS sessions on threads.
pub fn run_ramp(run: Arc<Run>, progress: &mut Progress) -> Outcome {
    if run.plan.tls.is_some() {
        run_threads(run, progress)
    } else {
        run_loops(run, progress)
    }
}

/// What the judge samples of session `index`: its bytes, once it is streaming.
fn sampled(run: &Run, index: usize) -> Option<u64> {
    run.slots.get(index).and_then(Slot::sampled)
}

/// The ramp with plain sessions spread over `--threads` poll loops ([`event_loop::Shards`]), judged here. Between
/// turns this thread waits on the loops' failure channel, until the judge's next turn at the latest, so a failed
/// session ends the ramp at once.
fn run_loops(run: Arc<Run>, progress: &mut Progress) -> Outcome {
    let mut judge = Judge::new(&run.plan, Instant::now());
    let mut shards = event_loop::Shards::new(&run);
    let (failed_tx, failed) = mpsc::channel();
    let started = shards.start(&failed_tx);
    // The loops hold the only senders: if every one has ended, the channel says so instead of waiting.
    drop(failed_tx);
    let mut early = Tally::default();
    let reason = match started {
        Err(e) => {
            early.errors.add(&e);
            run.count_error();
            "session-failed"
        }
        Ok(()) => loop {
            let now = Instant::now();
            match judge.turn(now, run.deadline, |index| sampled(&run, index)) {
                Turn::Stop(reason) => break reason,
                Turn::Add => {
                    // A loop ends early only when one of its sessions failed (or it panicked): the ramp is over.
                    if !shards.add(judge.added()) {
                        break "session-failed";
                    }
                    judge.add();
                }
                Turn::Wait => {}
            }
            progress.note = judge.note();
            progress.tick(&run);
            match failed.recv_timeout(judge.next_turn(now).saturating_duration_since(Instant::now())) {
                Ok(shard) => {
                    log::debug!("ramp: a session on loop {shard} failed");
                    break "session-failed";
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break "session-failed",
            }
        },
    };
    let mut tally = shards.stop();
    tally.merge(&early);
    outcome(&run, tally, judge.result(reason))
}

/// The ramp with a thread per session ([`crate::worker::session`]), for FTPS.
fn run_threads(run: Arc<Run>, progress: &mut Progress) -> Outcome {
    let mut judge = Judge::new(&run.plan, Instant::now());
    let (tx, rx) = mpsc::channel();
    let mut tally = Tally::default();
    let mut ended = 0;
    let reason = loop {
        let now = Instant::now();
        match judge.turn(now, run.deadline, |index| sampled(&run, index)) {
            Turn::Stop(reason) => break reason,
            Turn::Add => {
                if let Err(e) = spawn_session(&run, judge.added(), tx.clone()) {
                    tally.errors.add(&io_error("starting a session thread", e));
                    run.count_error();
                    break "session-failed";
                }
                judge.add();
            }
            Turn::Wait => {}
        }
        match rx.recv_timeout(judge.next_turn(now).saturating_duration_since(Instant::now())) {
            Ok(t) => {
                tally.merge(&t);
                ended += 1;
                break "session-failed";
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        progress.note = judge.note();
        progress.tick(&run);
    };
    run.stop.store(true, Ordering::Relaxed);
    drop(tx);
    collect(&run, &rx, judge.added() - ended, &mut tally, progress);
    outcome(&run, tally, judge.result(reason))
}

/// The outcome of a ramp that stopped with `ramp`.
fn outcome(run: &Run, tally: Tally, ramp: RampResult) -> Outcome {
    Outcome {
        latencies: run.recorder.merged(),
        elapsed: run.origin.elapsed(),
        tally,
        stopped_by: ramp.stop_reason,
        held: None,
        ramp: Some(ramp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_hold_at_ninety_percent() {
        let second = Duration::from_secs(1);
        let v = judge([(100_000, second), (95_000, second), (90_000, second)], 100_000);
        assert_eq!(v.judged, 3);
        assert!(v.held(), "{v:?}");
        let v = judge([(100_000, second), (89_000, second)], 100_000);
        assert!(!v.held());
        assert!((v.worst.expect("worst") - 0.89).abs() < 1e-9);
        let none = judge(std::iter::empty(), 100_000);
        assert_eq!(none, Verdict { judged: 0, worst: None });
        assert!(none.held());
    }

    fn plan(max: &str) -> Plan {
        use clap::Parser;
        let args =
            ["ftpload", "21", "ramp", "--file", "f", "--rate", "1000", "--step-interval", "100", "--window", "100"];
        let args = crate::args::Args::try_parse_from(args.into_iter().chain(["--max-sessions", max])).expect("args");
        Plan::from_args(args).expect("plan")
    }

    // The stop rules over a simulated clock: a session is added at every step until all are judged and held.
    #[test]
    fn judge_adds_until_every_session_held() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let end = at(60_000);
        let mut j = Judge::new(&plan("2"), t0);
        assert_eq!(j.turn(at(0), end, |_| None), Turn::Add);
        j.add();
        // Between steps only samples are taken.
        assert_eq!(j.turn(at(50), end, |_| Some(0)), Turn::Wait);
        assert_eq!(j.next_turn(at(50)), at(100));
        // Session 0 has no whole window yet: nothing judged, so the next is added.
        assert_eq!(j.turn(at(100), end, |_| Some(50)), Turn::Add);
        j.add();
        // Session 0 moved 100 bytes in 100 ms at 1000 B/s: held; session 1 not yet streaming. All are added.
        assert_eq!(j.turn(at(200), end, |i| [Some(150), None][i]), Turn::Wait);
        assert_eq!(j.turn(at(300), end, |i| [Some(250), Some(0)][i]), Turn::Wait);
        assert_eq!(j.turn(at(400), end, |i| [Some(350), Some(100)][i]), Turn::Stop("max-sessions"));
        let r = j.result("max-sessions");
        assert_eq!((r.sessions_added, r.sessions_held, r.max_sessions), (2, 2, 2));
        assert_eq!(r.worst_ratio, Some(1.0));
        assert_eq!((r.step_interval_ms, r.window_ms, r.rate), (100, 100, 1000));
    }

    #[test]
    fn judge_stops_at_a_missed_rate_and_at_the_deadline() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut j = Judge::new(&plan("5"), t0);
        assert_eq!(j.turn(at(0), at(1000), |_| None), Turn::Add);
        j.add();
        assert_eq!(j.turn(at(100), at(1000), |_| Some(0)), Turn::Add);
        j.add();
        // 89 bytes in 100 ms of 1000 B/s: below 90 %.
        assert_eq!(j.turn(at(200), at(1000), |_| Some(89)), Turn::Stop("rate-missed"));
        let r = j.result("rate-missed");
        assert_eq!((r.sessions_added, r.sessions_held), (2, 0));
        assert!((r.worst_ratio.expect("worst") - 0.89).abs() < 1e-9, "{r:?}");
        let mut j = Judge::new(&plan("5"), t0);
        assert_eq!(j.turn(at(1000), at(1000), |_| None), Turn::Stop("duration"));
    }

    #[test]
    fn history_keeps_one_whole_window() {
        let t0 = Instant::now();
        let window = Duration::from_millis(500);
        let mut h = History::default();
        for i in 0..=10u64 {
            h.push(t0 + Duration::from_millis(100 * i), 1000 * i, window);
        }
        // At 1000 ms the oldest sample kept is the one at 500 ms.
        assert_eq!(h.samples.front().map(|s| s.1), Some(5000));
        assert_eq!(h.window(window), Some((5000, window)));
        let mut young = History::default();
        young.push(t0, 0, window);
        young.push(t0 + Duration::from_millis(300), 300, window);
        assert_eq!(young.window(window), None);
    }
}
