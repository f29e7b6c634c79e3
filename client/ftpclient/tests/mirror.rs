//! Many files at once with `ftpclient`, against our own server and against pyftpdlib: `mirror -R` and `mirror` of a
//! tree of several hundred files in nested directories over four connections, the trees compared by SHA-256 and by
//! modification time (to the second); `--delete`, `--newer`, `--exclude` and `--dry-run`; `get -r` and `put -r`;
//! `mget` and `mput` with wildcards.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::ourserver::Served;
use support::{ftpclient, pattern, result, sha256_hex, PeerServer};

/// 6 directories × 5 subdirectories × 10 files = 300 files, sizes from 0 to a few KiB, each with its own time.
fn make_tree(root: &Path) {
    let mut n = 0u64;
    for d in 0..6 {
        for s in 0..5 {
            let dir = root.join(format!("d{d}/s{s}"));
            fs::create_dir_all(&dir).expect("mkdir");
            for f in 0..10 {
                n += 1;
                let path = dir.join(format!("f{f}.txt"));
                fs::write(&path, pattern((n * 37 % 5000) as usize, n)).expect("write");
                set_mtime(&path, 1_600_000_000 + n * 1000);
            }
        }
    }
    fs::write(root.join("top.bin"), pattern(70_000, 999)).expect("write");
    set_mtime(&root.join("top.bin"), 1_650_000_000);
}

fn set_mtime(path: &Path, secs: u64) {
    let file = fs::File::options().write(true).open(path).expect("open");
    file.set_modified(UNIX_EPOCH + Duration::from_secs(secs)).expect("set time");
}

fn secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// Every file below `root`: relative path → (SHA-256, modification time in seconds).
fn snapshot(root: &Path) -> BTreeMap<String, (String, u64)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("list") {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("stat");
            if meta.is_dir() {
                pending.push(entry.path());
                continue;
            }
            let rel = entry.path().strip_prefix(root).expect("below root").to_string_lossy().into_owned();
            let digest = sha256_hex(&fs::read(entry.path()).expect("read"));
            files.insert(rel, (digest, secs(meta.modified().expect("mtime"))));
        }
    }
    files
}

