//! Rates and per-user limits: one user's downloads share its rate (here 8 at once, on whichever workers), held
//! within a few percent over 10 s, while another user's download is not slowed; `max_sessions` caps a user's
//! sessions across workers; `--download-rate` caps everyone together.

use std::io::Read;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{content, data_connect, password_hash, Ctl, TestServer};

const RATE: u64 = 4 << 20;
const WINDOW: Duration = Duration::from_secs(10);

fn login(server: &TestServer, user: &str, password: &str) -> Ctl {
    let mut c = server.ctl();
    assert_eq!(c.cmd(&format!("USER {user}")), 331);
    assert_eq!(c.cmd(&format!("PASS {password}")), 230, "{user}");
    c
}

/// Reads from a download for `window` (or to its end); returns the bytes read.
fn read_for(mut c: Ctl, window: Duration) -> u64 {
    let addr = c.pasv();
    c.send("RETR big.bin");
    let mut d = data_connect(addr);
    assert_eq!(c.reply().0, 150);
    let end = Instant::now() + window;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    while Instant::now() < end {
        match d.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => panic!("download: {e}"),
        }
    }
    total
}

#[test]
fn one_users_downloads_share_its_rate_and_others_are_unaffected() {
    let dir = tempfile::tempdir().expect("dir");
    let users = dir.path().join("users.toml");
    let text = format!(
        "[[user]]\nname = \"alice\"\npassword = \"{}\"\ndownload_rate = \"4M\"\nmax_sessions = 9\n\n[[user]]\nname = \
         \"bob\"\npassword = \"{}\"\n",
        password_hash("wonderland"),
        password_hash("builder")
    );
    std::fs::write(&users, text).expect("users");
    let server = TestServer::start(&["--users", users.to_str().expect("UTF-8"), "--workers", "2"]);
    server.put_file("big.bin", &content(1, 96 << 20));

    let sessions: Vec<Ctl> = (0..8).map(|_| login(&server, "alice", "wonderland")).collect();
    // max_sessions = 9: one more is allowed, the tenth is refused.
    let ninth = login(&server, "alice", "wonderland");
    let mut tenth = server.ctl();
    assert_eq!(tenth.cmd("USER alice"), 331);
    assert_eq!(tenth.cmd("PASS wonderland"), 421);
    drop(ninth);

    let started = Instant::now();
    let readers: Vec<_> = sessions.into_iter().map(|c| thread::spawn(move || read_for(c, WINDOW))).collect();
    // Meanwhile bob, unlimited, downloads the whole file.
    let bob = login(&server, "bob", "builder");
    let t = Instant::now();
    let bob_bytes = read_for(bob, Duration::from_secs(60));
    let bob_rate = bob_bytes as f64 / t.elapsed().as_secs_f64();
    let alice: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    let elapsed = started.elapsed().as_secs_f64();
    let rate = alice as f64 / elapsed;
    eprintln!(
        "alice: {alice} bytes in {elapsed:.2} s = {:.3} MiB/s (limit {} MiB/s); bob: {:.1} MiB/s",
        rate / f64::from(1 << 20),
        RATE >> 20,
        bob_rate / f64::from(1 << 20)
    );
    let ratio = rate / RATE as f64;
    assert!((0.95..=1.05).contains(&ratio), "alice's 8 downloads together ran at {ratio:.3} x her rate");
    assert_eq!(bob_bytes, 96 << 20);
    assert!(bob_rate > 5.0 * RATE as f64, "bob was slowed to {bob_rate:.0} B/s");
}

#[test]
fn download_rate_caps_everyone_together() {
    let server = TestServer::start(&["--download-rate", "2M"]);
    server.put_file("big.bin", &content(2, 32 << 20));
    let started = Instant::now();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let c = server.login();
            thread::spawn(move || read_for(c, Duration::from_secs(3)))
        })
        .collect();
    let total: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let ratio = rate / f64::from(2 << 20);
    assert!((0.85..=1.1).contains(&ratio), "3 downloads ran at {ratio:.3} x --download-rate");
}

// Quotas: an upload that would take the user over quota_bytes gets 552 and leaves nothing (no file, no
// temporary; an append is undone); deleting frees room; quota_files caps the number of files. Usage is counted
// at the first login, off the loop, and kept current.
#[test]
fn quotas_refuse_uploads_that_do_not_fit_and_leave_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir(root.path().join("carol")).expect("home");
    std::fs::write(root.path().join("carol/old.bin"), vec![7u8; 100_000]).expect("existing file");
    let users = dir.path().join("users.toml");
    let text = format!(
        "[[user]]\nname = \"carol\"\npassword = \"{}\"\nhome = \"carol\"\npermissions = [\"read\", \"write\", \
         \"delete\"]\nquota_bytes = 1000000\nquota_files = 3\n",
        password_hash("secret")
    );
    std::fs::write(&users, text).expect("users");
    let server = TestServer::start_in(root.path(), &["--users", users.to_str().expect("UTF-8")]);
    let mut c = login(&server, "carol", "secret");
    let store = crate::util::stor_content;
    // The scan of the home (100,000 bytes, 1 file) runs off the loop; an upload that fits passes.
    assert_eq!(store(&mut c, "STOR a.bin", 600_000), 226);
    // 100,000 + 600,000 + 600,000 > 1,000,000: refused, nothing left behind.
    assert_eq!(store(&mut c, "STOR b.bin", 600_000), 552);
    assert!(!root.path().join("carol/b.bin").exists());
    assert!(crate::limits::temp_files(root.path()).is_empty());
    // An append over the quota is undone: the file keeps its length.
    assert_eq!(store(&mut c, "APPE a.bin", 500_000), 552);
    assert_eq!(std::fs::metadata(root.path().join("carol/a.bin")).expect("a.bin").len(), 600_000);
    // Deleting frees room.
    assert_eq!(c.cmd("DELE old.bin"), 250);
    assert_eq!(store(&mut c, "STOR b.bin", 300_000), 226);
    // Two files now (a, b); quota_files = 3 allows one more, then 552 at once.
    assert_eq!(store(&mut c, "STOR c.bin", 10), 226);
    assert_eq!(store(&mut c, "STOR d.bin", 10), 552);
    // Replacing an existing file is not a new file.
    assert_eq!(store(&mut c, "STOR c.bin", 20), 226);
}
