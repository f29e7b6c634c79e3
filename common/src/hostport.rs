//! Host-port notations for data connections: PASV/PORT (RFC 959) and EPSV/EPRT (RFC 2428), IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// `h1,h2,h3,h4,p1,p2` as used by PORT and in the 227 reply.
pub fn format_host_port(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    let port = addr.port();
    format!("{a},{b},{c},{d},{},{}", port >> 8, port & 0xff)
}

/// Parses exactly `h1,h2,h3,h4,p1,p2` (spaces around numbers tolerated), the argument of PORT.
pub fn parse_port_arg(arg: &str) -> Option<SocketAddrV4> {
    let mut nums = [0u8; 6];
    let mut parts = arg.trim().split(',');
    for n in nums.iter_mut() {
        *n = parts.next()?.trim().parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    Some(SocketAddrV4::new(ip, u16::from(nums[4]) << 8 | u16::from(nums[5])))
}

/// Finds the address in a 227 reply's text. RFC 959 does not fix where the numbers sit ("Entering Passive Mode
/// (h1,h2,h3,h4,p1,p2)" is usual, some servers omit the parentheses), so the first run of six comma-separated
/// numbers is taken.
pub fn parse_pasv_reply(text: &str) -> Option<SocketAddrV4> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if bytes[start].is_ascii_digit() {
            let end = bytes[start..]
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b',' || *b == b' '))
                .map_or(bytes.len(), |e| start + e);
            if let Some(addr) = parse_port_arg(text[start..end].trim_end_matches([',', ' '])) {
                return Some(addr);
            }
            start = end;
        } else {
            start += 1;
        }
    }
    None
}

/// The text of a 229 reply's address part: `(|||port|)`.
pub fn format_epsv(port: u16) -> String {
    format!("(|||{port}|)")
}

/// The port in a 229 reply: `(<d><d><d>port<d>)` where `<d>` is any printable delimiter (RFC 2428 §3).
pub fn parse_epsv_reply(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let inner = &text[open + 1..];
    let close = inner.find(')')?;
    let inner = &inner[..close];
    let d = inner.chars().next()?;
    if !(33..=126).contains(&(d as u32)) {
        return None;
    }
    let fields: Vec<&str> = inner.split(d).collect();
    // "|||port|" splits into ["", "", "", "port", ""].
    match fields.as_slice() {
        ["", "", "", port, ""] => port.parse().ok().filter(|p| *p != 0),
        _ => None,
    }
}

/// `|1|a.b.c.d|port|` or `|2|v6addr|port|`, the argument of EPRT (RFC 2428 §2).
pub fn format_eprt(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("|1|{}|{}|", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("|2|{}|{}|", a.ip(), a.port()),
    }
}

