#!/usr/bin/env bash
# One large download, end to end: `ftpclient get` against `curl -o`, both from our ftpserver at its default flags
# on loopback, in the same run and interleaved (the order alternates per run so neither always goes first).
#
#   bench/client_get.sh                 1 GiB, five runs of each client
#   bench/client_get.sh --runs N        N runs of each
#   bench/client_get.sh --mib M         an M MiB file instead of 1024
#   bench/client_get.sh --no-build      use the release binaries already in $CARGO_TARGET_DIR
#   bench/client_get.sh --verify HOW    pass --verify HOW to ftpclient (auto, crc32, sha256, size; default: its own)
#   FTPCLIENT=PATH bench/client_get.sh  measure that ftpclient binary (another build) instead of this one's
#
# ftpclient's time includes its verification (by default CRC32 from the server's HASH; SHA-256 with --verify
# sha256), since a user waits for it;
# curl verifies nothing. Each download goes to a fresh file that is removed afterwards. Prints, per run: each
# client's wall seconds, the ratio curl/ours (above 1: ours is faster), ftpclient's transfer alone (from its summary
# line), and where the CPU went: each client's user+system seconds and the server's during that client's run (on
# 2 cores a busy machine makes CPU seconds, not wall time, the limit). Then the medians. Every process it starts
# runs under `timeout`, the server is stopped by its PID on exit, and the temporary directory is removed.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$CARGO_TARGET_DIR/release"
CLIENT="${FTPCLIENT:-$BIN/ftpclient}"

RUNS=5
MIB=1024
BUILD=1
VERIFY=
while (($#)); do
    arg=$1
    shift
    case "$arg" in
        --runs | --mib)
            value=${1:-}
            shift || true
            [[ "$value" =~ ^[1-9][0-9]*$ ]] || {
                echo "client_get.sh: $arg needs a positive number" >&2
                exit 2
            }
            if [[ "$arg" == --runs ]]; then RUNS=$value; else MIB=$value; fi
            ;;
        --no-build) BUILD=0 ;;
        --verify)
            VERIFY=${1:-}
            shift || true
            [[ "$VERIFY" =~ ^(auto|crc32|sha256|size)$ ]] || {
                echo "client_get.sh: --verify needs auto, crc32, sha256 or size" >&2
                exit 2
            }
            ;;
        -h | --help)
            sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "client_get.sh: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

command -v curl >/dev/null || {
    echo "client_get.sh: curl is needed" >&2
    exit 2
}
for tool in bc /usr/bin/time; do
    command -v "$tool" >/dev/null || {
        echo "client_get.sh: $tool is needed" >&2
        exit 2
    }
done
# shellcheck source=bench/lib/ourserver.sh
source "$HERE/lib/ourserver.sh"
setup_client_bench client_get.sh "$BUILD" "$BIN/ftpserver" "$CLIENT"

mkdir -p "$WORK/root" "$WORK/down"
head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$WORK/root/big.bin"
start_ourserver "$WORK/root" "$WORK/server.log" client_get.sh

# measure OUT COMMAND...: runs a client, its standard output to OUT; prints "WALL CLIENT_CPU SERVER_CPU"
# (seconds); fails the script if the client fails.
measure() {
    local out=$1 start end s0 s1
    shift
    s0=$(server_cpu)
    start=$(date +%s.%N)
    timeout 600 /usr/bin/time -f '%U %S' -o "$WORK/time" "$@" >"$out"
    end=$(date +%s.%N)
    s1=$(server_cpu)
    read -r user sys <"$WORK/time"
    echo "$(echo "$end - $start" | bc -l) $(echo "$user + $sys" | bc -l) $(echo "$s1 - $s0" | bc -l)"
}

CURL=(curl -sS -o "$WORK/down/curl.bin" "ftp://127.0.0.1:$PORT/big.bin")
# Its summary line ("... N bytes in S s (...), CRC32 verified") goes to $WORK/ours.out.
OURS=("$CLIENT" "$PORT" -c "get big.bin $WORK/down/ours.bin")
if [[ -n "$VERIFY" ]]; then
    OURS+=(--verify "$VERIFY")
fi

median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "file: $MIB MiB, server: ftpserver (default flags) on 127.0.0.1:$PORT, $RUNS runs each, $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %8s %8s %6s %9s %10s %10s %10s %10s\n' run curl_s ours_s ratio ours_xfer curl_cpu srv_cpu_c ours_cpu srv_cpu_o
: >"$WORK/curl.times"
: >"$WORK/ours.times"
for ((run = 1; run <= RUNS; run++)); do
    sync
    if ((run % 2)); then
        read -r c cc sc < <(measure /dev/null "${CURL[@]}")
        rm -f "$WORK/down/curl.bin"
        read -r o oc so < <(measure "$WORK/ours.out" "${OURS[@]}")
    else
        read -r o oc so < <(measure "$WORK/ours.out" "${OURS[@]}")
        read -r c cc sc < <(measure /dev/null "${CURL[@]}")
        rm -f "$WORK/down/curl.bin"
    fi
    check=$(sed -n 's/.*), \(.*\) verified$/\1/p' "$WORK/ours.out")
    [[ -n "$check" ]] || {
        echo "client_get.sh: ftpclient did not verify its copy: $(cat "$WORK/ours.out")" >&2
        exit 1
    }
    x=$(sed -n 's/.* bytes in \([0-9.]*\) s .*/\1/p' "$WORK/ours.out")
    cmp -s "$WORK/root/big.bin" "$WORK/down/ours.bin" || {
        echo "client_get.sh: ftpclient's copy differs from the original" >&2
        exit 1
    }
    rm -f "$WORK/down/ours.bin"
    echo "$c" >>"$WORK/curl.times"
    echo "$o" >>"$WORK/ours.times"
    printf '%-6s %8.3f %8.3f %6.2f %9.3f %10.2f %10.2f %10.2f %10.2f\n' "$run" "$c" "$o" "$(echo "$c / $o" | bc -l)" \
        "$x" "$cc" "$sc" "$oc" "$so"
done
mc=$(median <"$WORK/curl.times")
mo=$(median <"$WORK/ours.times")
printf '%-6s %8.3f %8.3f %6.2f\n' median "$mc" "$mo" "$(echo "$mc / $mo" | bc -l)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio curl/ours (median): $(printf '%.2f' "$(echo "$mc / $mo" | bc -l)")x (above 1: ftpclient is faster end to end; ftpclient verified with ${check:-?})"
