//! Fuzzes the server's TYPE A conversion: LF to CRLF on downloads, CRLF to LF on uploads (a lone CR kept), through
//! `Transfer` as the loop drives it, with every share, scratch buffer and socket behaviour the input picks.
//!
//! Input: four control bytes, then the file (download) or the wire bytes (upload). Control: mode (upload or
//! download, ASCII or binary, and for uploads a REST offset into an existing file), the largest share the loop's
//! scratch buffer is sized for (1 to 256 bytes), and two seeds: one for the share of each step (sometimes more
//! than the scratch buffer holds), one for the socket, which moves a varying number of bytes per call and sometimes
//! would block or is interrupted.
//!
//! Properties: no panic; the transfer finishes; the bytes are the whole-stream conversion however the stream was
//! split (a CR at a step edge included), after the kept part of the file for REST + STOR; the transfer counts the
//! bytes the data connection carried.
#![no_main]

use std::io::{self, Read, Seek, SeekFrom, Write};

use ftp_server::transfer::{scratch_len, Source, Step, Transfer};
use libfuzzer_sys::fuzz_target;

/// A data connection that moves between 1 and `max` bytes per call, chosen by a small PRNG, and now and then
/// reports `WouldBlock` or `Interrupted` instead.
struct Socket {
    input: io::Cursor<Vec<u8>>,
    output: Vec<u8>,
    state: u32,
    max: usize,
}

impl Socket {
    /// `Err` for a would-block or interrupt, else how many bytes this call may move.
    fn budget(&mut self) -> io::Result<usize> {
        let r = next(&mut self.state);
        match r % 16 {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            1 => Err(io::ErrorKind::Interrupted.into()),
            _ => Ok(1 + (r >> 4) as usize % self.max),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.budget()?.min(buf.len());
        self.input.read(&mut buf[..n])
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.budget()?.min(buf.len());
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The download conversion over the whole file: every LF not already preceded by CR becomes CRLF.
fn lf_to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// The upload conversion over the whole stream: CRLF becomes LF; any other CR stays.
fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 1;
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

/// xorshift32: a fixed sequence per seed, so a crash reproduces.
fn next(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

/// Steps `t` until it is done, each step with its own share of at most twice `max_share` (the transfer clamps it
/// to the scratch buffer); every step moves bytes, blocks or yields, so this ends well within `limit` steps.
fn run(t: &mut Transfer, socket: &mut Socket, max_share: usize, mut shares: u32, limit: usize) {
    let mut scratch = vec![0; scratch_len(max_share)];
    for _ in 0..limit {
        let share = next(&mut shares) as usize % (2 * max_share) + 1;
        match t.step(socket, share, &mut scratch) {
            Step::Done => return,
            Step::Yield | Step::Blocked => {}
            Step::Failed(e) => panic!("transfer failed: {e:?}"),
        }
    }
    panic!("transfer not done after {limit} steps");
}

/// What an upload into a file resumes after: REST + STOR keeps the first bytes of an existing file.
const EXISTING: &[u8] = b"0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Some((&[mode, max_share, share_seed, seed], content)) = data.split_first_chunk::<4>() else { return };
    let (upload, ascii, resume) = (mode & 1 == 1, mode & 2 == 2, mode & 4 == 4);
    let max_share = 1 + usize::from(max_share);
    let max = 1 + usize::from(seed % 64);
    let state = u32::from(seed) << 8 | u32::from(mode) | 0x1000_0000;
    let shares = u32::from(share_seed) << 16 | 0x0100_0001;
    // A step moves at least one byte unless the socket blocks (1 call in 16): 64 steps per byte is plenty.
    let limit = 64 * (content.len() + 2);

    let Ok(mut file) = tempfile::tempfile() else { return };
    if upload {
        let offset = if resume { usize::from(mode >> 3) % (EXISTING.len() + 1) } else { 0 };
        let mut t = {
            let Ok(mut handle) = file.try_clone() else { return };
            if resume {
                handle.write_all(EXISTING).expect("existing file");
                handle.seek(SeekFrom::Start(offset as u64)).expect("seek");
                Transfer::receive(handle, ascii).truncating_at(offset as u64)
            } else {
                Transfer::receive(handle, ascii)
            }
        };
        let mut socket = Socket { input: io::Cursor::new(content.to_vec()), output: Vec::new(), state, max };
        run(&mut t, &mut socket, max_share, shares, limit);
        assert_eq!(t.bytes(), content.len() as u64);
        let mut stored = Vec::new();
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.read_to_end(&mut stored).expect("read back");
        let mut expected = EXISTING[..offset].to_vec();
        expected.extend(if ascii { crlf_to_lf(content) } else { content.to_vec() });
        assert_eq!(stored, expected);
    } else {
        file.write_all(content).expect("write file");
        file.seek(SeekFrom::Start(0)).expect("seek");
        let mut socket = Socket { input: io::Cursor::new(Vec::new()), output: Vec::new(), state, max };
        let mut t = Transfer::send(Source::File(file, content.len() as u64), ascii);
        run(&mut t, &mut socket, max_share, shares, limit);
        let expected = if ascii { lf_to_crlf(content) } else { content.to_vec() };
        assert_eq!(t.bytes(), expected.len() as u64);
        assert_eq!(socket.output, expected);
    }
});
