//! Per-user and server-wide limits: transfer rates shared by all of a user's sessions on every worker
//! (`download_rate`, `upload_rate` in the users file, `--download-rate`/`--upload-rate` for everyone together),
//! and `max_sessions` per user.
//!
//! A rate is a [`Rate`]: the generic cell rate algorithm over one atomic (the theoretical arrival time), so a
//! transfer asks "how many bytes may I move now?" without a lock. A transfer granted nothing is not runnable
//! until the answer changes: the loop parks it on a timer ([`Rate::wait`]) instead of polling or sleeping, so a
//! user at their limit costs the loop nothing and slows nobody else. What a step was granted but did not move
//! goes back ([`Rate::refund`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A byte rate with a burst of [`BURST`] worth of traffic.
#[derive(Debug)]
pub struct Rate {
    epoch: Instant,
    /// Bytes per second (0: unlimited). Changed in place by a reload.
    per_sec: AtomicU64,
    /// Theoretical arrival time, in nanoseconds since `epoch`.
    tat: AtomicU64,
}

/// How far ahead of its rate a transfer may run: a tenth of a second's worth (at least 64 KiB), so shares stay
/// large enough to be cheap and the rate is still held within a few percent over any second.
pub const BURST: Duration = Duration::from_millis(100);
const MIN_BURST_BYTES: u64 = 64 * 1024;

impl Rate {
    pub fn new(per_sec: u64) -> Rate {
        Rate { epoch: Instant::now(), per_sec: AtomicU64::new(per_sec), tat: AtomicU64::new(0) }
    }

    pub fn per_sec(&self) -> u64 {
        self.per_sec.load(Ordering::Relaxed)
    }

    pub fn set(&self, per_sec: u64) {
        self.per_sec.store(per_sec, Ordering::Relaxed);
    }

    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds `bytes` take at this rate, and the tolerance (the burst) in nanoseconds.
    fn costs(&self, bytes: u64) -> (u64, u64) {
        let rate = self.per_sec().max(1);
        let burst_bytes = (rate / 10).max(MIN_BURST_BYTES);
        let ns = |b: u64| (u128::from(b) * 1_000_000_000 / u128::from(rate)).min(u128::from(u64::MAX)) as u64;
        (ns(bytes), ns(burst_bytes))
    }

    /// How many of `want` bytes may move now (all of them when unlimited); they are counted as moved.
    pub fn grant(&self, want: usize, now: Instant) -> usize {
        if self.per_sec() == 0 || want == 0 {
            return want;
        }
        let now_ns = self.ns(now);
        let (_, tolerance) = self.costs(0);
        loop {
            let tat = self.tat.load(Ordering::Acquire);
            let start = tat.max(now_ns);
            let ahead = start - now_ns;
            if ahead >= tolerance {
                return 0;
            }
            // Bytes that fit in what is left of the tolerance.
            let room_ns = tolerance - ahead;
            let room = (u128::from(room_ns) * u128::from(self.per_sec()) / 1_000_000_000) as u64;
            let granted = (want as u64).min(room.max(1));
            let (cost, _) = self.costs(granted);
            if self.tat.compare_exchange(tat, start + cost, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return granted as usize;
            }
        }
    }

    /// Gives back bytes granted but not moved.
    pub fn refund(&self, bytes: usize) {
        if bytes == 0 || self.per_sec() == 0 {
            return;
        }
        let (cost, _) = self.costs(bytes as u64);
        let _ = self.tat.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| Some(t.saturating_sub(cost)));
    }

    /// How long until `bytes` could be granted.
    pub fn wait(&self, bytes: usize, now: Instant) -> Duration {
        let (cost, tolerance) = self.costs(bytes as u64);
        let ahead = self.tat.load(Ordering::Acquire).saturating_sub(self.ns(now));
        Duration::from_nanos((ahead + cost.min(tolerance)).saturating_sub(tolerance)).max(Duration::from_millis(1))
    }
}

/// One user's limits, shared by all their sessions on every worker.
#[derive(Debug)]
pub struct UserLimits {
    pub download: Rate,
    pub upload: Rate,
    max_sessions: AtomicUsize,
    sessions: AtomicUsize,
    quota_bytes: AtomicU64,
    quota_files: AtomicU64,
    /// What the home holds (counted by a scan off the loop, then kept current), and what uploads running now
    /// have written so far.
    used_bytes: AtomicI64,
    used_files: AtomicI64,
    in_flight: AtomicI64,
    scan: AtomicU8,
}

