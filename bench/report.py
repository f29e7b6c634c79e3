#!/usr/bin/env python3
"""The records and the table of bench/compare.sh.

    report.py record RAW --rep N --server S --scenario X [--exit CODE] [--stdout FILE] [--stderr FILE]
                         [--note TEXT] [--mem-before JSON] [--mem-during JSON] [--cpu-before S --cpu-after S]
        appends one JSON line to RAW: the run's identity, ftpload's exit status and report (its one JSON line),
        the end of its stderr, for idle runs the server's memory before and while holding the sessions, and the
        CPU seconds the server's process tree used during the run (server_cpu_s)
    report.py last RAW
        prints the headline figures of the last record, for the progress log
    report.py table RAW --servers "S1 S2 ..." --reps N [--setup FILE]
        prints the markdown table: per scenario and metric the median over the repetitions for each server, and
        ours divided by the best peer, followed by the setup (FILE, markdown lines) and notes on everything that did
        not go cleanly

Servers whose name starts with "ours" are ours; the others are peers. Memory per session is (Pss while holding
minus Pss before) divided by the established connections the server had when it was measured (the sessions plus
ftpload's probe). Server CPU per GiB is server_cpu_s divided by the bytes ftpload moved (its report's `bytes`, in
GiB): sent by the server for downloads, received for uploads.
"""

import argparse
import json
import statistics
import sys

# Least server CPU, in seconds, that a per-GiB figure is worth much at: /proc counts in clock ticks (1/100 s).
CPU_RESOLUTION_S = 0.1
# Fewest bystander NOOP round trips whose p99 is more than their maximum.
MIN_NOOPS = 100
# The scenarios with a server CPU row.
CPU_SCENARIOS = set()
# (scenario, label, better, extractor). better: "higher", "lower" or None (information only).
METRICS = []


def metric(scenario, label, better):
    def register(fn):
        METRICS.append((scenario, label, better, fn))
        return fn

    return register


def get(obj, *path):
    for key in path:
        if not isinstance(obj, dict) or obj.get(key) is None:
            return None
        obj = obj[key]
    return obj


def idle_metrics(scenario):
    metric(scenario, "sessions established / alive", None)(
        lambda r: None
        if r.get("report") is None
        else (get(r, "report", "sessions_established"), get(r, "report", "sessions_alive"))
    )
    metric(scenario, "memory per session, KiB (Pss)", "lower")(lambda r: r.get("kib_per_session"))
    metric(scenario, "NOOP p99 while holding, ms", "lower")(lambda r: get(r, "report", "noop_latency_ms", "p99"))


def transfer_metrics(scenario, rate_label, rate_key, fairness=False):
    metric(scenario, rate_label, "higher")(lambda r: get(r, "report", rate_key))
    metric(scenario, "transfer p99, ms", "lower")(lambda r: get(r, "report", "latency_ms", "p99"))
    if fairness:
        metric(scenario, "fairness (Jain, 1 = equal)", "higher")(lambda r: get(r, "report", "fairness"))


def cpu_metric(scenario, direction):
    CPU_SCENARIOS.add(scenario)
    metric(scenario, f"server CPU s per GiB {direction}", "lower")(cpu_per_gib)
    metric(scenario, f"server + ftpload CPU s per GiB {direction}", "lower")(total_cpu_per_gib)


def cpu_per_gib(r):
    cpu, moved = r.get("server_cpu_s"), get(r, "report", "bytes")
    if cpu is None or not moved:
        return None
    return cpu / (moved / (1 << 30))


def total_cpu_per_gib(r):
    """The server's CPU and the load tool's together: on loopback the kernel's work for a transfer is charged to
    whichever side sets it off (a server blocked in a large sendfile has its segments pushed out by the client's
    acknowledgements), so only the sum compares servers fairly."""
    cpu, load, moved = r.get("server_cpu_s"), get(r, "report", "load_cpu_s"), get(r, "report", "bytes")
    if cpu is None or load is None or not moved:
        return None
    return (cpu + load) / (moved / (1 << 30))


def bystander_metric(scenario, clients):
    who = f"{clients:,}" if clients else "the clients"
    metric(scenario, f"bystander NOOP p99 while {who} download, ms", "lower")(
        lambda r: get(r, "report", "noop_latency_ms", "p99")
    )


def errors_metric(scenario):
    metric(scenario, "errors (sum over repetitions)", "sum")(lambda r: get(r, "report", "errors", "total"))


