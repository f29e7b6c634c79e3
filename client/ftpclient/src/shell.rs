//! Running `ftpclient` commands against a logged-in [`FtpClient`] and reporting each in one line.
//!
//! A [`Shell`] takes command lines (from `-c`, a batch file, a pipe or a prompt), runs each and writes the outcome:
//! results and confirmations to its output, one `error: COMMAND: why` line per failure to its error stream. It
//! counts failures. A batch (`-c`, `-b`, commands piped in) stops at the first failed command, so that a failed
//! `cd` is never followed by an `rm` in the wrong directory, unless `--keep-going` says to go on; at a prompt every
//! command is tried. Nothing can run once the control connection is gone. Ctrl-C aborts the transfer in progress
//! (ABOR); it also stops a batch, and at a prompt leads back to it.

mod local_cmds;
mod record;
pub mod retry;

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use log::debug;

use crate::connect::Login;
use crate::digest::Algorithm;
use crate::hash_ahead::HASH_AHEAD_MIN;
use crate::jobs::{self, Extra, Job, Outcome};
use crate::listing::format_long;
use crate::local::format_rate;
use crate::mirror::{self, MirrorSpec};
use crate::transfer::{self, why, Options, Verify};
use crate::visible::visible;
use crate::words::{is_usage_error, parse_line, Cmd, HELP};
use ftp_client::timestamp::format_utc;
use ftp_client::FtpClient;

/// What the caller should do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// What a successful command prints.
enum Output {
    /// A confirmation, left out in quiet mode.
    Info(String),
    /// What the user asked to see; a line end is added if missing.
    Data(String),
    /// Nothing to show (an empty long listing).
    Nothing,
}

/// How a session ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every command succeeded.
    Ok,
    /// A command failed.
    Failed,
    /// A command was not understood (an unknown command or option, wrong arguments).
    Usage,
    /// Ctrl-C stopped a batch.
    Interrupted,
}

/// Runs commands over one session.
pub struct Shell<'a> {
    client: FtpClient,
    force: bool,
    quiet: bool,
    progress: bool,
    keep_going: bool,
    interactive: bool,
    /// Standard input carries the commands, so `put -` cannot read a file from it.
    stdin_is_commands: bool,
    limit_rate: Option<u64>,
    /// How transfers are checked (`--verify`).
    verify: Verify,
    /// Connections for many-file commands (`--parallel`).
    parallel: usize,
    /// How to open more connections like this one; without it every transfer uses this one.
    login: Option<Login>,
    /// `--retries`: how often a transfer whose connection dropped is tried again.
    retries: u32,
    /// The remote directory to return to after reconnecting (kept only with retries).
    cwd: Option<String>,
    /// `--json`: one JSON object per command on the output instead of text.
    json: bool,
    /// The bytes the current command moved, for its JSON record.
    last_bytes: Option<u64>,
    /// Set by the Ctrl-C handler; also given to the client, which aborts a transfer when it is set.
    interrupt: Option<Arc<AtomicBool>>,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    failures: usize,
    usage_errors: usize,
    interrupted: bool,
}

impl<'a> Shell<'a> {
    /// `force` allows every `get` to overwrite; `quiet` leaves out confirmations. It keeps going after a failure
    /// until [`Shell::set_keep_going`] says otherwise.
    pub fn new(client: FtpClient, force: bool, quiet: bool, out: &'a mut dyn Write, err: &'a mut dyn Write) -> Self {
        Shell {
            client,
            force,
            quiet,
            progress: false,
            keep_going: true,
            interactive: false,
            stdin_is_commands: false,
            limit_rate: None,
            verify: Verify::Auto,
            parallel: 1,
            login: None,
            retries: 0,
            cwd: None,
            json: false,
            last_bytes: None,
            interrupt: None,
            out,
            err,
            failures: 0,
            usage_errors: 0,
            interrupted: false,
        }
    }

    /// Whether long transfers show a progress bar on standard error (off by default).
    pub fn set_progress(&mut self, progress: bool) {
        self.progress = progress;
    }

    /// Whether commands after a failed one still run.
    pub fn set_keep_going(&mut self, keep_going: bool) {
        self.keep_going = keep_going;
    }

    /// At a prompt, Ctrl-C leads back to the prompt; otherwise it stops the commands.
    pub fn set_interactive(&mut self, interactive: bool) {
        self.interactive = interactive;
    }

