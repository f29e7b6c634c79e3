//! The only door to the filesystem: every path a client names is confined to the session's root.
//!
//! Confinement is two layers. First, [`VPath`] resolves what the client typed against its current directory
//! purely lexically: `.` and `..` are folded and `..` stops at the root, so the result is always a path inside the
//! root with no `..` left. Second, every operation goes through a `cap_std::fs::Dir` opened on the root, which
//! resolves the path inside the kernel's view of that directory and refuses any symlink (or a symlink swapped in
//! between a check and a use) that would lead outside it. Nothing else in the server may touch `std::fs`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, File, Metadata, OpenOptions, OpenOptionsExt, ReadDir};

/// A client-visible absolute path such as `/pub/a.txt`: always starts with `/`, never contains `.`, `..` or empty
/// segments, never contains NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VPath(String);

impl VPath {
    /// The root, `/`.
    pub fn root() -> VPath {
        VPath("/".to_string())
    }

    /// Resolves `arg` (absolute, or relative to `self`) lexically. `..` at the root stays at the root, as a
    /// chrooted Unix process would.
    pub fn join(&self, arg: &str) -> VPath {
        let mut segments: Vec<&str> = if arg.starts_with('/') { Vec::new() } else { self.segments().collect() };
        for seg in arg.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                s => segments.push(s),
            }
        }
        VPath(format!("/{}", segments.join("/")))
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The last segment, `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.segments().last()
    }

    /// The containing directory (the root's parent is the root).
    pub fn parent(&self) -> VPath {
        self.join("..")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path relative to the root, as cap-std wants it (`.` for the root itself).
    fn rel(&self) -> PathBuf {
        if self.is_root() {
            PathBuf::from(".")
        } else {
            PathBuf::from(&self.0[1..])
        }
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Upload temporaries are named `.ftpupload-<32 random hex digits>.part`. Clients never see or touch them: they
/// are left out of listings, and every path naming one is answered as if it did not exist.
const TEMP_PREFIX: &str = ".ftpupload";
const TEMP_SUFFIX: &str = ".part";

/// Whether a name is one of our upload temporaries (the older `.ftpupload.<session>.<n>.part` form included, so
/// that those left by an earlier version are hidden and swept too).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// An upload's temporary file: only [`Root::create_temp`] makes one, only [`Root`]'s temp methods use one. A
/// back-end that writes objects whole names its uploads in flight the same way ([`TempPath::beside`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempPath(VPath);

impl TempPath {
    /// A fresh temporary's name beside `target`, under a name nobody can guess.
    pub fn beside(target: &VPath) -> TempPath {
        TempPath(target.parent().join(&format!("{TEMP_PREFIX}-{}{TEMP_SUFFIX}", random_hex())))
    }
}

impl fmt::Display for TempPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The error for what exists but is neither a regular file nor a directory (a FIFO, a socket, a device).
pub fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "not a regular file")
}

/// A name nobody can guess: 128 bits from the process's random hash keys, mixed with a counter.
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut out = String::with_capacity(32);
    for salt in [0u64, 1] {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A short random suffix for names that must not collide (STOU's fallback).
pub fn random_suffix() -> String {
    random_hex()[..16].to_string()
}

/// Opens with O_NONBLOCK: opening a FIFO (or a device) must never block the loop. For regular files and
/// directories the flag changes nothing; the caller checks the type on the opened handle.
fn nonblocking(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
}

/// The directory tree a session may see.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
    host_path: PathBuf,
}

impl Root {
    /// Opens `path` as a root.
    pub fn open(path: &Path) -> io::Result<Root> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(Root { dir, host_path: path.to_path_buf() })
    }

    /// Where the root is on the host, for log lines and the startup banner.
    pub fn host_path(&self) -> &Path {
        &self.host_path
    }

    /// Where a client path is on the host, for log lines (nothing is opened by this path).
    pub fn disk_path(&self, p: &VPath) -> PathBuf {
        self.host_path.join(p.rel())
    }

    /// The path relative to the root for a client-named path; one naming an upload temporary does not exist.
    fn rel(&self, p: &VPath) -> io::Result<PathBuf> {
        if p.segments().any(is_temp_name) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        }
        Ok(p.rel())
    }

    pub fn metadata(&self, p: &VPath) -> io::Result<Metadata> {
        self.dir.metadata(self.rel(p)?)
    }

    /// Whether nothing at all has the name `p`, not even a dangling symlink (lstat semantics): a name whose
    /// lookup fails for any other reason counts as taken.
    pub fn is_free(&self, p: &VPath) -> bool {
        match self.rel(p) {
            Ok(rel) => matches!(self.dir.symlink_metadata(rel), Err(e) if e.kind() == io::ErrorKind::NotFound),
            Err(_) => false,
        }
    }

    /// Opens a regular file for reading, never blocking: a directory is refused, and so is anything else that is
    /// not a regular file (a FIFO would block the loop until a writer came).
    pub fn open_read(&self, p: &VPath) -> io::Result<std::fs::File> {
        self.open_read_sized(p).map(|(file, _)| file)
    }

    /// [`Root::open_read`], with the file's length at the time it was opened.
    pub fn open_read_sized(&self, p: &VPath) -> io::Result<(std::fs::File, u64)> {
        let mut opts = OpenOptions::new();
        nonblocking(opts.read(true));
        regular_sized(self.dir.open_with(self.rel(p)?, &opts)?)
    }

    /// Creates a hidden temporary beside `target` for an upload, under a name nobody can guess or pre-create.
    pub fn create_temp(&self, target: &VPath) -> io::Result<(TempPath, std::fs::File)> {
        let temp = TempPath::beside(target);
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        let file = self.dir.open_with(temp.0.rel(), &opts)?;
        Ok((temp, file.into_std()))
    }

    /// Publishes a finished upload under its name, replacing what was there.
    pub fn publish(&self, temp: &TempPath, to: &VPath) -> io::Result<()> {
        let to_rel = self.rel(to)?;
        if to.is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "cannot replace the root"));
        }
        self.dir.rename(temp.0.rel(), &self.dir, to_rel)
    }

    /// Publishes a finished upload under a name that must still be free (STOU): fails with `AlreadyExists`
    /// if anything, even a dangling symlink, has it meanwhile.
    pub fn publish_new(&self, temp: &TempPath, to: &VPath) -> io::Result<()> {
        let to_rel = self.rel(to)?;
        self.dir.hard_link(temp.0.rel(), &self.dir, to_rel)?;
        self.discard(temp)
    }

    /// Removes an upload's temporary (an aborted or failed upload).
    pub fn discard(&self, temp: &TempPath) -> io::Result<()> {
        self.dir.remove_file(temp.0.rel())
    }

    /// Opens a file for writing in place: appending (APPE, created if missing) or from a REST offset (must exist).
    /// Never blocks, and refuses anything but a regular file.
    pub fn open_write(&self, p: &VPath, append: bool) -> io::Result<std::fs::File> {
        let mut opts = OpenOptions::new();
        if append {
            opts.append(true).create(true);
        } else {
            opts.write(true);
        }
        nonblocking(&mut opts);
        regular(self.dir.open_with(self.rel(p)?, &opts)?)
    }

    /// Sets a file's or directory's modification time (MFMT) and returns the time the filesystem kept, which may
    /// differ from the one asked for (filesystems clamp and round).
    pub fn set_modified(&self, p: &VPath, t: std::time::SystemTime) -> io::Result<std::time::SystemTime> {
        let mut opts = OpenOptions::new();
        nonblocking(opts.read(true));
        let file = self.dir.open_with(self.rel(p)?, &opts)?;
        let meta = file.metadata()?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(not_regular());
        }
        let file = file.into_std();
        file.set_modified(t)?;
        file.metadata()?.modified()
    }

    pub fn rename(&self, from: &VPath, to: &VPath) -> io::Result<()> {
        if from.is_root() || to.is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "cannot rename the root"));
        }
        self.dir.rename(self.rel(from)?, &self.dir, self.rel(to)?)
    }

    /// Renames only if `to` does not exist (renameat2 with RENAME_NOREPLACE): for accounts that may rename but
    /// not delete, so a rename can never destroy a file. Both parents are opened beneath the root, so the
    /// kernel resolves only the last, single-segment names itself, and those are never followed.
    pub fn rename_noreplace(&self, from: &VPath, to: &VPath) -> io::Result<()> {
        if from.is_root() || to.is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "cannot rename the root"));
        }
        self.rel(from)?;
        self.rel(to)?;
        let (Some(from_name), Some(to_name)) = (from.file_name(), to.file_name()) else {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "cannot rename the root"));
        };
        let from_dir = self.dir.open_dir(from.parent().rel())?;
        let to_dir = self.dir.open_dir(to.parent().rel())?;
        rustix::fs::renameat_with(&from_dir, from_name, &to_dir, to_name, rustix::fs::RenameFlags::NOREPLACE)
            .map_err(io::Error::from)
    }

    pub fn remove_file(&self, p: &VPath) -> io::Result<()> {
        self.dir.remove_file(self.rel(p)?)
    }

    pub fn create_dir(&self, p: &VPath) -> io::Result<()> {
        self.dir.create_dir(self.rel(p)?)
    }

    pub fn remove_dir(&self, p: &VPath) -> io::Result<()> {
        if p.is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "cannot remove the root"));
        }
        self.dir.remove_dir(self.rel(p)?)
    }

    /// Entries of a directory, streamed (never collected here).
    pub fn read_dir(&self, p: &VPath) -> io::Result<ReadDir> {
        self.dir.read_dir(self.rel(p)?)
    }

    /// Opens a directory, e.g. to check that CWD may enter it.
    pub fn open_dir(&self, p: &VPath) -> io::Result<Dir> {
        self.dir.open_dir(self.rel(p)?)
    }
}

/// Keeps an opened handle only if it is a regular file; a directory is `IsADirectory`, anything else
/// [`not_regular`].
fn regular(file: File) -> io::Result<std::fs::File> {
    regular_sized(file).map(|(file, _)| file)
}

/// [`regular`], with the file's length from the same stat call.
fn regular_sized(file: File) -> io::Result<(std::fs::File, u64)> {
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
    }
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok((file.into_std(), meta.len()))
}

/// Calls `f` with each regular file under `root` (its directory, name and entry), never following a symlink: a
/// directory swapped for one since readdir is skipped (O_NOFOLLOW). Off the loop only: the tree may be large.
fn walk_files(root: &Path, mut f: impl FnMut(&Dir, &str, &cap_std::fs::DirEntry)) -> io::Result<()> {
    let mut stack = vec![Dir::open_ambient_dir(root, cap_std::ambient_authority())?];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = dir.entries() else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if kind.is_dir() {
                let mut opts = OpenOptions::new();
                opts.read(true)
                    .custom_flags((rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW).bits() as i32);
                if let Ok(sub) = dir.open_with(name, &opts) {
                    stack.push(Dir::from_std_file(sub.into_std()));
                }
            } else if kind.is_file() {
                f(&dir, name, &entry);
            }
        }
    }
    Ok(())
}

/// Bytes and regular files under `root` (upload temporaries not counted), for quotas.
pub fn tree_usage(root: &Path) -> (u64, u64) {
    let (mut bytes, mut files) = (0, 0);
    let _ = walk_files(root, |_, name, entry| {
        if !is_temp_name(name) {
            bytes += entry.metadata().map_or(0, |m| m.len());
            files += 1;
        }
    });
    (bytes, files)
}

/// Removes upload temporaries that nobody is writing any more (left by a crash), anywhere under `root`. A
/// temporary untouched for `older_than` is stale: a running upload writes its temporary at least once per stall
/// timeout or is aborted. The age test also keeps this safe on a filesystem shared with other nodes, whose
/// uploads in progress are fresh.
pub fn sweep_stale_temps(root: &Path, older_than: std::time::Duration) -> io::Result<usize> {
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    walk_files(root, |dir, name, entry| {
        if !is_temp_name(name) {
            return;
        }
        let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
        let age = modified.and_then(|t| now.duration_since(t.into_std()).ok());
        if age.is_some_and(|a| a >= older_than) && dir.remove_file(name).is_ok() {
            removed += 1;
        }
    })?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> VPath {
        VPath::root().join(s)
    }

    // Relative paths resolve against the current directory; absolute ones against the root.
    #[test]
    fn join_relative_and_absolute() {
        let cwd = v("/a/b");
        assert_eq!(cwd.join("c").as_str(), "/a/b/c");
        assert_eq!(cwd.join("/c").as_str(), "/c");
        assert_eq!(cwd.join("./c//d/").as_str(), "/a/b/c/d");
    }

    // `..` in every position folds lexically and never climbs above the root.
    #[test]
    fn dotdot_stops_at_root() {
        assert_eq!(v("../../etc/passwd").as_str(), "/etc/passwd");
        assert_eq!(v("/a/../../..").as_str(), "/");
        assert_eq!(v("a/b/../../../c").as_str(), "/c");
        assert_eq!(v("a/..").as_str(), "/");
        assert!(v("..").is_root());
    }

    // Backslashes are ordinary name bytes on Unix, not separators: they cannot smuggle a `..`.
    #[test]
    fn backslash_is_not_a_separator() {
        assert_eq!(v("..\\..\\x").as_str(), "/..\\..\\x");
        assert_eq!(v("..\\..\\x").segments().count(), 1);
    }

    #[test]
    fn parent_and_file_name() {
        assert_eq!(v("/a/b").parent().as_str(), "/a");
        assert_eq!(v("/a/b").file_name(), Some("b"));
        assert_eq!(VPath::root().file_name(), None);
        assert!(VPath::root().parent().is_root());
    }

    // A symlink that points outside the root is refused by the capability layer even though the lexical path is
    // inside.
    #[test]
    fn symlink_outside_root_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root_dir.path().join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root_dir.path().join("secret")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        assert!(root.open_read(&v("escape/secret")).is_err());
        assert!(root.open_read(&v("secret")).is_err());
        assert!(root.read_dir(&v("escape")).is_err());
        assert!(root.create_temp(&v("escape/new")).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    // A symlink inside the root that stays inside the root works.
    #[test]
    fn symlink_inside_root_works() {
        let root_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(root_dir.path().join("d")).unwrap();
        std::fs::write(root_dir.path().join("d/f"), b"x").unwrap();
        std::os::unix::fs::symlink("d/f", root_dir.path().join("link")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        assert!(root.open_read(&v("link")).is_ok());
    }

    #[test]
    fn directories_are_not_opened_as_files() {
        let root_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(root_dir.path().join("d")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        assert_eq!(root.open_read(&v("d")).unwrap_err().kind(), io::ErrorKind::IsADirectory);
    }

    fn mkfifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
    }

    /// Runs `f` on a thread and fails the test if it does not return within two seconds: the code under test
    /// used to block forever, and a hung test tells nobody anything.
    fn within_2s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(2)).expect("the operation blocked")
    }

    // Finding 3: a FIFO (or any non-regular file) is refused without blocking, for reading (RETR, HASH), writing
    // in place (APPE, REST+STOR) and MFMT: the open must not wait for the FIFO's other end.
    #[test]
    fn fifo_is_refused_without_blocking() {
        let root_dir = tempfile::tempdir().unwrap();
        mkfifo(&root_dir.path().join("pipe"));
        let path = root_dir.path().to_path_buf();
        let kinds = within_2s(move || {
            let root = Root::open(&path).unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
            [
                root.open_read(&v("pipe")).map(drop),
                root.open_write(&v("pipe"), true).map(drop),
                root.open_write(&v("pipe"), false).map(drop),
                root.set_modified(&v("pipe"), t).map(drop),
            ]
            .map(|r| r.map_err(|e| e.kind()))
        });
        for k in kinds {
            // Writing to a FIFO nobody reads fails at once (ENXIO); every other open is refused by type.
            assert!(k.is_err(), "{kinds:?}");
        }
        assert_eq!(kinds[0], Err(io::ErrorKind::Unsupported));
        assert_eq!(kinds[3], Err(io::ErrorKind::Unsupported));
    }

    // Finding 2: a dangling symlink, and one pointing outside the root, are names that are taken (lstat
    // semantics), so STOU never picks them.
    #[test]
    fn dangling_and_escaping_symlinks_are_not_free() {
        let root_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("nowhere", root_dir.path().join("dangling")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root_dir.path().join("escaping")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        assert!(!root.is_free(&v("dangling")));
        assert!(!root.is_free(&v("escaping")));
        assert!(root.is_free(&v("fresh")));
    }

    // Finding 8: temporaries have unguessable names, and no client path can name one.
    #[test]
    fn temporaries_are_unguessable_and_unreachable() {
        let root_dir = tempfile::tempdir().unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        let (a, _) = root.create_temp(&v("f")).unwrap();
        let (b, _) = root.create_temp(&v("f")).unwrap();
        assert_ne!(a, b);
        let name = a.0.file_name().unwrap().to_string();
        assert!(is_temp_name(&name) && name.len() > 40, "{name}");
        assert_eq!(root.metadata(&a.0).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(root.open_read(&a.0).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(root.remove_file(&a.0).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(root.rename(&a.0, &v("stolen")).is_err());
        assert!(root_dir.path().join(&name).exists());
        root.publish(&a, &v("f")).unwrap();
        assert!(root_dir.path().join("f").exists());
    }

    // Finding 9: without delete permission a rename may not replace a file.
    #[test]
    fn rename_noreplace_keeps_the_target() {
        let root_dir = tempfile::tempdir().unwrap();
        std::fs::write(root_dir.path().join("a"), b"a").unwrap();
        std::fs::write(root_dir.path().join("b"), b"b").unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        assert_eq!(root.rename_noreplace(&v("a"), &v("b")).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(root_dir.path().join("b")).unwrap(), b"b");
        root.rename_noreplace(&v("a"), &v("c")).unwrap();
        assert_eq!(std::fs::read(root_dir.path().join("c")).unwrap(), b"a");
    }

    // Finding 8: the startup sweep removes stale temporaries anywhere in the tree and keeps fresh ones (another
    // node's upload in progress on a shared filesystem) and everything else.
    #[test]
    fn sweep_removes_only_stale_temporaries() {
        let root_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(root_dir.path().join("d")).unwrap();
        let old = root_dir.path().join("d/.ftpupload-0123456789abcdef.part");
        std::fs::write(&old, b"x").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600)).unwrap();
        let fresh = root_dir.path().join(".ftpupload-fedcba9876543210.part");
        std::fs::write(&fresh, b"x").unwrap();
        std::fs::write(root_dir.path().join("keep.part"), b"x").unwrap();
        let n = sweep_stale_temps(root_dir.path(), std::time::Duration::from_secs(600)).unwrap();
        assert_eq!(n, 1);
        assert!(!old.exists() && fresh.exists() && root_dir.path().join("keep.part").exists());
    }
}
