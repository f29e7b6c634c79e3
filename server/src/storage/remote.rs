//! Storage back-ends reached over a network (an S3 object store): their requests never run on the loop.
//!
//! A [`Backend`] is blocking code. The loop hands each request of a session whose home is on one to a [`Pool`]
//! of threads (bounded: a full queue is answered at once with a transient error, 451), and the answer comes back
//! through the loop's waker as the same [`Done`] the local disk gives. What streams does so through a pipe, so
//! memory per transfer is bounded by the pipe and a part buffer whatever the file's size:
//! - a download or listing: a thread of its own copies the back-end's reader (or formats its entries) into the
//!   pipe; the loop's transfer reads the other end, non-blocking, and waits on it as on a socket;
//! - an upload: the loop's transfer writes into the pipe, non-blocking; a thread of its own feeds what it reads
//!   to the back-end's [`Sink`]; after the end of the data it waits for the session's decision: publish (the
//!   object appears whole) or discard (the upload is abandoned on the store, leaving nothing).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use log::{debug, warn};

use super::{Done, How, Meta, Op, Refusal};
use crate::fs::{TempPath, VPath};
use crate::hash::HashJob;
use crate::listing::{ListFormat, Listing};
use crate::transfer::{Source, Stream};

/// Requests waiting for a pool thread, per worker; past this a request is refused (451) rather than queued.
const QUEUE: usize = 1024;
/// Threads per worker running requests (each a blocking HTTP exchange at a time).
pub const THREADS: usize = 16;
/// The pipe between the loop and a streaming thread.
const PIPE_SIZE: usize = 1 << 20;
/// What a streaming thread moves per read.
const STREAM_BUF: usize = 256 * 1024;
/// How long an upload whose data is all in waits for its session's decision before it is abandoned.
const DECISION_WAIT: std::time::Duration = std::time::Duration::from_secs(300);
/// Streams (downloads, listings, uploads) running at once in the whole server: each is a thread. Past this, a
/// transfer on the back-end is refused with 451 rather than start a thread more.
pub const MAX_STREAMS: usize = 1024;
static STREAMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A place among the [`MAX_STREAMS`], given back when the stream's thread ends.
struct StreamSlot;

impl StreamSlot {
    fn take() -> io::Result<StreamSlot> {
        use std::sync::atomic::Ordering;
        let n = STREAMS.fetch_add(1, Ordering::AcqRel);
        if n >= MAX_STREAMS {
            STREAMS.fetch_sub(1, Ordering::AcqRel);
            return Err(io::Error::new(io::ErrorKind::ResourceBusy, "too many transfers on the storage; try again"));
        }
        Ok(StreamSlot)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        STREAMS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Stack of the threads that stream (they hold a buffer on the heap, not the stack).
const STACK: usize = 256 * 1024;

/// A directory's entries as a back-end yields them, page by page.
pub type Entries = Box<dyn Iterator<Item = io::Result<(String, Meta)>> + Send>;

/// A storage back-end: blocking calls, run on the pool's threads, never on the loop. Paths are relative to
/// the home the back-end was made for.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Where a client path is kept, for log lines and hooks (`s3://bucket/key`).
    fn locate(&self, p: &VPath) -> PathBuf;
    /// The back-end for a home below this one (a user's home).
    fn below(&self, home: &str) -> io::Result<Arc<dyn Backend>>;
    fn stat(&self, p: &VPath) -> io::Result<Meta>;
    /// MFMT, where the store can keep a time at all.
    fn set_modified(&self, _p: &VPath, _t: SystemTime) -> io::Result<SystemTime> {
        Err(Refusal::Unsupported.error())
    }
    fn make_dir(&self, p: &VPath) -> io::Result<()>;
    /// Removes a file (`dir` false) or an empty directory; the size of a file removed.
    fn remove(&self, p: &VPath, dir: bool) -> io::Result<Option<u64>>;
    fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> io::Result<()>;
    /// A file's bytes from `offset`.
    fn read(&self, p: &VPath, offset: u64) -> io::Result<Box<dyn Read + Send>>;
    /// The entries of the directory `p`.
    fn list(&self, p: &VPath) -> io::Result<Entries>;
    /// Starts an upload of `p` (only [`How::Replace`] and [`How::Unique`] are asked for); the name it will
    /// have (STOU: a free one) and where its bytes go.
    fn upload(&self, p: &VPath, unique: bool) -> io::Result<(VPath, Box<dyn Sink>)>;
    /// What the home holds, bytes and files, for quotas (a walk of everything below it).
    fn usage(&self) -> io::Result<(u64, u64)>;
}

/// Where an upload's bytes go on a back-end; nothing is visible until [`Sink::commit`].
pub trait Sink: Send {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes the upload visible, whole; its size.
    fn commit(self: Box<Self>) -> io::Result<u64>;
    /// Abandons the upload, leaving nothing.
    fn abort(self: Box<Self>);
}

/// How a streaming thread's work ended, for the loop's side of the pipe.
#[derive(Debug, Default)]
pub struct StreamEnd(Mutex<Option<Result<(), String>>>);

impl StreamEnd {
    fn set(&self, r: Result<(), String>) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(r);
        }
    }

    /// At the end of the pipe: success only if the thread said everything came.
    pub fn result(&self) -> io::Result<()> {
        match self.0.lock().ok().and_then(|g| g.clone()) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(io::Error::other(e)),
            None => Err(io::Error::other("storage stream ended early")),
        }
    }
}

