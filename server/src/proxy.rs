//! The PROXY protocol (HAProxy's `doc/proxy-protocol.txt`, versions 1 and 2): behind a load balancer, every
//! connection from a `--proxy-from` address starts with a header naming the real client, and that address is the
//! client's for everything (logs, `--max-per-ip`, login delays, PORT checks, the passive hijack check).
//!
//! Parsing is the `ppp` crate's; this module bounds it (a header is at most [`MAX_HEADER`] bytes, and must arrive
//! within the loop's deadline) and reduces it to what the server needs: how many bytes the header took, and the
//! client's address, if it names one. A `LOCAL` header (version 2, the balancer's own health checks) and
//! `UNKNOWN` (version 1) name none: the connection is served as the balancer's own.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ppp::{HeaderResult, PartialResult};

/// The longest header accepted: a version 1 header is at most 107 bytes; a version 2 one is 16 bytes, the
/// addresses (at most 216 bytes) and TLVs, which HAProxy keeps to a few hundred bytes.
pub const MAX_HEADER: usize = 1024;

/// The longest version 1 header, its CRLF included (the specification's bound).
const MAX_V1: usize = 107;

/// What the bytes at the start of a proxied connection are.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole header yet: wait for more (within the deadline).
    Incomplete,
    /// A header of `len` bytes; `client` is the address it carries (`None` for LOCAL or UNKNOWN).
    Header { len: usize, client: Option<SocketAddr> },
    /// Not a valid header (or longer than [`MAX_HEADER`]): the connection is closed.
    Invalid(String),
}

/// Parses the start of a connection's bytes as a PROXY header.
pub fn parse(bytes: &[u8]) -> Parsed {
    let bytes = &bytes[..bytes.len().min(MAX_HEADER)];
    let result = HeaderResult::parse(bytes);
    if result.is_incomplete() {
        return if bytes.len() >= MAX_HEADER {
            Parsed::Invalid(format!("no complete header in {MAX_HEADER} bytes"))
        } else {
            Parsed::Incomplete
        };
    }
    match result {
        // Only CRLF ends a version 1 line; ppp also takes a bare LF when the bytes end there, and would read the
        // same header as shorter or longer depending on how it was split across reads.
        HeaderResult::V1(Ok(h)) if !h.header.ends_with("\r\n") => {
            if bytes.len() < MAX_V1 {
                Parsed::Incomplete
            } else {
                Parsed::Invalid("PROXY v1: no CRLF".to_string())
            }
        }
        HeaderResult::V1(Ok(h)) => {
            let client = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
                ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
                ppp::v1::Addresses::Unknown => None,
            };
            Parsed::Header { len: h.header.len(), client }
        }
        HeaderResult::V2(Ok(h)) => {
            let client = match (h.command, h.addresses) {
                (ppp::v2::Command::Local, _) => None,
                (_, ppp::v2::Addresses::IPv4(a)) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
                (_, ppp::v2::Addresses::IPv6(a)) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
                (_, _) => None,
            };
            Parsed::Header { len: h.len(), client }
        }
        // ppp judges an unfinished line too (a port cut short, a character cut in two): until its CRLF or the
        // longest a line can be, a version 1 header may still be arriving.
        HeaderResult::V1(Err(_))
            if bytes.starts_with(b"PROXY ") && !bytes.windows(2).any(|w| w == b"\r\n") && bytes.len() < MAX_V1 =>
        {
            Parsed::Incomplete
        }
        HeaderResult::V1(Err(e)) => Parsed::Invalid(format!("PROXY v1: {e}")),
        HeaderResult::V2(Err(e)) => Parsed::Invalid(format!("PROXY v2: {e}")),
    }
}

/// An address block such as `127.0.0.1/32`, `10.0.0.0/8` or `::1` (a bare address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = crate::session::canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an address or address/bits"))?;
        let net = crate::session::canonical(net);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => {
                b.trim().parse::<u8>().ok().filter(|b| *b <= max).ok_or(format!("{s:?}: bits must be 0-{max}"))?
            }
        };
        Ok(Cidr { net, bits })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

