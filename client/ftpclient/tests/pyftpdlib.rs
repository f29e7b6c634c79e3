//! Our client against a real peer: Python's pyftpdlib, started per test on port 0 with an anonymous user that may
//! write, rooted in a temporary directory. The library is checked file by file against what lands on disk, and the
//! `ftpclient` binary is run as a subprocess to check its output, its exit status and its handling of local files.
//!
//! Without python3 and pyftpdlib each test prints a skip line and passes, except under CI=true, where that is a
//! failure. Every wait is bounded: the port is read with a timeout, subprocesses are killed if they overrun.

mod support;

use std::fs;
use std::net::TcpListener;

use ftp_client::{FtpClient, FtpError};
use support::{file_names, ftpclient, ftpclient_env, pattern, pyftpdlib_installed, result, sha256, PeerServer, WAIT};

/// Sizes around the 1 KiB chunk and the 64 KiB buffer, and one well past them.
const SIZES: [usize; 6] = [0, 1, 1023, 1024, 1025, 1024 * 1024 + 7];

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
    assert!(stdout.trim_end().ends_with("/s), size verified"), "{stdout}");
    assert_eq!(sha256(&fs::read(dir.path().join("copy.bin")).expect("downloaded")), sha256(&data));

    // A failing command makes the status 1; with --keep-going the ones after it still run.
    let out = ftpclient(dir.path(), &[&port, "--keep-going", "-c", "rm nothing.txt", "-c", "pwd"], None);
    let (code, stdout, stderr) = result(&out);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error: rm nothing.txt: server replied 550"), "{stderr}");
    assert_eq!(stdout, "/\n");

    // Unknown commands are usage errors.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "fetch x"], None));
    assert_eq!(code, Some(2));
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
    let out = ftpclient_env(dir.path(), &[&port, "-u", "bob", "-c", "pwd"], None, &[("FTP_PASSWORD", "s3cret")]);
    let (code, stdout, stderr) = result(&out);
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
    assert!(
        stderr.starts_with("error: get a.txt: local file a.txt exists (use get -f or --force to overwrite)\n"),
        "{stderr}"
    );
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
    let args = [&server.port_arg(), "--keep-going", "-b", batch];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(2), "the bogus command is a usage error: {stderr}");
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
    let server = PeerServer::start("::1", false).unwrap_or_else(|msg| panic!("pyftpdlib on ::1: {msg}"));
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(server.path("v6.txt"), b"six\n").expect("remote file");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &["::1", &server.port_arg(), "-c", "get v6.txt"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("get v6.txt -> v6.txt: 4 bytes"), "{stdout}");
    assert_eq!(fs::read(dir.path().join("v6.txt")).expect("downloaded"), b"six\n");

    // Active mode over IPv6 announces its address with EPRT.
    let data = pattern(70_000, 6);
    fs::write(dir.path().join("up6.bin"), &data).expect("local file");
    let args = ["--active", "::1", &server.port_arg(), "-c", "upload up6.bin", "-c", "get -f v6.txt", "-c", "ls -l"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("upload up6.bin -> up6.bin: 70000 bytes in "), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("- 70000 ") && l.ends_with(" up6.bin")), "{stdout}");
    assert_eq!(sha256(&fs::read(server.path("up6.bin")).expect("uploaded")), sha256(&data));
}

/// A writer that raises the interrupt flag once it has taken `after` bytes, as a Ctrl-C handler would.
struct InterruptAfter {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    after: usize,
    taken: Vec<u8>,
}

impl std::io::Write for InterruptAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.taken.extend_from_slice(buf);
        if self.taken.len() >= self.after {
            self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The interrupt flag aborts a download with ABOR; the session stays in step (the next command gets its own reply)
// and REST continues from what arrived.
#[test]
fn library_abort_keeps_the_session_usable() {
    let Some(server) = PeerServer::local() else { return };
    let data = pattern(64 << 20, 21);
    fs::write(server.path("big.bin"), &data).expect("remote file");
    let mut client = FtpClient::connect("127.0.0.1", server.port, WAIT).expect("connect");
    client.login("anonymous", "anonymous@").expect("login");
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    client.set_interrupt(Some(flag.clone()));
    let mut out = InterruptAfter { flag: flag.clone(), after: 100_000, taken: Vec::new() };
    match client.retr("big.bin", &mut out) {
        Err(FtpError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "{e}"),
        other => panic!("expected an interrupted transfer, got {other:?}"),
    }
    let got = out.taken.len();
    assert!(got >= 100_000 && got < data.len(), "{got} bytes");
    assert_eq!(out.taken[..], data[..got]);
    flag.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(client.pwd().expect("pwd after ABOR"), "/");
    let mut rest = Vec::new();
    client.retr_from("big.bin", got as u64, &mut rest).expect("rest");
    assert_eq!(sha256(&[&out.taken[..], &rest[..]].concat()), sha256(&data));
    client.quit().expect("quit");
}
