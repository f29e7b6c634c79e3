//! Negotiating data connections, passive and active.
//!
//! Passive (the default): EPSV (RFC 2428), or PASV once the server has refused EPSV; the client connects to the
//! control connection's peer IP at once. Active: the client listens on the control connection's local IP on a port
//! of the system's choosing and tells the server with PORT (RFC 959; IPv4), or EPRT (RFC 2428) for IPv6 or once the
//! server has refused PORT. The server connects after the transfer command; that connection is awaited for at most
//! the timeout and accepted only from the server's IP, so nobody else can slip data in or take it out.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ftp_common::hostport::{format_eprt, format_host_port, parse_epsv_reply, parse_pasv_reply};
use ftp_common::Reply;
use log::debug;
use mio::net::TcpListener as MioListener;
use mio::{Events, Interest, Poll, Token};

use super::FtpClient;
use crate::FtpError;

/// A data connection being set up: connected (passive) or waiting for the server (active).
pub(super) enum DataChannel {
    Connected(TcpStream),
    Listening(TcpListener),
}

impl DataChannel {
    /// The connected data stream; in active mode the server's connection from `server_ip`, awaited for at most
    /// `timeout`. Connections from any other address are closed unanswered.
    pub(super) fn establish(self, server_ip: IpAddr, timeout: Duration) -> Result<TcpStream, FtpError> {
        let listener = match self {
            DataChannel::Connected(stream) => return Ok(stream),
            DataChannel::Listening(listener) => listener,
        };
        let local = listener.local_addr().map_err(|e| FtpError::io("reading the data listener's address", e))?;
        let stream = accept_from(listener, server_ip, timeout)
            .map_err(|e| FtpError::io(format!("waiting for the server's data connection to {local}"), e))?;
        configure(&stream, timeout).map_err(|e| FtpError::io("setting up the data connection", e))?;
        debug!("data connection from {}", stream.peer_addr().map_or_else(|_| "?".into(), |a| a.to_string()));
        Ok(stream)
    }
}

impl FtpClient {
    /// Negotiates a passive data connection and connects it: EPSV, or PASV once the server has refused EPSV with
    /// 500, 501 or 502. The connection goes to the control connection's peer IP. It is the bare TCP connection,
    /// without TLS even when data is protected; [`FtpClient::open_data_stream`] adds that.
    pub fn open_data_connection(&mut self) -> Result<TcpStream, FtpError> {
        let addr = self.passive_address()?;
        let data = TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| FtpError::io(format!("opening the data connection to {addr}"), e))?;
        configure(&data, self.timeout)
            .map_err(|e| FtpError::io(format!("setting up the data connection to {addr}"), e))?;
        debug!("data connection to {addr}");
        Ok(data)
    }

    /// The data connection for the next transfer, in the mode chosen with [`FtpClient::set_active`].
    pub(super) fn data_channel(&mut self) -> Result<DataChannel, FtpError> {
        if self.active {
            self.active_listener().map(DataChannel::Listening)
        } else {
            self.open_data_connection().map(DataChannel::Connected)
        }
    }

    /// Listens on the control connection's local IP and announces the address: PORT for IPv4 unless the server
    /// has refused it (500, 501 or 502), EPRT otherwise.
    fn active_listener(&mut self) -> Result<TcpListener, FtpError> {
        let local_ip = self.control.tcp().local_addr().map_err(|e| FtpError::io("reading the local address", e))?.ip();
        let listener = TcpListener::bind((local_ip, 0))
            .map_err(|e| FtpError::io(format!("listening for a data connection on {local_ip}"), e))?;
        let addr = listener.local_addr().map_err(|e| FtpError::io("reading the data listener's address", e))?;
        if let (SocketAddr::V4(v4), false) = (addr, self.port_refused) {
            let line = format!("PORT {}", format_host_port(v4));
            self.send(&line)?;
            let reply = self.read_reply_for(&line)?;
            match reply.code {
                200 => return Ok(listener),
                500..=502 => {
                    debug!("PORT refused ({reply}); using EPRT from now on");
                    self.port_refused = true;
                }
                _ => return Err(FtpError::Unexpected { command: line, reply }),
            }
        }
        self.command(&format!("EPRT {}", format_eprt(addr)), &[200])?;
        Ok(listener)
    }

    /// The address to open the next passive data connection to.
    fn passive_address(&mut self) -> Result<SocketAddr, FtpError> {
        if !self.epsv_refused {
            self.send("EPSV")?;
            let reply = self.read_reply_for("EPSV")?;
            match reply.code {
                229 => {
                    return passive_data_address(self.peer, &reply, false)
                        .ok_or_else(|| FtpError::Protocol(format!("EPSV: no port in {reply}")));
                }
                500..=502 => {
                    debug!("EPSV refused ({reply}); using PASV from now on");
                    self.epsv_refused = true;
                }
                _ => return Err(FtpError::Unexpected { command: "EPSV".into(), reply }),
            }
        }
        let reply = self.command("PASV", &[227])?;
        passive_data_address(self.peer, &reply, self.trust_pasv_host)
            .ok_or_else(|| FtpError::Protocol(format!("PASV: no address in {reply}")))
    }
}

