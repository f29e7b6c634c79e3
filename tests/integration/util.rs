//! The harness every integration test shares: a real `ftpserver` process on a free port with its own temporary
//! root, a raw control-connection driver (`Ctl`) for scripted dialogues, data-connection helpers, deterministic
//! content and SHA-256 digests, and bounded subprocess runs for the peer clients. Every wait here is bounded: reads
//! carry timeouts, child processes are polled against a deadline and killed when it passes.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ftp_common::hostport::{parse_epsv_reply, parse_pasv_reply};
use ftp_common::ReplyParser;
use ftp_tests::launcher;
use sha2::{Digest, Sha256};
use socket2::{Domain, Socket, Type};
use tempfile::TempDir;

/// How long any single network wait may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server may take to print its ready line.
const BANNER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopped server may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

// ---- binaries ------------------------------------------------------------------------------------------------

/// The `ftpserver` binary (see [`launcher`]: built once per run under cargo).
pub fn server_bin() -> PathBuf {
    launcher::ftpserver_binary()
}

/// The `ftpclient` binary.
pub fn client_bin() -> PathBuf {
    launcher::workspace_binary("ftpclient", "ftpclient")
}

// ---- the server under test -----------------------------------------------------------------------------------

/// An `ftpserver` process serving a fresh temporary root on a free port of 127.0.0.1 (or of the `--bind` address).
pub struct TestServer {
    child: Child,
    addr: SocketAddr,
    /// The directory served as `/`: `_root` unless the caller gave its own.
    served: PathBuf,
    _root: TempDir,
    log_dir: TempDir,
    log_path: PathBuf,
    exit: Option<ExitStatus>,
}

impl TestServer {
    /// Starts `ftpserver 0 --root <fresh dir>` plus `args` and waits (bounded) for its ready line.
    pub fn start(args: &[&str]) -> TestServer {
        TestServer::start_with_prefix(&[], args)
    }

    /// Like [`TestServer::start`], run under a wrapper command such as `prlimit --nofile=48:48 --` (which execs
    /// the server, so the process id is the server's).
    pub fn start_with_prefix(prefix: &[&str], args: &[&str]) -> TestServer {
        TestServer::launch(prefix, None, args)
    }

    /// Like [`TestServer::start`], serving `root` (an existing directory the caller owns) instead of a fresh one.
    pub fn start_in(root: &Path, args: &[&str]) -> TestServer {
        TestServer::launch(&[], Some(root), args)
    }

    /// Starts the server on `root` and returns its first `count` stdout lines too (the ready line, then the
    /// implicit-TLS and metrics lines it was asked for).
    pub fn start_lines(root: &Path, args: &[&str], count: usize) -> (TestServer, Vec<String>) {
        TestServer::launch_lines(&[], Some(root), args, count)
    }

    /// Like [`TestServer::start`], with `env` added to the server's environment (a storage back-end's
    /// credentials, say).
    pub fn start_env(env: &[(&str, &str)], args: &[&str]) -> TestServer {
        TestServer::launch_lines_env(&[], None, env, args, 1).0
    }

    fn launch(prefix: &[&str], root_dir: Option<&Path>, args: &[&str]) -> TestServer {
        TestServer::launch_lines(prefix, root_dir, args, 1).0
    }

    fn launch_lines(
        prefix: &[&str],
        root_dir: Option<&Path>,
        args: &[&str],
        count: usize,
    ) -> (TestServer, Vec<String>) {
        TestServer::launch_lines_env(prefix, root_dir, &[], args, count)
    }

