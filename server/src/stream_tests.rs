//! [`Stream`] over real loopback sockets: the server side non-blocking and driven by its own `mio::Poll` as the
//! loop would, the client a blocking rustls client in a thread. Every wait is bounded.

use std::net::{Shutdown, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::*;

const LIMIT: Duration = Duration::from_secs(10);

type Client = StreamOwned<ClientConnection, StdStream>;

/// The server side of one TLS connection and the poll that reports its readiness.
struct Server {
    poll: Poll,
    events: Events,
    stream: Stream,
    deadline: Instant,
}

impl Server {
    /// Calls `f` until it returns `Some`, waiting for readiness whenever it reports `WouldBlock` or `None`.
    #[track_caller]
    fn drive<T>(&mut self, mut f: impl FnMut(&mut Stream) -> io::Result<Option<T>>) -> io::Result<T> {
        loop {
            match f(&mut self.stream) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let left = self.deadline.checked_duration_since(Instant::now()).expect("test took too long");
            self.poll.poll(&mut self.events, Some(left)).unwrap();
        }
    }

    /// Writes all of `data` in 1 KiB chunks, as a transfer would.
    fn send(&mut self, data: &[u8]) {
        let mut pos = 0;
        self.drive(|s| {
            while pos < data.len() {
                pos += s.write(&data[pos..(pos + 1024).min(data.len())])?;
            }
            Ok(Some(()))
        })
        .unwrap();
    }

    /// Reads in 1 KiB chunks until end of stream or an error.
    fn receive(&mut self) -> (Vec<u8>, io::Result<()>) {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let end = self.drive(|s| loop {
            match s.read(&mut buf)? {
                0 => return Ok(Some(())),
                n => got.extend_from_slice(&buf[..n]),
            }
        });
        (got, end)
    }

    fn close_notify(&mut self) {
        self.drive(|s| Ok(s.close_notify()?.then_some(()))).unwrap();
    }
}

/// A TLS server stream and a client thread running `client` on its end.
fn pair<R: Send + 'static>(client: impl FnOnce(Client) -> R + Send + 'static) -> (Server, JoinHandle<R>) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    crate::tls::write_self_signed(&cert, &key, &[]).unwrap();
    let server_config = crate::tls::load_config(&cert, &key).unwrap().data;
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&cert).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let sock = StdStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(LIMIT)).unwrap();
        sock.set_write_timeout(Some(LIMIT)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::new(client_config), name).unwrap();
        client(StreamOwned::new(conn, sock))
    });
    let (sock, _) = listener.accept().unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut sock = mio::net::TcpStream::from_std(sock);
    let poll = Poll::new().unwrap();
    poll.registry().register(&mut sock, Token(0), Interest::READABLE | Interest::WRITABLE).unwrap();
    let mut stream = Stream::plain(sock);
    stream.start_tls(server_config).unwrap();
    let deadline = Instant::now() + LIMIT;
    (Server { poll, events: Events::with_capacity(16), stream, deadline }, handle)
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

// A download: the server only writes, which drives the handshake too; the client gets every byte and a clean
// end (close_notify), and the handshake is summarised once.
#[test]
fn download_is_exact_and_ends_cleanly() {
    let (mut server, client) = pair(|mut c| {
        let mut got = Vec::new();
        c.read_to_end(&mut got).map(|_| got)
    });
    let sent = data(300_001);
    server.send(&sent);
    let summary = server.stream.take_handshake_summary().expect("handshake summary");
    assert!(summary.contains("full handshake"), "{summary}");
    assert_eq!(server.stream.take_handshake_summary(), None);
    server.close_notify();
    assert_eq!(client.join().unwrap().expect("clean end of stream"), sent);
}

// An empty download never writes: the handshake still completes before close_notify, so the client gets an empty
// file, not a failed connection.
#[test]
fn empty_download_still_handshakes() {
    let (mut server, client) = pair(|mut c| {
        let mut got = Vec::new();
        c.read_to_end(&mut got).map(|_| got)
    });
    server.drive(|s| Ok(s.complete_handshake()?.then_some(()))).unwrap();
    server.close_notify();
    assert_eq!(client.join().unwrap().expect("clean end of stream"), b"");
}

// An upload ends at the client's close_notify: reads return 0 then.
#[test]
fn upload_ends_at_close_notify() {
    let sent = data(200_003);
    let copy = sent.clone();
    let (mut server, client) = pair(move |mut c| {
        c.write_all(&copy).unwrap();
        c.conn.send_close_notify();
        c.flush().unwrap();
        // Wait for the server's close_notify, as ftplib's unwrap() does.
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).map(|_| rest.len())
    });
    let (got, end) = server.receive();
    end.unwrap();
    assert_eq!(got, sent);
    server.close_notify();
    assert_eq!(client.join().unwrap().unwrap(), 0);
}

// A TCP end without close_notify is not the end of an upload but a cut: UnexpectedEof, after the bytes that came.
#[test]
fn upload_cut_without_close_notify_is_unexpected_eof() {
    let (mut server, client) = pair(|mut c| {
        c.write_all(&data(5000)).unwrap();
        c.flush().unwrap();
        c.sock.shutdown(Shutdown::Write).unwrap();
        // Keep the socket open until the server has seen the end.
        let mut rest = Vec::new();
        let _ = c.sock.read_to_end(&mut rest);
    });
    let (got, end) = server.receive();
    assert_eq!(got, data(5000));
    assert_eq!(end.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    drop(server);
    client.join().unwrap();
}

// Plaintext on a TLS connection (a plain FTP client on the implicit port) is an error, not a hang.
#[test]
fn plaintext_on_tls_is_an_error() {
    let (mut server, client) = pair(|mut c| {
        c.sock.write_all(b"USER anonymous\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = c.sock.read_to_end(&mut rest);
    });
    let (_, end) = server.receive();
    assert_eq!(end.unwrap_err().kind(), io::ErrorKind::InvalidData);
    drop(server);
    client.join().unwrap();
}

// While the client does not read, ciphertext waits inside the stream for one write at most: every later write
// reports WouldBlock instead of buffering more, and WRITABLE is wanted. Once the client reads, all of it arrives.
#[test]
fn waiting_ciphertext_is_bounded() {
    let (go, wait) = mpsc::channel::<()>();
    let (mut server, client) = pair(move |mut c| {
        while c.conn.is_handshaking() {
            c.conn.complete_io(&mut c.sock).unwrap();
        }
        wait.recv_timeout(LIMIT).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).map(|_| got)
    });
    let sent = data(64 << 20);
    let chunk = 1024;
    let mut pos = 0;
    // Until the socket buffers are full.
    server
        .drive(|s| loop {
            match s.write(&sent[pos..pos + chunk]) {
                Ok(n) => pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !s.is_handshaking() => return Ok(Some(())),
                Err(e) => return Err(e),
            }
        })
        .unwrap();
    assert!(pos < sent.len(), "the client's buffers took 64 MiB");
    assert!(server.stream.wants_write());
    // The socket may still drain a little (a late window update): what the stream takes meanwhile stays within
    // its bound instead of growing with every write.
    let before = pos;
    for _ in 0..100 {
        match server.stream.write(&sent[pos..pos + chunk]) {
            Ok(n) => pos += n,
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
        }
    }
    assert!(pos - before <= 32 * chunk, "took {} bytes while the socket was full", pos - before);
    go.send(()).unwrap();
    let stop = pos + 10 * chunk;
    server.send(&sent[pos..stop]);
    server.close_notify();
    assert_eq!(client.join().unwrap().unwrap(), sent[..stop]);
}

impl Stream {
    fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.is_handshaking())
    }
}
