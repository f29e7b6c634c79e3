//! One transfer's data movement, in bounded steps: at most `quantum` chunks of `chunk` bytes per call.
//!
//! A [`Transfer`] owns its local side (a file or a listing) and one buffer allocated when it starts; the loop
//! hands it the data socket on each step. It never touches the control connection and never decides replies: it
//! reports [`Step`]s, and the session turns the final one into 226, 426, 451 or 452. A chunk only partly written
//! stays in the buffer and goes first on the next step. In ASCII mode (TYPE A) line ends become CRLF on the wire
//! and CRLF becomes LF on disk, with a CR split across chunks carried over.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use crate::listing::Listing;

/// Where a download's bytes come from.
pub enum Source {
    File(File),
    Listing(Box<Listing>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::File(f) => f.read(buf),
            Source::Listing(l) => l.read(buf),
        }
    }
}

/// What one step achieved.
#[derive(Debug)]
pub enum Step {
    /// The per-turn budget is used up and there is more to do: run again next turn.
    Yield,
    /// The socket would block: run again when it is ready.
    Blocked,
    /// Everything moved.
    Done,
    /// The transfer cannot go on.
    Failed(TransferError),
}

/// Why a transfer failed, split by who is at fault: the session maps these to 426 or 451/452.
#[derive(Debug)]
pub enum TransferError {
    /// The data connection failed or was closed early by the client.
    Network(io::Error),
    /// Reading or writing the local file failed (452 for a full disk, 451 otherwise).
    Local(io::Error),
}

enum Direction {
    Send {
        source: Source,
        pos: usize,
        end: usize,
        eof: bool,
    },
    /// `fill`: bytes received this turn, waiting in the buffer for the file. `truncate`: REST + STOR cuts the
    /// file at the offset when the transfer starts, not when the command came.
    Receive {
        file: File,
        fill: usize,
        truncate: Option<u64>,
    },
}

/// A transfer in progress.
pub struct Transfer {
    direction: Direction,
    ascii: bool,
    /// Send: the batch read from the local side, written out `chunk` bytes at a time. Receive: the chunks read
    /// this turn, written to the file at once. One batch is `chunk * quantum` bytes (twice that when sending in
    /// ASCII mode, where every LF may grow to CRLF).
    buf: Vec<u8>,
    /// ASCII conversion: the raw batch (send) or the converted one (receive). Empty in binary mode.
    scratch: Vec<u8>,
    /// ASCII send: the last byte of the previous batch was CR. ASCII receive: a CR is held back.
    held_cr: bool,
    chunk: usize,
    quantum: usize,
    bytes: u64,
    /// Send the file with sendfile(2) instead of reading it into `buf` (binary downloads of files only).
    zero_copy: bool,
}

impl Transfer {
    /// A download (RETR, LIST, NLST, MLSD).
    pub fn send(source: Source, ascii: bool, chunk: usize, quantum: usize) -> Transfer {
        let (chunk, quantum) = (chunk.max(1), quantum.max(1));
        let batch = chunk.saturating_mul(quantum);
        let buf = vec![0; if ascii { 2 * batch } else { batch }];
        let scratch = if ascii { vec![0; batch] } else { Vec::new() };
        let direction = Direction::Send { source, pos: 0, end: 0, eof: false };
        Transfer { direction, ascii, buf, scratch, held_cr: false, chunk, quantum, bytes: 0, zero_copy: false }
    }

