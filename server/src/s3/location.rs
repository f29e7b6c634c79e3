//! Where the files live: the storage URL `s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME` and the credentials.
//!
//! Parsing only: no network. Credentials never come from the URL (a URL ends up in process listings, logs and
//! shell history); the caller passes them in, usually from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.

use std::fmt;
use std::str::FromStr;

use url::Url;

use super::key;

/// The region signed into requests when the URL names none. Garage answers to the region its `s3_region` setting
/// names; AWS and most other stores accept `us-east-1` for path-style requests.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The environment variables [`Credentials::from_env`] reads, as every S3 tool does.
pub const ENV_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET: &str = "AWS_SECRET_ACCESS_KEY";
/// Read too when set: the session token that comes with temporary credentials.
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// A parsed storage URL: which bucket, under which prefix, at which endpoint, signed for which region.
///
/// Requests use path-style addresses (`ENDPOINT/BUCKET/KEY`), which Garage, MinIO and AWS all serve without any
/// DNS set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    bucket: String,
    /// Empty, or a key prefix ending in `/`: every key the client is given is relative to it.
    prefix: String,
    endpoint: Url,
    region: String,
}

impl Location {
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix all keys are relative to: empty, or ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The same bucket and endpoint, one level further down: a per-user home is a prefix under the server's root.
    pub fn join(&self, sub: &str) -> Result<Location, LocationError> {
        let sub = sub.trim_matches('/');
        if sub.is_empty() {
            return Ok(self.clone());
        }
        let prefix = format!("{}{sub}/", self.prefix);
        key::check_prefix(&prefix).map_err(LocationError::InvalidPrefix)?;
        Ok(Location { prefix, ..self.clone() })
    }
}

impl fmt::Display for Location {
    /// The URL form, which parses back to the same location.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut url = Url::parse("s3://placeholder/").map_err(|_| fmt::Error)?;
        url.set_host(Some(&self.bucket)).map_err(|_| fmt::Error)?;
        url.set_path(self.prefix.trim_end_matches('/'));
        url.query_pairs_mut()
            .append_pair("endpoint", self.endpoint.as_str().trim_end_matches('/'))
            .append_pair("region", &self.region);
        f.write_str(url.as_str())
    }
}

/// Why a storage URL was refused. Each says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationError {
    /// Not a URL at all.
    Malformed(String),
    /// The scheme is not `s3`.
    NotS3(String),
    /// `s3://` with no bucket.
    MissingBucket,
    /// The bucket name breaks S3's naming rules.
    InvalidBucket(String),
    /// A user name or password in the URL.
    CredentialsInUrl,
    /// No `endpoint=` parameter.
    MissingEndpoint,
    /// The endpoint is not an `http://` or `https://` URL with a host and nothing after it.
    InvalidEndpoint(String),
    /// The prefix has an empty, `.` or `..` segment or a control character.
    InvalidPrefix(String),
    /// A parameter other than `endpoint` and `region` (a typo would otherwise be ignored silently).
    UnknownParameter(String),
    /// A parameter given twice.
    RepeatedParameter(String),
    /// `region=` with an empty or odd value.
    InvalidRegion(String),
}

impl fmt::Display for LocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FORM: &str = "expected s3://BUCKET[/PREFIX]?endpoint=URL[&region=NAME]";
        match self {
            LocationError::Malformed(why) => write!(f, "not a storage URL ({why}); {FORM}"),
            LocationError::NotS3(scheme) => write!(f, "storage URL scheme is {scheme:?}, not \"s3\"; {FORM}"),
            LocationError::MissingBucket => write!(f, "storage URL names no bucket; {FORM}"),
            LocationError::InvalidBucket(why) => write!(f, "bucket name: {why}"),
            LocationError::CredentialsInUrl => write!(
                f,
                "storage URL carries credentials; pass them in {ENV_KEY_ID} and {ENV_SECRET} (or the config file) \
                 instead"
            ),
            LocationError::MissingEndpoint => {
                write!(f, "storage URL has no endpoint (e.g. ?endpoint=http://127.0.0.1:3900); {FORM}")
            }
            LocationError::InvalidEndpoint(why) => write!(f, "storage endpoint: {why}"),
            LocationError::InvalidPrefix(why) => write!(f, "storage prefix: {why}"),
            LocationError::UnknownParameter(name) => {
                write!(f, "storage URL parameter {name:?} is unknown (known: endpoint, region)")
            }
            LocationError::RepeatedParameter(name) => write!(f, "storage URL parameter {name:?} is given twice"),
            LocationError::InvalidRegion(why) => write!(f, "storage region: {why}"),
        }
    }
}

