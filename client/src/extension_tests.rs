//! Tests of [`FtpClient`]'s extensions against the scripted [`FakeServer`]: FEAT and its cache, MDTM, MFMT, HASH,
//! MLSD and MLST, restarted transfers (REST), APPE, and active data connections (PORT and EPRT).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, UNIX_EPOCH};

use ftp_common::hostport::{parse_eprt_arg, parse_port_arg};

use crate::fake_server::{pattern, read_all, serve_download, serve_upload, FakeServer, Peer, SERVER_WAIT};
use crate::protocol_tests::{converse, unexpected_code};
use crate::{EntryKind, FtpClient, FtpError};

// RFC 2389: FEAT is asked once; the lines come back without their leading space. Logging in asks again.
#[test]
fn feat_is_cached_per_login() {
    converse(
        |peer| {
            peer.feat(&["MDTM", "REST STREAM", "HASH SHA-256*;MD5"]);
            peer.exchange("USER anonymous", "230 Welcome");
            peer.exchange("TYPE I", "200 Binary");
            peer.feat(&[]);
            peer.expect_eof();
        },
        |client| {
            assert_eq!(client.feat().expect("feat"), ["MDTM", "REST STREAM", "HASH SHA-256*;MD5"]);
            assert_eq!(client.feature("rest").expect("feature").as_deref(), Some("STREAM"));
            assert_eq!(client.feature("SIZE").expect("feature"), None);
            assert_eq!(
                client.hash_algorithms().expect("algorithms"),
                vec![("SHA-256".to_string(), true), ("MD5".to_string(), false)]
            );
            client.login("anonymous", "x").expect("login");
            // 500: a server without FEAT offers nothing.
            assert!(client.feat().expect("feat").is_empty());
            assert!(client.hash_algorithms().expect("algorithms").is_empty());
        },
    );
}

// RFC 3659 §3: MDTM answers 213 with a UTC time-val, fractions allowed.
#[test]
fn mdtm_replies() {
    converse(
        |peer| {
            peer.exchange("MDTM a", "213 20240102030405");
            peer.exchange("MDTM b", "213 19700101000001.250");
            peer.exchange("MDTM c", "213 yesterday");
            peer.exchange("MDTM d", "550 No such file");
            peer.exchange("MFMT 20240102030405 a", "213 Modify=20240102030405; a");
            peer.exchange("MFMT 19700101000000 b", "550 Not allowed");
            peer.expect_eof();
        },
        |client| {
            let t = UNIX_EPOCH + Duration::from_secs(1_704_164_645);
            assert_eq!(client.mdtm("a").expect("mdtm"), t);
            assert_eq!(client.mdtm("b").expect("mdtm"), UNIX_EPOCH + Duration::from_millis(1250));
            assert!(matches!(client.mdtm("c"), Err(FtpError::Protocol(_))));
            assert_eq!(unexpected_code(client.mdtm("d")), ("MDTM d".to_string(), 550));
            client.set_mtime("a", t + Duration::from_millis(700)).expect("mfmt");
            assert_eq!(unexpected_code(client.set_mtime("b", UNIX_EPOCH)), ("MFMT 19700101000000 b".to_string(), 550));
        },
    );
}

// draft-bryan-ftpext-hash: OPTS HASH selects the algorithm (sent only when it is not selected yet, and the FEAT
// cache follows); HASH answers 213 ALGO RANGE HEX PATH.
#[test]
fn hash_selection_and_replies() {
    let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    converse(
        move |peer| {
            peer.feat(&["HASH SHA-1*;SHA-256;MD5"]);
            peer.exchange("OPTS HASH SHA-256", "200 SHA-256");
            peer.exchange("HASH my file", &format!("213 SHA-256 0-3 {} my file", hex.to_uppercase()));
            peer.exchange("HASH x", "213 SHA-256 0-3 not-hex x");
            peer.exchange("HASH y", "550 No such file");
            peer.expect_eof();
        },
        move |client| {
            client.select_hash("sha-256").expect("select");
            // Already selected: nothing is sent.
            client.select_hash("SHA-256").expect("select again");
            assert_eq!(
                client.hash_algorithms().expect("algorithms"),
                vec![("SHA-1".to_string(), false), ("SHA-256".to_string(), true), ("MD5".to_string(), false)]
            );
            let hash = client.hash("my file").expect("hash");
            assert_eq!((hash.algorithm.as_str(), hash.range, hash.hex.as_str()), ("SHA-256", (0, 3), hex));
            assert!(matches!(client.hash("x"), Err(FtpError::Protocol(_))));
            assert_eq!(unexpected_code(client.hash("y")), ("HASH y".to_string(), 550));
        },
    );
}

