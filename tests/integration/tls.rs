//! FTPS against the real server with a certificate from `ftpserver gen-cert`: curl (explicit `--ssl-reqd` and
//! implicit `ftps://`), lftp mirroring over TLS, Python's `ftplib.FTP_TLS` with `prot_p()`, the `--require-tls`
//! refusals, and 200 simultaneous TLS transfers driven by a small rustls client in this file. Every transfer is
//! checked by SHA-256; every wait is bounded; a missing peer tool fails in CI and skips elsewhere.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::thread;

use ftp_common::hostport::parse_epsv_reply;
use ftp_common::ReplyParser;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::util::{
    content, expect_success, path_str, run_bounded, sha256, sha256_file, tool_available, Certs, TestServer, IO_TIMEOUT,
    PEER_TIMEOUT,
};

/// curl with a time limit, trusting the test certificate.
fn curl(certs: &Certs, args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "--cacert"]).arg(&certs.cert).args(args);
    run_bounded(&mut cmd, PEER_TIMEOUT)
}

// ---- a small blocking FTPS client --------------------------------------------------------------------------------

/// A client configuration trusting only the test certificate, for 127.0.0.1 (an IP address the certificate names).
fn client_config(certs: &Certs) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&certs.cert).expect("reading the certificate")).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    sock.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    sock.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
    sock
}

fn wrap(config: &Arc<ClientConfig>, sock: TcpStream) -> Tls {
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    StreamOwned::new(ClientConnection::new(config.clone(), name).expect("client connection"), sock)
}

enum Channel {
    Plain(TcpStream),
    Tls(Box<Tls>),
}

/// A control connection: plaintext until [`FtpsCtl::auth`], or TLS from the start (implicit).
struct FtpsCtl {
    channel: Option<Channel>,
    parser: ReplyParser,
    config: Arc<ClientConfig>,
}

impl FtpsCtl {
    /// Connects in plaintext and reads the greeting.
    fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> FtpsCtl {
        let mut c = FtpsCtl {
            channel: Some(Channel::Plain(connect(addr))),
            parser: ReplyParser::default(),
            config: config.clone(),
        };
        assert_eq!(c.reply().0, 220);
        c
    }

    /// Connects to the implicit-TLS port: the handshake first, then the greeting.
    fn connect_implicit(addr: SocketAddr, config: &Arc<ClientConfig>) -> FtpsCtl {
        let tls = wrap(config, connect(addr));
        let mut c = FtpsCtl {
            channel: Some(Channel::Tls(Box::new(tls))),
            parser: ReplyParser::default(),
            config: config.clone(),
        };
        assert_eq!(c.reply().0, 220);
        c
    }

    fn channel(&mut self) -> &mut dyn ReadWrite {
        match self.channel.as_mut().expect("a channel") {
            Channel::Plain(s) => s,
            Channel::Tls(t) => t.as_mut(),
        }
    }

