//! RFC 3659 machine-readable facts (MLST/MLSD) and the `YYYYMMDDHHMMSS` UTC times of MDTM and MFMT.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_std::fs::{Metadata, MetadataExt};

use crate::listing::civil;

/// Which facts MLST/MLSD show (`OPTS MLST type;size;` chooses among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts(u8);

const NAMES: [&str; 5] = ["type", "size", "modify", "perm", "unique"];

impl Default for Facts {
    fn default() -> Self {
        Facts(0b11111)
    }
}

impl Facts {
    /// Parses an `OPTS MLST` argument; unknown fact names are ignored as RFC 3659 §7.9 asks.
    pub fn parse(list: &str) -> Facts {
        let mut bits = 0;
        for name in list.split(';') {
            if let Some(i) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name.trim())) {
                bits |= 1 << i;
            }
        }
        Facts(bits)
    }

    fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    /// `type;size;` — the selected facts, for the OPTS reply.
    pub fn selected(self) -> String {
        NAMES.iter().enumerate().filter(|(i, _)| self.has(*i)).map(|(_, n)| format!("{n};")).collect()
    }

    /// The FEAT line: every fact, the selected ones starred.
    pub fn feat_line(self) -> String {
        let facts: String =
            NAMES.iter().enumerate().map(|(i, n)| format!("{n}{};", if self.has(i) { "*" } else { "" })).collect();
        format!(" MLST {facts}")
    }

    /// `type=file;size=12;modify=20240101000000;perm=adfrw;unique=803g1a2; name` (without line end).
    /// `kind` overrides the type fact for the `cdir`/`pdir` entries of MLSD.
    pub fn format(self, out: &mut Vec<u8>, name: &str, meta: &Metadata, kind: Option<&str>, writable: bool) {
        let mut line = String::new();
        if self.has(0) {
            let t = kind.unwrap_or(if meta.is_dir() { "dir" } else { "file" });
            line.push_str(&format!("type={t};"));
        }
        if self.has(1) && !meta.is_dir() {
            line.push_str(&format!("size={};", meta.len()));
        }
        if self.has(2) {
            let t = meta.modified().map(|t| t.into_std()).unwrap_or(UNIX_EPOCH);
            line.push_str(&format!("modify={};", timeval(t)));
        }
        if self.has(3) {
            let perm = match (meta.is_dir(), writable) {
                (true, true) => "cdeflmp",
                (true, false) => "el",
                (false, true) => "adfrw",
                (false, false) => "r",
            };
            line.push_str(&format!("perm={perm};"));
        }
        if self.has(4) {
            line.push_str(&format!("unique={:x}g{:x};", meta.dev(), meta.ino()));
        }
        line.push(' ');
        line.push_str(name);
        out.extend_from_slice(line.as_bytes());
    }
}

/// `YYYYMMDDHHMMSS` in UTC, as MDTM and the modify fact give it.
pub fn timeval(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// Parses `YYYYMMDDHHMMSS` (UTC; a `.fff` fraction is accepted and dropped) into a time.
pub fn parse_timeval(s: &str) -> Option<SystemTime> {
    let s = s.split('.').next()?;
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(4..6)?, num(6..8)?, num(8..10)?, num(10..12)?, num(12..14)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // A leap second (60) is read as 59; the system clock has no other place for it.
    let sec = sec.min(59);
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec;
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?);
    // Reject dates such as Feb 31 that would silently normalise into another day.
    (timeval(t) == format!("{}{sec:02}", &s[..12])).then_some(t)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3659 §2.3: time values are YYYYMMDDHHMMSS in UTC.
    #[test]
    fn timeval_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(951_827_696);
        assert_eq!(timeval(t), "20000229123456");
        assert_eq!(parse_timeval("20000229123456"), Some(t));
        assert_eq!(parse_timeval("20000229123456.123"), Some(t));
        assert_eq!(timeval(UNIX_EPOCH), "19700101000000");
    }

    #[test]
    fn bad_timevals() {
        for bad in ["2000022912345", "20001329123456", "20000231000000", "2000022912345x", ""] {
            assert_eq!(parse_timeval(bad), None, "{bad}");
        }
    }

    // RFC 3659 §7.9: OPTS MLST selects facts; unknown ones are ignored.
    #[test]
    fn fact_selection() {
        let f = Facts::parse("size;Type;bogus;");
        assert_eq!(f.selected(), "type;size;");
        assert_eq!(f.feat_line(), " MLST type*;size*;modify;perm;unique;");
        assert_eq!(Facts::parse("").selected(), "");
        assert_eq!(Facts::default().selected(), "type;size;modify;perm;unique;");
    }

    #[test]
    fn format_file_facts() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), b"12345").unwrap();
        let dir = cap_std::fs::Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let meta = dir.metadata("f").unwrap();
        let mut out = Vec::new();
        Facts::parse("type;size;perm").format(&mut out, "f", &meta, None, true);
        assert_eq!(String::from_utf8(out).unwrap(), "type=file;size=5;perm=adfrw; f");
        let mut out = Vec::new();
        Facts::parse("type;size").format(&mut out, ".", &dir.dir_metadata().unwrap(), Some("cdir"), false);
        assert_eq!(String::from_utf8(out).unwrap(), "type=cdir; .");
    }
}
