//! The loop's discipline, checked from outside: one client never stalls the others. A bystander session sends
//! NOOP every 20 ms while, one by one, each hostile behaviour we know of is tried against the server; its worst
//! round trip must stay under 100 ms, a new client must still be greeted, and nothing may be left on disk that
//! should not be. The findings that need real sockets have tests of their own here too, named after them.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::limits::{temp_files, users_file};
use crate::util::{connect_from, content, data_connect, read_to_end, Certs, Ctl, TestServer};

/// The bystander's worst NOOP round trip allowed while anything below happens.
const BYSTANDER_LIMIT: Duration = Duration::from_millis(100);
/// How often the bystander asks.
const BYSTANDER_PERIOD: Duration = Duration::from_millis(20);

/// A logged-in session that sends NOOP every 20 ms and records each round trip with the instant it ended.
struct Bystander {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Instant, Duration)>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Bystander {
    fn start(addr: SocketAddr) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let mut ctl = Ctl::connect(addr);
        ctl.login();
        let (s, out) = (stop.clone(), samples.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                assert_eq!(ctl.cmd("NOOP"), 200, "the bystander's NOOP");
                let took = t.elapsed();
                out.lock().unwrap_or_else(|p| p.into_inner()).push((Instant::now(), took));
                // Pacing, not synchronisation: the bystander is a client asking at a steady rate.
                thread::sleep(BYSTANDER_PERIOD);
            }
        });
        Bystander { stop, samples, thread: Some(thread) }
    }

    /// The worst round trip that ended within `from..to`, and how many there were.
    fn worst(&self, from: Instant, to: Instant) -> (Duration, usize) {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let within: Vec<Duration> = samples.iter().filter(|(at, _)| *at >= from && *at <= to).map(|s| s.1).collect();
        (within.iter().copied().max().unwrap_or_default(), within.len())
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the bystander failed");
        }
    }
}

/// Runs one hostile behaviour and returns its name with the bystander's worst NOOP while it ran.
fn phase(by: &Bystander, name: &str, f: impl FnOnce()) -> (String, Duration, usize) {
    let start = Instant::now();
    f();
    // The bystander must have been answered twice since the behaviour ended, while its aftermath (closes,
    // timers) runs; a bystander that is never answered fails the test here.
    let done = Instant::now();
    let answered = crate::util::wait_until(Duration::from_secs(5), || by.worst(done, Instant::now()).1 >= 2);
    assert!(answered, "the bystander got no answer after {name}");
    let (worst, n) = by.worst(start, Instant::now());
    eprintln!("hostile phase {name:<36} bystander worst NOOP {:>6.1} ms over {n} NOOPs", worst.as_secs_f64() * 1e3);
    (name.to_string(), worst, n)
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

/// Opens a raw connection that reads nothing, for floods.
fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s
}

