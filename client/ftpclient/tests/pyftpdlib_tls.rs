//! Our client with FTPS against a real peer: pyftpdlib's `TLS_FTPHandler` (pyOpenSSL underneath), started per test
//! with a fresh self-signed certificate and TLS required on the control and data connections, explicit (AUTH TLS)
//! or implicit. Files go both ways and are compared by SHA-256; certificate verification is checked on
//! (`--ca-file`), off (`--insecure`) and failing (neither).
//!
//! Without python3, pyftpdlib and pyOpenSSL each test prints a skip line and passes, except under CI=true, where
//! that is a failure. Every wait is bounded.

mod support;

use std::fs;

use ftp_client::{FtpClient, TlsConfig};
use support::tls::{explicit_server, implicit_server};
use support::{ftpclient, pattern, result, sha256, PeerServer, WAIT};

/// Sizes around the TLS record size (16 KiB) and the 64 KiB buffer, and one well past them.
const SIZES: [usize; 6] = [0, 1, 16_384, 16_385, 65_536 + 3, 2 * 1024 * 1024 + 5];

#[test]
fn library_explicit_tls() {
    let Some(server) = explicit_server() else { return };
    let config = TlsConfig::new(Some(&server.cert_path())).expect("TLS config");
    let mut client = FtpClient::connect("127.0.0.1", server.port, WAIT).expect("connect");
    client.auth_tls(&config).expect("AUTH TLS");
    assert!(client.tls_summary().is_some_and(|s| s.starts_with("TLS 1.")), "{:?}", client.tls_summary());
    client.login("bob", "s3cret").expect("login");
    assert!(client.is_data_protected());
    for (i, size) in SIZES.into_iter().enumerate() {
        let data = pattern(size, i as u64 + 40);
        let name = format!("t{size}.bin");
        assert_eq!(client.stor(&name, &mut data.as_slice()).expect("stor"), size as u64, "{name}");
        assert_eq!(sha256(&fs::read(server.path(&name)).expect("stored")), sha256(&data), "server copy of {name}");
        let mut back = Vec::new();
        assert_eq!(client.retr(&name, &mut back).expect("retr"), size as u64, "{name}");
        assert_eq!(sha256(&back), sha256(&data), "downloaded {name}");
    }
    let mut names = client.nlst(None).expect("nlst");
    names.sort();
    assert_eq!(names.len(), SIZES.len(), "{names:?}");
    assert!(client.list(None).expect("list").contains("t16385.bin"));
    client.set_active(true);
    let mut back = Vec::new();
    client.retr("t16384.bin", &mut back).expect("active retr over TLS");
    assert_eq!(sha256(&back), sha256(&pattern(16_384, 42)));
    client.quit().expect("quit");
}

#[test]
fn cli_tls_with_ca_file() {
    let Some(server) = explicit_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pattern(300_000, 7);
    fs::write(dir.path().join("up.bin"), &data).expect("local file");
    let (port, cert) = (server.port_arg(), server.cert_path());
    let cert = cert.to_str().expect("UTF-8 path");
    let args = [
        "--tls",
        "--ca-file",
        cert,
        "-u",
        "bob",
        "-p",
        "s3cret",
        "127.0.0.1",
        &port,
        "-c",
        "upload up.bin",
        "-c",
        "get up.bin down.bin",
        "-c",
        "ls",
    ];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(stdout.contains("upload up.bin -> up.bin: 300000 bytes in "), "{stdout}");
    assert!(stdout.contains("get up.bin -> down.bin: 300000 bytes in "), "{stdout}");
    assert_eq!(sha256(&fs::read(server.path("up.bin")).expect("uploaded")), sha256(&data));
    assert_eq!(sha256(&fs::read(dir.path().join("down.bin")).expect("downloaded")), sha256(&data));

    // Active data connections are TLS too.
    let args = ["--tls", "--active", "--ca-file", cert, "127.0.0.1", &port, "-c", "get up.bin active.bin"];
    let (code, _, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sha256(&fs::read(dir.path().join("active.bin")).expect("downloaded")), sha256(&data));
}

