//! Tests of the `ftpclient` commands that move files or show file facts, against the scripted fake server: the
//! exact command sequence of `get`, `get -c`, `upload -c` and their verification, `ls -l`, `mdtm` and `hash`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::shell::{Flow, Shell};
use crate::transfer::Verify;
use ftp_client::fake_server::{accept, read_all, serve_download, serve_upload, FakeServer, Peer};
use ftp_client::to_hex;
use ftp_client::FtpClient;

/// Runs `lines` through a shell whose server runs `script`; returns (stdout, stderr, failures).
fn run(lines: &[String], script: impl FnOnce(&mut Peer) + Send + 'static) -> (String, String, usize) {
    run_verifying(Verify::Auto, lines, script)
}

/// [`run`] with `--verify` set to `verify`.
fn run_verifying(
    verify: Verify,
    lines: &[String],
    script: impl FnOnce(&mut Peer) + Send + 'static,
) -> (String, String, usize) {
    let server = FakeServer::start("220 ready", script);
    let client = FtpClient::connect("127.0.0.1", server.addr.port(), Duration::from_secs(5)).expect("connect");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut shell = Shell::new(client, false, false, &mut out, &mut err);
    shell.set_verify(verify);
    for line in lines {
        if shell.run_line(line) == Flow::Stop {
            break;
        }
    }
    let failures = shell.failures();
    shell.finish();
    server.join();
    (String::from_utf8(out).expect("utf-8"), String::from_utf8(err).expect("utf-8"), failures)
}

fn quit(peer: &mut Peer) {
    peer.exchange("QUIT", "221 Bye");
}

fn sha256_hex(data: &[u8]) -> String {
    to_hex(&Sha256::digest(data))
}

fn crc32_hex(data: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(data))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn q(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

// FEAT offers SHA-256 without selecting it: OPTS HASH once, then HASH after every transfer; FEAT is asked once.
#[test]
fn get_and_upload_verified_by_sha256() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("up.bin");
    fs::write(&local, b"upload me").expect("write");
    let lines = vec![format!("get a.bin {}", q(&dir.path().join("a.bin"))), format!("upload {} up.bin", q(&local))];
    let (out, err, failures) = run(&lines, |peer| {
        peer.feat(&["HASH SHA-1*;SHA-256", "SIZE"]);
        serve_download(peer, "RETR a.bin", b"hello");
        peer.exchange("OPTS HASH SHA-256", "200 SHA-256");
        peer.exchange("HASH a.bin", &format!("213 SHA-256 0-5 {} a.bin", sha256_hex(b"hello")));
        assert_eq!(serve_upload(peer, "STOR up.bin"), b"upload me");
        peer.exchange("HASH up.bin", &format!("213 SHA-256 0-9 {} up.bin", sha256_hex(b"upload me")));
        quit(peer);
    });
    assert_eq!(failures, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("get a.bin -> ") && lines[0].ends_with("/s), SHA-256 verified"), "{out}");
    assert!(lines[1].contains(": 9 bytes in ") && lines[1].ends_with("/s), SHA-256 verified"), "{out}");
    assert_eq!(fs::read(dir.path().join("a.bin")).expect("read"), b"hello");
}

