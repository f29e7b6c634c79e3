//! Real peer clients driving our server as subprocesses: Python's `ftplib` (a script written per test) and `curl`.
//! Each run is bounded in time, and every transfer is checked by SHA-256 on both sides. A missing tool fails the
//! test in CI (`CI=true`) and skips it elsewhere with a line on stderr.

use std::fs;

use crate::util::{content, curl_ok, dir_names, path_str, python_ok, sha256, sha256_file, tool_available, TestServer};

/// `s` with every byte outside the URL-safe set percent-encoded.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url(server: &TestServer, path: &str) -> String {
    format!("ftp://127.0.0.1:{}/{}", server.port(), url_encode(path))
}

const FTPLIB_SESSION: &str = r#"
import ftplib, json, sys

port, upload_path, download_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ftp = ftplib.FTP()
print("welcome", ftp.connect("127.0.0.1", port, timeout=20)[:3])
print("login", ftp.login()[:3])
with open(upload_path, "rb") as f:
    print("stor", ftp.storbinary("STOR uploaded.bin", f)[:3])
with open(download_path, "wb") as f:
    print("retr", ftp.retrbinary("RETR served.bin", f.write)[:3])
print("size", ftp.size("served.bin"))
print("mkd", ftp.mkd("made dir"))
print("dele", ftp.delete("doomed.txt")[:3])
print("nlst", json.dumps(sorted(ftp.nlst())))
lines = []
print("list", ftp.retrlines("LIST", lines.append)[:3], len(lines))
print("cwd", ftp.cwd("made dir")[:3])
print("pwd", ftp.pwd())
print("quit", ftp.quit()[:3])
"#;

#[test]
fn ftplib_transfers_and_commands() {
    if !tool_available("python3", "ftplib_transfers_and_commands") {
        return;
    }
    let server = TestServer::start(&[]);
    let served = content(21, (3 << 20) + 11);
    server.put_file("served.bin", &served);
    server.put_file("doomed.txt", b"to be deleted");
    let local = tempfile::tempdir().expect("local folder");
    let upload = content(22, (2 << 20) + 5);
    let upload_path = local.path().join("up.bin");
    let download_path = local.path().join("down.bin");
    fs::write(&upload_path, &upload).expect("upload source");

    let port = server.port().to_string();
    let out = python_ok(FTPLIB_SESSION, &[&port, path_str(&upload_path), path_str(&download_path)]);
    let expected = format!(
        "welcome 220\nlogin 230\nstor 226\nretr 226\nsize {}\nmkd /made dir\ndele 250\n\
         nlst [\"made dir\", \"served.bin\", \"uploaded.bin\"]\nlist 226 3\ncwd 250\npwd /made dir\nquit 221\n",
        served.len()
    );
    assert_eq!(out, expected);
    assert_eq!(sha256_file(&server.root().join("uploaded.bin")), sha256(&upload), "storbinary copy differs");
    assert_eq!(sha256_file(&download_path), sha256(&served), "retrbinary copy differs");
    assert!(server.root().join("made dir").is_dir());
    assert!(!server.root().join("doomed.txt").exists());
}

const FTPLIB_ABORT: &str = r#"
import ftplib, sys

ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=20)
ftp.login()
ftp.voidcmd("TYPE I")
conn = ftp.transfercmd("RETR big.bin")
got = 0
while got < 65536:
    chunk = conn.recv(65536 - got)
    if not chunk:
        break
    got += len(chunk)
print("got", got)
resp = ftp.abort()
conn.close()
# A server may answer ABOR with 426 for the transfer followed by 226 for the ABOR itself.
extra = ftp.getresp()[:3] if resp.startswith("426") else "-"
print("abort", resp[:3], extra)
print("noop", ftp.voidcmd("NOOP")[:3])
with open(sys.argv[2], "wb") as f:
    print("retr", ftp.retrbinary("RETR small.bin", f.write)[:3])
print("quit", ftp.quit()[:3])
"#;

#[test]
fn ftplib_abort_mid_download() {
    if !tool_available("python3", "ftplib_abort_mid_download") {
        return;
    }
    let server = TestServer::start(&[]);
    server.put_file("big.bin", &content(23, 16 << 20));
    let small = content(24, 5000);
    server.put_file("small.bin", &small);
    let local = tempfile::tempdir().expect("local folder");
    let small_path = local.path().join("small.bin");

    let port = server.port().to_string();
    let out = python_ok(FTPLIB_ABORT, &[&port, path_str(&small_path)]);
    assert_eq!(out, "got 65536\nabort 426 226\nnoop 200\nretr 226\nquit 221\n");
    assert_eq!(sha256_file(&small_path), sha256(&small));
}

