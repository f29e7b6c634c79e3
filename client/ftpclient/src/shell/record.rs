//! `--json`: one JSON object per command on standard output, for programs that drive `ftpclient`.
//!
//! `{"command": "get a.txt", "ok": true, "code": 226, "bytes": 5, "seconds": 0.01, "paths": ["a.txt"],
//! "output": null, "message": "get a.txt -> a.txt: ...", "error": null}`: `code` is the last reply the
//! command's connection received (`null` for local commands), `bytes` what a transfer moved, `paths` the command's
//! arguments other than options, `output` what the command prints (a listing), `message` its confirmation and
//! `error` why it failed.

use std::time::Duration;

use serde::Serialize;

use super::{Output, Shell};
use crate::words::split_args;

/// One command's report.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub command: &'a str,
    pub ok: bool,
    pub code: Option<u16>,
    pub bytes: Option<u64>,
    pub seconds: f64,
    pub paths: Vec<String>,
    pub output: Option<&'a str>,
    pub message: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// The arguments of a command line other than its verb and options.
pub fn paths_of(line: &str) -> Vec<String> {
    let words = split_args(line.trim_start_matches('!')).unwrap_or_default();
    words.into_iter().skip(1).filter(|w| w == "-" || !w.starts_with('-')).collect()
}

impl Shell<'_> {
    /// Writes the record of `label`, which ended with `result` after `elapsed`.
    pub(super) fn write_record(&mut self, label: &str, result: &Result<Output, String>, elapsed: Duration) {
        let (output, message) = match result {
            Ok(Output::Data(text)) => (Some(text.as_str()), None),
            Ok(Output::Info(text)) => (None, Some(text.as_str())),
            _ => (None, None),
        };
        let record = Record {
            command: label,
            ok: result.is_ok(),
            code: self.client.take_last_reply_code(),
            bytes: self.last_bytes.take(),
            seconds: elapsed.as_secs_f64(),
            paths: paths_of(label),
            output,
            message,
            error: result.as_ref().err().map(String::as_str),
        };
        match serde_json::to_string(&record) {
            Ok(line) => {
                let _ = writeln!(self.out, "{line}");
                let _ = self.out.flush();
            }
            Err(e) => {
                let _ = writeln!(self.err, "error: --json: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_leave_out_the_verb_and_options() {
        assert_eq!(paths_of("get -f a.txt \"b c\""), ["a.txt", "b c"]);
        assert_eq!(paths_of("put - up.bin"), ["-", "up.bin"]);
        assert!(paths_of("pwd").is_empty());
        assert!(paths_of("get \"open").is_empty());
    }
}
