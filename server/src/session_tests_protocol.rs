//! Session tests for the rest of the protocol surface: resume, append, unique names, renames, times, facts.

use super::tests::{connected, logged_in, run, T};
use super::*;

fn read(t: &T, name: &str) -> Vec<u8> {
    std::fs::read(t.root().join(name)).unwrap()
}

fn reconnect(t: &mut T) {
    t.line("EPSV");
    t.actions();
    t.outcome(Outcome::PassiveReady("127.0.0.1:5009".parse().unwrap()));
    t.outcome(Outcome::DataConnected);
}

// RFC 3659 §5: REST n then RETR sends the file from byte n.
#[test]
fn rest_then_retr_resumes() {
    let mut t = connected();
    assert_eq!(t.line("REST 6"), vec![350]);
    assert_eq!(t.line("RETR a.txt"), vec![150]);
    let mut tr = t.started();
    assert_eq!(run(&mut tr, b""), b"world\n");
    t.outcome(Outcome::TransferDone { bytes: 6 });
    // The offset is used once.
    reconnect(&mut t);
    t.line("RETR a.txt");
    let mut tr = t.started();
    assert_eq!(run(&mut tr, b""), b"hello\nworld\n");
}

#[test]
fn rest_beyond_end_is_554() {
    let mut t = connected();
    t.line("REST 1000");
    assert_eq!(t.line("RETR a.txt"), vec![554]);
    assert_eq!(t.line("REST x"), vec![501]);
}

// REST n then STOR keeps the first n bytes of the existing file and writes from there, in place.
#[test]
fn rest_then_stor_resumes_upload() {
    let mut t = connected();
    std::fs::write(t.root().join("part.bin"), b"0123456789").unwrap();
    t.line("REST 4");
    assert_eq!(t.line("STOR part.bin"), vec![150]);
    let mut tr = t.started();
    run(&mut tr, b"abc");
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 3 }), vec![226]);
    assert_eq!(read(&t, "part.bin"), b"0123abc");
}

#[test]
fn appe_appends_or_creates() {
    let mut t = connected();
    assert_eq!(t.line("APPE a.txt"), vec![150]);
    let mut tr = t.started();
    run(&mut tr, b"more\n");
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 5 }), vec![226]);
    assert_eq!(read(&t, "a.txt"), b"hello\nworld\nmore\n");
    reconnect(&mut t);
    assert_eq!(t.line("APPE new.txt"), vec![150]);
    let mut tr = t.started();
    run(&mut tr, b"x");
    t.outcome(Outcome::TransferDone { bytes: 1 });
    assert_eq!(read(&t, "new.txt"), b"x");
}

// STOU never replaces a file; the name is given in the 150 reply (RFC 1123 §4.1.2.9).
#[test]
fn stou_picks_a_free_name() {
    let mut t = connected();
    t.s.handle_line(t.now, Line::Text(b"STOU a.txt".to_vec()));
    assert_eq!(t.texts(), vec!["150 FILE: a.txt.1".to_string()]);
    let mut tr = t.started();
    run(&mut tr, b"unique");
    t.s.handle_outcome(t.now, Outcome::TransferDone { bytes: 6 });
    assert_eq!(t.texts(), vec!["226 Transfer complete; unique file name: /a.txt.1.".to_string()]);
    assert_eq!(read(&t, "a.txt"), b"hello\nworld\n");
    assert_eq!(read(&t, "a.txt.1"), b"unique");
}

// RNFR then RNTO renames; RNTO without RNFR, or after another command, is 503.
#[test]
fn rename_sequence() {
    let mut t = logged_in();
    assert_eq!(t.line("RNTO b.txt"), vec![503]);
    assert_eq!(t.line("RNFR missing"), vec![550]);
    assert_eq!(t.line("RNFR a.txt"), vec![350]);
    assert_eq!(t.line("RNTO sub/b.txt"), vec![250]);
    assert!(t.root().join("sub/b.txt").exists());
    assert_eq!(t.line("RNFR sub/b.txt"), vec![350]);
    assert_eq!(t.line("NOOP"), vec![200]);
    assert_eq!(t.line("RNTO c.txt"), vec![503]);
    assert!(t.root().join("sub/b.txt").exists());
}

