//! Our client against a real peer: Python's pyftpdlib, started per test on port 0 with an anonymous user that may
//! write, rooted in a temporary directory. The library is checked file by file against what lands on disk, and the
//! `ftpclient` binary is run as a subprocess to check its output, its exit status and its handling of local files.
//!
//! Without python3 and pyftpdlib each test prints a skip line and passes, except under CI=true, where that is a
//! failure. Every wait is bounded: the port is read with a timeout, subprocesses are killed if they overrun.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ftp_client::{FtpClient, FtpError};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The client's timeout for every operation.
const WAIT: Duration = Duration::from_secs(20);
/// The longest any subprocess may run.
const PROCESS_LIMIT: Duration = Duration::from_secs(120);

/// Sizes around the 1 KiB chunk and the 64 KiB buffer, and one well past them.
const SIZES: [usize; 6] = [0, 1, 1023, 1024, 1025, 1024 * 1024 + 7];

const SERVER_SCRIPT: &str = r#"
import logging, sys, warnings
warnings.simplefilter("ignore")
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
host, root = sys.argv[1], sys.argv[2]
logging.basicConfig(level=logging.ERROR)
authorizer = DummyAuthorizer()
authorizer.add_anonymous(root, perm="elradfmwMT")
authorizer.add_user("bob", "s3cret", root, perm="elradfmwMT")
FTPHandler.authorizer = authorizer
server = FTPServer((host, 0), FTPHandler)
print(server.address[1], flush=True)
server.serve_forever()
"#;

/// A running pyftpdlib server; killed when dropped.
struct PeerServer {
    child: Child,
    port: u16,
    root: TempDir,
}

