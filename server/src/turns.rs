//! How long the loop's turns take: the loop's discipline (no step costs more than a few milliseconds, whatever a
//! client asks) made visible. The loop measures each turn and records it here; STAT shows the summary to a
//! logged-in user, and a turn over [`SLOW_TURN`] is logged. No clock in here: durations are handed in.

use std::fmt::Write as _;
use std::time::Duration;

/// A turn longer than this is logged as a warning: every other client waited that long.
pub const SLOW_TURN: Duration = Duration::from_millis(50);

/// Upper bounds of the histogram's buckets; a last bucket holds everything longer.
pub const BUCKETS: [Duration; 7] = [
    Duration::from_micros(100),
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(500),
];

/// Counts of turns by duration, the longest one, and their total.
#[derive(Debug, Default, Clone)]
pub struct TurnStats {
    /// `counts[i]` turns took at most `BUCKETS[i]` (and more than the bucket before); the last entry counts the
    /// turns longer than every bound.
    pub counts: [u64; BUCKETS.len() + 1],
    pub longest: Duration,
    pub total: Duration,
}

impl TurnStats {
    pub fn record(&mut self, took: Duration) {
        let i = BUCKETS.iter().position(|b| took <= *b).unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.longest = self.longest.max(took);
        self.total += took;
    }

    pub fn turns(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// One line for STAT: `1234 turns, longest 3.2 ms; <=0.1ms 1000, <=1ms 230, <=5ms 4, ...` (empty buckets left out).
    pub fn summary(&self) -> String {
        let mut s = format!("{} turns, longest {:.1} ms;", self.turns(), self.longest.as_secs_f64() * 1e3);
        for (i, n) in self.counts.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            match BUCKETS.get(i) {
                Some(b) if *b < Duration::from_millis(1) => write!(s, " <={}us {n}", b.as_micros()),
                Some(b) => write!(s, " <={}ms {n}", b.as_millis()),
                None => write!(s, " >{}ms {n}", BUCKETS[BUCKETS.len() - 1].as_millis()),
            }
            .unwrap_or_default();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each turn lands in the first bucket whose bound it does not exceed; bounds are inclusive.
    #[test]
    fn turns_land_in_their_buckets() {
        let mut t = TurnStats::default();
        t.record(Duration::from_micros(50));
        t.record(Duration::from_micros(100));
        t.record(Duration::from_millis(3));
        t.record(Duration::from_secs(2));
        assert_eq!(t.counts[0], 2);
        assert_eq!(t.counts[2], 1);
        assert_eq!(t.counts[BUCKETS.len()], 1);
        assert_eq!(t.turns(), 4);
        assert_eq!(t.longest, Duration::from_secs(2));
        assert_eq!(t.summary(), "4 turns, longest 2000.0 ms; <=100us 2 <=5ms 1 >500ms 1");
    }
}
