//! The session's side of its contract with the loop: the [`Action`]s it asks for and the [`Outcome`]s it is told.

use std::io;
use std::net::SocketAddr;

use crate::hash::HashJob;
use crate::transfer::{Transfer, TransferError};

/// I/O the session asks the loop to carry out.
pub enum Action {
    /// Open a passive listener; answer with [`Outcome::PassiveReady`] or [`Outcome::PassiveFailed`].
    ListenPassive,
    /// Connect to the client's PORT/EPRT address; answer with [`Outcome::DataConnected`] or
    /// [`Outcome::ActiveFailed`].
    ConnectActive(SocketAddr),
    /// Hash a file in steps across turns; answer with [`Outcome::HashDone`] or [`Outcome::HashFailed`].
    StartHash(Box<HashJob>),
    /// Run this transfer on the (connected) data connection, as a TLS server when `tls` (PROT P); answer with a
    /// transfer outcome.
    StartTransfer { transfer: Box<Transfer>, tls: bool },
    /// Send the queued replies (the 234) in plaintext, then switch the control connection to TLS. Lines the
    /// client sent after the AUTH command are discarded: they came in plaintext. No outcome follows.
    StartTls,
    /// Drop the passive listener, the data connection and any transfer on it. No outcome follows.
    CloseData,
    /// Stop the running HASH job (ABOR). No outcome follows.
    StopHash,
    /// Check `password` against the PHC string `hash` off the loop; answer with [`Outcome::Verified`].
    VerifyPassword { hash: String, password: String },
    /// Send the queued replies, then close the control connection.
    Close,
    /// The client did something that counts towards a ban of its address. No outcome follows.
    Offence(crate::bans::Offence),
    /// An event finished (an upload published, a file deleted, a login...): for `--hook`. No outcome follows.
    Event(Box<crate::hooks::Event>),
    /// Carry out a storage request; answer with [`Outcome::Storage`] (unless [`crate::storage::run`] has no
    /// answer for it).
    Storage(crate::storage::Request),
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::ListenPassive => write!(f, "ListenPassive"),
            Action::ConnectActive(a) => write!(f, "ConnectActive({a})"),
            Action::StartTransfer { transfer, tls } => {
                write!(f, "StartTransfer(upload={}, tls={tls})", transfer.is_upload())
            }
            Action::StartTls => write!(f, "StartTls"),
            Action::CloseData => write!(f, "CloseData"),
            Action::StopHash => write!(f, "StopHash"),
            Action::StartHash(_) => write!(f, "StartHash"),
            Action::VerifyPassword { .. } => write!(f, "VerifyPassword"),
            Action::Close => write!(f, "Close"),
            Action::Offence(o) => write!(f, "Offence({o})"),
            Action::Event(e) => write!(f, "Event({} {:?})", e.kind, e.path),
            Action::Storage(r) => write!(f, "Storage({:?})", r.op),
        }
    }
}

/// What the loop's I/O achieved.
#[derive(Debug)]
pub enum Outcome {
    PassiveReady(SocketAddr),
    PassiveFailed(io::Error),
    /// The data connection is established (the client connected to the listener, or our connect succeeded).
    DataConnected,
    ActiveFailed(io::Error),
    TransferDone {
        bytes: u64,
    },
    HashDone {
        hex: String,
        size: u64,
    },
    HashFailed(io::Error),
    /// Whether the password matched.
    Verified(bool),
    /// Too many password checks are waiting (server-wide or from this address): the login is refused.
    VerifierBusy,
    TransferFailed {
        bytes: u64,
        error: TransferError,
    },
    /// What came of an [`Action::Storage`].
    Storage(crate::storage::Done),
}
