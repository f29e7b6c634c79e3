//! Commands answered on the control connection about files: SIZE, MDTM, MFMT, MLST, STAT with a path, HASH,
//! DELE, MKD, RMD, RNFR/RNTO. None of them opens a data connection. Each asks the storage and answers when the
//! storage has.

use ftp_common::{Reply, ReplyCode};

use super::{Now, Session};
use crate::facts::{parse_timeval, timeval};
use crate::fs::VPath;
use crate::storage::{Op, Refusal};

/// Entries STAT shows over the control connection at most; beyond that, LIST is the way. STAT runs in one loop
/// step, so this bounds its cost (each entry is a stat call): a few milliseconds, however large the directory.
const STAT_MAX_ENTRIES: usize = 200;

impl Session {
    pub(super) fn cmd_size(&mut self, path: &str) {
        let p = self.cwd().join(path);
        let arg = path.to_string();
        self.request(Op::Stat(p), move |s, _, done| match done.stat() {
            Ok(m) if m.is_file() => s.reply(ReplyCode::FileStatus, m.len.to_string()),
            Ok(_) => s.reply(ReplyCode::FileUnavailable, format!("{arg}: not a regular file.")),
            Err(e) => s.fs_error(&arg, &e),
        });
    }

    /// RFC 3659 §3: the modification time in UTC as YYYYMMDDHHMMSS.
    pub(super) fn cmd_mdtm(&mut self, path: &str) {
        let p = self.cwd().join(path);
        let arg = path.to_string();
        self.request(Op::Stat(p), move |s, _, done| match done.stat() {
            Ok(m) if m.is_file() => match m.modified {
                Some(t) => s.reply(ReplyCode::FileStatus, timeval(t)),
                None => s.reply(ReplyCode::FileUnavailable, format!("{arg}: no modification time kept.")),
            },
            Ok(_) => s.reply(ReplyCode::FileUnavailable, format!("{arg}: not a regular file.")),
            Err(e) => s.fs_error(&arg, &e),
        });
    }

    /// draft-somers-ftp-mfxx: set the modification time; the reply echoes it.
    pub(super) fn cmd_mfmt(&mut self, time: &str, path: &str) {
        let Some(t) = parse_timeval(time) else {
            self.reply(ReplyCode::ArgumentSyntaxError, "Time must be YYYYMMDDHHMMSS.");
            return;
        };
        let p = self.cwd().join(path);
        let arg = path.to_string();
        // The reply gives the time the store kept, which may be clamped or rounded from the one asked for.
        self.request(Op::SetModified(p.clone(), t), move |s, _, done| match done.modified() {
            Ok(kept) => {
                s.log_change("MFMT", &p, &timeval(kept));
                s.reply(ReplyCode::FileStatus, format!("Modify={}; {p}", timeval(kept)))
            }
            Err(e) if Refusal::of(&e) == Some(Refusal::Unsupported) => s.reply(
                ReplyCode::ParameterNotImplemented,
                "MFMT is not supported by this storage: it keeps the time an object was written.",
            ),
            Err(e) => s.fs_error(&arg, &e),
        });
    }

    /// RFC 3659 §7: the facts of one entry, on the control connection.
    pub(super) fn cmd_mlst(&mut self, path: Option<&str>) {
        let p = path.map_or_else(|| self.cwd(), |a| self.cwd().join(a));
        let arg = path.unwrap_or(".").to_string();
        self.request(Op::Stat(p.clone()), move |s, _, done| match done.stat() {
            Ok(m) => {
                let mut line = vec![b' '];
                s.facts.format(&mut line, p.as_str(), &m, None, s.perms.writable());
                let lines =
                    vec![format!("Listing {p}"), String::from_utf8_lossy(&line).into_owned(), "End".to_string()];
                s.replies.push_back(Reply::multi(ReplyCode::FileActionOk, lines));
            }
            Err(e) => s.fs_error(&arg, &e),
        });
    }

