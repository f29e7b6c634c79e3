//! Files as objects in an S3 bucket (`--storage s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME`).
//!
//! How each FTP operation maps onto the store (the README's "Storing files in S3" has the same table):
//!
//! | FTP | on the store |
//! |---|---|
//! | RETR, REST + RETR | GET, a Range GET from the offset; streamed |
//! | STOR, STOU | a multipart upload in parts of [`PART_SIZE`]; the object appears only when complete, an aborted one is abandoned on the store |
//! | APPE, REST + STOR | 504: objects are written whole |
//! | SIZE, MDTM, MLST | HEAD (a directory: a key below it exists) |
//! | LIST, NLST, MLSD, STAT | ListObjectsV2 with `/` as delimiter, page by page |
//! | MKD | an empty `dir/` marker object |
//! | RMD | deletes the marker; refused (550) while anything is below it |
//! | DELE | DELETE |
//! | RNFR/RNTO | a file: server-side copy, then DELETE of the old key; a directory: 550 |
//! | MFMT | 504: the store keeps the time an object was written |
//! | HASH | the object streamed through the digest on a storage thread |
//!
//! A path's key is the home's prefix and the path without its leading `/`; a directory `d` is the prefix `d/`.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use super::remote::{Backend, Entries, Sink};
use super::{Kind, Meta, Refusal};
use crate::fs::VPath;
use crate::s3::{Client, Error, Part, Upload};

/// Bytes per part of an upload (and so the memory an upload holds): above S3's 5 MiB minimum.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// How many `name.N` STOU tries (one HEAD each) before it gives up.
const STOU_TRIES: u32 = 16;

/// A home in a bucket: the client (bucket and base prefix) and the home's own prefix below it.
#[derive(Clone)]
pub struct S3 {
    client: Client,
    /// `""` or `alice/`: below the client's prefix.
    home: String,
    /// `s3://bucket/prefix/`, for log lines and hooks.
    label: String,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3({}{})", self.label, self.home)
    }
}

impl S3 {
    /// The bucket's root as a back-end; `label` names it in log lines (`s3://bucket/prefix/`).
    pub fn new(client: Client, label: String) -> S3 {
        S3 { client, home: String::new(), label }
    }

    fn key(&self, p: &VPath) -> String {
        format!("{}{}", self.home, p.as_str().trim_start_matches('/'))
    }

    /// The prefix of a directory's entries: `""` for the home's root of an unprefixed home, else `key/`.
    fn dir_prefix(&self, p: &VPath) -> String {
        let key = self.key(p);
        if key.is_empty() || key.ends_with('/') {
            key
        } else {
            key + "/"
        }
    }

    /// Whether anything at all is below `p` (its marker or any key).
    fn is_dir(&self, p: &VPath) -> io::Result<bool> {
        if p.is_root() {
            return Ok(true);
        }
        // One key says so: a page of one, however large the directory.
        let page = self.client.list_up_to(&self.dir_prefix(p), Some("/"), None, 1).map_err(io_error)?;
        Ok(!page.files.is_empty() || !page.dirs.is_empty())
    }

    /// Whether a directory holds anything but its own marker.
    fn has_entries(&self, p: &VPath) -> io::Result<bool> {
        let prefix = self.dir_prefix(p);
        // The marker sorts first (it is the prefix itself): two keys tell whether anything else is there.
        let page = self.client.list_up_to(&prefix, Some("/"), None, 2).map_err(io_error)?;
        Ok(!page.dirs.is_empty() || page.files.iter().any(|f| f.key != prefix))
    }

    fn head(&self, p: &VPath) -> io::Result<Option<crate::s3::ObjectMeta>> {
        if p.is_root() {
            return Ok(None);
        }
        self.client.head(&self.key(p)).map_err(io_error)
    }
}

fn file_meta(size: u64, modified: std::time::SystemTime) -> Meta {
    Meta { kind: Kind::File, len: size, modified: Some(modified), mode: 0o644, links: 1, unique: None }
}

fn dir_meta() -> Meta {
    Meta { kind: Kind::Dir, len: 0, modified: None, mode: 0o755, links: 2, unique: None }
}

