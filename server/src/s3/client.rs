//! The blocking S3 client: one method per store operation, each one or a few HTTP exchanges.
//!
//! Requests are signed by `rusty-s3` (AWS Signature V4 as presigned URLs, so no body is hashed before it is sent)
//! and carried by `ureq` (blocking, a small connection pool per client). Every exchange has timeouts for
//! connecting, for each read and write on the socket and for the response to begin, so no call waits forever;
//! requests that are safe to repeat are retried a bounded number of times on a [`Error::Transient`] failure,
//! with exponential backoff. Nothing here holds a whole object in memory: bodies go out from the caller's buffer
//! and come back as a stream ([`ObjectReader`]).
//!
//! Which requests are retried on a transient failure:
//!
//! | operation                                   | retried                                              |
//! |---------------------------------------------|------------------------------------------------------|
//! | HEAD, GET (and its resumption), LIST        | yes: they change nothing                             |
//! | DELETE, abort, part upload, PUT, copy       | yes: repeating one leaves the same state             |
//! | create multipart upload, complete it        | only if the connection was never made: a repeat     |
//! |                                             | could leave an orphan upload, or find the upload    |
//! |                                             | already completed                                    |

use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, S3Action, UrlStyle};
use ureq::http::Response;
use ureq::Body;
use url::Url;

use super::error::{error_fields, never_sent};
use super::key::{check_key, check_prefix, MAX_KEY_BYTES};
use super::reader::ObjectReader;
use super::wire::{check_embedded_error, content_md5, content_range_total, header, meta_from, parse_rfc3339, read_xml};
use super::{Credentials, Error, Location};

/// How long a signed request stays valid. Each attempt is signed just before it is sent, so this only has to
/// cover clock skew between us and the store.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The most bytes of an error response read for its message: error documents are a few hundred bytes.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// The part numbers S3 allows in one multipart upload.
pub const MAX_PARTS: u16 = 10_000;

/// The smallest part S3 accepts, except for the last part of an upload. Callers fill parts of at least this size.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Timeouts, retries and page size. The defaults suit a store on the same network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Resolving the host and establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Each read or write on the socket: the longest the store may stall mid-body.
    pub io_timeout: Duration,
    /// From the request sent to the response's headers: how long the store may think (a completion of a large
    /// multipart upload is the slowest).
    pub response_timeout: Duration,
    /// Attempts per request (the first included) for requests that are safe to repeat.
    pub attempts: u32,
    /// The pause after the first failed attempt; it doubles after each further one, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Keys per listing page, 1 to 1,000 (S3 sends at most 1,000).
    pub page_size: u16,
    /// Idle connections kept for reuse: as many as threads share the client, so that each request does not
    /// open a connection of its own.
    pub idle_connections: usize,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            attempts: 4,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            page_size: 1000,
            idle_connections: 16,
        }
    }
}

/// What HEAD tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub modified: SystemTime,
    /// The store's version tag: a read resumed after a dropped connection insists on the same one.
    pub etag: String,
}

/// One object in a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, relative to the client's prefix.
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Objects directly under the listed prefix (all objects under it when there is no delimiter). With a
    /// delimiter, the directory marker `dir/` itself shows up here when `dir/` is the listed prefix.
    pub files: Vec<Entry>,
    /// Keys up to and including the delimiter (`dir/`), relative to the client's prefix: the subdirectories.
    pub dirs: Vec<String>,
    /// Pass to the next call for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A multipart upload in progress: the object appears only when it is completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    key: String,
    full_key: String,
    id: String,
}

impl Upload {
    /// The key the object will have, relative to the client's prefix.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The store's id for this upload.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A part the store holds for an upload, to be named again when completing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    number: u16,
    etag: String,
}

impl Part {
    pub fn number(&self) -> u16 {
        self.number
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }
}

/// Whether a request may be sent again after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeat {
    /// Repeating it leaves the same state.
    Safe,
    /// Only if it surely never reached the store.
    IfUnsent,
}

/// One failed attempt: what it means, and whether the store surely never saw it.
pub(super) struct Failure {
    pub(super) error: Error,
    pub(super) unsent: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure { error, unsent: false }
    }
}

/// A blocking S3 client for one bucket and prefix. Cheap to clone: clones share the connection pool, so one
/// client serves a pool of threads.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Empty, or ending in `/`: every key is relative to it.
    prefix: Arc<str>,
}

