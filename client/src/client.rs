//! [`FtpClient`]: one blocking control connection and the data connections it opens.
//!
//! This module owns the conversation with the server: sending command lines, reading replies through the size-capped
//! [`ReplyParser`], checking each reply against the codes its command accepts, and moving file and listing bytes over
//! data connections, from the start or from an offset (REST). Negotiating data connections, passive or active, is in
//! [`data`]; the extensions of RFC 2389, RFC 3659 and the HASH draft (FEAT, MDTM, MFMT, MLSD, MLST, HASH) are in
//! [`ext`]; FTPS (implicit TLS, AUTH TLS, protected data connections) in [`secure`]. Every socket has a connect
//! timeout and read and write timeouts, reading one reply and each TLS handshake have an overall deadline and an
//! active data connection is awaited for at most the timeout, so no call can hang forever. After an I/O or framing
//! failure on the control connection its replies can no longer be matched to commands, so the connection is closed
//! and every later call fails with [`FtpError::Closed`].

mod data;
mod ext;
mod secure;

pub use data::passive_data_address;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftp_common::{Reply, ReplyParser};
use log::debug;

use crate::{visible, FtpError, FtpStream};
use secure::TlsSession;

/// Size of the buffer that file and listing data move through.
pub const DATA_BUFFER: usize = 64 * 1024;

/// Most 120 ("service ready in n minutes") replies accepted before the 220 greeting.
pub const MAX_DELAY_REPLIES: usize = 8;

/// Codes that end a successful transfer.
pub const TRANSFER_DONE: &[u16] = &[226, 250];

/// Codes that start a transfer.
const TRANSFER_STARTED: &[u16] = &[125, 150];

/// Most replies read after ABOR while waiting for the NOOP that marks the end of them: 426 for the transfer, the
/// ABOR reply, possibly the transfer's own 226, then NOOP's 200.
const MAX_ABORT_REPLIES: usize = 6;

/// A logged-in (or about to be) FTP session over one control connection.
#[derive(Debug)]
pub struct FtpClient {
    control: FtpStream,
    /// The host as given to connect, without brackets: the name a TLS certificate is checked against.
    host: String,
    /// Set once the control connection is protected by TLS.
    tls: Option<TlsSession>,
    parser: ReplyParser,
    greeting: Reply,
    peer: SocketAddr,
    timeout: Duration,
    epsv_refused: bool,
    trust_pasv_host: bool,
    active: bool,
    port_refused: bool,
    /// The FEAT lines once asked for, kept up to date with the OPTS this client sends.
    features: Option<Vec<String>>,
    /// Set from outside (a Ctrl-C handler) to abort the transfer in progress with ABOR.
    interrupt: Option<Arc<AtomicBool>>,
    /// The code of the last reply read, until taken.
    last_code: Option<u16>,
    closed: bool,
}

impl FtpClient {
    /// Connects to `host:port` and reads the server's 220 greeting. `host` may be a name or an IPv4 or IPv6 literal
    /// (with or without brackets). `timeout` bounds connecting, each read and write, and the wait for each reply.
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<FtpClient, FtpError> {
        let (control, target) = open_control(host, port, timeout)?;
        FtpClient::greet(FtpStream::Plain(control), host, &target, timeout, None)
    }

