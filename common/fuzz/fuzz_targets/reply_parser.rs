//! Fuzzes the client's input path: arbitrary server bytes, split at an arbitrary point, through `ReplyParser`.
//!
//! Input: one control byte, then the bytes as a server sent them. The low three bits choose the reply size cap
//! (64 B to 8 KiB, so the too-large path is reached by inputs of fuzzing size; the client's own cap is 1 MiB); the
//! high five bits say where the stream is split. The parser's line limit (8 KiB) is its real one.
//!
//! Properties: no panic; the split does not change the replies; every accepted reply has a code in 100..=599 and
//! at least one line; re-encoding an accepted reply and parsing it again gives one reply with the same code and
//! the same lines (no text can forge a reply end or a second reply).
#![no_main]

use ftp_common::reply::MAX_REPLY;
use ftp_common::{Reply, ReplyError, ReplyParser};
use libfuzzer_sys::fuzz_target;

/// The parser's own line limit: longer lines are reported as too large.
const LINE_LIMIT: usize = 8192;

fn drain(p: &mut ReplyParser, into: &mut Vec<Result<Reply, ReplyError>>) {
    into.extend(std::iter::from_fn(|| p.pop()));
}

/// What `Reply::encode` makes of each line, as the parser hands it back.
fn expected_lines(reply: &Reply) -> Vec<String> {
    let last = reply.lines.len() - 1;
    reply
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let clean = l.replace(['\r', '\n'], " ");
            let inner = i != 0 && i != last;
            if inner && clean.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                format!(" {clean}")
            } else {
                clean
            }
        })
        .collect()
}

fn check_round_trip(reply: &Reply) {
    let wire = reply.to_bytes();
    // Padding and U+FFFD (for invalid UTF-8) make lines longer; past the line limit there is nothing to compare.
    if wire.split(|&b| b == b'\n').any(|l| l.len() > LINE_LIMIT) {
        return;
    }
    let mut p = ReplyParser::new(MAX_REPLY);
    p.push(&wire);
    let mut again = Vec::new();
    drain(&mut p, &mut again);
    assert_eq!(again.len(), 1, "{reply:?} came back as {again:?}");
    let Some(Ok(back)) = again.pop() else { panic!("{reply:?} did not come back") };
    assert_eq!(back.code, reply.code);
    assert_eq!(back.lines, expected_lines(reply));
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, bytes)) = data.split_first() else { return };
    let max = 64usize << (ctl & 7);
    let cut = usize::from(ctl >> 3) * bytes.len() / 31;

    let mut whole = ReplyParser::new(max);
    whole.push(bytes);
    let mut replies = Vec::new();
    drain(&mut whole, &mut replies);

    let mut split = ReplyParser::new(max);
    let mut pieces = Vec::new();
    split.push(&bytes[..cut]);
    drain(&mut split, &mut pieces);
    split.push(&bytes[cut..]);
    drain(&mut split, &mut pieces);
    assert_eq!(replies, pieces);

    for reply in replies {
        match reply {
            Ok(reply) => {
                assert!((100..=599).contains(&reply.code));
                assert!(!reply.lines.is_empty());
                let _ = (reply.text(), reply.to_string());
                check_round_trip(&reply);
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
