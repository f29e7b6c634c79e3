//! The sessions `idle` holds: the library's control connection, opened from a chosen source address when asked.
//!
//! Holding tens of thousands of sessions to one server needs more source ports than one address has, so with
//! spreading these connections bind a source address of 127.0.0.2-254 first.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ftp_client::{FtpClient, FtpError, TlsConfig};

/// Source addresses used when spreading: 127.0.0.2 to 127.0.0.254.
const SPREAD_FIRST: u8 = 2;
const SPREAD_COUNT: usize = 253;

/// The source address of session `index` when spreading.
pub fn spread_source(index: usize) -> IpAddr {
    let last = SPREAD_FIRST as usize + index % SPREAD_COUNT;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last as u8))
}

/// Opens one logged-in session to `target` (from `source`, when given) with the library's control connection,
/// over TLS (AUTH TLS) when `tls` is given.
pub fn open_session(
    target: SocketAddr,
    source: Option<IpAddr>,
    user: &str,
    pass: &str,
    timeout: Duration,
    tls: Option<&TlsConfig>,
) -> Result<FtpClient, FtpError> {
    let mut client = match source {
        Some(ip) => FtpClient::connect_from(target, ip, timeout)?,
        None => FtpClient::connect(&target.ip().to_string(), target.port(), timeout)?,
    };
    if let Some(tls) = tls {
        client.auth_tls(tls)?;
    }
    client.login(user, pass)?;
    Ok(client)
}

/// An I/O error with what was being done; the kind is kept.
pub fn io_error(context: impl std::fmt::Display, e: io::Error) -> FtpError {
    FtpError::Io(io::Error::new(e.kind(), format!("{context}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn spread_covers_127_0_0_2_to_254() {
        assert_eq!(spread_source(0), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(spread_source(252), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 254)));
        assert_eq!(spread_source(253), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    }

    #[test]
    fn logs_in_from_a_chosen_source() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let target = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, from) = listener.accept().expect("accept");
            s.write_all(b"220-hello\r\n220 there\r\n").expect("greet");
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.ends_with(b"PASS pw\r\n") {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
                if got.ends_with(b"USER u\r\n") {
                    s.write_all(b"331 password\r\n").expect("331");
                }
            }
            s.write_all(b"230 in\r\n").expect("230");
            let n = s.read(&mut buf).expect("read");
            assert_eq!(&buf[..n], b"TYPE I\r\n");
            s.write_all(b"200 binary\r\n").expect("200");
            from
        });
        let source = spread_source(5);
        let control = open_session(target, Some(source), "u", "pw", Duration::from_secs(10), None).expect("login");
        assert_eq!(server.join().expect("server").ip(), source);
        drop(control);
    }
}
