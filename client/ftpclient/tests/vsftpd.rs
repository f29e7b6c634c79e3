//! Our client against vsftpd, a second real peer: started per test from a generated configuration on 127.0.0.1
//! with anonymous users who may upload, rooted in a temporary directory. vsftpd refuses a writable anonymous root,
//! so the root is read-only and the writable directory is `pub/`. vsftpd has MDTM, SIZE and REST but neither MLST
//! nor HASH, so `ls -l` falls back to LIST and transfers are verified by size.
//!
//! Without vsftpd (Debian package `vsftpd`) each test prints a skip line and passes, except under CI=true, where
//! that is a failure. Every wait is bounded: the port is polled until it accepts, for at most [`START_LIMIT`].

mod support;

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ftp_client::{FtpClient, TlsConfig};
use support::{file_names, ftpclient, missing_tool, pattern, result, sha256, WAIT};
use tempfile::TempDir;

/// How long vsftpd may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(10);

/// How many ports to try vsftpd on.
const START_ATTEMPTS: u32 = 3;

/// Control ports for vsftpd, and the ports its passive data connections listen on: below the range the system
/// picks ports from (32768-60999 on Linux by default) and apart from each other.
const CONTROL_PORTS: std::ops::Range<u16> = 12_000..16_000;
const PASV_PORTS: (u16, u16) = (16_000, 23_999);

/// Sizes around vsftpd's and our buffers, and one well past them.
const SIZES: [usize; 5] = [0, 1, 4095, 65_537, 3 * 1024 * 1024 + 11];

/// A running vsftpd; killed when dropped.
struct Vsftpd {
    child: Child,
    port: u16,
    /// Holds `root/` (read-only, with the writable `pub/`), `empty/` (the secure chroot directory), the
    /// configuration and vsftpd's output.
    dir: TempDir,
}

impl Vsftpd {
    /// Starts vsftpd, or returns `None` (after printing why) when it is not installed.
    fn start() -> Option<Vsftpd> {
        Vsftpd::start_with(|_| String::new())
    }

    /// Starts vsftpd with TLS required for logins and data, with a fresh self-signed certificate and the session
    /// reuse check on (`require_ssl_reuse`, vsftpd's default: every data connection must resume the control
    /// connection's TLS session); `implicit` for TLS from the first byte.
    fn start_tls(implicit: bool) -> Option<Vsftpd> {
        Vsftpd::start_with(|dir| {
            let (cert, key) = support::tls::write_cert(dir);
            format!(
                "ssl_enable=YES\nallow_anon_ssl=YES\nforce_anon_logins_ssl=YES\nforce_anon_data_ssl=YES\n\
                 require_ssl_reuse=YES\nimplicit_ssl={}\nrsa_cert_file={}\nrsa_private_key_file={}\n",
                if implicit { "YES" } else { "NO" },
                cert.display(),
                key.display()
            )
        })
    }

