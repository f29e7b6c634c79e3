//! The password verifier: argon2id checks run on one thread of their own, so a burst of logins (or a password
//! guesser) never stalls the event loop. Jobs go in over a bounded channel; answers come back over another, and a
//! `mio::Waker` tells the loop to collect them.
//!
//! The queue is bounded ([`QUEUE`]) and every job can be cancelled: a session that is gone by the time its turn
//! comes costs nothing, so a hundred clients that send a wrong PASS and hang up cannot delay an honest login by
//! the seconds their checks would take.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;

use crate::access::verify_with;

/// Password checks waiting at most, server-wide. Each takes tens of milliseconds, so this is about a second of
/// work: a login beyond it gets 421 at once rather than a wait nobody would sit through.
pub const QUEUE: usize = 32;

/// One password check: for the session numbered `session` at slab key `key`, counted against `ip`; skipped if
/// `cancelled` is set by the time its turn comes.
pub struct Job {
    pub key: usize,
    pub session: u64,
    pub ip: IpAddr,
    pub hash: String,
    pub password: String,
    pub cancelled: Arc<AtomicBool>,
}

/// One finished (or skipped) check, addressed to a connection key and the session number it had when asked.
pub struct Done {
    pub key: usize,
    pub session: u64,
    /// The address the check was counted against.
    pub ip: IpAddr,
    pub ok: bool,
}

/// Why a check could not be queued.
#[derive(Debug)]
pub enum SubmitError {
    /// [`QUEUE`] checks are waiting already.
    Full,
    /// The verifier thread is gone.
    Stopped,
}

pub struct Verifier {
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
}

impl Verifier {
    /// Starts the verifier thread; `waker` wakes the poll loop whenever an answer is ready.
    pub fn spawn(waker: Arc<mio::Waker>) -> io::Result<Verifier> {
        let (jobs, job_rx) = sync_channel::<Job>(QUEUE);
        let (done_tx, done) = channel::<Done>();
        thread::Builder::new().name("password-verifier".into()).spawn(move || {
            // argon2's working memory, kept from one check to the next.
            let mut memory = Vec::new();
            for job in job_rx {
                // A cancelled job is answered without hashing, so the loop's per-address counts stay right.
                let ok = !job.cancelled.load(Ordering::Relaxed) && verify_with(&job.hash, &job.password, &mut memory);
                let done = Done { key: job.key, session: job.session, ip: job.ip, ok };
                if done_tx.send(done).is_err() {
                    break;
                }
                // A failed wake only delays delivery until the next event; nothing is lost.
                let _ = waker.wake();
            }
        })?;
        Ok(Verifier { jobs, done })
    }

    /// Queues a check, unless [`QUEUE`] are waiting already.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Full,
            TrySendError::Disconnected(_) => SubmitError::Stopped,
        })
    }

    /// The next finished check, if any.
    pub fn poll(&self) -> Option<Done> {
        self.done.try_recv().ok()
    }
}
