//! The S3 storage back-end (`--storage`) end to end: ftpserver nodes on the live three-node Garage cluster of
//! `garage.rs`, driven by curl, lftp, ftplib and raw dialogues. Every transfer is compared by SHA-256, on the FTP
//! side and, where it matters, on the store itself.

use std::fs;
use std::thread;
use std::time::Instant;

use crate::garage::{client_at, cluster, unique_prefix, Cluster};
use crate::interop::{lftp, make_tree, tree_hashes};
use crate::util::{content, curl_ok, data_connect, path_str, python_ok, read_to_end, sha256, sha256_file, TestServer};

/// `--storage` for node `node` (1-3) of the cluster, under `prefix`.
fn storage_url(c: &Cluster, node: usize, prefix: &str) -> String {
    format!(
        "s3://{}/{prefix}?endpoint={}&region={}",
        c.var("GARAGE_BUCKET"),
        c.endpoints()[node - 1],
        c.var("GARAGE_S3_REGION")
    )
}

/// An ftpserver keeping its files in the cluster (through Garage node `node`); anonymous users may write unless
/// `extra` says otherwise.
fn s3_server(c: &Cluster, node: usize, prefix: &str, extra: &[&str]) -> TestServer {
    let url = storage_url(c, node, prefix);
    let env =
        [("AWS_ACCESS_KEY_ID", c.var("AWS_ACCESS_KEY_ID")), ("AWS_SECRET_ACCESS_KEY", c.var("AWS_SECRET_ACCESS_KEY"))];
    let mut args = vec!["--storage", url.as_str()];
    if !extra.contains(&"--anonymous") {
        args.extend(["--anonymous", "write"]);
    }
    args.extend_from_slice(extra);
    TestServer::start_env(&env, &args)
}

fn url(server: &TestServer, path: &str) -> String {
    format!("ftp://127.0.0.1:{}/{path}", server.port())
}

#[test]
fn s3_a_file_uploaded_through_one_node_downloads_through_the_other() {
    let (cluster, _turn) = cluster();
    let prefix = unique_prefix("s3-nodes");
    let a = s3_server(&cluster, 1, &prefix, &[]);
    let b = s3_server(&cluster, 2, &prefix, &[]);
    let dir = tempfile::tempdir().expect("dir");
    // Three parts and a bit: a multipart upload.
    let data = content(41, 20 * 1024 * 1024 + 12_345);
    let local = dir.path().join("big.bin");
    fs::write(&local, &data).expect("write");
    curl_ok(&["-T", path_str(&local), &url(&a, "big.bin")]);
    // Byte-exact on the store itself (through the third node's peer: node 3 is the one another test stops).
    let store = client_at(&cluster, 2, &prefix);
    let mut on_store = Vec::new();
    std::io::Read::read_to_end(&mut store.get("big.bin", 0).expect("GET"), &mut on_store).expect("read");
    assert_eq!(sha256(&on_store), sha256(&data));
    // Through the other node: whole, and resumed from an offset (REST).
    let back = dir.path().join("back.bin");
    curl_ok(&["-o", path_str(&back), &url(&b, "big.bin")]);
    assert_eq!(sha256_file(&back), sha256(&data));
    let tail = dir.path().join("tail.bin");
    curl_ok(&["-r", "20000000-", "-o", path_str(&tail), &url(&b, "big.bin")]);
    assert_eq!(sha256_file(&tail), sha256(&data[20_000_000..]));
    // ftplib: a small file up through b, SIZE, HASH and a listing through a.
    let script = r#"
import ftplib, io, sys, hashlib
a = ftplib.FTP(); a.connect("127.0.0.1", int(sys.argv[1]), timeout=30); a.login()
b = ftplib.FTP(); b.connect("127.0.0.1", int(sys.argv[2]), timeout=30); b.login()
body = bytes(range(256)) * 40
b.storbinary("STOR small.bin", io.BytesIO(body))
assert a.size("small.bin") == len(body), a.size("small.bin")
got = io.BytesIO(); a.retrbinary("RETR small.bin", got.write)
assert got.getvalue() == body
h = a.sendcmd("HASH small.bin")
assert hashlib.sha256(body).hexdigest() in h, h
names = sorted(a.nlst())
assert names == ["big.bin", "small.bin"], names
print("ok")
"#;
    let out = python_ok(script, &[&a.port().to_string(), &b.port().to_string()]);
    assert_eq!(out.trim(), "ok");
}

#[test]
fn s3_lftp_mirrors_a_tree_both_ways() {
    let (cluster, _turn) = cluster();
    let server = s3_server(&cluster, 1, &unique_prefix("s3-mirror"), &[]);
    let local = tempfile::tempdir().expect("local");
    let src = local.path().join("src");
    make_tree(&src, 5, 60);
    let back = local.path().join("back");
    lftp(&server, &format!("mirror -R {} tree", path_str(&src)));
    lftp(&server, &format!("mirror tree {}", path_str(&back)));
    assert_eq!(tree_hashes(&back), tree_hashes(&src));
}