/// Parses an EPRT argument; the delimiter is its first character. The address family must match the address.
pub fn parse_eprt_arg(arg: &str) -> Option<SocketAddr> {
    let arg = arg.trim();
    let d = arg.chars().next()?;
    if !(33..=126).contains(&(d as u32)) {
        return None;
    }
    let fields: Vec<&str> = arg.split(d).collect();
    let ["", af, host, port, ""] = fields.as_slice() else {
        return None;
    };
    let port: u16 = port.parse().ok()?;
    let ip: IpAddr = match *af {
        "1" => IpAddr::V4(host.parse().ok()?),
        "2" => IpAddr::V6(host.parse().ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether an EPRT argument is well delimited but names a network protocol other than 1 or 2 (RFC 2428 §2:
/// the server answers 522 and names the protocols it supports).
pub fn eprt_unknown_protocol(arg: &str) -> bool {
    let arg = arg.trim();
    let Some(d) = arg.chars().next().filter(|d| (33..=126).contains(&(*d as u32))) else { return false };
    let fields: Vec<&str> = arg.split(d).collect();
    matches!(fields.as_slice(), ["", af, _, _, ""] if !af.is_empty() && *af != "1" && *af != "2")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Printable delimiters that occur in no IPv4 or IPv6 address and no port.
    const EPRT_DELIMITERS: &str = "!\"#$%&'()*+,-/;<=>?@[\\]^_`{|}~GHIJKLMNOPQRSTUVWXYZghijklmnopqrstuvwxyz";

    // RFC 959 PORT: the port is p1*256+p2.
    #[test]
    fn host_port_round_trip() {
        let a: SocketAddrV4 = "192.168.1.2:5001".parse().unwrap();
        assert_eq!(format_host_port(a), "192,168,1,2,19,137");
        assert_eq!(parse_port_arg("192,168,1,2,19,137"), Some(a));
    }

    // PORT with too few, too many or out-of-range numbers is refused.
    #[test]
    fn bad_port_args() {
        for bad in ["1,2,3,4,5", "1,2,3,4,5,6,7", "1,2,3,4,5,256", "a,b,c,d,e,f", ""] {
            assert_eq!(parse_port_arg(bad), None, "{bad}");
        }
    }

    // 227 replies come with and without parentheses.
    #[test]
    fn pasv_reply_forms() {
        let a = Some("127.0.0.1:1025".parse().unwrap());
        assert_eq!(parse_pasv_reply("Entering Passive Mode (127,0,0,1,4,1)."), a);
        assert_eq!(parse_pasv_reply("Entering Passive Mode 127,0,0,1,4,1"), a);
        assert_eq!(parse_pasv_reply("=127,0,0,1,4,1"), a);
        assert_eq!(parse_pasv_reply("no address"), None);
    }

    // RFC 2428 §3: "229 Entering Extended Passive Mode (|||6446|)"; any printable delimiter.
    #[test]
    fn epsv_reply_forms() {
        assert_eq!(format_epsv(6446), "(|||6446|)");
        assert_eq!(parse_epsv_reply("Entering Extended Passive Mode (|||6446|)"), Some(6446));
        assert_eq!(parse_epsv_reply("ok (!!!80!)"), Some(80));
        assert_eq!(parse_epsv_reply("ok (|||x|)"), None);
        assert_eq!(parse_epsv_reply("ok (||1|80|)"), None);
    }

    // RFC 2428 §2: EPRT carries the address family, the address and the port.
    #[test]
    fn eprt_forms() {
        assert_eq!(parse_eprt_arg("|1|132.235.1.2|6275|"), Some("132.235.1.2:6275".parse().unwrap()));
        assert_eq!(
            parse_eprt_arg("|2|1080::8:800:200C:417A|5282|"),
            Some("[1080::8:800:200C:417A]:5282".parse().unwrap())
        );
        // The family must match the address.
        assert_eq!(parse_eprt_arg("|2|132.235.1.2|6275|"), None);
        assert_eq!(parse_eprt_arg("|3|x|1|"), None);
        assert_eq!(format_eprt("[::1]:21".parse().unwrap()), "|2|::1|21|");
    }

    proptest! {
        // Formatting then parsing gives the address back, for both notations.
        #[test]
        fn v4_round_trip(ip in any::<[u8; 4]>(), port in any::<u16>()) {
            let a = SocketAddrV4::new(Ipv4Addr::from(ip), port);
            prop_assert_eq!(parse_port_arg(&format_host_port(a)), Some(a));
            prop_assert_eq!(parse_pasv_reply(&format!("Entering Passive Mode ({})", format_host_port(a))), Some(a));
            prop_assert_eq!(parse_eprt_arg(&format_eprt(SocketAddr::V4(a))), Some(SocketAddr::V4(a)));
        }

        #[test]
        fn v6_round_trip(ip in any::<[u8; 16]>(), port in any::<u16>()) {
            let a = SocketAddr::new(IpAddr::from(ip), port);
            prop_assert_eq!(parse_eprt_arg(&format_eprt(a)), Some(a));
        }

        // RFC 2428 §2: any printable delimiter that cannot occur in the address or the port works.
        #[test]
        fn eprt_any_delimiter(ip in any::<[u8; 16]>(), v4 in any::<bool>(), port in any::<u16>(),
                              d in proptest::sample::select(EPRT_DELIMITERS.chars().collect::<Vec<_>>())) {
            let a = if v4 {
                SocketAddr::new(IpAddr::from([ip[0], ip[1], ip[2], ip[3]]), port)
            } else {
                SocketAddr::new(IpAddr::from(ip), port)
            };
            let arg = format_eprt(a).replace('|', &d.to_string());
            prop_assert_eq!(parse_eprt_arg(&arg), Some(a));
            prop_assert_eq!(parse_eprt_arg(&format!("  {arg} ")), Some(a));
        }

        // RFC 2428 §3: the 229 port comes back whatever the delimiter and the text around it; port 0 never does.
        #[test]
        fn epsv_reply_round_trip(port in any::<u16>(), text in "[A-Za-z .]{0,30}",
                                 d in proptest::sample::select(EPRT_DELIMITERS.replace(['(', ')'], "").chars().collect::<Vec<_>>())) {
            let reply = format!("{text}{}.", format_epsv(port)).replace('|', &d.to_string());
            prop_assert_eq!(parse_epsv_reply(&reply), (port != 0).then_some(port));
        }

        // The 227 address is found wherever it sits in the text, parenthesised or not, with spaces after commas.
        #[test]
        fn pasv_reply_in_any_text(ip in any::<[u8; 4]>(), port in any::<u16>(), before in "[A-Za-z =(]{0,30}",
                                  after in "[A-Za-z .)]{0,30}", spaced in any::<bool>()) {
            let a = SocketAddrV4::new(Ipv4Addr::from(ip), port);
            let numbers = if spaced { format_host_port(a).replace(',', ", ") } else { format_host_port(a) };
            prop_assert_eq!(parse_pasv_reply(&format!("{before}{numbers}{after}")), Some(a));
            prop_assert_eq!(parse_port_arg(&format!(" {numbers} ")), Some(a));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,60}") {
            let _ = parse_pasv_reply(&s);
            let _ = parse_epsv_reply(&s);
            let _ = parse_eprt_arg(&s);
            let _ = parse_port_arg(&s);
        }
    }
}
