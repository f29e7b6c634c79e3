//! What a server says it can do (FEAT, RFC 2389) and what its HASH command answers (draft-bryan-ftpext-hash).
//!
//! A 211 FEAT reply lists one feature per inner line, each starting with a space: a name, then optional parameters
//! (`MLST type*;size*;modify*;`, `HASH SHA-256*;SHA-1;MD5`, `REST STREAM`). In the MLST and HASH lists a `*` marks
//! what is currently selected. A HASH reply is `213 ALGORITHM START-END HEX PATH`.

/// The feature lines of a FEAT reply's text lines, trimmed; the first and last lines are the reply's frame.
pub fn parse_feat_lines(lines: &[String]) -> Vec<String> {
    if lines.len() < 3 {
        return Vec::new();
    }
    lines[1..lines.len() - 1].iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

/// The parameters of feature `name` (matched case-insensitively on the first word): `Some("")` for a feature
/// without parameters, `None` if it is not offered.
pub fn feature_params<'a>(features: &'a [String], name: &str) -> Option<&'a str> {
    features.iter().find_map(|line| {
        let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
        first.eq_ignore_ascii_case(name).then(|| rest.trim())
    })
}

/// A `;`-separated choice list such as `SHA-256*;SHA-1;MD5` or `type*;size*;perm;`: each item with whether it is
/// marked as selected.
pub fn parse_choice_list(params: &str) -> Vec<(String, bool)> {
    params
        .split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.strip_suffix('*') {
            Some(name) => (name.to_string(), true),
            None => (item.to_string(), false),
        })
        // A lone "*" marks nothing: it is no item.
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

/// A file's digest as a HASH reply states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    /// The algorithm's name as the server spells it (`SHA-256`).
    pub algorithm: String,
    /// The byte range the digest covers, as sent (`0-1024`).
    pub range: (u64, u64),
    /// The digest in lower-case hexadecimal.
    pub hex: String,
}

/// Parses the text of a 213 HASH reply: `SHA-256 0-49 169cd22282da7f147cb491e559e9dd path with spaces`.
pub fn parse_hash_reply(text: &str) -> Option<FileHash> {
    let mut words = text.trim_start().splitn(4, ' ');
    let algorithm = words.next().filter(|a| !a.is_empty())?;
    let (start, end) = words.next()?.split_once('-')?;
    let range = (start.parse().ok()?, end.parse().ok()?);
    let hex = words.next()?;
    if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(FileHash { algorithm: algorithm.to_string(), range, hex: hex.to_ascii_lowercase() })
}

/// Lower-case hexadecimal of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    // RFC 2389 §3.2: "211-Extensions supported:", one feature per line with a leading space, "211 END".
    #[test]
    fn feat_lines() {
        let lines =
            strings(&["Extensions supported:", " MLST size*;create;modify*;", " SIZE", " ", " REST STREAM", "END"]);
        assert_eq!(parse_feat_lines(&lines), ["MLST size*;create;modify*;", "SIZE", "REST STREAM"]);
        assert!(parse_feat_lines(&strings(&["No features"])).is_empty());
        assert!(parse_feat_lines(&strings(&["Features:", "End"])).is_empty());
    }

    #[test]
    fn feature_lookup() {
        let features = strings(&["MDTM", "hash SHA-256*;MD5", "REST STREAM", "MLSTX", "MLST type*;"]);
        assert_eq!(feature_params(&features, "MDTM"), Some(""));
        assert_eq!(feature_params(&features, "HASH"), Some("SHA-256*;MD5"));
        assert_eq!(feature_params(&features, "rest"), Some("STREAM"));
        assert_eq!(feature_params(&features, "MLST"), Some("type*;"));
        assert_eq!(feature_params(&features, "SIZE"), None);
    }

    #[test]
    fn choice_lists() {
        assert_eq!(
            parse_choice_list("SHA-256*;SHA-1;MD5"),
            vec![("SHA-256".to_string(), true), ("SHA-1".to_string(), false), ("MD5".to_string(), false)]
        );
        assert_eq!(parse_choice_list("type*;size;"), vec![("type".to_string(), true), ("size".to_string(), false)]);
        assert!(parse_choice_list("").is_empty());
        // Found by fuzzing (client_replies): a lone star was an item with an empty name.
        assert_eq!(parse_choice_list("*;SHA-1*;;* ;"), vec![("SHA-1".to_string(), true)]);
    }

    // draft-bryan-ftpext-hash-02 §3.1: "213 SHA-1 0-49 83e8... filename".
    #[test]
    fn hash_replies() {
        let hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        let got = parse_hash_reply(&format!("SHA-256 0-0 {hex} empty file.bin")).expect("parses");
        assert_eq!(got.algorithm, "SHA-256");
        assert_eq!(got.range, (0, 0));
        assert_eq!(got.hex, hex.to_ascii_lowercase());
        // The path may be missing.
        assert_eq!(parse_hash_reply("MD5 0-49 d41d8cd98f00b204e9800998ecf8427e").map(|h| h.range), Some((0, 49)));
        for bad in [
            "",
            "SHA-256",
            "SHA-256 0-49",
            "SHA-256 49 abcd x",
            "SHA-256 0-x abcd x",
            "SHA-256 0-1 xyz0 x",
            "SHA-256 0-1 abc x",
            "SHA-256 0-1  x",
        ] {
            assert_eq!(parse_hash_reply(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hex() {
        assert_eq!(to_hex(&[0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(to_hex(&[]), "");
    }
}
