//! Fuzzes the server's `Session` as the loop drives it: a fuzzed script of control lines, outcomes of the actions
//! it asked for (transfers and HASH jobs really run, against an in-memory socket) and clock steps, over a fresh
//! temporary root holding files, directories and symbolic links that lead out of it.
//!
//! Input: one byte of settings (anonymous access, read-only, TLS, a users file, PASV address, an IPv4-mapped
//! peer), then lines separated by LF. A line is a command line unless its first byte is one of:
//! 0x01 an outcome (the next byte picks which, the rest is its parameter; passive listeners are bound at once, as
//! the loop does, and this only says whether they fail), 0x02 a clock step (the next byte picks
//! how far: small steps, each configured timeout, exactly the offered deadline or just before it), 0x03 a line
//! over the length limit, 0x04 shutdown (then, if the next byte is odd, the end of its grace).
//!
//! Invariants, checked after every step: no panic; every line is answered or deferred (a session that is not
//! busy and not closing has answered every line it was given); nothing outside the
//! root changes, and nothing outside it is read, sized, hashed or listed; a connect action goes only to the
//! client's address and never to a port below 1024; after `handle_timeout` the next deadline is in the future
//! (the livelock class); a session that is neither busy nor closing has an idle deadline within the idle timeout.
#![no_main]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Cursor, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ftp_common::{Line, Reply, MAX_LINE};
use ftp_server::access::{Access, Anonymous};
use ftp_server::fs::Root;
use ftp_server::hash::{HashJob, HashStep};
use ftp_server::session::{canonical, Action, Now, Outcome, Session};
use ftp_server::transfer::{scratch_len, Step, Transfer, TransferError};
use ftp_server::SessionConfig;
use libfuzzer_sys::fuzz_target;

/// The size of the file outside the root. No upload can make a file this large (inputs are at most 16 KiB), so a
/// size, a hash or a download of this many bytes can only come from it.
const OUTSIDE_SIZE: usize = 100_000;

/// Any syntactically valid PHC string: the harness answers password checks itself.
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObGDHR9Y7tmdsg";

/// `SESSION_TRACE=1` prints every step, reply and action (to replay a crash: run the target on its file).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("SESSION_TRACE").is_some())
}

/// Bytes a transfer moves per step: small, so line ends and CRs fall on step edges.
const SHARE: usize = 7;

/// Steps a transfer or HASH job may take before it must have finished.
const MAX_STEPS: usize = 100_000;

/// A directory outside every root, made once per process: a file of random bytes and a subdirectory.
struct Outside {
    dir: tempfile::TempDir,
    content: Vec<u8>,
    snapshot: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

fn outside() -> &'static Outside {
    static OUTSIDE: OnceLock<Outside> = OnceLock::new();
    OUTSIDE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("outside dir");
        let state = RandomState::new();
        let content: Vec<u8> = (0..OUTSIDE_SIZE / 8)
            .flat_map(|i| {
                let mut h = state.build_hasher();
                h.write_usize(i);
                h.finish().to_le_bytes()
            })
            .collect();
        std::fs::write(dir.path().join("secret"), &content).expect("secret");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        let snapshot = snapshot(dir.path());
        Outside { dir, content, snapshot }
    })
}

/// Every entry under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                todo.push(e.path());
            }
            out.push((e.path(), if meta.is_dir() { 0 } else { meta.len() }, meta.modified().ok()));
        }
    }
    out.sort();
    out
}

/// A fresh server root: files and directories, and symbolic links out of it (absolute and relative).
fn make_root(base: &Path, outside: &Path, users: bool) -> Option<PathBuf> {
    let root = base.join("root");
    std::fs::create_dir_all(root.join("pub/sub")).ok()?;
    std::fs::create_dir_all(root.join("home")).ok()?;
    std::fs::write(root.join("pub/a.txt"), b"line one\nline two\r\n").ok()?;
    std::fs::write(root.join("home/notes"), b"x").ok()?;
    std::os::unix::fs::symlink(outside, root.join("escape")).ok()?;
    std::os::unix::fs::symlink(outside.join("secret"), root.join("pub/secret-link")).ok()?;
    std::os::unix::fs::symlink("../../../..", root.join("home/up")).ok()?;
    if users {
        let text = format!(
            "[[user]]\nname = \"alice\"\npassword = \"{HASH}\"\nhome = \"home\"\n\
             permissions = [\"read\", \"write\", \"delete\", \"mkdir\", \"rename\"]\n"
        );
        std::fs::write(base.join("users.toml"), text).ok()?;
    }
    Some(root)
}

