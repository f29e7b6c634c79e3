//! Many transfers at once: the queue of file transfers that `mget`, `mput`, `mirror`, `get -r` and `put -r` hand
//! over, run on the session's own connection and, with `--parallel N`, on N-1 more connections opened and logged
//! in the same way, each starting in the session's directory.
//!
//! Each transfer is one `get` or `upload` as the single-file commands do them (temporary file, verification by
//! HASH or SIZE), followed by setting the copy's modification time when the source's is known (locally, and with
//! MFMT on the server); a large download has its digest asked for on a second session meanwhile, as a single
//! `get` does. With `--retries`, a transfer whose connection dropped is tried again on a new connection
//! (logged in, back in the session's directory), resuming with REST as the single-file commands do. A failed
//! transfer is recorded and the others go on; Ctrl-C stops every connection's transfer and empties the queue.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::SystemTime;

use log::debug;

use crate::connect::Login;
use crate::hash_ahead::HASH_AHEAD_MIN;
use crate::progress::Board;
use crate::shell::retry::{retried_get, Reconnect};
use crate::transfer::{self, Options};
use ftp_client::FtpClient;

/// One file to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Download `remote` (`size` bytes, when a listing said) to `local`, then give `local` the time `mtime`.
    Get { remote: String, local: PathBuf, size: Option<u64>, mtime: Option<SystemTime> },
    /// Upload `local` to `remote`, then give `remote` the time `mtime`.
    Put { local: PathBuf, remote: String, mtime: Option<SystemTime> },
}

impl Job {
    /// `get REMOTE -> LOCAL` or `upload LOCAL -> REMOTE`.
    pub fn label(&self) -> String {
        match self {
            Job::Get { remote, local, .. } => format!("get {remote} -> {}", local.display()),
            Job::Put { local, remote, .. } => format!("upload {} -> {remote}", local.display()),
        }
    }

    /// Runs the transfer, with `reconnect`'s retries if given (each retry resumes what the last attempt moved;
    /// `warn` is told of it); returns the size of the file moved. `client` may be a new connection afterwards.
    /// With `login`, a large download's digest is asked for on a second session meanwhile (see `hash_ahead`).
    fn run(
        &self,
        client: &mut FtpClient,
        opts: Options,
        reconnect: Option<&Reconnect<'_>>,
        login: Option<&Login>,
        warn: &mut dyn FnMut(&str),
    ) -> Result<u64, String> {
        let label = self.label();
        let mut attempt =
            |client: &mut FtpClient, what: &dyn Fn(&mut FtpClient, bool) -> Result<String, String>| match reconnect {
                Some(reconnect) => reconnect.run(client, &label, warn, what),
                None => what(client, false),
            };
        match self {
            Job::Get { remote, local, size, mtime } => {
                let shown = local.to_str().ok_or_else(|| format!("{} is not valid UTF-8", local.display()))?;
                // A retry continues what the failed attempt kept; see `retried_get`.
                let replaces = local.exists();
                // Only for files the listing says are large: for small ones a second session would cost more than
                // it saves.
                let beside = login.filter(|_| size.is_some_and(|size| size >= HASH_AHEAD_MIN));
                attempt(client, &|client, retry| {
                    let opts = if retry { retried_get(opts, replaces) } else { opts };
                    transfer::get(client, remote, Some(shown), opts, beside)
                })?;
                let file = OpenOptions::new().write(true).open(local).map_err(|e| format!("{}: {e}", local.display()));
                let file = file?;
                if let Some(time) = mtime {
                    file.set_modified(*time).map_err(|e| format!("setting the time of {}: {e}", local.display()))?;
                }
                file.metadata().map(|m| m.len()).map_err(|e| format!("{}: {e}", local.display()))
            }
            Job::Put { local, remote, mtime } => {
                let shown = local.to_str().ok_or_else(|| format!("{} is not valid UTF-8", local.display()))?;
                // A retry continues what the server has, unless that is the old copy of a file being replaced.
                let replaces = reconnect.is_some() && client.size(remote).is_ok();
                attempt(client, &|client, retry| {
                    let resume = retry && !replaces;
                    transfer::upload(client, shown, Some(remote), Options { resume, ..opts })
                })?;
                if let Some(time) = mtime {
                    // A server without MFMT keeps its own time; the copy is still complete and verified.
                    if let Err(e) = client.set_mtime(remote, *time) {
                        debug!("MFMT {remote}: {e}");
                    }
                }
                std::fs::metadata(local).map(|m| m.len()).map_err(|e| format!("{}: {e}", local.display()))
            }
        }
    }
}