// With CRC32 on offer `--verify auto` takes it over SHA-256, selected or not; a CRC32 that differs is an error too.
#[test]
fn auto_verification_prefers_crc32() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("up.bin");
    fs::write(&local, b"upload me").expect("write");
    let lines = vec![
        format!("get a.bin {}", q(&dir.path().join("a.bin"))),
        format!("upload {} up.bin", q(&local)),
        format!("get b.bin {}", q(&dir.path().join("b.bin"))),
    ];
    let (out, err, failures) = run(&lines, |peer| {
        peer.feat(&["HASH SHA-1;SHA-256*;SHA-512;MD5;CRC32", "SIZE"]);
        serve_download(peer, "RETR a.bin", b"hello");
        peer.exchange("OPTS HASH CRC32", "200 CRC32");
        peer.exchange("HASH a.bin", &format!("213 CRC32 0-5 {} a.bin", crc32_hex(b"hello")));
        assert_eq!(serve_upload(peer, "STOR up.bin"), b"upload me");
        peer.exchange("HASH up.bin", &format!("213 CRC32 0-9 {} up.bin", crc32_hex(b"upload me")));
        serve_download(peer, "RETR b.bin", b"hello");
        peer.exchange("HASH b.bin", &format!("213 CRC32 0-5 {} b.bin", crc32_hex(b"hellO")));
        quit(peer);
    });
    assert_eq!(failures, 1, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("get a.bin -> ") && lines[0].ends_with("/s), CRC32 verified"), "{out}");
    assert!(lines[1].contains(": 9 bytes in ") && lines[1].ends_with("/s), CRC32 verified"), "{out}");
    let expected = format!(
        "error: get b.bin {}: CRC32 mismatch: local {}, server {}; the download was discarded\n",
        q(&dir.path().join("b.bin")),
        crc32_hex(b"hello"),
        crc32_hex(b"hellO"),
    );
    assert_eq!(err, expected);
    assert_eq!(names(dir.path()), ["a.bin", "up.bin"]);
}

// `--verify sha256` asks for SHA-256 though CRC32 is offered; `--verify size` asks for no digest at all.
#[test]
fn verify_option_chooses_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = vec![format!("get a.bin {}", q(&dir.path().join("a.bin")))];
    let (out, err, failures) = run_verifying(Verify::Sha256, &lines, |peer| {
        peer.feat(&["HASH CRC32*;SHA-256", "SIZE"]);
        serve_download(peer, "RETR a.bin", b"hello");
        peer.exchange("OPTS HASH SHA-256", "200 SHA-256");
        peer.exchange("HASH a.bin", &format!("213 SHA-256 0-5 {} a.bin", sha256_hex(b"hello")));
        quit(peer);
    });
    assert_eq!(failures, 0, "{err}");
    assert!(out.ends_with("/s), SHA-256 verified\n"), "{out}");
    let lines = vec![format!("get b.bin {}", q(&dir.path().join("b.bin")))];
    let (out, err, failures) = run_verifying(Verify::Size, &lines, |peer| {
        serve_download(peer, "RETR b.bin", b"hello");
        peer.exchange("SIZE b.bin", "213 5");
        quit(peer);
    });
    assert_eq!(failures, 0, "{err}");
    assert!(out.ends_with("/s), size verified\n"), "{out}");
    // crc32 against a server that offers only SHA-256 compares sizes.
    let lines = vec![format!("get c.bin {}", q(&dir.path().join("c.bin")))];
    let (out, err, failures) = run_verifying(Verify::Crc32, &lines, |peer| {
        peer.feat(&["HASH SHA-256*", "SIZE"]);
        serve_download(peer, "RETR c.bin", b"hello");
        peer.exchange("SIZE c.bin", "213 5");
        quit(peer);
    });
    assert_eq!(failures, 0, "{err}");
    assert!(out.ends_with("/s), size verified\n"), "{out}");
}

// A digest that differs is an error, and the download is not moved into place.
#[test]
fn get_with_wrong_hash_keeps_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = vec![format!("get a.bin {}", q(dir.path()))];
    let (out, err, failures) = run(&lines, |peer| {
        peer.feat(&["HASH SHA-256*"]);
        serve_download(peer, "RETR a.bin", b"hello");
        peer.exchange("HASH a.bin", &format!("213 SHA-256 0-5 {} a.bin", sha256_hex(b"hellO")));
        quit(peer);
    });
    assert_eq!((out.as_str(), failures), ("", 1));
    let expected = format!(
        "error: get a.bin {}: SHA-256 mismatch: local {}, server {}; the download was discarded\n",
        q(dir.path()),
        sha256_hex(b"hello"),
        sha256_hex(b"hellO"),
    );
    assert_eq!(err, expected);
    assert!(names(dir.path()).is_empty());
}