#[test]
fn hostile_bystander_noop_stays_fast() {
    let dir = tempfile::tempdir().expect("dir");
    let users = users_file(dir.path());
    let certs = Certs::new();
    // One worker: the bystander shares its loop with every attacker, which is what the test is about.
    let args = ["--users", &users, "--anonymous", "write", "--login-timeout", "1", "--workers", "1"];
    let server = TestServer::start_tls(&certs, &args);
    let addr = server.addr();
    let root = server.root().to_path_buf();
    server.put_file("big.bin", &content(7, 32 << 20));
    let by = Bystander::start(addr);
    let mut results = Vec::new();

    // 1. Password checks still running at the login deadline (the timer livelock).
    results.push(phase(&by, "PASS at the login deadline", || {
        let racers: Vec<_> = (0..8u64)
            .map(|i| {
                thread::spawn(move || {
                    let mut c = Ctl::connect(addr);
                    // The attack is a timing: PASS lands a few milliseconds before the 1 s deadline.
                    thread::sleep(Duration::from_millis(940 + 8 * i));
                    // On a loaded machine the sleep may overrun the deadline: the server has closed already.
                    let sent = c.stream().write_all(b"USER alice\r\nPASS wrong\r\n").is_ok();
                    (sent, c.expect_closed())
                })
            })
            .collect();
        for r in racers {
            let (sent, replies) = r.join().expect("racer");
            assert!(!sent || replies.iter().any(|r| r.0 == 421), "{replies:?}");
        }
    }));

    // 2. STOU onto a dangling symlink and onto one pointing outside the root.
    results.push(phase(&by, "STOU onto dangling/escaping symlinks", || {
        std::os::unix::fs::symlink("nowhere", root.join("stou")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", root.join("stou.1")).expect("symlink");
        let mut c = Ctl::connect(addr);
        c.login();
        let data = c.pasv();
        c.send("STOU stou");
        let mut d = data_connect(data);
        let (code, text) = c.reply();
        assert_eq!((code, text.as_str()), (150, "FILE: stou.2"));
        d.write_all(b"unique").expect("upload");
        drop(d);
        assert_eq!(c.reply().0, 226);
        assert_eq!(fs::read(root.join("stou.2")).expect("published"), b"unique");
    }));

    // 3. A FIFO in the tree.
    results.push(phase(&by, "FIFO: RETR, HASH, APPE, REST+STOR, MFMT", || {
        mkfifo(&root.join("fifo"));
        let mut c = Ctl::connect(addr);
        c.login();
        c.pasv();
        for cmd in ["RETR fifo", "HASH fifo", "APPE fifo", "MFMT 20200101000000 fifo"] {
            assert_eq!(c.cmd(cmd), 550, "{cmd}");
        }
        assert_eq!(c.cmd("REST 1"), 350);
        assert_eq!(c.cmd("STOR fifo"), 550);
    }));

    // 4. A huge directory: STAT, LIST and NLST of 30,000 entries; deep paths.
    results.push(phase(&by, "huge directory: STAT, LIST, deep CWD", || {
        fs::create_dir(root.join("huge")).expect("mkdir");
        for i in 0..30_000 {
            fs::File::create(root.join(format!("huge/entry-{i:05}"))).expect("create");
        }
        let mut c = Ctl::connect(addr);
        c.login();
        let (code, text) = c.cmd_full("STAT huge");
        assert_eq!(code, 213);
        assert!(text.contains("use LIST"), "{}", &text[text.len().saturating_sub(200)..]);
        for verb in ["LIST", "NLST"] {
            let data = c.pasv();
            c.send(&format!("{verb} huge"));
            let mut d = data_connect(data);
            assert_eq!(c.reply().0, 150);
            let listing = read_to_end(&mut d);
            assert_eq!(c.reply().0, 226);
            assert_eq!(listing.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 30_000, "{verb}");
        }
        let deep = "a/".repeat(2000);
        assert_eq!(c.cmd(&format!("CWD {deep}")), 550);
        assert_eq!(c.cmd(&format!("STAT {deep}")), 550);
    }));

    // 5. Password-check flood: many wrong PASS from one address, the clients hanging up at once.
    results.push(phase(&by, "password-check flood, clients gone", || {
        for _ in 0..100 {
            let mut s = raw(addr);
            let _ = s.write_all(b"USER alice\r\nPASS wrong\r\n");
        }
        // An honest login from another address is checked promptly (the flood's jobs are cancelled or refused).
        let t = Instant::now();
        let s = connect_from(Ipv4Addr::new(127, 0, 0, 9), addr).expect("connect from 127.0.0.9");
        let mut honest = Ctl::from_stream(s);
        assert_eq!(honest.reply().0, 220);
        assert_eq!(honest.cmd("USER alice"), 331);
        assert_eq!(honest.cmd("PASS wonderland"), 230);
        eprintln!("honest login after the flood took {:?}", t.elapsed());
    }));

    // 6. HASH then ABOR with a passive listener open; HASH while the data timeout runs out.
    results.push(phase(&by, "HASH then ABOR with PASV open", || {
        let mut c = Ctl::connect(addr);
        c.login();
        c.pasv();
        c.send("HASH big.bin");
        c.send("ABOR");
        let codes: Vec<u16> = (0..2).map(|_| c.reply().0).collect();
        assert_eq!(codes, vec![426, 226]);
        assert_eq!(c.cmd("NOOP"), 200);
        assert_eq!(c.cmd("HASH big.bin").to_string().chars().next(), Some('2'));
    }));

    // 8. Temporaries: an upload in progress is invisible, and a reset upload leaves nothing.
    results.push(phase(&by, "temporaries during an upload", || {
        let mut up = Ctl::connect(addr);
        up.login();
        let data = up.pasv();
        up.send("STOR secret.bin");
        let mut d = data_connect(data);
        assert_eq!(up.reply().0, 150);
        d.write_all(&content(3, 100_000)).expect("partial upload");
        let mut other = Ctl::connect(addr);
        other.login();
        let data = other.pasv();
        other.send("NLST -a");
        let mut l = data_connect(data);
        assert_eq!(other.reply().0, 150);
        let names = String::from_utf8(read_to_end(&mut l)).expect("UTF-8");
        assert_eq!(other.reply().0, 226);
        assert!(!names.contains("ftpupload") && !names.contains("secret.bin"), "{names}");
        crate::util::reset(d);
        assert_eq!(up.reply().0, 426);
    }));

    // Many PASV listeners from one session, pipelined.
    results.push(phase(&by, "500 pipelined PASV", || {
        let mut c = Ctl::connect(addr);
        c.login();
        c.send_bytes(&b"PASV\r\n".repeat(500));
        for _ in 0..500 {
            assert_eq!(c.reply().0, 227);
        }
        assert_eq!(c.cmd("NOOP"), 200);
    }));

    // PASV and RETR pipelined without end and never connected: the first RETR waits for its data connection, the
    // rest queue behind it until the queue is full and the server stops reading; the client then goes, and all of
    // it goes with it. A new session still gets a listener and a download.
    results.push(phase(&by, "pipelined PASV/RETR flood, never connected", || {
        let mut c = Ctl::connect(addr);
        c.login();
        let mut writer = c.stream().try_clone().expect("clone");
        let sender = thread::spawn(move || {
            // Blocks once the server stops reading; the shutdown below ends it.
            let _ = writer.write_all(&b"PASV\r\nRETR big.bin\r\n".repeat(20_000));
        });
        assert_eq!(c.reply().0, 227);
        c.stream().shutdown(std::net::Shutdown::Both).expect("shutdown");
        sender.join().expect("sender");
        drop(c);
        let mut next = Ctl::connect(addr);
        next.login();
        next.expect("TYPE I", 200);
        let pasv = next.pasv();
        next.send("RETR big.bin");
        let mut data = data_connect(pasv);
        assert_eq!(next.reply().0, 150);
        assert!(read_to_end(&mut data) == content(7, 32 << 20), "big.bin after the flood");
        assert_eq!(next.reply().0, 226);
    }));

    // A pipelined flood of 20,000 commands, its replies read by the flooder.
    results.push(phase(&by, "20,000 pipelined NOOPs", || {
        let mut c = Ctl::connect(addr);
        c.login();
        let mut writer = c.stream().try_clone().expect("clone");
        let sender = thread::spawn(move || writer.write_all(&b"NOOP\r\n".repeat(20_000)).expect("flood"));
        for _ in 0..20_000 {
            assert_eq!(c.reply().0, 200);
        }
        sender.join().expect("sender");
    }));

    // TLS handshakes that never finish: AUTH TLS, then a ClientHello trickled a few bytes at a time, or garbage.
    results.push(phase(&by, "100 slow or broken TLS handshakes", || {
        let hello_start: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
        let mut slow: Vec<Ctl> = (0..100).map(|_| Ctl::connect(addr)).collect();
        for c in &mut slow {
            assert_eq!(c.cmd("AUTH TLS"), 234);
        }
        for (i, c) in slow.iter_mut().enumerate() {
            let bytes: &[u8] = if i % 2 == 0 { &hello_start[..5] } else { b"\x16\x03\x01\xff\xffgarbage" };
            let _ = c.stream().write_all(bytes);
        }
        for c in &mut slow {
            let _ = c.stream().write_all(&hello_start[5..7]);
        }
        drop(slow);
    }));

    // Lines far over the limit, and clients that connect and say nothing.
    results.push(phase(&by, "1 MiB line, 200 silent clients", || {
        let mut s = raw(addr);
        let _ = s.write_all(&vec![b'A'; 1 << 20]);
        let silent: Vec<TcpStream> = (0..200).map(|_| raw(addr)).collect();
        let mut c = Ctl::connect(addr);
        c.login();
        drop(silent);
        drop(s);
    }));

    by.finish();
    let worst = results.iter().map(|r| r.1).max().unwrap_or_default();
    assert!(
        worst < BYSTANDER_LIMIT,
        "a bystander waited {worst:?} for NOOP: {:?}",
        results.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>()
    );
    // A newcomer is still greeted, and no temporary is left behind.
    let mut newcomer = Ctl::connect(addr);
    assert_eq!(newcomer.cmd("NOOP"), 200);
    assert!(
        crate::util::wait_until(Duration::from_secs(5), || temp_files(&root).is_empty()),
        "{:?}",
        temp_files(&root)
    );
}

// A burst of connections on two workers: the worker that accepts them hands half to the other, which admits at most
// a few hundred a turn; the bystanders on both workers stay answered, and every connection is greeted.
#[test]
fn hostile_connection_burst_across_workers() {
    let server = TestServer::start(&["--workers", "2"]);
    let addr = server.addr();
    // One bystander on each worker (the second session goes to the worker holding none).
    let bystanders = [Bystander::start(addr), Bystander::start(addr)];
    let start = Instant::now();
    // 300: with the other tests running beside it, the test process stays under a 1,024-descriptor limit.
    let burst: Vec<TcpStream> = (0..300).map(|_| raw(addr)).collect();
    for mut s in burst {
        let mut greeting = [0u8; 4];
        s.read_exact(&mut greeting).expect("a greeting");
        assert_eq!(&greeting, b"220 ");
    }
    let done = Instant::now();
    for (i, b) in bystanders.iter().enumerate() {
        let answered = crate::util::wait_until(Duration::from_secs(5), || b.worst(done, Instant::now()).1 >= 2);
        assert!(answered, "bystander {i} got no answer after the burst");
        let (worst, n) = b.worst(start, Instant::now());
        eprintln!("connection burst: bystander {i} worst NOOP {:.1} ms over {n} NOOPs", worst.as_secs_f64() * 1e3);
        assert!(worst < BYSTANDER_LIMIT, "bystander {i} waited {worst:?} for NOOP during the burst");
    }
    for b in bystanders {
        b.finish();
    }
}

// 5. The verifier's queue is bounded per address: a burst of logins from one address gets 421 for those beyond
// the bound, while a login from another address still succeeds.
#[test]
fn finding_05_password_checks_are_bounded_per_address() {
    let dir = tempfile::tempdir().expect("dir");
    let users = users_file(dir.path());
    let server = TestServer::start(&["--users", &users, "--login-failure-delay", "0.5"]);
    let addr = server.addr();
    let mut burst: Vec<Ctl> = (0..12).map(|_| Ctl::connect(addr)).collect();
    for c in &mut burst {
        c.send_bytes(b"USER alice\r\nPASS wrong\r\n");
    }
    let mut codes = Vec::new();
    for c in &mut burst {
        assert_eq!(c.reply().0, 331);
        codes.push(c.reply().0);
    }
    assert!(codes.contains(&421), "no login refused: {codes:?}");
    assert!(codes.iter().all(|&c| c == 421 || c == 530), "{codes:?}");
    let s = connect_from(Ipv4Addr::new(127, 0, 0, 7), addr).expect("connect from 127.0.0.7");
    let mut other = Ctl::from_stream(s);
    assert_eq!(other.reply().0, 220);
    assert_eq!(other.cmd("USER alice"), 331);
    assert_eq!(other.cmd("PASS wonderland"), 230);
}

// 6 (loop side). The passive listener times out while a HASH runs: the HASH is not killed with the data
// channel, its 213 arrives and the session is not left busy.
#[test]
fn finding_06_data_timeout_during_hash_still_answers() {
    let server = TestServer::start(&["--data-timeout", "0.05"]);
    server.put_file("big.bin", &content(9, 64 << 20));
    let mut c = server.login();
    c.pasv();
    let (code, text) = c.cmd_full("HASH big.bin");
    assert_eq!(code, 213, "{text}");
    assert_eq!(c.cmd("NOOP"), 200);
}

// 12. Control characters in names never reach the log raw: a CR in a path could forge a log line.
#[test]
fn finding_12_control_characters_in_log_fields_are_escaped() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    let data = c.pasv();
    c.send("STOR x\r127.0.0.1 anonymous RETR forged.bin 1 bytes 0.001 s ok");
    let d = data_connect(data);
    assert_eq!(c.reply().0, 150);
    crate::util::write_and_close(d, b"1");
    assert_eq!(c.reply().0, 226);
    assert_eq!(c.cmd("QUIT"), 221);
    assert!(crate::util::wait_until(Duration::from_secs(5), || server.log().contains("STOR")), "{}", server.log());
    let log = server.log();
    assert!(!log.contains('\r'), "a raw CR reached the log:\n{log}");
    assert!(log.contains("x\\r127.0.0.1"), "{log}");
}

