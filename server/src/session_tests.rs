//! Session tests without sockets: a fixture per state, time injected, transfers run against in-memory sockets.

use super::*;
use crate::access::{Access, Anonymous};
use crate::transfer::Step;
use std::io::{Cursor, Read, Write};
use std::path::Path;

// ---- harness ---------------------------------------------------------------------------------------------------

pub(super) struct T {
    pub(super) s: Session,
    pub(super) now: Now,
    dir: tempfile::TempDir,
    /// Actions other than storage requests, as the session asked for them.
    stash: Vec<Action>,
}

pub(super) fn config() -> SessionConfig {
    SessionConfig {
        idle_timeout: Duration::from_secs(60),
        data_timeout: Duration::from_secs(5),
        login_timeout: Duration::from_secs(30),
        max_login_failures: 2,
        login_failure_delay: Duration::from_secs(1),
        pasv_address: None,
        tls: false,
        require_tls: false,
        events: false,
    }
}

pub(super) fn session_with(dir: &Path, anonymous: Anonymous, read_only: bool, now: Now) -> Session {
    let root = Rc::new(crate::fs::Root::open(dir).unwrap());
    let access = Rc::new(Access::anonymous_only(root, anonymous, read_only));
    Session::new(1, peer(), "127.0.0.1:21".parse().unwrap(), access, Rc::new(config()), now)
}

impl T {
    pub(super) fn new(s: Session, now: Now, dir: tempfile::TempDir) -> T {
        T { s, now, dir, stash: Vec::new() }
    }

    /// Carries out the session's storage requests as the loop does (at once, on the local disk), answering each
    /// before the next is looked at; keeps every other action for [`T::actions`].
    pub(super) fn settle(&mut self) {
        while let Some(action) = self.s.poll_action() {
            match action {
                Action::Storage(request) => {
                    if let Some(done) = crate::storage::run(request) {
                        self.s.handle_outcome(self.now, Outcome::Storage(done));
                    }
                }
                other => self.stash.push(other),
            }
        }
    }

    pub(super) fn root(&self) -> &Path {
        self.dir.path()
    }

    #[track_caller]
    pub(super) fn line(&mut self, l: &str) -> Vec<u16> {
        self.s.handle_line(self.now, Line::Text(l.as_bytes().to_vec()));
        self.codes()
    }

    pub(super) fn raw(&mut self, l: &[u8]) -> Vec<u16> {
        self.s.handle_line(self.now, Line::Text(l.to_vec()));
        self.codes()
    }

    /// The next reply, once the storage has answered.
    pub(super) fn reply(&mut self) -> Option<Reply> {
        self.settle();
        self.s.poll_reply()
    }

    pub(super) fn codes(&mut self) -> Vec<u16> {
        self.settle();
        std::iter::from_fn(|| self.s.poll_reply()).map(|r| r.code).collect()
    }

    pub(super) fn texts(&mut self) -> Vec<String> {
        self.settle();
        std::iter::from_fn(|| self.s.poll_reply()).map(|r| format!("{} {}", r.code, r.text())).collect()
    }

    pub(super) fn actions(&mut self) -> Vec<Action> {
        self.settle();
        std::mem::take(&mut self.stash)
    }

    pub(super) fn outcome(&mut self, o: Outcome) -> Vec<u16> {
        self.s.handle_outcome(self.now, o);
        self.codes()
    }

    pub(super) fn advance(&mut self, d: Duration) {
        self.now = Now { mono: self.now.mono + d, wall: self.now.wall + d };
    }

    pub(super) fn timeout(&mut self) -> Vec<u16> {
        self.s.handle_timeout(self.now);
        self.codes()
    }

    /// The transfer the session asked the loop to start.
    #[track_caller]
    pub(super) fn started(&mut self) -> Box<Transfer> {
        let mut found = None;
        for a in self.actions() {
            if let Action::StartTransfer { transfer: t, .. } = a {
                found = Some(t);
            }
        }
        found.expect("no StartTransfer action")
    }
}

/// An in-memory data socket: reads come from `input`, writes collect in `output`.
struct MemSocket {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for MemSocket {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        self.input.read(b)
    }
}

