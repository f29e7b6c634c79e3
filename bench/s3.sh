#!/usr/bin/env bash
# ftpserver on S3 (a three-node Garage cluster on loopback) against the same server on local disk, in one run:
# 64 clients downloading a 64 MiB file for 10 s, with a probe session's NOOP latency meanwhile, then 16 clients
# uploading 16 MiB files for 10 s. Release builds, default flags. Prints one line per figure and the ratios.
#
#   bench/s3.sh            (Garage from GARAGE_BIN or ~/.cache/ftp-ci/garage, as the tests find it)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ftp-server -p ftpload
B=target/release
work=$(mktemp -d /tmp/ftp-s3-bench.XXXXXX)
cleanup() {
    # The servers' PIDs are in files: start() runs in a command substitution, a subshell.
    for f in "$work"/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    GARAGE_PORT_BASE=${GARAGE_PORT_BASE:-3990} bash tests/garage/cluster.sh stop "$work/garage" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
export GARAGE_PORT_BASE=${GARAGE_PORT_BASE:-3990}
mkdir -p "$work/garage" "$work/disk" "$work/s3root"
bash tests/garage/cluster.sh start "$work/garage" | grep -v ENDPOINTS | sed 's/^/export /' > "$work/env"
# shellcheck disable=SC1091
. "$work/env"
head -c $((64 << 20)) /dev/urandom > "$work/disk/big.bin"

start() { # NAME ARGS...: starts a server, prints its port
    local name=$1; shift
    "$B/ftpserver" 0 --anonymous write "$@" > "$work/$name.log" 2>&1 &
    echo $! > "$work/$name.pid"
    for _ in $(seq 100); do grep -q listening "$work/$name.log" && break; sleep 0.1; done
    grep -o "listening on [0-9.]*:[0-9]*" "$work/$name.log" | sed 's/.*://'
}
disk=$(start disk --root "$work/disk")
s3=$(start s3 --root "$work/s3root" \
    --storage "s3://$GARAGE_BUCKET/bench?endpoint=$GARAGE_S3_ENDPOINT&region=$GARAGE_S3_REGION")
curl -sS --max-time 120 -T "$work/disk/big.bin" "ftp://127.0.0.1:$s3/big.bin"

field() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }
for which in disk s3; do
    port=${!which}
    "$B/ftpload" "$port" idle --sessions 1 -d 12 --json > "$work/probe-$which.json" &
    probe=$!
    "$B/ftpload" "$port" get -c 64 -d 10 --file /big.bin --json > "$work/get-$which.json"
    wait "$probe"
    "$B/ftpload" "$port" put -c 16 --size 16M -d 10 --json > "$work/put-$which.json"
    echo "$which: get $(field "$work/get-$which.json" "round(d['mib_per_s'])") MiB/s," \
        "NOOP p99 $(field "$work/probe-$which.json" "d['noop_latency_ms']['p99']") ms during the gets," \
        "put $(field "$work/put-$which.json" "round(d['mib_per_s'])") MiB/s"
done
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
g = {k: json.load(open(f"{w}/get-{k}.json"))["mib_per_s"] for k in ("disk", "s3")}
p = {k: json.load(open(f"{w}/put-{k}.json"))["mib_per_s"] for k in ("disk", "s3")}
print(f"S3 / disk: get {g['s3'] / g['disk']:.3f}x, put {p['s3'] / p['disk']:.3f}x")
PY
