//! The interactive prompt: line editing, history and completion (rustyline), over a [`Shell`].
//!
//! The line can be edited as in a shell (arrows, Home/End, Ctrl-A/E/W ...); Up and Down walk the history, which is
//! kept in `~/.ftpclient_history` between sessions. Tab completes a command name in the first word, a local file
//! name after the commands that take one (`put`, `mput`, `lcd`, `lls`, `put -r`, `mirror -R` ...), and a remote
//! name anywhere else, from the listing of the current remote directory (read again after commands that change
//! it). Ctrl-C at the prompt clears the line; Ctrl-D on an empty line ends the session.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::shell::{Flow, Shell};
use crate::words::COMMANDS;

/// The prompt shown before each command.
pub const PROMPT: &str = "ftp> ";

/// Commands whose arguments are local paths.
const LOCAL_VERBS: &[&str] = &["put", "upload", "mput", "lcd", "lls"];

/// Commands after which the remote directory's names are read again for completion.
const CHANGES_NAMES: &[&str] = &["cd", "put", "upload", "mput", "mkdir", "rmdir", "rm", "rename", "mirror"];

/// Completion of commands, local and remote names.
struct Completion {
    remote_names: Arc<Mutex<Vec<String>>>,
    files: FilenameCompleter,
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let mut words = before.split_whitespace();
        let verb = words.next().unwrap_or_default().to_ascii_lowercase();
        if start == 0 {
            let names = COMMANDS.iter().filter(|c| c.starts_with(word));
            return Ok((0, names.map(|c| pair(c, &format!("{c} "))).collect()));
        }
        let reverse = verb == "mirror" && words.any(|w| w == "-R");
        if LOCAL_VERBS.contains(&verb.as_str()) || reverse {
            return self.files.complete(line, pos, ctx);
        }
        let names = self.remote_names.lock().unwrap_or_else(|e| e.into_inner());
        // Names with control characters are not offered: they would be typed into the line as they are.
        let found = names
            .iter()
            .filter(|n| n.starts_with(word) && crate::visible::visible(n) == n.as_str())
            .map(|n| pair(n, &quoted(n)))
            .collect();
        Ok((start, found))
    }
}

fn pair(display: &str, replacement: &str) -> Pair {
    Pair { display: display.to_string(), replacement: replacement.to_string() }
}

/// A name as one word of a command line: quoted when it has spaces or quotes.
fn quoted(name: &str) -> String {
    if name.contains(char::is_whitespace) || name.contains('"') {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        name.to_string()
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

/// Where the history is kept: `~/.ftpclient_history`.
fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|home| PathBuf::from(home).join(".ftpclient_history"))
}

/// Reads and runs commands at the prompt until `quit`, Ctrl-D or a lost connection. Falls back to plain reading
/// when the terminal cannot be edited.
pub fn run_interactive(shell: &mut Shell<'_>) -> Flow {
    let mut editor = match Editor::<Completion, FileHistory>::new() {
        Ok(editor) => editor,
        Err(e) => {
            log::debug!("no line editing: {e}");
            return shell.run_reader(&mut std::io::stdin().lock(), true);
        }
    };
    let remote_names = Arc::new(Mutex::new(shell.remote_names()));
    editor.set_helper(Some(Completion { remote_names: Arc::clone(&remote_names), files: FilenameCompleter::new() }));
    let history = history_path();
    if let Some(path) = &history {
        // No history yet is the usual first run.
        let _ = editor.load_history(path);
    }
    let flow = loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let flow = shell.run_line(&line);
                if flow == Flow::Stop {
                    break flow;
                }
                let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
                if CHANGES_NAMES.contains(&verb.as_str()) {
                    *remote_names.lock().unwrap_or_else(|e| e.into_inner()) = shell.remote_names();
                }
            }
            // Ctrl-C: the line is dropped; a new prompt follows.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break Flow::Continue,
            Err(e) => {
                log::debug!("reading a command: {e}");
                break Flow::Stop;
            }
        }
    };
    if let Some(path) = &history {
        if let Err(e) = editor.save_history(path) {
            log::debug!("saving the history to {}: {e}", path.display());
        }
    }
    flow
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::parse_line;

    #[test]
    fn every_completed_command_is_known() {
        for command in COMMANDS {
            let err = parse_line(command).err().unwrap_or_default();
            assert!(!err.starts_with("unknown command"), "{command}: {err}");
        }
    }

    #[test]
    fn names_with_spaces_are_quoted() {
        assert_eq!(quoted("plain.txt"), "plain.txt");
        assert_eq!(quoted("my file.txt"), "\"my file.txt\"");
        assert_eq!(quoted("say \"hi\" now"), "\"say \\\"hi\\\" now\"");
    }
}