impl Write for MemSocket {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs a transfer to its end against an in-memory socket holding `input`; returns what it sent.
pub(super) fn run(t: &mut Transfer, input: &[u8]) -> Vec<u8> {
    let mut sock = MemSocket { input: Cursor::new(input.to_vec()), output: Vec::new() };
    // Odd small shares, so conversions and leftovers cross step boundaries.
    let mut scratch = vec![0; crate::transfer::scratch_len(7)];
    for _ in 0..1_000_000 {
        match t.step(&mut sock, 7, &mut scratch) {
            Step::Done => return sock.output,
            Step::Failed(e) => panic!("{e:?}"),
            Step::Yield | Step::Blocked => {}
        }
    }
    panic!("transfer never finished");
}

fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

// ---- fixtures, one per state -----------------------------------------------------------------------------------

/// Connected, greeted, not logged in.
pub(super) fn fresh() -> T {
    fresh_with(config())
}

/// Like [`fresh`], with its own settings (TLS, limits).
pub(super) fn fresh_with(config: SessionConfig) -> T {
    let dir = tempfile::tempdir().unwrap();
    let now = Now::from_system();
    let root = Rc::new(crate::fs::Root::open(dir.path()).unwrap());
    let access = Rc::new(Access::anonymous_only(root, Anonymous::Write, false));
    let s = Session::new(1, peer(), "127.0.0.1:21".parse().unwrap(), access, Rc::new(config), now);
    let mut t = T::new(s, now, dir);
    assert_eq!(t.codes(), vec![220]);
    t
}

/// Logged in anonymously at `/`, with a file `a.txt` ("hello\nworld\n") and a directory `sub`.
pub(super) fn logged_in() -> T {
    let mut t = fresh();
    std::fs::write(t.root().join("a.txt"), b"hello\nworld\n").unwrap();
    std::fs::create_dir(t.root().join("sub")).unwrap();
    assert_eq!(t.line("USER anonymous"), vec![331]);
    assert_eq!(t.line("PASS guest@"), vec![230]);
    t
}

/// Logged in with a passive listener open (PASV answered 227), no connection yet.
pub(super) fn passive() -> T {
    let mut t = logged_in();
    assert_eq!(t.line("PASV"), Vec::<u16>::new());
    assert!(matches!(t.actions().as_slice(), [Action::ListenPassive]));
    assert_eq!(t.outcome(Outcome::PassiveReady("127.0.0.1:5001".parse().unwrap())), vec![227]);
    t
}

/// Logged in with the data connection established and idle.
pub(super) fn connected() -> T {
    let mut t = passive();
    assert_eq!(t.outcome(Outcome::DataConnected), Vec::<u16>::new());
    t
}

// ---- not logged in ---------------------------------------------------------------------------------------------

// Commands that need a login get 530 before it; discovery commands work (lftp sends FEAT first).
#[test]
fn login_required_before_use() {
    let mut t = fresh();
    for cmd in ["PWD", "LIST", "RETR a", "CWD /", "PASV", "STOR x", "MKD d"] {
        assert_eq!(t.line(cmd), vec![530], "{cmd}");
    }
    for (cmd, code) in [("FEAT", 211), ("SYST", 215), ("NOOP", 200), ("HELP", 214), ("OPTS UTF8 ON", 200)] {
        assert_eq!(t.line(cmd), vec![code], "{cmd}");
    }
}

// A malformed command that needs a login still gets 530, not a hint about its syntax.
#[test]
fn malformed_login_command_before_login_is_530() {
    let mut t = fresh();
    assert_eq!(t.line("RETR"), vec![530]);
    assert_eq!(t.line("FROB"), vec![500]);
}

/// Answers the session's password check as the verifier thread would.
fn verify(t: &mut T, ok: bool) -> Vec<u16> {
    // A failed login before counts as an offence (for bans); that is not the check asked for.
    let acts: Vec<Action> = t.actions().into_iter().filter(|a| !matches!(a, Action::Offence(_))).collect();
    assert!(matches!(acts.as_slice(), [Action::VerifyPassword { .. }]), "{acts:?}");
    t.outcome(Outcome::Verified(ok))
}

// USER answers 331 whatever the name, so replies never reveal which accounts exist; a failed login waits for a
// timer before its 530, the same for an unknown user as for a wrong password.
#[test]
fn user_always_331_and_failures_are_delayed() {
    let mut t = fresh();
    assert_eq!(t.line("USER root"), vec![331]);
    assert_eq!(t.line("PASS secret"), Vec::<u16>::new());
    assert_eq!(verify(&mut t, true), Vec::<u16>::new(), "an unknown user must fail even if a hash matched");
    assert!(t.s.is_busy());
    assert_eq!(t.line("NOOP"), vec![200], "NOOP is answered while the 530 waits");
    assert_eq!(t.line("USER x"), Vec::<u16>::new(), "commands wait behind the failed login");
    t.advance(Duration::from_millis(999));
    assert_eq!(t.timeout(), Vec::<u16>::new());
    t.advance(Duration::from_millis(1));
    // The 530, then the USER that waited behind it runs at once.
    assert_eq!(t.timeout(), vec![530, 331]);
    let after: Vec<u16> = t.codes();
    assert!(after.is_empty());
}

// After the maximum number of failures: 530, then 421 and a close.
// Found by fuzzing (session): a password check's answer that came when none was running reset the login, so the
// failed PASS waiting out its delay was never answered.
#[test]
fn stray_verifier_answers_leave_the_login_alone() {
    let mut t = fresh();
    assert_eq!(t.line("USER nobody"), vec![331]);
    assert_eq!(t.line("PASS x"), Vec::<u16>::new());
    assert_eq!(verify(&mut t, false), Vec::<u16>::new());
    assert_eq!(t.outcome(Outcome::Verified(false)), Vec::<u16>::new());
    assert_eq!(t.outcome(Outcome::VerifierBusy), Vec::<u16>::new());
    t.advance(Duration::from_secs(1));
    assert_eq!(t.timeout(), vec![530]);
}

#[test]
fn too_many_failures_close() {
    let mut t = fresh();
    for round in 0..2 {
        t.line("USER nobody");
        t.line("PASS wrong");
        verify(&mut t, false);
        t.advance(Duration::from_secs(1));
        let codes = t.timeout();
        if round == 0 {
            assert_eq!(codes, vec![530]);
        } else {
            assert_eq!(codes, vec![530, 421]);
            assert!(t.s.is_closing());
        }
    }
}

#[test]
fn anonymous_any_password_logs_in_at_once() {
    let mut t = fresh();
    assert_eq!(t.line("USER ftp"), vec![331]);
    assert_eq!(t.line("PASS"), vec![230]);
    assert!(t.actions().is_empty(), "anonymous logins need no password check");
}

#[test]
fn pass_without_user_is_bad_sequence() {
    let mut t = fresh();
    assert_eq!(t.line("PASS x"), vec![503]);
}

// With anonymous access off, `anonymous` is an unknown user like any other.
#[test]
fn anonymous_disabled() {
    let mut t = fresh();
    t.s = session_with(t.root(), Anonymous::Off, false, t.now);
    t.codes();
    t.line("USER anonymous");
    assert_eq!(t.line("PASS x"), Vec::<u16>::new());
    verify(&mut t, true);
    t.advance(Duration::from_secs(1));
    assert_eq!(t.timeout(), vec![530]);
}

// --anonymous read and --read-only: reading works, every change is refused with 550.
#[test]
fn read_only_access() {
    for (anonymous, read_only) in [(Anonymous::Read, false), (Anonymous::Write, true)] {
        let mut t = fresh();
        std::fs::write(t.root().join("a.txt"), b"x").unwrap();
        t.s = session_with(t.root(), anonymous, read_only, t.now);
        t.codes();
        t.line("USER anonymous");
        assert_eq!(t.line("PASS x"), vec![230]);
        for cmd in ["DELE a.txt", "MKD d", "RMD d", "RNFR a.txt", "MFMT 20200101000000 a.txt"] {
            assert_eq!(t.line(cmd), vec![550], "{cmd}");
        }
        t.line("PASV");
        t.actions();
        t.outcome(Outcome::PassiveReady("127.0.0.1:5000".parse().unwrap()));
        for cmd in ["STOR x", "APPE a.txt", "STOU"] {
            assert_eq!(t.line(cmd), vec![550], "{cmd}");
        }
        assert_eq!(t.line("SIZE a.txt"), vec![213]);
        assert_eq!(t.line("RETR a.txt"), Vec::<u16>::new(), "RETR waits for the data connection");
        assert!(t.root().join("a.txt").exists());
    }
}

// A session that never logs in is closed after the login timeout.
#[test]
fn login_timeout() {
    let mut t = fresh();
    assert_eq!(t.s.poll_timeout(), Some(t.now.mono + Duration::from_secs(30)));
    t.advance(Duration::from_secs(30));
    assert_eq!(t.timeout(), vec![421]);
    assert!(t.s.is_closing());
}

// ---- logged in -------------------------------------------------------------------------------------------------

#[test]
fn unknown_unimplemented_and_malformed() {
    let mut t = logged_in();
    assert_eq!(t.line("XYZZY"), vec![500]);
    assert_eq!(t.line("AUTH TLS"), vec![502]);
    assert_eq!(t.line("RETR"), vec![501]);
    assert_eq!(t.line("PWD extra"), vec![501]);
    assert_eq!(t.line("TYPE E"), vec![504]);
    assert_eq!(t.line("MODE B"), vec![504]);
    assert_eq!(t.line("STRU R"), vec![504]);
    assert_eq!(t.line("MODE S"), vec![200]);
    assert_eq!(t.line("STRU F"), vec![200]);
    assert_eq!(t.line("ALLO 100"), vec![202]);
}

// A NUL or invalid UTF-8 in an argument gets 501 and the session stays usable; nothing is truncated.
#[test]
fn nul_and_invalid_utf8_are_refused() {
    let mut t = logged_in();
    std::fs::write(t.root().join("a"), b"").unwrap();
    assert_eq!(t.raw(b"DELE a\0.txt"), vec![501]);
    assert!(t.root().join("a").exists(), "name was truncated at the NUL");
    assert_eq!(t.raw(b"DELE \xff\xfe"), vec![501]);
    assert_eq!(t.line("NOOP"), vec![200]);
}

#[test]
fn too_long_line_is_500() {
    let mut t = logged_in();
    t.s.handle_line(t.now, Line::TooLong);
    assert_eq!(t.codes(), vec![500]);
    assert_eq!(t.line("NOOP"), vec![200]);
}

#[test]
fn navigation() {
    let mut t = logged_in();
    assert_eq!(t.texts(), Vec::<String>::new());
    t.line("PWD");
    assert_eq!(t.line("CWD sub"), vec![250]);
    t.s.handle_line(t.now, Line::Text(b"PWD".to_vec()));
    assert_eq!(t.texts(), vec!["257 \"/sub\" is the current directory.".to_string()]);
    assert_eq!(t.line("CWD missing"), vec![550]);
    assert_eq!(t.line("CWD /a.txt"), vec![550]);
    assert_eq!(t.line("CDUP"), vec![200]);
    assert_eq!(t.line("CDUP"), vec![200]);
    assert_eq!(t.line("XCWD ../../.."), vec![250]);
    t.s.handle_line(t.now, Line::Text(b"XPWD".to_vec()));
    assert_eq!(t.texts(), vec!["257 \"/\" is the current directory.".to_string()]);
}

// PWD doubles quotes inside the path (RFC 959 appendix II).
#[test]
fn pwd_quotes_are_doubled() {
    let mut t = logged_in();
    std::fs::create_dir(t.root().join("say \"hi\"")).unwrap();
    t.line("CWD say \"hi\"");
    t.s.handle_line(t.now, Line::Text(b"PWD".to_vec()));
    assert_eq!(t.texts(), vec!["257 \"/say \"\"hi\"\"\" is the current directory.".to_string()]);
}

#[test]
fn file_management() {
    let mut t = logged_in();
    assert_eq!(t.line("MKD new dir"), vec![257]);
    assert!(t.root().join("new dir").is_dir());
    assert_eq!(t.line("MKD new dir"), vec![550]);
    assert_eq!(t.line("XMKD new dir/inner"), vec![257]);
    assert_eq!(t.line("RMD new dir"), vec![550], "not empty");
    assert_eq!(t.line("XRMD new dir/inner"), vec![250]);
    assert_eq!(t.line("RMD new dir"), vec![250]);
    assert_eq!(t.line("SIZE a.txt"), vec![213]);
    assert_eq!(t.line("SIZE sub"), vec![550]);
    assert_eq!(t.line("SIZE nope"), vec![550]);
    assert_eq!(t.line("DELE a.txt"), vec![250]);
    assert!(!t.root().join("a.txt").exists());
    assert_eq!(t.line("DELE a.txt"), vec![550]);
    assert_eq!(t.line("RMD /"), vec![550]);
}

// ---- data channel setup ----------------------------------------------------------------------------------------

// A transfer command with no PASV/EPSV before it gets 425 at once, not silence.
#[test]
fn transfer_without_data_channel_is_425() {
    let mut t = logged_in();
    for cmd in ["RETR a.txt", "STOR x", "LIST", "NLST"] {
        assert_eq!(t.line(cmd), vec![425], "{cmd}");
    }
    assert!(!t.root().join("x").exists());
}

#[test]
fn pasv_reply_encodes_address() {
    let mut t = logged_in();
    t.line("PASV");
    t.actions();
    t.s.handle_outcome(t.now, Outcome::PassiveReady("127.0.0.1:5001".parse().unwrap()));
    assert_eq!(t.texts(), vec!["227 Entering Passive Mode (127,0,0,1,19,137).".to_string()]);
}

#[test]
fn epsv_reply_and_epsv_all() {
    let mut t = logged_in();
    t.line("EPSV");
    t.actions();
    t.s.handle_outcome(t.now, Outcome::PassiveReady("127.0.0.1:6446".parse().unwrap()));
    assert_eq!(t.texts(), vec!["229 Entering Extended Passive Mode (|||6446|).".to_string()]);
    assert_eq!(t.line("EPSV 2"), vec![522]);
    assert_eq!(t.line("EPSV ALL"), vec![200]);
    assert_eq!(t.line("PASV"), vec![503]);
}

// A new PASV closes the previous listener before opening another.
#[test]
fn second_pasv_replaces_first() {
    let mut t = passive();
    t.line("PASV");
    assert!(matches!(t.actions().as_slice(), [Action::CloseData, Action::ListenPassive]));
}

#[test]
fn passive_failure_is_425() {
    let mut t = logged_in();
    t.line("PASV");
    t.actions();
    assert_eq!(t.outcome(Outcome::PassiveFailed(io::ErrorKind::AddrInUse.into())), vec![425]);
}

// ---- passive, waiting for the data connection ------------------------------------------------------------------

// ftplib connects right after 227; others send the command first. Both orders work.
#[test]
fn command_before_connection_waits_for_it() {
    let mut t = passive();
    assert_eq!(t.line("RETR a.txt"), Vec::<u16>::new());
    assert!(t.s.is_busy());
    assert_eq!(t.outcome(Outcome::DataConnected), vec![150]);
    let mut tr = t.started();
    assert_eq!(run(&mut tr, b""), b"hello\nworld\n");
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: tr.bytes() }), vec![226]);
    assert!(!t.s.is_busy());
}

