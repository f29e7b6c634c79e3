//! Connections from a `--proxy-from` address (a load balancer): each must start with a PROXY header, read with a
//! deadline and a size bound, before it is anything else. The address the header carries is the client's for
//! everything after: a control connection is admitted (and counted against `--max-per-ip`) as that client; a
//! passive data connection is accepted only if it names the same client as its control connection. A header
//! that is invalid, too long or late closes the connection, and the log says why.
//!
//! The header is read with `peek`, then exactly its length is consumed, so the bytes after it (a TLS
//! ClientHello on the implicit-FTPS port, say) stay in the socket for whoever reads next.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::{Conn, Worker};
use crate::proxy::{self, Parsed, MAX_HEADER};
use crate::session::{canonical, Now};

/// How long a balancer has to send its header once connected (it sends it at once: this is only a bound).
pub(super) const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection awaiting its header will become.
#[derive(Debug, Clone, Copy)]
pub(super) enum Purpose {
    Control {
        implicit: bool,
    },
    /// A data connection to the listening channel `channel` of session number `session` at `owner`.
    Data {
        owner: usize,
        session: u64,
        channel: super::data::DataId,
    },
}

pub(super) struct Pending {
    /// `None` once handed on.
    pub(super) stream: Option<TcpStream>,
    /// The balancer's address (the socket's peer).
    pub(super) peer: SocketAddr,
    pub(super) purpose: Purpose,
    pub(super) deadline: Instant,
}

impl Worker {
    /// Holds a new connection from the balancer until its PROXY header has been read.
    pub(super) fn await_proxy_header(&mut self, mut stream: TcpStream, peer: SocketAddr, purpose: Purpose, now: Now) {
        let key = self.conns.next_key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(key), Interest::READABLE) {
            debug!("{peer}: register: {e}");
            return;
        }
        let deadline = now.mono + PROXY_HEADER_TIMEOUT;
        self.conns.insert(Conn::Proxy(Box::new(Pending { stream: Some(stream), peer, purpose, deadline })));
        self.timers.insert((deadline, key));
        // The header may be in the socket already, and edge-triggered readiness would not say so again.
        self.read_proxy_header(key, now);
    }

    /// Reads the header if it is all there; hands the connection on, or closes it if the header is bad.
    pub(super) fn read_proxy_header(&mut self, key: usize, now: Now) {
        let Some(Conn::Proxy(p)) = self.conns.get_mut(key) else { return };
        let Some(stream) = &p.stream else { return };
        let peer = p.peer;
        let mut buf = [0u8; MAX_HEADER];
        let seen = loop {
            match stream.peek(&mut buf) {
                Ok(0) => {
                    debug!("{peer}: closed before its PROXY header");
                    return self.close(key);
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("{peer}: reading the PROXY header: {e}");
                    return self.close(key);
                }
            }
        };
        let (len, client) = match proxy::parse(&buf[..seen]) {
            Parsed::Incomplete => return,
            Parsed::Invalid(why) => {
                warn!("{peer}: connection from a --proxy-from address refused: {why}");
                self.metrics.refused_proxy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return self.close(key);
            }
            Parsed::Header { len, client } => (len, client),
        };
        let Some(Conn::Proxy(p)) = self.conns.get_mut(key) else { return };
        let (Some(mut stream), purpose) = (p.stream.take(), p.purpose) else { return };
        // The header's bytes are in the socket (peek saw them): consume exactly those.
        let consumed = stream.read_exact(&mut buf[..len]);
        let _ = self.poll.registry().deregister(&mut stream);
        self.close(key);
        if let Err(e) = consumed {
            debug!("{peer}: consuming the PROXY header: {e}");
            return;
        }
        // LOCAL (health checks) and UNKNOWN name no client: the connection is the balancer's own.
        let client = client.unwrap_or(peer);
        debug!("{peer}: PROXY header, client {client}");
        match purpose {
            Purpose::Control { implicit } => self.arrive_as(stream, client, implicit, now),
            Purpose::Data { owner, session, channel } => {
                let Some(Conn::Control(c)) = self.conns.get(owner) else { return };
                let expected = canonical(c.session.peer().ip());
                if canonical(client.ip()) != expected {
                    warn!("session {owner}: refused proxied data connection from {client} (expected {expected})");
                    return;
                }
                self.adopt_data(owner, session, channel, stream);
            }
        }
    }
}
