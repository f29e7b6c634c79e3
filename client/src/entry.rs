//! Machine-readable directory entries: the lines of MLSD data and of the MLST reply (RFC 3659 §7).
//!
//! An entry is a list of facts, each `name=value;`, then one space, then the name (MLSD) or the path (MLST):
//! `type=file;size=1024;modify=20240102030405; notes.txt`. Fact names are case-insensitive and are kept in lower case;
//! values are kept as sent. The name runs to the end of the line and may itself contain spaces and semicolons.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::timestamp::parse_ftp_time;

/// One file, directory or other object, as MLSD or MLST describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name (MLSD) or the path (MLST), exactly as sent.
    pub name: String,
    /// The facts by lower-case name: `type`, `size`, `modify`, `perm`, `unique`, `unix.mode` ...
    pub facts: BTreeMap<String, String>,
}

/// What an entry is, from its `type` fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// `cdir`: the listed directory itself.
    CurrentDir,
    /// `pdir`: its parent.
    ParentDir,
    /// `OS.unix=slink` or `OS.unix=symlink` (with or without a target).
    Symlink,
    /// Any other type, or none.
    Other,
}

impl Entry {
    /// Parses one entry line (without its line end). `None` if it has no name or a fact without `=`.
    pub fn parse(line: &str) -> Option<Entry> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // The facts end with ";" and a space. Values contain neither, so the first "; " ends them; a line
        // starting with a space has no facts at all.
        let (facts, name) = match line.strip_prefix(' ') {
            Some(name) => ("", name),
            None => {
                let end = line.find("; ")?;
                (&line[..end], &line[end + 2..])
            }
        };
        if name.is_empty() {
            return None;
        }
        let mut map = BTreeMap::new();
        for fact in facts.split(';').filter(|f| !f.is_empty()) {
            let (key, value) = fact.split_once('=')?;
            if key.is_empty() {
                return None;
            }
            map.insert(key.to_ascii_lowercase(), value.to_string());
        }
        Some(Entry { name: name.to_string(), facts: map })
    }

    /// The value of a fact, by name in any case.
    pub fn fact(&self, name: &str) -> Option<&str> {
        self.facts.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The `type` fact, interpreted.
    pub fn kind(&self) -> EntryKind {
        let Some(kind) = self.fact("type") else {
            return EntryKind::Other;
        };
        let kind = kind.to_ascii_lowercase();
        match kind.as_str() {
            "file" => EntryKind::File,
            "dir" => EntryKind::Dir,
            "cdir" => EntryKind::CurrentDir,
            "pdir" => EntryKind::ParentDir,
            _ if kind.starts_with("os.unix=slink") || kind.starts_with("os.unix=symlink") => EntryKind::Symlink,
            _ => EntryKind::Other,
        }
    }

    /// The `size` fact in bytes.
    pub fn size(&self) -> Option<u64> {
        self.fact("size")?.parse().ok()
    }

    /// The `modify` fact, a UTC time.
    pub fn modified(&self) -> Option<SystemTime> {
        parse_ftp_time(self.fact("modify")?)
    }
}

/// Parses MLSD data: one entry per line (CRLF or LF), blank lines skipped. A line that is not an entry is an error
/// naming it.
pub fn parse_mlsd(data: &str) -> Result<Vec<Entry>, String> {
    data.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(|l| Entry::parse(l).ok_or_else(|| format!("not an MLSD entry: {l:?}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(line: &str) -> Entry {
        Entry::parse(line).unwrap_or_else(|| panic!("{line:?} should parse"))
    }

    // RFC 3659 §7.7.4 examples.
    #[test]
    fn rfc_examples() {
        let e = entry("Type=cdir;Modify=19981107085215;Perm=el; tmp");
        assert_eq!(e.name, "tmp");
        assert_eq!(e.kind(), EntryKind::CurrentDir);
        assert_eq!(e.fact("perm"), Some("el"));
        assert_eq!(e.fact("PERM"), Some("el"));
        assert_eq!(e.modified(), Some(UNIX_EPOCH + Duration::from_secs(910_428_735)));
        let e = entry("Type=file;Size=25730;Modify=19940728095854;Perm=; capmux.tar.z");
        assert_eq!((e.kind(), e.size(), e.fact("perm")), (EntryKind::File, Some(25730), Some("")));
        assert_eq!(entry("Type=pdir;Modify=19990112030508;Perm=el; ..").kind(), EntryKind::ParentDir);
    }

    // The name runs to the end of the line: spaces, semicolons and equals signs are part of it.
    #[test]
    fn names_keep_everything() {
        let e = entry("type=file;size=0; a; b=c d ");
        assert_eq!(e.name, "a; b=c d ");
        assert_eq!(entry("type=dir; sub dir\r").name, "sub dir");
        // A value may contain '=' (the first one separates name and value).
        let e = entry("type=OS.unix=slink:/etc/x;size=4; link");
        assert_eq!(e.fact("type"), Some("OS.unix=slink:/etc/x"));
        assert_eq!(e.kind(), EntryKind::Symlink);
        assert_eq!(entry("type=OS.unix=symlink; l").kind(), EntryKind::Symlink);
    }

    // RFC 3659 §7.2: the fact list may be empty; the line then starts with the space.
    #[test]
    fn no_facts() {
        let e = entry(" /pub/file.txt");
        assert_eq!(e.name, "/pub/file.txt");
        assert!(e.facts.is_empty());
        assert_eq!(e.kind(), EntryKind::Other);
        assert_eq!((e.size(), e.modified()), (None, None));
    }

    #[test]
    fn malformed_entries() {
        for bad in ["", " ", "type=file;", "type=file; ", "type=file;size=1 name", "type=file;novalue; x", "=x; y"] {
            assert_eq!(Entry::parse(bad), None, "{bad:?}");
        }
        // Unparsable values are no error, they are just not understood.
        let e = entry("size=big;modify=yesterday;type=weird; x");
        assert_eq!((e.size(), e.modified(), e.kind()), (None, None, EntryKind::Other));
    }

    #[test]
    fn mlsd_data() {
        let data = "type=dir;modify=20240102030405; d\r\n\r\ntype=file;size=3; f\nsize=1; g\r\n";
        let entries = parse_mlsd(data).expect("parses");
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["d", "f", "g"]);
        assert_eq!(entries[0].kind(), EntryKind::Dir);
        assert!(parse_mlsd("").expect("empty").is_empty());
        assert_eq!(parse_mlsd("garbage\r\n"), Err("not an MLSD entry: \"garbage\"".to_string()));
    }
}