/// A data connection: reads come from `input`, writes are kept.
struct Socket {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A listing line (MLSD facts or `ls -l` columns) or a reply line that shows the outside file's size.
fn shows_outside_size(line: &str) -> bool {
    let size = OUTSIDE_SIZE.to_string();
    let facts = line.split_once("; ").map_or("", |(f, _)| f);
    facts.split(';').any(|f| f.eq_ignore_ascii_case(&format!("size={size}")))
        || line.split_whitespace().nth(4) == Some(size.as_str())
        || line.trim() == size
}

struct Harness {
    s: Session,
    now: Now,
    peer: SocketAddr,
    idle_timeout: Duration,
    config: Rc<SessionConfig>,
    transfers: Vec<Box<Transfer>>,
    hashes: Vec<Box<HashJob>>,
    /// Whether the next passive listener fails to bind.
    passive_fails: bool,
    /// Passive listeners bound so far (each gets its own port).
    ports: u16,
    lines_given: usize,
    /// Replies that end a command (not 1xx, not the greeting).
    final_replies: usize,
}

impl Harness {
    /// Collects the session's output and carries out its actions as the loop does: a passive listener is bound and
    /// a storage request carried out at once, the session told before it sees another line; everything else
    /// answers later, when the input says.
    fn drain(&mut self) {
        loop {
            while let Some(reply) = self.s.poll_reply() {
                if tracing() {
                    eprintln!("  <- {reply}");
                }
                self.check_reply(&reply);
            }
            let Some(action) = self.s.poll_action() else { break };
            if tracing() {
                eprintln!("  action {action:?}");
            }
            match action {
                Action::ListenPassive => {
                    self.ports += 1;
                    let outcome = if self.passive_fails {
                        Outcome::PassiveFailed(io::ErrorKind::AddrInUse.into())
                    } else {
                        Outcome::PassiveReady(SocketAddr::from(([127, 0, 0, 1], 40_000 + self.ports % 20_000)))
                    };
                    self.s.handle_outcome(self.now, outcome);
                }
                Action::ConnectActive(addr) => {
                    assert_eq!(canonical(addr.ip()), canonical(self.peer.ip()), "connect to {addr}");
                    assert!(addr.port() >= 1024, "connect to privileged port {addr}");
                }
                Action::Storage(request) => {
                    if let Some(done) = ftp_server::storage::run(request) {
                        self.s.handle_outcome(self.now, Outcome::Storage(done));
                    }
                }
                Action::StartTransfer { transfer, .. } => self.transfers.push(transfer),
                Action::StartHash(job) => self.hashes.push(job),
                Action::CloseData => self.transfers.clear(),
                Action::StopHash => self.hashes.clear(),
                Action::StartTls
                | Action::VerifyPassword { .. }
                | Action::Close
                | Action::Offence(_)
                | Action::Event(_) => {}
            }
        }
    }

    fn check_reply(&mut self, reply: &Reply) {
        assert!((100..=599).contains(&reply.code), "{reply:?}");
        if reply.code >= 200 {
            self.final_replies += 1;
        }
        for line in &reply.lines {
            assert!(!shows_outside_size(line), "outside file shown: {reply:?}");
        }
    }

    fn check_state(&mut self) {
        if self.s.is_busy() || self.s.is_closing() {
            return;
        }
        let Some(at) = self.s.poll_timeout() else { panic!("a session that is not busy has no idle deadline") };
        assert!(at <= self.now.mono + self.idle_timeout, "idle deadline beyond the idle timeout");
        assert!(self.final_replies >= self.lines_given, "{} lines, {} answers", self.lines_given, self.final_replies);
    }

