#!/usr/bin/env bash
# Profiles one download from an ftpserver binary: which syscalls it makes, how much CPU it takes, and where.
#
#   bench/profile.sh SERVER_BINARY [--mib N]
#
# Starts SERVER_BINARY at its default flags on 127.0.0.1, a free port (0), rooted in a temporary directory holding
# one file of N MiB (default 1024) of random data, then downloads that file with curl (to /dev/null) three times:
#   1. under `strace -c -f -p PID`: the server's syscalls, counted per thread and summed (strace slows every
#      syscall down, so this pass says how many calls, not how fast);
#   2. under `perf stat -p PID`: task-clock, context switches, migrations, page faults, and cycles and instructions
#      when the machine exposes them;
#   3. under `perf record -g -p PID` (the cpu-clock software event, which works without hardware counters): then
#      `perf report --stdio` prints the top 15 symbols by their own samples.
# Prints the strace summary, the perf stat lines and the top symbols. Every process is bounded by `timeout` and
# stopped by its PID; the temporary directory is removed on exit. Needs curl, strace and perf; run as root, or with
# perf_event_paranoid low enough to attach to one's own processes. Network traffic is to 127.0.0.1 only.

set -euo pipefail

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

BINARY=""
MIB=1024
while (($#)); do
    arg=$1
    shift
    case "$arg" in
        --mib)
            MIB=${1:-}
            shift || true
            [[ "$MIB" =~ ^[1-9][0-9]*$ ]] || { echo "profile.sh: --mib needs a number of MiB" >&2; exit 2; }
            ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "profile.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
        *)
            [[ -z "$BINARY" ]] || { echo "profile.sh: one SERVER_BINARY only" >&2; exit 2; }
            BINARY=$arg
            ;;
    esac
done
[[ -n "$BINARY" ]] || { usage >&2; exit 2; }
[[ -x "$BINARY" ]] || { echo "profile.sh: $BINARY is not an executable" >&2; exit 2; }
for tool in curl strace perf; do
    command -v "$tool" >/dev/null || { echo "profile.sh: $tool is not installed" >&2; exit 2; }
done

# Longest the server may take to print its ready line; longest one download may take (a GiB over loopback takes
# seconds; under strace, a server writing 1 KiB per send() took three minutes); longest a tool may take to finish
# after it is told to stop.
START_LIMIT=20
DOWNLOAD_LIMIT=600
TOOL_LIMIT=120
# Time a tracer gets to attach before the download starts.
ATTACH_WAIT=1
TOP_SYMBOLS=15

WORK=$(mktemp -d /tmp/ftpprofile.XXXXXX)
SERVER_PID=""
TOOL_PID=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$TOOL_PID" ]]; then
        kill -INT "$TOOL_PID" 2>/dev/null || true
        wait "$TOOL_PID" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf -- "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

mkdir -p "$WORK/root"
log "writing $MIB MiB of random data"
head -c "$((MIB << 20))" /dev/urandom >"$WORK/root/big.bin"

# The server: default flags, warnings only (no log line per session), bounded by the longest the whole script may
# run.
: >"$WORK/server.log"
RUST_LOG=warn timeout --kill-after=10 $((START_LIMIT + 3 * (DOWNLOAD_LIMIT + TOOL_LIMIT + ATTACH_WAIT))) \
    "$BINARY" 0 --root "$WORK/root" </dev/null >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PORT=""
for ((i = 0; i < START_LIMIT * 10; i++)); do
    line=$(grep -a -m1 '^ftpserver listening on ' "$WORK/server.log" || true)
    if [[ -n "$line" ]]; then
        PORT=${line#ftpserver listening on *:}
        PORT=${PORT%%,*}
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$PORT" ]]; then
    echo "profile.sh: the server did not print its ready line within ${START_LIMIT}s:" >&2
    tail -n 5 "$WORK/server.log" >&2
    exit 1
fi
# `timeout` is the direct child; the server is its child.
SERVER=$(tr -s ' ' '\n' <"/proc/$SERVER_PID/task/$SERVER_PID/children" | head -n1)
[[ -n "$SERVER" ]] || { echo "profile.sh: cannot find the server's PID" >&2; exit 1; }
log "server $BINARY: pid $SERVER, port $PORT"

# One download of the file to /dev/null; fails the script if it is not complete.
download() {
    local got
    got=$(timeout "$DOWNLOAD_LIMIT" curl -sS --fail -o /dev/null -w '%{size_download} %{speed_download}' \
        "ftp://127.0.0.1:$PORT/big.bin")
    [[ "${got%% *}" == "$((MIB << 20))" ]] || { echo "profile.sh: download incomplete: $got" >&2; return 1; }
    log "downloaded ${got%% *} bytes at $(awk -v b="${got#* }" 'BEGIN { printf "%.0f", b / 1048576 }') MiB/s"
}

# Runs a tool (its arguments) in the background attached to the server, waits for it to attach, downloads once,
# then stops the tool with SIGINT (on which strace and perf print their results) and waits for it.
with_tool() {
    local label=$1
    shift
    log "$label"
    timeout --kill-after=10 -s INT "$((DOWNLOAD_LIMIT + TOOL_LIMIT))" "$@" &
    TOOL_PID=$!
    sleep "$ATTACH_WAIT"
    download
    # timeout passes SIGINT on to the tool.
    kill -INT "$TOOL_PID" 2>/dev/null || true
    wait "$TOOL_PID" || true
    TOOL_PID=""
}

with_tool "strace -c -f: syscalls of one download" \
    strace -c -f -p "$SERVER" -o "$WORK/strace.txt"
with_tool "perf stat: CPU of one download" \
    perf stat -e task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions -p "$SERVER" \
    -o "$WORK/perfstat.txt"
with_tool "perf record -g: where the CPU goes in one download" \
    perf record -q -g -e cpu-clock -p "$SERVER" -o "$WORK/perf.data"

echo
echo "== $BINARY: one download of $MIB MiB"
echo
echo "-- syscalls (strace -c -f)"
cat "$WORK/strace.txt"
echo
echo "-- perf stat"
grep -v '^#' "$WORK/perfstat.txt" | grep -v '^[[:space:]]*$' || true
echo
echo "-- top $TOP_SYMBOLS symbols by own samples (perf record -e cpu-clock -g; perf report --no-children)"
timeout "$TOOL_LIMIT" perf report -i "$WORK/perf.data" --stdio --no-children -g none -F overhead,dso,sym \
    2>/dev/null | grep -v '^#' | grep -v '^[[:space:]]*$' | head -n "$TOP_SYMBOLS" || true