// Without HASH the sizes are compared; a refused HASH falls back to them too.
#[test]
fn size_verification_and_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("b.bin");
    let lines = vec![format!("get a.bin {}", q(&target)), format!("get c.bin {}", q(&target))];
    let (out, err, failures) = run(&lines, |peer| {
        peer.feat(&["HASH SHA-256*", "SIZE"]);
        serve_download(peer, "RETR a.bin", b"12345");
        peer.exchange("HASH a.bin", "550 Cannot hash that");
        peer.exchange("SIZE a.bin", "213 6");
        serve_download(peer, "RETR c.bin", b"123");
        peer.exchange("HASH c.bin", "502 HASH is off");
        peer.exchange("SIZE c.bin", "213 3");
        quit(peer);
    });
    assert_eq!(failures, 1);
    let expected = format!(
        "error: get a.bin {}: size mismatch: local 5 bytes, server 6 bytes; the download was discarded\n",
        q(&target)
    );
    assert_eq!(err, expected);
    assert!(out.starts_with("get c.bin -> ") && out.ends_with("/s), size verified\n"), "{out}");
    assert_eq!(fs::read(&target).expect("read"), b"123");
    assert_eq!(names(dir.path()), ["b.bin"]);
}

// A server with neither HASH nor SIZE cannot verify: the transfer stands and the line says so.
#[test]
fn nothing_to_verify_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _, failures) = run(&[format!("get a {}", q(&dir.path().join("a")))], |peer| {
        peer.feat(&[]);
        serve_download(peer, "RETR a", b"x");
        peer.exchange("SIZE a", "502 No SIZE here");
        quit(peer);
    });
    assert_eq!(failures, 0);
    assert!(out.ends_with("/s), not verified (the server has neither HASH nor SIZE)\n"), "{out}");
}

// RFC 3659 §5: get -c sends REST with the local size and appends to the local file itself; the whole file is
// verified, the part that was already there included.
#[test]
fn get_continue_appends_and_verifies_the_whole_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("big.bin");
    fs::write(&target, b"hello").expect("write");
    let (out, err, failures) = run(&[format!("get -c big.bin {}", q(&target))], |peer| {
        peer.feat(&["HASH SHA-256*", "SIZE", "REST STREAM"]);
        peer.exchange("SIZE big.bin", "213 11");
        let listener = peer.epsv();
        peer.exchange("REST 5", "350 Restarting at 5");
        peer.expect("RETR big.bin");
        let mut conn = accept(&listener);
        peer.send("150 Opening");
        std::io::Write::write_all(&mut conn, b" world").expect("send");
        drop(conn);
        peer.send("226 Done");
        peer.exchange("HASH big.bin", &format!("213 SHA-256 0-11 {} big.bin", sha256_hex(b"hello world")));
        quit(peer);
    });
    assert_eq!(failures, 0, "{err}");
    assert!(out.contains(": 6 bytes in ") && out.ends_with(", resumed at byte 5, SHA-256 verified\n"), "{out}");
    assert_eq!(fs::read(&target).expect("read"), b"hello world");
    assert_eq!(names(dir.path()), ["big.bin"]);
}