impl PeerServer {
    /// Starts a server on `host`; `Err` when it did not come up (with the reason).
    fn start(host: &str) -> Result<PeerServer, String> {
        let root = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SERVER_SCRIPT)
            .arg(host)
            .arg(root.path())
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
            Ok(port) => Ok(PeerServer { child, port, root }),
            Err(msg) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(msg)
            }
        }
    }

    /// A server on 127.0.0.1, or `None` (after printing why) when pyftpdlib is not installed.
    fn local() -> Option<PeerServer> {
        if !pyftpdlib_installed() {
            return None;
        }
        Some(PeerServer::start("127.0.0.1").unwrap_or_else(|msg| panic!("pyftpdlib: {msg}")))
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn port_arg(&self) -> String {
        self.port.to_string()
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pyftpdlib_installed() -> bool {
    let child = Command::new("python3")
        .args(["-c", "import pyftpdlib"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let installed = child.map(|c| wait_bounded(c, PROCESS_LIMIT).status.success()).unwrap_or(false);
    if !installed {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("python3 with pyftpdlib is required when CI=true (pip install pyftpdlib)");
        }
        eprintln!("skipped: python3 with pyftpdlib is not available");
    }
    installed
}

/// Waits for a child with a limit; kills it by PID and fails the test if it overruns.
fn wait_bounded(child: Child, limit: Duration) -> Output {
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

/// Runs `ftpclient ARGS` in `dir`, with `stdin` as its input (or none); returns its output.
fn ftpclient(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftpclient"))
        .current_dir(dir)
        .args(args)
        .env_remove("FTP_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ftpclient");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write commands");
    }
    wait_bounded(child, PROCESS_LIMIT)
}

/// Exit status, stdout and stderr of a finished `ftpclient`.
fn result(output: &Output) -> (Option<i32>, String, String) {
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `len` deterministic bytes that do not repeat with any short period.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
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

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn library_against_pyftpdlib() {
    let Some(server) = PeerServer::local() else { return };
    let mut client = FtpClient::connect("127.0.0.1", server.port, WAIT).expect("connect");
    assert_eq!(client.greeting().code, 220);
    client.login("anonymous", "anonymous@").expect("login");

    assert_eq!(client.pwd().expect("pwd"), "/");
    assert_eq!(client.mkdir("work").expect("mkdir"), "/work");
    client.cwd("work").expect("cwd");
    assert_eq!(client.pwd().expect("pwd"), "/work");

    let mut expected_names = Vec::new();
    for (i, size) in SIZES.into_iter().enumerate() {
        let data = pattern(size, i as u64 + 1);
        let name = format!("f{size}.bin");
        assert_eq!(client.stor(&name, &mut data.as_slice()).expect("stor"), size as u64, "{name}");
        let on_disk = fs::read(server.path("work").join(&name)).expect("uploaded file");
        assert_eq!(sha256(&on_disk), sha256(&data), "server copy of {name}");
        assert_eq!(client.size(&name).expect("size"), size as u64, "{name}");
        let mut back = Vec::new();
        assert_eq!(client.retr(&name, &mut back).expect("retr"), size as u64, "{name}");
        assert_eq!(sha256(&back), sha256(&data), "downloaded {name}");
        expected_names.push(name);
    }
    expected_names.sort();

    let mut names = client.nlst(None).expect("nlst");
    names.sort();
    assert_eq!(names, expected_names);
    let listing = client.list(None).expect("list");
    for name in &expected_names {
        assert!(listing.contains(name.as_str()), "{name} missing from {listing}");
    }
    assert_eq!(client.list(Some("/")).expect("list /").lines().count(), 1);

    client.rename("f0.bin", "empty.bin").expect("rename");
    assert!(server.path("work/empty.bin").exists() && !server.path("work/f0.bin").exists());

    match client.retr("missing.bin", &mut std::io::sink()) {
        Err(FtpError::Unexpected { command, reply }) => {
            assert_eq!(command, "RETR missing.bin");
            assert_eq!(reply.code, 550);
        }
        other => panic!("expected 550, got {other:?}"),
    }
    assert_eq!(client.cwd("nowhere").expect_err("no such directory").reply().map(|r| r.code), Some(550));
    assert_eq!(client.raw("SYST").expect("SYST").code, 215);
    client.noop().expect("noop");

    for name in client.nlst(None).expect("nlst") {
        client.delete(&name).expect("delete");
    }
    assert!(file_names(&server.path("work")).is_empty());
    client.cdup().expect("cdup");
    assert_eq!(client.pwd().expect("pwd"), "/");
    client.rmdir("work").expect("rmdir");
    assert!(!server.path("work").exists());
    client.quit().expect("quit");
}

#[test]
fn cli_transfers_and_exit_status() {
    let Some(server) = PeerServer::local() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pattern(100_000, 9);
    fs::write(dir.path().join("hello.bin"), &data).expect("write local file");
    let port = server.port_arg();

    let out = ftpclient(dir.path(), &[&port, "-c", "upload hello.bin", "-c", "size hello.bin", "-c", "ls"], None);
    let (code, stdout, stderr) = result(&out);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("upload hello.bin -> hello.bin: 100000 bytes in "), "{stdout}");
    assert!(stdout.contains("hello.bin: 100000 bytes\n"), "{stdout}");
    assert_eq!(sha256(&fs::read(server.path("hello.bin")).expect("uploaded")), sha256(&data));

    // HOST PORT form; LOCAL names a new file.
    let out = ftpclient(dir.path(), &["127.0.0.1", &port, "-c", "get hello.bin copy.bin"], None);
    let (code, stdout, stderr) = result(&out);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("get hello.bin -> copy.bin: 100000 bytes in "), "{stdout}");
    assert!(stdout.trim_end().ends_with("/s)"), "{stdout}");
    assert_eq!(sha256(&fs::read(dir.path().join("copy.bin")).expect("downloaded")), sha256(&data));

    // A failing command makes the status 1 but does not stop the ones after it.
    let out = ftpclient(dir.path(), &[&port, "-c", "rm nothing.txt", "-c", "pwd"], None);
    let (code, stdout, stderr) = result(&out);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error: rm nothing.txt: server replied 550"), "{stderr}");
    assert_eq!(stdout, "/\n");

    // Unknown commands fail too.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "fetch x"], None));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unknown command"), "{stderr}");

    // Usage errors and failed logins are status 2 with one error line.
    let refused_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port().to_string()
    };
    for args in [
        vec![],
        vec!["0"],
        vec!["a", "b", "c"],
        vec![refused_port.as_str(), "-c", "pwd"],
        vec![&port, "-u", "bob", "-p", "wrong", "-c", "pwd"],
        vec![&port, "-b", "/nonexistent/batch.txt"],
    ] {
        let (code, _, stderr) = result(&ftpclient(dir.path(), &args, None));
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        if args.contains(&"wrong") {
            assert!(stderr.starts_with("error: login as bob: PASS ****: server replied 530"), "{stderr}");
            assert!(!stderr.contains("wrong"), "{stderr}");
        }
    }

    // A named user with the password from the environment.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftpclient"))
        .current_dir(dir.path())
        .args([port.as_str(), "-u", "bob", "-c", "pwd"])
        .env("FTP_PASSWORD", "s3cret")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ftpclient");
    let _ = child.stdin.take();
    let (code, stdout, stderr) = result(&wait_bounded(child, PROCESS_LIMIT));
    assert_eq!((code, stdout.as_str()), (Some(0), "/\n"), "{stderr}");
}

#[test]
fn cli_get_never_overwrites_unless_forced() {
    let Some(server) = PeerServer::local() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    fs::write(server.path("a.txt"), b"remote content\n").expect("remote file");
    let local = dir.path().join("a.txt");
    fs::write(&local, b"local content\n").expect("local file");

    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "get a.txt"], None));
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr, "error: get a.txt: local file a.txt exists (use get -f or --force to overwrite)\n");
    assert_eq!(fs::read(&local).expect("read"), b"local content\n");

    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "get -f a.txt"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(fs::read(&local).expect("read"), b"remote content\n");

    fs::write(&local, b"local again\n").expect("local file");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "--force", "-c", "get a.txt"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(fs::read(&local).expect("read"), b"remote content\n");

    // Into a directory: the remote name is kept, and the same rule applies there.
    fs::create_dir(dir.path().join("sub")).expect("mkdir");
    let (code, _, stderr) =
        result(&ftpclient(dir.path(), &[&port, "-c", "get a.txt sub", "-c", "get a.txt sub"], None));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("exists (use get -f or --force to overwrite)"), "{stderr}");
    assert_eq!(fs::read(dir.path().join("sub/a.txt")).expect("read"), b"remote content\n");
    // No temporary file is left anywhere.
    assert_eq!(file_names(dir.path()), ["a.txt", "sub"]);
    assert_eq!(file_names(&dir.path().join("sub")), ["a.txt"]);
}

