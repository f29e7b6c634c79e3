#!/usr/bin/env bash
# Builds and runs one fuzz target with its dictionary, its committed seeds and its limits.
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer options...]
#   fuzz/run.sh all SECONDS        every target in turn (the CI smoke run)
#
# New inputs go to CRATE/corpus/TARGET (not committed); the committed seeds in CRATE/seeds/TARGET are read only.
# A crash leaves its input in CRATE/artifacts/TARGET and makes this script fail. Needs cargo-fuzz
# (`cargo install cargo-fuzz --locked`); RUSTC_BOOTSTRAP=1 lets a stable toolchain pass the sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(line_command reply_parser transfer_ascii client_replies session proxy_header)

usage() {
    echo "usage: fuzz/run.sh TARGET|all SECONDS [libFuzzer options...]; targets: ${TARGETS[*]}" >&2
    exit 2
}

[ $# -ge 2 ] || usage
target=$1
seconds=$2
shift 2
[[ $seconds =~ ^[0-9]+$ ]] || usage

if [ "$target" = all ]; then
    for t in "${TARGETS[@]}"; do
        "$0" "$t" "$seconds" "$@"
    done
    exit 0
fi

# The crate of each target, and the longest input it needs: every limit path must be reachable.
case $target in
    # Two lines at the 4096-byte limit plus the control byte.
    line_command) crate=common/fuzz max_len=9000 ;;
    # One line past the parser's 8192-byte line limit, and then some.
    reply_parser) crate=common/fuzz max_len=20000 ;;
    # Several chunks and batches at the largest chunk size the target picks.
    transfer_ascii) crate=server/fuzz max_len=8192 ;;
    client_replies) crate=client/fuzz max_len=20000 ;;
    # A session script: many short lines, each at most the 4096-byte limit.
    session) crate=server/fuzz max_len=16384 ;;
    # Past MAX_HEADER (1024), where the parser must give its final answer.
    proxy_header) crate=server/fuzz max_len=2048 ;;
    *) usage ;;
esac

# Some targets make files for every input: on tmpfs that costs microseconds, on a journaling disk milliseconds.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

mkdir -p "$crate/corpus/$target"
dict=()
[ -f "$crate/dict/$target.dict" ] && dict=(-dict="$crate/dict/$target.dict")
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir "$crate" --target-dir "${FUZZ_TARGET_DIR:-target/fuzz}" "$target" \
    "$crate/corpus/$target" "$crate/seeds/$target" -- \
    "${dict[@]}" -max_len="$max_len" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$@"