    fn reply(&mut self) -> (u16, String) {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = self.parser.pop() {
                let r = r.expect("a well-formed reply");
                return (r.code, r.lines.join("\n"));
            }
            let n = self.channel().read(&mut buf).expect("reading a reply");
            assert!(n > 0, "the server closed the control connection");
            self.parser.push(&buf[..n]);
        }
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        let channel = self.channel();
        channel.write_all(format!("{line}\r\n").as_bytes()).expect("sending a command");
        channel.flush().expect("flushing a command");
        self.reply()
    }

    #[track_caller]
    fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.cmd(line);
        assert_eq!(got, code, "{line:?} was answered {got} {text}");
        text
    }

    /// AUTH TLS (234), then the handshake on the same connection.
    fn auth(&mut self) {
        self.expect("AUTH TLS", 234);
        let Some(Channel::Plain(sock)) = self.channel.take() else { panic!("AUTH TLS twice") };
        self.channel = Some(Channel::Tls(Box::new(wrap(&self.config, sock))));
    }

    fn login(&mut self) {
        self.expect("USER anonymous", 331);
        self.expect("PASS guest@example.com", 230);
    }

    /// EPSV: the data address.
    fn epsv(&mut self, server: SocketAddr) -> SocketAddr {
        let text = self.expect("EPSV", 229);
        SocketAddr::new(server.ip(), parse_epsv_reply(&text).unwrap_or_else(|| panic!("no port in {text:?}")))
    }

    /// EPSV, `cmd` (150), then a TLS data connection.
    fn open_tls_data(&mut self, server: SocketAddr, cmd: &str) -> Tls {
        let addr = self.epsv(server);
        let sock = connect(addr);
        self.expect(cmd, 150);
        wrap(&self.config, sock)
    }

    /// Downloads `cmd` over a TLS data connection; the server must end it with close_notify.
    fn download(&mut self, server: SocketAddr, cmd: &str) -> Vec<u8> {
        let mut data = self.open_tls_data(server, cmd);
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap_or_else(|e| panic!("{cmd}: {e} (no close_notify?)"));
        self.reply_is(226);
        got
    }

    /// Uploads over a TLS data connection, ending with close_notify as curl, lftp and ftplib do.
    fn upload(&mut self, server: SocketAddr, cmd: &str, bytes: &[u8]) {
        let mut data = self.open_tls_data(server, cmd);
        data.write_all(bytes).expect("upload");
        data.conn.send_close_notify();
        data.flush().expect("close_notify");
        let mut rest = Vec::new();
        data.read_to_end(&mut rest).expect("the server's close_notify");
        self.reply_is(226);
    }

    #[track_caller]
    fn reply_is(&mut self, code: u16) {
        let (got, text) = self.reply();
        assert_eq!(got, code, "{text}");
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

// ---- peers -------------------------------------------------------------------------------------------------------

// curl --ssl-reqd: AUTH TLS, PBSZ 0, PROT P, then uploads, downloads and listings of awkward sizes, all over TLS.
#[test]
fn curl_explicit_tls_upload_download_listing() {
    if !tool_available("curl", "curl_explicit_tls_upload_download_listing") {
        return;
    }
    let certs = Certs::new();
    let server = TestServer::start_tls(&certs, &[]);
    let base = format!("ftp://127.0.0.1:{}", server.port());
    let local = tempfile::tempdir().expect("local");
    for (i, len) in [0usize, 1, 1023, 1025, (3 << 20) + 7].into_iter().enumerate() {
        let data = content(100 + i as u64, len);
        let up = local.path().join(format!("up{i}"));
        fs::write(&up, &data).expect("upload source");
        expect_success("curl", &curl(&certs, &["--ssl-reqd", "-T", path_str(&up), &format!("{base}/f{i}.bin")]));
        assert_eq!(sha256_file(&server.root().join(format!("f{i}.bin"))), sha256(&data), "upload of {len} bytes");
        let down = local.path().join(format!("down{i}"));
        expect_success("curl", &curl(&certs, &["--ssl-reqd", "-o", path_str(&down), &format!("{base}/f{i}.bin")]));
        assert_eq!(sha256_file(&down), sha256(&data), "download of {len} bytes");
    }
    let names = expect_success("curl", &curl(&certs, &["--ssl-reqd", "--list-only", &format!("{base}/")]));
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["f0.bin", "f1.bin", "f2.bin", "f3.bin", "f4.bin"]);
    let long = expect_success("curl", &curl(&certs, &["--ssl-reqd", &format!("{base}/")]));
    assert!(long.lines().any(|l| l.starts_with("-rw") && l.ends_with(" f4.bin")), "{long}");
}

const FTPLIB_TLS_ACTIVE: &str = r#"
import ftplib, hashlib, io, ssl, sys

port, cafile, upload_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=cafile))
ftp.connect("127.0.0.1", port, timeout=20)
ftp.login()
ftp.prot_p()
ftp.set_pasv(False)
got = io.BytesIO()
print("retr", ftp.retrbinary("RETR served.bin", got.write)[:3], hashlib.sha256(got.getvalue()).hexdigest())
with open(upload_path, "rb") as f:
    print("stor", ftp.storbinary("STOR up.bin", f)[:3])
print("quit", ftp.quit()[:3])
"#;

// Active mode (PORT) with PROT P: the server connects to the client and is still the TLS server on that connection.
// (ftplib, because curl 7.88 never starts TLS on an active data connection, whatever the server.)
#[test]
fn ftplib_active_mode_over_tls() {
    if !tool_available("python3", "ftplib_active_mode_over_tls") {
        return;
    }
    let certs = Certs::new();
    let server = TestServer::start_tls(&certs, &["--require-tls"]);
    let served = content(41, 300_007);
    server.put_file("served.bin", &served);
    let local = tempfile::tempdir().expect("local");
    let upload = content(42, 200_003);
    let upload_path = local.path().join("up.bin");
    fs::write(&upload_path, &upload).expect("upload source");
    let script = local.path().join("peer.py");
    fs::write(&script, FTPLIB_TLS_ACTIVE).expect("script");
    let port = server.port().to_string();
    let out = expect_success(
        "python3",
        &run_bounded(
            Command::new("python3").arg(&script).args([&port, path_str(&certs.cert), path_str(&upload_path)]),
            PEER_TIMEOUT,
        ),
    );
    assert_eq!(out, format!("retr 226 {}\nstor 226\nquit 221\n", sha256(&served)));
    assert_eq!(sha256_file(&server.root().join("up.bin")), sha256(&upload));
}