#[test]
fn s3_an_aborted_upload_leaves_no_object_and_rest_stor_is_504() {
    let (cluster, _turn) = cluster();
    let prefix = unique_prefix("s3-abort");
    let server = s3_server(&cluster, 1, &prefix, &[]);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = c.pasv();
    let mut data = data_connect(addr);
    c.send("STOR cut.bin");
    assert_eq!(c.reply().0, 150);
    // More than one part goes out, then the client gives up.
    std::io::Write::write_all(&mut data, &content(5, 9 * 1024 * 1024)).expect("send");
    crate::util::reset(data);
    let (code, _) = c.reply();
    assert!(code == 426 || code == 451, "{code}");
    assert_eq!(c.cmd("SIZE cut.bin"), 550);
    let store = client_at(&cluster, 2, &prefix);
    assert_eq!(store.head("cut.bin").expect("HEAD"), None);
    let page = store.list("", None, None).expect("list");
    assert!(page.files.is_empty(), "{:?}", page.files);
    // Objects are written whole: nothing resumes or appends in place.
    let addr = c.pasv();
    let _data = data_connect(addr);
    c.expect("REST 10", 350);
    assert_eq!(c.cmd("STOR cut.bin"), 504);
    assert_eq!(c.cmd("APPE cut.bin"), 504);
    assert_eq!(c.cmd("MFMT 20200101000000 cut.bin"), 504);
}

#[test]
fn s3_directories_rename_and_delete_map_onto_objects() {
    let (cluster, _turn) = cluster();
    let server = s3_server(&cluster, 1, &unique_prefix("s3-dirs"), &[]);
    let mut c = server.login();
    assert_eq!(c.cmd("MKD d"), 257);
    assert_eq!(c.cmd("MKD d"), 550);
    assert_eq!(c.cmd("MKD missing/d"), 550);
    // An empty directory exists: it is listed and entered.
    assert_eq!(c.cmd("CWD d"), 250);
    assert_eq!(c.cmd("CWD /"), 250);
    server_stor(&server, "d/f.txt", b"hello\n");
    assert_eq!(c.cmd("RMD d"), 550, "a directory with a file in it stays");
    assert_eq!(c.cmd("RNFR d"), 350);
    assert_eq!(c.cmd("RNTO e"), 550, "directories are not renamed");
    assert_eq!(c.cmd("RNFR d/f.txt"), 350);
    assert_eq!(c.cmd("RNTO g.txt"), 250);
    assert_eq!(c.cmd_full("SIZE g.txt"), (213, "6".to_string()));
    assert_eq!(c.cmd("SIZE d/f.txt"), 550);
    assert_eq!(c.cmd("RMD d"), 250);
    assert_eq!(c.cmd("CWD d"), 550);
    assert_eq!(c.cmd("DELE g.txt"), 250);
    assert_eq!(c.cmd("DELE g.txt"), 550);
    // Paths cannot leave the home: `..` stops at the root.
    assert_eq!(c.cmd("CWD ../../.."), 250);
    assert_eq!(c.cmd_full("PWD").1, "\"/\" is the current directory.");
}

/// Uploads `data` as `path` with curl.
fn server_stor(server: &TestServer, path: &str, data: &[u8]) {
    let dir = tempfile::tempdir().expect("dir");
    let f = dir.path().join("up");
    fs::write(&f, data).expect("write");
    curl_ok(&["-T", path_str(&f), &url(server, path)]);
}

#[test]
fn s3_listing_pages_through_ten_thousand_objects() {
    const OBJECTS: usize = 10_000;
    let (cluster, _turn) = cluster();
    let prefix = unique_prefix("s3-many");
    let store = client_at(&cluster, 1, &prefix);
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= OBJECTS {
                    return;
                }
                store.put(&format!("many/{i:05}"), b"x").expect("put");
            });
        }
    });
    eprintln!("{OBJECTS} objects created in {:?}", started.elapsed());
    let server = s3_server(&cluster, 2, &prefix, &[]);
    let names = curl_ok(&["-l", &url(&server, "many/")]);
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), OBJECTS);
    assert!(names.iter().enumerate().all(|(i, n)| *n == format!("{i:05}")), "names out of order or wrong");
    let long = curl_ok(&[&url(&server, "many/")]);
    assert_eq!(long.lines().count(), OBJECTS);
    assert!(long.lines().all(|l| l.starts_with("-rw-r--r--")), "a LIST line is not a file's");
}

