//! Path confinement: whatever a client names (`..` chains, absolute host paths, symlinks planted inside the root
//! that point outside it), it only ever reaches files under the server's root, and nothing outside is read, listed
//! or written. Symlinks that stay inside the root keep working.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::util::{data_connect, read_to_end, sha256_file, write_and_close, Ctl, TestServer};

fn pwd(c: &mut Ctl) -> String {
    let text = c.expect("PWD", 257);
    ftp_client::parse_quoted_path(&text).unwrap_or_else(|| panic!("no quoted path in {text:?}"))
}

/// RETR over a fresh passive connection: the reply code, and the bytes when it was 150.
fn retr(c: &mut Ctl, path: &str) -> (u16, Vec<u8>) {
    let addr = c.pasv();
    let mut data = data_connect(addr);
    let (code, text) = c.cmd_full(&format!("RETR {path}"));
    if code != 150 {
        return (code, Vec::new());
    }
    let bytes = read_to_end(&mut data);
    let (end, end_text) = c.reply();
    assert_eq!(end, 226, "RETR {path}: {text} / {end_text}");
    (code, bytes)
}

/// LIST or NLST over a fresh passive connection: the reply code, and the listing when it was 150.
fn listing(c: &mut Ctl, line: &str) -> (u16, String) {
    let addr = c.pasv();
    let mut data = data_connect(addr);
    let code = c.cmd(line);
    if code != 150 {
        return (code, String::new());
    }
    let text = String::from_utf8_lossy(&read_to_end(&mut data)).into_owned();
    assert_eq!(c.reply().0, 226, "{line}");
    (code, text)
}

/// STOR of `data` over a fresh passive connection: the reply that ends it (or refuses it).
fn stor(c: &mut Ctl, path: &str, data: &[u8]) -> u16 {
    let addr = c.pasv();
    let conn = data_connect(addr);
    let code = c.cmd(&format!("STOR {path}"));
    if code != 150 {
        return code;
    }
    write_and_close(conn, data);
    c.reply().0
}

#[test]
fn dot_dot_stops_at_the_root() {
    let server = TestServer::start(&[]);
    fs::create_dir(server.root().join("sub")).expect("sub");
    let mut c = server.login();
    c.expect("CWD ..", 250);
    assert_eq!(pwd(&mut c), "/");
    c.expect("CDUP", 200);
    assert_eq!(pwd(&mut c), "/");
    c.expect("XCUP", 200);
    assert_eq!(pwd(&mut c), "/");
    c.expect("CWD ../../../..", 250);
    assert_eq!(pwd(&mut c), "/");
    c.expect("CWD sub/../../../sub", 250);
    assert_eq!(pwd(&mut c), "/sub");
    c.expect("CWD /../sub/..", 250);
    assert_eq!(pwd(&mut c), "/");
    c.expect("XCWD sub", 250);
    assert_eq!(c.expect("XPWD", 257), "\"/sub\" is the current directory.");

    // A listing of "../.." from /sub is the root's.
    let (code, names) = listing(&mut c, "NLST ../..");
    assert_eq!(code, 150);
    assert_eq!(names, "sub\r\n");
}

#[test]
fn host_paths_are_not_reachable() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    assert_eq!(retr(&mut c, "../../etc/passwd").0, 550);
    assert_eq!(retr(&mut c, "/etc/passwd").0, 550);
    assert_eq!(retr(&mut c, "../../../../../../../../etc/hostname").0, 550);
    c.expect("SIZE /etc/passwd", 550);
    c.expect("SIZE ../../etc/passwd", 550);
    c.expect("CWD /etc", 550);
    c.expect("CWD ../../../etc", 550);
    assert_eq!(listing(&mut c, "LIST /etc").0, 550);
    assert_eq!(listing(&mut c, "NLST ../../etc").0, 550);
    c.expect("DELE ../../etc/passwd", 550);

    // The same names resolve inside the root: "/etc/passwd" there is the root's own file.
    server.put_file("etc/passwd", b"inside the root\n");
    assert_eq!(retr(&mut c, "../../etc/passwd"), (150, b"inside the root\n".to_vec()));
    assert_eq!(retr(&mut c, "/etc/passwd"), (150, b"inside the root\n".to_vec()));
    c.expect("CWD ../../etc", 250);
    assert_eq!(pwd(&mut c), "/etc");
}

