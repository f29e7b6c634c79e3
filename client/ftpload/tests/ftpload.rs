//! `ftpload` against our own server, at small scale: every scenario with exact counts, the JSON report, and the
//! runs that must be refused (a port nobody listens on, a host that is not this machine).

/// The launcher of our server that the client's tests share.
#[path = "../../ftpclient/tests/support/ourserver.rs"]
#[allow(dead_code)]
mod ourserver;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ftp_tests::launcher::{ftpserver_binary, ready_address, start_reading_lines};
use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;
use tempfile::TempDir;

/// The longest any subprocess may run.
const PROCESS_LIMIT: Duration = Duration::from_secs(120);
const BIG: u64 = 1 << 20;
const SMALL: u64 = 4096;

/// Our server on 127.0.0.1 with a temporary root holding `big.bin` (1 MiB) and `small.bin` (4 KiB); killed by
/// PID when dropped.
struct Server {
    child: Child,
    port: u16,
    root: TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// The server with `extra` options on its command line.
    fn start_with(extra: &[&str]) -> Server {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("big.bin"), pattern(BIG as usize)).expect("big.bin");
        fs::write(root.path().join("small.bin"), pattern(SMALL as usize)).expect("small.bin");
        let mut command = Command::new(ftpserver_binary());
        command.arg("0").arg("--root").arg(root.path()).args(extra).env_remove("RUST_LOG").stderr(Stdio::null());
        let (child, lines) =
            start_reading_lines(command, 1, Duration::from_secs(30)).unwrap_or_else(|why| panic!("ftpserver: {why}"));
        let port = ready_address(&lines[0]).map(|addr| addr.port());
        let port = port.unwrap_or_else(|| panic!("unexpected ready line {:?}", lines[0]));
        Server { child, port, root }
    }

    fn port(&self) -> String {
        self.port.to_string()
    }

    /// Names in the root that uploads left behind.
    fn leftovers(&self) -> Vec<String> {
        fs::read_dir(self.root.path())
            .expect("list root")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ftpload-"))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a child with a limit; kills it by PID and fails the test if it overruns.
fn wait_bounded(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("waiting for a subprocess"),
        Err(_) => {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = kill_process(pid, Signal::KILL);
            }
            panic!("subprocess {pid} did not finish within {limit:?}");
        }
    }
}

/// Starts `ftpload ARGS` with its output piped, logging what `log` (a RUST_LOG filter) asks for, or nothing.
fn spawn_ftpload(args: &[&str], log: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ftpload"));
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    match log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    command.spawn().expect("start ftpload")
}