impl std::error::Error for LocationError {}

impl FromStr for Location {
    type Err = LocationError;

    fn from_str(s: &str) -> Result<Location, LocationError> {
        let url = Url::parse(s.trim()).map_err(|e| LocationError::Malformed(e.to_string()))?;
        if url.scheme() != "s3" {
            return Err(LocationError::NotS3(url.scheme().to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(LocationError::CredentialsInUrl);
        }
        if url.port().is_some() {
            return Err(LocationError::InvalidBucket("a bucket has no port; the port goes in endpoint=".into()));
        }
        let bucket = url.host_str().unwrap_or("");
        if bucket.is_empty() {
            return Err(LocationError::MissingBucket);
        }
        check_bucket(bucket).map_err(LocationError::InvalidBucket)?;
        if url.fragment().is_some() {
            return Err(LocationError::Malformed("a storage URL has no #fragment".into()));
        }

        // The path as written: the URL parser would resolve `.` and `..` segments, silently naming another prefix.
        let path = percent_decode(raw_path(s.trim())).map_err(LocationError::InvalidPrefix)?;
        let trimmed = path.trim_start_matches('/');
        let prefix = if trimmed.is_empty() {
            String::new()
        } else if trimmed.ends_with('/') {
            trimmed.to_string()
        } else {
            format!("{trimmed}/")
        };
        if !prefix.is_empty() {
            key::check_prefix(&prefix).map_err(LocationError::InvalidPrefix)?;
        }

        let mut endpoint = None;
        let mut region = None;
        for (name, value) in url.query_pairs() {
            let slot = match name.as_ref() {
                "endpoint" => &mut endpoint,
                "region" => &mut region,
                other => return Err(LocationError::UnknownParameter(other.to_string())),
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(LocationError::RepeatedParameter(name.into_owned()));
            }
        }
        let endpoint = parse_endpoint(&endpoint.ok_or(LocationError::MissingEndpoint)?)?;
        let region = match region {
            None => DEFAULT_REGION.to_string(),
            Some(r) => {
                check_region(&r).map_err(LocationError::InvalidRegion)?;
                r
            }
        };
        Ok(Location { bucket: bucket.to_string(), prefix, endpoint, region })
    }
}

/// The path of `scheme://host/path?query#fragment` as written, from its first `/` (empty if none).
fn raw_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    rest.find('/').map_or("", |slash| &rest[slash..])
}

fn parse_endpoint(text: &str) -> Result<Url, LocationError> {
    let bad = |why: &str| LocationError::InvalidEndpoint(format!("{text:?}: {why}"));
    let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(LocationError::CredentialsInUrl);
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must be scheme://host[:port] with no path or query"));
    }
    Ok(url)
}

/// S3's bucket naming rules: 3 to 63 characters of lower-case letters, digits, `.` and `-`, starting and ending
/// with a letter or digit, no `..`.
fn check_bucket(name: &str) -> Result<(), String> {
    if !(3..=63).contains(&name.len()) {
        return Err(format!("{name:?} must be 3 to 63 characters long"));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return Err(format!("{name:?} may hold only lower-case letters, digits, '.' and '-'"));
    }
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge(name.bytes().next()) || !edge(name.bytes().last()) {
        return Err(format!("{name:?} must start and end with a letter or digit"));
    }
    if name.contains("..") {
        return Err(format!("{name:?} must not contain \"..\""));
    }
    Ok(())
}

