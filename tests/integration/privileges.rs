//! `--run-as`: a server started as root drops to another user once its port is bound, and the files its clients
//! upload belong to that user. `--umask` shapes their modes. Root serving a network address without `--run-as`
//! refuses to start. (These tests need to run as root, as CI does; elsewhere they say so and skip.)

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use crate::util::{content, server_bin, sha256, TestServer};

fn root_or_skip(test: &str) -> bool {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1);
    if uid != 0 {
        eprintln!("SKIP {test}: needs root");
    }
    uid == 0
}

fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let line = passwd.lines().find(|l| l.starts_with("nobody:")).expect("a nobody account");
    let f: Vec<&str> = line.split(':').collect();
    (f[2].parse().expect("uid"), f[3].parse().expect("gid"))
}

#[test]
fn run_as_nobody_writes_files_owned_by_nobody() {
    if !root_or_skip("run_as_nobody_writes_files_owned_by_nobody") {
        return;
    }
    let root = tempfile::tempdir().expect("root");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let server = TestServer::start_in(root.path(), &["--run-as", "nobody", "--umask", "027"]);
    let data = content(5, 100_000);
    let mut client = server.client();
    client.stor("mine.bin", &mut &data[..]).expect("STOR as nobody");
    client.mkdir("dir").expect("MKD");
    let file = root.path().join("mine.bin");
    let meta = std::fs::metadata(&file).expect("uploaded");
    let (uid, gid) = nobody();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid), "owner of an uploaded file");
    assert_eq!(meta.mode() & 0o777, 0o640, "mode under --umask 027");
    assert_eq!(std::fs::metadata(root.path().join("dir")).expect("dir").mode() & 0o777, 0o750);
    assert_eq!(sha256(&std::fs::read(&file).expect("read")), sha256(&data));
    // The process itself runs as nobody.
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("status");
    let uids = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid line");
    assert!(uids.split_whitespace().skip(1).all(|u| u == uid.to_string()), "{uids}");
}

#[test]
fn root_refuses_to_serve_a_network_without_run_as() {
    if !root_or_skip("root_refuses_to_serve_a_network_without_run_as") {
        return;
    }
    let root = tempfile::tempdir().expect("root");
    let out = Command::new(server_bin())
        .args(["0", "--bind", "0.0.0.0", "--root"])
        .arg(root.path())
        .stdin(Stdio::null())
        .output()
        .expect("ftpserver");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--run-as"), "{err}");
}
