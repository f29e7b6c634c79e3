//! Session tests for FTPS (RFC 4217): AUTH/PBSZ/PROT sequencing, what PROT P asks of data connections, the
//! `--require-tls` refusals, implicit TLS and FEAT/HELP with and without a certificate. No sockets: the session only
//! decides, so these check its replies and actions.

use super::tests::{config, fresh, fresh_with, T};
use super::*;

/// A session on a server with a certificate (and `--require-tls` if `require`), greeted, not logged in.
fn tls_fresh(require: bool) -> T {
    fresh_with(SessionConfig { tls: true, require_tls: require, ..config() })
}

/// Whether the actions include StartTls.
fn starts_tls(t: &mut T) -> bool {
    t.actions().iter().any(|a| matches!(a, Action::StartTls))
}

/// AUTH TLS, PBSZ 0 and PROT `level`, each answered as RFC 4217 says.
fn secure(t: &mut T, level: &str) {
    assert_eq!(t.line("AUTH TLS"), vec![234]);
    assert!(starts_tls(t));
    assert_eq!(t.line("PBSZ 0"), vec![200]);
    assert_eq!(t.line(&format!("PROT {level}")), vec![200]);
}

/// The whole reply to `line`.
fn reply(t: &mut T, line: &str) -> Reply {
    t.s.handle_line(t.now, Line::Text(line.as_bytes().to_vec()));
    t.reply().expect("a reply")
}

fn login(t: &mut T) {
    assert_eq!(t.line("USER anonymous"), vec![331]);
    assert_eq!(t.line("PASS guest@"), vec![230]);
}

/// PASV and a data connection, then `cmd`: the `tls` flag of the transfer it starts.
#[track_caller]
fn transfer_tls(t: &mut T, cmd: &str) -> bool {
    t.line("PASV");
    t.actions();
    assert_eq!(t.outcome(Outcome::PassiveReady("127.0.0.1:5001".parse().unwrap())), vec![227]);
    t.outcome(Outcome::DataConnected);
    assert_eq!(t.line(cmd), vec![150], "{cmd}");
    let tls = t.actions().into_iter().find_map(|a| match a {
        Action::StartTransfer { tls, .. } => Some(tls),
        _ => None,
    });
    let tls = tls.expect("no StartTransfer");
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 0 }), vec![226]);
    tls
}

// ---- without a certificate -------------------------------------------------------------------------------------

// No certificate: the security verbs are not implemented (502), and neither FEAT nor HELP offers them.
#[test]
fn without_certificate_security_verbs_are_502() {
    let mut t = fresh();
    for cmd in ["AUTH TLS", "PBSZ 0", "PROT P"] {
        assert_eq!(t.line(cmd), vec![502], "{cmd}");
    }
    assert!(t.actions().is_empty());
}

// ---- explicit FTPS ---------------------------------------------------------------------------------------------

// FEAT lists exactly what works (RFC 2389): AUTH TLS, PBSZ and PROT only with a certificate; HELP likewise.
#[test]
fn feat_and_help_list_tls_only_when_configured() {
    for (tls, expected) in [(false, false), (true, true)] {
        let mut t = fresh_with(SessionConfig { tls, ..config() });
        let feat = reply(&mut t, "FEAT");
        for f in [" AUTH TLS", " PBSZ", " PROT"] {
            assert_eq!(feat.lines.iter().any(|l| l == f), expected, "{f} in {:?}", feat.lines);
        }
        let help = reply(&mut t, "HELP").text();
        assert_eq!(help.contains("AUTH") && help.contains("PBSZ") && help.contains("PROT"), expected, "{help}");
    }
}

// RFC 2228/4217 sequencing: PBSZ and PROT need AUTH first (503), PROT needs PBSZ (503); unknown mechanisms are
// 504; a second AUTH is 503; PROT S and E are not TLS levels (536); an unknown level is 504.
#[test]
fn auth_pbsz_prot_sequencing() {
    let mut t = tls_fresh(false);
    assert_eq!(t.line("PBSZ 0"), vec![503]);
    assert_eq!(t.line("PROT P"), vec![503]);
    assert_eq!(t.line("AUTH KERBEROS_V4"), vec![504]);
    assert_eq!(t.line("AUTH TLS"), vec![234]);
    assert!(starts_tls(&mut t));
    assert_eq!(t.line("AUTH TLS"), vec![503]);
    assert!(!starts_tls(&mut t));
    assert_eq!(t.line("PROT P"), vec![503]);
    assert_eq!(t.line("PBSZ x"), vec![501]);
    let r = reply(&mut t, "PBSZ 16384");
    assert_eq!((r.code, r.text()), (200, "PBSZ=0".to_string()));
    assert_eq!(t.line("PROT S"), vec![536]);
    assert_eq!(t.line("PROT E"), vec![536]);
    assert_eq!(t.line("PROT X"), vec![504]);
    assert_eq!(t.line("PROT p"), vec![200]);
    assert_eq!(t.line("PROT C"), vec![200]);
}

