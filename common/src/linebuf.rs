//! Incremental assembly of control-connection lines from arbitrary reads.
//!
//! Bytes arrive split anywhere; [`LineBuffer::push`] accepts them in any pieces and [`LineBuffer::pop`] hands out
//! complete lines in order. It strips Telnet IAC sequences (RFC 854), accepts CRLF and bare LF, and enforces a hard
//! maximum line length: a longer line is reported once as [`Line::TooLong`] and everything up to its newline is
//! discarded, so no byte past the limit is ever seen as (part of) a command and memory never grows without bound.

use std::collections::VecDeque;

/// Longest accepted line, in bytes, excluding the line end. RFC 959 sets no limit; 4 KiB holds any real path
/// (PATH_MAX is 4096 on Linux) plus a verb, and bounds what one hostile connection can make us hold.
pub const MAX_LINE: usize = 4096;

const IAC: u8 = 255;
const DONT: u8 = 254;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;

/// One unit popped from a [`LineBuffer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its line end (and without Telnet commands).
    Text(Vec<u8>),
    /// A line exceeded the limit; it has been (or will be, up to its newline) discarded.
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    /// Plain data.
    Data,
    /// Just saw IAC.
    Iac,
    /// Saw IAC WILL/WONT/DO/DONT; the next byte is the option code.
    Option,
    /// Inside IAC SB ... IAC SE sub-negotiation.
    Sub,
    /// Saw IAC inside sub-negotiation.
    SubIac,
}

/// Assembles lines from a byte stream. Holds no heap memory while idle.
#[derive(Debug)]
pub struct LineBuffer {
    max: usize,
    current: Vec<u8>,
    ready: VecDeque<Line>,
    telnet: Telnet,
    discarding: bool,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl LineBuffer {
    /// A buffer that accepts lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max, current: Vec::new(), ready: VecDeque::new(), telnet: Telnet::Data, discarding: false }
    }

    /// Feeds bytes as they came off the wire.
    pub fn push(&mut self, data: &[u8]) {
        for &b in data {
            if let Some(b) = self.telnet_filter(b) {
                self.push_data(b);
            }
        }
    }

    /// The next complete line, if any.
    pub fn pop(&mut self) -> Option<Line> {
        let line = self.ready.pop_front();
        if self.ready.is_empty() && self.ready.capacity() > 0 {
            // An idle connection holds no memory here; lines are rare enough to allocate each time.
            self.ready = VecDeque::new();
        }
        line
    }

    /// Number of complete lines waiting to be popped.
    pub fn ready_lines(&self) -> usize {
        self.ready.len()
    }

    /// Bytes held for the line still being assembled.
    pub fn partial_len(&self) -> usize {
        self.current.len()
    }

    /// Returns the data byte `b` stands for, or `None` if it is part of a Telnet command.
    fn telnet_filter(&mut self, b: u8) -> Option<u8> {
        match (self.telnet, b) {
            (Telnet::Data, IAC) => {
                self.telnet = Telnet::Iac;
                None
            }
            (Telnet::Data, _) => Some(b),
            // IAC IAC is an escaped 255 data byte.
            (Telnet::Iac, IAC) => {
                self.telnet = Telnet::Data;
                Some(IAC)
            }
            (Telnet::Iac, WILL..=DONT) => {
                self.telnet = Telnet::Option;
                None
            }
            (Telnet::Iac, SB) => {
                self.telnet = Telnet::Sub;
                None
            }
            // Any other command (IP, DM, AO, ...) is two bytes long.
            (Telnet::Iac, _) | (Telnet::Option, _) => {
                self.telnet = Telnet::Data;
                None
            }
            (Telnet::Sub, IAC) => {
                self.telnet = Telnet::SubIac;
                None
            }
            (Telnet::Sub, _) => None,
            (Telnet::SubIac, SE) => {
                self.telnet = Telnet::Data;
                None
            }
            (Telnet::SubIac, _) => {
                self.telnet = Telnet::Sub;
                None
            }
        }
    }