    /// Starts the server and waits (bounded) for its first `count` stdout lines: the ready line, then any others
    /// (such as the implicit TLS listener's).
    fn launch_lines_env(
        prefix: &[&str],
        root_dir: Option<&Path>,
        env: &[(&str, &str)],
        args: &[&str],
        count: usize,
    ) -> (TestServer, Vec<String>) {
        let root = tempfile::Builder::new().prefix("ftp-root-").tempdir().expect("temporary root");
        let log_dir = tempfile::Builder::new().prefix("ftp-log-").tempdir().expect("temporary log folder");
        let log_path = log_dir.path().join("ftpserver.log");
        let log = fs::File::create(&log_path).expect("server log file");
        let served = root_dir.unwrap_or(root.path()).to_path_buf();
        let mut command = match prefix.split_first() {
            Some((wrapper, rest)) => {
                let mut c = Command::new(wrapper);
                c.args(rest).arg(server_bin());
                c
            }
            None => Command::new(server_bin()),
        };
        command.arg("0").arg("--root").arg(&served).args(args).envs(env.iter().copied()).stderr(Stdio::from(log));
        let started = launcher::start_reading_lines(command, count, BANNER_TIMEOUT);
        let (child, lines) = match started {
            Ok(started) => started,
            Err(why) => {
                let log = fs::read(&log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                let mut log_dir = log_dir;
                log_dir.disable_cleanup(true);
                panic!("{why}; log {}:\n{log}", log_path.display())
            }
        };
        let unbound = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let mut server =
            TestServer { child, addr: unbound, served: served.clone(), _root: root, log_dir, log_path, exit: None };
        server.addr = parse_banner(&lines[0], &served)
            .unwrap_or_else(|| panic!("unexpected ready line {:?}; log:\n{}", lines[0], server.log()));
        (server, lines)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the server listens on, as its ready line announced it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory served as `/`.
    pub fn root(&self) -> &Path {
        &self.served
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        let status =
            Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("running kill -TERM");
        assert!(status.success(), "kill -TERM {} failed: {status}", self.child.id());
    }

    /// Waits (bounded) for the process to exit and returns its status.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exit = Some(status);
                    return status;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => panic!("ftpserver did not exit within {limit:?}; log:\n{}", self.log()),
                Err(e) => panic!("waiting for ftpserver: {e}"),
            }
        }
    }

    /// Graceful stop: SIGTERM, then a bounded wait for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if self.exit.is_none() {
            self.terminate();
        }
        self.wait_exit(EXIT_TIMEOUT)
    }

    /// A raw control connection, greeting already read and checked.
    pub fn ctl(&self) -> Ctl {
        Ctl::connect(self.addr())
    }

    /// A raw control connection, logged in as anonymous.
    pub fn login(&self) -> Ctl {
        let mut c = self.ctl();
        c.login();
        c
    }

    /// A logged-in `FtpClient`.
    pub fn client(&self) -> ftp_client::FtpClient {
        let mut c = ftp_client::FtpClient::connect(&self.addr.ip().to_string(), self.addr.port(), IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("FtpClient::connect: {e}"));
        c.login("anonymous", "test@example.com").unwrap_or_else(|e| panic!("FtpClient::login: {e}"));
        c
    }

    /// Writes `data` to `rel` under the root (creating folders) and returns its path.
    pub fn put_file(&self, rel: &str, data: &[u8]) -> PathBuf {
        let path = self.root().join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("creating folders under the root");
        }
        fs::write(&path, data).expect("writing a file under the root");
        path
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // By PID, never by name.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            let log = self.log();
            let tail: String = {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(60)..].join("\n")
            };
            self.log_dir.disable_cleanup(true);
            eprintln!("ftpserver log kept at {} (last lines):\n{tail}", self.log_path.display());
        }
    }
}

/// The address in `ftpserver listening on ADDR:PORT, root DIR, anonymous: MODE`, with the root checked against
/// the expected one.
pub fn parse_banner(line: &str, root: &Path) -> Option<SocketAddr> {
    let rest = line.strip_suffix('\n')?.strip_prefix("ftpserver listening on ")?;
    let (rest, _anonymous) = rest.rsplit_once(", anonymous: ")?;
    let (addr, dir) = rest.split_once(", root ")?;
    let canonical = root.canonicalize().ok()?;
    (Path::new(dir) == canonical).then_some(())?;
    addr.parse().ok().filter(|a: &SocketAddr| a.port() != 0)
}

// ---- raw control connection ----------------------------------------------------------------------------------

