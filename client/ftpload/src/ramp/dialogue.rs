//! One ramp session's conversation with the server, as a pure state machine: no sockets, no clock, no counters.
//!
//! The event loop ([`super::event_loop`]) owns the sockets and feeds this machine what happened: the control
//! connection came up, a reply arrived, the data connection came up, ended or broke, a wait ran out. Each input
//! returns the [`Step`] the loop carries out next (send a command, open the data connection, count a finished
//! transfer ...) or the [`FtpError`] that ends the session. The conversation is the one the thread version's
//! [`ftp_client::FtpClient`] holds for the same work, so errors read and count alike: the greeting (120 "wait"
//! replies tolerated), USER and PASS if asked (331), TYPE I; then for every transfer EPSV, or PASV from the first
//! time the server refuses EPSV with 500-502, the data connection to the control connection's peer (never to a
//! host a 227 names), RETR, 125/150, and 226/250. Data may end before or after the final reply, and even before the
//! 150 is read (the two arrive on different sockets), so a transfer is done once both the data has ended and the
//! server has confirmed it. After a data failure the server's refusal (426, 451 ...) is the better explanation if
//! it sends one, as in the library.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use ftp_client::{check_command_line, passive_data_address, FtpError, Reply, MAX_DELAY_REPLIES, TRANSFER_DONE};
use ftp_common::ReplyError;

use crate::control::io_error;

/// The command lines every session of a run sends, rendered once.
#[derive(Debug)]
pub struct Script {
    user: String,
    pass: String,
    retr: String,
}

impl Script {
    /// The lines for logging in as `user` with `pass` and downloading `file`. A line break in any of them would
    /// smuggle in a second command, so it is refused.
    pub fn new(user: &str, pass: &str, file: &str) -> Result<Script, FtpError> {
        let script =
            Script { user: format!("USER {user}"), pass: format!("PASS {pass}"), retr: format!("RETR {file}") };
        for cmd in [Cmd::User, Cmd::Pass, Cmd::Retr] {
            check_command_line(script.line(cmd))?;
        }
        Ok(script)
    }

    /// The line that is sent, without its line end.
    pub fn line(&self, cmd: Cmd) -> &str {
        match cmd {
            Cmd::User => &self.user,
            Cmd::Pass => &self.pass,
            Cmd::Type => "TYPE I",
            Cmd::Epsv => "EPSV",
            Cmd::Pasv => "PASV",
            Cmd::Retr => &self.retr,
        }
    }

    /// The line as errors show it: the password is hidden.
    pub fn label(&self, cmd: Cmd) -> &str {
        match cmd {
            Cmd::Pass => "PASS ****",
            other => self.line(other),
        }
    }
}

/// The commands a session sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    User,
    Pass,
    Type,
    Epsv,
    Pasv,
    Retr,
}

/// What the event loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing until the next input.
    Wait,
    /// Send this command.
    Send(Cmd),
    /// Open the data connection to this address; report the outcome with [`Dialogue::data_connected`] or
    /// [`Dialogue::data_failed`].
    Connect(SocketAddr),
    /// The server has started the transfer (125 or 150): the session is streaming.
    Started,
    /// Logged in: count the session, then send this command (EPSV or PASV) to begin the first transfer.
    LoggedIn(Cmd),
    /// A transfer is complete (its data ended and the server confirmed it): count it, then send this command to
    /// begin the next.
    Finished(Cmd),
}

/// The server's side of a transfer: its replies to RETR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirm {
    /// RETR sent; 125 or 150 expected.
    Awaiting,
    /// Started; 226 or 250 expected.
    Running,
    /// The server reported the transfer complete.
    Done,
}

/// The data connection's side of a transfer.
#[derive(Debug)]
enum DataEnd {
    Open,
    /// End of file: every byte has arrived.
    Ended,
    /// Broke; the error is reported once the server has said why, or has not in time.
    Failed(FtpError),
}

