//! The `loopback` scenario: no FTP and no server, only TCP over 127.0.0.1 between threads of this process. It is
//! the reference a server on this machine is measured against, and it shows what the size of each write() call
//! costs: `--sockets` connections, each with a writer thread that writes `--chunk` bytes per call and a reader
//! thread that drains it with a [`READ_BUFFER`] buffer, for `--duration`.
//!
//! All threads wait at one gate until every connection is set up, so the clock covers only moving bytes. At the
//! end each writer finishes its current call and shuts its side down; readers count until end of file, so the
//! bytes reported are the bytes that arrived. Every blocking call has the run's `--timeout`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::Plan;
use crate::progress::human_bytes;
use crate::report::ErrorReport;
use crate::stats::jain_index;

/// Bytes each reader asks for per read() call: large, so the readers are never what limits the rate.
pub const READ_BUFFER: usize = 256 * 1024;
/// Stack of a writer or reader thread: the buffers are on the heap.
const STACK: usize = 128 * 1024;

/// What a loopback run measured.
#[derive(Debug, Serialize)]
pub struct LoopbackReport {
    pub scenario: &'static str,
    pub target: String,
    /// From opening the gate to the last reader seeing end of file.
    pub elapsed_s: f64,
    pub stopped_by: &'static str,
    pub sockets: usize,
    /// Bytes per write() call.
    pub chunk_bytes: usize,
    pub bytes: u64,
    pub write_calls: u64,
    pub mib_per_s: f64,
    pub writes_per_s: f64,
    /// Jain's index over the sockets' byte counts (1 = all equal).
    pub fairness: Option<f64>,
    pub errors: ErrorReport,
    pub settings: LoopbackSettings,
}

/// The settings of the run, as used.
#[derive(Debug, Serialize)]
pub struct LoopbackSettings {
    pub duration_s: f64,
    pub read_buffer: usize,
    pub fd_limit: Option<u64>,
}

/// Errors of a run, counted by kind with the first message of each.
#[derive(Default)]
struct Errors {
    by_kind: BTreeMap<String, u64>,
    first: BTreeMap<String, String>,
}

impl Errors {
    fn add(&mut self, kind: &str, what: &str, e: &io::Error) {
        *self.by_kind.entry(kind.to_string()).or_default() += 1;
        self.first.entry(kind.to_string()).or_insert_with(|| format!("{what}: {e}"));
    }

    fn report(self) -> ErrorReport {
        ErrorReport {
            total: self.by_kind.values().sum(),
            by_code: BTreeMap::new(),
            by_kind: self.by_kind,
            first: self.first,
        }
    }
}

/// One connection's two ends.
struct Pair {
    writer: TcpStream,
    reader: TcpStream,
}

/// The threads of one connection.
struct Threads {
    writer: JoinHandle<io::Result<(u64, u64)>>,
    reader: JoinHandle<io::Result<u64>>,
}

