//! A GET as a `Read`: the object's bytes stream from the socket into the caller's buffer, never whole in memory.
//!
//! When the connection fails mid-body (a store node restarting, a reset, a read timeout) the reader opens a new
//! Range GET from where it stopped, insisting on the same version (`If-Match` on the ETag), so the bytes the
//! caller gets are one version of the object or an error, never a splice of two. Resumptions after a failure
//! are bounded by the client's `attempts`; any progress resets the count.

use std::io::{self, Read};

use super::client::{Client, Opened, Repeat};
use super::Error;

/// The bytes of one object from an offset on. Made by [`Client::get`].
pub struct ObjectReader {
    client: Client,
    key: String,
    full_key: String,
    /// The next byte's offset in the object.
    pos: u64,
    /// The object's size: reading stops here.
    end: u64,
    etag: String,
    body: Option<ureq::BodyReader<'static>>,
    /// Bytes still to discard before `pos` (a store that ignored the Range header).
    skip: u64,
    /// Failures since the last byte arrived.
    failures: u32,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader").field("key", &self.key).field("pos", &self.pos).field("end", &self.end).finish()
    }
}

impl ObjectReader {
    pub(super) fn new(client: Client, key: String, full_key: String, offset: u64, opened: Opened) -> ObjectReader {
        ObjectReader {
            client,
            key,
            full_key,
            pos: offset,
            end: opened.end,
            etag: opened.etag,
            body: Some(opened.body),
            skip: opened.skip,
            failures: 0,
        }
    }

    /// A reader at the end of the object: nothing to read.
    pub(super) fn empty(client: Client, key: String, full_key: String, offset: u64) -> ObjectReader {
        ObjectReader {
            client,
            key,
            full_key,
            pos: offset,
            end: offset,
            etag: String::new(),
            body: None,
            skip: 0,
            failures: 0,
        }
    }

    /// The object's whole size (not what is left to read).
    pub fn size(&self) -> u64 {
        self.end
    }

    /// The offset of the next byte `read` returns.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Notes a failed read; gives up (returning the error) once failures in a row reach the client's attempts,
    /// or if the failure is not transient.
    fn failed(&mut self, error: Error) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        if !error.is_transient() || self.failures >= self.client.config().attempts {
            return Err(error.into());
        }
        let pause = self.client.backoff(self.failures);
        log::debug!("s3 GET {:?} at {}: {error}; resuming in {pause:?}", self.key, self.pos);
        // A pause before resuming, not a wait for an event: the store gets time to recover.
        std::thread::sleep(pause);
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        let etag = (!self.etag.is_empty()).then_some(self.etag.as_str());
        let opened =
            self.client.retrying("GET", &self.key, Repeat::Safe, || self.client.open(&self.full_key, self.pos, etag));
        match opened {
            Ok(opened) => {
                if opened.end != self.end {
                    return Err(Error::Other(format!("{:?} changed size while it was being read", self.key)).into());
                }
                self.skip = opened.skip;
                self.body = Some(opened.body);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos >= self.end || buf.is_empty() {
                return Ok(0);
            }
            let Some(body) = self.body.as_mut() else {
                self.reopen()?;
                continue;
            };
            if self.skip > 0 {
                match io::copy(&mut body.take(self.skip), &mut io::sink()) {
                    Ok(n) if n == self.skip => self.skip = 0,
                    Ok(_) => self.failed(Error::Transient("the response ended early".into()))?,
                    Err(e) => self.failed(Error::from_io(&e))?,
                }
                continue;
            }
            let room = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX).min(buf.len());
            match body.read(&mut buf[..room]) {
                Ok(0) => self.failed(Error::Transient("the response ended early".into()))?,
                Ok(n) => {
                    self.pos += n as u64;
                    self.failures = 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.failed(Error::from_io(&e))?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The reader against a scripted HTTP server on loopback: a body cut short, then what the resumption gets.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::{Duration, Instant};

    use super::super::{Client, ClientConfig, Credentials, Error};

    /// How long the scripted server waits for the client, and the client for the server.
    const LIMIT: Duration = Duration::from_secs(10);

    /// A request as the server saw it: the request line and the headers, lower-cased names.
    #[derive(Debug)]
    struct Seen {
        line: String,
        headers: Vec<(String, String)>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    /// What the scripted server does on one connection after reading the request.
    enum Step {
        /// Writes the bytes (a response, perhaps cut short) and closes the connection.
        Close(Vec<u8>),
        /// Writes the bytes and then neither writes nor closes until the client gives up and closes.
        Stall(Vec<u8>),
    }

    /// Serves one connection per response in `script`, each response written as given (so it may be cut short),
    /// then closes it. Returns the requests seen.
    fn serve(script: Vec<Vec<u8>>) -> (String, thread::JoinHandle<Vec<Seen>>) {
        serve_steps(script.into_iter().map(Step::Close).collect())
    }

    fn serve_steps(script: Vec<Step>) -> (String, thread::JoinHandle<Vec<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            for step in script {
                let deadline = Instant::now() + LIMIT;
                let stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => return seen,
                    }
                };
                stream.set_nonblocking(false).expect("blocking");
                stream.set_read_timeout(Some(LIMIT)).expect("timeout");
                seen.push(read_request(&stream));
                let mut stream = stream;
                match step {
                    Step::Close(bytes) => {
                        let _ = stream.write_all(&bytes);
                    }
                    Step::Stall(bytes) => {
                        let _ = stream.write_all(&bytes);
                        // Until the client closes (read gives 0 or fails) or LIMIT passes.
                        let _ = stream.read(&mut [0u8; 1]);
                    }
                }
            }
            seen
        });
        (endpoint, handle)
    }

