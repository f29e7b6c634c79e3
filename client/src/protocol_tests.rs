//! Tests of [`FtpClient`]'s side of the protocol against the scripted [`FakeServer`]: which commands it sends in
//! which order, which reply codes it accepts, how it negotiates data connections and how it recovers from failures.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::fake_server::{accept, pattern, read_all, FakeServer, Peer};
use crate::{FtpClient, FtpError};

const WAIT: Duration = Duration::from_secs(5);

fn connect(server: &FakeServer) -> FtpClient {
    FtpClient::connect("127.0.0.1", server.addr.port(), WAIT).expect("connect")
}

/// Runs `client_side` against a fake server running `server_side`, after the usual 220 greeting.
pub(crate) fn converse(server_side: impl FnOnce(&mut Peer) + Send + 'static, client_side: impl FnOnce(&mut FtpClient)) {
    let server = FakeServer::start("220 fake ready", server_side);
    let mut client = connect(&server);
    client_side(&mut client);
    drop(client);
    server.join();
}

pub(crate) fn unexpected_code(result: Result<impl std::fmt::Debug, FtpError>) -> (String, u16) {
    match result {
        Err(FtpError::Unexpected { command, reply }) => (command, reply.code),
        other => panic!("expected an unexpected-reply error, got {other:?}"),
    }
}

// RFC 959 §5.4: 120 means "ready in nnn minutes"; the 220 that follows is the greeting.
#[test]
fn greeting_after_delay_reply() {
    let server = FakeServer::start("120 wait a moment", |peer| {
        peer.send("220-Welcome\n220 ready");
        peer.expect_eof();
    });
    let client = connect(&server);
    assert_eq!(client.greeting().code, 220);
    assert_eq!(client.greeting().lines, vec!["Welcome", "ready"]);
    drop(client);
    server.join();
}

// A server that refuses the session at once (421) is an error naming the greeting.
#[test]
fn refused_greeting_is_an_error() {
    let server = FakeServer::start("421 Too many connections", |peer| peer.expect_eof());
    let (command, code) = unexpected_code(FtpClient::connect("127.0.0.1", server.addr.port(), WAIT));
    assert!(command.starts_with("greeting from 127.0.0.1:"), "{command}");
    assert_eq!(code, 421);
    server.join();
}

// RFC 959 §5.4: USER 331, PASS 230; then TYPE I so transfers are byte-exact.
#[test]
fn login_with_password() {
    converse(
        |peer| {
            peer.exchange("USER bob", "331 Password required");
            peer.exchange("PASS secret", "230 Logged in");
            peer.exchange("TYPE I", "200 Binary");
            peer.expect_eof();
        },
        |client| client.login("bob", "secret").expect("login"),
    );
}

// A server may log a user in at USER (230): PASS is not sent.
#[test]
fn login_without_password() {
    converse(
        |peer| {
            peer.exchange("USER anonymous", "230 Welcome");
            peer.exchange("TYPE I", "200 Binary");
            peer.expect_eof();
        },
        |client| client.login("anonymous", "x").expect("login"),
    );
}

// A refused password is reported with the reply, and the password never appears in the error.
#[test]
fn refused_login_hides_the_password() {
    converse(
        |peer| {
            peer.exchange("USER bob", "331 Password required");
            peer.exchange("PASS hunter2", "530 Login incorrect");
            peer.expect_eof();
        },
        |client| {
            let err = client.login("bob", "hunter2").expect_err("login must fail");
            assert_eq!(err.to_string(), "PASS ****: server replied 530 Login incorrect");
            assert!(!format!("{err:?}").contains("hunter2"));
        },
    );
}

// Any code a command does not accept comes back as the whole reply; the session stays usable.
#[test]
fn unexpected_reply_carries_the_whole_reply() {
    converse(
        |peer| {
            peer.exchange("CWD nowhere", "550-No such directory\n550 Try another");
            peer.exchange("NOOP", "200 OK");
            peer.expect_eof();
        },
        |client| {
            match client.cwd("nowhere") {
                Err(FtpError::Unexpected { command, reply }) => {
                    assert_eq!(command, "CWD nowhere");
                    assert_eq!(reply.code, 550);
                    assert_eq!(reply.lines, vec!["No such directory", "Try another"]);
                }
                other => panic!("unexpected {other:?}"),
            }
            client.noop().expect("session still usable");
        },
    );
}

