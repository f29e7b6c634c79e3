//! Storage: the one place that carries out what sessions decide about files.
//!
//! A session never touches the filesystem. It sends a [`Request`] (its [`Home`] and an [`Op`]) as an
//! [`crate::session::Action::Storage`], and the loop hands back what came of it as a [`Done`] in an
//! [`crate::session::Outcome::Storage`]. The local-disk back-end here runs each request at once on the loop thread:
//! every operation on it is a bounded handful of syscalls on a confined [`Root`], opened non-blocking. A back-end
//! whose requests wait on a network answers later, through the same outcome; the session is busy meanwhile and
//! queues the client's next commands.
//!
//! What streams (a download's file, a listing, a HASH) is returned as a handle the loop's transfer or job reads
//! a step at a time; the session only passes it on.

use std::fmt;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use cap_std::fs::MetadataExt;

use crate::fs::{Root, TempPath, VPath};
use crate::hash::{Algorithm, HashJob};
use crate::listing::{ListFormat, Listing};
use crate::transfer::Source;

pub mod remote;
pub mod s3;

/// How many `name.N` candidates STOU tries before it turns to random suffixes.
const STOU_TRIES: u32 = 16;
/// Random suffixes tried after that before giving up (each a 1-in-2^64 collision).
const STOU_RANDOM_TRIES: u32 = 4;
/// How many times a STOU upload looks for another name when the one it chose was taken while the upload ran.
const STOU_PUBLISH_TRIES: usize = 8;

/// A session's place in the storage: the handle it sends with every request. Only this module looks inside.
#[derive(Clone, Debug)]
pub struct Home(Place);

#[derive(Clone, Debug)]
enum Place {
    Disk(Rc<Root>),
    Remote(std::sync::Arc<dyn remote::Backend>),
}

impl Home {
    /// A home on the local disk.
    pub fn disk(root: Rc<Root>) -> Home {
        Home(Place::Disk(root))
    }

    /// A home on a back-end reached over the network.
    pub fn remote(backend: std::sync::Arc<dyn remote::Backend>) -> Home {
        Home(Place::Remote(backend))
    }

    /// Where a client path is kept, for log lines and hooks (nothing is opened).
    pub fn locate(&self, p: &VPath) -> PathBuf {
        match &self.0 {
            Place::Disk(root) => root.disk_path(p),
            Place::Remote(b) => b.locate(p),
        }
    }

    /// The back-end, if the home is not on the local disk: its requests go to the loop's pool.
    pub fn backend(&self) -> Option<&std::sync::Arc<dyn remote::Backend>> {
        match &self.0 {
            Place::Disk(_) => None,
            Place::Remote(b) => Some(b),
        }
    }
}

/// What kind of entry a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// A symbolic link shown as itself (one that leads outside the listed directory's view).
    Link,
    /// A FIFO, socket or device: listed, never opened.
    Other,
}

/// The facts about an entry that replies and listings show, whatever the back-end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub len: u64,
    /// `None` where the back-end keeps no time.
    pub modified: Option<SystemTime>,
    /// Unix permission bits, as `ls -l` shows them.
    pub mode: u32,
    pub links: u64,
    /// What tells this entry from every other (the MLST `unique` fact): device and inode on disk.
    pub unique: Option<(u64, u64)>,
}

impl Meta {
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }

    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// The modification time, the epoch where there is none.
    pub fn modified_or_epoch(&self) -> SystemTime {
        self.modified.unwrap_or(UNIX_EPOCH)
    }
}

impl From<&cap_std::fs::Metadata> for Meta {
    fn from(m: &cap_std::fs::Metadata) -> Meta {
        let t = m.file_type();
        let kind = if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else if t.is_symlink() {
            Kind::Link
        } else {
            Kind::Other
        };
        Meta {
            kind,
            len: m.len(),
            modified: m.modified().ok().map(|t| t.into_std()),
            mode: m.mode(),
            links: m.nlink(),
            unique: Some((m.dev(), m.ino())),
        }
    }
}