/// Where the conversation is.
#[derive(Debug)]
enum Phase {
    /// The control connection is being opened.
    Connecting,
    /// Awaiting the greeting; `delays` 120 replies so far.
    Greeting { delays: usize },
    /// This command was sent; its reply is awaited.
    Awaiting(Cmd),
    /// The data connection to this address is being opened; RETR follows once it is up.
    DataConnecting(SocketAddr),
    /// RETR was sent.
    Transfer { confirm: Confirm, data: DataEnd },
}

/// One session's conversation.
#[derive(Debug)]
pub struct Dialogue {
    phase: Phase,
    /// The control connection's peer: where passive data connections go.
    target: SocketAddr,
    /// Set once the server refused EPSV: PASV from then on.
    epsv_refused: bool,
    script: Arc<Script>,
}

impl Dialogue {
    /// A session about to connect to `target`.
    pub fn new(target: SocketAddr, script: Arc<Script>) -> Dialogue {
        Dialogue { phase: Phase::Connecting, target, epsv_refused: false, script }
    }

    /// The line to send for `cmd`.
    pub fn line(&self, cmd: Cmd) -> &str {
        self.script.line(cmd)
    }

    /// True from the first EPSV or PASV on: the session is in its transfer loop, so the end of the run cuts a
    /// transfer short.
    pub fn transferring(&self) -> bool {
        matches!(self.phase, Phase::Awaiting(Cmd::Epsv | Cmd::Pasv) | Phase::DataConnecting(_) | Phase::Transfer { .. })
    }

    /// True while the data connection of a transfer is open and has not ended: its data is what is awaited.
    pub fn receiving(&self) -> bool {
        matches!(self.phase, Phase::Transfer { data: DataEnd::Open, .. })
    }

    /// True until the control connection is up.
    pub fn connecting(&self) -> bool {
        matches!(self.phase, Phase::Connecting)
    }

    /// The control connection is up.
    pub fn connected(&mut self) {
        if matches!(self.phase, Phase::Connecting) {
            self.phase = Phase::Greeting { delays: 0 };
        }
    }

    /// A complete reply arrived.
    pub fn handle_reply(&mut self, reply: Reply) -> Result<Step, FtpError> {
        match &mut self.phase {
            Phase::Greeting { delays } => match reply.code {
                // RFC 959 §4.2: 120 promises the greeting later.
                120 if *delays < MAX_DELAY_REPLIES => {
                    *delays += 1;
                    Ok(Step::Wait)
                }
                220 => Ok(self.send(Cmd::User)),
                _ => unexpected(self.label(), reply),
            },
            Phase::Awaiting(cmd) => {
                let cmd = *cmd;
                match (cmd, reply.code) {
                    (Cmd::User, 230) | (Cmd::Pass, 230 | 202) => Ok(self.send(Cmd::Type)),
                    (Cmd::User, 331) => Ok(self.send(Cmd::Pass)),
                    (Cmd::Type, 200) => Ok(Step::LoggedIn(self.begin_transfer())),
                    (Cmd::Epsv, 229) | (Cmd::Pasv, 227) => {
                        // The peer's IP, never the one a 227 names (PASV bounce).
                        let Some(addr) = passive_data_address(self.target, &reply, false) else {
                            let what = if cmd == Cmd::Epsv { "no port" } else { "no address" };
                            return Err(FtpError::Protocol(format!("{}: {what} in {reply}", self.line(cmd))));
                        };
                        self.phase = Phase::DataConnecting(addr);
                        Ok(Step::Connect(addr))
                    }
                    // RFC 2428 §3: a server without EPSV says so with 500-502; PASV from now on.
                    (Cmd::Epsv, 500..=502) => {
                        self.epsv_refused = true;
                        Ok(self.send(Cmd::Pasv))
                    }
                    _ => unexpected(self.script.label(cmd), reply),
                }
            }
            Phase::Transfer { confirm, data } => {
                match (*confirm, reply.code) {
                    (Confirm::Awaiting, 125 | 150) => {
                        *confirm = Confirm::Running;
                        // After a data failure the final reply is still awaited, for the server's reason.
                        Ok(if matches!(data, DataEnd::Failed(_)) { Step::Wait } else { Step::Started })
                    }
                    (Confirm::Running, code) if TRANSFER_DONE.contains(&code) => match data {
                        DataEnd::Open => {
                            *confirm = Confirm::Done;
                            Ok(Step::Wait)
                        }
                        DataEnd::Ended => Ok(Step::Finished(self.begin_transfer())),
                        DataEnd::Failed(_) => Err(self.take_failure()),
                    },
                    // Anything else ends the transfer: a refusal (550, 425, 426 ...), a final reply before the
                    // transfer started, a second preliminary one, or a reply out of turn.
                    _ => unexpected(self.script.label(Cmd::Retr), reply),
                }
            }
            // Nothing was asked: whatever the server says is out of turn.
            Phase::Connecting | Phase::DataConnecting(_) => unexpected(self.label(), reply),
        }
    }