#[test]
fn data_connection_timeout_is_425() {
    let mut t = passive();
    t.line("RETR a.txt");
    assert_eq!(t.s.poll_timeout(), Some(t.now.mono + Duration::from_secs(5)));
    t.advance(Duration::from_secs(5));
    assert_eq!(t.timeout(), vec![425]);
    assert!(t.actions().iter().any(|a| matches!(a, Action::CloseData)));
    assert_eq!(t.line("NOOP"), vec![200]);
}

// An unused listener is closed quietly after the data timeout.
#[test]
fn unused_listener_expires_quietly() {
    let mut t = passive();
    t.advance(Duration::from_secs(5));
    assert_eq!(t.timeout(), Vec::<u16>::new());
    assert!(t.actions().iter().any(|a| matches!(a, Action::CloseData)));
    assert_eq!(t.line("RETR a.txt"), vec![425]);
}

// ---- connected -------------------------------------------------------------------------------------------------

#[test]
fn retr_binary_and_ascii() {
    let mut t = connected();
    assert_eq!(t.line("RETR a.txt"), vec![150]);
    let mut tr = t.started();
    assert_eq!(run(&mut tr, b""), b"hello\nworld\n");
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 12 }), vec![226]);

    t.line("TYPE A");
    t.line("PASV");
    t.actions();
    t.outcome(Outcome::PassiveReady("127.0.0.1:5002".parse().unwrap()));
    t.outcome(Outcome::DataConnected);
    assert_eq!(t.line("RETR a.txt"), vec![150]);
    let mut tr = t.started();
    assert_eq!(run(&mut tr, b""), b"hello\r\nworld\r\n");
}

