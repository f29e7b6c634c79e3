//! The results of a run: one [`Report`] with every figure, printed as text for people or as one JSON line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::args::{Op, Plan, Scenario};
use crate::progress::human_bytes;
use crate::ramp::RampResult;
use crate::run::{Outcome, Sizes};
use crate::stats::{jain_index, Latency, LatencySummary, Metric};

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub target: String,
    pub elapsed_s: f64,
    /// `count`, `duration`, `errors` (every session ended early), `unfinished`, or for ramp its stop reason.
    pub stopped_by: &'static str,
    pub sessions_requested: usize,
    pub sessions_established: u64,
    /// idle: held sessions that still answered NOOP at the end.
    pub sessions_alive: Option<u64>,
    /// idle: seconds the sessions were held.
    pub held_s: Option<f64>,
    pub transfers: u64,
    pub transfers_aborted: u64,
    pub bytes: u64,
    pub mib_per_s: f64,
    pub transfers_per_s: f64,
    /// Per transfer, all operations together.
    pub latency_ms: Option<LatencySummary>,
    pub login_latency_ms: Option<LatencySummary>,
    /// The probe session's NOOP round trips: idle, while the sessions were held; the others with
    /// `--probe-interval`, while at least one transfer was running.
    pub noop_latency_ms: Option<LatencySummary>,
    pub operations: BTreeMap<&'static str, OpReport>,
    /// Jain's index over the sessions' throughputs (1 = all equal), when sessions moved data.
    pub fairness: Option<f64>,
    pub errors: ErrorReport,
    pub ramp: Option<RampResult>,
    /// CPU seconds (user + system, every thread) ftpload itself used, from start to report. On loopback the
    /// kernel's work for a TCP transfer is charged to whichever side sets it off, so a server's own CPU time says
    /// little without the load tool's beside it.
    pub load_cpu_s: Option<f64>,
    pub settings: Settings,
}

/// One operation's figures.
#[derive(Debug, Serialize)]
pub struct OpReport {
    pub transfers: u64,
    pub bytes: u64,
    pub latency_ms: Option<LatencySummary>,
}

/// Errors by reply code and by kind, with the first message of each.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    pub total: u64,
    pub by_code: BTreeMap<String, u64>,
    pub by_kind: BTreeMap<String, u64>,
    pub first: BTreeMap<String, String>,
}

/// The settings of the run, as used.
#[derive(Debug, Serialize)]
pub struct Settings {
    pub count: Option<u64>,
    pub duration_s: f64,
    pub file: Option<String>,
    pub file_size: Option<u64>,
    pub small_file: Option<String>,
    pub small_file_size: Option<u64>,
    pub upload_size: Option<u64>,
    pub rate: Option<u64>,
    /// idle: threads opening the sessions; ramp without `--tls`: event loops the sessions were spread over.
    pub threads: Option<usize>,
    pub spread: bool,
    /// Milliseconds between two NOOPs of the probe session, when there was one.
    pub probe_interval_ms: Option<u64>,
    pub fd_limit: Option<u64>,
}

/// This process's user + system CPU seconds so far, all threads (fields 14 and 15 of `/proc/self/stat`).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds(&stat, rustix::param::clock_ticks_per_second())
}

/// User + system seconds from the text of a `/proc/PID/stat`: the fields after the command name, which is in
/// parentheses and may itself hold spaces and parentheses.
fn cpu_seconds(stat: &str, ticks_per_second: u64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    (ticks_per_second > 0).then(|| (user + system) as f64 / ticks_per_second as f64)
}