    /// The data connection is up: send RETR.
    pub fn data_connected(&mut self) -> Step {
        match self.phase {
            Phase::DataConnecting(_) => {
                self.phase = Phase::Transfer { confirm: Confirm::Awaiting, data: DataEnd::Open };
                Step::Send(Cmd::Retr)
            }
            _ => Step::Wait,
        }
    }

    /// The data connection reached end of file.
    pub fn data_ended(&mut self) -> Step {
        match &mut self.phase {
            Phase::Transfer { confirm, data: data @ DataEnd::Open } => {
                *data = DataEnd::Ended;
                if *confirm == Confirm::Done {
                    Step::Finished(self.begin_transfer())
                } else {
                    Step::Wait
                }
            }
            _ => Step::Wait,
        }
    }

    /// The data connection could not be opened or broke with `err`. Opening it fails the session at once (RETR
    /// was not sent); a transfer that broke waits for the server's final reply, which explains it better if it is
    /// a refusal.
    pub fn data_failed(&mut self, err: FtpError) -> Result<Step, FtpError> {
        match &mut self.phase {
            Phase::Transfer { confirm: Confirm::Awaiting | Confirm::Running, data: data @ DataEnd::Open } => {
                *data = DataEnd::Failed(err);
                Ok(Step::Wait)
            }
            _ => Err(err),
        }
    }

    /// The error that ends a session whose wait ran out (`--timeout` without progress).
    pub fn timed_out(&mut self) -> FtpError {
        let timed_out = |what: &str| io::Error::new(io::ErrorKind::TimedOut, what.to_string());
        match &self.phase {
            Phase::Transfer { data: DataEnd::Failed(_), .. } => self.take_failure(),
            Phase::Transfer { data: DataEnd::Open, .. } => {
                io_error(format!("{}: receiving data", self.line(Cmd::Retr)), timed_out("no data in time"))
            }
            Phase::Connecting | Phase::DataConnecting(_) => io_error(self.label(), timed_out("connection timed out")),
            _ => io_error(format!("waiting for the reply to {}", self.label()), timed_out("no complete reply in time")),
        }
    }

    /// The error that ends a session whose control connection the server closed.
    pub fn closed(&mut self) -> FtpError {
        match self.phase {
            Phase::Transfer { data: DataEnd::Failed(_), .. } => self.take_failure(),
            _ => FtpError::Closed,
        }
    }

    /// The error that ends a session whose control connection failed with `err` while awaiting a reply.
    pub fn control_failed(&mut self, err: io::Error) -> FtpError {
        match self.phase {
            Phase::Transfer { data: DataEnd::Failed(_), .. } => self.take_failure(),
            Phase::Connecting => io_error(self.label(), err),
            _ => io_error(format!("waiting for the reply to {}", self.label()), err),
        }
    }

