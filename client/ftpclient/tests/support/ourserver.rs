//! Our own `ftpserver` as the peer of the client's tests: the launcher every client test file shares. Finding (and
//! building) the binary and waiting for its ready line are the workspace's one launcher, `ftp_tests::launcher`,
//! which the integration tests in tests/ use too. The server runs on 127.0.0.1, on a port of the system's choosing
//! unless told one (a restart takes the port of the server it replaces), and is stopped by PID when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::Duration;

pub use ftp_tests::launcher::ftpserver_binary;
use ftp_tests::launcher::{ready_address, start_reading_lines};

/// How long the server may take to print its ready line.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running `ftpserver`; stopped by PID when dropped.
pub struct OurServer {
    child: Child,
    pub port: u16,
    root: PathBuf,
    log: PathBuf,
}

impl OurServer {
    /// Starts the server on `port` (0: any free one) serving `root`, anonymous users may write, with `extra`
    /// options; its log goes to `log`. Returns once it has printed its ready line.
    pub fn start(root: &Path, port: u16, log: &Path, extra: &[&str]) -> OurServer {
        let log_file = fs::File::create(log).expect("server log file");
        let mut command = Command::new(ftpserver_binary());
        command
            .arg(port.to_string())
            .arg("--root")
            .arg(root)
            .args(["--anonymous", "write"])
            .args(extra)
            .stderr(log_file);
        let (mut child, lines) = start_reading_lines(command, 1, START_LIMIT)
            .unwrap_or_else(|why| panic!("ftpserver: {why}; log:\n{}", fs::read_to_string(log).unwrap_or_default()));
        let Some(port) = ready_address(&lines[0]).map(|addr| addr.port()) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ftpserver printed {:?}, not its ready line", lines[0]);
        };
        OurServer { child, port, root: root.to_path_buf(), log: log.to_path_buf() }
    }

    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Stops the server at once (SIGKILL): every connection breaks, as when a server dies.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("ftpserver log:\n{}", fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

/// A server with its own temporary root and log, for tests that need nothing more.
pub struct Served {
    pub server: OurServer,
    pub root: tempfile::TempDir,
    _logs: tempfile::TempDir,
}

impl Served {
    pub fn start(extra: &[&str]) -> Served {
        let root = tempfile::tempdir().expect("tempdir");
        let logs = tempfile::tempdir().expect("tempdir");
        let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), extra);
        Served { server, root, _logs: logs }
    }

    pub fn port_arg(&self) -> String {
        self.server.port_arg()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }
}
