//! One client's control session as a pure state machine: no sockets, no clock, no poll.
//!
//! Inputs are [`Session::handle_line`], [`Session::handle_outcome`] (what the loop's I/O achieved),
//! [`Session::handle_timeout`] and [`Session::handle_shutdown`]; outputs are [`Session::poll_reply`],
//! [`Session::poll_action`] and [`Session::poll_timeout`]. The current time is always passed in. The session
//! touches no file: it asks the storage ([`Action::Storage`], see [`crate::storage`]) and acts on the answer
//! ([`Outcome::Storage`]), queueing the client's next commands meanwhile. Every reply about a transfer (150, 226,
//! 425, 426, 451, 452) is decided here; the data side only reports how its I/O went.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use ftp_common::{Command, Line, ParseError, Reply, ReplyCode};
use log::{debug, info, trace, warn};

use crate::access::{Access, Account, Perm, Perms};
use crate::facts::Facts;
use crate::fs::{TempPath, VPath};
use crate::hash::Algorithm;
use crate::storage::{Done, Home, Op, Request};
use crate::transfer::{Transfer, TransferError};

mod control_cmds;
mod file_cmds;
mod io_types;
mod security_cmds;
mod transfer_cmds;

pub use io_types::{Action, Outcome};
use security_cmds::Security;

/// Commands queued while a transfer runs (RFC 959 lets the server answer them after it). Past this the loop
/// stops reading from the client, so a pipelining client cannot make the session hold more.
pub const MAX_DEFERRED: usize = 16;

/// Verbs the parser knows that this server answers with 502 (see the last arms of `dispatch`).
const NOT_IMPLEMENTED: &[&str] = &["REIN"];

/// The FTPS verbs, answered with 502 like [`NOT_IMPLEMENTED`] when no certificate is configured.
const TLS_VERBS: &[&str] = &["AUTH", "PBSZ", "PROT"];

/// How long a closing session waits for its last replies to drain before the connection is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// What a session does with the storage's answer to its request.
type Then = Box<dyn FnOnce(&mut Session, Now, Done)>;

/// The kinds of deadline a session has; [`Session::next_due`] says which comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// A closing session's last replies did not drain in time.
    CloseGrace,
    /// The data connection was not established (or used) in time.
    Data,
    /// The delay before a failed login's 530 is over.
    FailureDelay,
    /// Not logged in in time.
    Login,
    /// No command for too long.
    Idle,
}

impl Due {
    const KINDS: usize = 5;
}

/// The instant the loop observed, both monotonic (timers) and wall-clock (listings, logs).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn from_system() -> Now {
        Now { mono: Instant::now(), wall: SystemTime::now() }
    }
}

/// Server-wide counts the loop keeps current, shown by STAT.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Control connections.
    pub sessions: std::cell::Cell<usize>,
    /// Every socket and job the loop holds: control, passive listeners, data connections, HASH jobs.
    pub connections: std::cell::Cell<usize>,
    /// Which event loop this is (`--workers`), and how many there are.
    pub worker: usize,
    pub workers: usize,
    /// The worker's counters for `/metrics`.
    pub metrics: std::sync::Arc<crate::metrics::WorkerMetrics>,
}

/// Settings every session shares.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// A session with no command for this long gets 421 and is closed.
    pub idle_timeout: Duration,
    /// How long a passive listener waits for the client's data connection.
    pub data_timeout: Duration,
    /// Time from connecting to a successful login before the session is closed.
    pub login_timeout: Duration,
    /// Failed logins allowed per connection; the last one is followed by 421 and a close.
    pub max_login_failures: u32,
    /// How long a failed login waits before its 530 (a timer, never a sleep).
    pub login_failure_delay: Duration,
    /// The address PASV replies advertise instead of the control connection's local address.
    pub pasv_address: Option<std::net::Ipv4Addr>,
    /// A certificate is configured: AUTH TLS, PBSZ and PROT work (and FEAT says so).
    pub tls: bool,
    /// `--require-tls`: no login before AUTH TLS, no data connection without PROT P.
    pub require_tls: bool,
    /// `--hook` or `--xferlog` is set: finished events are reported (as [`Action::Event`]).
    pub events: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(30),
            login_timeout: Duration::from_secs(60),
            max_login_failures: 3,
            login_failure_delay: Duration::from_secs(1),
            pasv_address: None,
            tls: false,
            require_tls: false,
            events: false,
        }
    }
}

enum Login {
    AwaitingUser,
    AwaitingPass {
        user: String,
    },
    /// The password is being checked off the loop; `account` is `None` for a user that does not exist.
    Verifying {
        user: String,
        account: Option<Account>,
    },
    /// A failed login waits for its 530 until `until`.
    Failed {
        until: Instant,
    },
    LoggedIn {
        user: String,
        cwd: VPath,
    },
}

impl Login {
    fn name(&self) -> &'static str {
        match self {
            Login::AwaitingUser => "AwaitingUser",
            Login::AwaitingPass { .. } => "AwaitingPass",
            Login::Verifying { .. } => "Verifying",
            Login::Failed { .. } => "Failed",
            Login::LoggedIn { .. } => "LoggedIn",
        }
    }
}

