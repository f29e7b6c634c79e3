//! Byte-exact transfers between our client and our server: awkward sizes around the 1 KiB chunk, a file larger
//! than any socket buffer, names with spaces and non-ASCII characters, the `ftpclient` binary end to end, and the
//! line-end conversion of TYPE A in both directions. Every comparison is by SHA-256 of the bytes sent, the file on
//! the server's disk and the bytes received.

use std::fs;

use crate::util::{
    client_bin, content, data_connect, dir_names, read_to_end, run_bounded, sha256, sha256_file, write_and_close,
    HashWriter, TestServer,
};

/// Uploads `data` as `name` with `FtpClient`, checks the server's file, downloads it back and checks the copy.
fn round_trip(server: &TestServer, client: &mut ftp_client::FtpClient, name: &str, data: &[u8]) {
    let sent = client.stor(name, &mut &data[..]).unwrap_or_else(|e| panic!("STOR {name}: {e}"));
    assert_eq!(sent, data.len() as u64, "bytes sent for {name}");
    let on_disk = server.root().join(name);
    assert_eq!(fs::metadata(&on_disk).expect("uploaded file").len(), data.len() as u64, "size on disk of {name}");
    let expected = sha256(data);
    assert_eq!(sha256_file(&on_disk), expected, "the server's copy of {name} differs from what was sent");
    assert_eq!(client.size(name).unwrap_or_else(|e| panic!("SIZE {name}: {e}")), data.len() as u64);

    let mut received = HashWriter::default();
    let got = client.retr(name, &mut received).unwrap_or_else(|e| panic!("RETR {name}: {e}"));
    assert_eq!(got, data.len() as u64, "bytes received for {name}");
    assert_eq!(received.bytes, data.len() as u64);
    assert_eq!(received.hex(), sha256_file(&on_disk), "the download of {name} differs from the server's file");
}

/// No upload leaves its temporary file behind.
fn assert_no_part_files(server: &TestServer) {
    let parts: Vec<String> = dir_names(server.root()).into_iter().filter(|n| n.ends_with(".part")).collect();
    assert!(parts.is_empty(), "temporary upload files left behind: {parts:?}");
}

#[test]
fn awkward_sizes_round_trip_byte_exact() {
    let server = TestServer::start(&[]);
    let mut client = server.client();
    for (seed, len) in [0usize, 1, 1023, 1024, 1025, (1 << 20) + 7].into_iter().enumerate() {
        let data = content(seed as u64 + 1, len);
        round_trip(&server, &mut client, &format!("size-{len}.bin"), &data);
    }
    let names = client.nlst(None).expect("NLST");
    assert_eq!(names.len(), 6, "listing after six uploads: {names:?}");
    assert_no_part_files(&server);
    client.quit().expect("QUIT");
}

#[test]
fn large_file_round_trips_byte_exact() {
    let server = TestServer::start(&[]);
    let mut client = server.client();
    let data = content(32, (32 << 20) + 3);
    round_trip(&server, &mut client, "large.bin", &data);
    assert_no_part_files(&server);
    client.quit().expect("QUIT");
}

#[test]
fn names_with_spaces_and_utf8_round_trip() {
    let server = TestServer::start(&[]);
    let mut client = server.client();
    let name = "my file é ü 日本.bin";
    let data = content(7, 4099);
    round_trip(&server, &mut client, name, &data);
    assert_eq!(client.nlst(None).expect("NLST"), vec![name.to_string()]);
    let listing = client.list(None).expect("LIST");
    assert!(listing.lines().any(|l| l.ends_with(name)), "LIST does not show {name:?}:\n{listing}");

    client.mkdir("dir with space").expect("MKD");
    client.cwd("dir with space").expect("CWD");
    assert_eq!(client.pwd().expect("PWD"), "/dir with space");
    let nested = "ü ñ.txt";
    client.stor(nested, &mut &b"nested\n"[..]).expect("STOR nested");
    assert_eq!(fs::read(server.root().join("dir with space").join(nested)).expect("nested file"), b"nested\n");
    client.delete(nested).expect("DELE");
    client.cdup().expect("CDUP");
    client.rmdir("dir with space").expect("RMD");
    assert_eq!(dir_names(server.root()), vec![name.to_string()]);
    client.quit().expect("QUIT");
}

