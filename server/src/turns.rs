//! How long the loop's turns take: the loop's discipline (no step costs more than a few milliseconds, whatever a
//! client asks) made visible. The loop times each turn into its worker's counters ([`crate::metrics`]); this
//! module holds the buckets they share with `/metrics` and the one-line summary STAT shows a logged-in user. A
//! turn over [`SLOW_TURN`] is logged. No clock in here: durations are handed in.

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

/// The bucket a turn of `took` falls in: the first whose bound it does not exceed, else the last (longer than all).
pub fn bucket(took: Duration) -> usize {
    BUCKETS.iter().position(|b| took <= *b).unwrap_or(BUCKETS.len())
}

/// One line for STAT from the counts per bucket: `1234 turns, longest 3.2 ms; <=100us 1000 <=1ms 230 ...`
/// (empty buckets left out).
pub fn summary(counts: &[u64; BUCKETS.len() + 1], longest: Duration) -> String {
    let turns: u64 = counts.iter().sum();
    let mut s = format!("{turns} turns, longest {:.1} ms;", longest.as_secs_f64() * 1e3);
    for (i, n) in counts.iter().enumerate() {
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

#[cfg(test)]
mod tests {
    use super::*;

    // Each turn lands in the first bucket whose bound it does not exceed; bounds are inclusive.
    #[test]
    fn turns_land_in_their_buckets() {
        let mut counts = [0u64; BUCKETS.len() + 1];
        for took in
            [Duration::from_micros(50), Duration::from_micros(100), Duration::from_millis(3), Duration::from_secs(2)]
        {
            counts[bucket(took)] += 1;
        }
        assert_eq!(counts[0], 2);
        assert_eq!(counts[2], 1);
        assert_eq!(counts[BUCKETS.len()], 1);
        assert_eq!(summary(&counts, Duration::from_secs(2)), "4 turns, longest 2000.0 ms; <=100us 2 <=5ms 1 >500ms 1");
    }
}
