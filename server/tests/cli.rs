//! The `ftpserver` command line as scripts see it: exactly one ready line on stdout naming the address and the
//! canonical root, a one-line error and exit status 2 for a root that does not exist, and exit status 0 after a
//! SIGTERM. Every wait is bounded; the process is killed by its PID if a check fails.

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
