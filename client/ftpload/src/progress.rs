//! The live progress line on stderr: drawn only when stderr is a terminal, redrawn about four times a second from
//! the run's shared counters, and erased before the report is printed.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::run::Run;

/// Least time between two redraws.
const REDRAW: Duration = Duration::from_millis(250);

/// The progress line, or nothing when stderr is not a terminal.
pub struct Progress {
    enabled: bool,
    last: Option<(Instant, u64)>,
    /// Extra text from the scenario (idle's phase, ramp's session count).
    pub note: String,
}

impl Progress {
    pub fn new() -> Progress {
        Progress { enabled: io::stderr().is_terminal(), last: None, note: String::new() }
    }

    /// Redraws the line if enough time has passed since the last time.
    pub fn tick(&mut self, run: &Run) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let bytes = run.bytes.load(Ordering::Relaxed);
        let rate = match self.last {
            Some((at, _)) if now.duration_since(at) < REDRAW => return,
            Some((at, before)) => bytes.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64(),
            None => bytes as f64 / run.origin.elapsed().as_secs_f64().max(1e-3),
        };
        self.last = Some((now, bytes));
        let line = format!(
            "{} {:>6.1} s  sessions {}  transfers {}  {}  {:.1} MiB/s  errors {}{}",
            run.plan.scenario,
            run.origin.elapsed().as_secs_f64(),
            run.sessions.load(Ordering::Relaxed),
            run.transfers.load(Ordering::Relaxed),
            human_bytes(bytes),
            rate / (1024.0 * 1024.0),
            run.errors.load(Ordering::Relaxed),
            self.note,
        );
        let mut err = io::stderr().lock();
        // The progress line is a courtesy; a broken terminal must not stop the run.
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Erases the line.
    pub fn clear(&mut self) {
        if self.enabled && self.last.is_some() {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// `bytes` with a binary unit: `512 B`, `1.5 KiB`, `12.0 MiB`, `3.25 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let digits = if value < 10.0 { 2 } else { 1 };
    format!("{value:.digits$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(12 << 20), "12.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.00 GiB");
    }
}
