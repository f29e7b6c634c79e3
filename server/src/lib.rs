//! The `ftpserver` library: a single-threaded mio event loop serving FTP from a confined root.
//!
//! [`server`] owns all I/O (the poll loop, sockets, the slab of connections); [`session`] is the protocol state
//! machine, free of I/O and clocks; [`transfer`] moves one transfer's bytes in bounded chunks; [`listing`] formats
//! directory listings as a stream; [`fs`] is the only door to the filesystem; [`cli`] turns arguments into a
//! [`server::Config`].

pub mod access;
pub mod cli;
pub mod facts;
pub mod fs;
pub mod hash;
pub mod listing;
pub mod server;
pub mod session;
pub mod transfer;
pub mod verifier;

pub use server::{Config, Server};
pub use session::SessionConfig;
