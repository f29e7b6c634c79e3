//! Per-session rate limiting: a token bucket over a session's own clock.
//!
//! Tokens (bytes) accrue at the rate up to a capacity of a quarter second's worth, so a short hiccup (starting the
//! next transfer, a scheduling delay) is made up for but a server that cannot keep up is not hidden. A grant is at
//! least a quantum of about 20 ms of data (512 bytes to 64 KiB), so a slow rate does not turn into tiny reads.
//! Time is passed in, which keeps the arithmetic testable without a clock.

use std::time::Duration;

/// Smallest and largest quantum, in bytes.
const MIN_QUANTUM: u64 = 512;
const MAX_QUANTUM: u64 = 64 * 1024;

/// A token bucket: `rate` bytes per second, at most `capacity` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    quantum: usize,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A bucket for `rate` bytes per second (at least 1), starting with one quantum at time zero.
    pub fn new(rate: u64) -> TokenBucket {
        let rate = rate.max(1);
        let quantum = (rate / 50).clamp(MIN_QUANTUM, MAX_QUANTUM);
        let capacity = (rate / 4).max(quantum) as f64;
        TokenBucket {
            rate: rate as f64,
            capacity,
            quantum: quantum as usize,
            tokens: quantum as f64,
            last: Duration::ZERO,
        }
    }

    /// How many bytes (1 to `want`) may move at `now`, or how long to wait until a grant is possible. The caller
    /// reports what actually moved with [`TokenBucket::consume`].
    pub fn allowance(&mut self, now: Duration, want: usize) -> Result<usize, Duration> {
        self.refill(now);
        let need = want.clamp(1, self.quantum) as f64;
        if self.tokens >= need {
            Ok((self.tokens as usize).clamp(1, want.max(1)))
        } else {
            // Rounding must never ask for a zero wait, which would spin.
            Err(Duration::from_secs_f64((need - self.tokens) / self.rate).max(Duration::from_micros(1)))
        }
    }

    /// Takes `n` bytes' worth of tokens.
    pub fn consume(&mut self, n: usize) {
        self.tokens -= n as f64;
    }

    fn refill(&mut self, now: Duration) {
        if now > self.last {
            let earned = (now - self.last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.capacity);
            self.last = now;
        }
    }
}

/// A session's rate over a window as a fraction of its target: `bytes` moved in `elapsed` against `rate` bytes
/// per second. A zero-length window counts as meeting the target.
pub fn rate_ratio(bytes: u64, elapsed: Duration, rate: u64) -> f64 {
    if elapsed.is_zero() || rate == 0 {
        return 1.0;
    }
    bytes as f64 / elapsed.as_secs_f64() / rate as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads as fast as the bucket allows for `secs` of simulated time; returns the bytes moved.
    fn simulate(bucket: &mut TokenBucket, secs: u64, chunk: usize) -> u64 {
        let end = Duration::from_secs(secs);
        let mut now = Duration::ZERO;
        let mut total = 0u64;
        while now < end {
            match bucket.allowance(now, chunk) {
                Ok(n) => {
                    bucket.consume(n);
                    total += n as u64;
                }
                Err(wait) => {
                    assert!(wait > Duration::ZERO);
                    now += wait;
                }
            }
        }
        total
    }

    #[test]
    fn long_run_throughput_matches_the_rate() {
        for rate in [1_000u64, 200 * 1024, 10 << 20] {
            let mut bucket = TokenBucket::new(rate);
            let moved = simulate(&mut bucket, 10, 64 * 1024);
            let want = rate * 10;
            // The first quantum comes free, and the last grant may overshoot the end by one quantum.
            let slack = 2 * bucket.quantum as u64;
            assert!(moved.abs_diff(want) <= slack, "rate {rate}: moved {moved}, want {want}");
        }
    }

    #[test]
    fn grants_are_at_least_a_quantum() {
        // 200 KiB/s: a quantum of 4096 bytes (20 ms).
        let mut bucket = TokenBucket::new(200 * 1024);
        assert_eq!(bucket.quantum, 4096);
        assert_eq!(bucket.allowance(Duration::ZERO, 64 * 1024), Ok(4096));
        bucket.consume(4096);
        // Empty: wait for one quantum, 4096 / 204800 s = 20 ms.
        assert_eq!(bucket.allowance(Duration::ZERO, 64 * 1024), Err(Duration::from_millis(20)));
        assert_eq!(bucket.allowance(Duration::from_millis(20), 64 * 1024), Ok(4096));
        // A request smaller than a quantum needs only that much.
        bucket.consume(4000);
        assert_eq!(bucket.allowance(Duration::from_millis(20), 96), Ok(96));
    }

    #[test]
    fn savings_are_capped_at_a_quarter_second() {
        let mut bucket = TokenBucket::new(100_000);
        assert_eq!(bucket.allowance(Duration::from_secs(60), usize::MAX), Ok(25_000));
        bucket.consume(25_000);
        assert!(bucket.allowance(Duration::from_secs(60), 1).is_err());
    }

    #[test]
    fn slow_rates_still_read_in_useful_pieces() {
        let mut bucket = TokenBucket::new(10);
        assert_eq!(bucket.allowance(Duration::ZERO, 4096), Ok(512));
        bucket.consume(512);
        assert_eq!(bucket.allowance(Duration::ZERO, 4096), Err(Duration::from_secs_f64(51.2)));
    }

    #[test]
    fn ratio_of_a_window() {
        assert!((rate_ratio(180_000, Duration::from_secs(1), 200_000) - 0.9).abs() < 1e-9);
        assert!((rate_ratio(100_000, Duration::from_millis(500), 100_000) - 2.0).abs() < 1e-9);
        assert_eq!(rate_ratio(0, Duration::ZERO, 100), 1.0);
    }
}
