//! Our client's extensions against a real peer, Python's pyftpdlib: resuming in both directions, verification by
//! size and by SHA-256, active data connections, MLSD and MLST, MDTM and MFMT, `ftp://` URLs and the netrc file.
//!
//! pyftpdlib has no HASH command; for the SHA-256 paths the server script adds one (see `support`), which also
//! lets a test see a digest that does not match. Without python3 and pyftpdlib each test prints a skip line and
//! passes, except under CI=true, where that is a failure. Every wait is bounded.

mod support;

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ftp_client::timestamp::format_utc_minutes;
use ftp_client::{EntryKind, FtpClient};
use support::{
    file_names, ftpclient, ftpclient_env, missing_tool, pattern, result, sha256, sha256_hex, wait_bounded, PeerServer,
    PROCESS_LIMIT, WAIT,
};

/// 2024-01-02 03:04:05 UTC.
const JAN_2: u64 = 1_704_164_645;

fn set_mtime(path: &Path, secs: u64) {
    let file = File::options().write(true).open(path).expect("open for mtime");
    file.set_modified(UNIX_EPOCH + Duration::from_secs(secs)).expect("set mtime");
}

#[test]
fn library_extensions() {
    let Some(server) = PeerServer::local_with_hash() else { return };
    let mut client = FtpClient::connect("127.0.0.1", server.port, WAIT).expect("connect");
    client.login("anonymous", "anonymous@").expect("login");
    let features = client.feat().expect("feat");
    for name in ["MDTM", "MFMT", "SIZE", "EPRT"] {
        assert!(features.iter().any(|f| f == name), "{name} missing from {features:?}");
    }
    assert_eq!(client.feature("REST").expect("feature").as_deref(), Some("STREAM"));

    // Restarted transfers and APPE.
    let data = pattern(300_001, 1);
    client.stor("r.bin", &mut &data[..100_000]).expect("stor");
    client.stor_from("r.bin", 100_000, &mut &data[100_000..200_000]).expect("stor_from");
    client.append("r.bin", &mut &data[200_000..]).expect("append");
    assert_eq!(sha256(&fs::read(server.path("r.bin")).expect("read")), sha256(&data));
    let mut tail = Vec::new();
    assert_eq!(client.retr_from("r.bin", 123_456, &mut tail).expect("retr_from"), (data.len() - 123_456) as u64);
    assert!(tail == data[123_456..], "tail differs");

    // MFMT, MDTM, MLST and MLSD agree with the file system.
    let when = UNIX_EPOCH + Duration::from_secs(JAN_2);
    client.set_mtime("r.bin", when).expect("mfmt");
    assert_eq!(fs::metadata(server.path("r.bin")).expect("stat").modified().expect("mtime"), when);
    assert_eq!(client.mdtm("r.bin").expect("mdtm"), when);
    let entry = client.mlst(Some("r.bin")).expect("mlst");
    assert_eq!((entry.name.as_str(), entry.kind(), entry.size()), ("/r.bin", EntryKind::File, Some(300_001)));
    assert_eq!(entry.modified(), Some(when));
    client.mkdir("sub").expect("mkdir");
    let mut entries = client.mlsd(None).expect("mlsd");
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let kinds: Vec<(&str, EntryKind)> = entries.iter().map(|e| (e.name.as_str(), e.kind())).collect();
    assert_eq!(kinds, [("r.bin", EntryKind::File), ("sub", EntryKind::Dir)]);

    // HASH, after selecting SHA-256.
    client.select_hash("SHA-256").expect("OPTS HASH");
    let hash = client.hash("r.bin").expect("hash");
    assert_eq!((hash.algorithm.as_str(), hash.hex.as_str()), ("SHA-256", sha256_hex(&data).as_str()));

    // Active data connections: PORT on IPv4.
    client.set_active(true);
    let mut back = Vec::new();
    client.retr("r.bin", &mut back).expect("active retr");
    assert!(back == data, "active download differs");
    client.stor("active.bin", &mut &data[..77_777]).expect("active stor");
    assert_eq!(fs::read(server.path("active.bin")).expect("read"), &data[..77_777]);
    assert_eq!(client.nlst(None).expect("active nlst").len(), 3);
    client.quit().expect("quit");
}

