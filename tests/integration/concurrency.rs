//! Hundreds of simultaneous sessions against one server whose fairness knobs are set to their finest
//! (`--chunk-size 1024 --quantum 1`): half download and half upload a distinct file of a little over 1 MiB, every
//! byte is checked, and the test shows that the transfers ran side by side rather than one after another.
//!
//! The fairness criterion is about order, not speed: every transfer must have made progress before the first one
//! finished, so no transfer waited for another to complete. Two things make that observable and robust.
//! First, the client side is fair by construction: the sessions log in and arm their transfers from one thread
//! each (RETR or STOR sent and parked by the server until its data connection arrives), but all data connections
//! are then opened together and served by one loop that gives every transfer one read or write per pass. With a
//! thread per transfer, the order in which a busy machine schedules 200 threads decides which transfers run, and
//! one scheduled early can finish alone before others have started, whatever the server does. Second, progress is
//! observed where buffering cannot fake it: a download has progressed when its first byte arrives (nothing is sent
//! before its data connection exists), an upload when its temporary file on the server's disk is no longer empty
//! (only the server writes there). A server that ran transfers one at a time, or starved some until others
//! completed, fails whatever the machine's speed; a fair one passes with a wide margin, because the first transfer
//! to finish needs about a thousand turns of the loop and every transfer moves a chunk in each turn.
//!
//! Downloads also show that the sharing lasted, judged where it happens: by the server's own transfer log (each
//! transfer's end and duration, to the millisecond). On each loop, the first download to be sent completely must
//! have taken at least a quarter as long as the last. Equal turns make it about five sixths (the sizes differ by
//! a fifth), less where a client that fell behind filled a connection's buffers and its download waited for room;
//! one at a time, the first would take a hundredth of the last. The client cannot judge this by what it has received: at a chunk
//! per turn the server outpaces the one client thread that checks every byte, so every download is soon sent and
//! waiting in socket buffers (loopback lets a connection buffer more than its whole file), and what the client
//! reads from each then depends on TCP's window and buffer autotuning per connection, not on the server's turns.
//!
//! The server runs a loop per core (its default), and the guarantee is each loop's: a loop shares its turns among
//! its own transfers, while how the machine's cores are shared between loops (and this test's own threads) is the
//! operating system's doing. So the criteria are applied per loop: each session learns its worker from STAT, and
//! "the first transfer to finish" is the first of its worker's.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{ContentReader, Ctl, TestServer, IO_TIMEOUT};

const SESSIONS: usize = 200;

/// Bound on setting every session up, and on the transfers once released.
const PHASE_TIMEOUT: Duration = Duration::from_secs(90);

/// Bytes the data loop moves per transfer per pass.
const SLICE: usize = 16 * 1024;

/// A distinct size for each session, from 1 MiB to about 1.2 MiB, none a multiple of the chunk size.
fn size_of(i: usize) -> u64 {
    (1 << 20) + (i as u64) * 1031 + 17
}

/// Even sessions download, odd ones upload.
fn is_download(i: usize) -> bool {
    i.is_multiple_of(2)
}

fn seed_of(i: usize) -> u64 {
    1000 + i as u64
}

/// The server's temporary upload files in `root`.
fn part_files(root: &Path) -> BTreeSet<String> {
    fs::read_dir(root)
        .expect("listing the root")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ftpupload") && n.ends_with(".part"))
        .collect()
}

/// A session set up as far as it goes without a data connection.
struct Armed {
    session: usize,
    /// The server's loop that runs this session (from STAT's `Worker N of M`).
    worker: usize,
    ctl: Ctl,
    pasv: SocketAddr,
    /// Uploads: the server's temporary file for this upload.
    part: Option<PathBuf>,
}

