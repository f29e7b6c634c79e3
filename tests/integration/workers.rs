//! Several event loops (`--workers`): limits that hold across them, a shutdown that reaches every one of them,
//! passive ports drawn by all of them from one range, and `--workers 1` serving exactly as before. STAT names the
//! worker a session landed on, which is how these tests know they have sessions on every worker.

use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

use crate::util::{content, data_connect, data_connect_small_window, read_to_end, sha256, Ctl, TestServer};

/// The worker a session is on, from STAT's "Worker N of M" line.
fn worker_of(c: &mut Ctl) -> String {
    let (code, text) = c.cmd_full("STAT");
    assert_eq!(code, 211, "{text}");
    let line = text.lines().find(|l| l.trim_start().starts_with("Worker ")).unwrap_or_else(|| panic!("{text}"));
    line.trim_start().split(':').next().unwrap_or_default().to_string()
}

/// Logged-in sessions, opened until there is at least one on each of `workers` workers (bounded).
fn sessions_on_every_worker(server: &TestServer, workers: usize) -> Vec<(String, Ctl)> {
    let mut sessions = Vec::new();
    let mut seen = BTreeSet::new();
    for _ in 0..64 {
        let mut c = server.login();
        let w = worker_of(&mut c);
        if seen.insert(w.clone()) {
            sessions.push((w, c));
        } else {
            // Leave, and wait until the server has closed the session: only then is its place under
            // --max-per-ip free again (dropping the connection would race the next login against that).
            c.expect("QUIT", 221);
            c.expect_closed();
        }
        if seen.len() == workers {
            return sessions;
        }
    }
    panic!("64 sessions all landed on {seen:?}");
}

// --max-per-ip and --max-connections count the sessions of every worker together.
#[test]
fn limits_hold_across_workers() {
    let server = TestServer::start(&["--workers", "2", "--max-per-ip", "4"]);
    let mut held = sessions_on_every_worker(&server, 2);
    while held.len() < 4 {
        let mut c = server.login();
        held.push((worker_of(&mut c), c));
    }
    let workers: BTreeSet<&str> = held.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    for _ in 0..8 {
        let mut c = Ctl::connect_no_greeting(server.addr());
        let (code, text) = c.reply();
        assert_eq!(code, 421, "a fifth session from one address: {text}");
    }
    drop(held.pop());
    // The freed place is found by a new session on either worker.
    assert!(crate::util::wait_until(Duration::from_secs(5), || {
        let mut c = Ctl::connect_no_greeting(server.addr());
        c.reply().0 == 220
    }));

    let server = TestServer::start(&["--workers", "2", "--max-connections", "3"]);
    let held: Vec<Ctl> = (0..3).map(|_| server.login()).collect();
    for _ in 0..6 {
        let mut c = Ctl::connect_no_greeting(server.addr());
        assert_eq!(c.reply().0, 421, "a fourth session");
    }
    drop(held);
}

// SIGTERM reaches every worker: each one's running transfer finishes byte-exact with 226 then 421, each one's
// idle session gets 421, and the process exits 0.
#[test]
fn shutdown_with_busy_sessions_on_every_worker() {
    let mut server = TestServer::start(&["--workers", "2"]);
    let payload = content(5, 8 << 20);
    server.put_file("big.bin", &payload);
    let busy = sessions_on_every_worker(&server, 2);
    let mut running = Vec::new();
    for (w, mut c) in busy {
        let addr = c.pasv();
        let mut data = data_connect_small_window(addr);
        c.expect("RETR big.bin", 150);
        let mut first = vec![0u8; 64 * 1024];
        data.read_exact(&mut first).expect("the first 64 KiB");
        running.push((w, c, data, first));
    }
    let idle = sessions_on_every_worker(&server, 2);
    server.terminate();
    for (w, mut c) in idle {
        let replies = c.expect_closed();
        assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [421], "idle session on {w}: {replies:?}");
    }
    for (w, mut c, mut data, mut got) in running {
        got.extend_from_slice(&read_to_end(&mut data));
        assert_eq!(sha256(&got), sha256(&payload), "download on {w}");
        let replies = c.expect_closed();
        assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [226, 421], "busy session on {w}: {replies:?}");
    }
    let status = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
}

