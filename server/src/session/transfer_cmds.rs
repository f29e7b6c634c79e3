//! The commands that start a transfer: RETR, STOR, APPE, STOU, LIST, NLST, MLSD.
//!
//! Each resolves its path, asks the storage for its local side and hands the prepared [`Transfer`] to
//! [`Session::begin`]. Plain uploads go to a temporary name beside the target and become visible only when
//! complete; APPE and STOR after REST write in place, because resuming a file is exactly what they ask for.

use ftp_common::ReplyCode;

use super::{Job, Now, Session};
use crate::listing::ListFormat;
use crate::storage::{How, Op, Refusal};
use crate::transfer::Transfer;

impl Session {
    pub(super) fn cmd_retr(&mut self, path: &str) {
        let offset = std::mem::take(&mut self.rest);
        if !self.has_data_channel() {
            return;
        }
        let p = self.cwd().join(path);
        let arg = path.to_string();
        self.request(Op::Read { path: p.clone(), offset }, move |s, now, done| match done.read() {
            Ok(source) => {
                let t = Transfer::send(source, s.ascii);
                s.begin(now, Job::new("RETR", p), t);
            }
            Err(e) if Refusal::of(&e) == Some(Refusal::BeyondEnd) => {
                s.reply(ReplyCode::InvalidRestart, format!("Cannot restart at {offset}: file is shorter."))
            }
            Err(e) => s.fs_error(&arg, &e),
        });
    }

    /// STOR; after REST it resumes the upload in place from that offset.
    pub(super) fn cmd_stor(&mut self, path: &str) {
        let offset = std::mem::take(&mut self.rest);
        let how = if offset > 0 { How::Resume(offset) } else { How::Replace };
        self.upload("STOR", path, how);
    }

    pub(super) fn cmd_appe(&mut self, path: &str) {
        self.rest = 0;
        self.upload("APPE", path, How::Append);
    }

    /// STOU: store under a name no file has yet, announced in the 150 reply (RFC 1123 §4.1.2.9).
    pub(super) fn cmd_stou(&mut self, base: Option<&str>) {
        self.rest = 0;
        self.upload("STOU", base.unwrap_or("file"), How::Unique);
    }

    /// The upload commands: the storage opens the file (a temporary, or the file itself in place), and the
    /// transfer writes it.
    fn upload(&mut self, verb: &'static str, path: &str, how: How) {
        if !self.has_data_channel() {
            return;
        }
        let target = self.cwd().join(path);
        if target.is_root() {
            self.reply(ReplyCode::FileNameNotAllowed, "Not a file name.");
            return;
        }
        let new_files = !self.limits().is_some_and(|l| l.files_full());
        let arg = path.to_string();
        self.request(Op::Upload { path: target, how, new_files }, move |s, now, done| {
            let u = match done.upload() {
                Ok(u) => u,
                Err(e) => {
                    return match Refusal::of(&e) {
                        Some(Refusal::BeyondEnd) => {
                            let offset = if let How::Resume(o) = how { o } else { 0 };
                            s.reply(ReplyCode::InvalidRestart, format!("Cannot restart at {offset}: file is shorter."))
                        }
                        Some(Refusal::NoRoomForAFile) => {
                            s.reply(ReplyCode::ExceededStorage, "Quota exceeded: no room for another file.")
                        }
                        Some(Refusal::NoUniqueName) => {
                            s.reply(ReplyCode::FileNameNotAllowed, "No unique name available.")
                        }
                        Some(Refusal::Unsupported) => s.reply(
                            ReplyCode::ParameterNotImplemented,
                            format!(
                                "{verb} {}is not supported by this storage: objects are written whole.",
                                if matches!(how, How::Resume(_)) { "after REST " } else { "" }
                            ),
                        ),
                        None => s.fs_error(&arg, &e),
                    };
                }
            };
            let u = *u;
            let t = Transfer::receive(u.file, s.ascii);
            let t = match how {
                // What lies beyond the offset is cut once the transfer starts.
                How::Resume(offset) => t.truncating_at(offset).in_place(offset),
                How::Append => t.in_place(u.offset),
                How::Replace | How::Unique => t,
            };
            let job =
                Job { temp: u.temp, unique: how == How::Unique, size_before: u.size_before, ..Job::new(verb, u.path) };
            s.begin(now, job, t);
        });
    }

    /// LIST, NLST and MLSD. `LIST -la dir`: ls-style flags are accepted and ignored (clients send them out of habit).
    pub(super) fn cmd_list(&mut self, now: Now, arg: Option<&str>, format: ListFormat) {
        self.rest = 0;
        if !self.has_data_channel() {
            return;
        }
        let path = arg.map(strip_ls_flags).filter(|p| !p.is_empty()).map(str::to_string);
        let p = path.as_deref().map_or_else(|| self.cwd(), |path| self.cwd().join(path));
        let machine = matches!(format, ListFormat::Machine { .. });
        let op = Op::List { path: p.clone(), format, now: now.wall, dir_only: machine };
        self.request(op, move |s, now, done| {
            let shown = path.as_deref().unwrap_or(".");
            match done.list() {
                Ok(Some(source)) => {
                    // Listing lines carry their own CRLF; they are never converted again.
                    let t = Transfer::send(source, false);
                    let verb = match format {
                        ListFormat::Long => "LIST",
                        ListFormat::Names => "NLST",
                        ListFormat::Machine { .. } => "MLSD",
                    };
                    s.begin(now, Job::new(verb, p), t);
                }
                // RFC 3659 §7.2.1: MLSD names a directory; a file is an argument error.
                Ok(None) => s.reply(ReplyCode::ArgumentSyntaxError, format!("{shown}: not a directory.")),
                Err(e) => s.fs_error(shown, &e),
            }
        });
    }
}

/// Drops leading `-x` words: `-la /pub` → `/pub`.
fn strip_ls_flags(arg: &str) -> &str {
    let mut rest = arg.trim_start();
    while rest.starts_with('-') {
        rest = rest.split_once(' ').map_or("", |(_, r)| r).trim_start();
    }
    rest
}
