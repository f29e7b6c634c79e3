//! A scripted FTP server for tests: one thread, one control connection, on 127.0.0.1 port 0.
//!
//! A test writes the server's side of the conversation as a closure over a [`Peer`]: expect this line, send that
//! reply, accept a data connection. Every socket has a read timeout, so a script waiting for a line the client never
//! sends fails instead of hanging; a failed expectation panics the server thread, and [`FakeServer::join`] turns that
//! into a test failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long the fake server waits for any one thing.
pub const SERVER_WAIT: Duration = Duration::from_secs(10);

pub struct FakeServer {
    pub addr: SocketAddr,
    handle: JoinHandle<()>,
}

impl FakeServer {
    /// Listens on 127.0.0.1:0, then runs `script` on the first connection after sending `greeting`.
    pub fn start(greeting: &'static str, script: impl FnOnce(&mut Peer) + Send + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        let addr = listener.local_addr().expect("fake server address");
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept control connection");
            stream.set_read_timeout(Some(SERVER_WAIT)).expect("read timeout");
            stream.set_write_timeout(Some(SERVER_WAIT)).expect("write timeout");
            let reader = BufReader::new(stream.try_clone().expect("clone control"));
            let mut peer = Peer { reader, writer: stream };
            peer.send(greeting);
            script(&mut peer);
        });
        FakeServer { addr, handle }
    }

    /// Waits for the script to finish; panics if it failed.
    pub fn join(self) {
        if let Err(panic) = self.handle.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

pub struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Peer {
    /// Sends raw reply text; each `\n` becomes CRLF and a final CRLF is added.
    pub fn send(&mut self, text: &str) {
        let wire = format!("{}\r\n", text.replace('\n', "\r\n"));
        self.writer.write_all(wire.as_bytes()).expect("send reply");
    }

    /// The next command line from the client, without its line end; `None` at end of stream.
    pub fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read command line");
        (n > 0).then(|| line.trim_end_matches(['\r', '\n']).to_string())
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

    /// Answers FEAT with these feature lines (none: a server that does not know FEAT).
    pub fn feat(&mut self, features: &[&str]) {
        self.expect("FEAT");
        if features.is_empty() {
            self.send("500 Unknown command");
        } else {
            let lines: String = features.iter().map(|f| format!(" {f}\n")).collect();
            self.send(&format!("211-Features:\n{lines}211 End"));
        }
    }

    /// Answers EPSV with a fresh listener's port.
    pub fn epsv(&mut self) -> TcpListener {
        self.expect("EPSV");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind data listener");
        let port = listener.local_addr().expect("data address").port();
        self.send(&format!("229 Entering Extended Passive Mode (|||{port}|)"));
        listener
    }

    /// Answers PASV with a fresh listener's port and the given (possibly bogus) host numbers `a,b,c,d`.
    pub fn pasv(&mut self, host: &str) -> TcpListener {
        self.expect("PASV");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind data listener");
        let port = listener.local_addr().expect("data address").port();
        self.send(&format!("227 Entering Passive Mode ({host},{},{})", port >> 8, port & 0xff));
        listener
    }
}

/// Serves a download: answers EPSV, expects `command`, then sends `data` and 226.
pub fn serve_download(peer: &mut Peer, command: &str, data: &[u8]) {
    let listener = peer.epsv();
    peer.expect(command);
    let mut conn = accept(&listener);
    peer.send("150 Opening");
    conn.write_all(data).expect("send data");
    drop(conn);
    peer.send("226 Done");
}

/// Serves an upload: answers EPSV, expects `command`, then returns what arrives after sending 226.
pub fn serve_upload(peer: &mut Peer, command: &str) -> Vec<u8> {
    let listener = peer.epsv();
    peer.expect(command);
    let conn = accept(&listener);
    peer.send("150 Ok to send data");
    let data = read_all(conn);
    peer.send("226 Done");
    data
}

/// Accepts the data connection the client has already opened (it connects before sending the transfer command).
pub fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = listener.accept().expect("accept data connection");
    stream.set_read_timeout(Some(SERVER_WAIT)).expect("read timeout");
    stream.set_write_timeout(Some(SERVER_WAIT)).expect("write timeout");
    stream
}

/// Reads a data connection to its end.
pub fn read_all(mut stream: TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    stream.read_to_end(&mut data).expect("read data");
    data
}

/// `len` bytes of a repeating, non-trivial pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}