/// A request for the pool: whose (slab key and session number), where, what.
pub struct Job {
    pub key: usize,
    pub session: u64,
    pub backend: Arc<dyn Backend>,
    pub op: Op,
}

/// An answer from the pool, for the loop to hand to its session.
pub struct Answer {
    pub key: usize,
    pub session: u64,
    pub backend: Arc<dyn Backend>,
    pub done: Done,
}

/// An upload being streamed to a back-end, waiting (after its data) for the session's decision.
enum Decision {
    Publish(mpsc::Sender<io::Result<u64>>),
    Discard,
}

/// Uploads in flight, by their temporary's name.
type Uploads = Arc<Mutex<HashMap<String, mpsc::Sender<Decision>>>>;

/// One worker's threads for back-end requests.
pub struct Pool {
    jobs: SyncSender<Job>,
    answers: Receiver<Answer>,
}

impl Pool {
    /// Starts `threads` threads; `wake` is called after each answer is queued (the loop's waker).
    pub fn start(threads: usize, wake: Arc<dyn Fn() + Send + Sync>) -> io::Result<Pool> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
        let (answer, answers) = mpsc::channel::<Answer>();
        let queue = Arc::new(Mutex::new(queue));
        let uploads: Uploads = Arc::default();
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let answer = answer.clone();
            let wake = wake.clone();
            let uploads = uploads.clone();
            std::thread::Builder::new().name(format!("storage-{i}")).spawn(move || loop {
                let job = match queue.lock() {
                    Ok(q) => q.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                let Job { key, session, backend, op } = job;
                let Some(done) = carry_out(&*backend, op, &uploads) else { continue };
                if answer.send(Answer { key, session, backend, done }).is_err() {
                    return;
                }
                wake();
            })?;
        }
        Ok(Pool { jobs, answers })
    }

    /// Queues a request; when the queue is full, the answer is at once a transient failure.
    pub fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Err(Box::new(job)),
        }
    }

    /// The answers that came since the last call.
    pub fn answers(&self) -> impl Iterator<Item = Answer> + '_ {
        self.answers.try_iter()
    }
}

/// The answer a request gets when the pool cannot take it.
pub fn busy(op: &Op) -> Option<Done> {
    let e = || io::Error::new(io::ErrorKind::ResourceBusy, "storage busy; try again");
    Some(match op {
        Op::Stat(_) => Done::Stat(Err(e())),
        Op::EnterDir(_) | Op::MakeDir(_) | Op::Rename { .. } => Done::Unit(Err(e())),
        Op::SetModified(..) => Done::Modified(Err(e())),
        Op::Remove { .. } => Done::Removed(Err(e())),
        Op::Read { .. } => Done::Read(Err(e())),
        Op::Hash { .. } => Done::Hash(Err(e())),
        Op::List { .. } => Done::List(Err(e())),
        Op::Status { .. } => Done::Status(Err(e())),
        Op::Upload { .. } => Done::Upload(Err(e())),
        Op::Publish { .. } => Done::Published(Err(e())),
        Op::Discard(_) => return None,
    })
}

