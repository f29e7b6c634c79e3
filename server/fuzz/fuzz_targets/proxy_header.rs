//! Fuzzes the PROXY protocol header parser (v1 and v2, truncated, oversized, TLVs) as the loop uses it: on the
//! bytes received so far, again after every read, until a header, an error or `MAX_HEADER` bytes.
//!
//! Input: the first bytes of a connection from a trusted balancer; after a NUL, the rest is also read as a
//! `--proxy-from` address block.
//!
//! Properties: no panic; a header is never longer than the bytes or `MAX_HEADER`; it depends only on its own
//! bytes (the same header from exactly those bytes, whatever follows); every shorter prefix of a header is
//! incomplete, so a header split across reads is never refused or misread; at `MAX_HEADER` bytes the answer is
//! final; an address block that parses prints as one that parses to itself and contains its own address.
#![no_main]

use std::net::IpAddr;

use ftp_server::proxy::{parse, Cidr, Parsed, MAX_HEADER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Parsed::Header { len, client } => {
            assert!(len > 0 && len <= data.len() && len <= MAX_HEADER, "len {len} of {}", data.len());
            assert_eq!(parse(&data[..len]), Parsed::Header { len, client });
            for cut in 0..len {
                assert_eq!(parse(&data[..cut]), Parsed::Incomplete, "prefix of {cut} of a {len}-byte header");
            }
        }
        Parsed::Incomplete => assert!(data.len() < MAX_HEADER),
        Parsed::Invalid(why) => assert!(!why.is_empty()),
    }

    let Some(at) = data.iter().position(|&b| b == 0) else { return };
    let Ok(text) = std::str::from_utf8(&data[at + 1..]) else { return };
    if let Ok(block) = text.parse::<Cidr>() {
        let shown = block.to_string();
        assert_eq!(shown.parse::<Cidr>(), Ok(block), "{text:?} -> {shown:?}");
        let (net, _) = shown.split_once('/').expect("address/bits");
        let net: IpAddr = net.parse().expect("address");
        if shown.ends_with("/32") || shown.ends_with("/128") {
            assert!(block.contains(net), "{shown} does not contain its address");
        }
    }
});
