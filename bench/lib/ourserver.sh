# Sourced by the client benchmarks: starts our ftpserver at its default flags on a free loopback port.
#
#   setup_client_bench NAME BUILD BINARY...  builds the release binaries when BUILD is 1, checks each BINARY is
#                                  there, makes the scratch directory $WORK and removes it (and stops the server)
#                                  on exit
#   start_ourserver ROOT LOG NAME   sets PORT, SERVER_PID and TIMEOUT_PID; NAME prefixes the error messages
#   stop_ourserver                  stops it by its PID (through `timeout`, its parent); safe to call twice
#   server_cpu                      the server's CPU seconds so far (user + system, all threads)
#
# `timeout` bounds the server's life even if the calling script is killed; the server is its child. Needs $BIN (the
# directory holding ftpserver) and $REPO.

TIMEOUT_PID=""
SERVER_PID=""
PORT=""

start_ourserver() {
    local root=$1 log=$2 name=$3 line
    # The server prints its ready line ("ftpserver listening on 127.0.0.1:PORT, ...") once it accepts connections.
    mkfifo "$WORK/ready"
    timeout 3600 "$BIN/ftpserver" 0 --root "$root" >"$WORK/ready" 2>"$log" &
    TIMEOUT_PID=$!
    exec 3<"$WORK/ready"
    if ! read -r -t 30 line <&3; then
        echo "$name: the server printed no ready line within 30 s" >&2
        exit 1
    fi
    # Keep draining the server's stdout so it never blocks on a full pipe.
    cat <&3 >/dev/null &
    SERVER_PID=$(cut -d' ' -f1 "/proc/$TIMEOUT_PID/task/$TIMEOUT_PID/children" 2>/dev/null)
    [[ -n "$SERVER_PID" && -r "/proc/$SERVER_PID/stat" ]] || {
        echo "$name: cannot find the server's process under timeout ($TIMEOUT_PID)" >&2
        exit 1
    }
    PORT=$(sed -n 's/^ftpserver listening on [^,]*:\([0-9]*\),.*/\1/p' <<<"$line")
    [[ -n "$PORT" ]] || {
        echo "$name: unexpected ready line: $line" >&2
        exit 1
    }
}

stop_ourserver() {
    if [[ -n "$TIMEOUT_PID" ]]; then
        # timeout passes the signal on to the server, by its PID.
        kill "$TIMEOUT_PID" 2>/dev/null || true
        wait "$TIMEOUT_PID" 2>/dev/null || true
        TIMEOUT_PID=""
    fi
}

TICK=$(getconf CLK_TCK)
server_cpu() {
    awk -v t="$TICK" '{ print ($14 + $15) / t }' "/proc/$SERVER_PID/stat"
}

setup_client_bench() {
    local name=$1 build=$2 bin
    shift 2
    if [[ "$build" == 1 ]]; then
        cargo build --release --quiet -p ftp-server -p ftpclient --manifest-path "$REPO/Cargo.toml"
    fi
    for bin in "$@"; do
        [[ -x "$bin" ]] || {
            echo "$name: $bin is missing (run without --no-build)" >&2
            exit 2
        }
    done
    WORK=$(mktemp -d)
    trap 'stop_ourserver; rm -rf "$WORK"' EXIT
}