#[test]
fn ftpclient_binary_uploads_and_downloads() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().expect("local folder");
    let source = local.path().join("source.bin");
    let back = local.path().join("back.bin");
    let data = content(99, 200_003);
    fs::write(&source, &data).expect("local file");

    let port = server.port().to_string();
    let upload = format!("upload {} \"cli file.bin\"", source.display());
    let get = format!("get \"cli file.bin\" {}", back.display());
    let out = run_bounded(
        std::process::Command::new(client_bin()).args(["127.0.0.1", &port, "-c", &upload, "-c", &get]),
        std::time::Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ftpclient exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one line per command expected:\n{stdout}");
    let up_line = format!("upload {} -> cli file.bin: {} bytes in ", source.display(), data.len());
    assert!(lines[0].starts_with(&up_line), "upload line {:?} does not start with {up_line:?}", lines[0]);
    let get_line = format!("get cli file.bin -> {}: {} bytes in ", back.display(), data.len());
    assert!(lines[1].starts_with(&get_line), "get line {:?} does not start with {get_line:?}", lines[1]);

    assert_eq!(sha256_file(&server.root().join("cli file.bin")), sha256(&data), "server copy differs");
    assert_eq!(sha256_file(&back), sha256(&data), "downloaded copy differs");
    assert_no_part_files(&server);
    let leftovers: Vec<String> =
        dir_names(local.path()).into_iter().filter(|n| n != "source.bin" && n != "back.bin").collect();
    assert!(leftovers.is_empty(), "ftpclient left temporary files: {leftovers:?}");

    // An existing local file is kept unless -f is given; a failed command makes the exit status non-zero.
    fs::write(&back, b"local edits").expect("changing the local copy");
    let out = run_bounded(
        std::process::Command::new(client_bin()).args(["127.0.0.1", &port, "-c", &get]),
        std::time::Duration::from_secs(60),
    );
    assert!(!out.status.success(), "get over an existing file succeeded without -f");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read(&back).expect("local copy"), b"local edits", "the local file was overwritten");
    let out = run_bounded(
        std::process::Command::new(client_bin()).args(["127.0.0.1", &port, "-f", "-c", &get]),
        std::time::Duration::from_secs(60),
    );
    assert!(out.status.success(), "get -f failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256_file(&back), sha256(&data), "get -f did not replace the local file");
}

/// Text with LF line ends, long enough that lines straddle the 1 KiB chunks, with an empty line and no final LF.
fn lf_text() -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..700 {
        text.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 37)).as_bytes());
        if i % 100 == 0 {
            text.push(b'\n');
        }
    }
    text.extend_from_slice(b"last line without end");
    text
}

