//! Fuzzes the server's input path: arbitrary bytes, split at an arbitrary point, through a `LineBuffer` with the
//! server's real limit (`MAX_LINE`) and `Command::parse`, then through the parsers a parsed command's argument
//! reaches (addresses, offsets, FTP times).
//!
//! Input: one control byte, then the bytes as they come off the wire. The control byte says where the stream is
//! split (as a fraction of its length, so a split also lands inside long lines).
//!
//! Properties: no panic; the split does not change the lines; no line is longer than the limit or holds a line end;
//! an address, offset or time that parses survives a format/parse round trip.
#![no_main]

use std::net::SocketAddr;

use ftp_common::hostport::{format_eprt, format_host_port, parse_eprt_arg, parse_port_arg};
use ftp_common::time::{format_ftp_time, parse_ftp_time};
use ftp_common::{Command, Line, LineBuffer, MAX_LINE};
use libfuzzer_sys::fuzz_target;

fn drain(buf: &mut LineBuffer, into: &mut Vec<Line>) {
    into.extend(std::iter::from_fn(|| buf.pop()));
}

fn check_command(cmd: &Command) {
    match cmd {
        Command::Port(SocketAddr::V4(a)) => assert_eq!(parse_port_arg(&format_host_port(*a)), Some(*a)),
        Command::Port(a) | Command::Eprt(a) => assert_eq!(parse_eprt_arg(&format_eprt(*a)), Some(*a)),
        Command::Rest(n) => assert_eq!(Command::parse(format!("REST {n}").as_bytes()), Ok(Command::Rest(*n))),
        Command::Mfmt { time, path } => {
            assert_eq!(time.len(), 14);
            assert!(!path.is_empty());
            if let Some(t) = parse_ftp_time(time) {
                // A leap second (60) is accepted and lands on the next minute; every other time is canonical.
                if !time.ends_with("60") {
                    assert_eq!(&format_ftp_time(t), time);
                }
            }
        }
        _ => {}
    }
    // Every parsed command names its verb, and a known verb has its table entry.
    assert!(!cmd.verb().is_empty());
    if !matches!(cmd, Command::Unknown(_)) {
        assert!(cmd.info().is_some());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, bytes)) = data.split_first() else { return };
    let cut = usize::from(ctl) * bytes.len() / 255;

    let mut whole = LineBuffer::new(MAX_LINE);
    whole.push(bytes);
    let mut lines = Vec::new();
    drain(&mut whole, &mut lines);

    let mut split = LineBuffer::new(MAX_LINE);
    let mut pieces = Vec::new();
    split.push(&bytes[..cut]);
    drain(&mut split, &mut pieces);
    split.push(&bytes[cut..]);
    drain(&mut split, &mut pieces);
    assert_eq!(lines, pieces);
    assert!(whole.partial_len() <= MAX_LINE);

    for line in lines {
        let Line::Text(text) = line else { continue };
        assert!(text.len() <= MAX_LINE);
        assert!(!text.contains(&b'\n'));
        match Command::parse(&text) {
            Ok(cmd) => check_command(&cmd),
            // Errors are values with a message (the server sends it in its 500/501).
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
