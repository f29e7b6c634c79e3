//! `--retries N`: a transfer whose connection dropped (or that the server ended with 421 and a close) is tried
//! again on a new connection, logged in as before and back in the same remote directory, resuming where it stopped:
//! a download continues the `NAME.part` it kept (REST), an upload continues what the server has (SIZE, REST). The
//! waits between attempts double from one second up to a limit; Ctrl-C ends them. Only a lost connection is
//! retried: a refusal such as 550 would be refused again. [`Reconnect`] does this for any transfer on any
//! connection: the single-file commands here, and each file of `mget`, `mput` and `mirror` (see [`crate::jobs`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;

use super::Shell;
use crate::connect::Login;
use crate::local::download_target;
use crate::transfer::{self, Options};
use ftp_client::FtpClient;

/// The first wait before reconnecting; each further one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often a wait looks at the Ctrl-C flag.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// The wait before retry number `n` (1-based).
pub fn backoff(n: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << n.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// `--retries` for a transfer: how often to try again, and how to open a connection like the lost one.
pub struct Reconnect<'a> {
    /// How to connect and log in.
    pub login: &'a Login,
    /// The remote directory the new connection returns to (none: where the login leaves it).
    pub cwd: Option<&'a str>,
    /// Most retries.
    pub retries: u32,
    /// Ctrl-C: no retry once it is pressed, and it ends a wait.
    pub interrupt: Option<&'a Arc<AtomicBool>>,
}

impl Reconnect<'_> {
    /// Runs `attempt` (told whether it is a retry) on `client` until it succeeds, fails for a reason other than a
    /// lost connection, or the retries are used up; before each retry `*client` is replaced by a new connection,
    /// logged in and in the same directory, after a wait that doubles each time. `warn` is told of each retry;
    /// `what` names the transfer in what it is told.
    pub fn run<T>(
        &self,
        client: &mut FtpClient,
        what: &str,
        warn: &mut dyn FnMut(&str),
        mut attempt: impl FnMut(&mut FtpClient, bool) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut result = attempt(client, false);
        let mut tries = 0;
        while let Err(msg) = &result {
            if tries >= self.retries || self.ctrl_c_pending() || !connection_lost(client) {
                break;
            }
            tries += 1;
            let wait = backoff(tries);
            warn(&format!("{what}: {msg}; reconnecting in {} s (retry {tries} of {})", wait.as_secs(), self.retries));
            if !self.wait_unless_interrupted(wait) {
                break;
            }
            match self.open() {
                Ok(fresh) => {
                    *client = fresh;
                    result = attempt(client, true);
                }
                Err(why) => result = Err(format!("{msg}; reconnecting failed: {why}")),
            }
        }
        result
    }

    fn ctrl_c_pending(&self) -> bool {
        self.interrupt.is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// Waits `wait`, or less if Ctrl-C is pressed; returns false then.
    fn wait_unless_interrupted(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.ctrl_c_pending() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(WAIT_SLICE));
        }
    }

    /// A new connection, logged in and in the directory to return to.
    fn open(&self) -> Result<FtpClient, String> {
        let mut client = self.login.open()?;
        if let Some(cwd) = self.cwd {
            client.cwd(cwd).map_err(|e| format!("back to {cwd}: {e}"))?;
        }
        client.set_interrupt(self.interrupt.map(Arc::clone));
        debug!("reconnected to {}", client.peer_addr());
        Ok(client)
    }
}

/// True when `client`'s connection is gone (a NOOP finds out for one that looks open).
fn connection_lost(client: &mut FtpClient) -> bool {
    client.is_closed() || client.noop().is_err()
}

/// The options of a retried download: it continues what the failed attempt kept, from `LOCAL.part` when the
/// download replaces an existing file (`replaces`: the file existed before the first attempt), since `LOCAL` is
/// then the old copy.
pub fn retried_get(opts: Options, replaces: bool) -> Options {
    Options { resume: true, continue_part: replaces && !opts.resume, ..opts }
}

impl Shell<'_> {
    /// `get REMOTE [LOCAL]` with retries; a retry continues what was received.
    pub(super) fn get_retrying(&mut self, remote: &str, local: Option<&str>, opts: Options) -> Result<String, String> {
        let replaces = download_target(remote, local).is_ok_and(|t| Path::new(&t).exists());
        // The server's digest is asked for on a second session during the download (see `hash_ahead`).
        let login = self.login.clone();
        self.retrying(remote, |client, retry| {
            let opts = if retry { retried_get(opts, replaces) } else { opts };
            transfer::get(client, remote, local, opts, login.as_ref())
        })
    }

    /// `upload LOCAL [REMOTE]` with retries; a retry continues what the server received, unless the upload
    /// replaces an existing remote file (it then starts again).
    pub(super) fn upload_retrying(
        &mut self,
        local: &str,
        remote: Option<&str>,
        opts: Options,
    ) -> Result<String, String> {
        let name = match remote {
            Some(dir) if dir.ends_with('/') => None,
            Some(remote) => Some(remote.to_string()),
            None => crate::local::upload_name(local).ok(),
        };
        let replaces = self.retries > 0 && name.is_some_and(|name| self.client.size(&name).is_ok());
        self.retrying(local, |client, retry| {
            let resume = opts.resume || (retry && !replaces);
            transfer::upload(client, local, remote, Options { resume, ..opts })
        })
    }

    /// Runs `attempt` with the session's `--retries`.
    fn retrying(
        &mut self,
        what: &str,
        attempt: impl FnMut(&mut FtpClient, bool) -> Result<String, String>,
    ) -> Result<String, String> {
        let Some(login) = self.login.as_ref() else {
            let mut attempt = attempt;
            return attempt(&mut self.client, false);
        };
        let reconnect =
            Reconnect { login, cwd: self.cwd.as_deref(), retries: self.retries, interrupt: self.interrupt.as_ref() };
        let err = &mut *self.err;
        let mut warn = |msg: &str| {
            let _ = writeln!(err, "warning: {}", crate::visible::visible(msg));
            let _ = err.flush();
        };
        reconnect.run(&mut self.client, what, &mut warn, attempt)
    }

    /// Remembers the remote directory, to return to after reconnecting (only needed with retries).
    pub fn remember_cwd(&mut self) {
        if self.retries > 0 {
            self.cwd = self.client.pwd().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_limit() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(7), MAX_BACKOFF);
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }
}