    /// RFC 959 STAT with a path: the listing sent over the control connection (213).
    pub(super) fn cmd_stat_path(&mut self, now: Now, path: &str) {
        let p = self.cwd().join(path);
        let arg = path.to_string();
        let op = Op::Status { path: p.clone(), now: now.wall, max: STAT_MAX_ENTRIES };
        self.request(op, move |s, _, done| {
            let (entries, more) = match done.status() {
                Ok(r) => r,
                Err(e) => return s.fs_error(&arg, &e),
            };
            let mut lines = vec![format!("Status of {p}:")];
            lines.extend(entries);
            if more {
                lines.push(format!("... more than {STAT_MAX_ENTRIES} entries; use LIST"));
            }
            lines.push("End of status".to_string());
            s.replies.push_back(Reply::multi(ReplyCode::FileStatus, lines));
        });
    }

    /// HASH: the file is digested by the loop in steps; the 213 comes with [`super::Outcome::HashDone`].
    pub(super) fn cmd_hash(&mut self, path: &str) {
        let p = self.cwd().join(path);
        let arg = path.to_string();
        let algorithm = self.hash_algorithm;
        self.request(Op::Hash { path: p.clone(), algorithm }, move |s, _, done| match done.hash() {
            Ok(job) => {
                s.actions.push_back(super::Action::StartHash(job));
                s.hashing = Some((p, algorithm));
            }
            Err(e) => s.fs_error(&arg, &e),
        });
    }

    /// DELE (`dir` false) and RMD: 250 when the storage removed it.
    pub(super) fn remove(&mut self, path: &str, dir: bool) {
        let p = self.cwd().join(path);
        let arg = path.to_string();
        self.request(Op::Remove { path: p.clone(), dir }, move |s, _, done| match done.removed() {
            Ok(size) => {
                if let (Some(size), Some(limits)) = (size, s.limits()) {
                    limits.used(-(size as i64), -1);
                }
                let (done, kind) = if dir { ("Removed", "rmdir") } else { ("Deleted", "delete") };
                s.log_change(done, &p, "");
                s.event(kind, &p, None, 0, "ok");
                s.reply(ReplyCode::FileActionOk, format!("{done} {p}."))
            }
            Err(e) => s.fs_error(&arg, &e),
        });
    }

    pub(super) fn cmd_mkd(&mut self, path: &str) {
        let p = self.cwd().join(path);
        let arg = path.to_string();
        self.request(Op::MakeDir(p.clone()), move |s, _, done| match done.unit() {
            Ok(()) => {
                s.log_change("MKD", &p, "");
                s.event("mkdir", &p, None, 0, "ok");
                let quoted = p.as_str().replace('"', "\"\"");
                s.reply(ReplyCode::PathCreated, format!("\"{quoted}\" created."));
            }
            Err(e) => s.fs_error(&arg, &e),
        });
    }

    /// RNFR: remember what to rename; the very next command must be RNTO.
    pub(super) fn cmd_rnfr(&mut self, path: &str) {
        let p = self.cwd().join(path);
        if p.is_root() {
            self.reply(ReplyCode::FileUnavailable, "Cannot rename the root.");
            return;
        }
        let arg = path.to_string();
        self.request(Op::Stat(p.clone()), move |s, _, done| match done.stat() {
            Ok(_) => {
                s.reply(ReplyCode::FileActionPending, "Ready for RNTO.");
                s.rename_from = Some(p);
            }
            Err(e) => s.fs_error(&arg, &e),
        });
    }

    pub(super) fn cmd_rnto(&mut self, from: Option<VPath>, path: &str) {
        let Some(from) = from else {
            self.reply(ReplyCode::BadSequence, "RNFR required first.");
            return;
        };
        let to = self.cwd().join(path);
        let arg = path.to_string();
        // Replacing an existing file destroys it: only an account that may delete may do that.
        let op = Op::Rename { from: from.clone(), to: to.clone(), replace: self.perms.delete };
        self.request(op, move |s, _, done| match done.unit() {
            Ok(()) => {
                s.log_change("RNTO", &to, &format!("from {:?}", from.as_str()));
                s.event("rename", &from, Some(&to), 0, "ok");
                s.reply(ReplyCode::FileActionOk, format!("Renamed {from} to {to}."))
            }
            Err(e) => s.fs_error(&arg, &e),
        });
    }
}