    /// The error that ends a session whose server sent something that is not a reply.
    pub fn malformed(&self, err: ReplyError) -> FtpError {
        FtpError::Protocol(format!("{}: {err}", self.label()))
    }

    /// What the session is waiting for, as errors name it.
    pub fn label(&self) -> Label<'_> {
        Label(self)
    }

    /// EPSV, or PASV once the server has refused EPSV: the first command of a transfer.
    fn begin_transfer(&mut self) -> Cmd {
        let cmd = if self.epsv_refused { Cmd::Pasv } else { Cmd::Epsv };
        self.phase = Phase::Awaiting(cmd);
        cmd
    }

    fn send(&mut self, cmd: Cmd) -> Step {
        self.phase = Phase::Awaiting(cmd);
        Step::Send(cmd)
    }

    /// The data failure a transfer was holding, leaving the transfer without one.
    fn take_failure(&mut self) -> FtpError {
        match &mut self.phase {
            Phase::Transfer { data, .. } => match std::mem::replace(data, DataEnd::Ended) {
                DataEnd::Failed(err) => err,
                _ => FtpError::Closed,
            },
            _ => FtpError::Closed,
        }
    }
}

/// A reply that `command` does not accept.
fn unexpected(command: impl fmt::Display, reply: Reply) -> Result<Step, FtpError> {
    Err(FtpError::Unexpected { command: command.to_string(), reply })
}

