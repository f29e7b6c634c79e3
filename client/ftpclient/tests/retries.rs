//! `ftpclient --retries` against a server restarted mid-transfer: the client reconnects, logs in again, returns to
//! its directory and finishes the transfer, byte for byte, resuming from where it stopped (REST): a download from
//! the partial file it kept (our server), an upload from what the server had written (pyftpdlib, which writes
//! uploads in place; our server publishes an upload only once complete). The transfers are slowed with
//! `--limit-rate`; the server is killed once the progress bar shows bytes moving.

mod support;

use std::fs;

use support::ourserver::OurServer;
use support::terminal::{Terminal, STEP};
use support::{file_names, pattern, PeerServer};

/// More than the sockets' buffers hold, so killing the server cuts the transfer short.
const SIZE: usize = 32 << 20;

#[test]
fn download_resumes_across_a_server_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    fs::create_dir(root.path().join("pub")).expect("mkdir");
    let data = pattern(SIZE, 31);
    fs::write(root.path().join("pub/big.bin"), &data).expect("write");
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &[]);
    let port = server.port;
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["--retries", "5", "--limit-rate", "4M", &port.to_string(), "-c", "cd pub", "-c", "get big.bin"];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let Some(term) = Terminal::start(dir.path(), &args) else { return };
    let second_log = logs.path().join("server2.log");
    let (_server, at) =
        term.kill_and_restart(server, "big.bin [", "reconnecting in 1 s (retry 1 of 5)", root.path(), &second_log);
    term.wait_for("resumed at byte ", at, STEP);
    let screen = term.screen();
    assert_eq!(term.wait(), Some(0), "{screen}");
    assert!(screen.contains(", CRC32 verified"), "{screen}");
    assert_eq!(fs::read(dir.path().join("big.bin")).expect("downloaded"), data);
    assert_eq!(file_names(dir.path()), ["big.bin"]);
}

// `get -f` replacing a local file: the retry continues the `NAME.part` the failed attempt kept, not the old file,
// and replaces the old file once complete; the restarted server sends only the rest.
#[test]
fn replacing_download_resumes_from_the_part_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let data = pattern(SIZE, 35);
    fs::write(root.path().join("big.bin"), &data).expect("write");
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &[]);
    let port = server.port;
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("big.bin"), pattern(SIZE / 2, 36)).expect("old copy");
    let port_arg = port.to_string();
    let args = ["--retries", "5", "--limit-rate", "4M", &port_arg, "-c", "get -f big.bin"];
    let Some(term) = Terminal::start(dir.path(), &args) else { return };
    let second_log = logs.path().join("server2.log");
    let (_server, at) =
        term.kill_and_restart(server, "big.bin [", "reconnecting in 1 s (retry 1 of 5)", root.path(), &second_log);
    term.wait_for("resumed at byte ", at, STEP);
    let screen = term.screen();
    assert_eq!(term.wait(), Some(0), "{screen}");
    assert!(screen.contains(", CRC32 verified"), "{screen}");
    assert_eq!(fs::read(dir.path().join("big.bin")).expect("downloaded"), data);
    assert_eq!(file_names(dir.path()), ["big.bin"]);
    let log = fs::read_to_string(&second_log).expect("log");
    let sent: Vec<u64> = log
        .lines()
        .filter_map(|line| line.split_once("RETR \"/big.bin\" "))
        .filter_map(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .collect();
    assert!(sent.len() == 1 && sent[0] < SIZE as u64, "{sent:?}\n{log}");
}

#[test]
fn upload_resumes_across_a_server_restart() {
    let Some(server) = PeerServer::local_with_hash() else { return };
    fs::create_dir(server.path("inbox")).expect("mkdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pattern(SIZE, 32);
    fs::write(dir.path().join("up.bin"), &data).expect("write");
    let port = server.port_arg();
    let args = ["--retries", "5", "--limit-rate", "4M", &port, "-c", "cd inbox", "-c", "put up.bin"];
    let Some(term) = Terminal::start(dir.path(), &args) else { return };
    let at = term.wait_for("up.bin [", 0, STEP);
    let mut seen = at;
    let server = server.restart(true, || {
        seen = term.wait_for("reconnecting in 1 s (retry 1 of 5)", at, STEP);
    });
    term.wait_for("upload up.bin -> up.bin: ", seen, STEP);
    let screen = term.screen();
    assert_eq!(term.wait(), Some(0), "{screen}");
    // pyftpdlib's HASH (the test extension) offers SHA-256 and SHA-1, no CRC32: auto verifies with SHA-256.
    assert!(screen.contains(", resumed at byte ") && screen.contains(", SHA-256 verified"), "{screen}");
    assert_eq!(fs::read(server.path("inbox/up.bin")).expect("uploaded"), data);
}

// Without --retries a dropped connection is the end: status 1 at once.
#[test]
fn no_retries_by_default() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    fs::write(root.path().join("big.bin"), pattern(SIZE, 33)).expect("write");
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    let Some(term) = Terminal::start(dir.path(), &["--limit-rate", "4M", &port, "-c", "get big.bin"]) else { return };
    term.wait_for("big.bin [", 0, STEP);
    server.kill();
    let screen = term.screen();
    assert_eq!(term.wait(), Some(1), "{screen}");
    assert!(!screen.contains("reconnecting"), "{screen}");
}

// A server that ends an idle session with 421 and closes it: with --retries the next transfer logs in again and
// runs; without, the batch ends there. (The local `sleep` lets the server's half-second idle timer expire.)
#[test]
fn reply_421_reconnects() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    fs::create_dir(root.path().join("pub")).expect("mkdir");
    fs::write(root.path().join("pub/f.bin"), pattern(5000, 34)).expect("write");
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &["--idle-timeout", "0.5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    let args = [port.as_str(), "--retries", "2", "-c", "cd pub", "-c", "!sleep 1", "-c", "get f.bin"];
    let (code, stdout, stderr) = support::result(&support::ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("reconnecting in 1 s (retry 1 of 2)"), "{stderr}");
    assert_eq!(fs::read(dir.path().join("f.bin")).expect("downloaded"), pattern(5000, 34));

    let args = [port.as_str(), "-c", "cd pub", "-c", "!sleep 1", "-c", "get f.bin g.bin"];
    let (code, _, stderr) = support::result(&support::ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("421"), "{stderr}");
}
