//! The `ftpserver` command line as scripts see it: exactly one ready line on stdout naming the address and the
//! canonical root (a second one for the implicit-TLS listener when asked for), a one-line error and exit status 2
//! for a root or a certificate that cannot be used, `gen-cert`, and exit status 0 after a SIGTERM. Every wait is
//! bounded; the process is killed by its PID if a check fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

/// Kills the child by PID when dropped, unless it has exited.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "ftpserver did not exit within {LIMIT:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ready_line_then_clean_exit_on_sigterm() {
    let root = tempfile::tempdir().expect("root");
    let child = Command::new(env!("CARGO_BIN_EXE_ftpserver"))
        .arg("0")
        .arg("--root")
        .arg(root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ftpserver");
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = tx.send(reader.read_line(&mut line).map(|_| line));
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        rest
    });
    let line = rx.recv_timeout(LIMIT).expect("a ready line in time").expect("reading stdout");

    let canonical = root.path().canonicalize().expect("canonical root");
    let rest = line
        .strip_prefix("ftpserver listening on 127.0.0.1:")
        .and_then(|r| r.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
    let (rest, anonymous) = rest.rsplit_once(", anonymous: ").unwrap_or_else(|| panic!("no anonymous in {line:?}"));
    assert_eq!(anonymous, "write", "anonymous access on loopback without accounts: {line:?}");
    let (port, dir) = rest.split_once(", root ").unwrap_or_else(|| panic!("no root in {line:?}"));
    assert_eq!(dir, canonical.to_str().expect("UTF-8 root"), "root in {line:?}");
    let port: u16 = port.parse().unwrap_or_else(|_| panic!("port in {line:?}"));
    assert_ne!(port, 0);

    // The server answers on that port.
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the announced port");
    s.set_read_timeout(Some(LIMIT)).expect("read timeout");
    let mut replies = BufReader::new(&s);
    let mut greeting = String::new();
    replies.read_line(&mut greeting).expect("greeting");
    assert!(greeting.starts_with("220 "), "greeting: {greeting:?}");
    (&s).write_all(b"QUIT\r\n").expect("QUIT");
    let mut bye = String::new();
    replies.read_line(&mut bye).expect("reply to QUIT");
    assert!(bye.starts_with("221 "), "reply to QUIT: {bye:?}");

    let kill = Command::new("kill").arg("-TERM").arg(guard.0.id().to_string()).status().expect("kill -TERM");
    assert!(kill.success());
    let status = wait_exit(&mut guard.0);
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
    let rest = reader.join().expect("stdout reader");
    assert_eq!(rest, "", "stdout holds more than the ready line");
}

#[test]
fn missing_root_is_a_one_line_error_with_status_2() {
    let child = Command::new(env!("CARGO_BIN_EXE_ftpserver"))
        .args(["0", "--root", "/nonexistent/ftp/root"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ftpserver");
    let mut guard = Guard(child);
    let status = wait_exit(&mut guard.0);
    let mut stdout = String::new();
    let mut stderr = String::new();
    guard.0.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("stdout");
    guard.0.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    assert_eq!(status.code(), Some(2), "exit status; stderr: {stderr}");
    assert_eq!(stdout, "", "nothing on stdout");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(stderr.starts_with("ftpserver: "), "{stderr:?}");
    assert!(stderr.contains("/nonexistent/ftp/root"), "the error names the root: {stderr:?}");
}

/// Runs `ftpserver args` to its exit (bounded): status, stdout, stderr.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_ftpserver"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ftpserver");
    let mut guard = Guard(child);
    let status = wait_exit(&mut guard.0);
    let mut stdout = String::new();
    let mut stderr = String::new();
    guard.0.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("stdout");
    guard.0.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    (status, stdout, stderr)
}

// A certificate or key that is missing, not PEM, or not a pair is a one-line error naming the file, status 2.
#[test]
fn unusable_certificate_is_a_one_line_error_with_status_2() {
    let dir = tempfile::tempdir().expect("folder");
    let d = dir.path().to_str().expect("UTF-8 path");
    let (status, _, _) = run_to_exit(&["gen-cert", "--out", &format!("{d}/a")]);
    assert!(status.success());
    let (status, _, _) = run_to_exit(&["gen-cert", "--cert", &format!("{d}/b.crt"), "--key", &format!("{d}/b.key")]);
    assert!(status.success());
    std::fs::write(dir.path().join("junk.pem"), "junk").expect("junk file");
    let (a_cert, a_key, b_key) = (format!("{d}/a/cert.pem"), format!("{d}/a/key.pem"), format!("{d}/b.key"));
    let missing = format!("{d}/missing.pem");
    let junk = format!("{d}/junk.pem");
    for (cert, key, named) in [(&missing, &a_key, &missing), (&junk, &a_key, &junk), (&a_cert, &b_key, &b_key)] {
        let (status, stdout, stderr) = run_to_exit(&["0", "--root", d, "--tls-cert", cert, "--tls-key", key]);
        assert_eq!(status.code(), Some(2), "{cert} {key}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.starts_with("ftpserver: ") && stderr.contains(named.as_str()), "{stderr:?}");
    }
    // gen-cert never overwrites.
    let (status, _, stderr) = run_to_exit(&["gen-cert", "--out", &format!("{d}/a")]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("key.pem"), "{stderr:?}");
}

// With --implicit-tls-port, the ready line is unchanged and a second line names the implicit-TLS address.
#[test]
fn implicit_tls_listener_has_its_own_line() {
    let dir = tempfile::tempdir().expect("folder");
    let d = dir.path().to_str().expect("UTF-8 path");
    let (status, _, _) = run_to_exit(&["gen-cert", "--out", d]);
    assert!(status.success());
    let (cert, key) = (format!("{d}/cert.pem"), format!("{d}/key.pem"));
    let child = Command::new(env!("CARGO_BIN_EXE_ftpserver"))
        .args(["0", "--root", d, "--tls-cert", &cert, "--tls-key", &key, "--implicit-tls-port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ftpserver");
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        for _ in 0..2 {
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
        }
    });
    let first = rx.recv_timeout(LIMIT).expect("a ready line in time").expect("reading stdout");
    assert!(first.starts_with("ftpserver listening on 127.0.0.1:") && first.contains(", root "), "{first:?}");
    let second = rx.recv_timeout(LIMIT).expect("a second line in time").expect("reading stdout");
    let port = second
        .strip_prefix("ftpserver implicit TLS on 127.0.0.1:")
        .and_then(|p| p.trim_end().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"));
    assert_ne!(port, 0);
    TcpStream::connect(("127.0.0.1", port)).expect("the implicit port accepts");
}