/// Resumes a download and an upload with the binary; `check` is the verification the summary must name.
fn resume_both_directions(server: &PeerServer, check: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    let data = pattern(1024 * 1024 + 7, 3);
    fs::write(server.path("big.bin"), &data).expect("remote file");
    fs::write(dir.path().join("big.bin"), &data[..300_000]).expect("partial local file");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "get -c big.bin"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with(&format!("get big.bin -> big.bin: {} bytes in ", data.len() - 300_000)), "{stdout}");
    assert!(stdout.ends_with(&format!(", resumed at byte 300000, {check}\n")), "{stdout}");
    assert_eq!(sha256(&fs::read(dir.path().join("big.bin")).expect("read")), sha256(&data));
    assert_eq!(file_names(dir.path()), ["big.bin"]);

    // Again: nothing left to fetch.
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "get -c big.bin"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, format!("get big.bin -> big.bin: already complete ({} bytes), {check}\n", data.len()));

    let up = pattern(700_000, 4);
    fs::write(dir.path().join("up.bin"), &up).expect("local file");
    fs::write(server.path("up.bin"), &up[..250_000]).expect("partial remote file");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "upload -c up.bin"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("upload up.bin -> up.bin: 450000 bytes in "), "{stdout}");
    assert!(stdout.ends_with(&format!(", resumed at byte 250000, {check}\n")), "{stdout}");
    assert_eq!(sha256(&fs::read(server.path("up.bin")).expect("read")), sha256(&up));

    // A remote file that does not exist yet is uploaded whole.
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "upload -c up.bin fresh.bin"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("upload up.bin -> fresh.bin: 700000 bytes in "), "{stdout}");
    assert!(stdout.ends_with(&format!("/s), {check}\n")), "{stdout}");
    assert_eq!(sha256(&fs::read(server.path("fresh.bin")).expect("read")), sha256(&up));
}

#[test]
fn cli_resume_verified_by_size() {
    let Some(server) = PeerServer::local() else { return };
    resume_both_directions(&server, "size verified");
}

#[test]
fn cli_resume_verified_by_sha256() {
    let Some(server) = PeerServer::local_with_hash() else { return };
    resume_both_directions(&server, "SHA-256 verified");
}

// A digest that does not match is an error: the download is not kept, the upload is reported.
#[test]
fn cli_digest_mismatch_fails() {
    let Some(server) = PeerServer::local_with_hash() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    fs::write(server.path("corrupt.bin"), b"some bytes").expect("remote file");
    fs::write(dir.path().join("corrupt-up.bin"), b"other bytes").expect("local file");
    let args = [
        port.as_str(),
        "--keep-going",
        "-c",
        "get corrupt.bin",
        "-c",
        "upload corrupt-up.bin",
        "-c",
        "get corrupt.bin ok.bin",
    ];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(errors[0].starts_with("error: get corrupt.bin: SHA-256 mismatch: local "), "{stderr}");
    assert!(errors[0].ends_with("; the download was discarded"), "{stderr}");
    assert!(errors[1].starts_with("error: upload corrupt-up.bin: SHA-256 mismatch: local "), "{stderr}");
    assert_eq!(file_names(dir.path()), ["corrupt-up.bin"]);
}

#[test]
fn cli_active_mode() {
    let Some(server) = PeerServer::local() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    let data = pattern(2 * 1024 * 1024 + 3, 5);
    fs::write(dir.path().join("a.bin"), &data).expect("local file");
    let args = [port.as_str(), "--active", "-c", "upload a.bin", "-c", "get a.bin b.bin", "-c", "ls", "-c", "ls -l"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sha256(&fs::read(server.path("a.bin")).expect("uploaded")), sha256(&data));
    assert_eq!(sha256(&fs::read(dir.path().join("b.bin")).expect("downloaded")), sha256(&data));
    // `ls` and `ls -l` are the same columns.
    let line = format!("- {} ", data.len());
    assert_eq!(stdout.matches(&line).count(), 2, "{stdout}");
}

