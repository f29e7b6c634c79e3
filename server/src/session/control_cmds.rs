//! Commands about the session itself and its data channel: login, FEAT/OPTS/HELP/STAT, navigation, TYPE/MODE/
//! STRU, PASV/EPSV/PORT/EPRT, REST, and the dispatch of every parsed command to its handler.

use std::net::{SocketAddr, SocketAddrV4};

use ftp_common::{hostport, Command, EpsvArg, Reply, ReplyCode, TransferType};
use log::{info, warn};

use super::{canonical, ipv4_of, Action, Data, Login, Now, Session, NOT_IMPLEMENTED, TLS_VERBS};
use crate::access::{Account, LoginPlan, Perm};
use crate::facts::Facts;
use crate::fs::VPath;
use crate::hash::Algorithm;
use crate::listing::ListFormat;
use crate::storage::Op;

impl Session {
    pub(super) fn dispatch(&mut self, now: Now, cmd: Command) {
        // RNFR's path survives exactly one command: RNTO takes it, anything else drops it.
        let rename_from = self.rename_from.take();
        if let Some(p) = needed_permission(&cmd) {
            if !self.permit(p) {
                return;
            }
        }
        match cmd {
            Command::User(name) => {
                if self.login_allowed() {
                    self.cmd_user(name)
                }
            }
            Command::Pass(pass) => {
                if self.login_allowed() {
                    self.cmd_pass(now, pass)
                }
            }
            Command::Acct(_) => self.reply(ReplyCode::CommandSuperfluous, "ACCT not needed."),
            Command::Allo(_) => self.reply(ReplyCode::CommandSuperfluous, "ALLO not needed."),
            Command::Quit => {
                self.reply(ReplyCode::ClosingControlConnection, "Goodbye.");
                self.close(now);
            }
            Command::Noop => self.reply(ReplyCode::CommandOk, "NOOP ok."),
            Command::Syst => self.reply(ReplyCode::SystemType, "UNIX Type: L8"),
            Command::Feat => self.cmd_feat(),
            Command::Opts(opt) => self.cmd_opts(&opt),
            Command::Help(_) => self.cmd_help(),
            Command::Stat(None) => self.cmd_stat(),
            Command::Stat(Some(path)) => self.cmd_stat_path(now, &path),
            Command::Pwd => {
                let cwd = self.cwd().as_str().replace('"', "\"\"");
                self.reply(ReplyCode::PathCreated, format!("\"{cwd}\" is the current directory."));
            }
            Command::Cwd(path) => {
                let p = self.cwd().join(&path);
                self.request(Op::EnterDir(p.clone()), move |s, _, done| match done.unit() {
                    Ok(()) => {
                        s.reply(ReplyCode::FileActionOk, format!("Directory changed to {p}."));
                        s.set_cwd(p);
                    }
                    Err(e) => s.fs_error(&path, &e),
                });
            }
            Command::Cdup => {
                let p = self.cwd().parent();
                self.reply(ReplyCode::CommandOk, format!("Directory changed to {p}."));
                self.set_cwd(p);
            }
            Command::Type(t) => match t {
                TransferType::Ascii => {
                    self.ascii = true;
                    self.reply(ReplyCode::CommandOk, "Switching to ASCII mode.");
                }
                TransferType::Image => {
                    self.ascii = false;
                    self.reply(ReplyCode::CommandOk, "Switching to Binary mode.");
                }
                TransferType::Unsupported(_) => {
                    self.reply(ReplyCode::ParameterNotImplemented, "Only TYPE A and TYPE I are supported.")
                }
            },
            Command::Mode(m) if m.eq_ignore_ascii_case("S") => self.reply(ReplyCode::CommandOk, "Mode set to S."),
            Command::Mode(_) => self.reply(ReplyCode::ParameterNotImplemented, "Only MODE S is supported."),
            Command::Stru(s) if s.eq_ignore_ascii_case("F") => self.reply(ReplyCode::CommandOk, "Structure set to F."),
            Command::Stru(_) => self.reply(ReplyCode::ParameterNotImplemented, "Only STRU F is supported."),
            Command::Pasv => self.cmd_passive(false),
            Command::Epsv(None) => self.cmd_passive(true),
            Command::Epsv(Some(EpsvArg::All)) => {
                self.epsv_all = true;
                self.reply(ReplyCode::CommandOk, "EPSV ALL ok.");
            }
            Command::Epsv(Some(EpsvArg::Protocol(p))) => {
                let ours = if ipv4_of(self.local.ip()).is_some() { 1 } else { 2 };
                if p == ours {
                    self.cmd_passive(true);
                } else {
                    let text = format!("Network protocol not supported, use ({ours}).");
                    self.reply(ReplyCode::NetworkProtocolNotSupported, text);
                }
            }
            Command::Rest(offset) => {
                self.rest = offset;
                self.reply(ReplyCode::FileActionPending, format!("Restarting at {offset}. Send RETR or STOR."));
            }
            Command::Retr(path) => self.cmd_retr(&path),
            Command::Stor(path) => self.cmd_stor(&path),
            Command::Appe(path) => self.cmd_appe(&path),
            Command::Stou(base) => self.cmd_stou(base.as_deref()),
            Command::List(arg) => self.cmd_list(now, arg.as_deref(), ListFormat::Long),
            Command::Nlst(arg) => self.cmd_list(now, arg.as_deref(), ListFormat::Names),
            Command::Mlsd(arg) => {
                let format = ListFormat::Machine { facts: self.facts, writable: self.perms.writable() };
                self.cmd_list(now, arg.as_deref(), format)
            }
            Command::Mlst(arg) => self.cmd_mlst(arg.as_deref()),
            Command::Size(path) => self.cmd_size(&path),
            Command::Mdtm(path) => self.cmd_mdtm(&path),
            Command::Mfmt { time, path } => self.cmd_mfmt(&time, &path),
            Command::Dele(path) => self.remove(&path, false),
            Command::Mkd(path) => self.cmd_mkd(&path),
            Command::Rmd(path) => self.remove(&path, true),
            Command::Rnfr(path) => self.cmd_rnfr(&path),
            Command::Rnto(path) => self.cmd_rnto(rename_from, &path),
            Command::Abor => self.cmd_abor(now),
            Command::Unknown(verb) if verb == "PROXY" => {
                // A PROXY v1 header from an address not in --proxy-from: a balancer we do not trust, or a client
                // forging its address. (A v2 header ends its signature with QUIT, which closes the session too.)
                warn!("{}: PROXY header from an address not in --proxy-from; closing", self.peer);
                self.actions.push_back(Action::Offence(crate::bans::Offence::Abuse));
                self.reply(ReplyCode::ServiceNotAvailable, "PROXY header not accepted from this address.");
                self.close(now);
            }
            Command::Unknown(verb) => {
                let verb: String = verb.chars().take(16).collect();
                self.reply(ReplyCode::SyntaxError, format!("Unknown command {verb}."))
            }
            Command::Hash(path) => self.cmd_hash(&path),
            Command::Port(addr) => self.cmd_port(addr, false),
            Command::Eprt(addr) => self.cmd_port(addr, true),
            Command::Auth(mechanism) if self.config.tls => self.cmd_auth(now, &mechanism),
            Command::Pbsz(size) if self.config.tls => self.cmd_pbsz(&size),
            Command::Prot(level) if self.config.tls => self.cmd_prot(&level),
            Command::Rein | Command::Auth(_) | Command::Pbsz(_) | Command::Prot(_) => {
                self.reply(ReplyCode::CommandNotImplemented, "Command not implemented.")
            }
        }
    }