    /// Whether the commands come from standard input (then `put -` is refused).
    pub fn set_stdin_is_commands(&mut self, yes: bool) {
        self.stdin_is_commands = yes;
    }

    /// `--limit-rate`: most bytes per second for each transfer.
    pub fn set_limit_rate(&mut self, limit: Option<u64>) {
        self.limit_rate = limit;
    }

    /// `--verify`: how each transfer is checked.
    pub fn set_verify(&mut self, verify: Verify) {
        self.verify = verify;
    }

    /// How many connections many-file commands use (`--parallel N`), and how to open the extra ones.
    pub fn set_parallel(&mut self, parallel: usize, login: Option<Login>) {
        self.parallel = parallel.max(1);
        self.login = login;
    }

    /// `--json`: report each command as one JSON object per line on the output.
    pub fn set_json(&mut self, json: bool) {
        self.json = json;
    }

    /// `--retries N`: transfers whose connection dropped are tried again up to N times (needs the login of
    /// [`Shell::set_parallel`] to reconnect).
    pub fn set_retries(&mut self, retries: u32) {
        self.retries = retries;
    }

    /// The flag a Ctrl-C handler sets; a transfer in progress is then aborted.
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.client.set_interrupt(Some(Arc::clone(&flag)));
        self.interrupt = Some(flag);
    }

    /// How many commands have failed so far.
    pub fn failures(&self) -> usize {
        self.failures
    }

    /// How the commands so far went, worst first: interrupted, a usage error, a failure.
    pub fn ending(&self) -> Ending {
        if self.interrupted {
            Ending::Interrupted
        } else if self.usage_errors > 0 {
            Ending::Usage
        } else if self.failures > 0 {
            Ending::Failed
        } else {
            Ending::Ok
        }
    }

    /// Runs one command line.
    pub fn run_line(&mut self, line: &str) -> Flow {
        let label = line.trim();
        match parse_line(line) {
            Ok(None) => Flow::Continue,
            Ok(Some(cmd)) => self.run_command(label, &cmd),
            Err(msg) => {
                if is_usage_error(&msg) {
                    self.usage_errors += 1;
                }
                self.fail(label, &msg);
                if self.json {
                    self.write_record(label, &Err(msg), std::time::Duration::ZERO);
                }
                self.after_failure(label)
            }
        }
    }

    /// Runs one parsed command; `label` names it in error messages.
    pub fn run_command(&mut self, label: &str, cmd: &Cmd) -> Flow {
        if *cmd == Cmd::Quit {
            return Flow::Stop;
        }
        // A Ctrl-C since the last command stops a batch; at a prompt it only cleared the line.
        if self.take_interrupt() && !self.interactive {
            return self.stop_interrupted(label);
        }
        let started = std::time::Instant::now();
        self.client.take_last_reply_code();
        let result = self.execute(cmd);
        let ctrl_c = self.take_interrupt();
        if self.json {
            self.write_record(label, &result, started.elapsed());
        }
        match result {
            Ok(_) if self.json => {}
            Ok(Output::Info(text)) if !self.quiet => self.print(&text),
            Ok(Output::Info(_) | Output::Nothing) => {}
            Ok(Output::Data(text)) => self.print(&text),
            Err(msg) => {
                self.fail(label, &msg);
                if self.client.is_closed() {
                    self.fail("", "the connection to the server is closed; no further commands can run");
                    return Flow::Stop;
                }
                if !ctrl_c {
                    return self.after_failure(label);
                }
            }
        }
        if ctrl_c && !self.interactive {
            return self.stop_interrupted(label);
        }
        Flow::Continue
    }

    /// Whether Ctrl-C was pressed since the last call.
    fn take_interrupt(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|flag| flag.swap(false, Ordering::Relaxed))
    }

    fn stop_interrupted(&mut self, label: &str) -> Flow {
        self.interrupted = true;
        let label = visible(label);
        let _ = writeln!(self.err, "error: interrupted (Ctrl-C) at `{label}`; the commands after it were not run");
        let _ = self.err.flush();
        Flow::Stop
    }

    /// Whether to go on after `label` failed: a batch stops unless told to keep going.
    fn after_failure(&mut self, label: &str) -> Flow {
        if self.keep_going || self.interactive {
            return Flow::Continue;
        }
        let label = visible(label);
        let _ = writeln!(
            self.err,
            "error: stopped at `{label}`, which failed; the commands after it were not run (--keep-going runs them)"
        );
        let _ = self.err.flush();
        Flow::Stop
    }

    /// Runs every line of `input`; with `prompt`, shows `ftp> ` before each.
    pub fn run_reader(&mut self, input: &mut dyn BufRead, prompt: bool) -> Flow {
        let mut line = Vec::new();
        loop {
            if prompt {
                let _ = write!(self.out, "ftp> ");
                let _ = self.out.flush();
            }
            line.clear();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => {
                    if prompt {
                        let _ = writeln!(self.out);
                    }
                    return Flow::Continue;
                }
                Ok(_) => {}
                Err(e) => {
                    self.fail("reading commands", &e.to_string());
                    return Flow::Stop;
                }
            }
            let flow = match std::str::from_utf8(&line) {
                Ok(text) => self.run_line(text),
                Err(_) => {
                    let label = String::from_utf8_lossy(&line).trim().to_string();
                    self.fail(&label, "the command is not valid UTF-8");
                    self.after_failure(&label)
                }
            };
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
    }

    /// The names in the current remote directory, for completion; none when they cannot be listed.
    pub fn remote_names(&mut self) -> Vec<String> {
        let names = self.client.nlst(None).unwrap_or_default();
        names.into_iter().filter_map(|n| crate::local::remote_basename(&n).map(str::to_string)).collect()
    }

    /// Ends the session politely.
    pub fn finish(self) {
        if !self.client.is_closed() {
            if let Err(e) = self.client.quit() {
                debug!("QUIT: {e}");
            }
        }
    }

    fn options(&self, force: bool, resume: bool) -> Options {
        Options {
            force: force || self.force,
            resume,
            progress: self.progress,
            limit_rate: self.limit_rate,
            continue_part: false,
            verify: self.verify,
        }
    }

    fn execute(&mut self, cmd: &Cmd) -> Result<Output, String> {
        match cmd {
            Cmd::Get { remote, local: Some(local), resume, .. } if local == "-" => {
                if *resume {
                    return Err("get -c cannot continue standard output".to_string());
                }
                let opts = self.options(false, false);
                let summary = transfer::get_to(&mut self.client, remote, &mut *self.out, opts)?;
                // The file went to standard output; the summary must not mix with it.
                if !self.quiet {
                    let _ = writeln!(self.err, "{}", visible(&summary));
                }
                Ok(Output::Nothing)
            }
            Cmd::Cat { path } => {
                let opts = self.options(false, false);
                transfer::get_to(&mut self.client, path, &mut *self.out, opts)?;
                Ok(Output::Nothing)
            }
            Cmd::Get { remote, local, force, resume } => {
                let opts = self.options(*force, *resume);
                let summary = self.get_retrying(remote, local.as_deref(), opts)?;
                let target = crate::local::download_target(remote, local.as_deref());
                self.last_bytes = target.ok().and_then(|t| std::fs::metadata(t).ok()).map(|m| m.len());
                Ok(Output::Info(summary))
            }
            Cmd::Upload { local, remote, resume } if local == "-" => {
                let Some(remote) = remote else { return Err("put - needs a remote name".to_string()) };
                if *resume {
                    return Err("put -c cannot continue standard input".to_string());
                }
                if self.stdin_is_commands {
                    return Err("standard input holds the commands; give them with -c or -b to put -".to_string());
                }
                let opts = self.options(false, false);
                transfer::upload_from(&mut self.client, &mut std::io::stdin().lock(), remote, opts).map(Output::Info)
            }
            Cmd::Upload { local, remote, resume } => {
                let opts = Options { force: false, ..self.options(false, *resume) };
                let summary = self.upload_retrying(local, remote.as_deref(), opts)?;
                self.last_bytes = std::fs::metadata(local).ok().map(|m| m.len());
                Ok(Output::Info(summary))
            }
            Cmd::Lcd { path } => self.lcd(path),
            Cmd::Lls { path } => self.lls(path.as_deref()),
            Cmd::Lpwd => self.lpwd(),
            Cmd::Local { command } => self.run_local(command),
            Cmd::Mget { patterns, force, parallel } => {
                // Into the current directory, named as on the server.
                let into = std::path::Path::new("");
                let jobs = mirror::mget_jobs(&mut self.client, patterns, into)?;
                self.many("mget", jobs, *parallel, *force)
            }
            Cmd::Mput { patterns, parallel } => {
                let jobs = mirror::mput_jobs(patterns, None)?;
                self.many("mput", jobs, *parallel, false)
            }
            Cmd::Mirror(spec) => self.mirror(spec),
            Cmd::Ls { path, names_only: false } => self.long_listing(path.as_deref()),
            Cmd::Ls { path, names_only: true } => {
                let names = self.client.nlst(path.as_deref()).map_err(|e| why(&e, "NLST"))?;
                Ok(if names.is_empty() { Output::Nothing } else { Output::Data(names.join("\n")) })
            }
            Cmd::Cd { path } => {
                self.client.cwd(path).map_err(|e| why(&e, "CWD"))?;
                self.remember_cwd();
                Ok(Output::Info(format!("cd {path}: ok")))
            }
            Cmd::Pwd => self.client.pwd().map(Output::Data).map_err(|e| why(&e, "PWD")),
            Cmd::Mkdir { path } => {
                let created = self.client.mkdir(path).map_err(|e| why(&e, "MKD"))?;
                Ok(Output::Info(format!("mkdir {path}: created {created}")))
            }
            Cmd::Rmdir { path } => {
                self.client.rmdir(path).map_err(|e| why(&e, "RMD"))?;
                Ok(Output::Info(format!("rmdir {path}: removed")))
            }
            Cmd::Rm { path } => {
                self.client.delete(path).map_err(|e| why(&e, "DELE"))?;
                Ok(Output::Info(format!("rm {path}: deleted")))
            }
            Cmd::Rename { from, to } => {
                self.client.rename(from, to).map_err(|e| e.to_string())?;
                Ok(Output::Info(format!("rename {from} -> {to}: done")))
            }
            Cmd::Size { path } => {
                let size = self.client.size(path).map_err(|e| why(&e, "SIZE"))?;
                Ok(Output::Data(format!("{path}: {size} bytes")))
            }
            Cmd::Mdtm { path } => {
                let time = self.client.mdtm(path).map_err(|e| why(&e, "MDTM"))?;
                Ok(Output::Data(format!("{path}: {} UTC", format_utc(time))))
            }
            Cmd::Hash { path } => {
                // SHA-256 when the server offers it; otherwise whatever it has selected.
                let offered = self.client.hash_algorithms().map_err(|e| e.to_string())?;
                let sha256 = Algorithm::Sha256.name();
                if offered.iter().any(|(name, _)| name.eq_ignore_ascii_case(sha256)) {
                    self.client.select_hash(sha256).map_err(|e| e.to_string())?;
                }
                let hash = self.client.hash(path).map_err(|e| why(&e, "HASH"))?;
                Ok(Output::Data(format!("{path}: {} {}", hash.algorithm, hash.hex)))
            }
            Cmd::Help => Ok(Output::Data(HELP.to_string())),
            Cmd::Quit => Ok(Output::Info(String::new())),
        }
    }

    /// Runs many transfers, over `parallel` connections (the session's setting when `None`).
    fn run_jobs(&mut self, jobs: Vec<Job>, parallel: Option<usize>, force: bool) -> Outcome {
        let parallel = parallel.unwrap_or(self.parallel);
        let opts = self.options(force, false);
        // Extra connections, new ones after a lost connection and second sessions that hash a large download on
        // the server start where this session is.
        let large = jobs.iter().any(|job| matches!(job, Job::Get { size: Some(size), .. } if *size >= HASH_AHEAD_MIN));
        let cwd = match &self.login {
            Some(_) if (parallel > 1 && jobs.len() > 1) || self.retries > 0 || large => self.client.pwd().ok(),
            _ => None,
        };
        let extra = match (&self.login, cwd) {
            (Some(login), Some(cwd)) => Some(Extra { login, cwd }),
            _ => None,
        };
        jobs::run_jobs(&mut self.client, extra, jobs, parallel, opts, self.retries, self.interrupt.as_ref())
    }

    /// `mget` and `mput`: the transfers, then one summary line, or the failures.
    fn many(&mut self, verb: &str, jobs: Vec<Job>, parallel: Option<usize>, force: bool) -> Result<Output, String> {
        let started = std::time::Instant::now();
        let total = jobs.len();
        let outcome = self.run_jobs(jobs, parallel, force);
        self.last_bytes = Some(outcome.bytes);
        failures_of(total, &outcome.failures)?;
        let elapsed = started.elapsed();
        Ok(Output::Info(format!(
            "{verb}: {} files ({} bytes) in {:.2} s ({})",
            outcome.done,
            outcome.bytes,
            elapsed.as_secs_f64(),
            format_rate(outcome.bytes, elapsed)
        )))
    }

    /// `mirror`, `get -r` and `put -r`: directories first, then the copies, then (only when every copy succeeded)
    /// the removals.
    fn mirror(&mut self, spec: &MirrorSpec) -> Result<Output, String> {
        let started = std::time::Instant::now();
        let plan = mirror::make_plan(&mut self.client, spec)?;
        if spec.dry_run {
            return Ok(Output::Data(plan.describe()));
        }
        let mut failures = mirror::apply_changes(&mut self.client, &plan.mkdirs);
        let total = plan.jobs.len() + plan.mkdirs.len();
        if failures.is_empty() {
            let outcome = self.run_jobs(plan.jobs.clone(), spec.parallel, true);
            self.last_bytes = Some(outcome.bytes);
            failures.extend(outcome.failures);
            if failures.is_empty() {
                failures.extend(mirror::apply_changes(&mut self.client, &plan.removals));
            }
            failures_of(total + plan.removals.len(), &failures)?;
            return Ok(Output::Info(mirror::summary(&plan, outcome.done, outcome.bytes, started)));
        }
        failures_of(total, &failures).map(|()| Output::Nothing)
    }

    /// `ls -l`: MLSD in neat columns when the server offers MLST, else the server's own LIST.
    fn long_listing(&mut self, path: Option<&str>) -> Result<Output, String> {
        if self.client.feature("MLST").map_err(|e| e.to_string())?.is_none() {
            // As sent, but with the line ends of the text shown here.
            let text = self.client.list(path).map_err(|e| why(&e, "LIST"))?;
            return Ok(Output::Data(text.replace("\r\n", "\n")));
        }
        self.client.select_mlst_facts(&["type", "size", "modify"]).map_err(|e| e.to_string())?;
        let entries = self.client.mlsd(path).map_err(|e| why(&e, "MLSD"))?;
        let text = format_long(&entries);
        Ok(if text.is_empty() { Output::Nothing } else { Output::Data(text) })
    }

    /// Prints what a command shows, escaping control characters (see [`crate::visible`]).
    fn print(&mut self, text: &str) {
        let text = visible(text);
        // A closed stdout (a pipe whose reader left) is no reason to stop the session.
        let _ = self.out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = self.out.write_all(b"\n");
        }
        let _ = self.out.flush();
    }

    fn fail(&mut self, label: &str, msg: &str) {
        let (label, msg) = (visible(label), visible(msg));
        if !label.is_empty() {
            self.failures += 1;
            let _ = writeln!(self.err, "error: {label}: {msg}");
        } else {
            let _ = writeln!(self.err, "error: {msg}");
        }
        let _ = self.err.flush();
    }
}

