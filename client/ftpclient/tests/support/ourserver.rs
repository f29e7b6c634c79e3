//! Our own `ftpserver` as the peer of the client's tests: one way to find or build the binary and one launcher,
//! shared by every test file here.
//!
//! The binary is built from this workspace with the cargo running the tests (same target directory and profile),
//! once per test binary: `cargo test -p ftp-client` alone does not build other packages' binaries, and a stale one
//! would be tested. The server runs on 127.0.0.1, on a port of the system's choosing unless told one (a restart
//! takes the port of the server it replaces), and is stopped by PID when dropped.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::Duration;

use super::wait_bounded;

/// How long the server may take to print its ready line.
const START_LIMIT: Duration = Duration::from_secs(30);

/// How long building the server may take.
const BUILD_LIMIT: Duration = Duration::from_secs(900);

/// The `ftpserver` binary of this workspace, built once per test run.
pub fn ftpserver_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        // target/<profile>/deps/<test>-<hash>
        let deps = exe.parent().expect("deps folder");
        let profile_dir = if deps.ends_with("deps") { deps.parent().expect("profile folder") } else { deps };
        let path = profile_dir.join(format!("ftpserver{}", std::env::consts::EXE_SUFFIX));
        if std::env::var_os("CARGO").is_some() || !path.exists() {
            build_server(profile_dir);
        }
        assert!(path.exists(), "{} is missing after building it", path.display());
        path
    })
}

fn build_server(profile_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    // client/ftpclient or client/ftpload: the workspace is two levels up.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "-p", "ftp-server", "--bin", "ftpserver", "--manifest-path"]).arg(manifest);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        if let Some(target) = profile_dir.parent() {
            command.env("CARGO_TARGET_DIR", target);
        }
    }
    let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn();
    let output = wait_bounded(child.expect("running cargo to build ftpserver"), BUILD_LIMIT);
    assert!(output.status.success(), "building ftpserver failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

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
        let mut child = Command::new(ftpserver_binary())
            .arg(port.to_string())
            .arg("--root")
            .arg(root)
            .args(["--anonymous", "write"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("starting ftpserver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep reading so the server never blocks on a full pipe.
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        // "ftpserver listening on 127.0.0.1:PORT, root DIR"
        let line = rx.recv_timeout(START_LIMIT).unwrap_or_default();
        let port = line
            .trim_end()
            .strip_prefix("ftpserver listening on ")
            .and_then(|rest| rest.split(',').next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|port| port.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ftpserver printed {line:?}, not its ready line, within {START_LIMIT:?}");
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