// Every worker draws passive ports from the one range without collisions: with two ports, two listeners open at
// once (on whichever workers), a third PASV gets 425, and a freed port is drawn again.
#[test]
fn passive_ports_run_out_across_workers() {
    let port = free_port_pair();
    let range = format!("{}-{}", port, port + 1);
    let server = TestServer::start(&["--workers", "2", "--pasv-ports", &range]);
    let mut sessions = sessions_on_every_worker(&server, 2);
    let mut ports = BTreeSet::new();
    for (_, c) in &mut sessions {
        ports.insert(c.pasv().port());
    }
    assert_eq!(ports, BTreeSet::from([port, port + 1]));
    let mut third = server.login();
    assert_eq!(third.cmd("PASV"), 425);
    let (_, mut first) = sessions.remove(0);
    first.expect("QUIT", 221);
    first.expect_closed();
    assert!(crate::util::wait_until(Duration::from_secs(5), || third.cmd("PASV") == 227));
}

/// Two adjacent free ports (bound once to check, then released).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = a.local_addr().expect("addr").port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two adjacent free ports");
}

// --workers 1 is the single loop: transfers of awkward sizes both ways, with listings, byte-exact.
#[test]
fn one_worker_serves_as_before() {
    let server = TestServer::start(&["--workers", "1"]);
    let mut c = server.login();
    assert_eq!(worker_of(&mut c), "Worker 1 of 1");
    let mut client = server.client();
    for (i, len) in [0usize, 1, 1023, 1024, 1025, (3 << 20) + 7].into_iter().enumerate() {
        let data = content(i as u64, len);
        let name = format!("f{i}.bin");
        client.stor(&name, &mut &data[..]).expect("STOR");
        let mut back = Vec::new();
        client.retr(&name, &mut back).expect("RETR");
        assert_eq!(sha256(&back), sha256(&data), "{len} bytes");
    }
    let addr = c.pasv();
    c.send("NLST");
    let mut d = data_connect(addr);
    assert_eq!(c.reply().0, 150);
    let names = String::from_utf8(read_to_end(&mut d)).expect("UTF-8");
    assert_eq!(c.reply().0, 226);
    assert_eq!(names.lines().count(), 6, "{names}");
}

// Sessions are spread evenly, whatever the kernel's hash of their ports: a worker that accepts a session while it
// holds more than another hands it to the one holding fewest. 21 sessions on 3 workers are 7 on each (by the hash
// alone, about one run in 26 would be); when one worker's sessions leave, the next 7 all go to it (one in 2,187).
#[test]
fn sessions_are_spread_evenly() {
    let server = TestServer::start(&["--workers", "3"]);
    let mut sessions: Vec<(String, Ctl)> = (0..21)
        .map(|_| {
            let mut c = server.login();
            (worker_of(&mut c), c)
        })
        .collect();
    let count = |sessions: &[(String, Ctl)]| {
        let mut n = std::collections::BTreeMap::new();
        for (w, _) in sessions {
            *n.entry(w.clone()).or_insert(0) += 1;
        }
        n
    };
    let even: Vec<(String, usize)> = (1..=3).map(|w| (format!("Worker {w} of 3"), 7)).collect();
    assert_eq!(count(&sessions).into_iter().collect::<Vec<_>>(), even);

    // Worker 2's sessions leave (each closed by the server before the next goes, so its count is down).
    let (leaving, staying): (Vec<_>, Vec<_>) = sessions.drain(..).partition(|(w, _)| w == "Worker 2 of 3");
    sessions = staying;
    for (_, mut c) in leaving {
        c.expect("QUIT", 221);
        c.expect_closed();
    }
    for _ in 0..7 {
        let mut c = server.login();
        let w = worker_of(&mut c);
        assert_eq!(w, "Worker 2 of 3", "a session while worker 2 held fewest: {:?}", count(&sessions));
        sessions.push((w, c));
    }
    assert_eq!(count(&sessions).into_iter().collect::<Vec<_>>(), even);
    // A handed-over session is an ordinary one: it downloads byte-exact.
    let data = content(7, 100_000);
    let mut client = server.client();
    client.stor("spread.bin", &mut &data[..]).expect("STOR");
    for (_, c) in sessions.iter_mut().take(6) {
        let addr = c.pasv();
        c.send("RETR spread.bin");
        let mut d = data_connect(addr);
        assert_eq!(c.reply().0, 150);
        assert_eq!(sha256(&read_to_end(&mut d)), sha256(&data));
        assert_eq!(c.reply().0, 226);
    }
}
