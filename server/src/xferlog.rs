//! `--xferlog FILE`: one line per finished transfer in the wu-ftpd xferlog format that log analyzers read
//! (vsftpd and ProFTPD write the same). Lines go to a thread of its own over a bounded queue, so the loop never
//! waits on the disk; a full queue drops a line with a log warning.
//!
//! Format: `current-time transfer-time remote-host file-size filename transfer-type special-action-flag
//! direction access-mode username service-name authentication-method authenticated-user-id completion-status`,
//! with the time in UTC, e.g. `Tue Dec  1 20:00:00 2026 1 192.0.2.7 1048576 /srv/ftp/a.bin b _ o r alice ftp 0 *
//! c`. White space and control characters in a file or user name become `_`, so every line splits into 18 fields.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::SystemTime;

use log::warn;

/// Lines waiting for the writer at most.
const QUEUE: usize = 4096;

/// One finished transfer.
#[derive(Debug, Clone)]
pub struct Entry {
    pub when: SystemTime,
    pub seconds: f64,
    pub host: String,
    pub bytes: u64,
    pub file: String,
    pub ascii: bool,
    pub upload: bool,
    pub anonymous: bool,
    pub user: String,
    pub complete: bool,
}

impl Entry {
    /// The line, without its line end.
    pub fn line(&self) -> String {
        let clean =
            |s: &str| s.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }).collect::<String>();
        format!(
            "{} {} {} {} {} {} _ {} {} {} ftp 0 * {}",
            ctime(self.when),
            self.seconds.round().max(1.0) as u64,
            self.host,
            self.bytes,
            clean(&self.file),
            if self.ascii { 'a' } else { 'b' },
            if self.upload { 'i' } else { 'o' },
            if self.anonymous { 'a' } else { 'r' },
            clean(&self.user),
            if self.complete { 'c' } else { 'i' },
        )
    }
}

/// `Tue Dec  1 20:00:00 2026`, in UTC.
fn ctime(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (year, month, day, h, m, s) = ftp_common::time::civil(t);
    let days = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    let weekday = DAYS[(days % 7) as usize];
    let month = MONTHS[(month.clamp(1, 12) - 1) as usize];
    format!("{weekday} {month} {day:>2} {h:02}:{m:02}:{s:02} {year}")
}

/// The writer's queue.
pub struct Xferlog {
    queue: SyncSender<String>,
}

impl Xferlog {
    /// Opens `path` for appending (refused at startup if it cannot be) and starts the writer thread.
    pub fn open(path: &Path) -> io::Result<Xferlog> {
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        let (queue, lines) = sync_channel::<String>(QUEUE);
        std::thread::Builder::new().name("xferlog".into()).spawn(move || {
            for line in lines {
                if let Err(e) = writeln!(file, "{line}") {
                    warn!("xferlog: {e}");
                }
            }
        })?;
        Ok(Xferlog { queue })
    }

    pub fn record(&self, entry: &Entry) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.queue.try_send(entry.line()) {
            warn!("xferlog: queue full, a line dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // The fields analyzers split on: 18 of them, in order, names without spaces.
    #[test]
    fn lines_in_the_wu_ftpd_format() {
        let e = Entry {
            when: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_619_200),
            seconds: 0.2,
            host: "192.0.2.7".into(),
            bytes: 1024,
            file: "/srv/ftp/a b.bin".into(),
            ascii: false,
            upload: true,
            anonymous: false,
            user: "alice".into(),
            complete: true,
        };
        assert_eq!(e.line(), "Mon Dec  1 20:00:00 2025 1 192.0.2.7 1024 /srv/ftp/a_b.bin b _ i r alice ftp 0 * c");
        assert_eq!(e.line().split(' ').filter(|f| !f.is_empty()).count(), 18);
    }
}