#[test]
fn retr_missing_or_directory_is_550() {
    let mut t = connected();
    assert_eq!(t.line("RETR nope"), vec![550]);
    assert_eq!(t.line("RETR sub"), vec![550]);
    // The data connection is still there for the next command.
    assert_eq!(t.line("RETR a.txt"), vec![150]);
}

// Uploads land in a temporary file and appear under their name only when complete.
#[test]
fn stor_renames_when_complete() {
    let mut t = connected();
    assert_eq!(t.line("STOR sub/up.bin"), vec![150]);
    let mut tr = t.started();
    assert!(tr.is_upload());
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    run(&mut tr, &data);
    assert!(!t.root().join("sub/up.bin").exists(), "visible before completion");
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: tr.bytes() }), vec![226]);
    assert_eq!(std::fs::read(t.root().join("sub/up.bin")).unwrap(), data);
    let names: Vec<_> = std::fs::read_dir(t.root().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("up.bin")], "temporary file left behind");
}

// A failed upload leaves nothing: no final name, no temporary file; the reply says whose fault it was.
#[test]
fn failed_upload_leaves_nothing() {
    for (error, code) in [
        (TransferError::Network(io::ErrorKind::ConnectionReset.into()), 426),
        (TransferError::Local(io::Error::from_raw_os_error(28)), 452),
        (TransferError::Local(io::ErrorKind::Other.into()), 451),
    ] {
        let mut t = connected();
        assert_eq!(t.line("STOR up.bin"), vec![150]);
        let mut tr = t.started();
        run(&mut tr, b"partial");
        assert_eq!(t.outcome(Outcome::TransferFailed { bytes: 7, error }), vec![code]);
        let left: Vec<_> = std::fs::read_dir(t.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "a.txt" && n != "sub")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        assert_eq!(t.line("NOOP"), vec![200]);
    }
}