    fn line(&mut self, line: Line) {
        if !self.s.wants_input() {
            // The loop stops reading: the line stays in the socket.
            return;
        }
        self.lines_given += 1;
        self.s.handle_line(self.now, line);
    }

    fn advance(&mut self, how: u8) {
        let c = &self.config;
        let step = match how % 12 {
            0 => Duration::from_millis(1),
            1 => Duration::from_secs(1),
            2 => c.data_timeout,
            3 => c.login_failure_delay,
            4 => c.login_timeout,
            5 => c.idle_timeout,
            6 => Duration::from_secs(10),
            7 => Duration::from_secs(3600),
            // Exactly the offered deadline, just before it, and just after it.
            8..=10 => match self.s.poll_timeout() {
                Some(at) => {
                    let to = at.saturating_duration_since(self.now.mono);
                    match how % 12 {
                        8 => to,
                        9 => to.saturating_sub(Duration::from_nanos(1)),
                        _ => to + Duration::from_nanos(1),
                    }
                }
                None => Duration::ZERO,
            },
            _ => Duration::ZERO,
        };
        self.now = Now { mono: self.now.mono + step, wall: self.now.wall + step };
        // The loop calls handle_timeout when the offered instant has passed (and once spuriously, for step 11).
        let due = self.s.poll_timeout().is_some_and(|at| at <= self.now.mono);
        if due || how % 12 == 11 {
            self.s.handle_timeout(self.now);
            if let Some(at) = self.s.poll_timeout() {
                assert!(
                    at > self.now.mono,
                    "deadline {at:?} offered again at {:?} after handle_timeout",
                    self.now.mono
                );
            }
        }
    }

    fn outcome(&mut self, kind: u8, param: &[u8]) {
        let p = param.first().copied().unwrap_or(0);
        let outcome = match kind % 12 {
            // Unasked for: the loop answers ListenPassive at once (see drain).
            0 => Outcome::PassiveReady(SocketAddr::from(([127, 0, 0, 1], 1024 + u16::from(p) * 200))),
            1 => {
                // Not an outcome: whether the next passive listeners fail to bind.
                self.passive_fails = p & 1 == 1;
                return;
            }
            2 => Outcome::DataConnected,
            3 => Outcome::ActiveFailed(io::ErrorKind::ConnectionRefused.into()),
            4 => match self.transfers.pop() {
                Some(t) => self.run_transfer(t, param),
                None => Outcome::TransferDone { bytes: 0 },
            },
            5 => Outcome::TransferDone { bytes: u64::from(p) },
            6 => Outcome::TransferFailed { bytes: 1, error: TransferError::Network(io::ErrorKind::BrokenPipe.into()) },
            7 => Outcome::TransferFailed { bytes: 0, error: TransferError::Local(io::ErrorKind::StorageFull.into()) },
            8 => match self.hashes.pop() {
                Some(job) => self.run_hash(job),
                None => Outcome::HashFailed(io::ErrorKind::NotFound.into()),
            },
            9 => Outcome::HashFailed(io::ErrorKind::PermissionDenied.into()),
            10 => Outcome::Verified(p & 1 == 1),
            _ => Outcome::VerifierBusy,
        };
        self.s.handle_outcome(self.now, outcome);
    }

    /// Runs a transfer to its end, as the loop would; an upload receives `data`.
    fn run_transfer(&mut self, mut t: Box<Transfer>, data: &[u8]) -> Outcome {
        let mut socket = Socket { input: Cursor::new(data.to_vec()), output: Vec::new() };
        let mut scratch = vec![0; scratch_len(SHARE)];
        for _ in 0..MAX_STEPS {
            match t.step(&mut socket, SHARE, &mut scratch) {
                Step::Yield | Step::Blocked => {}
                Step::Done => break,
                Step::Failed(error) => return Outcome::TransferFailed { bytes: t.bytes(), error },
            }
        }
        let out = &socket.output;
        let marker = &outside().content[..32];
        assert!(!(out.len() >= OUTSIDE_SIZE && out.windows(32).any(|w| w == marker)), "outside file downloaded");
        for line in String::from_utf8_lossy(out).lines() {
            assert!(!shows_outside_size(line), "outside file listed: {line:?}");
        }
        Outcome::TransferDone { bytes: t.bytes() }
    }