    fn push_data(&mut self, b: u8) {
        if b == b'\n' {
            if self.discarding {
                self.discarding = false;
                return;
            }
            let mut line = std::mem::take(&mut self.current);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.ready.push_back(Line::Text(line));
            return;
        }
        if self.discarding {
            return;
        }
        // A CR may still turn out to be the first half of CRLF, so it only counts once a byte follows it.
        let pending_cr = b == b'\r' && self.current.last() != Some(&b'\r');
        let counted = self.current.len() + usize::from(!pending_cr);
        if counted > self.max {
            self.current = Vec::new();
            self.discarding = true;
            self.ready.push_back(Line::TooLong);
            return;
        }
        self.current.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(buf: &mut LineBuffer) -> Vec<Line> {
        std::iter::from_fn(|| buf.pop()).collect()
    }

    fn text(s: &str) -> Line {
        Line::Text(s.as_bytes().to_vec())
    }

    // RFC 959 §4.1: commands end with CRLF.
    #[test]
    fn crlf_ends_a_line() {
        let mut b = LineBuffer::default();
        b.push(b"USER ftp\r\nPASS x\r\n");
        assert_eq!(lines(&mut b), vec![text("USER ftp"), text("PASS x")]);
    }

    // Many clients (and people at telnet) send bare LF; it is accepted as a line end.
    #[test]
    fn bare_lf_ends_a_line() {
        let mut b = LineBuffer::default();
        b.push(b"NOOP\nPWD\n");
        assert_eq!(lines(&mut b), vec![text("NOOP"), text("PWD")]);
    }

    // A line is only complete once its newline has arrived.
    #[test]
    fn partial_line_waits_for_its_end() {
        let mut b = LineBuffer::default();
        b.push(b"NO");
        assert_eq!(b.pop(), None);
        b.push(b"OP\r");
        assert_eq!(b.pop(), None);
        b.push(b"\n");
        assert_eq!(b.pop(), Some(text("NOOP")));
    }

    // RFC 959 §4.1.3 / RFC 854: ABOR is preceded by Telnet IP and Synch (IAC IP IAC DM); those are not data.
    #[test]
    fn telnet_interrupt_and_synch_are_stripped() {
        let mut b = LineBuffer::default();
        b.push(&[IAC, 244, IAC, 242]);
        b.push(b"ABOR\r\n");
        assert_eq!(lines(&mut b), vec![text("ABOR")]);
    }

    // RFC 854: option negotiation (IAC DO x) is three bytes; sub-negotiation runs to IAC SE.
    #[test]
    fn telnet_negotiation_is_stripped() {
        let mut b = LineBuffer::default();
        b.push(&[b'N', IAC, 253, 1, b'O', IAC, SB, 24, 1, 2, IAC, SE, b'O', b'P', b'\n']);
        assert_eq!(lines(&mut b), vec![text("NOOP")]);
    }

    // RFC 854: IAC IAC stands for one data byte 255.
    #[test]
    fn doubled_iac_is_a_data_byte() {
        let mut b = LineBuffer::default();
        b.push(&[b'X', IAC, IAC, b'\n']);
        assert_eq!(lines(&mut b), vec![Line::Text(vec![b'X', 255])]);
    }

    // The limit is exact: a line of exactly `max` bytes passes, CRLF included or not.
    #[test]
    fn line_of_exactly_max_bytes_is_accepted() {
        let mut b = LineBuffer::new(8);
        b.push(b"12345678\r\n87654321\n");
        assert_eq!(lines(&mut b), vec![text("12345678"), text("87654321")]);
    }

    // Past the limit the line is reported once, and nothing up to its newline is ever run as a command.
    #[test]
    fn too_long_line_is_rejected_whole() {
        let mut b = LineBuffer::new(8);
        b.push(b"123456789");
        assert_eq!(lines(&mut b), vec![Line::TooLong]);
        b.push(b"DELE x\r\nNOOP\r\n");
        assert_eq!(lines(&mut b), vec![text("NOOP")]);
    }

    // Memory is bounded while a newline never comes.
    #[test]
    fn endless_line_holds_bounded_memory() {
        let mut b = LineBuffer::new(MAX_LINE);
        for _ in 0..1000 {
            b.push(&[b'A'; 1000]);
            assert!(b.partial_len() <= MAX_LINE);
        }
        assert_eq!(lines(&mut b), vec![Line::TooLong]);
    }

    proptest! {
        // Any split of the input yields the same lines.
        #[test]
        fn any_split_gives_same_lines(data in proptest::collection::vec(any::<u8>(), 0..600),
                                      cuts in proptest::collection::vec(any::<usize>(), 0..20)) {
            let mut whole = LineBuffer::new(64);
            whole.push(&data);
            let expected = lines(&mut whole);

            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut split = LineBuffer::new(64);
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                split.push(&data[at..c]);
                at = c;
                got.extend(lines(&mut split));
            }
            prop_assert_eq!(expected, got);
        }

        // No popped line ever exceeds the limit or contains a line end.
        #[test]
        fn lines_respect_limit(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut b = LineBuffer::new(32);
            b.push(&data);
            while let Some(line) = b.pop() {
                if let Line::Text(t) = line {
                    prop_assert!(t.len() <= 32);
                    prop_assert!(!t.contains(&b'\n'));
                }
            }
            prop_assert!(b.partial_len() <= 32);
        }
    }
}