struct Inner {
    bucket: Bucket,
    credentials: rusty_s3::Credentials,
    agent: ureq::Agent,
    config: ClientConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.bucket.base_url().as_str())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(location: &Location, credentials: &Credentials, config: ClientConfig) -> Result<Client, Error> {
        let bucket = Bucket::new(
            location.endpoint().clone(),
            UrlStyle::Path,
            location.bucket().to_string(),
            location.region().to_string(),
        )
        .map_err(|e| Error::Other(format!("endpoint {}: {e}", location.endpoint())))?;
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A redirect names another region or host; a presigned URL is valid only where it was signed for.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_resolve(Some(config.connect_timeout))
            .timeout_per_read(Some(config.io_timeout))
            .timeout_per_write(Some(config.io_timeout))
            .timeout_send_request(Some(config.io_timeout))
            .timeout_recv_response(Some(config.response_timeout))
            .max_idle_connections(config.idle_connections)
            .max_idle_connections_per_host(config.idle_connections)
            .build();
        let inner = Inner {
            bucket,
            credentials: match credentials.session_token() {
                Some(token) => rusty_s3::Credentials::new_with_token(credentials.key_id(), credentials.secret(), token),
                None => rusty_s3::Credentials::new(credentials.key_id(), credentials.secret()),
            },
            agent: ureq::Agent::new_with_config(agent_config),
            config,
        };
        Ok(Client { inner: Arc::new(inner), prefix: location.prefix().into() })
    }

    /// A client for the keys under `sub` (a per-user home, say), sharing this one's connections: its keys are
    /// relative to this prefix, then `sub/`. `sub` follows the key rules; empty gives the same prefix.
    pub fn under(&self, sub: &str) -> Result<Client, Error> {
        let sub = sub.trim_end_matches('/');
        if sub.is_empty() {
            return Ok(self.clone());
        }
        let prefix = format!("{}{sub}/", self.prefix);
        check_key(&prefix[self.prefix.len()..]).map_err(Error::InvalidKey)?;
        if prefix.len() > MAX_KEY_BYTES {
            return Err(Error::InvalidKey(format!("prefix longer than {MAX_KEY_BYTES} bytes")));
        }
        Ok(Client { inner: self.inner.clone(), prefix: prefix.into() })
    }

    /// The prefix every key is relative to (empty, or ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The object's size, modification time and version tag; `None` if there is no such object.
    pub fn head(&self, key: &str) -> Result<Option<ObjectMeta>, Error> {
        let full = self.full_key(key)?;
        let result = self.retrying("HEAD", key, Repeat::Safe, || {
            let url = self.inner.bucket.head_object(Some(&self.inner.credentials), &full).sign(SIGNATURE_LIFETIME);
            let response = self.send(self.inner.agent.head(url.as_str()).call())?;
            meta_from(&response).map_err(Failure::from)
        });
        match result {
            Ok(meta) => Ok(Some(meta)),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A stream of the object's bytes from `offset` on (a Range GET when `offset > 0`). A connection that drops
    /// mid-stream is resumed where it stopped, from the same version of the object. `offset` equal to the size
    /// gives an empty stream; beyond it, [`Error::InvalidRange`].
    pub fn get(&self, key: &str, offset: u64) -> Result<ObjectReader, Error> {
        let full = self.full_key(key)?;
        match self.retrying("GET", key, Repeat::Safe, || self.open(&full, offset, None)) {
            Ok(opened) => Ok(ObjectReader::new(self.clone(), key.to_string(), full, offset, opened)),
            Err(Error::InvalidRange { .. }) => {
                // The store says only that the range is unsatisfiable; HEAD tells whether the offset is the end.
                let meta = self.head(key)?.ok_or(Error::NotFound)?;
                if meta.size == offset {
                    Ok(ObjectReader::empty(self.clone(), key.to_string(), full, offset))
                } else {
                    Err(Error::InvalidRange { offset, size: meta.size })
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Stores a small object in one request: an empty file, a directory marker `dir/`, anything that fits the
    /// caller's part buffer.
    pub fn put(&self, key: &str, body: &[u8]) -> Result<(), Error> {
        let full = self.full_key(key)?;
        let digest = content_md5(body);
        self.retrying("PUT", key, Repeat::Safe, || {
            let url = self.inner.bucket.put_object(Some(&self.inner.credentials), &full).sign(SIGNATURE_LIFETIME);
            let request = self.inner.agent.put(url.as_str()).header("content-md5", &digest);
            self.send(request.send(body)).map(drop)
        })
    }

    /// Starts a multipart upload of `key`. Nothing is visible under `key` until [`Client::complete`].
    pub fn create_multipart(&self, key: &str) -> Result<Upload, Error> {
        let full = self.full_key(key)?;
        self.retrying("CreateMultipartUpload", key, Repeat::IfUnsent, || {
            let action = self.inner.bucket.create_multipart_upload(Some(&self.inner.credentials), &full);
            let url = action.sign(SIGNATURE_LIFETIME);
            let response = self.send(self.inner.agent.post(url.as_str()).send_empty())?;
            let xml = read_xml(response)?;
            let parsed = CreateMultipartUpload::parse_response(&xml)
                .map_err(|e| Error::Other(format!("CreateMultipartUpload response: {e}")))?;
            Ok(Upload { key: key.to_string(), full_key: full.clone(), id: parsed.upload_id().to_string() })
        })
    }

    /// Uploads part `number` (1 to [`MAX_PARTS`]) of an upload. Every part but the last must be at least
    /// [`MIN_PART_SIZE`] bytes. Uploading a number again replaces that part.
    pub fn upload_part(&self, upload: &Upload, number: u16, body: &[u8]) -> Result<Part, Error> {
        if number == 0 || number > MAX_PARTS {
            return Err(Error::Other(format!("part number {number} is outside 1..={MAX_PARTS}")));
        }
        let digest = content_md5(body);
        self.retrying("UploadPart", &upload.key, Repeat::Safe, || {
            let action =
                self.inner.bucket.upload_part(Some(&self.inner.credentials), &upload.full_key, number, &upload.id);
            let url = action.sign(SIGNATURE_LIFETIME);
            let request = self.inner.agent.put(url.as_str()).header("content-md5", &digest);
            let response = self.send(request.send(body))?;
            let etag = header(&response, "etag")
                .ok_or_else(|| Error::Other(format!("UploadPart {number}: the response has no ETag")))?;
            Ok(Part { number, etag: etag.to_string() })
        })
    }

    /// Completes an upload from its parts, which must be numbered 1, 2, ... n in order (as uploaded). The object
    /// then appears whole under its key, replacing any object there.
    pub fn complete(&self, upload: &Upload, parts: &[Part]) -> Result<(), Error> {
        if parts.is_empty() {
            return Err(Error::Other(
                "a multipart upload needs at least one part; store empty objects with put".into(),
            ));
        }
        if let Some((i, p)) = parts.iter().enumerate().find(|(i, p)| usize::from(p.number) != i + 1) {
            return Err(Error::Other(format!(
                "part {} is at position {}; parts must be numbered 1..=n",
                p.number,
                i + 1
            )));
        }
        self.retrying("CompleteMultipartUpload", &upload.key, Repeat::IfUnsent, || {
            let etags = parts.iter().map(|p| p.etag.as_str());
            let action = self.inner.bucket.complete_multipart_upload(
                Some(&self.inner.credentials),
                &upload.full_key,
                &upload.id,
                etags,
            );
            let url = action.sign(SIGNATURE_LIFETIME);
            let body = action.body();
            let response = self.send(self.inner.agent.post(url.as_str()).send(body.as_bytes()))?;
            // S3 may answer 200 and report the failure in the body, once the completion has run for a while.
            let xml = read_xml(response)?;
            check_embedded_error(&xml)
        })
    }

    /// Abandons an upload: the store drops its parts and no object appears. Aborting an upload that is already
    /// gone succeeds.
    pub fn abort(&self, upload: &Upload) -> Result<(), Error> {
        let result = self.retrying("AbortMultipartUpload", &upload.key, Repeat::Safe, || {
            let action =
                self.inner.bucket.abort_multipart_upload(Some(&self.inner.credentials), &upload.full_key, &upload.id);
            let url = action.sign(SIGNATURE_LIFETIME);
            self.send(self.inner.agent.delete(url.as_str()).call()).map(drop)
        });
        match result {
            Err(Error::NotFound) => Ok(()),
            other => other,
        }
    }

    /// One page of the keys under `prefix` (relative to the client's prefix; empty for all). With a delimiter
    /// (`Some("/")`), keys with the delimiter after the prefix are rolled up into [`Page::dirs`]. Pass the last
    /// page's [`Page::next`] as `continuation` for the next page.
    pub fn list(&self, prefix: &str, delimiter: Option<&str>, continuation: Option<&str>) -> Result<Page, Error> {
        self.list_up_to(prefix, delimiter, continuation, self.inner.config.page_size)
    }

    /// [`Client::list`] with at most `max_keys` files and dirs together in the page (1 to 1,000): one key is
    /// enough to tell whether a directory has anything in it.
    pub fn list_up_to(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        continuation: Option<&str>,
        max_keys: u16,
    ) -> Result<Page, Error> {
        if !(1..=1000).contains(&max_keys) {
            return Err(Error::Other(format!("max_keys {max_keys} is outside 1..=1000")));
        }
        check_prefix(prefix).map_err(Error::InvalidKey)?;
        let full = format!("{}{prefix}", self.prefix);
        if full.len() > MAX_KEY_BYTES {
            return Err(Error::InvalidKey(format!("prefix longer than {MAX_KEY_BYTES} bytes")));
        }
        self.retrying("ListObjectsV2", prefix, Repeat::Safe, || {
            let mut action = self.inner.bucket.list_objects_v2(Some(&self.inner.credentials));
            action.with_max_keys(usize::from(max_keys));
            if !full.is_empty() {
                action.with_prefix(full.as_str());
            }
            if let Some(d) = delimiter {
                action.with_delimiter(d);
            }
            if let Some(token) = continuation {
                action.with_continuation_token(token);
            }
            let url = action.sign(SIGNATURE_LIFETIME);
            let response = self.send(self.inner.agent.get(url.as_str()).call())?;
            let xml = read_xml(response)?;
            let parsed = ListObjectsV2::parse_response(&xml)
                .map_err(|e| Error::Other(format!("ListObjectsV2 response: {e}")))?;
            self.page_from(parsed).map_err(Failure::from)
        })
    }

    /// Removes an object. As in S3, removing a key that does not exist succeeds: HEAD first to tell.
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        let full = self.full_key(key)?;
        let result = self.retrying("DELETE", key, Repeat::Safe, || {
            let url = self.inner.bucket.delete_object(Some(&self.inner.credentials), &full).sign(SIGNATURE_LIFETIME);
            self.send(self.inner.agent.delete(url.as_str()).call()).map(drop)
        });
        match result {
            Err(Error::NotFound) => Ok(()),
            other => other,
        }
    }

    /// Copies an object within the bucket on the store's side (no bytes pass through us), replacing any object
    /// at `to`. [`Error::NotFound`] if `from` does not exist. (AWS copies objects of up to 5 GiB this way.)
    pub fn copy(&self, from: &str, to: &str) -> Result<(), Error> {
        let source = self.full_key(from)?;
        let target = self.full_key(to)?;
        // Path style: the object URL's path is exactly `/bucket/key`, percent-encoded, the form the header wants.
        let source_url = self.object_url(&source)?;
        let source_header = source_url.path();
        self.retrying("CopyObject", to, Repeat::Safe, || {
            let mut action = self.inner.bucket.put_object(Some(&self.inner.credentials), &target);
            action.headers_mut().insert("x-amz-copy-source", source_header);
            let url = action.sign(SIGNATURE_LIFETIME);
            let request = self.inner.agent.put(url.as_str()).header("x-amz-copy-source", source_header);
            let response = self.send(request.send_empty())?;
            let xml = read_xml(response)?;
            check_embedded_error(&xml)
        })
    }

    // ---- internals ----------------------------------------------------------------------------------------------

    /// The full key for a relative one, refused if it could leave the prefix or is too long.
    fn full_key(&self, key: &str) -> Result<String, Error> {
        check_key(key).map_err(Error::InvalidKey)?;
        let full = format!("{}{key}", self.prefix);
        if full.len() > MAX_KEY_BYTES {
            return Err(Error::InvalidKey(format!("{key:?} with the prefix is longer than {MAX_KEY_BYTES} bytes")));
        }
        // Belt and braces: the URL the signer will build must stay under the bucket's URL.
        self.object_url(&full)?;
        Ok(full)
    }

    fn object_url(&self, full: &str) -> Result<Url, Error> {
        let base = self.inner.bucket.base_url();
        match self.inner.bucket.object_url(full) {
            Ok(url) if url.as_str().starts_with(base.as_str()) && url.as_str().len() > base.as_str().len() => Ok(url),
            Ok(_) => Err(Error::InvalidKey(format!("{full:?} leaves the bucket"))),
            Err(e) => Err(Error::InvalidKey(format!("{full:?}: {e}"))),
        }
    }

    /// Opens a GET of `full` from `offset`, insisting on version `etag` if given.
    pub(super) fn open(&self, full: &str, offset: u64, etag: Option<&str>) -> Result<Opened, Failure> {
        let url = self.inner.bucket.get_object(Some(&self.inner.credentials), full).sign(SIGNATURE_LIFETIME);
        let mut request = self.inner.agent.get(url.as_str());
        if offset > 0 {
            request = request.header("range", format!("bytes={offset}-"));
        }
        if let Some(tag) = etag {
            request = request.header("if-match", tag);
        }
        let response = match request.call() {
            Ok(r) if r.status().as_u16() == 416 => {
                return Err(Error::InvalidRange { offset, size: 0 }.into());
            }
            Ok(r) if r.status().as_u16() == 412 => {
                return Err(Error::Other(format!("{full:?} changed while it was being read")).into());
            }
            other => self.send(other)?,
        };
        let etag = header(&response, "etag").unwrap_or_default().to_string();
        let status = response.status().as_u16();
        let length = header(&response, "content-length").and_then(|v| v.parse::<u64>().ok());
        let (skip, end) = if status == 206 {
            let total = header(&response, "content-range").and_then(content_range_total);
            let end = total.or_else(|| length.map(|l| offset + l));
            (0, end)
        } else {
            // A whole object although a range was asked for: skip up to the offset as it streams.
            (offset, length)
        };
        let end = end.ok_or_else(|| Error::Other(format!("GET {full:?}: the response gives no length")))?;
        Ok(Opened { body: response.into_body().into_reader(), skip, end, etag })
    }

    /// Runs `attempt` until it succeeds, fails in a way not worth repeating, or has been tried
    /// `config.attempts` times.
    pub(super) fn retrying<T>(
        &self,
        what: &str,
        key: &str,
        repeat: Repeat,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, Error> {
        let mut tried = 0;
        loop {
            tried += 1;
            match attempt() {
                Ok(value) => return Ok(value),
                Err(Failure { error, unsent }) => {
                    let repeatable = error.is_transient() && (repeat == Repeat::Safe || unsent);
                    if !repeatable || tried >= self.inner.config.attempts {
                        return Err(error);
                    }
                    let pause = self.backoff(tried);
                    log::debug!("s3 {what} {key:?}: {error}; attempt {} in {pause:?}", tried + 1);
                    // A pause between attempts, not a wait for an event: the store gets time to recover.
                    thread::sleep(pause);
                }
            }
        }
    }

    /// The pause after the `failures`th failure: doubling from `backoff`, capped, with jitter so that many
    /// threads retrying at once spread out.
    pub(super) fn backoff(&self, failures: u32) -> Duration {
        let config = &self.inner.config;
        let doubled = config.backoff.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        let capped = doubled.min(config.max_backoff);
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        // Between half and all of the capped pause.
        capped / 2 + capped.mul_f64((random % 1000) as f64 / 2000.0)
    }

    /// The response if it is a success; otherwise its meaning, read from its status and error document.
    fn send(&self, result: Result<Response<Body>, ureq::Error>) -> Result<Response<Body>, Failure> {
        let response = result.map_err(|e| Failure { error: Error::from_http(&e), unsent: never_sent(&e) })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let mut text = String::new();
        // The message is a courtesy: a body that cannot be read leaves it empty.
        let _ = response.into_body().into_reader().take(ERROR_BODY_LIMIT).read_to_string(&mut text);
        let (code, message) = error_fields(&text);
        Err(Error::from_status(status, &code, &message).into())
    }

    fn page_from(&self, parsed: rusty_s3::actions::ListObjectsV2Response) -> Result<Page, Error> {
        let prefix = &*self.prefix;
        let mut files = Vec::with_capacity(parsed.contents.len());
        for object in parsed.contents {
            // The store only sends keys under the prefix asked for; anything else is not ours to show.
            let Some(key) = object.key.strip_prefix(prefix) else { continue };
            let modified = parse_rfc3339(&object.last_modified)?;
            files.push(Entry { key: key.to_string(), size: object.size, modified });
        }
        let dirs = parsed
            .common_prefixes
            .into_iter()
            .filter_map(|p| p.prefix.strip_prefix(prefix).map(str::to_string))
            .collect();
        Ok(Page { files, dirs, next: parsed.next_continuation_token.filter(|t| !t.is_empty()) })
    }
}

/// An opened GET: the body, bytes to discard before the wanted offset, where the object ends, its version.
pub(super) struct Opened {
    pub(super) body: ureq::BodyReader<'static>,
    pub(super) skip: u64,
    pub(super) end: u64,
    pub(super) etag: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(prefix: &str) -> Client {
        let url = format!("s3://files/{prefix}?endpoint=http://127.0.0.1:9&region=garage");
        Client::new(&url.parse().unwrap(), &Credentials::new("GK1", "s"), ClientConfig::default()).unwrap()
    }

    #[test]
    fn keys_are_joined_to_the_prefix() {
        let c = client("ftp/home");
        assert_eq!(c.full_key("a/b.txt").unwrap(), "ftp/home/a/b.txt");
        assert_eq!(c.full_key("dir/").unwrap(), "ftp/home/dir/");
        assert_eq!(client("").full_key("x").unwrap(), "x");
    }

    #[test]
    fn under_makes_a_narrower_client_on_the_same_connections() {
        let c = client("ftp");
        let home = c.under("alice").unwrap();
        assert_eq!(home.prefix(), "ftp/alice/");
        assert_eq!(home.full_key("notes.txt").unwrap(), "ftp/alice/notes.txt");
        assert!(Arc::ptr_eq(&c.inner, &home.inner));
        assert_eq!(c.under("").unwrap().prefix(), "ftp/");
        assert_eq!(c.under("a/b/").unwrap().prefix(), "ftp/a/b/");
        for bad in ["..", "../bob", "/abs", "a//b"] {
            assert!(matches!(c.under(bad), Err(Error::InvalidKey(_))), "{bad:?}");
        }
    }

    #[test]
    fn keys_that_leave_the_prefix_are_refused_before_any_request() {
        let c = client("ftp");
        for key in ["../other", "/abs", "a/../../b", "", "a//b"] {
            assert!(matches!(c.full_key(key), Err(Error::InvalidKey(_))), "{key:?}");
            assert!(matches!(c.head(key), Err(Error::InvalidKey(_))), "{key:?}");
        }
        assert!(matches!(c.list("../", None, None), Err(Error::InvalidKey(_))));
    }

    #[test]
    fn awkward_characters_stay_inside_the_bucket_url() {
        let c = client("p");
        for key in ["a b", "a?b", "a#b", "a%2F..%2Fb", "é/ü", "a+b=c&d"] {
            let url = c.object_url(&c.full_key(key).unwrap()).unwrap();
            assert!(url.path().starts_with("/files/p/"), "{key:?} -> {url}");
            assert!(url.query().is_none() && url.fragment().is_none(), "{key:?} -> {url}");
        }
    }

    #[test]
    fn complete_checks_the_part_numbering_first() {
        let c = client("");
        let upload = Upload { key: "k".into(), full_key: "k".into(), id: "u".into() };
        let part = |n| Part { number: n, etag: "e".into() };
        assert!(matches!(c.complete(&upload, &[]), Err(Error::Other(_))));
        assert!(matches!(c.complete(&upload, &[part(2)]), Err(Error::Other(_))));
        assert!(matches!(c.complete(&upload, &[part(1), part(3)]), Err(Error::Other(_))));
        assert!(matches!(c.upload_part(&upload, 0, b""), Err(Error::Other(_))));
        assert!(matches!(c.upload_part(&upload, MAX_PARTS + 1, b""), Err(Error::Other(_))));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = client("");
        let config = c.config().clone();
        for failures in 1..10 {
            let pause = c.backoff(failures);
            let full = config.backoff.saturating_mul(1 << (failures - 1)).min(config.max_backoff);
            assert!(pause >= full / 2 && pause <= full, "{failures}: {pause:?} vs {full:?}");
        }
    }

    #[test]
    fn a_refused_connection_is_transient_and_retried_a_bounded_number_of_times() {
        // Port 9 (discard) on loopback: nothing listens, every connect is refused at once.
        let config = ClientConfig { attempts: 3, backoff: Duration::from_millis(1), ..ClientConfig::default() };
        let url = "s3://files?endpoint=http://127.0.0.1:9";
        let c = Client::new(&url.parse().unwrap(), &Credentials::new("GK1", "s"), config).unwrap();
        let mut attempts = 0;
        let result: Result<(), Error> = c.retrying("HEAD", "k", Repeat::Safe, || {
            attempts += 1;
            c.send(c.inner.agent.head("http://127.0.0.1:9/files/k").call()).map(drop)
        });
        assert!(matches!(result, Err(Error::Transient(_))), "{result:?}");
        assert_eq!(attempts, 3);
        assert!(matches!(c.head("k"), Err(Error::Transient(_))));
    }
}
