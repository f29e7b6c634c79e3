//! Our client with FTPS against our own server: `ftpserver` with a certificate from `ftpserver gen-cert`, TLS
//! required (`--require-tls`) and implicit TLS on a second port, driven by the library and by `ftpclient --tls` and
//! `ftps://` URLs. Files go both ways and are compared by SHA-256.
//!
//! The server binary is found and started by the workspace's one launcher (`ftp_tests::launcher`). A server without `--tls-cert` in its `--help` is one without FTPS yet: each test then prints why it
//! is skipped and passes. Every wait is bounded.

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use ftp_client::{FtpClient, TlsConfig};
use ftp_tests::launcher::start_reading_lines;
use support::ourserver::ftpserver_binary;
use support::{ftpclient, pattern, result, sha256, wait_bounded, PROCESS_LIMIT, WAIT};
use tempfile::TempDir;

/// How long the server may take to print its ready lines.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running `ftpserver` with FTPS; killed when dropped.
struct OurServer {
    child: Child,
    port: u16,
    implicit_port: u16,
    root: TempDir,
    /// `cert.pem`, `key.pem` and the server's log.
    dir: TempDir,
}

impl OurServer {
    /// Starts the server with a fresh certificate, TLS required and implicit TLS on a free port; `None` (after
    /// printing why) when the server has no FTPS.
    fn start() -> Option<OurServer> {
        let binary = ftpserver_binary();
        let help = wait_bounded(
            Command::new(&binary).arg("--help").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("help"),
            PROCESS_LIMIT,
        );
        if !String::from_utf8_lossy(&help.stdout).contains("--tls-cert") {
            eprintln!("skipped: {} has no --tls-cert option, so no FTPS to test against yet", binary.display());
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        let made = wait_bounded(
            Command::new(&binary)
                .args(["gen-cert", "--out"])
                .arg(&certs)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("gen-cert"),
            PROCESS_LIMIT,
        );
        assert!(made.status.success(), "ftpserver gen-cert: {}", String::from_utf8_lossy(&made.stderr));
        let log = fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut command = Command::new(&binary);
        command
            .arg("0")
            .arg("--root")
            .arg(root.path())
            .arg("--tls-cert")
            .arg(certs.join("cert.pem"))
            .arg("--tls-key")
            .arg(certs.join("key.pem"))
            .args(["--require-tls", "--implicit-tls-port", "0", "--anonymous", "write"])
            .stderr(log);
        let (mut child, lines) = start_reading_lines(command, 2, START_LIMIT)
            .unwrap_or_else(|why| panic!("starting {}: {why}", binary.display()));
        // "ftpserver listening on 127.0.0.1:PORT, root DIR", then "ftpserver implicit TLS on 127.0.0.1:PORT".
        let port_after = |line: &str, prefix: &str| -> Option<u16> {
            let rest = line.trim_end().strip_prefix(prefix)?;
            let addr = rest.split(',').next()?;
            addr.rsplit(':').next()?.parse().ok()
        };
        let port = port_after(&lines[0], "ftpserver listening on ");
        let implicit_port = port_after(&lines[1], "ftpserver implicit TLS on ");
        let (Some(port), Some(implicit_port)) = (port, implicit_port) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected ready lines {lines:?}");
        };
        Some(OurServer { child, port, implicit_port, root, dir })
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("certs/cert.pem")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let log = fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            eprintln!("ftpserver log:\n{log}");
        }
    }
}

#[test]
fn library_against_our_server() {
    let Some(server) = OurServer::start() else { return };
    let config = TlsConfig::new(Some(&server.cert())).expect("TLS config");
    let mut client = FtpClient::connect("127.0.0.1", server.port, WAIT).expect("connect");
    client.auth_tls(&config).expect("AUTH TLS");
    client.login("anonymous", "anonymous@").expect("login");
    assert!(client.is_data_protected());
    for (i, size) in [0usize, 1, 16_385, 1024 * 1024 + 3].into_iter().enumerate() {
        let data = pattern(size, i as u64 + 60);
        let name = format!("o{size}.bin");
        client.stor(&name, &mut data.as_slice()).expect("stor");
        assert_eq!(sha256(&fs::read(server.path(&name)).expect("stored")), sha256(&data), "{name}");
        let mut back = Vec::new();
        client.retr(&name, &mut back).expect("retr");
        assert_eq!(sha256(&back), sha256(&data), "downloaded {name}");
    }
    client.set_active(true);
    assert_eq!(client.nlst(None).expect("active nlst").len(), 4);
    client.quit().expect("quit");

    let mut client = FtpClient::connect_implicit_tls("127.0.0.1", server.implicit_port, WAIT, &config).expect("ftps");
    client.login("anonymous", "anonymous@").expect("login");
    let mut back = Vec::new();
    client.retr("o16385.bin", &mut back).expect("retr over implicit TLS");
    assert_eq!(sha256(&back), sha256(&pattern(16_385, 62)));
    client.quit().expect("quit");
}

#[test]
fn cli_against_our_server() {
    let Some(server) = OurServer::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pattern(3 * 1024 * 1024 + 17, 12);
    fs::write(dir.path().join("up.bin"), &data).expect("local file");
    let (port, cert) = (server.port.to_string(), server.cert());
    let cert = cert.to_str().expect("UTF-8 path");

    let args = ["--tls", "--ca-file", cert, &port, "-c", "upload up.bin", "-c", "get up.bin down.bin", "-c", "ls"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("upload up.bin -> up.bin: "), "{stdout}");
    assert_eq!(sha256(&fs::read(server.path("up.bin")).expect("uploaded")), sha256(&data));
    assert_eq!(sha256(&fs::read(dir.path().join("down.bin")).expect("downloaded")), sha256(&data));

    let args = ["--tls", "--active", "--ca-file", cert, &port, "-c", "get up.bin active.bin"];
    let (code, _, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sha256(&fs::read(dir.path().join("active.bin")).expect("downloaded")), sha256(&data));

    // Implicit TLS: a URL naming a file downloads it.
    let url = format!("ftps://127.0.0.1:{}/up.bin", server.implicit_port);
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &["--ca-file", cert, &url, "-f"], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("get up.bin -> up.bin: "), "{stdout}");
    assert_eq!(sha256(&fs::read(dir.path().join("up.bin")).expect("downloaded")), sha256(&data));

    // --insecure works too, with its warning.
    let args = ["--tls", "--insecure", &port, "-c", "size up.bin"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, format!("up.bin: {} bytes\n", data.len()));
    assert!(stderr.starts_with("warning: --insecure: "), "{stderr}");

    // The self-signed certificate is not trusted without --ca-file.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &["--tls", &port, "-c", "ls"], None));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("invalid peer certificate") && stderr.contains("--ca-file FILE"), "{stderr}");

    // --require-tls: a plaintext login is refused, and the client stops there.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "ls"], None));
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: login as anonymous: USER anonymous: server replied 5"), "{stderr}");
}