/// A transfer prepared by a command, waiting for or running on the data connection.
struct Job {
    verb: &'static str,
    path: VPath,
    /// For uploads: the temporary file that becomes `path` once complete.
    temp: Option<TempPath>,
    /// STOU: `path` must not be replaced; if it was taken meanwhile, the next free name is used.
    unique: bool,
    /// Uploads: the size of the file the upload replaces or extends (`None`: a new file), for quota usage.
    size_before: Option<u64>,
}

impl Job {
    fn new(verb: &'static str, path: VPath) -> Job {
        Job { verb, path, temp: None, unique: false, size_before: None }
    }
}

enum Data {
    None,
    /// The loop is opening a passive listener; `extended` says whether to answer 229 (EPSV) or 227 (PASV).
    Binding {
        extended: bool,
    },
    /// Listening; `pending` is a transfer command waiting for the client to connect.
    Listening {
        since: Instant,
        pending: Option<(Job, Box<Transfer>)>,
    },
    /// Connected with no transfer yet.
    Connected {
        since: Instant,
    },
    /// PORT/EPRT given: the server connects to `addr` when a transfer command comes.
    Active {
        addr: SocketAddr,
    },
    /// Connecting to the client's PORT/EPRT address for the pending transfer.
    Connecting {
        since: Instant,
        pending: (Job, Box<Transfer>),
    },
    Transferring {
        job: Job,
        started: Instant,
    },
}

impl Data {
    fn name(&self) -> &'static str {
        match self {
            Data::None => "None",
            Data::Binding { .. } => "Binding",
            Data::Listening { pending: None, .. } => "Listening",
            Data::Listening { pending: Some(_), .. } => "Listening(pending)",
            Data::Connected { .. } => "Connected",
            Data::Active { .. } => "Active",
            Data::Connecting { .. } => "Connecting",
            Data::Transferring { .. } => "Transferring",
        }
    }
}

/// One client's control session.
pub struct Session {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    /// Where the logged-in account's files are (before login, the server's root).
    home: Home,
    /// What to do with the answer to the storage request in flight; the session is busy until it comes.
    pending: Option<Then>,
    perms: Perms,
    access: Rc<Access>,
    config: Rc<SessionConfig>,
    login: Login,
    login_failures: u32,
    connected_at: Instant,
    data: Data,
    ascii: bool,
    epsv_all: bool,
    replies: VecDeque<Reply>,
    actions: VecDeque<Action>,
    deferred: VecDeque<Line>,
    last_activity: Instant,
    /// When the session began closing; `close_cut` once the grace for its last replies has run out too.
    closing: Option<Instant>,
    close_cut: bool,
    /// The logout event was reported (a session ends once, whichever way).
    logged_out: bool,
    /// The logged-in user's place among its `max_sessions`, and its rates (the loop applies them to transfers).
    claim: Option<crate::limits::Claim>,

    shutting_down: bool,
    /// REST offset for the next RETR/STOR.
    rest: u64,
    /// RNFR's path; any command but RNTO clears it.
    rename_from: Option<VPath>,
    /// Facts chosen with OPTS MLST.
    facts: Facts,
    /// Algorithm chosen with OPTS HASH.
    hash_algorithm: Algorithm,
    stats: Option<Rc<ServerStats>>,
    /// A HASH being computed: the path and the algorithm.
    hashing: Option<(VPath, Algorithm)>,
    security: Security,
}

impl Session {
    /// A new session; the 220 greeting is queued.
    pub fn new(
        id: u64,
        peer: SocketAddr,
        local: SocketAddr,
        access: Rc<Access>,
        config: Rc<SessionConfig>,
        now: Now,
    ) -> Session {
        let mut s = Session {
            id,
            peer,
            local,
            home: access.base_home(),
            pending: None,
            perms: Perms::default(),
            access,
            config,
            login: Login::AwaitingUser,
            login_failures: 0,
            connected_at: now.mono,
            data: Data::None,
            ascii: false,
            epsv_all: false,
            replies: VecDeque::new(),
            actions: VecDeque::new(),
            deferred: VecDeque::new(),
            last_activity: now.mono,
            closing: None,
            close_cut: false,
            logged_out: false,
            claim: None,
            shutting_down: false,
            rest: 0,
            rename_from: None,
            facts: Facts::default(),
            hash_algorithm: Algorithm::Sha256,
            stats: None,
            hashing: None,
            security: Security::Plain,
        };
        s.reply(ReplyCode::ServiceReady, "FTP server ready.");
        s
    }

    // ---- getters -------------------------------------------------------------------------------------------

    /// Lets STAT show the server's live counts.
    pub fn set_stats(&mut self, stats: Rc<ServerStats>) {
        self.stats = Some(stats);
    }

    /// The session's number, as log lines show it.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The logged-in user's limits (rates shared with its other sessions), for the loop to apply to transfers.
    pub fn limits(&self) -> Option<&std::sync::Arc<crate::limits::UserLimits>> {
        self.claim.as_ref().map(crate::limits::Claim::limits)
    }