/// Runs the loopback scenario described by `plan.loopback`.
pub fn run_loopback(plan: &Plan, fd_limit: Option<u64>) -> LoopbackReport {
    let (sockets, chunk) = plan.loopback.as_ref().map_or((1, 1024), |l| (l.sockets, l.chunk));
    let mut errors = Errors::default();
    let pairs = match connect_pairs(sockets, plan.timeout) {
        Ok(pairs) => pairs,
        Err(e) => {
            errors.add("setup", "connecting over 127.0.0.1", &e);
            Vec::new()
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Held for writing until every thread is started; each thread takes it for reading before its first call.
    let gate = Arc::new(RwLock::new(()));
    let closed = gate.write().unwrap_or_else(PoisonError::into_inner);
    let mut threads = Vec::with_capacity(pairs.len());
    for (index, pair) in pairs.into_iter().enumerate() {
        match spawn_pair(index, pair, chunk, &gate, &stop) {
            Ok(t) => threads.push(t),
            Err(e) => {
                errors.add("setup", "starting a thread", &e);
                // The threads already started see the stop flag as soon as the gate opens.
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    let start = Instant::now();
    drop(closed);
    if !stop.load(Ordering::Relaxed) {
        // The measurement itself: the threads move bytes while this one waits out the run.
        thread::sleep(plan.duration);
    }
    stop.store(true, Ordering::Relaxed);
    let mut bytes = 0;
    let mut write_calls = 0;
    let mut shares = Vec::with_capacity(threads.len());
    for t in threads {
        match t.writer.join() {
            Ok(Ok((_, calls))) => write_calls += calls,
            Ok(Err(e)) => errors.add("write", "writing", &e),
            Err(_) => errors.add("write", "writing", &io::Error::other("the writer thread panicked")),
        }
        match t.reader.join() {
            Ok(Ok(read)) => {
                bytes += read;
                shares.push(read as f64);
            }
            Ok(Err(e)) => errors.add("read", "reading", &e),
            Err(_) => errors.add("read", "reading", &io::Error::other("the reader thread panicked")),
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    LoopbackReport {
        scenario: "loopback",
        target: "127.0.0.1".into(),
        elapsed_s: elapsed,
        stopped_by: "duration",
        sockets,
        chunk_bytes: chunk,
        bytes,
        write_calls,
        mib_per_s: bytes as f64 / (1024.0 * 1024.0) / elapsed,
        writes_per_s: write_calls as f64 / elapsed,
        fairness: jain_index(&shares),
        errors: errors.report(),
        settings: LoopbackSettings { duration_s: plan.duration.as_secs_f64(), read_buffer: READ_BUFFER, fd_limit },
    }
}

/// `count` connected pairs over one listener on 127.0.0.1, with `timeout` on every read and write.
fn connect_pairs(count: usize, timeout: Duration) -> io::Result<Vec<Pair>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        // The backlog holds the connection, so accepting right after connecting cannot block for long.
        let writer = TcpStream::connect_timeout(&addr, timeout)?;
        let (reader, _) = listener.accept()?;
        for stream in [&writer, &reader] {
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
        }
        pairs.push(Pair { writer, reader });
    }
    Ok(pairs)
}

fn spawn_pair(
    index: usize,
    pair: Pair,
    chunk: usize,
    gate: &Arc<RwLock<()>>,
    stop: &Arc<AtomicBool>,
) -> io::Result<Threads> {
    let Pair { writer, reader } = pair;
    let (reader_gate, writer_gate) = (Arc::clone(gate), Arc::clone(gate));
    let stop = Arc::clone(stop);
    let reader = thread::Builder::new().name(format!("read-{index}")).stack_size(STACK).spawn(move || {
        drop(reader_gate.read().unwrap_or_else(PoisonError::into_inner));
        drain(reader)
    })?;
    let writer = thread::Builder::new().name(format!("write-{index}")).stack_size(STACK).spawn(move || {
        drop(writer_gate.read().unwrap_or_else(PoisonError::into_inner));
        fill(writer, chunk, &stop)
    })?;
    Ok(Threads { writer, reader })
}

/// Writes `chunk` bytes per call until `stop`; returns bytes written and calls made.
fn fill(mut stream: TcpStream, chunk: usize, stop: &AtomicBool) -> io::Result<(u64, u64)> {
    let data = vec![0x5a_u8; chunk];
    let (mut bytes, mut calls) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        // A short write counts as one call, as it costs one; the next call starts a fresh chunk.
        match stream.write(&data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes += n as u64;
                calls += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stream.shutdown(Shutdown::Write)?;
    Ok((bytes, calls))
}

/// Reads until end of file; returns the bytes read.
fn drain(mut stream: TcpStream) -> io::Result<u64> {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut bytes = 0u64;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl LoopbackReport {
    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"cannot encode the report: {e}\"}}"))
    }

    /// The report for people, several lines.
    pub fn to_text(&self) -> String {
        let mut out = format!("ftpload loopback over {}\n", self.target);
        let mut line = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<12}{value}");
        };
        line("elapsed", format!("{:.3} s", self.elapsed_s));
        let chunk = human_bytes(self.chunk_bytes as u64);
        let read = human_bytes(self.settings.read_buffer as u64);
        line("sockets", format!("{}, {chunk} per write() call, reads of {read}", self.sockets));
        line("bytes", format!("{} ({}), {:.2} MiB/s", self.bytes, human_bytes(self.bytes), self.mib_per_s));
        line("writes", format!("{} ({:.0}/s)", self.write_calls, self.writes_per_s));
        if let Some(f) = self.fairness {
            line("fairness", format!("{f:.4} (Jain's index over per-socket bytes; 1 = equal shares)"));
        }
        if self.errors.total == 0 {
            line("errors", "none".into());
        } else {
            line("errors", format!("{}", self.errors.total));
            for (kind, n) in &self.errors.by_kind {
                let first = self.errors.first.get(kind).map(String::as_str).unwrap_or("");
                line("", format!("{kind} x{n}: {first}"));
            }
        }
        out
    }
}
