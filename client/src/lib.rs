//! A blocking FTP client, and the `ftpclient` command built on it.
//!
//! [`FtpClient`] speaks standard FTP (RFC 959, with EPSV from RFC 2428) to any server over `std::net` sockets:
//! one method per operation, each checking the reply codes its command accepts and returning an [`FtpError`] that
//! carries the command and the whole reply otherwise. Data connections are passive. The [`cli`] module is the
//! `ftpclient` program: argument parsing, the command language (`get`, `upload`, `ls` ...) and the safe handling of
//! local files. Wire framing (replies, host-port notations) comes from `ftp-common`.

pub mod cli;
mod client;
mod error;

pub use client::{parse_quoted_path, FtpClient, DATA_BUFFER};
pub use error::FtpError;
pub use ftp_common::{Reply, ReplyCode};

#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod protocol_tests;