// get -c on a complete file transfers nothing; on a larger one, or where REST is refused, it fails and leaves
// the local file as it was; where there is no local file it starts one.
#[test]
fn get_continue_edge_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let done = dir.path().join("done.bin");
    let long = dir.path().join("long.bin");
    let fresh = dir.path().join("fresh.bin");
    fs::write(&done, b"12345").expect("write");
    fs::write(&long, b"123456").expect("write");
    let lines = vec![
        format!("get -c f {}", q(&done)),
        format!("get -c f {}", q(&long)),
        format!("get --continue g {}", q(&done)),
        format!("get -c f {}", q(&fresh)),
        format!("get -c missing {}", q(&dir.path().join("missing"))),
    ];
    let (out, err, failures) = run(&lines, |peer| {
        peer.feat(&["SIZE"]);
        peer.exchange("SIZE f", "213 5");
        peer.exchange("SIZE f", "213 5");
        peer.exchange("SIZE f", "213 5");
        peer.exchange("SIZE g", "213 9");
        let _listener = peer.epsv();
        peer.exchange("REST 5", "502 No restarts");
        peer.exchange("SIZE f", "213 5");
        serve_download(peer, "RETR f", b"12345");
        peer.exchange("SIZE f", "213 5");
        peer.exchange("SIZE missing", "550 No such file");
        quit(peer);
    });
    assert_eq!(failures, 3, "{err}");
    let errors: Vec<&str> = err.lines().collect();
    assert!(
        out.starts_with(&format!("get f -> {}: already complete (5 bytes), size verified\n", done.display())),
        "{out}"
    );
    assert!(
        errors[0]
            .ends_with(&format!("local file {} (6 bytes) is larger than f (5 bytes); cannot continue", long.display())),
        "{err}"
    );
    assert!(errors[1].ends_with(": REST 5: server replied 502 No restarts"), "{err}");
    assert!(errors[2].ends_with(": server replied 550 No such file"), "{err}");
    assert!(out.contains(&format!("get f -> {}: 5 bytes in ", fresh.display())), "{out}");
    assert_eq!(fs::read(&done).expect("read"), b"12345");
    assert_eq!(fs::read(&long).expect("read"), b"123456");
    assert_eq!(fs::read(&fresh).expect("read"), b"12345");
    assert_eq!(names(dir.path()), ["done.bin", "fresh.bin", "long.bin"]);
}

// upload -c: SIZE says how much the server has; REST and STOR send the rest. A missing remote file is a plain STOR.
#[test]
fn upload_continue_with_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("u.bin");
    fs::write(&local, b"0123456789").expect("write");
    let lines = vec![format!("upload -c {} u.bin", q(&local)), format!("upload -c {} new.bin", q(&local))];
    let (out, err, failures) = run(&lines, |peer| {
        peer.feat(&["SIZE", "REST STREAM"]);
        peer.exchange("SIZE u.bin", "213 4");
        let listener = peer.epsv();
        peer.exchange("REST 4", "350 Restarting at 4");
        peer.expect("STOR u.bin");
        let conn = accept(&listener);
        peer.send("150 Ok");
        assert_eq!(read_all(conn), b"456789");
        peer.send("226 Done");
        peer.exchange("SIZE u.bin", "213 10");
        peer.exchange("SIZE new.bin", "550 No such file");
        assert_eq!(serve_upload(peer, "STOR new.bin"), b"0123456789");
        peer.exchange("SIZE new.bin", "213 10");
        quit(peer);
    });
    assert_eq!(failures, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(": 6 bytes in ") && lines[0].ends_with(", resumed at byte 4, size verified"), "{out}");
    assert!(lines[1].contains(": 10 bytes in ") && lines[1].ends_with("/s), size verified"), "{out}");
}

// When the server refuses REST, or STOR after REST, with 500-504, the rest is appended with APPE; after a refused
// STOR the pending offset is cleared first (REST 0).
#[test]
fn upload_continue_falls_back_to_appe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("u.bin");
    fs::write(&local, b"0123456789").expect("write");
    let lines = vec![format!("upload -c {} u.bin", q(&local)), format!("upload -c {} v.bin", q(&local))];
    let (out, err, failures) = run(&lines, |peer| {
        peer.feat(&["HASH SHA-256*"]);
        peer.exchange("SIZE u.bin", "213 4");
        let _listener = peer.epsv();
        peer.exchange("REST 4", "502 REST not implemented");
        assert_eq!(serve_upload(peer, "APPE u.bin"), b"456789");
        peer.exchange("HASH u.bin", &format!("213 SHA-256 0-10 {} u.bin", sha256_hex(b"0123456789")));
        peer.exchange("SIZE v.bin", "213 8");
        let _listener = peer.epsv();
        peer.exchange("REST 8", "350 Restarting at 8");
        peer.exchange("STOR v.bin", "504 Not with REST");
        peer.exchange("REST 0", "350 Restarting at 0");
        assert_eq!(serve_upload(peer, "APPE v.bin"), b"89");
        peer.exchange("HASH v.bin", &format!("213 SHA-256 0-10 {} v.bin", sha256_hex(b"01234567xx")));
        quit(peer);
    });
    assert_eq!(failures, 1, "{err}");
    assert!(out.ends_with(", resumed at byte 4, SHA-256 verified\n"), "{out}");
    assert!(
        err.contains(&format!(
            "SHA-256 mismatch: local {}, server {}",
            sha256_hex(b"0123456789"),
            sha256_hex(b"01234567xx")
        )),
        "{err}"
    );
}