    /// Connects to `target` from the local address `source` (on a port of the system's choosing) and reads the
    /// greeting: for a load generator that holds more sessions to one server than one source address has ports.
    pub fn connect_from(target: SocketAddr, source: IpAddr, timeout: Duration) -> Result<FtpClient, FtpError> {
        use socket2::{Domain, Protocol, Socket, Type};
        if timeout.is_zero() {
            return Err(FtpError::Io(io::Error::new(io::ErrorKind::InvalidInput, "the timeout must be positive")));
        }
        let socket = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| FtpError::io("creating a socket", e))?;
        socket.bind(&SocketAddr::new(source, 0).into()).map_err(|e| FtpError::io(format!("binding {source}"), e))?;
        socket
            .connect_timeout(&target.into(), timeout)
            .map_err(|e| FtpError::io(format!("connecting to {target}"), e))?;
        let control: TcpStream = socket.into();
        let shown = target.to_string();
        let setup = |e| FtpError::io(format!("setting up the connection to {shown}"), e);
        control.set_nodelay(true).map_err(setup)?;
        control.set_read_timeout(Some(timeout)).map_err(setup)?;
        control.set_write_timeout(Some(timeout)).map_err(setup)?;
        FtpClient::greet(FtpStream::Plain(control), &target.ip().to_string(), &shown, timeout, None)
    }

    /// Reads the greeting over a freshly opened control connection to `target` (`host:port` as shown).
    fn greet(
        control: FtpStream,
        host: &str,
        target: &str,
        timeout: Duration,
        tls: Option<TlsSession>,
    ) -> Result<FtpClient, FtpError> {
        let setup = |e| FtpError::io(format!("setting up the connection to {target}"), e);
        let peer = control.tcp().peer_addr().map_err(setup)?;
        debug!("connected to {peer}");
        let mut client = FtpClient {
            control,
            host: strip_brackets(host).to_string(),
            tls,
            parser: ReplyParser::default(),
            greeting: Reply { code: 0, lines: vec![String::new()] },
            peer,
            timeout,
            epsv_refused: false,
            trust_pasv_host: false,
            active: false,
            port_refused: false,
            features: None,
            interrupt: None,
            last_code: None,
            closed: false,
        };
        let label = format!("greeting from {target}");
        let mut greeting = client.read_reply_for(&label)?;
        for _ in 0..MAX_DELAY_REPLIES {
            if greeting.code != 120 {
                break;
            }
            greeting = client.read_reply_for(&label)?;
        }
        client.greeting = expect(&label, greeting, &[220])?;
        Ok(client)
    }

    /// The server's 220 greeting.
    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }

    /// The address of the server's end of the control connection; passive data connections go to this IP.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// True once the control connection is closed; every call then fails with [`FtpError::Closed`].
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether to connect to the host named in a 227 reply instead of the control connection's peer. Off by
    /// default, which defeats PASV bounce and works behind NAT; an unspecified host (0.0.0.0) is never used.
    pub fn set_trust_pasv_host(&mut self, trust: bool) {
        self.trust_pasv_host = trust;
    }

    /// Whether data connections are active: the client listens on the control connection's local address and
    /// the server connects to it (PORT, or EPRT for IPv6 and once PORT is refused). Off (passive) by default.
    pub fn set_active(&mut self, active: bool) {
        self.active = active;
    }

    /// True when data connections are active.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// A flag that, once set (by a Ctrl-C handler, another thread ...), aborts the transfer in progress: the data
    /// connection is closed, ABOR is sent and the replies to it are read, so the session stays usable; the transfer
    /// then fails with an I/O error of kind `Interrupted`. The flag is checked between blocks of data, and is not
    /// cleared here.
    pub fn set_interrupt(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.interrupt = flag;
    }

    /// The code of the last reply read since the last call, if any (for reports of what a command got).
    pub fn take_last_reply_code(&mut self) -> Option<u16> {
        self.last_code.take()
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// Logs in: USER, then PASS if the server asks for it (331), then TYPE I so transfers are byte-exact. Over TLS
    /// it then protects the data connections too (PBSZ 0, PROT P; see [`FtpClient::protect_data`]), as clients
    /// commonly do after logging in, and every time: a server may forget the protection level at USER.
    pub fn login(&mut self, user: &str, pass: &str) -> Result<(), FtpError> {
        // A server may offer more once a user is logged in.
        self.features = None;
        if let Some(tls) = &mut self.tls {
            tls.protected = false;
        }
        let line = format!("USER {user}");
        self.send(&line)?;
        let reply = self.read_reply_for(&line)?;
        match reply.code {
            230 => {}
            331 => {
                self.command(&format!("PASS {pass}"), &[230, 202])?;
            }
            _ => return Err(FtpError::Unexpected { command: line, reply }),
        }
        self.command("TYPE I", &[200])?;
        if self.tls.is_some() {
            self.protect_data()?;
        }
        Ok(())
    }

    /// The current remote directory (PWD, 257).
    pub fn pwd(&mut self) -> Result<String, FtpError> {
        let reply = self.command("PWD", &[257])?;
        parse_quoted_path(&reply.lines[0]).ok_or_else(|| FtpError::Protocol(format!("PWD: no quoted path in {reply}")))
    }

    /// Changes the remote directory (CWD, 250).
    pub fn cwd(&mut self, path: &str) -> Result<(), FtpError> {
        self.command(&format!("CWD {path}"), &[250]).map(drop)
    }

    /// Changes to the parent of the remote directory (CDUP, 200 or 250).
    pub fn cdup(&mut self) -> Result<(), FtpError> {
        self.command("CDUP", &[200, 250]).map(drop)
    }

    /// The server's long listing of `path` (or of the current directory), as sent.
    pub fn list(&mut self, path: Option<&str>) -> Result<String, FtpError> {
        let mut out = Vec::new();
        self.download(&with_optional_arg("LIST", path), 0, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The names in `path` (or in the current directory), one per line of the NLST data.
    pub fn nlst(&mut self, path: Option<&str>) -> Result<Vec<String>, FtpError> {
        let mut out = Vec::new();
        self.download(&with_optional_arg("NLST", path), 0, &mut out)?;
        Ok(split_name_list(&String::from_utf8_lossy(&out)))
    }

    /// The size of a remote file in bytes (SIZE, 213).
    pub fn size(&mut self, path: &str) -> Result<u64, FtpError> {
        let line = format!("SIZE {path}");
        let reply = self.command(&line, &[213])?;
        reply.lines[0].trim().parse().map_err(|_| FtpError::Protocol(format!("{line}: not a size: {reply}")))
    }

    /// Downloads a remote file into `out`; returns the number of bytes written. If writing to `out` fails the
    /// transfer is abandoned (the data connection is closed and the server's final reply is still read, so the
    /// session stays usable) and the write error is returned.
    pub fn retr(&mut self, path: &str, out: &mut dyn Write) -> Result<u64, FtpError> {
        self.retr_from(path, 0, out)
    }

    /// Downloads a remote file from byte `offset` on (REST `offset`, 350, then RETR; RFC 3659 §5) into `out`;
    /// returns the number of bytes written. An `offset` of 0 sends no REST. A server that cannot restart refuses
    /// REST, and that refusal is the error.
    pub fn retr_from(&mut self, path: &str, offset: u64, out: &mut dyn Write) -> Result<u64, FtpError> {
        self.download(&format!("RETR {path}"), offset, out)
    }

    /// Uploads everything `input` yields to a remote file, replacing it; returns the number of bytes sent.
    pub fn stor(&mut self, path: &str, input: &mut dyn Read) -> Result<u64, FtpError> {
        self.upload(&format!("STOR {path}"), 0, input)
    }

    /// Continues an upload: REST `offset` (350), then STOR, so the server keeps the first `offset` bytes of the
    /// remote file and writes what `input` yields after them. `input` must already be positioned at `offset`.
    /// Returns the number of bytes sent. An `offset` of 0 is a plain STOR.
    pub fn stor_from(&mut self, path: &str, offset: u64, input: &mut dyn Read) -> Result<u64, FtpError> {
        self.upload(&format!("STOR {path}"), offset, input)
    }

    /// Appends everything `input` yields to a remote file, creating it if needed (APPE); returns the bytes sent.
    pub fn append(&mut self, path: &str, input: &mut dyn Read) -> Result<u64, FtpError> {
        self.upload(&format!("APPE {path}"), 0, input)
    }

    /// Creates a remote directory (MKD, 257); returns the path the server reports, or `path` if it quotes none.
    pub fn mkdir(&mut self, path: &str) -> Result<String, FtpError> {
        let reply = self.command(&format!("MKD {path}"), &[257])?;
        Ok(parse_quoted_path(&reply.lines[0]).unwrap_or_else(|| path.to_string()))
    }

    /// Removes an empty remote directory (RMD, 250).
    pub fn rmdir(&mut self, path: &str) -> Result<(), FtpError> {
        self.command(&format!("RMD {path}"), &[250]).map(drop)
    }

    /// Deletes a remote file (DELE, 250).
    pub fn delete(&mut self, path: &str) -> Result<(), FtpError> {
        self.command(&format!("DELE {path}"), &[250]).map(drop)
    }

    /// Renames a remote file or directory (RNFR 350, then RNTO 250).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), FtpError> {
        self.command(&format!("RNFR {from}"), &[350])?;
        self.command(&format!("RNTO {to}"), &[250]).map(drop)
    }

    /// NOOP, 200.
    pub fn noop(&mut self) -> Result<(), FtpError> {
        self.command("NOOP", &[200]).map(drop)
    }

    /// Sends one command line and returns the first reply to it, whatever its code: nothing is skipped, so a
    /// preliminary 1xx reply is returned as is and the reply that follows it is read with [`Self::read_reply`].
    pub fn raw(&mut self, line: &str) -> Result<Reply, FtpError> {
        self.send(line)?;
        self.read_reply_for(&mask_password(line))
    }

    /// Sends one command line without reading its reply, which [`Self::read_reply`] reads later: for sending the
    /// same command over many sessions before waiting for any of them.
    pub fn send_command(&mut self, line: &str) -> Result<(), FtpError> {
        self.send(line)
    }

    /// Reads the next reply, giving up at `deadline` (or after the timeout, whichever comes first): for replies to
    /// commands sent over many sessions, awaited together.
    pub fn read_reply_by(&mut self, deadline: Instant) -> Result<Reply, FtpError> {
        let deadline = deadline.min(Instant::now() + self.timeout);
        self.read_reply_until("reading a reply", deadline)
    }

    /// Reads the next reply without sending anything.
    pub fn read_reply(&mut self) -> Result<Reply, FtpError> {
        self.read_reply_for("reading a reply")
    }

    /// Says goodbye (QUIT, 221) and closes the control connection (with TLS close_notify first, over TLS).
    pub fn quit(mut self) -> Result<(), FtpError> {
        let result = self.command("QUIT", &[221]).map(drop);
        if result.is_ok() {
            // The server is done with the session; a failure to say goodbye properly changes nothing.
            let _ = self.control.finish();
        }
        self.close();
        result
    }

    /// Prepares a data connection, sends REST `offset` (unless 0) and `line`, waits for the 125/150 that starts
    /// the transfer and, in active mode, for the server to connect. With protected data the TLS handshake follows,
    /// only now: a server may not accept the connection (vsftpd) or start TLS on it before the command.
    fn start_transfer(&mut self, line: &str, offset: u64) -> Result<FtpStream, FtpError> {
        let channel = self.data_channel()?;
        if offset > 0 {
            self.command(&format!("REST {offset}"), &[350])?;
        }
        self.send(line)?;
        let reply = self.read_reply_for(line)?;
        expect(line, reply, TRANSFER_STARTED)?;
        match channel.establish(self.peer.ip(), self.timeout).and_then(|data| self.secure_data(data, line)) {
            Ok(data) => Ok(data),
            // The server has started the transfer and will report on it: read that, to stay in step.
            Err(e) => Err(self.abandoned(line, e)),
        }
    }

    /// Runs a transfer from the server (RETR, LIST, NLST, MLSD) into `out`.
    fn download(&mut self, line: &str, offset: u64, out: &mut dyn Write) -> Result<u64, FtpError> {
        let mut data = self.start_transfer(line, offset)?;
        let mut buf = vec![0u8; DATA_BUFFER];
        let mut total = 0u64;
        let failure = loop {
            if self.interrupted() {
                return Err(self.abort(line, data));
            }
            let n = match data.read(&mut buf) {
                Ok(0) => break out.flush().err().map(|e| Failure::Local(FtpError::io(format!("{line}: writing"), e))),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(Failure::Remote(FtpError::io(format!("{line}: receiving data"), e))),
            };
            if let Err(e) = out.write_all(&buf[..n]) {
                break Some(Failure::Local(FtpError::io(format!("{line}: writing"), e)));
            }
            total += n as u64;
        };
        // Closing the data connection first tells the server that an abandoned transfer is over.
        drop(data);
        self.finish_transfer(line, failure).map(|()| total)
    }

    /// Runs a transfer to the server (STOR, APPE) from `input`.
    fn upload(&mut self, line: &str, offset: u64, input: &mut dyn Read) -> Result<u64, FtpError> {
        let mut data = self.start_transfer(line, offset)?;
        let mut buf = vec![0u8; DATA_BUFFER];
        let mut total = 0u64;
        let failure = loop {
            if self.interrupted() {
                return Err(self.abort(line, data));
            }
            let n = match input.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(Failure::Local(FtpError::io(format!("{line}: reading"), e))),
            };
            if let Err(e) = data.write_all(&buf[..n]) {
                break Some(Failure::Remote(FtpError::io(format!("{line}: sending data"), e)));
            }
            total += n as u64;
        };
        // End of file on the data connection (after TLS close_notify) is what tells the server the upload is
        // complete.
        let failure = match failure {
            None => data.finish().err().map(|e| Failure::Remote(FtpError::io(format!("{line}: closing"), e))),
            some => some,
        };
        if failure.is_some() {
            drop(data);
            return self.finish_transfer(line, failure).map(|()| total);
        }
        // Closed only after the server's reply: a TLS server may have sent something (session tickets) that was
        // never read, and closing a socket with unread data resets the connection, which can destroy the end of the
        // upload before the server has read it. Those tickets are what later data connections resume with.
        let result = self.finish_transfer(line, None);
        data.take_in_pending();
        drop(data);
        result.map(|()| total)
    }

    /// Reads the reply that ends a transfer. A local failure wins over whatever the server says; after a network
    /// failure the server's refusal (426, 451, 552 ...) is the better explanation when there is one.
    fn finish_transfer(&mut self, line: &str, failure: Option<Failure>) -> Result<(), FtpError> {
        let reply = self.read_reply_for(line);
        match failure {
            None => expect(line, reply?, TRANSFER_DONE).map(drop),
            Some(Failure::Local(e)) => Err(e),
            Some(Failure::Remote(e)) => Err(better_error(line, reply, e)),
        }
    }

    /// Abandons the transfer of `line` at the user's request: closes the data connection, sends ABOR (RFC 959
    /// §4.1.3) and NOOP, and reads replies up to NOOP's, whichever of 426, 225/226 and the transfer's own 226 the
    /// server sends before it. Returns the error the transfer ends with: `Interrupted`, or why the session broke.
    fn abort(&mut self, line: &str, data: FtpStream) -> FtpError {
        drop(data);
        let resync = self.send("ABOR").and_then(|()| self.send("NOOP")).and_then(|()| {
            for _ in 0..MAX_ABORT_REPLIES {
                if self.read_reply_for("ABOR")?.code == 200 {
                    return Ok(());
                }
            }
            self.close();
            Err(FtpError::Protocol("ABOR: no reply to the NOOP that followed it".to_string()))
        });
        match resync {
            Ok(()) => FtpError::io(line, io::Error::new(io::ErrorKind::Interrupted, "aborted (ABOR)")),
            Err(e) => e,
        }
    }

    /// Reads the final reply of a transfer that failed with `err` on the network; returns the server's refusal if
    /// it gives one, else `err`.
    fn abandoned(&mut self, line: &str, err: FtpError) -> FtpError {
        let reply = self.read_reply_for(line);
        better_error(line, reply, err)
    }

    /// Sends `line` and reads its reply, which must have one of the `accepted` codes.
    fn command(&mut self, line: &str, accepted: &[u16]) -> Result<Reply, FtpError> {
        self.send(line)?;
        let label = mask_password(line);
        let reply = self.read_reply_for(&label)?;
        expect(&label, reply, accepted)
    }

    /// Writes one command line. A line break inside it would smuggle in a second command, so it is refused.
    fn send(&mut self, line: &str) -> Result<(), FtpError> {
        if self.closed {
            return Err(FtpError::Closed);
        }
        check_command_line(line)?;
        let label = mask_password(line);
        debug!("> {}", visible(&label));
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        if let Err(e) = self.control.write_all(&bytes).and_then(|()| self.control.flush()) {
            self.close();
            return Err(FtpError::io(format!("sending {label}"), e));
        }
        Ok(())
    }

    /// Reads one complete reply, waiting at most the timeout in all.
    fn read_reply_for(&mut self, label: &str) -> Result<Reply, FtpError> {
        self.read_reply_until(label, Instant::now() + self.timeout)
    }

    /// Reads one complete reply, giving up at `deadline`.
    fn read_reply_until(&mut self, label: &str, deadline: Instant) -> Result<Reply, FtpError> {
        if self.closed {
            return Err(FtpError::Closed);
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.parser.pop() {
                Some(Ok(reply)) => {
                    debug!("< {}", visible(&reply.to_string()));
                    self.last_code = Some(reply.code);
                    return Ok(reply);
                }
                Some(Err(e)) => {
                    self.close();
                    return Err(FtpError::Protocol(format!("{label}: {e}")));
                }
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.close();
                let e = io::Error::new(io::ErrorKind::TimedOut, "no complete reply in time");
                return Err(FtpError::io(format!("waiting for the reply to {label}"), e));
            }
            let read = match self.control.tcp().set_read_timeout(Some(left.max(Duration::from_millis(1)))) {
                Ok(()) => self.control.read_once(&mut buf),
                Err(e) => Err(e),
            };
            match read {
                Ok(Some(0)) => {
                    self.close();
                    return Err(FtpError::Closed);
                }
                Ok(Some(n)) => self.parser.push(&buf[..n]),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close();
                    return Err(FtpError::io(format!("waiting for the reply to {label}"), e));
                }
            }
        }
    }

    /// Closes the control connection for good.
    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            // The peer may already be gone; there is nothing left to report.
            let _ = self.control.tcp().shutdown(Shutdown::Both);
        }
    }
}

