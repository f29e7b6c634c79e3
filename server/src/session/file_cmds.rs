//! Commands answered on the control connection about files: SIZE, MDTM, MFMT, MLST, STAT with a path, DELE,
//! MKD, RMD, RNFR/RNTO. None of them opens a data connection.

use std::io;

use ftp_common::{Reply, ReplyCode};

use super::{Now, Session};
use crate::facts::{parse_timeval, timeval};
use crate::fs::{Root, VPath};
use crate::hash::HashJob;
use crate::listing::{ListFormat, Listing};

/// Entries STAT shows over the control connection at most; beyond that, LIST is the way. STAT runs in one loop
/// step, so this bounds its cost (each entry is a stat call): a few milliseconds, however large the directory.
const STAT_MAX_ENTRIES: usize = 200;

impl Session {
    pub(super) fn cmd_size(&mut self, path: &str) {
        let p = self.cwd().join(path);
        match self.root.metadata(&p) {
            Ok(m) if m.is_file() => self.reply(ReplyCode::FileStatus, m.len().to_string()),
            Ok(_) => self.reply(ReplyCode::FileUnavailable, format!("{path}: not a regular file.")),
            Err(e) => self.fs_error(path, &e),
        }
    }

    /// RFC 3659 §3: the modification time in UTC as YYYYMMDDHHMMSS.
    pub(super) fn cmd_mdtm(&mut self, path: &str) {
        let p = self.cwd().join(path);
        match self.root.metadata(&p) {
            Ok(m) if m.is_file() => match m.modified() {
                Ok(t) => self.reply(ReplyCode::FileStatus, timeval(t.into_std())),
                Err(e) => self.fs_error(path, &e),
            },
            Ok(_) => self.reply(ReplyCode::FileUnavailable, format!("{path}: not a regular file.")),
            Err(e) => self.fs_error(path, &e),
        }
    }

    /// draft-somers-ftp-mfxx: set the modification time; the reply echoes it.
    pub(super) fn cmd_mfmt(&mut self, time: &str, path: &str) {
        let Some(t) = parse_timeval(time) else {
            self.reply(ReplyCode::ArgumentSyntaxError, "Time must be YYYYMMDDHHMMSS.");
            return;
        };
        let p = self.cwd().join(path);
        // The reply gives the time the filesystem kept, which may be clamped or rounded from the one asked for.
        match self.root.set_modified(&p, t) {
            Ok(kept) => {
                self.log_change("MFMT", &p, &timeval(kept));
                self.reply(ReplyCode::FileStatus, format!("Modify={}; {p}", timeval(kept)))
            }
            Err(e) => self.fs_error(path, &e),
        }
    }

    /// RFC 3659 §7: the facts of one entry, on the control connection.
    pub(super) fn cmd_mlst(&mut self, path: Option<&str>) {
        let p = path.map_or_else(|| self.cwd(), |a| self.cwd().join(a));
        match self.root.metadata(&p) {
            Ok(m) => {
                let mut line = vec![b' '];
                self.facts.format(&mut line, p.as_str(), &m, None, self.perms.writable());
                let lines =
                    vec![format!("Listing {p}"), String::from_utf8_lossy(&line).into_owned(), "End".to_string()];
                self.replies.push_back(Reply::multi(ReplyCode::FileActionOk, lines));
            }
            Err(e) => self.fs_error(path.unwrap_or("."), &e),
        }
    }