// curl's data connections resume the control connection's TLS session (the server offers tickets and a cache).
#[test]
fn curl_data_connections_resume_the_tls_session() {
    if !tool_available("curl", "curl_data_connections_resume_the_tls_session") {
        return;
    }
    let certs = Certs::new();
    let server = TestServer::start_tls(&certs, &["-v"]);
    server.put_file("a.txt", b"resumed\n");
    let got =
        expect_success("curl", &curl(&certs, &["--ssl-reqd", &format!("ftp://127.0.0.1:{}/a.txt", server.port())]));
    assert_eq!(got, "resumed\n");
    let log = server.log();
    assert!(log.lines().any(|l| l.contains("data connection TLS") && l.contains("resumed session")), "{log}");
}

// curl's ftps:// is implicit FTPS: TLS from the first byte on the second listener, PROT P implied.
#[test]
fn curl_implicit_ftps() {
    if !tool_available("curl", "curl_implicit_ftps") {
        return;
    }
    let certs = Certs::new();
    let (server, implicit) = TestServer::start_implicit_tls(&certs, &[]);
    let base = format!("ftps://127.0.0.1:{}", implicit.port());
    let served = content(7, (1 << 20) + 3);
    server.put_file("served.bin", &served);
    let local = tempfile::tempdir().expect("local");
    let down = local.path().join("down");
    expect_success("curl", &curl(&certs, &["-o", path_str(&down), &format!("{base}/served.bin")]));
    assert_eq!(sha256_file(&down), sha256(&served));
    let up = local.path().join("up");
    let upload = content(8, 70_001);
    fs::write(&up, &upload).expect("upload source");
    expect_success("curl", &curl(&certs, &["-T", path_str(&up), &format!("{base}/up.bin")]));
    assert_eq!(sha256_file(&server.root().join("up.bin")), sha256(&upload));
    let names = expect_success("curl", &curl(&certs, &["--list-only", &format!("{base}/")]));
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["served.bin", "up.bin"]);
}

/// A small tree under `root` of files with awkward sizes (0, chunk boundaries, odd), in nested folders.
fn make_tree(root: &Path) -> Vec<(PathBuf, String)> {
    let sizes = [0usize, 1, 1023, 1024, 1025, 4096, 65_537, 300_001];
    let mut files = Vec::new();
    for (i, len) in sizes.iter().cycle().take(24).enumerate() {
        let rel = PathBuf::from(format!("d{}/sub {}/file-{i}.bin", i % 3, i % 2));
        let data = content(500 + i as u64, *len);
        fs::create_dir_all(root.join(&rel).parent().expect("a folder")).expect("tree folder");
        fs::write(root.join(&rel), &data).expect("tree file");
        files.push((rel, sha256(&data)));
    }
    files
}

// lftp with ftp:ssl-force mirrors a tree up and back down over TLS (control and data), byte for byte.
#[test]
fn lftp_mirror_over_tls_both_ways() {
    if !tool_available("lftp", "lftp_mirror_over_tls_both_ways") {
        return;
    }
    let certs = Certs::new();
    let server = TestServer::start_tls(&certs, &["--require-tls"]);
    let local = tempfile::tempdir().expect("local");
    let src = local.path().join("src");
    let files = make_tree(&src);
    let back = local.path().join("back");
    let script = format!(
        "set cmd:fail-exit true; set net:max-retries 1; set net:timeout 20; set ftp:ssl-force true; \
         set ftp:ssl-protect-data true; set ssl:ca-file '{}'; mirror -R '{}' /up; mirror /up '{}'; quit",
        path_str(&certs.cert),
        path_str(&src),
        path_str(&back)
    );
    let port = server.port().to_string();
    let out = run_bounded(
        Command::new("lftp").args(["-u", "anonymous,guest@", "-p", &port, "-e", &script, "127.0.0.1"]),
        PEER_TIMEOUT,
    );
    expect_success("lftp", &out);
    for (rel, hash) in &files {
        assert_eq!(&sha256_file(&server.root().join("up").join(rel)), hash, "uploaded {}", rel.display());
        assert_eq!(&sha256_file(&back.join(rel)), hash, "downloaded {}", rel.display());
    }
}

