//! Fuzzes the client's input path: arbitrary server bytes through the size-capped `ReplyParser`. Properties: no
//! panic, and every reply it accepts has a code in 100..=599 and at least one line.
#![no_main]

use ftp_common::ReplyParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = ReplyParser::new(4096);
    p.push(data);
    while let Some(r) = p.pop() {
        if let Ok(reply) = r {
            assert!((100..=599).contains(&reply.code));
            assert!(!reply.lines.is_empty());
        }
    }
});