#[test]
fn cli_long_listing_mdtm_and_hash() {
    let Some(server) = PeerServer::local_with_hash() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(server.path("big.bin"), pattern(1_000_000, 6)).expect("remote file");
    fs::write(server.path("small file.txt"), b"abc").expect("remote file");
    fs::create_dir(server.path("sub")).expect("remote dir");
    set_mtime(&server.path("big.bin"), JAN_2);
    set_mtime(&server.path("small file.txt"), JAN_2 + 3600);
    let dir_size = fs::metadata(server.path("sub")).expect("stat").len();
    let dir_time = fs::metadata(server.path("sub")).expect("stat").modified().expect("mtime");
    let dir_minute = format_utc_minutes(dir_time);
    let args =
        [&server.port_arg(), "-c", "ls -l", "-c", "mdtm big.bin", "-c", "hash \"small file.txt\"", "-c", "ls -l sub"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    let expected = format!(
        "- 1000000 2024-01-02 03:04 big.bin\n\
         -       3 2024-01-02 04:04 small file.txt\n\
         d {dir_size:>7} {dir_minute} sub\n\
         big.bin: 2024-01-02 03:04:05 UTC\n\
         small file.txt: SHA-256 {}\n",
        sha256_hex(b"abc")
    );
    assert_eq!(stdout, expected);
    assert!(dir_time <= SystemTime::now());
}

#[test]
fn cli_url_mode() {
    let Some(server) = PeerServer::local() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port;
    let data = pattern(150_000, 7);
    fs::create_dir(server.path("dir")).expect("remote dir");
    fs::write(server.path("dir/file.bin"), &data).expect("remote file");
    fs::write(server.path("a b.txt"), b"spaced\n").expect("remote file");

    // A URL naming a file downloads it here and exits.
    let url = format!("ftp://127.0.0.1:{port}/dir/file.bin");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&url], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("get dir/file.bin -> file.bin: 150000 bytes in "), "{stdout}");
    assert_eq!(sha256(&fs::read(dir.path().join("file.bin")).expect("downloaded")), sha256(&data));
    // ... and never overwrites without --force, but may continue with --continue.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&url], None));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("exists (use get -f or --force to overwrite)"), "{stderr}");
    fs::write(dir.path().join("file.bin"), &data[..1000]).expect("truncate");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &["--continue", &url], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.ends_with(", resumed at byte 1000, size verified\n"), "{stdout}");
    assert_eq!(sha256(&fs::read(dir.path().join("file.bin")).expect("downloaded")), sha256(&data));

    // Percent-encoded path, user and password.
    let url = format!("ftp://c%40rol:p%3Ass%20w%40rd%2F@127.0.0.1:{port}/a%20b.txt");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&url], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(fs::read(dir.path().join("a b.txt")).expect("downloaded"), b"spaced\n");

    // A URL naming a directory opens a session there.
    let url = format!("ftp://bob:s3cret@127.0.0.1:{port}/dir/");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&url, "-c", "pwd"], None));
    assert_eq!((code, stdout.as_str()), (Some(0), "/dir\n"), "{stderr}");
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[&format!("ftp://127.0.0.1:{port}/")], Some("pwd\n")));
    assert_eq!((code, stdout.as_str()), (Some(0), "/\n"), "{stderr}");

    // Failures to log in or to enter the directory are status 2.
    let url = format!("ftp://bob:wrong@127.0.0.1:{port}/");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&url, "-c", "pwd"], None));
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: login as bob: PASS ****: server replied 530"), "{stderr}");
    let url = format!("ftp://127.0.0.1:{port}/nowhere/");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&url, "-c", "pwd"], None));
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: cd nowhere: server replied 550"), "{stderr}");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &["sftp://127.0.0.1/"], None));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("only ftp:// and ftps:// are supported"), "{stderr}");
}

#[test]
fn cli_netrc() {
    let Some(server) = PeerServer::local() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    let netrc = dir.path().join("netrc");
    let netrc_env = netrc.to_str().expect("utf-8 path");
    let run = |text: &str, args: &[&str]| {
        fs::write(&netrc, text).expect("netrc");
        result(&ftpclient_env(dir.path(), args, None, &[("NETRC", netrc_env)]))
    };

    // The machine entry's login and password are used ...
    let (code, stdout, stderr) = run("machine 127.0.0.1\n  login bob\n  password s3cret\n", &[&port, "-c", "pwd"]);
    assert_eq!((code, stdout.as_str()), (Some(0), "/\n"), "{stderr}");
    // ... as the failing password shows.
    let (code, _, stderr) = run("machine 127.0.0.1 login bob password wrong\n", &[&port, "-c", "pwd"]);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: login as bob: PASS ****: server replied 530"), "{stderr}");
    // A user given on the command line is not the entry's: the entry does not apply.
    let (code, _, stderr) =
        run("machine 127.0.0.1 login bob password wrong\n", &[&port, "-u", "anonymous", "-c", "pwd"]);
    assert_eq!(code, Some(0), "{stderr}");
    // The default entry applies to any host, and the URL's user finds its password there.
    let (code, _, stderr) = run(
        "machine elsewhere login x password y\ndefault login bob password s3cret\n",
        &[&format!("ftp://bob@127.0.0.1:{port}/"), "-c", "pwd"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    // A broken file is ignored with a warning.
    let (code, _, stderr) = run("machine\n", &[&port, "-c", "pwd"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.starts_with("warning: ignoring the netrc file: "), "{stderr}");
}

// A named user without a password is asked for one on the terminal (here a pseudo-terminal made by script(1)).
#[test]
fn cli_password_prompt_on_a_terminal() {
    let Some(server) = PeerServer::local() else { return };
    let script_found = Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !script_found && !missing_tool("script", "apt-get install -y bsdutils") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let command = format!("'{}' -u bob {} -c pwd", env!("CARGO_BIN_EXE_ftpclient"), server.port);
    let out = script(dir.path(), &["-qfec", &command, "/dev/null"], "s3cret\n");
    let (code, stdout, stderr) = result(&out);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("Password for bob@127.0.0.1: "), "{stdout}");
    assert!(stdout.ends_with("/\r\n"), "{stdout:?}");
}

/// Runs script(1) with `args` in `dir`, feeding it `input`; no netrc file applies.
fn script(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("script")
        .current_dir(dir)
        .args(args)
        .env_remove("FTP_PASSWORD")
        .env("NETRC", dir.join("no-such-netrc"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start script");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write input");
    wait_bounded(child, PROCESS_LIMIT)
}
