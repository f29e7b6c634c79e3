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

use cap_std::fs::{Dir, File, Metadata, OpenOptions, ReadDir};

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

    pub fn metadata(&self, p: &VPath) -> io::Result<Metadata> {
        self.dir.metadata(p.rel())
    }

    /// Opens a regular file for reading; a directory is refused.
    pub fn open_read(&self, p: &VPath) -> io::Result<std::fs::File> {
        let file = self.dir.open(p.rel())?;
        if file.metadata()?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        Ok(file.into_std())
    }

    /// Creates a new file that must not exist yet (for upload temporaries).
    pub fn create_new(&self, p: &VPath) -> io::Result<std::fs::File> {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        Ok(self.dir.open_with(p.rel(), &opts)?.into_std())
    }

    /// Opens a file for writing in place: appending (APPE, created if missing) or from a REST offset (must exist).
    pub fn open_write(&self, p: &VPath, append: bool) -> io::Result<std::fs::File> {
        let mut opts = OpenOptions::new();
        if append {
            opts.append(true).create(true);
        } else {
            opts.write(true);
        }
        let file = self.dir.open_with(p.rel(), &opts)?;
        if file.metadata()?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        Ok(file.into_std())
    }

    /// Gives `from` a second name `to`, failing if `to` exists: an atomic "rename unless taken".
    pub fn link_new(&self, from: &VPath, to: &VPath) -> io::Result<()> {
        self.dir.hard_link(from.rel(), &self.dir, to.rel())
    }

    /// Sets a file's or directory's modification time (MFMT).
    pub fn set_modified(&self, p: &VPath, t: std::time::SystemTime) -> io::Result<()> {
        self.dir.open(p.rel())?.into_std().set_modified(t)
    }

    pub fn rename(&self, from: &VPath, to: &VPath) -> io::Result<()> {
        if from.is_root() || to.is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "cannot rename the root"));
        }
        self.dir.rename(from.rel(), &self.dir, to.rel())
    }

    pub fn remove_file(&self, p: &VPath) -> io::Result<()> {
        self.dir.remove_file(p.rel())
    }

    pub fn create_dir(&self, p: &VPath) -> io::Result<()> {
        self.dir.create_dir(p.rel())
    }

    pub fn remove_dir(&self, p: &VPath) -> io::Result<()> {
        if p.is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "cannot remove the root"));
        }
        self.dir.remove_dir(p.rel())
    }

    /// Entries of a directory, streamed (never collected here).
    pub fn read_dir(&self, p: &VPath) -> io::Result<ReadDir> {
        self.dir.read_dir(p.rel())
    }

    /// Opens a directory, e.g. to check that CWD may enter it.
    pub fn open_dir(&self, p: &VPath) -> io::Result<Dir> {
        self.dir.open_dir(p.rel())
    }

    /// A cap-std handle for a file inside the root (used by listings to stat entries).
    pub fn open_file(&self, p: &VPath) -> io::Result<File> {
        self.dir.open(p.rel())
    }
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
        assert!(root.create_new(&v("escape/new")).is_err());
        assert!(!outside.path().join("new").exists());
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
}