/// How an upload writes its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// STOR: into a temporary that replaces the file once complete.
    Replace,
    /// STOR after REST: in place, from this offset (the file must be at least that long).
    Resume(u64),
    /// APPE: in place, at the end (the file is created if missing).
    Append,
    /// STOU: into a temporary published under a name nothing has, announced before the transfer.
    Unique,
}

/// What a session asks of the storage.
pub enum Op {
    /// A path's [`Meta`] (symlinks followed): [`Done::Stat`].
    Stat(VPath),
    /// Whether a directory can be entered (CWD): [`Done::Unit`].
    EnterDir(VPath),
    /// MFMT: [`Done::Modified`] with the time the store kept.
    SetModified(VPath, SystemTime),
    /// MKD: [`Done::Unit`].
    MakeDir(VPath),
    /// DELE (`dir` false) or RMD: [`Done::Removed`] with the size of the file removed.
    Remove { path: VPath, dir: bool },
    /// RNTO; without `replace`, an existing `to` is never replaced: [`Done::Unit`].
    Rename { from: VPath, to: VPath, replace: bool },
    /// RETR: the file, positioned at `offset`: [`Done::Read`].
    Read { path: VPath, offset: u64 },
    /// HASH: a job that digests the file in steps: [`Done::Hash`].
    Hash { path: VPath, algorithm: Algorithm },
    /// LIST, NLST, MLSD: a listing streamed by the transfer: [`Done::List`]. A file is listed as itself, unless
    /// `dir_only` (MLSD), when [`Done::List`] holds `None`.
    List { path: VPath, format: ListFormat, now: SystemTime, dir_only: bool },
    /// STAT with a path: at most `max` `ls -l` lines and whether more entries follow: [`Done::Status`].
    Status { path: VPath, now: SystemTime, max: usize },
    /// An upload's file, opened for writing as `how` says: [`Done::Upload`]. Without `new_files` (the user's file
    /// quota is full) only an existing file may be written.
    Upload { path: VPath, how: How, new_files: bool },
    /// A completed upload made visible under its name ([`Upload::temp`] renamed over it, or, for a STOU, linked
    /// under a name still free): [`Done::Published`] with the final name and size.
    Publish { temp: Option<TempPath>, path: VPath, unique: bool },
    /// An aborted upload's temporary removed. Nothing is answered.
    Discard(TempPath),
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Stat(p) => write!(f, "Stat({p})"),
            Op::EnterDir(p) => write!(f, "EnterDir({p})"),
            Op::SetModified(p, _) => write!(f, "SetModified({p})"),
            Op::MakeDir(p) => write!(f, "MakeDir({p})"),
            Op::Remove { path, dir } => write!(f, "Remove({path}, dir={dir})"),
            Op::Rename { from, to, replace } => write!(f, "Rename({from} -> {to}, replace={replace})"),
            Op::Read { path, offset } => write!(f, "Read({path} @{offset})"),
            Op::Hash { path, algorithm } => write!(f, "Hash({path}, {})", algorithm.name()),
            Op::List { path, .. } => write!(f, "List({path})"),
            Op::Status { path, .. } => write!(f, "Status({path})"),
            Op::Upload { path, how, .. } => write!(f, "Upload({path}, {how:?})"),
            Op::Publish { path, unique, .. } => write!(f, "Publish({path}, unique={unique})"),
            Op::Discard(t) => write!(f, "Discard({t})"),
        }
    }
}

/// A session's request: where, and what.
#[derive(Debug)]
pub struct Request {
    pub home: Home,
    pub op: Op,
}