    fn read_request(stream: &TcpStream) -> Seen {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Seen { line: line.trim().to_string(), headers }
    }

    fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {status}\r\nconnection: close\r\n").into_bytes();
        for (n, v) in headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    fn client(endpoint: &str) -> Client {
        let config = ClientConfig {
            io_timeout: LIMIT,
            response_timeout: LIMIT,
            backoff: Duration::from_millis(1),
            ..ClientConfig::default()
        };
        let url = format!("s3://files/p?endpoint={endpoint}");
        Client::new(&url.parse().expect("url"), &Credentials::new("GK1", "secret"), config).expect("client")
    }

    fn body() -> Vec<u8> {
        (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn a_body_cut_short_is_resumed_from_where_it_stopped_at_the_same_version() {
        let data = body();
        let first = response(
            "200 OK",
            &[("content-length", "1000".into()), ("etag", "\"v1\"".into())],
            &data[..400], // then the connection closes: 600 bytes short
        );
        let second = response(
            "206 Partial Content",
            &[
                ("content-length", "600".into()),
                ("content-range", "bytes 400-999/1000".into()),
                ("etag", "\"v1\"".into()),
            ],
            &data[400..],
        );
        let (endpoint, server) = serve(vec![first, second]);
        let mut got = Vec::new();
        client(&endpoint).get("k", 0).expect("get").read_to_end(&mut got).expect("read");
        let seen = server.join().expect("server");
        assert_eq!(got, data);
        assert_eq!(seen.len(), 2);
        assert!(seen[0].line.starts_with("GET /files/p/k?"), "{}", seen[0].line);
        assert_eq!(seen[0].header("range"), None);
        assert_eq!(seen[1].header("range"), Some("bytes=400-"));
        assert_eq!(seen[1].header("if-match"), Some("\"v1\""));
    }

    #[test]
    fn an_object_replaced_meanwhile_is_an_error_not_a_splice() {
        let data = body();
        let first = response("200 OK", &[("content-length", "1000".into()), ("etag", "\"v1\"".into())], &data[..10]);
        let second = response("412 Precondition Failed", &[("content-length", "0".into())], b"");
        let (endpoint, server) = serve(vec![first, second]);
        let mut got = Vec::new();
        let err = client(&endpoint).get("k", 0).expect("get").read_to_end(&mut got).expect_err("a splice");
        server.join().expect("server");
        assert!(err.to_string().contains("changed"), "{err}");
        assert_eq!(got, data[..10]);
    }

    #[test]
    fn a_ranged_get_answered_whole_is_skipped_to_the_offset() {
        let data = body();
        let whole = response("200 OK", &[("content-length", "1000".into()), ("etag", "\"v1\"".into())], &data);
        let (endpoint, server) = serve(vec![whole]);
        let mut reader = client(&endpoint).get("k", 900).expect("get");
        let mut got = Vec::new();
        reader.read_to_end(&mut got).expect("read");
        let seen = server.join().expect("server");
        assert_eq!(seen[0].header("range"), Some("bytes=900-"));
        assert_eq!(got, data[900..]);
        assert_eq!((reader.size(), reader.position()), (1000, 1000));
    }

    #[test]
    fn failures_in_a_row_are_bounded() {
        let cut = |from: usize| {
            let status = if from == 0 { "200 OK" } else { "206 Partial Content" };
            response(
                status,
                &[
                    ("content-length", (1000 - from).to_string()),
                    ("content-range", format!("bytes {from}-999/1000")),
                    ("etag", "\"v1\"".into()),
                ],
                b"",
            )
        };
        // Every response ends at once; after `attempts` failures in a row the reader gives up.
        let attempts = ClientConfig::default().attempts as usize;
        let (endpoint, server) = serve((0..attempts).map(|_| cut(0)).collect());
        let mut got = Vec::new();
        let err = client(&endpoint).get("k", 0).expect("get").read_to_end(&mut got).expect_err("endless failure");
        let seen = server.join().expect("server");
        assert_eq!(seen.len(), attempts);
        assert!(got.is_empty());
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    }

    #[test]
    fn a_store_that_stalls_mid_body_or_before_answering_times_out() {
        let data = body();
        let headers = response("200 OK", &[("content-length", "1000".into()), ("etag", "\"v1\"".into())], &data[..10]);
        // The first response stalls after 10 bytes of its body; the resumption gets no answer at all.
        let (endpoint, server) = serve_steps(vec![Step::Stall(headers), Step::Stall(Vec::new())]);
        let config = ClientConfig {
            io_timeout: Duration::from_millis(300),
            response_timeout: Duration::from_millis(300),
            attempts: 1,
            ..ClientConfig::default()
        };
        let url = format!("s3://files?endpoint={endpoint}");
        let c = Client::new(&url.parse().expect("url"), &Credentials::new("GK1", "s"), config).expect("client");
        let started = Instant::now();
        let mut reader = c.get("k", 0).expect("get");
        let mut got = Vec::new();
        let err = reader.read_to_end(&mut got).expect_err("a stalled body");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert_eq!(got, data[..10]);
        // attempts = 1: the read gives up after one stall; a new GET stalls before its headers.
        let err = c.get("k", 10).map(drop).expect_err("a stalled response");
        assert!(err.is_transient(), "{err}");
        assert!(started.elapsed() < LIMIT, "timeouts took {:?}", started.elapsed());
        drop(reader);
        server.join().expect("server");
    }

    #[test]
    fn a_session_token_is_signed_into_the_request() {
        let empty = response("200 OK", &[("content-length", "0".into()), ("etag", "\"v1\"".into())], b"");
        let (endpoint, server) = serve(vec![empty]);
        let url = format!("s3://files?endpoint={endpoint}");
        let credentials = Credentials::new("GK1", "s").with_session_token("tok-123");
        let c = Client::new(&url.parse().expect("url"), &credentials, ClientConfig::default()).expect("client");
        let mut got = Vec::new();
        c.get("k", 0).expect("get").read_to_end(&mut got).expect("read");
        let seen = server.join().expect("server");
        assert!(got.is_empty());
        assert!(seen[0].line.contains("X-Amz-Security-Token=tok-123"), "{}", seen[0].line);
    }

    #[test]
    fn status_codes_map_through_the_error_document() {
        let doc = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        let denied = response("403 Forbidden", &[("content-length", doc.len().to_string())], doc);
        let (endpoint, server) = serve(vec![denied]);
        let got = client(&endpoint).get("k", 0).map(drop);
        server.join().expect("server");
        assert_eq!(got, Err(Error::Denied("HTTP 403 AccessDenied: no".into())));
    }
}