    /// Whether the loop should feed more lines. False while closing or when enough commands wait behind a
    /// running transfer.
    pub fn wants_input(&self) -> bool {
        self.closing.is_none() && self.deferred.len() < MAX_DEFERRED
    }

    /// A request is out whose answer decides the reply to the last command (a storage request, a passive
    /// listener being opened): every later line waits for it.
    fn awaits_answer(&self) -> bool {
        self.pending.is_some() || matches!(self.data, Data::Binding { .. })
    }

    /// A transfer is running or waiting for its data connection: the session is not idle.
    pub fn is_busy(&self) -> bool {
        self.hashing.is_some()
            || self.pending.is_some()
            || matches!(self.login, Login::Verifying { .. } | Login::Failed { .. })
            || matches!(
                self.data,
                Data::Transferring { .. } | Data::Listening { pending: Some(_), .. } | Data::Connecting { .. }
            )
    }

    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// The user's name as it logged in (or is logging in), `-` before USER.
    pub fn user_name(&self) -> &str {
        self.user()
    }

    /// What the session is doing, for `/sessions`: the transfer or HASH it runs, else how long it has been idle.
    pub fn activity(&self, now: Now) -> String {
        let idle = now.mono.saturating_duration_since(self.last_activity).as_secs();
        match (&self.data, &self.hashing, &self.login) {
            (Data::Transferring { job, .. }, _, _) => format!("{} {:?}", job.verb, job.path.as_str()),
            (Data::Listening { pending: Some((job, _)), .. } | Data::Connecting { pending: (job, _), .. }, _, _) => {
                format!("{} {:?} (waiting for the data connection)", job.verb, job.path.as_str())
            }
            (_, Some((path, _)), _) => format!("HASH {:?}", path.as_str()),
            (_, _, Login::LoggedIn { .. }) => format!("idle {idle} s"),
            _ => format!("logging in ({idle} s)"),
        }
    }

    fn user(&self) -> &str {
        match &self.login {
            Login::LoggedIn { user, .. } | Login::AwaitingPass { user } | Login::Verifying { user, .. } => user,
            Login::AwaitingUser | Login::Failed { .. } => "-",
        }
    }

    // ---- outputs -------------------------------------------------------------------------------------------

    pub fn poll_reply(&mut self) -> Option<Reply> {
        let r = self.replies.pop_front();
        if r.is_none() && self.replies.capacity() > 0 {
            // Idle sessions keep no queue memory.
            self.replies = VecDeque::new();
        }
        r
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        let a = self.actions.pop_front();
        if a.is_none() && self.actions.capacity() > 0 {
            self.actions = VecDeque::new();
        }
        a
    }