/// Opens a TCP connection to `host:port`, trying each address the name resolves to, with the timeouts set; returns
/// it with `host:port` as it is shown in messages.
fn open_control(host: &str, port: u16, timeout: Duration) -> Result<(TcpStream, String), FtpError> {
    if timeout.is_zero() {
        return Err(FtpError::Io(io::Error::new(io::ErrorKind::InvalidInput, "the timeout must be positive")));
    }
    let host = strip_brackets(host);
    let target = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    };
    let addrs: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|e| FtpError::io(format!("resolving {host}"), e))?.collect();
    let mut last_error = None;
    let mut control = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                control = Some(stream);
                break;
            }
            Err(e) => last_error = Some(FtpError::io(format!("connecting to {addr}"), e)),
        }
    }
    let Some(control) = control else {
        return Err(last_error.unwrap_or_else(|| {
            FtpError::Io(io::Error::new(io::ErrorKind::NotFound, format!("resolving {host}: no address")))
        }));
    };
    let setup = |e| FtpError::io(format!("setting up the connection to {target}"), e);
    control.set_nodelay(true).map_err(setup)?;
    control.set_read_timeout(Some(timeout)).map_err(setup)?;
    control.set_write_timeout(Some(timeout)).map_err(setup)?;
    Ok((control, target))
}