/// Whether `ip` is one of the `--proxy-from` blocks.
pub fn trusted(blocks: &[Cidr], ip: IpAddr) -> bool {
    blocks.iter().any(|b| b.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&((addresses.len() + tlvs.len()) as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h.extend_from_slice(tlvs);
        h
    }

    fn v4_addresses() -> Vec<u8> {
        let mut a = vec![192, 0, 2, 7, 127, 0, 0, 1];
        a.extend_from_slice(&40000u16.to_be_bytes());
        a.extend_from_slice(&2121u16.to_be_bytes());
        a
    }

    // Version 1: the header's length (with its CRLF) and the client's address; what follows is the client's.
    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let text = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 2121\r\nUSER x\r\n";
        let client = Some("192.0.2.7:40000".parse().unwrap());
        assert_eq!(parse(text), Parsed::Header { len: text.len() - 8, client });
        let text = b"PROXY TCP6 2001:db8::7 ::1 40000 2121\r\n";
        let client = Some("[2001:db8::7]:40000".parse().unwrap());
        assert_eq!(parse(text), Parsed::Header { len: text.len(), client });
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Parsed::Header { len: 15, client: None });
    }

    // Version 2: PROXY with IPv4 and IPv6, TLVs skipped, LOCAL (health checks) naming no client.
    #[test]
    fn v2_proxy_local_ipv6_and_tlvs() {
        let h = v2(1, 0x11, &v4_addresses(), &[]);
        assert_eq!(parse(&h), Parsed::Header { len: 28, client: Some("192.0.2.7:40000".parse().unwrap()) });
        let tlv = [0x04, 0x00, 0x03, b'a', b'b', b'c']; // PP2_TYPE_NOOP with 3 bytes
        let h = v2(1, 0x11, &v4_addresses(), &tlv);
        assert_eq!(parse(&h), Parsed::Header { len: 34, client: Some("192.0.2.7:40000".parse().unwrap()) });
        let mut a6 = Vec::new();
        a6.extend_from_slice(&"2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap().octets());
        a6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        a6.extend_from_slice(&40000u16.to_be_bytes());
        a6.extend_from_slice(&2121u16.to_be_bytes());
        let h = v2(1, 0x21, &a6, &[]);
        assert_eq!(parse(&h), Parsed::Header { len: 52, client: Some("[2001:db8::7]:40000".parse().unwrap()) });
        let h = v2(0, 0x00, &[], &[]);
        assert_eq!(parse(&h), Parsed::Header { len: 16, client: None });
    }

    // Truncated headers wait for more; wrong signatures, garbage and oversized headers are refused.
    #[test]
    fn truncated_wrong_and_oversized() {
        let h = v2(1, 0x11, &v4_addresses(), &[]);
        for cut in [0, 1, 5, 12, 15, 20, 27] {
            assert_eq!(parse(&h[..cut]), Parsed::Incomplete, "v2 cut at {cut}");
        }
        let text = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 2121\r\n";
        for cut in [1, 6, 20, text.len() - 1] {
            assert_eq!(parse(&text[..cut]), Parsed::Incomplete, "v1 cut at {cut}");
        }
        for bad in [&b"USER anonymous\r\n"[..], b"PROXY TCP4 999.0.2.7 127.0.0.1 1 2\r\n", b"GET / HTTP/1.0\r\n\r\n"] {
            assert!(matches!(parse(bad), Parsed::Invalid(_)), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut wrong = h.clone();
        wrong[12] = 0x31; // version 3
        assert!(matches!(parse(&wrong), Parsed::Invalid(_)));
        // A version 2 header announcing more bytes than the bound is refused once the bound is reached.
        let mut huge = v2(1, 0x11, &v4_addresses(), &[0x04, 0x0f, 0xff]);
        huge[14..16].copy_from_slice(&4000u16.to_be_bytes());
        huge.resize(MAX_HEADER + 10, 0);
        assert!(matches!(parse(&huge), Parsed::Invalid(_)));
        // A v1 line without its end within the bound.
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(MAX_HEADER, b'1');
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    // Found by fuzzing (proxy_header): a version 1 header cut inside a port, as a header split across reads is,
    // was refused.
    #[test]
    fn v1_header_split_anywhere_waits() {
        for text in
            [&b"PROXY TCP6 2001:db8::7 ::1 40000 2121\r\n"[..], b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 2121\r\n"]
        {
            for cut in 0..text.len() {
                assert_eq!(parse(&text[..cut]), Parsed::Incomplete, "cut at {cut}");
            }
        }
        // Only CRLF ends the line: whatever a bare LF is followed by, the header is the same; UNKNOWN ignores
        // the rest of its line, a character cut in two included.
        let text = "PROXY UNKNOWN \n\0\r\nUSER x\r\n".as_bytes();
        assert_eq!(parse(&text[..15]), Parsed::Incomplete);
        assert_eq!(parse(text), Parsed::Header { len: 18, client: None });
        let text = "PROXY UNKNOWN \nŭ\r\n".as_bytes();
        assert_eq!(parse(&text[..16]), Parsed::Incomplete);
        assert_eq!(parse(text), Parsed::Header { len: text.len(), client: None });
    }

    #[test]
    fn cidr_blocks() {
        let b: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(b.contains("10.1.200.3".parse().unwrap()));
        assert!(!b.contains("10.2.0.1".parse().unwrap()));
        assert!(b.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped addresses are IPv4");
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        let odd: Cidr = "192.168.1.128/25".parse().unwrap();
        assert!(odd.contains("192.168.1.200".parse().unwrap()) && !odd.contains("192.168.1.127".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()) && !v6.contains("2001:db9::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "nonsense".parse::<Cidr>().is_err());
        assert!(trusted(&[one, b], "10.1.0.1".parse().unwrap()));
    }
}
