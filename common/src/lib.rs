//! The FTP wire format, shared by the server and the client.
//!
//! This crate owns bytes-to-meaning and meaning-to-bytes for the control connection: assembling lines from
//! arbitrary reads ([`LineBuffer`]), parsing commands ([`Command`]), encoding and parsing replies ([`Reply`]) and
//! the host-port notations of PASV, PORT, EPSV and EPRT ([`hostport`]), and the UTC time values of MDTM, MFMT and
//! MLSx ([`time`]). It must not touch sockets, clocks or
//! files: everything here is a pure function of its input, so it can be tested exhaustively.

pub mod command;
pub mod hostport;
pub mod linebuf;
pub mod reply;
pub mod time;

pub use command::{ArgRule, Command, EpsvArg, ParseError, TransferType, VerbInfo};
pub use linebuf::{Line, LineBuffer, MAX_LINE};
pub use reply::{Reply, ReplyCode, ReplyError, ReplyParser};
