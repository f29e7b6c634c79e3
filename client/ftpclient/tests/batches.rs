//! `ftpclient` as scripts use it, against our own server: a batch stops at its first failed command unless
//! `--keep-going` is given, unknown options are usage errors (status 2), `-` is standard input or output, the
//! server may be named `HOST:PORT`, and `ls -1` prints names only.

mod support;

use std::fs;

use support::ourserver::Served;
use support::{ftpclient, pattern, result};

// Regression: `printf 'cd olld\nrm important.txt\n' | ftpclient PORT` deleted /important.txt after the cd failed.
#[test]
fn batch_from_stdin_stops_at_the_failed_cd() {
    let served = Served::start(&[]);
    fs::write(served.path("important.txt"), b"keep me").expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ftpclient(dir.path(), &[&served.port_arg()], Some("cd olld\nrm important.txt\n"));
    let (code, _, stderr) = result(&out);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("error: cd olld: server replied 550"), "{stderr}");
    assert!(stderr.contains("stopped at `cd olld`, which failed; the commands after it were not run"), "{stderr}");
    assert!(!stderr.contains("rm important.txt"), "{stderr}");
    assert_eq!(fs::read(served.path("important.txt")).expect("still there"), b"keep me");
}

// The same for -c and -b; --keep-going runs the rest and still reports the failure.
#[test]
fn commands_and_batch_files_stop_unless_keep_going() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = served.port_arg();
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "cd olld", "-c", "mkdir made"], None));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!served.path("made").exists());

    fs::write(dir.path().join("batch.txt"), "# comment\nmkdir first\nrmdir nowhere\nmkdir second\n").expect("write");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-b", "batch.txt"], None));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stopped at `rmdir nowhere`"), "{stderr}");
    assert!(served.path("first").is_dir() && !served.path("second").exists());

    let args = [port.as_str(), "--keep-going", "-c", "cd olld", "-c", "mkdir made"];
    let (code, _, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("stopped at"), "{stderr}");
    assert!(served.path("made").is_dir());
}

// Regression: `get -r pub` asked the server for a file named "-r". Unknown options, of the program or of a
// command, are usage errors: status 2, and nothing after them runs.
#[test]
fn unknown_options_are_usage_errors() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = served.port_arg();
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "get -x pub", "-c", "mkdir made"], None));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("error: get -x pub: unknown option -x"), "{stderr}");
    assert!(!served.path("made").exists());
    let (code, _, stderr) = result(&ftpclient(dir.path(), &["--bogus", &port], None));
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "frobnicate"], None));
    assert_eq!(code, Some(2), "{stderr}");
}

// `put - NAME` reads standard input, `get NAME -` and `cat NAME` write standard output, byte for byte; the
// summary of `get NAME -` goes to standard error so it never mixes with the file.
#[test]
fn dash_is_standard_input_and_output() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = served.port_arg();
    // Binary data with every byte value: standard input carries it, so it is not valid UTF-8 text.
    let data = pattern(200_001, 7);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ftpclient"))
        .current_dir(dir.path())
        .args([&port, "-c", "put - up.bin"])
        .env("NETRC", dir.path().join("none"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ftpclient");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &data).expect("write stdin");
    let (code, stdout, stderr) = result(&support::wait_bounded(child, support::PROCESS_LIMIT));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("upload - -> up.bin: 200001 bytes in "), "{stdout}");
    assert_eq!(fs::read(served.path("up.bin")).expect("uploaded"), data);

    let out = ftpclient(dir.path(), &[&port, "-c", "get up.bin -"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, data);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("get up.bin -> -: 200001 bytes in "));
    let out = ftpclient(dir.path(), &[&port, "-c", "cat up.bin"], None);
    assert_eq!((out.status.code(), out.stdout.len(), out.stderr.len()), (Some(0), data.len(), 0));
    assert_eq!(out.stdout, data);
    assert!(!dir.path().join("-").exists());

    // Commands read from standard input leave no room for a file there.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port], Some("put - x.bin\n")));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("standard input holds the commands"), "{stderr}");
}

// Regression: `ftpclient 127.0.0.1:2121` was refused. Also `ls -1` (names only) and `upload f DIR/`.
#[test]
fn host_port_form_ls_names_and_upload_into_a_directory() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("f.txt"), b"f").expect("write");
    fs::create_dir(served.path("pub")).expect("mkdir");
    fs::write(served.path("pub/a b.txt"), b"ab").expect("write");
    let target = format!("127.0.0.1:{}", served.port_arg());
    let args = [target.as_str(), "-c", "upload f.txt /pub/", "-c", "ls -1 /pub"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(fs::read(served.path("pub/f.txt")).expect("uploaded"), b"f");
    let mut names: Vec<&str> = stdout.lines().skip(1).collect();
    names.sort();
    assert_eq!(names, ["a b.txt", "f.txt"], "{stdout}");
    let (code, stdout, _) = result(&ftpclient(dir.path(), &["-q", &target, "-c", "ls -1 /pub", "-c", "ls /pub"], None));
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    // `ls` is the long form on every server: type, size, time, name.
    assert!(lines[2].starts_with("- 2 ") && lines[2].ends_with(" a b.txt"), "{stdout}");
}

// --json: one object per command on stdout, each parsed here; a failure is ok=false with its error and code.
#[test]
fn json_reports_parse() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("f.bin"), pattern(1234, 3)).expect("write");
    let port = served.port_arg();
    let args =
        [&port, "--json", "--keep-going", "-c", "mkdir d", "-c", "put f.bin d/", "-c", "ls -1 d", "-c", "rm nope"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(1), "{stderr}");
    let records: Vec<serde_json::Value> =
        stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect();
    assert_eq!(records.len(), 4, "{stdout}");
    assert_eq!(records[0]["command"], "mkdir d");
    assert_eq!((records[0]["ok"].as_bool(), records[0]["code"].as_u64()), (Some(true), Some(257)));
    assert_eq!(records[1]["bytes"].as_u64(), Some(1234));
    assert_eq!(records[1]["paths"], serde_json::json!(["f.bin", "d/"]));
    assert!(records[1]["seconds"].as_f64().is_some_and(|s| s >= 0.0));
    assert_eq!(records[2]["output"], "f.bin");
    assert_eq!((records[3]["ok"].as_bool(), records[3]["code"].as_u64()), (Some(false), Some(550)));
    assert!(records[3]["error"].as_str().is_some_and(|e| e.starts_with("server replied 550")), "{stdout}");
}

// lcd, lls, lpwd and !COMMAND act on this machine; a failing local command fails like any other.
#[test]
fn local_commands() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("sub")).expect("mkdir");
    fs::write(dir.path().join("sub/a.txt"), b"a").expect("write");
    let port = served.port_arg();
    let args =
        [&port, "-q", "-c", "lcd sub", "-c", "lpwd", "-c", "lls", "-c", "!echo hi > made.txt", "-c", "put made.txt"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    let sub = dir.path().join("sub").canonicalize().expect("canonical");
    assert_eq!(stdout, format!("{}\na.txt\n", sub.display()));
    assert_eq!(fs::read(served.path("made.txt")).expect("uploaded"), b"hi\n");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "!exit 3", "-c", "mkdir after"], None));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!served.path("after").exists());
}
