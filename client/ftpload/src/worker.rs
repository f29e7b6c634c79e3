//! One session of a transfer scenario: log in, then run operations until the count is done or the run ends.
//!
//! The control side is [`FtpClient`] (EPSV or PASV, always to the control connection's peer, so data never goes to
//! another host). The data side is done here, so that the hot path allocates nothing: downloads drain into one
//! reused 64 KiB buffer and are discarded, uploads send the run's generated pattern over and over, and both go
//! through the session's token bucket when a rate is set. Every transfer's byte count is checked: downloads against
//! the file's size, uploads with SIZE afterwards.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ftp_client::{FtpClient, FtpError, FtpStream, Reply};

use crate::args::Op;
use crate::control::io_error;
use crate::run::{connect, Run, BUFFER};
use crate::stats::{Metric, Tally};
use crate::throttle::TokenBucket;

/// Errors in a row after which a session gives up.
const MAX_CONSECUTIVE_ERRORS: u32 = 3;
/// Longest single sleep of the throttle, so a stop is noticed.
const MAX_NAP: Duration = Duration::from_millis(100);

/// How a transfer ended.
enum Moved {
    /// Complete: the server confirmed it.
    Done(u64),
    /// Cut short because the run ended.
    Aborted,
}

/// The state of one session.
struct Worker<'a> {
    run: &'a Run,
    index: usize,
    client: FtpClient,
    buf: Vec<u8>,
    throttle: Option<TokenBucket>,
    started: Instant,
    streaming: bool,
    /// Precomputed command lines, so the hot path does not format them.
    retr_file: Arc<str>,
    retr_small: Arc<str>,
    list: Arc<str>,
}

/// Runs session `index` of the run to its end and returns what it counted.
pub fn session(run: &Run, index: usize) -> Tally {
    let mut tally = Tally::default();
    let begin = Instant::now();
    let client = match connect(&run.plan) {
        Ok(client) => client,
        Err(e) => {
            tally.errors.add(&e);
            run.count_error();
            return tally;
        }
    };
    run.recorder.record(index, Metric::Login, begin.elapsed());
    tally.sessions_established = 1;
    run.sessions.fetch_add(1, Ordering::Relaxed);
    let plan = &run.plan;
    let retr = |file: &Option<String>| Arc::from(file.as_deref().map(|f| format!("RETR {f}")).unwrap_or_default());
    let small = if plan.scenario == crate::args::Scenario::Small { &plan.file } else { &plan.small_file };
    let mut worker = Worker {
        run,
        index,
        client,
        buf: vec![0; BUFFER],
        throttle: plan.rate.map(TokenBucket::new),
        started: Instant::now(),
        streaming: false,
        retr_file: retr(&plan.file),
        retr_small: retr(small),
        list: Arc::from("LIST"),
    };
    let mut n = 0u64;
    let mut consecutive = 0;
    let mut stopped = false;
    loop {
        if plan.count.is_some_and(|count| n >= count) {
            break;
        }
        if run.should_stop() {
            stopped = true;
            break;
        }
        let op = plan.cycle[(index + n as usize) % plan.cycle.len()];
        match worker.perform(op, n, &mut tally) {
            Ok(true) => consecutive = 0,
            Ok(false) => {
                tally.aborted += 1;
                stopped = true;
                break;
            }
            Err(e) => {
                tally.errors.add(&e);
                run.count_error();
                consecutive += 1;
                if worker.client.is_closed() || consecutive >= MAX_CONSECUTIVE_ERRORS {
                    break;
                }
            }
        }
        n += 1;
    }
    let busy = worker.started.elapsed();
    if tally.bytes > 0 && !busy.is_zero() {
        tally.throughputs.push(tally.bytes as f64 / busy.as_secs_f64());
    }
    if !stopped && !worker.client.is_closed() {
        // A polite goodbye; the counts are final whatever the answer.
        let _ = worker.client.quit();
    }
    tally
}