/// What a store error means to a session: its kind picks the reply (550, 451, 553, 554).
pub fn io_error(e: Error) -> io::Error {
    match e {
        Error::NotFound => io::Error::new(io::ErrorKind::NotFound, "no such file"),
        Error::Transient(why) => io::Error::new(io::ErrorKind::TimedOut, why),
        Error::Denied(why) => io::Error::new(io::ErrorKind::PermissionDenied, why),
        Error::InvalidRange { .. } => Refusal::BeyondEnd.error(),
        Error::InvalidKey(why) => io::Error::new(io::ErrorKind::InvalidFilename, why),
        // A misconfigured or failing store: for the client, worth trying again later (451).
        Error::Other(why) => io::Error::new(io::ErrorKind::ResourceBusy, why),
    }
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file or directory")
}

impl Backend for S3 {
    fn locate(&self, p: &VPath) -> PathBuf {
        PathBuf::from(format!("{}{}", self.label, self.key(p)))
    }

    fn below(&self, home: &str) -> io::Result<Arc<dyn Backend>> {
        let rel = home.trim_matches('/');
        if rel.split('/').any(|s| s.is_empty() || s == "." || s == "..") && !rel.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("home {home:?} is not a plain path")));
        }
        let mut below = self.clone();
        if !rel.is_empty() {
            below.home = format!("{}{rel}/", self.home);
        }
        Ok(Arc::new(below))
    }

    fn stat(&self, p: &VPath) -> io::Result<Meta> {
        if let Some(m) = self.head(p)? {
            return Ok(file_meta(m.size, m.modified));
        }
        if self.is_dir(p)? {
            return Ok(dir_meta());
        }
        Err(not_found())
    }

    fn make_dir(&self, p: &VPath) -> io::Result<()> {
        if p.is_root() || self.head(p)?.is_some() || self.is_dir(p)? {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "already exists"));
        }
        if !self.is_dir(&p.parent())? {
            return Err(not_found());
        }
        self.client.put(&self.dir_prefix(p), b"").map_err(io_error)
    }

    fn remove(&self, p: &VPath, dir: bool) -> io::Result<Option<u64>> {
        if p.is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "cannot remove the root"));
        }
        if !dir {
            let Some(m) = self.head(p)? else {
                return Err(if self.is_dir(p)? {
                    io::Error::new(io::ErrorKind::IsADirectory, "is a directory")
                } else {
                    not_found()
                });
            };
            self.client.delete(&self.key(p)).map_err(io_error)?;
            return Ok(Some(m.size));
        }
        if self.head(p)?.is_some() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory"));
        }
        if !self.is_dir(p)? {
            return Err(not_found());
        }
        if self.has_entries(p)? {
            return Err(io::Error::new(io::ErrorKind::DirectoryNotEmpty, "directory not empty"));
        }
        self.client.delete(&self.dir_prefix(p)).map_err(io_error)?;
        Ok(None)
    }

    fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> io::Result<()> {
        if from.is_root() || to.is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "cannot rename the root"));
        }
        if self.head(from)?.is_none() {
            // Renaming a directory would copy every object below it, one by one: refused.
            return Err(if self.is_dir(from)? { Refusal::Unsupported.error() } else { not_found() });
        }
        if self.is_dir(to)? {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        if !replace && self.head(to)?.is_some() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "already exists"));
        }
        if !self.is_dir(&to.parent())? {
            return Err(not_found());
        }
        self.client.copy(&self.key(from), &self.key(to)).map_err(io_error)?;
        self.client.delete(&self.key(from)).map_err(io_error)
    }

    fn read(&self, p: &VPath, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let reader = self.client.get(&self.key(p), offset).map_err(io_error)?;
        Ok(Box::new(reader))
    }

    fn list(&self, p: &VPath) -> io::Result<Entries> {
        let prefix = self.dir_prefix(p);
        let mut pages = Pages { s3: self.clone(), prefix, next: None, started: false, queue: VecDeque::new() };
        // The first page now, so a failure is the command's error rather than a listing cut short.
        pages.fetch()?;
        Ok(Box::new(pages))
    }

    fn usage(&self) -> io::Result<(u64, u64)> {
        let (mut bytes, mut files) = (0, 0);
        let mut next = None;
        loop {
            let page = self.client.list(&self.home, None, next.as_deref()).map_err(io_error)?;
            for f in &page.files {
                if !f.key.ends_with('/') {
                    bytes += f.size;
                    files += 1;
                }
            }
            match page.next {
                Some(token) => next = Some(token),
                None => return Ok((bytes, files)),
            }
        }
    }

    fn upload(&self, p: &VPath, unique: bool) -> io::Result<(VPath, Box<dyn Sink>)> {
        if !self.is_dir(&p.parent())? {
            return Err(not_found());
        }
        let path = if unique { self.free_name(p)? } else { p.clone() };
        let upload = self.client.create_multipart(&self.key(&path)).map_err(io_error)?;
        let sink = Parts { client: self.client.clone(), upload, buf: Vec::new(), parts: Vec::new(), size: 0 };
        Ok((path, Box::new(sink)))
    }
}