// upload -c when the server has more than the local file, or all of it.
#[test]
fn upload_continue_edge_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("u.bin");
    fs::write(&local, b"0123").expect("write");
    let lines = vec![format!("upload -c {} u.bin", q(&local)), format!("upload -c {} w.bin", q(&local))];
    let (out, err, failures) = run(&lines, |peer| {
        peer.feat(&["SIZE"]);
        peer.exchange("SIZE u.bin", "213 5");
        peer.exchange("SIZE w.bin", "213 4");
        peer.exchange("SIZE w.bin", "213 4");
        quit(peer);
    });
    assert_eq!(failures, 1);
    let expected = format!(
        "error: upload -c {} u.bin: u.bin (5 bytes) is larger than local file {} (4 bytes); cannot continue\n",
        q(&local),
        local.display()
    );
    assert_eq!(err, expected);
    assert_eq!(out, format!("upload {} -> w.bin: already complete (4 bytes), size verified\n", local.display()));
}

// ls -l: MLSD with the facts it needs selected, in columns; without MLST, the server's LIST.
#[test]
fn long_listing() {
    let (out, err, failures) = run(&["ls -l pub".to_string(), "ls -l".to_string()], |peer| {
        peer.feat(&["MLST type*;size;modify*;perm*;"]);
        peer.exchange("OPTS MLST type;size;modify;perm;", "200 MLST OPTS type;size;modify;perm;");
        let listing = "type=cdir; .\r\ntype=file;size=1024;modify=20240102030405; b.txt\r\n\
                       type=dir;size=4096;modify=20231231235959; a dir\r\n";
        serve_download(peer, "MLSD pub", listing.as_bytes());
        serve_download(peer, "MLSD", b"type=cdir; .\r\n");
        quit(peer);
    });
    assert_eq!(failures, 0, "{err}");
    assert_eq!(out, "d 4096 2023-12-31 23:59 a dir\n- 1024 2024-01-02 03:04 b.txt\n");

    let (out, _, failures) = run(&["ls -l".to_string()], |peer| {
        peer.feat(&["SIZE"]);
        serve_download(peer, "LIST", b"-rw-r--r-- 1 ftp ftp 5 Jan 1 00:00 a\r\n");
        quit(peer);
    });
    assert_eq!((out.as_str(), failures), ("-rw-r--r-- 1 ftp ftp 5 Jan 1 00:00 a\n", 0));
}

#[test]
fn mdtm_and_hash_commands() {
    let hex = sha256_hex(b"abc");
    let lines: Vec<String> =
        ["mdtm a.txt", "mdtm gone", "hash a.txt", "hash \"b c\""].iter().map(|s| s.to_string()).collect();
    let reply = format!("213 SHA-256 0-3 {hex} a.txt");
    let (out, err, failures) = run(&lines, move |peer| {
        peer.exchange("MDTM a.txt", "213 20240102030405");
        peer.exchange("MDTM gone", "550 No such file");
        peer.feat(&["HASH MD5*;SHA-256"]);
        peer.exchange("OPTS HASH SHA-256", "200 SHA-256");
        peer.exchange("HASH a.txt", &reply);
        peer.exchange("HASH b c", "550 No such file");
        quit(peer);
    });
    assert_eq!(failures, 2);
    assert_eq!(out, format!("a.txt: 2024-01-02 03:04:05 UTC\na.txt: SHA-256 {hex}\n"));
    assert_eq!(
        err,
        "error: mdtm gone: server replied 550 No such file\nerror: hash \"b c\": server replied 550 No such file\n"
    );
}
