//! The bytes on the wire that are not the signer's business: response headers, the two date formats, digests
//! of request bodies, and error documents, including those S3 sends with a 200 status.

use std::io::Read;
use std::time::SystemTime;

use ureq::http::Response;
use ureq::Body;

use super::client::{Failure, ObjectMeta};
use super::error::error_fields;
use super::Error;

/// The most bytes of an XML response read (a listing page of 1,000 keys of the maximal 1 KiB each, with markup).
const XML_BODY_LIMIT: u64 = 4 * 1024 * 1024;

/// The `Content-MD5` header for a body: the store checks the bytes it received against it, so a body damaged
/// on the way is refused (`BadDigest`, retried) instead of stored.
pub(super) fn content_md5(body: &[u8]) -> String {
    use md5::Digest;
    base64(&md5::Md5::digest(body))
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(super) fn header<'r>(response: &'r Response<Body>, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn meta_from(response: &Response<Body>) -> Result<ObjectMeta, Error> {
    let size = header(response, "content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| Error::Other("HEAD: no Content-Length".into()))?;
    let modified = header(response, "last-modified")
        .ok_or_else(|| Error::Other("HEAD: no Last-Modified".into()))
        .and_then(parse_http_date)?;
    let etag = header(response, "etag").unwrap_or_default().to_string();
    Ok(ObjectMeta { size, modified, etag })
}

/// The total size from a `Content-Range: bytes FIRST-LAST/TOTAL` header.
pub(super) fn content_range_total(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes ")?.split_once('/')?.1.trim().parse().ok()
}

/// An HTTP date (`Tue, 01 Dec 2026 22:00:00 GMT`), as HEAD's `Last-Modified` carries it.
fn parse_http_date(value: &str) -> Result<SystemTime, Error> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .map(SystemTime::from)
        .map_err(|e| Error::Other(format!("Last-Modified {value:?}: {e}")))
}

/// An RFC 3339 time (`2026-12-01T22:00:00.000Z`), as listings carry it.
pub(super) fn parse_rfc3339(value: &str) -> Result<SystemTime, Error> {
    value
        .parse::<jiff::Timestamp>()
        .map(SystemTime::from)
        .map_err(|e| Error::Other(format!("LastModified {value:?}: {e}")))
}

pub(super) fn read_xml(response: Response<Body>) -> Result<String, Failure> {
    let mut text = String::new();
    response
        .into_body()
        .into_reader()
        .take(XML_BODY_LIMIT)
        .read_to_string(&mut text)
        .map_err(|e| Failure::from(Error::from_io(&e)))?;
    Ok(text)
}

/// A 200 response whose body is an `<Error>` document (CopyObject, CompleteMultipartUpload) is a failure.
pub(super) fn check_embedded_error(xml: &str) -> Result<(), Failure> {
    let start = xml.trim_start();
    let start =
        if start.starts_with("<?xml") { start.split_once("?>").map_or("", |(_, r)| r).trim_start() } else { start };
    if !start.starts_with("<Error>") {
        return Ok(());
    }
    let (code, message) = error_fields(xml);
    let status = match code.as_str() {
        "InternalError" | "SlowDown" | "ServiceUnavailable" => 503,
        "NoSuchKey" | "NoSuchUpload" => 404,
        "AccessDenied" => 403,
        _ => 400,
    };
    Err(Error::from_status(status, &code, &message).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_content_md5_match_known_values() {
        // RFC 4648 section 10.
        for (plain, encoded) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // MD5 of nothing, d41d8cd98f00b204e9800998ecf8427e, as S3 documents it.
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[test]
    fn content_range_gives_the_total() {
        assert_eq!(content_range_total("bytes 100-199/1000"), Some(1000));
        assert_eq!(content_range_total("bytes 0-0/1"), Some(1));
        assert_eq!(content_range_total("bytes */1000"), Some(1000));
        assert_eq!(content_range_total("bytes 0-1/*"), None);
        assert_eq!(content_range_total("items 0-1/2"), None);
    }

    #[test]
    fn dates_in_both_forms() {
        let http = parse_http_date("Tue, 01 Dec 2026 22:00:00 GMT").unwrap();
        let iso = parse_rfc3339("2026-12-01T22:00:00.000Z").unwrap();
        assert_eq!(http, iso);
        assert!(parse_http_date("yesterday").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn an_error_document_in_a_200_response_is_a_failure() {
        let ok = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult><ETag>x</ETag></CopyObjectResult>";
        assert!(check_embedded_error(ok).is_ok());
        let slow = "<?xml version=\"1.0\"?>\n<Error><Code>SlowDown</Code><Message>m</Message></Error>";
        assert!(matches!(check_embedded_error(slow), Err(Failure { error: Error::Transient(_), .. })));
        let gone = "<Error><Code>NoSuchKey</Code></Error>";
        assert!(matches!(check_embedded_error(gone), Err(Failure { error: Error::NotFound, .. })));
    }
}