/// Runs `ftpload ARGS`; returns exit code, stdout and stderr.
fn ftpload(args: &[&str]) -> (Option<i32>, String, String) {
    let output = wait_bounded(spawn_ftpload(args, None), PROCESS_LIMIT);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `ftpload PORT ARGS --json`, expecting success: the one JSON line it prints, parsed.
fn report(server: &Server, args: &[&str]) -> Value {
    let port = server.port();
    let mut all = vec![port.as_str()];
    all.extend_from_slice(args);
    all.push("--json");
    let (code, stdout, stderr) = ftpload(&all);
    assert_eq!(code, Some(0), "ftpload {all:?}\nstdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout}");
    assert!(stderr.is_empty(), "no progress line when stderr is not a terminal: {stderr}");
    let value: Value = serde_json::from_str(stdout.trim_end()).expect("the report is JSON");
    assert_eq!(value["errors"]["total"], 0, "{value}");
    value
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The fairness index is there and in (0, 1].
fn assert_fair(v: &Value) {
    let f = v["fairness"].as_f64().unwrap_or_else(|| panic!("no fairness: {v}"));
    assert!(f > 0.0 && f <= 1.0, "fairness {f}");
}

fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn idle_holds_every_session() {
    let server = Server::start();
    let v = report(&server, &["idle", "--sessions", "50", "--duration", "2", "--threads", "4", "--spread", "on"]);
    assert_eq!(v["scenario"], "idle");
    assert_eq!(u(&v["sessions_requested"]), 50);
    assert_eq!(u(&v["sessions_established"]), 50);
    assert_eq!(u(&v["sessions_alive"]), 50);
    assert!(v["held_s"].as_f64().expect("held") >= 2.0, "{v}");
    assert!(u(&v["noop_latency_ms"]["count"]) > 0, "{v}");
    assert_eq!(u(&v["login_latency_ms"]["count"]), 50);
    assert_eq!(u(&v["transfers"]), 0);
    assert!(v["fairness"].is_null());
}

#[test]
fn get_downloads_exact_counts() {
    let server = Server::start();
    let v = report(&server, &["get", "--file", "big.bin", "--connections", "4", "--count", "3"]);
    assert_eq!(v["stopped_by"], "count");
    assert_eq!(u(&v["sessions_established"]), 4);
    assert_eq!(u(&v["transfers"]), 12);
    assert_eq!(u(&v["bytes"]), 12 * BIG);
    assert_eq!(u(&v["operations"]["get"]["transfers"]), 12);
    assert_eq!(u(&v["latency_ms"]["count"]), 12);
    assert_eq!(u(&v["settings"]["file_size"]), BIG);
    assert!(v["mib_per_s"].as_f64().expect("rate") > 0.0);
    assert_fair(&v);
}

// The bystander probe of get and put: its NOOP round trips are in the report when --probe-interval asks for it,
// and only then; the probe's session is not one of the transfer sessions.
#[test]
fn probe_during_transfers_only_when_asked() {
    let server = Server::start();
    let v =
        report(&server, &["get", "--file", "big.bin", "-c", "2", "-n", "20", "--rate", "8M", "--probe-interval", "5"]);
    assert_eq!(u(&v["transfers"]), 40);
    assert_eq!(u(&v["sessions_established"]), 2);
    let noop = &v["noop_latency_ms"];
    assert!(u(&noop["count"]) > 0, "{v}");
    let p = |k: &str| noop[k].as_f64().unwrap_or_else(|| panic!("no {k}: {noop}"));
    assert!(p("p50") > 0.0 && p("p50") <= p("p99") && p("p99") <= p("max"), "{noop}");
    assert_eq!(u(&v["settings"]["probe_interval_ms"]), 5);

    let v = report(&server, &["put", "--size", "2M", "-c", "2", "-n", "4", "--rate", "8M", "--probe-interval", "5"]);
    assert_eq!(u(&v["transfers"]), 8);
    assert!(u(&v["noop_latency_ms"]["count"]) > 0, "{v}");

    let v = report(&server, &["get", "--file", "big.bin", "-c", "2", "-n", "2"]);
    assert!(v["noop_latency_ms"].is_null(), "{v}");
    assert!(v["settings"]["probe_interval_ms"].is_null(), "{v}");
}

#[test]
fn put_uploads_exact_counts_and_cleans_up() {
    let server = Server::start();
    let v = report(&server, &["put", "--size", "512K", "-c", "4", "-n", "2"]);
    assert_eq!(u(&v["sessions_established"]), 4);
    assert_eq!(u(&v["transfers"]), 8);
    assert_eq!(u(&v["bytes"]), 8 * 512 * 1024);
    assert_eq!(u(&v["operations"]["put"]["bytes"]), 8 * 512 * 1024);
    assert_fair(&v);
    assert!(server.leftovers().is_empty(), "{:?}", server.leftovers());

    let v = report(&server, &["put", "--size", "1000", "-c", "1", "-n", "2", "--keep"]);
    assert_eq!(u(&v["transfers"]), 2);
    let kept = server.leftovers();
    assert_eq!(kept.len(), 2, "{kept:?}");
    for name in kept {
        assert_eq!(fs::metadata(server.root.path().join(name)).expect("kept").len(), 1000);
    }
}

#[test]
fn small_measures_many_transfers() {
    let server = Server::start();
    let v = report(&server, &["small", "--file", "small.bin", "-c", "4", "-n", "50"]);
    assert_eq!(u(&v["transfers"]), 200);
    assert_eq!(u(&v["bytes"]), 200 * SMALL);
    assert_eq!(u(&v["latency_ms"]["count"]), 200);
    assert!(v["transfers_per_s"].as_f64().expect("rate") > 0.0);
    let l = &v["latency_ms"];
    let p = |k: &str| l[k].as_f64().expect("percentile");
    assert!(p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"), "{l}");
    assert_fair(&v);
}

#[test]
fn mixed_runs_each_operation_by_its_weight() {
    let server = Server::start();
    let v = report(
        &server,
        &["mixed", "--file", "big.bin", "--small-file", "small.bin", "--size", "64K", "-c", "4", "-n", "8"],
    );
    assert_eq!(u(&v["sessions_established"]), 4);
    assert_eq!(u(&v["transfers"]), 32);
    let ops = &v["operations"];
    for op in ["get", "put", "small", "list"] {
        assert_eq!(u(&ops[op]["transfers"]), 8, "{op}: {ops}");
    }
    assert_eq!(u(&ops["get"]["bytes"]), 8 * BIG);
    assert_eq!(u(&ops["put"]["bytes"]), 8 * 64 * 1024);
    assert_eq!(u(&ops["small"]["bytes"]), 8 * SMALL);
    assert!(u(&ops["list"]["bytes"]) > 0);
    assert_fair(&v);
    assert!(server.leftovers().is_empty(), "{:?}", server.leftovers());
}

#[test]
fn ramp_adds_sessions_until_one_cannot_keep_its_rate() {
    let server = Server::start();
    let v = report(
        &server,
        &[
            "ramp",
            "--file",
            "big.bin",
            "--rate",
            "200K",
            "--duration",
            "3",
            "--max-sessions",
            "20",
            "--step-interval",
            "100",
            "--window",
            "500",
        ],
    );
    let ramp = &v["ramp"];
    let added = u(&ramp["sessions_added"]);
    let held = u(&ramp["sessions_held"]);
    assert!((1..=20).contains(&added), "{ramp}");
    assert!(held <= added, "{ramp}");
    assert_eq!(u(&v["sessions_established"]), added);
    assert_eq!(u(&ramp["rate"]), 200 * 1024);
    let reason = ramp["stop_reason"].as_str().expect("reason");
    assert!(["max-sessions", "rate-missed", "duration"].contains(&reason), "{ramp}");
    if reason == "max-sessions" {
        assert_eq!(held, 20);
    }
    assert!(v["elapsed_s"].as_f64().expect("elapsed") < 3.0 + 10.0, "{v}");
    // Throttled sessions move about their rate each, never much more.
    let per_session = v["bytes"].as_f64().expect("bytes") / v["elapsed_s"].as_f64().expect("elapsed") / added as f64;
    assert!(per_session < 2.0 * 200.0 * 1024.0, "{per_session} B/s per session");
    assert_fair(&v);
}

/// The ramp's options for a small run: 256 KiB/s per session, a session every 20 ms, judged over 300 ms.
const SMALL_RAMP: [&str; 8] = ["--rate", "256K", "--step-interval", "20", "--window", "300", "--max-sessions", "20"];

/// A file of a few MiB (and some odd bytes) for the ramp's sessions to download, in `server`'s root.
fn ramp_file(server: &Server) -> &'static str {
    fs::write(server.root.path().join("ramp.bin"), pattern((3 << 20) + 1025)).expect("ramp.bin");
    "ramp.bin"
}

// Twenty sessions at 256 KiB/s are nothing for our server: every one is judged and held, on ftpload's event loops
// (by default one per CPU).
#[test]
fn ramp_holds_every_session_up_to_the_maximum() {
    let server = Server::start();
    let file = ramp_file(&server);
    let mut args = vec!["ramp", "--file", file, "--duration", "5"];
    args.extend_from_slice(&SMALL_RAMP);
    let v = report(&server, &args);
    let ramp = &v["ramp"];
    assert_eq!(ramp["stop_reason"], "max-sessions", "{v}");
    assert_eq!(v["stopped_by"], "max-sessions", "{v}");
    assert_eq!((u(&ramp["sessions_held"]), u(&ramp["sessions_added"]), u(&ramp["max_sessions"])), (20, 20, 20));
    let worst = ramp["worst_ratio"].as_f64().unwrap_or_else(|| panic!("no worst ratio: {ramp}"));
    assert!(worst >= 0.9, "{ramp}");
    assert_eq!(u(&ramp["rate"]), 256 * 1024);
    assert_eq!(u(&v["sessions_established"]), 20);
    assert_eq!(u(&v["login_latency_ms"]["count"]), 20);
    // Each session is in the middle of its download when the ramp ends.
    assert_eq!(u(&v["transfers_aborted"]), 20, "{v}");
    assert!(u(&v["bytes"]) > 0, "{v}");
    assert_fair(&v);
    let cpus = thread::available_parallelism().map_or(1, std::num::NonZero::get) as u64;
    assert_eq!(u(&v["settings"]["threads"]), cpus.min(20), "{v}");
}

// Sharded over two event loops (session i on loop i % 2), every session is opened, reaches its rate and is held:
// neither loop loses the sessions the judge hands it, and the judge sees the bytes of both.
#[test]
fn ramp_on_two_loops_holds_every_session() {
    let server = Server::start();
    let file = ramp_file(&server);
    let mut args = vec!["ramp", "--file", file, "--duration", "5", "--threads", "2"];
    args.extend_from_slice(&SMALL_RAMP);
    let v = report(&server, &args);
    let ramp = &v["ramp"];
    assert_eq!(ramp["stop_reason"], "max-sessions", "{v}");
    assert_eq!((u(&ramp["sessions_held"]), u(&ramp["sessions_added"])), (20, 20), "{ramp}");
    assert!(ramp["worst_ratio"].as_f64().unwrap_or_else(|| panic!("no worst ratio: {ramp}")) >= 0.9, "{ramp}");
    assert_eq!(u(&v["settings"]["threads"]), 2, "{v}");
    assert_eq!(u(&v["sessions_established"]), 20, "{v}");
    assert_eq!(u(&v["login_latency_ms"]["count"]), 20, "{v}");
    assert_eq!(u(&v["transfers_aborted"]), 20, "{v}");
    // The loops' tallies are merged: every session's throughput is in the fairness index, and the bytes add up.
    assert_fair(&v);
    let per_session = v["bytes"].as_f64().expect("bytes") / v["elapsed_s"].as_f64().expect("elapsed") / 20.0;
    assert!(per_session < 2.0 * 256.0 * 1024.0, "{per_session} B/s per session");
}

// Three loops with twenty sessions (7, 7 and 6 each): repeated downloads on every loop are counted once each and
// checked against SIZE, and the merged counts agree with each other.
#[test]
fn ramp_on_three_loops_counts_every_transfer() {
    let server = Server::start();
    let mut args = vec!["ramp", "--file", "small.bin", "--duration", "5", "--threads", "3"];
    args.extend_from_slice(&SMALL_RAMP);
    let v = report(&server, &args);
    assert_eq!(v["ramp"]["stop_reason"], "max-sessions", "{v}");
    assert_eq!(u(&v["ramp"]["sessions_held"]), 20, "{v}");
    assert_eq!(u(&v["settings"]["threads"]), 3, "{v}");
    assert_eq!(u(&v["sessions_established"]), 20, "{v}");
    let transfers = u(&v["operations"]["get"]["transfers"]);
    assert!(transfers > 20, "{v}");
    assert_eq!(u(&v["operations"]["get"]["bytes"]), transfers * SMALL, "{v}");
    assert_eq!(u(&v["latency_ms"]["count"]), transfers, "{v}");
    // Bytes of transfers cut short by the end are in the total too, never fewer.
    assert!(u(&v["bytes"]) >= transfers * SMALL, "{v}");
}

// The loops are threads of their own, and each holds exactly its share: session i on loop i % 3, so of twenty
// sessions loops 0 and 1 hold seven each and loop 2 six. The loops' names are read from /proc while the ramp runs;
// their shares from the debug line each loop writes when it ends.
#[test]
fn ramp_loops_are_threads_holding_their_share() {
    let server = Server::start();
    let file = ramp_file(&server);
    let port = server.port();
    let mut args = vec![port.as_str(), "ramp", "--file", file, "--duration", "10", "--threads", "3", "--json"];
    args.extend_from_slice(&SMALL_RAMP);
    let mut child = spawn_ftpload(&args, Some("ftpload::ramp::event_loop=debug"));
    let thread_names = |pid: u32| -> Vec<String> {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
        let comm = |task: fs::DirEntry| fs::read_to_string(task.path().join("comm")).ok();
        tasks.filter_map(|t| t.ok().and_then(comm)).map(|c| c.trim_end().to_string()).collect()
    };
    let loops = ["ramp-loop-0", "ramp-loop-1", "ramp-loop-2"];
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    let mut names = Vec::new();
    while !loops.iter().all(|l| names.iter().any(|n| n == l)) {
        assert!(std::time::Instant::now() < give_up, "no threads {loops:?} in ftpload; it has {names:?}");
        thread::sleep(Duration::from_millis(20));
        names = thread_names(child.id());
    }
    let stderr = child.stderr.take().expect("stderr");
    let output = wait_bounded(child, PROCESS_LIMIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let v: Value = serde_json::from_str(stdout.trim_end()).expect("the report is JSON");
    assert_eq!(v["ramp"]["stop_reason"], "max-sessions", "{v}");
    assert_eq!(u(&v["settings"]["threads"]), 3, "{v}");
    // The child has ended, so its stderr is complete and reading it ends.
    let log: Vec<String> = BufReader::new(stderr).lines().map_while(Result::ok).collect();
    for (number, share) in [(0, 7), (1, 7), (2, 6)] {
        let line = format!("ramp loop {number}: {share} sessions");
        assert!(log.iter().any(|l| l.ends_with(&line)), "no {line:?} in {log:#?}");
    }
}

// A server that holds five control connections refuses the sixth session (or the fifth, if the preflight's is not
// yet closed) with 421: one session on one of the two loops fails while the other loop's sessions are fine, and
// that alone ends the whole ramp with session-failed, at once rather than at --duration.
#[test]
fn ramp_ends_when_a_session_on_one_loop_fails() {
    let server = Server::start_with(&["--max-connections", "5"]);
    let file = ramp_file(&server);
    let port = server.port();
    let mut args = vec![port.as_str(), "ramp", "--file", file, "--duration", "60", "--threads", "2", "--json"];
    args.extend_from_slice(&SMALL_RAMP);
    let (code, stdout, stderr) = ftpload(&args);
    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    let v: Value = serde_json::from_str(stdout.trim_end()).expect("the report is JSON");
    let ramp = &v["ramp"];
    assert_eq!(ramp["stop_reason"], "session-failed", "{v}");
    assert_eq!(v["stopped_by"], "session-failed", "{v}");
    assert_eq!(u(&v["settings"]["threads"]), 2, "{v}");
    let established = u(&v["sessions_established"]);
    assert!((4..=5).contains(&established), "{v}");
    assert!(u(&ramp["sessions_added"]) < 20, "{ramp}");
    assert!(u(&v["errors"]["by_code"]["421"]) >= 1, "{v}");
    // A session is added every 20 ms, so the refusal comes within a fraction of a second; the ramp ends with it.
    assert!(v["elapsed_s"].as_f64().expect("elapsed") < 10.0, "{v}");
}

// Sessions that finish their file start the next transfer; each transfer is counted and checked against SIZE.
#[test]
fn ramp_sessions_download_again_and_again() {
    let server = Server::start();
    let mut args = vec!["ramp", "--file", "small.bin", "--duration", "5"];
    args.extend_from_slice(&SMALL_RAMP);
    let v = report(&server, &args);
    assert_eq!(v["ramp"]["stop_reason"], "max-sessions", "{v}");
    let transfers = u(&v["operations"]["get"]["transfers"]);
    assert!(transfers > 20, "{v}");
    assert_eq!(u(&v["operations"]["get"]["bytes"]), transfers * SMALL, "{v}");
    assert_eq!(u(&v["latency_ms"]["count"]), transfers, "{v}");
}

// A server that dies mid-ramp ends it with session-failed, and the failure is in the errors.
#[test]
fn ramp_ends_with_session_failed_when_the_server_dies() {
    let server = Server::start();
    let file = ramp_file(&server);
    let port = server.port();
    let args = [port.as_str(), "ramp", "--file", file, "--duration", "60", "--json", "--rate", "256K"];
    let throttle = ["--step-interval", "20", "--window", "300", "--max-sessions", "2000"];
    let mut child = spawn_ftpload(&[&args[..], &throttle].concat(), Some("ftpload::ramp=debug"));
    // The ramp's debug log says how many sessions are held at each step: once some are, the server dies.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let held = |line: &str| -> Option<u64> {
        let (_, rest) = line.split_once("judged, ")?;
        rest.split_once(" held")?.0.parse().ok()
    };
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if held(&line).is_some_and(|n| n >= 5) => break,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no step with 5 sessions held ({e}); ftpload said: {seen:#?}"),
        }
    }
    let pid = i32::try_from(server.child.id()).ok().and_then(Pid::from_raw).expect("server pid");
    kill_process(pid, Signal::KILL).expect("kill the server");
    let output = wait_bounded(child, PROCESS_LIMIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let v: Value = serde_json::from_str(stdout.trim_end()).expect("the report is JSON");
    let ramp = &v["ramp"];
    assert_eq!(ramp["stop_reason"], "session-failed", "{v}");
    assert_eq!(v["stopped_by"], "session-failed", "{v}");
    assert!(u(&ramp["sessions_held"]) >= 5, "{ramp}");
    assert!(u(&ramp["sessions_added"]) < 2000, "{ramp}");
    let errors = &v["errors"];
    assert!(u(&errors["total"]) >= 1, "{v}");
    // The server's end shows as the control connection closing, a reset or a refused connection.
    let kinds: Vec<&String> = errors["by_kind"].as_object().expect("by_kind").keys().collect();
    assert!(
        kinds.iter().all(|k| ["closed", "ConnectionReset", "ConnectionRefused", "BrokenPipe"].contains(&k.as_str())),
        "{errors}"
    );
}

#[test]
fn wrong_sizes_are_counted_as_errors() {
    let server = Server::start();
    let port = server.port();
    let (code, stdout, _) =
        ftpload(&[&port, "get", "--file", "small.bin", "--size", "5000", "-c", "2", "-n", "2", "--json"]);
    assert_eq!(code, Some(1), "{stdout}");
    let v: Value = serde_json::from_str(stdout.trim_end()).expect("JSON");
    assert_eq!(u(&v["transfers"]), 0);
    assert_eq!(u(&v["errors"]["total"]), 4);
    assert_eq!(u(&v["errors"]["by_kind"]["byte-count"]), 4);
    assert!(v["errors"]["first"]["byte-count"].as_str().expect("message").contains("expected 5000"), "{v}");
}

#[test]
fn human_report_names_the_figures() {
    let server = Server::start();
    let port = server.port();
    let (code, stdout, stderr) = ftpload(&[&port, "get", "--file", "big.bin", "-c", "2", "-n", "1"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for label in ["sessions", "transfers", "bytes", "latency", "fairness", "errors      none"] {
        assert!(stdout.contains(label), "{label} missing from:\n{stdout}");
    }
}

#[test]
fn unreachable_port_is_one_line_and_exit_2() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let (code, stdout, stderr) = ftpload(&[&port.to_string(), "get", "--file", "x", "--timeout", "5"]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("ftpload: cannot start against 127.0.0.1:"), "{stderr}");
}

#[test]
fn other_hosts_are_refused() {
    for host in ["192.0.2.1", "::ffff:192.0.2.1", "0.0.0.0"] {
        let (code, stdout, stderr) = ftpload(&[host, "21", "idle", "--sessions", "1"]);
        assert_eq!(code, Some(2), "{host}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("only targets loopback"), "{stderr}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, stderr) = ftpload(&["21", "get"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--file"), "{stderr}");
    let (code, _, stderr) = ftpload(&["21", "idle", "--duration", "7200"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--duration"), "{stderr}");
}

#[test]
fn loopback_measures_tcp_without_a_server() {
    let (code, stdout, stderr) =
        ftpload(&["loopback", "--sockets", "4", "--chunk", "1K", "--duration", "0.5", "--json"]);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout}");
    let v: Value = serde_json::from_str(stdout.trim_end()).expect("the report is JSON");
    assert_eq!(v["scenario"], "loopback");
    assert_eq!(u(&v["sockets"]), 4);
    assert_eq!(u(&v["chunk_bytes"]), 1024);
    assert_eq!(u(&v["errors"]["total"]), 0, "{v}");
    let (bytes, calls) = (u(&v["bytes"]), u(&v["write_calls"]));
    assert!(bytes > 0 && calls > 0, "{v}");
    // Every call writes at most one chunk.
    assert!(bytes <= calls * 1024, "{v}");
    assert!(v["mib_per_s"].as_f64().expect("rate") > 0.0, "{v}");
    assert!(v["elapsed_s"].as_f64().expect("elapsed") >= 0.5, "{v}");
    assert_fair(&v);

    let (code, _, stderr) = ftpload(&["21", "loopback"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no HOST or PORT"), "{stderr}");
}

// --tls: every session (transfers and the idle ones) speaks explicit FTPS; the server requires it, so a plain
// session could not even log in. Without the server's certificate the run is refused.
#[test]
fn tls_sessions_against_a_server_that_requires_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(root.path().join("big.bin"), pattern(BIG as usize)).expect("big.bin");
    let certs = dir.path().join("certs");
    let made = Command::new(ftpserver_binary())
        .args(["gen-cert", "--out"])
        .arg(&certs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gen-cert");
    assert!(wait_bounded(made, PROCESS_LIMIT).status.success());
    let (cert, key) = (certs.join("cert.pem"), certs.join("key.pem"));
    let tls_args =
        ["--tls-cert", cert.to_str().expect("utf-8"), "--tls-key", key.to_str().expect("utf-8"), "--require-tls"];
    let server = ourserver::OurServer::start(root.path(), 0, &dir.path().join("server.log"), &tls_args);
    let port = server.port_arg();
    let ca = cert.to_str().expect("utf-8");

    let args =
        [&port, "get", "--file", "big.bin", "--connections", "2", "--count", "2", "--json", "--tls", "--ca-file", ca];
    let (code, stdout, stderr) = ftpload(&args);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(stdout.trim_end()).expect("JSON");
    assert_eq!((u(&v["operations"]["get"]["transfers"]), u(&v["errors"]["total"])), (4, 0), "{v}");
    assert_eq!(u(&v["operations"]["get"]["bytes"]), 4 * BIG);

    let args = [&port, "idle", "--sessions", "10", "--duration", "1", "--json", "--tls", "--ca-file", ca];
    let (code, stdout, stderr) = ftpload(&args);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(stdout.trim_end()).expect("JSON");
    assert_eq!((u(&v["sessions_established"]), u(&v["sessions_alive"])), (10, 10), "{v}");

    // The server's certificate is not trusted without --ca-file: every session fails.
    let (code, stdout, _) = ftpload(&[&port, "get", "--file", "big.bin", "--count", "1", "--json", "--tls"]);
    assert_ne!(code, Some(0), "{stdout}");
}