#[test]
fn s3_an_upload_holds_bounded_memory() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    let (cluster, _turn) = cluster();
    let server = s3_server(&cluster, 1, &unique_prefix("s3-memory"), &[]);
    let before = peak_rss_kib(server.pid());
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = c.pasv();
    let mut data = data_connect(addr);
    c.send("STOR big.bin");
    assert_eq!(c.reply().0, 150);
    let mut source = crate::util::ContentReader::new(9, SIZE);
    std::io::copy(&mut source, &mut data).expect("upload");
    drop(data);
    assert_eq!(c.reply().0, 226);
    let grew = peak_rss_kib(server.pid()).saturating_sub(before);
    eprintln!("a {} MiB upload grew the server's peak RSS by {} KiB", SIZE >> 20, grew);
    // One part in flight (8 MiB), one pipe (1 MiB), the HTTP client's buffers: far below the file.
    assert!(grew < 64 * 1024, "peak RSS grew {grew} KiB during the upload");
    let (code, text) = c.cmd_full("SIZE big.bin");
    assert_eq!((code, text), (213, SIZE.to_string()));
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn s3_a_garage_node_stopping_mid_transfer_fails_nothing() {
    let (cluster, _turn) = cluster();
    let prefix = unique_prefix("s3-node-down");
    let server = s3_server(&cluster, 1, &prefix, &[]);
    let data = content(77, 48 * 1024 * 1024);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = c.pasv();
    let mut up = data_connect(addr);
    c.send("STOR up.bin");
    assert_eq!(c.reply().0, 150);
    // Half the file, then a node of the three stops, then the rest: the upload completes on the two left.
    let (first, rest) = data.split_at(data.len() / 2);
    std::io::Write::write_all(&mut up, first).expect("first half");
    cluster.stop_node(3);
    std::io::Write::write_all(&mut up, rest).expect("second half");
    drop(up);
    assert_eq!(c.reply().0, 226);
    // And a download while it is down.
    let addr = c.pasv();
    let mut down = data_connect(addr);
    c.send("RETR up.bin");
    assert_eq!(c.reply().0, 150);
    let back = read_to_end(&mut down);
    assert_eq!(c.reply().0, 226);
    assert_eq!(sha256(&back), sha256(&data));
    cluster.start_node(3);
    // The node that was down has it too, once back.
    let store = client_at(&cluster, 3, &prefix);
    let mut on_store = Vec::new();
    std::io::Read::read_to_end(&mut store.get("up.bin", 0).expect("GET"), &mut on_store).expect("read");
    assert_eq!(sha256(&on_store), sha256(&data));
}

#[test]
fn s3_two_nodes_behind_haproxy_share_one_bucket() {
    use crate::cluster::{
        config, free_port, haproxy, haproxy_available, pasv_blocks_in, wait_for_greeting, CLIENT, FTPLIB, PASV_SPAN,
    };
    if !haproxy_available() {
        return;
    }
    let (cluster, _turn) = cluster();
    let prefix = unique_prefix("s3-haproxy");
    let nodes = ["127.0.0.6", "127.0.0.7"];
    let [pasv_a, pasv_b] = pasv_blocks_in(50000, 56000, &["127.0.0.1", nodes[0], nodes[1]]);
    let node = |i: usize, pasv: u16| {
        let range = format!("{pasv}-{}", pasv + PASV_SPAN - 1);
        let extra = ["--bind", nodes[i], "--proxy-from", "127.0.0.1", "--pasv-address", "127.0.0.1", "--pasv-ports"];
        let mut extra: Vec<&str> = extra.to_vec();
        extra.push(&range);
        // Each node talks to a Garage node of its own.
        s3_server(&cluster, i + 1, &prefix, &extra)
    };
    let a = node(0, pasv_a);
    let b = node(1, pasv_b);
    let control = free_port();
    let _lb = haproxy(&config(control, &[(nodes[0], a.port(), pasv_a), (nodes[1], b.port(), pasv_b)]));
    wait_for_greeting(control);
    let work = tempfile::tempdir().expect("work");
    let lb = format!("ftp://127.0.0.1:{control}");
    // Up through one session, down through the next (round robin: the other node, the other Garage node).
    for round in 0..2u64 {
        let data = content(60 + round, (9 << 20) + 3);
        let up = work.path().join(format!("up{round}.bin"));
        fs::write(&up, &data).expect("write");
        let name = format!("{lb}/f{round}.bin");
        curl_ok(&["--interface", CLIENT, "-T", path_str(&up), &name]);
        let down = work.path().join(format!("down{round}.bin"));
        curl_ok(&["--interface", CLIENT, "-o", path_str(&down), &name]);
        assert_eq!(sha256_file(&down), sha256(&data), "round {round}");
    }
    let ftplib_data = content(70, 777_777);
    let up = work.path().join("ftplib.bin");
    fs::write(&up, &ftplib_data).expect("write");
    let got = python_ok(FTPLIB, &[&control.to_string(), CLIENT, path_str(&up), "ftplib.bin"]);
    assert_eq!(got.trim(), ftplib_data.len().to_string());
    let store = client_at(&cluster, 2, &prefix);
    let mut on_store = Vec::new();
    std::io::Read::read_to_end(&mut store.get("ftplib.bin", 0).expect("GET"), &mut on_store).expect("read");
    assert_eq!(sha256(&on_store), sha256(&ftplib_data));
    // Both nodes served sessions.
    for (name, n) in [("node A", &a), ("node B", &b)] {
        assert!(n.log().contains(&format!("{CLIENT} logged in")), "{name} log:\n{}", n.log());
    }
}

