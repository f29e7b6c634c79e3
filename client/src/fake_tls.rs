//! A scripted FTPS server for tests: like [`crate::fake_server`], one thread and one control connection on
//! 127.0.0.1, but the script can switch the control connection to TLS (after AUTH TLS, or from the start for
//! implicit TLS) and serve TLS data connections, as a rustls server with a fresh self-signed certificate for
//! `localhost` and 127.0.0.1.
//!
//! Every connection of a [`TlsFake`] is made from one rustls `ServerConfig`, so the server resumes a session the
//! client offers again, and a data connection can be checked for having done so.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};

use crate::fake_server::SERVER_WAIT;
use crate::TlsConfig;

/// A self-signed certificate for `localhost` and 127.0.0.1, and the server config that presents it.
pub struct TestCert {
    pub config: Arc<ServerConfig>,
    pub pem: String,
}

impl TestCert {
    /// For `localhost` and 127.0.0.1.
    pub fn new() -> TestCert {
        TestCert::for_names(&["localhost", "127.0.0.1"])
    }

    pub fn for_names(names: &[&str]) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let generated = rcgen::generate_simple_self_signed(names).expect("generate a certificate");
        TestCert::serving(generated.cert, &generated.key_pair)
    }

    /// A certificate for `names` issued by a test CA; [`TestCert::pem`] is the CA's certificate, so trusting it
    /// exercises the standard checks rather than pinning.
    pub fn issued(names: &[&str]) -> TestCert {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key_pair = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(names)
            .expect("params")
            .signed_by(&key_pair, &ca, &ca_key)
            .expect("issued certificate");
        TestCert { pem: ca.pem(), ..TestCert::serving(cert, &key_pair) }
    }

    /// What `openssl req -x509 -subj /CN=localhost` makes: a self-signed CA certificate that names its host only
    /// in the common name.
    pub fn openssl_style() -> TestCert {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key_pair = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key_pair).expect("self-signed");
        TestCert::serving(cert, &key_pair)
    }

    fn serving(cert: rcgen::Certificate, key_pair: &rcgen::KeyPair) -> TestCert {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        TestCert { config: Arc::new(config), pem: cert.pem() }
    }

    /// Writes the certificate as PEM into `dir`; returns its path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("cert.pem");
        std::fs::write(&path, &self.pem).expect("write the certificate");
        path
    }

    /// A client config that trusts this certificate (through a PEM file, as `--ca-file` does).
    pub fn client_config(&self) -> TlsConfig {
        let dir = tempfile::tempdir().expect("tempdir");
        TlsConfig::new(Some(&self.write_pem(dir.path()))).expect("client config")
    }
}

pub struct TlsFake {
    pub addr: SocketAddr,
    handle: JoinHandle<()>,
}