#[test]
fn cli_tls_insecure_warns_once() {
    let Some(server) = explicit_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pattern(70_000, 8);
    fs::write(server.path("remote.bin"), &data).expect("server file");
    let port = server.port_arg();
    let args = ["--tls", "--insecure", "127.0.0.1", &port, "-c", "get remote.bin"];
    let (code, _, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("warning: --insecure: the server's certificate is not checked"), "{stderr}");
    assert_eq!(sha256(&fs::read(dir.path().join("remote.bin")).expect("downloaded")), sha256(&data));
}

// Verification is on by default: a self-signed certificate is refused, with what to do about it.
#[test]
fn cli_tls_untrusted_certificate() {
    let Some(server) = explicit_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port_arg();
    for args in [&["--tls", "127.0.0.1", &port, "-c", "ls"][..], &["--tls", "-q", "127.0.0.1", &port]] {
        let (code, stdout, stderr) = result(&ftpclient(dir.path(), args, Some("ls\n")));
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&format!("error: TLS handshake with 127.0.0.1:{port}: invalid peer certificate")));
        assert!(stderr.contains("--ca-file FILE") && stderr.contains("--insecure"), "{stderr}");
    }
}

// Without --tls the server (which requires TLS) refuses the login; the client does not fall back or go on.
#[test]
fn cli_plain_login_is_refused_by_a_tls_only_server() {
    let Some(server) = explicit_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&server.port_arg(), "-c", "ls"], None));
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: login as anonymous: USER anonymous: server replied 550"), "{stderr}");
}

// --tls against a server without TLS fails clearly instead of carrying on in the clear.
#[test]
fn cli_tls_refused_by_a_plain_server() {
    let Some(server) = PeerServer::local() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, stderr) = result(&ftpclient(dir.path(), &["--tls", &server.port_arg(), "-c", "ls"], None));
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: --tls: the server refused TLS: AUTH TLS: server replied 5"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn cli_implicit_ftps_url() {
    let Some(server) = implicit_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pattern(123_457, 9);
    fs::create_dir(server.path("pub")).expect("mkdir");
    fs::write(server.path("pub/file.bin"), &data).expect("server file");
    let cert = server.cert_path();
    let cert = cert.to_str().expect("UTF-8 path");
    // A URL naming a file downloads it.
    let url = format!("ftps://bob:s3cret@127.0.0.1:{}/pub/file.bin", server.port);
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &["--ca-file", cert, &url], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("get pub/file.bin -> file.bin: 123457 bytes in "), "{stdout}");
    assert_eq!(sha256(&fs::read(dir.path().join("file.bin")).expect("downloaded")), sha256(&data));
    // A URL naming a directory starts there; an upload lands in it.
    fs::write(dir.path().join("up.bin"), &data).expect("local file");
    let url = format!("ftps://127.0.0.1:{}/pub/", server.port);
    let (code, _, stderr) = result(&ftpclient(dir.path(), &["--ca-file", cert, &url, "-c", "upload up.bin"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sha256(&fs::read(server.path("pub/up.bin")).expect("uploaded")), sha256(&data));
    // And without trusting the certificate, nothing happens.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&url, "-c", "ls"], None));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
}

#[test]
fn library_implicit_tls() {
    let Some(server) = implicit_server() else { return };
    let config = TlsConfig::new(Some(&server.cert_path())).expect("TLS config");
    let mut client = FtpClient::connect_implicit_tls("127.0.0.1", server.port, WAIT, &config).expect("connect");
    assert_eq!(client.greeting().code, 220);
    client.login("anonymous", "anonymous@").expect("login");
    let data = pattern(40_000, 3);
    client.stor("a.bin", &mut data.as_slice()).expect("stor");
    let mut back = Vec::new();
    client.retr("a.bin", &mut back).expect("retr");
    assert_eq!(sha256(&back), sha256(&data));
    client.quit().expect("quit");
}
