//! The whole protocol against the peer clients people use: lftp (mirror both ways, segmented pget, MFMT times),
//! curl (resume both ways, active mode, PASV only, created directories, quoted commands, IPv6), Python's ftplib
//! (MLSD, rename, REST, HASH) and rclone (copy and check both ways). Every transfer is compared by SHA-256; a
//! missing tool fails in CI and skips elsewhere.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{
    content, curl_ok, data_connect, expect_success, path_str, python_ok, read_to_end, run_bounded, sha256, sha256_file,
    tool_available, TestServer, PEER_TIMEOUT,
};

pub(crate) fn lftp(server: &TestServer, script: &str) -> String {
    let script = format!("set cmd:fail-exit true; set net:max-retries 1; set net:timeout 20; {script}; quit");
    let port = server.port().to_string();
    let out = run_bounded(
        Command::new("lftp").args(["-u", "anonymous,guest@", "-p", &port, "-e", &script, "127.0.0.1"]),
        PEER_TIMEOUT,
    );
    expect_success("lftp", &out)
}

/// A tree of `dirs` nested directories holding `files` files in all, of varied sizes (0 bytes included).
pub(crate) fn make_tree(root: &Path, dirs: usize, files: usize) {
    let mut folders = vec![root.to_path_buf()];
    for d in 0..dirs {
        let parent = folders[d / 2].clone();
        let dir = parent.join(format!("dir {d}"));
        fs::create_dir_all(&dir).expect("tree folder");
        folders.push(dir);
    }
    for i in 0..files {
        let size = if i % 37 == 0 { 0 } else { (i * 7919) % 70_000 + 1 };
        fs::write(folders[i % folders.len()].join(format!("file-{i}.bin")), content(i as u64, size))
            .expect("tree file");
    }
}

/// Relative path → SHA-256 of every file under `root`.
pub(crate) fn tree_hashes(root: &Path) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in fs::read_dir(dir).expect("walking a tree") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).expect("inside the tree").to_string_lossy().into_owned();
                out.push((rel, sha256_file(&path)));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn mtime_secs(p: &Path) -> u64 {
    let t = fs::metadata(p).and_then(|m| m.modified()).expect("mtime");
    t.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs()
}

// lftp mirrors a tree of 200 files up (mirror -R) and back down; the trees are identical, and the times lftp set
// with MFMT after each upload are the source's.
#[test]
fn lftp_mirror_both_ways_preserves_content_and_times() {
    if !tool_available("lftp", "lftp_mirror_both_ways_preserves_content_and_times") {
        return;
    }
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().expect("local");
    let src = local.path().join("src");
    make_tree(&src, 12, 200);
    let back = local.path().join("back");
    lftp(&server, &format!("mirror -R '{}' /up; mirror /up '{}'", path_str(&src), path_str(&back)));
    let expected = tree_hashes(&src);
    assert_eq!(expected.len(), 200);
    assert_eq!(tree_hashes(&server.root().join("up")), expected, "uploaded tree differs");
    assert_eq!(tree_hashes(&back), expected, "downloaded tree differs");
    let sample = src.join("dir 0").join("file-1.bin");
    let uploaded = server.root().join("up/dir 0/file-1.bin");
    assert_eq!(mtime_secs(&uploaded), mtime_secs(&sample), "MFMT did not carry the time over");
    assert!(server.log().contains("MFMT") || server.root().join("up").is_dir());
}

// lftp's pget splits one download into 4 segments (REST + ABOR per segment); the result is byte-exact.
#[test]
fn lftp_pget_segmented_download() {
    if !tool_available("lftp", "lftp_pget_segmented_download") {
        return;
    }
    let server = TestServer::start(&[]);
    let data = content(31, (8 << 20) + 13);
    server.put_file("big.bin", &data);
    let local = tempfile::tempdir().expect("local");
    let out = local.path().join("big.bin");
    lftp(&server, &format!("pget -n 4 /big.bin -o '{}'", path_str(&out)));
    assert_eq!(sha256_file(&out), sha256(&data));
}

// curl fetches a range (REST, then ABOR after the range: an interrupted transfer), then resumes with -C -.
#[test]
fn curl_resumes_an_interrupted_download() {
    if !tool_available("curl", "curl_resumes_an_interrupted_download") {
        return;
    }
    let server = TestServer::start(&[]);
    let data = content(32, (4 << 20) + 99);
    server.put_file("big.bin", &data);
    let local = tempfile::tempdir().expect("local");
    let part = local.path().join("big.bin");
    let url = format!("ftp://127.0.0.1:{}/big.bin", server.port());
    curl_ok(&["-r", "0-1048698", "-o", path_str(&part), &url]);
    assert_eq!(fs::metadata(&part).expect("partial").len(), 1_048_699);
    curl_ok(&["-C", "-", "-o", path_str(&part), &url]);
    assert_eq!(sha256_file(&part), sha256(&data));
}

