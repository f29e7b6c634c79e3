//! The bystander probe: one logged-in session, opened before the load, that sends NOOP every `--probe-interval`
//! while the load runs and records each round trip as [`Metric::Noop`] — but only those taken while the load is in
//! the phase being measured (idle: while the sessions are held; get, put, small, mixed: while a transfer is
//! running), so the figure is how the server answers a bystander *under* that load.
//!
//! [`probe_loop`] is the loop itself; the caller says when a round trip counts and when to stop. [`Bystander`]
//! runs it on its own thread beside the per-connection scenarios. The probe owns its session and quits it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ftp_client::FtpClient;

use crate::control::io_error;
use crate::run::Run;
use crate::stats::{Metric, Tally};

/// The histogram shard the probe records into (sessions use their index; the shard is only for contention).
const PROBE_SHARD: usize = 0;

/// NOOP round trips on `probe` every `interval` until `over()`; a round trip is recorded when `counts()` held
/// both when it was sent and when its reply came. Returns the probe's errors; gives up when its session closes.
pub fn probe_loop(
    run: &Run,
    mut probe: FtpClient,
    interval: Duration,
    counts: impl Fn() -> bool,
    over: impl Fn() -> bool,
) -> Tally {
    let mut tally = Tally::default();
    while !over() {
        let counted = counts();
        let begin = Instant::now();
        match probe.noop() {
            Ok(()) => {
                if counted && counts() {
                    run.recorder.record(PROBE_SHARD, Metric::Noop, begin.elapsed());
                }
            }
            Err(e) => {
                tally.errors.add(&e);
                run.count_error();
                if probe.is_closed() {
                    break;
                }
            }
        }
        if !interval.is_zero() {
            thread::sleep(interval);
        }
    }
    if !probe.is_closed() {
        let _ = probe.quit();
    }
    tally
}

/// The probe on its own thread beside the sessions of get, put, small and mixed: it counts while at least one
/// transfer is running and stops when told.
pub struct Bystander {
    over: Arc<AtomicBool>,
    done: Receiver<Tally>,
}

impl Bystander {
    /// Starts probing with `probe` (a logged-in session) every `interval`. If the thread cannot start, the error
    /// is in the tally [`finish`](Self::finish) returns.
    pub fn start(run: &Arc<Run>, probe: FtpClient, interval: Duration) -> Bystander {
        let over = Arc::new(AtomicBool::new(false));
        let (tx, done) = mpsc::channel();
        let (shared, stop) = (Arc::clone(run), Arc::clone(&over));
        let spawned = thread::Builder::new().name("probe".into()).spawn(move || {
            let counts = || shared.transferring();
            let tally = probe_loop(&shared, probe, interval, counts, || stop.load(Ordering::Relaxed));
            // The receiver is gone only when the run is being abandoned.
            let _ = tx.send(tally);
        });
        if let Err(e) = spawned {
            let mut tally = Tally::default();
            tally.errors.add(&io_error("starting the probe thread", e));
            run.count_error();
            let (tx, rx) = mpsc::channel();
            let _ = tx.send(tally);
            return Bystander { over, done: rx };
        }
        Bystander { over, done }
    }

    /// Stops the probe and returns its tally; waits for it at most `limit` (one NOOP's timeout, at worst), after
    /// which it is counted as unfinished.
    pub fn finish(self, limit: Duration) -> Tally {
        self.over.store(true, Ordering::Relaxed);
        self.done.recv_timeout(limit).unwrap_or_else(|_| {
            let mut tally = Tally::default();
            tally.errors.add_kind("unfinished", "the probe session did not finish in time".into());
            tally
        })
    }
}
