//! [`FtpStream`]: one TCP connection of an FTP session, plain or with TLS over it.
//!
//! The control connection and every data connection are an `FtpStream`, so the code that reads replies and moves
//! data does not care whether TLS is on. The TCP socket underneath keeps its read and write timeouts, which bound
//! each socket operation of the TLS layer too. The TLS side is rustls's blocking `StreamOwned`, plus two things it
//! lacks: a handshake with an overall deadline and a read that touches the socket at most once, so a caller with a
//! deadline of its own (waiting for a reply) stays in control of the time.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

/// A TCP connection, plain or TLS-protected (the client is always the TLS client, as RFC 4217 §7 requires even
/// when the server opened the connection).
#[derive(Debug)]
pub enum FtpStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl FtpStream {
    /// Runs the TLS handshake of `conn` over `tcp` to its end, within `timeout` in all; the socket's read timeout
    /// is `timeout` again afterwards.
    pub(crate) fn handshake(mut conn: ClientConnection, mut tcp: TcpStream, timeout: Duration) -> io::Result<Self> {
        let deadline = Instant::now() + timeout;
        while conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake did not finish in time"));
            }
            tcp.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match conn.complete_io(&mut tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        tcp.set_read_timeout(Some(timeout))?;
        Ok(FtpStream::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            FtpStream::Plain(tcp) => tcp,
            FtpStream::Tls(tls) => &tls.sock,
        }
    }

    /// The TLS connection, when there is one: protocol version, cipher suite, whether the session was resumed.
    pub fn tls(&self) -> Option<&ClientConnection> {
        match self {
            FtpStream::Plain(_) => None,
            FtpStream::Tls(tls) => Some(&tls.conn),
        }
    }

    /// Ends the sending side: TLS close_notify (so the peer can tell the end from a cut), then TCP FIN. The peer
    /// can still be read from.
    pub fn finish(&mut self) -> io::Result<()> {
        if let FtpStream::Tls(tls) = self {
            tls.conn.send_close_notify();
            tls.flush()?;
        }
        self.tcp().shutdown(Shutdown::Write)
    }

    /// Takes in whatever the peer has sent that is already here, without waiting, and discards any data in it. On a
    /// TLS 1.3 upload connection that is the server's session tickets, which the client never reads otherwise and
    /// which later data connections resume the session with. Call it after the server's reply to an upload and
    /// before closing: closing a socket with unread data resets the connection.
    pub fn take_in_pending(&mut self) {
        let FtpStream::Tls(tls) = self else { return };
        if tls.sock.set_nonblocking(true).is_err() {
            return;
        }
        let mut discard = [0u8; 4096];
        // Ends at would-block, at the end of the stream or at any error: whatever came in has been processed.
        while matches!(tls.conn.read_tls(&mut tls.sock), Ok(n) if n > 0) && tls.conn.process_new_packets().is_ok() {
            while matches!(tls.conn.reader().read(&mut discard), Ok(n) if n > 0) {}
        }
        let _ = tls.sock.set_nonblocking(false);
    }

    /// Reads with at most one read from the socket: `Some(n)` bytes (`Some(0)` at the end of the stream), or `None`
    /// when what arrived was TLS bookkeeping (a session ticket, part of a record) and no data yet. The end of the
    /// stream counts as an end with or without TLS close_notify: the caller frames what it reads (FTP replies), so
    /// a cut is visible to it anyway.
    pub(crate) fn read_once(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let tls = match self {
            FtpStream::Plain(tcp) => return tcp.read(buf).map(Some),
            FtpStream::Tls(tls) => &mut **tls,
        };
        if let Some(n) = plaintext(&mut tls.conn, buf)? {
            return Ok(Some(n));
        }
        // Replies the TLS layer owes the peer (a key update) go out first.
        while tls.conn.wants_write() {
            tls.conn.write_tls(&mut tls.sock)?;
        }
        tls.conn.read_tls(&mut tls.sock)?;
        if let Err(e) = tls.conn.process_new_packets() {
            // The alert that explains the failure, if the socket takes it.
            let _ = tls.conn.write_tls(&mut tls.sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        plaintext(&mut tls.conn, buf)
    }
}

/// Decrypted data already received: `Some(n)`, `Some(0)` at the end, `None` when there is none yet.
fn plaintext(conn: &mut ClientConnection, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match conn.reader().read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
        Err(e) => Err(e),
    }
}

impl Read for FtpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            FtpStream::Plain(tcp) => tcp.read(buf),
            FtpStream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for FtpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            FtpStream::Plain(tcp) => tcp.write(buf),
            FtpStream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            FtpStream::Plain(tcp) => tcp.flush(),
            FtpStream::Tls(tls) => tls.flush(),
        }
    }
}