/// The name of what a session is waiting for: the command awaiting its reply, or the connection being opened.
pub struct Label<'a>(&'a Dialogue);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        match &d.phase {
            Phase::Connecting => write!(f, "connecting to {}", d.target),
            Phase::Greeting { .. } => write!(f, "greeting from {}", d.target),
            Phase::Awaiting(cmd) => f.write_str(d.script.label(*cmd)),
            Phase::DataConnecting(addr) => write!(f, "opening the data connection to {addr}"),
            Phase::Transfer { .. } => f.write_str(d.script.label(Cmd::Retr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "127.0.0.1:2121";

    fn reply(code: u16, text: &str) -> Reply {
        Reply { code, lines: vec![text.to_string()] }
    }

    fn target() -> SocketAddr {
        TARGET.parse().expect("address")
    }

    #[track_caller]
    fn step(d: &mut Dialogue, code: u16, text: &str) -> Step {
        d.handle_reply(reply(code, text)).unwrap_or_else(|e| panic!("{code} {text}: {e}"))
    }

    #[track_caller]
    fn refused(d: &mut Dialogue, code: u16, text: &str) -> FtpError {
        match d.handle_reply(reply(code, text)) {
            Ok(step) => panic!("{code} {text} was taken: {step:?}"),
            Err(e) => e,
        }
    }

    #[track_caller]
    fn unexpected(err: &FtpError) -> (&str, u16) {
        match err {
            FtpError::Unexpected { command, reply } => (command.as_str(), reply.code),
            other => panic!("not an unexpected reply: {other:?}"),
        }
    }

    #[track_caller]
    fn io_kind(err: &FtpError) -> io::ErrorKind {
        match err {
            FtpError::Io(e) => e.kind(),
            other => panic!("not an I/O error: {other:?}"),
        }
    }

    fn dialogue() -> Dialogue {
        let script = Script::new("anonymous", "secret", "big.bin").expect("script");
        let mut d = Dialogue::new(target(), Arc::new(script));
        d.connected();
        d
    }

    // ---- fixtures: one per state ----

    /// Logged in, EPSV sent.
    fn logged_in() -> Dialogue {
        let mut d = dialogue();
        assert_eq!(step(&mut d, 220, "hello"), Step::Send(Cmd::User));
        assert_eq!(step(&mut d, 331, "password?"), Step::Send(Cmd::Pass));
        assert_eq!(step(&mut d, 230, "in"), Step::Send(Cmd::Type));
        assert_eq!(step(&mut d, 200, "binary"), Step::LoggedIn(Cmd::Epsv));
        d
    }

    /// RETR sent over a connected data connection.
    fn retr_sent() -> Dialogue {
        let mut d = logged_in();
        assert_eq!(step(&mut d, 229, "Entering Extended Passive Mode (|||40000|)"), Step::Connect(addr(40000)));
        assert_eq!(d.data_connected(), Step::Send(Cmd::Retr));
        assert!(d.receiving());
        d
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(target().ip(), port)
    }

    // ---- logging in ----

    #[test]
    fn login_with_password_then_binary_type() {
        let d = logged_in();
        assert!(d.transferring());
        assert_eq!(d.line(Cmd::User), "USER anonymous");
        assert_eq!(d.line(Cmd::Pass), "PASS secret");
        assert_eq!(d.line(Cmd::Retr), "RETR big.bin");
    }

    // RFC 959: 230 to USER logs in without a password.
    #[test]
    fn user_alone_may_log_in() {
        let mut d = dialogue();
        step(&mut d, 220, "hello");
        assert_eq!(step(&mut d, 230, "no password needed"), Step::Send(Cmd::Type));
        // 202 to PASS (superfluous) also means logged in.
        let mut d = dialogue();
        step(&mut d, 220, "hello");
        step(&mut d, 331, "password?");
        assert_eq!(step(&mut d, 202, "already"), Step::Send(Cmd::Type));
    }

    // RFC 959 §4.2: 120 promises the greeting later; a few are waited out, endless ones are not.
    #[test]
    fn greeting_delays_are_bounded() {
        let mut d = dialogue();
        for _ in 0..MAX_DELAY_REPLIES {
            assert_eq!(step(&mut d, 120, "soon"), Step::Wait);
        }
        assert_eq!(unexpected(&refused(&mut d, 120, "soon")), ("greeting from 127.0.0.1:2121", 120));
        let mut d = dialogue();
        assert_eq!(unexpected(&refused(&mut d, 421, "too many")), ("greeting from 127.0.0.1:2121", 421));
    }

    // The refused command is named as the library names it, the password hidden.
    #[test]
    fn login_refusals_name_the_command() {
        let mut d = dialogue();
        step(&mut d, 220, "hello");
        step(&mut d, 331, "password?");
        let err = refused(&mut d, 530, "Login incorrect");
        assert_eq!(unexpected(&err), ("PASS ****", 530));
        assert!(!err.to_string().contains("secret"), "{err}");
        let mut d = dialogue();
        step(&mut d, 220, "hello");
        assert_eq!(unexpected(&refused(&mut d, 530, "no")), ("USER anonymous", 530));
        let mut d = dialogue();
        step(&mut d, 220, "hello");
        step(&mut d, 230, "in");
        assert_eq!(unexpected(&refused(&mut d, 504, "no such type")), ("TYPE I", 504));
    }

    #[test]
    fn line_breaks_in_commands_are_refused() {
        assert!(matches!(Script::new("a\r\nDELE x", "p", "f"), Err(FtpError::Protocol(_))));
        assert!(matches!(Script::new("a", "p\n", "f"), Err(FtpError::Protocol(_))));
        assert!(matches!(Script::new("a", "p", "f\rx"), Err(FtpError::Protocol(_))));
    }

    // ---- passive mode ----

    // RFC 2428 §3: the data connection goes to the control connection's peer at the port EPSV names.
    #[test]
    fn epsv_names_the_port() {
        let mut d = logged_in();
        assert_eq!(step(&mut d, 229, "Entering Extended Passive Mode (|||50001|)"), Step::Connect(addr(50001)));
        assert_eq!(d.label().to_string(), "opening the data connection to 127.0.0.1:50001");
        let mut d = logged_in();
        assert!(matches!(refused(&mut d, 229, "no port here"), FtpError::Protocol(m) if m.contains("EPSV: no port")));
    }

    // RFC 2428 §3: a server without EPSV answers 500-502; PASV is used then and for every later transfer. The host
    // a 227 names is ignored (PASV bounce): data goes to the control connection's peer.
    #[test]
    fn pasv_after_epsv_is_refused_and_from_then_on() {
        let mut d = logged_in();
        assert_eq!(step(&mut d, 502, "not implemented"), Step::Send(Cmd::Pasv));
        assert_eq!(step(&mut d, 227, "Entering Passive Mode (10,1,2,3,195,81)"), Step::Connect(addr(50001)));
        assert_eq!(d.data_connected(), Step::Send(Cmd::Retr));
        step(&mut d, 150, "here it comes");
        assert_eq!(d.data_ended(), Step::Wait);
        assert_eq!(step(&mut d, 226, "done"), Step::Finished(Cmd::Pasv));
        assert!(matches!(refused(&mut d, 227, "garbage"), FtpError::Protocol(m) if m.contains("PASV: no address")));
    }

    #[test]
    fn other_epsv_refusals_end_the_session() {
        let mut d = logged_in();
        assert_eq!(unexpected(&refused(&mut d, 425, "no ports left")), ("EPSV", 425));
        let mut d = logged_in();
        step(&mut d, 502, "no EPSV");
        assert_eq!(unexpected(&refused(&mut d, 502, "no PASV either")), ("PASV", 502));
    }

    // ---- transfers ----

    #[test]
    fn transfer_done_when_data_ends_after_the_final_reply() {
        let mut d = retr_sent();
        assert_eq!(step(&mut d, 150, "opening"), Step::Started);
        assert_eq!(step(&mut d, 226, "complete"), Step::Wait);
        assert!(d.receiving(), "the data is still to be read");
        assert_eq!(d.data_ended(), Step::Finished(Cmd::Epsv));
        assert!(!d.receiving());
    }

    // Data and replies come on different connections: the data may end before the 150 is read.
    #[test]
    fn transfer_done_when_data_ends_first() {
        let mut d = retr_sent();
        assert_eq!(d.data_ended(), Step::Wait);
        assert_eq!(step(&mut d, 125, "already open"), Step::Started);
        assert_eq!(step(&mut d, 250, "ok"), Step::Finished(Cmd::Epsv));
    }

    #[test]
    fn transfer_refusals_name_retr() {
        let mut d = retr_sent();
        assert_eq!(unexpected(&refused(&mut d, 550, "no such file")), ("RETR big.bin", 550));
        // The final reply before the transfer started, and a second preliminary one, are out of turn.
        let mut d = retr_sent();
        assert_eq!(unexpected(&refused(&mut d, 226, "done already?")), ("RETR big.bin", 226));
        let mut d = retr_sent();
        step(&mut d, 150, "opening");
        assert_eq!(unexpected(&refused(&mut d, 150, "again")), ("RETR big.bin", 150));
        // A reply after the transfer was confirmed, while its data is still read, is out of turn too.
        let mut d = retr_sent();
        step(&mut d, 150, "opening");
        step(&mut d, 226, "done");
        assert_eq!(unexpected(&refused(&mut d, 421, "bye")), ("RETR big.bin", 421));
    }

    // After the data connection breaks, the server's refusal explains it better; a 226 or silence does not.
    #[test]
    fn a_broken_transfer_waits_for_the_servers_reason() {
        let broken = || io_error("RETR big.bin: receiving data", io::Error::from(io::ErrorKind::ConnectionReset));
        let mut d = retr_sent();
        step(&mut d, 150, "opening");
        assert_eq!(d.data_failed(broken()).expect("waits"), Step::Wait);
        assert_eq!(unexpected(&refused(&mut d, 426, "aborted")), ("RETR big.bin", 426));

        let mut d = retr_sent();
        step(&mut d, 150, "opening");
        d.data_failed(broken()).expect("waits");
        assert_eq!(io_kind(&refused(&mut d, 226, "fine by me")), io::ErrorKind::ConnectionReset);

        let mut d = retr_sent();
        d.data_failed(broken()).expect("waits");
        assert_eq!(step(&mut d, 150, "opening"), Step::Wait);
        assert_eq!(io_kind(&d.closed()), io::ErrorKind::ConnectionReset);

        let mut d = retr_sent();
        d.data_failed(broken()).expect("waits");
        assert_eq!(io_kind(&d.timed_out()), io::ErrorKind::ConnectionReset);

        // Confirmed by the server, then broken: nothing more will come.
        let mut d = retr_sent();
        step(&mut d, 150, "opening");
        step(&mut d, 226, "done");
        assert_eq!(io_kind(&d.data_failed(broken()).expect_err("fails")), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn a_data_connection_that_cannot_open_fails_at_once() {
        let mut d = logged_in();
        step(&mut d, 229, "(|||40000|)");
        let err = io_error(d.label(), io::Error::from(io::ErrorKind::ConnectionRefused));
        let err = d.data_failed(err).expect_err("fails");
        assert_eq!(err.to_string(), "opening the data connection to 127.0.0.1:40000: connection refused");
    }

    // ---- waits that run out, and connections that close ----

    #[test]
    fn timeouts_say_what_was_awaited() {
        let script = Arc::new(Script::new("u", "p", "f").expect("script"));
        let mut d = Dialogue::new(target(), script);
        let err = d.timed_out();
        assert_eq!(io_kind(&err), io::ErrorKind::TimedOut);
        assert!(err.to_string().starts_with("connecting to 127.0.0.1:2121"), "{err}");
        d.connected();
        assert!(d.timed_out().to_string().starts_with("waiting for the reply to greeting from 127.0.0.1:2121"));
        let mut d = logged_in();
        assert!(d.timed_out().to_string().starts_with("waiting for the reply to EPSV"));
        let mut d = retr_sent();
        let err = d.timed_out();
        assert_eq!(io_kind(&err), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "RETR big.bin: receiving data: no data in time");
        d.data_ended();
        assert!(d.timed_out().to_string().starts_with("waiting for the reply to RETR big.bin"));
    }

    #[test]
    fn closed_and_malformed_control_connections() {
        let mut d = logged_in();
        assert!(matches!(d.closed(), FtpError::Closed));
        let err = d.malformed(ReplyError::Malformed("hello".into()));
        assert!(matches!(&err, FtpError::Protocol(m) if m.starts_with("EPSV: malformed reply line")), "{err}");
        let err = d.control_failed(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(io_kind(&err), io::ErrorKind::ConnectionReset);
        assert!(err.to_string().starts_with("waiting for the reply to EPSV"), "{err}");
    }

    // A reply while nothing was asked is out of turn, whatever it says.
    #[test]
    fn replies_out_of_turn() {
        let mut d = logged_in();
        step(&mut d, 229, "(|||40000|)");
        assert_eq!(
            unexpected(&refused(&mut d, 421, "closing")),
            ("opening the data connection to 127.0.0.1:40000", 421)
        );
    }

    // Whatever the server sends, in whatever order, the dialogue answers without panicking.
    #[test]
    fn any_reply_in_any_state_is_answered() {
        let codes =
            [110, 120, 125, 150, 200, 202, 220, 221, 226, 227, 229, 230, 250, 331, 421, 425, 426, 500, 502, 550];
        let texts = ["", "(|||0|)", "(|||65535|)", "(1,2,3,4,0,0)", "(|||x|)", "=127,0,0,1,4,1"];
        for first in codes {
            for second in codes {
                for text in texts {
                    let mut d = retr_sent();
                    let _ = d.handle_reply(reply(first, text));
                    let _ = d.data_ended();
                    let _ = d.handle_reply(reply(second, text));
                    let mut d = logged_in();
                    let _ = d.handle_reply(reply(first, text));
                    let _ = d.handle_reply(reply(second, text));
                    let _ = d.timed_out();
                }
            }
        }
    }
}