    /// FEAT lists exactly the extensions that work (RFC 2389).
    fn cmd_feat(&mut self) {
        let mut lines = vec!["Features:".to_string()];
        for f in [" EPRT", " EPSV", " MDTM", " MFMT", " PASV", " REST STREAM", " SIZE", " TVFS", " UTF8"] {
            lines.push(f.to_string());
        }
        if self.config.tls {
            lines.extend([" AUTH TLS", " PBSZ", " PROT"].map(String::from));
        }
        lines.push(self.facts.feat_line());
        lines.push(Algorithm::feat_line(self.hash_algorithm));
        lines[1..].sort();
        lines.push("End".to_string());
        self.replies.push_back(Reply::multi(ReplyCode::SystemStatus, lines));
    }

    fn cmd_opts(&mut self, opt: &str) {
        let (name, value) = opt.trim().split_once(' ').unwrap_or((opt.trim(), ""));
        match name.to_ascii_uppercase().as_str() {
            "UTF8" if value.is_empty() || value.eq_ignore_ascii_case("ON") => {
                self.reply(ReplyCode::CommandOk, "Always in UTF8 mode.")
            }
            "HASH" if value.is_empty() => self.reply(ReplyCode::CommandOk, self.hash_algorithm.name()),
            "HASH" => match Algorithm::parse(value) {
                Some(a) => {
                    self.hash_algorithm = a;
                    self.reply(ReplyCode::CommandOk, a.name());
                }
                None => self.reply(ReplyCode::ArgumentSyntaxError, "Unknown algorithm."),
            },
            "MLST" => {
                self.facts = Facts::parse(value);
                self.reply(ReplyCode::CommandOk, format!("MLST OPTS {}", self.facts.selected()));
            }
            _ => self.reply(ReplyCode::ArgumentSyntaxError, "Option not understood."),
        }
    }

