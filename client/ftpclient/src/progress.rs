//! Watching the bytes of a transfer: counting them, hashing them (CRC-32 or SHA-256) and showing a progress bar.
//!
//! A [`Meter`] sees every byte that reaches the local file (a download) or leaves it (an upload) through the
//! [`Metered`] adapter, so the local digest is computed in the same pass as the transfer (beside it, for a long one:
//! see [`crate::digest`]). The progress bar is drawn
//! to standard error, and only once a transfer has run for [`BAR_DELAY`]: quick transfers never show one. It is
//! cleared when the transfer ends, so the one-line summary that follows stands alone. While a [`Board`] is up
//! (transfers running in parallel), each transfer's bar is one line of it, under a line with the total.

use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::digest::{Algorithm, LocalDigest, StreamHash};

/// How long a transfer runs before its progress bar appears.
pub const BAR_DELAY: Duration = Duration::from_millis(500);

/// Counts, optionally hashes, and shows the progress of a stream of bytes.
pub struct Meter {
    hasher: Option<StreamHash>,
    bytes: u64,
    bar: Option<Bar>,
    limit: Option<Pace>,
}

/// `--limit-rate`: the transfer is held back so that, since it started, it never runs ahead of the rate.
struct Pace {
    bytes_per_sec: u64,
    started: Instant,
}

impl Pace {
    /// How long to wait after `bytes` have moved, to stay at the rate.
    fn ahead(&self, bytes: u64) -> Duration {
        let due = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        due.saturating_sub(self.started.elapsed())
    }
}

/// A progress bar that appears after [`BAR_DELAY`]. It counts from the start, hidden, so its rate and estimate
/// already have the history of the transfer when it is shown.
struct Bar {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
}

impl Meter {
    /// A meter that hashes with `hash`, if given.
    pub fn new(hash: Option<Algorithm>) -> Meter {
        Meter { hasher: hash.map(StreamHash::new), bytes: 0, bar: None, limit: None }
    }

    /// Shows a progress bar labelled `label` once the transfer takes long enough. `start` is where the transfer
    /// begins (a resumed one starts past 0) and `total` the full size, if known.
    /// Paces the transfer to at most `bytes_per_sec` (none: as fast as it goes).
    pub fn with_limit(mut self, bytes_per_sec: Option<u64>) -> Meter {
        self.limit =
            bytes_per_sec.filter(|&rate| rate > 0).map(|bytes_per_sec| Pace { bytes_per_sec, started: Instant::now() });
        self
    }

    pub fn with_bar(mut self, label: &str, start: u64, total: Option<u64>) -> Meter {
        self.bar = Some(Bar::new(label, start, total));
        self
    }

    /// Hashes bytes that are not transferred: the part of a file that is already on both sides.
    pub fn hash_only(&mut self, data: &[u8]) {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(data);
        }
    }

    /// Hashes the first `len` bytes `input` yields, leaving it positioned just after them; fails if it ends
    /// sooner. Without hashing nothing is read.
    pub fn hash_prefix(&mut self, input: &mut dyn Read, len: u64) -> io::Result<()> {
        if self.hasher.is_none() {
            return Ok(());
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match input.read(&mut buf[..want]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file is shorter than expected")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.hash_only(&buf[..n]);
            left -= n as u64;
        }
        Ok(())
    }

    /// Records transferred bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.hash_only(data);
        self.bytes += data.len() as u64;
        if let Some(bar) = &mut self.bar {
            bar.advance(data.len() as u64);
        }
        if let Some(pace) = &self.limit {
            // Holding the transfer back is what the rate limit is: the sender waits on a full window meanwhile.
            std::thread::sleep(pace.ahead(self.bytes));
        }
    }

    /// Bytes transferred so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Removes the progress bar, if one is shown, and returns the digest of everything hashed (if hashing).
    pub fn finish(&mut self) -> Option<LocalDigest> {
        if let Some(bar) = self.bar.take() {
            bar.clear();
        }
        self.hasher.take().and_then(StreamHash::finish)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.clear();
        }
    }
}

