//! RFC 3659 machine-readable facts (MLST/MLSD) and the `YYYYMMDDHHMMSS` UTC times of MDTM and MFMT.

use crate::storage::Meta;

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
    pub fn format(self, out: &mut Vec<u8>, name: &str, meta: &Meta, kind: Option<&str>, writable: bool) {
        let mut line = String::new();
        if self.has(0) {
            let t = kind.unwrap_or(if meta.is_dir() { "dir" } else { "file" });
            line.push_str(&format!("type={t};"));
        }
        if self.has(1) && !meta.is_dir() {
            line.push_str(&format!("size={};", meta.len));
        }
        if self.has(2) {
            let t = meta.modified_or_epoch();
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
        if let (true, Some((dev, ino))) = (self.has(4), meta.unique) {
            line.push_str(&format!("unique={dev:x}g{ino:x};"));
        }
        line.push(' ');
        line.push_str(name);
        out.extend_from_slice(line.as_bytes());
    }
}

/// `YYYYMMDDHHMMSS` in UTC (MDTM, the modify fact) and its parser (MFMT), shared with the client.
pub use ftp_common::time::{format_ftp_time as timeval, parse_ftp_time as parse_timeval};

#[cfg(test)]
mod tests {
    use super::*;

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
        let meta = Meta::from(&dir.metadata("f").unwrap());
        let mut out = Vec::new();
        Facts::parse("type;size;perm").format(&mut out, "f", &meta, None, true);
        assert_eq!(String::from_utf8(out).unwrap(), "type=file;size=5;perm=adfrw; f");
        let mut out = Vec::new();
        Facts::parse("type;size").format(&mut out, ".", &Meta::from(&dir.dir_metadata().unwrap()), Some("cdir"), false);
        assert_eq!(String::from_utf8(out).unwrap(), "type=cdir; .");
    }
}

#[cfg(test)]
#[path = "facts_tests.rs"]
mod proptests;
