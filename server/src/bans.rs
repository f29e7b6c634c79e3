//! Bans, as fail2ban or SFTPGo's defender would do them, built in: an address that offends `--ban-after` times
//! within `--ban-window` (failed logins, bounce attempts, PROXY headers from where none may come, lines over the
//! limit) is banned for `--ban-time`, twice as long for each ban it already had; a banned address gets 421 and is
//! closed at accept, before any session exists. `--deny-from` and `--allow-from` are static lists.
//!
//! One table for all workers, behind a mutex taken at accept and when an offence is recorded — never on a
//! transfer's path. The table is bounded: old offences fall out of the window, and past [`MAX_TRACKED`]
//! addresses the quietest are forgotten first. No clock inside: instants are handed in.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::proxy::Cidr;

/// Addresses with recent offences or bans tracked at most.
pub const MAX_TRACKED: usize = 65_536;
/// A repeat offender's ban doubles each time, up to this many doublings.
const MAX_DOUBLINGS: u32 = 10;

/// What an address did to deserve counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    FailedLogin,
    /// PORT/EPRT to another address or a privileged port (the FTP bounce attack).
    Bounce,
    /// Protocol abuse: a PROXY header from an address not trusted for it, a line over the limit.
    Abuse,
}

impl fmt::Display for Offence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Offence::FailedLogin => "failed login",
            Offence::Bounce => "bounce attempt",
            Offence::Abuse => "protocol abuse",
        })
    }
}

/// The ban settings (`--ban-after` 0 turns bans off).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub after: usize,
    pub window: Duration,
    pub time: Duration,
    pub deny: Vec<Cidr>,
    pub allow: Vec<Cidr>,
}

/// Why an address is turned away at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Listed in `--deny-from`, or not in a non-empty `--allow-from`.
    Denied,
    Banned {
        left: Duration,
    },
}

#[derive(Debug, Default)]
struct Record {
    offences: VecDeque<Instant>,
    banned_until: Option<Instant>,
    /// Bans served so far (the next one lasts `time * 2^bans`).
    bans: u32,
    last_seen: Option<Instant>,
}

/// The ban table.
#[derive(Debug, Default)]
pub struct Bans {
    policy: Policy,
    records: HashMap<IpAddr, Record>,
}

impl Bans {
    pub fn new(policy: Policy) -> Bans {
        Bans { policy, records: HashMap::new() }
    }

