//! Shell-style wildcards for `mget`, `mput` and `mirror --exclude`, matched against one name at a time.
//!
//! `*` is any run of characters, `?` any one character, `[abc]`, `[a-z]` and `[!a-z]` (or `[^a-z]`) a character
//! from (or not from) a set, and `\` takes the next character literally. `/` is an ordinary character here: callers
//! match a base name, or a relative path for `--exclude`. A `[` without its `]` stands for itself.

/// True when `pattern` contains a wildcard, so it names a set of files rather than one.
pub fn has_wildcards(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// True when `name` matches `pattern` as a whole.
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    match_from(&pattern, &name)
}

/// Iterative matching with one backtrack point (the last `*`), so a pattern never costs more than
/// pattern length × name length steps.
fn match_from(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(_) => {
                if let Some(len) = match_one(&pattern[p..], name[n]) {
                    p += len;
                    n += 1;
                    continue;
                }
            }
            None => {}
        }
        match star {
            // Let the last `*` take one more character and try again after it.
            Some((star_p, star_n)) => {
                star = Some((star_p, star_n + 1));
                p = star_p + 1;
                n = star_n + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// If the pattern's first element matches `c`, how many pattern characters it took.
fn match_one(pattern: &[char], c: char) -> Option<usize> {
    match pattern.first()? {
        '?' => Some(1),
        '\\' => match pattern.get(1) {
            Some(&lit) => (lit == c).then_some(2),
            None => (c == '\\').then_some(1),
        },
        '[' => match class(pattern) {
            Some((set_matches, len)) => set_matches(c).then_some(len),
            None => (c == '[').then_some(1),
        },
        &lit => (lit == c).then_some(1),
    }
}

/// A bracket expression at the start of `pattern`: a test for a character and the length of the expression, or
/// `None` when the `]` is missing.
fn class(pattern: &[char]) -> Option<(impl Fn(char) -> bool + '_, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let start = i;
    // A `]` right after the opening (or the negation) is a member, not the end.
    if pattern.get(i) == Some(&']') {
        i += 1;
    }
    while pattern.get(i)? != &']' {
        i += 1;
    }
    let members = &pattern[start..i];
    let test = move |c: char| {
        let mut j = 0;
        let mut found = false;
        while j < members.len() {
            if j + 2 < members.len() && members[j + 1] == '-' {
                found |= members[j] <= c && c <= members[j + 2];
                j += 3;
            } else {
                found |= members[j] == c;
                j += 1;
            }
        }
        found != negated
    };
    Some((test, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_questions() {
        assert!(matches("*.txt", "a.txt"));
        assert!(matches("*.txt", ".txt"));
        assert!(!matches("*.txt", "a.txt.bak"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("f?.bin", "f1.bin"));
        assert!(!matches("f?.bin", "f10.bin"));
        assert!(matches("*", ""));
        assert!(matches("**", "x"));
        assert!(!matches("", "x"));
        assert!(matches("sub/*.c", "sub/x.c"));
    }

    #[test]
    fn classes() {
        assert!(matches("f[0-9].txt", "f7.txt"));
        assert!(!matches("f[0-9].txt", "fa.txt"));
        assert!(matches("f[!0-9].txt", "fa.txt"));
        assert!(matches("f[^0-9].txt", "fa.txt"));
        assert!(matches("[]x]", "]"));
        assert!(matches("[abc]*", "banana"));
        // An unclosed bracket is literal.
        assert!(matches("a[b", "a[b"));
        assert!(!matches("a[b", "ab"));
    }

    #[test]
    fn escapes() {
        assert!(matches(r"a\*b", "a*b"));
        assert!(!matches(r"a\*b", "axb"));
        assert!(!has_wildcards(r"a\*b"));
        assert!(has_wildcards("*.txt") && has_wildcards("a?") && has_wildcards("[ab]"));
        assert!(!has_wildcards("plain name.txt"));
    }

    // Backtracking stays linear-ish: a pathological pattern against a long name finishes at once.
    #[test]
    fn no_exponential_backtracking() {
        let name = "a".repeat(2000);
        assert!(!matches("*a*a*a*a*a*a*a*b", &name));
    }
}