    /// The next instant at which [`Session::handle_timeout`] must be called. Derived from [`Session::next_due`],
    /// the one function that also decides what `handle_timeout` does, so the two cannot disagree: every instant
    /// offered here is acted on when it has passed, and acting on it moves the session on to a later one.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_due().map(|(at, _)| at)
    }

    /// The earliest deadline and what happens when it passes.
    fn next_due(&self) -> Option<(Instant, Due)> {
        if let Some(at) = self.closing {
            return (!self.close_cut).then_some((at + CLOSE_GRACE, Due::CloseGrace));
        }
        let data = match &self.data {
            Data::Listening { since, .. } | Data::Connected { since } | Data::Connecting { since, .. } => {
                Some((*since + self.config.data_timeout, Due::Data))
            }
            _ => None,
        };
        // A running transfer keeps the session alive; its own stalls are the data side's business.
        let idle = (!self.is_busy()).then(|| (self.last_activity + self.config.idle_timeout, Due::Idle));
        let login_deadline = self.connected_at + self.config.login_timeout;
        let login = match self.login {
            Login::LoggedIn { .. } => None,
            // The delay before a 530 ends first, unless the login deadline comes before it.
            Login::Failed { until } if until < login_deadline => Some((until, Due::FailureDelay)),
            // A password check still running when the deadline passes does not hold the deadline back.
            _ => Some((login_deadline, Due::Login)),
        };
        [data, idle, login].into_iter().flatten().min_by_key(|(at, _)| *at)
    }

    // ---- inputs --------------------------------------------------------------------------------------------

    /// A line from the control connection.
    pub fn handle_line(&mut self, now: Now, line: Line) {
        if self.closing.is_some() {
            return;
        }
        self.last_activity = now.mono;
        if self.is_busy() || !self.deferred.is_empty() || self.awaits_answer() {
            // Only ABOR, STAT and NOOP are answered while a transfer runs; the rest wait their turn. While the
            // loop works on a request that a reply depends on, everything waits: replies keep the commands' order.
            if self.awaits_answer() || !overtakes(&line, !self.deferred.is_empty()) {
                self.deferred.push_back(line);
                return;
            }
        }
        self.run_line(now, line);
        // An ABOR may have ended the work the queued commands were waiting for.
        self.run_deferred(now);
    }

    /// The result of an action the loop carried out.
    pub fn handle_outcome(&mut self, now: Now, outcome: Outcome) {
        trace!("session {}: outcome {:?}", self.id, outcome);
        if let Outcome::Storage(done) = outcome {
            return self.storage_done(now, done);
        }
        if self.closing.is_some() {
            // Whatever was running ended with the session; a late answer (a password check, say) changes nothing.
            return;
        }
        let was_busy = self.is_busy();
        match outcome {
            Outcome::PassiveReady(addr) => self.passive_ready(now, addr),
            Outcome::PassiveFailed(e) => {
                if matches!(self.data, Data::Binding { .. }) {
                    warn!("session {}: cannot open passive listener: {e}", self.id);
                    self.set_data(Data::None);
                    self.reply(ReplyCode::CantOpenDataConnection, "Cannot open passive connection.");
                }
            }
            Outcome::DataConnected => match std::mem::replace(&mut self.data, Data::None) {
                Data::Listening { pending: Some((job, transfer)), .. }
                | Data::Connecting { pending: (job, transfer), .. } => self.start(now, job, transfer),
                Data::Listening { pending: None, .. } => self.set_data(Data::Connected { since: now.mono }),
                other => {
                    // Not expecting a connection: keep the state, drop the connection.
                    self.data = other;
                    self.actions.push_back(Action::CloseData);
                }
            },
            Outcome::ActiveFailed(e) => match std::mem::replace(&mut self.data, Data::None) {
                Data::Connecting { pending: (job, _), .. } => {
                    debug!("session {}: active connect failed: {e}", self.id);
                    self.set_data(Data::None);
                    self.discard_temp(&job);
                    self.reply(ReplyCode::CantOpenDataConnection, format!("Cannot open data connection: {e}."));
                }
                // Not connecting: a late answer changes nothing.
                other => self.data = other,
            },
            Outcome::HashDone { hex, size } => {
                if let Some((path, algorithm)) = self.hashing.take() {
                    self.reply(ReplyCode::FileStatus, format!("{} 0-{size} {hex} {path}", algorithm.name()));
                }
            }
            Outcome::HashFailed(e) => {
                if let Some((path, _)) = self.hashing.take() {
                    self.fs_error(path.as_str(), &e);
                }
            }
            Outcome::Verified(ok) => self.verified(now, ok),
            Outcome::VerifierBusy => self.verifier_busy(now),
            Outcome::TransferDone { bytes } => self.finish(now, bytes, None),
            Outcome::TransferFailed { bytes, error } => self.finish(now, bytes, Some(error)),
            Outcome::Storage(_) => {}
        }
        self.after_input(now, was_busy);
    }

    /// The storage answered the request in flight. A session that closed meanwhile wants nothing from it but
    /// that a temporary it created is removed again.
    fn storage_done(&mut self, now: Now, done: Done) {
        let then = match self.pending.take() {
            Some(then) if self.closing.is_none() => then,
            _ => {
                if let Some(temp) = done.into_temp() {
                    self.discard(temp);
                }
                return;
            }
        };
        then(self, now, done);
        // Busy until now by definition; what the answer started may keep it busy.
        self.after_input(now, true);
    }

    /// Asks the storage for `op`; `then` runs with its answer. One request at a time: the session is busy until
    /// the answer comes, so the commands that follow wait (see [`Session::handle_line`]).
    fn request(&mut self, op: Op, then: impl FnOnce(&mut Session, Now, Done) + 'static) {
        if self.pending.is_some() {
            // Unreachable by construction (busy sessions run no commands); refuse rather than lose an answer.
            warn!("session {}: storage request {op:?} while another is in flight", self.id);
            self.reply(ReplyCode::LocalError, "Local error: busy.");
            return;
        }
        self.pending = Some(Box::new(then));
        self.actions.push_back(Action::Storage(Request { home: self.home.clone(), op }));
    }

    /// Called when [`Session::poll_timeout`]'s instant has passed: acts on every deadline that is due. Each
    /// action ends the state its deadline belonged to, so afterwards the next deadline is in the future.
    pub fn handle_timeout(&mut self, now: Now) {
        let was_busy = self.is_busy();
        // Bounded: at most one action per kind of deadline.
        for _ in 0..Due::KINDS {
            let Some((at, due)) = self.next_due() else { break };
            if at > now.mono {
                break;
            }
            self.fire(now, due);
        }
        self.after_input(now, was_busy);
    }

    fn fire(&mut self, now: Now, due: Due) {
        match due {
            Due::CloseGrace => {
                // The client is not reading its last replies: the loop cuts the connection.
                self.close_cut = true;
                self.actions.push_back(Action::Close);
            }
            Due::Data => {
                let old = std::mem::replace(&mut self.data, Data::None);
                trace!("session {}: data {} => None (timeout)", self.id, old.name());
                self.actions.push_back(Action::CloseData);
                if let Data::Listening { pending: Some((job, _)), .. } | Data::Connecting { pending: (job, _), .. } =
                    old
                {
                    self.discard_temp(&job);
                    self.reply(ReplyCode::CantOpenDataConnection, "Data connection not established in time.");
                }
            }
            Due::FailureDelay => self.login_failed(now),
            Due::Login => {
                info!("session {} {}: login timeout (421)", self.id, self.peer);
                self.reply(ReplyCode::ServiceNotAvailable, "Login timeout, closing control connection.");
                self.close(now);
            }
            Due::Idle => {
                info!("session {} {} {:?}: idle timeout (421)", self.id, self.peer, self.user());
                self.reply(ReplyCode::ServiceNotAvailable, "Idle timeout, closing control connection.");
                self.close(now);
            }
        }
    }

    /// What every input that may end a busy state does last: the idle clock restarts when the session stops
    /// being busy (a transfer longer than the idle timeout is not idleness), a session that was busy when
    /// shutdown began is closed now, and commands queued behind the busy state run.
    fn after_input(&mut self, now: Now, was_busy: bool) {
        if was_busy && !self.is_busy() {
            self.last_activity = now.mono;
            if self.shutting_down && self.closing.is_none() {
                self.reply(ReplyCode::ServiceNotAvailable, "Server shutting down.");
                self.close(now);
            }
        }
        self.run_deferred(now);
    }

    /// The server is shutting down: idle sessions are told so now, busy ones after their transfer.
    pub fn handle_shutdown(&mut self, now: Now) {
        self.shutting_down = true;
        if self.closing.is_none() && !self.is_busy() {
            self.reply(ReplyCode::ServiceNotAvailable, "Server shutting down.");
            self.close(now);
        }
    }

    /// The shutdown grace period is over: a running transfer is cut (426) and the session told why (421).
    pub fn handle_shutdown_expired(&mut self, now: Now) {
        if self.closing.is_some() {
            return;
        }
        if self.is_busy() {
            self.reply(ReplyCode::TransferAborted, "Transfer aborted: server shutting down.");
        }
        self.reply(ReplyCode::ServiceNotAvailable, "Server shutting down.");
        self.close(now);
    }

    /// The control connection is gone (EOF, reset, or the loop cut it): release everything.
    pub fn handle_disconnect(&mut self) {
        if let Login::LoggedIn { .. } = self.login {
            if !self.logged_out {
                self.logged_out = true;
                self.event("logout", &VPath::root(), None, 0, "ok");
            }
        }
        match std::mem::replace(&mut self.data, Data::None) {
            Data::Transferring { job, .. } => {
                info!(
                    "{} {:?} {} {:?} aborted: control connection closed",
                    self.peer.ip(),
                    self.user(),
                    job.verb,
                    job.path.as_str()
                );
                self.discard_temp(&job);
            }
            Data::Listening { pending: Some((job, _)), .. } | Data::Connecting { pending: (job, _), .. } => {
                self.discard_temp(&job)
            }
            _ => {}
        }
        self.deferred.clear();
        // An answer still to come finds nobody to answer; a temporary it brings is discarded (storage_done).
        self.pending = None;
    }

    // ---- internals -----------------------------------------------------------------------------------------

    /// Replies 550 and returns false unless the account has permission `p`.
    fn permit(&mut self, p: Perm) -> bool {
        if self.perms.allows(p) {
            return true;
        }
        info!("session {} {} {:?}: refused, no {p:?} permission (550)", self.id, self.peer, self.user());
        self.reply(ReplyCode::FileUnavailable, "Permission denied.");
        false
    }

    fn set_data(&mut self, new: Data) {
        trace!("session {}: data {} => {}", self.id, self.data.name(), new.name());
        self.data = new;
    }

    fn set_login(&mut self, new: Login) {
        trace!("session {}: login {} => {}", self.id, self.login.name(), new.name());
        self.login = new;
    }

    fn reply(&mut self, code: ReplyCode, text: impl Into<String>) {
        self.replies.push_back(Reply::new(code, text));
    }

    fn close(&mut self, now: Now) {
        if self.closing.is_none() {
            self.closing = Some(now.mono);
            self.handle_disconnect();
            self.actions.push_back(Action::CloseData);
            self.actions.push_back(Action::Close);
        }
    }

    fn run_deferred(&mut self, now: Now) {
        // ABOR, STAT and NOOP that came while the storage was answering run as soon as it has, ahead of what
        // waits for the transfer that answer may have started, as they would have had they come a moment later.
        while !self.awaits_answer() && self.is_busy() && self.closing.is_none() {
            // An ABOR anywhere first; else a STAT or NOOP with nothing waiting ahead of it.
            let first = self.deferred.front().is_some_and(|l| overtakes(l, false)).then_some(0);
            let Some(i) = self.deferred.iter().position(|l| overtakes(l, true)).or(first) else { break };
            let Some(line) = self.deferred.remove(i) else { break };
            self.run_line(now, line);
        }
        while !self.is_busy() && self.closing.is_none() && !self.awaits_answer() {
            let Some(line) = self.deferred.pop_front() else { break };
            self.run_line(now, line);
        }
        if self.deferred.is_empty() && self.deferred.capacity() > 0 {
            self.deferred = VecDeque::new();
        }
    }

    fn run_line(&mut self, now: Now, line: Line) {
        // RFC 959: REST and RNFR apply to the very next command only, whatever that line turns out to be (even one
        // refused before dispatch): the transfer and RNTO commands take them back below.
        let rest = std::mem::take(&mut self.rest);
        let rename_from = self.rename_from.take();
        let text = match line {
            Line::Text(t) => t,
            Line::TooLong => {
                self.actions.push_back(Action::Offence(crate::bans::Offence::Abuse));
                self.reply(ReplyCode::SyntaxError, "Command line too long.");
                return;
            }
        };
        let logged_in = matches!(self.login, Login::LoggedIn { .. });
        match Command::parse(&text) {
            Ok(cmd) => {
                if matches!(cmd, Command::Pass(_)) {
                    debug!("session {} <- PASS ****", self.id);
                } else {
                    debug!("session {} <- {:?}", self.id, String::from_utf8_lossy(&text));
                }
                if cmd.info().is_some_and(|i| i.needs_login) && !logged_in {
                    self.reply(ReplyCode::NotLoggedIn, "Please log in with USER and PASS first.");
                    return;
                }
                match cmd {
                    Command::Retr(_) | Command::Stor(_) => self.rest = rest,
                    Command::Rnto(_) => self.rename_from = rename_from,
                    _ => {}
                }
                self.dispatch(now, cmd);
            }
            Err(e) => {
                debug!("session {} <- unparsable line: {e}", self.id);
                let (code, text) = match &e {
                    _ if e.verb().is_some_and(|v| v.needs_login) && !logged_in => {
                        (ReplyCode::NotLoggedIn, "Please log in with USER and PASS first.".to_string())
                    }
                    ParseError::Empty | ParseError::BadVerb => (ReplyCode::SyntaxError, e.to_string()),
                    ParseError::UnsupportedProtocol(_) => (ReplyCode::NetworkProtocolNotSupported, e.to_string()),
                    _ => (ReplyCode::ArgumentSyntaxError, e.to_string()),
                };
                self.reply(code, text);
            }
        }
    }

    fn cwd(&self) -> VPath {
        match &self.login {
            Login::LoggedIn { cwd, .. } => cwd.clone(),
            _ => VPath::root(),
        }
    }

    fn set_cwd(&mut self, p: VPath) {
        if let Login::LoggedIn { cwd, .. } = &mut self.login {
            *cwd = p;
        }
    }

    /// The common start of every transfer command: without a data connection set up, 425 at once; without PROT P
    /// under `--require-tls`, 521.
    fn has_data_channel(&mut self) -> bool {
        if !self.data_allowed() {
            return false;
        }
        if matches!(self.data, Data::None | Data::Binding { .. }) {
            self.reply(ReplyCode::CantOpenDataConnection, "Use PASV, EPSV, PORT or EPRT first.");
            return false;
        }
        true
    }

    /// Starts `transfer` if the data connection is there, or parks it until the client connects.
    fn begin(&mut self, now: Now, job: Job, transfer: Transfer) {
        match std::mem::replace(&mut self.data, Data::None) {
            Data::Connected { .. } => self.start(now, job, Box::new(transfer)),
            Data::Listening { since, pending: None } => {
                self.data = Data::Listening { since, pending: Some((job, Box::new(transfer))) };
                trace!("session {}: data Listening => Listening(pending)", self.id);
            }
            Data::Active { addr } => {
                self.actions.push_back(Action::ConnectActive(addr));
                self.set_data(Data::Connecting { since: now.mono, pending: (job, Box::new(transfer)) });
            }
            other => {
                // Unreachable by construction (has_data_channel and deferral); refuse rather than lose the file.
                self.data = other;
                self.discard_temp(&job);
                self.reply(ReplyCode::CantOpenDataConnection, "Data connection busy.");
            }
        }
    }

    fn start(&mut self, now: Now, job: Job, transfer: Box<Transfer>) {
        let mode = if self.ascii && job.verb != "LIST" && job.verb != "NLST" { "ASCII" } else { "BINARY" };
        let text = if job.unique {
            // RFC 1123 §4.1.2.9: STOU names its file in the 150 reply.
            format!("FILE: {}", job.path.file_name().unwrap_or_default())
        } else {
            format!("Opening {mode} mode data connection for {}.", job.path)
        };
        self.reply(ReplyCode::FileStatusOk, text);
        self.actions.push_back(Action::StartTransfer { transfer, tls: self.data_private() });
        self.set_data(Data::Transferring { job, started: now.mono });
    }

    fn finish(&mut self, now: Now, bytes: u64, error: Option<TransferError>) {
        let (job, started) = match std::mem::replace(&mut self.data, Data::None) {
            Data::Transferring { job, started } => (job, started),
            other => {
                // No transfer running: a late answer changes nothing.
                self.data = other;
                return;
            }
        };
        self.set_data(Data::None);
        if error.is_some() || !matches!(direction_of(job.verb), crate::metrics::Direction::Upload) {
            return self.report(now, job, started, bytes, error, None);
        }
        // A complete upload is published (or, written in place, measured) before it is reported.
        let op = Op::Publish { temp: job.temp.clone(), path: job.path.clone(), unique: job.unique };
        self.request(op, move |s, now, done| {
            let mut job = job;
            match done.published() {
                Ok((path, size)) => {
                    job.path = path;
                    job.temp = None;
                    s.report(now, job, started, bytes, None, Some(size));
                }
                Err(e) => s.report(now, job, started, bytes, Some(TransferError::Local(e)), None),
            }
        });
    }

    /// The reply, counters, event and log line of a finished transfer; `size_after` is a published upload's.
    fn report(
        &mut self,
        now: Now,
        job: Job,
        started: Instant,
        bytes: u64,
        error: Option<TransferError>,
        size_after: Option<u64>,
    ) {
        let secs = now.mono.saturating_duration_since(started).as_secs_f64();
        let done = if job.unique {
            format!("Transfer complete; unique file name: {}.", job.path)
        } else {
            "Transfer complete.".to_string()
        };
        let outcome = match &error {
            None => crate::metrics::Outcome::Ok,
            Some(TransferError::Network(_)) => crate::metrics::Outcome::Aborted,
            Some(TransferError::Local(_)) => crate::metrics::Outcome::Failed,
        };
        self.count(|m| m.transfer(direction_of(job.verb), outcome, bytes));
        let (code, text, result) = match &error {
            None => (ReplyCode::ClosingDataConnection, done, "ok".to_string()),
            Some(TransferError::Network(e)) => (
                ReplyCode::TransferAborted,
                "Connection closed; transfer aborted.".to_string(),
                format!("aborted: data connection: {e}"),
            ),
            Some(TransferError::Local(e)) if crate::limits::is_over_quota(e) => {
                (ReplyCode::ExceededStorage, "Quota exceeded.".to_string(), "failed: quota exceeded".to_string())
            }
            Some(TransferError::Local(e)) if is_disk_full(e) => {
                (ReplyCode::InsufficientStorage, "Insufficient storage space.".to_string(), format!("failed: {e}"))
            }
            Some(TransferError::Local(e)) => {
                (ReplyCode::LocalError, format!("Local error: {e}."), format!("failed: {e}"))
            }
        };
        if error.is_some() {
            self.discard_temp(&job);
        } else if let Some(after) = size_after {
            self.count_upload(&job, after);
        }
        if matches!(direction_of(job.verb), crate::metrics::Direction::Upload | crate::metrics::Direction::Download) {
            // After publishing: an upload's hook finds the file under its name.
            let kind =
                if matches!(direction_of(job.verb), crate::metrics::Direction::Upload) { "upload" } else { "download" };
            let path = job.path.clone();
            self.event(kind, &path, None, bytes, &result);
            if let Some(Action::Event(e)) = self.actions.back_mut() {
                e.seconds = secs;
            }
        }
        info!(
            "{} {:?} {} {:?} {} bytes {:.3} s {}",
            self.peer.ip(),
            self.user(),
            job.verb,
            job.path.as_str(),
            bytes,
            secs,
            result
        );
        self.reply(code, text);
    }

    /// ABOR ends whatever is running — a transfer, one waiting for its connection, a HASH — with 426 and 226;
    /// with nothing running, 225 (and an idle data connection is dropped).
    fn cmd_abor(&mut self, now: Now) {
        let mut aborted = false;
        if self.hashing.take().is_some() {
            self.actions.push_back(Action::StopHash);
            aborted = true;
        }
        match std::mem::replace(&mut self.data, Data::None) {
            Data::None => {}
            Data::Transferring { job, started } => {
                self.set_data(Data::None);
                self.actions.push_back(Action::CloseData);
                self.discard_temp(&job);
                let secs = now.mono.saturating_duration_since(started).as_secs_f64();
                info!(
                    "{} {:?} {} {:?} {:.3} s aborted: ABOR",
                    self.peer.ip(),
                    self.user(),
                    job.verb,
                    job.path.as_str(),
                    secs
                );
                aborted = true;
                self.count(|m| m.transfer(direction_of(job.verb), crate::metrics::Outcome::Aborted, 0));
            }
            Data::Listening { pending: Some((job, _)), .. } | Data::Connecting { pending: (job, _), .. } => {
                self.set_data(Data::None);
                self.actions.push_back(Action::CloseData);
                self.discard_temp(&job);
                aborted = true;
            }
            _ => {
                self.set_data(Data::None);
                self.actions.push_back(Action::CloseData);
            }
        }
        if aborted {
            self.reply(ReplyCode::TransferAborted, "Transfer aborted.");
            self.reply(ReplyCode::ClosingDataConnection, "ABOR successful.");
        } else {
            self.reply(ReplyCode::DataConnectionOpenNoTransfer, "No transfer to abort.");
        }
    }

    /// One log line per change a client made: session, client address and port, user, the path as the client
    /// saw it and as it is on disk.
    fn log_change(&self, what: &str, p: &VPath, detail: &str) {
        let disk = self.home.locate(p);
        info!(
            "session {} {} {:?} {what} {:?} (on disk {:?}){}{detail}",
            self.id,
            self.peer,
            self.user(),
            p.as_str(),
            disk,
            if detail.is_empty() { "" } else { " " }
        );
    }

    /// A published upload's change to its user's quota usage.
    fn count_upload(&self, job: &Job, after: u64) {
        let Some(limits) = self.limits() else { return };
        let before = job.size_before.unwrap_or(0);
        limits.used(after as i64 - before as i64, i64::from(job.size_before.is_none()));
    }

    /// Reports a finished event for `--hook`: `path` as the client saw it, `target` a rename's new name.
    fn event(&mut self, kind: &'static str, path: &VPath, target: Option<&VPath>, bytes: u64, result: &str) {
        if !self.config.events {
            return;
        }
        let event = crate::hooks::Event {
            kind,
            user: self.user().to_string(),
            path: path.as_str().to_string(),
            file: self.home.locate(path),
            target: target.map(|t| (t.as_str().to_string(), self.home.locate(t))),
            bytes,
            peer: self.peer.to_string(),
            result: result.to_string(),
            seconds: 0.0,
            ascii: self.ascii,
            anonymous: crate::access::is_anonymous_name(self.user()),
        };
        self.actions.push_back(Action::Event(Box::new(event)));
    }

    /// Bumps the worker's counters, if the session has them (sessions in unit tests have none).
    fn count(&self, f: impl FnOnce(&crate::metrics::WorkerMetrics)) {
        if let Some(stats) = &self.stats {
            f(&stats.metrics);
        }
    }

    fn discard_temp(&mut self, job: &Job) {
        if let Some(temp) = &job.temp {
            self.discard(temp.clone());
        }
    }

    /// Asks the storage to remove an upload's temporary; nothing is answered.
    fn discard(&mut self, temp: TempPath) {
        self.actions.push_back(Action::Storage(Request { home: self.home.clone(), op: Op::Discard(temp) }));
    }

    /// Maps a filesystem error to its reply: 550 for what is missing or refused, 452 for a full disk, 451 else.
    fn fs_error(&mut self, path: &str, e: &io::Error) {
        let shown: String = path.chars().take(256).collect();
        let (code, why) = match e.kind() {
            io::ErrorKind::NotFound => (ReplyCode::FileUnavailable, "no such file or directory"),
            io::ErrorKind::PermissionDenied => (ReplyCode::FileUnavailable, "permission denied"),
            io::ErrorKind::AlreadyExists => (ReplyCode::FileUnavailable, "already exists"),
            io::ErrorKind::IsADirectory => (ReplyCode::FileUnavailable, "is a directory"),
            io::ErrorKind::NotADirectory => (ReplyCode::FileUnavailable, "not a directory"),
            io::ErrorKind::DirectoryNotEmpty => (ReplyCode::FileUnavailable, "directory not empty"),
            io::ErrorKind::InvalidFilename => (ReplyCode::FileNameNotAllowed, "file name not allowed"),
            io::ErrorKind::Unsupported => (ReplyCode::FileUnavailable, "not a regular file"),
            _ if is_disk_full(e) => (ReplyCode::InsufficientStorage, "insufficient storage space"),
            // A store reached over the network that failed for now: worth trying again.
            io::ErrorKind::ResourceBusy
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected => (ReplyCode::LocalError, "storage temporarily unavailable; try again"),
            _ if e.raw_os_error() == Some(40) => (ReplyCode::FileUnavailable, "too many symbolic links"),
            _ => {
                debug!("session {}: {path:?}: {e}", self.id);
                (ReplyCode::FileUnavailable, "not available")
            }
        };
        self.reply(code, format!("{shown}: {why}."));
    }
}