/// An upload's file, ready for the transfer.
#[derive(Debug)]
pub struct Upload {
    /// The name the file will have (for STOU, the free name chosen).
    pub path: VPath,
    /// Where the bytes go until they are published; `None` when written in place (APPE, resumed STOR).
    pub temp: Option<TempPath>,
    pub file: File,
    /// Where writing starts: the REST offset, or the end of the file APPE extends.
    pub offset: u64,
    /// The size of the file the upload replaces or extends (`None`: a new file), for quota usage.
    pub size_before: Option<u64>,
}

/// What came of a request.
pub enum Done {
    Stat(io::Result<Meta>),
    Unit(io::Result<()>),
    Modified(io::Result<SystemTime>),
    Removed(io::Result<Option<u64>>),
    Read(io::Result<Source>),
    Hash(io::Result<Box<HashJob>>),
    List(io::Result<Option<Source>>),
    Status(io::Result<(Vec<String>, bool)>),
    Upload(io::Result<Box<Upload>>),
    Published(io::Result<(VPath, u64)>),
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, err) = match self {
            Done::Stat(r) => ("Stat", r.as_ref().err()),
            Done::Unit(r) => ("Unit", r.as_ref().err()),
            Done::Modified(r) => ("Modified", r.as_ref().err()),
            Done::Removed(r) => ("Removed", r.as_ref().err()),
            Done::Read(r) => ("Read", r.as_ref().err()),
            Done::Hash(r) => ("Hash", r.as_ref().err()),
            Done::List(r) => ("List", r.as_ref().err()),
            Done::Status(r) => ("Status", r.as_ref().err()),
            Done::Upload(r) => ("Upload", r.as_ref().err()),
            Done::Published(r) => ("Published", r.as_ref().err()),
        };
        match err {
            None => write!(f, "{name}(ok)"),
            Some(e) => write!(f, "{name}({e})"),
        }
    }
}

/// The error a session sees if the storage answered a request with the wrong kind of result: a defect, reported
/// to the client as a local error rather than a panic.
fn mismatch(done: &Done) -> io::Error {
    io::Error::other(format!("storage answered out of turn: {done:?}"))
}

macro_rules! take {
    ($name:ident, $variant:ident, $t:ty) => {
        /// The result, if this is the answer of its kind.
        pub fn $name(self) -> io::Result<$t> {
            match self {
                Done::$variant(r) => r,
                other => Err(mismatch(&other)),
            }
        }
    };
}

impl Done {
    take!(stat, Stat, Meta);
    take!(unit, Unit, ());
    take!(modified, Modified, SystemTime);
    take!(removed, Removed, Option<u64>);
    take!(read, Read, Source);
    take!(hash, Hash, Box<HashJob>);
    take!(list, List, Option<Source>);
    take!(status, Status, (Vec<String>, bool));
    take!(upload, Upload, Box<Upload>);
    take!(published, Published, (VPath, u64));

    /// A temporary this answer created, for a session that no longer wants it (it closed meanwhile).
    pub fn into_temp(self) -> Option<TempPath> {
        match self {
            Done::Upload(Ok(u)) => u.temp,
            _ => None,
        }
    }
}

/// Carries out a request where its home is: on the local disk at once (the answer is returned), or on a back-end
/// through the worker's `pool` (`None` is returned; the answer comes through the waker, for slab key `key` and
/// session number `session`). A pool that cannot take it answers at once that the storage is busy.
pub fn dispatch(pool: Option<&remote::Pool>, key: usize, session: u64, req: Request) -> Option<Done> {
    let (Some(backend), Some(pool)) = (req.home.backend(), pool) else { return run(req) };
    let job = remote::Job { key, session, backend: backend.clone(), op: req.op };
    match pool.submit(job) {
        Ok(()) => None,
        Err(job) => {
            log::warn!("session {session}: storage queue full; {:?} refused", job.op);
            remote::busy(&job.op)
        }
    }
}