// MDTM gives UTC YYYYMMDDHHMMSS; MFMT sets it (lftp preserves times after uploads with it).
#[test]
fn mdtm_and_mfmt() {
    let mut t = logged_in();
    t.s.handle_line(t.now, Line::Text(b"MFMT 20200102030405 a.txt".to_vec()));
    assert_eq!(t.texts(), vec!["213 Modify=20200102030405; /a.txt".to_string()]);
    t.s.handle_line(t.now, Line::Text(b"MDTM a.txt".to_vec()));
    assert_eq!(t.texts(), vec!["213 20200102030405".to_string()]);
    assert_eq!(t.line("MDTM sub"), vec![550]);
    assert_eq!(t.line("MDTM nope"), vec![550]);
    assert_eq!(t.line("MFMT 20201302030405 a.txt"), vec![501]);
}

// RFC 3659 §7: MLST answers on the control connection with one fact line; OPTS MLST chooses the facts.
#[test]
fn mlst_and_opts() {
    let mut t = logged_in();
    t.s.handle_line(t.now, Line::Text(b"MLST a.txt".to_vec()));
    let reply = t.reply().unwrap();
    assert_eq!(reply.code, 250);
    assert!(reply.lines[1].starts_with(" type=file;size=12;modify="), "{:?}", reply.lines);
    assert!(reply.lines[1].ends_with("; /a.txt"));
    t.s.handle_line(t.now, Line::Text(b"OPTS MLST type;size;".to_vec()));
    assert_eq!(t.texts(), vec!["200 MLST OPTS type;size;".to_string()]);
    t.s.handle_line(t.now, Line::Text(b"MLST sub".to_vec()));
    assert_eq!(t.reply().unwrap().lines[1], " type=dir; /sub");
}

#[test]
fn mlsd_lists_facts() {
    let mut t = connected();
    assert_eq!(t.line("MLSD"), vec![150]);
    let mut tr = t.started();
    let text = String::from_utf8(run(&mut tr, b"")).unwrap();
    let mut lines: Vec<&str> = text.split_terminator("\r\n").collect();
    lines.sort();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("type=dir;") && lines[0].ends_with(" sub"), "{text}");
    assert!(lines[1].starts_with("type=file;size=12;") && lines[1].ends_with(" a.txt"), "{text}");
    t.outcome(Outcome::TransferDone { bytes: 0 });
    reconnect(&mut t);
    assert_eq!(t.line("MLSD a.txt"), vec![501]);
}

// STAT with a path lists over the control connection.
#[test]
fn stat_with_path() {
    let mut t = logged_in();
    t.s.handle_line(t.now, Line::Text(b"STAT /".to_vec()));
    let r = t.reply().unwrap();
    assert_eq!(r.code, 213);
    assert!(r.lines.iter().any(|l| l.ends_with(" a.txt")), "{:?}", r.lines);
    assert_eq!(t.line("STAT nope"), vec![550]);
}

// FEAT lists what works; HELP lists the implemented verbs.
#[test]
fn feat_and_help() {
    let mut t = fresh_feat();
    let r = t.reply().unwrap();
    for f in [" EPSV", " MDTM", " MFMT", " PASV", " REST STREAM", " SIZE", " UTF8"] {
        assert!(r.lines.iter().any(|l| l == f), "{f} missing from {:?}", r.lines);
    }
    assert!(r.lines.iter().any(|l| l.starts_with(" MLST type*;size*;")));
    assert!(!r.lines.iter().any(|l| l.contains("AUTH")));
    t.s.handle_line(t.now, Line::Text(b"HELP".to_vec()));
    let help = t.reply().unwrap().text();
    assert!(help.contains("RETR") && help.contains("MLSD") && !help.contains("AUTH"), "{help}");
}

fn fresh_feat() -> T {
    let mut t = logged_in();
    t.s.handle_line(t.now, Line::Text(b"FEAT".to_vec()));
    t
}

// ---- active mode -----------------------------------------------------------------------------------------------

// PORT to the client's own address and an unprivileged port: the server connects when the transfer command comes.
#[test]
fn port_then_retr_connects() {
    let mut t = logged_in();
    assert_eq!(t.line("PORT 127,0,0,1,200,10"), vec![200]);
    assert_eq!(t.line("RETR a.txt"), Vec::<u16>::new());
    let acts = t.actions();
    assert!(matches!(acts.as_slice(), [Action::ConnectActive(a)] if a.port() == 200 * 256 + 10), "{acts:?}");
    assert!(t.s.is_busy());
    assert_eq!(t.outcome(Outcome::DataConnected), vec![150]);
    let mut tr = t.started();
    assert_eq!(run(&mut tr, b""), b"hello\nworld\n");
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 12 }), vec![226]);
}