#[test]
fn stor_onto_directory_or_missing_dir_is_550() {
    let mut t = connected();
    assert_eq!(t.line("STOR sub"), vec![550]);
    assert_eq!(t.line("STOR nodir/x"), vec![550]);
    assert_eq!(t.line("STOR /"), vec![553]);
}

#[test]
fn list_and_nlst() {
    let mut t = connected();
    assert_eq!(t.line("LIST -la"), vec![150]);
    let mut tr = t.started();
    let text = String::from_utf8(run(&mut tr, b"")).unwrap();
    assert!(text.lines().any(|l| l.starts_with('d') && l.ends_with(" sub")), "{text}");
    assert!(text.lines().any(|l| l.starts_with('-') && l.ends_with(" a.txt")), "{text}");
    t.outcome(Outcome::TransferDone { bytes: 0 });

    t.line("EPSV");
    t.actions();
    t.outcome(Outcome::PassiveReady("127.0.0.1:5003".parse().unwrap()));
    t.outcome(Outcome::DataConnected);
    assert_eq!(t.line("NLST"), vec![150]);
    let mut tr = t.started();
    let mut names: Vec<String> = String::from_utf8(run(&mut tr, b"")).unwrap().lines().map(String::from).collect();
    names.sort();
    assert_eq!(names, vec!["a.txt", "sub"]);
}