/// Carries out a request on the local disk, at once; `None` for those nothing answers ([`Op::Discard`]). A
/// request for a home on a back-end is the loop's to hand to its pool ([`Home::backend`]); run here, it is
/// answered as if the pool were busy.
pub fn run(req: Request) -> Option<Done> {
    let root = match &req.home.0 {
        Place::Disk(root) => root.clone(),
        Place::Remote(_) => return remote::busy(&req.op),
    };
    let root = &*root;
    Some(match req.op {
        Op::Stat(p) => Done::Stat(root.metadata(&p).map(|m| Meta::from(&m))),
        Op::EnterDir(p) => Done::Unit(root.open_dir(&p).map(drop)),
        Op::SetModified(p, t) => Done::Modified(root.set_modified(&p, t)),
        Op::MakeDir(p) => Done::Unit(root.create_dir(&p)),
        Op::Remove { path, dir } => {
            let size = root.metadata(&path).ok().filter(|m| m.is_file()).map(|m| m.len());
            let removed = if dir { root.remove_dir(&path) } else { root.remove_file(&path) };
            Done::Removed(removed.map(|()| size))
        }
        Op::Rename { from, to, replace } => {
            Done::Unit(if replace { root.rename(&from, &to) } else { root.rename_noreplace(&from, &to) })
        }
        Op::Read { path, offset } => Done::Read(read(root, &path, offset)),
        Op::Hash { path, algorithm } => Done::Hash(root.open_read(&path).map(|f| Box::new(HashJob::new(f, algorithm)))),
        Op::List { path, format, now, dir_only } => {
            Done::List(list(root, &path, format, now, dir_only).map(|l| l.map(|l| Source::Listing(Box::new(l)))))
        }
        Op::Status { path, now, max } => Done::Status(
            list(root, &path, ListFormat::Long, now, false)
                .and_then(|l| l.ok_or_else(|| io::Error::other("not listable")))
                .and_then(|mut l| l.lines(max)),
        ),
        Op::Upload { path, how, new_files } => Done::Upload(upload(root, path, how, new_files).map(Box::new)),
        Op::Publish { temp, path, unique } => Done::Published(publish(root, temp, path, unique)),
        Op::Discard(temp) => {
            if let Err(e) = root.discard(&temp) {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("cannot remove {temp}: {e}");
                }
            }
            return None;
        }
    })
}

/// Refusals the storage decides itself, which the session answers with their own replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A REST offset past the end of the file (554).
    BeyondEnd,
    /// The user's file quota leaves no room for a new file (552).
    NoRoomForAFile,
    /// Every name a STOU tried is taken (553).
    NoUniqueName,
    /// The store cannot do this (APPE, REST + STOR and MFMT on objects): 504.
    Unsupported,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::BeyondEnd => "restart offset beyond end of file",
            Refusal::NoRoomForAFile => "no room for another file",
            Refusal::NoUniqueName => "no unique name available",
            Refusal::Unsupported => "not supported by this storage",
        })
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    fn error(self) -> io::Error {
        let kind = match self {
            Refusal::BeyondEnd => io::ErrorKind::InvalidInput,
            Refusal::NoRoomForAFile => io::ErrorKind::QuotaExceeded,
            Refusal::NoUniqueName => io::ErrorKind::AlreadyExists,
            Refusal::Unsupported => io::ErrorKind::Unsupported,
        };
        io::Error::new(kind, self)
    }

    /// The refusal an error carries, if it is one.
    pub fn of(e: &io::Error) -> Option<Refusal> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Refusal>()).copied()
    }
}

/// The file to download from `offset` on, with the bytes left in it: one open, one stat, and a seek only past 0.
fn read(root: &Root, path: &VPath, offset: u64) -> io::Result<Source> {
    let (mut f, len) = root.open_read_sized(path)?;
    if offset > len {
        return Err(Refusal::BeyondEnd.error());
    }
    if offset > 0 {
        f.seek(SeekFrom::Start(offset))?;
    }
    Ok(Source::File(f, len - offset))
}