/// Logs in and opens a passive listener; an upload also sends STOR, which the server parks until the client
/// connects. NOOP is answered at once even with a transfer pending, and only after the command was handled.
fn arm(i: usize, addr: SocketAddr, root: &Path, stor_lock: &Mutex<()>) -> Armed {
    let mut ctl = Ctl::connect(addr);
    ctl.login();
    let status = ctl.expect("STAT", 211);
    let worker = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("Worker ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no worker in STAT: {status}"));
    ctl.expect("TYPE I", 200);
    let pasv = ctl.pasv();
    if is_download(i) {
        // RETR waits for the release (see `release_downloads`).
        return Armed { session: i, worker, ctl, pasv, part: None };
    }
    // One STOR at a time, so the temporary file that appears is this session's.
    let _one = stor_lock.lock().unwrap_or_else(|p| p.into_inner());
    let before = part_files(root);
    ctl.send(&format!("STOR up-{i}.bin"));
    ctl.send("NOOP");
    assert_eq!(ctl.reply().0, 200, "NOOP after STOR up-{i}.bin");
    let new: Vec<String> = part_files(root).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "STOR up-{i}.bin created {new:?}");
    Armed { session: i, worker, ctl, pasv, part: Some(root.join(&new[0])) }
}

/// Starts every download at once. A download starts when its RETR and its data connection have both arrived, and
/// alone on its loop a download at a chunk per turn sends its whole file in about a millisecond: a client thread
/// preempted between two of its RETRs (the full suite loads the machine) would let the first finish before the
/// others begin, for having started first. So the server is stopped (SIGSTOP, by its PID; every thread of it seen
/// stopped in /proc) while RETR goes to every download session, and continued after: its loops then find every RETR waiting in one poll. The replies
/// (150) are read after that.
fn release_downloads(server: &TestServer, armed: &mut [Armed]) {
    /// Continues the server however this function ends (without asserting: a panic while unwinding would abort).
    struct Stopped(u32);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").arg("-CONT").arg(self.0.to_string()).status();
        }
    }
    fn signal(which: &str, pid: u32) {
        let status = std::process::Command::new("kill").arg(which).arg(pid.to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {which} {pid}");
    }
    signal("-STOP", server.pid());
    let stopped = Stopped(server.pid());
    // A stop takes effect as each thread next enters the kernel: wait until every one of them is stopped.
    let all_stopped = || {
        let tasks = fs::read_dir(format!("/proc/{}/task", server.pid())).expect("the server's threads");
        tasks.flatten().all(|t| {
            let stat = fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the command name's closing parenthesis: T is stopped.
            stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'))
        })
    };
    assert!(crate::util::wait_until(Duration::from_secs(10), all_stopped), "the server did not stop");
    for a in armed.iter_mut().filter(|a| is_download(a.session)) {
        a.ctl.send(&format!("RETR dl-{}.bin", a.session));
    }
    drop(stopped);
    for a in armed.iter_mut().filter(|a| is_download(a.session)) {
        assert_eq!(a.ctl.reply().0, 150, "session {}: RETR", a.session);
    }
}

/// One transfer as the data loop drives it.
struct Flow {
    session: usize,
    worker: usize,
    data: TcpStream,
    /// Downloads: what must arrive. Uploads: what is sent.
    content: ContentReader,
    len: u64,
    /// Bytes received (downloads) or sent (uploads).
    moved: u64,
    /// Uploads: bytes taken from `content` but not yet written.
    pending: Vec<u8>,
    sent_all: bool,
    first_byte: Option<Instant>,
    finished: Option<Instant>,
}

impl Flow {
    /// One read or write of at most `SLICE` bytes; returns whether anything happened.
    fn step(&mut self, buf: &mut [u8], want: &mut [u8]) -> bool {
        if is_download(self.session) || self.sent_all {
            return self.step_read(buf, want);
        }
        if self.pending.is_empty() {
            let n = usize::try_from(self.len - self.moved).map_or(SLICE, |left| left.min(SLICE));
            self.pending.resize(n, 0);
            self.content.read_exact(&mut self.pending).expect("upload content");
        }
        match self.data.write(&self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
                self.moved += n as u64;
                if self.moved == self.len {
                    self.data.shutdown(Shutdown::Write).expect("ending the upload");
                    self.sent_all = true;
                }
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => false,
            Err(e) => panic!("session {}: sending after {} bytes: {e}", self.session, self.moved),
        }
    }

