//! The chaos test: while 50 sessions move verified files, 500 hostile connections run at the same time (random
//! bytes, 100 KiB lines, half-open connections, resets mid-transfer on both channels, FTP bounce, path traversal,
//! password guessing). Afterwards every good transfer is byte-exact, the server still answers, the live counts are
//! back to the asking session alone and no upload temporaries remain. Bounded well under a minute.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::limits::{eventually, live_counts, rss_kib, temp_files, users_file};
use crate::util::{content, data_connect, reset, sha256, Ctl, TestServer, IO_TIMEOUT};

const GOOD_SESSIONS: usize = 50;
const HOSTILE: usize = 500;
const HOSTILE_THREADS: usize = 25;

type Tally = Arc<Mutex<BTreeMap<String, usize>>>;

fn count(tally: &Tally, what: impl Into<String>) {
    *tally.lock().expect("tally").entry(what.into()).or_insert(0) += 1;
}

fn raw(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(s)
}

fn reply_code(s: &mut TcpStream) -> Option<u16> {
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(buf.get(..3.min(n))?).ok()?.parse().ok()
}

/// One hostile connection; returns what happened, for the report.
fn hostile(kind: usize, addr: SocketAddr, seed: u64) -> String {
    match kind % 9 {
        0 => {
            let Some(mut s) = raw(addr) else { return "random: connect failed".into() };
            let _ = s.write_all(&content(seed, 4096));
            "random bytes".into()
        }
        1 => {
            let Some(mut s) = raw(addr) else { return "long line: connect failed".into() };
            let _ = s.write_all(&vec![b'A'; 100 * 1024]);
            let _ = s.write_all(b"\r\nNOOP\r\n");
            "100 KiB line".into()
        }
        2 => {
            // Half-open: connect and say nothing; dropped after a moment without a FIN's courtesy.
            let Some(s) = raw(addr) else { return "half-open: connect failed".into() };
            thread::sleep(Duration::from_millis(500));
            reset(s);
            "half-open".into()
        }
        3 | 4 => {
            let mut c = Ctl::connect(addr);
            c.login();
            let data_addr = c.epsv();
            let mut data = data_connect(data_addr);
            let up = kind % 9 == 4;
            let code = c.cmd(if up { "STOR hostile.bin" } else { "RETR big.bin" });
            if code != 150 {
                return format!("reset mid-transfer: {code}");
            }
            if up {
                let _ = data.write_all(&content(seed, 50_000));
            } else {
                let mut buf = [0u8; 8192];
                let _ = data.read(&mut buf);
            }
            if seed.is_multiple_of(2) {
                reset(data);
                format!("reset data mid-{}", if up { "upload" } else { "download" })
            } else {
                reset(c.into_stream());
                format!("reset control mid-{}", if up { "upload" } else { "download" })
            }
        }
        5 => {
            let mut c = Ctl::connect(addr);
            c.login();
            let a = c.cmd("PORT 10,0,0,1,200,10");
            let b = c.cmd("EPRT |1|127.0.0.1|21|");
            assert_eq!((a, b), (501, 501), "bounce accepted");
            "bounce refused".into()
        }
        6 => {
            let mut c = Ctl::connect(addr);
            c.login();
            for path in ["../../../etc/passwd", "/etc/passwd", "..\\..\\etc\\passwd"] {
                assert_eq!(c.cmd(&format!("SIZE {path}")), 550, "{path} reachable");
            }
            c.send("CWD ../../..");
            let _ = c.reply();
            let (code, pwd) = c.cmd_full("PWD");
            assert_eq!((code, pwd.contains("\"/\"")), (257, true), "escaped the root: {pwd}");
            "traversal refused".into()
        }
        7 => {
            let mut c = Ctl::connect(addr);
            let mut codes = Vec::new();
            for guess in 0..3 {
                c.send("USER alice");
                let _ = c.reply();
                c.send(&format!("PASS guess{guess}"));
                let code = c.reply().0;
                codes.push(code);
                if code == 421 {
                    break;
                }
            }
            if codes.last() != Some(&421) {
                codes.extend(c.try_reply().ok().flatten().map(|r| r.0));
            }
            // Each guess costs 530 after a delay, and the third one 421 and a close; with many guessers from
            // one address at once, the verifier's per-address bound may refuse one earlier (421).
            let (last, fails) = codes.split_last().expect("replies");
            assert!(*last == 421 && fails.iter().all(|&c| c == 530), "password guessing: {codes:?}");
            "password guessing".into()
        }
        _ => {
            let Some(mut s) = raw(addr) else { return "garbage: connect failed".into() };
            let _ = reply_code(&mut s);
            let _ = s.write_all(b"USER \0root\r\nRETR \xff\xfe\r\nXYZZY\r\nPASS\r\n");
            "malformed commands".into()
        }
    }
}

