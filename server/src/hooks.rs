//! Hooks: `--hook CMD` runs CMD after each finished event (upload, download, delete, rename, mkdir, rmdir,
//! login, logout) with the event in its environment: `FTP_EVENT`, `FTP_USER`, `FTP_PATH` (as the client saw it),
//! `FTP_FILE` (on disk), `FTP_TARGET` and `FTP_TARGET_FILE` (a rename's new name), `FTP_BYTES`, `FTP_PEER`
//! (address:port) and `FTP_RESULT` (`ok`, or why not).
//!
//! The loop never waits for a hook: it queues the event and goes on. `--hook-jobs` threads run the commands, at
//! most that many at once; the queue holds [`QUEUE_PER_JOB`] events per thread, and an event that finds it full
//! is dropped, logged and counted. A command that outlives `--hook-timeout` is killed. What it prints goes into
//! the log, up to [`MAX_OUTPUT`] bytes. CMD is split on whitespace into a program and its arguments; no shell
//! ever sees it.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use log::{info, warn};

/// Events queued per hook thread at most.
pub const QUEUE_PER_JOB: usize = 64;
/// Bytes of a hook's output (stdout and stderr each) that reach the log.
pub const MAX_OUTPUT: usize = 4096;

/// One finished event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: &'static str,
    pub user: String,
    pub path: String,
    pub file: PathBuf,
    pub target: Option<(String, PathBuf)>,
    pub bytes: u64,
    pub peer: String,
    pub result: String,
    /// How long a transfer took, whether it ran in ASCII mode, and whether the user is anonymous (for the
    /// xferlog).
    pub seconds: f64,
    pub ascii: bool,
    pub anonymous: bool,
}

impl Event {
    /// The environment the command gets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("FTP_EVENT", self.kind.to_string()),
            ("FTP_USER", self.user.clone()),
            ("FTP_PATH", self.path.clone()),
            ("FTP_FILE", self.file.display().to_string()),
            ("FTP_BYTES", self.bytes.to_string()),
            ("FTP_PEER", self.peer.clone()),
            ("FTP_RESULT", self.result.clone()),
        ];
        if let Some((path, file)) = &self.target {
            env.push(("FTP_TARGET", path.clone()));
            env.push(("FTP_TARGET_FILE", file.display().to_string()));
        }
        env
    }
}

/// The hook settings.
#[derive(Debug, Clone)]
pub struct HookConfig {
    pub command: Vec<String>,
    pub jobs: usize,
    pub timeout: Duration,
}

/// The queue the workers hand events to, and its threads.
pub struct Hooks {
    queue: SyncSender<Event>,
    pub dropped: Arc<AtomicU64>,
    pub run: Arc<AtomicU64>,
}

impl Hooks {
    /// Starts `jobs` threads running `config.command` for each event.
    pub fn start(config: HookConfig) -> io::Result<Hooks> {
        let jobs = config.jobs.max(1);
        let (queue, rx) = sync_channel::<Event>(QUEUE_PER_JOB * jobs);
        let rx = Arc::new(Mutex::new(rx));
        let run = Arc::new(AtomicU64::new(0));
        for i in 0..jobs {
            let (rx, config, run) = (rx.clone(), config.clone(), run.clone());
            thread::Builder::new().name(format!("hook-{i}")).spawn(move || serve(&rx, &config, &run))?;
        }
        Ok(Hooks { queue, dropped: Arc::new(AtomicU64::new(0)), run })
    }

    /// Queues an event; never blocks. A full queue drops it with a log line.
    pub fn submit(&self, event: Event) {
        match self.queue.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(e) | TrySendError::Disconnected(e)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                warn!("hook queue full: {} event for {:?} dropped ({n} so far)", e.kind, e.path);
            }
        }
    }
}

fn serve(rx: &Mutex<Receiver<Event>>, config: &HookConfig, run_count: &AtomicU64) {
    loop {
        let event = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(e) => e,
            Err(_) => return,
        };
        run(config, &event);
        run_count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the command for one event, bounded by the timeout; logs how it ended and what it printed.
fn run(config: &HookConfig, event: &Event) {
    let Some((program, args)) = config.command.split_first() else { return };
    // Its own process group, so a timeout kills whatever it started too (a `sleep` holding its output open).
    let spawned = Command::new(program)
        .process_group(0)
        .args(args)
        .envs(event.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            warn!("hook {program:?} for {} {:?}: cannot start: {e}", event.kind, event.path);
            return;
        }
    };
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut out| {
        thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            // Read to the end (so the command never blocks on a full pipe), keep the first MAX_OUTPUT bytes.
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        })
    })
    .collect();
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= config.timeout => {
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                warn!("hook {program:?}: {e}");
                break None;
            }
        }
    };
    for r in readers {
        let text = r.join().unwrap_or_default();
        for line in String::from_utf8_lossy(&text).lines().filter(|l| !l.is_empty()) {
            info!("hook {} {:?}: {line:?}", event.kind, event.path);
        }
    }
    match status {
        Some(s) if s.success() => {}
        Some(s) => warn!("hook {program:?} for {} {:?} ended with {s}", event.kind, event.path),
        None => warn!("hook {program:?} for {} {:?} killed after {:?}", event.kind, event.path, config.timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every field of an event reaches the environment, the rename's target only for a rename.
    #[test]
    fn events_become_environments() {
        let e = Event {
            kind: "rename",
            user: "alice".into(),
            path: "/a".into(),
            file: "/srv/a".into(),
            target: Some(("/b".into(), "/srv/b".into())),
            bytes: 0,
            peer: "192.0.2.1:4000".into(),
            result: "ok".into(),
            seconds: 0.0,
            ascii: false,
            anonymous: false,
        };
        let env = e.env();
        for (k, v) in [
            ("FTP_EVENT", "rename"),
            ("FTP_TARGET", "/b"),
            ("FTP_TARGET_FILE", "/srv/b"),
            ("FTP_PEER", "192.0.2.1:4000"),
        ] {
            assert!(env.contains(&(k, v.to_string())), "{k}");
        }
        let plain = Event { target: None, ..e };
        assert!(!plain.env().iter().any(|(k, _)| *k == "FTP_TARGET"));
    }
}
