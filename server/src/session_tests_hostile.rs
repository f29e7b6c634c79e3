//! One test per finding of the hostile-input review, named after it, each failing on the code before its fix.
//! The findings that need the loop or real sockets (verifier queue, descriptor reserve, log lines) are tested in
//! `tests/integration/hostile.rs`; the bystander test there tries them all against a running server.

use super::tests::*;
use super::*;
use crate::access::Anonymous;
use crate::transfer::Step;

/// Runs `f` on a thread of its own and fails if it takes more than five seconds: some findings used to block
/// or spin forever, and a test must fail, not hang. Sessions are built inside `f` (they are not `Send`).
fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("the session blocked or spun")
}

fn mkfifo(path: &std::path::Path) {
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o644), 0)
        .unwrap();
}

/// Runs the transfer the session started against `input` and reports its end to the session.
fn complete(t: &mut T, input: &[u8]) -> Vec<u16> {
    let mut transfer = t.started();
    let sent = run(&mut transfer, input);
    t.outcome(Outcome::TransferDone { bytes: sent.len().max(input.len()) as u64 })
}

// 1. A password check still running when the login deadline passes: the deadline poll_timeout offers must be
// acted on by handle_timeout, or the loop re-arms the same past deadline forever and never polls again.
#[test]
fn finding_01_timer_livelock_at_login_deadline() {
    let mut t = fresh();
    assert_eq!(t.line("USER root"), vec![331]);
    assert_eq!(t.line("PASS guess"), Vec::<u16>::new());
    assert!(t.s.is_busy(), "the password check is running");
    t.advance(Duration::from_secs(30));
    assert!(t.s.poll_timeout().is_some_and(|at| at <= t.now.mono), "the login deadline is due");
    assert_eq!(t.timeout(), vec![421]);
    assert!(t.s.poll_timeout().is_none_or(|at| at > t.now.mono), "a due deadline is never offered again");
    // The check's late answer changes nothing.
    assert_eq!(t.outcome(Outcome::Verified(true)), Vec::<u16>::new());
}

// 1 (the general rule). Whatever state a session is in, once handle_timeout has run at an instant, the next
// deadline is in the future: failure delay, data timeout, idle timeout, closing grace.
#[test]
fn finding_01_no_deadline_is_due_after_handle_timeout() {
    let mut states: Vec<T> = vec![fresh(), logged_in(), passive(), connected()];
    let mut failed = fresh();
    failed.line("USER x");
    failed.line("PASS y");
    failed.outcome(Outcome::Verified(false));
    states.push(failed);
    for mut t in states {
        for _ in 0..6 {
            let Some(at) = t.s.poll_timeout() else { break };
            t.now = Now { mono: at, wall: t.now.wall };
            t.timeout();
            t.actions();
            assert!(t.s.poll_timeout().is_none_or(|next| next > at), "deadline {at:?} offered again");
        }
    }
}

// 2. STOU onto a name held by a dangling symlink (or one pointing outside the root): the name is taken, so STOU
// picks another at once and publishing it succeeds, instead of linking onto the symlink's name forever.
#[test]
fn finding_02_stou_onto_dangling_or_escaping_symlink() {
    let codes = bounded(|| {
        let mut t = connected();
        std::os::unix::fs::symlink("nowhere", t.root().join("f")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.root().join("f.1")).unwrap();
        let texts = {
            t.s.handle_line(t.now, Line::Text(b"STOU f".to_vec()));
            t.texts()
        };
        assert_eq!(texts, vec!["150 FILE: f.2".to_string()]);
        let done = complete(&mut t, b"data");
        assert_eq!(std::fs::read(t.root().join("f.2")).unwrap(), b"data");
        assert!(std::fs::symlink_metadata(t.root().join("f")).unwrap().file_type().is_symlink());
        done
    });
    assert_eq!(codes, vec![226]);
}

// 2 (the race). The chosen name is taken by a dangling symlink while the upload runs: publishing tries other
// names, a bounded number of times, and never loops.
#[test]
fn finding_02_stou_name_taken_during_upload() {
    let codes = bounded(|| {
        let mut t = connected();
        t.line("STOU g");
        std::os::unix::fs::symlink("nowhere", t.root().join("g")).unwrap();
        let codes = complete(&mut t, b"x");
        assert_eq!(std::fs::read(t.root().join("g.1")).unwrap(), b"x");
        codes
    });
    assert_eq!(codes, vec![226]);
}

