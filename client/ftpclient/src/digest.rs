//! The SHA-256 of a stream of bytes, computed beside the stream once it is long.
//!
//! Hashing costs about as much CPU as receiving and writing the bytes, so on the transfer's own thread it nearly
//! doubles the time a large download takes. A [`StreamHash`] hashes the first [`OFFLOAD_AFTER`] bytes in place
//! (small files never start a thread), then copies the bytes into blocks of [`BLOCK`] bytes that a thread of its own
//! hashes, through a bounded queue, so receiving and hashing proceed together; a hasher that falls behind holds the
//! transfer back once [`QUEUE_BLOCKS`] blocks wait. Blocks go back to the sender for reuse, so a long transfer
//! allocates only a few.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use log::debug;
use sha2::{Digest, Sha256};

/// Bytes hashed in place before a thread takes over: below it a thread would cost more than it saves.
pub const OFFLOAD_AFTER: u64 = 4 * 1024 * 1024;

/// Bytes handed to the hashing thread at a time: large enough that passing blocks costs little next to hashing
/// them.
pub const BLOCK: usize = 256 * 1024;

/// Blocks that may wait for the hashing thread: enough to ride out scheduling hiccups (4 MiB), few enough to bound
/// the memory.
pub const QUEUE_BLOCKS: usize = 16;

/// A SHA-256 being computed over a stream.
pub struct StreamHash {
    state: State,
}

enum State {
    /// Hashing on the caller's thread; the bytes so far.
    InPlace(Sha256, u64),
    /// Hashing on a thread of its own.
    /// `filling` collects bytes until it holds a [`BLOCK`].
    Beside { filling: Vec<u8>, blocks: SyncSender<Vec<u8>>, spare: Receiver<Vec<u8>>, worker: JoinHandle<Sha256> },
    /// The thread is gone (it cannot be, short of a panic in it): no digest.
    Lost,
}

impl Default for StreamHash {
    fn default() -> Self {
        StreamHash::new()
    }
}

impl StreamHash {
    pub fn new() -> StreamHash {
        StreamHash { state: State::InPlace(Sha256::new(), 0) }
    }

    /// Adds `data` to the digest.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
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
    pub fn finish(self) -> Option<[u8; 32]> {
        match self.state {
            State::InPlace(hasher, _) => Some(hasher.finalize().into()),
            State::Beside { filling, blocks, worker, .. } => {
                if !filling.is_empty() && blocks.send(filling).is_err() {
                    return None;
                }
                // Closing the queue ends the thread once it has hashed what is queued.
                drop(blocks);
                worker.join().ok().map(|hasher| hasher.finalize().into())
            }
            State::Lost => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn short_streams_hash_in_place() {
        let mut hash = StreamHash::new();
        hash.update(b"ab");
        hash.update(b"c");
        assert!(matches!(hash.state, State::InPlace(..)));
        assert_eq!(hash.finish(), Some(expected(b"abc")));
    }

    // The digest is the same whichever blocks were hashed in place and which beside, in any block sizes.
    #[test]
    fn long_streams_hash_beside_with_the_same_result() {
        let data: Vec<u8> = (0..OFFLOAD_AFTER as usize * 2 + 12345).map(|i| (i * 7 + i / 251) as u8).collect();
        for block in [1000, 65536, 1 << 20] {
            let mut hash = StreamHash::new();
            for chunk in data.chunks(block) {
                hash.update(chunk);
            }
            assert!(matches!(hash.state, State::Beside { .. }), "block {block}");
            assert_eq!(hash.finish(), Some(expected(&data)), "block {block}");
        }
    }
}