    fn cmd_user(&mut self, name: String) {
        if matches!(self.login, Login::LoggedIn { .. }) {
            self.reply(ReplyCode::BadSequence, "Already logged in.");
            return;
        }
        // Every name gets 331, so replies never tell which accounts exist.
        self.set_login(Login::AwaitingPass { user: name });
        self.reply(ReplyCode::NeedPassword, "Please specify the password.");
    }

    fn cmd_pass(&mut self, now: Now, pass: String) {
        match std::mem::replace(&mut self.login, Login::AwaitingUser) {
            Login::AwaitingPass { user } => match self.access.login(&user) {
                LoginPlan::Accept(account) => self.log_in(now, user, account),
                LoginPlan::Verify { hash, account } => {
                    self.actions.push_back(Action::VerifyPassword { hash, password: pass });
                    self.set_login(Login::Verifying { user, account });
                }
            },
            Login::AwaitingUser => self.reply(ReplyCode::BadSequence, "Login with USER first."),
            other @ Login::LoggedIn { .. } => {
                self.login = other;
                self.reply(ReplyCode::UserLoggedIn, "Already logged in.");
            }
            // Verifying and Failed are busy states: PASS waits in the deferred queue, never gets here.
            other => self.login = other,
        }
    }

    /// The verifier's answer to a PASS.
    pub(super) fn verified(&mut self, now: Now, ok: bool) {
        let (user, account) = match std::mem::replace(&mut self.login, Login::AwaitingUser) {
            Login::Verifying { user, account } => (user, account),
            other => {
                // No password being checked: a late answer changes nothing.
                self.login = other;
                return;
            }
        };
        match account {
            Some(account) if ok => self.log_in(now, user, account),
            _ => {
                info!("{} failed login as {user:?}", self.peer.ip());
                self.count(|m| {
                    m.logins_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                });
                self.actions.push_back(Action::Offence(crate::bans::Offence::FailedLogin));
                self.login_failures += 1;
                // The 530 waits for a timer: guessing passwords costs the guesser time, not the server.
                self.set_login(Login::Failed { until: now.mono + self.config.login_failure_delay });
            }
        }
    }

