//! A hostile server's text on the user's terminal: names in listings, reply text and paths carrying terminal
//! escape sequences (ESC `[2J` clears the screen, OSC `]0;` sets the window title, a bare CR overwrites the line)
//! are shown escaped (`\x1b`), never as they are; `--json` keeps them exact, JSON-escaped; and `mget` still saves a
//! file under its real name, byte for byte, while refusing names that would leave the directory. The library's
//! debug log escapes them too. The server is the scripted fake of the library's `test-support` feature.

mod support;

use std::fs;

use ftp_client::fake_server::{serve_download, FakeServer, Peer};
use serde_json::Value;
use support::{ftpclient, ftpclient_env, result};

const ESC: char = '\x1b';

/// A listing whose names carry escape sequences.
const NAMES: &str = "a\x1b]0;pwned\x07.txt\r\nb\x1b[2Jclear\r\nc\rfake\r\n";

fn login(peer: &mut Peer) {
    peer.exchange("USER anonymous", "331 Password please");
    peer.exchange("PASS anonymous@", "230 Welcome \x1b[5mblinking\x1b[0m");
    peer.exchange("TYPE I", "200 Binary");
}

/// `ls -1`, `pwd`, then a `cd` the server refuses with an escape sequence in the reply (which stops the batch).
fn script(peer: &mut Peer) {
    login(peer);
    serve_download(peer, "NLST", NAMES.as_bytes());
    peer.exchange("PWD", "257 \"/home/\x1b[2J\" is current");
    peer.exchange("CWD x", "550 No \x1b]52;c;ZXZpbA==\x07 such directory");
    peer.exchange("QUIT", "221 Bye");
}

const COMMANDS: [&str; 6] = ["-c", "ls -1", "-c", "pwd", "-c", "cd x"];

#[test]
fn escape_sequences_are_shown_escaped() {
    let server = FakeServer::start("220 ready", script);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr.port().to_string();
    let mut args = vec![port.as_str()];
    args.extend(COMMANDS);
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    server.join();
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains(ESC) && !stderr.contains(ESC), "{stdout:?}\n{stderr:?}");
    assert!(!stdout.contains('\r') && !stderr.contains('\r'), "{stdout:?}\n{stderr:?}");
    assert_eq!(stdout, "a\\x1b]0;pwned\\x07.txt\nb\\x1b[2Jclear\nc\\rfake\n/home/\\x1b[2J\n");
    assert!(
        stderr.starts_with("error: cd x: server replied 550 No \\x1b]52;c;ZXZpbA==\\x07 such directory\n"),
        "{stderr}"
    );
}

// The library's debug log (RUST_LOG) shows the replies escaped as well.
#[test]
fn debug_log_is_escaped_too() {
    let server = FakeServer::start("220 ready", script);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr.port().to_string();
    let mut args = vec![port.as_str()];
    args.extend(COMMANDS);
    let env = [("RUST_LOG", "ftp_client=debug")];
    let (code, stdout, stderr) = result(&ftpclient_env(dir.path(), &args, None, &env));
    server.join();
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains(ESC) && !stderr.contains(ESC), "{stdout:?}\n{stderr:?}");
    assert!(stderr.contains("< 257 \"/home/\\x1b[2J\" is current"), "{stderr}");
}

#[test]
fn json_keeps_the_exact_text() {
    let server = FakeServer::start("220 ready", script);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr.port().to_string();
    let mut args = vec![port.as_str(), "--json"];
    args.extend(COMMANDS);
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    server.join();
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    // JSON escapes control characters itself: no raw ESC reaches the terminal, and a parser gets the exact text.
    assert!(!stdout.contains(ESC), "{stdout:?}");
    let records: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(records.len(), 3, "{stdout}");
    assert_eq!(records[0]["output"], "a\x1b]0;pwned\x07.txt\nb\x1b[2Jclear\nc\rfake");
    assert_eq!(records[1]["output"], "/home/\x1b[2J");
    assert_eq!(records[2]["error"], "server replied 550 No \x1b]52;c;ZXZpbA==\x07 such directory");
}

// mget saves the file with the escape in its name under that exact name; names with a slash or `..` are never
// taken from a listing.
#[test]
fn mget_saves_real_names_and_refuses_escaping_paths() {
    let data = b"payload";
    let server = FakeServer::start("220 ready", move |peer| {
        login(peer);
        peer.feat(&["MLST type*;size*;modify*;", "SIZE"]);
        let listing = "type=file;size=7; e\x1b[31mred.txt\r\ntype=file;size=7; ../up.txt\r\n\
                       type=file;size=7; sub/x.txt\r\ntype=file;size=7; ..\r\n";
        serve_download(peer, "MLSD .", listing.as_bytes());
        serve_download(peer, "RETR e\x1b[31mred.txt", data);
        peer.exchange("SIZE e\x1b[31mred.txt", "213 7");
        peer.exchange("QUIT", "221 Bye");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("work")).expect("mkdir");
    let port = server.addr.port().to_string();
    let (code, stdout, stderr) = result(&ftpclient(&dir.path().join("work"), &[&port, "-c", "mget *"], None));
    server.join();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!stdout.contains(ESC) && !stderr.contains(ESC), "{stdout:?}\n{stderr:?}");
    assert_eq!(fs::read(dir.path().join("work/e\x1b[31mred.txt")).expect("saved under its name"), data);
    assert_eq!(support::file_names(dir.path()), ["work"]);
    assert_eq!(support::file_names(&dir.path().join("work")), ["e\x1b[31mred.txt"]);
}
