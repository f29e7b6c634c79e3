//! The `ftpserver` library: a single-threaded mio event loop serving FTP from a confined root.
//!
//! [`server`] owns all I/O (the poll loop, sockets, the slab of connections); [`session`] is the protocol state
//! machine, free of I/O and clocks; [`transfer`] moves one transfer's bytes in bounded chunks; [`stream`] is a
//! connection's bytes, plain or TLS; [`tls`] loads the certificate and makes self-signed ones; [`listing`] formats
//! directory listings as a stream; [`fs`] is the only door to the filesystem; [`cli`] turns arguments into a
//! [`server::Config`].

pub mod access;
pub mod bans;
pub mod cli;
pub mod facts;
pub mod fs;
pub mod hash;
pub mod hooks;
pub mod limits;
pub mod listing;
pub mod metrics;
pub mod privileges;
pub mod proxy;
pub mod s3;
pub mod server;
pub mod session;
pub mod storage;
pub mod stream;
pub mod tls;
pub mod transfer;
pub mod turns;
pub mod verifier;
pub mod xferlog;

pub use server::{Config, Server};
pub use session::SessionConfig;
