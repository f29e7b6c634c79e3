//! The password verifier: argon2id checks run on one thread of their own, so a burst of logins (or a password
//! guesser) never stalls the event loop. Jobs go in over a channel; answers come back over another, and a
//! `mio::Waker` tells the loop to collect them.

use std::io;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread;

use crate::access::verify_with;

struct Job {
    key: usize,
    session: u64,
    hash: String,
    password: String,
}

/// One finished check, addressed to a connection key and the session number it had when asked.
pub struct Done {
    pub key: usize,
    pub session: u64,
    pub ok: bool,
}

pub struct Verifier {
    jobs: Sender<Job>,
    done: Receiver<Done>,
}

impl Verifier {
    /// Starts the verifier thread; `waker` wakes the poll loop whenever an answer is ready.
    pub fn spawn(waker: mio::Waker) -> io::Result<Verifier> {
        let (jobs, job_rx) = channel::<Job>();
        let (done_tx, done) = channel::<Done>();
        let waker = Arc::new(waker);
        thread::Builder::new().name("password-verifier".into()).spawn(move || {
            // argon2's working memory, kept from one check to the next.
            let mut memory = Vec::new();
            for job in job_rx {
                let ok = verify_with(&job.hash, &job.password, &mut memory);
                if done_tx.send(Done { key: job.key, session: job.session, ok }).is_err() {
                    break;
                }
                // A failed wake only delays delivery until the next event; nothing is lost.
                let _ = waker.wake();
            }
        })?;
        Ok(Verifier { jobs, done })
    }

    /// Queues a check; fails only if the verifier thread is gone.
    pub fn submit(&self, key: usize, session: u64, hash: String, password: String) -> io::Result<()> {
        self.jobs
            .send(Job { key, session, hash, password })
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "verifier thread stopped"))
    }

    /// The next finished check, if any.
    pub fn poll(&self) -> Option<Done> {
        self.done.try_recv().ok()
    }
}
