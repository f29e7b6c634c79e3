#!/usr/bin/env python3
"""What a server costs, read from /proc: the memory of its whole process tree and its established connections.

    procstat.py tree PID                 the PIDs of PID and all its descendants, one per line
    procstat.py mem PID                  one JSON line: pss_kib, rss_kib, procs of PID and its descendants
    procstat.py cpu PID                  CPU seconds (user + system) of PID and its descendants, including those of
                                         their children that have ended and been reaped by them
    procstat.py conns PORT               established TCP connections whose local port is PORT
    procstat.py settle MAX TIMEOUT       waits until fewer than MAX TCP sockets are in TIME_WAIT, at most TIMEOUT
                                         seconds; prints how many there are then
    procstat.py watch PID PORT EXPECT TIMEOUT [LOAD_PID]
                                         waits until the server holds EXPECT connections, or their count has not
                                         changed for a while, or LOAD_PID has exited, or TIMEOUT seconds have passed;
                                         then prints one JSON line: conns, pss_kib, rss_kib, procs, waited_s, why

Memory is the sum over the tree of Pss from /proc/PID/smaps_rollup (shared pages split among the processes that
map them, so forked servers are not counted many times over), with Rss beside it. Processes that vanish while
being read are skipped.

CPU is the sum over the tree of utime + stime + cutime + cstime (/proc/PID/stat fields 14-17, in clock ticks). A
forking server's session processes that end during a run vanish from /proc, but their time is added to the cutime
and cstime of the parent that waits for them, which is in the tree: so the difference of two readings is all the
CPU the tree used between them, threads and ended children included. Missed: children reaped by a process outside
the tree (a daemon that double-forks away from its parent, or one that ignores SIGCHLD so the kernel reaps them).
"""

import json
import os
import sys
import time

# A count that has not changed for this long is where the server stopped accepting.
PLATEAU_S = 3.0
POLL_S = 0.5
# TCP states in /proc/net/tcp.
ESTABLISHED = "01"
TIME_WAIT = "06"


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name, from field 3 (state) on; None if PID is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return stat[stat.rfind(")") + 2:].split()


def children_map():
    """Parent PID -> child PIDs, for every process visible in /proc."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = stat_fields(name)
        if fields and len(fields) > 1:
            kids.setdefault(int(fields[1]), []).append(int(name))
    return kids


def tree(root):
    kids = children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, []))
    return found


def mem(root):
    pss = rss = procs = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                text = f.read()
        except OSError:
            continue
        values = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ("Pss:", "Rss:"):
                values[parts[0]] = int(parts[1])
        if values:
            procs += 1
            pss += values.get("Pss:", 0)
            rss += values.get("Rss:", 0)
    return {"pss_kib": pss, "rss_kib": rss, "procs": procs}


def cpu(root):
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in tree(root):
        fields = stat_fields(pid)
        # utime, stime, cutime, cstime are fields 14-17; the list starts at field 3.
        if fields and len(fields) > 14:
            total += sum(int(v) for v in fields[11:15])
    return total / ticks


def conns(port):
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == ESTABLISHED and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        count += 1
        except OSError:
            continue
    return count


def time_wait():
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                count += sum(1 for line in f if line.split()[3:4] == [TIME_WAIT])
        except OSError:
            continue
    return count


def settle(limit, timeout):
    """Closed connections linger in TIME_WAIT for a minute and hold their ports; a server that binds its passive
    ports with port 0 then searches an ever fuller range. Each run starts from the same, quiet state."""
    deadline = time.monotonic() + timeout
    while True:
        count = time_wait()
        if count < limit or time.monotonic() >= deadline:
            return count
        time.sleep(1.0)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def watch(root, port, expect, timeout, load_pid=None):
    start = time.monotonic()
    last_count, last_change = -1, start
    why = "timeout"
    while True:
        now = time.monotonic()
        count = conns(port)
        if count != last_count:
            last_count, last_change = count, now
        if count >= expect:
            why = "all"
            break
        if count > 0 and now - last_change >= PLATEAU_S:
            why = "plateau"
            break
        if load_pid is not None and not alive(load_pid):
            why = "load-ended"
            break
        if not alive(root):
            why = "server-gone"
            break
        if now - start >= timeout:
            break
        time.sleep(POLL_S)
    result = {"conns": count}
    result.update(mem(root))
    result["waited_s"] = round(time.monotonic() - start, 2)
    result["why"] = why
    return result


def main(argv):
    if len(argv) >= 3 and argv[1] == "tree":
        print("\n".join(str(p) for p in tree(int(argv[2]))))
    elif len(argv) >= 3 and argv[1] == "mem":
        print(json.dumps(mem(int(argv[2]))))
    elif len(argv) >= 3 and argv[1] == "cpu":
        print(f"{cpu(int(argv[2])):.2f}")
    elif len(argv) >= 3 and argv[1] == "conns":
        print(conns(int(argv[2])))
    elif len(argv) >= 4 and argv[1] == "settle":
        print(settle(int(argv[2]), float(argv[3])))
    elif len(argv) >= 6 and argv[1] == "watch":
        load = int(argv[6]) if len(argv) > 6 else None
        print(json.dumps(watch(int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5]), load)))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
