//! The interactive prompt on a pseudo-terminal, against our own server: Tab completes commands and remote names,
//! Up recalls the previous command, Ctrl-C clears the line, and the history is saved in `~/.ftpclient_history`.

mod support;

use std::fs;

use support::ourserver::Served;
use support::terminal::{Terminal, STEP};

// Regression: the up arrow printed ^[[A and there was no completion.
#[test]
fn editing_history_and_completion() {
    let served = Served::start(&[]);
    fs::write(served.path("unique-name.txt"), b"complete me").expect("write");
    fs::write(served.path("other.bin"), b"x").expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = served.port_arg();
    let home = tempfile::tempdir().expect("tempdir");
    let Some(mut term) = Terminal::start_with_home(dir.path(), home.path(), &[&port]) else { return };
    let at = term.wait_for("ftp> ", 0, STEP);
    // A command name, then a remote name, by Tab.
    term.type_keys("pw\t\n");
    let at = term.wait_for("\r\n/\r\n", at, STEP);
    term.type_keys("get uniq\t\n");
    let at = term.wait_for("get unique-name.txt -> unique-name.txt: 11 bytes", at, STEP);
    assert_eq!(fs::read(dir.path().join("unique-name.txt")).expect("downloaded"), b"complete me");
    // Up recalls the get; run again, it refuses to overwrite.
    term.type_keys("\x1b[A\n");
    let at = term.wait_for("exists (use get -f or --force to overwrite)", at, STEP);
    // Ctrl-C drops the typed line: no "unknown command" follows.
    term.type_keys("garbage");
    let typed = term.wait_for("garbage", at, STEP);
    term.type_keys("\x03");
    // The new prompt is the first after the line break Ctrl-C ends the line with: redraws of the edited line show
    // "ftp> " too, and keys typed before the client has taken the Ctrl-C are dropped with the line.
    let ended = term.wait_for("\r\n", typed, STEP);
    let prompt = term.wait_for("ftp> ", ended, STEP);
    term.type_keys("pwd\n");
    term.wait_for("\r\n/\r\n", prompt, STEP);
    term.type_keys("quit\n");
    let screen = term.screen();
    term.wait();
    assert!(!screen[typed..].contains("garbage") && !screen.contains("unknown command"), "{screen}");
    let history = fs::read_to_string(home.path().join(".ftpclient_history")).expect("history saved");
    assert!(history.contains("get unique-name.txt\n") && history.contains("pwd\n"), "{history}");
}