/// `Err` listing the failed steps when there are any, out of `total`.
fn failures_of(total: usize, failures: &[String]) -> Result<(), String> {
    if failures.is_empty() {
        return Ok(());
    }
    let mut msg = format!("{} of {total} failed:", failures.len());
    for failure in failures {
        msg.push_str("\n  ");
        msg.push_str(failure);
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftp_client::fake_server::{accept, serve_download, FakeServer, Peer};
    use std::time::Duration;

    /// Runs `lines` through a shell whose server runs `script`; returns (stdout, stderr, failures).
    fn run(lines: &[&str], force: bool, script: impl FnOnce(&mut Peer) + Send + 'static) -> (String, String, usize) {
        let server = FakeServer::start("220 ready", script);
        let client = FtpClient::connect("127.0.0.1", server.addr.port(), Duration::from_secs(5)).expect("connect");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut shell = Shell::new(client, force, false, &mut out, &mut err);
        for line in lines {
            if shell.run_line(line) == Flow::Stop {
                break;
            }
        }
        let failures = shell.failures();
        shell.finish();
        server.join();
        (String::from_utf8(out).expect("utf-8"), String::from_utf8(err).expect("utf-8"), failures)
    }

    fn quit(peer: &mut Peer) {
        peer.exchange("QUIT", "221 Bye");
    }

    #[test]
    fn refusal_is_told_without_the_ftp_command() {
        let (out, err, failures) = run(&["cd nowhere", "pwd"], false, |peer| {
            peer.exchange("CWD nowhere", "550 No such directory");
            peer.exchange("PWD", "257 \"/\" is current");
            quit(peer);
        });
        assert_eq!(err, "error: cd nowhere: server replied 550 No such directory\n");
        assert_eq!(out, "/\n");
        assert_eq!(failures, 1);
    }

    #[test]
    fn unknown_and_malformed_commands_count_as_failures() {
        let (_, err, failures) = run(&["fetch x", "get", "# comment", "", "size \"open"], false, quit);
        assert_eq!(failures, 3);
        assert!(err.contains("error: fetch x: unknown command"), "{err}");
        assert!(err.contains("error: get: usage: get [-f] [-c] REMOTE [LOCAL]"), "{err}");
        assert!(err.contains("error: size \"open: unterminated quote"), "{err}");
    }

    #[test]
    fn quit_stops_the_remaining_commands() {
        let (out, _, failures) = run(&["pwd", "quit", "pwd"], false, |peer| {
            peer.exchange("PWD", "257 \"/x\"");
            quit(peer);
        });
        assert_eq!(out, "/x\n");
        assert_eq!(failures, 0);
    }

    // `get` does not even send RETR when the local file exists and overwriting was not asked for.
    #[test]
    fn get_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a.txt");
        std::fs::write(&target, b"mine").expect("write");
        let cmd = format!("get a.txt \"{}\"", target.display());
        let (_, err, failures) = run(&[&cmd], false, quit);
        assert_eq!(failures, 1);
        assert!(err.ends_with("exists (use get -f or --force to overwrite)\n"), "{err}");
        assert_eq!(std::fs::read(&target).expect("read"), b"mine");
    }

    // A failed download leaves neither the target nor the temporary file behind.
    #[test]
    fn failed_get_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cmd = format!("get gone.txt \"{}\"", dir.path().display());
        let (_, err, failures) = run(&[&cmd], false, |peer| {
            peer.feat(&[]);
            let listener = peer.epsv();
            peer.exchange("RETR gone.txt", "550 No such file");
            drop(accept(&listener));
            quit(peer);
        });
        assert_eq!(failures, 1);
        assert!(err.ends_with(": server replied 550 No such file\n"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn get_with_force_replaces_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a.txt");
        std::fs::write(&target, b"old").expect("write");
        let cmd = format!("get -f a.txt \"{}\"", target.display());
        let (out, _, failures) = run(&[&cmd], false, |peer| {
            peer.feat(&["SIZE"]);
            serve_download(peer, "RETR a.txt", b"fresh");
            peer.exchange("SIZE a.txt", "213 5");
            quit(peer);
        });
        assert_eq!(failures, 0);
        assert!(out.starts_with(&format!("get a.txt -> {}: 5 bytes in ", target.display())), "{out}");
        assert!(out.ends_with(", size verified\n"), "{out}");
        assert_eq!(std::fs::read(&target).expect("read"), b"fresh");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    // Uploading a missing file fails before anything is sent.
    #[test]
    fn upload_of_missing_file_sends_nothing() {
        let (_, err, failures) = run(&["upload /nonexistent/x.bin"], false, quit);
        assert_eq!(failures, 1);
        assert!(err.starts_with("error: upload /nonexistent/x.bin: local file /nonexistent/x.bin: "), "{err}");
    }

    // Once the control connection is gone the remaining commands are not attempted.
    #[test]
    fn lost_connection_stops_the_session() {
        let (_, err, failures) = run(&["pwd", "pwd", "pwd"], false, |peer| peer.expect("PWD"));
        assert_eq!(failures, 1);
        assert!(err.contains("no further commands can run"), "{err}");
    }

    #[test]
    fn commands_from_a_reader_with_prompt() {
        let server = FakeServer::start("220 ready", |peer| {
            peer.exchange("PWD", "257 \"/\"");
            quit(peer);
        });
        let client = FtpClient::connect("127.0.0.1", server.addr.port(), Duration::from_secs(5)).expect("connect");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut shell = Shell::new(client, false, false, &mut out, &mut err);
        let flow = shell.run_reader(&mut &b"pwd\n\nbogus\n"[..], true);
        assert_eq!(flow, Flow::Continue);
        assert_eq!(shell.failures(), 1);
        shell.finish();
        server.join();
        assert_eq!(String::from_utf8(out).expect("utf-8"), "ftp> /\nftp> ftp> ftp> \n");
    }
}