    /// RFC 959 STAT with a path: the listing sent over the control connection (213).
    pub(super) fn cmd_stat_path(&mut self, now: Now, path: &str) {
        let p = self.cwd().join(path);
        let listing = match self.root.metadata(&p) {
            Ok(m) if m.is_dir() => {
                self.root.open_dir(&p).and_then(|d| Listing::directory(d, ListFormat::Long, now.wall))
            }
            Ok(m) => Ok(Listing::single(p.file_name().unwrap_or("/").to_string(), m, ListFormat::Long, now.wall)),
            Err(e) => Err(e),
        };
        let read = listing.and_then(|mut l| l.lines(STAT_MAX_ENTRIES));
        let (entries, more) = match read {
            Ok(r) => r,
            Err(e) => return self.fs_error(path, &e),
        };
        let mut lines = vec![format!("Status of {p}:")];
        lines.extend(entries);
        if more {
            lines.push(format!("... more than {STAT_MAX_ENTRIES} entries; use LIST"));
        }
        lines.push("End of status".to_string());
        self.replies.push_back(Reply::multi(ReplyCode::FileStatus, lines));
    }

    /// HASH: the file is digested by the loop in steps; the 213 comes with [`super::Outcome::HashDone`].
    pub(super) fn cmd_hash(&mut self, path: &str) {
        let p = self.cwd().join(path);
        match self.root.open_read(&p) {
            Ok(file) => {
                self.actions.push_back(super::Action::StartHash(Box::new(HashJob::new(file, self.hash_algorithm))));
                self.hashing = Some((p, self.hash_algorithm));
            }
            Err(e) => self.fs_error(path, &e),
        }
    }

    /// DELE and RMD: 250 when `op` succeeds on the resolved path.
    pub(super) fn remove(&mut self, path: &str, done: &str, op: fn(&Root, &VPath) -> io::Result<()>) {
        let p = self.cwd().join(path);
        let size = self.root.metadata(&p).ok().filter(|m| m.is_file()).map(|m| m.len());
        match op(&self.root, &p) {
            Ok(()) => {
                if let (Some(size), Some(limits)) = (size, self.limits()) {
                    limits.used(-(size as i64), -1);
                }
                self.log_change(done, &p, "");
                self.event(if done == "Deleted" { "delete" } else { "rmdir" }, &p, None, 0, "ok");
                self.reply(ReplyCode::FileActionOk, format!("{done} {p}."))
            }
            Err(e) => self.fs_error(path, &e),
        }
    }

    pub(super) fn cmd_mkd(&mut self, path: &str) {
        let p = self.cwd().join(path);
        match self.root.create_dir(&p) {
            Ok(()) => {
                self.log_change("MKD", &p, "");
                self.event("mkdir", &p, None, 0, "ok");
                let quoted = p.as_str().replace('"', "\"\"");
                self.reply(ReplyCode::PathCreated, format!("\"{quoted}\" created."));
            }
            Err(e) => self.fs_error(path, &e),
        }
    }

    /// RNFR: remember what to rename; the very next command must be RNTO.
    pub(super) fn cmd_rnfr(&mut self, path: &str) {
        let p = self.cwd().join(path);
        match self.root.metadata(&p) {
            Ok(_) if p.is_root() => self.reply(ReplyCode::FileUnavailable, "Cannot rename the root."),
            Ok(_) => {
                self.reply(ReplyCode::FileActionPending, "Ready for RNTO.");
                self.rename_from = Some(p);
            }
            Err(e) => self.fs_error(path, &e),
        }
    }

    pub(super) fn cmd_rnto(&mut self, from: Option<VPath>, path: &str) {
        let Some(from) = from else {
            self.reply(ReplyCode::BadSequence, "RNFR required first.");
            return;
        };
        let to = self.cwd().join(path);
        // Replacing an existing file destroys it: only an account that may delete may do that.
        let renamed =
            if self.perms.delete { self.root.rename(&from, &to) } else { self.root.rename_noreplace(&from, &to) };
        match renamed {
            Ok(()) => {
                self.log_change("RNTO", &to, &format!("from {:?}", from.as_str()));
                self.event("rename", &from, Some(&to), 0, "ok");
                self.reply(ReplyCode::FileActionOk, format!("Renamed {from} to {to}."))
            }
            Err(e) => self.fs_error(path, &e),
        }
    }
}