/// A control connection driven line by line, for dialogues that assert exact reply codes.
pub struct Ctl {
    stream: TcpStream,
    parser: ReplyParser,
}

impl Ctl {
    /// The control socket itself, e.g. to reset it.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// The control socket, for raw writes and timeouts.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Connects and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Ctl {
        let mut c = Ctl::connect_no_greeting(addr);
        let (code, text) = c.reply();
        assert_eq!(code, 220, "greeting: {text}");
        c
    }

    /// A control connection over a socket connected elsewhere (from another loopback source address, say).
    pub fn from_stream(stream: TcpStream) -> Ctl {
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
        Ctl { stream, parser: ReplyParser::default() }
    }

    /// Connects without reading anything.
    pub fn connect_no_greeting(addr: SocketAddr) -> Ctl {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        Ctl { stream, parser: ReplyParser::default() }
    }

    /// USER anonymous (331), PASS (230).
    pub fn login(&mut self) {
        assert_eq!(self.cmd("USER anonymous"), 331);
        assert_eq!(self.cmd("PASS guest@example.com"), 230);
    }

    /// Sends `line` followed by CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\r\n").as_bytes());
    }

    /// Sends raw bytes as they are.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap_or_else(|e| panic!("sending {:?}: {e}", String::from_utf8_lossy(bytes)));
    }

    /// The next reply: its code and its lines joined with `\n`. Fails the test if none arrives in time.
    pub fn reply(&mut self) -> (u16, String) {
        match self.try_reply() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("the server closed the control connection while a reply was expected"),
            Err(e) => panic!("reading a reply: {e}"),
        }
    }

    /// The next reply, `Ok(None)` on a clean end of stream.
    pub fn try_reply(&mut self) -> io::Result<Option<(u16, String)>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = self.parser.pop() {
                let r = r.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
                return Ok(Some((r.code, r.lines.join("\n"))));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => self.parser.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `line` and returns the code of its reply.
    pub fn cmd(&mut self, line: &str) -> u16 {
        self.cmd_full(line).0
    }

    /// Sends `line` and returns its whole reply.
    pub fn cmd_full(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply()
    }

    /// Asserts that `line` is answered with `code`.
    pub fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.cmd_full(line);
        assert_eq!(got, code, "{line:?} was answered {got} {text}");
        text
    }

    /// PASV: the data address from the 227 reply.
    pub fn pasv(&mut self) -> SocketAddr {
        let (code, text) = self.cmd_full("PASV");
        assert_eq!(code, 227, "PASV: {text}");
        let addr: SocketAddrV4 = parse_pasv_reply(&text).unwrap_or_else(|| panic!("no address in {text:?}"));
        SocketAddr::V4(addr)
    }

    /// EPSV: the data address (the control connection's peer IP and the port from the 229 reply).
    pub fn epsv(&mut self) -> SocketAddr {
        let (code, text) = self.cmd_full("EPSV");
        assert_eq!(code, 229, "EPSV: {text}");
        let port = parse_epsv_reply(&text).unwrap_or_else(|| panic!("no port in {text:?}"));
        SocketAddr::new(self.stream.peer_addr().expect("peer address").ip(), port)
    }

    /// Asserts the server closes the connection (bounded); returns the replies that came before the end.
    pub fn expect_closed(&mut self) -> Vec<(u16, String)> {
        let mut seen = Vec::new();
        loop {
            match self.try_reply() {
                Ok(Some(r)) => seen.push(r),
                Ok(None) => return seen,
                // A reset after the last reply is a close too.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return seen,
                Err(e) => panic!("waiting for the server to close the connection (after {seen:?}): {e}"),
            }
        }
    }
}

// ---- data connections ----------------------------------------------------------------------------------------

/// An upload command (`STOR NAME`, `APPE NAME`) of `len` bytes of `content(9, ..)` over a fresh passive
/// connection: the final reply's code, or the first one when the transfer never started (552 at once, say). A data
/// connection the server cuts short is not an error here: the reply says what happened.
pub fn stor_content(c: &mut Ctl, verb: &str, len: usize) -> u16 {
    let addr = c.pasv();
    c.send(verb);
    let d = data_connect(addr);
    let (code, _) = c.reply();
    if code != 150 {
        return code;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_and_close(d, &content(9, len))));
    c.reply().0
}