#[test]
fn curl_downloads_and_uploads() {
    if !tool_available("curl", "curl_downloads_and_uploads") {
        return;
    }
    let server = TestServer::start(&[]);
    let served = content(31, (2 << 20) + 3);
    server.put_file("served.bin", &served);
    let utf8_name = "my file é ü 日本.bin";
    let named = content(32, 1025);
    server.put_file(utf8_name, &named);
    let local = tempfile::tempdir().expect("local folder");

    let out = local.path().join("served.bin");
    curl_ok(&["-o", path_str(&out), &url(&server, "served.bin")]);
    assert_eq!(sha256_file(&out), sha256(&served), "curl download differs (EPSV)");

    let out = local.path().join("served-pasv.bin");
    curl_ok(&["--disable-epsv", "-o", path_str(&out), &url(&server, "served.bin")]);
    assert_eq!(sha256_file(&out), sha256(&served), "curl download differs (PASV)");

    let out = local.path().join("named.bin");
    curl_ok(&["-o", path_str(&out), &url(&server, utf8_name)]);
    assert_eq!(sha256_file(&out), sha256(&named), "curl download of a UTF-8 name differs");

    let source = local.path().join("up.bin");
    let upload = content(33, (1 << 20) + 1);
    fs::write(&source, &upload).expect("upload source");
    curl_ok(&["-T", path_str(&source), &url(&server, "uploaded.bin")]);
    assert_eq!(sha256_file(&server.root().join("uploaded.bin")), sha256(&upload), "curl upload differs");

    let empty = local.path().join("empty.bin");
    fs::write(&empty, b"").expect("empty file");
    curl_ok(&["-T", path_str(&empty), &url(&server, "empty upload.bin")]);
    assert_eq!(fs::metadata(server.root().join("empty upload.bin")).expect("empty upload").len(), 0);
    assert!(dir_names(server.root()).iter().all(|n| !n.ends_with(".part")), "temporary files left");
}

#[test]
fn curl_ftp_methods_reach_nested_files() {
    if !tool_available("curl", "curl_ftp_methods_reach_nested_files") {
        return;
    }
    let server = TestServer::start(&[]);
    let deep = content(41, 70_001);
    server.put_file("a/b/c/deep.bin", &deep);
    let local = tempfile::tempdir().expect("local folder");
    let source = local.path().join("source.bin");
    let upload = content(42, 33_333);
    fs::write(&source, &upload).expect("upload source");

    for method in ["multicwd", "nocwd", "singlecwd"] {
        let out = local.path().join(format!("deep-{method}.bin"));
        curl_ok(&["--ftp-method", method, "-o", path_str(&out), &url(&server, "a/b/c/deep.bin")]);
        assert_eq!(sha256_file(&out), sha256(&deep), "download with --ftp-method {method} differs");

        let remote = format!("a/b/c/up-{method}.bin");
        curl_ok(&["--ftp-method", method, "-T", path_str(&source), &url(&server, &remote)]);
        assert_eq!(sha256_file(&server.root().join(&remote)), sha256(&upload), "upload with {method} differs");
    }
}

#[test]
fn curl_lists_names_and_directories() {
    if !tool_available("curl", "curl_lists_names_and_directories") {
        return;
    }
    let server = TestServer::start(&[]);
    server.put_file("dir/one.txt", b"1");
    server.put_file("dir/two words.txt", b"22");
    server.put_file("dir/ü.bin", &content(51, 3000));
    fs::create_dir(server.root().join("dir/sub")).expect("sub");

    let names = curl_ok(&["-l", &url(&server, "dir/")]);
    let mut names: Vec<&str> = names.lines().map(|l| l.trim_end_matches('\r')).collect();
    names.sort_unstable();
    assert_eq!(names, ["one.txt", "sub", "two words.txt", "ü.bin"]);

    let listing = curl_ok(&[&url(&server, "dir/")]);
    let lines: Vec<&str> = listing.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines.len(), 4, "LIST lines:\n{listing}");
    for (name, size) in [("one.txt", 1), ("two words.txt", 2), ("ü.bin", 3000)] {
        let line = lines
            .iter()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} missing from the listing:\n{listing}"));
        assert!(line.starts_with('-'), "{name} is not shown as a file: {line}");
        assert!(line.split_whitespace().any(|w| w == size.to_string()), "{name} without its size {size}: {line}");
    }
    let sub = lines.iter().find(|l| l.ends_with(" sub")).expect("sub in the listing");
    assert!(sub.starts_with('d'), "sub is not shown as a folder: {sub}");
}
