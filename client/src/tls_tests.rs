//! Tests of [`FtpClient`]'s FTPS against the scripted [`TlsFake`] server: the order of AUTH TLS, the handshake,
//! PBSZ and PROT, TLS on data connections (passive and active) with the session resumed, implicit TLS, and what
//! happens when the server refuses TLS, presents an untrusted certificate or stalls the handshake.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustls::HandshakeKind;

use crate::fake_server::pattern;
use crate::fake_tls::{TestCert, TlsFake};
use crate::{FtpClient, FtpError, TlsConfig};

const WAIT: Duration = Duration::from_secs(5);

fn connect(server: &TlsFake) -> FtpClient {
    FtpClient::connect("127.0.0.1", server.addr.port(), WAIT).expect("connect")
}

// RFC 4217 §4: AUTH TLS, 234, the handshake; then everything over TLS: the login, PBSZ 0 and PROT P (§8, §9), and
// data connections that resume the control connection's session (required by FileZilla Server and vsftpd).
#[test]
fn explicit_tls_from_auth_to_protected_transfers() {
    let cert = TestCert::new();
    let download = pattern(200_000);
    let upload = pattern(150_001);
    let (served, expected_upload) = (download.clone(), upload.clone());
    let server = TlsFake::start(&cert, move |peer| {
        peer.send("220 fake FTPS ready");
        peer.exchange("AUTH TLS", "234 Proceed with negotiation");
        peer.start_tls();
        peer.login_protected("bob", "secret");
        peer.serve_download("RETR big.bin", &served);
        // More uploads in a row than the control connection hands out tickets (two): each resumes with one the
        // previous data connection brought.
        for name in ["STOR up.bin", "STOR up2.bin", "STOR up3.bin", "STOR up4.bin"] {
            assert_eq!(peer.serve_upload(name), expected_upload);
        }
        peer.serve_download("LIST", b"-rw-r--r-- 1 ftp ftp 5 Jan 1 00:00 a.txt\r\n");
        peer.exchange("QUIT", "221 Bye");
        peer.expect_eof();
    });
    let mut client = connect(&server);
    assert!(!client.is_tls());
    assert_eq!(client.tls_summary(), None);
    client.auth_tls(&cert.client_config()).expect("AUTH TLS");
    assert!(client.is_tls() && !client.is_data_protected());
    assert!(client.tls_summary().is_some_and(|s| s.starts_with("TLS 1.")), "{:?}", client.tls_summary());
    client.login("bob", "secret").expect("login");
    assert!(client.is_data_protected());
    let mut got = Vec::new();
    assert_eq!(client.retr("big.bin", &mut got).expect("retr"), download.len() as u64);
    assert!(got == download, "downloaded bytes differ");
    for name in ["up.bin", "up2.bin", "up3.bin", "up4.bin"] {
        assert_eq!(client.stor(name, &mut upload.as_slice()).expect("stor"), upload.len() as u64);
    }
    assert!(client.list(None).expect("list").contains("a.txt"));
    client.quit().expect("quit");
    server.join();
}

// A refusal leaves the session plain and usable; the caller decides whether to go on without TLS.
#[test]
fn refused_auth_tls_leaves_the_session_plain() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 plain only");
        peer.exchange("AUTH TLS", "502 Command not implemented");
        peer.exchange("NOOP", "200 Still here");
        peer.expect_eof();
    });
    let mut client = connect(&server);
    match client.auth_tls(&cert.client_config()) {
        Err(FtpError::Unexpected { command, reply }) => assert_eq!((command.as_str(), reply.code), ("AUTH TLS", 502)),
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert!(!client.is_tls() && !client.is_closed());
    client.noop().expect("noop in the clear");
    drop(client);
    server.join();
}

// The default roots do not include a self-signed certificate: the handshake fails as a certificate error and the
// connection is closed.
#[test]
fn untrusted_certificate_is_refused() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        let mut conn = rustls::ServerConnection::new(peer.server_config()).expect("server connection");
        let mut tcp = peer.plain_socket();
        while conn.is_handshaking() && conn.complete_io(&mut tcp).is_ok() {}
    });
    let mut client = connect(&server);
    let err = client.auth_tls(&TlsConfig::new(None).expect("config")).expect_err("untrusted");
    assert!(err.is_certificate_error(), "{err}");
    assert!(err.to_string().starts_with("TLS handshake with 127.0.0.1:"), "{err}");
    assert!(err.to_string().contains("invalid peer certificate"), "{err}");
    assert!(client.is_closed());
    server.join();
}

// Insecure mode accepts any certificate, and TLS still works end to end.
#[test]
fn insecure_mode_accepts_a_self_signed_certificate() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        peer.start_tls();
        peer.exchange("NOOP", "200 ok");
        peer.expect_eof();
    });
    let mut client = connect(&server);
    client.auth_tls(&TlsConfig::insecure()).expect("AUTH TLS");
    client.noop().expect("noop over TLS");
    drop(client);
    server.join();
}

