//! Verifying a large download while it runs: `ftpclient get` of a file of at least `HASH_AHEAD_MIN` bytes asks our
//! server for its digest (CRC32, or SHA-256 with `--verify sha256`) on a second session (logged in the same way, in the same directory) during the transfer,
//! and still verifies when that second session is refused (then on the first one, afterwards); `get -c` does the
//! same while it continues a file, and `mirror` for the large files of a tree. The client's debug log shows which session sent what.

mod support;

use std::fs;

use ftpclient::hash_ahead::HASH_AHEAD_MIN;
use support::ourserver::Served;
use support::{ftpclient_env, pattern, result};

/// Just over the size at which a second session is used.
const SIZE: usize = HASH_AHEAD_MIN as usize + 1001;

fn debug_log() -> [(&'static str, &'static str); 1] {
    [("RUST_LOG", "ftp_client::client=debug")]
}

#[test]
fn large_download_is_hashed_on_a_second_session() {
    let served = Served::start(&[]);
    fs::create_dir(served.path("pub")).expect("mkdir");
    let data = pattern(SIZE, 41);
    fs::write(served.path("pub/big.bin"), &data).expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = served.port_arg();
    let args = [port.as_str(), "-c", "cd pub", "-c", "get big.bin"];
    let (code, stdout, stderr) = result(&ftpclient_env(dir.path(), &args, None, &debug_log()));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(", CRC32 verified"), "{stdout}");
    assert_eq!(stderr.matches("> OPTS HASH CRC32").count(), 1, "{stderr}");
    assert_eq!(fs::read(dir.path().join("big.bin")).expect("downloaded"), data);
    // Two logins; the second session goes to the first one's directory (by the absolute path PWD gave, where the
    // first sent `CWD pub`) and asks HASH, once.
    assert_eq!(stderr.matches("> USER anonymous").count(), 2, "{stderr}");
    assert_eq!(stderr.matches("> CWD /pub").count(), 1, "{stderr}");
    let cwd = stderr.find("> CWD /pub").expect("the second session's CWD");
    let hash = stderr.find("> HASH big.bin").expect("HASH");
    assert!(cwd < hash, "{stderr}");
    assert_eq!(stderr.matches("> HASH big.bin").count(), 1, "{stderr}");
}

// `get -c` of a large file: the server hashes while the local part is hashed and the rest arrives.
#[test]
fn continued_download_is_hashed_on_a_second_session() {
    let served = Served::start(&[]);
    let data = pattern(SIZE, 43);
    fs::write(served.path("big.bin"), &data).expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("big.bin"), &data[..SIZE / 3]).expect("local part");
    let port = served.port_arg();
    // SHA-256 asked for, though CRC32 is on offer: the server's default, so no OPTS HASH.
    let args = [port.as_str(), "--verify", "sha256", "-c", "get -c big.bin"];
    let (code, stdout, stderr) = result(&ftpclient_env(dir.path(), &args, None, &debug_log()));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!(", resumed at byte {}, SHA-256 verified", SIZE / 3)), "{stdout}");
    assert!(!stderr.contains("> OPTS HASH"), "{stderr}");
    assert_eq!(fs::read(dir.path().join("big.bin")).expect("downloaded"), data);
    assert_eq!(stderr.matches("> USER anonymous").count(), 2, "{stderr}");
    assert_eq!(stderr.matches("> HASH big.bin").count(), 1, "{stderr}");
}

// `mirror` of a large file and a small one: only the large one is hashed on a second session.
#[test]
fn mirror_hashes_a_large_file_on_a_second_session() {
    let served = Served::start(&[]);
    fs::create_dir(served.path("tree")).expect("mkdir");
    let (big, small) = (pattern(SIZE, 44), pattern(5000, 45));
    fs::write(served.path("tree/big.bin"), &big).expect("write");
    fs::write(served.path("tree/small.bin"), &small).expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = served.port_arg();
    let args = [port.as_str(), "-c", "mirror tree copy"];
    let (code, stdout, stderr) = result(&ftpclient_env(dir.path(), &args, None, &debug_log()));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(fs::read(dir.path().join("copy/big.bin")).expect("copied"), big);
    assert_eq!(fs::read(dir.path().join("copy/small.bin")).expect("copied"), small);
    assert_eq!(stderr.matches("> USER anonymous").count(), 2, "{stderr}");
    assert_eq!(stderr.matches("> HASH tree/big.bin").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("> HASH tree/small.bin").count(), 1, "{stderr}");
}

// A server that allows one session per address refuses the second (421): the first verifies afterwards.
#[test]
fn refused_second_session_falls_back_to_the_first() {
    let served = Served::start(&["--max-per-ip", "1"]);
    let data = pattern(SIZE, 42);
    fs::write(served.path("big.bin"), &data).expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = served.port_arg();
    let args = [port.as_str(), "-c", "get big.bin"];
    let (code, stdout, stderr) = result(&ftpclient_env(dir.path(), &args, None, &debug_log()));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(", CRC32 verified"), "{stdout}");
    assert_eq!(fs::read(dir.path().join("big.bin")).expect("downloaded"), data);
    assert_eq!(stderr.matches("> USER anonymous").count(), 1, "{stderr}");
    let hash = stderr.find("> HASH big.bin").expect("HASH on the first session");
    assert!(stderr.find("226 ").is_some_and(|done| done < hash), "{stderr}");
}
