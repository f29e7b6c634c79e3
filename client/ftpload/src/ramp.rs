//! The `ramp` scenario (after dkftpbench): how many sessions, each downloading at a fixed rate, can the server
//! sustain?
//!
//! Every `--step-interval` the main thread first judges the sessions running so far, then adds one. Each session
//! downloads `--file` over and over, throttled to `--rate`. The main thread samples every session's byte counter
//! about ten times a second; a session is judged once it has been transferring for a whole `--window`, by its rate
//! over the last window. If every judged session kept at least [`THRESHOLD`] of its rate, the number judged is a
//! count the server held; if one fell short (or a session failed), the ramp stops. It also stops once all
//! `--max-sessions` have been judged and held, or at `--duration`. The result is the largest count held.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::io_error;
use crate::progress::Progress;
use crate::run::{collect, spawn_session, Outcome, Run};
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

/// Runs the ramp.
pub fn run_ramp(run: Arc<Run>, progress: &mut Progress) -> Outcome {
    let plan = &run.plan;
    let (step, window) = match &plan.ramp {
        Some(r) => (r.step, r.window),
        None => (Duration::from_secs(1), Duration::from_secs(1)),
    };
    let rate = plan.rate.unwrap_or(1);
    let max = plan.sessions;
    let (tx, rx) = mpsc::channel();
    let mut tally = Tally::default();
    let mut histories = vec![History::default(); max];
    let mut added = 0;
    let mut ended = 0;
    let mut held = 0;
    let mut worst = None;
    let mut next_step = Instant::now();
    let reason = loop {
        let now = Instant::now();
        if now >= run.deadline {
            break "duration";
        }
        for (slot, history) in run.slots.iter().zip(&mut histories).take(added) {
            if slot.streaming_since.load(Ordering::Relaxed) > 0 {
                history.push(now, slot.bytes.load(Ordering::Relaxed), window);
            }
        }
        if now >= next_step {
            next_step += step;
            let verdict = judge(histories.iter().take(added).filter_map(|h| h.window(window)), rate);
            if verdict.judged > 0 {
                worst = verdict.worst;
            }
            if !verdict.held() {
                break "rate-missed";
            }
            held = held.max(verdict.judged);
            if held == max {
                break "max-sessions";
            }
            if added < max {
                if let Err(e) = spawn_session(&run, added, tx.clone()) {
                    tally.errors.add(&io_error("starting a session thread", e));
                    run.count_error();
                    break "session-failed";
                }
                added += 1;
            }
        }
        let wait = SAMPLE.min(next_step.saturating_duration_since(Instant::now()));
        match rx.recv_timeout(wait) {
            Ok(t) => {
                tally.merge(&t);
                ended += 1;
                break "session-failed";
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        progress.note = format!("  ramp: {added} added, {held} held");
        progress.tick(&run);
    };
    run.stop.store(true, Ordering::Relaxed);
    drop(tx);
    collect(&run, &rx, added - ended, &mut tally, progress);
    let ramp = RampResult {
        rate,
        step_interval_ms: u64::try_from(step.as_millis()).unwrap_or(u64::MAX),
        window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        max_sessions: max,
        sessions_added: added,
        sessions_held: held,
        worst_ratio: worst,
        stop_reason: reason,
    };
    Outcome {
        latencies: run.recorder.merged(),
        elapsed: run.origin.elapsed(),
        tally,
        stopped_by: reason,
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
