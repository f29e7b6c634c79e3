//! `mirror`, `get -r`, `put -r`, `mget` and `mput`: deciding which files to move, then moving them through
//! [`jobs`](crate::jobs).
//!
//! `mirror [-R] SOURCE [TARGET]` follows lftp: without `-R` the source is remote and the target local, with `-R` the
//! other way round; TARGET defaults to the source's name in the current (local or remote) directory. A file is
//! copied when the target lacks it or its size or modification time (to the second) differs; `--newer` copies only
//! files missing from the target or newer in the source. Copies get the source's modification time. `--delete`
//! removes what the target has and the source does not, `--exclude GLOB` leaves out paths whose name or relative
//! path matches (on both sides), `--dry-run` prints the plan and changes nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::glob::{has_wildcards, matches};
use crate::jobs::Job;
use crate::local::{format_rate, remote_basename};
use crate::transfer::why;
use crate::tree::{join_remote, local_tree, remote_dir, remote_tree, Node};
use ftp_client::FtpClient;

/// What `mirror` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MirrorSpec {
    /// `-R`: local source, remote target.
    pub reverse: bool,
    pub source: String,
    pub target: Option<String>,
    pub delete: bool,
    pub newer: bool,
    pub exclude: Vec<String>,
    pub dry_run: bool,
    /// `--parallel N`; the session's setting otherwise.
    pub parallel: Option<usize>,
}

/// One change to the target that is not a file transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    MkdirLocal(PathBuf),
    MkdirRemote(String),
    RemoveLocal { path: PathBuf, dir: bool },
    RemoveRemote { path: String, dir: bool },
}

impl Change {
    pub fn label(&self) -> String {
        match self {
            Change::MkdirLocal(path) => format!("mkdir {}", path.display()),
            Change::MkdirRemote(path) => format!("mkdir {path}"),
            Change::RemoveLocal { path, .. } => format!("rm {}", path.display()),
            Change::RemoveRemote { path, .. } => format!("rm {path}"),
        }
    }
}

/// The plan of one mirror: directories to create (parents first), files to copy, things to remove (contents
/// before their directories), and how many files are already the same.
#[derive(Debug, Default)]
pub struct Plan {
    pub mkdirs: Vec<Change>,
    pub jobs: Vec<Job>,
    pub removals: Vec<Change>,
    pub up_to_date: usize,
    /// The target as named in messages.
    pub source: String,
    pub target: String,
}

impl Plan {
    /// The plan as `--dry-run` prints it, one change per line.
    pub fn describe(&self) -> String {
        let mut lines: Vec<String> = self.mkdirs.iter().map(Change::label).collect();
        lines.extend(self.jobs.iter().map(Job::label));
        lines.extend(self.removals.iter().map(Change::label));
        lines.push(format!(
            "mirror {} -> {}: {} to create, {} to copy, {} to remove, {} up to date (dry run: nothing changed)",
            self.source,
            self.target,
            self.mkdirs.len(),
            self.jobs.len(),
            self.removals.len(),
            self.up_to_date
        ));
        lines.join("\n")
    }
}

/// Whole seconds since the epoch: the precision both sides keep (MDTM, MFMT and MLSD carry seconds).
fn secs(time: Option<SystemTime>) -> Option<u64> {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs())
}

/// Whether `source` needs copying over `target`.
fn needs_copy(source: &Node, target: Option<&Node>, newer: bool) -> bool {
    let Some(target) = target else { return true };
    let (from, to) = (secs(source.mtime), secs(target.mtime));
    if newer {
        return match (from, to) {
            (Some(from), Some(to)) => from > to,
            _ => source.size != target.size,
        };
    }
    source.size != target.size || from != to
}

/// True when `path` or any directory above it matches an exclude pattern, by name or by relative path.
fn excluded(path: &str, exclude: &[String]) -> bool {
    let mut prefix = String::new();
    path.split('/').any(|part| {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        exclude.iter().any(|glob| matches(glob, part) || matches(glob, &prefix))
    })
}

