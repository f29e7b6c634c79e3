//! What the tests against real peer servers share: starting pyftpdlib (plain, or with TLS as in [`tls`]), running
//! the `ftpclient` binary with bounded waits, deterministic file contents and digests, and the rule for missing tools
//! (skip with a printed line, except under CI=true, where it is a failure).

#![allow(dead_code)]

pub mod ourserver;
pub mod terminal;
pub mod tls;

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The client's timeout for every operation.
pub const WAIT: Duration = Duration::from_secs(20);
/// The longest any subprocess may run.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(120);

/// pyftpdlib with an anonymous user, `bob` (password `s3cret`) and `c@rol` (password `p:ss w@rd/`) who may do
/// everything, rooted in `argv[2]`, listening on `argv[4]` if given (else any free port). With
/// `hash` as `argv[3]` it also speaks HASH (draft-bryan-ftpext-hash) with SHA-256 and SHA-1, SHA-1 selected at
/// first, as a test double: a file whose name contains `corrupt` gets a wrong digest.
const SERVER_SCRIPT: &str = r#"
import hashlib, logging, os, sys, warnings
warnings.simplefilter("ignore")
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
host, root = sys.argv[1], sys.argv[2]
with_hash = len(sys.argv) > 3 and sys.argv[3] == "hash"
logging.basicConfig(level=logging.ERROR)
authorizer = DummyAuthorizer()
authorizer.add_anonymous(root, perm="elradfmwMT")
authorizer.add_user("bob", "s3cret", root, perm="elradfmwMT")
authorizer.add_user("c@rol", "p:ss w@rd/", root, perm="elradfmwMT")

class HashHandler(FTPHandler):
    proto_cmds = dict(FTPHandler.proto_cmds)
    proto_cmds["HASH"] = dict(perm="r", auth=True, arg=True, help="Syntax: HASH <SP> file-name.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hash = "SHA-1"
        self._announce()

    def _announce(self):
        names = [a + ("*" if a == self._hash else "") for a in ("SHA-256", "SHA-1")]
        self._extra_feats = ["HASH " + ";".join(names)]

    def ftp_OPTS(self, line):
        cmd, _, arg = line.partition(" ")
        if cmd.upper() != "HASH":
            return super().ftp_OPTS(line)
        if arg.upper() not in ("SHA-256", "SHA-1"):
            self.respond("501 Unknown algorithm.")
            return
        self._hash = arg.upper()
        self._announce()
        self.respond("200 " + self._hash)

    def ftp_HASH(self, path):
        if not self.fs.isfile(self.fs.realpath(path)):
            self.respond("550 Not a file.")
            return
        digest = hashlib.sha256() if self._hash == "SHA-256" else hashlib.sha1()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(65536), b""):
                digest.update(chunk)
        hexdigest = digest.hexdigest()
        if "corrupt" in os.path.basename(path):
            hexdigest = ("0" if hexdigest[0] != "0" else "1") + hexdigest[1:]
        size = os.path.getsize(path)
        self.respond("213 %s 0-%d %s %s" % (self._hash, size, hexdigest, self.fs.fs2ftp(path)))

handler = HashHandler if with_hash else FTPHandler
handler.authorizer = authorizer
server = FTPServer((host, int(sys.argv[4]) if len(sys.argv) > 4 else 0), handler)
print(server.address[1], flush=True)
server.serve_forever()
"#;

/// A running pyftpdlib server; killed when dropped.
pub struct PeerServer {
    child: Child,
    pub port: u16,
    root: TempDir,
    /// The server's certificate and key, for a TLS server.
    certs: Option<TempDir>,
}

impl PeerServer {
    /// Starts a server on `host`, with HASH when `hash` is set; `Err` when it did not come up (with the reason).
    pub fn start(host: &str, hash: bool) -> Result<PeerServer, String> {
        let root = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let mode = if hash { "hash" } else { "plain" };
        let args = [OsStr::new(host), root.path().as_os_str(), OsStr::new(mode)];
        let (child, port) = start_python(SERVER_SCRIPT, &args)?;
        Ok(PeerServer { child, port, root, certs: None })
    }

