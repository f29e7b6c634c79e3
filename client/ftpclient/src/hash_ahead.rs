//! Asking the server for a file's digest while the file downloads.
//!
//! A server computes HASH over the whole file, which for a large file takes about as long as sending it. Asked after
//! the transfer, that time adds to the download's; asked at the same time on a second session (logged in like the
//! first, in the same remote directory), it overlaps it, so a verified download takes about the longer of the two
//! instead of their sum. The local digest is computed as the bytes arrive (see [`crate::progress::Meter`]), so
//! nothing is read twice. The second session is worth opening only for large files ([`HASH_AHEAD_MIN`]); when it
//! cannot connect, log in or get an answer, the first session asks HASH afterwards as before.
//!
//! This module owns the second session's thread and nothing else: it never touches the first session or the local
//! file. A thread whose answer is no longer wanted (the download failed) finishes on its own, bounded by the
//! session's timeouts.

use std::sync::mpsc;
use std::thread;

use log::debug;

use crate::connect::Login;
use ftp_client::{FileHash, FtpClient};

/// Files at least this large (bytes) get their digest asked for on a second session during the download: below
/// it the server's HASH takes a few milliseconds (about 0.8 s per GiB on our server), less than opening and
/// logging in a second session may cost on a distant server.
pub const HASH_AHEAD_MIN: u64 = 32 * 1024 * 1024;

/// A HASH under way on a second session.
pub struct HashAhead {
    answer: mpsc::Receiver<Result<FileHash, String>>,
}

impl HashAhead {
    /// Starts asking for the `algorithm` digest of `remote` on a new session opened with `login`; `cwd` is the
    /// first session's directory, which a relative `remote` is taken from (`None` for an absolute one).
    pub fn start(login: &Login, cwd: Option<String>, remote: &str, algorithm: &str) -> HashAhead {
        let (tx, answer) = mpsc::channel();
        let (login, remote, algorithm) = (login.clone(), remote.to_string(), algorithm.to_string());
        thread::spawn(move || {
            let result = ask(&login, cwd.as_deref(), &remote, &algorithm);
            // The receiver is gone when the download failed: nobody wants the answer.
            let _ = tx.send(result);
        });
        HashAhead { answer }
    }

    /// The server's answer, waiting for it if needed (at most the second session's timeouts).
    pub fn wait(self) -> Result<FileHash, String> {
        self.answer.recv().unwrap_or_else(|_| Err("the second session ended without an answer".to_string()))
    }
}

/// Opens the second session, asks, and leaves.
fn ask(login: &Login, cwd: Option<&str>, remote: &str, algorithm: &str) -> Result<FileHash, String> {
    let mut client = login.open()?;
    let result = hash_in(&mut client, cwd, remote, algorithm);
    if let Err(e) = client.quit() {
        debug!("QUIT on the HASH session: {e}");
    }
    result
}

fn hash_in(client: &mut FtpClient, cwd: Option<&str>, remote: &str, algorithm: &str) -> Result<FileHash, String> {
    if let Some(cwd) = cwd {
        client.cwd(cwd).map_err(|e| format!("back to {cwd}: {e}"))?;
    }
    client.select_hash(algorithm).map_err(|e| e.to_string())?;
    client.hash(remote).map_err(|e| e.to_string())
}
