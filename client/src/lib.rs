//! A blocking FTP client library.
//!
//! [`FtpClient`] speaks standard FTP (RFC 959, with EPSV and EPRT from RFC 2428) and its common extensions (FEAT,
//! REST, MDTM, MLSD/MLST, MFMT, HASH) to any server over `std::net` sockets: one method per operation, each checking
//! the reply codes its command accepts and returning an [`FtpError`] that carries the command and the whole reply
//! otherwise. Data connections are passive by default, active on request; a transfer can be aborted from another
//! thread or a signal handler ([`FtpClient::set_interrupt`]). Wire framing (replies, host-port notations) comes
//! from `ftp-common`. The `ftpclient` command (`client/ftpclient`) and the `ftpload` load tool (`client/ftpload`)
//! are built on this library; it carries none of their dependencies (argument parsing, progress bars, histograms).
//!
//! FTPS (RFC 4217) is built in: [`FtpClient::connect_implicit_tls`] for implicit TLS, [`FtpClient::auth_tls`] for
//! explicit TLS, after which every data connection is TLS too; [`TlsConfig`] says which certificates to trust.

mod client;
mod entry;
mod error;
mod features;
mod stream;
/// FTP time values; they live in ftp-common, shared with the server.
pub use ftp_common::time as timestamp;
pub mod tls;
pub mod visible;

pub use client::{
    better_error, check_command_line, parse_quoted_path, passive_data_address, FtpClient, DATA_BUFFER,
    MAX_DELAY_REPLIES, TRANSFER_DONE,
};
pub use entry::{parse_mlsd, Entry, EntryKind};
pub use error::FtpError;
pub use features::{feature_params, parse_choice_list, parse_feat_lines, parse_hash_reply, to_hex, FileHash};
pub use ftp_common::{Reply, ReplyCode};
pub use stream::FtpStream;
pub use tls::TlsConfig;
pub use visible::visible;

#[cfg(test)]
mod extension_tests;
/// A scripted fake server for tests (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod fake_server;
#[cfg(test)]
mod fake_tls;
#[cfg(test)]
mod protocol_tests;
#[cfg(test)]
mod tls_tests;
