//! Directory listings for LIST (the `ls -l` format curl, lftp and FileZilla parse) and NLST (names only).
//!
//! A [`Listing`] is a `Read` source that formats one entry at a time as the transfer pulls bytes from it, so a
//! directory of any size streams in chunks across loop turns and is never built in memory first. Entries are
//! stat'ed through a capability handle on the listed directory; owner and group are shown as `ftp` so no host
//! account names leak.

use std::io::{self, Read};
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, ReadDir};

use crate::storage::{Kind, Meta};

use crate::facts::Facts;

/// Which listing a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// LIST: one `ls -l` line per entry.
    Long,
    /// NLST: one name per line.
    Names,
    /// MLSD: RFC 3659 facts per entry.
    Machine { facts: Facts, writable: bool },
}

enum Entries {
    Dir {
        dir: Dir,
        iter: ReadDir,
    },
    Single(Option<(String, Meta)>),
    /// A back-end's entries (read on a storage thread, never on the loop).
    Remote(crate::storage::remote::Entries),
}

/// A listing being streamed.
pub struct Listing {
    entries: Entries,
    format: ListFormat,
    now: SystemTime,
    line: Vec<u8>,
    pos: usize,
}

impl Listing {
    /// Lists the entries of an open directory.
    pub fn directory(dir: Dir, format: ListFormat, now: SystemTime) -> io::Result<Listing> {
        let iter = dir.entries()?;
        Ok(Listing { entries: Entries::Dir { dir, iter }, format, now, line: Vec::new(), pos: 0 })
    }

    /// Lists a back-end's entries; for a storage thread to read, since each page may wait on the network.
    pub fn entries(entries: crate::storage::remote::Entries, format: ListFormat, now: SystemTime) -> Listing {
        Listing { entries: Entries::Remote(entries), format, now, line: Vec::new(), pos: 0 }
    }

    /// Lists a single file (LIST of a file name).
    pub fn single(name: String, meta: Meta, format: ListFormat, now: SystemTime) -> Listing {
        Listing { entries: Entries::Single(Some((name, meta))), format, now, line: Vec::new(), pos: 0 }
    }

    /// Formats the next entry into `self.line`; false when there are no more.
    fn next_line(&mut self) -> io::Result<bool> {
        let (name, meta) = match &mut self.entries {
            Entries::Single(one) => match one.take() {
                Some(pair) => pair,
                None => return Ok(false),
            },
            Entries::Dir { dir, iter } => loop {
                let Some(entry) = iter.next() else { return Ok(false) };
                // An entry that vanished between readdir and stat is skipped, not an error.
                let Ok(entry) = entry else { continue };
                let name = entry.file_name().to_string_lossy().into_owned();
                // Upload temporaries are nobody's business until they are published.
                if crate::fs::is_temp_name(&name) {
                    continue;
                }
                // Follow symlinks that stay inside this directory's view; show others as themselves.
                let meta = match dir.metadata(&name).or_else(|_| entry.metadata()) {
                    Ok(m) => Meta::from(&m),
                    Err(_) => continue,
                };
                break (name, meta);
            },
            Entries::Remote(iter) => match iter.next() {
                Some(entry) => entry?,
                None => return Ok(false),
            },
        };
        // A line end inside a name would forge listing lines; it is shown as '?'.
        let name = name.replace(['\r', '\n'], "?");
        self.line.clear();
        self.pos = 0;
        match self.format {
            ListFormat::Names => {
                self.line.extend_from_slice(name.as_bytes());
            }
            ListFormat::Long => format_long(&mut self.line, &name, &meta, self.now),
            ListFormat::Machine { facts, writable } => facts.format(&mut self.line, &name, &meta, None, writable),
        }
        self.line.extend_from_slice(b"\r\n");
        Ok(true)
    }
}

