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

mod client;
mod error;
mod key;
mod location;
mod reader;
mod wire;

pub use client::{Client, ClientConfig, Entry, ObjectMeta, Page, Part, Upload, MAX_PARTS, MIN_PART_SIZE};
pub use error::Error;
pub use key::MAX_KEY_BYTES;
pub use location::{Credentials, Location, LocationError, MissingCredentials, DEFAULT_REGION, ENV_KEY_ID, ENV_SECRET};
pub use reader::ObjectReader;