/// What the users file says of a user's limits (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitSettings {
    pub download_rate: u64,
    pub upload_rate: u64,
    pub max_sessions: usize,
    pub quota_bytes: u64,
    pub quota_files: u64,
}

/// The error an upload fails with when it would take its user over `quota_bytes` (552).
#[derive(Debug)]
pub struct OverQuota;

impl std::fmt::Display for OverQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quota exceeded")
    }
}

impl std::error::Error for OverQuota {}

/// Whether `e` is [`OverQuota`].
pub fn is_over_quota(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverQuota>())
}

const SCAN_NONE: u8 = 0;
const SCAN_RUNNING: u8 = 1;
const SCAN_DONE: u8 = 2;

/// A session's place among its user's `max_sessions`; given back when the session ends (dropped).
#[derive(Debug)]
pub struct Claim(Arc<UserLimits>);

impl Claim {
    pub fn limits(&self) -> &Arc<UserLimits> {
        &self.0
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

impl UserLimits {
    fn quota_bytes(&self) -> u64 {
        self.quota_bytes.load(Ordering::Relaxed)
    }

    /// Whether `quota_bytes` is set: uploads are then checked as they go.
    pub fn has_byte_quota(&self) -> bool {
        self.quota_bytes() > 0
    }

    /// Whether the home is at `quota_files` already (a new file would be one too many).
    pub fn files_full(&self) -> bool {
        let q = self.quota_files.load(Ordering::Relaxed);
        q > 0 && self.used_files.load(Ordering::Acquire) >= q as i64
    }

    /// Counts `bytes` more written by a running upload; false if that takes the user over `quota_bytes`.
    pub fn write(&self, bytes: u64) -> bool {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let in_flight = self.in_flight.fetch_add(bytes, Ordering::AcqRel) + bytes;
        let q = self.quota_bytes();
        q == 0 || self.used_bytes.load(Ordering::Acquire).saturating_add(in_flight) <= q as i64
    }

    /// A running upload ended, having written `bytes` (they become usage through [`UserLimits::used`]).
    pub fn written(&self, bytes: u64) {
        self.in_flight.fetch_sub(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::AcqRel);
    }

    /// The home's usage changed by `bytes` and `files` (an upload published, a file deleted).
    pub fn used(&self, bytes: i64, files: i64) {
        self.used_bytes.fetch_add(bytes, Ordering::AcqRel);
        self.used_files.fetch_add(files, Ordering::AcqRel);
    }

    /// Usage as counted now: (bytes, files).
    pub fn usage(&self) -> (i64, i64) {
        (self.used_bytes.load(Ordering::Acquire), self.used_files.load(Ordering::Acquire))
    }

    /// Counts what `home` holds, once, on a thread of its own (the tree may be large); changes made while it
    /// counts are added on top.
    fn scan(self: &Arc<Self>, usage: Usage) {
        if self.scan.compare_exchange(SCAN_NONE, SCAN_RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new().name("quota-scan".into()).spawn(move || {
            let (bytes, files) = usage();
            me.used(bytes as i64, files as i64);
            me.scan.store(SCAN_DONE, Ordering::Release);
        });
        if spawned.is_err() {
            self.scan.store(SCAN_NONE, Ordering::Release);
        }
    }

    /// A place for one more session, unless the user has `max_sessions` already.
    pub fn claim(self: &Arc<Self>) -> Option<Claim> {
        let max = self.max_sessions.load(Ordering::Relaxed);
        let before = self.sessions.fetch_add(1, Ordering::AcqRel);
        if max > 0 && before >= max {
            self.sessions.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Claim(self.clone()))
    }
}

/// How a home's usage is measured: bytes and files.
pub type Usage = Box<dyn FnOnce() -> (u64, u64) + Send>;

/// The usage of a home on the local disk.
pub fn disk_usage(home: &Path) -> Usage {
    let home = home.to_path_buf();
    Box::new(move || crate::fs::tree_usage(&home))
}

/// Every user's limits (and the server-wide rates), shared by the workers. Looked up at login only.
#[derive(Debug)]
pub struct Limits {
    users: Mutex<HashMap<String, Arc<UserLimits>>>,
    pub download: Rate,
    pub upload: Rate,
}

impl Limits {
    pub fn new(download_rate: u64, upload_rate: u64) -> Limits {
        Limits { users: Mutex::new(HashMap::new()), download: Rate::new(download_rate), upload: Rate::new(upload_rate) }
    }

    /// `user`'s limits, made or updated to `settings` (a reload changes them in place for everyone). With a
    /// quota, the usage of `home` is counted off the loop the first time.
    /// The user's limits, made on its first login; with a quota, `usage` measures what its home holds
    /// (once, on a thread of its own: a walk of the tree, or a listing of the store).
    pub fn user(&self, user: &str, settings: LimitSettings, usage: Usage) -> Arc<UserLimits> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let limits = users.entry(user.to_string()).or_insert_with(|| {
            Arc::new(UserLimits {
                download: Rate::new(0),
                upload: Rate::new(0),
                max_sessions: AtomicUsize::new(0),
                sessions: AtomicUsize::new(0),
                quota_bytes: AtomicU64::new(0),
                quota_files: AtomicU64::new(0),
                used_bytes: AtomicI64::new(0),
                used_files: AtomicI64::new(0),
                in_flight: AtomicI64::new(0),
                scan: AtomicU8::new(SCAN_NONE),
            })
        });
        limits.download.set(settings.download_rate);
        limits.upload.set(settings.upload_rate);
        limits.max_sessions.store(settings.max_sessions, Ordering::Relaxed);
        limits.quota_bytes.store(settings.quota_bytes, Ordering::Relaxed);
        limits.quota_files.store(settings.quota_files, Ordering::Relaxed);
        if settings.quota_bytes > 0 || settings.quota_files > 0 {
            limits.scan(usage);
        }
        limits.clone()
    }

    /// The server-wide rates anew (SIGHUP).
    pub fn set_global(&self, download_rate: u64, upload_rate: u64) {
        self.download.set(download_rate);
        self.upload.set(upload_rate);
    }
}

/// Parses a rate such as `1048576`, `512K`, `20M` or `1G` (bytes per second; K = 1024).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a rate like 512K, 20M or 1G"))?;
    let mult: u64 = match unit.trim().trim_end_matches("/s").to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("{s:?}: the unit is K, M or G")),
    };
    n.checked_mul(mult).ok_or(format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Over a simulated second of steps, a rate lets through its rate plus at most one burst.
    #[test]
    fn a_rate_holds_over_time() {
        let r = Rate::new(1 << 20);
        let start = Instant::now() + Duration::from_secs(1);
        let mut moved = 0u64;
        for ms in 0..=1000u64 {
            moved += r.grant(256 * 1024, start + Duration::from_millis(ms)) as u64;
        }
        let burst = (1u64 << 20) / 10;
        assert!(moved >= 1 << 20 && moved <= (1 << 20) + burst + 256 * 1024, "{moved}");
    }

    // Nothing granted means a wait that ends when the bytes could be granted; refunds give bytes back.
    #[test]
    fn waits_and_refunds() {
        let r = Rate::new(1000 * 1024);
        let now = Instant::now() + Duration::from_secs(1);
        while r.grant(64 * 1024, now) > 0 {}
        let wait = r.wait(1024, now);
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(5), "{wait:?}");
        assert!(r.grant(1024, now + wait) > 0);
        let before = r.grant(1 << 20, now + wait);
        r.refund(before);
        assert_eq!(r.grant(before, now + wait), before, "a refund is granted again");
    }

    // Unlimited rates grant everything.
    #[test]
    fn zero_is_unlimited() {
        let r = Rate::new(0);
        assert_eq!(r.grant(1 << 30, Instant::now()), 1 << 30);
    }

    // max_sessions counts claims across holders; a dropped claim frees its place.
    #[test]
    fn max_sessions_claims() {
        let limits = Limits::new(0, 0);
        let home = std::env::temp_dir();
        let u = limits.user("alice", LimitSettings { max_sessions: 2, ..LimitSettings::default() }, disk_usage(&home));
        let a = u.claim().expect("first");
        let _b = u.claim().expect("second");
        assert!(u.claim().is_none());
        drop(a);
        assert!(u.claim().is_some());
        assert!(limits.user("bob", LimitSettings::default(), disk_usage(&home)).claim().is_some());
    }

    #[test]
    fn rates_parse_with_suffixes() {
        assert_eq!(parse_rate("1048576"), Ok(1 << 20));
        assert_eq!(parse_rate("512K"), Ok(512 << 10));
        assert_eq!(parse_rate("20M"), Ok(20 << 20));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        assert_eq!(parse_rate("3 MiB/s"), Ok(3 << 20));
        assert!(parse_rate("fast").is_err() && parse_rate("5T").is_err());
    }
}
