//! The keys the client accepts. A key is a `/`-separated path relative to the location's prefix; it must not be
//! able to reach outside that prefix once it is put in a request URL, where `.` and `..` segments would be
//! resolved and a leading `/` would restart at the bucket's root.

/// S3's limit on a whole key (prefix included), in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// An object key: non-empty, no leading `/`, no empty, `.` or `..` segment, no control character. A trailing `/`
/// is allowed: `dir/` is a directory marker.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("empty key".into());
    }
    check_path(key)
}

/// A listing prefix: empty (everything), or a key or the start of one.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_path(prefix)
}

fn check_path(path: &str) -> Result<(), String> {
    if path.len() > MAX_KEY_BYTES {
        return Err(format!("longer than {MAX_KEY_BYTES} bytes"));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("{path:?} holds a control character"));
    }
    if path.starts_with('/') {
        return Err(format!("{path:?} starts with '/'"));
    }
    let body = path.strip_suffix('/').unwrap_or(path);
    for segment in body.split('/') {
        match segment {
            "" => return Err(format!("{path:?} has an empty segment")),
            "." | ".." => return Err(format!("{path:?} has a {segment:?} segment")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_and_directory_markers_pass() {
        for key in ["a", "a/b.txt", "dir/", "a/b/", "...", "a/.hidden", "sp ace/é", "a..b"] {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
    }

    #[test]
    fn keys_that_could_leave_the_prefix_are_refused() {
        for key in ["", "/a", "..", "a/..", "../a", "a/./b", ".", "a//b", "//", "/", "a/../"] {
            assert!(check_key(key).is_err(), "{key:?} accepted");
        }
    }

    #[test]
    fn control_characters_and_oversized_keys_are_refused() {
        assert!(check_key("a\nb").is_err());
        assert!(check_key("a\0b").is_err());
        assert!(check_key("a\u{7f}").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
    }

    #[test]
    fn the_empty_prefix_lists_everything() {
        assert_eq!(check_prefix(""), Ok(()));
        assert_eq!(check_prefix("di"), Ok(()));
        assert!(check_prefix("/").is_err());
    }
}