#[test]
fn s3_users_homes_are_prefixes_and_permissions_hold() {
    let (cluster, _turn) = cluster();
    let prefix = unique_prefix("s3-homes");
    let dir = tempfile::tempdir().expect("dir");
    let hash = crate::util::password_hash("wonderland");
    let users = dir.path().join("users.toml");
    let text = format!(
        "[[user]]\nname = \"alice\"\npassword = \"{hash}\"\nhome = \"alice\"\npermissions = [\"read\", \"write\", \
         \"delete\", \"mkdir\", \"rename\"]\n\n[[user]]\nname = \"bob\"\npassword = \"{hash}\"\nhome = \"bob\"\n"
    );
    fs::write(&users, text).expect("users file");
    let server = s3_server(&cluster, 1, &prefix, &["--users", path_str(&users), "--anonymous", "off"]);
    let login = |user: &str| {
        let mut c = server.ctl();
        assert_eq!(c.cmd(&format!("USER {user}")), 331);
        assert_eq!(c.cmd("PASS wonderland"), 230);
        c
    };
    let mut alice = login("alice");
    alice.expect("TYPE I", 200);
    let addr = alice.pasv();
    let data = data_connect(addr);
    alice.send("STOR mine.txt");
    assert_eq!(alice.reply().0, 150);
    crate::util::write_and_close(data, b"alice's\n");
    assert_eq!(alice.reply().0, 226);
    // Her file is below her prefix on the store, and `..` does not leave it.
    let store = client_at(&cluster, 2, &prefix);
    assert!(store.head("alice/mine.txt").expect("HEAD").is_some());
    assert_eq!(alice.cmd("CWD .."), 250);
    assert_eq!(alice.cmd("SIZE /mine.txt"), 213);
    assert_eq!(alice.cmd("SIZE ../bob/x"), 550);
    // Bob sees his own (empty) home and may not write: read is all he has.
    let mut bob = login("bob");
    assert_eq!(bob.cmd("SIZE mine.txt"), 550);
    assert_eq!(bob.cmd("MKD d"), 550);
    assert_eq!(bob.cmd("DELE /alice/mine.txt"), 550);
    assert!(store.head("alice/mine.txt").expect("HEAD").is_some(), "bob deleted alice's file");
}

#[test]
fn s3_quotas_count_the_objects_and_refuse_what_does_not_fit() {
    let (cluster, _turn) = cluster();
    let prefix = unique_prefix("s3-quota");
    let store = client_at(&cluster, 2, &prefix);
    store.put("carol/old.bin", &[7u8; 100_000]).expect("an existing object");
    let dir = tempfile::tempdir().expect("dir");
    let users = dir.path().join("users.toml");
    let text = format!(
        "[[user]]\nname = \"carol\"\npassword = \"{}\"\nhome = \"carol\"\npermissions = [\"read\", \"write\", \
         \"delete\"]\nquota_bytes = 1000000\nquota_files = 3\n",
        crate::util::password_hash("secret")
    );
    fs::write(&users, text).expect("users");
    let server = s3_server(&cluster, 1, &prefix, &["--users", path_str(&users), "--anonymous", "off"]);
    let mut c = server.ctl();
    assert_eq!(c.cmd("USER carol"), 331);
    assert_eq!(c.cmd("PASS secret"), 230);
    let mut stor = |name: &str, len: usize| crate::util::stor_content(&mut c, &format!("STOR {name}"), len);
    assert_eq!(stor("a.bin", 600_000), 226);
    // 100,000 (measured on the store at login) + 600,000 + 600,000 > 1,000,000: refused, nothing on the store.
    assert_eq!(stor("b.bin", 600_000), 552);
    assert_eq!(store.head("carol/b.bin").expect("HEAD"), None);
    // Two objects (old, a); one more file fits, then the file quota is full.
    assert_eq!(stor("c.bin", 10), 226);
    assert_eq!(stor("d.bin", 10), 552);
}