def define_metrics(idle_sizes, clients):
    """clients: the connections each scenario asked for, for the labels."""
    for n in idle_sizes:
        idle_metrics(f"idle-{n}")
        errors_metric(f"idle-{n}")
    transfer_metrics("get", "throughput, MiB/s", "mib_per_s", fairness=True)
    bystander_metric("get", clients.get("get"))
    cpu_metric("get", "sent")
    errors_metric("get")
    metric("get-1000", "throughput, MiB/s", "higher")(lambda r: get(r, "report", "mib_per_s"))
    metric("get-1000", "fairness (Jain, 1 = equal)", "higher")(lambda r: get(r, "report", "fairness"))
    bystander_metric("get-1000", clients.get("get-1000"))
    metric("get-1000", "login p99 (connect to logged in), ms", "lower")(
        lambda r: get(r, "report", "login_latency_ms", "p99")
    )
    cpu_metric("get-1000", "sent")
    errors_metric("get-1000")
    transfer_metrics("get-tls", "FTPS throughput, MiB/s", "mib_per_s", fairness=True)
    cpu_metric("get-tls", "sent")
    errors_metric("get-tls")
    transfer_metrics("put", "throughput, MiB/s", "mib_per_s", fairness=True)
    cpu_metric("put", "received")
    errors_metric("put")
    transfer_metrics("small", "transfers/s", "transfers_per_s")
    errors_metric("small")
    metric("ramp", "sessions held at the rate", "higher")(lambda r: get(r, "report", "ramp", "sessions_held"))
    metric("ramp", "aggregate while ramping, MiB/s", None)(lambda r: get(r, "report", "mib_per_s"))
    errors_metric("ramp")


# ---- record -----------------------------------------------------------------------------------------------------------


def read_text(path, limit=None):
    if not path:
        return ""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text[-limit:] if limit else text


def parse_json(text):
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def record(args):
    out = read_text(args.stdout).strip()
    report = parse_json(out.splitlines()[-1]) if out else None
    before = parse_json(args.mem_before)
    during = parse_json(args.mem_during)
    line = {
        "rep": args.rep,
        "server": args.server,
        "scenario": args.scenario,
        "exit": args.exit,
        "note": args.note or None,
        "stderr": read_text(args.stderr, 600).strip() or None,
        "report": report,
        "mem_before": before,
        "mem_during": during,
        "kib_per_session": None,
        "time_wait_at_start": args.time_wait,
        "server_cpu_s": None,
    }
    if args.cpu_before is not None and args.cpu_after is not None:
        line["server_cpu_s"] = round(args.cpu_after - args.cpu_before, 2)
    if before and during and during.get("conns"):
        line["kib_per_session"] = round((during["pss_kib"] - before["pss_kib"]) / during["conns"], 1)
        line["rss_kib_per_session"] = round((during["rss_kib"] - before["rss_kib"]) / during["conns"], 1)
    with open(args.raw, "a") as f:
        f.write(json.dumps(line) + "\n")


def load(raw):
    records = []
    with open(raw) as f:
        for text in f:
            value = parse_json(text)
            if value:
                records.append(value)
    return records


def last(args):
    records = load(args.raw)
    if not records:
        return
    r = records[-1]
    rep = r.get("report")
    head = f"    -> {r['server']} {r['scenario']}:"
    if rep is None:
        why = r.get("note") or r.get("stderr") or f"exit {r.get('exit')}"
        print(f"{head} no report: {why}")
        return
    parts = []
    if rep.get("scenario") == "idle":
        parts.append(f"{rep.get('sessions_established')} established, {rep.get('sessions_alive')} alive")
        if r.get("kib_per_session") is not None:
            parts.append(f"{r['kib_per_session']} KiB/session ({r['mem_during'].get('why')})")
        if get(rep, "noop_latency_ms", "p99") is not None:
            parts.append(f"NOOP p99 {rep['noop_latency_ms']['p99']:.2f} ms")
    elif rep.get("scenario") == "loopback":
        parts.append(f"{rep.get('mib_per_s', 0):.0f} MiB/s, {rep.get('writes_per_s', 0):.0f} writes/s")
    else:
        parts.append(f"{rep.get('transfers')} transfers, {rep.get('mib_per_s', 0):.1f} MiB/s")
        parts.append(f"{rep.get('transfers_per_s', 0):.1f}/s")
        if get(rep, "latency_ms", "p99") is not None:
            parts.append(f"p99 {rep['latency_ms']['p99']:.1f} ms")
        if rep.get("ramp"):
            parts.append(f"held {rep['ramp']['sessions_held']} ({rep['ramp']['stop_reason']})")
        if get(rep, "noop_latency_ms", "p99") is not None:
            parts.append(f"bystander NOOP p99 {rep['noop_latency_ms']['p99']:.2f} ms")
        if cpu_per_gib(r) is not None:
            parts.append(f"server CPU {r['server_cpu_s']:.2f} s, {cpu_per_gib(r):.2f} s/GiB")
    parts.append(f"errors {get(rep, 'errors', 'total')}")
    if r.get("note"):
        parts.append(r["note"])
    print(f"{head} " + ", ".join(parts))