#[test]
fn symlinks_leading_outside_are_refused() {
    let server = TestServer::start(&[]);
    let outside = tempfile::tempdir().expect("a folder outside the root");
    let secret = outside.path().join("secret.txt");
    fs::write(&secret, b"outside secret\n").expect("outside file");
    let before = sha256_file(&secret);
    symlink(outside.path(), server.root().join("out_dir")).expect("symlink to the outside folder");
    symlink(&secret, server.root().join("out_file")).expect("symlink to the outside file");
    // A relative link that climbs out of the root into the same outside folder.
    let outside_name = outside.path().file_name().expect("outside folder name");
    symlink(Path::new("..").join(outside_name), server.root().join("climb")).expect("climbing symlink");
    assert_eq!(server.root().parent(), outside.path().parent(), "both temporary folders share a parent");

    let mut c = server.login();
    c.expect("CWD out_dir", 550);
    c.expect("CWD climb", 550);
    c.expect("CWD /out_dir/", 550);
    assert_eq!(pwd(&mut c), "/");
    assert_eq!(retr(&mut c, "out_file").0, 550);
    assert_eq!(retr(&mut c, "out_dir/secret.txt").0, 550);
    assert_eq!(retr(&mut c, "climb/secret.txt").0, 550);
    c.expect("SIZE out_file", 550);
    c.expect("SIZE out_dir/secret.txt", 550);
    assert_eq!(listing(&mut c, "LIST out_dir").0, 550);
    assert_eq!(listing(&mut c, "NLST out_dir").0, 550);
    assert_eq!(listing(&mut c, "LIST out_file").0, 550);

    // Nothing may be created or changed outside through the links.
    assert_eq!(stor(&mut c, "out_dir/new.txt", b"planted"), 550);
    assert_eq!(stor(&mut c, "climb/new.txt", b"planted"), 550);
    c.expect("MKD out_dir/newdir", 550);
    c.expect("DELE out_dir/secret.txt", 550);
    c.expect("RMD out_dir/..", 550);

    // Uploading to the link's own name does not write through it: the upload lands beside it under a temporary
    // name and the rename replaces the link itself with a regular file inside the root.
    assert_eq!(stor(&mut c, "out_file", b"replaced"), 226);
    let replaced = server.root().join("out_file");
    assert!(fs::symlink_metadata(&replaced).expect("out_file").file_type().is_file(), "out_file is still a link");
    assert_eq!(fs::read(&replaced).expect("out_file"), b"replaced");
    assert_eq!(sha256_file(&secret), before, "the file outside the root was changed through a symlink");
    let mut names: Vec<String> = fs::read_dir(outside.path())
        .expect("outside")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["secret.txt"], "something was written outside the root");
    c.expect("NOOP", 200);
}

#[test]
fn symlinks_inside_the_root_work() {
    let server = TestServer::start(&[]);
    server.put_file("real/f.txt", b"real content");
    symlink("real", server.root().join("alias")).expect("relative symlink to a folder");
    symlink("real/f.txt", server.root().join("alias.txt")).expect("relative symlink to a file");

    let mut c = server.login();
    c.expect("CWD alias", 250);
    assert_eq!(pwd(&mut c), "/alias");
    assert_eq!(retr(&mut c, "f.txt"), (150, b"real content".to_vec()));
    c.expect("CWD /", 250);
    assert_eq!(retr(&mut c, "alias.txt"), (150, b"real content".to_vec()));
    assert_eq!(retr(&mut c, "alias/f.txt"), (150, b"real content".to_vec()));
    c.expect("SIZE alias.txt", 213);
    let (code, names) = listing(&mut c, "NLST alias");
    assert_eq!((code, names.as_str()), (150, "f.txt\r\n"));
    assert_eq!(stor(&mut c, "alias/new.txt", b"via the link"), 226);
    assert_eq!(fs::read(server.root().join("real/new.txt")).expect("new.txt"), b"via the link");
}
