//! A bare control connection for the sessions `idle` holds: connect (optionally from a chosen source address),
//! read the greeting, log in, and later ask each one NOOP.
//!
//! [`ftp_client::FtpClient`] connects from whatever address the system picks; holding tens of thousands of sessions
//! to one server needs more source ports than one address has, so these connections bind a source address of
//! 127.0.0.2-254 first. They never transfer data, so a reply parser over the socket is all they need.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ftp_client::{FtpError, Reply};
use ftp_common::ReplyParser;
use socket2::{Domain, Protocol, Socket, Type};

/// Source addresses used when spreading: 127.0.0.2 to 127.0.0.254.
const SPREAD_FIRST: u8 = 2;
const SPREAD_COUNT: usize = 253;

/// The source address of session `index` when spreading.
pub fn spread_source(index: usize) -> IpAddr {
    let last = SPREAD_FIRST as usize + index % SPREAD_COUNT;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last as u8))
}

/// One logged-in control connection that only ever sends NOOP.
pub struct Control {
    stream: TcpStream,
    parser: ReplyParser,
}

impl Control {
    /// Connects to `target` (from `source`, when given), reads the 220 greeting and logs in.
    pub fn open(
        target: SocketAddr,
        source: Option<IpAddr>,
        user: &str,
        pass: &str,
        timeout: Duration,
    ) -> Result<Control, FtpError> {
        let socket = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| io_error("creating a socket", e))?;
        if let Some(ip) = source {
            socket.bind(&SocketAddr::new(ip, 0).into()).map_err(|e| io_error(format!("binding {ip}"), e))?;
        }
        socket.connect_timeout(&target.into(), timeout).map_err(|e| io_error(format!("connecting to {target}"), e))?;
        let stream: TcpStream = socket.into();
        let setup = |e| io_error(format!("setting up the connection to {target}"), e);
        stream.set_nodelay(true).map_err(setup)?;
        stream.set_write_timeout(Some(timeout)).map_err(setup)?;
        let mut control = Control { stream, parser: ReplyParser::default() };
        let deadline = Instant::now() + timeout;
        let mut greeting = control.read_reply("greeting", deadline)?;
        while greeting.code == 120 {
            greeting = control.read_reply("greeting", deadline)?;
        }
        expect("greeting", greeting, &[220])?;
        let line = format!("USER {user}");
        control.send(&line)?;
        let reply = control.read_reply(&line, Instant::now() + timeout)?;
        if reply.code == 331 {
            control.send(&format!("PASS {pass}"))?;
            let reply = control.read_reply("PASS ****", Instant::now() + timeout)?;
            expect("PASS ****", reply, &[230, 202])?;
        } else {
            expect(&line, reply, &[230])?;
        }
        Ok(control)
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) -> Result<(), FtpError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        let label = if line.starts_with("PASS ") { "PASS ****" } else { line };
        self.stream.write_all(&bytes).map_err(|e| io_error(format!("sending {label}"), e))
    }

    /// Reads one complete reply, giving up at `deadline`.
    pub fn read_reply(&mut self, label: &str, deadline: Instant) -> Result<Reply, FtpError> {
        let mut buf = [0u8; 1024];
        loop {
            match self.parser.pop() {
                Some(Ok(reply)) => return Ok(reply),
                Some(Err(e)) => return Err(FtpError::Protocol(format!("{label}: {e}"))),
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let e = io::Error::new(io::ErrorKind::TimedOut, "no complete reply in time");
                return Err(io_error(format!("waiting for the reply to {label}"), e));
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| io_error("setting a read timeout", e))?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(FtpError::Closed),
                Ok(n) => self.parser.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(format!("waiting for the reply to {label}"), e)),
            }
        }
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

/// An I/O error with what was being done; the kind is kept.
pub fn io_error(context: impl std::fmt::Display, e: io::Error) -> FtpError {
    FtpError::Io(io::Error::new(e.kind(), format!("{context}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn spread_covers_127_0_0_2_to_254() {
        assert_eq!(spread_source(0), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(spread_source(252), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 254)));
        assert_eq!(spread_source(253), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    }

    #[test]
    fn logs_in_from_a_chosen_source() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let target = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, from) = listener.accept().expect("accept");
            s.write_all(b"220-hello\r\n220 there\r\n").expect("greet");
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.ends_with(b"PASS pw\r\n") {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
                if got.ends_with(b"USER u\r\n") {
                    s.write_all(b"331 password\r\n").expect("331");
                }
            }
            s.write_all(b"230 in\r\n").expect("230");
            from
        });
        let source = spread_source(5);
        let control = Control::open(target, Some(source), "u", "pw", Duration::from_secs(10)).expect("login");
        assert_eq!(server.join().expect("server").ip(), source);
        drop(control);
    }
}
