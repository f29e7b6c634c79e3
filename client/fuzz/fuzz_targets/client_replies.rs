//! Fuzzes what a malicious server can make the client believe: the bytes it sends on the control connection, read
//! through the client's own `ReplyParser`, and the same bytes as listing data, through every parser the client
//! applies to them (PASV and EPSV replies, 257 paths, FEAT, HASH and MDTM replies, MLSD and MLST entries, NLST
//! names), then through the `ls -l` formatting, the naming of local download targets and the tree walk that
//! `mirror`, `get -r` and `mget` build local paths from.
//!
//! Input: one control byte, then the server's bytes. Bit 0: whether the client trusts a 227's host
//! (`set_trust_pasv_host`); bits 1-2: the control connection's peer (IPv4, IPv6, IPv4-mapped IPv6).
//!
//! Properties: no panic; a data address is never another host than the control peer's, unless the caller trusts
//! 227 hosts (and even then never 0.0.0.0), and never port 0; a local download target named after anything the
//! server sent is one plain file name, in the current directory or inside the target directory given; parsed
//! values survive their round trips (quoted paths, hash digests).
#![no_main]

use std::net::SocketAddr;
use std::path::{Component, Path};

use ftp_client::timestamp::{civil, format_utc, parse_ftp_time};
use ftp_client::{
    feature_params, parse_choice_list, parse_feat_lines, parse_hash_reply, parse_mlsd, parse_quoted_path,
    passive_data_address, Entry, EntryKind, Reply,
};
use ftp_common::ReplyParser;
use ftpclient::listing::format_long;
use ftpclient::local::{download_target, part_path};
use ftpclient::tree::{join_remote, nodes};
use libfuzzer_sys::fuzz_target;

const PEERS: [&str; 4] = ["127.0.0.1:21", "[::1]:21", "[::ffff:127.0.0.1]:21", "192.0.2.7:2121"];

/// Features whose parameters the client reads (MLST and HASH choice lists) or whose presence it tests.
const FEATURES: [&str; 8] = ["MLST", "HASH", "UTF8", "REST", "SIZE", "MDTM", "EPSV", "AUTH"];

fn check_data_address(peer: SocketAddr, reply: &Reply, trust: bool) {
    let Some(addr) = passive_data_address(peer, reply, trust) else { return };
    assert_ne!(addr.port(), 0, "{reply:?}");
    if trust && reply.code == 227 {
        assert!(!addr.ip().is_unspecified(), "{reply:?} -> {addr}");
    } else {
        assert_eq!(addr.ip(), peer.ip(), "{reply:?} -> {addr}");
    }
}

/// A local file named after `remote` is one plain name: beside nothing but itself, never a path upwards or away.
fn check_local_name(remote: &str) {
    if let Ok(target) = download_target(remote, None) {
        assert!(
            matches!(target.components().collect::<Vec<_>>()[..], [Component::Normal(_)]),
            "{remote:?} -> {target:?}"
        );
        assert_eq!(part_path(&target, 1, 2).parent(), Some(Path::new("")));
    }
    if let Ok(target) = download_target(remote, Some("target/")) {
        let parts: Vec<Component> = target.components().collect();
        assert!(
            matches!(parts[..], [Component::Normal(dir), Component::Normal(_)] if dir == "target"),
            "{remote:?} -> {target:?}"
        );
        assert_eq!(part_path(&target, 1, 2).parent(), Some(Path::new("target")));
    }
}

/// A mirror walks the listing, and the same listing again for each directory in it (a server may answer every
/// MLSD alike): every local path it builds is below the target directory.
fn check_mirror_paths(entries: Vec<Entry>) {
    let top = nodes(entries);
    let mut paths: Vec<String> = top.iter().map(|n| n.path.clone()).collect();
    for dir in top.iter().filter(|n| n.dir) {
        paths.extend(top.iter().map(|n| join_remote(&dir.path, &n.path)));
    }
    for rel in paths {
        let local = Path::new("target").join(&rel);
        let parts: Vec<Component> = local.components().collect();
        assert!(parts.len() >= 2 && parts.iter().all(|c| matches!(c, Component::Normal(_))), "{rel:?} -> {local:?}");
    }
}

fn check_entry(entry: &Entry) {
    assert!(!entry.name.is_empty());
    let _ = (entry.kind(), entry.size(), entry.fact("type"));
    if let Some(t) = entry.modified() {
        let _ = format_utc(t);
    }
    check_local_name(&entry.name);
}

fn check_reply(peer: SocketAddr, reply: &Reply, trust: bool) {
    // Whatever the code, try the text as each reply the client parses: a server chooses both.
    for code in [reply.code, 227, 229] {
        check_data_address(peer, &Reply { code, lines: reply.lines.clone() }, trust);
    }
    let first = &reply.lines[0];
    if let Some(path) = parse_quoted_path(first) {
        let quoted = format!("\"{}\" created", path.replace('"', "\"\""));
        assert_eq!(parse_quoted_path(&quoted).as_deref(), Some(path.as_str()));
        check_local_name(&path);
    }
    let features = parse_feat_lines(&reply.lines);
    for name in FEATURES {
        if let Some(params) = feature_params(&features, name) {
            for (item, _) in parse_choice_list(params) {
                assert!(!item.is_empty() && !item.contains(';'));
            }
        }
    }
    if let Some(hash) = parse_hash_reply(first) {
        assert!(hash.hex.len() % 2 == 0 && hash.hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }
    // MDTM: the time is the reply's first word.
    if let Some(t) = parse_ftp_time(first.split(' ').next().unwrap_or_default()) {
        let (_, month, day, hour, minute, second) = civil(t);
        assert!((1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24 && minute < 60 && second < 60);
    }
    // MLST: the entry is the inner line that starts with a space.
    if let Some(entry) = reply.lines.iter().find_map(|l| l.strip_prefix(' ').and_then(Entry::parse)) {
        check_entry(&entry);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, bytes)) = data.split_first() else { return };
    let trust = ctl & 1 == 1;
    let Ok(peer) = PEERS[usize::from(ctl >> 1) % PEERS.len()].parse::<SocketAddr>() else { return };

    let mut parser = ReplyParser::default();
    parser.push(bytes);
    while let Some(reply) = parser.pop() {
        if let Ok(reply) = reply {
            check_reply(peer, &reply, trust);
        }
    }

    // The same bytes as data-connection payload: an MLSD listing and an NLST name list.
    let listing = String::from_utf8_lossy(bytes);
    let entries: Vec<Entry> = listing.lines().filter_map(Entry::parse).collect();
    for entry in &entries {
        check_entry(entry);
    }
    let shown = entries.iter().filter(|e| !matches!(e.kind(), EntryKind::CurrentDir | EntryKind::ParentDir)).count();
    assert_eq!(format_long(&entries).matches('\n').count(), shown);
    if let Ok(all) = parse_mlsd(&listing) {
        assert!(all.len() <= listing.lines().count());
    }
    check_mirror_paths(entries);
    for name in listing.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)).filter(|l| !l.is_empty()) {
        check_local_name(name);
    }
});