    /// Starts vsftpd with the configuration lines `extra` writes (given the server's private directory) added.
    fn start_with(extra: impl FnOnce(&Path) -> String) -> Option<Vsftpd> {
        let Some(binary) = find_vsftpd() else {
            missing_tool("vsftpd", "apt-get install -y vsftpd");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let empty = dir.path().join("empty");
        fs::create_dir_all(root.join("pub")).expect("mkdir root/pub");
        fs::create_dir(&empty).expect("mkdir empty");
        fs::set_permissions(root.join("pub"), fs::Permissions::from_mode(0o777)).expect("chmod pub");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o555)).expect("chmod root");
        fs::set_permissions(&empty, fs::Permissions::from_mode(0o555)).expect("chmod empty");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
        let extra = extra(dir.path());
        let config = dir.path().join("vsftpd.conf");
        let mut server = None::<Vsftpd>;
        let mut dir = Some(dir);
        // Another program may take the port between the check and vsftpd's bind; then vsftpd exits, and a new port
        // is tried.
        for attempt in 1..=START_ATTEMPTS {
            let port = unused_port();
            let text = config_text(port, &root, &empty, is_root()) + &extra;
            fs::write(&config, text).expect("write config");
            let here = dir.take().expect("the server's directory");
            let output = fs::File::create(here.path().join("output.txt")).expect("output file");
            let child = Command::new(&binary)
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("clone output"))
                .stderr(output)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let mut started = Vsftpd { child, port, dir: here };
            match started.wait_until_accepting() {
                Ok(()) => {
                    server = Some(started);
                    break;
                }
                Err(msg) if attempt < START_ATTEMPTS => {
                    eprintln!("vsftpd on port {port} did not start ({msg}); trying another port");
                    // The directory (configuration, certificate) is kept for the next attempt.
                    let spare = tempfile::tempdir().expect("tempdir");
                    dir = Some(std::mem::replace(&mut started.dir, spare));
                }
                Err(msg) => panic!("{msg}"),
            }
        }
        server
    }

    /// Polls the port until it accepts; `Err` with vsftpd's own words if it exits first, a failure if it does not
    /// come up in time.
    fn wait_until_accepting(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("checking on vsftpd") {
                return Err(format!("vsftpd exited ({status}) before accepting connections: {}", self.output()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                panic!("vsftpd did not accept connections on {addr} within {START_LIMIT:?}: {}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        fs::read_to_string(self.dir.path().join("output.txt")).unwrap_or_default()
    }

    /// The PEM certificate of a TLS server.
    fn cert_path(&self) -> PathBuf {
        self.dir.path().join(support::tls::CERT_FILE)
    }

    /// A path in the writable upload directory.
    fn pub_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("root/pub").join(name)
    }
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration: standalone on 127.0.0.1:`port` in the foreground, anonymous only, uploads allowed, no
/// sandboxing that needs privileges a container may lack. Without root it runs as the launching user.
fn config_text(port: u16, root: &Path, empty: &Path, root_user: bool) -> String {
    let mut text = format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
         anonymous_enable=YES\nlocal_enable=NO\nno_anon_password=YES\nanon_root={}\n\
         write_enable=YES\nanon_upload_enable=YES\nanon_mkdir_write_enable=YES\nanon_other_write_enable=YES\n\
         anon_umask=022\npasv_enable=YES\npasv_min_port={}\npasv_max_port={}\n\
         port_enable=YES\nconnect_from_port_20=NO\n\
         seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\nsecure_chroot_dir={}\n\
         xferlog_enable=NO\ndirmessage_enable=NO\nuse_localtime=NO\n",
        root.display(),
        PASV_PORTS.0,
        PASV_PORTS.1,
        empty.display()
    );
    if !root_user {
        text.push_str("run_as_launching_user=YES\n");
    }
    text
}

/// vsftpd on the PATH or in the system directories Debian installs it to.
fn find_vsftpd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("vsftpd"))
        .find(|candidate| candidate.is_file())
}

/// Whether this process runs as root (effective user 0), from /proc/self/status.
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").ok().is_some_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            .unwrap_or(false)
    })
}