/// Opens a data connection to `addr` with read and write timeouts.
pub fn data_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("data connect {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
    s
}

/// Opens a data connection whose receive buffer is fixed small, so a client that stops reading stalls the server's
/// sending soon instead of letting the kernel absorb megabytes.
pub fn data_connect_small_window(addr: SocketAddr) -> TcpStream {
    data_connect_small_window_from(None, addr)
}

/// [`data_connect_small_window`] from a chosen local address (another loopback IP).
pub fn data_connect_small_window_from(from: Option<Ipv4Addr>, addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    if let Some(ip) = from {
        socket.bind(&SocketAddr::from((ip, 0)).into()).expect("bind the source address");
    }
    socket.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap_or_else(|e| panic!("data connect {addr}: {e}"));
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
    s
}

/// Opens a connection to `addr` from the local address `from` (another loopback IP such as 127.0.0.2).
pub fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&addr.into(), IO_TIMEOUT)?;
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Closes `stream` with a TCP reset instead of an orderly FIN.
pub fn reset(stream: TcpStream) {
    let socket = Socket::from(stream);
    socket.set_linger(Some(Duration::ZERO)).expect("SO_LINGER 0");
    drop(socket);
}

/// Reads until the peer closes the connection.
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap_or_else(|e| panic!("reading the data connection: {e}"));
    out
}

/// Writes everything, then closes the sending side so the server sees the end of the upload.
pub fn write_and_close(mut stream: TcpStream, data: &[u8]) {
    stream.write_all(data).unwrap_or_else(|e| panic!("writing the data connection: {e}"));
    stream.shutdown(Shutdown::Write).expect("shutdown(Write)");
    // Wait for the server's close so the 226 that follows refers to all of it.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

/// Whether the peer ends `stream` (EOF or reset) without sending data, within the read timeout.
pub fn closed_without_data(stream: &mut TcpStream) -> Result<(), String> {
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("received {n} bytes")),
        Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted) => Ok(()),
        Err(e) => Err(format!("no end of stream: {e}")),
    }
}

// ---- content and digests -------------------------------------------------------------------------------------

/// `len` pseudo-random bytes, the same for the same `seed` (xorshift64*).
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    ContentReader::new(seed, len as u64).read_exact(&mut out).expect("generating content");
    out
}

/// A reader yielding `content(seed, len)` without holding it in memory.
pub struct ContentReader {
    state: u64,
    left: u64,
    word: [u8; 8],
    used: usize,
}

impl ContentReader {
    pub fn new(seed: u64, len: u64) -> ContentReader {
        ContentReader { state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, left: len, word: [0; 8], used: 8 }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes()
    }
}