/// Decides what to do. `source` and `target` are the walks of both sides (`None`: the directory does not exist).
fn plan(spec: &MirrorSpec, source: Vec<Node>, target: Option<Vec<Node>>, source_root: &str, target_root: &str) -> Plan {
    let mut plan = Plan { source: source_root.to_string(), target: target_root.to_string(), ..Plan::default() };
    let target_exists = target.is_some();
    let target: std::collections::HashMap<String, Node> =
        target.unwrap_or_default().into_iter().map(|n| (n.path.clone(), n)).collect();
    let remote_path = |rel: &str| join_remote(target_root, rel);
    let local_path = |rel: &str| Path::new(target_root).join(rel);
    let mkdir = |rel: &str| {
        if spec.reverse {
            Change::MkdirRemote(if rel.is_empty() { target_root.to_string() } else { remote_path(rel) })
        } else {
            Change::MkdirLocal(if rel.is_empty() { PathBuf::from(target_root) } else { local_path(rel) })
        }
    };
    if !target_exists {
        plan.mkdirs.push(mkdir(""));
    }
    let mut wanted = std::collections::HashSet::new();
    for node in source.iter().filter(|n| !excluded(&n.path, &spec.exclude)) {
        wanted.insert(node.path.clone());
        let there = target.get(&node.path);
        if node.dir {
            if !there.is_some_and(|t| t.dir) {
                plan.mkdirs.push(mkdir(&node.path));
            }
            continue;
        }
        if !needs_copy(node, there.filter(|t| !t.dir), spec.newer) {
            plan.up_to_date += 1;
            continue;
        }
        let source_path = join_remote(source_root, &node.path);
        plan.jobs.push(if spec.reverse {
            Job::Put { local: PathBuf::from(source_path), remote: remote_path(&node.path), mtime: node.mtime }
        } else {
            Job::Get { remote: source_path, local: local_path(&node.path), size: Some(node.size), mtime: node.mtime }
        });
    }
    if spec.delete {
        let mut gone: Vec<&Node> =
            target.values().filter(|n| !wanted.contains(&n.path) && !excluded(&n.path, &spec.exclude)).collect();
        // Contents before their directories.
        gone.sort_by(|a, b| b.path.cmp(&a.path));
        for node in gone {
            plan.removals.push(if spec.reverse {
                Change::RemoveRemote { path: remote_path(&node.path), dir: node.dir }
            } else {
                Change::RemoveLocal { path: local_path(&node.path), dir: node.dir }
            });
        }
    }
    plan
}

/// Walks both sides and plans the mirror.
pub fn make_plan(client: &mut FtpClient, spec: &MirrorSpec) -> Result<Plan, String> {
    let source_root = spec.source.trim_end_matches('/');
    let source_root = if source_root.is_empty() { "/" } else { source_root };
    let default_target = || {
        let name = if spec.reverse {
            Path::new(source_root).file_name().and_then(|n| n.to_str()).map(str::to_string)
        } else {
            remote_basename(source_root).map(str::to_string)
        };
        name.unwrap_or_else(|| ".".to_string())
    };
    let target_root = spec.target.clone().unwrap_or_else(default_target);
    let target_root = match target_root.trim_end_matches('/') {
        "" => "/".to_string(),
        t => t.to_string(),
    };
    let (source, target) = if spec.reverse {
        let source = local_tree(Path::new(source_root))?;
        (source, remote_tree(client, &target_root)?)
    } else {
        let source = remote_tree(client, source_root)?;
        (source, local_tree(Path::new(&target_root))?)
    };
    let Some(source) = source else { return Err(format!("{source_root}: no such directory")) };
    Ok(plan(spec, source, target, source_root, &target_root))
}

/// Carries out a plan's changes that are not transfers, with the session's connection; returns the error lines.
pub fn apply_changes(client: &mut FtpClient, changes: &[Change]) -> Vec<String> {
    let mut failures = Vec::new();
    for change in changes {
        let result = match change {
            Change::MkdirLocal(path) => fs::create_dir_all(path).map_err(|e| e.to_string()),
            Change::MkdirRemote(path) => client.mkdir(path).map(drop).map_err(|e| why(&e, "MKD")),
            Change::RemoveLocal { path, dir: true } => fs::remove_dir(path).map_err(|e| e.to_string()),
            Change::RemoveLocal { path, dir: false } => fs::remove_file(path).map_err(|e| e.to_string()),
            Change::RemoveRemote { path, dir: true } => client.rmdir(path).map_err(|e| why(&e, "RMD")),
            Change::RemoveRemote { path, dir: false } => client.delete(path).map_err(|e| why(&e, "DELE")),
        };
        if let Err(msg) = result {
            failures.push(format!("{}: {msg}", change.label()));
        }
    }
    failures
}