// The certificate is checked against the host name connected to, not only an IP address.
#[test]
fn certificate_for_the_host_name() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        peer.start_tls();
        peer.exchange("NOOP", "200 ok");
        peer.expect_eof();
    });
    let Ok(mut client) = FtpClient::connect("localhost", server.addr.port(), WAIT) else {
        eprintln!("skipped: localhost does not resolve to 127.0.0.1 here");
        return;
    };
    client.auth_tls(&cert.client_config()).expect("AUTH TLS to localhost");
    client.noop().expect("noop");
    drop(client);
    server.join();
}

// A certificate from a trusted CA is accepted for its own names, and refused for another.
#[test]
fn certificate_from_a_trusted_ca() {
    let cert = TestCert::issued(&["127.0.0.1"]);
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        peer.start_tls();
        peer.exchange("NOOP", "200 ok");
        peer.expect_eof();
    });
    let mut client = connect(&server);
    client.auth_tls(&cert.client_config()).expect("certificate from the trusted CA");
    client.noop().expect("noop");
    drop(client);
    server.join();

    let cert = TestCert::issued(&["ftp.example.org"]);
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        let mut conn = rustls::ServerConnection::new(peer.server_config()).expect("server connection");
        let mut tcp = peer.plain_socket();
        while conn.is_handshaking() && conn.complete_io(&mut tcp).is_ok() {}
    });
    let mut client = connect(&server);
    let err = client.auth_tls(&cert.client_config()).expect_err("wrong name");
    assert!(err.is_certificate_error(), "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    server.join();
}

// The usual self-signed certificate (a CA, the host only in its common name) fails the standard checks, and is
// trusted as it is when given with the CA file.
#[test]
fn openssl_style_certificate_is_pinned_by_the_ca_file() {
    let cert = TestCert::openssl_style();
    let script = |peer: &mut crate::fake_tls::TlsPeer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        let mut conn = rustls::ServerConnection::new(peer.server_config()).expect("server connection");
        let mut tcp = peer.plain_socket();
        while conn.is_handshaking() && conn.complete_io(&mut tcp).is_ok() {}
        if !conn.is_handshaking() {
            let mut control = rustls::StreamOwned::new(conn, tcp);
            control.write_all(b"200 pinned\r\n").expect("reply");
            let mut line = [0u8; 6];
            control.read_exact(&mut line).expect("NOOP");
        }
    };
    let server = TlsFake::start(&cert, script);
    let err = connect(&server).auth_tls(&TlsConfig::new(None).expect("config")).expect_err("not trusted");
    assert!(err.is_certificate_error(), "{err}");
    assert!(err.to_string().contains("CaUsedAsEndEntity (a CA certificate"), "{err}");
    server.join();

    let server = TlsFake::start(&cert, script);
    let mut client = connect(&server);
    client.auth_tls(&cert.client_config()).expect("pinned certificate");
    assert_eq!(client.raw("NOOP").expect("NOOP").code, 200);
    drop(client);
    server.join();
}

// Plain text after 234 is not protected: it is dropped, never taken as a reply (command injection).
#[test]
fn plaintext_after_234_is_dropped() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.expect("AUTH TLS");
        peer.send("234 Proceed\n230 injected in the clear");
        peer.start_tls();
        peer.exchange("USER bob", "331 Password required");
        peer.exchange("PASS pw", "530 Login incorrect");
        peer.expect_eof();
    });
    let mut client = connect(&server);
    client.auth_tls(&cert.client_config()).expect("AUTH TLS");
    let err = client.login("bob", "pw").expect_err("530");
    assert_eq!(err.reply().map(|r| r.code), Some(530), "{err}");
    drop(client);
    server.join();
}

// A server that accepts AUTH TLS and then says nothing: the handshake gives up after the timeout.
#[test]
fn stalled_handshake_times_out() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        // Read the ClientHello and never answer, until the client gives up.
        let mut tcp = peer.plain_socket();
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink);
    });
    let timeout = Duration::from_millis(400);
    let mut client = FtpClient::connect("127.0.0.1", server.addr.port(), timeout).expect("connect");
    let start = Instant::now();
    let err = client.auth_tls(&cert.client_config()).expect_err("stalled");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    assert!(err.to_string().starts_with("TLS handshake with "), "{err}");
    assert!(client.is_closed());
    drop(client);
    server.join();
}

// Implicit TLS: the handshake comes first, the greeting after it; PBSZ and PROT still follow the login.
#[test]
fn implicit_tls() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.start_tls();
        peer.send("220 implicit FTPS ready");
        peer.login_protected("anonymous", "anonymous@");
        peer.serve_download("RETR a.txt", b"hello over TLS\n");
        peer.exchange("QUIT", "221 Bye");
        peer.expect_eof();
    });
    let config = cert.client_config();
    let mut client =
        FtpClient::connect_implicit_tls("127.0.0.1", server.addr.port(), WAIT, &config).expect("implicit TLS");
    assert!(client.is_tls());
    assert_eq!(client.greeting().lines, vec!["implicit FTPS ready"]);
    client.login("anonymous", "anonymous@").expect("login");
    let mut got = Vec::new();
    client.retr("a.txt", &mut got).expect("retr");
    assert_eq!(got, b"hello over TLS\n");
    client.quit().expect("quit");
    server.join();
}