#[test]
fn list_of_missing_path_is_550() {
    let mut t = connected();
    assert_eq!(t.line("LIST nope"), vec![550]);
    assert_eq!(t.line("LIST -l a.txt"), vec![150]);
}

// ---- transferring ----------------------------------------------------------------------------------------------

// While a transfer runs, NOOP/STAT are answered at once and other commands wait for the 226; a NOOP or STAT
// behind a waiting command waits with it, so replies come in the commands' order.
#[test]
fn commands_during_transfer_are_deferred() {
    let mut t = connected();
    t.line("RETR a.txt");
    t.actions();
    assert_eq!(t.line("NOOP"), vec![200]);
    assert_eq!(t.line("STAT"), vec![211]);
    assert_eq!(t.line("PWD"), Vec::<u16>::new());
    assert_eq!(t.line("NOOP"), Vec::<u16>::new());
    assert_eq!(t.line("STAT"), Vec::<u16>::new());
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 12 }), vec![226, 257, 200, 211]);
}

// ABOR does not wait behind queued commands: 426 and 226 at once, then the queued commands in order.
#[test]
fn abor_overtakes_queued_commands() {
    let mut t = connected();
    t.line("RETR a.txt");
    t.actions();
    assert_eq!(t.line("PWD"), Vec::<u16>::new());
    assert_eq!(t.line("NOOP"), Vec::<u16>::new());
    assert_eq!(t.line("ABOR"), vec![426, 226, 257, 200]);
}