/// The closing line of a mirror.
pub fn summary(plan: &Plan, done: usize, bytes: u64, started: Instant) -> String {
    let elapsed = started.elapsed();
    format!(
        "mirror {} -> {}: {done} files ({bytes} bytes) copied in {:.2} s ({}), {} directories created, {} removed, \
         {} up to date",
        plan.source,
        plan.target,
        elapsed.as_secs_f64(),
        format_rate(bytes, elapsed),
        plan.mkdirs.len(),
        plan.removals.len(),
        plan.up_to_date
    )
}

/// `dir/pattern` split at the last `/` (`None` for no directory part).
fn split_dir(pattern: &str) -> (Option<&str>, &str) {
    match pattern.rsplit_once('/') {
        Some(("", name)) => (Some("/"), name),
        Some((dir, name)) => (Some(dir), name),
        None => (None, pattern),
    }
}

/// The jobs of `mget PATTERN...`: remote files matching each pattern (wildcards in the last component, matched
/// against MLSD), each to its name in the local directory `into`.
pub fn mget_jobs(client: &mut FtpClient, patterns: &[String], into: &Path) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    for pattern in patterns {
        let (dir, name) = split_dir(pattern);
        if !has_wildcards(name) {
            let local = into.join(remote_basename(pattern).ok_or_else(|| format!("{pattern}: not a file name"))?);
            jobs.push(Job::Get { remote: pattern.clone(), local, size: None, mtime: None });
            continue;
        }
        let listed = remote_dir(client, dir.unwrap_or("."))?;
        let before = jobs.len();
        for node in listed.into_iter().filter(|n| !n.dir && matches(name, &n.path)) {
            let remote = dir.map_or_else(|| node.path.clone(), |d| join_remote(d, &node.path));
            jobs.push(Job::Get { remote, local: into.join(&node.path), size: Some(node.size), mtime: node.mtime });
        }
        if jobs.len() == before {
            return Err(format!("no remote file matches {pattern}"));
        }
    }
    Ok(jobs)
}

