//! Bans built in: failed logins (and other offences) from one address within the window ban it; a banned address
//! is refused with 421 at accept while its neighbour is served; the ban expires; `--deny-from` turns an address
//! away whatever it does. Clients come from their own loopback addresses (127.0.0.9 and up).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::limits::users_file;
use crate::util::{connect_from, wait_until, Ctl, TestServer};

fn from(ip: [u8; 4], addr: SocketAddr) -> Ctl {
    Ctl::from_stream(connect_from(Ipv4Addr::from(ip), addr).expect("connect"))
}

/// The first reply on a new connection from `ip`.
fn greeting(ip: [u8; 4], addr: SocketAddr) -> u16 {
    from(ip, addr).reply().0
}

#[test]
fn failed_logins_ban_the_address_until_the_ban_expires() {
    let dir = tempfile::tempdir().expect("dir");
    let users = users_file(dir.path());
    let args = [
        "--users",
        &users,
        "--ban-after",
        "3",
        "--ban-window",
        "60",
        "--ban-time",
        "1.5",
        "--login-failure-delay",
        "0.05",
        "--max-login-failures",
        "5",
        "--metrics",
        "127.0.0.1:0",
    ];
    let (server, lines) = TestServer::start_lines(dir.path(), &args, 2);
    let addr = server.addr();
    let mut guesser = from([127, 0, 0, 9], addr);
    assert_eq!(guesser.reply().0, 220);
    for guess in 0..3 {
        assert_eq!(guesser.cmd("USER alice"), 331);
        assert_eq!(guesser.cmd(&format!("PASS guess{guess}")), 530);
    }
    // Banned now: refused at accept; a neighbour address is served.
    let (code, text) = from([127, 0, 0, 9], addr).reply();
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("banned"), "{text}");
    assert_eq!(greeting([127, 0, 0, 10], addr), 220);
    // The metrics say so.
    let metrics: SocketAddr = crate::util::metrics_addr(&lines);
    let body = http(metrics);
    assert!(body.lines().any(|l| l.starts_with("ftpserver_bans_total") && l.ends_with(" 1")), "{body}");
    assert!(body.lines().any(|l| l.contains("reason=\"banned\"") && !l.ends_with(" 0")), "{body}");
    assert!(server.log().contains("127.0.0.9 banned"), "{}", server.log());
    // The ban expires.
    assert!(wait_until(Duration::from_secs(5), || greeting([127, 0, 0, 9], addr) == 220), "the ban never expired");
}

#[test]
fn deny_from_turns_an_address_away() {
    let server = TestServer::start(&["--deny-from", "127.0.0.11/32"]);
    let (code, text) = from([127, 0, 0, 11], server.addr()).reply();
    assert_eq!(code, 421, "{text}");
    assert_eq!(greeting([127, 0, 0, 12], server.addr()), 220);
    let server = TestServer::start(&["--allow-from", "127.0.0.12"]);
    assert_eq!(greeting([127, 0, 0, 11], server.addr()), 421);
    assert_eq!(greeting([127, 0, 0, 12], server.addr()), 220);
}

fn http(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text
}

// Every change and every refusal gets a log line naming the session, the client's address and port, the user,
// and the path as the client saw it and as it is on disk.
#[test]
fn changes_and_refusals_are_logged() {
    let dir = tempfile::tempdir().expect("dir");
    let users = users_file(dir.path());
    let server = TestServer::start(&["--users", &users, "--anonymous", "read"]);
    server.put_file("f.txt", b"x");
    let mut anon = server.login();
    assert_eq!(anon.cmd("DELE f.txt"), 550);
    let mut c = server.ctl();
    assert_eq!(c.cmd("USER alice"), 331);
    assert_eq!(c.cmd("PASS wonderland"), 230);
    let port = c.stream().local_addr().expect("addr").port();
    for (cmd, code) in [
        ("MKD d", 257),
        ("RNFR f.txt", 350),
        ("RNTO d/g.txt", 250),
        ("MFMT 20200102030405 d/g.txt", 213),
        ("DELE d/g.txt", 250),
        ("RMD d", 250),
    ] {
        assert_eq!(c.cmd(cmd), code, "{cmd}");
    }
    assert_eq!(c.cmd("QUIT"), 221);
    let root = server.root().canonicalize().expect("root");
    let log = server.log();
    assert!(log.contains("\"anonymous\": refused, no Delete permission (550)"), "{log}");
    for (what, path) in
        [("MKD", "/d"), ("RNTO", "/d/g.txt"), ("MFMT", "/d/g.txt"), ("Deleted", "/d/g.txt"), ("Removed", "/d")]
    {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("\"alice\" {what} \"{path}\"")))
            .unwrap_or_else(|| panic!("no {what} line in\n{log}"));
        assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
        assert!(line.contains(&format!("{:?}", root.join(&path[1..]))), "{line}");
    }
}

// GET /sessions on the metrics endpoint lists every live session on every worker: number, worker, user, client
// and what it does (a transfer with its bytes and rate).
#[test]
fn live_sessions_are_listed() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("dir");
    let (server, lines) = TestServer::start_lines(dir.path(), &["--metrics", "127.0.0.1:0", "--workers", "2"], 2);
    server.put_file("big.bin", &crate::util::content(4, 8 << 20));
    let metrics: SocketAddr = crate::util::metrics_addr(&lines);
    let mut busy = server.login();
    let addr = busy.pasv();
    let mut data = crate::util::data_connect_small_window(addr);
    busy.expect("RETR big.bin", 150);
    let mut first = vec![0u8; 64 * 1024];
    data.read_exact(&mut first).expect("first bytes");
    let idle: Vec<Ctl> = (0..3).map(|_| server.login()).collect();
    let text = get(metrics, "/sessions");
    let rows: Vec<&str> = text.lines().skip(1).filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows.iter().all(|r| r.contains("\"anonymous\"\t127.0.0.1:")), "{text}");
    let transfer = rows.iter().find(|r| r.contains("RETR \"/big.bin\"")).unwrap_or_else(|| panic!("{text}"));
    assert!(transfer.contains(" bytes, ") && transfer.contains("MiB/s"), "{transfer}");
    assert_eq!(rows.iter().filter(|r| r.contains("idle ")).count(), 3, "{text}");
    drop(idle);
}

fn get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}