/// What a run of jobs achieved.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Transfers completed and verified.
    pub done: usize,
    /// Their bytes.
    pub bytes: u64,
    /// One line per failed (or, after Ctrl-C, never started) transfer: `LABEL: why`.
    pub failures: Vec<String>,
}

/// Where more connections come from (extra ones for `--parallel`, new ones for `--retries`, second sessions for
/// the server's digest of a large download): how to log in, and the directory to start in.
pub struct Extra<'a> {
    pub login: &'a Login,
    pub cwd: String,
}

/// Runs `jobs` over `client` and, when `parallel` > 1 and `extra` says how, `parallel - 1` more connections. With
/// `retries` (and `extra`), a transfer whose connection dropped is tried again on a new one (see [`Reconnect`]).
pub fn run_jobs(
    client: &mut FtpClient,
    extra: Option<Extra<'_>>,
    jobs: Vec<Job>,
    parallel: usize,
    opts: Options,
    retries: u32,
    interrupt: Option<&Arc<AtomicBool>>,
) -> Outcome {
    let more = match &extra {
        Some(_) => parallel.saturating_sub(1).min(jobs.len().saturating_sub(1)),
        None => 0,
    };
    // Several transfers at once draw their bars as the lines of one board, under the total.
    let board = (opts.progress && more > 0).then(|| Board::start("total", jobs.len() as u64));
    let board = board.as_ref();
    let queue = Mutex::new(VecDeque::from(jobs));
    let outcome = Mutex::new(Outcome::default());
    let reconnect = match &extra {
        Some(extra) if retries > 0 => {
            Some(Reconnect { login: extra.login, cwd: Some(extra.cwd.as_str()), retries, interrupt })
        }
        _ => None,
    };
    let login = extra.as_ref().map(|extra| extra.login);
    let runner =
        Runner { queue: &queue, outcome: &outcome, opts, reconnect: reconnect.as_ref(), login, interrupt, board };
    thread::scope(|scope| {
        if let Some(extra) = &extra {
            for _ in 0..more {
                let runner = &runner;
                scope.spawn(move || match open_worker(extra, interrupt) {
                    Ok(mut worker) => {
                        runner.work(&mut worker);
                        let _ = worker.quit();
                    }
                    // The other connections take this one's share.
                    Err(msg) => debug!("an extra connection failed: {msg}"),
                });
            }
        }
        runner.work(client);
    });
    let mut outcome = outcome.into_inner().unwrap_or_else(|e| e.into_inner());
    for job in queue.into_inner().unwrap_or_else(|e| e.into_inner()) {
        outcome.failures.push(format!("{}: not started", job.label()));
    }
    outcome
}

fn open_worker(extra: &Extra<'_>, interrupt: Option<&Arc<AtomicBool>>) -> Result<FtpClient, String> {
    let mut client = extra.login.open()?;
    client.cwd(&extra.cwd).map_err(|e| e.to_string())?;
    client.set_interrupt(interrupt.cloned());
    Ok(client)
}

/// What every connection's loop shares.
struct Runner<'a> {
    queue: &'a Mutex<VecDeque<Job>>,
    outcome: &'a Mutex<Outcome>,
    opts: Options,
    reconnect: Option<&'a Reconnect<'a>>,
    /// How to open the second session that hashes a large download on the server meanwhile.
    login: Option<&'a Login>,
    interrupt: Option<&'a Arc<AtomicBool>>,
    board: Option<&'a Board>,
}

impl Runner<'_> {
    /// Takes jobs off the queue until it is empty, the connection is lost (for good) or Ctrl-C is pressed.
    fn work(&self, client: &mut FtpClient) {
        let mut warn = |msg: &str| {
            let line = format!("warning: {}", crate::visible::visible(msg));
            match self.board {
                Some(board) => board.println(&line),
                None => eprintln!("{line}"),
            }
        };
        loop {
            if self.interrupt.is_some_and(|flag| flag.load(Ordering::Relaxed)) || client.is_closed() {
                return;
            }
            let Some(job) = self.queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else { return };
            let result = job.run(client, self.opts, self.reconnect, self.login, &mut warn);
            if let Some(board) = self.board {
                board.file_done();
            }
            let mut outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(bytes) => {
                    outcome.done += 1;
                    outcome.bytes += bytes;
                }
                Err(msg) => outcome.failures.push(format!("{}: {msg}", job.label())),
            }
        }
    }
}
