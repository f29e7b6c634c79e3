//! HASH (draft-bryan-ftpext-hash): a file's digest computed in bounded steps across loop turns.
//!
//! A [`HashJob`] reads and digests at most a fixed number of bytes per [`HashJob::step`], so hashing a 10 GiB
//! file never stalls the other sessions: the loop runs it from its runnable queue like a transfer.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};

use digest::DynDigest;

/// Bytes digested per loop turn: hashing runs at several hundred MB/s, so this is well under a millisecond.
pub const HASH_BYTES_PER_TURN: usize = 256 * 1024;
const READ_BUF: usize = 64 * 1024;

/// The algorithms HASH offers, in FEAT order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
    Md5,
    /// CRC-32 (ISO-HDLC, as zlib and the draft's examples), eight hex digits: catches the accidental damage a
    /// verified transfer guards against at memory speed, where SHA-256 costs about a CPU-second per GiB.
    Crc32,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] =
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512, Algorithm::Md5, Algorithm::Crc32];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA-1",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512 => "SHA-512",
            Algorithm::Md5 => "MD5",
            Algorithm::Crc32 => "CRC32",
        }
    }

    /// Case-insensitive, as the draft's examples use both `SHA-256` and `sha-256`.
    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha1 => Hasher::Digest(Box::new(sha1::Sha1::default())),
            Algorithm::Sha256 => Hasher::Digest(Box::new(sha2::Sha256::default())),
            Algorithm::Sha512 => Hasher::Digest(Box::new(sha2::Sha512::default())),
            Algorithm::Md5 => Hasher::Digest(Box::new(md5::Md5::default())),
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
        }
    }

    /// The FEAT line: every algorithm, the selected one starred.
    pub fn feat_line(selected: Algorithm) -> String {
        let names: Vec<String> = Algorithm::ALL
            .iter()
            .map(|a| if *a == selected { format!("{}*", a.name()) } else { a.name().to_string() })
            .collect();
        format!(" HASH {}", names.join(";"))
    }
}

/// A digest being computed.
enum Hasher {
    Digest(Box<dyn DynDigest + Send>),
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Digest(d) => d.update(bytes),
            Hasher::Crc32(c) => c.update(bytes),
        }
    }

    /// The digest in lowercase hex.
    fn hex(&mut self) -> String {
        match self {
            Hasher::Digest(d) => {
                let digest = d.finalize_reset();
                let mut hex = String::with_capacity(digest.len() * 2);
                for b in digest.iter() {
                    let _ = write!(hex, "{b:02x}");
                }
                hex
            }
            Hasher::Crc32(c) => format!("{:08x}", std::mem::take(c).finalize()),
        }
    }
}

/// What one step achieved.
#[derive(Debug)]
pub enum HashStep {
    More,
    /// The lowercase hex digest and the number of bytes hashed.
    Done {
        hex: String,
        size: u64,
    },
    Failed(io::Error),
}

/// One file being hashed: read by the loop a budget at a time, or (`file` is `None`) fed by a storage thread
/// with [`HashJob::update`], when the loop only reports the result.
pub struct HashJob {
    file: Option<File>,
    hasher: Hasher,
    buf: Vec<u8>,
    size: u64,
}

impl HashJob {
    pub fn new(file: File, algorithm: Algorithm) -> HashJob {
        HashJob { file: Some(file), hasher: algorithm.hasher(), buf: vec![0; READ_BUF], size: 0 }
    }

    /// A job whose bytes come through [`HashJob::update`].
    pub fn streaming(algorithm: Algorithm) -> HashJob {
        HashJob { file: None, hasher: algorithm.hasher(), buf: Vec::new(), size: 0 }
    }

    /// Digests bytes fed to a streaming job.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Digests up to `budget` more bytes.
    pub fn step(&mut self, budget: usize) -> HashStep {
        let mut done = 0;
        while done < budget {
            let read = match &mut self.file {
                Some(f) => f.read(&mut self.buf),
                None => Ok(0),
            };
            match read {
                Ok(0) => return HashStep::Done { hex: self.hasher.hex(), size: self.size },
                Ok(n) => {
                    self.hasher.update(&self.buf[..n]);
                    self.size += n as u64;
                    done += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return HashStep::Failed(e),
            }
        }
        HashStep::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    fn run(data: &[u8], a: Algorithm, budget: usize) -> (String, u64) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f.rewind().unwrap();
        let mut job = HashJob::new(f, a);
        for _ in 0..100_000 {
            match job.step(budget) {
                HashStep::More => {}
                HashStep::Done { hex, size } => return (hex, size),
                HashStep::Failed(e) => panic!("{e}"),
            }
        }
        panic!("never finished");
    }

    // Known digests of "abc" (FIPS 180 and RFC 1321 test vectors).
    #[test]
    fn known_vectors() {
        assert_eq!(
            run(b"abc", Algorithm::Sha256, 1).0,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(run(b"abc", Algorithm::Sha1, 1).0, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(run(b"abc", Algorithm::Md5, 1).0, "900150983cd24fb0d6963f7d28e17f72");
        assert!(run(b"abc", Algorithm::Sha512, 1).0.starts_with("ddaf35a193617aba"));
        // The CRC-32 check value (zlib's crc32 of "123456789"), and leading zeros kept.
        assert_eq!(run(b"123456789", Algorithm::Crc32, 1).0, "cbf43926");
        assert_eq!(run(b"", Algorithm::Crc32, 1).0, "00000000");
        assert_eq!(run(b"a", Algorithm::Crc32, 1).0, "e8b7be43");
        assert_eq!(run(b"", Algorithm::Sha256, 1).1, 0);
    }

    // Small budgets take many steps and give the same digest as one big step.
    #[test]
    fn budget_does_not_change_the_digest() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        assert_eq!(run(&data, Algorithm::Sha256, 1), run(&data, Algorithm::Sha256, 1 << 30));
        assert_eq!(run(&data, Algorithm::Sha256, 1).1, 300_000);
        assert_eq!(run(&data, Algorithm::Crc32, 1), run(&data, Algorithm::Crc32, 1 << 30));
    }

    #[test]
    fn names() {
        assert_eq!(Algorithm::parse("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse("crc32"), Some(Algorithm::Crc32));
        assert_eq!(Algorithm::parse("CRC-32"), None);
        assert_eq!(Algorithm::feat_line(Algorithm::Sha256), " HASH SHA-1;SHA-256*;SHA-512;MD5;CRC32");
    }
}