// Found by fuzzing (session): lines queued behind a transfer ran back to back, so a PASV among them had no
// listener yet when the next line ran (NLST got 425) and a second PASV was never answered.
#[test]
fn queued_pasv_waits_for_its_listener() {
    let mut t = connected();
    t.line("RETR a.txt");
    t.actions();
    for line in ["PASV", "NLST", "PASV", "NLST"] {
        assert_eq!(t.line(line), Vec::<u16>::new());
    }
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 12 }), vec![226]);
    assert!(matches!(t.actions().as_slice(), [Action::ListenPassive]));
    assert_eq!(t.outcome(Outcome::PassiveReady("127.0.0.1:5002".parse().unwrap())), vec![227]);
    assert_eq!(t.outcome(Outcome::DataConnected), vec![150]);
    t.started();
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 6 }), vec![226]);
    assert!(matches!(t.actions().as_slice(), [Action::ListenPassive]));
    assert_eq!(t.outcome(Outcome::PassiveReady("127.0.0.1:5003".parse().unwrap())), vec![227]);
    assert_eq!(t.outcome(Outcome::DataConnected), vec![150]);
}

// Found by fuzzing (session): a transfer or connect outcome that came when none was running wiped the data
// channel, so the STOR waiting for its connection was never answered.
#[test]
fn stray_outcomes_leave_the_data_channel_alone() {
    let mut t = passive();
    assert_eq!(t.line("STOR up.bin"), Vec::<u16>::new());
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 0 }), Vec::<u16>::new());
    assert_eq!(t.outcome(Outcome::ActiveFailed(io::ErrorKind::ConnectionRefused.into())), Vec::<u16>::new());
    assert_eq!(t.outcome(Outcome::DataConnected), vec![150]);
}

// A client that pipelines without end stops being read once the queue is full.
#[test]
fn deferred_queue_is_bounded() {
    let mut t = connected();
    t.line("RETR a.txt");
    for _ in 0..MAX_DEFERRED {
        assert!(t.s.wants_input());
        t.line("PWD");
    }
    assert!(!t.s.wants_input());
    t.outcome(Outcome::TransferDone { bytes: 12 });
    assert!(t.s.wants_input());
}

// RFC 959 ABOR: 426 for the aborted transfer, then 226 for the ABOR itself; the session goes on.
#[test]
fn abor_during_transfer() {
    let mut t = connected();
    t.line("STOR up.bin");
    t.actions();
    assert_eq!(t.line("ABOR"), vec![426, 226]);
    assert!(t.actions().iter().any(|a| matches!(a, Action::CloseData)));
    assert!(std::fs::read_dir(t.root()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("part")));
    assert_eq!(t.line("NOOP"), vec![200]);
}

#[test]
fn abor_without_transfer_is_225() {
    let mut t = logged_in();
    assert_eq!(t.line("ABOR"), vec![225]);
}

#[test]
fn client_gone_is_426() {
    let mut t = connected();
    t.line("RETR a.txt");
    let error = TransferError::Network(io::ErrorKind::BrokenPipe.into());
    assert_eq!(t.outcome(Outcome::TransferFailed { bytes: 3, error }), vec![426]);
}

// The control connection dropping mid-upload removes the temporary file.
#[test]
fn disconnect_mid_upload_cleans_up() {
    let mut t = connected();
    t.line("STOR up.bin");
    t.actions();
    t.s.handle_disconnect();
    t.settle();
    assert!(std::fs::read_dir(t.root()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("part")));
    assert!(!t.root().join("up.bin").exists());
}

// ---- timers ----------------------------------------------------------------------------------------------------

#[test]
fn idle_timeout_closes_with_421() {
    let mut t = logged_in();
    assert_eq!(t.s.poll_timeout(), Some(t.now.mono + Duration::from_secs(60)));
    t.advance(Duration::from_secs(30));
    t.line("NOOP");
    t.advance(Duration::from_secs(59));
    assert_eq!(t.timeout(), Vec::<u16>::new());
    t.advance(Duration::from_secs(1));
    assert_eq!(t.timeout(), vec![421]);
    assert!(t.actions().iter().any(|a| matches!(a, Action::Close)));
    assert!(t.s.is_closing());
}

// A session with a running transfer is not idle, however long the transfer takes.
#[test]
fn transfer_is_not_idle() {
    let mut t = connected();
    t.line("RETR a.txt");
    assert_eq!(t.s.poll_timeout(), None);
    t.advance(Duration::from_secs(3600));
    assert_eq!(t.timeout(), Vec::<u16>::new());
    assert!(!t.s.is_closing());
}

// ---- closing ---------------------------------------------------------------------------------------------------