// 3. A FIFO in the tree: RETR, HASH, APPE, REST+STOR and MFMT refuse it (550) without blocking in open().
#[test]
fn finding_03_fifo_is_refused_without_blocking() {
    let codes = bounded(|| {
        let mut t = passive();
        mkfifo(&t.root().join("pipe"));
        let mut codes = Vec::new();
        for cmd in ["RETR pipe", "HASH pipe", "APPE pipe", "MFMT 20200101000000 pipe", "SIZE pipe"] {
            codes.push(t.line(cmd));
        }
        t.line("REST 1");
        codes.push(t.line("STOR pipe"));
        codes
    });
    assert_eq!(codes, vec![vec![550]; 6]);
}

// 4. STAT of a huge directory is one bounded step: a few hundred entries at most, then a pointer to LIST.
#[test]
fn finding_04_stat_of_huge_directory_is_bounded() {
    let mut t = logged_in();
    std::fs::create_dir(t.root().join("big")).unwrap();
    for i in 0..1000 {
        std::fs::write(t.root().join(format!("big/f{i:04}")), b"").unwrap();
    }
    t.s.handle_line(t.now, Line::Text(b"STAT big".to_vec()));
    let reply = t.reply().expect("a reply");
    assert_eq!(reply.code, 213);
    let lines = reply.lines.clone();
    assert!(lines.len() <= 203, "{} lines", lines.len());
    assert!(lines.iter().any(|l| l.contains("use LIST")), "{:?}", &lines[lines.len() - 2..]);
}

// 5. A login the verifier cannot take (queue full, or too many from this address) gets 421 and a close at
// once, instead of waiting behind seconds of other clients' checks.
#[test]
fn finding_05_verifier_busy_refuses_the_login() {
    let mut t = fresh();
    t.line("USER root");
    t.line("PASS x");
    t.actions();
    assert_eq!(t.outcome(Outcome::VerifierBusy), vec![421]);
    assert!(t.s.is_closing());
}

// 6. HASH then ABOR while a passive listener is open: the HASH ends (426, 226), the session is not left busy,
// and the next command is answered at once.
#[test]
fn finding_06_hash_then_abor_with_passive_listener() {
    let mut t = passive();
    assert_eq!(t.line("HASH a.txt"), Vec::<u16>::new());
    assert!(t.actions().iter().any(|a| matches!(a, Action::StartHash(_))));
    assert_eq!(t.line("ABOR"), vec![426, 226]);
    assert!(t.actions().iter().any(|a| matches!(a, Action::StopHash)));
    assert!(!t.s.is_busy());
    assert_eq!(t.line("PWD"), vec![257]);
    // The stopped job's late result is ignored.
    assert_eq!(t.outcome(Outcome::HashDone { hex: "00".into(), size: 1 }), Vec::<u16>::new());
}

// 6 (data timeout). The passive listener times out while HASH runs: the data channel closes, the HASH goes
// on (the listener is not the hash job's) and its 213 arrives.
#[test]
fn finding_06_data_timeout_during_hash() {
    let mut t = passive();
    t.line("HASH a.txt");
    t.actions();
    t.advance(Duration::from_secs(5));
    t.timeout();
    let acts = t.actions();
    assert!(!acts.iter().any(|a| matches!(a, Action::StopHash)), "{acts:?}");
    assert_eq!(t.outcome(Outcome::HashDone { hex: "ab".into(), size: 12 }), vec![213]);
    assert!(!t.s.is_busy());
}

// 7. A transfer longer than the idle timeout: the idle clock starts when the transfer ends, so no 421 follows
// the 226.
#[test]
fn finding_07_no_idle_timeout_right_after_a_long_transfer() {
    let mut t = connected();
    t.line("RETR a.txt");
    let mut transfer = t.started();
    t.advance(Duration::from_secs(600));
    run(&mut transfer, b"");
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 12 }), vec![226]);
    assert_eq!(t.timeout(), Vec::<u16>::new());
    assert!(t.s.poll_timeout().is_some_and(|at| at >= t.now.mono + Duration::from_secs(60)));
}