/// `host` without the brackets around an IPv6 literal.
fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// Why a transfer stopped early: on our side (the caller's reader or writer) or on the network.
enum Failure {
    Local(FtpError),
    Remote(FtpError),
}

/// Refuses a command line with a line break inside, which would smuggle in a second command (the error shows the
/// line with its password hidden).
pub fn check_command_line(line: &str) -> Result<(), FtpError> {
    if line.contains(['\r', '\n']) {
        let label = mask_password(line);
        return Err(FtpError::Protocol(format!("{label:?}: a command cannot contain a line break")));
    }
    Ok(())
}

/// The server's refusal (426, 451, 552 ...) explains a failed transfer better than the network error, if it sent one.
pub fn better_error(line: &str, reply: Result<Reply, FtpError>, err: FtpError) -> FtpError {
    match reply {
        Ok(reply) if !TRANSFER_DONE.contains(&reply.code) => FtpError::Unexpected { command: line.to_string(), reply },
        _ => err,
    }
}

/// `reply` if its code is one of `accepted`.
fn expect(command: &str, reply: Reply, accepted: &[u16]) -> Result<Reply, FtpError> {
    if accepted.contains(&reply.code) {
        Ok(reply)
    } else {
        Err(FtpError::Unexpected { command: command.to_string(), reply })
    }
}