    /// New settings (SIGHUP); the offences and bans so far stay.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Whether `ip` may connect now.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        let listed = |blocks: &[Cidr]| blocks.iter().any(|b| b.contains(ip));
        if listed(&self.policy.deny) || (!self.policy.allow.is_empty() && !listed(&self.policy.allow)) {
            return Err(Refused::Denied);
        }
        match self.records.get(&ip).and_then(|r| r.banned_until) {
            Some(until) if until > now => Err(Refused::Banned { left: until - now }),
            _ => Ok(()),
        }
    }

    /// Counts an offence; returns how long `ip` is now banned for, if this offence banned it.
    pub fn offend(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.policy.after == 0 {
            return None;
        }
        if self.records.len() >= MAX_TRACKED && !self.records.contains_key(&ip) {
            self.forget_quietest(now);
        }
        let window = self.policy.window;
        let r = self.records.entry(ip).or_default();
        r.last_seen = Some(now);
        if r.banned_until.is_some_and(|u| u > now) {
            return None;
        }
        while r.offences.front().is_some_and(|t| now.saturating_duration_since(*t) > window) {
            r.offences.pop_front();
        }
        r.offences.push_back(now);
        if r.offences.len() < self.policy.after {
            return None;
        }
        r.offences.clear();
        let ban = self.policy.time.saturating_mul(1 << r.bans.min(MAX_DOUBLINGS));
        r.bans += 1;
        r.banned_until = Some(now + ban);
        Some(ban)
    }

    /// Drops the records that no longer matter, then, if still full, the half seen longest ago.
    fn forget_quietest(&mut self, now: Instant) {
        let window = self.policy.window;
        self.records.retain(|_, r| {
            r.banned_until.is_some_and(|u| u > now)
                || r.offences.back().is_some_and(|t| now.saturating_duration_since(*t) <= window)
        });
        if self.records.len() >= MAX_TRACKED {
            let mut seen: Vec<Instant> = self.records.values().filter_map(|r| r.last_seen).collect();
            seen.sort_unstable();
            if let Some(&cut) = seen.get(seen.len() / 2) {
                self.records.retain(|_, r| r.last_seen.is_some_and(|t| t > cut));
            }
        }
    }

    /// Addresses banned right now.
    pub fn banned(&self, now: Instant) -> usize {
        self.records.values().filter(|r| r.banned_until.is_some_and(|u| u > now)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(after: usize) -> Policy {
        Policy { after, window: Duration::from_secs(60), time: Duration::from_secs(10), ..Policy::default() }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    // N offences within the window ban the address; its neighbour is untouched; the ban expires.
    #[test]
    fn ban_after_n_within_the_window_then_expiry() {
        let mut b = Bans::new(policy(3));
        let t = Instant::now();
        assert_eq!(b.offend(ip("10.0.0.1"), t), None);
        assert_eq!(b.offend(ip("10.0.0.1"), t + Duration::from_secs(1)), None);
        assert_eq!(b.offend(ip("10.0.0.1"), t + Duration::from_secs(2)), Some(Duration::from_secs(10)));
        let at = t + Duration::from_secs(3);
        assert_eq!(b.check(ip("10.0.0.1"), at), Err(Refused::Banned { left: Duration::from_secs(9) }));
        assert_eq!(b.check(ip("10.0.0.2"), at), Ok(()));
        assert_eq!(b.banned(at), 1);
        assert_eq!(b.check(ip("10.0.0.1"), t + Duration::from_secs(12)), Ok(()));
    }

    // Offences spread wider than the window never add up to a ban.
    #[test]
    fn old_offences_fall_out_of_the_window() {
        let mut b = Bans::new(policy(3));
        let t = Instant::now();
        for i in 0..10 {
            assert_eq!(b.offend(ip("10.0.0.1"), t + Duration::from_secs(40 * i)), None);
        }
    }

    // A repeat offender's ban doubles.
    #[test]
    fn repeat_offenders_are_banned_longer() {
        let mut b = Bans::new(policy(1));
        let mut t = Instant::now();
        for expected in [10, 20, 40, 80] {
            assert_eq!(b.offend(ip("10.0.0.1"), t), Some(Duration::from_secs(expected)));
            t += Duration::from_secs(expected + 1);
        }
    }

    // --deny-from and --allow-from turn addresses away whatever they did; bans off (0) ban nobody.
    #[test]
    fn deny_and_allow_lists() {
        let p = Policy { deny: vec!["10.0.0.0/8".parse().unwrap()], ..policy(0) };
        let mut b = Bans::new(p);
        let t = Instant::now();
        assert_eq!(b.check(ip("10.1.2.3"), t), Err(Refused::Denied));
        assert_eq!(b.check(ip("192.0.2.1"), t), Ok(()));
        for _ in 0..100 {
            assert_eq!(b.offend(ip("192.0.2.1"), t), None);
        }
        let p = Policy { allow: vec!["192.0.2.0/24".parse().unwrap()], ..policy(0) };
        let b = Bans::new(p);
        assert_eq!(b.check(ip("192.0.2.9"), t), Ok(()));
        assert_eq!(b.check(ip("198.51.100.1"), t), Err(Refused::Denied));
    }

    // The table stays bounded however many addresses offend.
    #[test]
    fn the_table_is_bounded() {
        let mut b = Bans::new(policy(5));
        let t = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 1000) {
            b.offend(IpAddr::from(i.to_be_bytes()), t + Duration::from_micros(u64::from(i)));
        }
        assert!(b.records.len() <= MAX_TRACKED);
    }
}