fn check_region(region: &str) -> Result<(), String> {
    if region.is_empty() || region.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("{region:?} may hold only letters, digits, '-' and '_'"));
    }
    Ok(())
}

fn percent_decode(path: &str) -> Result<String, String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte =
                hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or("a '%' not followed by two hex digits")?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once percent-decoded".to_string())
}

/// An access key: the key id, its secret, and for temporary credentials a session token. `Debug` never shows the
/// secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    key_id: String,
    secret: String,
    token: Option<String>,
}

/// Why [`Credentials::from_env`] found none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingCredentials(pub &'static str);

impl fmt::Display for MissingCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3 storage needs {} and {}; {} is not set or empty", ENV_KEY_ID, ENV_SECRET, self.0)
    }
}

impl std::error::Error for MissingCredentials {}

impl Credentials {
    pub fn new(key_id: impl Into<String>, secret: impl Into<String>) -> Credentials {
        Credentials { key_id: key_id.into(), secret: secret.into(), token: None }
    }

    /// Temporary credentials: the session token is signed into every request.
    pub fn with_session_token(self, token: impl Into<String>) -> Credentials {
        Credentials { token: Some(token.into()), ..self }
    }

    /// Reads `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, and `AWS_SESSION_TOKEN` if it is set.
    pub fn from_env() -> Result<Credentials, MissingCredentials> {
        let var = |name: &'static str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => Err(MissingCredentials(name)),
        };
        let credentials = Credentials::new(var(ENV_KEY_ID)?, var(ENV_SECRET)?);
        Ok(match var(ENV_SESSION_TOKEN) {
            Ok(token) => credentials.with_session_token(token),
            Err(_) => credentials,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub(super) fn secret(&self) -> &str {
        &self.secret
    }

    pub(super) fn session_token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Location, LocationError> {
        s.parse()
    }

    #[test]
    fn bucket_prefix_endpoint_and_region() {
        let loc = parse("s3://files/ftp/home?endpoint=http://127.0.0.2:3900&region=garage").unwrap();
        assert_eq!(loc.bucket(), "files");
        assert_eq!(loc.prefix(), "ftp/home/");
        assert_eq!(loc.endpoint().as_str(), "http://127.0.0.2:3900/");
        assert_eq!(loc.region(), "garage");
    }

    #[test]
    fn no_prefix_and_the_default_region() {
        let loc = parse("s3://files?endpoint=https://s3.example.com").unwrap();
        assert_eq!(loc.prefix(), "");
        assert_eq!(loc.region(), DEFAULT_REGION);
        let loc = parse("s3://files/?endpoint=https://s3.example.com").unwrap();
        assert_eq!(loc.prefix(), "");
    }

    #[test]
    fn a_trailing_slash_on_the_prefix_is_the_same_prefix() {
        let a = parse("s3://files/a/b/?endpoint=http://h:1").unwrap();
        let b = parse("s3://files/a/b?endpoint=http://h:1").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_percent_encoded_prefix_is_decoded() {
        let loc = parse("s3://files/my%20files/caf%C3%A9?endpoint=http://h:1").unwrap();
        assert_eq!(loc.prefix(), "my files/café/");
    }

    #[test]
    fn the_endpoint_may_be_percent_encoded_in_the_query() {
        let loc = parse("s3://files?endpoint=http%3A%2F%2F127.0.0.1%3A3900").unwrap();
        assert_eq!(loc.endpoint().as_str(), "http://127.0.0.1:3900/");
    }

    #[test]
    fn display_parses_back_to_the_same_location() {
        for s in ["s3://files/a%20b/c?endpoint=http://127.0.0.2:3900&region=garage", "s3://files?endpoint=https://h"] {
            let loc = parse(s).unwrap();
            assert_eq!(parse(&loc.to_string()).unwrap(), loc, "{loc}");
        }
    }

    #[test]
    fn join_makes_a_home_under_the_prefix() {
        let root = parse("s3://files/ftp?endpoint=http://h:1").unwrap();
        assert_eq!(root.join("alice").unwrap().prefix(), "ftp/alice/");
        assert_eq!(root.join("/alice/docs/").unwrap().prefix(), "ftp/alice/docs/");
        assert_eq!(root.join("").unwrap(), root);
        assert!(matches!(root.join("../bob"), Err(LocationError::InvalidPrefix(_))));
    }

    #[test]
    fn a_missing_endpoint_is_refused_with_an_example() {
        let err = parse("s3://files/x").unwrap_err();
        assert_eq!(err, LocationError::MissingEndpoint);
        assert!(err.to_string().contains("endpoint=http://"), "{err}");
    }

    #[test]
    fn other_schemes_are_refused() {
        assert_eq!(parse("file:///srv/ftp").unwrap_err(), LocationError::NotS3("file".into()));
        assert_eq!(parse("http://files/x?endpoint=http://h").unwrap_err(), LocationError::NotS3("http".into()));
        assert!(matches!(parse("files/x").unwrap_err(), LocationError::Malformed(_)));
        assert!(matches!(parse("").unwrap_err(), LocationError::Malformed(_)));
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        assert_eq!(parse("s3://key:secret@files?endpoint=http://h").unwrap_err(), LocationError::CredentialsInUrl);
        assert_eq!(parse("s3://key@files?endpoint=http://h").unwrap_err(), LocationError::CredentialsInUrl);
        assert_eq!(parse("s3://files?endpoint=http://k:s@h").unwrap_err(), LocationError::CredentialsInUrl);
        assert!(LocationError::CredentialsInUrl.to_string().contains(ENV_KEY_ID));
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for bad in ["ab", "Files", "my_files", "-files", "files-", "a..b", &"x".repeat(64)] {
            let url = format!("s3://{bad}?endpoint=http://h");
            assert!(matches!(parse(&url), Err(LocationError::InvalidBucket(_))), "{bad} accepted");
        }
        assert!(matches!(parse("s3://files:9000?endpoint=http://h"), Err(LocationError::InvalidBucket(_))));
        assert_eq!(parse("s3:///x?endpoint=http://h").unwrap_err(), LocationError::MissingBucket);
        for good in ["abc", "my-files.2", &"x".repeat(63)] {
            assert!(parse(&format!("s3://{good}?endpoint=http://h")).is_ok(), "{good} refused");
        }
    }

    #[test]
    fn prefixes_with_dot_segments_or_empty_segments_are_refused() {
        for bad in ["a/../b", "a/./b", "..", "a//b", "a/%2E%2E/b", "a%00b", "a%0Ab"] {
            let url = format!("s3://files/{bad}?endpoint=http://h");
            assert!(matches!(parse(&url), Err(LocationError::InvalidPrefix(_))), "{bad} accepted: {:?}", parse(&url));
        }
        assert!(matches!(parse("s3://files/a%zz?endpoint=http://h"), Err(LocationError::InvalidPrefix(_))));
    }

    #[test]
    fn endpoints_are_plain_http_or_https_roots() {
        for bad in ["ftp://h", "h:3900", "http://h/path", "http://h?x=1", "http://"] {
            let url = format!("s3://files?endpoint={bad}");
            assert!(matches!(parse(&url), Err(LocationError::InvalidEndpoint(_))), "{bad} accepted");
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert_eq!(
            parse("s3://files?endpont=http://h").unwrap_err(),
            LocationError::UnknownParameter("endpont".into())
        );
        assert_eq!(
            parse("s3://files?endpoint=http://h&endpoint=http://g").unwrap_err(),
            LocationError::RepeatedParameter("endpoint".into())
        );
        assert!(matches!(parse("s3://files?endpoint=http://h&region="), Err(LocationError::InvalidRegion(_))));
        assert!(matches!(parse("s3://files?endpoint=http://h&region=a/b"), Err(LocationError::InvalidRegion(_))));
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = Credentials::new("GK123", "very-secret");
        let shown = format!("{c:?}");
        assert!(shown.contains("GK123") && !shown.contains("very-secret"), "{shown}");
        let shown = format!("{:?}", c.with_session_token("session-xyz"));
        assert!(!shown.contains("very-secret") && !shown.contains("session-xyz"), "{shown}");
    }
}