    /// Asks for sendfile(2) where it applies: a binary download of a regular file. The loop uses it only on plain
    /// (not TLS) connections; elsewhere the transfer runs as usual.
    pub fn with_zero_copy(mut self, on: bool) -> Transfer {
        self.zero_copy = on && !self.ascii && matches!(self.direction, Direction::Send { source: Source::File(_), .. });
        if self.zero_copy {
            // The kernel moves the bytes; no user-space buffer is needed.
            self.buf = Vec::new();
        }
        self
    }

    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// A zero-copy step: at most `quantum` sendfile calls of at most one chunk each, the same budget and the same
    /// per-call size as [`Transfer::step`], so fairness does not change.
    pub fn step_zero_copy<S: AsFd>(&mut self, socket: &S) -> Step {
        let Direction::Send { source: Source::File(file), .. } = &mut self.direction else { return Step::Done };
        for _ in 0..self.quantum {
            match rustix::fs::sendfile(socket, &*file, None, self.chunk) {
                Ok(0) => return Step::Done,
                Ok(n) => self.bytes += n as u64,
                Err(rustix::io::Errno::AGAIN) => return Step::Blocked,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    let e = io::Error::from(e);
                    // sendfile reports both sides' failures; the socket's are the client's doing.
                    let network = matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    );
                    return Step::Failed(if network { TransferError::Network(e) } else { TransferError::Local(e) });
                }
            }
        }
        Step::Yield
    }

    /// An upload (STOR, APPE, STOU) into `file`.
    pub fn receive(file: File, ascii: bool, chunk: usize, quantum: usize) -> Transfer {
        let (chunk, quantum) = (chunk.max(1), quantum.max(1));
        let batch = chunk.saturating_mul(quantum);
        let direction = Direction::Receive { file, fill: 0, truncate: None };
        let scratch = if ascii { vec![0; batch + 1] } else { Vec::new() };
        let buf = vec![0; batch];
        Transfer { direction, ascii, buf, scratch, held_cr: false, chunk, quantum, bytes: 0, zero_copy: false }
    }

    /// An upload that resumes at `offset` (REST + STOR): the file is cut there by the first step, once the data
    /// connection is up, so a STOR whose connection never comes leaves the file as it was.
    pub fn truncating_at(mut self, offset: u64) -> Transfer {
        if let Direction::Receive { truncate, .. } = &mut self.direction {
            *truncate = Some(offset);
        }
        self
    }

    /// Bytes moved over the data connection so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_upload(&self) -> bool {
        matches!(self.direction, Direction::Receive { .. })
    }

    /// Moves at most `quantum` chunks between the local side and `socket`.
    pub fn step<S: Read + Write>(&mut self, socket: &mut S) -> Step {
        match self.direction {
            Direction::Send { .. } => self.step_send(socket),
            Direction::Receive { .. } => self.step_receive(socket),
        }
    }

    /// Each socket write carries at most one chunk; the local side is read a whole batch at a time, so a turn
    /// costs one read and `quantum` writes.
    fn step_send<S: Write>(&mut self, socket: &mut S) -> Step {
        let Direction::Send { source, pos, end, eof } = &mut self.direction else { return Step::Done };
        for _ in 0..self.quantum {
            if *pos == *end {
                if *eof {
                    return Step::Done;
                }
                let filled = if self.ascii {
                    fill_ascii(source, &mut self.scratch, &mut self.buf, &mut self.held_cr)
                } else {
                    read_retrying(source, &mut self.buf)
                };
                match filled {
                    Ok(0) => {
                        *eof = true;
                        return Step::Done;
                    }
                    Ok(n) => {
                        *pos = 0;
                        *end = n;
                    }
                    Err(e) => return Step::Failed(TransferError::Local(e)),
                }
            }
            let upto = (*pos + self.chunk).min(*end);
            match socket.write(&self.buf[*pos..upto]) {
                Ok(0) => return Step::Failed(TransferError::Network(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    *pos += n;
                    self.bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Step::Failed(TransferError::Network(e)),
            }
        }
        Step::Yield
    }

    /// Each socket read takes at most one chunk; what a turn read goes to the file in one write.
    fn step_receive<S: Read>(&mut self, socket: &mut S) -> Step {
        if let Direction::Receive { file, truncate, .. } = &mut self.direction {
            if let Some(offset) = truncate.take() {
                if let Err(e) = file.set_len(offset) {
                    return Step::Failed(TransferError::Local(e));
                }
            }
        }
        let mut outcome = Step::Yield;
        for _ in 0..self.quantum {
            let Direction::Receive { fill, .. } = &mut self.direction else { return Step::Done };
            let at = *fill;
            match socket.read(&mut self.buf[at..at + self.chunk]) {
                Ok(0) => {
                    outcome = Step::Done;
                    break;
                }
                Ok(n) => {
                    *fill += n;
                    self.bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    outcome = Step::Blocked;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Step::Failed(TransferError::Network(e)),
            }
        }
        if let Err(e) = self.flush(matches!(outcome, Step::Done)) {
            return Step::Failed(TransferError::Local(e));
        }
        outcome
    }

    /// Writes what this turn received to the file; at the end, a held-back CR too (it had no LF after it).
    fn flush(&mut self, at_end: bool) -> io::Result<()> {
        let Direction::Receive { file, fill, .. } = &mut self.direction else { return Ok(()) };
        if self.ascii {
            let len = crlf_to_lf(&self.buf[..*fill], &mut self.scratch, &mut self.held_cr);
            file.write_all(&self.scratch[..len])?;
            if at_end && self.held_cr {
                self.held_cr = false;
                file.write_all(b"\r")?;
            }
        } else {
            file.write_all(&self.buf[..*fill])?;
        }
        *fill = 0;
        Ok(())
    }
}

fn read_retrying(source: &mut Source, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match source.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Reads one raw chunk into `raw` and writes it to `out` with every bare LF turned into CRLF. `prev_cr` says
/// whether the previous chunk ended in CR (so an LF starting this one is already part of a CRLF).
fn fill_ascii(source: &mut Source, raw: &mut [u8], out: &mut [u8], prev_cr: &mut bool) -> io::Result<usize> {
    let n = read_retrying(source, raw)?;
    let mut len = 0;
    for &b in &raw[..n] {
        if b == b'\n' && !*prev_cr {
            out[len] = b'\r';
            len += 1;
        }
        out[len] = b;
        len += 1;
        *prev_cr = b == b'\r';
    }
    Ok(len)
}

/// Copies `input` to `out` with each CRLF turned into LF. A CR at the end of `input` is held back (`held_cr`)
/// until the next byte shows whether it starts a CRLF. Returns the length written to `out`: at most
/// `input.len() + 1`, when a CR held from the previous chunk is released.
fn crlf_to_lf(input: &[u8], out: &mut [u8], held_cr: &mut bool) -> usize {
    let mut len = 0;
    for &b in input {
        if *held_cr {
            *held_cr = false;
            if b != b'\n' {
                out[len] = b'\r';
                len += 1;
            }
        }
        if b == b'\r' {
            *held_cr = true;
            continue;
        }
        out[len] = b;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Seek};

    /// A socket stand-in that accepts at most `per_write` bytes per write and blocks after `budget` writes.
    struct Pipe {
        written: Vec<u8>,
        per_write: usize,
        budget: usize,
        input: Cursor<Vec<u8>>,
        per_read: usize,
    }

    impl Pipe {
        fn sink(per_write: usize, budget: usize) -> Pipe {
            Pipe { written: Vec::new(), per_write, budget, input: Cursor::new(Vec::new()), per_read: usize::MAX }
        }
        fn source(data: Vec<u8>, per_read: usize) -> Pipe {
            Pipe { written: Vec::new(), per_write: 0, budget: usize::MAX, input: Cursor::new(data), per_read }
        }
    }

    impl Write for Pipe {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.budget -= 1;
            let n = b.len().min(self.per_write);
            self.written.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Read for Pipe {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            let n = b.len().min(self.per_read);
            self.input.read(&mut b[..n])
        }
    }

    fn file_with(data: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f.rewind().unwrap();
        f
    }

    fn run_send(data: &[u8], ascii: bool, chunk: usize, per_write: usize) -> Vec<u8> {
        let mut t = Transfer::send(Source::File(file_with(data)), ascii, chunk, 4);
        let mut sock = Pipe::sink(per_write, usize::MAX);
        for _ in 0..1_000_000 {
            match t.step(&mut sock) {
                Step::Done => return sock.written,
                Step::Yield | Step::Blocked => {}
                Step::Failed(e) => panic!("{e:?}"),
            }
        }
        panic!("transfer did not finish");
    }

    // Binary mode is byte-exact, whatever the chunk and the socket's partial writes.
    #[test]
    fn binary_send_is_exact() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (chunk, per_write) in [(1024, 1024), (1024, 100), (7, 3), (1, 1)] {
            assert_eq!(run_send(&data, false, chunk, per_write), data);
        }
    }

    // At most `quantum` chunks move per step; the step then yields.
    #[test]
    fn quantum_bounds_one_step() {
        let data = vec![1u8; 10 * 1024];
        let mut t = Transfer::send(Source::File(file_with(&data)), false, 1024, 3);
        let mut sock = Pipe::sink(usize::MAX, usize::MAX);
        assert!(matches!(t.step(&mut sock), Step::Yield));
        assert_eq!(sock.written.len(), 3 * 1024);
    }

    // A partly written chunk stays and goes first when the socket is writable again.
    #[test]
    fn partial_chunk_goes_first_after_blocking() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut t = Transfer::send(Source::File(file_with(&data)), false, 1024, 8);
        let mut sock = Pipe::sink(500, 1);
        assert!(matches!(t.step(&mut sock), Step::Blocked));
        assert_eq!(sock.written.len(), 500);
        sock.budget = usize::MAX;
        sock.per_write = usize::MAX;
        loop {
            match t.step(&mut sock) {
                Step::Done => break,
                Step::Failed(e) => panic!("{e:?}"),
                _ => {}
            }
        }
        assert_eq!(sock.written, data);
    }

    // Fairness is kept on the wire: no socket write carries more than one chunk, whatever the batch read.
    #[test]
    fn writes_never_exceed_a_chunk() {
        struct Sizes(Vec<usize>);
        impl Write for Sizes {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.push(b.len());
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Read for Sizes {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Ok(0)
            }
        }
        let data = vec![7u8; 10_000];
        let mut t = Transfer::send(Source::File(file_with(&data)), false, 1000, 4);
        let mut sock = Sizes(Vec::new());
        assert!(matches!(t.step(&mut sock), Step::Yield));
        assert_eq!(sock.0, vec![1000; 4]);
        while !matches!(t.step(&mut sock), Step::Done) {}
        assert!(sock.0.iter().all(|&n| n <= 1000));
        assert_eq!(sock.0.iter().sum::<usize>(), 10_000);
    }

    // sendfile moves the file byte-exactly, from the current offset (REST), at most one chunk per call.
    #[test]
    fn zero_copy_send_is_exact() {
        use std::os::unix::net::UnixStream;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut file = file_with(&data);
        file.seek(io::SeekFrom::Start(1000)).unwrap();
        let mut t = Transfer::send(Source::File(file), false, 4096, 3).with_zero_copy(true);
        assert!(t.is_zero_copy());
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got
        });
        loop {
            match t.step_zero_copy(&ours) {
                Step::Done => break,
                Step::Yield | Step::Blocked => std::thread::yield_now(),
                Step::Failed(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(t.bytes(), 199_000);
        drop(ours);
        assert_eq!(reader.join().unwrap(), &data[1000..]);
        // ASCII mode and listings never use it.
        assert!(!Transfer::send(Source::File(file_with(b"x")), true, 1, 1).with_zero_copy(true).is_zero_copy());
    }

    // TYPE A: LF becomes CRLF on the wire; an existing CRLF is not doubled, even split across chunks.
    #[test]
    fn ascii_send_converts_line_ends() {
        assert_eq!(run_send(b"a\nb\r\nc\n", true, 1024, 1024), b"a\r\nb\r\nc\r\n");
        assert_eq!(run_send(b"ab\r\ncd\n\n", true, 3, 2), b"ab\r\ncd\r\n\r\n");
    }

    fn run_receive(wire: &[u8], ascii: bool, chunk: usize, per_read: usize) -> Vec<u8> {
        let mut f = tempfile::tempfile().unwrap();
        let mut t = Transfer::receive(f.try_clone().unwrap(), ascii, chunk, 4);
        let mut sock = Pipe::source(wire.to_vec(), per_read);
        loop {
            match t.step(&mut sock) {
                Step::Done => break,
                Step::Failed(e) => panic!("{e:?}"),
                _ => {}
            }
        }
        assert_eq!(t.bytes(), wire.len() as u64);
        f.rewind().unwrap();
        let mut out = Vec::new();
        f.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn binary_receive_is_exact() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
        assert_eq!(run_receive(&data, false, 1024, 1024), data);
        assert_eq!(run_receive(&data, false, 1024, 77), data);
        assert_eq!(run_receive(b"", false, 1024, 77), b"");
    }

    // TYPE A upload: CRLF becomes LF, lone CRs are kept, a CR split from its LF by a chunk boundary still pairs.
    #[test]
    fn ascii_receive_converts_line_ends() {
        assert_eq!(run_receive(b"a\r\nb\rc\r\n", true, 1024, 1024), b"a\nb\rc\n");
        assert_eq!(run_receive(b"ab\r\ncd\r", true, 3, 3), b"ab\ncd\r");
        assert_eq!(run_receive(b"x\r\r\n", true, 1, 1), b"x\r\n");
    }

    // A socket error during a download is the client's side: Network.
    #[test]
    fn socket_error_is_network_failure() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
        }
        let mut t = Transfer::send(Source::File(file_with(b"data")), false, 1024, 4);
        assert!(matches!(t.step(&mut Broken), Step::Failed(TransferError::Network(_))));
        let mut t = Transfer::receive(tempfile::tempfile().unwrap(), false, 1024, 4);
        assert!(matches!(t.step(&mut Broken), Step::Failed(TransferError::Network(_))));
    }
}