#[test]
fn quit_says_goodbye_and_closes() {
    let mut t = logged_in();
    assert_eq!(t.line("QUIT"), vec![221]);
    assert!(t.actions().iter().any(|a| matches!(a, Action::Close)));
    assert!(!t.s.wants_input());
    assert_eq!(t.line("NOOP"), Vec::<u16>::new());
}

// RFC 959 QUIT during a transfer: the transfer's reply comes first, then 221.
#[test]
fn quit_during_transfer_waits() {
    let mut t = connected();
    t.line("RETR a.txt");
    assert_eq!(t.line("QUIT"), Vec::<u16>::new());
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 12 }), vec![226, 221]);
}

#[test]
fn shutdown_idle_and_busy() {
    let mut t = logged_in();
    t.s.handle_shutdown(t.now);
    assert_eq!(t.codes(), vec![421]);
    assert!(t.s.is_closing());

    let mut t = connected();
    t.line("RETR a.txt");
    t.s.handle_shutdown(t.now);
    assert_eq!(t.codes(), Vec::<u16>::new());
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 12 }), vec![226, 421]);
    assert!(t.s.is_closing());
}

// ---- the storage seam ------------------------------------------------------------------------------------------

/// The session's storage requests, taken without carrying them out (a storage that answers later).
fn requests(t: &mut T) -> Vec<crate::storage::Request> {
    let mut out = Vec::new();
    while let Some(a) = t.s.poll_action() {
        match a {
            Action::Storage(r) => out.push(r),
            other => t.stash.push(other),
        }
    }
    out
}

#[test]
fn commands_wait_for_the_storage_answer_in_order() {
    let mut t = logged_in();
    t.s.handle_line(t.now, Line::Text(b"SIZE a.txt".to_vec()));
    t.s.handle_line(t.now, Line::Text(b"NOOP".to_vec()));
    t.s.handle_line(t.now, Line::Text(b"MDTM a.txt".to_vec()));
    let first = requests(&mut t);
    assert_eq!(first.len(), 1, "one request in flight at a time");
    assert!(t.s.poll_reply().is_none(), "nothing answered before the storage");
    assert!(t.s.is_busy());
    let done = crate::storage::run(first.into_iter().next().unwrap()).unwrap();
    t.s.handle_outcome(t.now, Outcome::Storage(done));
    // SIZE is answered, NOOP runs behind it, and MDTM is the next request in flight.
    assert_eq!(std::iter::from_fn(|| t.s.poll_reply()).map(|r| r.code).collect::<Vec<_>>(), vec![213, 200]);
    let second = requests(&mut t);
    assert_eq!(second.len(), 1);
    assert!(matches!(second[0].op, crate::storage::Op::Stat(_)));
    let done = crate::storage::run(second.into_iter().next().unwrap()).unwrap();
    t.s.handle_outcome(t.now, Outcome::Storage(done));
    assert_eq!(t.codes(), vec![213]);
    assert!(!t.s.is_busy());
}

#[test]
fn abor_waits_for_the_storage_answer_too() {
    let mut t = connected();
    t.s.handle_line(t.now, Line::Text(b"RETR a.txt".to_vec()));
    t.s.handle_line(t.now, Line::Text(b"ABOR".to_vec()));
    let read = requests(&mut t);
    assert_eq!(read.len(), 1);
    assert!(t.s.poll_reply().is_none(), "ABOR is not answered ahead of the RETR it follows");
    let done = crate::storage::run(read.into_iter().next().unwrap()).unwrap();
    t.s.handle_outcome(t.now, Outcome::Storage(done));
    // The transfer started (150), then ABOR ended it (426, 226).
    assert_eq!(t.codes(), vec![150, 426, 226]);
}

#[test]
fn an_upload_opened_for_a_session_that_left_is_discarded() {
    let mut t = connected();
    t.s.handle_line(t.now, Line::Text(b"STOR late.bin".to_vec()));
    let open = requests(&mut t);
    assert_eq!(open.len(), 1);
    // The storage creates the temporary; the client is gone before the answer arrives.
    let done = crate::storage::run(open.into_iter().next().unwrap()).unwrap();
    let temps = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| crate::fs::is_temp_name(&e.as_ref().unwrap().file_name().to_string_lossy()))
            .count()
    };
    assert_eq!(temps(t.root()), 1, "the storage created the temporary");
    t.s.handle_disconnect();
    t.s.handle_outcome(t.now, Outcome::Storage(done));
    t.settle();
    assert_eq!(temps(t.root()), 0, "the late answer's temporary is removed");
    assert!(!t.root().join("late.bin").exists());
}
