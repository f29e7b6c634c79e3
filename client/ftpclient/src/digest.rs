//! The digest of a stream of bytes that a transfer is verified with: CRC-32 in place, or SHA-256 computed beside
//! the stream once it is long.
//!
//! CRC-32 runs at memory speed (several GB/s), far below the cost of receiving and writing the bytes, so it is
//! computed on the transfer's own thread. SHA-256 costs about as much CPU as receiving and writing the bytes, so on
//! the transfer's own thread it nearly doubles the time a large download takes. For it a [`StreamHash`] hashes the
//! first [`OFFLOAD_AFTER`] bytes in place
//! (small files never start a thread), then copies the bytes into blocks of [`BLOCK`] bytes that a thread of its own
//! hashes, through a bounded queue, so receiving and hashing proceed together; a hasher that falls behind holds the
//! transfer back once [`QUEUE_BLOCKS`] blocks wait. Blocks go back to the sender for reuse, so a long transfer
//! allocates only a few.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use log::debug;
use sha2::{Digest, Sha256};

use ftp_client::to_hex;

/// The digests a transfer can be verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// CRC-32 (ISO-HDLC, zlib's): catches the accidental damage verification guards against (a truncated or
    /// corrupted copy, a file that changed meanwhile) at memory speed on both sides. A server that lies can send
    /// the digest of whatever it sent under any algorithm, so a stronger one buys nothing against it.
    Crc32,
    /// SHA-256: a cryptographic digest, about a CPU-second per GiB on each side.
    Sha256,
}

impl Algorithm {
    /// The name HASH and FEAT use.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Sha256 => "SHA-256",
        }
    }
}

/// A finished local digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDigest {
    pub algorithm: Algorithm,
    /// Lowercase hex, as the server's HASH reply spells it (eight digits for CRC-32).
    pub hex: String,
}

/// Bytes hashed in place before a thread takes over: below it a thread would cost more than it saves.
pub const OFFLOAD_AFTER: u64 = 4 * 1024 * 1024;

/// Bytes handed to the hashing thread at a time: large enough that passing blocks costs little next to hashing
/// them.
pub const BLOCK: usize = 256 * 1024;

/// Blocks that may wait for the hashing thread: enough to ride out scheduling hiccups (4 MiB), few enough to bound
/// the memory.
pub const QUEUE_BLOCKS: usize = 16;

/// A digest being computed over a stream.
pub struct StreamHash {
    state: State,
}

enum State {
    /// CRC-32, always on the caller's thread.
    Crc32(crc32fast::Hasher),
    /// SHA-256 on the caller's thread; the bytes so far.
    InPlace(Sha256, u64),
    /// Hashing on a thread of its own.
    /// `filling` collects bytes until it holds a [`BLOCK`].
    Beside { filling: Vec<u8>, blocks: SyncSender<Vec<u8>>, spare: Receiver<Vec<u8>>, worker: JoinHandle<Sha256> },
    /// The thread is gone (it cannot be, short of a panic in it): no digest.
    Lost,
}

impl StreamHash {
    pub fn new(algorithm: Algorithm) -> StreamHash {
        let state = match algorithm {
            Algorithm::Crc32 => State::Crc32(crc32fast::Hasher::new()),
            Algorithm::Sha256 => State::InPlace(Sha256::new(), 0),
        };
        StreamHash { state }
    }

    /// Adds `data` to the digest.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(hasher) => hasher.update(data),
            State::InPlace(hasher, len) => {
                hasher.update(data);
                *len += data.len() as u64;
                if *len >= OFFLOAD_AFTER {
                    self.offload();
                }
            }
            State::Beside { filling, blocks, spare, .. } => {
                filling.extend_from_slice(data);
                if filling.len() < BLOCK {
                    return;
                }
                let mut next = spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK * 2));
                next.clear();
                let full = std::mem::replace(filling, next);
                if blocks.send(full).is_err() {
                    debug!("the hashing thread is gone; no digest");
                    self.state = State::Lost;
                }
            }
            State::Lost => {}
        }
    }

    /// Moves the hashing to a thread of its own.
    fn offload(&mut self) {
        let State::InPlace(hasher, _) = std::mem::replace(&mut self.state, State::Lost) else { return };
        let (blocks, queue) = mpsc::sync_channel::<Vec<u8>>(QUEUE_BLOCKS);
        let (give_back, spare) = mpsc::channel();
        let spawned = thread::Builder::new().name("sha256".into()).spawn(move || {
            let mut hasher = hasher;
            for block in queue {
                hasher.update(&block);
                // The sender may be done with blocks; then this one is dropped.
                let _ = give_back.send(block);
            }
            hasher
        });
        match spawned {
            Ok(worker) => self.state = State::Beside { filling: Vec::with_capacity(BLOCK * 2), blocks, spare, worker },
            // No thread to be had: the hasher moved into the closure is lost with it, so is the digest.
            Err(e) => debug!("starting the hashing thread: {e}; no digest"),
        }
    }

    /// The digest of everything added; `None` only if the hashing thread was lost.
    pub fn finish(self) -> Option<LocalDigest> {
        let sha256 = |hasher: Sha256| LocalDigest { algorithm: Algorithm::Sha256, hex: to_hex(&hasher.finalize()) };
        match self.state {
            State::Crc32(hasher) => {
                Some(LocalDigest { algorithm: Algorithm::Crc32, hex: format!("{:08x}", hasher.finalize()) })
            }
            State::InPlace(hasher, _) => Some(sha256(hasher)),
            State::Beside { filling, blocks, worker, .. } => {
                if !filling.is_empty() && blocks.send(filling).is_err() {
                    return None;
                }
                // Closing the queue ends the thread once it has hashed what is queued.
                drop(blocks);
                worker.join().ok().map(sha256)
            }
            State::Lost => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(data: &[u8]) -> Option<LocalDigest> {
        Some(LocalDigest { algorithm: Algorithm::Sha256, hex: to_hex(&Sha256::digest(data)) })
    }

    #[test]
    fn short_streams_hash_in_place() {
        let mut hash = StreamHash::new(Algorithm::Sha256);
        hash.update(b"ab");
        hash.update(b"c");
        assert!(matches!(hash.state, State::InPlace(..)));
        assert_eq!(hash.finish(), expected(b"abc"));
    }

    // The CRC-32 check value (zlib's crc32 of "123456789"), and the leading zeros kept.
    #[test]
    fn crc32_in_eight_hex_digits() {
        let crc = |parts: &[&[u8]]| {
            let mut hash = StreamHash::new(Algorithm::Crc32);
            for part in parts {
                hash.update(part);
            }
            hash.finish().map(|d| (d.algorithm, d.hex))
        };
        assert_eq!(crc(&[b"1234", b"56789"]), Some((Algorithm::Crc32, "cbf43926".to_string())));
        assert_eq!(crc(&[]), Some((Algorithm::Crc32, "00000000".to_string())));
    }

    // The digest is the same whichever blocks were hashed in place and which beside, in any block sizes.
    #[test]
    fn long_streams_hash_beside_with_the_same_result() {
        let data: Vec<u8> = (0..OFFLOAD_AFTER as usize * 2 + 12345).map(|i| (i * 7 + i / 251) as u8).collect();
        for block in [1000, 65536, 1 << 20] {
            let mut hash = StreamHash::new(Algorithm::Sha256);
            for chunk in data.chunks(block) {
                hash.update(chunk);
            }
            assert!(matches!(hash.state, State::Beside { .. }), "block {block}");
            assert_eq!(hash.finish(), expected(&data), "block {block}");
        }
    }
}
