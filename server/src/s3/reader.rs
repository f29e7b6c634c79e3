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
