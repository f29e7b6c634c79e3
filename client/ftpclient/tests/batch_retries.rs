//! `--retries` for the many-file commands: our server is killed while `mirror`, `mget` or `mput` is moving a large
//! file and started again on the same port; the client reconnects, logs in, returns to its directory and finishes
//! every file, byte for byte, a download resuming where it stopped (REST: the restarted server sends only the
//! rest). Transfers are slowed with `--limit-rate`; the server is killed once the file's progress bar shows bytes
//! moving, and restarted once the client says it will reconnect.

mod support;

use std::fs;
use std::path::Path;

use support::ourserver::OurServer;
use support::terminal::{Terminal, STEP};
use support::{file_names, pattern, sha256_hex};

/// More than the sockets' buffers hold, so killing the server cuts the transfer short.
const BIG: usize = 24 << 20;

/// The byte counts of the RETR lines a server logged for `name`.
fn logged_retr_bytes(log: &Path, name: &str) -> Vec<u64> {
    let text = fs::read_to_string(log).expect("server log");
    let needle = format!("RETR \"{name}\" ");
    text.lines()
        .filter_map(|line| line.split_once(&needle))
        .filter_map(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn mirror_resumes_across_a_server_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(root.path().join("pub/tree/sub")).expect("mkdir");
    let files = [("a.txt", pattern(1000, 51)), ("big.bin", pattern(BIG, 52)), ("sub/c.txt", pattern(70_000, 53))];
    for (name, data) in &files {
        fs::write(root.path().join("pub/tree").join(name), data).expect("write");
    }
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &[]);
    let port = server.port;
    let dir = tempfile::tempdir().expect("tempdir");
    let port_arg = port.to_string();
    let args = ["--retries", "5", "--limit-rate", "4M", &port_arg, "-c", "cd pub", "-c", "mirror tree copy"];
    let Some(term) = Terminal::start(dir.path(), &args) else { return };
    let second_log = logs.path().join("server2.log");
    let (_server, at) =
        term.kill_and_restart(server, "big.bin [", "reconnecting in 1 s (retry 1 of 5)", root.path(), &second_log);
    term.wait_for("mirror ", at, STEP);
    let screen = term.screen();
    assert_eq!(term.wait(), Some(0), "{screen}");
    for (name, data) in &files {
        let copy = fs::read(dir.path().join("copy").join(name)).expect("copied");
        assert_eq!(sha256_hex(&copy), sha256_hex(data), "{name}");
    }
    assert_eq!(file_names(&dir.path().join("copy")), ["a.txt", "big.bin", "sub"], "{screen}");
    // The restarted server sent only the rest of the file.
    let sent = logged_retr_bytes(&second_log, "/pub/tree/big.bin");
    assert!(sent.len() == 1 && sent[0] > 0 && sent[0] < BIG as u64, "{sent:?}\n{screen}");
}

#[test]
fn mget_resumes_across_a_server_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let files = [("one.bin", pattern(5000, 61)), ("two.bin", pattern(BIG, 62))];
    for (name, data) in &files {
        fs::write(root.path().join(name), data).expect("write");
    }
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &[]);
    let port = server.port;
    let dir = tempfile::tempdir().expect("tempdir");
    let port_arg = port.to_string();
    let args = ["--retries", "3", "--limit-rate", "4M", &port_arg, "-c", "mget *.bin"];
    let Some(term) = Terminal::start(dir.path(), &args) else { return };
    let second_log = logs.path().join("server2.log");
    let (_server, at) =
        term.kill_and_restart(server, "two.bin [", "reconnecting in 1 s (retry 1 of 3)", root.path(), &second_log);
    term.wait_for("mget: 2 files", at, STEP);
    let screen = term.screen();
    assert_eq!(term.wait(), Some(0), "{screen}");
    for (name, data) in &files {
        assert_eq!(sha256_hex(&fs::read(dir.path().join(name)).expect("got")), sha256_hex(data), "{name}");
    }
    assert_eq!(file_names(dir.path()), ["one.bin", "two.bin"], "{screen}");
    let sent = logged_retr_bytes(&second_log, "/two.bin");
    assert!(sent.len() == 1 && sent[0] > 0 && sent[0] < BIG as u64, "{sent:?}\n{screen}");
}

// Our server publishes an upload only once complete, so the retry sends the file again from the start (SIZE finds
// nothing); what counts is that it reconnects and both files arrive whole.
#[test]
fn mput_retries_across_a_server_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    fs::create_dir(root.path().join("inbox")).expect("mkdir");
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &[]);
    let port = server.port;
    let dir = tempfile::tempdir().expect("tempdir");
    let files = [("up1.bin", pattern(3000, 71)), ("up2.bin", pattern(BIG, 72))];
    for (name, data) in &files {
        fs::write(dir.path().join(name), data).expect("write");
    }
    let port_arg = port.to_string();
    let args = ["--retries", "3", "--limit-rate", "4M", &port_arg, "-c", "cd inbox", "-c", "mput up*.bin"];
    let Some(term) = Terminal::start(dir.path(), &args) else { return };
    let second_log = logs.path().join("server2.log");
    let (_server, at) =
        term.kill_and_restart(server, "up2.bin [", "reconnecting in 1 s (retry 1 of 3)", root.path(), &second_log);
    term.wait_for("mput: 2 files", at, STEP);
    let screen = term.screen();
    assert_eq!(term.wait(), Some(0), "{screen}");
    for (name, data) in &files {
        let uploaded = fs::read(root.path().join("inbox").join(name)).expect("uploaded");
        assert_eq!(sha256_hex(&uploaded), sha256_hex(data), "{name}");
    }
}