impl Read for ContentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut i = 0;
        while i < n {
            if self.used == 8 {
                if n - i >= 8 {
                    buf[i..i + 8].copy_from_slice(&self.next_word());
                    i += 8;
                    continue;
                }
                self.word = self.next_word();
                self.used = 0;
            }
            buf[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 of a file's contents.
pub fn sha256_file(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let mut w = HashWriter::default();
    io::copy(&mut f, &mut w).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    w.hex()
}

/// A writer that hashes and counts what passes through it.
#[derive(Default)]
pub struct HashWriter {
    hasher: Sha256,
    pub bytes: u64,
}

impl HashWriter {
    pub fn hex(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- polling and subprocesses --------------------------------------------------------------------------------

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Names of the entries in `dir`.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether a peer tool can run. Missing in CI (`CI=true`) fails the test; elsewhere the test is skipped with a line.
pub fn tool_available(tool: &str, test: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test}: the peer client `{tool}` is required in CI but was not found on PATH");
    }
    eprintln!("SKIP {test}: `{tool}` not found on PATH");
    false
}

/// Runs `cmd` to completion with captured output, killing it (by PID) if it takes longer than `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out_reader.join().unwrap_or_default();
                let stderr = err_reader.join().unwrap_or_default();
                panic!(
                    "{cmd:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Output { status, stdout, stderr }
}

// ---- FTPS ----------------------------------------------------------------------------------------------------

/// A self-signed certificate and key for localhost, 127.0.0.1 and ::1, made by `ftpserver gen-cert`.
pub struct Certs {
    _dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    pub fn new() -> Certs {
        let dir = tempfile::Builder::new().prefix("ftp-certs-").tempdir().expect("certificate folder");
        let out = run_bounded(Command::new(server_bin()).arg("gen-cert").arg("--out").arg(dir.path()), IO_TIMEOUT);
        assert!(out.status.success(), "gen-cert failed: {}", String::from_utf8_lossy(&out.stderr));
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        Certs { _dir: dir, cert, key }
    }

    /// `--tls-cert CERT --tls-key KEY` followed by `args`.
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--tls-cert", path_str(&self.cert), "--tls-key", path_str(&self.key)];
        all.extend_from_slice(args);
        all
    }
}

impl TestServer {
    /// A server with the certificate (AUTH TLS works), plus `args`.
    pub fn start_tls(certs: &Certs, args: &[&str]) -> TestServer {
        TestServer::start(&certs.args(args))
    }

    /// A server with the certificate and `--implicit-tls-port 0`, plus `args`; also the implicit-FTPS address,
    /// read from the second line the server prints.
    pub fn start_implicit_tls(certs: &Certs, args: &[&str]) -> (TestServer, SocketAddr) {
        let mut all = certs.args(&["--implicit-tls-port", "0"]);
        all.extend_from_slice(args);
        let (server, second) = TestServer::launch_two_lines(&all);
        let addr = second
            .strip_prefix("ftpserver implicit TLS on ")
            .and_then(|a| a.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("unexpected second line {second:?}; log:\n{}", server.log()));
        (server, addr)
    }

    /// Like [`TestServer::launch`], reading the line after the ready line too.
    fn launch_two_lines(args: &[&str]) -> (TestServer, String) {
        let (server, mut lines) = TestServer::launch_lines(&[], None, args, 2);
        (server, lines.remove(1))
    }
}

// ---- peer tools ----------------------------------------------------------------------------------------------

/// Longest a peer client (curl, lftp, python3, rclone) may run.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(120);

/// Fails the test unless `tool` exited 0; returns its stdout.
pub fn expect_success(tool: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tool} exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    stdout
}

/// Runs curl (quiet, errors shown, 60 s limit) with `args`; fails the test unless it exits 0.
pub fn curl_ok(args: &[&str]) -> String {
    let out = run_bounded(Command::new("curl").args(["-sS", "--max-time", "60"]).args(args), PEER_TIMEOUT);
    expect_success("curl", &out)
}

/// Runs a Python script (written to a temporary file) with `args`; fails the test unless it exits 0.
pub fn python_ok(script: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("script folder");
    let path = dir.path().join("peer.py");
    fs::write(&path, script).expect("writing the script");
    let out = run_bounded(Command::new("python3").arg(&path).args(args), PEER_TIMEOUT);
    expect_success("python3", &out)
}

/// A temporary path as the `&str` command lines want (temporary paths are UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// An argon2id hash of `password` for a users file, from `ftpserver hash-password`.
pub fn password_hash(password: &str) -> String {
    let mut child = Command::new(server_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ftpserver hash-password");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("password");
    let out = child.wait_with_output().expect("hash-password");
    assert!(out.status.success(), "hash-password failed");
    String::from_utf8(out.stdout).expect("UTF-8").trim().to_string()
}

/// The metrics address in a server's stdout lines ("ftpserver metrics on http://ADDR/metrics").
pub fn metrics_addr(lines: &[String]) -> SocketAddr {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("ftpserver metrics on http://")?.strip_suffix("/metrics")?.parse().ok())
        .unwrap_or_else(|| panic!("no metrics line in {lines:?}"))
}
