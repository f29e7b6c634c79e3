//! Local files for `get` and `upload`: where a download lands, the rule against overwriting, the temporary file a
//! download is written to, and the one-line transfer summary.
//!
//! A download never appears half-written under its final name: it goes to `.NAME.part-<pid>-<n>` in the target's
//! directory and is moved onto `NAME` only once the server has confirmed the transfer. Without `force` an existing
//! file is never replaced, not even one that appears while the download runs (the move is then a hard link, which
//! fails rather than replace). A [`PartFile`] that is not persisted removes itself when dropped, unless what it
//! holds is kept as `NAME.part` ([`partial_path`]) for `get -c` to continue.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The last component of a remote path, if it names something (not empty, `.` or `..`, no NUL).
pub fn remote_basename(remote: &str) -> Option<&str> {
    let name = remote.trim_end_matches('/').rsplit('/').next()?;
    (!name.is_empty() && name != "." && name != ".." && !name.contains('\0')).then_some(name)
}

/// Where `get REMOTE [LOCAL]` saves: LOCAL, or LOCAL/NAME when LOCAL is a directory (or ends with `/`), or NAME in
/// the current directory, NAME being the remote path's last component.
pub fn download_target(remote: &str, local: Option<&str>) -> Result<PathBuf, String> {
    let name = || {
        remote_basename(remote).ok_or_else(|| format!("cannot name a local file after {remote:?}; give a local name"))
    };
    match local {
        None => Ok(PathBuf::from(name()?)),
        Some(local) if local.ends_with('/') || Path::new(local).is_dir() => Ok(Path::new(local).join(name()?)),
        Some(local) => Ok(PathBuf::from(local)),
    }
}

/// Refuses a target that is a directory, or that exists when overwriting was not asked for.
pub fn check_target(target: &Path, force: bool) -> Result<(), String> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("local file {}: {e}", target.display())),
        Ok(meta) if meta.is_dir() => Err(format!("local path {} is a directory", target.display())),
        Ok(_) if !force => Err(format!("local file {} exists (use get -f or --force to overwrite)", target.display())),
        Ok(_) => Ok(()),
    }
}

/// The temporary name for a download to `target`: `.NAME.part-<pid>-<n>` in the same directory.
pub fn part_path(target: &Path, pid: u32, n: u64) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(target.file_name().unwrap_or_else(|| "download".as_ref()));
    name.push(format!(".part-{pid}-{n}"));
    target.parent().unwrap_or_else(|| Path::new("")).join(name)
}

/// Where an interrupted download keeps what it received, for `get -c` to continue: `NAME.part` beside the target.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_else(|| "download".as_ref()).to_os_string();
    name.push(".part");
    target.with_file_name(name)
}

/// Distinguishes the temporary files of one process.
static PART_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A download in progress: a new file under a temporary name, removed on drop unless persisted.
#[derive(Debug)]
pub struct PartFile {
    path: PathBuf,
    file: File,
    moved: bool,
}

