//! The server's life cycle seen from its clients: a graceful shutdown on SIGTERM lets a running download finish
//! byte-exact with 226, tells idle sessions 421, refuses new connections at once and ends the process with status 0;
//! a transfer still waiting for its data connection may complete, and one that stalls is cut when the grace period
//! ends.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

use crate::util::{content, data_connect, data_connect_small_window, read_to_end, sha256, TestServer};

#[test]
fn sigterm_lets_running_transfers_finish() {
    let mut server = TestServer::start(&[]);
    let payload = content(71, 16 << 20);
    server.put_file("big.bin", &payload);

    // A download in progress whose client reads slowly: its small receive window holds the server back.
    let mut busy = server.login();
    let addr = busy.pasv();
    let mut data = data_connect_small_window(addr);
    busy.expect("RETR big.bin", 150);
    let mut received = vec![0u8; 64 * 1024];
    data.read_exact(&mut received).expect("the first 64 KiB");
    // An idle session, logged in, and one that never logged in.
    let mut idle = server.login();
    let mut greeted = server.ctl();

    server.terminate();
    let replies = idle.expect_closed();
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [421], "idle session at shutdown: {replies:?}");
    let replies = greeted.expect_closed();
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [421], "greeted session at shutdown: {replies:?}");

    // The idle sessions were told, so the listener is closed already: new connections are refused.
    match TcpStream::connect_timeout(&server.addr(), Duration::from_secs(5)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "connecting during shutdown: {e}"),
        Ok(_) => panic!("a new connection was accepted during shutdown"),
    }

    // The download is still running and completes.
    let (code, status) = busy.cmd_full("STAT");
    assert_eq!(code, 211, "STAT during shutdown: {status}");
    assert!(status.contains("Transfer in progress"), "the download is no longer running:\n{status}");
    received.extend_from_slice(&read_to_end(&mut data));
    assert_eq!(received.len(), payload.len(), "bytes received");
    assert_eq!(sha256(&received), sha256(&payload), "download during shutdown differs");
    let replies = busy.expect_closed();
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [226, 421], "busy session at shutdown: {replies:?}");

    let status = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
}

#[test]
fn sigterm_with_no_sessions_exits_at_once() {
    let mut server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("QUIT", 221);
    assert!(c.expect_closed().is_empty());
    let status = server.stop();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
}

#[test]
fn sigterm_grace_period_bounds_the_wait() {
    let mut server = TestServer::start(&["--shutdown-grace", "2"]);
    server.put_file("f.txt", b"pending payload");
    let big = 16 << 20;
    server.put_file("big.bin", &content(72, big));

    // A transfer whose data connection has not arrived yet, and one that stalls because its client stops reading.
    let mut pending = server.login();
    let pending_addr = pending.pasv();
    pending.send("RETR f.txt");
    pending.expect("NOOP", 200);
    let mut stalled = server.login();
    let mut stalled_data = data_connect_small_window(stalled.pasv());
    stalled.expect("RETR big.bin", 150);
    let mut idle = server.login();

    server.terminate();
    let replies = idle.expect_closed();
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [421], "idle session at shutdown: {replies:?}");

    // The pending transfer's data connection is still accepted, and the transfer completes.
    let mut data = data_connect(pending_addr);
    assert_eq!(read_to_end(&mut data), b"pending payload");
    let replies = pending.expect_closed();
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [150, 226, 421], "pending session: {replies:?}");

    // The stalled one is cut when the grace period ends: 426 for the transfer, 421 for the session, no 226; the
    // process exits 0.
    let replies = stalled.expect_closed();
    let codes: Vec<u16> = replies.iter().map(|r| r.0).collect();
    assert!(codes.ends_with(&[426, 421]) && !codes.contains(&226), "stalled session at the end of grace: {replies:?}");
    let mut rest = Vec::new();
    let got = stalled_data.read_to_end(&mut rest).map_or(0, |_| rest.len());
    assert!(got < big, "the stalled download was not cut off ({got} bytes)");
    let status = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status after the grace period: {status}");
}
