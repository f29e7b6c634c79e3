//! Files in an S3-compatible object store (Garage, MinIO, AWS): the storage URL, and a blocking client for the
//! operations a storage back-end needs.
//!
//! Everything here blocks on the network, so it must run off the poll loop (on a bounded pool of helper
//! threads); it owns no thread, no timer and no loop state. Memory is bounded whatever the object size:
//! uploads go out in parts from the caller's buffer, downloads stream through [`ObjectReader`], listings come
//! a page at a time. All keys are relative to the location's prefix and are checked so that none can reach
//! outside it.
//!
//! [`Location`] parses `s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME`; [`Client`] runs the operations and maps
//! failures to [`Error`] (its module documents the mapping and which requests are retried).
//!
//! ```no_run
//! use std::io::{self, Read};
//! use ftp_server::s3::{Client, ClientConfig, Credentials, Location, MIN_PART_SIZE};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let location: Location = "s3://files/ftp?endpoint=http://127.0.0.2:3900&region=garage".parse()?;
//! let client = Client::new(&location, &Credentials::from_env()?, ClientConfig::default())?;
//! let home = client.under("alice")?; // keys under ftp/alice/, on the same connections
//!
//! // An upload: parts from one buffer; the object appears only when completed, and not at all if aborted.
//! let mut source = std::fs::File::open("report.pdf")?;
//! let upload = home.create_multipart("report.pdf")?;
//! let mut buf = vec![0; MIN_PART_SIZE];
//! let mut parts = Vec::new();
//! loop {
//!     let n = fill(&mut source, &mut buf)?;
//!     if n == 0 {
//!         break;
//!     }
//!     match home.upload_part(&upload, parts.len() as u16 + 1, &buf[..n]) {
//!         Ok(part) => parts.push(part),
//!         Err(e) => {
//!             home.abort(&upload)?;
//!             return Err(e.into());
//!         }
//!     }
//! }
//! if parts.is_empty() {
//!     home.abort(&upload)?;
//!     home.put("report.pdf", b"")?; // an empty file is one small PUT
//! } else {
//!     home.complete(&upload, &parts)?;
//! }
//!
//! // A download from an offset (REST): a Range GET, streamed.
//! let mut reader = home.get("report.pdf", 1024)?;
//! io::copy(&mut reader, &mut io::sink())?;
//!
//! // A directory listing, a page at a time.
//! let mut next = None;
//! loop {
//!     let page = home.list("", Some("/"), next.as_deref())?;
//!     for file in &page.files {
//!         println!("{} {}", file.key, file.size);
//!     }
//!     for dir in &page.dirs {
//!         println!("{dir}");
//!     }
//!     match page.next {
//!         Some(token) => next = Some(token),
//!         None => break,
//!     }
//! }
//! # Ok(())
//! # }
//! # fn fill(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
//! #     let mut filled = 0;
//! #     while filled < buf.len() {
//! #         match source.read(&mut buf[filled..])? {
//! #             0 => break,
//! #             n => filled += n,
//! #         }
//! #     }
//! #     Ok(filled)
//! # }
//! ```

mod client;
mod error;
mod key;
mod location;
mod reader;
mod wire;

pub use client::{Client, ClientConfig, Entry, ObjectMeta, Page, Part, Upload, MAX_PARTS, MIN_PART_SIZE};
pub use error::Error;
pub use key::MAX_KEY_BYTES;
pub use location::{
    Credentials, Location, LocationError, MissingCredentials, DEFAULT_REGION, ENV_KEY_ID, ENV_SECRET, ENV_SESSION_TOKEN,
};
pub use reader::ObjectReader;