    /// The password could not even be checked: too many checks are queued. The client is told to come back
    /// later and the connection closed, so a flood of logins costs its sender, not the honest clients.
    pub(super) fn verifier_busy(&mut self, now: Now) {
        let user = match std::mem::replace(&mut self.login, Login::AwaitingUser) {
            Login::Verifying { user, .. } => user,
            other => {
                self.login = other;
                return;
            }
        };
        info!("{} login as {user:?} refused: too many password checks waiting", self.peer.ip());
        self.count(|m| {
            m.logins_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        self.reply(ReplyCode::ServiceNotAvailable, "Too many logins in progress, try again later.");
        self.close(now);
    }

    /// The delay after a failed login is over: 530, or 421 and a close after too many failures.
    pub(super) fn login_failed(&mut self, now: Now) {
        self.set_login(Login::AwaitingUser);
        self.reply(ReplyCode::NotLoggedIn, "Login incorrect.");
        if self.login_failures >= self.config.max_login_failures {
            self.reply(ReplyCode::ServiceNotAvailable, "Too many failed logins, closing control connection.");
            self.close(now);
        }
    }

    fn log_in(&mut self, now: Now, user: String, account: Account) {
        // max_sessions counts the user's sessions on every worker; the place is given back when this one ends.
        let Some(claim) = account.limits.claim() else {
            info!("{} login as {user:?} refused: the user's max_sessions are all in use (421)", self.peer.ip());
            self.reply(ReplyCode::ServiceNotAvailable, "Too many sessions for this user, try again later.");
            self.set_login(Login::AwaitingUser);
            self.close(now);
            return;
        };
        self.claim = Some(claim);
        info!("{} logged in as {user:?}", self.peer.ip());
        self.count(|m| {
            m.logins_ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        self.event("login", &VPath::root(), None, 0, "ok");
        self.home = account.home;
        self.perms = account.perms;
        self.set_login(Login::LoggedIn { user, cwd: VPath::root() });
        self.reply(ReplyCode::UserLoggedIn, "Login successful.");
    }

    /// HELP lists the verbs this server implements, from the same table the parser uses.
    fn cmd_help(&mut self) {
        let tls = self.config.tls;
        let verbs: Vec<&str> = ftp_common::command::VERBS
            .iter()
            .map(|v| v.name)
            .filter(|v| !NOT_IMPLEMENTED.contains(v) && (tls || !TLS_VERBS.contains(v)))
            .collect();
        let mut lines = vec!["The following commands are recognized:".to_string()];
        lines.extend(verbs.chunks(12).map(|c| format!(" {}", c.join(" "))));
        lines.push("Help OK.".to_string());
        self.replies.push_back(Reply::multi(ReplyCode::HelpMessage, lines));
    }

    fn cmd_stat(&mut self) {
        let mut lines = vec![
            "FTP server status:".to_string(),
            format!(" Connected to {}", self.peer.ip()),
            format!(" Logged in as {}", self.user()),
            format!(" TYPE: {}", if self.ascii { "ASCII" } else { "BINARY" }),
        ];
        if self.config.tls {
            lines.push(format!(" Security: {}", self.security_summary()));
        }
        if let Data::Transferring { job, .. }
        | Data::Listening { pending: Some((job, _)), .. }
        | Data::Connecting { pending: (job, _), .. } = &self.data
        {
            lines.push(format!(" Transfer in progress: {} {}", job.verb, job.path));
        } else {
            lines.push(" No data connection".to_string());
        }
        // Server-wide figures are for logged-in users only: they tell an anonymous prober how busy we are.
        if let (Some(stats), Login::LoggedIn { .. }) = (&self.stats, &self.login) {
            lines.push(format!(" Server: {} sessions, {} connections", stats.sessions.get(), stats.connections.get()));
            lines.push(format!(" Worker {} of {}: {}", stats.worker + 1, stats.workers, stats.metrics.turn_summary()));
        }
        lines.push("End of status".to_string());
        self.replies.push_back(Reply::multi(ReplyCode::SystemStatus, lines));
    }

    fn cmd_passive(&mut self, extended: bool) {
        if self.epsv_all && !extended {
            self.reply(ReplyCode::BadSequence, "EPSV ALL in effect; use EPSV.");
            return;
        }
        if !extended && ipv4_of(self.local.ip()).is_none() {
            self.reply(ReplyCode::CantOpenDataConnection, "PASV needs IPv4; use EPSV.");
            return;
        }
        if !matches!(self.data, Data::None) {
            // A new PASV replaces the previous listener or idle connection.
            self.actions.push_back(Action::CloseData);
        }
        self.set_data(Data::Binding { extended });
        self.actions.push_back(Action::ListenPassive);
    }

    /// PORT and EPRT. The address must be the client's own and the port unprivileged: anything else would let
    /// a client aim our data connections at third parties (the FTP bounce attack, RFC 2577).
    fn cmd_port(&mut self, addr: SocketAddr, extended: bool) {
        if self.epsv_all {
            self.reply(ReplyCode::BadSequence, "EPSV ALL in effect; use EPSV.");
            return;
        }
        let ours_v4 = ipv4_of(self.local.ip()).is_some();
        if extended && addr.is_ipv4() != ours_v4 {
            let ours = if ours_v4 { 1 } else { 2 };
            self.reply(
                ReplyCode::NetworkProtocolNotSupported,
                format!("Network protocol not supported, use ({ours})."),
            );
            return;
        }
        if canonical(addr.ip()) != canonical(self.peer.ip()) || addr.port() < 1024 {
            warn!(
                "session {}: refused {} to {addr} (peer {})",
                self.id,
                if extended { "EPRT" } else { "PORT" },
                self.peer
            );
            self.actions.push_back(Action::Offence(crate::bans::Offence::Bounce));
            self.reply(
                ReplyCode::ArgumentSyntaxError,
                "Data connections only to your own address and an unprivileged port.",
            );
            return;
        }
        if !matches!(self.data, Data::None) {
            self.actions.push_back(Action::CloseData);
        }
        self.set_data(Data::Active { addr });
        self.reply(ReplyCode::CommandOk, format!("{} command successful.", if extended { "EPRT" } else { "PORT" }));
    }

    pub(super) fn passive_ready(&mut self, now: Now, addr: SocketAddr) {
        let Data::Binding { extended } = self.data else { return };
        self.set_data(Data::Listening { since: now.mono, pending: None });
        if extended {
            self.reply(
                ReplyCode::EnteringExtendedPassiveMode,
                format!("Entering Extended Passive Mode {}.", hostport::format_epsv(addr.port())),
            );
        } else {
            // Checked before the listener was asked for.
            let ip = self.config.pasv_address.or(ipv4_of(addr.ip())).unwrap_or(std::net::Ipv4Addr::LOCALHOST);
            let hp = hostport::format_host_port(SocketAddrV4::new(ip, addr.port()));
            self.reply(ReplyCode::EnteringPassiveMode, format!("Entering Passive Mode ({hp})."));
        }
    }
}

/// The permission a command needs, from the account's set (`--read-only`, anonymous read, users file).
fn needed_permission(cmd: &Command) -> Option<Perm> {
    Some(match cmd {
        Command::Retr(_)
        | Command::List(_)
        | Command::Nlst(_)
        | Command::Mlsd(_)
        | Command::Mlst(_)
        | Command::Size(_)
        | Command::Mdtm(_)
        | Command::Hash(_)
        | Command::Stat(Some(_)) => Perm::Read,
        Command::Stor(_) | Command::Appe(_) | Command::Stou(_) | Command::Mfmt { .. } => Perm::Write,
        Command::Dele(_) | Command::Rmd(_) => Perm::Delete,
        Command::Mkd(_) => Perm::Mkdir,
        Command::Rnfr(_) | Command::Rnto(_) => Perm::Rename,
        _ => return None,
    })
}