/// A control port for a new vsftpd: free a moment ago, never handed out before in this run, and outside the range
/// the system picks ports from (and outside [`PASV_PORTS`]), so no other server of this run, passive listener or
/// client's active-mode listener can take it before vsftpd binds it, or answer in its place.
fn unused_port() -> u16 {
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut x = u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1;
    loop {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = CONTROL_PORTS.start + (x % u64::from(CONTROL_PORTS.end - CONTROL_PORTS.start)) as u16;
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
}

#[test]
fn library_against_vsftpd() {
    let Some(server) = Vsftpd::start() else { return };
    let mut client = FtpClient::connect("127.0.0.1", server.port, WAIT).expect("connect");
    assert_eq!(client.greeting().code, 220);
    client.login("anonymous", "anonymous@").expect("login");
    // As root vsftpd confines the session to its root; run as another user it cannot, and starts in it.
    let home = client.pwd().expect("pwd");
    assert!(home == "/" || Path::new(&home) == server.dir.path().join("root"), "{home}");
    client.cwd("pub").expect("cwd");
    let features = client.feat().expect("feat");
    assert!(features.iter().any(|f| f == "MDTM") && features.iter().any(|f| f == "REST STREAM"), "{features:?}");
    assert_eq!(client.feature("MLST").expect("feature"), None);

    for (i, size) in SIZES.into_iter().enumerate() {
        let data = pattern(size, i as u64 + 11);
        let name = format!("f{size}.bin");
        assert_eq!(client.stor(&name, &mut data.as_slice()).expect("stor"), size as u64, "{name}");
        assert_eq!(sha256(&fs::read(server.pub_path(&name)).expect("uploaded")), sha256(&data), "{name}");
        assert_eq!(client.size(&name).expect("size"), size as u64, "{name}");
        let mut back = Vec::new();
        assert_eq!(client.retr(&name, &mut back).expect("retr"), size as u64, "{name}");
        assert_eq!(sha256(&back), sha256(&data), "downloaded {name}");
    }

    // Restarts, appending, modification times.
    let data = pattern(200_000, 3);
    client.stor("r.bin", &mut &data[..50_000]).expect("stor");
    client.stor_from("r.bin", 50_000, &mut &data[50_000..120_000]).expect("stor_from");
    client.append("r.bin", &mut &data[120_000..]).expect("append");
    assert_eq!(sha256(&fs::read(server.pub_path("r.bin")).expect("read")), sha256(&data));
    let mut tail = Vec::new();
    client.retr_from("r.bin", 77_777, &mut tail).expect("retr_from");
    assert!(tail == data[77_777..], "tail differs");
    let mtime = fs::metadata(server.pub_path("r.bin")).expect("stat").modified().expect("mtime");
    let remote = client.mdtm("r.bin").expect("mdtm");
    let whole = |t: SystemTime| t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    assert_eq!(whole(remote), whole(mtime));

    // Active data connections.
    client.set_active(true);
    let mut back = Vec::new();
    client.retr("r.bin", &mut back).expect("active retr");
    assert!(back == data, "active download differs");
    client.stor("active.bin", &mut &data[..99_999]).expect("active stor");
    assert_eq!(fs::read(server.pub_path("active.bin")).expect("read"), &data[..99_999]);
    assert!(client.nlst(None).expect("active nlst").contains(&"active.bin".to_string()));

    for name in client.nlst(None).expect("nlst") {
        client.delete(&name).expect("delete");
    }
    assert!(file_names(&server.dir.path().join("root/pub")).is_empty());
    client.quit().expect("quit");
}

#[test]
fn cli_against_vsftpd() {
    let Some(server) = Vsftpd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port.to_string();
    let data = pattern(5 * 1024 * 1024 + 1, 21);
    fs::write(dir.path().join("big.bin"), &data).expect("local file");

    let args = [port.as_str(), "-c", "cd pub", "-c", "upload big.bin", "-c", "get big.bin copy.bin", "-c", "ls -l"];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(&format!("upload big.bin -> big.bin: {} bytes in ", data.len())), "{stdout}");
    assert!(stdout.contains(&format!("get big.bin -> copy.bin: {} bytes in ", data.len())), "{stdout}");
    assert_eq!(stdout.matches("/s), size verified\n").count(), 2, "{stdout}");
    // No MLST: ls -l is the server's LIST, shown with the terminal's line ends.
    assert!(stdout.contains(" big.bin\n") && !stdout.contains('\r'), "{stdout}");
    assert_eq!(sha256(&fs::read(server.pub_path("big.bin")).expect("uploaded")), sha256(&data));
    assert_eq!(sha256(&fs::read(dir.path().join("copy.bin")).expect("downloaded")), sha256(&data));

    // Resuming both ways, over active connections.
    fs::write(dir.path().join("copy.bin"), &data[..1_000_000]).expect("truncate local");
    // The partial remote file is the server's own (an interrupted upload), so it may write to it.
    let mut client = FtpClient::connect("127.0.0.1", server.port, WAIT).expect("connect");
    client.login("anonymous", "anonymous@").expect("login");
    client.stor("pub/up.bin", &mut &data[..2_000_000]).expect("partial upload");
    client.quit().expect("quit");
    let args = [
        port.as_str(),
        "--active",
        "-c",
        "cd pub",
        "-c",
        "get -c big.bin copy.bin",
        "-c",
        "upload -c big.bin up.bin",
        "-c",
        "mdtm up.bin",
    ];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(", resumed at byte 1000000, size verified\n"), "{stdout}");
    assert!(stdout.contains(", resumed at byte 2000000, size verified\n"), "{stdout}");
    assert!(stdout.contains("up.bin: ") && stdout.ends_with(" UTC\n"), "{stdout}");
    assert_eq!(sha256(&fs::read(dir.path().join("copy.bin")).expect("resumed download")), sha256(&data));
    assert_eq!(sha256(&fs::read(server.pub_path("up.bin")).expect("resumed upload")), sha256(&data));
    assert_eq!(file_names(dir.path()), ["big.bin", "copy.bin"]);

    // The read-only root refuses uploads; the refusal is the error and the status 1.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "upload big.bin"], None));
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error: upload big.bin: server replied 553"), "{stderr}");
}

