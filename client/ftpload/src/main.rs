//! `ftpload [HOST] PORT SCENARIO`: measures an FTP server on this machine (ours or a peer such as vsftpd,
//! pure-ftpd or pyftpdlib) under many sessions.
//!
//! The scenarios are `idle`, `get`, `put`, `small`, `mixed` and `ramp` (see `--help`), plus `loopback`, which needs
//! no server: the machine's own TCP ceiling. Every run ends by itself, prints one report (text, or one JSON line
//! with `--json`) and exits 0 when it saw no errors, 1 when it did, and 2 when it could not run at all (a usage
//! error, a refused target, a server that cannot be reached or logged in to). Sessions are threads over blocking
//! sockets, except ramp's plain FTP sessions, which are state machines on a few poll loops; the modules: [`args`] (the
//! command line), [`run`] (shared state, preflight, the per-connection scenarios), [`worker`] (one session's
//! transfers), [`idle`], [`ramp`], [`control`] (bare control connections for idle), [`probe`] (the bystander
//! session's NOOPs), [`loopback`], [`throttle`] (rate limiting), [`stats`] (histograms, tallies, fairness),
//! [`progress`] (the live line) and [`report`].

mod args;
mod control;
mod idle;
mod loopback;
mod probe;
mod progress;
mod ramp;
mod report;
mod run;
mod stats;
mod throttle;
mod worker;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use args::{Args, Plan, Scenario};
use progress::Progress;
use report::Report;
use run::Run;

/// The run finished and saw no errors.
const EXIT_OK: u8 = 0;
/// The run finished, with errors (they are in the report).
const EXIT_ERRORS: u8 = 1;
/// The run could not happen.
const EXIT_USAGE: u8 = 2;

/// File descriptors kept free for everything but the sessions.
const SPARE_FDS: u64 = 64;

fn main() -> ExitCode {
    env_logger::init();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let status = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(status);
        }
    };
    let plan = match Plan::from_args(args) {
        Ok(plan) => plan,
        Err(msg) => return fail(&msg),
    };
    let fd_limit = raise_fd_limit();
    let per_session = if plan.scenario == Scenario::Idle { 1 } else { 2 };
    let needed = plan.sessions as u64 * per_session + SPARE_FDS;
    if let Some(limit) = fd_limit.filter(|limit| *limit < needed) {
        return fail(&format!(
            "{} sessions need about {needed} file descriptors, but the limit is {limit} (raise the hard limit: \
             ulimit -Hn)",
            plan.sessions
        ));
    }
    if plan.scenario == Scenario::Loopback {
        let report = loopback::run_loopback(&plan, fd_limit);
        if plan.json {
            println!("{}", report.to_json());
        } else {
            // The first error messages in it are the server's text: shown escaped, as ftpclient shows it.
            print!("{}", ftp_client::visible(&report.to_text()));
        }
        return ExitCode::from(if report.errors.total == 0 { EXIT_OK } else { EXIT_ERRORS });
    }
    let (client, sizes) = match run::preflight(&plan) {
        Ok(found) => found,
        Err(e) => return fail(&format!("cannot start against {}: {e}", plan.target)),
    };
    let mut progress = Progress::new();
    let run = Arc::new(Run::new(plan.clone(), sizes));
    let outcome = match plan.scenario {
        Scenario::Idle => idle::run_idle(run, client, &mut progress),
        Scenario::Ramp => {
            let _ = client.quit();
            ramp::run_ramp(run, &mut progress)
        }
        Scenario::Get | Scenario::Put | Scenario::Small | Scenario::Mixed => {
            run::run_sessions(run, client, &mut progress)
        }
        // Answered above, before the preflight: it needs no server.
        Scenario::Loopback => return fail("the loopback scenario runs without a server"),
    };
    progress.clear();
    let report = Report::new(&plan, sizes, &outcome, fd_limit);
    if plan.json {
        println!("{}", report.to_json());
    } else {
        // The first error messages in it are the server's text: shown escaped, as ftpclient shows it.
        print!("{}", ftp_client::visible(&report.to_text()));
    }
    ExitCode::from(if report.errors.total == 0 { EXIT_OK } else { EXIT_ERRORS })
}

/// Prints `msg` as the one line of a run that could not happen.
fn fail(msg: &str) -> ExitCode {
    eprintln!("ftpload: {}", ftp_client::visible(msg));
    ExitCode::from(EXIT_USAGE)
}

/// Raises the soft limit on open files to the hard limit; returns the limit now in force (`None`: unlimited).
fn raise_fd_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        // If raising fails the old limit stays, and the check against it explains any shortfall.
        let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
    }
    getrlimit(Resource::Nofile).current
}
