//! Ctrl-C and broken connections in `ftpclient`, against our own server: Ctrl-C typed on a pseudo-terminal aborts
//! the download (ABOR), keeps what arrived as `NAME.part` and returns to the prompt, where `get -c` continues it;
//! a server killed mid-download leaves the partial file too, and `get -c` finishes it from a restarted server. The
//! files are compared byte for byte. Transfers are slowed with `--limit-rate` so they are still running when the
//! test acts, and the test acts once the progress bar shows that bytes have arrived.

mod support;

use std::fs;

use support::ourserver::OurServer;
use support::terminal::{Terminal, STEP};
use support::{file_names, ftpclient, pattern, result};

/// Half a MiB at 128 KiB/s: four seconds of transfer.
const SIZE: usize = 512 * 1024;
const RATE: &str = "128K";

// Regression: Ctrl-C killed the client and left a hidden partial file that `get -c` did not continue.
#[test]
fn ctrl_c_aborts_the_download_and_get_c_continues_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let data = pattern(SIZE, 11);
    fs::write(root.path().join("big.bin"), &data).expect("write");
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    let Some(mut term) = Terminal::start(dir.path(), &["--limit-rate", RATE, &port]) else { return };
    let at = term.wait_for("ftp> ", 0, STEP);
    term.type_keys("get big.bin\n");
    // The progress bar, labelled with the name, shows once bytes have arrived.
    let at = term.wait_for("big.bin [", at, STEP);
    term.type_keys("\x03");
    let at = term.wait_for("(get -c big.bin continues)", at, STEP);
    let at = term.wait_for("ftp> ", at, STEP);
    let partial = fs::read(dir.path().join("big.bin.part")).expect("the partial file is kept");
    assert!(!partial.is_empty() && partial.len() < SIZE, "{} bytes kept", partial.len());
    assert_eq!(partial[..], data[..partial.len()]);
    assert_eq!(file_names(dir.path()), ["big.bin.part"]);

    // The session goes on after ABOR: the same connection continues the file.
    term.type_keys("get -c big.bin\n");
    let at = term.wait_for(&format!("resumed at byte {}, CRC32 verified", partial.len()), at, STEP);
    term.wait_for("ftp> ", at, STEP);
    term.type_keys("quit\n");
    let screen = term.screen();
    // The aborted get counts as a failed command.
    assert_eq!(term.wait(), Some(1), "{screen}");
    assert!(screen.contains("aborted (ABOR)"), "{screen}");
    assert_eq!(fs::read(dir.path().join("big.bin")).expect("complete"), data);
    assert_eq!(file_names(dir.path()), ["big.bin"]);
}

// Ctrl-C stops a batch: the status is 130 and the commands after the interrupted one do not run.
#[test]
fn ctrl_c_stops_a_batch() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    fs::write(root.path().join("big.bin"), pattern(SIZE, 12)).expect("write");
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    let args = ["--limit-rate", RATE, &port, "-c", "get big.bin", "-c", "mkdir after"];
    let Some(mut term) = Terminal::start(dir.path(), &args) else { return };
    let at = term.wait_for("big.bin [", 0, STEP);
    term.type_keys("\x03");
    term.wait_for("interrupted (Ctrl-C) at `get big.bin`", at, STEP);
    let screen = term.screen();
    assert_eq!(term.wait(), Some(130), "{screen}");
    assert!(!root.path().join("after").exists());
    assert!(dir.path().join("big.bin.part").exists(), "{screen}");
}

// Regression: a server dying mid-download deleted the partial file. The file is larger than what the sockets'
// buffers can hold, so the server's death cuts it short.
#[test]
fn broken_connection_keeps_the_partial_file() {
    const BIG: usize = 32 << 20;
    let root = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let data = pattern(BIG, 13);
    fs::write(root.path().join("big.bin"), &data).expect("write");
    let server = OurServer::start(root.path(), 0, &logs.path().join("server.log"), &[]);
    let port = server.port;
    let dir = tempfile::tempdir().expect("tempdir");
    let port_arg = port.to_string();
    let Some(term) = Terminal::start(dir.path(), &["--limit-rate", "4M", &port_arg, "-c", "get big.bin"]) else {
        return;
    };
    let at = term.wait_for("big.bin [", 0, STEP);
    server.kill();
    term.wait_for("(get -c big.bin continues)", at, STEP);
    let screen = term.screen();
    assert_eq!(term.wait(), Some(1), "{screen}");
    let partial = fs::read(dir.path().join("big.bin.part")).expect("the partial file is kept");
    assert!(!partial.is_empty() && partial.len() < BIG, "{} bytes kept", partial.len());
    assert_eq!(partial[..], data[..partial.len()]);

    let _server = OurServer::start(root.path(), port, &logs.path().join("server2.log"), &[]);
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&port_arg, "-c", "get -c big.bin"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(&format!("resumed at byte {}", partial.len())), "{stdout}");
    assert_eq!(fs::read(dir.path().join("big.bin")).expect("complete"), data);
    assert_eq!(file_names(dir.path()), ["big.bin"]);
}