// curl sends AUTH SSL first; it means the same as AUTH TLS.
#[test]
fn auth_ssl_is_auth_tls() {
    let mut t = tls_fresh(false);
    assert_eq!(t.line("AUTH SSL"), vec![234]);
    assert!(starts_tls(&mut t));
}

// AUTH after login: the client logs in again on the protected connection (RFC 2228), and its open data channel
// goes.
#[test]
fn auth_after_login_requires_login_again() {
    let mut t = tls_fresh(false);
    login(&mut t);
    t.line("PASV");
    t.actions();
    t.outcome(Outcome::PassiveReady("127.0.0.1:5001".parse().unwrap()));
    assert_eq!(t.line("AUTH TLS"), vec![234]);
    let acts = t.actions();
    assert!(matches!(acts.as_slice(), [Action::CloseData, Action::StartTls]), "{acts:?}");
    assert_eq!(t.line("PWD"), vec![530]);
    login(&mut t);
}

// Commands queued behind a running transfer and AUTH TLS arrived in plaintext: they are dropped, never run inside
// the protected session (the STARTTLS command-injection attack).
#[test]
fn lines_behind_auth_are_never_run() {
    let mut t = tls_fresh(false);
    login(&mut t);
    std::fs::write(t.root().join("a.txt"), b"x").unwrap();
    t.line("PASV");
    t.actions();
    t.outcome(Outcome::PassiveReady("127.0.0.1:5001".parse().unwrap()));
    t.outcome(Outcome::DataConnected);
    assert_eq!(t.line("RETR a.txt"), vec![150]);
    t.actions();
    assert_eq!(t.line("AUTH TLS"), Vec::<u16>::new());
    assert_eq!(t.line("DELE a.txt"), Vec::<u16>::new());
    assert_eq!(t.outcome(Outcome::TransferDone { bytes: 1 }), vec![226, 234]);
    assert!(starts_tls(&mut t));
    assert!(t.root().join("a.txt").exists(), "a command sent after AUTH in plaintext was run");
}

// PROT P makes every later transfer TLS; PROT C (or no PROT) keeps them clear.
#[test]
fn prot_decides_data_connection_tls() {
    let mut t = tls_fresh(false);
    login(&mut t);
    assert!(!transfer_tls(&mut t, "LIST"), "no AUTH: clear");
    secure(&mut t, "P");
    login(&mut t);
    assert!(transfer_tls(&mut t, "LIST"));
    assert!(transfer_tls(&mut t, "STOR up.bin"));
    assert_eq!(t.line("PROT C"), vec![200]);
    assert!(!transfer_tls(&mut t, "NLST"));
}

// STAT says what is protected.
#[test]
fn stat_shows_protection() {
    let mut t = tls_fresh(false);
    secure(&mut t, "P");
    login(&mut t);
    let stat = reply(&mut t, "STAT").text();
    assert!(stat.contains("control and data connections TLS"), "{stat}");
}

// ---- --require-tls ---------------------------------------------------------------------------------------------

// Before AUTH TLS, USER and PASS are refused with 534 (policy), so no password is accepted over plaintext; after
// it they work.
#[test]
fn require_tls_refuses_plaintext_login() {
    let mut t = tls_fresh(true);
    assert_eq!(t.line("USER anonymous"), vec![534]);
    assert_eq!(t.line("PASS secret"), vec![534]);
    assert_eq!(t.line("PWD"), vec![530]);
    assert!(t.actions().is_empty(), "no password check may start");
    assert_eq!(t.line("AUTH TLS"), vec![234]);
    login(&mut t);
}

// With TLS on the control connection but clear data, transfers are refused with 521 and PROT C with 534; PROT P
// makes them work.
#[test]
fn require_tls_refuses_clear_data() {
    let mut t = tls_fresh(true);
    assert_eq!(t.line("AUTH TLS"), vec![234]);
    login(&mut t);
    assert_eq!(t.line("PASV"), Vec::<u16>::new());
    t.actions();
    t.outcome(Outcome::PassiveReady("127.0.0.1:5001".parse().unwrap()));
    for cmd in ["LIST", "RETR a.txt", "STOR b", "NLST"] {
        assert_eq!(t.line(cmd), vec![521], "{cmd}");
    }
    assert_eq!(t.line("PBSZ 0"), vec![200]);
    assert_eq!(t.line("PROT C"), vec![534]);
    assert_eq!(t.line("PROT P"), vec![200]);
    assert!(transfer_tls(&mut t, "LIST"));
}

// ---- implicit FTPS ---------------------------------------------------------------------------------------------

// On the implicit port the connection is TLS from the start and PROT P is implied: no AUTH (503), login allowed
// even with --require-tls, transfers TLS without PBSZ/PROT.
#[test]
fn implicit_tls_implies_prot_p() {
    let mut t = tls_fresh(true);
    t.s.start_implicit_tls();
    assert_eq!(t.line("AUTH TLS"), vec![503]);
    login(&mut t);
    assert!(transfer_tls(&mut t, "LIST"));
    assert_eq!(t.line("PROT C"), vec![534]);
}