    /// Downloads: the next bytes, checked against the content. Uploads: the server's close once it has it all.
    fn step_read(&mut self, buf: &mut [u8], want: &mut [u8]) -> bool {
        let n = match self.data.read(buf) {
            Ok(0) => {
                if is_download(self.session) {
                    assert_eq!(self.moved, self.len, "session {}: bytes received", self.session);
                }
                self.finished = Some(Instant::now());
                return true;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => return false,
            Err(e) => panic!("session {}: reading after {} bytes: {e}", self.session, self.moved),
        };
        assert!(is_download(self.session), "session {}: the server sent data on an upload", self.session);
        if self.first_byte.is_none() {
            self.first_byte = Some(Instant::now());
        }
        assert!(self.moved + n as u64 <= self.len, "session {}: more than {} bytes", self.session, self.len);
        self.content.read_exact(&mut want[..n]).expect("expected content");
        if buf[..n] != want[..n] {
            let at = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b).unwrap_or(0);
            panic!("session {}: byte {} differs", self.session, self.moved + at as u64);
        }
        self.moved += n as u64;
        true
    }
}

/// Watches the uploads' temporary files from another thread and notes when each first holds data. A file already
/// renamed away belongs to an upload that has finished.
fn watch(parts: Vec<PathBuf>, stop: mpsc::Receiver<()>) -> Vec<Option<Instant>> {
    let mut seen: Vec<Option<Instant>> = vec![None; parts.len()];
    let mut gone = vec![false; parts.len()];
    let deadline = Instant::now() + PHASE_TIMEOUT;
    while Instant::now() < deadline && seen.iter().zip(&gone).any(|(s, g)| s.is_none() && !g) {
        for (k, part) in parts.iter().enumerate() {
            if seen[k].is_some() || gone[k] {
                continue;
            }
            match fs::metadata(part) {
                Ok(m) if m.len() > 0 => seen[k] = Some(Instant::now()),
                Ok(_) => {}
                Err(_) => gone[k] = true,
            }
        }
        if stop.recv_timeout(Duration::from_millis(1)).is_ok() {
            break;
        }
    }
    seen
}