#[test]
fn chaos_good_transfers_survive_hostile_load() {
    let dir = tempfile::tempdir().expect("dir");
    let users = users_file(dir.path());
    let server = TestServer::start(&[
        "--users",
        &users,
        "--anonymous",
        "write",
        "--login-failure-delay",
        "0.05",
        "--max-login-failures",
        "3",
        "--login-timeout",
        "5",
        "--stall-timeout",
        "5",
        "--data-timeout",
        "5",
    ]);
    server.put_file("big.bin", &content(50, 4 << 20));
    let rss_before = rss_kib(server.pid());
    let started = Instant::now();
    let addr = server.addr();

    let good: Vec<_> = (0..GOOD_SESSIONS)
        .map(|i| {
            thread::spawn(move || {
                let data = content(1000 + i as u64, 200_000 + i * 7_919);
                let mut client = ftp_client::FtpClient::connect("127.0.0.1", addr.port(), IO_TIMEOUT).expect("connect");
                client.login("anonymous", "guest@").expect("login");
                let name = format!("good-{i}.bin");
                client.stor(&name, &mut &data[..]).expect("upload");
                let mut back = Vec::new();
                client.retr(&name, &mut back).expect("download");
                (name, sha256(&data), sha256(&back))
            })
        })
        .collect();

    let tally: Tally = Arc::default();
    let hostile_threads: Vec<_> = (0..HOSTILE_THREADS)
        .map(|t| {
            let tally = tally.clone();
            thread::spawn(move || {
                for j in 0..HOSTILE / HOSTILE_THREADS {
                    let n = t * (HOSTILE / HOSTILE_THREADS) + j;
                    let what = hostile(n, addr, n as u64);
                    count(&tally, what);
                }
            })
        })
        .collect();

    let mut verified = 0;
    for g in good {
        let (name, sent, got) = g.join().expect("a good session failed");
        assert_eq!(sent, got, "{name}: downloaded copy differs");
        assert_eq!(crate::util::sha256_file(&server.root().join(&name)), sent, "{name}: stored copy differs");
        verified += 1;
    }
    for h in hostile_threads {
        h.join().expect("a hostile connection saw the server misbehave");
    }

    let mut c = server.login();
    assert_eq!(c.cmd("NOOP"), 200, "the server stopped answering");
    drop(c);
    assert!(eventually(Duration::from_secs(15), || live_counts(&server) == (1, 1)), "{:?}", live_counts(&server));
    assert!(eventually(IO_TIMEOUT, || temp_files(server.root()).is_empty()), "{:?}", temp_files(server.root()));
    let rss_after = rss_kib(server.pid());
    let tally = tally.lock().expect("tally");
    eprintln!(
        "chaos: {verified} good transfers verified, {} hostile connections in {:.1} s; server RSS {rss_before} KiB \
         before, {rss_after} KiB after",
        tally.values().sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    for (what, n) in tally.iter() {
        eprintln!("chaos:   {n:4}  {what}");
    }
    assert_eq!(verified, GOOD_SESSIONS);
    assert_eq!(tally.values().sum::<usize>(), HOSTILE);
}