/// Carries out one request on a pool thread.
fn carry_out(b: &dyn Backend, op: Op, uploads: &Uploads) -> Option<Done> {
    Some(match op {
        Op::Stat(p) => Done::Stat(b.stat(&p)),
        Op::EnterDir(p) => Done::Unit(b.stat(&p).and_then(|m| {
            if m.is_dir() {
                Ok(())
            } else {
                Err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory"))
            }
        })),
        Op::SetModified(p, t) => Done::Modified(b.set_modified(&p, t)),
        Op::MakeDir(p) => Done::Unit(b.make_dir(&p)),
        Op::Remove { path, dir } => Done::Removed(b.remove(&path, dir)),
        Op::Rename { from, to, replace } => Done::Unit(b.rename(&from, &to, replace)),
        Op::Read { path, offset } => Done::Read(read(b, &path, offset)),
        Op::Hash { path, algorithm } => Done::Hash(hash(b, &path, algorithm)),
        Op::List { path, format, now, dir_only } => Done::List(list(b, &path, format, now, dir_only)),
        Op::Status { path, now, max } => Done::Status(status(b, &path, now, max)),
        Op::Upload { path, how, new_files } => Done::Upload(upload(b, path, how, new_files, uploads)),
        Op::Publish { temp, path, unique: _ } => Done::Published(publish(b, temp, path, uploads)),
        Op::Discard(temp) => {
            decide(uploads, &temp, Decision::Discard);
            return None;
        }
    })
}

fn read(b: &dyn Backend, p: &VPath, offset: u64) -> io::Result<Source> {
    let meta = b.stat(p)?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
    }
    if !meta.is_file() {
        return Err(crate::fs::not_regular());
    }
    if offset > meta.len {
        return Err(Refusal::BeyondEnd.error());
    }
    let reader = b.read(p, offset)?;
    stream_out(reader, false)
}

/// A pipe whose far end a thread of its own fills from `reader`.
fn stream_out(mut reader: Box<dyn Read + Send>, listing: bool) -> io::Result<Source> {
    let slot = StreamSlot::take()?;
    let (ours, theirs) = pipe(false)?;
    let end = Arc::new(StreamEnd::default());
    let their_end = end.clone();
    std::thread::Builder::new().name("storage-stream".into()).stack_size(STACK).spawn(move || {
        let _slot = slot;
        let mut theirs = theirs;
        let mut buf = vec![0; STREAM_BUF];
        let result = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if let Err(e) = theirs.write_all(&buf[..n]) {
                        // The loop closed its end: the transfer is over (ABOR, a closed connection).
                        break Err(format!("reader gone: {e}"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("storage stream failed: {e}");
                    break Err(e.to_string());
                }
            }
        };
        // The result is set before the pipe closes, so the loop sees it at the end of the pipe.
        their_end.set(result);
        drop(theirs);
    })?;
    Ok(Source::Stream(Stream::new(ours, end, listing)))
}

fn hash(b: &dyn Backend, p: &VPath, algorithm: crate::hash::Algorithm) -> io::Result<Box<HashJob>> {
    let meta = b.stat(p)?;
    if !meta.is_file() {
        return Err(if meta.is_dir() {
            io::Error::new(io::ErrorKind::IsADirectory, "is a directory")
        } else {
            crate::fs::not_regular()
        });
    }
    // Digested here, in bounded reads, off the loop; the loop's job only reports the result.
    let mut reader = b.read(p, 0)?;
    let mut job = HashJob::streaming(algorithm);
    let mut buf = vec![0; STREAM_BUF];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => job.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Box::new(job))
}

fn list(b: &dyn Backend, p: &VPath, format: ListFormat, now: SystemTime, dir_only: bool) -> io::Result<Option<Source>> {
    let meta = b.stat(p)?;
    if !meta.is_dir() {
        if dir_only {
            return Ok(None);
        }
        let name = p.file_name().unwrap_or("/").to_string();
        return Ok(Some(Source::Listing(Box::new(Listing::single(name, meta, format, now)))));
    }
    let entries = b.list(p)?;
    stream_out(Box::new(Listing::entries(entries, format, now)), true).map(Some)
}

fn status(b: &dyn Backend, p: &VPath, now: SystemTime, max: usize) -> io::Result<(Vec<String>, bool)> {
    let meta = b.stat(p)?;
    let mut listing = if meta.is_dir() {
        Listing::entries(b.list(p)?, ListFormat::Long, now)
    } else {
        Listing::single(p.file_name().unwrap_or("/").to_string(), meta, ListFormat::Long, now)
    };
    listing.lines(max)
}

