//! The files and directories below a remote or a local directory, as relative paths with their sizes and times:
//! what `mirror`, `get -r` and `put -r` compare, and what `mget` and `mput` match wildcards against.
//!
//! Remote directories are read with MLSD (RFC 3659), whose facts say reliably what is a directory; a server without
//! MLST cannot be walked. Symbolic links and special files are left out on both sides.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use crate::transfer::why;
use ftp_client::{Entry, EntryKind, FtpClient};

/// One file or directory below the walked directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Relative to the walked directory, components joined with `/`.
    pub path: String,
    pub dir: bool,
    pub size: u64,
    pub mtime: Option<SystemTime>,
}

/// Most entries a walk collects, so a huge or looping tree cannot exhaust memory.
const MAX_NODES: usize = 1_000_000;

/// `dir/name` for remote paths (`name` alone when `dir` is empty).
pub fn join_remote(dir: &str, name: &str) -> String {
    match dir {
        "" => name.to_string(),
        d if d.ends_with('/') => format!("{d}{name}"),
        d => format!("{d}/{name}"),
    }
}

/// The entries of one remote directory (files and directories only), by MLSD.
pub fn remote_dir(client: &mut FtpClient, dir: &str) -> Result<Vec<Node>, String> {
    if client.feature("MLST").map_err(|e| e.to_string())?.is_none() {
        return Err("the server has no MLSD, which listing directories needs".to_string());
    }
    client.select_mlst_facts(&["type", "size", "modify"]).map_err(|e| e.to_string())?;
    let entries = client.mlsd(Some(dir)).map_err(|e| why(&e, "MLSD"))?;
    Ok(nodes(entries))
}

/// The files and directories among a directory's MLSD entries, by name. A name the server sent that could lead
/// elsewhere (empty, `.`, `..`, or with a `/`) is left out, so a walk stays below the directory it started in.
pub fn nodes(entries: Vec<Entry>) -> Vec<Node> {
    let mut nodes = Vec::new();
    for entry in entries {
        let dir = match entry.kind() {
            EntryKind::Dir => true,
            EntryKind::File => false,
            _ => continue,
        };
        if entry.name.is_empty() || entry.name.contains(['/', '\0']) || entry.name == "." || entry.name == ".." {
            continue;
        }
        nodes.push(Node { path: entry.name.clone(), dir, size: entry.size().unwrap_or(0), mtime: entry.modified() });
    }
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    nodes
}

/// Everything below the remote directory `root`, parents before their contents; `None` when `root` does not exist
/// (the server refuses to list it).
pub fn remote_tree(client: &mut FtpClient, root: &str) -> Result<Option<Vec<Node>>, String> {
    let mut all = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(rel) = pending.pop() {
        let listed = remote_dir(client, &join_remote(root, &rel));
        let nodes = match listed {
            Ok(nodes) => nodes,
            // Missing: 550 (RFC 3659 §7.2.1), or 501 as pyftpdlib has it.
            Err(msg)
                if rel.is_empty()
                    && (msg.starts_with("server replied 550") || msg.starts_with("server replied 501")) =>
            {
                return Ok(None)
            }
            Err(msg) => return Err(msg),
        };
        for mut node in nodes {
            node.path = join_remote(&rel, &node.path);
            if node.dir {
                pending.push(node.path.clone());
            }
            all.push(node);
            if all.len() > MAX_NODES {
                return Err(format!("more than {MAX_NODES} entries below {root}"));
            }
        }
    }
    all.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(all))
}

/// Everything below the local directory `root`, parents before their contents; `None` when it does not exist.
pub fn local_tree(root: &Path) -> Result<Option<Vec<Node>>, String> {
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("local path {} is not a directory", root.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("local directory {}: {e}", root.display())),
    }
    let mut all = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(rel) = pending.pop() {
        let dir = root.join(&rel);
        let read = fs::read_dir(&dir).map_err(|e| format!("local directory {}: {e}", dir.display()))?;
        for entry in read {
            let entry = entry.map_err(|e| format!("local directory {}: {e}", dir.display()))?;
            let Ok(name) = entry.file_name().into_string() else {
                return Err(format!("a name in {} is not valid UTF-8", dir.display()));
            };
            let meta = entry.metadata().map_err(|e| format!("local file {}: {e}", entry.path().display()))?;
            if !meta.is_dir() && !meta.is_file() {
                continue;
            }
            let path = join_remote(&rel, &name);
            if meta.is_dir() {
                pending.push(path.clone());
            }
            all.push(Node { path, dir: meta.is_dir(), size: meta.len(), mtime: meta.modified().ok() });
            if all.len() > MAX_NODES {
                return Err(format!("more than {MAX_NODES} entries below {}", root.display()));
            }
        }
    }
    all.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_joins() {
        assert_eq!(join_remote("", "a"), "a");
        assert_eq!(join_remote("/", "a"), "/a");
        assert_eq!(join_remote("pub", "a"), "pub/a");
        assert_eq!(join_remote("pub/", "a"), "pub/a");
    }

    #[test]
    fn local_walk_lists_parents_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        fs::write(dir.path().join("a/b/f.txt"), b"12345").expect("write");
        fs::write(dir.path().join("top"), b"").expect("write");
        let nodes = local_tree(dir.path()).expect("walk").expect("exists");
        let paths: Vec<(&str, bool, u64)> = nodes.iter().map(|n| (n.path.as_str(), n.dir, n.size)).collect();
        assert_eq!(paths[0], ("a", true, paths[0].2));
        assert_eq!(paths[1], ("a/b", true, paths[1].2));
        assert_eq!(paths[2], ("a/b/f.txt", false, 5));
        assert_eq!(paths[3], ("top", false, 0));
        assert_eq!(local_tree(&dir.path().join("none")), Ok(None));
        assert!(local_tree(&dir.path().join("top")).is_err());
    }

    // A server's listing cannot walk a mirror out of its directory: names that lead elsewhere are left out.
    #[test]
    fn names_that_lead_elsewhere_are_left_out() {
        let listing = "type=dir; ..\r\ntype=dir; .\r\ntype=file; a/../../b\r\ntype=file; /etc/passwd\r\n\
                       type=cdir; /\r\ntype=OS.unix=slink; link\r\ntype=file;size=3; ok\r\ntype=dir; sub\r\n";
        let entries = ftp_client::parse_mlsd(listing).expect("listing");
        let got: Vec<(String, bool)> = nodes(entries).into_iter().map(|n| (n.path, n.dir)).collect();
        assert_eq!(got, [("ok".to_string(), false), ("sub".to_string(), true)]);
    }
}