/// The commands answered while a transfer runs: ABOR, STAT without a path, NOOP.
fn is_urgent(line: &Line) -> bool {
    match line {
        Line::Text(t) => matches!(Command::parse(t), Ok(Command::Abor | Command::Stat(None) | Command::Noop)),
        Line::TooLong => false,
    }
}

/// Whether `line` is answered during a transfer rather than queued, `behind` other commands that wait or not.
/// ABOR always is (it is the client's interrupt); STAT and NOOP only with nothing waiting ahead of them, or their
/// replies would overtake those commands' replies and a pipelining client would pair them wrongly.
fn overtakes(line: &Line, behind: bool) -> bool {
    match line {
        Line::Text(t) if behind => matches!(Command::parse(t), Ok(Command::Abor)),
        _ => is_urgent(line),
    }
}

/// The metrics' direction of a transfer verb.
fn direction_of(verb: &str) -> crate::metrics::Direction {
    match verb {
        "STOR" | "APPE" | "STOU" => crate::metrics::Direction::Upload,
        "RETR" => crate::metrics::Direction::Download,
        _ => crate::metrics::Direction::Listing,
    }
}

/// IPv4-mapped IPv6 addresses compare equal to their IPv4 form.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ipv4_of(ip).map_or(ip, IpAddr::V4)
}

/// The IPv4 address behind `ip` (plain or IPv4-mapped IPv6), for PASV replies.
fn ipv4_of(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    // ENOSPC and EDQUOT (quota exceeded).
    e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded || e.raw_os_error() == Some(28)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "session_tests_protocol.rs"]
mod protocol_tests;

#[cfg(test)]
#[path = "session_tests_tls.rs"]
mod tls_tests;

#[cfg(test)]
#[path = "session_tests_hostile.rs"]
mod hostile_tests;