// 8. Temporaries are never listed, never served, and no verb reaches them.
#[test]
fn finding_08_temporaries_are_invisible() {
    let mut t = connected();
    let temp = ".ftpupload-00112233445566778899aabbccddeeff.part";
    std::fs::write(t.root().join(temp), b"secret partial upload").unwrap();
    t.line("NLST");
    let listing = run(&mut t.started(), b"");
    t.outcome(Outcome::TransferDone { bytes: 0 });
    let listing = String::from_utf8(listing).unwrap();
    assert!(!listing.contains("ftpupload"), "{listing}");
    for cmd in [format!("SIZE {temp}"), format!("MDTM {temp}"), format!("DELE {temp}"), format!("RNFR {temp}")] {
        assert_eq!(t.line(&cmd), vec![550], "{cmd}");
    }
    assert!(t.root().join(temp).exists());
}

// 9. An account that may rename but not delete cannot destroy a file by renaming onto it.
#[test]
fn finding_09_rename_without_delete_does_not_replace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), b"a").unwrap();
    std::fs::write(dir.path().join("b"), b"precious").unwrap();
    let hash = crate::access::hash_password("pw").unwrap();
    let users = dir.path().join("users.toml");
    let text = format!("[[user]]\nname = \"bob\"\npassword = \"{hash}\"\npermissions = [\"read\", \"rename\"]\n");
    std::fs::write(&users, text).unwrap();
    let root = Rc::new(crate::fs::Root::open(dir.path()).unwrap());
    let access = Rc::new(Access::load(dir.path(), root, Anonymous::Off, false, &users, false).unwrap());
    let now = Now::from_system();
    let s = Session::new(
        1,
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:21".parse().unwrap(),
        access,
        Rc::new(config()),
        now,
    );
    let mut t = T::new(s, now, dir);
    t.codes();
    t.line("USER bob");
    t.line("PASS pw");
    t.actions();
    assert_eq!(t.outcome(Outcome::Verified(true)), vec![230]);
    assert_eq!(t.line("RNFR a"), vec![350]);
    assert_eq!(t.line("RNTO b"), vec![550]);
    assert_eq!(std::fs::read(t.root().join("b")).unwrap(), b"precious");
    assert_eq!(t.line("RNFR a"), vec![350]);
    assert_eq!(t.line("RNTO c"), vec![250]);
}

// 11. STAT before login says nothing about the server's load; after login it does (and shows the loop's turns).
#[test]
fn finding_11_stat_before_login_hides_server_counts() {
    let mut t = fresh();
    t.s.set_stats(Rc::new(ServerStats::default()));
    t.s.handle_line(t.now, Line::Text(b"STAT".to_vec()));
    let before = t.reply().unwrap().lines.join("\n");
    t.codes();
    assert!(!before.contains("sessions") && !before.contains("turns"), "{before}");
    t.line("USER anonymous");
    t.line("PASS x");
    t.codes();
    t.s.handle_line(t.now, Line::Text(b"STAT".to_vec()));
    let after = t.reply().unwrap().lines.join("\n");
    assert!(after.contains("sessions") && after.contains("turns, longest"), "{after}");
}

// 13. MFMT reports the time the filesystem kept, not the one asked for (ext4 and others clamp far dates).
#[test]
fn finding_13_mfmt_reports_the_time_set() {
    let mut t = logged_in();
    t.s.handle_line(t.now, Line::Text(b"MFMT 99991231235959 a.txt".to_vec()));
    let reply = t.texts().remove(0);
    let kept = std::fs::metadata(t.root().join("a.txt")).unwrap().modified().unwrap();
    let expected = format!("213 Modify={}; /a.txt", crate::facts::timeval(kept));
    assert_eq!(reply, expected);
}

