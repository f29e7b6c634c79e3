//! Text from the server made safe to show on a terminal.
//!
//! File names in listings, reply text in error messages, paths in progress bars: a server chooses them, and a
//! hostile one can put terminal control sequences in them (ESC `[2J` clears the screen, OSC sequences set the window
//! title or write to the clipboard, a bare CR overwrites the line, Unicode bidirectional overrides reorder what is
//! read). [`visible`] shows each control character as an escape (`\x1b`, `\r`, `\u{202e}`) and leaves the rest
//! alone; line ends and tabs stay, as the text's own layout. This library's debug log passes the lines it logs
//! through it, and so does everything the `ftpclient` command prints as text; what is not text for a person is
//! left exact there (`--json` output, which JSON escapes itself, and the bytes of `cat` and `get REMOTE -`).

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character shown as an escape; borrowed when there is none.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) {
            shown.push(c);
        } else if c == '\r' {
            shown.push_str("\\r");
        } else if u32::from(c) < 0x100 {
            let _ = write!(shown, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(shown)
}

/// C0 and C1 controls and DEL (except line feed and tab), and the invisible characters that change how a line
/// reads: bidirectional embeddings, overrides and isolates.
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(visible("a b\tc\nd — é"), Cow::Borrowed("a b\tc\nd — é")));
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(visible("x\x1b[2Jy"), "x\\x1b[2Jy");
        assert_eq!(visible("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
        assert_eq!(visible("ok\rfake"), "ok\\rfake");
        assert_eq!(visible("\u{9b}31m\x7f\0"), "\\x9b31m\\x7f\\x00");
        assert_eq!(visible("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
    }
}