// 8. A client cannot pre-create the next temporary's name to make someone else's STOR fail: names are
// unguessable, and a name of that shape cannot be created or reached by any verb.
#[test]
fn finding_08_temporary_names_cannot_be_taken_or_reached() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    assert_eq!(c.cmd("MKD .ftpupload.2.1.part"), 550);
    assert_eq!(c.cmd("MKD .ftpupload-0000.part"), 550);
    let data = c.pasv();
    c.send("STOR f.bin");
    let d = data_connect(data);
    assert_eq!(c.reply().0, 150);
    let temps: Vec<String> = fs::read_dir(server.root())
        .expect("root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ftpupload"))
        .collect();
    assert_eq!(temps.len(), 1, "{temps:?}");
    assert!(temps[0].len() >= ".ftpupload-.part".len() + 32, "{temps:?}");
    let mut other = server.login();
    assert_eq!(other.cmd(&format!("SIZE {}", temps[0])), 550);
    other.pasv();
    assert_eq!(other.cmd(&format!("RETR {}", temps[0])), 550);
    crate::util::write_and_close(d, b"done");
    assert_eq!(c.reply().0, 226);
    let mut back = Vec::new();
    let data = c.pasv();
    c.send("RETR f.bin");
    let mut d = data_connect(data);
    assert_eq!(c.reply().0, 150);
    d.read_to_end(&mut back).expect("download");
    assert_eq!(c.reply().0, 226);
    assert_eq!(back, b"done");
}