impl PartFile {
    /// Creates a fresh temporary file next to `target`.
    pub fn create(target: &Path) -> io::Result<PartFile> {
        for _ in 0..64 {
            let path = part_path(target, std::process::id(), PART_COUNTER.fetch_add(1, Ordering::Relaxed));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok(PartFile { path, file, moved: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Gives the finished file its final name. Without `overwrite` an existing `target` is kept and this fails.
    pub fn persist(mut self, target: &Path, overwrite: bool) -> io::Result<()> {
        let exists = || {
            let msg = format!("local file {} appeared during the download; it was kept", target.display());
            io::Error::new(io::ErrorKind::AlreadyExists, msg)
        };
        if !overwrite {
            // A hard link never replaces anything; the temporary name is then removed on drop.
            match fs::hard_link(&self.path, target) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists()),
                // Some file systems have no hard links: check, then rename.
                Err(_) if fs::symlink_metadata(target).is_ok() => return Err(exists()),
                Err(_) => {}
            }
        }
        fs::rename(&self.path, target)?;
        self.moved = true;
        Ok(())
    }
}

impl PartFile {
    /// Keeps what was written so far under `path` (replacing an older partial file there).
    pub fn keep_as(mut self, path: &Path) -> io::Result<()> {
        fs::rename(&self.path, path)?;
        self.moved = true;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.moved {
            // Nothing useful can be done if the temporary file is already gone.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The remote name an upload gets by default: the local file's name.
pub fn upload_name(local: &str) -> Result<String, String> {
    Path::new(local)
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| format!("cannot name a remote file after {local:?}; give a remote name"))
}

/// Opens a local file for upload; it must be a regular file.
pub fn open_upload(local: &str) -> Result<File, String> {
    let file = File::open(local).map_err(|e| format!("local file {local}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("local file {local}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("local file {local} is not a regular file"));
    }
    Ok(file)
}

/// `12.3 MiB/s` and the like.
pub fn format_rate(bytes: u64, elapsed: Duration) -> String {
    let rate = bytes as f64 / elapsed.as_secs_f64().max(1e-6);
    let units = [("GiB/s", 1024.0 * 1024.0 * 1024.0), ("MiB/s", 1024.0 * 1024.0), ("KiB/s", 1024.0)];
    match units.iter().find(|(_, size)| rate >= *size) {
        Some((unit, size)) => format!("{:.1} {unit}", rate / size),
        None => format!("{rate:.1} B/s"),
    }
}

/// `get big.bin -> big.bin: 104857600 bytes in 0.41 s (243.9 MiB/s)`.
pub fn transfer_summary(verb: &str, from: &str, to: &str, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    format!("{verb} {from} -> {to}: {bytes} bytes in {secs:.2} s ({})", format_rate(bytes, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn basename_of_remote_paths() {
        assert_eq!(remote_basename("a.txt"), Some("a.txt"));
        assert_eq!(remote_basename("/pub/dir/a.txt"), Some("a.txt"));
        assert_eq!(remote_basename("dir/sub/"), Some("sub"));
        assert_eq!(remote_basename("/"), None);
        assert_eq!(remote_basename(""), None);
        assert_eq!(remote_basename("x/.."), None);
        assert_eq!(remote_basename("."), None);
    }

    #[test]
    fn download_targets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8 path");
        assert_eq!(download_target("/pub/a.txt", None), Ok(PathBuf::from("a.txt")));
        assert_eq!(download_target("a.txt", Some("b.txt")), Ok(PathBuf::from("b.txt")));
        assert_eq!(download_target("/pub/a.txt", Some(d)), Ok(dir.path().join("a.txt")));
        assert_eq!(download_target("a.txt", Some("new/")), Ok(PathBuf::from("new/a.txt")));
        assert!(download_target("/", None).is_err());
        assert_eq!(download_target("/", Some("x")), Ok(PathBuf::from("x")));
    }

    #[test]
    fn existing_targets_need_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        assert_eq!(check_target(&file, false), Ok(()));
        fs::write(&file, b"x").expect("write");
        let err = check_target(&file, false).expect_err("exists");
        assert!(err.ends_with("exists (use get -f or --force to overwrite)"), "{err}");
        assert_eq!(check_target(&file, true), Ok(()));
        assert!(check_target(dir.path(), true).expect_err("directory").contains("is a directory"));
    }

    #[test]
    fn part_names_are_hidden_and_beside_the_target() {
        assert_eq!(part_path(Path::new("big.bin"), 42, 7), PathBuf::from(".big.bin.part-42-7"));
        assert_eq!(part_path(Path::new("/tmp/x/a b"), 1, 0), PathBuf::from("/tmp/x/.a b.part-1-0"));
    }

    #[test]
    fn partial_names_are_visible() {
        assert_eq!(partial_path(Path::new("big.bin")), PathBuf::from("big.bin.part"));
        assert_eq!(partial_path(Path::new("/tmp/x/a b")), PathBuf::from("/tmp/x/a b.part"));
    }

    #[test]
    fn part_file_is_removed_unless_persisted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("t");
        let part = PartFile::create(&target).expect("create");
        let temp = part.path().to_path_buf();
        assert!(temp.exists());
        drop(part);
        assert!(!temp.exists());
        assert!(!target.exists());
    }

    #[test]
    fn persist_without_overwrite_keeps_existing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("t");
        let mut part = PartFile::create(&target).expect("create");
        part.file().write_all(b"new").expect("write");
        fs::write(&target, b"old").expect("write");
        let err = part.persist(&target, false).expect_err("target appeared");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&target).expect("read"), b"old");
        // Only the target is left: the temporary file is gone.
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn persist_moves_into_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("t");
        let mut part = PartFile::create(&target).expect("create");
        part.file().write_all(b"one").expect("write");
        part.persist(&target, false).expect("persist");
        assert_eq!(fs::read(&target).expect("read"), b"one");
        let mut part = PartFile::create(&target).expect("create");
        part.file().write_all(b"two").expect("write");
        part.persist(&target, true).expect("persist with overwrite");
        assert_eq!(fs::read(&target).expect("read"), b"two");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn upload_names() {
        assert_eq!(upload_name("dir/a.txt"), Ok("a.txt".to_string()));
        assert!(upload_name("/").is_err());
    }

    #[test]
    fn open_upload_refuses_missing_files_and_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let err = open_upload(missing.to_str().expect("utf-8")).expect_err("missing");
        assert!(err.contains("No such file"), "{err}");
        let err = open_upload(dir.path().to_str().expect("utf-8")).expect_err("directory");
        assert!(err.ends_with("is not a regular file"), "{err}");
    }

    #[test]
    fn rates_and_summaries() {
        assert_eq!(format_rate(512, Duration::from_secs(1)), "512.0 B/s");
        assert_eq!(format_rate(3 * 1024, Duration::from_secs(2)), "1.5 KiB/s");
        assert_eq!(format_rate(104_857_600, Duration::from_millis(410)), "243.9 MiB/s");
        assert_eq!(format_rate(4 << 30, Duration::from_secs(2)), "2.0 GiB/s");
        assert_eq!(format_rate(0, Duration::ZERO), "0.0 B/s");
        assert_eq!(
            transfer_summary("get", "big.bin", "big.bin", 104_857_600, Duration::from_millis(410)),
            "get big.bin -> big.bin: 104857600 bytes in 0.41 s (243.9 MiB/s)"
        );
    }
}