    /// Kills the server (every connection breaks, as when a server dies), runs `between`, then starts the same
    /// server again on the same port and root.
    pub fn restart(mut self, hash: bool, between: impl FnOnce()) -> PeerServer {
        let _ = self.child.kill();
        let _ = self.child.wait();
        between();
        let mode = if hash { "hash" } else { "plain" };
        let port = self.port.to_string();
        let args = [OsStr::new("127.0.0.1"), self.root.path().as_os_str(), OsStr::new(mode), OsStr::new(&port)];
        let (child, port) = start_python(SERVER_SCRIPT, &args).unwrap_or_else(|msg| panic!("pyftpdlib: {msg}"));
        self.child = child;
        self.port = port;
        self
    }

    /// Starts a pyftpdlib server with TLS as `script` sets it up, given `host`, the root, the certificate and key
    /// paths and `mode` as arguments.
    pub fn start_with_cert(script: &str, host: &str, mode: &str) -> Result<PeerServer, String> {
        let root = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let certs = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let (cert, key) = tls::write_cert(certs.path());
        let args = [OsStr::new(host), root.path().as_os_str(), cert.as_os_str(), key.as_os_str(), OsStr::new(mode)];
        let (child, port) = start_python(script, &args)?;
        Ok(PeerServer { child, port, root, certs: Some(certs) })
    }

    /// The PEM file of a TLS server's self-signed certificate.
    pub fn cert_path(&self) -> PathBuf {
        self.certs.as_ref().expect("a TLS server").path().join(tls::CERT_FILE)
    }
}

/// Runs `python3 -c script args...` and reads the port it prints first.
fn start_python(script: &str, args: &[&OsStr]) -> Result<(Child, u16), String> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting python3: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let port = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => line.trim().parse::<u16>().map_err(|_| format!("pyftpdlib printed {line:?}, not a port")),
        Err(_) => Err("pyftpdlib did not print its port within 30 s".to_string()),
    };
    match port {
        Ok(port) => Ok((child, port)),
        Err(msg) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(msg)
        }
    }
}

impl PeerServer {
    /// A server on 127.0.0.1, or `None` (after printing why) when pyftpdlib is not installed.
    pub fn local() -> Option<PeerServer> {
        Self::local_with(false)
    }

    /// A server on 127.0.0.1 that speaks HASH, or `None` when pyftpdlib is not installed.
    pub fn local_with_hash() -> Option<PeerServer> {
        Self::local_with(true)
    }

    fn local_with(hash: bool) -> Option<PeerServer> {
        if !pyftpdlib_installed() {
            return None;
        }
        Some(PeerServer::start("127.0.0.1", hash).unwrap_or_else(|msg| panic!("pyftpdlib: {msg}")))
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the test may go on without `tool`: prints a skip line and returns false, or panics under CI=true.
pub fn missing_tool(tool: &str, install: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{tool} is required when CI=true ({install})");
    }
    eprintln!("skipped: {tool} is not available ({install})");
    false
}

pub fn pyftpdlib_installed() -> bool {
    let child = Command::new("python3")
        .args(["-c", "import pyftpdlib"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let installed = child.map(|c| wait_bounded(c, PROCESS_LIMIT).status.success()).unwrap_or(false);
    installed || missing_tool("python3 with pyftpdlib", "pip install pyftpdlib")
}

/// Waits for a child with a limit; kills it by PID and fails the test if it overruns.
pub fn wait_bounded(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("waiting for a subprocess"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("subprocess {pid} did not finish within {limit:?}");
        }
    }
}

/// Runs `ftpclient ARGS` in `dir`, with `stdin` as its input (or none); returns its output. No netrc file and no
/// `$FTP_PASSWORD` apply.
pub fn ftpclient(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    ftpclient_env(dir, args, stdin, &[])
}

/// [`ftpclient`] with extra environment variables.
pub fn ftpclient_env(dir: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ftpclient"));
    command
        .current_dir(dir)
        .args(args)
        .env_remove("FTP_PASSWORD")
        .env_remove("RUST_LOG")
        .env("NETRC", dir.join("no-such-netrc"))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start ftpclient");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // A client that stops before reading its commands (it could not connect, say) closes the pipe early.
        match pipe.write_all(input.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            written => written.expect("write commands"),
        }
    }
    wait_bounded(child, PROCESS_LIMIT)
}

/// Exit status, stdout and stderr of a finished `ftpclient`.
pub fn result(output: &Output) -> (Option<i32>, String, String) {
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `len` deterministic bytes that do not repeat with any short period.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