// PWD and MKD read the quoted path of 257; MKD falls back to its argument when none is quoted.
#[test]
fn pwd_and_mkdir_paths() {
    converse(
        |peer| {
            peer.exchange("PWD", "257 \"/a \"\"b\"\"\" is the current directory");
            peer.exchange("MKD new", "257 \"/a/new\" created");
            peer.exchange("MKD other", "257 Directory created");
            peer.exchange("PWD", "257 /no/quotes");
            peer.expect_eof();
        },
        |client| {
            assert_eq!(client.pwd().expect("pwd"), "/a \"b\"");
            assert_eq!(client.mkdir("new").expect("mkdir"), "/a/new");
            assert_eq!(client.mkdir("other").expect("mkdir"), "other");
            assert!(matches!(client.pwd(), Err(FtpError::Protocol(_))));
        },
    );
}

// SIZE answers 213 with a decimal number; anything else is a protocol error.
#[test]
fn size_reply() {
    converse(
        |peer| {
            peer.exchange("SIZE a", "213 1234567890123");
            peer.exchange("SIZE b", "213 lots");
            peer.exchange("SIZE c", "550 No such file");
            peer.expect_eof();
        },
        |client| {
            assert_eq!(client.size("a").expect("size"), 1_234_567_890_123);
            assert!(matches!(client.size("b"), Err(FtpError::Protocol(_))));
            assert_eq!(unexpected_code(client.size("c")), ("SIZE c".to_string(), 550));
        },
    );
}

// RNFR must be answered 350 before RNTO is sent.
#[test]
fn rename_sequence() {
    converse(
        |peer| {
            peer.exchange("RNFR a", "350 Ready");
            peer.exchange("RNTO b", "250 Renamed");
            peer.exchange("RNFR missing", "550 No such file");
            peer.exchange("DELE b", "250 Deleted");
            peer.exchange("RMD d", "250 Removed");
            peer.exchange("CDUP", "200 OK");
            peer.expect_eof();
        },
        |client| {
            client.rename("a", "b").expect("rename");
            assert_eq!(unexpected_code(client.rename("missing", "c")), ("RNFR missing".to_string(), 550));
            client.delete("b").expect("delete");
            client.rmdir("d").expect("rmdir");
            client.cdup().expect("cdup");
        },
    );
}

// RETR: the data connection is open before RETR is sent; 150, the bytes, then 226.
#[test]
fn retr_over_epsv() {
    let data = pattern(200_001);
    let sent = data.clone();
    converse(
        move |peer| {
            let listener = peer.epsv();
            peer.expect("RETR big.bin");
            let mut conn = accept(&listener);
            peer.send("150 Opening data connection");
            conn.write_all(&sent).expect("send data");
            drop(conn);
            peer.send("226 Transfer complete");
            peer.expect_eof();
        },
        |client| {
            let mut out = Vec::new();
            assert_eq!(client.retr("big.bin", &mut out).expect("retr"), data.len() as u64);
            assert!(out == data, "data differs");
        },
    );
}

// RFC 2428: a server that does not know EPSV (500/501/502) gets PASV, from then on without asking again. The host
// in the 227 reply is ignored: the data connection goes to the control connection's peer.
#[test]
fn epsv_refused_falls_back_to_pasv_for_good() {
    converse(
        |peer| {
            peer.exchange("EPSV", "502 Not implemented");
            let listener = peer.pasv("10,255,255,1");
            peer.expect("NLST");
            let mut conn = accept(&listener);
            peer.send("125 Data connection already open");
            conn.write_all(b"a\r\nb\r\n").expect("send list");
            drop(conn);
            peer.send("226 Done");
            let listener = peer.pasv("0,0,0,0");
            peer.expect("LIST dir");
            let mut conn = accept(&listener);
            peer.send("150 Here it comes");
            conn.write_all(b"-rw-r--r-- 1 a a 0 Jan 1 00:00 x\r\n").expect("send list");
            drop(conn);
            peer.send("250 Done");
            peer.expect_eof();
        },
        |client| {
            assert_eq!(client.nlst(None).expect("nlst"), vec!["a", "b"]);
            assert_eq!(client.list(Some("dir")).expect("list"), "-rw-r--r-- 1 a a 0 Jan 1 00:00 x\r\n");
        },
    );
}