// curl resumes an upload: SIZE tells it what the server has, APPE sends the rest.
#[test]
fn curl_resumes_an_upload() {
    if !tool_available("curl", "curl_resumes_an_upload") {
        return;
    }
    let server = TestServer::start(&[]);
    let data = content(33, (3 << 20) + 5);
    let local = tempfile::tempdir().expect("local");
    let full = local.path().join("full.bin");
    let half = local.path().join("half.bin");
    fs::write(&full, &data).expect("full");
    fs::write(&half, &data[..1_500_001]).expect("half");
    let url = format!("ftp://127.0.0.1:{}/up.bin", server.port());
    curl_ok(&["-T", path_str(&half), &url]);
    curl_ok(&["-C", "-", "-T", path_str(&full), &url]);
    assert_eq!(sha256_file(&server.root().join("up.bin")), sha256(&data));
    assert!(server.log().contains("APPE"), "curl did not append:\n{}", server.log());
}

// Active mode (PORT/EPRT): the server connects back to curl.
#[test]
fn curl_active_mode_both_ways() {
    if !tool_available("curl", "curl_active_mode_both_ways") {
        return;
    }
    let server = TestServer::start(&[]);
    let data = content(34, 2 << 20);
    server.put_file("down.bin", &data);
    let local = tempfile::tempdir().expect("local");
    let got = local.path().join("down.bin");
    let up = local.path().join("up.bin");
    fs::write(&up, content(35, 777_777)).expect("up");
    let base = format!("ftp://127.0.0.1:{}", server.port());
    curl_ok(&["-P", "127.0.0.1", "-o", path_str(&got), &format!("{base}/down.bin")]);
    curl_ok(&["-P", "127.0.0.1", "--disable-eprt", "-T", path_str(&up), &format!("{base}/up.bin")]);
    assert_eq!(sha256_file(&got), sha256(&data));
    assert_eq!(sha256_file(&server.root().join("up.bin")), sha256_file(&up));
    let listing = curl_ok(&["-P", "127.0.0.1", &format!("{base}/")]);
    assert!(listing.contains("down.bin") && listing.contains("up.bin"), "{listing}");
}

// --disable-epsv (PASV only), --ftp-create-dirs (MKD per level) and -Q quote commands before and after.
#[test]
fn curl_pasv_create_dirs_and_quote() {
    if !tool_available("curl", "curl_pasv_create_dirs_and_quote") {
        return;
    }
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().expect("local");
    let up = local.path().join("f.bin");
    fs::write(&up, content(36, 12_345)).expect("up");
    let base = format!("ftp://127.0.0.1:{}", server.port());
    curl_ok(&["--disable-epsv", "--ftp-create-dirs", "-T", path_str(&up), &format!("{base}/new/deep/dir/f.bin")]);
    assert_eq!(sha256_file(&server.root().join("new/deep/dir/f.bin")), sha256_file(&up));
    curl_ok(&[
        "-Q",
        "RNFR new/deep/dir/f.bin",
        "-Q",
        "RNTO new/g.bin",
        "-Q",
        "-DELE /new/g.bin",
        "-o",
        path_str(&local.path().join("list.txt")),
        &format!("{base}/new/"),
    ]);
    assert!(!server.root().join("new/g.bin").exists(), "post-transfer DELE did not run");
    assert!(!server.root().join("new/deep/dir/f.bin").exists(), "RNFR/RNTO did not run");
    let list = fs::read_to_string(local.path().join("list.txt")).expect("listing");
    assert!(list.contains("g.bin"), "the listing ran between the quote commands: {list}");
}

// IPv6: EPSV and EPRT with an IPv6 control connection.
#[test]
fn curl_over_ipv6() {
    if !tool_available("curl", "curl_over_ipv6") {
        return;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("curl_over_ipv6: skipped, this machine has no IPv6 loopback");
        return;
    }
    let server = TestServer::start(&["--bind", "::1"]);
    let data = content(37, 300_001);
    server.put_file("v6.bin", &data);
    let local = tempfile::tempdir().expect("local");
    let got = local.path().join("v6.bin");
    let url = format!("ftp://[::1]:{}/v6.bin", server.port());
    curl_ok(&["-g", "-o", path_str(&got), &url]);
    assert_eq!(sha256_file(&got), sha256(&data));
    fs::remove_file(&got).expect("rm");
    curl_ok(&["-g", "-P", "::1", "-o", path_str(&got), &url]);
    assert_eq!(sha256_file(&got), sha256(&data));
}