fn upload(
    b: &dyn Backend,
    path: VPath,
    how: How,
    new_files: bool,
    uploads: &Uploads,
) -> io::Result<Box<super::Upload>> {
    if matches!(how, How::Resume(_) | How::Append) {
        // Objects are written whole: nothing can be written into one in place.
        return Err(Refusal::Unsupported.error());
    }
    let existing = b.stat(&path);
    if existing.as_ref().is_ok_and(|m| m.is_dir()) {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
    }
    if existing.is_err() && !new_files {
        return Err(Refusal::NoRoomForAFile.error());
    }
    let size_before = existing.ok().filter(|m| m.is_file()).map(|m| m.len);
    let unique = how == How::Unique;
    let slot = StreamSlot::take()?;
    let (path, sink) = b.upload(&path, unique)?;
    let (theirs, ours) = pipe(true)?;
    let temp = crate::fs::TempPath::beside(&path);
    let (decide, decision) = mpsc::channel::<Decision>();
    if let Ok(mut map) = uploads.lock() {
        map.insert(temp.to_string(), decide);
    }
    let name = temp.to_string();
    let registry = uploads.clone();
    std::thread::Builder::new().name("storage-upload".into()).stack_size(STACK).spawn(move || {
        let _slot = slot;
        let result = feed(theirs, sink, &decision);
        if let Ok(mut map) = registry.lock() {
            map.remove(&name);
        }
        debug!("upload {name}: {result:?}");
    })?;
    Ok(Box::new(super::Upload {
        path,
        temp: Some(temp),
        file: ours,
        offset: 0,
        size_before: if unique { None } else { size_before },
    }))
}

/// An upload's thread: the pipe's bytes to the sink until the loop closes its end, then the session's
/// decision. A failure of the store closes the pipe early, so the loop's next write fails (451).
fn feed(mut pipe: File, mut sink: Box<dyn Sink>, decision: &Receiver<Decision>) -> io::Result<u64> {
    let mut buf = vec![0; STREAM_BUF];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = sink.write_all(&buf[..n]) {
                    warn!("upload to the store failed: {e}");
                    drop(pipe);
                    sink.abort();
                    // The session still decides; whatever it says, the answer is the failure.
                    if let Ok(Decision::Publish(reply)) = decision.recv_timeout(DECISION_WAIT) {
                        let _ = reply.send(Err(io::Error::new(e.kind(), e.to_string())));
                    }
                    return Err(e);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                sink.abort();
                return Err(e);
            }
        }
    }
    drop(pipe);
    // The data is all here: the session decides within moments (it publishes or discards as its transfer
    // ends); should it never, the upload is abandoned rather than held.
    match decision.recv_timeout(DECISION_WAIT) {
        Ok(Decision::Publish(reply)) => {
            let result = sink.commit();
            let answer = match &result {
                Ok(n) => Ok(*n),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = reply.send(answer);
            result
        }
        // Discarded, or no decision: nothing is left on the store.
        Ok(Decision::Discard) | Err(_) => {
            sink.abort();
            Ok(0)
        }
    }
}

fn decide(uploads: &Uploads, temp: &TempPath, decision: Decision) -> bool {
    let sender = uploads.lock().ok().and_then(|map| map.get(&temp.to_string()).cloned());
    match sender {
        Some(s) => s.send(decision).is_ok(),
        None => false,
    }
}

fn publish(b: &dyn Backend, temp: Option<TempPath>, path: VPath, uploads: &Uploads) -> io::Result<(VPath, u64)> {
    let Some(temp) = temp else {
        return Ok((path.clone(), b.stat(&path).map_or(0, |m| m.len)));
    };
    let (reply, answer) = mpsc::channel();
    if !decide(uploads, &temp, Decision::Publish(reply)) {
        return Err(io::Error::other("the upload to the store was lost"));
    }
    let size = answer.recv().map_err(|_| io::Error::other("the upload to the store was lost"))??;
    Ok((path, size))
}

/// A pipe: the loop's end non-blocking (`loop_writes`: the write end is the loop's), the thread's end blocking.
/// Returned as (read end, write end).
fn pipe(loop_writes: bool) -> io::Result<(File, File)> {
    use rustix::pipe::{pipe_with, PipeFlags};
    let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
    // A larger pipe means fewer wake-ups per MiB; the default (64 KiB) works too.
    let _ = rustix::pipe::fcntl_setpipe_size(&w, PIPE_SIZE);
    let loop_end = if loop_writes { &w } else { &r };
    let flags = rustix::fs::fcntl_getfl(loop_end)?;
    rustix::fs::fcntl_setfl(loop_end, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok((File::from(r), File::from(w)))
}
