#!/usr/bin/env bash
# Many small files, both ways: `ftpclient mirror --parallel 4` against `lftp -e 'mirror --parallel=4'`, both with
# our ftpserver at its default flags on loopback, in the same run and interleaved (the order alternates per run).
#
#   bench/client_mirror.sh                 2,000 files (1-16 KiB, in 40 nested directories), three runs each way
#   bench/client_mirror.sh --files N       N files instead
#   bench/client_mirror.sh --runs N        N runs of each client in each direction
#   bench/client_mirror.sh --no-build      use the release binaries already in $CARGO_TARGET_DIR
#
# Down: both clients copy the server's tree into a fresh local directory; up (mirror -R): both copy the local tree
# into a fresh remote directory. Each copy is compared with the source (diff -r) before its time counts. ftpclient
# verifies every file (HASH or SIZE) and keeps modification times; lftp verifies nothing. Prints each run's wall
# seconds, the ratio lftp/ours (above 1: ours is faster), then the medians. Every process it starts runs under
# `timeout`, the server is stopped by its PID on exit, and the temporary directory is removed.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$CARGO_TARGET_DIR/release"

FILES=2000
RUNS=3
BUILD=1
while (($#)); do
    arg=$1
    shift
    case "$arg" in
        --files | --runs)
            value=${1:-}
            shift || true
            [[ "$value" =~ ^[1-9][0-9]*$ ]] || {
                echo "client_mirror.sh: $arg needs a positive number" >&2
                exit 2
            }
            if [[ "$arg" == --files ]]; then FILES=$value; else RUNS=$value; fi
            ;;
        --no-build) BUILD=0 ;;
        -h | --help)
            sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "client_mirror.sh: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

for tool in lftp python3 bc; do
    command -v "$tool" >/dev/null || {
        echo "client_mirror.sh: $tool is needed" >&2
        exit 2
    }
done
# shellcheck source=bench/lib/ourserver.sh
source "$HERE/lib/ourserver.sh"
setup_client_bench client_mirror.sh "$BUILD" "$BIN/ftpserver" "$BIN/ftpclient"

# The tree: FILES files of 1-16 KiB, spread over 8 directories of 5 subdirectories each, the same on every run.
mkdir -p "$WORK/root" "$WORK/down"
python3 - "$WORK/root/tree" "$FILES" <<'PY'
import os, random, sys
root, files = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(files):
    d = os.path.join(root, f"d{i % 8}", f"s{(i // 8) % 5}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05}.bin"), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 16 * 1024)))
PY
cp -a "$WORK/root/tree" "$WORK/src"
start_ourserver "$WORK/root" "$WORK/server.log" client_mirror.sh

# timed SOURCE COPY COMMAND...: runs a client and prints its wall seconds; fails the script if the client fails
# or the copy differs from the source.
timed() {
    local source=$1 copy=$2 start end
    shift 2
    start=$(date +%s.%N)
    timeout 600 "$@" >"$WORK/client.out" 2>&1 || {
        echo "client_mirror.sh: $1 failed: $(tail -5 "$WORK/client.out")" >&2
        exit 1
    }
    end=$(date +%s.%N)
    diff -rq "$source" "$copy" >&2 || {
        echo "client_mirror.sh: $copy differs from $source" >&2
        exit 1
    }
    echo "$end - $start" | bc -l
}

ours() { # DIRECTION RUN
    if [[ "$1" == down ]]; then
        timed "$WORK/root/tree" "$WORK/down/ours-$2" \
            "$BIN/ftpclient" "$PORT" -q -c "mirror --parallel 4 tree $WORK/down/ours-$2"
    else
        timed "$WORK/src" "$WORK/root/up-ours-$2" "$BIN/ftpclient" "$PORT" -q -c "mirror -R --parallel 4 $WORK/src /up-ours-$2"
    fi
}

lftp_mirror() { # DIRECTION RUN
    local settings="set cmd:fail-exit true; set net:max-retries 2"
    if [[ "$1" == down ]]; then
        timed "$WORK/root/tree" "$WORK/down/lftp-$2" \
            lftp -p "$PORT" -e "$settings; mirror --parallel=4 tree $WORK/down/lftp-$2; quit" 127.0.0.1
    else
        timed "$WORK/src" "$WORK/root/up-lftp-$2" \
            lftp -p "$PORT" -e "$settings; mirror -R --parallel=4 $WORK/src /up-lftp-$2; quit" 127.0.0.1
    fi
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "tree: $FILES files, $(du -sk "$WORK/src" | cut -f1) KiB; server: ftpserver (default flags) on 127.0.0.1:$PORT;" \
    "$RUNS runs each way; $(nproc) cores; lftp $(lftp --version | sed -n '1s/.*Version \([^ ]*\).*/\1/p')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-5s %-6s %8s %8s %6s\n' way run lftp_s ours_s ratio
for way in down up; do
    : >"$WORK/lftp.$way"
    : >"$WORK/ours.$way"
    for ((run = 1; run <= RUNS; run++)); do
        sync
        if ((run % 2)); then
            l=$(lftp_mirror "$way" "$run")
            o=$(ours "$way" "$run")
        else
            o=$(ours "$way" "$run")
            l=$(lftp_mirror "$way" "$run")
        fi
        echo "$l" >>"$WORK/lftp.$way"
        echo "$o" >>"$WORK/ours.$way"
        printf '%-5s %-6s %8.3f %8.3f %6.2f\n' "$way" "$run" "$l" "$o" "$(echo "$l / $o" | bc -l)"
    done
done
for way in down up; do
    ml=$(median <"$WORK/lftp.$way")
    mo=$(median <"$WORK/ours.$way")
    printf '%-5s %-6s %8.3f %8.3f %6.2f\n' "$way" median "$ml" "$mo" "$(echo "$ml / $mo" | bc -l)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