/// The command line as it may be shown: the argument of PASS is hidden.
fn mask_password(line: &str) -> String {
    let verb = line.split(' ').next().unwrap_or_default();
    if verb.eq_ignore_ascii_case("PASS") {
        "PASS ****".to_string()
    } else {
        line.to_string()
    }
}

fn with_optional_arg(verb: &str, arg: Option<&str>) -> String {
    match arg {
        Some(arg) => format!("{verb} {arg}"),
        None => verb.to_string(),
    }
}

/// The lines of NLST data: CRLF or LF separated, blank lines dropped.
fn split_name_list(data: &str) -> Vec<String> {
    data.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// The path in a 257 reply: the text between the first double quote and the next lone one, with each doubled
/// quote inside standing for one quote (RFC 959 appendix II). `None` if there is no complete quoted path.
pub fn parse_quoted_path(text: &str) -> Option<String> {
    let start = text.find('"')? + 1;
    let mut path = String::new();
    let mut chars = text[start..].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            path.push(c);
        } else if chars.peek() == Some(&'"') {
            chars.next();
            path.push('"');
        } else {
            return Some(path);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 959 appendix II: the path is quoted, and a quote inside it is doubled.
    #[test]
    fn quoted_path_forms() {
        assert_eq!(parse_quoted_path("\"/\" is the current directory").as_deref(), Some("/"));
        assert_eq!(parse_quoted_path("\"/a \"\"b\"\" c\" created").as_deref(), Some("/a \"b\" c"));
        assert_eq!(parse_quoted_path("\"\"\"\"").as_deref(), Some("\""));
        assert_eq!(parse_quoted_path("\"\" empty").as_deref(), Some(""));
        assert_eq!(parse_quoted_path("current directory is /home"), None);
        assert_eq!(parse_quoted_path("\"/unterminated"), None);
        assert_eq!(parse_quoted_path("MKD ok \"/x y\"").as_deref(), Some("/x y"));
    }

    #[test]
    fn password_is_masked_whatever_the_case() {
        assert_eq!(mask_password("PASS secret"), "PASS ****");
        assert_eq!(mask_password("pass secret"), "PASS ****");
        assert_eq!(mask_password("PASSX y"), "PASSX y");
        assert_eq!(mask_password("USER bob"), "USER bob");
    }

    #[test]
    fn name_list_accepts_crlf_and_lf() {
        assert_eq!(split_name_list("a\r\nb c\r\n\r\nd\n"), vec!["a", "b c", "d"]);
        assert!(split_name_list("").is_empty());
    }

    #[test]
    fn expected_codes() {
        let ok = Reply { code: 250, lines: vec!["ok".into()] };
        assert!(expect("CWD x", ok.clone(), &[250]).is_ok());
        match expect("CWD x", ok, &[257]) {
            Err(FtpError::Unexpected { command, reply }) => {
                assert_eq!(command, "CWD x");
                assert_eq!(reply.code, 250);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
