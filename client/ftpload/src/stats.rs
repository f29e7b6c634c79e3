//! What a run measures: latency histograms, per-session tallies, errors by reply code or kind, and fairness.
//!
//! Latencies go into HDR histograms (microseconds, 3 significant digits, up to an hour). Sessions record into a
//! few shared shards rather than one histogram each, so thousands of sessions cost little memory; the shards are
//! merged at the end. Everything else a session counts is its own [`Tally`], merged when it ends.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ftp_client::FtpError;
use hdrhistogram::Histogram;

use crate::args::Op;

/// Largest latency a histogram holds, in microseconds (an hour); longer ones are recorded as this.
const MAX_MICROS: u64 = 3_600_000_000;
/// Shards of the shared histograms.
const SHARDS: usize = 8;

/// A latency distribution.
#[derive(Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

/// Percentiles of a [`Latency`], in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        let hist = Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant bounds: low >= 1, high >= 2 * low");
        Latency { hist }
    }

    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS).clamp(1, MAX_MICROS);
        self.hist.saturating_record(micros);
    }

    pub fn merge(&mut self, other: &Latency) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// Percentiles in milliseconds, or `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(LatencySummary {
            count: self.hist.len(),
            mean: self.hist.mean() / 1000.0,
            p50: ms(self.hist.value_at_quantile(0.50)),
            p90: ms(self.hist.value_at_quantile(0.90)),
            p99: ms(self.hist.value_at_quantile(0.99)),
            max: ms(self.hist.max()),
        })
    }
}

/// What a latency was measured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Connecting, the greeting and logging in.
    Login,
    /// One NOOP round trip of the probe session.
    Noop,
    /// One transfer, from asking for the data connection to the final reply.
    Transfer(Op),
}

impl Metric {
    fn slot(self) -> usize {
        match self {
            Metric::Login => 0,
            Metric::Noop => 1,
            Metric::Transfer(op) => 2 + op.index(),
        }
    }
}

const METRICS: usize = 2 + Op::ALL.len();

/// One histogram per metric, allocated when first used.
#[derive(Clone, Default)]
pub struct Latencies {
    slots: [Option<Latency>; METRICS],
}

impl Latencies {
    pub fn record(&mut self, metric: Metric, d: Duration) {
        self.slots[metric.slot()].get_or_insert_with(Latency::new).record(d);
    }

    pub fn merge(&mut self, other: &Latencies) {
        for (mine, theirs) in self.slots.iter_mut().zip(&other.slots) {
            if let Some(theirs) = theirs {
                mine.get_or_insert_with(Latency::new).merge(theirs);
            }
        }
    }

    pub fn get(&self, metric: Metric) -> Option<&Latency> {
        self.slots[metric.slot()].as_ref()
    }

    /// All transfers of every operation together.
    pub fn transfers(&self) -> Latency {
        let mut all = Latency::new();
        for op in Op::ALL {
            if let Some(l) = self.get(Metric::Transfer(op)) {
                all.merge(l);
            }
        }
        all
    }
}

/// Histograms shared by all sessions, sharded by session number.
pub struct Recorder {
    shards: Vec<Mutex<Latencies>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder { shards: (0..SHARDS).map(|_| Mutex::new(Latencies::default())).collect() }
    }
}

impl Recorder {
    pub fn record(&self, session: usize, metric: Metric, d: Duration) {
        let shard = &self.shards[session % self.shards.len()];
        shard.lock().unwrap_or_else(PoisonError::into_inner).record(metric, d);
    }

    pub fn merged(&self) -> Latencies {
        let mut all = Latencies::default();
        for shard in &self.shards {
            all.merge(&shard.lock().unwrap_or_else(PoisonError::into_inner));
        }
        all
    }
}

/// Errors counted by reply code (`"550"`) or by kind (`"TimedOut"`, `"closed"`, `"byte-count"` ...), with the
/// first message of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorTally {
    pub by_code: BTreeMap<u16, u64>,
    pub by_kind: BTreeMap<String, u64>,
    pub first: BTreeMap<String, String>,
}

impl ErrorTally {
    pub fn total(&self) -> u64 {
        self.by_code.values().sum::<u64>() + self.by_kind.values().sum::<u64>()
    }

    pub fn add(&mut self, err: &FtpError) {
        let message = err.to_string();
        match err {
            FtpError::Unexpected { reply, .. } => {
                *self.by_code.entry(reply.code).or_default() += 1;
                self.first.entry(reply.code.to_string()).or_insert(message);
            }
            FtpError::Io(e) => self.add_kind(&io_kind(e), message),
            FtpError::Protocol(_) => self.add_kind("protocol", message),
            FtpError::Closed => self.add_kind("closed", message),
        }
    }

    /// An error that is not the server's reply: a wrong byte count, a local failure.
    pub fn add_kind(&mut self, kind: &str, message: String) {
        *self.by_kind.entry(kind.to_string()).or_default() += 1;
        self.first.entry(kind.to_string()).or_insert(message);
    }

    pub fn merge(&mut self, other: &ErrorTally) {
        for (code, n) in &other.by_code {
            *self.by_code.entry(*code).or_default() += n;
        }
        for (kind, n) in &other.by_kind {
            *self.by_kind.entry(kind.clone()).or_default() += n;
        }
        for (key, message) in &other.first {
            self.first.entry(key.clone()).or_insert_with(|| message.clone());
        }
    }
}