    fn run_hash(&mut self, mut job: Box<HashJob>) -> Outcome {
        for _ in 0..MAX_STEPS {
            match job.step(64 * 1024) {
                HashStep::More => {}
                HashStep::Done { hex, size } => {
                    assert_ne!(size, OUTSIDE_SIZE as u64, "outside file hashed");
                    return Outcome::HashDone { hex, size };
                }
                HashStep::Failed(e) => return Outcome::HashFailed(e),
            }
        }
        panic!("HASH job not done after {MAX_STEPS} steps");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&settings, script)) = data.split_first() else { return };
    let outside = outside();
    let Ok(base) = tempfile::tempdir() else { return };
    let users = settings & 0x20 != 0;
    let Some(root_path) = make_root(base.path(), outside.dir.path(), users) else { return };
    let Ok(root) = Root::open(&root_path) else { return };
    let root = Rc::new(root);
    let anonymous = [Anonymous::Off, Anonymous::Read, Anonymous::Write, Anonymous::Write][usize::from(settings & 3)];
    let read_only = settings & 4 != 0;
    let access = if users {
        match Access::load(&root_path, root, anonymous, read_only, &base.path().join("users.toml"), false) {
            Ok(a) => a,
            Err(e) => panic!("users file: {}", e.0),
        }
    } else {
        Access::anonymous_only(root, anonymous, read_only)
    };
    let config = Rc::new(SessionConfig {
        idle_timeout: Duration::from_secs(60),
        data_timeout: Duration::from_secs(5),
        login_timeout: Duration::from_secs(30),
        max_login_failures: 2,
        login_failure_delay: Duration::from_secs(1),
        pasv_address: (settings & 0x40 != 0).then(|| [203, 0, 113, 9].into()),
        tls: settings & 8 != 0,
        require_tls: settings & 0x18 == 0x18,
        events: true,
    });
    let peer: SocketAddr =
        if settings & 0x80 != 0 { "[::ffff:127.0.0.1]:40000" } else { "127.0.0.1:40000" }.parse().expect("peer");
    let now = Now { mono: Instant::now(), wall: UNIX_EPOCH + Duration::from_secs(1_704_164_645) };
    let session = Session::new(1, peer, "127.0.0.1:21".parse().expect("local"), Rc::new(access), config.clone(), now);
    let mut h = Harness {
        s: session,
        now,
        peer,
        idle_timeout: config.idle_timeout,
        config,
        transfers: Vec::new(),
        hashes: Vec::new(),
        passive_fails: false,
        ports: 0,
        lines_given: 0,
        final_replies: 0,
    };
    h.drain();
    // The greeting answers no line.
    h.final_replies = 0;

    for op in script.split(|&b| b == b'\n') {
        let op = op.strip_suffix(b"\r").unwrap_or(op);
        if tracing() {
            eprintln!("{:?}", String::from_utf8_lossy(op));
        }
        match op {
            [1, kind, param @ ..] => h.outcome(*kind, param),
            [2, how, ..] => h.advance(*how),
            [3, ..] => h.line(Line::TooLong),
            [4, rest @ ..] => {
                h.s.handle_shutdown(h.now);
                if rest.first().is_some_and(|b| b & 1 == 1) {
                    h.s.handle_shutdown_expired(h.now);
                }
            }
            text if text.len() > MAX_LINE => h.line(Line::TooLong),
            text => h.line(Line::Text(text.to_vec())),
        }
        h.drain();
        h.check_state();
    }
    drop(h);
    assert_eq!(snapshot(outside.dir.path()), outside.snapshot, "something outside the root changed");
});