// Implicit TLS against a server with an untrusted certificate fails before any greeting.
#[test]
fn implicit_tls_untrusted() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        let mut conn = rustls::ServerConnection::new(peer.server_config()).expect("server connection");
        let mut tcp = peer.plain_socket();
        while conn.is_handshaking() && conn.complete_io(&mut tcp).is_ok() {}
    });
    let config = TlsConfig::new(None).expect("config");
    let err = FtpClient::connect_implicit_tls("127.0.0.1", server.addr.port(), WAIT, &config).expect_err("untrusted");
    assert!(err.is_certificate_error(), "{err}");
    server.join();
}

// Active mode: the server opens the data connection, the client is still the TLS client (RFC 4217 §7).
#[test]
fn active_data_connection_over_tls() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        peer.start_tls();
        peer.login_protected("bob", "pw");
        let line = peer.read_line().expect("PORT");
        let addr =
            ftp_common::hostport::parse_port_arg(line.strip_prefix("PORT ").expect("PORT line")).expect("PORT address");
        peer.send("200 PORT ok");
        peer.expect("RETR x");
        peer.send("150 Connecting");
        let tcp = TcpStream::connect(addr).expect("connect to the client");
        let mut conn = peer.accept_tls(tcp);
        assert_eq!(conn.conn.handshake_kind(), Some(HandshakeKind::Resumed));
        conn.write_all(b"active and private").expect("send");
        conn.conn.send_close_notify();
        conn.flush().expect("close_notify");
        drop(conn);
        peer.send("226 Done");
        peer.expect_eof();
    });
    let mut client = connect(&server);
    client.auth_tls(&cert.client_config()).expect("AUTH TLS");
    client.login("bob", "pw").expect("login");
    client.set_active(true);
    let mut got = Vec::new();
    client.retr("x", &mut got).expect("active retr");
    assert_eq!(got, b"active and private");
    drop(client);
    server.join();
}

// PROT P refused: login reports it, and nothing is sent over an unprotected data connection by mistake.
#[test]
fn refused_prot_p_fails_the_login() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        peer.start_tls();
        peer.exchange("USER bob", "230 Welcome");
        peer.exchange("TYPE I", "200 Binary");
        peer.exchange("PBSZ 0", "200 PBSZ=0");
        peer.exchange("PROT P", "536 Requested PROT level not supported");
        peer.expect_eof();
    });
    let mut client = connect(&server);
    client.auth_tls(&cert.client_config()).expect("AUTH TLS");
    let err = client.login("bob", "pw").expect_err("PROT P refused");
    assert_eq!(err.to_string(), "PROT P: server replied 536 Requested PROT level not supported");
    assert!(client.is_tls() && !client.is_data_protected());
    drop(client);
    server.join();
}

// A protected download that ends without TLS close_notify may have been cut short by anyone on the path: it is an
// error, even though the server reports success, and the session goes on.
#[test]
fn download_without_close_notify_is_an_error() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        peer.start_tls();
        peer.login_protected("bob", "pw");
        let listener = peer.epsv();
        peer.expect("RETR cut.bin");
        let (tcp, _) = listener.accept().expect("accept data connection");
        peer.send("150 Opening");
        let mut conn = peer.accept_tls(tcp);
        conn.write_all(b"the first half").expect("send");
        conn.flush().expect("flush");
        drop(conn);
        peer.send("226 Done");
        peer.exchange("NOOP", "200 ok");
        peer.expect_eof();
    });
    let mut client = connect(&server);
    client.auth_tls(&cert.client_config()).expect("AUTH TLS");
    client.login("bob", "pw").expect("login");
    let err = client.retr("cut.bin", &mut Vec::new()).expect_err("no close_notify");
    assert!(err.to_string().starts_with("RETR cut.bin: receiving data: "), "{err}");
    assert!(err.to_string().contains("close_notify"), "{err}");
    client.noop().expect("the session goes on");
    drop(client);
    server.join();
}

// Without TLS there is nothing to protect data with; AUTH TLS twice is a caller's mistake.
#[test]
fn protect_data_needs_tls() {
    let cert = TestCert::new();
    let server = TlsFake::start(&cert, |peer| {
        peer.send("220 ready");
        peer.exchange("AUTH TLS", "234 Proceed");
        peer.start_tls();
        peer.expect_eof();
    });
    let mut client = connect(&server);
    assert!(matches!(client.protect_data(), Err(FtpError::Protocol(_))));
    let config = cert.client_config();
    client.auth_tls(&config).expect("AUTH TLS");
    assert!(matches!(client.auth_tls(&config), Err(FtpError::Protocol(_))));
    drop(client);
    server.join();
}