/// The name of an I/O error's kind (`ConnectionRefused`, `TimedOut` ...).
fn io_kind(e: &io::Error) -> String {
    format!("{:?}", e.kind())
}

/// Transfers and bytes of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpCount {
    pub transfers: u64,
    pub bytes: u64,
}

/// What one session (or, for idle, one opening thread) counted.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub sessions_established: u64,
    /// Idle sessions that still answered NOOP when the hold ended.
    pub sessions_alive: u64,
    pub ops: [OpCount; 4],
    /// Transfers cut short because the run ended.
    pub aborted: u64,
    /// Payload bytes moved, including those of aborted transfers.
    pub bytes: u64,
    pub errors: ErrorTally,
    /// Bytes per second of each session that moved data (the input of the fairness index).
    pub throughputs: Vec<f64>,
}

impl Tally {
    pub fn transfers(&self) -> u64 {
        self.ops.iter().map(|o| o.transfers).sum()
    }

    pub fn merge(&mut self, other: &Tally) {
        self.sessions_established += other.sessions_established;
        self.sessions_alive += other.sessions_alive;
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            mine.transfers += theirs.transfers;
            mine.bytes += theirs.bytes;
        }
        self.aborted += other.aborted;
        self.bytes += other.bytes;
        self.errors.merge(&other.errors);
        self.throughputs.extend_from_slice(&other.throughputs);
    }
}

/// Jain's fairness index (Σx)² / (n·Σx²): 1 when all shares are equal, 1/n when one takes everything. `None` for
/// no shares or when every share is zero.
pub fn jain_index(shares: &[f64]) -> Option<f64> {
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|x| x * x).sum();
    if shares.is_empty() || squares <= 0.0 || !squares.is_finite() {
        return None;
    }
    Some((sum * sum / (shares.len() as f64 * squares)).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftp_client::Reply;

    #[test]
    fn jain_index_bounds() {
        assert_eq!(jain_index(&[5.0, 5.0, 5.0, 5.0]), Some(1.0));
        assert_eq!(jain_index(&[1.0, 0.0, 0.0, 0.0]), Some(0.25));
        let half = jain_index(&[1.0, 1.0, 0.0, 0.0]).expect("index");
        assert!((half - 0.5).abs() < 1e-12);
        let x = jain_index(&[3.0, 1.0]).expect("index");
        assert!((x - 16.0 / 20.0).abs() < 1e-12);
        assert_eq!(jain_index(&[]), None);
        assert_eq!(jain_index(&[0.0, 0.0]), None);
        assert_eq!(jain_index(&[7.0]), Some(1.0));
    }

    #[test]
    fn percentiles_of_known_values() {
        let mut l = Latency::new();
        assert!(l.summary().is_none());
        for ms in 1..=100u64 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary().expect("summary");
        assert_eq!(s.count, 100);
        // Three significant digits: within 0.1 %.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001;
        assert!(close(s.p50, 50.0), "{s:?}");
        assert!(close(s.p90, 90.0), "{s:?}");
        assert!(close(s.p99, 99.0), "{s:?}");
        assert!(close(s.max, 100.0), "{s:?}");
        assert!(close(s.mean, 50.5), "{s:?}");
    }

    #[test]
    fn extreme_latencies_are_clamped_not_lost() {
        let mut l = Latency::new();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(10 * 3600));
        let s = l.summary().expect("summary");
        assert_eq!(s.count, 2);
        assert!(s.max >= 3_599_000.0, "{s:?}");
    }

    #[test]
    fn shards_merge() {
        let r = Recorder::default();
        for session in 0..20 {
            r.record(session, Metric::Transfer(Op::Get), Duration::from_millis(2));
            r.record(session, Metric::Login, Duration::from_millis(1));
        }
        let all = r.merged();
        assert_eq!(all.get(Metric::Transfer(Op::Get)).and_then(Latency::summary).map(|s| s.count), Some(20));
        assert_eq!(all.get(Metric::Login).and_then(Latency::summary).map(|s| s.count), Some(20));
        assert!(all.get(Metric::Noop).is_none());
        assert_eq!(all.transfers().summary().map(|s| s.count), Some(20));
    }

    #[test]
    fn errors_by_code_and_kind() {
        let mut t = ErrorTally::default();
        let refused = FtpError::Unexpected {
            command: "RETR x".into(),
            reply: Reply { code: 550, lines: vec!["No such file".into()] },
        };
        t.add(&refused);
        t.add(&refused);
        t.add(&FtpError::Io(io::Error::new(io::ErrorKind::TimedOut, "slow")));
        t.add(&FtpError::Closed);
        t.add_kind("byte-count", "RETR x: 3 bytes, expected 4".into());
        assert_eq!(t.total(), 5);
        assert_eq!(t.by_code.get(&550), Some(&2));
        assert_eq!(t.by_kind.get("TimedOut"), Some(&1));
        assert_eq!(t.first.get("550").map(String::as_str), Some("RETR x: server replied 550 No such file"));
        let mut u = ErrorTally::default();
        u.merge(&t);
        u.merge(&t);
        assert_eq!(u.total(), 10);
        assert_eq!(u.by_kind.get("closed"), Some(&2));
    }
}