// RFC 3659 §7: MLSD entries come over a data connection, MLST's over the control connection.
#[test]
fn mlsd_and_mlst() {
    converse(
        |peer| {
            let listing = "type=cdir;modify=20240101000000; .\r\ntype=file;size=3;modify=20240102030405; a b.txt\r\n";
            serve_download(peer, "MLSD dir", listing.as_bytes());
            serve_download(peer, "MLSD", b"not an entry\r\n");
            peer.exchange("MLST a b.txt", "250-Listing a b.txt\n type=file;size=3; /dir/a b.txt\n250 End");
            peer.exchange("MLST", "250 nothing here");
            peer.expect_eof();
        },
        |client| {
            let entries = client.mlsd(Some("dir")).expect("mlsd");
            assert_eq!(entries.len(), 2);
            assert_eq!(
                (entries[1].name.as_str(), entries[1].kind(), entries[1].size()),
                ("a b.txt", EntryKind::File, Some(3))
            );
            assert!(matches!(client.mlsd(None), Err(FtpError::Protocol(_))));
            let entry = client.mlst(Some("a b.txt")).expect("mlst");
            assert_eq!((entry.name.as_str(), entry.size()), ("/dir/a b.txt", Some(3)));
            assert!(matches!(client.mlst(None), Err(FtpError::Protocol(_))));
        },
    );
}

// RFC 2389 OPTS MLST: the facts wanted are added to those selected, once.
#[test]
fn mlst_fact_selection() {
    converse(
        |peer| {
            peer.feat(&["MLST type*;size;modify*;perm*;unique;"]);
            peer.exchange("OPTS MLST type;size;modify;perm;", "200 MLST OPTS type;size;modify;perm;");
            peer.expect_eof();
        },
        |client| {
            client.select_mlst_facts(&["type", "SIZE", "modify"]).expect("select");
            client.select_mlst_facts(&["type", "size", "modify"]).expect("nothing more to select");
            assert_eq!(client.feature("MLST").expect("feature").as_deref(), Some("type*;size*;modify*;perm*;unique;"));
        },
    );
}

// RFC 3659 §5: REST n (350) right before RETR or STOR; APPE appends. A refused REST is the error.
#[test]
fn restarted_transfers() {
    converse(
        |peer| {
            let listener = peer.epsv();
            peer.exchange("REST 5", "350 Restarting at 5");
            peer.expect("RETR f");
            let mut conn = crate::fake_server::accept(&listener);
            peer.send("150 Opening");
            conn.write_all(b"world").expect("send");
            drop(conn);
            peer.send("226 Done");
            let _listener = peer.epsv();
            peer.exchange("REST 7", "502 REST not implemented");
            let listener = peer.epsv();
            peer.exchange("REST 3", "350 Restarting at 3");
            peer.expect("STOR g");
            let conn = crate::fake_server::accept(&listener);
            peer.send("150 Ok");
            assert_eq!(read_all(conn), b"def");
            peer.send("226 Done");
            assert_eq!(serve_upload(peer, "APPE g"), b"ghi");
            serve_download(peer, "RETR h", b"all");
            peer.expect_eof();
        },
        |client| {
            let mut out = Vec::new();
            assert_eq!(client.retr_from("f", 5, &mut out).expect("retr_from"), 5);
            assert_eq!(out, b"world");
            assert_eq!(unexpected_code(client.retr_from("f", 7, &mut out)), ("REST 7".to_string(), 502));
            assert_eq!(client.stor_from("g", 3, &mut &b"def"[..]).expect("stor_from"), 3);
            assert_eq!(client.append("g", &mut &b"ghi"[..]).expect("append"), 3);
            // Offset 0 sends no REST.
            assert_eq!(client.retr_from("h", 0, &mut std::io::sink()).expect("retr"), 3);
        },
    );
}

/// Expects a PORT command and returns the address in it.
fn expect_port(peer: &mut Peer) -> SocketAddr {
    let line = peer.read_line().expect("PORT");
    let arg = line.strip_prefix("PORT ").unwrap_or_else(|| panic!("expected PORT, got {line:?}"));
    SocketAddr::V4(parse_port_arg(arg).expect("PORT address"))
}

/// Expects an EPRT command and returns the address in it.
fn expect_eprt(peer: &mut Peer) -> SocketAddr {
    let line = peer.read_line().expect("EPRT");
    let arg = line.strip_prefix("EPRT ").unwrap_or_else(|| panic!("expected EPRT, got {line:?}"));
    parse_eprt_arg(arg).expect("EPRT address")
}