/// The jobs of `mput PATTERN...`: local files matching each pattern (wildcards in the last component), each to its
/// name in the remote directory `into` (the current one when `None`).
pub fn mput_jobs(patterns: &[String], into: Option<&str>) -> Result<Vec<Job>, String> {
    let remote_for = |name: &str| into.map_or_else(|| name.to_string(), |d| join_remote(d, name));
    let mut jobs = Vec::new();
    for pattern in patterns {
        let (dir, name) = split_dir(pattern);
        if !has_wildcards(name) {
            let base = Path::new(pattern).file_name().and_then(|n| n.to_str());
            let base = base.ok_or_else(|| format!("{pattern}: not a file name"))?;
            jobs.push(Job::Put { local: PathBuf::from(pattern), remote: remote_for(base), mtime: None });
            continue;
        }
        let local_dir = Path::new(dir.unwrap_or("."));
        let read = fs::read_dir(local_dir).map_err(|e| format!("local directory {}: {e}", local_dir.display()))?;
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        for entry in read.flatten() {
            let Ok(file_name) = entry.file_name().into_string() else { continue };
            if matches(name, &file_name) && entry.metadata().is_ok_and(|m| m.is_file()) {
                let local = dir.map_or_else(|| PathBuf::from(&file_name), |d| Path::new(d).join(&file_name));
                found.push((file_name, local));
            }
        }
        if found.is_empty() {
            return Err(format!("no local file matches {pattern}"));
        }
        found.sort();
        jobs.extend(found.into_iter().map(|(name, local)| Job::Put { local, remote: remote_for(&name), mtime: None }));
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn node(path: &str, dir: bool, size: u64, secs: u64) -> Node {
        Node { path: path.into(), dir, size, mtime: Some(UNIX_EPOCH + Duration::from_secs(secs)) }
    }

    fn spec() -> MirrorSpec {
        MirrorSpec { source: "pub".into(), ..MirrorSpec::default() }
    }

    #[test]
    fn copies_what_differs_and_creates_directories() {
        let source = vec![
            node("a", true, 0, 1),
            node("a/same", false, 5, 100),
            node("a/older-there", false, 5, 200),
            node("a/resized", false, 6, 100),
            node("new", false, 1, 100),
        ];
        let target = vec![
            node("a", true, 0, 1),
            node("a/same", false, 5, 100),
            node("a/older-there", false, 5, 150),
            node("a/resized", false, 5, 100),
            node("extra", false, 1, 1),
        ];
        let p = plan(&spec(), source.clone(), Some(target.clone()), "pub", "dl");
        assert!(p.mkdirs.is_empty());
        let copied: Vec<String> = p.jobs.iter().map(Job::label).collect();
        assert_eq!(
            copied,
            ["get pub/a/older-there -> dl/a/older-there", "get pub/a/resized -> dl/a/resized", "get pub/new -> dl/new"]
        );
        assert_eq!((p.up_to_date, p.removals.len()), (1, 0));

        let delete = MirrorSpec { delete: true, ..spec() };
        let p = plan(&delete, source, Some(target), "pub", "dl");
        assert_eq!(p.removals, [Change::RemoveLocal { path: PathBuf::from("dl/extra"), dir: false }]);
    }

    #[test]
    fn newer_only_and_missing_target() {
        let source = vec![node("old", false, 9, 100), node("d", true, 0, 1), node("d/x", false, 1, 1)];
        let target = vec![node("old", false, 5, 200)];
        let newer = MirrorSpec { newer: true, reverse: true, ..spec() };
        let p = plan(&newer, source.clone(), Some(target), "src", "/up");
        assert_eq!(p.mkdirs, [Change::MkdirRemote("/up/d".into())]);
        assert_eq!(p.jobs.len(), 1);
        assert_eq!(p.up_to_date, 1);
        let p = plan(&newer, source, None, "src", "/up");
        assert_eq!(p.mkdirs, [Change::MkdirRemote("/up".into()), Change::MkdirRemote("/up/d".into())]);
    }

    #[test]
    fn excludes_apply_to_subtrees_and_deletions() {
        let source = vec![
            node(".git", true, 0, 1),
            node(".git/HEAD", false, 1, 1),
            node("a.o", false, 1, 1),
            node("a.c", false, 1, 1),
        ];
        let target = vec![node("b.o", false, 1, 1), node("gone.c", false, 1, 1)];
        let s = MirrorSpec { delete: true, exclude: vec![".git".into(), "*.o".into()], ..spec() };
        let p = plan(&s, source, Some(target), "pub", "dl");
        let copied: Vec<String> = p.jobs.iter().map(Job::label).collect();
        assert_eq!(copied, ["get pub/a.c -> dl/a.c"]);
        assert!(p.mkdirs.is_empty());
        assert_eq!(p.removals, [Change::RemoveLocal { path: PathBuf::from("dl/gone.c"), dir: false }]);
    }

    #[test]
    fn split_patterns() {
        assert_eq!(split_dir("*.txt"), (None, "*.txt"));
        assert_eq!(split_dir("pub/*.txt"), (Some("pub"), "*.txt"));
        assert_eq!(split_dir("/*.txt"), (Some("/"), "*.txt"));
    }

    #[test]
    fn local_globs() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["a.txt", "b.txt", "c.bin"] {
            fs::write(dir.path().join(name), b"x").expect("write");
        }
        fs::create_dir(dir.path().join("d.txt")).expect("mkdir");
        let pattern = format!("{}/*.txt", dir.path().display());
        let jobs = mput_jobs(&[pattern], Some("up")).expect("matches");
        let labels: Vec<String> = jobs.iter().map(Job::label).collect();
        let d = dir.path().display();
        assert_eq!(labels, [format!("upload {d}/a.txt -> up/a.txt"), format!("upload {d}/b.txt -> up/b.txt")]);
        assert!(mput_jobs(&[format!("{d}/*.none")], None).is_err());
    }
}