#[test]
fn hundreds_of_simultaneous_transfers_progress_together() {
    let server = TestServer::start(&["--chunk-size", "1024", "--quantum", "1"]);
    let root = server.root().to_path_buf();
    for i in (0..SESSIONS).filter(|&i| is_download(i)) {
        let mut f = fs::File::create(root.join(format!("dl-{i}.bin"))).expect("download file");
        io::copy(&mut ContentReader::new(seed_of(i), size_of(i)), &mut f).expect("writing a download file");
    }

    // All sessions connect, log in and arm their transfers at once, one thread each.
    let stor_lock = Arc::new(Mutex::new(()));
    let (armed_tx, armed_rx) = mpsc::channel::<Armed>();
    for i in 0..SESSIONS {
        let (armed_tx, stor_lock, root, addr) = (armed_tx.clone(), stor_lock.clone(), root.clone(), server.addr());
        thread::Builder::new()
            .name(format!("session-{i}"))
            .spawn(move || {
                let armed = arm(i, addr, &root, &stor_lock);
                let _ = armed_tx.send(armed);
            })
            .expect("spawning a session thread");
    }
    drop(armed_tx);
    let mut armed: Vec<Armed> = Vec::new();
    let setup_deadline = Instant::now() + PHASE_TIMEOUT;
    while armed.len() < SESSIONS {
        let left = setup_deadline.saturating_duration_since(Instant::now());
        match armed_rx.recv_timeout(left) {
            Ok(a) => armed.push(a),
            Err(e) => panic!("only {} of {SESSIONS} sessions got ready ({e}); see the panics above", armed.len()),
        }
    }
    armed.sort_by_key(|a| a.session);
    let parts: Vec<PathBuf> = armed.iter().filter_map(|a| a.part.clone()).collect();
    assert_eq!(parts.len(), SESSIONS / 2);
    let (stop_tx, stop_rx) = mpsc::channel();
    let monitor = thread::spawn(move || watch(parts, stop_rx));

    // Release: all data connections are opened in one loop. Until the data loop runs nothing can finish: a
    // download only fills its socket buffers, an upload has not been sent a byte.
    let mut flows: Vec<Flow> = armed
        .iter()
        .map(|a| {
            let data = TcpStream::connect_timeout(&a.pasv, IO_TIMEOUT)
                .unwrap_or_else(|e| panic!("session {}: data connection: {e}", a.session));
            data.set_nonblocking(true).expect("non-blocking data connection");
            let (len, seed) = (size_of(a.session), seed_of(a.session));
            let content = ContentReader::new(seed, len);
            Flow {
                session: a.session,
                worker: a.worker,
                data,
                content,
                len,
                moved: 0,
                pending: Vec::new(),
                sent_all: false,
                first_byte: None,
                finished: None,
            }
        })
        .collect();

    release_downloads(&server, &mut armed);

    // The data loop: one read or write per unfinished transfer per pass; a pass with nothing to do waits briefly.
    let (mut buf, mut want) = (vec![0u8; SLICE], vec![0u8; SLICE]);
    let deadline = Instant::now() + PHASE_TIMEOUT;
    // Each pass starts one flow further on. In a fixed order the first flows of a pass would always be drained
    // first and so have the longest to be refilled before the next pass: they would run ahead by the client's
    // doing, however fairly the server shared its turns.
    for pass in 0.. {
        let mut progressed = false;
        let mut open = 0;
        let n = flows.len();
        for k in (0..n).map(|j| (j + pass) % n) {
            if flows[k].finished.is_some() {
                continue;
            }
            open += 1;
            progressed |= flows[k].step(&mut buf, &mut want);
        }
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} transfers still running after {PHASE_TIMEOUT:?}");
        if !progressed {
            thread::sleep(Duration::from_micros(200));
        }
    }
    let _ = stop_tx.send(());
    let upload_progress = monitor.join().expect("monitor");

    // Every transfer ended with 150 (downloads': read at the release) then 226, every upload landed byte-exact, no
    // temporary file is left.
    for a in &mut armed {
        let i = a.session;
        if !is_download(i) {
            assert_eq!(a.ctl.reply().0, 150, "session {i}");
        }
        let (code, text) = a.ctl.reply();
        assert_eq!(code, 226, "session {i}: {text}");
        a.ctl.expect("QUIT", 221);
    }
    for i in (0..SESSIONS).filter(|&i| !is_download(i)) {
        let path = root.join(format!("up-{i}.bin"));
        let mut stored = fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut expected = ContentReader::new(seed_of(i), size_of(i));
        let (mut got, mut want) = (Vec::new(), Vec::new());
        stored.read_to_end(&mut got).expect("reading an upload");
        expected.read_to_end(&mut want).expect("expected content");
        assert!(got == want, "up-{i}.bin differs from what was sent ({} bytes stored)", got.len());
    }
    assert!(part_files(&root).is_empty(), "temporary files left: {:?}", part_files(&root));

    // The fairness criterion (see the module comment), per worker.
    let release = flows.iter().filter_map(|f| f.first_byte).chain(upload_progress.iter().flatten().copied()).min();
    let release = release.expect("some progress");
    let ms = |t: Instant| t.saturating_duration_since(release).as_millis();
    let mut first_finish: HashMap<usize, Instant> = HashMap::new();
    for f in &flows {
        let at = f.finished.expect("every transfer finished");
        first_finish.entry(f.worker).and_modify(|first| *first = (*first).min(at)).or_insert(at);
    }
    let mut late: Vec<String> = Vec::new();
    for f in flows.iter().filter(|f| is_download(f.session)) {
        let start = f.first_byte.expect("a download received bytes");
        if start > first_finish[&f.worker] {
            late.push(format!("download {} (worker {}) started at {} ms", f.session, f.worker, ms(start)));
        }
    }
    let uploads: Vec<&Flow> = flows.iter().filter(|f| !is_download(f.session)).collect();
    for (f, seen) in uploads.iter().zip(&upload_progress) {
        // Not seen on disk at all means the upload had finished before the monitor looked; that counts as
        // progress only for the first transfer to finish.
        let start = seen.or(f.finished).expect("an upload finished");
        if start > first_finish[&f.worker] {
            late.push(format!("upload {} (worker {}) started at {} ms", f.session, f.worker, ms(start)));
        }
    }
    let last_finish = flows.iter().filter_map(|f| f.finished).max().expect("finishes");
    let last_start = flows.iter().filter_map(|f| f.first_byte).chain(upload_progress.iter().flatten().copied()).max();
    let mut firsts: Vec<(usize, u128, String)> = first_finish
        .iter()
        .map(|(w, t)| {
            let who = flows.iter().find(|f| f.worker == *w && f.finished == Some(*t)).expect("the first to finish");
            let kind = if is_download(who.session) { "download" } else { "upload" };
            (*w, ms(*t), format!("{kind} {}", who.session))
        })
        .collect();
    firsts.sort_unstable();
    eprintln!(
        "{SESSIONS} sessions, in ms after the first progress: last transfer started {}, first finished per worker \
         {firsts:?}, last {}",
        last_start.map_or(0, ms),
        ms(last_finish)
    );
    // Stronger still, by the server's log: on each loop the first download sent completely took at least a quarter
    // as long as the last.
    let spans = download_spans(&server.log());
    assert_eq!(spans.len(), SESSIONS / 2, "a log line for every download");
    let mut behind: Vec<String> = Vec::new();
    for worker in spans.iter().map(|s| s.worker).collect::<BTreeSet<_>>() {
        let on: Vec<&Span> = spans.iter().filter(|s| s.worker == worker).collect();
        let origin = on.iter().map(|s| s.start).min().expect("a download");
        let first = on.iter().min_by_key(|s| s.end).expect("a download");
        let last = on.iter().max_by_key(|s| s.end).expect("a download");
        let (first_ms, last_ms) = (first.end - origin, last.end - origin);
        eprintln!(
            "worker {worker}, server side: {} downloads; the first sent completely ({}) took {first_ms} ms, the last \
             ({}) {last_ms} ms",
            on.len(),
            first.file,
            last.file
        );
        if first_ms * 4 < last_ms {
            behind
                .push(format!("worker {worker}: {} done at {first_ms} ms, {} at {last_ms} ms", first.file, last.file));
        }
    }
    assert!(
        late.is_empty(),
        "{} transfers made no progress before the first of their worker finished ({firsts:?} ms): {late:?}",
        late.len()
    );
    assert!(
        behind.is_empty(),
        "a download was sent in less than a quarter of the time of the last on its loop: {behind:?}"
    );
}

