//! The commands that act on this machine only: `lcd`, `lls`, `lpwd` and `!COMMAND`.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::{Output, Shell};

impl Shell<'_> {
    /// `lcd DIR`: changes the local directory, where downloads land and uploads are found.
    pub(super) fn lcd(&mut self, dir: &str) -> Result<Output, String> {
        std::env::set_current_dir(dir).map_err(|e| format!("local directory {dir}: {e}"))?;
        Ok(Output::Info(format!("lcd {dir}: now in {}", current_dir()?)))
    }

    /// `lls [DIR]`: the names in a local directory, sorted, directories with a trailing `/`.
    pub(super) fn lls(&mut self, dir: Option<&str>) -> Result<Output, String> {
        let dir = Path::new(dir.unwrap_or("."));
        let read = fs::read_dir(dir).map_err(|e| format!("local directory {}: {e}", dir.display()))?;
        let mut names: Vec<String> = read
            .flatten()
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    format!("{name}/")
                } else {
                    name
                }
            })
            .collect();
        names.sort();
        Ok(if names.is_empty() { Output::Nothing } else { Output::Data(names.join("\n")) })
    }

    /// `lpwd`: the local directory.
    pub(super) fn lpwd(&mut self) -> Result<Output, String> {
        current_dir().map(Output::Data)
    }

    /// `!COMMAND`: runs COMMAND with `sh -c` on this machine, sharing the terminal; it fails when COMMAND does.
    /// `!` alone starts `$SHELL`.
    pub(super) fn run_local(&mut self, command: &str) -> Result<Output, String> {
        let _ = self.out.flush();
        let status = if command.trim().is_empty() {
            let shell = std::env::var("SHELL").unwrap_or_else(|_| "sh".to_string());
            Command::new(shell).status()
        } else {
            Command::new("sh").arg("-c").arg(command).status()
        };
        let status = status.map_err(|e| format!("cannot run a local shell: {e}"))?;
        if status.success() {
            Ok(Output::Nothing)
        } else {
            Err(format!("the local command ended with {status}"))
        }
    }
}

fn current_dir() -> Result<String, String> {
    std::env::current_dir().map(|d| d.display().to_string()).map_err(|e| format!("the local directory: {e}"))
}