const FTPLIB_TLS: &str = r#"
import ftplib, hashlib, io, json, ssl, sys

port, cafile, upload_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=cafile))
print("welcome", ftp.connect("127.0.0.1", port, timeout=20)[:3])
print("login", ftp.login()[:3])
print("prot", ftp.prot_p()[:3])
with open(upload_path, "rb") as f:
    print("stor", ftp.storbinary("STOR uploaded.bin", f)[:3])
got = io.BytesIO()
print("retr", ftp.retrbinary("RETR served.bin", got.write)[:3], hashlib.sha256(got.getvalue()).hexdigest())
print("nlst", json.dumps(sorted(ftp.nlst())))
print("quit", ftp.quit()[:3])
"#;

// Python's FTP_TLS: login secures the control connection first (AUTH TLS), prot_p() the data connections.
#[test]
fn ftplib_tls_prot_p() {
    if !tool_available("python3", "ftplib_tls_prot_p") {
        return;
    }
    let certs = Certs::new();
    let server = TestServer::start_tls(&certs, &["--require-tls"]);
    let served = content(31, (2 << 20) + 9);
    server.put_file("served.bin", &served);
    let local = tempfile::tempdir().expect("local");
    let upload = content(32, 777_777);
    let upload_path = local.path().join("up.bin");
    fs::write(&upload_path, &upload).expect("upload source");
    let script = local.path().join("peer.py");
    fs::write(&script, FTPLIB_TLS).expect("script");
    let port = server.port().to_string();
    let out = expect_success(
        "python3",
        &run_bounded(
            Command::new("python3").arg(&script).args([&port, path_str(&certs.cert), path_str(&upload_path)]),
            PEER_TIMEOUT,
        ),
    );
    let expected = format!(
        "welcome 220\nlogin 230\nprot 200\nstor 226\nretr 226 {}\nnlst [\"served.bin\", \"uploaded.bin\"]\nquit 221\n",
        sha256(&served)
    );
    assert_eq!(out, expected);
    assert_eq!(sha256_file(&server.root().join("uploaded.bin")), sha256(&upload));
}

// ---- --require-tls ---------------------------------------------------------------------------------------------

// With --require-tls a plaintext USER and PASS are refused (534) and log nobody in; after AUTH TLS, a transfer
// without PROT P is refused (521) and PROT C too (534); with PROT P it works. FEAT offers what this needs.
#[test]
fn require_tls_refuses_plaintext_login_and_clear_data() {
    let certs = Certs::new();
    let server = TestServer::start_tls(&certs, &["--require-tls"]);
    server.put_file("a.txt", b"protected\n");
    let config = client_config(&certs);
    let mut c = FtpsCtl::connect(server.addr(), &config);
    let feat = c.expect("FEAT", 211);
    for f in [" AUTH TLS", " PBSZ", " PROT"] {
        assert!(feat.lines().any(|l| l == f), "{f} missing from {feat}");
    }
    c.expect("USER anonymous", 534);
    c.expect("PASS guest@example.com", 534);
    c.expect("PWD", 530);
    c.expect("PBSZ 0", 503);
    c.auth();
    c.login();
    c.epsv(server.addr());
    c.expect("LIST", 521);
    c.expect("PBSZ 0", 200);
    c.expect("PROT C", 534);
    c.expect("PROT S", 536);
    c.expect("PROT P", 200);
    assert_eq!(c.download(server.addr(), "RETR a.txt"), b"protected\n");
    c.expect("QUIT", 221);
}