// vsftpd refuses a data connection that does not resume the control connection's TLS session (as FileZilla Server
// does); every transfer here passes that check, passive and active.
#[test]
fn tls_against_vsftpd() {
    let Some(server) = Vsftpd::start_tls(false) else { return };
    let config = TlsConfig::new(Some(&server.cert_path())).expect("TLS config");
    let mut client = FtpClient::connect("127.0.0.1", server.port, WAIT).expect("connect");
    client.auth_tls(&config).expect("AUTH TLS");
    client.login("anonymous", "anonymous@").expect("login");
    client.cwd("pub").expect("cwd");
    for (i, size) in SIZES.into_iter().enumerate() {
        let data = pattern(size, i as u64 + 31);
        let name = format!("t{size}.bin");
        assert_eq!(client.stor(&name, &mut data.as_slice()).expect("stor"), size as u64, "{name}");
        assert_eq!(sha256(&fs::read(server.pub_path(&name)).expect("uploaded")), sha256(&data), "{name}");
        let mut back = Vec::new();
        assert_eq!(client.retr(&name, &mut back).expect("retr"), size as u64, "{name}");
        assert_eq!(sha256(&back), sha256(&data), "downloaded {name}");
    }
    client.set_active(true);
    assert_eq!(client.nlst(None).expect("active nlst").len(), SIZES.len());
    let mut back = Vec::new();
    client.retr("t65537.bin", &mut back).expect("active retr");
    assert_eq!(sha256(&back), sha256(&pattern(65_537, 34)));
    client.quit().expect("quit");

    // The command-line client, both ways, byte-exact.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pattern(1_234_567, 5);
    fs::write(dir.path().join("up.bin"), &data).expect("local file");
    let (port, cert) = (server.port.to_string(), server.cert_path());
    let cert = cert.to_str().expect("UTF-8 path");
    let args = ["--tls", "--ca-file", cert, &port, "-c", "cd pub", "-c", "upload up.bin", "-c", "get up.bin down.bin"];
    let (code, _, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sha256(&fs::read(server.pub_path("up.bin")).expect("uploaded")), sha256(&data));
    assert_eq!(sha256(&fs::read(dir.path().join("down.bin")).expect("downloaded")), sha256(&data));

    // Without --tls vsftpd refuses the login.
    let (code, _, stderr) = result(&ftpclient(dir.path(), &[&port, "-c", "ls"], None));
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: login as anonymous: "), "{stderr}");
}

#[test]
fn implicit_tls_against_vsftpd() {
    let Some(server) = Vsftpd::start_tls(true) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pattern(300_001, 6);
    fs::write(server.pub_path("file.bin"), &data).expect("server file");
    let cert = server.cert_path();
    let url = format!("ftps://127.0.0.1:{}/pub/file.bin", server.port);
    let args = ["--ca-file", cert.to_str().expect("UTF-8 path"), url.as_str()];
    let (code, stdout, stderr) = result(&ftpclient(dir.path(), &args, None));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("get pub/file.bin -> file.bin: 300001 bytes in "), "{stdout}");
    assert_eq!(sha256(&fs::read(dir.path().join("file.bin")).expect("downloaded")), sha256(&data));
}