/// The server's side of an active transfer: 150, connect to `addr`, then `action` on the data connection, 226.
fn connect_back(peer: &mut Peer, addr: SocketAddr, action: impl FnOnce(TcpStream)) {
    peer.send("150 Opening data connection");
    let conn = TcpStream::connect_timeout(&addr, SERVER_WAIT).expect("connect to the client");
    action(conn);
    peer.send("226 Done");
}

// RFC 959 PORT for IPv4; after a 500-502 refusal, EPRT (RFC 2428) from then on. The server connects to the
// control connection's local address.
#[test]
fn active_transfers_with_port_then_eprt() {
    let data = pattern(100_000);
    let sent = data.clone();
    converse(
        move |peer| {
            let addr = expect_port(peer);
            assert_eq!(addr.ip().to_string(), "127.0.0.1");
            peer.send("200 PORT ok");
            peer.expect("RETR big");
            connect_back(peer, addr, |mut conn| conn.write_all(&sent).expect("send"));
            let _ = expect_port(peer);
            peer.send("500 PORT not understood");
            let addr = expect_eprt(peer);
            peer.send("200 EPRT ok");
            peer.exchange("REST 2", "350 Restarting");
            peer.expect("STOR up");
            connect_back(peer, addr, |conn| assert_eq!(read_all(conn), b"llo"));
            let _ = expect_eprt(peer);
            peer.send("200 EPRT ok");
            peer.exchange("NLST", "550 No files");
            peer.expect_eof();
        },
        move |client| {
            client.set_active(true);
            assert!(client.is_active());
            let mut out = Vec::new();
            assert_eq!(client.retr("big", &mut out).expect("active retr"), data.len() as u64);
            assert!(out == data, "data differs");
            assert_eq!(client.stor_from("up", 2, &mut &b"llo"[..]).expect("active stor"), 3);
            assert_eq!(unexpected_code(client.nlst(None)), ("NLST".to_string(), 550));
        },
    );
}

// Only the server may connect: a connection from another address is refused, and when the server's own never
// comes the transfer fails after the timeout with the server's final reply, the session still in step.
#[test]
fn active_connection_from_elsewhere_is_refused() {
    let server = FakeServer::start("220 ready", |peer| {
        let addr = expect_port(peer);
        peer.send("200 PORT ok");
        peer.expect("RETR f");
        peer.send("150 Opening data connection");
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        let elsewhere: SocketAddr = "127.0.0.2:0".parse().expect("address");
        socket.bind(&elsewhere.into()).expect("bind 127.0.0.2");
        socket.connect(&addr.into()).expect("connect from elsewhere");
        peer.send("425 No data connection");
        peer.exchange("NOOP", "200 OK");
        peer.expect_eof();
    });
    let mut client = FtpClient::connect("127.0.0.1", server.addr.port(), Duration::from_millis(1500)).expect("connect");
    client.set_active(true);
    assert_eq!(unexpected_code(client.retr("f", &mut std::io::sink())), ("RETR f".to_string(), 425));
    client.noop().expect("session still usable");
    drop(client);
    server.join();
}

// Over IPv6 the active address goes out with EPRT at once.
#[test]
fn active_over_ipv6_uses_eprt() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipping active_over_ipv6_uses_eprt: ::1 is not available");
        return;
    };
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let (control, _) = listener.accept().expect("accept");
        control.set_read_timeout(Some(SERVER_WAIT)).expect("timeout");
        let mut writer = control.try_clone().expect("clone");
        writer.write_all(b"220 v6 ready\r\n").expect("greet");
        let mut reader = std::io::BufReader::new(control);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).expect("read");
        let addr = parse_eprt_arg(line.trim_end().strip_prefix("EPRT ").expect("EPRT")).expect("address");
        assert!(addr.is_ipv6());
        writer.write_all(b"200 ok\r\n").expect("200");
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).expect("read");
        assert_eq!(line, "RETR six\r\n");
        writer.write_all(b"150 here\r\n").expect("150");
        let mut conn = TcpStream::connect(addr).expect("connect back");
        conn.write_all(b"v6 data").expect("send");
        drop(conn);
        writer.write_all(b"226 done\r\n").expect("226");
    });
    let mut client = FtpClient::connect("::1", port, SERVER_WAIT).expect("connect over IPv6");
    client.set_active(true);
    let mut out = Vec::new();
    client.retr("six", &mut out).expect("active retr over IPv6");
    assert_eq!(out, b"v6 data");
    handle.join().expect("v6 server");
}