/// One download as the server's transfer log tells it, in milliseconds since 1970 (UTC).
struct Span {
    worker: usize,
    file: String,
    start: i64,
    end: i64,
}

/// The downloads in the server's log: `[2026-12-02T07:50:11.856Z INFO  worker-1] 127.0.0.1 "anonymous" RETR
/// "/dl-74.bin" 1124887 bytes 0.222 s ok`, logged as the transfer ends.
fn download_spans(log: &str) -> Vec<Span> {
    let parse = |line: &str| -> Option<Span> {
        let (head, rest) = line.strip_prefix('[')?.split_once(']')?;
        let (date, clock) = head.split_once('T')?;
        let clock = clock.split('Z').next()?;
        let mut ymd = date.split('-').map(|n| n.parse::<i64>().ok());
        let (y, mo, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
        let mut hms = clock.split(':');
        let (h, m, sec): (i64, i64, f64) =
            (hms.next()?.parse().ok()?, hms.next()?.parse().ok()?, hms.next()?.parse().ok()?);
        // Whole days too, so a run across midnight still orders its ends.
        let end = ((days_from_civil(y, mo, d) * 24 + h) * 3600 + m * 60) * 1000 + (sec * 1000.0).round() as i64;
        let worker = head.rsplit_once("worker-")?.1.trim().parse().ok()?;
        let (_, after) = rest.split_once(" RETR \"")?;
        let (file, after) = after.split_once('"')?;
        let words: Vec<&str> = after.split_whitespace().collect();
        let secs: f64 = match words.as_slice() {
            [_, "bytes", secs, "s", "ok"] => secs.parse().ok()?,
            _ => return None,
        };
        let start = end - (secs * 1000.0).round() as i64;
        Some(Span { worker, file: file.trim_start_matches('/').to_string(), start, end })
    };
    log.lines().filter_map(parse).filter(|s| s.file.starts_with("dl-")).collect()
}

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d` (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