impl S3 {
    /// STOU: `name`, else `name.1` ... `name.N`, the first no object has. The store has no create-if-absent, so
    /// an upload of the same name by someone else meanwhile is replaced (the README says so).
    fn free_name(&self, first: &VPath) -> io::Result<VPath> {
        let taken = |p: &VPath| -> io::Result<bool> { Ok(self.head(p)?.is_some() || self.is_dir(p)?) };
        if !taken(first)? {
            return Ok(first.clone());
        }
        let name = first.file_name().ok_or_else(|| Refusal::NoUniqueName.error())?;
        for n in 1..=STOU_TRIES {
            let p = first.parent().join(&format!("{name}.{n}"));
            if !taken(&p)? {
                return Ok(p);
            }
        }
        Err(Refusal::NoUniqueName.error())
    }
}

/// A directory's entries, one ListObjectsV2 page at a time.
struct Pages {
    s3: S3,
    prefix: String,
    next: Option<String>,
    started: bool,
    queue: VecDeque<(String, Meta)>,
}

impl Pages {
    fn fetch(&mut self) -> io::Result<()> {
        let page = self.s3.client.list(&self.prefix, Some("/"), self.next.as_deref()).map_err(io_error)?;
        self.started = true;
        self.next = page.next;
        for d in page.dirs {
            let name = d.strip_prefix(&self.prefix).unwrap_or(&d).trim_end_matches('/').to_string();
            if !name.is_empty() {
                self.queue.push_back((name, dir_meta()));
            }
        }
        for f in page.files {
            let name = f.key.strip_prefix(&self.prefix).unwrap_or(&f.key).to_string();
            // The directory's own marker is not an entry of it; uploads in flight are nobody's business.
            if name.is_empty() || name.ends_with('/') || crate::fs::is_temp_name(&name) {
                continue;
            }
            self.queue.push_back((name, file_meta(f.size, f.modified)));
        }
        Ok(())
    }
}

impl Iterator for Pages {
    type Item = io::Result<(String, Meta)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(Ok(e));
            }
            if self.started && self.next.is_none() {
                return None;
            }
            if let Err(e) = self.fetch() {
                self.next = None;
                return Some(Err(e));
            }
        }
    }
}

/// An upload's parts: bytes gather into a part of [`PART_SIZE`], each sent as it fills.
struct Parts {
    client: Client,
    upload: Upload,
    buf: Vec<u8>,
    parts: Vec<Part>,
    size: u64,
}

impl Parts {
    fn send_part(&mut self) -> io::Result<()> {
        let number = u16::try_from(self.parts.len() + 1).map_err(|_| io::Error::other("too many parts"))?;
        let part = self.client.upload_part(&self.upload, number, &self.buf).map_err(io_error)?;
        self.parts.push(part);
        self.buf.clear();
        Ok(())
    }
}

impl Sink for Parts {
    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        self.size += bytes.len() as u64;
        while !bytes.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(PART_SIZE);
            }
            let take = bytes.len().min(PART_SIZE - self.buf.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == PART_SIZE {
                self.send_part()?;
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> io::Result<u64> {
        if self.parts.is_empty() {
            // Smaller than one part: one PUT, and the multipart upload is let go.
            let key = self.upload.key().to_string();
            let put = self.client.put(&key, &self.buf).map_err(io_error);
            let _ = self.client.abort(&self.upload);
            return put.map(|()| self.size);
        }
        let sent = if self.buf.is_empty() { Ok(()) } else { self.send_part() };
        let completed = sent.and_then(|()| self.client.complete(&self.upload, &self.parts).map_err(io_error));
        if let Err(e) = completed {
            // Nothing is left on the store of an upload that did not complete.
            let _ = self.client.abort(&self.upload);
            return Err(e);
        }
        Ok(self.size)
    }

    fn abort(self: Box<Self>) {
        if let Err(e) = self.client.abort(&self.upload) {
            log::warn!("abandoning upload of {:?}: {e}", self.upload.key());
        }
    }
}
