//! Explicit FTPS (RFC 4217 on RFC 2228): AUTH TLS, PBSZ, PROT, and the `--require-tls` policy.
//!
//! The session only decides: AUTH's 234 is followed by [`Action::StartTls`], and the loop switches the control
//! connection to TLS once the 234 has gone out in plaintext. PROT P makes every later data connection TLS (the
//! `tls` flag of [`Action::StartTransfer`]). With `--require-tls`, no login is accepted and no data moves in the
//! clear.

use ftp_common::{Reply, ReplyCode};
use log::{debug, info};

use super::{Action, Data, Login, Now, Session};
use crate::access::Perms;

/// RFC 4217: the transfer is refused because its data connection would not be protected.
const DATA_NOT_PROTECTED: u16 = 521;
/// RFC 2228: request denied for policy reasons.
const POLICY_DENIED: u16 = 534;
/// RFC 2228: the PROT level is not one TLS provides (S, E).
const PROT_NOT_SUPPORTED: u16 = 536;

/// Where the control connection stands with TLS, and what the client agreed for data connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Security {
    /// Plain control connection (no AUTH yet).
    Plain,
    /// TLS on the control connection. `pbsz`: PBSZ done, PROT may follow. `private`: PROT P, data connections use
    /// TLS too.
    Tls { pbsz: bool, private: bool },
}

impl Security {
    pub(super) fn name(self) -> &'static str {
        match self {
            Security::Plain => "Plain",
            Security::Tls { private: false, .. } => "Tls(PROT C)",
            Security::Tls { private: true, .. } => "Tls(PROT P)",
        }
    }
}

impl Session {
    /// Implicit FTPS: the connection is TLS from its first byte, and PBSZ 0 / PROT P are implied (curl's `ftps://`
    /// sends neither).
    pub fn start_implicit_tls(&mut self) {
        self.set_security(Security::Tls { pbsz: true, private: true });
    }

    /// For STAT: what is protected.
    pub(super) fn security_summary(&self) -> &'static str {
        match self.security {
            Security::Plain => "control connection in plaintext",
            Security::Tls { private: false, .. } => "control connection TLS, data connections clear",
            Security::Tls { private: true, .. } => "control and data connections TLS",
        }
    }

    /// Whether this session's data connections are TLS (PROT P).
    pub(super) fn data_private(&self) -> bool {
        matches!(self.security, Security::Tls { private: true, .. })
    }

    /// AUTH TLS (and AUTH SSL, TLS-C, as older clients and curl send them): 234, then TLS. The client must log in
    /// again afterwards (RFC 2228), and nothing it sent behind the AUTH line in plaintext is ever executed.
    pub(super) fn cmd_auth(&mut self, now: Now, mechanism: &str) {
        if self.security != Security::Plain {
            self.reply(ReplyCode::BadSequence, "TLS is already on.");
            return;
        }
        if !["TLS", "SSL", "TLS-C"].iter().any(|m| mechanism.trim().eq_ignore_ascii_case(m)) {
            self.reply(ReplyCode::ParameterNotImplemented, "Unknown security mechanism; use AUTH TLS.");
            return;
        }
        if matches!(self.login, Login::LoggedIn { .. } | Login::AwaitingPass { .. }) {
            debug!("session {}: AUTH after USER; logging in again", self.id);
            self.home = self.access.base_home();
            self.perms = Perms::default();
            self.set_login(Login::AwaitingUser);
        }
        // The login timer restarts with the new (protected) connection.
        self.connected_at = now.mono;
        if !matches!(self.data, Data::None) {
            self.actions.push_back(Action::CloseData);
            self.set_data(Data::None);
        }
        self.rename_from = None;
        self.deferred.clear();
        self.set_security(Security::Tls { pbsz: false, private: false });
        self.reply(ReplyCode::AuthOk, "AUTH TLS successful.");
        self.actions.push_back(Action::StartTls);
    }

    /// PBSZ: TLS has no protection buffer, so the answer is always PBSZ=0 (RFC 4217).
    pub(super) fn cmd_pbsz(&mut self, size: &str) {
        let Security::Tls { private, .. } = self.security else {
            self.reply(ReplyCode::BadSequence, "Use AUTH TLS first.");
            return;
        };
        if size.trim().parse::<u64>().is_err() {
            self.reply(ReplyCode::ArgumentSyntaxError, "PBSZ needs a number.");
            return;
        }
        self.set_security(Security::Tls { pbsz: true, private });
        self.reply(ReplyCode::CommandOk, "PBSZ=0");
    }

    /// PROT P (private: TLS data connections) or C (clear). S and E are not TLS levels (536).
    pub(super) fn cmd_prot(&mut self, level: &str) {
        let Security::Tls { pbsz: true, .. } = self.security else {
            let text = if self.security == Security::Plain { "Use AUTH TLS first." } else { "Use PBSZ first." };
            self.reply(ReplyCode::BadSequence, text);
            return;
        };
        match level.trim().to_ascii_uppercase().as_str() {
            "P" => {
                self.set_security(Security::Tls { pbsz: true, private: true });
                self.reply(ReplyCode::CommandOk, "Data connections are protected (PROT P).");
            }
            // RFC 2228: a level the server is not willing to accept is 534.
            "C" if self.config.require_tls => self.reply_raw(POLICY_DENIED, "Data connections must be protected."),
            "C" => {
                self.set_security(Security::Tls { pbsz: true, private: false });
                self.reply(ReplyCode::CommandOk, "Data connections are clear (PROT C).");
            }
            "S" | "E" => self.reply_raw(PROT_NOT_SUPPORTED, "Only PROT P and PROT C are supported with TLS."),
            _ => self.reply(ReplyCode::ParameterNotImplemented, "Unknown protection level."),
        }
    }

    /// With `--require-tls`, USER and PASS on a plain connection are refused (534, RFC 2228's "request denied for
    /// policy reasons") so that a client learns to use AUTH TLS before it sends a password. Returns whether the
    /// command may go on.
    pub(super) fn login_allowed(&mut self) -> bool {
        if self.config.require_tls && self.security == Security::Plain {
            info!("{} login refused: no TLS", self.peer.ip());
            self.reply_raw(POLICY_DENIED, "Login requires TLS: use AUTH TLS first.");
            return false;
        }
        true
    }

    /// With `--require-tls`, a transfer without PROT P is refused (521, RFC 4217). Returns whether it may go on.
    pub(super) fn data_allowed(&mut self) -> bool {
        if self.config.require_tls && !self.data_private() {
            self.reply_raw(DATA_NOT_PROTECTED, "Data connections must be protected: use PBSZ 0 and PROT P.");
            return false;
        }
        true
    }

    fn set_security(&mut self, new: Security) {
        log::trace!("session {}: security {} => {}", self.id, self.security.name(), new.name());
        self.security = new;
    }

    /// A reply whose code the shared [`ReplyCode`] set does not name (the RFC 2228/4217 security codes).
    fn reply_raw(&mut self, code: u16, text: &str) {
        self.replies.push_back(Reply { code, lines: vec![text.to_string()] });
    }
}
