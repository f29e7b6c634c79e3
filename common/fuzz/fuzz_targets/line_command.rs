//! Fuzzes the server's input path: arbitrary bytes, split at an arbitrary point, through `LineBuffer` and
//! `Command::parse`. Properties: no panic, no line over the limit, the split does not change the lines.
#![no_main]

use ftp_common::{Command, Line, LineBuffer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let cut = usize::from(cut).min(bytes.len());
    let mut whole = LineBuffer::new(64);
    whole.push(bytes);
    let mut split = LineBuffer::new(64);
    split.push(&bytes[..cut]);
    let mut first: Vec<Line> = std::iter::from_fn(|| split.pop()).collect();
    split.push(&bytes[cut..]);
    first.extend(std::iter::from_fn(|| split.pop()));
    let lines: Vec<Line> = std::iter::from_fn(|| whole.pop()).collect();
    assert_eq!(lines, first);
    for line in lines {
        if let Line::Text(t) = line {
            assert!(t.len() <= 64);
            let _ = Command::parse(&t);
        }
    }
});
