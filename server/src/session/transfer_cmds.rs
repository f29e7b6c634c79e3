//! The commands that start a transfer: RETR, STOR, APPE, STOU, LIST, NLST, MLSD.
//!
//! Each resolves its path, opens its local side through [`Root`] and hands a prepared [`Transfer`] to
//! [`Session::begin`]. Plain uploads go to a temporary name beside the target and become visible only when
//! complete; APPE and STOR after REST write in place, because resuming a file is exactly what they ask for.

use std::io::{self, Seek, SeekFrom};

use ftp_common::ReplyCode;

use super::{Job, Now, Session};
use crate::fs::{Root, VPath};
use crate::listing::{ListFormat, Listing};
use crate::transfer::{Source, Transfer};

/// How many `name.N` candidates STOU tries before it turns to random suffixes.
const STOU_TRIES: u32 = 16;
/// Random suffixes tried after that before giving up (each a 1-in-2^64 collision).
const STOU_RANDOM_TRIES: u32 = 4;

impl Session {
    pub(super) fn cmd_retr(&mut self, now: Now, path: &str) {
        let offset = std::mem::take(&mut self.rest);
        if !self.has_data_channel() {
            return;
        }
        let p = self.cwd().join(path);
        let file = self.root.open_read(&p).and_then(|mut f| {
            let len = f.metadata()?.len();
            if offset > len {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "restart offset beyond end of file"));
            }
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        });
        match file {
            Ok(file) => {
                let t = Transfer::send(Source::File(file), self.ascii);
                self.begin(now, Job::new("RETR", p), t);
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                self.reply(ReplyCode::InvalidRestart, format!("Cannot restart at {offset}: file is shorter."))
            }
            Err(e) => self.fs_error(path, &e),
        }
    }

    pub(super) fn cmd_stor(&mut self, now: Now, path: &str) {
        let offset = std::mem::take(&mut self.rest);
        if !self.has_data_channel() {
            return;
        }
        let Some(target) = self.upload_target(path) else { return };
        if offset > 0 {
            // REST + STOR resumes an upload: keep the first `offset` bytes, write from there. What lies beyond
            // them is cut only once the data connection is up and the transfer starts: a STOR that never gets
            // its connection changes nothing.
            let file = self.root.open_write(&target, false).and_then(|mut f| {
                if offset > f.metadata()?.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "restart offset beyond end of file"));
                }
                f.seek(SeekFrom::Start(offset))?;
                Ok(f)
            });
            return match file {
                Ok(f) => {
                    let t = Transfer::receive(f, self.ascii).truncating_at(offset).in_place(offset);
                    self.begin_upload_with(now, Job::new("STOR", target), t)
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    self.reply(ReplyCode::InvalidRestart, format!("Cannot restart at {offset}: file is shorter."))
                }
                Err(e) => self.fs_error(path, &e),
            };
        }
        match self.root.create_temp(&target) {
            Ok((temp, f)) => self.begin_upload(now, Job { temp: Some(temp), ..Job::new("STOR", target) }, f),
            Err(e) => self.fs_error(path, &e),
        }
    }

    pub(super) fn cmd_appe(&mut self, now: Now, path: &str) {
        self.rest = 0;
        if !self.has_data_channel() {
            return;
        }
        let Some(target) = self.upload_target(path) else { return };
        match self.root.open_write(&target, true).and_then(|f| Ok((f.metadata()?.len(), f))) {
            Ok((len, f)) => {
                let t = Transfer::receive(f, self.ascii).in_place(len);
                self.begin_upload_with(now, Job::new("APPE", target), t)
            }
            Err(e) => self.fs_error(path, &e),
        }
    }

    /// STOU: store under a name no file has yet, announced in the 150 reply (RFC 1123 §4.1.2.9).
    pub(super) fn cmd_stou(&mut self, now: Now, base: Option<&str>) {
        self.rest = 0;
        if !self.has_data_channel() {
            return;
        }
        let base = base.unwrap_or("file");
        let Some(first) = self.upload_target(base) else { return };
        let Some(target) = unique_name(&self.root, &first) else {
            self.reply(ReplyCode::FileNameNotAllowed, "No unique name available.");
            return;
        };
        match self.root.create_temp(&target) {
            Ok((temp, f)) => {
                let job = Job { temp: Some(temp), unique: true, ..Job::new("STOU", target) };
                self.begin_upload(now, job, f)
            }
            Err(e) => self.fs_error(base, &e),
        }
    }

    /// LIST, NLST and MLSD. `LIST -la dir`: ls-style flags are accepted and ignored (clients send them out of habit).
    pub(super) fn cmd_list(&mut self, now: Now, arg: Option<&str>, format: ListFormat) {
        self.rest = 0;
        if !self.has_data_channel() {
            return;
        }
        let path = arg.map(strip_ls_flags).filter(|p| !p.is_empty());
        let p = path.map_or_else(|| self.cwd(), |path| self.cwd().join(path));
        let listing = match self.root.metadata(&p) {
            Ok(m) if m.is_dir() => self.root.open_dir(&p).and_then(|d| Listing::directory(d, format, now.wall)),
            // RFC 3659 §7.2.1: MLSD names a directory; a file is an argument error.
            Ok(_) if matches!(format, ListFormat::Machine { .. }) => {
                self.reply(ReplyCode::ArgumentSyntaxError, format!("{}: not a directory.", path.unwrap_or(".")));
                return;
            }
            Ok(m) => Ok(Listing::single(p.file_name().unwrap_or("/").to_string(), m, format, now.wall)),
            Err(e) => Err(e),
        };
        match listing {
            Ok(l) => {
                // Listing lines carry their own CRLF; they are never converted again.
                let t = Transfer::send(Source::Listing(Box::new(l)), false);
                let verb = match format {
                    ListFormat::Long => "LIST",
                    ListFormat::Names => "NLST",
                    ListFormat::Machine { .. } => "MLSD",
                };
                self.begin(now, Job::new(verb, p), t);
            }
            Err(e) => self.fs_error(path.unwrap_or("."), &e),
        }
    }

    /// The resolved target of an upload, or `None` after replying why it cannot be one.
    fn upload_target(&mut self, path: &str) -> Option<VPath> {
        let target = self.cwd().join(path);
        if target.is_root() {
            self.reply(ReplyCode::FileNameNotAllowed, "Not a file name.");
            return None;
        }
        let existing = self.root.metadata(&target);
        if existing.as_ref().is_ok_and(|m| m.is_dir()) {
            self.reply(ReplyCode::FileUnavailable, format!("{path}: is a directory."));
            return None;
        }
        if existing.is_err() && self.limits().is_some_and(|l| l.files_full()) {
            self.reply(ReplyCode::ExceededStorage, "Quota exceeded: no room for another file.");
            return None;
        }
        Some(target)
    }

    fn begin_upload(&mut self, now: Now, job: Job, file: std::fs::File) {
        let t = Transfer::receive(file, self.ascii);
        self.begin_upload_with(now, job, t);
    }

    /// Starts an upload, noting what it replaces or extends (for quota usage).
    fn begin_upload_with(&mut self, now: Now, mut job: Job, transfer: Transfer) {
        job.size_before = self.root.metadata(&job.path).ok().filter(|m| m.is_file()).map(|m| m.len());
        self.begin(now, job, transfer);
    }
}

/// `name`, else `name.1` ... `name.N`, else `name.<random>`: the first that nothing has, not even a dangling
/// symlink. Bounded: a directory full of `name.N` costs at most [`STOU_TRIES`] lookups, never a scan.
pub(super) fn unique_name(root: &Root, first: &VPath) -> Option<VPath> {
    if root.is_free(first) {
        return Some(first.clone());
    }
    let name = first.file_name()?;
    let numbered = (1..=STOU_TRIES).map(|n| format!("{name}.{n}"));
    let random = (0..STOU_RANDOM_TRIES).map(|_| format!("{name}.{}", crate::fs::random_suffix()));
    numbered.chain(random).map(|n| first.parent().join(&n)).find(|p| root.is_free(p))
}

/// Drops leading `-x` words: `-la /pub` → `/pub`.
fn strip_ls_flags(arg: &str) -> &str {
    let mut rest = arg.trim_start();
    while rest.starts_with('-') {
        rest = rest.split_once(' ').map_or("", |(_, r)| r).trim_start();
    }
    rest
}