fn list(root: &Root, p: &VPath, format: ListFormat, now: SystemTime, dir_only: bool) -> io::Result<Option<Listing>> {
    let meta = root.metadata(p)?;
    if meta.is_dir() {
        return root.open_dir(p).and_then(|d| Listing::directory(d, format, now)).map(Some);
    }
    if dir_only {
        return Ok(None);
    }
    let name = p.file_name().unwrap_or("/").to_string();
    Ok(Some(Listing::single(name, Meta::from(&meta), format, now)))
}

fn upload(root: &Root, path: VPath, how: How, new_files: bool) -> io::Result<Upload> {
    let existing = root.metadata(&path);
    if existing.as_ref().is_ok_and(|m| m.is_dir()) {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
    }
    if existing.is_err() && !new_files {
        return Err(Refusal::NoRoomForAFile.error());
    }
    let size_before = existing.ok().filter(|m| m.is_file()).map(|m| m.len());
    match how {
        How::Replace => {
            let (temp, file) = root.create_temp(&path)?;
            Ok(Upload { path, temp: Some(temp), file, offset: 0, size_before })
        }
        How::Unique => {
            let path = unique_name(root, &path).ok_or_else(|| Refusal::NoUniqueName.error())?;
            let (temp, file) = root.create_temp(&path)?;
            // The name was free a moment ago: nothing it replaces.
            Ok(Upload { path, temp: Some(temp), file, offset: 0, size_before: None })
        }
        How::Resume(offset) => {
            // Keep the first `offset` bytes and write from there. What lies beyond them is cut only once the
            // data connection is up and the transfer starts: a STOR that never gets its connection changes nothing.
            let mut file = root.open_write(&path, false)?;
            if offset > file.metadata()?.len() {
                return Err(Refusal::BeyondEnd.error());
            }
            file.seek(SeekFrom::Start(offset))?;
            Ok(Upload { path, temp: None, file, offset, size_before })
        }
        How::Append => {
            let file = root.open_write(&path, true)?;
            let offset = file.metadata()?.len();
            Ok(Upload { path, temp: None, file, offset, size_before })
        }
    }
}

/// Makes a completed upload visible and reports its final name and size. STOU never replaces a file: if its
/// name was taken during the upload, another free one is used, a bounded number of times. On failure the
/// temporary is left for the session to discard.
fn publish(root: &Root, temp: Option<TempPath>, mut path: VPath, unique: bool) -> io::Result<(VPath, u64)> {
    if let Some(temp) = temp {
        if unique {
            publish_unique(root, &temp, &mut path)?;
        } else {
            root.publish(&temp, &path)?;
        }
    }
    let size = root.metadata(&path).map_or(0, |m| m.len());
    Ok((path, size))
}

fn publish_unique(root: &Root, temp: &TempPath, path: &mut VPath) -> io::Result<()> {
    for _ in 0..STOU_PUBLISH_TRIES {
        match root.publish_new(temp, path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match unique_name(root, path) {
                Some(p) => *path = p,
                None => return Err(e),
            },
            other => return other,
        }
    }
    Err(Refusal::NoUniqueName.error())
}

/// `name`, else `name.1` ... `name.N`, else `name.<random>`: the first that nothing has, not even a dangling
/// symlink. Bounded: a directory full of `name.N` costs at most [`STOU_TRIES`] lookups, never a scan.
fn unique_name(root: &Root, first: &VPath) -> Option<VPath> {
    if root.is_free(first) {
        return Some(first.clone());
    }
    let name = first.file_name()?;
    let numbered = (1..=STOU_TRIES).map(|n| format!("{name}.{n}"));
    let random = (0..STOU_RANDOM_TRIES).map(|_| format!("{name}.{}", crate::fs::random_suffix()));
    numbered.chain(random).map(|n| first.parent().join(&n)).find(|p| root.is_free(p))
}