impl Listing {
    /// Up to `max` formatted lines (without line ends), and whether more entries follow: for STAT, which must
    /// stay a bounded step however large the directory.
    pub fn lines(&mut self, max: usize) -> io::Result<(Vec<String>, bool)> {
        let mut out = Vec::new();
        while out.len() < max {
            if !self.next_line()? {
                return Ok((out, false));
            }
            let line = self.line.strip_suffix(b"\r\n").unwrap_or(&self.line);
            out.push(String::from_utf8_lossy(line).into_owned());
        }
        self.pos = self.line.len();
        let more = self.next_line()?;
        Ok((out, more))
    }
}

impl Read for Listing {
    /// Fills `out` with as many formatted lines as fit (the last one possibly in part).
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            if self.pos >= self.line.len() && !self.next_line()? {
                break;
            }
            let take = (out.len() - n).min(self.line.len() - self.pos);
            out[n..n + take].copy_from_slice(&self.line[self.pos..self.pos + take]);
            self.pos += take;
            n += take;
        }
        Ok(n)
    }
}

/// One `ls -l` line without its line end, e.g. `-rw-r--r--    1 ftp      ftp          1024 Mar 05 14:03 a.txt`.
pub fn format_long(out: &mut Vec<u8>, name: &str, meta: &Meta, now: SystemTime) {
    let mode = meta.mode;
    let kind = match meta.kind {
        Kind::Dir => 'd',
        Kind::Link => 'l',
        Kind::File | Kind::Other => '-',
    };
    let mut perms = String::with_capacity(10);
    perms.push(kind);
    for shift in [6u32, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let mtime = meta.modified_or_epoch();
    let line = format!("{perms} {:>4} ftp      ftp      {:>12} {} {name}", meta.links, meta.len, ls_time(mtime, now));
    out.extend_from_slice(line.as_bytes());
}

/// `ls` shows "Mon DD HH:MM" for times in the last six months and "Mon DD  YYYY" otherwise (UTC here).
pub fn ls_time(t: SystemTime, now: SystemTime) -> String {
    const SIX_MONTHS: Duration = Duration::from_secs(183 * 24 * 3600);
    let (y, mo, d, h, mi, _) = ftp_common::time::civil(t);
    let month = MONTHS[(mo - 1) as usize];
    let recent = match now.duration_since(t) {
        Ok(age) => age < SIX_MONTHS,
        // Slightly in the future (clock skew) still counts as recent.
        Err(e) => e.duration() < Duration::from_secs(3600),
    };
    if recent {
        format!("{month} {d:02} {h:02}:{mi:02}")
    } else {
        format!("{month} {d:02}  {y}")
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(secs)
    }

    // ls shows the time of day for recent files and the year for old ones.
    #[test]
    fn recent_and_old_times() {
        let now = at(1_795_651_200);
        assert_eq!(ls_time(at(1_795_651_200 - 3600), now), "Nov 25 23:00");
        assert_eq!(ls_time(at(951_827_696), now), "Feb 29  2000");
    }

    fn list_all(mut l: Listing) -> String {
        let mut s = String::new();
        l.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn streams_every_entry_in_small_reads() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(tmp.path().join(format!("file {i}.txt")), vec![b'x'; i]).unwrap();
        }
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let mut l = Listing::directory(dir, ListFormat::Long, SystemTime::now()).unwrap();
        // Read 7 bytes at a time, as a chunked transfer with a tiny chunk would.
        let mut all = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = l.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(all).unwrap();
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 51);
        let sub = lines.iter().find(|l| l.ends_with(" sub")).unwrap();
        assert!(sub.starts_with('d'), "{sub}");
        let f7 = lines.iter().find(|l| l.ends_with(" file 7.txt")).unwrap();
        assert!(f7.starts_with("-rw"), "{f7}");
        let fields: Vec<&str> = f7.split_whitespace().collect();
        assert_eq!(fields[2], "ftp");
        assert_eq!(fields[4], "7");
    }

    #[test]
    fn names_only() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a b"), b"").unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let l = Listing::directory(dir, ListFormat::Names, SystemTime::now()).unwrap();
        assert_eq!(list_all(l), "a b\r\n");
    }
}