// Real clients never send the password in the clear to a --require-tls server: curl without TLS stops at the 534
// to USER, as does Python's plain ftplib.
#[test]
fn plaintext_clients_never_send_the_password() {
    let certs = Certs::new();
    let server = TestServer::start_tls(&certs, &["--require-tls"]);
    if tool_available("curl", "plaintext_clients_never_send_the_password") {
        let out = curl(&certs, &["-v", "--user", "alice:s3cret", &format!("ftp://127.0.0.1:{}/", server.port())]);
        let trace = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "curl logged in without TLS:\n{trace}");
        assert!(trace.contains("< 534"), "{trace}");
        assert!(!trace.contains("s3cret") && !trace.contains("> PASS"), "the password was sent:\n{trace}");
    }
    if tool_available("python3", "plaintext_clients_never_send_the_password") {
        let script = "import ftplib, sys\n\
                      ftp = ftplib.FTP()\n\
                      ftp.connect('127.0.0.1', int(sys.argv[1]), timeout=20)\n\
                      try:\n    ftp.login('alice', 's3cret')\n    print('logged in')\n\
                      except ftplib.error_perm as e:\n    print('refused', str(e)[:3])\n";
        let out = expect_success(
            "python3",
            &run_bounded(Command::new("python3").args(["-c", script, &server.port().to_string()]), PEER_TIMEOUT),
        );
        assert_eq!(out, "refused 534\n");
    }
}

// ---- many at once ------------------------------------------------------------------------------------------------

// 200 simultaneous TLS sessions, each with a TLS data connection (half downloads, half uploads, sizes spread
// around chunk boundaries), all byte-exact, while the one loop interleaves their handshakes and 1 KiB chunks.
#[test]
fn two_hundred_simultaneous_tls_transfers() {
    const SESSIONS: usize = 200;
    let certs = Certs::new();
    let server = TestServer::start_tls(&certs, &["--require-tls"]);
    let size = |i: usize| 100_000 + i * 1021;
    let mut expected = Vec::new();
    for i in (0..SESSIONS).step_by(2) {
        let data = content(1000 + i as u64, size(i));
        server.put_file(&format!("down-{i}.bin"), &data);
        expected.push(sha256(&data));
    }
    let config = client_config(&certs);
    let addr = server.addr();
    let threads: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let config = config.clone();
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut c = FtpsCtl::connect(addr, &config);
                    c.auth();
                    c.login();
                    c.expect("PBSZ 0", 200);
                    c.expect("PROT P", 200);
                    c.expect("TYPE I", 200);
                    let digest = if i % 2 == 0 {
                        sha256(&c.download(addr, &format!("RETR down-{i}.bin")))
                    } else {
                        c.upload(addr, &format!("STOR up-{i}.bin"), &content(2000 + i as u64, size(i)));
                        String::new()
                    };
                    c.expect("QUIT", 221);
                    digest
                })
                .expect("spawning a client thread")
        })
        .collect();
    let digests: Vec<String> = threads.into_iter().map(|t| t.join().expect("a client thread panicked")).collect();
    for i in 0..SESSIONS {
        if i % 2 == 0 {
            assert_eq!(digests[i], expected[i / 2], "download {i}");
        } else {
            let up = sha256_file(&server.root().join(format!("up-{i}.bin")));
            assert_eq!(up, sha256(&content(2000 + i as u64, size(i))), "upload {i}");
        }
    }
}

// The implicit port serves our own client too: TLS from the first byte, PROT P without asking.
#[test]
fn implicit_tls_with_a_rustls_client() {
    let certs = Certs::new();
    let (server, implicit) = TestServer::start_implicit_tls(&certs, &[]);
    server.put_file("a.txt", b"implicit\n");
    let config = client_config(&certs);
    let mut c = FtpsCtl::connect_implicit(implicit, &config);
    c.expect("AUTH TLS", 503);
    c.login();
    assert_eq!(c.download(implicit, "RETR a.txt"), b"implicit\n");
    c.upload(implicit, "STOR b.txt", b"uploaded\n");
    assert_eq!(fs::read(server.root().join("b.txt")).expect("uploaded file"), b"uploaded\n");
    c.expect("QUIT", 221);
}

// An upload over TLS that ends without close_notify may have been cut by a forged FIN: it is refused (426), and
// no partial file appears.
#[test]
fn upload_without_close_notify_is_aborted() {
    let certs = Certs::new();
    let server = TestServer::start_tls(&certs, &[]);
    let config = client_config(&certs);
    let mut c = FtpsCtl::connect(server.addr(), &config);
    c.auth();
    c.login();
    c.expect("PBSZ 0", 200);
    c.expect("PROT P", 200);
    let mut data = c.open_tls_data(server.addr(), "STOR cut.bin");
    data.write_all(&content(9, 100_000)).expect("upload");
    data.flush().expect("flush");
    data.sock.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    let _ = data.sock.read_to_end(&mut rest);
    c.reply_is(426);
    assert!(!server.root().join("cut.bin").exists());
    assert_eq!(crate::util::dir_names(server.root()), Vec::<String>::new(), "a temporary file was left");
}