impl Bar {
    fn new(label: &str, start: u64, total: Option<u64>) -> Bar {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        let template = match total {
            Some(_) => "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            None => "{msg} {spinner} {bytes} {binary_bytes_per_sec}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        // The label is often a name the server gave.
        bar.set_message(crate::visible::visible(label).into_owned());
        // Bytes already there (a resumed transfer) are not part of the rate.
        bar.set_position(start);
        bar.tick();
        bar.reset_eta();
        Bar { bar, started: Instant::now(), shown: false }
    }

    fn advance(&mut self, n: u64) {
        self.bar.inc(n);
        if !self.shown && self.started.elapsed() >= BAR_DELAY {
            self.shown = true;
            match BOARD.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                Some(board) => self.bar = board.add(self.bar.clone()),
                None => self.bar.set_draw_target(ProgressDrawTarget::stderr()),
            }
        }
    }

    fn clear(self) {
        if self.shown {
            self.bar.finish_and_clear();
        }
    }
}

/// The display the bars of parallel transfers join, while a [`Board`] is up.
static BOARD: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Transfers running in parallel on standard error: one line per active transfer (once it has run for
/// [`BAR_DELAY`]) and a line with the files done out of all. Taken down when dropped.
pub struct Board {
    multi: MultiProgress,
    total: ProgressBar,
}

impl Board {
    /// Puts up the display for `files` transfers, its total line labelled `label`.
    pub fn start(label: &str, files: u64) -> Board {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(files));
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} files, {elapsed}") {
            total.set_style(style.progress_chars("=> "));
        }
        total.set_message(label.to_string());
        total.tick();
        *BOARD.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
        Board { multi, total }
    }

    /// Prints `line` above the bars.
    pub fn println(&self, line: &str) {
        let _ = self.multi.println(line);
    }

    /// Counts one more finished transfer.
    pub fn file_done(&self) {
        self.total.inc(1);
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        *BOARD.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// A reader or writer whose bytes a [`Meter`] sees: those written successfully, or those read.
pub struct Metered<'m, T> {
    pub inner: T,
    pub meter: &'m mut Meter,
}

impl<T: Write> Write for Metered<'_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.meter.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Read> Read for Metered<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const SHA256: Option<Algorithm> = Some(Algorithm::Sha256);
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn counts_and_hashes_what_passes() {
        let mut meter = Meter::new(SHA256);
        let mut out = Vec::new();
        Metered { inner: &mut out, meter: &mut meter }.write_all(b"abc").expect("write");
        assert_eq!(meter.bytes(), 3);
        assert_eq!(meter.finish().expect("hash").hex, ABC_SHA256);
        assert_eq!(out, b"abc");

        let mut meter = Meter::new(SHA256);
        let mut input = &b"bc"[..];
        meter.hash_only(b"a");
        let mut copy = Vec::new();
        Metered { inner: &mut input, meter: &mut meter }.read_to_end(&mut copy).expect("read");
        assert_eq!(meter.bytes(), 2);
        assert_eq!(meter.finish().expect("hash").hex, ABC_SHA256);
    }

    #[test]
    fn prefix_hashing_positions_the_input() {
        let mut meter = Meter::new(SHA256);
        let mut input = &b"abcdef"[..];
        meter.hash_prefix(&mut input, 3).expect("prefix");
        assert_eq!(input, b"def");
        assert_eq!(meter.bytes(), 0);
        assert_eq!(meter.finish().expect("hash").hex, ABC_SHA256);
        let err = Meter::new(SHA256).hash_prefix(&mut &b"ab"[..], 3).expect_err("too short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // Without hashing the input is left alone: the caller seeks.
        let mut input = &b"abcdef"[..];
        Meter::new(None).hash_prefix(&mut input, 3).expect("nothing to do");
        assert_eq!(input, b"abcdef");
    }

    #[test]
    fn no_hash_unless_asked() {
        let mut meter = Meter::new(None).with_bar("x", 0, Some(3));
        meter.update(b"abc");
        assert_eq!(meter.finish(), None);
        assert_eq!(meter.bytes(), 3);
    }

    // A failed write is not counted.
    #[test]
    fn failed_writes_are_not_seen() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut meter = Meter::new(SHA256);
        assert!(Metered { inner: Full, meter: &mut meter }.write(b"abc").is_err());
        assert_eq!(meter.bytes(), 0);
    }
}
