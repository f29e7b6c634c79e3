//! FTPS on an [`FtpClient`] (RFC 4217): implicit TLS from the first byte, explicit TLS with AUTH TLS, and TLS on
//! every data connection once PROT P is accepted.
//!
//! Every TLS connection of a session is made from one rustls config (the [`TlsConfig`]'s, with a session cache of
//! the session's own) and checked against the same server name (the host the session was opened with), so each
//! data connection offers to resume the control connection's TLS session: with TLS 1.2 the same session every
//! time; with TLS 1.3 with a ticket from the control connection or from an earlier data connection of the session
//! (rustls uses each ticket once, and servers hand out new ones on each connection). Bytes the server sends after
//! its 234 reply and before the handshake are discarded unread: they are not protected, and taking them as
//! replies would let anyone on the path inject them.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use ftp_common::ReplyParser;
use log::debug;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, StreamOwned};

use super::{open_control, FtpClient};
use crate::tls::server_name;
use crate::{FtpError, FtpStream, TlsConfig};

/// The TLS state of a session whose control connection is protected.
#[derive(Debug)]
pub(super) struct TlsSession {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// PROT P accepted: every data connection is TLS.
    pub(super) protected: bool,
}

/// TLS sessions (TLS 1.2) and tickets (TLS 1.3) one session keeps for resuming.
const SESSION_CACHE: usize = 32;

impl TlsSession {
    /// A session of its own: sessions sharing one [`TlsConfig`] do not resume each other's TLS sessions, which
    /// servers that check that a data connection belongs to its control connection would refuse.
    fn new(tls: &TlsConfig, server_name: ServerName<'static>) -> TlsSession {
        let mut config = ClientConfig::clone(tls.rustls_config());
        config.resumption = Resumption::in_memory_sessions(SESSION_CACHE);
        TlsSession { config: Arc::new(config), server_name, protected: false }
    }

    /// A client connection to the session's server, not yet started.
    fn connection(&self) -> Result<ClientConnection, FtpError> {
        ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| FtpError::Protocol(format!("setting up TLS: {e}")))
    }
}

impl FtpClient {
    /// Connects to `host:port` with implicit TLS (the `ftps://` scheme, port 990 by convention): the TLS handshake
    /// comes first, then the 220 greeting over it. The server's certificate must be valid for `host` as
    /// `tls` decides. [`FtpClient::login`] then protects the data connections as well.
    pub fn connect_implicit_tls(
        host: &str,
        port: u16,
        timeout: Duration,
        tls: &TlsConfig,
    ) -> Result<FtpClient, FtpError> {
        let name = server_name(host)?;
        let (tcp, target) = open_control(host, port, timeout)?;
        let session = TlsSession::new(tls, name);
        let stream = FtpStream::handshake(session.connection()?, tcp, timeout)
            .map_err(|e| FtpError::tls(format!("TLS handshake with {target}"), e))?;
        FtpClient::greet(stream, host, &target, timeout, Some(session))
    }

    /// Protects the control connection with TLS (explicit FTPS): AUTH TLS, which the server must accept with
    /// 234, then the TLS handshake. A refusal leaves the session as it was (plain); a failed handshake closes it.
    /// Call it before logging in so the password is protected; [`FtpClient::login`] then protects the data
    /// connections too.
    pub fn auth_tls(&mut self, tls: &TlsConfig) -> Result<(), FtpError> {
        if matches!(self.control, FtpStream::Tls(_)) {
            return Err(FtpError::Protocol("AUTH TLS: the control connection is already protected".into()));
        }
        let name = server_name(&self.host)?;
        self.command("AUTH TLS", &[234])?;
        self.parser = ReplyParser::default();
        let session = TlsSession::new(tls, name);
        // A second handle on the socket for the TLS stream to own; the plain one is dropped once TLS is up.
        let plain = self.control.tcp().try_clone();
        let label = format!("TLS handshake with {}", self.peer);
        let handshake = match plain {
            Ok(tcp) => session
                .connection()
                .and_then(|conn| FtpStream::handshake(conn, tcp, self.timeout).map_err(|e| FtpError::tls(&label, e))),
            Err(e) => Err(FtpError::io(&label, e)),
        };
        match handshake {
            Ok(stream) => {
                // The plain handle is dropped; the socket lives on in the TLS stream.
                self.control = stream;
                self.tls = Some(session);
                // What the server offers may change once the connection is protected.
                self.features = None;
                debug!("control connection: {}", self.tls_summary().unwrap_or_default());
                Ok(())
            }
            Err(e) => {
                self.close();
                Err(e)
            }
        }
    }

    /// Makes every later data connection TLS: PBSZ 0, then PROT P (RFC 4217 §8, §9), each answered with 200. Needs
    /// a protected control connection; [`FtpClient::login`] calls it.
    pub fn protect_data(&mut self) -> Result<(), FtpError> {
        if self.tls.is_none() {
            return Err(FtpError::Protocol("PROT P needs TLS on the control connection first".into()));
        }
        self.command("PBSZ 0", &[200])?;
        self.command("PROT P", &[200])?;
        if let Some(tls) = &mut self.tls {
            tls.protected = true;
        }
        Ok(())
    }

    /// True when the control connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// True when data connections are TLS (PROT P accepted).
    pub fn is_data_protected(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.protected)
    }

    /// The control connection's TLS version and cipher suite (`TLS 1.3, TLS13_AES_256_GCM_SHA384`); `None` without TLS.
    pub fn tls_summary(&self) -> Option<String> {
        self.control.tls().map(describe)
    }

    /// Opens a passive data connection ([`FtpClient::open_data_connection`]), as TLS when data is protected. The
    /// TLS handshake happens on the first read or write, which must come after the transfer command: a server
    /// need not start TLS on the connection before it.
    pub fn open_data_stream(&mut self) -> Result<FtpStream, FtpError> {
        let tcp = self.open_data_connection()?;
        match self.tls.as_ref().filter(|tls| tls.protected) {
            Some(tls) => Ok(FtpStream::Tls(Box::new(StreamOwned::new(tls.connection()?, tcp)))),
            None => Ok(FtpStream::Plain(tcp)),
        }
    }

    /// The data connection for `line`, after the TLS handshake when data is protected.
    pub(super) fn secure_data(&self, tcp: TcpStream, line: &str) -> Result<FtpStream, FtpError> {
        let Some(tls) = self.tls.as_ref().filter(|tls| tls.protected) else {
            return Ok(FtpStream::Plain(tcp));
        };
        let stream = FtpStream::handshake(tls.connection()?, tcp, self.timeout)
            .map_err(|e| FtpError::tls(format!("{line}: TLS handshake on the data connection"), e))?;
        if let Some(conn) = stream.tls() {
            let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
            debug!("data connection: {}, session {}", describe(conn), if resumed { "resumed" } else { "new" });
        }
        Ok(stream)
    }
}

/// `TLS 1.3, TLS13_AES_256_GCM_SHA384`.
fn describe(conn: &ClientConnection) -> String {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "TLS".to_string(),
    };
    match conn.negotiated_cipher_suite() {
        Some(suite) => format!("{version}, {:?}", suite.suite()),
        None => version,
    }
}
