//! Property tests for MLSx facts: fact selection round trips, and every formatted entry reads back as the facts and
//! the name it was made from (RFC 3659 §7), times included.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;

/// The latest modification time every common filesystem stores (ext4's, in 2446); later ones are clamped.
const LATEST_MTIME: u64 = 0x3_7fff_ffff;

/// The fact names in any case, with surrounding blanks, unknown ones mixed in.
fn fact_list() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        proptest::sample::select(NAMES.to_vec()).prop_map(str::to_string),
        proptest::sample::select(NAMES.to_vec()).prop_map(str::to_ascii_uppercase),
        "[a-zA-Z.]{0,8}",
    ];
    proptest::collection::vec((item, " {0,2}"), 0..8)
        .prop_map(|items| items.into_iter().map(|(name, pad)| format!("{pad}{name}{pad};")).collect())
}

/// Splits an entry line as a client does: facts up to the first "; ", then the name.
fn split_entry(line: &str) -> (Vec<(&str, &str)>, &str) {
    let (facts, name) = match line.strip_prefix(' ') {
        Some(name) => ("", name),
        None => line.split_once("; ").unwrap_or((line, "")),
    };
    let facts = facts.split(';').filter(|f| !f.is_empty()).filter_map(|f| f.split_once('=')).collect();
    (facts, name)
}

proptest! {
    // OPTS MLST with what the reply (or FEAT's starred items) shows selects the same facts again.
    #[test]
    fn selection_round_trip(list in fact_list()) {
        let facts = Facts::parse(&list);
        prop_assert_eq!(Facts::parse(&facts.selected()), facts);
        let starred: String = facts.feat_line().split(' ').nth(2).unwrap_or_default().split(';')
            .filter_map(|f| f.strip_suffix('*')).map(|f| format!("{f};")).collect();
        prop_assert_eq!(Facts::parse(&starred), facts);
        for name in facts.selected().split(';').filter(|n| !n.is_empty()) {
            prop_assert!(list.to_ascii_lowercase().contains(name));
        }
    }

    // A formatted entry reads back as the selected facts and the name as given, and its modify fact is the file's
    // time to the second.
    #[test]
    fn entry_reads_back(bits in 0u8..32, name in "[^\r\n\0]{1,40}", secs in 0u64..=LATEST_MTIME,
                        writable in any::<bool>(), dir in any::<bool>()) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("x");
        let mtime = UNIX_EPOCH + Duration::from_secs(secs);
        if dir {
            std::fs::create_dir(&path).expect("mkdir");
        } else {
            std::fs::write(&path, b"12345").expect("write");
        }
        std::fs::File::open(&path).expect("open").set_modified(mtime).expect("set mtime");
        let root = cap_std::fs::Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).expect("root");
        let meta = crate::storage::Meta::from(&root.metadata("x").expect("metadata"));
        let facts = Facts(bits);

        let mut out = Vec::new();
        facts.format(&mut out, &name, &meta, None, writable);
        let line = String::from_utf8(out).expect("UTF-8");
        let (got, got_name) = split_entry(&line);
        prop_assert_eq!(got_name, name.as_str());
        let keys: Vec<&str> = got.iter().map(|(k, _)| *k).collect();
        let expected: Vec<&str> = NAMES.iter().enumerate()
            .filter(|(i, n)| facts.has(*i) && !(dir && **n == "size")).map(|(_, n)| *n).collect();
        prop_assert_eq!(keys, expected);
        for (key, value) in got {
            match key {
                "type" => prop_assert_eq!(value, if dir { "dir" } else { "file" }),
                "size" => prop_assert_eq!(value, "5"),
                "modify" => prop_assert_eq!(parse_timeval(value), Some(mtime)),
                "perm" => {
                    let needed = if dir { 'l' } else { 'r' };
                    prop_assert!(value.contains(needed), "perm={}", value);
                }
                _ => prop_assert!(value.contains('g'), "unique={}", value),
            }
        }
    }
}
