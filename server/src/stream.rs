//! A connection's byte stream, plain TCP or TLS, with the non-blocking semantics the loop relies on.
//!
//! [`Stream`] is what control and data connections hold. Plain, it is the socket itself. With TLS (after AUTH TLS,
//! on the implicit port, or on a PROT P data connection) reads pull ciphertext from the socket into rustls and
//! return plaintext, and writes hand plaintext to rustls and push ciphertext out as far as the socket takes it.
//! Either way `WouldBlock` means what it means for a socket: readiness will be announced when progress is possible,
//! because the socket itself returned `WouldBlock`. At most one write's worth of ciphertext waits inside rustls: a
//! write that finds ciphertext still unsent sends that first and reports `WouldBlock` if it cannot, so a transfer's
//! 1 KiB chunks stay 1 KiB records on the wire and no connection buffers more than the loop's fairness allows.
//! [`Stream::wants_write`] tells the loop to ask for `WRITABLE` while ciphertext waits. This module never decides
//! replies and never blocks.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{HandshakeKind, ServerConfig, ServerConnection};

/// A connection's stream: the socket, and the TLS state once TLS is on.
pub struct Stream {
    sock: TcpStream,
    tls: Option<Box<Tls>>,
}

struct Tls {
    conn: ServerConnection,
    /// The socket reported end of stream (rustls knows too, and says so on the next read).
    eof: bool,
    /// close_notify has been queued; it is sent once.
    notified: bool,
    /// The handshake finished and the loop has not yet been told (for its log line).
    fresh: bool,
}

impl Stream {
    pub fn plain(sock: TcpStream) -> Stream {
        Stream { sock, tls: None }
    }

    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// The socket, to register it with the poll.
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// From now on the stream speaks TLS as the server side. Whatever was written before went out in plaintext
    /// (the caller flushes the 234 first); whatever arrives next is the client's handshake.
    pub fn start_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        self.tls = Some(Box::new(Tls { conn, eof: false, notified: false, fresh: false }));
        Ok(())
    }

    /// Ciphertext is waiting for the socket to take it: the loop must ask for `WRITABLE`.
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.wants_write())
    }

    /// Pushes waiting ciphertext to the socket until it is all out (`true`) or the socket would block (`false`).
    pub fn send_pending(&mut self) -> io::Result<bool> {
        match &mut self.tls {
            None => Ok(true),
            Some(tls) => tls.send(&mut self.sock),
        }
    }

    /// Drives the TLS handshake to its end; `true` once done (or plain). A download with nothing to send ends
    /// before its first write, yet the client expects a handshake before the end, or it sees a failed connection.
    pub fn complete_handshake(&mut self) -> io::Result<bool> {
        match &mut self.tls {
            None => Ok(true),
            Some(tls) => tls.handshake(&mut self.sock),
        }
    }

    /// Queues TLS close_notify (once) and sends what it can; `true` when nothing is left to send. Plain: `true`.
    pub fn close_notify(&mut self) -> io::Result<bool> {
        let Some(tls) = &mut self.tls else { return Ok(true) };
        if !tls.notified {
            tls.notified = true;
            tls.conn.send_close_notify();
        }
        tls.send(&mut self.sock)
    }

    /// Once, after the handshake completes: the protocol, cipher suite and whether the session was resumed.
    pub fn take_handshake_summary(&mut self) -> Option<String> {
        let tls = self.tls.as_mut().filter(|t| t.fresh)?;
        tls.fresh = false;
        let c = &tls.conn;
        let version = c.protocol_version().map_or_else(|| "?".to_string(), |v| format!("{v:?}"));
        let suite = c.negotiated_cipher_suite().map_or_else(|| "?".to_string(), |s| format!("{:?}", s.suite()));
        let kind = match c.handshake_kind() {
            Some(HandshakeKind::Resumed) => "resumed session",
            _ => "full handshake",
        };
        Some(format!("{version} {suite}, {kind}"))
    }
}

impl Tls {
    fn send(&mut self, sock: &mut TcpStream) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads and answers handshake messages until the handshake is done (`true`) or the socket would block.
    fn handshake(&mut self, sock: &mut TcpStream) -> io::Result<bool> {
        while self.conn.is_handshaking() {
            if self.eof {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the TLS handshake"));
            }
            if !self.receive(sock)? || self.conn.wants_write() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads ciphertext once and processes it; `Ok(false)` when the socket had nothing (`WouldBlock`).
    fn receive(&mut self, sock: &mut TcpStream) -> io::Result<bool> {
        let handshaking = self.conn.is_handshaking();
        let read = loop {
            match self.conn.read_tls(sock) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match read {
            Ok(0) => self.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Err(e) = self.conn.process_new_packets() {
            // rustls queued an alert saying why; a last attempt to send it, then the error.
            let _ = self.send(sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if handshaking && !self.conn.is_handshaking() {
            self.fresh = true;
        }
        // Handshake replies, session tickets and alerts go out at once.
        self.send(sock)?;
        Ok(true)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else { return self.sock.read(buf) };
        loop {
            match tls.conn.reader().read(buf) {
                // Ok(0) only after the peer's close_notify. A TCP end without it is `UnexpectedEof`: an upload
                // cut short by a forged FIN must not pass for a complete file (curl, lftp and ftplib all end
                // their uploads with close_notify).
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if tls.eof {
                // rustls reports the end itself; this only guards against reading past it.
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if !tls.receive(&mut self.sock)? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
    }
}

impl Write for Stream {
    /// Plaintext goes to rustls only when no earlier ciphertext is still waiting and the handshake is done, so a
    /// write is accepted only when the socket is keeping up (see the module comment).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else { return self.sock.write(buf) };
        if !tls.send(&mut self.sock)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // A download (or a greeting on the implicit port) only writes: it drives the handshake by reading.
        if !tls.handshake(&mut self.sock)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.conn.writer().write(buf)?;
        tls.send(&mut self.sock)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending().map(|_| ())
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
