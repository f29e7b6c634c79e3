//! `ls -l` from MLSD entries: one line per entry, the same columns whatever the server.
//!
//! `d        4096 2024-01-02 03:04 docs`: the type (`d` directory, `-` file, `l` symbolic link, `?` other), the
//! size right-aligned to the widest one (`-` when unknown), the modification time in UTC to the minute (`-` when
//! unknown) and the name. The directory itself and its parent (`cdir`, `pdir`) are left out; entries are sorted by
//! name.

use ftp_client::timestamp::format_utc_minutes;
use ftp_client::{Entry, EntryKind};

/// Width of `YYYY-MM-DD HH:MM`.
const TIME_WIDTH: usize = 16;

/// The lines of `ls -l` for `entries`, each ending with a newline; empty when there is nothing to show.
pub fn format_long(entries: &[Entry]) -> String {
    let mut shown: Vec<&Entry> =
        entries.iter().filter(|e| !matches!(e.kind(), EntryKind::CurrentDir | EntryKind::ParentDir)).collect();
    shown.sort_by(|a, b| a.name.cmp(&b.name));
    let sizes: Vec<String> =
        shown.iter().map(|e| e.size().map_or_else(|| "-".to_string(), |s| s.to_string())).collect();
    let width = sizes.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for (entry, size) in shown.iter().zip(&sizes) {
        let kind = match entry.kind() {
            EntryKind::Dir => 'd',
            EntryKind::File => '-',
            EntryKind::Symlink => 'l',
            _ => '?',
        };
        let time = entry.modified().map_or_else(|| "-".to_string(), format_utc_minutes);
        out.push_str(&format!("{kind} {size:>width$} {time:<TIME_WIDTH$} {}\n", entry.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(lines: &[&str]) -> Vec<Entry> {
        lines.iter().map(|l| Entry::parse(l).expect("entry")).collect()
    }

    #[test]
    fn columns_line_up() {
        let list = entries(&[
            "type=file;size=104857600;modify=20240102030405; big.bin",
            "type=cdir;modify=20240101000000; .",
            "type=pdir; ..",
            "type=dir;size=4096;modify=20231231235959.5; docs",
            "type=OS.unix=slink:/x;size=1;modify=20240102030405; link",
            "type=file;size=0; empty file",
            "type=weird; other",
        ]);
        assert_eq!(
            format_long(&list),
            "- 104857600 2024-01-02 03:04 big.bin\n\
             d      4096 2023-12-31 23:59 docs\n\
             -         0 -                empty file\n\
             l         1 2024-01-02 03:04 link\n\
             ?         - -                other\n"
        );
    }

    #[test]
    fn empty_directory() {
        assert_eq!(format_long(&entries(&["type=cdir; .", "type=pdir; .."])), "");
        assert_eq!(format_long(&[]), "");
    }
}