const FTPLIB_PROTOCOL: &str = r#"
import ftplib, hashlib, io, sys

ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=20)
ftp.login()
facts = dict(ftp.mlsd(facts=["type", "size"]))
print("mlsd", sorted((n, f["type"], f.get("size")) for n, f in facts.items()))
print("rename", ftp.rename("a.bin", "b.bin")[:3])
buf = io.BytesIO()
ftp.retrbinary("RETR b.bin", buf.write, rest=1000)
print("rest", hashlib.sha256(buf.getvalue()).hexdigest())
resp = ftp.sendcmd("HASH b.bin")
print("hash", resp.split()[1], resp.split()[3])
print("mdtm", ftp.voidcmd("MDTM b.bin")[:3])
try:
    ftp.sendcmd("RNTO c.bin")
except ftplib.error_perm as e:
    print("rnto alone", str(e)[:3])
print("quit", ftp.quit()[:3])
"#;

// ftplib: mlsd(), rename(), retrbinary(rest=), HASH, MDTM, and RNTO without RNFR.
#[test]
fn ftplib_mlsd_rename_rest_hash() {
    if !tool_available("python3", "ftplib_mlsd_rename_rest_hash") {
        return;
    }
    let server = TestServer::start(&[]);
    let data = content(38, 250_000);
    server.put_file("a.bin", &data);
    fs::create_dir(server.root().join("d")).expect("dir");
    let port = server.port().to_string();
    let out = python_ok(FTPLIB_PROTOCOL, &[&port]);
    let expected = format!(
        "mlsd [('a.bin', 'file', '250000'), ('d', 'dir', None)]\nrename 250\nrest {}\nhash SHA-256 {}\nmdtm 213\n\
         rnto alone 503\nquit 221\n",
        sha256(&data[1000..]),
        sha256(&data)
    );
    assert_eq!(out, expected);
}

// rclone's FTP backend copies a tree up, checks it, and copies it back down.
#[test]
fn rclone_copy_and_check_both_ways() {
    if !tool_available("rclone", "rclone_copy_and_check_both_ways") {
        return;
    }
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().expect("local");
    let src = local.path().join("src");
    make_tree(&src, 4, 40);
    let back = local.path().join("back");
    let obscured =
        expect_success("rclone", &run_bounded(Command::new("rclone").args(["obscure", "guest@"]), PEER_TIMEOUT));
    let remote = ":ftp:tree";
    let rclone = |args: &[&str]| {
        let mut cmd = Command::new("rclone");
        cmd.args(args)
            .args(["--config", "/dev/null", "--retries", "1", "--low-level-retries", "1"])
            .env("RCLONE_FTP_HOST", "127.0.0.1")
            .env("RCLONE_FTP_PORT", server.port().to_string())
            .env("RCLONE_FTP_USER", "anonymous")
            .env("RCLONE_FTP_PASS", obscured.trim());
        expect_success("rclone", &run_bounded(&mut cmd, PEER_TIMEOUT))
    };
    rclone(&["copy", path_str(&src), remote]);
    rclone(&["check", path_str(&src), remote]);
    rclone(&["copy", remote, path_str(&back)]);
    rclone(&["check", remote, path_str(&back)]);
    assert_eq!(tree_hashes(&back), tree_hashes(&src));
    assert_eq!(tree_hashes(&server.root().join("tree")), tree_hashes(&src));
}

// A directory of 100,000 entries lists completely, streamed: while the listing waits for its reader, another
// session is answered.
#[test]
fn huge_directory_listing_streams() {
    let server = TestServer::start(&[]);
    let dir: PathBuf = server.root().join("many");
    fs::create_dir(&dir).expect("dir");
    for i in 0..100_000 {
        fs::File::create(dir.join(format!("entry-{i:06}"))).expect("entry");
    }
    let mut ctl = server.login();
    let addr = ctl.epsv();
    let mut data = data_connect(addr);
    assert_eq!(ctl.cmd("LIST many"), 150);
    let mut other = server.client();
    other.noop().expect("another session is served while the listing is pending");
    let listing = String::from_utf8(read_to_end(&mut data)).expect("UTF-8 listing");
    assert_eq!(ctl.reply().0, 226);
    assert_eq!(listing.lines().count(), 100_000);
    assert!(listing.lines().all(|l| l.starts_with("-rw")), "unexpected line in LIST");
    let names = other.nlst(Some("many")).expect("NLST");
    assert_eq!(names.len(), 100_000);
}