impl TlsFake {
    /// Listens on 127.0.0.1:0, then runs `script` on the first connection, in the clear until it calls
    /// [`TlsPeer::start_tls`].
    pub fn start(cert: &TestCert, script: impl FnOnce(&mut TlsPeer) + Send + 'static) -> TlsFake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        let addr = listener.local_addr().expect("fake server address");
        let config = cert.config.clone();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept control connection");
            set_timeouts(&stream);
            let mut peer = TlsPeer { control: Side::Plain(stream), pending: Vec::new(), config };
            script(&mut peer);
        });
        TlsFake { addr, handle }
    }

    /// Waits for the script to finish; panics if it failed.
    pub fn join(self) {
        if let Err(panic) = self.handle.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

enum Side {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Side {
    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Side::Plain(tcp) => tcp,
            Side::Tls(tls) => &mut **tls,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

pub struct TlsPeer {
    control: Side,
    /// Bytes read past the last line.
    pending: Vec<u8>,
    config: Arc<ServerConfig>,
}

impl TlsPeer {
    /// Sends raw reply text; each `\n` becomes CRLF and a final CRLF is added.
    pub fn send(&mut self, text: &str) {
        let wire = format!("{}\r\n", text.replace('\n', "\r\n"));
        let stream = self.control.stream();
        stream.write_all(wire.as_bytes()).expect("send reply");
        stream.flush().expect("flush reply");
    }

    /// The next command line, without its line end; `None` at the end of the stream.
    pub fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string());
            }
            let mut buf = [0u8; 1024];
            match self.control.stream().read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                // A client that closes without TLS close_notify has still closed, as has one that closes with
                // session tickets unread (the kernel then resets the connection).
                Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => return None,
                Err(e) => panic!("reading a command line: {e}"),
            }
        }
    }

    /// Asserts that the next command line is `line`.
    pub fn expect(&mut self, line: &str) {
        assert_eq!(self.read_line().as_deref(), Some(line));
    }

    /// Expects `line`, then sends `reply`.
    pub fn exchange(&mut self, line: &str, reply: &str) {
        self.expect(line);
        self.send(reply);
    }

    /// Waits until the client closes the control connection.
    pub fn expect_eof(&mut self) {
        assert_eq!(self.read_line(), None);
    }

    /// The server config every connection uses.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// A second handle on the control socket while it is still plain, to misbehave with.
    pub fn plain_socket(&self) -> TcpStream {
        let Side::Plain(tcp) = &self.control else { panic!("TLS is already on") };
        tcp.try_clone().expect("clone the control socket")
    }

    /// Switches the control connection to TLS and completes the handshake. Nothing may have arrived in the clear
    /// beyond the last line read: a client must wait for 234 before starting TLS.
    pub fn start_tls(&mut self) {
        assert!(self.pending.is_empty(), "bytes after AUTH TLS before the handshake: {:?}", self.pending);
        let Side::Plain(tcp) = &self.control else { panic!("TLS is already on") };
        let tcp = tcp.try_clone().expect("clone the control socket");
        self.control = Side::Tls(Box::new(self.accept_tls(tcp)));
    }

    /// The TLS server side of a connection, after its handshake.
    pub fn accept_tls(&self, mut tcp: TcpStream) -> StreamOwned<ServerConnection, TcpStream> {
        let mut conn = ServerConnection::new(self.config.clone()).expect("server connection");
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).expect("TLS handshake (server side)");
        }
        StreamOwned::new(conn, tcp)
    }

    /// The login the client does over TLS: USER, PASS, TYPE I, then PBSZ 0 and PROT P.
    pub fn login_protected(&mut self, user: &str, pass: &str) {
        self.exchange(&format!("USER {user}"), "331 Password required");
        self.exchange(&format!("PASS {pass}"), "230 Logged in");
        self.exchange("TYPE I", "200 Binary");
        self.exchange("PBSZ 0", "200 PBSZ=0");
        self.exchange("PROT P", "200 Protection level set to P");
    }

    /// Answers EPSV with a fresh listener's port.
    pub fn epsv(&mut self) -> TcpListener {
        self.expect("EPSV");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind data listener");
        let port = listener.local_addr().expect("data address").port();
        self.send(&format!("229 Entering Extended Passive Mode (|||{port}|)"));
        listener
    }

    /// Serves a protected download: EPSV, `command`, 150, the TLS handshake (which must resume the control
    /// connection's session), `data`, close_notify, 226.
    pub fn serve_download(&mut self, command: &str, data: &[u8]) {
        let listener = self.epsv();
        self.expect(command);
        let (tcp, _) = listener.accept().expect("accept data connection");
        set_timeouts(&tcp);
        self.send("150 Opening data connection");
        let mut conn = self.accept_tls(tcp);
        assert_eq!(conn.conn.handshake_kind(), Some(HandshakeKind::Resumed), "the data connection resumes");
        conn.write_all(data).expect("send data");
        conn.conn.send_close_notify();
        conn.flush().expect("send close_notify");
        drop(conn);
        self.send("226 Transfer complete");
    }

    /// Serves a protected upload: EPSV, `command`, 150, the TLS handshake (which must resume), everything up to the client's
    /// close_notify, 226; returns what arrived.
    pub fn serve_upload(&mut self, command: &str) -> Vec<u8> {
        let listener = self.epsv();
        self.expect(command);
        let (tcp, _) = listener.accept().expect("accept data connection");
        set_timeouts(&tcp);
        self.send("150 Ok to send data");
        let mut conn = self.accept_tls(tcp);
        assert_eq!(conn.conn.handshake_kind(), Some(HandshakeKind::Resumed), "the data connection resumes");
        let mut data = Vec::new();
        // rustls reports the end as Ok(0) only after close_notify; a bare TCP end is an error here.
        conn.read_to_end(&mut data).expect("upload data ending with close_notify");
        self.send("226 Transfer complete");
        data
    }
}

fn set_timeouts(stream: &TcpStream) {
    stream.set_read_timeout(Some(SERVER_WAIT)).expect("read timeout");
    stream.set_write_timeout(Some(SERVER_WAIT)).expect("write timeout");
}