# ---- table ------------------------------------------------------------------------------------------------------------


def fmt(value):
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return " / ".join(fmt(v) for v in value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def median(values):
    if isinstance(values[0], tuple):
        return tuple(median([v[i] for v in values if v[i] is not None] or [None]) for i in range(len(values[0])))
    if values[0] is None:
        return None
    m = statistics.median(values)
    return int(m) if all(isinstance(v, int) for v in values) and m == int(m) else m


def why_missing(runs):
    """A short reason when no run of a cell produced a figure."""
    for r in runs:
        note = r.get("note") or ""
        if note.startswith("unavailable"):
            return "unavailable"
        if note.startswith("server did not start"):
            return "did not start"
        if note.startswith("server exited"):
            return "server exited"
    for r in runs:
        if r.get("report") is None:
            return f"failed (exit {r.get('exit')})"
    return "—"


def cell(runs, fn, better, reps):
    values = [v for v in (fn(r) for r in runs) if v is not None]
    if better == "sum":
        if not values:
            return None, why_missing(runs)
        total = sum(values)
        return total, fmt(total) + ("" if len(values) == reps else f" ({len(values)}/{reps} runs)")
    if not values:
        return None, why_missing(runs)
    m = median(values)
    text = fmt(m)
    if len(values) < reps:
        text += f" ({len(values)}/{reps} runs)"
    return m, text


def ratio_text(ours, peers, better):
    if better not in ("higher", "lower") or ours is None:
        return ""
    peers = [p for p in peers if p is not None]
    if not peers:
        return "no peer figure"
    best = max(peers) if better == "higher" else min(peers)
    if best == 0:
        return "—"
    ratio = ours / best
    if abs(ratio - 1) < 0.005:
        return f"{ratio:.2f}× (equal)"
    good = ratio > 1 if better == "higher" else ratio < 1
    return f"{ratio:.2f}× ({'better' if good else 'worse'})"


def tls_ratio_row(by_cell, servers, ours, reps):
    """Each server's FTPS throughput divided by its plain one (medians of get-tls and get)."""
    def rate(r):
        return get(r, "report", "mib_per_s")

    texts = []
    for s in servers:
        tls, _ = cell(by_cell.get((s, "get-tls"), []), rate, "higher", reps)
        plain, _ = cell(by_cell.get((s, "get"), []), rate, "higher", reps)
        texts.append(f"{tls / plain:.2f}×" if tls is not None and plain else "—")
    return "| " + " | ".join(["get-tls", "FTPS ÷ plain get throughput", ""] + texts + ["" for _ in ours]) + " |"


def notes_for(records):
    """One line per server and scenario that did not go cleanly."""
    lines = []
    seen = set()
    for r in records:
        key = (r["server"], r["scenario"])
        rep = r.get("report")
        what = []
        if r.get("note"):
            what.append(r["note"])
        if rep is None and r.get("stderr"):
            what.append(f"ftpload: {r['stderr'].splitlines()[-1]}")
        elif rep is None and not r.get("note"):
            what.append(f"no report (exit {r.get('exit')})")
        if rep:
            requested = rep.get("sessions_requested")
            established = rep.get("sessions_established")
            if rep.get("scenario") == "idle" and requested and established is not None and established < requested:
                what.append(f"{established} of {requested} sessions established, {rep.get('sessions_alive')} alive")
            errors = rep.get("errors") or {}
            if errors.get("total"):
                counts = {**errors.get("by_code", {}), **errors.get("by_kind", {})}
                detail = "; ".join(
                    f"{k} ×{n}: {(errors.get('first') or {}).get(k, '')}" for k, n in sorted(counts.items())
                )
                what.append(f"{errors['total']} errors ({detail})")
            ramp = rep.get("ramp")
            if ramp and ramp.get("stop_reason") not in ("max-sessions", "rate-missed"):
                worst = ramp.get("worst_ratio")
                worst = f", worst session at {worst * 100:.0f}% of its rate" if worst is not None else ""
                what.append(
                    f"ramp stopped by {ramp.get('stop_reason')} after {ramp.get('sessions_added')} sessions{worst}"
                )
        mem = r.get("mem_during")
        if mem and mem.get("why") not in (None, "all"):
            what.append(f"memory measured at {mem.get('conns')} connections ({mem.get('why')})")
        if what:
            text = "; ".join(w.replace("\n", " ").replace("|", "/") for w in what)
            if (key, text) not in seen:
                seen.add((key, text))
                lines.append(f"- {r['server']}, {r['scenario']}, rep {r['rep']}: {text}")
    return lines


def table(args):
    records = load(args.raw)
    servers = args.servers.split()
    ours = [s for s in servers if s.startswith("ours")]
    peers = [s for s in servers if not s.startswith("ours")]
    idle_sizes = sorted(
        {int(r["scenario"].split("-", 1)[1]) for r in records if r["scenario"].startswith("idle-")}
    )
    clients = {}
    for r in records:
        requested = get(r, "report", "sessions_requested")
        if requested and r["scenario"] not in clients:
            clients[r["scenario"]] = requested
    define_metrics(idle_sizes, clients)
    by_cell = {}
    for r in records:
        by_cell.setdefault((r["server"], r["scenario"]), []).append(r)

    out = []
    reps = args.reps
    out.append(f"Medians of {reps} repetition{'s' if reps != 1 else ''}. "
               "Ratio = ours ÷ the best peer for that metric; `better` says which direction wins.")
    out.append("")
    header = ["scenario", "metric", "better"] + servers + [f"{o} ÷ best peer" for o in ours]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join("---" for _ in header) + "|")
    present = {r["scenario"] for r in records}
    for scenario, label, better, fn in METRICS:
        if scenario not in present:
            continue
        values, texts = {}, []
        for s in servers:
            v, t = cell(by_cell.get((s, scenario), []), fn, better, reps)
            values[s] = v
            texts.append(t)
        ratios = [ratio_text(values[o], [values[p] for p in peers], better) for o in ours]
        shown = {"higher": "higher", "lower": "lower", "sum": "lower"}.get(better, "")
        out.append("| " + " | ".join([scenario, label, shown] + texts + ratios) + " |")
        if scenario == "get-tls" and label.startswith("FTPS throughput"):
            out.append(tls_ratio_row(by_cell, servers, ours, reps))

    loop = [r for r in records if r["server"] == "loopback"]
    if loop:
        out.append("")
        out.append("Loopback reference (no FTP: TCP between threads of ftpload, MiB/s, reads of 256 KiB):")
        out.append("")
        out.append("| write() size | 1 socket | 64 sockets |")
        out.append("|---|---|---|")
        for chunk in ("1K", "256K"):
            row = [f"{chunk.replace('K', ' KiB')}"]
            for sockets in (1, 64):
                runs = by_cell.get(("loopback", f"loopback-{chunk}-x{sockets}"), [])
                _, text = cell(runs, lambda r: get(r, "report", "mib_per_s"), "higher", reps)
                row.append(text)
            out.append("| " + " | ".join(row) + " |")

    if args.setup:
        setup = read_text(args.setup).strip()
        if setup:
            out.append("")
            out.append("Setup:")
            out.append("")
            out.append(setup)

    notes = notes_for(records)
    coarse = sorted(
        {
            f"{r['server']} {r['scenario']}"
            for r in records
            if r["scenario"] in CPU_SCENARIOS
            and cpu_per_gib(r) is not None
            and r["server_cpu_s"] < CPU_RESOLUTION_S
        }
    )
    few = sorted(
        {
            f"{r['server']} {r['scenario']} ({get(r, 'report', 'noop_latency_ms', 'count')})"
            for r in records
            if not r["scenario"].startswith("idle-")
            and (get(r, "report", "noop_latency_ms", "count") or MIN_NOOPS) < MIN_NOOPS
        }
    )
    if few:
        notes.append(
            f"- Bystander NOOP p99 from fewer than {MIN_NOOPS} round trips (in effect their maximum): {', '.join(few)}"
        )
    if coarse:
        notes.append(
            f"- Server CPU under {CPU_RESOLUTION_S} s in a run (/proc counts 1/100 s ticks), so its per-GiB figure is "
            f"coarse: {', '.join(coarse)}"
        )
    if notes:
        out.append("")
        out.append("Notes:")
        out.append("")
        out.extend(notes)
    print("\n".join(out))


def main(argv):
    parser = argparse.ArgumentParser(description="Records and table of bench/compare.sh")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("raw")
    rec.add_argument("--rep", type=int, required=True)
    rec.add_argument("--server", required=True)
    rec.add_argument("--scenario", required=True)
    rec.add_argument("--exit", type=int)
    rec.add_argument("--stdout")
    rec.add_argument("--stderr")
    rec.add_argument("--note")
    rec.add_argument("--mem-before")
    rec.add_argument("--mem-during")
    rec.add_argument("--time-wait", type=int)
    rec.add_argument("--cpu-before", type=float)
    rec.add_argument("--cpu-after", type=float)
    lst = sub.add_parser("last")
    lst.add_argument("raw")
    tab = sub.add_parser("table")
    tab.add_argument("raw")
    tab.add_argument("--servers", required=True)
    tab.add_argument("--reps", type=int, required=True)
    tab.add_argument("--setup")
    args = parser.parse_args(argv[1:])
    {"record": record, "last": last, "table": table}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