#[test]
fn cli_get_of_missing_file_leaves_nothing() {
    let Some(server) = PeerServer::local() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&server.port_arg(), "-c", "get nope.txt"], None));
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert!(stderr.starts_with("error: get nope.txt: server replied 550"), "{stderr}");
    assert!(file_names(dir.path()).is_empty(), "{:?}", file_names(dir.path()));

    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&server.port_arg(), "-c", "upload nope.txt"], None));
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error: upload nope.txt: local file nope.txt: "), "{stderr}");
    assert!(!server.path("nope.txt").exists());
}

#[test]
fn cli_batch_file_with_quoted_names() {
    let Some(server) = PeerServer::local() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let scripts = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("my file.txt"), b"spaces\n").expect("local file");
    let batch = scripts.path().join("commands.txt");
    fs::write(
        &batch,
        "# set up\n\nmkdir \"sub dir\"\ncd \"sub dir\"\nupload \"my file.txt\"\n  # indented comment\npwd\n\
         bogus command\nget \"my file.txt\" back.txt\nsize \"my file.txt\"\n",
    )
    .expect("batch file");
    let batch = batch.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&server.port_arg(), "-b", batch], None));
    assert_eq!(code, Some(1), "the bogus command fails: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: bogus command: unknown command"), "{stderr}");
    assert!(stdout.contains("/sub dir\n"), "{stdout}");
    assert!(stdout.contains("my file.txt: 7 bytes\n"), "{stdout}");
    assert_eq!(fs::read(server.path("sub dir/my file.txt")).expect("uploaded"), b"spaces\n");
    assert_eq!(fs::read(dir.path().join("back.txt")).expect("downloaded"), b"spaces\n");
}

#[test]
fn cli_commands_on_stdin() {
    let Some(server) = PeerServer::local() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = "pwd\nmkdir d\ncd d\npwd\nquit\npwd\n";
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&server.port_arg()], Some(input)));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "/\nmkdir d: created /d\ncd d: ok\n/d\n");

    // Quiet: only what was asked for.
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&server.port_arg(), "-q"], Some("cd d\npwd\n")));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "/d\n");
}

#[test]
fn cli_over_ipv6() {
    if !pyftpdlib_installed() {
        return;
    }
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: ::1 is not available");
        return;
    }
    let server = PeerServer::start("::1").unwrap_or_else(|msg| panic!("pyftpdlib on ::1: {msg}"));
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(server.path("v6.txt"), b"six\n").expect("remote file");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &["::1", &server.port_arg(), "-c", "get v6.txt"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("get v6.txt -> v6.txt: 4 bytes"), "{stdout}");
    assert_eq!(fs::read(dir.path().join("v6.txt")).expect("downloaded"), b"six\n");
}