#[test]
fn active_connect_failure_is_425() {
    let mut t = logged_in();
    t.line("EPRT |1|127.0.0.1|5000|");
    t.line("STOR up.bin");
    t.actions();
    assert_eq!(t.outcome(Outcome::ActiveFailed(io::ErrorKind::ConnectionRefused.into())), vec![425]);
    let names: Vec<_> = std::fs::read_dir(t.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "temporary file left: {names:?}");
    assert_eq!(t.line("NOOP"), vec![200]);
}

// RFC 2577: no data connections to third parties (FTP bounce) or to privileged ports.
#[test]
fn bounce_is_refused() {
    let mut t = logged_in();
    assert_eq!(t.line("PORT 10,0,0,1,200,10"), vec![501]);
    assert_eq!(t.line("PORT 127,0,0,1,0,21"), vec![501]);
    assert_eq!(t.line("EPRT |1|192.0.2.1|5000|"), vec![501]);
    assert_eq!(t.line("EPRT |2|::1|5000|"), vec![522]);
    // Each bounce attempt counts towards a ban of the address; nothing is connected.
    let acts = t.actions();
    assert_eq!(acts.len(), 3, "{acts:?}");
    assert!(acts.iter().all(|a| matches!(a, Action::Offence(crate::bans::Offence::Bounce))), "{acts:?}");
    assert_eq!(t.line("RETR a.txt"), vec![425]);
    assert_eq!(t.line("EPSV ALL"), vec![200]);
    assert_eq!(t.line("PORT 127,0,0,1,200,10"), vec![503]);
}

// ---- HASH ------------------------------------------------------------------------------------------------------

fn run_hash(t: &mut T) -> Vec<String> {
    let job = t
        .actions()
        .into_iter()
        .find_map(|a| if let Action::StartHash(j) = a { Some(j) } else { None })
        .expect("no StartHash");
    let mut job = job;
    loop {
        match job.step(3) {
            crate::hash::HashStep::More => {}
            crate::hash::HashStep::Done { hex, size } => {
                t.s.handle_outcome(t.now, Outcome::HashDone { hex, size });
                return t.texts();
            }
            crate::hash::HashStep::Failed(e) => panic!("{e}"),
        }
    }
}

// draft-bryan-ftpext-hash: "213 <algorithm> <start>-<end> <hex> <path>"; OPTS HASH chooses the algorithm.
#[test]
fn hash_and_opts_hash() {
    let mut t = logged_in();
    assert_eq!(t.line("HASH a.txt"), Vec::<u16>::new());
    assert!(t.s.is_busy());
    // sha256("hello\nworld\n") and md5 of the same.
    let sha = "4a1e67f2fe1d1cc7b31d0ca2ec441da4778203a036a77da10344c85e24ff0f92";
    assert_eq!(run_hash(&mut t), vec![format!("213 SHA-256 0-12 {sha} /a.txt")]);
    t.s.handle_line(t.now, Line::Text(b"OPTS HASH md5".to_vec()));
    assert_eq!(t.texts(), vec!["200 MD5".to_string()]);
    t.line("HASH a.txt");
    assert_eq!(run_hash(&mut t), vec!["213 MD5 0-12 0f723ae7f9bf07744445e93ac5595156 /a.txt".to_string()]);
    t.s.handle_line(t.now, Line::Text(b"OPTS HASH crc32".to_vec()));
    assert_eq!(t.texts(), vec!["200 CRC32".to_string()]);
    t.line("HASH a.txt");
    // zlib.crc32(b"hello\nworld\n")
    assert_eq!(run_hash(&mut t), vec!["213 CRC32 0-12 c4c55dff /a.txt".to_string()]);
    assert_eq!(t.line("OPTS HASH CRC-32"), vec![501]);
    assert_eq!(t.line("HASH nope"), vec![550]);
    assert_eq!(t.line("HASH sub"), vec![550]);
}

// ABOR stops a HASH in progress; the session goes on.
#[test]
fn abor_during_hash() {
    let mut t = logged_in();
    t.line("HASH a.txt");
    assert_eq!(t.line("PWD"), Vec::<u16>::new());
    let acts = t.actions();
    assert!(matches!(acts.as_slice(), [Action::StartHash(_)]));
    assert_eq!(t.line("ABOR"), vec![426, 226, 257]);
    assert!(!t.s.is_busy());
}