fn lf_to_crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for &b in text {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[test]
fn type_a_download_sends_crlf() {
    let server = TestServer::start(&[]);
    let text = lf_text();
    server.put_file("text.txt", &text);
    let mut ctl = server.login();

    ctl.expect("TYPE A", 200);
    let addr = ctl.pasv();
    let mut data = data_connect(addr);
    ctl.expect("RETR text.txt", 150);
    let wire = read_to_end(&mut data);
    assert_eq!(ctl.reply().0, 226);
    assert_eq!(sha256(&wire), sha256(&lf_to_crlf(&text)), "TYPE A download is not the CRLF form of the file");

    // TYPE I sends the very same file unchanged.
    ctl.expect("TYPE I", 200);
    let addr = ctl.pasv();
    let mut data = data_connect(addr);
    ctl.expect("RETR text.txt", 150);
    let wire = read_to_end(&mut data);
    assert_eq!(ctl.reply().0, 226);
    assert_eq!(sha256(&wire), sha256(&text), "TYPE I download is not byte-exact");
}

#[test]
fn type_a_upload_stores_lf() {
    let server = TestServer::start(&[]);
    let text = lf_text();
    let mut ctl = server.login();

    ctl.expect("TYPE A", 200);
    let addr = ctl.pasv();
    let data = data_connect(addr);
    ctl.expect("STOR up.txt", 150);
    write_and_close(data, &lf_to_crlf(&text));
    assert_eq!(ctl.reply().0, 226);
    assert_eq!(sha256_file(&server.root().join("up.txt")), sha256(&text), "TYPE A upload did not store LF line ends");

    // A lone CR is data, not a line end, and survives.
    let addr = ctl.pasv();
    let data = data_connect(addr);
    ctl.expect("STOR cr.txt", 150);
    write_and_close(data, b"a\rb\r\nc\r");
    assert_eq!(ctl.reply().0, 226);
    assert_eq!(fs::read(server.root().join("cr.txt")).expect("cr.txt"), b"a\rb\nc\r");
}

#[test]
fn type_a_line_ends_split_across_tiny_chunks() {
    // With 7-byte chunks, many CRLF pairs are split between two chunks in both directions.
    let server = TestServer::start(&["--chunk-size", "7", "--quantum", "3"]);
    let text = lf_text();
    server.put_file("text.txt", &text);
    let mut ctl = server.login();
    ctl.expect("TYPE A", 200);

    let addr = ctl.pasv();
    let mut data = data_connect(addr);
    ctl.expect("RETR text.txt", 150);
    let wire = read_to_end(&mut data);
    assert_eq!(ctl.reply().0, 226);
    assert_eq!(sha256(&wire), sha256(&lf_to_crlf(&text)), "TYPE A download with 7-byte chunks");

    let addr = ctl.pasv();
    let data = data_connect(addr);
    ctl.expect("STOR back.txt", 150);
    write_and_close(data, &wire);
    assert_eq!(ctl.reply().0, 226);
    assert_eq!(sha256_file(&server.root().join("back.txt")), sha256(&text), "TYPE A upload with 7-byte chunks");
}

// Binary downloads go out with sendfile by default, byte-exact, from a REST offset too, with large and with
// tiny shares; ASCII downloads and uploads take the buffered path.
#[test]
fn zero_copy_downloads_are_exact() {
    for flags in [&[][..], &["--chunk-size", "3", "--quantum", "5"][..]] {
        zero_copy_downloads_are_exact_with(flags);
    }
}

fn zero_copy_downloads_are_exact_with(flags: &[&str]) {
    let server = TestServer::start(flags);
    let data = content(77, (5 << 20) + 333);
    server.put_file("z.bin", &data);
    let mut client = server.client();
    let mut got = Vec::new();
    client.retr("z.bin", &mut got).expect("RETR");
    assert_eq!(sha256(&got), sha256(&data));
    let mut tail = Vec::new();
    client.retr_from("z.bin", 1_000_001, &mut tail).expect("REST + RETR");
    assert_eq!(sha256(&tail), sha256(&data[1_000_001..]));
    client.stor("up.bin", &mut &data[..]).expect("STOR");
    assert_eq!(crate::util::sha256_file(&server.root().join("up.bin")), sha256(&data));
    let mut ctl = server.login();
    assert_eq!(ctl.cmd("TYPE A"), 200);
    server.put_file("t.txt", b"a\nb\n");
    let addr = ctl.epsv();
    let mut conn = crate::util::data_connect(addr);
    assert_eq!(ctl.cmd("RETR t.txt"), 150);
    assert_eq!(crate::util::read_to_end(&mut conn), b"a\r\nb\r\n");
    assert_eq!(ctl.reply().0, 226);
}