// 14. SIGTERM while a password check (or its failure delay) runs: when that busy state ends, the session is
// told the server is shutting down and closed, instead of working on until the grace period ends.
#[test]
fn finding_14_shutdown_during_password_check() {
    let mut t = fresh();
    t.line("USER root");
    t.line("PASS x");
    t.actions();
    t.s.handle_shutdown(t.now);
    assert_eq!(t.codes(), Vec::<u16>::new(), "the busy session is left to finish");
    t.outcome(Outcome::Verified(false));
    t.advance(Duration::from_secs(1));
    assert_eq!(t.timeout(), vec![530, 421]);
    assert!(t.s.is_closing());
}

// 14 (HASH). The same for a HASH running when shutdown began.
#[test]
fn finding_14_shutdown_during_hash() {
    let mut t = logged_in();
    t.line("HASH a.txt");
    t.actions();
    t.s.handle_shutdown(t.now);
    assert_eq!(t.outcome(Outcome::HashDone { hex: "ab".into(), size: 12 }), vec![213, 421]);
    assert!(t.s.is_closing());
}

// 15. RNFR applies to the very next line only, even one refused before dispatch.
#[test]
fn finding_15_rnfr_does_not_survive_a_rejected_line() {
    let mut t = logged_in();
    assert_eq!(t.line("RNFR a.txt"), vec![350]);
    assert_eq!(t.line("CWD"), vec![501]);
    assert_eq!(t.line("RNTO b.txt"), vec![503]);
    assert!(t.root().join("a.txt").exists());
}

// 15. REST applies to the next command only: REST, NOOP, RETR sends the whole file.
#[test]
fn finding_15_rest_does_not_survive_other_commands() {
    let mut t = connected();
    t.line("REST 6");
    assert_eq!(t.line("NOOP"), vec![200]);
    t.line("RETR a.txt");
    let sent = run(&mut t.started(), b"");
    assert_eq!(sent, b"hello\nworld\n");
}

// 15. REST + STOR cuts the file only when the transfer starts: a STOR whose data connection never comes (ABOR
// here) leaves the file whole.
#[test]
fn finding_15_rest_stor_truncates_only_when_the_transfer_starts() {
    let mut t = passive();
    t.line("REST 3");
    assert_eq!(t.line("STOR a.txt"), Vec::<u16>::new());
    assert_eq!(std::fs::read(t.root().join("a.txt")).unwrap(), b"hello\nworld\n");
    assert_eq!(t.line("ABOR"), vec![426, 226]);
    assert_eq!(std::fs::read(t.root().join("a.txt")).unwrap(), b"hello\nworld\n");
    // With the connection, the file becomes its first 3 bytes and what was sent.
    t.line("PASV");
    t.actions();
    t.outcome(Outcome::PassiveReady("127.0.0.1:5002".parse().unwrap()));
    t.line("REST 3");
    t.line("STOR a.txt");
    assert_eq!(t.outcome(Outcome::DataConnected), vec![150]);
    let mut transfer = t.started();
    assert!(matches!(run_steps(&mut transfer, b"XY"), Step::Done));
    t.outcome(Outcome::TransferDone { bytes: 2 });
    assert_eq!(std::fs::read(t.root().join("a.txt")).unwrap(), b"helXY");
}

fn run_steps(t: &mut Transfer, input: &[u8]) -> Step {
    let mut sock = std::io::Cursor::new(input.to_vec());
    let mut sink = Vec::new();
    struct Both<'a>(&'a mut std::io::Cursor<Vec<u8>>, &'a mut Vec<u8>);
    impl std::io::Read for Both<'_> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.0.read(b)
        }
    }
    impl std::io::Write for Both<'_> {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.1.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut scratch = vec![0; crate::transfer::scratch_len(64)];
    loop {
        match t.step(&mut Both(&mut sock, &mut sink), 64, &mut scratch) {
            Step::Yield | Step::Blocked => {}
            other => return other,
        }
    }
}

// 17. EPRT with a network protocol other than 1 or 2: 522 naming the supported ones (RFC 2428 §2).
#[test]
fn finding_17_eprt_unknown_protocol_is_522() {
    let mut t = logged_in();
    t.s.handle_line(t.now, Line::Text(b"EPRT |3|1.2.3.4|5000|".to_vec()));
    let texts = t.texts();
    assert_eq!(texts.len(), 1);
    assert!(texts[0].starts_with("522 ") && texts[0].contains("(1,2)"), "{texts:?}");
}