// Any other refusal of EPSV is an error, not a reason to try PASV.
#[test]
fn epsv_other_refusal_is_an_error() {
    converse(
        |peer| {
            peer.exchange("EPSV", "425 No ports left");
            peer.expect_eof();
        },
        |client| assert_eq!(unexpected_code(client.nlst(None)), ("EPSV".to_string(), 425)),
    );
}

// When writing the downloaded bytes fails, the data connection is closed, the server's final reply is still read
// (so the next command gets its own reply) and the write error is returned.
#[test]
fn retr_write_error_keeps_the_session_in_step() {
    struct FailAfterFirst(bool);
    impl Write for FailAfterFirst {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                Err(io::Error::other("disk full"))
            } else {
                Ok(buf.len())
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    converse(
        |peer| {
            let listener = peer.epsv();
            peer.expect("RETR f");
            let mut conn = accept(&listener);
            peer.send("150 Opening");
            // The client stops reading; writing may fail with a reset, which is what an aborted download looks like.
            let chunk = pattern(64 * 1024);
            for _ in 0..64 {
                if conn.write_all(&chunk).is_err() {
                    break;
                }
            }
            drop(conn);
            peer.send("426 Transfer aborted");
            peer.exchange("NOOP", "200 OK");
            peer.expect_eof();
        },
        |client| {
            let err = client.retr("f", &mut FailAfterFirst(false)).expect_err("write error");
            assert!(matches!(&err, FtpError::Io(e) if e.to_string().contains("disk full")), "{err}");
            client.noop().expect("session still usable");
        },
    );
}

// STOR: the bytes, then end of file on the data connection, then 226.
#[test]
fn stor_sends_data_then_eof() {
    let data = pattern(150_000);
    let expected = data.clone();
    converse(
        move |peer| {
            let listener = peer.epsv();
            peer.expect("STOR up.bin");
            let conn = accept(&listener);
            peer.send("150 Ok to send data");
            assert!(read_all(conn) == expected, "uploaded data differs");
            peer.send("226 Transfer complete");
            peer.expect_eof();
        },
        |client| assert_eq!(client.stor("up.bin", &mut data.as_slice()).expect("stor"), data.len() as u64),
    );
}

// A refused STOR sends no data and reports the refusal.
#[test]
fn refused_stor() {
    converse(
        |peer| {
            let listener = peer.epsv();
            peer.exchange("STOR x", "553 Not allowed");
            let conn = accept(&listener);
            assert!(read_all(conn).is_empty());
            peer.exchange("NOOP", "200 OK");
            peer.expect_eof();
        },
        |client| {
            assert_eq!(unexpected_code(client.stor("x", &mut &b"data"[..])), ("STOR x".to_string(), 553));
            client.noop().expect("session still usable");
        },
    );
}

// A transfer the server reports as failed after 150 is an error even though bytes moved.
#[test]
fn failed_final_reply() {
    converse(
        |peer| {
            let listener = peer.epsv();
            peer.expect("RETR f");
            let mut conn = accept(&listener);
            peer.send("150 Opening");
            conn.write_all(b"partial").expect("send");
            drop(conn);
            peer.send("451 Read error");
            peer.expect_eof();
        },
        |client| assert_eq!(unexpected_code(client.retr("f", &mut io::sink())), ("RETR f".to_string(), 451)),
    );
}

// raw returns whatever the server answers, 1xx included; read_reply reads what follows.
#[test]
fn raw_returns_any_reply() {
    converse(
        |peer| {
            peer.exchange("SITE NOPE", "500 Unknown command");
            peer.exchange("STAT", "211-Status\n connected\n211 End");
            peer.exchange("RETR f", "150 Opening\n425 Cannot open data connection");
            peer.expect_eof();
        },
        |client| {
            assert_eq!(client.raw("SITE NOPE").expect("raw").code, 500);
            assert_eq!(client.raw("STAT").expect("raw").lines, vec!["Status", " connected", "End"]);
            assert_eq!(client.raw("RETR f").expect("raw").code, 150);
            assert_eq!(client.read_reply().expect("second reply").code, 425);
        },
    );
}

// A line break inside an argument would inject a second command: refused, nothing is sent.
#[test]
fn line_breaks_are_refused() {
    converse(
        |peer| {
            peer.exchange("NOOP", "200 OK");
            peer.expect_eof();
        },
        |client| {
            assert!(matches!(client.cwd("a\r\nDELE b"), Err(FtpError::Protocol(_))));
            assert!(matches!(client.delete("x\ny"), Err(FtpError::Protocol(_))));
            client.noop().expect("next command is the first thing sent");
        },
    );
}

// The server closing the control connection is reported as Closed, and so is every later call.
#[test]
fn server_closing_is_reported() {
    converse(
        |peer| peer.expect("NOOP"),
        |client| {
            assert!(matches!(client.noop(), Err(FtpError::Closed)));
            assert!(client.is_closed());
            assert!(matches!(client.pwd(), Err(FtpError::Closed)));
        },
    );
}

// A server that never answers costs at most the timeout, after which the connection is given up.
#[test]
fn silent_server_times_out() {
    let server = FakeServer::start("220 ready", |peer| {
        peer.expect("NOOP");
        peer.expect_eof();
    });
    let mut client = FtpClient::connect("127.0.0.1", server.addr.port(), Duration::from_millis(200)).expect("connect");
    match client.noop() {
        Err(FtpError::Io(e)) => {
            assert!(matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock), "{e}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(client.is_closed());
    server.join();
}

// Garbage where a reply should be ends the session: its replies can no longer be matched to commands.
#[test]
fn malformed_reply_closes_the_session() {
    converse(
        |peer| {
            peer.expect("NOOP");
            peer.send("hello there");
            peer.expect_eof();
        },
        |client| {
            assert!(matches!(client.noop(), Err(FtpError::Protocol(_))));
            assert!(client.is_closed());
        },
    );
}

// QUIT expects 221 and closes the connection.
#[test]
fn quit_says_goodbye() {
    let server = FakeServer::start("220 ready", |peer| {
        peer.exchange("QUIT", "221 Bye");
        peer.expect_eof();
    });
    connect(&server).quit().expect("quit");
    server.join();
}

// A refused connection is an I/O error naming the address.
#[test]
fn connection_refused() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let err = FtpClient::connect("127.0.0.1", port, WAIT).expect_err("nothing listens");
    assert!(err.to_string().starts_with(&format!("connecting to 127.0.0.1:{port}: ")), "{err}");
}

// IPv6 literals work, bracketed or not, and EPSV then connects over IPv6 too.
#[test]
fn ipv6_literal() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipping ipv6_literal: ::1 is not available");
        return;
    };
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let (control, _) = listener.accept().expect("accept");
        control.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut control2 = control.try_clone().expect("clone");
        control2.write_all(b"220 v6 ready\r\n").expect("greet");
        let mut reader = io::BufReader::new(control);
        let mut line = String::new();
        io::BufRead::read_line(&mut reader, &mut line).expect("read");
        assert_eq!(line, "EPSV\r\n");
        let data = TcpListener::bind("[::1]:0").expect("bind data");
        let data_port = data.local_addr().expect("addr").port();
        control2.write_all(format!("229 ok (|||{data_port}|)\r\n").as_bytes()).expect("229");
        let (conn, peer) = data.accept().expect("accept data");
        assert!(peer.is_ipv6());
        drop(conn);
    });
    let mut client = FtpClient::connect("::1", port, WAIT).expect("connect over IPv6");
    let conn: TcpStream = client.open_data_connection().expect("data connection over IPv6");
    assert!(conn.peer_addr().expect("peer").is_ipv6());
    handle.join().expect("v6 server");
    // Nothing listens any more: the bracketed form is understood as an address and the connection is refused.
    let err = FtpClient::connect("[::1]", port, WAIT).expect_err("nothing listens");
    assert!(err.to_string().starts_with(&format!("connecting to [::1]:{port}")), "{err}");
}