/// The whole mirror story against a server serving `server_root` on `port`.
fn mirror_both_ways(port: &str, server_root: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(&dir.path().join("src"));
    let source = snapshot(&dir.path().join("src"));
    assert_eq!(source.len(), 301);

    // Up: local to remote over four connections.
    let (code, stdout, stderr) =
        result(&ftpclient(dir.path(), &[port, "--parallel", "4", "-c", "mirror -R src up"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("mirror src -> up: 301 files ("), "{stdout}");
    assert_eq!(snapshot(&server_root.join("up")), source, "the server's copy");

    // Down: remote to local.
    let args = [port, "-c", "mirror --parallel 4 up back"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("mirror up -> back: 301 files ("), "{stdout}");
    assert_eq!(snapshot(&dir.path().join("back")), source, "the local copy");

    // Nothing changed: nothing is copied.
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &[port, "-c", "mirror -R src up"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(": 0 files (0 bytes) copied") && stdout.contains("301 up to date"), "{stdout}");

    // One file changed, one removed, one excluded: --dry-run tells, then the mirror does it.
    fs::write(dir.path().join("src/d1/s1/f1.txt"), b"changed").expect("write");
    fs::remove_file(dir.path().join("src/d2/s2/f2.txt")).expect("rm");
    fs::write(dir.path().join("src/skip.o"), b"object").expect("write");
    let args = [port, "-c", "mirror -R --delete --exclude *.o --dry-run src up"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("upload src/d1/s1/f1.txt -> up/d1/s1/f1.txt\nrm up/d2/s2/f2.txt\n"), "{stdout}");
    assert!(stdout.contains("0 to create, 1 to copy, 1 to remove, 299 up to date"), "{stdout}");
    assert!(server_root.join("up/d2/s2/f2.txt").exists(), "a dry run changes nothing");
    let args = [port, "--parallel", "4", "-c", "mirror -R --delete --exclude *.o src up"];
    let (code, _, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    let mut expected = snapshot(&dir.path().join("src"));
    expected.remove("skip.o");
    assert_eq!(snapshot(&server_root.join("up")), expected);

    // --newer leaves a file alone when the target's copy is newer.
    fs::write(server_root.join("up/top.bin"), b"newer on the server").expect("write");
    set_mtime(&server_root.join("up/top.bin"), 1_700_000_000);
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[port, "-c", "mirror -R --newer src up"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(fs::read(server_root.join("up/top.bin")).expect("read"), b"newer on the server");
}

#[test]
fn mirror_against_our_server() {
    let served = Served::start(&[]);
    mirror_both_ways(&served.port_arg(), served.root.path());
}

#[test]
fn mirror_against_pyftpdlib() {
    let Some(server) = PeerServer::local_with_hash() else { return };
    mirror_both_ways(&server.port_arg(), &server.path(""));
}

// get -r and put -r copy a tree; mget and mput take wildcards (remote ones matched against the listing).
#[test]
fn recursive_get_put_and_globs() {
    let served = Served::start(&[]);
    let port = served.port_arg();
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(&dir.path().join("tree"));
    let (code, _, stderr) =
        result(&ftpclient(dir.path(), &[&port, "-c", "put -r tree", "-c", "get -r tree copy"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(snapshot(&dir.path().join("copy")), snapshot(&dir.path().join("tree")));
    assert_eq!(snapshot(&served.path("tree")), snapshot(&dir.path().join("tree")));

    // Regression: `get *.txt` asked the server for a file named "*.txt".
    let down = dir.path().join("down");
    fs::create_dir(&down).expect("mkdir");
    let args = [&port, "--parallel", "3", "-c", "mget tree/d0/s0/f[1-3].txt tree/d1/s1/f[!1-3].txt"];
    let (code, stdout, stderr) = result(&ftpclient(&down, &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("mget: 10 files ("), "{stdout}");
    let mut names: Vec<String> =
        fs::read_dir(&down).expect("list").map(|e| e.expect("e").file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let want: Vec<String> = (0..10).map(|i| format!("f{i}.txt")).collect();
    assert_eq!(names, want);
    assert_eq!(
        fs::read(down.join("f4.txt")).expect("read"),
        fs::read(dir.path().join("tree/d1/s1/f4.txt")).expect("read")
    );

    let args = [&port, "-c", "mkdir flat", "-c", "cd flat", "-c", "mput down/f?.txt"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("mput: 10 files ("), "{stdout}");
    assert_eq!(snapshot(&served.path("flat")).len(), 10);

    // A pattern that matches nothing is a failure, and stops the batch.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "mget *.none", "-c", "mkdir after"], None));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no remote file matches *.none"), "{stderr}");
    assert!(!served.path("after").exists());
}

// On a terminal, parallel transfers show one line per active file and a line with the total.
#[test]
fn parallel_progress_lines() {
    let served = Served::start(&[]);
    for name in ["a.bin", "b.bin", "c.bin"] {
        fs::write(served.path(name), pattern(4 << 20, 5)).expect("write");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = served.port_arg();
    let args = ["--limit-rate", "2M", "--parallel", "3", &port, "-c", "mget *.bin"];
    let Some(term) = support::terminal::Terminal::start(dir.path(), &args) else { return };
    let step = support::terminal::STEP;
    let at = term.wait_for("total [", 0, step);
    term.wait_for("/3 files", at, step);
    for name in ["a.bin [", "b.bin [", "c.bin ["] {
        term.wait_for(name, at, step);
    }
    term.wait_for("mget: 3 files (", at, step);
    let screen = term.screen();
    assert_eq!(term.wait(), Some(0), "{screen}");
    for name in ["a.bin", "b.bin", "c.bin"] {
        assert_eq!(fs::read(dir.path().join(name)).expect("downloaded"), pattern(4 << 20, 5));
    }
}