impl Report {
    pub fn new(plan: &Plan, sizes: Sizes, outcome: &Outcome, fd_limit: Option<u64>) -> Report {
        let t = &outcome.tally;
        let secs = outcome.elapsed.as_secs_f64().max(1e-9);
        let summary = |metric| outcome.latencies.get(metric).and_then(Latency::summary);
        let operations = Op::ALL
            .into_iter()
            .filter(|op| plan.cycle.contains(op))
            .map(|op| {
                let count = t.ops[op.index()];
                let report = OpReport {
                    transfers: count.transfers,
                    bytes: count.bytes,
                    latency_ms: summary(Metric::Transfer(op)),
                };
                (op.name(), report)
            })
            .collect();
        let errors = &t.errors;
        let idle = plan.cycle.is_empty();
        let uploads = plan.cycle.contains(&Op::Put);
        // idle's opening threads, or the event loops of a plain ramp (an FTPS ramp has a thread per session).
        let threaded = idle || (plan.scenario == Scenario::Ramp && plan.tls.is_none());
        Report {
            scenario: plan.scenario.name(),
            target: plan.target.to_string(),
            elapsed_s: secs,
            stopped_by: outcome.stopped_by,
            sessions_requested: plan.sessions,
            sessions_established: t.sessions_established,
            sessions_alive: idle.then_some(t.sessions_alive),
            held_s: outcome.held.map(|h| h.as_secs_f64()),
            transfers: t.transfers(),
            transfers_aborted: t.aborted,
            bytes: t.bytes,
            mib_per_s: t.bytes as f64 / (1024.0 * 1024.0) / secs,
            transfers_per_s: t.transfers() as f64 / secs,
            latency_ms: outcome.latencies.transfers().summary(),
            login_latency_ms: summary(Metric::Login),
            noop_latency_ms: summary(Metric::Noop),
            operations,
            fairness: jain_index(&t.throughputs),
            errors: ErrorReport {
                total: errors.total(),
                by_code: errors.by_code.iter().map(|(code, n)| (code.to_string(), *n)).collect(),
                by_kind: errors.by_kind.clone(),
                first: errors.first.clone(),
            },
            ramp: outcome.ramp.clone(),
            load_cpu_s: own_cpu_seconds(),
            settings: Settings {
                count: plan.count,
                duration_s: plan.duration.as_secs_f64(),
                file: plan.file.clone(),
                file_size: if plan.scenario == Scenario::Small { sizes.small_file } else { sizes.file },
                small_file: plan.small_file.clone(),
                small_file_size: if plan.scenario == Scenario::Mixed { sizes.small_file } else { None },
                upload_size: if uploads { plan.size } else { None },
                rate: plan.rate,
                threads: threaded.then_some(plan.threads),
                spread: plan.spread,
                probe_interval_ms: plan.probe_interval.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                fd_limit,
            },
        }
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"cannot encode the report: {e}\"}}"))
    }

    /// The report for people, several lines.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<12}{value}");
        };
        let head = format!("ftpload {} against {}", self.scenario, self.target);
        line("elapsed", format!("{:.3} s (ended by {})", self.elapsed_s, self.stopped_by));
        let mut sessions = format!("{} established of {}", self.sessions_established, self.sessions_requested);
        if let Some(alive) = self.sessions_alive {
            sessions += &format!(", {alive} alive at the end");
        }
        if let Some(held) = self.held_s {
            sessions += &format!(", held {held:.1} s");
        }
        line("sessions", sessions);
        if !self.operations.is_empty() {
            line(
                "transfers",
                format!(
                    "{} ({:.1}/s){}",
                    self.transfers,
                    self.transfers_per_s,
                    if self.transfers_aborted > 0 {
                        format!(", {} cut short by the end", self.transfers_aborted)
                    } else {
                        String::new()
                    }
                ),
            );
            line("bytes", format!("{} ({}), {:.2} MiB/s", self.bytes, human_bytes(self.bytes), self.mib_per_s));
            if let Some(l) = &self.latency_ms {
                line("latency", latency_text(l, "per transfer"));
            }
            if self.operations.len() > 1 {
                for (name, op) in &self.operations {
                    let latency = op.latency_ms.as_ref().map(|l| format!(", p50 {:.2} ms, p99 {:.2} ms", l.p50, l.p99));
                    line(
                        &format!("  {name}"),
                        format!("{} transfers, {}{}", op.transfers, human_bytes(op.bytes), latency.unwrap_or_default()),
                    );
                }
            }
        }
        if let Some(l) = &self.noop_latency_ms {
            let when = if self.scenario == Scenario::Idle.name() { "holding" } else { "transfers ran" };
            line("noop", latency_text(l, &format!("probe round trips while {when}")));
        }
        if let Some(l) = &self.login_latency_ms {
            line("login", latency_text(l, "connect to logged in"));
        }
        if let Some(f) = self.fairness {
            line("fairness", format!("{f:.4} (Jain's index over per-session throughput; 1 = equal shares)"));
        }
        if let Some(cpu) = self.load_cpu_s {
            line("load CPU", format!("{cpu:.2} s (ftpload's own user + system time)"));
        }
        if let Some(r) = &self.ramp {
            line(
                "ramp",
                format!(
                    "{} sessions held at {}/s each ({} added, stopped: {}, worst at last check {})",
                    r.sessions_held,
                    human_bytes(r.rate),
                    r.sessions_added,
                    r.stop_reason,
                    r.worst_ratio.map_or_else(|| "-".into(), |w| format!("{:.0}%", w * 100.0)),
                ),
            );
        }
        if self.errors.total == 0 {
            line("errors", "none".into());
        } else {
            line("errors", format!("{}", self.errors.total));
            let counts = self.errors.by_code.iter().chain(&self.errors.by_kind);
            for (key, n) in counts {
                let first = self.errors.first.get(key).map(String::as_str).unwrap_or("");
                line("", format!("{key} x{n}: {first}"));
            }
        }
        format!("{head}\n{out}")
    }
}

fn latency_text(l: &LatencySummary, what: &str) -> String {
    format!("p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} {what})", l.p50, l.p90, l.p99, l.max, l.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    // utime and stime are fields 14 and 15, counted after a command name that may hold ") (" itself.
    #[test]
    fn cpu_seconds_are_read_after_the_command_name() {
        let stat = "4242 (ftp load) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 12345 0 0";
        assert_eq!(cpu_seconds(stat, 100), Some(3.25));
        assert_eq!(cpu_seconds(stat, 0), None);
        assert_eq!(cpu_seconds("4242 (truncated", 100), None);
        assert_eq!(cpu_seconds("4242 (x) S 1 2", 100), None);
        assert!(own_cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