impl Worker<'_> {
    /// Runs operation number `n`; true when it completed (checked and counted), false when the run ended first.
    fn perform(&mut self, op: Op, n: u64, tally: &mut Tally) -> Result<bool, FtpError> {
        let begin = Instant::now();
        let (line, expected) = match op {
            Op::Get => (Arc::clone(&self.retr_file), self.run.sizes.file),
            Op::Small => (Arc::clone(&self.retr_small), self.run.sizes.small_file),
            Op::List => (Arc::clone(&self.list), None),
            Op::Put => return self.put(n, tally),
        };
        let Moved::Done(bytes) = self.download(&line, tally)? else { return Ok(false) };
        let elapsed = begin.elapsed();
        match expected {
            Some(expected) if expected != bytes => {
                tally.errors.add_kind("byte-count", format!("{line}: received {bytes} bytes, expected {expected}"));
                self.run.count_error();
            }
            _ => self.count(op, bytes, elapsed, tally),
        }
        Ok(true)
    }

    /// STOR of `--size` generated bytes to a unique name, then SIZE to check it arrived whole, then DELE.
    fn put(&mut self, n: u64, tally: &mut Tally) -> Result<bool, FtpError> {
        let size = self.run.plan.size.unwrap_or(0);
        let name = format!("{}{}-{}-{}", self.run.plan.prefix, std::process::id(), self.index, n);
        let begin = Instant::now();
        let sent = match self.upload(&name, size, tally)? {
            Moved::Done(sent) => sent,
            Moved::Aborted => return Ok(false),
        };
        let elapsed = begin.elapsed();
        let stored = self.client.size(&name)?;
        if stored == size && sent == size {
            self.count(Op::Put, size, elapsed, tally);
        } else {
            tally.errors.add_kind("byte-count", format!("STOR {name}: sent {sent} bytes, the server has {stored}"));
            self.run.count_error();
        }
        if !self.run.plan.keep {
            self.client.delete(&name)?;
        }
        Ok(true)
    }

    fn count(&self, op: Op, bytes: u64, elapsed: Duration, tally: &mut Tally) {
        tally.ops[op.index()].transfers += 1;
        tally.ops[op.index()].bytes += bytes;
        self.run.transfers.fetch_add(1, Ordering::Relaxed);
        self.run.recorder.record(self.index, Metric::Transfer(op), elapsed);
    }

    /// Opens a data connection (TLS when the session's data is protected) and sends `line`; returns the data
    /// connection once the server has started.
    fn start(&mut self, line: &str) -> Result<FtpStream, FtpError> {
        let data = self.client.open_data_stream()?;
        let reply = self.client.raw(line)?;
        if !matches!(reply.code, 125 | 150) {
            return Err(FtpError::Unexpected { command: line.to_string(), reply });
        }
        if !self.streaming {
            self.streaming = true;
            if let Some(slot) = self.run.slots.get(self.index) {
                slot.mark_streaming(self.run.origin);
            }
        }
        Ok(data)
    }

    /// The reply that ends a transfer: 226 or 250.
    fn finish(&mut self, line: &str) -> Result<(), FtpError> {
        let reply = self.client.read_reply()?;
        expect_done(line, reply)
    }

    /// After a data-connection failure: the server's refusal if it sends one (426, 451 ...), else `err`.
    fn failed(&mut self, line: &str, what: &str, err: io::Error) -> FtpError {
        ftp_client::better_error(line, self.client.read_reply(), io_error(format!("{line}: {what}"), err))
    }

    /// Runs a transfer from the server (RETR, LIST), discarding the data.
    fn download(&mut self, line: &str, tally: &mut Tally) -> Result<Moved, FtpError> {
        let mut data = self.start(line)?;
        let _running = InFlight::new(self.run);
        let mut total = 0u64;
        loop {
            let Some(want) = self.grant(BUFFER) else { return Ok(Moved::Aborted) };
            match data.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    total += n as u64;
                    self.moved(n, tally);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    drop(data);
                    return Err(self.failed(line, "receiving data", e));
                }
            }
        }
        drop(data);
        self.finish(line)?;
        Ok(Moved::Done(total))
    }

    /// Runs a STOR of `size` bytes of the run's pattern.
    fn upload(&mut self, name: &str, size: u64, tally: &mut Tally) -> Result<Moved, FtpError> {
        let line = format!("STOR {name}");
        let mut data = self.start(&line)?;
        let _running = InFlight::new(self.run);
        let pattern = &self.run.pattern;
        let mut sent = 0u64;
        while sent < size {
            let left = usize::try_from(size - sent).unwrap_or(usize::MAX).min(pattern.len());
            let Some(n) = self.grant(left) else { return Ok(Moved::Aborted) };
            if let Err(e) = data.write_all(&pattern[..n]) {
                drop(data);
                return Err(self.failed(&line, "sending data", e));
            }
            sent += n as u64;
            self.moved(n, tally);
        }
        // End of file on the data connection (after TLS close_notify) is what completes the upload.
        if let Err(e) = data.flush().and_then(|()| data.finish()) {
            drop(data);
            return Err(self.failed(&line, "closing the data connection", e));
        }
        // Closed only after the reply: a TLS server may have sent session tickets, and closing with unread data
        // resets the connection, which can cut the end of the upload.
        let done = self.finish(&line);
        data.take_in_pending();
        drop(data);
        done?;
        Ok(Moved::Done(sent))
    }

    /// Counts `n` bytes that moved.
    fn moved(&mut self, n: usize, tally: &mut Tally) {
        tally.bytes += n as u64;
        self.run.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(slot) = self.run.slots.get(self.index) {
            slot.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Some(bucket) = &mut self.throttle {
            bucket.consume(n);
        }
    }

    /// How many bytes (1 to `want`) may move now, after waiting for the throttle if needed; `None` once the run
    /// has ended.
    fn grant(&mut self, want: usize) -> Option<usize> {
        loop {
            if self.run.should_stop() {
                return None;
            }
            let Some(bucket) = &mut self.throttle else { return Some(want) };
            match bucket.allowance(self.started.elapsed(), want) {
                Ok(n) => return Some(n),
                Err(wait) => thread::sleep(wait.min(MAX_NAP)),
            }
        }
    }
}

/// One transfer under way, counted in [`Run::in_flight`] from the server's 1xx until it is dropped, however the
/// transfer ends.
struct InFlight<'a>(&'a Run);

impl<'a> InFlight<'a> {
    fn new(run: &'a Run) -> InFlight<'a> {
        run.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(run)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn expect_done(line: &str, reply: Reply) -> Result<(), FtpError> {
    if ftp_client::TRANSFER_DONE.contains(&reply.code) {
        Ok(())
    } else {
        Err(FtpError::Unexpected { command: line.to_string(), reply })
    }
}
