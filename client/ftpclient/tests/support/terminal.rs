//! `ftpclient` on a pseudo-terminal, the way a person runs it: `script` (util-linux) gives it a terminal, what it
//! prints is collected as it comes, and keys (Ctrl-C included) are typed into it. The terminal's line discipline
//! turns a typed Ctrl-C into SIGINT for the client, exactly as at a real keyboard. Every wait is bounded; waiting
//! for output blocks on a condition variable, never on a timer.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{missing_tool, wait_bounded, PROCESS_LIMIT};

/// The client on a terminal; killed by PID if still running when dropped.
pub struct Terminal {
    child: Option<Child>,
    /// `$HOME` of the client when the test gave none: the prompt's history goes there.
    _home: Option<tempfile::TempDir>,
    keys: ChildStdin,
    screen: Arc<(Mutex<Vec<u8>>, Condvar)>,
}

impl Terminal {
    /// Runs `ftpclient ARGS` in `dir` on a new terminal, with a home of its own; `None` (after printing why)
    /// without `script`.
    pub fn start(dir: &Path, args: &[&str]) -> Option<Terminal> {
        let home = tempfile::tempdir().expect("tempdir");
        let mut term = Terminal::start_with_home(dir, home.path(), args)?;
        term._home = Some(home);
        Some(term)
    }

    /// [`Terminal::start`] with `home` as `$HOME`.
    pub fn start_with_home(dir: &Path, home: &Path, args: &[&str]) -> Option<Terminal> {
        let have_script = Command::new("script").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !have_script.is_ok_and(|s| s.success()) {
            missing_tool("script", "apt-get install bsdutils");
            return None;
        }
        // A terminal of a usual size: progress bars are drawn only on one with columns.
        let mut line = format!("stty cols 120 rows 40; exec {}", shell_quote(env!("CARGO_BIN_EXE_ftpclient")));
        for arg in args {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .current_dir(dir)
            .env_remove("FTP_PASSWORD")
            .env_remove("RUST_LOG")
            .env("NETRC", dir.join("no-such-netrc"))
            // The prompt's history file goes there, never into the real home.
            .env("HOME", home)
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start script");
        let keys = child.stdin.take().expect("stdin");
        let mut output = child.stdout.take().expect("stdout");
        let screen = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let collected = Arc::clone(&screen);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                let (text, changed) = &*collected;
                text.lock().expect("screen").extend_from_slice(&buf[..n]);
                changed.notify_all();
            }
        });
        Some(Terminal { child: Some(child), _home: None, keys, screen })
    }

    /// Types `text` (a line needs its `\n`; Ctrl-C is `\x03`).
    pub fn type_keys(&mut self, text: &str) {
        self.keys.write_all(text.as_bytes()).expect("type into the terminal");
        self.keys.flush().expect("type into the terminal");
    }

    /// Waits until the terminal shows `text` (anywhere after byte `from`) for at most `limit`; returns the offset
    /// just after it, or panics with what was shown.
    /// A server dying mid-transfer and coming back: once this screen shows `progress` (the transfer is under way)
    /// `server` is killed; once the client prints `retry`, a new server starts on the same port with its log in
    /// `log`. Returns the new server and where on the screen the retry line was.
    pub fn kill_and_restart(
        &self,
        server: super::ourserver::OurServer,
        progress: &str,
        retry: &str,
        root: &Path,
        log: &Path,
    ) -> (super::ourserver::OurServer, usize) {
        let port = server.port;
        let at = self.wait_for(progress, 0, STEP);
        server.kill();
        let at = self.wait_for(retry, at, STEP);
        (super::ourserver::OurServer::start(root, port, log, &[]), at)
    }

    pub fn wait_for(&self, text: &str, from: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let (screen, changed) = &*self.screen;
        let mut shown = screen.lock().expect("screen");
        loop {
            let tail = String::from_utf8_lossy(&shown[from.min(shown.len())..]).into_owned();
            if let Some(at) = tail.find(text) {
                return from + at + text.len();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the terminal did not show {text:?} within {limit:?}; it shows:\n{tail}");
            shown = changed.wait_timeout(shown, left).expect("screen").0;
        }
    }

    /// Everything shown so far.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.0.lock().expect("screen")).into_owned()
    }

    /// Waits for the client to exit (bounded); returns its status.
    pub fn wait(mut self) -> Option<i32> {
        let child = self.child.take().expect("running");
        wait_bounded(child, PROCESS_LIMIT).status.code()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `text` as one word for `sh -c`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// How long a step on the terminal may take.
pub const STEP: Duration = Duration::from_secs(30);