/// Where a passive data connection goes after a 229 (EPSV) or 227 (PASV) reply: the control connection's peer IP
/// and the port the reply names. A 227's own IP is used only when `trust_pasv_host` is set, and never an
/// unspecified one (0.0.0.0), so a server cannot point the client at a third host (PASV bounce). `None` for any
/// other reply and for a reply without a usable port.
pub fn passive_data_address(peer: SocketAddr, reply: &Reply, trust_pasv_host: bool) -> Option<SocketAddr> {
    match reply.code {
        229 => parse_epsv_reply(&reply.text()).map(|port| SocketAddr::new(peer.ip(), port)),
        227 => {
            let addr = parse_pasv_reply(&reply.text()).filter(|a| a.port() != 0)?;
            let ip = if trust_pasv_host && !addr.ip().is_unspecified() { IpAddr::V4(*addr.ip()) } else { peer.ip() };
            Some(SocketAddr::new(ip, addr.port()))
        }
        _ => None,
    }
}

/// Blocking mode with read and write timeouts.
fn configure(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))
}

/// Accepts the first connection from `expected` within `timeout`.
fn accept_from(listener: TcpListener, expected: IpAddr, timeout: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let mut listener = MioListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry().register(&mut listener, Token(0), Interest::READABLE)?;
    let mut events = Events::with_capacity(4);
    let deadline = Instant::now() + timeout;
    let mut refused = None;
    loop {
        // Readiness is reported once per new connection, so every pending one is taken before waiting again.
        loop {
            match listener.accept() {
                Ok((stream, from)) if from.ip().to_canonical() == expected.to_canonical() => {
                    return Ok(TcpStream::from(stream));
                }
                Ok((_, from)) => {
                    debug!("refused a data connection from {from}: the server is {expected}");
                    refused = Some(from);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let msg = match refused {
                Some(from) => format!("no connection from {expected} in time (refused one from {from})"),
                None => format!("no connection from {expected} in time"),
            };
            return Err(io::Error::new(io::ErrorKind::TimedOut, msg));
        }
        match poll.poll(&mut events, Some(left)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The kernel completes a connection before it is accepted, so the client side can connect first.
    #[test]
    fn accepts_only_the_expected_peer() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let stream = accept_from(listener, "127.0.0.1".parse().expect("ip"), Duration::from_secs(10)).expect("accept");
        assert_eq!(stream.peer_addr().expect("peer"), client.local_addr().expect("local"));
    }

    #[test]
    fn other_peers_are_refused_until_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let _client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let start = Instant::now();
        let err = accept_from(listener, "127.0.0.2".parse().expect("ip"), Duration::from_millis(300))
            .expect_err("wrong peer");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("refused one from 127.0.0.1:"), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    // PASV bounce: a 227 naming another host still sends the data connection to the control connection's peer,
    // unless the caller trusts the server's address; 0.0.0.0 is never trusted, port 0 never used.
    #[test]
    fn passive_address_is_the_peers_unless_trusted() {
        let peer: SocketAddr = "127.0.0.1:21".parse().expect("addr");
        let reply = |code, text: &str| Reply { code, lines: vec![text.to_string()] };
        let pasv = reply(227, "Entering Passive Mode (10,0,0,9,4,1).");
        assert_eq!(passive_data_address(peer, &pasv, false), Some("127.0.0.1:1025".parse().expect("addr")));
        assert_eq!(passive_data_address(peer, &pasv, true), Some("10.0.0.9:1025".parse().expect("addr")));
        let unspecified = reply(227, "Entering Passive Mode (0,0,0,0,4,1).");
        assert_eq!(passive_data_address(peer, &unspecified, true), Some("127.0.0.1:1025".parse().expect("addr")));
        assert_eq!(passive_data_address(peer, &reply(227, "(10,0,0,9,0,0)"), true), None);
        let epsv = reply(229, "Entering Extended Passive Mode (|||6446|)");
        assert_eq!(passive_data_address(peer, &epsv, true), Some("127.0.0.1:6446".parse().expect("addr")));
        assert_eq!(passive_data_address(peer, &reply(200, "(|||6446|)"), true), None);
    }
}
